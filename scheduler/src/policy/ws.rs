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

use crate::policy::dfcfs::Dfcfs;
use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// Work stealing: d-FCFS's per-worker queues (queue `w` belongs to worker `w`, arrivals
/// spread round-robin), plus stealing when a worker's own queue is empty.
#[derive(Debug)]
pub struct WorkStealing {
    per_worker: Dfcfs,
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
            per_worker: Dfcfs::build(cx)?,
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
        self.per_worker.layout()
    }

    #[inline]
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize {
        self.per_worker.arrival_queue(slot, state)
    }

    #[inline]
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        // An idle worker with work of its own runs it (d-FCFS's decision).
        if let Some(own) = self.per_worker.choose(now_ns, state, idle) {
            return Some(own);
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
