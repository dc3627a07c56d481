//! `darc`: Perséphone's Dynamic Application-aware Reserved Cores (docs/design.md §1.4–§1.8),
//! with its profiling (`profile`), planning ([`plan`]) and runtime state in this module.
//!
//! ## Behaviour
//! - **Bootstrap** (dynamic mode): every arrival joins one c-FCFS FIFO while completions are
//!   profiled; once more than `samples_needed` requests were dispatched, the first evaluation
//!   always installs a plan and the FIFO's requests move, in order, to their typed queues.
//! - **Reserved**: one FIFO per type slot. Types are visited by ascending mean; a type's head
//!   goes to its group's first idle reserved worker, else to the first idle stealable one
//!   (reserved to longer groups, or unreserved), else the next type is tried. UNKNOWN runs on
//!   the spillway (the last worker) only. Not work conserving.
//! - **Update trigger**: after `samples_needed` completions in the window, an evaluation is due
//!   when a type's second-in-line request waited longer than its mean; it applies a new plan
//!   only if some demand moved by more than the hysteresis.
//! - With [`DarcParams::dynamic`] `= false` the plan comes once from the configured means and
//!   ratios; [`DarcParams::fixed_allocation`] imposes the per-group worker counts.
//! - With [`DarcParams::plan`] `=` [`PlanMode::Model`] (the policy `darc-model`), every
//!   evaluation runs the model planner ([`model`]): the per-group worker counts with the
//!   lowest predicted p99.9 slowdown, from the profiled means, variability and offered rate,
//!   applied unless the plan in force is within the hysteresis. Counted in
//!   `darc_model_replans` / `darc_model_candidates`.
//!
//! ## Differences from the original (each a fix of a hazard, docs/design.md §8)
//! - The bootstrap FIFO is emptied into the typed queues at the switch (the original left it
//!   in its UNKNOWN-slot queue, drained only by the spillway).
//! - The evaluation that ends bootstrap always installs a plan, even if no demand changed (the
//!   original could otherwise keep no reservation and never dispatch a typed request).
//! - Profiled means are exact (see `profile`).
//!
//! ## How it is tested
//! `plan`'s unit tests replay the §1.9 vectors; `scheduler/tests.rs` pins the bootstrap switch,
//! hysteresis, update trigger and adaptation, and its property tests check the reservation
//! rule (a longer group never on a shorter group's reserved worker; UNKNOWN only on the
//! spillway), for both planners; `model`'s tests and `sim/tests/model.rs` check the planner.

pub mod model;
pub mod plan;
pub(crate) mod profile;

use model::{smooth, Model, ModelChoice, TypeLoad};
use plan::{
    count_still_fits, plan_reservations, plan_with_allocation, round_demand, TypeProfile,
};
use profile::Profile;

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, PlanUpdate, ReservationPlan, TypeIndex};

/// The accepted range of [`DarcParams::rounding_cut`]: a fraction at or below the cut rounds
/// down, so a cut of 1 always rounds down and one above 1 would mean the same.
pub const ROUNDING_CUT_RANGE: std::ops::RangeInclusive<f64> = 0.0..=1.0;

/// The accepted range of [`DarcParams::rounding_hysteresis`], in workers: beyond a whole
/// worker a group would keep a count its demand rounds two workers away from.
pub const ROUNDING_HYSTERESIS_RANGE: std::ops::RangeInclusive<f64> = 0.0..=1.0;

