//! The [`Scheduler`] state machine: type table, workers, and the policy it drives.
//!
//! ## Layout
//! - `state` ([`SchedulerState`]): the fixed-capacity queues, allocated in [`Scheduler::new`]
//!   in the number and depth the policy's [`QueueLayout`] asks for (what a queue index means is
//!   the policy's business, see each module of [`crate::policy`]), the counters and the plan
//!   records.
//! - `idle`: bit `w` set iff worker `w` holds no request; `running[w]` is the request it runs.
//!   With `worker_queue_depth: 2`, `behind[w]` is the one waiting behind it (`behind` is empty
//!   at depth 1) and `full` has bit `w` set iff `behind[w]` is taken.
//! - `engine`: the built policy (static dispatch over the built-ins, see [`crate::policy`]).
//!
//! ## Invariants
//! - `idle` bit `w` ⇔ `running[w].is_none()`; `full` bit `w` ⇔ `behind[w].is_some()`, and
//!   `behind[w]` is taken only while `running[w]` is. A worker is given a request only while it
//!   has room: first the idle ones, then (depth 2) those with a free second slot. Depth 1 never
//!   touches `behind` or `full`: its per-request path is the one-slot scheduler's.
//! - Admission: an arrival is refused when its queue holds `queue_capacity` entries (a
//!   policy's [`QueueLayout::extra_slots`] are only for requests that come back, such as `ts`
//!   preemptions).
//! - Every token accepted is either queued once, or held by exactly one worker.
//! - Nothing on the per-request path (`classify`, `on_arrival`, `next_dispatch`,
//!   `on_completion`, `on_preempted`) allocates, except DARC applying a new plan (at most once
//!   per `samples_needed` completions), which builds the [`crate::ReservationPlan`] and its
//!   [`crate::PlanUpdate`] record.
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

use crate::policy::{BuildContext, Engine, PolicyCore, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::{QueuedRequest, SchedulerState};
use crate::{
    Completed, CompletionError, ConfigError, Dispatch, Nanos, PlanUpdate, Policy, RejectReason,
    Rejected, RequestTypeSpec, ReservationPlan, SchedulerConfig, Token, TypeIndex, WorkerId,
    MAX_QUEUE_CAPACITY, MAX_TYPES, MAX_WORKERS,
};

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
    /// DARC with `plan: model`: re-plans by the model planner (evaluations that ran it).
    pub darc_model_replans: u64,
    /// DARC with `plan: model`: candidate allocations the model evaluated, over all
    /// re-plans (÷ `darc_model_replans` = candidates per re-plan).
    pub darc_model_candidates: u64,
    /// DARC: reservation plans applied (bootstrap switch, updates, or the fixed plan).
    pub plan_updates: u64,
    /// DARC: formula re-plans not applied because the plan in force still fits within
    /// `rounding_hysteresis`.
    pub darc_plans_kept: u64,
    /// DARC: plan records dropped because nobody polled them (buffer full).
    pub plan_updates_dropped: u64,
    /// Policy switches applied ([`Scheduler::switch_policy`]).
    pub policy_switches: u64,
    /// Queued requests a switch could not place in the new policy's queues (handed back).
    pub switch_rejected: u64,
    /// Dispatches to a worker that already held a request (`worker_queue_depth: 2`).
    pub dispatched_behind: u64,
}

/// A request a worker holds.
#[derive(Copy, Clone, Debug)]
struct Running {
    token: Token,
    ty: TypeIndex,
    arrival_ns: Nanos,
    /// When the worker could start it: its dispatch, or for a request dispatched behind
    /// another, that one's completion (so DARC profiles service, not the wait behind it).
    dispatched_ns: Nanos,
    /// Dispatched with a quantum: only such a request may be preempted.
    sliced: bool,
}

/// The sans-IO scheduler. See the crate docs for the driving loop.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    wire_ids: Box<[u32]>,
    state: SchedulerState,
    running: Box<[Option<Running>]>,
    idle: WorkerSet,
    /// Depth 2: the request waiting behind each worker's (empty at depth 1).
    behind: Box<[Option<Running>]>,
    full: WorkerSet,
    engine: Engine,
    /// The policy's quantum (`Some` under `ts`), read once.
    quantum_ns: Option<Nanos>,
}

