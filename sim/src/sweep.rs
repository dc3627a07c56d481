//! Load sweeps: every policy × every load point, run in parallel, and what to make of them
//! (capacity at an SLO, CSV rows, the p99.9-slowdown plot).
//!
//! - Points run on `threads` scoped threads pulling jobs from a shared counter; each job is an
//!   independent [`engine::run`], so the result does not depend on the thread count.
//! - Every policy sees the same random request sequence at a given load (the seed depends on
//!   the load index only): policies are compared on identical arrivals.
//! - A point **passes** the SLO when its overall p99.9 slowdown is ≤ the SLO, measured drops are
//!   ≤ [`MAX_DROP_FRACTION`], and achieved ≥ [`MIN_ACHIEVED_RATIO`] × offered
//!   (docs/design.md §5.6 marks such points as violating). The **capacity** of a policy is the highest passing load.
//!
//! Tested by `tests/engine.rs` (sweep determinism, capacity) and the CLI smoke test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use psp_scheduler::Policy;
use psp_workload::report::{LinePlot, Series, Table};
use psp_workload::{Percentiles, RunStats, Workload};

use crate::engine::{self, RunConfig, RunResult, SimError};

/// Most drops (share of measured arrivals) a passing point may have: 0.1 %.
pub const MAX_DROP_FRACTION: f64 = 0.001;

/// Least achieved/offered ratio of a passing point (the notebook's `remove_drops`, §5.6).
pub const MIN_ACHIEVED_RATIO: f64 = 0.999;

/// Odd multiplier spreading load indices over seeds (the 64-bit golden ratio).
const SEED_STRIDE: u64 = 0x9E37_79B9_7F4A_7C15;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Policies, in report order.
    pub policies: Vec<Policy>,
    /// Offered loads, in report order.
    pub loads: Vec<f64>,
    /// Per-run parameters (its seed is the sweep's base seed).
    pub run: RunConfig,
    /// Worker threads (≥ 1).
    pub threads: usize,
}

/// The seed of the `load_index`-th load point.
pub fn point_seed(base: u64, load_index: usize) -> u64 {
    base.wrapping_add((load_index as u64).wrapping_mul(SEED_STRIDE))
}

/// Runs every policy at every load. Results are ordered policy-major, load-minor.
/// `on_point_done` is called after each point (for a progress bar).
pub fn sweep(
    workload: &Workload,
    spec: &SweepSpec,
    on_point_done: &(dyn Fn() + Sync),
) -> Result<Vec<RunResult>, SimError> {
    let jobs: Vec<(usize, usize)> = (0..spec.policies.len())
        .flat_map(|p| (0..spec.loads.len()).map(move |l| (p, l)))
        .collect();
    let next_job = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunResult, SimError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let threads = spec.threads.clamp(1, jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let j = next_job.fetch_add(1, Ordering::Relaxed);
                let Some(&(p, l)) = jobs.get(j) else {
                    break;
                };
                let mut run = spec.run.clone();
                run.seed = point_seed(spec.run.seed, l);
                let result = engine::run(workload, &spec.policies[p], spec.loads[l], &run);
                if let Ok(mut slots) = results.lock() {
                    slots[j] = Some(result);
                }
                on_point_done();
            });
        }
    });
    let slots = results
        .into_inner()
        .map_err(|_| SimError::Contract("a sweep thread panicked".into()))?;
    slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(SimError::Contract("a sweep point did not run".into()))))
        .collect()
}

/// Whether a point meets the SLO (see the module docs).
pub fn passes_slo(result: &RunResult, slo: f64) -> bool {
    let p999 = result.stats.slowdown().p999;
    p999 <= slo
        && result.drop_fraction() <= MAX_DROP_FRACTION
        && result.achieved_rps >= MIN_ACHIEVED_RATIO * result.offered_rps
}