/// DARC's tunables. Defaults are the original's values (docs/design.md §1.2, §1.5.7).
#[derive(Clone, Debug, PartialEq)]
pub struct DarcParams {
    /// δ: a type joins a group while `mean - leader.mean < delta * leader.mean` (original 0.2).
    pub delta: f64,
    /// Samples (completions) needed before a bootstrap switch or an update (original 50 000).
    pub samples_needed: u64,
    /// Relative demand change that makes an update apply (original 0.1 = 10 %).
    pub hysteresis: f64,
    /// Fractional core demand above this rounds up, at or below rounds down (original 0.5;
    /// range [`ROUNDING_CUT_RANGE`]).
    pub rounding_cut: f64,
    /// How far (in workers) a group's demand must go past the rounding cut before a re-plan
    /// changes its worker count (range [`ROUNDING_HYSTERESIS_RANGE`]). 0, the original,
    /// re-plans on every crossing of the cut: a demand that hovers near it (service times
    /// inflated by sharing cores) flips the plan back and forth. With `h` > 0 a formula re-plan
    /// whose groups are unchanged keeps the plan in force while every group's demand is within
    /// `h` of the band that rounds to its current count (counted in `darc_plans_kept`).
    pub rounding_hysteresis: f64,
    /// Fixed overhead subtracted from each profiled mean (original 600 cycles ≈ 230 ns at
    /// 2.6 GHz). Default 0: the simulator measures pure service time.
    pub profile_overhead_ns: Nanos,
    /// `true`: profile, bootstrap in c-FCFS, then update dynamically (what every experiment of
    /// the paper does). `false` with configured means and ratios: plan once, from the config
    /// ("oracle" mode), and never update.
    pub dynamic: bool,
    /// A fixed number of workers per type group (shortest group first; groups formed by
    /// `delta` from the configured means), instead of the demand-based counts. Implies a fixed
    /// plan computed at construction (`dynamic` is ignored); each entry ≥ 1, one entry per
    /// group, sum ≤ workers. The simulator's allocation search uses it.
    pub fixed_allocation: Option<Vec<usize>>,
    /// How a re-plan chooses the per-group worker counts: DARC's demand formula (the
    /// original) or the model planner ([`model`]), which needs profiling (`dynamic`).
    pub plan: PlanMode,
}

/// How DARC chooses its reservation (`psp.darc.plan`, `--darc-plan`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PlanMode {
    /// The original's formula: each group's share of CPU demand, rounded at the cut.
    #[default]
    Formula,
    /// The model planner: every allocation's p99.9 slowdown predicted from the profiled
    /// means, service variability and arrival rates; the most headroom wins ([`model`]).
    Model,
}

impl PlanMode {
    /// The names accepted by [`PlanMode::parse`].
    pub const NAMES: &'static str = "formula, model";

    /// Its configuration name.
    pub fn name(self) -> &'static str {
        match self {
            PlanMode::Formula => "formula",
            PlanMode::Model => "model",
        }
    }

    /// Parses `formula` or `model` (case-insensitive); the error names `darc.plan`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "formula" => Ok(PlanMode::Formula),
            "model" => Ok(PlanMode::Model),
            _ => Err(ConfigError::Invalid {
                field: "darc.plan",
                value: text.to_string(),
                why: "expected formula or model",
            }),
        }
    }
}

impl Default for DarcParams {
    fn default() -> Self {
        Self {
            delta: 0.2,
            samples_needed: 50_000,
            hysteresis: 0.1,
            rounding_cut: 0.5,
            rounding_hysteresis: 0.0,
            profile_overhead_ns: 0,
            dynamic: true,
            fixed_allocation: None,
            plan: PlanMode::Formula,
        }
    }
}

impl DarcParams {
    /// Checks the numeric tunables (errors name `darc.<field>`): `delta` and `hysteresis`
    /// finite and ≥ 0, `rounding_cut` in [`ROUNDING_CUT_RANGE`]. The one place these ranges
    /// are checked; the server configuration calls it too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |field: &'static str, value: f64, ok: bool, why: &'static str| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    field,
                    value: value.to_string(),
                    why,
                })
            }
        };
        check(
            "darc.delta",
            self.delta,
            self.delta >= 0.0,
            "must be a finite number ≥ 0",
        )?;
        check(
            "darc.hysteresis",
            self.hysteresis,
            self.hysteresis >= 0.0,
            "must be a finite number ≥ 0",
        )?;
        check(
            "darc.rounding_cut",
            self.rounding_cut,
            ROUNDING_CUT_RANGE.contains(&self.rounding_cut),
            "must be in [0, 1]",
        )?;
        check(
            "darc.rounding_hysteresis",
            self.rounding_hysteresis,
            ROUNDING_HYSTERESIS_RANGE.contains(&self.rounding_hysteresis),
            "must be in [0, 1] (workers)",
        )?;
        if self.plan == PlanMode::Model && (!self.dynamic || self.fixed_allocation.is_some()) {
            return Err(ConfigError::Invalid {
                field: "darc.plan",
                value: "model".into(),
                why: "the model planner plans from profiled arrival rates: it needs \
                      dynamic: true and no fixed_allocation",
            });
        }
        Ok(())
    }
}

