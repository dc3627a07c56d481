//! A scheduler in *shadow* mode (issue "operate a running server"): it runs beside the live
//! one, fed the same arrivals ([`Scheduler::on_arrival`]) and completions
//! ([`Scheduler::on_completion`]); at each live decision it says what it would have chosen
//! ([`Scheduler::shadow_dispatch`]) and then follows the live decision, so that its queues and
//! workers stay those of the live scheduler and the next comparison is made on the same state.
//! The two can then be swapped (the driver's `toggle`): the shadow holds exactly the live
//! requests, in its own queue layout.
//!
//! A shadow never dispatches on its own: the driver calls [`Scheduler::shadow_dispatch`] instead
//! of [`Scheduler::next_dispatch`]. Following a decision it disagrees with removes the request
//! from the middle of a queue: O(queued), acceptable off the live path (the driver measures
//! the cost). Preemptive policies (`ts`) are not mirrored.
//!
//! Tested below: two identical policies always agree; c-FCFS and SJF disagree exactly when a
//! short request waits behind a long one; a shadow fed the same events holds the same tokens as
//! the live scheduler, and a request it never saw is reported out of sync.

use super::{Running, Scheduler};
use crate::policy::PolicyCore;
use crate::{Nanos, Token, WorkerId};

/// What a shadow made of one live decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ShadowVerdict {
    /// It would have started the same request on the same worker.
    Agreed,
    /// The same request, on another worker.
    SameRequest,
    /// Another request (or none).
    Disagreed,
    /// It cannot follow: it does not hold the request, or the worker is busy in its view.
    OutOfSync,
}

impl Scheduler {
    /// Shadow mode: compares what this scheduler would start now with the live decision
    /// (`worker` starts `token`), then records the live decision as its own.
    pub fn shadow_dispatch(
        &mut self,
        now_ns: Nanos,
        worker: WorkerId,
        token: Token,
    ) -> ShadowVerdict {
        self.engine.before_dispatch(now_ns, &mut self.state);
        let w = worker.index();
        let mine = self.shadow_choice(now_ns);
        let (same_request, same_worker) = mine.map_or((false, false), |(q, chosen)| {
            let same = self.state.front(q).is_some_and(|r| r.token == token);
            (same, chosen == w)
        });
        let Some((q, offset)) = self.state.find(token) else {
            return ShadowVerdict::OutOfSync;
        };
        let Some(behind) = self.free_slot(w) else {
            return ShadowVerdict::OutOfSync;
        };
        let Some(item) = self.state.remove(q, offset) else {
            return ShadowVerdict::OutOfSync;
        };
        let running = Running {
            token,
            ty: item.ty,
            arrival_ns: item.arrival_ns,
            dispatched_ns: now_ns,
            // A shadow follows decisions; it never sets a quantum (preemptive policies are
            // not mirrored).
            sliced: false,
        };
        if behind {
            self.behind[w] = Some(running);
            self.full.insert(w);
            self.state.counters.dispatched_behind += 1;
        } else {
            self.idle.remove(w);
            self.running[w] = Some(running);
        }
        self.state.counters.dispatched += 1;
        match (same_request, same_worker) {
            (true, true) => ShadowVerdict::Agreed,
            (true, false) => ShadowVerdict::SameRequest,
            _ => ShadowVerdict::Disagreed,
        }
    }

    /// What [`Scheduler::next_dispatch`] would choose now, without doing it.
    fn shadow_choice(&self, now_ns: Nanos) -> Option<(usize, usize)> {
        if self.state.nonempty_mask() == 0 {
            return None;
        }
        if !self.idle.is_empty() {
            if let Some(choice) = self.engine.choose(now_ns, &self.state, self.idle) {
                return Some(choice);
            }
        }
        if self.behind.is_empty() {
            None
        } else {
            self.choose_behind(now_ns)
        }
    }

