//! How exact the spin application's service times are, per mode and size, with and without a
//! busy neighbour thread (the sibling hyperthread when the topology has one, else another core).
//!
//! For each mode (`clock`: busy-wait to a TSC deadline; `iterations`: a loop count calibrated
//! at start-up on an idle machine, as the original's MbWorker) and each size of the paper's
//! workloads (1, 10, 100 and 635 µs), the bench thread spins one request after another and
//! times each with `Instant` (an independent clock). It prints the mean, p50 and p99 of the
//! measured service time and the mean error against the size asked for. The `iterations` mode
//! is calibrated before the neighbour starts, as a server calibrates before its threads spin.
//!
//! Target (issue "live fidelity"): `clock` within ±2 % + 50 ns of the size, neighbour or not.
//!
//! Run: `cargo bench -p psp-dataplane --bench spin [-- --cpu N --neighbour-cpu M]`
//! (default: the last allowed CPU and its sibling hyperthread, or the CPU before it).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use psp_dataplane::app::{SpinApp, SpinCalibration, SpinMode};
use psp_dataplane::clock::Clock;
use psp_dataplane::server::{allowed_cpus, pin_current_thread};

/// Service times of the paper's workloads: 1 µs (SHORT), 10 µs, 100 µs (LONG), 635 µs
/// (RocksDB SCAN).
const SIZES_NS: [u32; 4] = [1_000, 10_000, 100_000, 635_000];
/// Spin time per (mode, neighbour, size) cell.
const CELL_BUDGET_NS: u64 = 150_000_000;
/// Bounds on requests per cell.
const MIN_REQUESTS: u64 = 100;
const MAX_REQUESTS: u64 = 20_000;
/// Calibration rounds of the iterations mode (the server's default).
const CALIBRATION_ROUNDS: u32 = 20;

fn arg_value(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

/// The sibling hyperthread of `cpu`, if the topology lists one that we may use.
fn sibling_of(cpu: usize, allowed: &[usize]) -> Option<usize> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
    let text = std::fs::read_to_string(path).ok()?;
    text.trim()
        .split([',', '-'])
        .filter_map(|s| s.parse::<usize>().ok())
        .find(|&c| c != cpu && allowed.contains(&c))
}

/// A thread that spins on integer work until `stop`, pinned to `cpu`.
fn neighbour(cpu: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = pin_current_thread(cpu);
        let mut x = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..1000 {
                x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        black_box(x);
    })
}

struct Cell {
    mean_ns: f64,
    p50_ns: f64,
    p99_ns: f64,
    requests: usize,
}

fn measure(app: &SpinApp, size_ns: u32) -> Cell {
    let requests = (CELL_BUDGET_NS / u64::from(size_ns)).clamp(MIN_REQUESTS, MAX_REQUESTS);
    let mut took: Vec<u64> = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let start = Instant::now();
        app.spin(black_box(size_ns));
        took.push(start.elapsed().as_nanos() as u64);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize] as f64;
    Cell {
        mean_ns: took.iter().sum::<u64>() as f64 / took.len() as f64,
        p50_ns: at(0.50),
        p99_ns: at(0.99),
        requests: took.len(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let allowed = allowed_cpus();
    let cpu = arg_value(&args, "--cpu").unwrap_or_else(|| *allowed.last().unwrap_or(&0));
    let neighbour_cpu = arg_value(&args, "--neighbour-cpu")
        .or_else(|| sibling_of(cpu, &allowed))
        .or_else(|| allowed.iter().rev().copied().find(|&c| c != cpu))
        .unwrap_or(cpu);
    let relation = if sibling_of(cpu, &allowed) == Some(neighbour_cpu) {
        "sibling hyperthread"
    } else {
        "other core"
    };
    let _ = pin_current_thread(cpu);
    let calibration = SpinCalibration::measure(CALIBRATION_ROUNDS);
    let apps = [
        (
            SpinMode::Clock,
            SpinApp::with_clock(Clock::start(), u32::MAX),
        ),
        (SpinMode::Iterations, SpinApp::new(calibration, u32::MAX)),
    ];
    println!(
        "spin accuracy: bench thread on cpu {cpu}, neighbour on cpu {neighbour_cpu} ({relation}); \
         iterations calibrated idle at {:.3} iterations/ns",
        calibration.iterations_per_ns()
    );
    println!(
        "{:<11} {:<10} {:>8} {:>9} {:>10} {:>10} {:>10} {:>9}",
        "mode", "neighbour", "size_us", "requests", "mean_us", "p50_us", "p99_us", "error_%"
    );
    for with_neighbour in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = with_neighbour.then(|| neighbour(neighbour_cpu, Arc::clone(&stop)));
        if with_neighbour {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (mode, app) in &apps {
            for size_ns in SIZES_NS {
                let cell = measure(app, size_ns);
                println!(
                    "{:<11} {:<10} {:>8.0} {:>9} {:>10.3} {:>10.3} {:>10.3} {:>+9.2}",
                    mode.name(),
                    if with_neighbour { "spinning" } else { "idle" },
                    f64::from(size_ns) / 1e3,
                    cell.requests,
                    cell.mean_ns / 1e3,
                    cell.p50_ns / 1e3,
                    cell.p99_ns / 1e3,
                    100.0 * (cell.mean_ns / f64::from(size_ns) - 1.0)
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}