/// Checks what every policy relies on: worker and type counts, queue capacity, distinct
/// types, ratios in [0, 1].
fn validate_common(config: &SchedulerConfig) -> Result<(), ConfigError> {
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
    config.check_worker_queue_depth()?;
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
    Ok(())
}

/// Builds `config.policy`'s engine and checks its queue layout and, at depth 2, that it does
/// not preempt (what `new` and a policy switch both need).
fn build_engine(config: &SchedulerConfig) -> Result<(Engine, QueueLayout), ConfigError> {
    let engine = Engine::build(&BuildContext::new(config))?;
    let layout = engine.layout();
    validate_layout(&config.policy, layout)?;
    if config.worker_queue_depth > 1 && engine.quantum_ns().is_some() {
        // A custom preemptive policy: the same rule as `ts`'s.
        return Err(ConfigError::Invalid {
            field: "worker_queue_depth",
            value: config.worker_queue_depth.to_string(),
            why: "a preemptive policy preempts the request a worker runs: it needs depth 1",
        });
    }
    Ok((engine, layout))
}

/// Checks a policy's queue layout (a custom policy's could be anything).
fn validate_layout(policy: &Policy, layout: QueueLayout) -> Result<(), ConfigError> {
    if layout.queues == 0 || layout.queues > 128 {
        return Err(ConfigError::Policy {
            policy: policy.name(),
            why: format!(
                "asks for {} queues: must be between 1 and 128",
                layout.queues
            ),
        });
    }
    Ok(())
}

impl Scheduler {
    /// Builds a scheduler; validates the configuration (errors name the field or type).
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        validate_common(&config)?;
        let (mut engine, layout) = build_engine(&config)?;
        let (workers, n_types) = (config.workers, config.types.len());
        let mut state = SchedulerState::new(
            n_types,
            workers,
            layout.queues,
            config.queue_capacity + layout.extra_slots,
        );
        engine.on_start(&mut state);
        Ok(Self {
            wire_ids: config.types.iter().map(|t| t.wire_id).collect(),
            state,
            running: vec![None; workers].into_boxed_slice(),
            idle: WorkerSet::range(0, workers),
            behind: vec![
                None;
                if config.worker_queue_depth > 1 {
                    workers
                } else {
                    0
                }
            ]
            .into_boxed_slice(),
            full: WorkerSet::EMPTY,
            quantum_ns: engine.quantum_ns(),
            engine,
            config,
        })
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

    /// A request arrives. `Err` hands the token back (counted drop). A `ty` that is not a
    /// registered index is treated as UNKNOWN.
    #[inline]
    pub fn on_arrival(
        &mut self,
        now_ns: Nanos,
        ty: TypeIndex,
        token: Token,
    ) -> Result<(), Rejected> {
        let slot = self.state.slot_of(ty);
        let ty = self.state.type_of_slot(slot);
        if ty.is_unknown() {
            self.state.counters.unknown_arrivals += 1;
        }
        let q = self.engine.arrival_queue(slot, &self.state);
        if self.state.len(q) >= self.config.queue_capacity {
            self.state.counters.rejected += 1;
            return Err(Rejected {
                token,
                reason: RejectReason::QueueFull,
            });
        }
        let item = QueuedRequest {
            token,
            ty,
            arrival_ns: now_ns,
        };
        if let Err(item) = self.state.push(q, item) {
            // Unreachable: admission above keeps every ring below its capacity.
            self.state.counters.rejected += 1;
            return Err(Rejected {
                token: item.token,
                reason: RejectReason::QueueFull,
            });
        }
        self.state.counters.accepted += 1;
        Ok(())
    }

