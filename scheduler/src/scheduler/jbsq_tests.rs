//! `worker_queue_depth: 2` (JBSQ(2)): per policy, the second slot is used only once no idle
//! worker can take the request, by the policy's own rule; completions come back oldest first;
//! the request behind another is profiled from when its worker reached it.

use super::*;
use crate::DarcParams;

const SHORT: TypeIndex = TypeIndex(0);
const LONG: TypeIndex = TypeIndex(1);

/// DISP2-like: SHORT 1 µs 50 %, LONG 100 µs 50 %.
fn disp2_types() -> Vec<RequestTypeSpec> {
    vec![
        RequestTypeSpec::new("SHORT", 1)
            .with_mean_ns(1_000)
            .with_ratio(0.5),
        RequestTypeSpec::new("LONG", 2)
            .with_mean_ns(100_000)
            .with_ratio(0.5),
    ]
}

fn depth2(workers: usize, policy: Policy) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        worker_queue_depth: 2,
        ..SchedulerConfig::new(workers, disp2_types(), policy)
    })
    .expect("valid depth-2 config")
}

fn arrive(s: &mut Scheduler, now: Nanos, ty: TypeIndex, token: u64) {
    s.on_arrival(now, ty, Token(token)).expect("queue has room");
}

/// Every decision at `now`: (worker, token, behind).
fn drain(s: &mut Scheduler, now: Nanos) -> Vec<(u16, u64, bool)> {
    std::iter::from_fn(|| s.next_dispatch(now))
        .map(|d| (d.worker.0, d.token.0, d.behind))
        .collect()
}

#[test]
fn cfcfs_fills_idle_workers_then_second_slots_and_completes_oldest_first() {
    let mut s = depth2(2, Policy::Cfcfs);
    for token in 0..5 {
        arrive(&mut s, 0, SHORT, token);
    }
    assert_eq!(
        drain(&mut s, 10),
        vec![(0, 0, false), (1, 1, false), (0, 2, true), (1, 3, true)]
    );
    assert_eq!((s.held(WorkerId(0)), s.held(WorkerId(1))), (2, 2));
    assert_eq!(s.queued(), 1);
    // Worker 0 finishes its first request at 100: token 2 runs from 100, token 4 goes behind.
    let done = s.on_completion(100, WorkerId(0)).unwrap();
    assert_eq!((done.token, done.service_ns), (Token(0), 90));
    assert_eq!(drain(&mut s, 100), vec![(0, 4, true)]);
    let done = s.on_completion(150, WorkerId(0)).unwrap();
    assert_eq!(
        (done.token, done.service_ns),
        (Token(2), 50),
        "service counts from when the worker reached it, not from its dispatch at 10"
    );
    assert_eq!(s.on_completion(160, WorkerId(0)).unwrap().token, Token(4));
    assert!(s.is_idle(WorkerId(0)));
    assert_eq!(s.held(WorkerId(1)), 2);
    let c = s.counters();
    assert_eq!((c.dispatched, c.dispatched_behind), (5, 3));
}

#[test]
fn depth_1_never_dispatches_behind() {
    let mut s = build_depth(2, Policy::Cfcfs, 1);
    for token in 0..5 {
        arrive(&mut s, 0, SHORT, token);
    }
    assert_eq!(drain(&mut s, 0), vec![(0, 0, false), (1, 1, false)]);
    assert_eq!(s.queued(), 3);
    assert_eq!(s.counters().dispatched_behind, 0);
}

fn build_depth(workers: usize, policy: Policy, depth: usize) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        worker_queue_depth: depth,
        ..SchedulerConfig::new(workers, disp2_types(), policy)
    })
    .expect("valid config")
}

