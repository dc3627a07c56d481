//! # The server's clock: a cheap monotonic nanosecond counter
//!
//! [`Clock`] reads the CPU's time-stamp counter where it is invariant (x86-64 with
//! `constant_tsc`/`nonstop_tsc`), scaled to nanoseconds by a calibration against
//! `CLOCK_MONOTONIC` taken once per process, and the monotonic clock itself elsewhere (the
//! `quanta` crate decides and calibrates; no `unsafe` here). A read costs ~10–25 ns with the
//! TSC, ~20–50 ns through the vDSO, so the dispatcher and the workers can stamp every request
//! stage, and the spin application can busy-wait to a deadline instead of counting loop
//! iterations whose speed depends on what the sibling hyperthread does.
//!
//! Invariants: `now_ns` never goes backwards on one thread; readings from different threads are
//! comparable (the invariant TSC is synchronised across cores; quanta falls back to the
//! monotonic clock where it is not). All clocks made in one process share one calibration.
//!
//! Tests: below (monotonic, agrees with `Instant` within 1 % over 20 ms); the spin accuracy
//! bench (`cargo bench -p psp-dataplane --bench spin`) measures the spin deadline against
//! `Instant` with and without a spinning neighbour thread.

use std::sync::atomic::{AtomicBool, Ordering};

/// A monotonic clock in nanoseconds since it was started. Cheap to clone and to read.
#[derive(Clone, Debug)]
pub struct Clock {
    source: quanta::Clock,
    start_raw: u64,
}

impl Clock {
    /// A clock whose zero is now (the first clock of a process calibrates the TSC: ~10 ms).
    pub fn start() -> Self {
        let source = quanta::Clock::new();
        let start_raw = source.raw();
        Self { source, start_raw }
    }

    /// Nanoseconds since the clock started.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.source
            .delta_as_nanos(self.start_raw, self.source.raw())
    }

    /// Busy-waits until the clock reads `deadline_ns` or `stop` is set (checked at every
    /// reading), reading the clock in a tight loop; returns the reading that ended the wait
    /// (below `deadline_ns`: stopped). The wait overshoots by at most one clock read.
    #[inline]
    pub fn spin_until_ns(&self, deadline_ns: u64, stop: &AtomicBool) -> u64 {
        loop {
            let now_ns = self.now_ns();
            if now_ns >= deadline_ns || stop.load(Ordering::Relaxed) {
                return now_ns;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn never_goes_backwards() {
        let clock = Clock::start();
        let mut last = clock.now_ns();
        for _ in 0..100_000 {
            let now = clock.now_ns();
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
    }

    /// Over 20 ms the clock and `Instant` agree within 1 % (a descheduled thread only delays
    /// both readings, it cannot make them disagree by much).
    #[test]
    fn agrees_with_instant() {
        let clock = Clock::start();
        let (ns0, t0) = (clock.now_ns(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (ns1, elapsed) = (clock.now_ns(), t0.elapsed());
        let ours = (ns1 - ns0) as f64;
        let theirs = elapsed.as_nanos() as f64;
        assert!(
            (ours / theirs - 1.0).abs() < 0.01,
            "clock {ours} ns, Instant {theirs} ns"
        );
    }

    #[test]
    fn spin_until_waits_at_least_the_duration() {
        let clock = Clock::start();
        let never = AtomicBool::new(false);
        for duration_ns in [0u64, 1_000, 50_000] {
            let t0 = Instant::now();
            let from = clock.now_ns();
            let end = clock.spin_until_ns(from + duration_ns, &never);
            assert!(end - from >= duration_ns);
            // Instant agrees to within its own read cost and 1 % of calibration.
            let waited = t0.elapsed().as_nanos() as u64;
            assert!(
                waited + 1_000 >= duration_ns * 99 / 100,
                "{waited} < {duration_ns}"
            );
        }
    }
}
