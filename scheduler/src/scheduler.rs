//! The [`Scheduler`] state machine: type table, fixed-capacity queues, idle set and the policy.
//!
//! ## Layout
//! - `queues`: fixed-capacity rings ([`RingQueue`]) allocated in [`Scheduler::new`]. What a queue
//!   index means depends on the policy:
//!   - `cfcfs`: one central FIFO (index 0), UNKNOWN included;
//!   - `dfcfs`: one FIFO per worker (index = worker);
//!   - `sjf`, `edf`, `ts`, `darc`, `darc-static`: one FIFO per registered type (index = dense
//!     type index) and the UNKNOWN FIFO at index `n_types`; `darc` adds its bootstrap c-FCFS
//!     FIFO at `n_types + 1`.
//! - `nonempty`: bit `q` set iff queue `q` holds something (at most 128 queues), so empty
//!   queues are skipped without touching them.
//! - `idle`: bit `w` set iff worker `w` holds no request; `running[w]` is `Some` iff it does not.
//! - `queued_by_type`: requests queued per type slot (UNKNOWN last) whatever the layout, so
//!   [`Scheduler::queue_len`] is O(1).
//!
//! ## Invariants
//! - `idle` bit `w` ⇔ `running[w].is_none()`; a worker is given a request only while idle.
//! - Σ queue lengths = `queued_total` = Σ `queued_by_type`.
//! - Admission: an arrival is refused when its queue holds `queue_capacity` entries. Under `ts`
//!   the rings have `workers` extra slots so that a preempted request can always go back:
//!   queued(t) + running(t) ≤ capacity + workers holds for every type `t`, hence a preemption
//!   (running(t) ≥ 1) always finds a free slot.
//! - Every token accepted is either queued once, or held by exactly one worker.
//! - Nothing on the per-request path (`classify`, `on_arrival`, `next_dispatch`,
//!   `on_completion`, `on_preempted`) allocates, except DARC applying a new plan (at most once
//!   per `samples_needed` completions), which builds the [`ReservationPlan`] and its
//!   [`PlanUpdate`] record.
//!
//! ## Policies
//! See [`Policy`] and the crate docs. DARC follows reference §1.4–§1.8 with these deliberate
//! differences, each a fix of an original hazard:
//! - Requests queued in the bootstrap c-FCFS FIFO are moved, in order, into their typed queues at
//!   the switch (the original left them in its UNKNOWN-slot queue, drained only by the
//!   spillway).
//! - The update at the end of bootstrap always installs a plan, even if no demand changed (the
//!   original would otherwise leave no reservation at all and never dispatch a typed request).
//! - Profiled means are exact integer `Σ service / count` rather than a truncating running mean.
//!
//! ## How it is tested
//! Unit tests in `scheduler/tests.rs` pin each policy's decisions on hand-made sequences
//! (including DARC's bootstrap switch, hysteresis, update trigger and adaptation when service
//! times swap mid-run); property tests (`proptest`) drive every policy with random arrivals,
//! completions and preemptions of random wire ids against a model and check conservation (no
//! token lost or duplicated), the one-request-per-worker rule, bounds, each policy's order
//! (FIFO, round-robin, SJF priority, EDF deadlines, `ts` wait/SLO and tail re-queue), DARC's
//! reservation rule (a longer group never on a shorter group's reserved worker; UNKNOWN only
//! on the spillway) and liveness (everything queued is dispatched once arrivals stop).

use std::collections::VecDeque;

use crate::darc::{plan_reservations, plan_with_allocation, TypeProfile, INACTIVE_MEAN_NS};
use crate::queue::{RingQueue, WorkerSet};
use crate::{
    Completed, CompletionError, ConfigError, DarcParams, Dispatch, Nanos, PlanUpdate, Policy,
    RejectReason, Rejected, RequestTypeSpec, ReservationPlan, SchedulerConfig, Token, TypeIndex,
    WorkerId, MAX_QUEUE_CAPACITY, MAX_TYPES, MAX_WORKERS,
};

/// Most [`PlanUpdate`]s kept for [`Scheduler::poll_plan_update`]; beyond it the oldest is
/// dropped and counted in [`SchedulerCounters::plan_updates_dropped`] (the original's
/// `MAX_WINDOWS`, `DispatchSu.hh`, which it never checked).
pub const PLAN_UPDATE_CAPACITY: usize = 8192;

