//! `spin`: emulates a request's service time (`run_ns`) with calibrated busy work, like the
//! original's MbWorker (reference §4.2), without a hard-coded clock rate.
//!
//! The work is a fixed number of iterations of an opaque loop, so a worker that is preempted
//! shows a longer service time, as a real application would. The iteration rate is measured
//! once at start-up against the monotonic clock ([`SpinCalibration::measure`]).

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::Application;
use crate::wire::{psp, RequestView};

/// Default calibration time: 20 rounds of 1 ms, the fastest round wins (a round that was
/// preempted only looks slower, never faster).
pub const DEFAULT_CALIBRATION_ROUNDS: u32 = 20;
/// Length of one calibration round.
pub const CALIBRATION_ROUND: Duration = Duration::from_millis(1);

/// Cap on the service time one request may ask for, by default: 10 ms, 15× the longest
/// service time of the paper's workloads (RocksDB SCAN, 635 µs, reference §6.3). Keeps a
/// forged `run_ns` (up to 4.3 s) from stalling a worker.
pub const DEFAULT_MAX_RUN_NS: u32 = 10_000_000;

/// Iterations per round used to estimate the rate before timing the real rounds.
const PROBE_ITERATIONS: u64 = 10_000;

/// Runs `iterations` rounds of the busy-work loop; the optimiser cannot remove or shorten it.
#[inline(never)]
pub fn spin_iterations(iterations: u64) {
    let mut i = 0u64;
    while i < black_box(iterations) {
        i = black_box(i + 1);
    }
}

/// How many busy-work iterations make one nanosecond on this machine.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SpinCalibration {
    iterations_per_ns: f64,
}

impl SpinCalibration {
    /// A known rate (tests, or a rate measured elsewhere). Non-finite or non-positive rates
    /// become the smallest positive rate, so nothing downstream divides by zero.
    pub fn from_iterations_per_ns(iterations_per_ns: f64) -> Self {
        let iterations_per_ns = if iterations_per_ns.is_finite() && iterations_per_ns > 0.0 {
            iterations_per_ns
        } else {
            f64::MIN_POSITIVE
        };
        SpinCalibration { iterations_per_ns }
    }

    /// Measures the rate: `rounds` rounds of about [`CALIBRATION_ROUND`] each, keeping the
    /// fastest. Takes about `rounds` ms.
    pub fn measure(rounds: u32) -> Self {
        let probe_start = Instant::now();
        spin_iterations(PROBE_ITERATIONS);
        let probe_ns = probe_start.elapsed().as_nanos().max(1) as f64;
        let round_ns = CALIBRATION_ROUND.as_nanos() as f64;
        let iterations = ((PROBE_ITERATIONS as f64) * round_ns / probe_ns).max(1.0) as u64;
        let mut best = 0.0f64;
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            spin_iterations(iterations);
            let elapsed_ns = start.elapsed().as_nanos().max(1) as f64;
            best = best.max(iterations as f64 / elapsed_ns);
        }
        Self::from_iterations_per_ns(best)
    }

    /// The measured rate.
    pub fn iterations_per_ns(&self) -> f64 {
        self.iterations_per_ns
    }

    /// Iterations that take `ns` nanoseconds.
    #[inline]
    pub fn iterations_for(&self, ns: u64) -> u64 {
        // Float → int casts saturate; the product is finite and non-negative.
        (ns as f64 * self.iterations_per_ns) as u64
    }

    /// Busy-waits about `ns` nanoseconds.
    #[inline]
    pub fn spin_ns(&self, ns: u64) {
        spin_iterations(self.iterations_for(ns));
    }
}

/// The `spin` application: spins `min(run_ns, max_run_ns)`, answers the request's first 12 B
/// unchanged (`req_id`, `req_type`, size word).
#[derive(Clone, Debug)]
pub struct SpinApp {
    calibration: SpinCalibration,
    max_run_ns: u32,
}

impl SpinApp {
    /// A spin app with this calibration and cap.
    pub fn new(calibration: SpinCalibration, max_run_ns: u32) -> Self {
        SpinApp {
            calibration,
            max_run_ns,
        }
    }

    /// The calibration in use.
    pub fn calibration(&self) -> SpinCalibration {
        self.calibration
    }

    /// The cap on `run_ns`.
    pub fn max_run_ns(&self) -> u32 {
        self.max_run_ns
    }
}

impl Application for SpinApp {
    fn name(&self) -> &'static str {
        "spin"
    }

    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize {
        let run_ns = request.run_ns.min(self.max_run_ns);
        self.calibration.spin_ns(u64::from(run_ns));
        psp::RESPONSE_LEN.min(payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_scale_with_the_rate() {
        let calibration = SpinCalibration::from_iterations_per_ns(0.5);
        assert_eq!(calibration.iterations_for(0), 0);
        assert_eq!(calibration.iterations_for(1_000), 500);
        assert_eq!(calibration.iterations_for(2_000), 1_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let calibration = SpinCalibration::from_iterations_per_ns(bad);
            assert!(calibration.iterations_per_ns() > 0.0);
            assert_eq!(calibration.iterations_for(1_000_000), 0);
        }
    }

    /// The calibrated loop is not wildly short: spinning 4 ms takes at least 2 ms. (Only a
    /// lower bound: preemption on a shared machine can only make it longer.)
    #[test]
    fn calibrated_spin_is_not_short() {
        let calibration = SpinCalibration::measure(3);
        assert!(calibration.iterations_per_ns() > 0.0);
        let start = Instant::now();
        calibration.spin_ns(4_000_000);
        assert!(
            start.elapsed() >= Duration::from_millis(2),
            "{calibration:?}"
        );
    }

    #[test]
    fn handle_caps_run_ns_and_keeps_12_bytes() {
        // 1 iteration per ns with a 1 µs cap: a forged 4 s request costs 1 µs of work.
        let mut app = SpinApp::new(SpinCalibration::from_iterations_per_ns(1.0), 1_000);
        let request = RequestView {
            req_id: 1,
            req_type: 1,
            req_size: 4,
            run_ns: u32::MAX,
            src: crate::wire::Endpoint::new(
                crate::wire::MacAddr([0; 6]),
                std::net::Ipv4Addr::LOCALHOST,
                1,
            ),
            payload_len: 16,
        };
        let mut payload = [7u8; 16];
        let start = Instant::now();
        assert_eq!(app.handle(&request, &mut payload), psp::RESPONSE_LEN);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(payload, [7u8; 16], "spin leaves the payload as it is");
    }
}