/// The highest load among `results` of `policy` that passes the SLO.
pub fn capacity(results: &[RunResult], policy: &str, slo: f64) -> Option<f64> {
    results
        .iter()
        .filter(|r| r.policy == policy && passes_slo(r, slo))
        .map(|r| r.load)
        .max_by(f64::total_cmp)
}

/// Column names of [`results_table`].
pub const CSV_HEADER: [&str; 23] = [
    "policy",
    "load",
    "phase",
    "target_rps",
    "offered_rps",
    "achieved_rps",
    "type",
    "wire_id",
    "completed",
    "dropped",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "p999_ns",
    "p9999_ns",
    "mean_ns",
    "p50_slowdown",
    "p99_slowdown",
    "p999_slowdown",
    "p9999_slowdown",
    "passes_slo",
    "preemptions",
    "plan_updates",
];

fn num(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else if v.is_infinite() {
        "inf".into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// One row per policy × load × type, plus an `ALL` row per point (`phase` = `all`); for a
/// multi-phase workload, the same rows again for each phase (`phase` = its index).
pub fn results_table(results: &[RunResult], slo: f64) -> Table {
    let mut table = Table::new(CSV_HEADER);
    for r in results {
        // The whole run, then each phase when there are several.
        let mut parts: Vec<(String, &RunStats)> = vec![("all".to_string(), &r.stats)];
        if r.phase_stats.len() > 1 {
            parts.extend(
                r.phase_stats
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i.to_string(), s)),
            );
        }
        for (phase, stats) in parts {
            let mut row = |name: &str,
                           wire: String,
                           done: u64,
                           drops: u64,
                           lat: Percentiles,
                           sd: Percentiles| {
                table.push(vec![
                    r.policy.to_string(),
                    format!("{:.3}", r.load),
                    phase.clone(),
                    num(r.target_rps.round()),
                    num(r.offered_rps.round()),
                    num(r.achieved_rps.round()),
                    name.to_string(),
                    wire,
                    done.to_string(),
                    drops.to_string(),
                    num(lat.p50),
                    num(lat.p90),
                    num(lat.p99),
                    num(lat.p999),
                    num(lat.p9999),
                    num(lat.mean.round()),
                    num(sd.p50),
                    num(sd.p99),
                    num(sd.p999),
                    num(sd.p9999),
                    passes_slo(r, slo).to_string(),
                    r.preemptions.to_string(),
                    r.plan_updates.to_string(),
                ]);
            };
            for t in stats.types() {
                row(
                    &t.name,
                    t.wire_id.to_string(),
                    t.completed(),
                    t.dropped,
                    t.latency(),
                    t.slowdown(),
                );
            }
            row(
                "ALL",
                String::new(),
                stats.completed(),
                stats.dropped(),
                stats.latency(),
                stats.slowdown(),
            );
        }
    }
    table
}

/// The paper's figure: overall p99.9 slowdown vs offered load, one line per policy, log y,
/// with the SLO as a reference line.
pub fn slowdown_plot(
    workload: &Workload,
    results: &[RunResult],
    policies: &[Policy],
    slo: f64,
) -> LinePlot {
    let mut plot = LinePlot::new(
        &format!("{}: p99.9 slowdown vs offered load", workload.name),
        "offered load (1.0 = workers / mean service time)",
        "p99.9 slowdown (all requests)",
        true,
    );
    plot.reference_line = Some((slo, format!("SLO {slo}")));
    for p in policies {
        plot.series.push(Series {
            name: p.name().to_string(),
            points: results
                .iter()
                .filter(|r| r.policy == p.name())
                .map(|r| {
                    let y = r.stats.slowdown().p999;
                    // Points that shed load are off the chart (the notebook's 1e9, §5.6).
                    let violating = r.drop_fraction() > MAX_DROP_FRACTION
                        || r.achieved_rps < MIN_ACHIEVED_RATIO * r.offered_rps;
                    (r.load, if violating { f64::INFINITY } else { y })
                })
                .collect(),
        });
    }
    plot
}
