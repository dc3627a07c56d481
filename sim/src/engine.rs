//! One simulated run: one workload, one policy, one offered load.
//!
//! ## Model
//! - Virtual time in ns (`u64`). Open-loop arrivals from the workload's phases (Poisson or
//!   uniform gaps, per-type service-time distributions), `requests` arrivals in all; phase `i`
//!   gets a share of them proportional to `rate_i × duration_i`, so phases keep their relative
//!   lengths in time.
//! - `workers` workers, each running one request at a time. With `worker_queue_depth: 2`
//!   (JBSQ(2), the scheduler's option) a worker also holds the next request, which it starts
//!   itself the moment the current one completes, without waiting for the dispatcher: the
//!   completion-notification cost then no longer delays the worker's next request. (The
//!   scheduler profiles that request from the notification's handling, `completion_cost_ns`
//!   later than its real start.)
//! - The dispatcher is a single server: processing an arrival costs `dispatch_cost_ns` and
//!   processing a completion notification costs `completion_cost_ns`; these serialize (an event
//!   is handled at `max(event time, dispatcher free) + cost`). The scheduler sees that handling
//!   time as `now`. Both costs default to 0.
//! - A request's latency is `completion − arrival`: the worker answers the client itself, so
//!   the completion-notification cost delays the worker's next request, not the response.
//! - Time sharing (`ts`, and `darc-ts`'s sliced dispatches): a dispatch with a quantum runs
//!   `min(remaining, quantum)`; if work is left, the worker is busy for the quantum plus
//!   `preemption_cost_ns`, and then the driver calls `on_preempted` (the request rejoins its
//!   queue).
//! - A rejected arrival (queue full) is a drop. After the last arrival the run continues until
//!   every accepted request has completed, so every arrival either completes or is dropped.
//! - The first `warmup_fraction` of arrivals (by arrival order) are simulated but not recorded.
//! - Rates: `offered` = measured arrivals / measurement window (first measured arrival to last
//!   arrival); `achieved` = measured requests completed within that window / window. A system
//!   that keeps up completes all but the few requests in flight at the end; an overloaded one
//!   falls behind by the growing backlog (and the drops), which the SLO check catches.
//! - Statistics: per type and overall (`RunResult::stats`), per phase for multi-phase
//!   workloads, and optionally a timeline of arrival-time windows (`timeline_window_ns`).
//!
//! ## Events
//! Each worker has at most one pending event (its completion or its preemption), kept in a
//! binary heap ordered by `(time, worker)`; the next arrival is kept aside and generated lazily.
//! Ties go to the worker event first (a freed worker is visible to the arrival at the same ns).
//! Everything is deterministic for a given seed.
//!
//! ## Cost
//! In-flight requests live in a slab with a free list (grown to the peak number in flight, then
//! reused), histograms are preallocated, and the scheduler allocates nothing per request: the
//! steady-state loop does not allocate.
//!
//! Tested by `tests/engine.rs` (determinism, conservation, M/M/1, DARC vs c-FCFS, dispatcher
//! costs, preemption, phases) and `tests/properties.rs` (conservation and determinism under
//! random policies, worker counts, loads, queue capacities and costs).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hdrhistogram::Histogram;
use psp_scheduler::{
    ConfigError, Dispatch, Nanos, Policy, RequestTypeSpec, Scheduler, SchedulerConfig, Token,
    TypeIndex, WorkerId, DEFAULT_QUEUE_CAPACITY,
};
use psp_workload::spec::NS_PER_S;
use psp_workload::stats::{
    quantile_with_infinite, round_to_u64, SIGNIFICANT_DIGITS, SLOWDOWN_SCALE,
};
use psp_workload::{PhaseGenerator, RunStats, Workload};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Default share of arrivals discarded as warm-up (the original client drops the first 10 %,
/// docs/design.md §5.5).
pub const DEFAULT_WARMUP_FRACTION: f64 = 0.1;

/// Errors of a simulated run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scheduler refused its configuration.
    #[error("policy {policy}: {error}")]
    Scheduler {
        /// The policy's name.
        policy: &'static str,
        /// Its error.
        error: ConfigError,
    },
    /// A run parameter is out of range.
    #[error("{field} = {value}: {why}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The scheduler broke its contract (a driver or scheduler bug).
    #[error("scheduler contract violated: {0}")]
    Contract(String),
}

