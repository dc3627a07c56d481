//! Property test: for any policy, worker count, load, queue capacity and dispatcher costs,
//! every arrival either completes or is dropped, and the run is deterministic, at worker queue
//! depth 1 and 2.

use proptest::prelude::*;
use psp_scheduler::{DarcParams, DarcTsParams, Policy, TimeSharingParams};
use psp_sim::{run, RunConfig};
use psp_workload::Workload;

const REQUESTS: u64 = 2_000;

fn policy(index: usize, workers: usize) -> Policy {
    match index {
        0 => Policy::Cfcfs,
        1 => Policy::Dfcfs,
        2 => Policy::Sjf,
        3 => Policy::Edf,
        4 => Policy::Darc(DarcParams {
            samples_needed: 300,
            ..DarcParams::default()
        }),
        5 => Policy::DarcStatic {
            reserved_short: 1.max(workers / 2),
        },
        6 => Policy::TimeSharing(TimeSharingParams::default()),
        _ => Policy::DarcTs(DarcTsParams {
            darc: DarcParams {
                samples_needed: 300,
                ..DarcParams::default()
            },
            slice_all: workers.is_multiple_of(2),
            ..DarcTsParams::default()
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn arrivals_are_conserved(
        policy_index in 0usize..8,
        workers in 2usize..9,
        load in 0.1f64..1.6,
        queue_capacity in 1usize..64,
        dispatch_cost_ns in 0u64..500,
        completion_cost_ns in 0u64..500,
        depth in 1usize..=2,
        exponential in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let service = if exponential { "exponential" } else { "fixed" };
        let w = Workload::from_yaml_str(
            "p",
            &format!(
                "- {{mean_ns: [1000, 20000, 100000], ratios: [.6, .3, .1], \
                 rtype: [SHORT, LONG, GET], duration: 1, service: [{service}, {service}, {service}]}}"
            ),
        )
        .unwrap();
        let p = policy(policy_index, workers);
        // `ts` and `darc-ts` preempt the request a worker runs: depth 1 only.
        let worker_queue_depth = if p.time_sharing().is_some() { 1 } else { depth };
        let cfg = RunConfig {
            worker_queue_depth,
            workers,
            requests: REQUESTS,
            seed,
            queue_capacity,
            dispatch_cost_ns,
            completion_cost_ns,
            ..RunConfig::default()
        };
        let a = run(&w, &p, load, &cfg).unwrap();
        prop_assert_eq!(a.arrivals, REQUESTS);
        prop_assert_eq!(a.completed + a.dropped, REQUESTS);
        prop_assert_eq!(a.stats.completed() + a.stats.dropped(), REQUESTS - REQUESTS / 10);
        let b = run(&w, &p, load, &cfg).unwrap();
        prop_assert_eq!(a.stats.slowdown_histogram(), b.stats.slowdown_histogram());
        prop_assert_eq!(a.end_ns, b.end_ns);
    }
}
