//! Switching a running scheduler to another policy (issue "operate a running server": switch
//! policy over the control socket, e.g. c-FCFS → DARC, or new DARC parameters).
//!
//! A switch happens between two calls, at a dispatch boundary: the new policy is built from the
//! same types and workers, every queued request moves to the queue the new policy gives it on
//! arrival, oldest first (so FIFO order across the old queues is kept), and the requests running
//! on workers stay there — their completions reach the new policy as any other. Counters and
//! plan records not yet polled carry over. A request the new policy's queues cannot hold (a
//! policy with one central queue taking over from per-worker queues that were all full) is
//! handed back to the caller, counted in [`SchedulerCounters::switch_rejected`]: the caller
//! answers or drops it with a counter; nothing is lost silently.
//!
//! Tested below: every queued token is dispatched exactly once after switches between every
//! pair of policies, running requests complete under the new policy, FIFO order survives,
//! refused configurations leave the scheduler as it was, overflow is handed back.

use super::{build_engine, Scheduler, SchedulerCounters};
use crate::policy::PolicyCore;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, Policy, Token};

impl Scheduler {
    /// Switches to `policy` now (docs above). Returns the tokens of queued requests the new
    /// policy's queues could not hold (empty unless they overflowed). A configuration the new
    /// policy refuses is an error and changes nothing.
    pub fn switch_policy(
        &mut self,
        policy: Policy,
        _now_ns: Nanos,
    ) -> Result<Vec<Token>, ConfigError> {
        let mut config = self.config.clone();
        config.policy = policy;
        config.check_worker_queue_depth()?;
        let (mut engine, layout) = build_engine(&config)?;
        let mut state = SchedulerState::new(
            config.types.len(),
            config.workers,
            layout.queues,
            config.queue_capacity + layout.extra_slots,
        );
        engine.on_start(&mut state);
        let (queued, updates) = self.state.take_all();
        state.counters = std::mem::take(&mut self.state.counters);
        state.restore_updates(updates);
        let mut handed_back = Vec::new();
        for item in queued {
            let slot = state.slot_of(item.ty);
            let q = engine.arrival_queue(slot, &state);
            if state.len(q) >= config.queue_capacity || state.push(q, item).is_err() {
                handed_back.push(item.token);
            }
        }
        let counters: &mut SchedulerCounters = &mut state.counters;
        counters.policy_switches += 1;
        counters.switch_rejected += handed_back.len() as u64;
        self.quantum_ns = engine.quantum_ns();
        self.engine = engine;
        self.state = state;
        self.config = config;
        Ok(handed_back)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crate::{
        DarcParams, DarcTsParams, Policy, RequestTypeSpec, Scheduler, SchedulerConfig,
        TimeSharingParams, Token, TypeIndex, WorkerId,
    };

    fn types() -> Vec<RequestTypeSpec> {
        vec![
            RequestTypeSpec::new("SHORT", 1)
                .with_mean_ns(1_000)
                .with_ratio(0.5),
            RequestTypeSpec::new("LONG", 2)
                .with_mean_ns(100_000)
                .with_ratio(0.5),
        ]
    }

    fn policies() -> Vec<Policy> {
        vec![
            Policy::Cfcfs,
            Policy::Dfcfs,
            Policy::Sjf,
            Policy::Edf,
            Policy::Darc(DarcParams {
                dynamic: false,
                ..DarcParams::default()
            }),
            Policy::Darc(DarcParams {
                samples_needed: 4,
                ..DarcParams::default()
            }),
            Policy::DarcStatic { reserved_short: 1 },
            Policy::TimeSharing(TimeSharingParams::default()),
            Policy::Ws,
            Policy::DarcTs(DarcTsParams {
                darc: DarcParams {
                    samples_needed: 4,
                    ..DarcParams::default()
                },
                ..DarcTsParams::default()
            }),
        ]
    }

    fn scheduler(policy: Policy, capacity: usize) -> Scheduler {
        let mut config = SchedulerConfig::new(4, types(), policy);
        config.queue_capacity = capacity;
        Scheduler::new(config).expect("valid config")
    }

    /// Dispatches and completes everything, one request per worker at a time; the tokens in
    /// dispatch order.
    fn run_to_empty(s: &mut Scheduler, mut now: u64) -> Vec<u64> {
        let mut done = Vec::new();
        for _ in 0..10_000 {
            let mut started = Vec::new();
            while let Some(d) = s.next_dispatch(now) {
                done.push(d.token.0);
                started.push(d.worker);
            }
            if started.is_empty() && s.queued() == 0 {
                break;
            }
            now += 1_000;
            for w in started {
                s.on_completion(now, w).expect("running");
            }
            // A worker busy since before the switch.
            for w in 0..s.workers() {
                let _ = s.on_completion(now, WorkerId(w as u16));
            }
        }
        done
    }

    #[test]
    fn every_queued_and_running_request_is_served_once_across_a_switch() {
        for from in policies() {
            for to in policies() {
                let mut s = scheduler(from.clone(), 4096);
                let mut expected = HashSet::new();
                // Two running requests, then 40 queued ones.
                for token in 0..42u64 {
                    let ty = TypeIndex((token % 2) as u16);
                    s.on_arrival(token, ty, Token(token)).expect("room");
                    expected.insert(token);
                    if token < 2 {
                        s.next_dispatch(token);
                    }
                }
                let running: Vec<u64> = (0..2).collect();
                let back = s.switch_policy(to.clone(), 100).expect("switch");
                assert!(back.is_empty(), "{from:?} → {to:?}");
                assert_eq!(s.policy(), &to);
                assert_eq!(s.counters().policy_switches, 1);
                let mut served = run_to_empty(&mut s, 200);
                served.extend(running);
                let unique: HashSet<u64> = served.iter().copied().collect();
                assert_eq!(
                    unique.len(),
                    served.len(),
                    "{from:?} → {to:?}: served twice"
                );
                assert_eq!(unique, expected, "{from:?} → {to:?}");
                assert_eq!(s.counters().accepted, 42);
            }
        }
    }

    #[test]
    fn fifo_order_survives_a_switch_from_per_worker_queues() {
        let mut s = scheduler(Policy::Dfcfs, 4096);
        for token in 0..20u64 {
            s.on_arrival(token, TypeIndex(0), Token(token))
                .expect("room");
        }
        s.switch_policy(Policy::Cfcfs, 50).expect("switch");
        let order = run_to_empty(&mut s, 100);
        assert_eq!(order, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn overflow_is_handed_back_and_counted() {
        // d-FCFS: 4 per-worker queues of 3 each hold 12; c-FCFS's one queue holds 3.
        let mut s = scheduler(Policy::Dfcfs, 3);
        for token in 0..12u64 {
            s.on_arrival(token, TypeIndex(0), Token(token))
                .expect("room");
        }
        let back = s.switch_policy(Policy::Cfcfs, 10).expect("switch");
        assert_eq!(back.len(), 9);
        assert_eq!(s.counters().switch_rejected, 9);
        let served = run_to_empty(&mut s, 20);
        let mut all: Vec<u64> = served.into_iter().chain(back.iter().map(|t| t.0)).collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..12).collect::<Vec<_>>(),
            "every token served or handed back"
        );
    }

    #[test]
    fn a_refused_policy_changes_nothing() {
        let mut s = scheduler(Policy::Cfcfs, 4096);
        s.on_arrival(0, TypeIndex(0), Token(7)).expect("room");
        let bad = Policy::DarcStatic { reserved_short: 9 };
        assert!(s.switch_policy(bad, 1).is_err());
        assert_eq!(s.policy(), &Policy::Cfcfs);
        assert_eq!(s.counters().policy_switches, 0);
        assert_eq!(s.next_dispatch(2).map(|d| d.token), Some(Token(7)));
    }

    #[test]
    fn at_depth_2_a_switch_to_ts_is_refused_and_others_keep_every_request() {
        let mut config = SchedulerConfig::new(2, types(), Policy::Cfcfs);
        config.worker_queue_depth = 2;
        let mut s = Scheduler::new(config).expect("valid");
        for token in 0..8u64 {
            s.on_arrival(token, TypeIndex((token % 2) as u16), Token(token))
                .expect("room");
        }
        // Two running, two behind them, four queued.
        while s.next_dispatch(10).is_some() {}
        assert_eq!(s.queued(), 4);
        let e = s
            .switch_policy(Policy::TimeSharing(TimeSharingParams::default()), 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("worker_queue_depth"), "{e}");
        assert_eq!(s.policy(), &Policy::Cfcfs);
        assert!(s.switch_policy(Policy::Sjf, 20).expect("switch").is_empty());
        assert_eq!(s.queued(), 4);
    }
}
