//! Bench binary: simulated requests per second per core, for each policy, on DISP2 at load 0.8
//! with 14 workers and 1 000 000 requests per run. Prints the wall-clock rate and the rate per
//! CPU-second of the simulating thread (from `/proc/thread-self/schedstat`, so other processes
//! on a shared machine do not distort it; wall-clock only where that file is missing).
//!
//! `cargo bench -p psp-sim --bench throughput` (add `-- --requests N` to change the size).

use std::time::Instant;

use psp_scheduler::{Policy, Registry};
use psp_sim::{run, RunConfig};
use psp_workload::Workload;

/// Requests per run unless `--requests N` is given.
const DEFAULT_REQUESTS: u64 = 1_000_000;
const LOAD: f64 = 0.8;

/// On-CPU time of the calling thread (ns), if the kernel exposes it.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS);
    let path = format!(
        "{}/../configs/workloads/DISP2.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let workload = match Workload::from_path(&path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let config = RunConfig {
        requests,
        ..RunConfig::default()
    };
    let policies: Vec<Policy> = Registry::builtin()
        .entries()
        .iter()
        .map(|entry| (entry.default)())
        .collect();
    println!("DISP2, 14 workers, load {LOAD}, {requests} requests per run");
    println!(
        "{:<8} {:>10} {:>16} {:>20}",
        "policy", "wall_s", "M req/s (wall)", "M req/s per CPU-s"
    );
    for policy in &policies {
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let result = match run(&workload, policy, LOAD, &config) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", policy.name());
                std::process::exit(1);
            }
        };
        let wall = t0.elapsed().as_secs_f64();
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => wall,
        };
        let n = result.arrivals as f64;
        println!(
            "{:<8} {:>10.3} {:>16.2} {:>20.2}",
            policy.name(),
            wall,
            n / wall / 1e6,
            n / cpu / 1e6
        );
    }
}
