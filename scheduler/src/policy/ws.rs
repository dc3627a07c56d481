//! `ws`: per-worker queues with work stealing, the Shenango / ZygOS baseline of the paper.
//! Arrivals are spread over the workers' queues round-robin (what RSS does to many flows); an
//! idle worker runs the head of its own queue, and one whose queue is empty steals the oldest
//! request of the longest other queue, one request at a time. Work conserving, type-blind.
//!
//! A stolen dispatch is flagged ([`crate::Dispatch::stolen`]) so that a driver can charge the
//! cost of a steal (`psp sim --steal-cost-ns`; the live server pays the real one). Ties between
//! equally long queues go to the lowest-numbered queue, and several idle workers are served
//! lowest-numbered first, so decisions are deterministic.
//!
//! Tested in `scheduler/tests.rs` (`ws_*` and the property tests).

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// Work stealing: queue `w` belongs to worker `w`.
#[derive(Debug)]
pub struct WorkStealing {
    workers: usize,
    /// Next worker of the round-robin spread.
    next_worker: usize,
}

impl BuiltinPolicy for WorkStealing {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "ws",
        aliases: &["work-stealing", "shenango", "zygos"],
        summary: "per-worker FIFOs fed round-robin; an idle worker steals the oldest request of the longest queue",
        params: &[],
        live: true,
        default: || Policy::Ws,
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(WorkStealing {
            workers: cx.workers(),
            next_worker: 0,
        })
    }
}

impl WorkStealing {
    /// The longest non-empty queue (lowest index among equals), if any.
    fn longest_queue(state: &SchedulerState) -> Option<usize> {
        let mut mask = state.nonempty_mask();
        let mut best: Option<(usize, usize)> = None;
        while mask != 0 {
            let q = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let len = state.len(q);
            if best.is_none_or(|(_, best_len)| len > best_len) {
                best = Some((q, len));
            }
        }
        best.map(|(q, _)| q)
    }
}

impl PolicyCore for WorkStealing {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: self.workers,
            extra_slots: 0,
        }
    }

    #[inline]
    fn arrival_queue(&mut self, _slot: usize, _state: &SchedulerState) -> usize {
        let w = self.next_worker;
        self.next_worker = if w + 1 >= self.workers { 0 } else { w + 1 };
        w
    }

    #[inline]
    fn choose(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        // An idle worker with work of its own runs it.
        if let Some(w) = WorkerSet(idle.0 & state.nonempty_mask()).lowest() {
            return Some((w, w));
        }
        // Otherwise the lowest idle worker steals from the longest queue (never its own: it is
        // empty, or the branch above would have taken it).
        let w = idle.lowest()?;
        Some((Self::longest_queue(state)?, w))
    }

    #[inline]
    fn is_steal(&self, queue: usize, worker: usize) -> bool {
        queue != worker
    }
}
