//! DARC's plan from a workload's configured means and ratios (`psp plan`), and the exhaustive
//! search of per-group worker counts with the simulator (`psp search`).
//!
//! - [`type_profiles`] turns a phase into the scheduler's [`TypeProfile`]s (class index as the
//!   type index), so [`psp_scheduler::plan_reservations`] sees the same types the scheduler
//!   registers.
//! - [`allocations`] enumerates every allocation of all `workers` to `groups` groups with each
//!   group ≥ 1. Allocations that leave workers unreserved are not searched: an unreserved
//!   worker is stealable by every group, the longest group included, so it behaves as one more
//!   worker of the longest group.
//! - [`search`] simulates DARC with each allocation as a fixed plan
//!   (`DarcParams::fixed_allocation`) and DARC's own formula (the plan from configured means,
//!   `dynamic = false`), all on the same arrivals, and ranks them by overall p99.9 slowdown.
//!
//! Tested in `tests/engine.rs` (allocation count, DISP2 search) and by the §1.9 vectors in
//! the CLI tests.

use std::fmt::Write as _;

use psp_scheduler::{
    group_types, plan_reservations, DarcParams, Model, Policy, ReservationPlan, TypeIndex,
    TypeLoad, TypeProfile,
};
use psp_workload::{Phase, ServiceDist, Workload};

use crate::engine::{RunConfig, RunResult, SimError};
use crate::sweep::{passes_slo, sweep, SweepSpec, MAX_DROP_FRACTION, MIN_ACHIEVED_RATIO};

/// Most allocations [`search`] accepts to simulate (C(15,3) = 455 for 16 workers, 4 groups).
pub const MAX_SEARCH_ALLOCATIONS: usize = 5_000;

/// The scheduler's view of a phase's types (index = workload class).
pub fn type_profiles(phase: &Phase) -> Vec<TypeProfile> {
    phase
        .types
        .iter()
        .map(|t| TypeProfile {
            ty: TypeIndex(t.class as u16),
            mean_ns: t.mean_ns,
            ratio: t.ratio,
        })
        .collect()
}

/// Squared coefficient of variation of a service-time distribution of mean `mean_ns`.
pub fn service_scv(dist: &ServiceDist, mean_ns: f64) -> f64 {
    match *dist {
        ServiceDist::Fixed => 0.0,
        ServiceDist::Exponential => 1.0,
        ServiceDist::Lognormal { sigma } => (sigma * sigma).exp() - 1.0,
        ServiceDist::Bimodal {
            low_ns,
            high_ns,
            p_high,
        } => {
            let second = p_high * high_ns * high_ns + (1.0 - p_high) * low_ns * low_ns;
            if mean_ns > 0.0 {
                (second / (mean_ns * mean_ns) - 1.0).max(0.0)
            } else {
                0.0
            }
        }
    }
}

/// What DARC's model planner would profile from `phase` offered at `load` of `workers`
/// workers: each type's mean, service variability and arrival rate.
pub fn model_loads(phase: &Phase, load: f64, workers: usize) -> Vec<TypeLoad> {
    let rate_per_ns = phase.rate_for_load(load, workers) / 1e9;
    phase
        .types
        .iter()
        .map(|t| TypeLoad {
            ty: TypeIndex(t.class as u16),
            mean_ns: t.mean_ns,
            scv: service_scv(&t.service, t.mean_ns),
            rate_per_ns: rate_per_ns * t.ratio,
            queued: 0.0,
        })
        .collect()
}

/// The model of `phase` at `load` (DARC's grouping with `params.delta`).
pub fn phase_model(phase: &Phase, load: f64, workers: usize, params: &DarcParams) -> Model {
    Model::new(&model_loads(phase, load, workers), workers, params.delta)
}

/// DARC's plan for each phase of `workload` from its configured means and ratios.
pub fn plans(workload: &Workload, workers: usize, params: &DarcParams) -> Vec<ReservationPlan> {
    workload
        .phases
        .iter()
        .map(|p| plan_reservations(&type_profiles(p), workers, params))
        .collect()
}

fn worker_list(ws: &[psp_scheduler::WorkerId]) -> String {
    if ws.is_empty() {
        return "none".into();
    }
    let ids: Vec<usize> = ws.iter().map(|w| w.index()).collect();
    // Compress consecutive runs: [0,1,2,5] → "0-2,5".
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            let _ = write!(out, "{}-{}", ids[i], ids[j]);
        } else {
            let _ = write!(out, "{}", ids[i]);
        }
        i = j + 1;
    }
    out
}

