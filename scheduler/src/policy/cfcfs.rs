//! `cfcfs`: centralized first-come first-served. One central FIFO (UNKNOWN included); the
//! lowest-numbered idle worker takes its head. Work conserving. The original's `CFCFS`
//! (docs/design.md §2).
//!
//! Tested in `scheduler/tests.rs` (`cfcfs_*` and the property tests).

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// c-FCFS has no state of its own: queue 0 is the central FIFO.
#[derive(Debug)]
pub struct Cfcfs;

impl BuiltinPolicy for Cfcfs {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "cfcfs",
        aliases: &["CFCFS", "c-FCFS"],
        summary: "one central FIFO, lowest idle worker first (work conserving)",
        params: &[],
        live: true,
        default: || Policy::Cfcfs,
    };

    fn build(_cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(Cfcfs)
    }
}

impl PolicyCore for Cfcfs {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: 1,
            extra_slots: 0,
        }
    }

    #[inline]
    fn arrival_queue(&mut self, _slot: usize, _state: &SchedulerState) -> usize {
        0
    }

    #[inline]
    fn choose(
        &self,
        _now_ns: Nanos,
        _state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        Some((0, idle.lowest()?))
    }
}