/// DARC's phase.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// c-FCFS over the bootstrap FIFO while profiling (docs/design.md §1.5).
    Bootstrap,
    /// Dispatching by reservation.
    Reserved,
}

/// The plan in force, in the form dispatch reads (shared with `darc-static`).
#[derive(Debug)]
pub(crate) struct Reservations {
    /// Type slots ascending by the current plan's means.
    order: Vec<usize>,
    /// Per type slot: its group's reserved workers / stealable workers.
    reserved: Box<[WorkerSet]>,
    stealable: Box<[WorkerSet]>,
    /// Per type slot: whether it is in the plan's longest group (the last one; `darc-ts`
    /// time-slices it).
    longest: Box<[bool]>,
    spillway: usize,
    plan: Option<ReservationPlan>,
    next_window_id: u64,
}

impl Reservations {
    pub(crate) fn new(n_types: usize, workers: usize) -> Self {
        Self {
            order: Vec::with_capacity(n_types),
            reserved: vec![WorkerSet::EMPTY; n_types].into_boxed_slice(),
            stealable: vec![WorkerSet::EMPTY; n_types].into_boxed_slice(),
            longest: vec![false; n_types].into_boxed_slice(),
            spillway: workers - 1,
            plan: None,
            next_window_id: 0,
        }
    }

    /// Makes `plan` the one dispatch follows.
    fn install(&mut self, plan: ReservationPlan) {
        self.order.clear();
        self.longest.fill(false);
        let last = plan.groups.len().saturating_sub(1);
        for (g, group) in plan.groups.iter().enumerate() {
            let set = |ws: &[crate::WorkerId]| {
                ws.iter().fold(WorkerSet::EMPTY, |mut s, w| {
                    s.insert(w.index());
                    s
                })
            };
            let (reserved, stealable) = (set(&group.reserved), set(&group.stealable));
            for ty in &group.members {
                if let Some(t) = ty.index().filter(|&t| t < self.reserved.len()) {
                    self.order.push(t);
                    self.reserved[t] = reserved;
                    self.stealable[t] = stealable;
                    self.longest[t] = g == last;
                }
            }
        }
        if let Some(s) = plan.spillway {
            self.spillway = s.index();
        }
        self.plan = Some(plan);
    }

    /// Installs `plan` and records it as window `start_ns..end_ns` in `state`.
    pub(crate) fn apply(
        &mut self,
        state: &mut SchedulerState,
        window: (Nanos, Nanos, u64),
        means_ns: Vec<f64>,
        ratios: Vec<f64>,
        plan: ReservationPlan,
    ) {
        let (start_ns, end_ns, samples) = window;
        let window_id = self.next_window_id;
        self.next_window_id += 1;
        self.install(plan.clone());
        state.record_plan_update(PlanUpdate {
            window_id,
            start_ns,
            end_ns,
            samples,
            queue_lens: Vec::new(),
            means_ns,
            ratios,
            plan,
        });
    }

    /// The plan in force.
    pub(crate) fn plan(&self) -> Option<&ReservationPlan> {
        self.plan.as_ref()
    }

    /// Reserved dispatch (docs/design.md §1.8): types by ascending mean; first idle reserved
    /// worker, else first idle stealable one, else the next type; UNKNOWN (queue `n_types`)
    /// only on the spillway.
    #[inline]
    pub(crate) fn choose(&self, state: &SchedulerState, idle: WorkerSet) -> Option<(usize, usize)> {
        for &t in &self.order {
            if state.has(t) {
                let mut candidates = idle.and(self.reserved[t]);
                if candidates.is_empty() {
                    candidates = idle.and(self.stealable[t]);
                }
                if let Some(w) = candidates.lowest() {
                    return Some((t, w));
                }
            }
        }
        let unknown = state.n_types();
        if state.has(unknown) && idle.contains(self.spillway) {
            return Some((unknown, self.spillway));
        }
        None
    }

    /// `darc-ts`'s lending, asked when [`Reservations::choose`] found nothing: the head of the
    /// longest group's first non-empty queue (ascending mean) on the highest idle worker, which
    /// is then reserved to a shorter group (the longest group's own idle workers would have
    /// been chosen) — the longest of those groups first, as DARC numbers groups upwards.
    #[inline]
    pub(crate) fn choose_lent(
        &self,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        let w = idle.highest()?;
        let t = self
            .order
            .iter()
            .copied()
            .find(|&t| self.longest[t] && state.has(t))?;
        Some((t, w))
    }

