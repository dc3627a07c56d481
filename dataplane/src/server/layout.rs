//! Start-up checks of the thread layout: which CPU runs which thread, and what is wrong with it.
//!
//! A live run only shows a policy's behaviour when each polling thread has a core of its own
//! and the OS keeps one for itself: two busy-polling threads on one core take turns at the
//! kernel's tick (milliseconds), and a machine whose every core polls deschedules some thread
//! now and then for its own work. These checks turn such layouts into warnings printed at start
//! and kept in the report. Pure functions of the options and the allowed CPU set; tested below.

use std::collections::BTreeMap;

use super::{allowed_cpus, IdleStrategy, ServerOptions};

/// Warnings about `options`' layout on this process's allowed CPUs.
pub fn startup_warnings(options: &ServerOptions) -> Vec<String> {
    layout_warnings(options, &allowed_cpus())
}

/// Warnings about `options`' layout given the CPUs this process may use (`allowed`; empty
/// when unknown).
pub fn layout_warnings(options: &ServerOptions, allowed: &[usize]) -> Vec<String> {
    let mut threads: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    if let Some(cpu) = options.dispatcher_cpu {
        threads.entry(cpu).or_default().push("dispatcher".into());
    }
    for (w, &cpu) in options.worker_cpus.iter().enumerate() {
        threads.entry(cpu).or_default().push(format!("worker {w}"));
    }
    let mut warnings = Vec::new();
    for (cpu, names) in &threads {
        if !allowed.is_empty() && !allowed.contains(cpu) {
            warnings.push(format!(
                "cpu {cpu} ({}) is not available to this process (allowed: {}): those threads \
                 will run unpinned",
                names.join(", "),
                cpu_list(allowed)
            ));
        }
        if names.len() > 1 {
            let advice = match options.idle {
                IdleStrategy::Spin => "with idle: spin they take turns at the kernel's tick; give each its own core or use idle: yield",
                IdleStrategy::Yield => "they time-share it (idle: yield), so latencies include context switches",
            };
            warnings.push(format!(
                "cpu {cpu} runs {} polling threads ({}): {advice}",
                names.len(),
                names.join(", ")
            ));
        }
    }
    let free: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|cpu| !threads.contains_key(cpu))
        .collect();
    if options.idle == IdleStrategy::Spin && !threads.is_empty() && free.is_empty() {
        warnings.push(format!(
            "every allowed cpu ({}) runs a busy-polling thread, none is left to the OS: expect \
             threads to be descheduled now and then (millisecond tails); leave a core free",
            cpu_list(allowed)
        ));
    }
    warnings
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use psp_scheduler::{Policy, RequestTypeSpec, SchedulerConfig};
    use std::net::Ipv4Addr;

    fn options(dispatcher: usize, workers: &[usize], idle: IdleStrategy) -> ServerOptions {
        let scheduler = SchedulerConfig::new(
            workers.len(),
            vec![RequestTypeSpec::new("SHORT", 1)],
            Policy::Cfcfs,
        );
        let mut options = ServerOptions::new(scheduler, Ipv4Addr::LOCALHOST, 6789);
        options.dispatcher_cpu = Some(dispatcher);
        options.worker_cpus = workers.to_vec();
        options.idle = idle;
        options
    }

    #[test]
    fn a_dedicated_layout_with_a_free_core_is_quiet() {
        let allowed: Vec<usize> = (0..16).collect();
        let o = options(1, &(2..14).collect::<Vec<_>>(), IdleStrategy::Spin);
        assert_eq!(layout_warnings(&o, &allowed), Vec::<String>::new());
    }

    #[test]
    fn shared_unavailable_and_full_layouts_are_named() {
        let allowed = [0, 1];
        let w = layout_warnings(&options(0, &[0, 99], IdleStrategy::Spin), &allowed);
        assert!(
            w.iter()
                .any(|m| m.contains("cpu 0 runs 2 polling threads (dispatcher, worker 0)")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|m| m.contains("cpu 99 (worker 1) is not available")),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|m| m.contains("none is left to the OS")),
            "cpu 1 is free: {w:?}"
        );
        let w = layout_warnings(&options(0, &[1], IdleStrategy::Spin), &allowed);
        assert!(
            w.iter().any(|m| m.contains("none is left to the OS")),
            "{w:?}"
        );
        // Yielding threads leave time to the OS: no such warning.
        let w = layout_warnings(&options(0, &[1], IdleStrategy::Yield), &allowed);
        assert!(w.is_empty(), "{w:?}");
    }
}
