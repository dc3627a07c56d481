//! Pinning the calling thread to one CPU (`sched_setaffinity`), as the original pins each lcore,
//! and keeping the server's helper threads off the CPUs its busy-polling threads are pinned to.
//!
//! Safe wrappers over `nix::sched`; this module holds no `unsafe`. A CPU index at or beyond
//! `CPU_SETSIZE` is refused with `InvalidInput` before any system call. Tested below by pinning a
//! spawned thread to an allowed CPU and reading its affinity back.

use std::io;
use std::sync::OnceLock;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Pid 0 in the `sched_*affinity` calls means the calling thread.
fn calling_thread() -> Pid {
    Pid::from_raw(0)
}

/// Pins the calling thread to `cpu`. Fails if `cpu` is out of range for a `cpu_set_t` or not
/// available to this process.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let cpu_set_size = CpuSet::count();
    if cpu >= cpu_set_size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is beyond CPU_SETSIZE ({cpu_set_size})"),
        ));
    }
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(calling_thread(), &set)?;
    Ok(())
}

/// Restricts the calling thread to `cpus` (threads it spawns from then on inherit that).
/// Fails if `cpus` is empty, holds a CPU beyond `CPU_SETSIZE` or none available to the process.
pub fn restrict_current_thread(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no CPU given"));
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cpu {cpu} is beyond CPU_SETSIZE ({})", CpuSet::count()),
            )
        })?;
    }
    sched_setaffinity(calling_thread(), &set)?;
    Ok(())
}

/// The CPUs for a server's helper threads (telemetry writer, control socket, shadow policy):
/// those of `allowed` that no busy-polling thread is pinned to (`pinned`: the dispatcher's and
/// the workers'), or all of `allowed` when none is left (a small machine: they share).
pub fn helper_cpus(allowed: &[usize], pinned: &[usize]) -> Vec<usize> {
    let free: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|cpu| !pinned.contains(cpu))
        .collect();
    if free.is_empty() {
        allowed.to_vec()
    } else {
        free
    }
}

/// The process's CPUs as [`remember_process_cpus`] saw them.
static PROCESS_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Remembers the CPUs this process may run on, from the calling thread, before anything pins it:
/// DPDK's `rte_eal_init` pins the thread that calls it to its main lcore, and the server then
/// still needs the whole set (helper threads, layout checks). The first call wins; a binary
/// that initialises DPDK calls it first thing.
pub fn remember_process_cpus() {
    let _ = PROCESS_CPUS.set(thread_cpus());
}

/// The CPUs this process may run on, ascending: those remembered by [`remember_process_cpus`],
/// else the calling thread's (empty if the query fails).
pub fn allowed_cpus() -> Vec<usize> {
    PROCESS_CPUS.get().cloned().unwrap_or_else(thread_cpus)
}

/// The CPUs the calling thread may run on, ascending (empty if the query fails).
fn thread_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(calling_thread()) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_an_allowed_cpu_and_refuses_out_of_range() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        let cpu = allowed[0];
        std::thread::spawn(move || {
            pin_current_thread(cpu).expect("pin to an allowed cpu");
            assert_eq!(thread_cpus(), vec![cpu]);
        })
        .join()
        .expect("pinned thread");
        let err = pin_current_thread(CpuSet::count()).expect_err("cpu beyond CPU_SETSIZE");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_process_cpus_remembered_outlive_pinning_the_thread() {
        let before = thread_cpus();
        let last = *before.last().expect("a cpu");
        std::thread::spawn(move || {
            remember_process_cpus();
            pin_current_thread(last).expect("pin");
            // As after rte_eal_init: the thread is pinned, the process's set is remembered.
            assert_eq!(thread_cpus(), [last]);
            assert_eq!(allowed_cpus(), before);
        })
        .join()
        .expect("pinned thread");
    }

    #[test]
    fn helpers_keep_off_pinned_cpus_unless_none_is_left() {
        assert_eq!(helper_cpus(&[0, 1, 2, 3], &[0, 1, 2]), [3]);
        assert_eq!(helper_cpus(&[0, 1, 2, 3], &[]), [0, 1, 2, 3]);
        assert_eq!(helper_cpus(&[0, 1], &[0, 1, 1]), [0, 1], "none left: share");
    }

    #[test]
    fn restricting_a_thread_sets_its_cpus_and_refuses_nonsense() {
        let allowed = allowed_cpus();
        std::thread::spawn(move || {
            restrict_current_thread(&allowed).expect("the allowed set");
            assert_eq!(thread_cpus(), allowed);
        })
        .join()
        .expect("restricted thread");
        assert!(restrict_current_thread(&[]).is_err());
        let err = restrict_current_thread(&[CpuSet::count()]).expect_err("beyond CPU_SETSIZE");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