    /// Whether type slot `t` is in the plan's longest group (`false` for UNKNOWN).
    #[inline]
    pub(crate) fn in_longest(&self, t: usize) -> bool {
        self.longest.get(t).copied().unwrap_or(false)
    }

    /// Whether `worker` is one DARC itself lets type slot `t` run on (reserved or stealable).
    #[inline]
    pub(crate) fn may_run(&self, t: usize, worker: usize) -> bool {
        t < self.reserved.len()
            && (self.reserved[t].contains(worker) || self.stealable[t].contains(worker))
    }

    /// Depth 2's second slots (`busy`): as [`Reservations::choose`] without stealing, so a
    /// request only ever waits behind one of its own group's.
    #[inline]
    pub(crate) fn choose_reserved(
        &self,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        for &t in &self.order {
            if state.has(t) {
                if let Some(w) = busy.and(self.reserved[t]).lowest() {
                    return Some((t, w));
                }
            }
        }
        let unknown = state.n_types();
        (state.has(unknown) && busy.contains(self.spillway)).then_some((unknown, self.spillway))
    }
}

/// The built DARC policy. Boxed: DARC's state is hundreds of bytes while the other policies'
/// is a few words, and the scheduler's dispatch enum is as large as its largest variant;
/// keeping it small keeps the scheduler's hot fields close together.
pub type Darc = Box<DarcState>;

/// DARC's runtime state.
#[derive(Debug)]
pub struct DarcState {
    params: DarcParams,
    phase: Phase,
    /// Profiles and updates (`dynamic` without a fixed allocation).
    dynamic: bool,
    workers: usize,
    n_types: usize,
    reservations: Reservations,
    profile: Profile,
    window_start_ns: Nanos,
    /// The plan from configuration (oracle or fixed allocation), applied in `on_start`.
    initial_plan: Option<ReservationPlan>,
    /// Whether the first arrival was seen.
    window_started: bool,
    /// Start of the window the profile holds (the first arrival, then the last evaluation)
    /// and the arrivals (accepted or refused) counted by then: the model planner measures
    /// the offered rate over it (completions lag arrivals while a queue builds up and lead
    /// them while it drains).
    profiled_since_ns: Nanos,
    arrivals_before_window: u64,
    /// The model planner's last decision (`plan: model`).
    last_choice: Option<ModelChoice>,
    /// The model planner's smoothed profile ([`model::smooth`]).
    smoothed: Option<Vec<TypeLoad>>,
}

impl BuiltinPolicy for Darc {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "darc",
        aliases: &["DARC", "DYN_RESA"],
        summary: "profiles types, reserves workers per group of similar types (Perséphone)",
        params: &[
            ("delta", "grouping factor δ (0.2)"),
            ("samples_needed", "completions per profiling window (50000)"),
            ("hysteresis", "relative demand change that re-plans (0.1)"),
            (
                "rounding_cut",
                "fractional demand above this rounds up (0.5)",
            ),
            (
                "rounding_hysteresis",
                "workers of demand past the cut before a group's count changes (0)",
            ),
            (
                "profile_overhead_ns",
                "subtracted from each profiled mean (0)",
            ),
            (
                "dynamic",
                "profile and update; false: plan once from configured means (true)",
            ),
            (
                "fixed_allocation",
                "workers per type group, shortest first (none)",
            ),
            ("plan", "formula (the original's) or model (formula)"),
        ],
        live: true,
        default: || Policy::Darc(DarcParams::default()),
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let Policy::Darc(p) = cx.policy() else {
            return Err(cx.error("not a DARC configuration".into()));
        };
        DarcState::build(cx, p)
    }
}

impl DarcState {
    /// DARC with `p` (its own policy or `darc-model`'s).
    pub(crate) fn build(cx: &BuildContext<'_>, p: &DarcParams) -> Result<Darc, ConfigError> {
        p.validate()?;
        let fixed = p.fixed_allocation.is_some();
        let dynamic = p.dynamic && !fixed;
        let (workers, n_types) = (cx.workers(), cx.n_types());
        let mut darc = DarcState {
            params: p.clone(),
            phase: if dynamic {
                Phase::Bootstrap
            } else {
                Phase::Reserved
            },
            dynamic,
            workers,
            n_types,
            reservations: Reservations::new(n_types, workers),
            profile: Profile::new(n_types),
            window_start_ns: 0,
            initial_plan: None,
            window_started: false,
            profiled_since_ns: 0,
            arrivals_before_window: 0,
            last_choice: None,
            smoothed: None,
        };
        if !dynamic {
            darc.plan_from_configuration(cx)?;
        }
        Ok(Box::new(darc))
    }