#[test]
fn dfcfs_second_slot_takes_only_the_workers_own_queue() {
    let mut s = depth2(2, Policy::Dfcfs);
    // Round-robin: w0 gets 0, 2, 4; w1 gets 1, 3.
    for token in 0..5 {
        arrive(&mut s, 0, SHORT, token);
    }
    assert_eq!(
        drain(&mut s, 0),
        vec![(0, 0, false), (1, 1, false), (0, 2, true), (1, 3, true)]
    );
    // w1 finishes 1: it has room but an empty queue; w0's 4 waits for w0.
    s.on_completion(5, WorkerId(1)).unwrap();
    assert_eq!(drain(&mut s, 5), vec![]);
    assert_eq!(s.held(WorkerId(1)), 1);
    s.on_completion(6, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 6), vec![(0, 4, true)]);
}

#[test]
fn ws_second_slot_never_steals() {
    let mut s = depth2(2, Policy::Ws);
    arrive(&mut s, 0, SHORT, 0);
    arrive(&mut s, 0, SHORT, 1);
    assert_eq!(drain(&mut s, 0), vec![(0, 0, false), (1, 1, false)]);
    // w0 gets 2 and 4, w1 gets 3.
    for token in 2..5 {
        arrive(&mut s, 1, SHORT, token);
    }
    assert_eq!(drain(&mut s, 1), vec![(0, 2, true), (1, 3, true)]);
    // w1 finishes 1 and runs 3: its queue is empty, w0's holds 4; a second slot does not steal.
    s.on_completion(2, WorkerId(1)).unwrap();
    assert_eq!(drain(&mut s, 2), vec![]);
    // Once idle, w1 steals 4.
    s.on_completion(3, WorkerId(1)).unwrap();
    let d = s.next_dispatch(3).expect("idle w1 steals");
    assert_eq!(
        (d.worker.0, d.token.0, d.stolen, d.behind),
        (1, 4, true, false)
    );
}

#[test]
fn sjf_and_edf_order_the_second_slot_too() {
    for policy in [Policy::Sjf, Policy::Edf] {
        let mut s = depth2(1, policy.clone());
        arrive(&mut s, 0, LONG, 0);
        arrive(&mut s, 0, LONG, 1);
        arrive(&mut s, 0, SHORT, 2);
        // SHORT first (shortest mean; earliest due at 0 + 1 µs), then the oldest LONG behind.
        assert_eq!(
            drain(&mut s, 0),
            vec![(0, 2, false), (0, 0, true)],
            "{}",
            policy.name()
        );
        arrive(&mut s, 1, SHORT, 3);
        s.on_completion(5, WorkerId(0)).unwrap();
        assert_eq!(drain(&mut s, 5), vec![(0, 3, true)], "{}", policy.name());
    }
}

#[test]
fn darc_reservations_hold_for_both_slots() {
    let oracle = Policy::Darc(DarcParams {
        dynamic: false,
        ..DarcParams::default()
    });
    let mut s = depth2(4, oracle);
    let plan = s.plan().expect("oracle plan").clone();
    assert_eq!(plan.groups[0].reserved, vec![WorkerId(0)]);
    assert_eq!(plan.groups[0].stealable.len(), 3, "SHORT may steal 1..3");
    assert_eq!(plan.spillway, Some(WorkerId(3)));
    for token in 0..10 {
        arrive(&mut s, 0, LONG, token);
    }
    let longs = drain(&mut s, 0);
    assert_eq!(longs.len(), 6, "workers 1..3, both slots: {longs:?}");
    assert!(
        longs.iter().all(|&(w, _, _)| w != 0),
        "LONG in SHORT's worker: {longs:?}"
    );
    assert!(s.is_idle(WorkerId(0)));
    // SHORT takes its idle worker, then that worker's second slot; a third waits.
    for token in 100..103 {
        arrive(&mut s, 1, SHORT, token);
    }
    assert_eq!(drain(&mut s, 1), vec![(0, 100, false), (0, 101, true)]);
    // Worker 0 finishes one SHORT: the queued SHORT goes behind the other, never a LONG.
    s.on_completion(2, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 2), vec![(0, 102, true)]);
    s.on_completion(3, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 3), vec![]);
    assert_eq!(s.held(WorkerId(0)), 1);
    // UNKNOWN only ever reaches the spillway, in its second slot once the first is taken.
    s.on_completion(4, WorkerId(3)).unwrap();
    arrive(&mut s, 4, TypeIndex::UNKNOWN, 200);
    let d = drain(&mut s, 4);
    assert!(
        d.iter().all(|&(w, t, _)| t != 200 || w == 3),
        "UNKNOWN off the spillway: {d:?}"
    );
}

