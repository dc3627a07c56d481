//! `dfcfs`: decentralized first-come first-served. One FIFO per worker, fed round-robin at
//! arrival by a full-width counter (the original's `uint8_t` counter wrapped every 256
//! requests, docs/design.md §2); a worker runs only its own FIFO. Not work conserving.
//!
//! Tested in `scheduler/tests.rs` (`dfcfs_*` and the property tests).

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// d-FCFS: queue `w` belongs to worker `w`.
#[derive(Debug)]
pub struct Dfcfs {
    workers: usize,
    /// Next worker of the round-robin (full width: no 256 glitch).
    next_worker: usize,
}

impl BuiltinPolicy for Dfcfs {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "dfcfs",
        aliases: &["DFCFS", "d-FCFS"],
        summary: "one FIFO per worker, fed round-robin at arrival",
        params: &[],
        live: true,
        default: || Policy::Dfcfs,
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(Dfcfs {
            workers: cx.workers(),
            next_worker: 0,
        })
    }
}

impl PolicyCore for Dfcfs {
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
        let w = WorkerSet(idle.0 & state.nonempty_mask()).lowest()?;
        Some((w, w))
    }
}