/// Parameters of one run besides the policy and the load.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Application workers.
    pub workers: usize,
    /// Arrivals to simulate (warm-up included).
    pub requests: u64,
    /// RNG seed.
    pub seed: u64,
    /// Share of the first arrivals not recorded, in `[0, 1)`.
    pub warmup_fraction: f64,
    /// Dispatcher cost of one arrival (ns).
    pub dispatch_cost_ns: Nanos,
    /// Dispatcher cost of one completion notification (ns).
    pub completion_cost_ns: Nanos,
    /// Extra service time of a stolen request (work stealing, `ws`): fetching it from another
    /// core's queue (ns).
    pub steal_cost_ns: Nanos,
    /// If set, also record every request (warm-up included) in windows of this many ns of
    /// arrival time ([`RunResult::timeline`]).
    pub timeline_window_ns: Option<Nanos>,
    /// Capacity of each scheduler queue.
    pub queue_capacity: usize,
    /// Requests a worker holds at once: 1, or 2 for JBSQ(2) (the scheduler's
    /// `worker_queue_depth`).
    pub worker_queue_depth: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            workers: 14,
            requests: 100_000,
            seed: 1,
            warmup_fraction: DEFAULT_WARMUP_FRACTION,
            dispatch_cost_ns: 0,
            completion_cost_ns: 0,
            steal_cost_ns: 0,
            timeline_window_ns: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            worker_queue_depth: 1,
        }
    }
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Policy name.
    pub policy: &'static str,
    /// Offered load (1.0 = `workers / mean service time`).
    pub load: f64,
    /// Configured rate of the first phase (rps).
    pub target_rps: f64,
    /// Measured arrivals / measurement window (rps).
    pub offered_rps: f64,
    /// Measured completions inside the measurement window / window (rps).
    pub achieved_rps: f64,
    /// Latency and slowdown statistics of the measured requests.
    pub stats: RunStats,
    /// The same, per phase (by the phase the request arrived in) when the workload has more
    /// than one phase; empty for a single-phase workload (then it would equal `stats`).
    pub phase_stats: Vec<RunStats>,
    /// All arrivals, warm-up included.
    pub arrivals: u64,
    /// All completions, warm-up included.
    pub completed: u64,
    /// All drops, warm-up included.
    pub dropped: u64,
    /// Preemptions (ts).
    pub preemptions: u64,
    /// DARC reservation updates applied.
    pub plan_updates: u64,
    /// DARC with `plan: model`: re-plans by the model and candidate allocations evaluated.
    pub model_replans: u64,
    /// See `model_replans`.
    pub model_candidates: u64,
    /// Workers per group of the reservation in force at the end (DARC), shortest first.
    pub final_allocation: Option<Vec<usize>>,
    /// Virtual time at the end of the run (ns).
    pub end_ns: Nanos,
    /// Per arrival-time window statistics, if [`RunConfig::timeline_window_ns`] was set.
    pub timeline: Vec<TimelineWindow>,
    /// DARC: every reservation plan applied, in order (the first [`MAX_PLAN_LOG`]).
    pub plan_log: Vec<PlanChange>,
}

/// Most plan changes a run keeps in [`RunResult::plan_log`] (later ones are only counted).
pub const MAX_PLAN_LOG: usize = 10_000;

/// One reservation plan applied during a run (DARC).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanChange {
    /// When it was applied (ns of virtual time).
    pub at_ns: Nanos,
    /// DARC's profiling window that produced it (from 0).
    pub window_id: u64,
    /// Workers reserved to each registered type's group (the spillway included), by type.
    pub reserved_per_type: Vec<u16>,
    /// Profiled arrival ratio of each registered type in that window.
    pub ratios: Vec<f64>,
    /// Whether the reservation differs from the previous plan's (DARC re-plans whenever a
    /// type's demand moved by more than its hysteresis, which may leave every group's workers
    /// as they were).
    pub changed: bool,
}

