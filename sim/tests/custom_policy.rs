//! A policy added through the registry alone: a toy defined in this file (one `PolicyCore`
//! impl and one `PolicyEntry`), registered with `Registry::with`, found by name and run in
//! the simulator like a built-in.

use psp_scheduler::{
    BuildContext, ConfigError, CustomPolicy, Nanos, Policy, PolicyCore, PolicyEntry, QueueLayout,
    Registry, SchedulerState, WorkerSet,
};
use psp_sim::cli::parse_policy_names;
use psp_sim::{run, RunConfig};
use psp_workload::Workload;

/// c-FCFS served from the top: one central FIFO whose head goes to the *highest*-numbered
/// idle worker. With identical workers it must behave exactly like `cfcfs`.
#[derive(Debug)]
struct HighestIdleFifo;

impl PolicyCore for HighestIdleFifo {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: 1,
            extra_slots: 0,
        }
    }

    fn arrival_queue(&mut self, _slot: usize, _state: &SchedulerState) -> usize {
        0
    }

    fn choose(
        &self,
        _now: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        let highest = 127 - idle.0.leading_zeros() as usize;
        (state.has(0) && !idle.is_empty()).then_some((0, highest))
    }
}

fn build(_cx: &BuildContext<'_>) -> Result<Box<dyn PolicyCore>, ConfigError> {
    Ok(Box::new(HighestIdleFifo))
}

/// The registry line.
const TOY: PolicyEntry = PolicyEntry {
    name: "highest-fifo",
    aliases: &["HFIFO"],
    summary: "one central FIFO, highest idle worker first (toy)",
    params: &[],
    live: true,
    default: || Policy::Custom(CustomPolicy::new("highest-fifo", true, build)),
};

#[test]
fn a_toy_policy_added_through_the_registry_runs_in_the_simulator() {
    let registry = Registry::builtin().with(TOY);
    let policies = parse_policy_names(&registry, "cfcfs, hfifo").expect("both names known");
    assert_eq!(policies[1].name(), "highest-fifo");
    assert!(registry.names(true).ends_with("highest-fifo"));
    assert!(parse_policy_names(&Registry::builtin(), "hfifo").is_err());

    let path = format!(
        "{}/../configs/workloads/DISP2.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let workload = Workload::from_path(&path).unwrap();
    let config = RunConfig {
        requests: 20_000,
        seed: 5,
        ..RunConfig::default()
    };
    let cfcfs = run(&workload, &policies[0], 0.7, &config).unwrap();
    let toy = run(&workload, &policies[1], 0.7, &config).unwrap();
    assert_eq!(toy.policy, "highest-fifo");
    assert_eq!(toy.completed, 20_000);
    assert_eq!(toy.dropped, 0);
    // Identical workers: which idle worker takes the head changes nothing.
    assert_eq!(
        toy.stats.latency_histogram(),
        cfcfs.stats.latency_histogram()
    );
    assert_eq!(toy.end_ns, cfcfs.end_ns);
}