    /// Oracle mode or a fixed allocation: the plan from configured means and ratios.
    fn plan_from_configuration(&mut self, cx: &BuildContext<'_>) -> Result<(), ConfigError> {
        let p = &self.params;
        let fixed = p.fixed_allocation.is_some();
        let means = cx.configured_means("DARC without profiling plans from configured means")?;
        let mut ratios = Vec::with_capacity(self.n_types);
        for t in cx.types() {
            ratios.push(match (t.ratio, fixed) {
                (Some(r), _) => r,
                (None, true) => 0.0,
                (None, false) => {
                    return Err(cx.error(format!(
                        "request type {:?} has no ratio (DARC without profiling plans from \
                         configured ratios)",
                        t.name
                    )))
                }
            });
        }
        let profiles: Vec<TypeProfile> = means
            .iter()
            .zip(&ratios)
            .enumerate()
            .map(|(t, (&m, &r))| TypeProfile {
                ty: TypeIndex(t as u16),
                mean_ns: m as f64,
                ratio: r,
            })
            .collect();
        let plan = match &p.fixed_allocation {
            Some(alloc) => plan_with_allocation(&profiles, self.workers, p.delta, alloc)?,
            None => plan_reservations(&profiles, self.workers, p),
        };
        for (t, &m) in means.iter().enumerate() {
            self.profile.means_ns[t] = m as f64;
        }
        self.profile.ratios.copy_from_slice(&ratios);
        self.initial_plan = Some(plan);
        Ok(())
    }

    /// The bootstrap FIFO's queue index.
    #[inline]
    fn bootstrap_queue(&self) -> usize {
        self.n_types + 1
    }

    /// The bootstrap switch and the steady-state update trigger (docs/design.md §1.5): after
    /// `samples_needed` samples, an update is due when a type (in ascending-mean order) has a
    /// second-in-line request that waited longer than its `max_delay`. In steady state this
    /// scan runs on every call, as in the original.
    #[inline]
    fn update_due(&self, now_ns: Nanos, state: &SchedulerState) -> bool {
        match self.phase {
            Phase::Bootstrap => state.counters().dispatched > self.params.samples_needed,
            Phase::Reserved => {
                self.profile.window_count > self.params.samples_needed
                    && state.queued() >= 2
                    && self.reservations.order.iter().any(|&t| {
                        state.get(t, 1).is_some_and(|second| {
                            now_ns.saturating_sub(second.arrival_ns) > self.profile.max_delay_ns[t]
                        })
                    })
            }
        }
    }

    /// The bootstrap switch or a steady-state `update_darc()`, and applying its plan.
    #[cold]
    #[inline(never)]
    fn update(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        if self.phase == Phase::Bootstrap {
            self.window_start_ns = now_ns;
            self.profile.window_count = state.counters().dispatched;
            self.phase = Phase::Reserved;
        }
        let bootstrap_switch = self.reservations.plan.is_none();
        let window = (self.window_start_ns, now_ns, self.profile.window_count);
        let arrived = arrivals(state);
        let offered = arrived.saturating_sub(self.arrivals_before_window);
        let profiled = (self.profiled_since_ns, now_ns, offered);
        self.profiled_since_ns = now_ns;
        self.arrivals_before_window = arrived;
        state.counters.darc_evaluations += 1;
        let plan = match self.params.plan {
            PlanMode::Formula => self
                .profile
                .evaluate(&self.params, self.workers, bootstrap_switch)
                .filter(|plan| !self.keeps_plan_in_force(plan, state)),
            PlanMode::Model => self.model_plan(profiled, bootstrap_switch, state),
        };
        if bootstrap_switch {
            state.move_to_typed_queues(self.bootstrap_queue());
        }
        if let Some(plan) = plan {
            let (means, ratios) = (self.profile.means_ns.to_vec(), self.profile.ratios.to_vec());
            self.reservations.apply(state, window, means, ratios, plan);
            self.window_start_ns = now_ns;
        }
    }