impl PlanChange {
    fn from_update(
        update: &psp_scheduler::PlanUpdate,
        types: usize,
        previous: Option<&PlanChange>,
    ) -> Self {
        let mut reserved_per_type = vec![0u16; types];
        for group in &update.plan.groups {
            for member in &group.members {
                if let Some(slot) = member.index().and_then(|t| reserved_per_type.get_mut(t)) {
                    *slot = u16::try_from(group.reserved.len()).unwrap_or(u16::MAX);
                }
            }
        }
        Self {
            at_ns: update.end_ns,
            window_id: update.window_id,
            changed: previous.is_none_or(|p| p.reserved_per_type != reserved_per_type),
            reserved_per_type,
            ratios: update.ratios.clone(),
        }
    }
}

/// Most windows a timeline keeps; later arrivals fall in the last window.
pub const MAX_TIMELINE_WINDOWS: usize = 100_000;

/// Statistics of the requests that arrived in one window of time (all of them, warm-up
/// included: a timeline shows the whole run, like the paper's Fig. 8).
#[derive(Clone, Debug)]
pub struct TimelineWindow {
    /// Window start (ns of virtual time).
    pub start_ns: Nanos,
    /// Slowdown of every completed request, ×[`psp_workload::stats::SLOWDOWN_SCALE`].
    pub slowdown_scaled: Histogram<u64>,
    /// Completions per class.
    pub completed: Vec<u64>,
    /// Drops (all classes).
    pub dropped: u64,
}

impl TimelineWindow {
    fn new(start_ns: Nanos, classes: usize) -> Self {
        Self {
            start_ns,
            // Starts small and grows with the largest slowdown seen (auto-resize).
            slowdown_scaled: Histogram::new(SIGNIFICANT_DIGITS)
                .unwrap_or_else(|_| unreachable!("3 significant digits are valid")),
            completed: vec![0; classes],
            dropped: 0,
        }
    }

    /// Slowdown at quantile `q` over the window, drops counted as +∞.
    pub fn slowdown_at(&self, q: f64) -> f64 {
        quantile_with_infinite(&self.slowdown_scaled, self.dropped, q, SLOWDOWN_SCALE)
    }
}

/// The timeline under construction.
struct Timeline {
    window_ns: Nanos,
    classes: usize,
    windows: Vec<TimelineWindow>,
}

impl Timeline {
    #[inline]
    fn window(&mut self, arrival_ns: Nanos) -> &mut TimelineWindow {
        let index = ((arrival_ns / self.window_ns) as usize).min(MAX_TIMELINE_WINDOWS - 1);
        while self.windows.len() <= index {
            let start = self.windows.len() as Nanos * self.window_ns;
            self.windows.push(TimelineWindow::new(start, self.classes));
        }
        &mut self.windows[index]
    }
}

impl RunResult {
    /// Measured drops as a share of measured arrivals.
    pub fn drop_fraction(&self) -> f64 {
        let measured = self.stats.completed() + self.stats.dropped();
        if measured == 0 {
            0.0
        } else {
            self.stats.dropped() as f64 / measured as f64
        }
    }
}

/// The scheduler's type table for a workload: one type per class, with the mean, ratio and
/// deadline of the first phase that has it.
pub fn scheduler_types(workload: &Workload) -> Vec<RequestTypeSpec> {
    workload
        .classes
        .iter()
        .enumerate()
        .map(|(class, c)| {
            let mut spec = RequestTypeSpec::new(c.name.clone(), c.wire_id);
            if let Some(t) = workload
                .phases
                .iter()
                .flat_map(|p| &p.types)
                .find(|t| t.class == class)
            {
                spec = spec
                    .with_mean_ns(t.mean_ns.round().max(1.0) as Nanos)
                    .with_ratio(t.ratio);
                if let Some(d) = t.deadline_ns {
                    spec = spec.with_deadline_ns(d);
                }
            }
            spec
        })
        .collect()
}

#[derive(Copy, Clone, Debug, Default)]
struct InFlight {
    arrival_ns: Nanos,
    remaining_ns: Nanos,
    mean_ns: f64,
    class: u32,
    phase: u16,
    measured: bool,
}

/// What a worker's pending event is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum WorkerEvent {
    Idle,
    Completes,
    Preempted,
}

/// Phase bookkeeping for lazy arrival generation.
struct ArrivalSource {
    generators: Vec<PhaseGenerator>,
    /// Cumulative arrival counts at which each phase ends.
    phase_ends: Vec<u64>,
    phase: usize,
    next_index: u64,
    clock_ns: f64,
    total: u64,
}