/// A human-readable description of DARC's plan for every phase (what `psp plan` prints).
pub fn describe_plans(workload: &Workload, workers: usize, params: &DarcParams) -> String {
    let mut out = String::new();
    for (i, (phase, plan)) in workload
        .phases
        .iter()
        .zip(plans(workload, workers, params))
        .enumerate()
    {
        let mean = phase.mean_service_ns();
        let _ = writeln!(
            out,
            "{} phase {i}: window mean {:.4} µs, peak {:.0} rps ({workers} workers / mean)",
            workload.name,
            mean / 1e3,
            phase.rate_for_load(1.0, workers)
        );
        for (g, group) in plan.groups.iter().enumerate() {
            let names: Vec<String> = group
                .members
                .iter()
                .filter_map(|ty| ty.index())
                .map(|c| {
                    let mean = phase
                        .types
                        .iter()
                        .find(|t| t.class == c)
                        .map_or(0.0, |t| t.mean_ns);
                    format!("{} ({:.4} µs)", workload.classes[c].name, mean / 1e3)
                })
                .collect();
            let _ = writeln!(
                out,
                "  group {g}: {}: demand {:.3} workers → reserved [{}]{} stealable [{}]",
                names.join(", "),
                group.demand_workers,
                worker_list(&group.reserved),
                if group.uses_spillway {
                    " (+spillway)"
                } else {
                    ""
                },
                worker_list(&group.stealable),
            );
        }
        let _ = writeln!(
            out,
            "  spillway: {}",
            plan.spillway
                .map_or("none".into(), |w| w.index().to_string())
        );
    }
    out
}

/// The model planner's choice for each phase of `workload` at `load`, with its predicted p99.9
/// slowdown per type beside DARC's formula plan's, and the `top` best candidates (what
/// `psp plan --model` prints).
pub fn describe_model_plans(
    workload: &Workload,
    workers: usize,
    params: &DarcParams,
    load: f64,
    top: usize,
) -> String {
    let mut out = String::new();
    for (i, (phase, formula)) in workload
        .phases
        .iter()
        .zip(plans(workload, workers, params))
        .enumerate()
    {
        let model = phase_model(phase, load, workers, params);
        let formula_counts: Vec<usize> = formula.groups.iter().map(|g| g.reserved.len()).collect();
        let _ = writeln!(
            out,
            "{} phase {i}: model planner at load {load:.2} ({} candidate allocations)",
            workload.name,
            psp_scheduler::policy::darc::model::candidate_count(model.groups(), workers)
        );
        let Some(choice) = model.choose(None, params.hysteresis) else {
            let _ = writeln!(
                out,
                "  no candidate (no types, or more groups than workers)"
            );
            continue;
        };
        let name = |ty: TypeIndex| {
            ty.index()
                .and_then(|c| workload.classes.get(c))
                .map_or_else(|| format!("{ty:?}"), |c| c.name.clone())
        };
        let mut rows: Vec<(String, Vec<usize>)> = vec![("model".into(), choice.best.allocation)];
        if formula_counts.iter().sum::<usize>() <= workers {
            rows.push(("darc".into(), formula_counts));
        }
        for (label, allocation) in rows {
            let p = model.predict(&allocation);
            let tails: Vec<String> = model
                .type_tails(&allocation)
                .iter()
                .map(|t| format!("{} {}", name(t.ty), fmt_predicted(t.p999_slowdown)))
                .collect();
            let _ = writeln!(
                out,
                "  {label:<6} {allocation:?}: predicted p99.9 slowdown {} (per type: {})",
                fmt_predicted(p.overall_p999),
                tails.join(", ")
            );
        }
        let mut ranked = all_predictions(&model, workers);
        ranked.truncate(top);
        let _ = writeln!(out, "  best candidates by predicted p99.9 slowdown:");
        for p in ranked {
            let _ = writeln!(
                out,
                "    {:?} {}",
                p.allocation,
                fmt_predicted(p.overall_p999)
            );
        }
    }
    out
}

/// Every allocation's prediction, best first.
pub fn all_predictions(model: &Model, workers: usize) -> Vec<psp_scheduler::Prediction> {
    let mut ranked: Vec<psp_scheduler::Prediction> = allocations(model.groups(), workers)
        .iter()
        .map(|a| model.predict(a))
        .collect();
    ranked.sort_by(|a, b| {
        a.overall_p999
            .total_cmp(&b.overall_p999)
            .then(a.mean_slowdown.total_cmp(&b.mean_slowdown))
    });
    ranked
}

fn fmt_predicted(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "inf".into()
    }
}

