//! `edf`: earliest deadline first, non-preemptive. One FIFO per type slot; the type whose head
//! has the smallest `arrival + deadline_ns` (the type's `mean_ns` when it has no deadline: one
//! of the two is required) goes to the lowest idle worker; UNKNOWN has an infinite deadline
//! (docs/design.md §2).
//!
//! Tested in `scheduler/tests.rs` (`edf_*` and the property tests).

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// EDF: queue = type slot (UNKNOWN at `n_types`).
#[derive(Debug)]
pub struct Edf {
    /// Relative deadline per type slot (UNKNOWN: `Nanos::MAX`).
    deadline_ns: Box<[Nanos]>,
}

impl BuiltinPolicy for Edf {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "edf",
        aliases: &["EDF"],
        summary: "smallest arrival + deadline_ns (else mean_ns) first, UNKNOWN last",
        params: &[],
        live: true,
        default: || Policy::Edf,
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut deadline_ns = Vec::with_capacity(cx.n_types() + 1);
        for t in cx.types() {
            deadline_ns.push(t.deadline_ns.or(t.mean_ns).ok_or_else(|| {
                cx.error(format!(
                    "request type {:?} has neither deadline_ns nor mean_ns",
                    t.name
                ))
            })?);
        }
        deadline_ns.push(Nanos::MAX);
        Ok(Edf {
            deadline_ns: deadline_ns.into_boxed_slice(),
        })
    }
}

impl PolicyCore for Edf {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: self.deadline_ns.len(),
            extra_slots: 0,
        }
    }

    #[inline]
    fn arrival_queue(&mut self, slot: usize, _state: &SchedulerState) -> usize {
        slot
    }

    #[inline]
    fn choose(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        let mut best: Option<(Nanos, usize)> = None;
        let mut bits = state.nonempty_mask();
        while bits != 0 {
            let q = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(head) = state.front(q) {
                let due = head.arrival_ns.saturating_add(self.deadline_ns[q]);
                if best.is_none_or(|(b, _)| due < b) {
                    best = Some((due, q));
                }
            }
        }
        Some((best?.1, idle.lowest()?))
    }
}