impl ArrivalSource {
    fn new(workload: &Workload, load: f64, workers: usize, total: u64) -> Result<Self, SimError> {
        let rates = workload.rates_for_load(load, workers);
        let mut generators = Vec::with_capacity(rates.len());
        for (phase, &rate) in workload.phases.iter().zip(&rates) {
            generators.push(PhaseGenerator::new(phase, rate).ok_or(SimError::Invalid {
                field: "load",
                value: load.to_string(),
                why: "gives a non-positive or non-finite arrival rate",
            })?);
        }
        let weights: Vec<f64> = workload
            .phases
            .iter()
            .zip(&rates)
            .map(|(p, r)| p.duration_s * r)
            .collect();
        let weight_sum: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut phase_ends: Vec<u64> = weights
            .iter()
            .map(|w| {
                acc += w;
                (acc / weight_sum * total as f64).round() as u64
            })
            .collect();
        if let Some(last) = phase_ends.last_mut() {
            *last = total;
        }
        Ok(Self {
            generators,
            phase_ends,
            phase: 0,
            next_index: 0,
            clock_ns: 0.0,
            total,
        })
    }
}

/// Runs one simulation.
pub fn run(
    workload: &Workload,
    policy: &Policy,
    load: f64,
    config: &RunConfig,
) -> Result<RunResult, SimError> {
    validate(workload, load, config)?;
    let mut sim = Sim::new(workload, policy, config)?;
    let mut source = ArrivalSource::new(workload, load, config.workers, config.requests)?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    sim.check_timeline()?;
    let mut next_arrival = draw_arrival(&mut source, &mut rng);
    loop {
        let next_worker_ns = sim.heap.peek().map(|Reverse(key)| event_time(*key));
        let take_arrival = match (&next_arrival, next_worker_ns) {
            (None, None) => break,
            (Some(a), Some(w)) => a.time_ns < w,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        let now = if take_arrival {
            let Some(arrival) = next_arrival.take() else {
                break;
            };
            let now = sim.on_arrival(arrival);
            next_arrival = draw_arrival(&mut source, &mut rng);
            now
        } else {
            match sim.on_worker_event(next_arrival.is_some())? {
                Some(now) => now,
                None => break,
            }
        };
        sim.dispatch(now)?;
    }
    sim.finish(workload, policy, load)
}

/// The run's parameters that no driver state can fix.
fn validate(workload: &Workload, load: f64, config: &RunConfig) -> Result<(), SimError> {
    if !(load.is_finite() && load > 0.0) {
        return Err(SimError::Invalid {
            field: "load",
            value: load.to_string(),
            why: "must be positive",
        });
    }
    if workload.phases.len() > usize::from(u16::MAX) {
        return Err(SimError::Invalid {
            field: "phases",
            value: workload.phases.len().to_string(),
            why: "at most 65535 phases",
        });
    }
    if !(0.0..1.0).contains(&config.warmup_fraction) {
        return Err(SimError::Invalid {
            field: "warmup",
            value: config.warmup_fraction.to_string(),
            why: "must be in [0, 1)",
        });
    }
    Ok(())
}

/// Counters of one run.
#[derive(Default)]
struct RunCounts {
    arrivals: u64,
    completed: u64,
    dropped: u64,
    preemptions: u64,
    plan_updates: u64,
    /// Arrivals after the warm-up.
    measured_arrivals: u64,
    /// Measured requests completed before the last arrival (or by the window's end).
    completed_in_window: u64,
}

/// The driver's state: the scheduler, the event queue of the workers, the requests in flight
/// (a slab indexed by token), the statistics. The scheduler decides; this only moves time.
struct Sim<'a> {
    config: &'a RunConfig,
    sched: Scheduler,
    preemption_cost_ns: Nanos,
    warmup_count: u64,
    heap: BinaryHeap<Reverse<u64>>,
    worker_event: Vec<WorkerEvent>,
    /// Depth 2: the decision that put a request behind each worker's current one.
    behind: Vec<Option<Dispatch>>,
    slab: Vec<InFlight>,
    free_slots: Vec<u32>,
    phase_stats: Vec<RunStats>,
    timeline: Option<Timeline>,
    /// When the (single-server) dispatcher is next free.
    dispatcher_free_ns: Nanos,
    counts: RunCounts,
    plan_log: Vec<PlanChange>,
    /// Arrival times of the first measured and of the last request.
    window_start_ns: Option<Nanos>,
    window_end_ns: Nanos,
    last_event_ns: Nanos,
}

