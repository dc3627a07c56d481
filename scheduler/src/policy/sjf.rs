//! `sjf`: shortest job first by configured mean. One FIFO per type slot, visited in ascending
//! configured `mean_ns` (required for every type), UNKNOWN last; each head goes to the lowest
//! idle worker. Non-preemptive fixed priority, work conserving (docs/design.md §2).
//!
//! Tested in `scheduler/tests.rs` (`sjf_*` and the property tests).

use crate::policy::{
    order_by_mean, BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout,
};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// SJF: queue = type slot (UNKNOWN at `n_types`).
#[derive(Debug)]
pub struct Sjf {
    /// Type slots by ascending configured mean, UNKNOWN last.
    order: Box<[usize]>,
}

impl BuiltinPolicy for Sjf {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "sjf",
        aliases: &["SJF"],
        summary: "per-type FIFOs by ascending configured mean_ns, UNKNOWN last",
        params: &[],
        live: true,
        default: || Policy::Sjf,
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let means = cx.configured_means("SJF orders queues by mean")?;
        let mut order = order_by_mean(&means);
        order.push(cx.n_types());
        Ok(Sjf {
            order: order.into_boxed_slice(),
        })
    }
}

impl PolicyCore for Sjf {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: self.order.len(),
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
        let q = self.order.iter().copied().find(|&q| state.has(q))?;
        Some((q, idle.lowest()?))
    }
}