/// Counters kept by the scheduler (cheap to read at any time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerCounters {
    /// Accepted arrivals.
    pub accepted: u64,
    /// Refused arrivals (queue full).
    pub rejected: u64,
    /// Dispatch decisions (each quantum counts under `ts`).
    pub dispatched: u64,
    /// Completions.
    pub completed: u64,
    /// Preemptions (`ts`).
    pub preempted: u64,
    /// Arrivals classified UNKNOWN (accepted or not).
    pub unknown_arrivals: u64,
    /// `on_completion` / `on_preempted` calls refused (no such worker, idle worker...).
    pub invalid_notifications: u64,
    /// DARC: profile evaluations (`update_darc` calls), applied or not.
    pub darc_evaluations: u64,
    /// DARC: reservation plans applied (bootstrap switch, updates, or the fixed plan).
    pub plan_updates: u64,
    /// DARC: plan records dropped because nobody polled them (buffer full).
    pub plan_updates_dropped: u64,
}

/// One queued request.
#[derive(Copy, Clone, Debug)]
struct Queued {
    token: Token,
    ty: TypeIndex,
    arrival_ns: Nanos,
}

impl Default for Queued {
    fn default() -> Self {
        Self {
            token: Token(0),
            ty: TypeIndex::UNKNOWN,
            arrival_ns: 0,
        }
    }
}

/// The request a busy worker holds.
#[derive(Copy, Clone, Debug)]
struct Running {
    token: Token,
    ty: TypeIndex,
    arrival_ns: Nanos,
    dispatched_ns: Nanos,
}

/// DARC's phase.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum DarcPhase {
    /// c-FCFS over the bootstrap FIFO while profiling (reference §1.5.1).
    Bootstrap,
    /// Dispatching by reservation.
    Reserved,
}

/// DARC (and darc-static) state.
#[derive(Debug)]
struct Darc {
    params: DarcParams,
    phase: DarcPhase,
    /// Profiles and updates (`dynamic` without a fixed allocation).
    dynamic: bool,
    /// Type slots ascending by the current plan's means.
    order: Vec<usize>,
    /// Per type slot: its group's reserved workers / stealable workers.
    reserved: Box<[WorkerSet]>,
    stealable: Box<[WorkerSet]>,
    spillway: usize,
    plan: Option<ReservationPlan>,
    /// Profiling since the last evaluation, per type: Σ service (ns) and completions.
    service_sum_ns: Box<[u64]>,
    service_count: Box<[u64]>,
    /// Completions in the current window (all types, UNKNOWN included).
    window_count: u64,
    window_start_ns: Nanos,
    next_window_id: u64,
    /// Per type: queueing delay of the second-oldest request that triggers an update (ns).
    max_delay_ns: Box<[Nanos]>,
    prev_demand: Box<[f64]>,
    prev_active: usize,
    /// Last evaluated means and ratios, per type.
    means_ns: Box<[f64]>,
    ratios: Box<[f64]>,
}

impl Darc {
    fn new(params: DarcParams, n_types: usize, workers: usize, dynamic: bool) -> Self {
        Self {
            params,
            phase: if dynamic {
                DarcPhase::Bootstrap
            } else {
                DarcPhase::Reserved
            },
            dynamic,
            order: Vec::with_capacity(n_types),
            reserved: vec![WorkerSet::EMPTY; n_types].into_boxed_slice(),
            stealable: vec![WorkerSet::EMPTY; n_types].into_boxed_slice(),
            spillway: workers - 1,
            plan: None,
            service_sum_ns: vec![0; n_types].into_boxed_slice(),
            service_count: vec![0; n_types].into_boxed_slice(),
            window_count: 0,
            window_start_ns: 0,
            next_window_id: 0,
            max_delay_ns: vec![0; n_types].into_boxed_slice(),
            prev_demand: vec![0.0; n_types].into_boxed_slice(),
            prev_active: 0,
            means_ns: vec![0.0; n_types].into_boxed_slice(),
            ratios: vec![0.0; n_types].into_boxed_slice(),
        }
    }

    /// Makes `plan` the one dispatch follows.
    fn install(&mut self, plan: ReservationPlan) {
        self.order.clear();
        for group in &plan.groups {
            let reserved = group.reserved.iter().fold(WorkerSet::EMPTY, |mut s, w| {
                s.insert(w.index());
                s
            });
            let stealable = group.stealable.iter().fold(WorkerSet::EMPTY, |mut s, w| {
                s.insert(w.index());
                s
            });
            for ty in &group.members {
                if let Some(t) = ty.index().filter(|&t| t < self.reserved.len()) {
                    self.order.push(t);
                    self.reserved[t] = reserved;
                    self.stealable[t] = stealable;
                }
            }
        }
        if let Some(s) = plan.spillway {
            self.spillway = s.index();
        }
        self.plan = Some(plan);
    }