impl<'a> Sim<'a> {
    fn new(workload: &Workload, policy: &Policy, config: &'a RunConfig) -> Result<Self, SimError> {
        let mut sched_config =
            SchedulerConfig::new(config.workers, scheduler_types(workload), policy.clone());
        sched_config.queue_capacity = config.queue_capacity;
        sched_config.worker_queue_depth = config.worker_queue_depth;
        let sched = Scheduler::new(sched_config).map_err(|error| SimError::Scheduler {
            policy: policy.name(),
            error,
        })?;
        let preemption_cost_ns = policy.time_sharing().map_or(0, |p| p.preemption_cost_ns);
        let timeline = config.timeline_window_ns.map(|window_ns| Timeline {
            window_ns,
            classes: workload.classes.len(),
            windows: Vec::new(),
        });
        Ok(Self {
            config,
            sched,
            preemption_cost_ns,
            warmup_count: (config.warmup_fraction * config.requests as f64).round() as u64,
            heap: BinaryHeap::with_capacity(config.workers + 1),
            worker_event: vec![WorkerEvent::Idle; config.workers],
            behind: vec![None; config.workers],
            slab: Vec::with_capacity(config.queue_capacity),
            free_slots: Vec::with_capacity(config.queue_capacity),
            phase_stats: vec![RunStats::new(&workload.classes); workload.phases.len()],
            timeline,
            dispatcher_free_ns: 0,
            counts: RunCounts::default(),
            plan_log: Vec::new(),
            window_start_ns: None,
            window_end_ns: 0,
            last_event_ns: 0,
        })
    }

    /// A zero-length timeline window is refused (checked after the arrival source, as before).
    fn check_timeline(&self) -> Result<(), SimError> {
        match self.timeline {
            Some(Timeline { window_ns: 0, .. }) => Err(SimError::Invalid {
                field: "timeline window",
                value: "0".into(),
                why: "must be at least 1 ns",
            }),
            _ => Ok(()),
        }
    }

    /// Parks the slab entry of a new request; its index is the scheduler token.
    fn park(&mut self, item: InFlight) -> u32 {
        match self.free_slots.pop() {
            Some(s) => {
                self.slab[s as usize] = item;
                s
            }
            None => {
                self.slab.push(item);
                (self.slab.len() - 1) as u32
            }
        }
    }

    /// An arrival reaches the dispatcher; returns the time the scheduler sees it.
    fn on_arrival(&mut self, arrival: Arrival) -> Nanos {
        let Arrival {
            time_ns: arrival_ns,
            class,
            service_ns,
            mean_ns,
            phase,
        } = arrival;
        let now = arrival_ns.max(self.dispatcher_free_ns) + self.config.dispatch_cost_ns;
        self.dispatcher_free_ns = now;
        let index = self.counts.arrivals;
        self.counts.arrivals += 1;
        let measured = index >= self.warmup_count;
        if measured {
            self.counts.measured_arrivals += 1;
            self.window_start_ns.get_or_insert(arrival_ns);
        }
        self.window_end_ns = arrival_ns;
        let slot = self.park(InFlight {
            arrival_ns,
            remaining_ns: service_ns,
            mean_ns,
            class: class as u32,
            phase: phase as u16,
            measured,
        });
        if let Err(rejected) =
            self.sched
                .on_arrival(now, TypeIndex(class as u16), Token(u64::from(slot)))
        {
            self.counts.dropped += 1;
            if measured {
                self.phase_stats[phase].record_drop(class);
            }
            if let Some(t) = self.timeline.as_mut() {
                t.window(arrival_ns).dropped += 1;
            }
            self.free_slots.push(rejected.token.0 as u32);
        }
        now
    }

