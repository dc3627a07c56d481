//! Time per re-plan of DARC's model planner (`plan: model`): building the model from a
//! profile and evaluating every candidate allocation, as `DarcState` does between profiling
//! windows, at 14 workers with 5 request types.
//!
//! Two profiles: TPC-C (5 types in 3 groups: 78 candidates) and a 5-group mix (means 1, 5, 25,
//! 125 and 625 µs, one group each: C(13, 4) = 715 candidates, the worst case for 5 types),
//! each at several loads. Prints, per case, the candidates, the chosen allocation and the
//! time per re-plan as wall time and as the thread's CPU time (from
//! `/proc/thread-self/schedstat`; read that one on a shared machine).
//!
//! Run: `cargo bench -p psp-scheduler --bench planner`. Target: ≤ 10 ms per re-plan.

use std::hint::black_box;
use std::time::Instant;

use psp_scheduler::{Model, TypeIndex, TypeLoad};

/// The paper's 14 application workers.
const WORKERS: usize = 14;
/// DARC's default grouping factor δ and hysteresis.
const DELTA: f64 = 0.2;
const HYSTERESIS: f64 = 0.1;
/// Re-plans timed per case (after as many untimed ones).
const ROUNDS: u32 = 200;

/// TPC-C (docs/design.md §6.3): (mean µs, ratio).
const TPCC: &[(f64, f64)] = &[
    (20.0, 0.44),
    (5.7, 0.44),
    (88.0, 0.04),
    (6.0, 0.04),
    (100.0, 0.04),
];
/// Five types, five groups.
const FIVE_GROUPS: &[(f64, f64)] = &[
    (1.0, 0.5),
    (5.0, 0.2),
    (25.0, 0.15),
    (125.0, 0.1),
    (625.0, 0.05),
];

fn loads(spec: &[(f64, f64)], load: f64) -> Vec<TypeLoad> {
    let mean_ns: f64 = spec.iter().map(|&(m, r)| m * 1e3 * r).sum();
    let rate_per_ns = load * WORKERS as f64 / mean_ns;
    spec.iter()
        .enumerate()
        .map(|(i, &(m, r))| TypeLoad {
            ty: TypeIndex(i as u16),
            mean_ns: m * 1e3,
            scv: 0.0,
            rate_per_ns: rate_per_ns * r,
            queued: 0.0,
        })
        .collect()
}

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    println!(
        "DARC model planner, {WORKERS} workers, time per re-plan (model build + every candidate)"
    );
    println!(
        "{:<12} {:>5} {:>10} {:>14} {:>12} {:>12} {:>12}",
        "profile", "load", "candidates", "choice", "wall_us", "cpu_us", "cpu_ns/cand"
    );
    let mut worst_cpu_us: f64 = 0.0;
    for (name, spec) in [("tpcc", TPCC), ("five-groups", FIVE_GROUPS)] {
        for load in [0.5, 0.8, 0.9, 0.95] {
            let types = loads(spec, load);
            let replan = || {
                let model = Model::new(black_box(&types), WORKERS, DELTA);
                model.choose(None, HYSTERESIS).expect("candidates")
            };
            for _ in 0..ROUNDS {
                black_box(replan());
            }
            let (wall, cpu) = (Instant::now(), thread_cpu_ns());
            let mut last = None;
            for _ in 0..ROUNDS {
                last = Some(black_box(replan()));
            }
            let cpu_ns = thread_cpu_ns().saturating_sub(cpu) as f64 / f64::from(ROUNDS);
            let wall_ns = wall.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
            let choice = last.expect("ran");
            worst_cpu_us = worst_cpu_us.max(cpu_ns / 1e3);
            println!(
                "{name:<12} {load:>5.2} {:>10} {:>14} {:>12.1} {:>12.1} {:>12.0}",
                choice.candidates,
                format!("{:?}", choice.best.allocation).replace(' ', ""),
                wall_ns / 1e3,
                cpu_ns / 1e3,
                cpu_ns / choice.candidates as f64
            );
        }
    }
    println!("worst CPU time per re-plan: {worst_cpu_us:.1} µs (target ≤ 10 000 µs)");
}
