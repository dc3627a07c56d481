//! What the OS says about the calling thread's run: how often it was descheduled against its
//! will (`getrusage(RUSAGE_THREAD)`, safe through `nix`), and durations as nanoseconds.
//!
//! The dispatcher's busy time is wall-clock time of the loop iterations that found work; it is
//! its CPU time as long as the thread was not preempted inside them, and the count of
//! involuntary context switches over the run bounds how often that happened (each one is at
//! most one busy iteration stretched by a time slice; a `sched_yield` that runs another thread
//! counts too). Reports carry the count so that a reader of "busy time per request" on a
//! shared machine can tell whether to trust it.
//!
//! Tested below: the counter reads and never goes backwards.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

/// The calling thread's involuntary context switches so far; `None` where the OS does not
/// report per-thread usage.
pub(crate) fn involuntary_switches() -> Option<u64> {
    getrusage(UsageWho::RUSAGE_THREAD)
        .ok()
        .and_then(|usage| u64::try_from(usage.involuntary_context_switches()).ok())
}

/// Nanoseconds of a duration, saturating.
pub(crate) fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn involuntary_switches_read_and_never_go_backwards() {
        let before = involuntary_switches();
        #[cfg(target_os = "linux")]
        assert!(before.is_some(), "Linux reports per-thread usage");
        for _ in 0..1_000 {
            std::thread::yield_now();
        }
        assert!(involuntary_switches() >= before);
    }

    #[test]
    fn duration_ns_saturates() {
        assert_eq!(duration_ns(Duration::from_nanos(42)), 42);
        assert_eq!(duration_ns(Duration::MAX), u64::MAX);
    }
}