    /// The earliest worker event (a completion or a quantum's end); returns the time the
    /// scheduler sees it, `None` if there is none. `arrivals_pending`: arrivals remain, so every
    /// completion is inside the measurement window.
    fn on_worker_event(&mut self, arrivals_pending: bool) -> Result<Option<Nanos>, SimError> {
        let Some(Reverse(key)) = self.heap.pop() else {
            return Ok(None);
        };
        let (event_ns, w) = (event_time(key), event_worker(key));
        let now = event_ns.max(self.dispatcher_free_ns) + self.config.completion_cost_ns;
        self.dispatcher_free_ns = now;
        self.last_event_ns = self.last_event_ns.max(event_ns);
        let worker = WorkerId(w);
        match self.worker_event[usize::from(w)] {
            WorkerEvent::Completes => {
                let done = self
                    .sched
                    .on_completion(now, worker)
                    .map_err(|e| SimError::Contract(e.to_string()))?;
                self.record_completion(done.token.0 as usize, event_ns, arrivals_pending);
            }
            WorkerEvent::Preempted => {
                self.sched
                    .on_preempted(now, worker)
                    .map_err(|e| SimError::Contract(e.to_string()))?;
                self.counts.preemptions += 1;
            }
            WorkerEvent::Idle => {
                return Err(SimError::Contract(format!(
                    "event for idle worker {worker}"
                )))
            }
        }
        self.worker_event[usize::from(w)] = WorkerEvent::Idle;
        if let Some(next) = self.behind[usize::from(w)].take() {
            // The worker starts the request behind at once, without the dispatcher.
            self.start(&next, event_ns)?;
        }
        while let Some(update) = self.sched.poll_plan_update() {
            if self.plan_log.len() < MAX_PLAN_LOG {
                let types = self.sched.types().len();
                let change = PlanChange::from_update(&update, types, self.plan_log.last());
                self.plan_log.push(change);
            }
            self.counts.plan_updates += 1;
        }
        Ok(Some(now))
    }

    /// Statistics of the request in slab `slot`, finished at `event_ns`; frees the slot.
    fn record_completion(&mut self, slot: usize, event_ns: Nanos, arrivals_pending: bool) {
        let req = self.slab[slot];
        self.counts.completed += 1;
        if let Some(t) = self.timeline.as_mut() {
            let window = t.window(req.arrival_ns);
            window.completed[req.class as usize] += 1;
            let slowdown =
                round_to_u64((event_ns - req.arrival_ns) as f64 * SLOWDOWN_SCALE / req.mean_ns);
            if window.slowdown_scaled.record(slowdown).is_err() {
                window.slowdown_scaled.saturating_record(slowdown);
            }
        }
        if req.measured {
            self.phase_stats[usize::from(req.phase)].record(
                req.class as usize,
                event_ns - req.arrival_ns,
                req.mean_ns,
            );
            if arrivals_pending || event_ns <= self.window_end_ns {
                self.counts.completed_in_window += 1;
            }
        }
        self.free_slots.push(slot as u32);
    }

    /// Starts every request the scheduler decides to run now (or, depth 2, parks it behind its
    /// worker's current one).
    fn dispatch(&mut self, now: Nanos) -> Result<(), SimError> {
        while let Some(d) = self.sched.next_dispatch(now) {
            let w = d.worker.index();
            let idle = self.worker_event.get(w) == Some(&WorkerEvent::Idle);
            match self.behind.get_mut(w) {
                Some(slot) if d.behind && !idle && slot.is_none() => *slot = Some(d),
                Some(_) if !d.behind && idle => self.start(&d, now)?,
                _ => {
                    return Err(SimError::Contract(format!(
                        "dispatch to busy or unknown worker {}",
                        d.worker
                    )))
                }
            }
        }
        Ok(())
    }

    /// The worker of `d` starts its request at `now`: its completion (or, under `ts`, the end
    /// of its quantum) is scheduled.
    fn start(&mut self, d: &Dispatch, now: Nanos) -> Result<(), SimError> {
        let (worker, w) = (d.worker, d.worker.index());
        let req = &mut self.slab[d.token.0 as usize];
        if d.stolen {
            req.remaining_ns += self.config.steal_cost_ns;
        }
        match d.quantum_ns {
            Some(q) if req.remaining_ns > q => {
                req.remaining_ns -= q;
                self.worker_event[w] = WorkerEvent::Preempted;
                let at = now + q + self.preemption_cost_ns;
                self.heap.push(Reverse(event_key(at, worker)?));
            }
            _ => {
                self.worker_event[w] = WorkerEvent::Completes;
                let at = now + req.remaining_ns;
                self.heap.push(Reverse(event_key(at, worker)?));
            }
        }
        Ok(())
    }