    /// Rounding hysteresis ([`DarcParams::rounding_hysteresis`]): whether the formula's new
    /// `plan` should give way to the plan in force, which has the same groups and whose worker
    /// counts the new demands still round to within the hysteresis (counted).
    fn keeps_plan_in_force(&self, plan: &ReservationPlan, state: &mut SchedulerState) -> bool {
        let hysteresis = self.params.rounding_hysteresis;
        let Some(current) = self.reservations.plan().filter(|_| hysteresis > 0.0) else {
            return false;
        };
        let same_groups = current.groups.len() == plan.groups.len()
            && current
                .groups
                .iter()
                .zip(&plan.groups)
                .all(|(a, b)| a.members == b.members);
        if !same_groups {
            return false;
        }
        let cut = self.params.rounding_cut;
        let keep = current.groups.iter().zip(&plan.groups).all(|(now, next)| {
            let count = round_demand(now.demand_workers, cut);
            count_still_fits(next.demand_workers, count, cut, hysteresis)
        });
        state.counters.darc_plans_kept += u64::from(keep);
        keep
    }

    /// The model planner's re-plan (`plan: model`) over `window` (start, end, arrivals):
    /// closes the profile's window, predicts every allocation of DARC's groups from the
    /// profiled means, variability and arrival rate (arrivals over the window's length)
    /// and returns the best plan unless the plan in force is within the hysteresis. Too
    /// many candidates fall back to the formula.
    #[cold]
    fn model_plan(
        &mut self,
        window: (Nanos, Nanos, u64),
        force: bool,
        state: &mut SchedulerState,
    ) -> Option<ReservationPlan> {
        let (start_ns, end_ns, samples) = window;
        let window_ns = end_ns.saturating_sub(start_ns).max(1) as f64;
        self.profile
            .close_and_compare(&self.params, self.workers);
        let rate_per_ns = samples as f64 / window_ns;
        let queued = state.queued_by_type();
        let window_loads: Vec<TypeLoad> = (0..self.n_types)
            .map(|t| TypeLoad {
                ty: TypeIndex(t as u16),
                mean_ns: self.profile.means_ns[t],
                scv: self.profile.scv[t],
                rate_per_ns: rate_per_ns * self.profile.ratios[t],
                queued: queued.get(t).copied().unwrap_or(0) as f64,
            })
            .collect();
        let loads = smooth(self.smoothed.as_deref(), &window_loads);
        // Steady state first (queues ignored); only when no allocation keeps up does the
        // planner weigh overload over the next window (about as long as this one) and the
        // work queued now.
        let steady = Model::new(&loads, self.workers, self.params.delta);
        let current = self.current_allocation(&steady);
        state.counters.darc_model_replans += 1;
        let hysteresis = self.params.hysteresis;
        let Some(mut choice) = steady.choose(current.as_deref(), hysteresis) else {
            self.smoothed = Some(loads);
            return force.then(|| self.profile.formula_plan(&self.params, self.workers));
        };
        if choice.load_scale < 1.0 {
            let candidates = choice.candidates;
            let overloaded = Model::new(&loads, self.workers, self.params.delta)
                .with_horizon_ns(window_ns)
                .choose(current.as_deref(), hysteresis);
            if let Some(c) = overloaded {
                choice = ModelChoice {
                    candidates: candidates + c.candidates,
                    ..c
                };
            }
        }
        self.smoothed = Some(loads);
        state.counters.darc_model_candidates += choice.candidates as u64;
        let apply = force || !choice.keep_current;
        // Grouped as the model grouped them (by the smoothed means).
        let profiles: Vec<TypeProfile> = self
            .smoothed
            .iter()
            .flatten()
            .zip(self.profile.ratios.iter())
            .map(|(l, &ratio)| TypeProfile {
                ty: l.ty,
                mean_ns: l.mean_ns,
                ratio,
            })
            .collect();
        let plan = apply.then(|| {
            plan_with_allocation(
                &profiles,
                self.workers,
                self.params.delta,
                choice.allocation(),
            )
            .ok()
        });
        self.last_choice = Some(choice);
        plan.flatten()
            .or_else(|| force.then(|| self.profile.formula_plan(&self.params, self.workers)))
    }