    /// `update_darc()` (reference §1.6): turns the profile into means and ratios, decides
    /// whether demand changed enough, and if so (or if `force`) returns the new plan.
    fn evaluate(&mut self, workers: usize, force: bool) -> Option<ReservationPlan> {
        let n_types = self.means_ns.len();
        let window_count = self.window_count;
        let mut window_mean = 0.0;
        let mut active = 0usize;
        for t in 0..n_types {
            let count = self.service_count[t];
            match self.service_sum_ns[t].checked_div(count) {
                None => {
                    self.means_ns[t] = INACTIVE_MEAN_NS;
                    self.ratios[t] = 0.0;
                }
                Some(mean) => {
                    active += 1;
                    let mean = mean.saturating_sub(self.params.profile_overhead_ns);
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
            self.service_count[t] = 0;
        }
        self.window_count = 0;
        let mut changed = false;
        for t in 0..n_types {
            let demand = crate::darc::demand_workers(
                self.means_ns[t] * self.ratios[t],
                window_mean,
                workers,
            );
            let prev = self.prev_demand[t];
            if (demand - prev).abs() > self.params.hysteresis * prev
                || (self.ratios[t] > 0.0 && active != self.prev_active)
            {
                changed = true;
                // Means are integral ns (or the inactive sentinel): the cast is exact.
                self.max_delay_ns[t] = self.means_ns[t] as Nanos;
                self.prev_demand[t] = demand;
            }
        }
        self.prev_active = active;
        if !(changed || force) {
            return None;
        }
        let profiles: Vec<TypeProfile> = (0..n_types)
            .map(|t| TypeProfile {
                ty: TypeIndex(t as u16),
                mean_ns: self.means_ns[t],
                ratio: self.ratios[t],
            })
            .collect();
        Some(plan_reservations(&profiles, workers, &self.params))
    }
}

/// Per-policy state.
#[derive(Debug)]
enum Engine {
    Cfcfs,
    Dfcfs {
        /// Next worker of the round-robin (full width: no 256 glitch).
        next_worker: usize,
    },
    Sjf {
        /// Type slots by ascending configured mean, UNKNOWN last.
        order: Box<[usize]>,
    },
    Edf {
        /// Relative deadline per type slot (UNKNOWN: `Nanos::MAX`).
        deadline_ns: Box<[Nanos]>,
    },
    Darc(Box<Darc>),
    TimeSharing {
        /// `1 / SLO` per registered type (ns⁻¹).
        inverse_slo: Box<[f64]>,
        quantum_ns: Nanos,
    },
}

/// The sans-IO scheduler. See the crate docs for the driving loop.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    n_types: usize,
    wire_ids: Box<[u32]>,
    queues: Box<[RingQueue<Queued>]>,
    nonempty: u128,
    queued_by_type: Box<[usize]>,
    queued_total: usize,
    running: Box<[Option<Running>]>,
    idle: WorkerSet,
    engine: Engine,
    /// `Some(quantum)` under `ts`.
    quantum_ns: Option<Nanos>,
    updates: VecDeque<PlanUpdate>,
    counters: SchedulerCounters,
}

fn policy_error(policy: &Policy, why: String) -> ConfigError {
    ConfigError::Policy {
        policy: policy.name(),
        why,
    }
}

fn check_finite(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field,
            value: value.to_string(),
            why: "out of range or not finite",
        })
    }
}

fn validate_darc_params(p: &DarcParams) -> Result<(), ConfigError> {
    check_finite("darc.delta", p.delta, 0.0, f64::MAX)?;
    check_finite("darc.hysteresis", p.hysteresis, 0.0, f64::MAX)?;
    if !(p.rounding_cut.is_finite() && (0.0..1.0).contains(&p.rounding_cut)) {
        return Err(ConfigError::Invalid {
            field: "darc.rounding_cut",
            value: p.rounding_cut.to_string(),
            why: "must be in [0, 1)",
        });
    }
    Ok(())
}

/// Configured means of every type, or an error naming the first type without one.
fn configured_means(
    policy: &Policy,
    types: &[RequestTypeSpec],
    why: &str,
) -> Result<Vec<Nanos>, ConfigError> {
    types
        .iter()
        .map(|t| {
            t.mean_ns.ok_or_else(|| {
                policy_error(
                    policy,
                    format!("request type {:?} has no mean_ns ({why})", t.name),
                )
            })
        })
        .collect()
}

/// Type slots sorted by ascending mean (stable).
fn order_by_mean(means: &[Nanos]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..means.len()).collect();
    order.sort_by_key(|&t| means[t]);
    order
}