    /// The run's result once every event has happened.
    fn finish(
        self,
        workload: &Workload,
        policy: &Policy,
        load: f64,
    ) -> Result<RunResult, SimError> {
        if self.sched.queued() != 0 {
            return Err(SimError::Contract(format!(
                "{} requests left queued with every worker idle",
                self.sched.queued()
            )));
        }
        let mut phase_stats = self.phase_stats;
        // One phase: its statistics are the run's (no copy, no per-phase list).
        let stats = if phase_stats.len() == 1 {
            phase_stats
                .pop()
                .unwrap_or_else(|| RunStats::new(&workload.classes))
        } else {
            let mut total = RunStats::new(&workload.classes);
            for p in &phase_stats {
                total
                    .merge(p)
                    .map_err(|e| SimError::Contract(e.to_string()))?;
            }
            total
        };
        let window_ns = self
            .window_end_ns
            .saturating_sub(self.window_start_ns.unwrap_or(0))
            .max(1) as f64;
        let rate = |n: u64| n as f64 * NS_PER_S / window_ns;
        let counts = self.counts;
        let sched = self.sched.counters();
        let (model_replans, model_candidates) =
            (sched.darc_model_replans, sched.darc_model_candidates);
        let final_allocation = self
            .sched
            .plan()
            .map(|p| p.groups.iter().map(|g| g.reserved.len()).collect());
        Ok(RunResult {
            policy: policy.name(),
            load,
            target_rps: workload.rate_for_load(load, self.config.workers),
            offered_rps: rate(counts.measured_arrivals),
            achieved_rps: rate(counts.completed_in_window),
            stats,
            phase_stats,
            arrivals: counts.arrivals,
            completed: counts.completed,
            dropped: counts.dropped,
            preemptions: counts.preemptions,
            plan_updates: counts.plan_updates,
            model_replans,
            model_candidates,
            final_allocation,
            end_ns: self.last_event_ns.max(self.window_end_ns),
            timeline: self.timeline.map_or_else(Vec::new, |t| t.windows),
            plan_log: self.plan_log,
        })
    }
}

/// Bits of an event key that hold the worker (≥ log2 of `psp_scheduler::MAX_WORKERS`).
const WORKER_BITS: u32 = 8;

const _: () = assert!(psp_scheduler::MAX_WORKERS <= 1 << WORKER_BITS);

/// Latest representable event time (2^56 ns ≈ 2.3 years of virtual time).
pub const MAX_EVENT_NS: Nanos = (1 << (64 - WORKER_BITS)) - 1;

/// Packs `(time, worker)` into one `u64` ordered like the pair, so heap comparisons are one
/// integer compare.
#[inline]
fn event_key(time_ns: Nanos, worker: WorkerId) -> Result<u64, SimError> {
    if time_ns > MAX_EVENT_NS {
        return Err(SimError::Invalid {
            field: "virtual time",
            value: time_ns.to_string(),
            why: "exceeds the simulator's 2^56 ns horizon",
        });
    }
    Ok(time_ns << WORKER_BITS | u64::from(worker.0))
}

#[inline]
fn event_time(key: u64) -> Nanos {
    key >> WORKER_BITS
}

#[inline]
fn event_worker(key: u64) -> u16 {
    (key & ((1 << WORKER_BITS) - 1)) as u16
}

/// One drawn arrival.
#[derive(Copy, Clone, Debug)]
struct Arrival {
    time_ns: Nanos,
    class: usize,
    service_ns: Nanos,
    mean_ns: f64,
    phase: usize,
}

/// The next arrival, or `None` when all have been drawn.
#[inline]
fn draw_arrival(source: &mut ArrivalSource, rng: &mut StdRng) -> Option<Arrival> {
    if source.next_index >= source.total {
        return None;
    }
    while source.next_index >= source.phase_ends[source.phase] {
        source.phase += 1;
    }
    let generator = &source.generators[source.phase];
    let s = generator.next(rng);
    source.clock_ns += s.gap_ns;
    source.next_index += 1;
    Some(Arrival {
        time_ns: round_to_u64(source.clock_ns),
        class: s.class,
        service_ns: s.service_ns,
        mean_ns: generator.mean_ns(s.ty),
        phase: source.phase,
    })
}