    /// The plan in force as per-group worker counts, if its groups are the model's.
    fn current_allocation(&self, model: &Model) -> Option<Vec<usize>> {
        let plan = self.reservations.plan()?;
        if plan.groups.len() != model.groups() {
            return None;
        }
        let mut counts = Vec::with_capacity(plan.groups.len());
        for (g, group) in plan.groups.iter().enumerate() {
            if group.members != model.group_members(g) || group.uses_spillway {
                return None;
            }
            counts.push(group.reserved.len());
        }
        Some(counts)
    }

    /// The reservations dispatch follows, once bootstrap is over (`darc-ts` reads them).
    pub(crate) fn reservations(&self) -> Option<&Reservations> {
        (self.phase == Phase::Reserved).then_some(&self.reservations)
    }

    /// `darc-ts`: a slice of a request of type slot `slot` ran `ran_ns` and was preempted; the
    /// profile counts it as service of its type, without a completion (a type's mean stays
    /// its requests' whole service).
    pub(crate) fn record_slice(&mut self, slot: Option<usize>, ran_ns: Nanos) {
        if self.dynamic {
            self.profile.record_slice(slot, ran_ns);
        }
    }

    /// The model planner's last decision (`plan: model`): best and current predictions,
    /// whether the plan in force was kept, candidates evaluated.
    pub fn last_model_choice(&self) -> Option<&ModelChoice> {
        self.last_choice.as_ref()
    }
}

/// Arrivals so far, accepted or refused.
fn arrivals(state: &SchedulerState) -> u64 {
    let c = state.counters();
    c.accepted + c.rejected
}

impl PolicyCore for DarcState {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            // Typed queues, UNKNOWN, and the bootstrap FIFO.
            queues: self.n_types + 2,
            extra_slots: 0,
        }
    }

    fn on_start(&mut self, state: &mut SchedulerState) {
        if let Some(plan) = self.initial_plan.take() {
            let (means, ratios) = (self.profile.means_ns.to_vec(), self.profile.ratios.to_vec());
            self.reservations
                .apply(state, (0, 0, 0), means, ratios, plan);
        }
    }

    #[inline]
    fn arrival_queue(&mut self, slot: usize, _state: &SchedulerState) -> usize {
        match self.phase {
            Phase::Bootstrap => self.bootstrap_queue(),
            Phase::Reserved => slot,
        }
    }

    #[inline]
    fn before_dispatch(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        if !self.window_started {
            // The first arrival opens the bootstrap window (a live server starts its clock
            // before the first request comes).
            self.window_started = true;
            self.window_start_ns = now_ns;
            self.profiled_since_ns = now_ns;
            self.arrivals_before_window = arrivals(state).saturating_sub(1);
        }
        if self.dynamic && self.update_due(now_ns, state) {
            self.update(now_ns, state);
        }
    }

    #[inline]
    fn choose(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        match self.phase {
            Phase::Bootstrap => Some((self.bootstrap_queue(), idle.lowest()?)),
            Phase::Reserved => self.reservations.choose(state, idle),
        }
    }

    #[inline]
    fn choose_behind(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        match self.phase {
            Phase::Bootstrap => Some((self.bootstrap_queue(), busy.lowest()?)),
            Phase::Reserved => self.reservations.choose_reserved(state, busy),
        }
    }

    #[inline]
    fn on_completion(&mut self, slot: Option<usize>, service_ns: Nanos) {
        if self.dynamic {
            self.profile.record(slot, service_ns);
        }
    }

    fn plan(&self) -> Option<&ReservationPlan> {
        match self.phase {
            Phase::Reserved => self.reservations.plan(),
            Phase::Bootstrap => None,
        }
    }

    fn in_bootstrap(&self) -> bool {
        self.phase == Phase::Bootstrap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_cut_range_is_closed_and_checked_in_one_place() {
        for cut in [0.0, 0.5, 1.0] {
            let p = DarcParams {
                rounding_cut: cut,
                ..DarcParams::default()
            };
            assert_eq!(p.validate(), Ok(()), "{cut}");
        }
        for cut in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let p = DarcParams {
                rounding_cut: cut,
                ..DarcParams::default()
            };
            let err = p.validate().unwrap_err().to_string();
            assert!(err.starts_with("darc.rounding_cut = "), "{err}");
        }
        let p = DarcParams {
            delta: -1.0,
            ..DarcParams::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("darc.delta"));
    }
}