/// A worker SHORT may steal when idle is not one it waits on when busy: a SHORT never goes
/// behind a LONG (it would wait out the LONG, the blocking DARC exists to avoid).
#[test]
fn darc_second_slots_never_steal() {
    for policy in [
        Policy::Darc(DarcParams {
            dynamic: false,
            ..DarcParams::default()
        }),
        Policy::DarcStatic { reserved_short: 1 },
    ] {
        let name = policy.name();
        let mut s = depth2(4, policy);
        for token in 0..3 {
            arrive(&mut s, 0, LONG, token);
        }
        assert_eq!(
            drain(&mut s, 0),
            vec![(1, 0, false), (2, 1, false), (3, 2, false)],
            "{name}"
        );
        for token in 10..13 {
            arrive(&mut s, 1, SHORT, token);
        }
        // SHORT: its idle worker, then its second slot; the third waits although workers 1..3
        // (stealable when idle) have free second slots.
        assert_eq!(
            drain(&mut s, 1),
            vec![(0, 10, false), (0, 11, true)],
            "{name}"
        );
        assert_eq!(s.queue_len(SHORT), 1, "{name}");
        // A LONG does go behind a LONG; a freed LONG worker is stolen by the waiting SHORT.
        arrive(&mut s, 2, LONG, 3);
        assert_eq!(drain(&mut s, 2), vec![(1, 3, true)], "{name}");
        s.on_completion(3, WorkerId(2)).unwrap();
        assert_eq!(drain(&mut s, 3), vec![(2, 12, false)], "{name}");
    }
}

#[test]
fn depth_out_of_range_and_ts_at_depth_2_are_refused_naming_the_field() {
    for depth in [0, 3] {
        let err = Scheduler::new(SchedulerConfig {
            worker_queue_depth: depth,
            ..SchedulerConfig::new(2, disp2_types(), Policy::Cfcfs)
        })
        .unwrap_err()
        .to_string();
        assert_eq!(err, format!("worker_queue_depth = {depth}: must be 1 or 2"));
    }
    let ts = Policy::TimeSharing(crate::TimeSharingParams::default());
    let err = Scheduler::new(SchedulerConfig {
        worker_queue_depth: 2,
        ..SchedulerConfig::new(2, disp2_types(), ts)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("worker_queue_depth = 2: ts preempts"),
        "{err}"
    );
}

/// A custom policy that sets a quantum is preemptive like `ts`: depth 2 is refused for it too.
#[test]
fn a_custom_preemptive_policy_needs_depth_1() {
    #[derive(Debug)]
    struct Sliced;
    impl crate::PolicyCore for Sliced {
        fn layout(&self) -> crate::QueueLayout {
            crate::QueueLayout {
                queues: 1,
                extra_slots: 0,
            }
        }
        fn arrival_queue(&mut self, _slot: usize, _state: &SchedulerState) -> usize {
            0
        }
        fn choose(
            &self,
            _now_ns: Nanos,
            _state: &SchedulerState,
            idle: WorkerSet,
        ) -> Option<(usize, usize)> {
            Some((0, idle.lowest()?))
        }
        fn quantum_ns(&self) -> Option<Nanos> {
            Some(1_000)
        }
    }
    let sliced = Policy::Custom(crate::CustomPolicy::new("sliced", false, |_| {
        Ok(Box::new(Sliced))
    }));
    assert!(build_depth(2, sliced.clone(), 1).next_dispatch(0).is_none());
    let err = Scheduler::new(SchedulerConfig {
        worker_queue_depth: 2,
        ..SchedulerConfig::new(2, disp2_types(), sliced)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("worker_queue_depth = 2: a preemptive policy"),
        "{err}"
    );
}