/// Every allocation of exactly `workers` workers to `groups` groups, each group ≥ 1 worker,
/// in lexicographic order (`C(workers − 1, groups − 1)` of them).
pub fn allocations(groups: usize, workers: usize) -> Vec<Vec<usize>> {
    fn rec(prefix: &mut Vec<usize>, groups: usize, left: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() + 1 == groups {
            if left >= 1 {
                prefix.push(left);
                out.push(prefix.clone());
                prefix.pop();
            }
            return;
        }
        let still_needed = groups - prefix.len() - 1;
        if left < still_needed + 1 {
            return;
        }
        for k in 1..=(left - still_needed) {
            prefix.push(k);
            rec(prefix, groups, left - k, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    if groups > 0 {
        rec(&mut Vec::with_capacity(groups), groups, workers, &mut out);
    }
    out
}

/// One simulated candidate of the search.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Workers per group (shortest group first); `None` for DARC's own formula.
    pub allocation: Option<Vec<usize>>,
    /// The run.
    pub result: RunResult,
}

impl Candidate {
    /// The ranking key: overall p99.9 slowdown, +∞ when the point sheds load.
    pub fn score(&self) -> f64 {
        let r = &self.result;
        if r.drop_fraction() > MAX_DROP_FRACTION
            || r.achieved_rps < MIN_ACHIEVED_RATIO * r.offered_rps
        {
            f64::INFINITY
        } else {
            r.stats.slowdown().p999
        }
    }
}

/// The outcome of [`search`].
#[derive(Clone, Debug)]
pub struct SearchReport {
    /// DARC's formula plan (from the first phase's configured means).
    pub formula_plan: ReservationPlan,
    /// DARC with its formula plan.
    pub formula: Candidate,
    /// Every fixed allocation, best (lowest score) first.
    pub ranked: Vec<Candidate>,
    /// The SLO used for pass/fail.
    pub slo: f64,
}

impl SearchReport {
    /// The best fixed allocation.
    pub fn best(&self) -> Option<&Candidate> {
        self.ranked.first()
    }

    /// Whether a candidate meets the SLO.
    pub fn passes(&self, c: &Candidate) -> bool {
        passes_slo(&c.result, self.slo)
    }
}

/// Simulates every fixed allocation and DARC's formula at one load (same arrivals for all).
pub fn search(
    workload: &Workload,
    load: f64,
    slo: f64,
    run: &RunConfig,
    threads: usize,
    params: &DarcParams,
    on_point_done: &(dyn Fn() + Sync),
) -> Result<SearchReport, SimError> {
    let phase = workload.phases.first().ok_or(SimError::Invalid {
        field: "workload",
        value: workload.name.clone(),
        why: "has no phase",
    })?;
    let profiles = type_profiles(phase);
    let groups = group_types(&profiles, params.delta).len();
    let candidates = allocations(groups, run.workers);
    if candidates.len() > MAX_SEARCH_ALLOCATIONS {
        return Err(SimError::Invalid {
            field: "workers",
            value: format!(
                "{} ({groups} groups → {} allocations)",
                run.workers,
                candidates.len()
            ),
            why: "too many allocations to search exhaustively",
        });
    }
    let params = &DarcParams {
        plan: psp_scheduler::PlanMode::Formula,
        ..params.clone()
    };
    let formula_params = DarcParams {
        dynamic: false,
        fixed_allocation: None,
        ..params.clone()
    };
    let mut policies = vec![Policy::Darc(formula_params.clone())];
    policies.extend(candidates.iter().map(|a| {
        Policy::Darc(DarcParams {
            dynamic: false,
            fixed_allocation: Some(a.clone()),
            ..params.clone()
        })
    }));
    let spec = SweepSpec {
        policies,
        loads: vec![load],
        run: run.clone(),
        threads,
    };
    let mut results = sweep(workload, &spec, on_point_done)?.into_iter();
    let formula = Candidate {
        allocation: None,
        result: results
            .next()
            .ok_or_else(|| SimError::Contract("search returned no result".into()))?,
    };
    let mut ranked: Vec<Candidate> = candidates
        .into_iter()
        .zip(results)
        .map(|(a, result)| Candidate {
            allocation: Some(a),
            result,
        })
        .collect();
    ranked.sort_by(|a, b| a.score().total_cmp(&b.score()));
    Ok(SearchReport {
        formula_plan: plan_reservations(&profiles, run.workers, &formula_params),
        formula,
        ranked,
        slo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_all_compositions() {
        // Compositions of n into g positive parts: C(n-1, g-1).
        assert_eq!(allocations(2, 14).len(), 13);
        assert_eq!(allocations(3, 14).len(), 78);
        assert_eq!(allocations(4, 16).len(), 455);
        assert_eq!(allocations(1, 3), vec![vec![3]]);
        assert_eq!(allocations(2, 3), vec![vec![1, 2], vec![2, 1]]);
        assert!(allocations(3, 2).is_empty());
        assert!(allocations(2, 14)
            .iter()
            .all(|a| a.iter().sum::<usize>() == 14));
    }
}