impl Scheduler {
    /// Builds a scheduler; validates the configuration (errors name the field or type).
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        let workers = config.workers;
        if workers == 0 || workers > MAX_WORKERS {
            return Err(ConfigError::Workers(workers));
        }
        let n_types = config.types.len();
        if n_types > MAX_TYPES {
            return Err(ConfigError::TooManyTypes(n_types));
        }
        if config.queue_capacity == 0 || config.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(ConfigError::Invalid {
                field: "queue_capacity",
                value: config.queue_capacity.to_string(),
                why: "must be between 1 and MAX_QUEUE_CAPACITY (1048576)",
            });
        }
        for (i, t) in config.types.iter().enumerate() {
            if config.types[..i]
                .iter()
                .any(|u| u.wire_id == t.wire_id || u.name == t.name)
            {
                return Err(ConfigError::DuplicateType(t.name.clone()));
            }
            if let Some(r) = t.ratio {
                if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
                    return Err(ConfigError::Invalid {
                        field: "ratio",
                        value: format!("{r} (request type {:?})", t.name),
                        why: "must be in [0, 1]",
                    });
                }
            }
        }
        let policy = &config.policy;
        let typed_queues = n_types + 1;
        let mut ring_capacity = config.queue_capacity;
        let mut initial_plan: Option<(ReservationPlan, Vec<f64>, Vec<f64>)> = None;
        let (engine, queue_count) = match policy {
            Policy::Cfcfs => (Engine::Cfcfs, 1),
            Policy::Dfcfs => (Engine::Dfcfs { next_worker: 0 }, workers),
            Policy::Sjf => {
                let means = configured_means(policy, &config.types, "SJF orders queues by mean")?;
                let mut order = order_by_mean(&means);
                order.push(n_types);
                (
                    Engine::Sjf {
                        order: order.into_boxed_slice(),
                    },
                    typed_queues,
                )
            }
            Policy::Edf => {
                let mut deadline_ns = Vec::with_capacity(typed_queues);
                for t in &config.types {
                    deadline_ns.push(t.deadline_ns.or(t.mean_ns).ok_or_else(|| {
                        policy_error(
                            policy,
                            format!(
                                "request type {:?} has neither deadline_ns nor mean_ns",
                                t.name
                            ),
                        )
                    })?);
                }
                deadline_ns.push(Nanos::MAX);
                (
                    Engine::Edf {
                        deadline_ns: deadline_ns.into_boxed_slice(),
                    },
                    typed_queues,
                )
            }
            Policy::TimeSharing(p) => {
                if p.quantum_ns == 0 {
                    return Err(ConfigError::Invalid {
                        field: "ts.quantum_ns",
                        value: "0".into(),
                        why: "must be at least 1",
                    });
                }
                if !(p.slo_factor.is_finite() && p.slo_factor > 0.0) {
                    return Err(ConfigError::Invalid {
                        field: "ts.slo_factor",
                        value: p.slo_factor.to_string(),
                        why: "must be a positive number",
                    });
                }
                let means =
                    configured_means(policy, &config.types, "the SLO is slo_factor × mean")?;
                let mut inverse_slo = Vec::with_capacity(n_types);
                for (t, &m) in config.types.iter().zip(&means) {
                    if m == 0 {
                        return Err(policy_error(
                            policy,
                            format!("request type {:?} has mean_ns 0 (SLO would be 0)", t.name),
                        ));
                    }
                    inverse_slo.push(1.0 / (p.slo_factor * m as f64));
                }
                ring_capacity = config.queue_capacity + workers;
                (
                    Engine::TimeSharing {
                        inverse_slo: inverse_slo.into_boxed_slice(),
                        quantum_ns: p.quantum_ns,
                    },
                    typed_queues,
                )
            }
            Policy::Darc(p) => {
                validate_darc_params(p)?;
                let fixed = p.fixed_allocation.is_some();
                let dynamic = p.dynamic && !fixed;
                let mut darc = Darc::new(p.clone(), n_types, workers, dynamic);
                if !dynamic {
                    let means = configured_means(
                        policy,
                        &config.types,
                        "DARC without profiling plans from configured means",
                    )?;
                    let mut ratios = Vec::with_capacity(n_types);
                    for t in &config.types {
                        ratios.push(match (t.ratio, fixed) {
                            (Some(r), _) => r,
                            (None, true) => 0.0,
                            (None, false) => {
                                return Err(policy_error(
                                    policy,
                                    format!(
                                        "request type {:?} has no ratio (DARC without profiling \
                                         plans from configured ratios)",
                                        t.name
                                    ),
                                ))
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
                        Some(alloc) => plan_with_allocation(&profiles, workers, p.delta, alloc)?,
                        None => plan_reservations(&profiles, workers, p),
                    };
                    let means_f: Vec<f64> = means.iter().map(|&m| m as f64).collect();
                    darc.means_ns.copy_from_slice(&means_f);
                    darc.ratios.copy_from_slice(&ratios);
                    initial_plan = Some((plan, means_f, ratios));
                }
                (Engine::Darc(Box::new(darc)), typed_queues + 1)
            }
            Policy::DarcStatic { reserved_short } => {
                let k = *reserved_short;
                if k >= workers {
                    return Err(ConfigError::Invalid {
                        field: "darc-static.reserved_short",
                        value: k.to_string(),
                        why: "must be in 0..=workers-1 (longer types need at least one worker)",
                    });
                }
                let configured = config.types.iter().filter(|t| t.mean_ns.is_some()).count();
                let order = if configured == 0 {
                    (0..n_types).collect()
                } else {
                    order_by_mean(&configured_means(
                        policy,
                        &config.types,
                        "means must be given for all types or none",
                    )?)
                };
                let plan = static_plan(&order, &config.types, workers, k);
                let means: Vec<f64> = config
                    .types
                    .iter()
                    .map(|t| t.mean_ns.map_or(0.0, |m| m as f64))
                    .collect();
                let ratios: Vec<f64> = config
                    .types
                    .iter()
                    .map(|t| t.ratio.unwrap_or(0.0))
                    .collect();
                initial_plan = Some((plan, means, ratios));
                let darc = Darc::new(DarcParams::default(), n_types, workers, false);
                (Engine::Darc(Box::new(darc)), typed_queues)
            }
        };
        let queues: Vec<RingQueue<Queued>> = (0..queue_count)
            .map(|_| RingQueue::with_capacity(ring_capacity))
            .collect();
        let mut scheduler = Self {
            n_types,
            wire_ids: config.types.iter().map(|t| t.wire_id).collect(),
            queues: queues.into_boxed_slice(),
            nonempty: 0,
            queued_by_type: vec![0; typed_queues].into_boxed_slice(),
            queued_total: 0,
            running: vec![None; workers].into_boxed_slice(),
            idle: WorkerSet::range(0, workers),
            quantum_ns: match &engine {
                Engine::TimeSharing { quantum_ns, .. } => Some(*quantum_ns),
                _ => None,
            },
            engine,
            updates: VecDeque::new(),
            counters: SchedulerCounters::default(),
            config,
        };
        if let Some((plan, means_ns, ratios)) = initial_plan {
            scheduler.apply_plan(0, 0, 0, means_ns, ratios, plan);
        }
        Ok(scheduler)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// The registered types, indexed by [`TypeIndex`].
    pub fn types(&self) -> &[RequestTypeSpec] {
        &self.config.types
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    /// Maps a wire type id to its class; unregistered ids are [`TypeIndex::UNKNOWN`].
    #[inline]
    pub fn classify(&self, wire_type: u32) -> TypeIndex {
        match self.wire_ids.iter().position(|&w| w == wire_type) {
            Some(i) => TypeIndex(i as u16),
            None => TypeIndex::UNKNOWN,
        }
    }

    /// Type slot (`n_types` for UNKNOWN) of any `TypeIndex`: out-of-range indices are UNKNOWN.
    #[inline]
    fn slot_of(&self, ty: TypeIndex) -> usize {
        let t = usize::from(ty.0);
        if t < self.n_types {
            t
        } else {
            self.n_types
        }
    }

    #[inline]
    fn type_of_slot(&self, slot: usize) -> TypeIndex {
        if slot < self.n_types {
            TypeIndex(slot as u16)
        } else {
            TypeIndex::UNKNOWN
        }
    }

    #[inline]
    fn push(&mut self, q: usize, item: Queued) -> Result<(), Queued> {
        self.queues[q].push_back(item)?;
        self.nonempty |= 1u128 << q;
        self.queued_by_type[self.slot_of(item.ty)] += 1;
        self.queued_total += 1;
        Ok(())
    }

    #[inline]
    fn pop(&mut self, q: usize) -> Option<Queued> {
        let item = self.queues[q].pop_front()?;
        if self.queues[q].is_empty() {
            self.nonempty &= !(1u128 << q);
        }
        self.queued_by_type[self.slot_of(item.ty)] -= 1;
        self.queued_total -= 1;
        Some(item)
    }

    #[inline]
    fn has(&self, q: usize) -> bool {
        self.nonempty & (1u128 << q) != 0
    }

    /// A request arrives. `Err` hands the token back (counted drop). A `ty` that is not a
    /// registered index is treated as UNKNOWN.
    #[inline]
    pub fn on_arrival(
        &mut self,
        now_ns: Nanos,
        ty: TypeIndex,
        token: Token,
    ) -> Result<(), Rejected> {
        let slot = self.slot_of(ty);
        let ty = self.type_of_slot(slot);
        if ty.is_unknown() {
            self.counters.unknown_arrivals += 1;
        }
        let q = match &mut self.engine {
            Engine::Cfcfs => 0,
            Engine::Dfcfs { next_worker } => {
                let w = *next_worker;
                *next_worker = if w + 1 >= self.config.workers {
                    0
                } else {
                    w + 1
                };
                w
            }
            Engine::Darc(d) if d.phase == DarcPhase::Bootstrap => self.n_types + 1,
            _ => slot,
        };
        if self.queues[q].len() >= self.config.queue_capacity {
            self.counters.rejected += 1;
            return Err(Rejected {
                token,
                reason: RejectReason::QueueFull,
            });
        }
        let item = Queued {
            token,
            ty,
            arrival_ns: now_ns,
        };
        if let Err(item) = self.push(q, item) {
            // Unreachable: admission above keeps every ring below its capacity.
            self.counters.rejected += 1;
            return Err(Rejected {
                token: item.token,
                reason: RejectReason::QueueFull,
            });
        }
        self.counters.accepted += 1;
        Ok(())
    }

    /// Pops the head of queue `q` onto idle worker `w`.
    #[inline]
    fn start(&mut self, q: usize, w: usize, now_ns: Nanos) -> Option<Dispatch> {
        let item = self.pop(q)?;
        self.idle.remove(w);
        self.running[w] = Some(Running {
            token: item.token,
            ty: item.ty,
            arrival_ns: item.arrival_ns,
            dispatched_ns: now_ns,
        });
        self.counters.dispatched += 1;
        Some(Dispatch {
            worker: WorkerId(w as u16),
            token: item.token,
            ty: item.ty,
            quantum_ns: self.quantum_ns,
        })
    }

    /// The next decision, if any worker can take a request now. Call until `None`.
    /// Under `darc` this is also where profiling is evaluated (bootstrap switch, update trigger).
    #[inline]
    pub fn next_dispatch(&mut self, now_ns: Nanos) -> Option<Dispatch> {
        self.darc_check_update(now_ns);
        if self.idle.is_empty() || self.nonempty == 0 {
            return None;
        }
        let (q, w) = match &self.engine {
            Engine::Cfcfs => (0, self.idle.lowest()?),
            Engine::Dfcfs { .. } => {
                let w = WorkerSet(self.idle.0 & self.nonempty).lowest()?;
                (w, w)
            }
            Engine::Sjf { order } => {
                let q = order.iter().copied().find(|&q| self.has(q))?;
                (q, self.idle.lowest()?)
            }
            Engine::Edf { deadline_ns } => {
                let mut best: Option<(Nanos, usize)> = None;
                let mut bits = self.nonempty;
                while bits != 0 {
                    let q = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(head) = self.queues[q].front() {
                        let due = head.arrival_ns.saturating_add(deadline_ns[q]);
                        if best.is_none_or(|(b, _)| due < b) {
                            best = Some((due, q));
                        }
                    }
                }
                (best?.1, self.idle.lowest()?)
            }
            Engine::TimeSharing { inverse_slo, .. } => {
                let mut best: Option<(f64, usize)> = None;
                let mut bits = self.nonempty & !(1u128 << self.n_types);
                while bits != 0 {
                    let q = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(head) = self.queues[q].front() {
                        let score = now_ns.saturating_sub(head.arrival_ns) as f64 * inverse_slo[q];
                        if best.is_none_or(|(b, _)| score > b) {
                            best = Some((score, q));
                        }
                    }
                }
                let q = best.map_or(self.n_types, |(_, q)| q);
                (q, self.idle.lowest()?)
            }
            Engine::Darc(d) => match d.phase {
                DarcPhase::Bootstrap => (self.n_types + 1, self.idle.lowest()?),
                DarcPhase::Reserved => self.darc_choice(d)?,
            },
        };
        self.start(q, w, now_ns)
    }

    /// DARC dispatch (reference §1.8): types by ascending mean; first idle reserved worker,
    /// else first idle stealable one, else the next type; UNKNOWN only on the spillway.
    #[inline]
    fn darc_choice(&self, d: &Darc) -> Option<(usize, usize)> {
        for &t in &d.order {
            if self.has(t) {
                let mut candidates = self.idle.and(d.reserved[t]);
                if candidates.is_empty() {
                    candidates = self.idle.and(d.stealable[t]);
                }
                if let Some(w) = candidates.lowest() {
                    return Some((t, w));
                }
            }
        }
        if self.has(self.n_types) && self.idle.contains(d.spillway) {
            return Some((self.n_types, d.spillway));
        }
        None
    }

    /// The bootstrap switch and the steady-state update trigger (reference §1.5), inlined on
    /// the dispatch path: after `samples_needed` samples, an update is due when a type (in
    /// ascending-mean order) has a second-in-line request that waited longer than its
    /// `max_delay`. In steady state this scan runs on every call, as in the original.
    #[inline]
    fn darc_check_update(&mut self, now_ns: Nanos) {
        let Engine::Darc(d) = &self.engine else {
            return;
        };
        if !d.dynamic {
            return;
        }
        let due = match d.phase {
            DarcPhase::Bootstrap => self.counters.dispatched > d.params.samples_needed,
            DarcPhase::Reserved => {
                d.window_count > d.params.samples_needed
                    && self.queued_total >= 2
                    && d.order.iter().any(|&t| {
                        self.queues[t].get(1).is_some_and(|second| {
                            now_ns.saturating_sub(second.arrival_ns) > d.max_delay_ns[t]
                        })
                    })
            }
        };
        if due {
            self.darc_update(now_ns);
        }
    }

    /// The bootstrap switch or a steady-state `update_darc()`, and applying its plan.
    #[cold]
    #[inline(never)]
    fn darc_update(&mut self, now_ns: Nanos) {
        let Engine::Darc(d) = &mut self.engine else {
            return;
        };
        if d.phase == DarcPhase::Bootstrap {
            d.window_start_ns = now_ns;
            d.window_count = self.counters.dispatched;
            d.phase = DarcPhase::Reserved;
        }
        let bootstrap_switch = d.plan.is_none();
        let samples = d.window_count;
        let start_ns = d.window_start_ns;
        self.counters.darc_evaluations += 1;
        let plan = d.evaluate(self.config.workers, bootstrap_switch);
        if bootstrap_switch {
            self.move_bootstrap_queue();
        }
        if let Some(plan) = plan {
            let Engine::Darc(d) = &self.engine else {
                return;
            };
            let (means, ratios) = (d.means_ns.to_vec(), d.ratios.to_vec());
            self.apply_plan(start_ns, now_ns, samples, means, ratios, plan);
            if let Engine::Darc(d) = &mut self.engine {
                d.window_start_ns = now_ns;
            }
        }
    }

    /// Moves what the bootstrap c-FCFS FIFO holds, in order, to the typed queues.
    fn move_bootstrap_queue(&mut self) {
        let central = self.n_types + 1;
        while let Some(item) = self.pop(central) {
            let slot = self.slot_of(item.ty);
            if self.push(slot, item).is_err() {
                // Unreachable: each typed ring is as large as the central one.
                self.counters.rejected += 1;
            }
        }
    }

    /// Installs `plan` and records it.
    fn apply_plan(
        &mut self,
        start_ns: Nanos,
        end_ns: Nanos,
        samples: u64,
        means_ns: Vec<f64>,
        ratios: Vec<f64>,
        plan: ReservationPlan,
    ) {
        let Engine::Darc(d) = &mut self.engine else {
            return;
        };
        let window_id = d.next_window_id;
        d.next_window_id += 1;
        d.install(plan.clone());
        self.counters.plan_updates += 1;
        if self.updates.len() >= PLAN_UPDATE_CAPACITY {
            self.updates.pop_front();
            self.counters.plan_updates_dropped += 1;
        }
        self.updates.push_back(PlanUpdate {
            window_id,
            start_ns,
            end_ns,
            samples,
            queue_lens: self.queued_by_type[..self.n_types].to_vec(),
            means_ns,
            ratios,
            plan,
        });
    }

    /// `worker` finished its request.
    #[inline]
    pub fn on_completion(
        &mut self,
        now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<Completed, CompletionError> {
        let r = self.take_running(worker)?;
        self.counters.completed += 1;
        let service_ns = now_ns.saturating_sub(r.dispatched_ns);
        if let Engine::Darc(d) = &mut self.engine {
            if d.dynamic {
                d.window_count += 1;
                if let Some(t) = r.ty.index().filter(|&t| t < self.n_types) {
                    d.service_sum_ns[t] = d.service_sum_ns[t].saturating_add(service_ns);
                    d.service_count[t] += 1;
                }
            }
        }
        Ok(Completed {
            token: r.token,
            ty: r.ty,
            service_ns,
        })
    }

    fn take_running(&mut self, worker: WorkerId) -> Result<Running, CompletionError> {
        let w = worker.index();
        let Some(slot) = self.running.get_mut(w) else {
            self.counters.invalid_notifications += 1;
            return Err(CompletionError::NoSuchWorker(worker));
        };
        let Some(r) = slot.take() else {
            self.counters.invalid_notifications += 1;
            return Err(CompletionError::WorkerIdle(worker));
        };
        self.idle.insert(w);
        Ok(r)
    }

    /// `ts` only: `worker`'s quantum expired before its request finished; the request goes back
    /// to the tail of its type's queue (keeping its arrival time) and the worker is idle again.
    /// The preemption cost ([`crate::TimeSharingParams::preemption_cost_ns`]) is the driver's to
    /// charge (the simulator keeps the worker busy that long before calling this). Any other
    /// policy answers [`CompletionError::NotPreemptive`] and changes nothing.
    pub fn on_preempted(
        &mut self,
        _now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<(), CompletionError> {
        if !matches!(self.engine, Engine::TimeSharing { .. }) {
            self.counters.invalid_notifications += 1;
            return Err(CompletionError::NotPreemptive(worker));
        }
        let r = self.take_running(worker)?;
        let slot = self.slot_of(r.ty);
        let item = Queued {
            token: r.token,
            ty: r.ty,
            arrival_ns: r.arrival_ns,
        };
        if self.push(slot, item).is_err() {
            // Unreachable (module invariant: queued + running ≤ capacity + workers per type).
            // Keep the request on its worker rather than lose it.
            self.idle.remove(worker.index());
            self.running[worker.index()] = Some(r);
            self.counters.invalid_notifications += 1;
            return Err(CompletionError::NotPreemptive(worker));
        }
        self.counters.preempted += 1;
        Ok(())
    }

    /// The next applied reservation change (DARC), oldest first.
    pub fn poll_plan_update(&mut self) -> Option<PlanUpdate> {
        self.updates.pop_front()
    }

    /// The current DARC plan, if the policy has one and it has been computed.
    pub fn plan(&self) -> Option<&ReservationPlan> {
        match &self.engine {
            Engine::Darc(d) if d.phase == DarcPhase::Reserved => d.plan.as_ref(),
            _ => None,
        }
    }

    /// Requests queued for `ty` (UNKNOWN included; an unregistered index counts as UNKNOWN).
    pub fn queue_len(&self, ty: TypeIndex) -> usize {
        self.queued_by_type[self.slot_of(ty)]
    }

    /// Requests queued in all queues.
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// Whether `worker` is idle (`false` for a worker that does not exist).
    pub fn is_idle(&self, worker: WorkerId) -> bool {
        worker.index() < self.config.workers && self.idle.contains(worker.index())
    }

    /// Counters.
    pub fn counters(&self) -> &SchedulerCounters {
        &self.counters
    }

    /// Whether DARC is still in its c-FCFS bootstrap (always `false` for other policies).
    pub fn in_bootstrap(&self) -> bool {
        matches!(&self.engine, Engine::Darc(d) if d.phase == DarcPhase::Bootstrap)
    }
}

/// darc-static's plan: the first type of `order` alone reserves `[0, k)` and steals `[k, n)`;
/// the others share `[k, n)`; the spillway is worker `n - 1`.
fn static_plan(
    order: &[usize],
    types: &[RequestTypeSpec],
    workers: usize,
    k: usize,
) -> ReservationPlan {
    let ids = |r: std::ops::Range<usize>| r.map(|w| WorkerId(w as u16)).collect::<Vec<_>>();
    let mean = |t: usize| types[t].mean_ns.map_or(0.0, |m| m as f64);
    let mut groups = Vec::new();
    if let Some((&short, rest)) = order.split_first() {
        groups.push(crate::TypeGroup {
            members: vec![TypeIndex(short as u16)],
            leader_mean_ns: mean(short),
            demand_workers: k as f64,
            reserved: ids(0..k),
            stealable: ids(k..workers),
            uses_spillway: false,
        });
        if let Some(&leader) = rest.first() {
            groups.push(crate::TypeGroup {
                members: rest.iter().map(|&t| TypeIndex(t as u16)).collect(),
                leader_mean_ns: mean(leader),
                demand_workers: (workers - k) as f64,
                reserved: ids(k..workers),
                stealable: Vec::new(),
                uses_spillway: false,
            });
        }
    }
    ReservationPlan {
        groups,
        spillway: Some(WorkerId((workers - 1) as u16)),
    }
}

#[cfg(test)]
mod tests;
