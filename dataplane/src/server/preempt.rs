//! Per-worker preempt flags for live time sharing (`ts`, Concord-style cooperative
//! preemption): one [`AtomicBool`] per worker, each on its own cache line so that the
//! worker's frequent reads never share a line with another worker's flag.
//!
//! Protocol: only the dispatcher writes the flag. It clears worker `w`'s flag (and its slice
//! start) before it pushes a job to `w` (the ring's release ordering publishes both before the
//! job); the worker publishes when it started the slice; the dispatcher sets the flag once the
//! slice has run past its quantum (counted from that start, so a job that waited in the ring
//! behind a descheduled worker is not preempted before it ran) while another request waits.
//! The worker only reads the flag, through [`crate::app::Application::handle_preemptible`]. A
//! flag set just as the request finished is harmless: it is cleared before the next job.
//! Tested by the whole-server `ts` tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// One worker's flag and slice start, on their own cache line.
#[derive(Debug, Default)]
struct WorkerFlag {
    preempt: AtomicBool,
    /// When the worker started its current slice (server clock, ns); 0: not started yet.
    started_ns: AtomicU64,
}

/// One preempt flag per worker.
#[derive(Debug)]
pub(crate) struct PreemptFlags {
    flags: Box<[CachePadded<WorkerFlag>]>,
    /// Read by an out-of-range index: never set.
    never: AtomicBool,
}

impl PreemptFlags {
    /// `workers` clear flags.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            flags: (0..workers)
                .map(|_| CachePadded::new(WorkerFlag::default()))
                .collect(),
            never: AtomicBool::new(false),
        }
    }

    /// Worker `w`'s flag (a flag never set for an index out of range).
    #[inline]
    pub(crate) fn flag(&self, w: usize) -> &AtomicBool {
        self.flags.get(w).map_or(&self.never, |flag| &flag.preempt)
    }

    /// Worker `w` started a slice at `now_ns`.
    #[inline]
    pub(crate) fn started(&self, w: usize, now_ns: u64) {
        if let Some(flag) = self.flags.get(w) {
            flag.started_ns.store(now_ns.max(1), Ordering::Relaxed);
        }
    }

    /// When worker `w` started its current slice, if it has.
    #[inline]
    pub(crate) fn started_ns(&self, w: usize) -> Option<u64> {
        let started_ns = self.flags.get(w)?.started_ns.load(Ordering::Relaxed);
        (started_ns != 0).then_some(started_ns)
    }

    /// Asks worker `w` to stop its request.
    #[inline]
    pub(crate) fn set(&self, w: usize) {
        if let Some(flag) = self.flags.get(w) {
            flag.preempt.store(true, Ordering::Relaxed);
        }
    }

    /// Clears worker `w`'s flag and slice start (before a job is pushed to it).
    #[inline]
    pub(crate) fn clear(&self, w: usize) {
        if let Some(flag) = self.flags.get(w) {
            flag.preempt.store(false, Ordering::Relaxed);
            flag.started_ns.store(0, Ordering::Relaxed);
        }
    }
}