    /// Pops the head of queue `q` onto worker `w`, which has room.
    #[inline]
    fn start(&mut self, q: usize, w: usize, now_ns: Nanos) -> Option<Dispatch> {
        let stolen = self.engine.is_steal(q, w);
        let quantum_ns = match self.quantum_ns {
            Some(_) => self.engine.slice_ns(q, w),
            None => None,
        };
        let item = self.state.pop(q)?;
        let running = Running {
            token: item.token,
            ty: item.ty,
            arrival_ns: item.arrival_ns,
            dispatched_ns: now_ns,
            sliced: quantum_ns.is_some(),
        };
        let behind = self.running[w].is_some();
        if behind {
            // Only `dispatch_behind` (depth 2) names a busy worker.
            self.behind[w] = Some(running);
            self.full.insert(w);
            self.state.counters.dispatched_behind += 1;
        } else {
            self.running[w] = Some(running);
            self.idle.remove(w);
        }
        self.state.counters.dispatched += 1;
        Some(Dispatch {
            worker: WorkerId(w as u16),
            token: item.token,
            ty: item.ty,
            quantum_ns,
            stolen,
            behind,
        })
    }

    /// The next decision, if any worker can take a request now. Call until `None`.
    /// Under `darc` this is also where profiling is evaluated (bootstrap switch, update trigger).
    ///
    /// The policy is asked about the idle workers first; with `worker_queue_depth: 2`, when it
    /// places nothing there, it is asked again about the busy workers with a free second slot
    /// ([`crate::PolicyCore::choose_behind`]), by the same rule (a worker reserved for one type
    /// gets another type behind its current request only if the policy would give it that type
    /// when idle). Stealing is what an idle worker does: a second slot never takes a steal
    /// (`ws`) nor, under DARC, a type the worker is only stealable for (a short request would
    /// wait behind a long one, the blocking DARC exists to avoid).
    #[inline]
    pub fn next_dispatch(&mut self, now_ns: Nanos) -> Option<Dispatch> {
        self.engine.before_dispatch(now_ns, &mut self.state);
        if self.state.nonempty_mask() == 0 {
            return None;
        }
        // Built-in policies answer with a queue they own and a worker of the set they were
        // given; a custom one is checked by `policy::Guarded`.
        if !self.idle.is_empty() {
            if let Some((q, w)) = self.engine.choose(now_ns, &self.state, self.idle) {
                return self.start(q, w, now_ns);
            }
        }
        if self.behind.is_empty() {
            return None;
        }
        self.dispatch_behind(now_ns)
    }

    /// Depth 2: the policy's decision among the busy workers with a free second slot (out of
    /// line: depth 1 never comes here).
    #[inline(never)]
    fn dispatch_behind(&mut self, now_ns: Nanos) -> Option<Dispatch> {
        let (q, w) = self.choose_behind(now_ns)?;
        self.start(q, w, now_ns)
    }

    /// Depth 2: the policy's `(queue, worker)` among the busy workers with a free second slot.
    fn choose_behind(&self, now_ns: Nanos) -> Option<(usize, usize)> {
        let busy = WorkerSet::range(0, self.config.workers).0 & !self.idle.0;
        let second = WorkerSet(busy & !self.full.0);
        if second.is_empty() {
            return None;
        }
        self.engine.choose_behind(now_ns, &self.state, second)
    }

