//! DARC's profiling: per-type service times over a window of completions, turned into means,
//! arrival ratios and a decision whether demand moved enough to re-plan (the original's
//! `update_darc()`, docs/design.md §1.6).
//!
//! Differences from the original, each a fix: means are exact integer `Σ service / count`
//! rather than a truncating running mean; a type with no sample in a window gets
//! [`INACTIVE_MEAN_NS`] and ratio 0, so it sorts last and demands nothing.
//!
//! Tested through the scheduler's DARC tests (bootstrap switch, hysteresis, update trigger,
//! adaptation when service times swap mid-run).

use super::plan::{demand_workers, plan_reservations, TypeProfile, INACTIVE_MEAN_NS};
use super::DarcParams;
use crate::{Nanos, ReservationPlan, TypeIndex};

/// What DARC measured in the current window and concluded from the last one.
#[derive(Debug)]
pub(crate) struct Profile {
    /// Σ service (ns) and completions per type since the last evaluation.
    service_sum_ns: Box<[u64]>,
    /// Σ service² (ns², as f64: only the model planner's variability estimate reads it).
    service_sq_sum: Box<[f64]>,
    service_count: Box<[u64]>,
    /// Completions in the current window (all types, UNKNOWN included).
    pub(crate) window_count: u64,
    /// Per type: queueing delay of the second-oldest request that triggers an update (ns).
    pub(crate) max_delay_ns: Box<[Nanos]>,
    prev_demand: Box<[f64]>,
    prev_active: usize,
    /// Last evaluated (or configured) means and ratios, per type.
    pub(crate) means_ns: Box<[f64]>,
    pub(crate) ratios: Box<[f64]>,
    /// Last evaluated squared coefficient of variation of service time, per type.
    pub(crate) scv: Box<[f64]>,
}

impl Profile {
    pub(crate) fn new(n_types: usize) -> Self {
        Self {
            service_sum_ns: vec![0; n_types].into_boxed_slice(),
            service_sq_sum: vec![0.0; n_types].into_boxed_slice(),
            service_count: vec![0; n_types].into_boxed_slice(),
            window_count: 0,
            max_delay_ns: vec![0; n_types].into_boxed_slice(),
            prev_demand: vec![0.0; n_types].into_boxed_slice(),
            prev_active: 0,
            means_ns: vec![0.0; n_types].into_boxed_slice(),
            ratios: vec![0.0; n_types].into_boxed_slice(),
            scv: vec![0.0; n_types].into_boxed_slice(),
        }
    }

    /// One completion: `slot` is the type (`None`: UNKNOWN, which counts in the window only).
    #[inline]
    pub(crate) fn record(&mut self, slot: Option<usize>, service_ns: Nanos) {
        self.window_count += 1;
        if let Some(t) = slot.filter(|&t| t < self.service_count.len()) {
            self.service_sum_ns[t] = self.service_sum_ns[t].saturating_add(service_ns);
            let s = service_ns as f64;
            self.service_sq_sum[t] += s * s;
            self.service_count[t] += 1;
        }
    }

    /// Part of a request's service (`darc-ts`: a slice that was preempted): added to its
    /// type's service sum, not counted as a completion, so the type's mean is Σ service over
    /// completed requests. (The squared sum, the model planner's variability input, sees
    /// only whole last slices: `darc-ts` plans with the formula.)
    #[inline]
    pub(crate) fn record_slice(&mut self, slot: Option<usize>, ran_ns: Nanos) {
        if let Some(t) = slot.filter(|&t| t < self.service_count.len()) {
            self.service_sum_ns[t] = self.service_sum_ns[t].saturating_add(ran_ns);
        }
    }

    /// `update_darc()`: turns the window into means and ratios (and starts a new window),
    /// decides whether demand changed enough, and if so (or if `force`) returns the new plan.
    pub(crate) fn evaluate(
        &mut self,
        params: &DarcParams,
        workers: usize,
        force: bool,
    ) -> Option<ReservationPlan> {
        let changed = self.close_and_compare(params, workers);
        (changed || force).then(|| self.formula_plan(params, workers))
    }

    /// Closes the window (means, ratios, variability) and tells whether demand moved by more
    /// than the hysteresis (updating the reference demands and update triggers).
    pub(crate) fn close_and_compare(&mut self, params: &DarcParams, workers: usize) -> bool {
        let (window_mean, active) = self.close_window(params.profile_overhead_ns);
        self.demand_changed(params.hysteresis, window_mean, active, workers)
    }

    /// The last evaluated means and ratios as planning input.
    pub(crate) fn type_profiles(&self) -> Vec<TypeProfile> {
        (0..self.means_ns.len())
            .map(|t| TypeProfile {
                ty: TypeIndex(t as u16),
                mean_ns: self.means_ns[t],
                ratio: self.ratios[t],
            })
            .collect()
    }

    /// DARC's formula plan of the last evaluated profile.
    pub(crate) fn formula_plan(&self, params: &DarcParams, workers: usize) -> ReservationPlan {
        plan_reservations(&self.type_profiles(), workers, params)
    }

    /// Means and ratios of the window that ends; returns the window mean and the number of
    /// types that had samples.
    fn close_window(&mut self, overhead_ns: Nanos) -> (f64, usize) {
        let window_count = self.window_count;
        let mut window_mean = 0.0;
        let mut active = 0usize;
        for t in 0..self.means_ns.len() {
            let count = self.service_count[t];
            match self.service_sum_ns[t].checked_div(count) {
                None => {
                    self.means_ns[t] = INACTIVE_MEAN_NS;
                    self.scv[t] = 0.0;
                    self.ratios[t] = 0.0;
                }
                Some(mean) => {
                    active += 1;
                    let exact = self.service_sum_ns[t] as f64 / count as f64;
                    let second = self.service_sq_sum[t] / count as f64;
                    self.scv[t] = if exact > 0.0 {
                        (second / (exact * exact) - 1.0).max(0.0)
                    } else {
                        0.0
                    };
                    let mean = mean.saturating_sub(overhead_ns);
                    self.means_ns[t] = mean as f64;
                    self.ratios[t] = if window_count > 0 {
                        count as f64 / window_count as f64
                    } else {
                        0.0
                    };
                    window_mean += self.means_ns[t] * self.ratios[t];
                }
            }
            self.service_sum_ns[t] = 0;
            self.service_sq_sum[t] = 0.0;
            self.service_count[t] = 0;
        }
        self.window_count = 0;
        (window_mean, active)
    }

    /// Whether a type's demand moved by more than the hysteresis (or the set of active types
    /// changed); updates the reference demands and update triggers of the types that moved.
    fn demand_changed(
        &mut self,
        hysteresis: f64,
        window_mean: f64,
        active: usize,
        workers: usize,
    ) -> bool {
        let mut changed = false;
        for t in 0..self.means_ns.len() {
            let demand = demand_workers(self.means_ns[t] * self.ratios[t], window_mean, workers);
            let prev = self.prev_demand[t];
            if (demand - prev).abs() > hysteresis * prev
                || (self.ratios[t] > 0.0 && active != self.prev_active)
            {
                changed = true;
                // Means are integral ns (or the inactive sentinel): the cast is exact.
                self.max_delay_ns[t] = self.means_ns[t] as Nanos;
                self.prev_demand[t] = demand;
            }
        }
        self.prev_active = active;
        changed
    }
}