    /// Where worker `w` can take a request in this scheduler's view: `Some(false)` idle,
    /// `Some(true)` behind its running one (depth 2), `None` nowhere.
    fn free_slot(&self, w: usize) -> Option<bool> {
        if w >= self.running.len() {
            None
        } else if self.idle.contains(w) {
            Some(false)
        } else if w < self.behind.len() && !self.full.contains(w) {
            Some(true)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, RequestTypeSpec, SchedulerConfig, TypeIndex};

    fn scheduler(policy: Policy) -> Scheduler {
        let types = vec![
            RequestTypeSpec::new("SHORT", 1).with_mean_ns(1_000),
            RequestTypeSpec::new("LONG", 2).with_mean_ns(100_000),
        ];
        Scheduler::new(SchedulerConfig::new(2, types, policy)).expect("valid")
    }

    /// Plays `arrivals` (type per token) into both, the live one dispatching as they come and
    /// then, one completion at a time (lowest busy worker first), until nothing is queued; the
    /// shadow's verdicts.
    fn play(live: &mut Scheduler, shadow: &mut Scheduler, arrivals: &[u16]) -> Vec<ShadowVerdict> {
        let mut verdicts = Vec::new();
        let mut now = 0;
        let mut dispatch = |live: &mut Scheduler, shadow: &mut Scheduler, now: u64| {
            while let Some(d) = live.next_dispatch(now) {
                verdicts.push(shadow.shadow_dispatch(now, d.worker, d.token));
            }
        };
        for (token, &ty) in arrivals.iter().enumerate() {
            now += 10;
            let token = Token(token as u64);
            live.on_arrival(now, TypeIndex(ty), token).expect("room");
            shadow.on_arrival(now, TypeIndex(ty), token).expect("room");
            dispatch(live, shadow, now);
        }
        for _ in 0..100 {
            now += 10;
            if let Some(w) = (0..2)
                .map(|w| WorkerId(w as u16))
                .find(|&w| !live.is_idle(w))
            {
                live.on_completion(now, w).expect("running");
                shadow.on_completion(now, w).expect("the shadow follows");
            }
            dispatch(live, shadow, now);
            if live.queued() == 0 {
                break;
            }
        }
        verdicts
    }

    #[test]
    fn identical_policies_always_agree() {
        let (mut live, mut shadow) = (scheduler(Policy::Cfcfs), scheduler(Policy::Cfcfs));
        let verdicts = play(&mut live, &mut shadow, &[0, 1, 0, 0, 1, 1, 0]);
        assert_eq!(verdicts.len(), 7);
        assert!(
            verdicts.iter().all(|v| *v == ShadowVerdict::Agreed),
            "{verdicts:?}"
        );
        assert_eq!(shadow.queued(), 0);
    }

    #[test]
    fn sjf_disagrees_with_cfcfs_when_a_short_request_waits_behind_a_long_one() {
        let (mut live, mut shadow) = (scheduler(Policy::Cfcfs), scheduler(Policy::Sjf));
        // Two LONG take both workers; then LONG, SHORT wait: c-FCFS starts the LONG first,
        // SJF would have started the SHORT.
        let verdicts = play(&mut live, &mut shadow, &[1, 1, 1, 0]);
        assert_eq!(
            verdicts[..2],
            [ShadowVerdict::Agreed, ShadowVerdict::Agreed]
        );
        assert_eq!(verdicts[2], ShadowVerdict::Disagreed);
        assert_eq!(verdicts.len(), 4);
        assert!(!verdicts.contains(&ShadowVerdict::OutOfSync));
        // Followed every live decision: nothing left, every worker idle in both.
        assert_eq!((live.queued(), shadow.queued()), (0, 0));
    }

    #[test]
    fn a_request_the_shadow_never_saw_is_out_of_sync() {
        let (mut live, mut shadow) = (scheduler(Policy::Cfcfs), scheduler(Policy::Cfcfs));
        live.on_arrival(0, TypeIndex(0), Token(9)).expect("room");
        let d = live.next_dispatch(1).expect("dispatch");
        assert_eq!(
            shadow.shadow_dispatch(1, d.worker, d.token),
            ShadowVerdict::OutOfSync
        );
    }

    #[test]
    fn at_depth_2_the_shadow_follows_decisions_into_second_slots() {
        let at_depth_2 = |policy| {
            let types = vec![
                RequestTypeSpec::new("SHORT", 1).with_mean_ns(1_000),
                RequestTypeSpec::new("LONG", 2).with_mean_ns(100_000),
            ];
            let mut config = SchedulerConfig::new(2, types, policy);
            config.worker_queue_depth = 2;
            Scheduler::new(config).expect("valid")
        };
        let (mut live, mut shadow) = (at_depth_2(Policy::Cfcfs), at_depth_2(Policy::Cfcfs));
        let verdicts = play(&mut live, &mut shadow, &[0, 1, 0, 0, 1, 1, 0, 1]);
        assert_eq!(verdicts.len(), 8);
        assert!(
            verdicts.iter().all(|v| *v == ShadowVerdict::Agreed),
            "{verdicts:?}"
        );
        assert!(
            shadow.counters().dispatched_behind > 0,
            "second slots were used"
        );
        assert_eq!(
            shadow.counters().dispatched_behind,
            live.counters().dispatched_behind
        );
    }
}