    /// `worker` finished its oldest request (the one it runs).
    #[inline]
    pub fn on_completion(
        &mut self,
        now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<Completed, CompletionError> {
        let r = self.take_running(now_ns, worker)?;
        self.state.counters.completed += 1;
        let service_ns = now_ns.saturating_sub(r.dispatched_ns);
        let slot = r.ty.index().filter(|&t| t < self.state.n_types());
        self.engine.on_completion(slot, service_ns);
        Ok(Completed {
            token: r.token,
            ty: r.ty,
            service_ns,
        })
    }

    /// Takes `worker`'s oldest request; the one behind it, if any, becomes the one it runs,
    /// started at `now_ns` at the earliest.
    #[inline]
    fn take_running(
        &mut self,
        now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<Running, CompletionError> {
        let w = worker.index();
        let Some(slot) = self.running.get_mut(w) else {
            self.state.counters.invalid_notifications += 1;
            return Err(CompletionError::NoSuchWorker(worker));
        };
        let Some(r) = slot.take() else {
            self.state.counters.invalid_notifications += 1;
            return Err(CompletionError::WorkerIdle(worker));
        };
        match self.behind.get_mut(w).and_then(Option::take) {
            Some(mut next) => {
                next.dispatched_ns = next.dispatched_ns.max(now_ns);
                *slot = Some(next);
                self.full.remove(w);
            }
            None => self.idle.insert(w),
        }
        Ok(r)
    }

    /// Preemptive policies (`ts`, `darc-ts`): `worker`'s quantum expired before its request
    /// finished; the request goes back to the tail of its type's queue (keeping its arrival
    /// time) and the worker is idle again. The preemption cost
    /// ([`crate::TimeSharingParams::preemption_cost_ns`]) is the driver's to charge (the
    /// simulator keeps the worker busy that long before calling this). A policy without a
    /// quantum, or a request dispatched without one, answers
    /// [`CompletionError::NotPreemptive`] and changes nothing.
    pub fn on_preempted(&mut self, now_ns: Nanos, worker: WorkerId) -> Result<(), CompletionError> {
        let unsliced = self
            .running
            .get(worker.index())
            .and_then(Option::as_ref)
            .is_some_and(|r| !r.sliced);
        if self.quantum_ns.is_none() || unsliced {
            self.state.counters.invalid_notifications += 1;
            return Err(CompletionError::NotPreemptive(worker));
        }
        let r = self.take_running(now_ns, worker)?;
        let slot = self.state.slot_of(r.ty);
        let item = QueuedRequest {
            token: r.token,
            ty: r.ty,
            arrival_ns: r.arrival_ns,
        };
        if slot >= self.state.queue_count() || self.state.push(slot, item).is_err() {
            // Unreachable for `ts` (its rings have `workers` extra slots): keep the request on
            // its worker rather than lose it (`ts` runs at depth 1: slot 0 was its only one).
            self.idle.remove(worker.index());
            self.running[worker.index()] = Some(r);
            self.state.counters.invalid_notifications += 1;
            return Err(CompletionError::NotPreemptive(worker));
        }
        self.state.counters.preempted += 1;
        let typed = (slot < self.state.n_types()).then_some(slot);
        self.engine
            .on_preempted(typed, now_ns.saturating_sub(r.dispatched_ns));
        Ok(())
    }

    /// The next applied reservation change (DARC), oldest first.
    pub fn poll_plan_update(&mut self) -> Option<PlanUpdate> {
        self.state.poll_plan_update()
    }

    /// The current DARC plan, if the policy has one and it has been computed.
    pub fn plan(&self) -> Option<&ReservationPlan> {
        self.engine.plan()
    }

    /// Requests queued for `ty` (UNKNOWN included; an unregistered index counts as UNKNOWN).
    pub fn queue_len(&self, ty: TypeIndex) -> usize {
        self.state.queued_by_type()[self.state.slot_of(ty)]
    }

    /// Requests queued in all queues.
    pub fn queued(&self) -> usize {
        self.state.queued()
    }

    /// Whether `worker` holds no request (`false` for a worker that does not exist).
    pub fn is_idle(&self, worker: WorkerId) -> bool {
        worker.index() < self.config.workers && self.idle.contains(worker.index())
    }

    /// Requests `worker` holds: 0 when idle, at most `worker_queue_depth` (0 for a worker that
    /// does not exist).
    pub fn held(&self, worker: WorkerId) -> usize {
        let w = worker.index();
        let taken =
            |slots: &[Option<Running>]| usize::from(slots.get(w).is_some_and(Option::is_some));
        taken(&self.running) + taken(&self.behind)
    }

    /// Requests a worker may hold at once (`worker_queue_depth`).
    pub fn worker_queue_depth(&self) -> usize {
        self.config.worker_queue_depth
    }

    /// Counters.
    pub fn counters(&self) -> &SchedulerCounters {
        self.state.counters()
    }

    /// Whether DARC is still in its c-FCFS bootstrap (always `false` for other policies).
    pub fn in_bootstrap(&self) -> bool {
        self.engine.in_bootstrap()
    }
}

#[cfg(test)]
mod jbsq_tests;
mod shadow;
mod switch;
#[cfg(test)]
mod tests;

pub use shadow::ShadowVerdict;
