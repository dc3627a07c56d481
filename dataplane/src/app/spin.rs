//! `spin`: emulates a request's service time (`run_ns`) with busy work, like the original's
//! MbWorker (docs/design.md §4.2), without a hard-coded clock rate. Two modes ([`SpinMode`]):
//!
//! - **`clock`** (the default): busy-wait until `run_ns` have passed on the server's
//!   [`Clock`] (the TSC where invariant). The service time is what the request asked for,
//!   whatever the sibling hyperthread or the all-core frequency does, so a load point offers
//!   the load it says. A worker that is descheduled mid-request still finishes on time (the
//!   wait counts wall time).
//! - **`iterations`**: a fixed number of iterations of an opaque loop, calibrated once at
//!   start-up against the monotonic clock ([`SpinCalibration::measure`]), the original's
//!   approach. A preempted worker, a busy sibling hyperthread or a lower all-core clock make
//!   every request longer, as they would a real application (measured 1.5–3.5× on a 16-core VM
//!   with 15 spinning threads).
//!
//! Accuracy per mode, with and without a spinning neighbour: `cargo bench -p psp-dataplane
//! --bench spin`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Application, Outcome, Resume, PREEMPT_CHECK_NS};
use crate::clock::Clock;
use crate::wire::{psp, RequestView};

/// How the spin application makes a request take `run_ns`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SpinMode {
    /// Busy-wait to a deadline on the server's clock (exact service times).
    #[default]
    Clock,
    /// A calibrated number of loop iterations (the original's MbWorker).
    Iterations,
}

impl SpinMode {
    /// Every accepted name (`psp.spin.mode`).
    pub const NAMES: [&'static str; 2] = ["clock", "iterations"];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            SpinMode::Clock => "clock",
            SpinMode::Iterations => "iterations",
        }
    }

    /// The mode called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "clock" => Some(SpinMode::Clock),
            "iterations" => Some(SpinMode::Iterations),
            _ => None,
        }
    }
}

/// Default calibration time: 20 rounds of 1 ms, the fastest round wins (a round that was
/// preempted only looks slower, never faster).
pub const DEFAULT_CALIBRATION_ROUNDS: u32 = 20;
/// Length of one calibration round.
pub const CALIBRATION_ROUND: Duration = Duration::from_millis(1);

/// Cap on the service time one request may ask for, by default: 10 ms, 15× the longest
/// service time of the paper's workloads (RocksDB SCAN, 635 µs, docs/design.md §6.3). Keeps a
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

/// What makes the spin application's time pass.
#[derive(Clone, Debug)]
enum SpinWork {
    Clock(Clock),
    Iterations(SpinCalibration),
}

/// The `spin` application: spins `min(run_ns, max_run_ns)`, answers the request's first 12 B
/// unchanged (`req_id`, `req_type`, size word).
#[derive(Clone, Debug)]
pub struct SpinApp {
    work: SpinWork,
    max_run_ns: u32,
}

impl SpinApp {
    /// A spin app in `iterations` mode with this calibration and cap.
    pub fn new(calibration: SpinCalibration, max_run_ns: u32) -> Self {
        SpinApp {
            work: SpinWork::Iterations(calibration),
            max_run_ns,
        }
    }

    /// A spin app in `clock` mode: each request busy-waits `run_ns` on `clock`.
    pub fn with_clock(clock: Clock, max_run_ns: u32) -> Self {
        SpinApp {
            work: SpinWork::Clock(clock),
            max_run_ns,
        }
    }

    /// The mode.
    pub fn mode(&self) -> SpinMode {
        match self.work {
            SpinWork::Clock(_) => SpinMode::Clock,
            SpinWork::Iterations(_) => SpinMode::Iterations,
        }
    }

    /// The calibration in use (`iterations` mode only).
    pub fn calibration(&self) -> Option<SpinCalibration> {
        match &self.work {
            SpinWork::Clock(_) => None,
            SpinWork::Iterations(calibration) => Some(*calibration),
        }
    }

    /// The cap on `run_ns`.
    pub fn max_run_ns(&self) -> u32 {
        self.max_run_ns
    }

    /// Spins `run_ns` (capped) the way this app's mode does, to the end.
    #[inline]
    pub fn spin(&self, run_ns: u32) {
        /// A preempt flag nobody sets.
        static NEVER_PREEMPTED: AtomicBool = AtomicBool::new(false);
        self.spin_preemptible(u64::from(run_ns.min(self.max_run_ns)), &NEVER_PREEMPTED);
    }

