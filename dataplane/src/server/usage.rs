//! What the OS says about the calling thread's run: its CPU time and how often it was
//! descheduled against its will (`getrusage(RUSAGE_THREAD)`, safe through `nix`).
//!
//! The dispatcher's busy time is wall-clock time of the loop iterations that found work; it is
//! its CPU time as long as the thread was not preempted inside them, and the count of
//! involuntary context switches over the run bounds how often that happened (each one is at
//! most one busy iteration stretched by a time slice). Reports carry the count so that a
//! reader of "busy time per request" on a shared machine can tell whether to trust it.
//!
//! Tested below: the counters read and never go backwards.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

/// The calling thread's usage so far; `None` where the OS does not report per-thread usage.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ThreadUsage {
    /// Times the thread was descheduled while it could still run.
    pub(crate) involuntary_switches: u64,
    /// Times it gave the core up (a yield that ran another thread, a sleep, a blocking call).
    pub(crate) voluntary_switches: u64,
}

impl ThreadUsage {
    /// Reads the calling thread's counters (zero where they cannot be read).
    pub(crate) fn now() -> Self {
        getrusage(UsageWho::RUSAGE_THREAD)
            .map(|usage| Self {
                involuntary_switches: u64::try_from(usage.involuntary_context_switches())
                    .unwrap_or(0),
                voluntary_switches: u64::try_from(usage.voluntary_context_switches()).unwrap_or(0),
            })
            .unwrap_or_default()
    }

    /// What happened since `earlier` (a reading of the same thread).
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self {
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
        }
    }
}

/// Nanoseconds of a duration, saturating.
pub(crate) fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yielding_thread_counts_switches_that_never_go_backwards() {
        let before = ThreadUsage::now();
        for _ in 0..1_000 {
            std::thread::sleep(Duration::from_micros(1));
        }
        let after = ThreadUsage::now();
        assert!(after.voluntary_switches >= before.voluntary_switches);
        assert!(after.involuntary_switches >= before.involuntary_switches);
        // Each sleep blocks: the thread gave its core up at least once (Linux counts these).
        #[cfg(target_os = "linux")]
        assert!(after.since(before).voluntary_switches > 0);
    }

    #[test]
    fn duration_ns_saturates() {
        assert_eq!(duration_ns(Duration::from_nanos(42)), 42);
        assert_eq!(duration_ns(Duration::MAX), u64::MAX);
    }
}