    /// Spins `work_ns` unless `preempt` is set first (read at every clock reading in `clock`
    /// mode, every [`PREEMPT_CHECK_NS`] of iterations in `iterations` mode). Returns the work
    /// left when it stopped (0: all done).
    #[inline]
    pub fn spin_preemptible(&self, work_ns: u64, preempt: &AtomicBool) -> u64 {
        match &self.work {
            SpinWork::Clock(clock) => {
                let deadline_ns = clock.now_ns().saturating_add(work_ns);
                if clock.spin_until_ns(deadline_ns, preempt) >= deadline_ns {
                    return 0;
                }
                // Preempted. The wait for the flag's cache line is work time too: read again.
                deadline_ns.saturating_sub(clock.now_ns()).max(1)
            }
            SpinWork::Iterations(calibration) => {
                let mut left_ns = work_ns;
                while left_ns > 0 {
                    if preempt.load(Ordering::Relaxed) {
                        return left_ns;
                    }
                    let chunk_ns = left_ns.min(PREEMPT_CHECK_NS);
                    calibration.spin_ns(chunk_ns);
                    left_ns -= chunk_ns;
                }
                0
            }
        }
    }
}

impl Application for SpinApp {
    fn name(&self) -> &'static str {
        "spin"
    }

    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize {
        self.spin(request.run_ns);
        psp::RESPONSE_LEN.min(payload.len())
    }

    fn supports_preemption(&self) -> bool {
        true
    }

    #[inline]
    fn handle_preemptible(
        &mut self,
        request: &RequestView,
        payload: &mut [u8],
        preempt: &AtomicBool,
        resume: Option<Resume>,
    ) -> Outcome {
        let work_ns = resume.map_or(u64::from(request.run_ns.min(self.max_run_ns)), |r| {
            r.remaining_ns
        });
        match self.spin_preemptible(work_ns, preempt) {
            0 => Outcome::Done(psp::RESPONSE_LEN.min(payload.len())),
            remaining_ns => Outcome::Preempted(Resume {
                remaining_ns,
                progress: 0,
            }),
        }
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

    /// Clock mode takes what was asked: at least `run_ns`, and (on an idle thread) not
    /// wildly more — only a lower bound is strict, since the test thread may be descheduled.
    #[test]
    fn clock_mode_spins_at_least_run_ns() {
        let app = SpinApp::with_clock(Clock::start(), DEFAULT_MAX_RUN_NS);
        assert_eq!(app.mode(), SpinMode::Clock);
        assert_eq!(app.calibration(), None);
        for run_ns in [1_000u32, 100_000, 2_000_000] {
            let start = Instant::now();
            app.spin(run_ns);
            let took = start.elapsed().as_nanos() as u64;
            // 1 % for the TSC calibration, 1 µs for Instant's own reads.
            assert!(
                took + 1_000 >= u64::from(run_ns) * 99 / 100,
                "{run_ns} ns took {took}"
            );
        }
    }

    /// A set flag stops the spin at once with the work left; a clear one runs it all; a
    /// preempted request resumes with what was left.
    #[test]
    fn preemptible_spin_stops_and_resumes() {
        let request = crate::app::tests::request(1, 1, 200_000);
        for mut app in [
            SpinApp::with_clock(Clock::start(), DEFAULT_MAX_RUN_NS),
            SpinApp::new(
                SpinCalibration::from_iterations_per_ns(1.0),
                DEFAULT_MAX_RUN_NS,
            ),
        ] {
            assert!(app.supports_preemption());
            let mut payload = [0u8; 16];
            let set = AtomicBool::new(true);
            let Outcome::Preempted(resume) =
                app.handle_preemptible(&request, &mut payload, &set, None)
            else {
                panic!("{:?} ignored the flag", app.mode());
            };
            assert!(resume.remaining_ns > 190_000, "{resume:?}");
            let clear = AtomicBool::new(false);
            let half = Resume {
                remaining_ns: 1_000,
                progress: 0,
            };
            assert_eq!(
                app.handle_preemptible(&request, &mut payload, &clear, Some(half)),
                Outcome::Done(psp::RESPONSE_LEN)
            );
        }
    }

    #[test]
    fn mode_names_round_trip() {
        for name in SpinMode::NAMES {
            assert_eq!(SpinMode::from_name(name).map(SpinMode::name), Some(name));
        }
        assert_eq!(SpinMode::from_name(" CLOCK "), Some(SpinMode::Clock));
        assert_eq!(SpinMode::from_name("tsc"), None);
        assert_eq!(SpinMode::default(), SpinMode::Clock);
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
