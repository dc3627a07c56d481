//! # psp-scheduler: the sans-IO scheduling core
//!
//! This crate decides which worker runs which request. It is a deterministic state machine:
//! it never reads a clock, never spawns a thread, never does I/O and contains no `unsafe`.
//! Time enters as a `now_ns: u64` argument on every call. Two drivers sit on top of it:
//! the discrete-event simulator (`psp-sim`, virtual time) and the live dispatcher
//! (`psp-dataplane`, TSC/monotonic time). A decision made in one is the decision made in the
//! other, because both call the same methods of [`Scheduler`].
//!
//! ## The driving loop
//! ```text
//! on packet:      ty = sched.classify(wire_type); sched.on_arrival(now, ty, token)?  // Err = counted drop
//! on completion:  sched.on_completion(now, worker)                                  // frees a slot
//! on preemption:  sched.on_preempted(now, worker)                         // `ts`, `darc-ts` only
//! then:           while let Some(d) = sched.next_dispatch(now) { send d.token to d.worker }
//! sometimes:      while let Some(u) = sched.poll_plan_update() { log it }
//! ```
//!
//! For example, DARC planned from configured means (DISP2: SHORT 1 µs / LONG 100 µs, 50/50)
//! keeps worker 0 for SHORT requests even when LONG ones queue up:
//! ```
//! use psp_scheduler::*;
//! let types = vec![
//!     RequestTypeSpec::new("SHORT", 1).with_mean_ns(1_000).with_ratio(0.5),
//!     RequestTypeSpec::new("LONG", 2).with_mean_ns(100_000).with_ratio(0.5),
//! ];
//! let oracle = Policy::Darc(DarcParams { dynamic: false, ..DarcParams::default() });
//! let mut sched = Scheduler::new(SchedulerConfig::new(2, types, oracle))?;
//! for token in 0..3 {
//!     let ty = sched.classify(2); // LONG
//!     sched.on_arrival(0, ty, Token(token)).map_err(|r| r.reason).unwrap();
//! }
//! let d = sched.next_dispatch(0).unwrap();
//! assert_eq!((d.worker, d.token), (WorkerId(1), Token(0)));
//! assert!(sched.next_dispatch(0).is_none()); // worker 0 idles: it is SHORT's
//! sched.on_arrival(1, sched.classify(1), Token(9)).map_err(|r| r.reason).unwrap();
//! assert_eq!(sched.next_dispatch(1).unwrap().worker, WorkerId(0));
//! let done = sched.on_completion(100_000, WorkerId(1))?;
//! assert_eq!(done.service_ns, 100_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Policies ([`Policy`])
//! - `cfcfs`: one central FIFO (UNKNOWN included); the lowest-numbered idle worker takes the
//!   head. Work conserving.
//! - `dfcfs`: per-worker FIFOs fed round-robin at arrival by a full-width counter (the
//!   original's `uint8_t` wrapped every 256 requests); a worker runs only its own FIFO.
//! - `sjf`: per-type FIFOs visited in ascending configured `mean_ns` (required), UNKNOWN last;
//!   each head goes to the lowest idle worker. Non-preemptive fixed priority, work conserving.
//! - `edf`: the type whose head has the smallest `arrival + deadline_ns` (the type's `mean_ns`
//!   when it has no deadline; one of the two is required) goes to the lowest idle worker;
//!   UNKNOWN has an infinite deadline.
//! - `darc`: Perséphone's DARC (docs/design.md §1.4–§1.8): profiles dispatch→completion
//!   service times, runs c-FCFS until `samples_needed` requests were dispatched, then reserves workers
//!   per group of similar types ([`plan_reservations`]) and re-plans when a type's
//!   second-in-line request waited longer than its mean and demand moved by more than the
//!   hysteresis. Not work conserving: a longer type never runs on a shorter type's reserved
//!   worker; UNKNOWN runs only on the spillway (the last worker). With
//!   [`DarcParams::dynamic`] `= false` it plans once from configured means and ratios;
//!   [`DarcParams::fixed_allocation`] imposes the per-group worker counts.
//! - `darc-static`: the shortest type reserves `[0, k)` and may steal `[k, n)`; every other
//!   type shares `[k, n)` (`0 ≤ k ≤ n - 1`; Fig. 4 of the paper).
//! - `ts`: Shinjuku-like centralized preemptive time sharing: per-type FIFOs, the head with
//!   the largest `wait / (slo_factor × mean)` runs for one quantum
//!   ([`Dispatch::quantum_ns`]); the driver preempts it with [`Scheduler::on_preempted`],
//!   which re-queues it at its type's tail with its original arrival time. The simulator
//!   preempts at the quantum; the live server cooperatively (its applications check a
//!   per-worker flag the dispatcher sets).
//! - `darc-ts`: DARC, whose longest group may also run on idle workers
//!   reserved to shorter groups, one quantum at a time (only those dispatches carry a quantum,
//!   [`PolicyCore::slice_ns`]); a preempted slice re-queues as under `ts`.
//!
//! ## Modules
//! - `scheduler`: the [`Scheduler`] state machine: type table, workers, admission, and the
//!   calls into the policy.
//! - `state`: the queues, counters and plan records a policy works on ([`SchedulerState`]).
//! - [`policy`]: the [`PolicyCore`] trait, the [`Registry`] of policy names, and one module
//!   per policy (`cfcfs`, `dfcfs`, `sjf`, `edf`, `darc`, `darc_static`, `ts`, `darc_ts`...). DARC's
//!   planning step is pure functions ([`plan_reservations`], [`plan_with_allocation`],
//!   [`group_types`] in `policy::darc::plan`), shared with `psp plan` and the simulator's
//!   allocation search. Adding a policy: the README's "Adding a policy".
//! - [`wire_type`]: the original's request type names and wire ids.
//! - `queue`: the fixed-capacity ring buffer and the `u128` worker bit set ([`WorkerSet`]).
//!
//! ## Invariants (checked by unit and property tests)
//! - A worker holds at most `worker_queue_depth` requests (1 by default); each is held from the
//!   [`Dispatch`] that names it until the matching [`Scheduler::on_completion`] (or
//!   [`Scheduler::on_preempted`] for a request dispatched with a quantum). A worker runs what
//!   it holds in dispatch order, so a completion always names its oldest request.
//! - With `worker_queue_depth: 2` (JBSQ(2)) a request goes to a busy worker's second slot only
//!   when the policy, asked about idle workers first, placed nothing, and then by the same
//!   policy's rule applied to the workers with a free slot ([`PolicyCore::choose_behind`]):
//!   every reservation, order and priority holds for both slots; a second slot never takes a
//!   stolen (`ws`) request, nor under DARC a type the worker is only stealable for.
//! - Every accepted token is dispatched exactly once (per quantum for `ts`), unless it is still
//!   queued; nothing is lost or duplicated. A rejected token is handed back in [`Rejected`].
//! - A wire type that was not registered is [`TypeIndex::UNKNOWN`]; it never indexes out of bounds
//!   (nor does a `TypeIndex` beyond the registered types: it is treated as UNKNOWN). The
//!   original's three hazards (`>` instead of `>=`, an uninitialised type-order table, per-window
//!   arrays indexed by raw wire id, docs/design.md §8.3) have no counterpart: every per-type array
//!   is indexed by the dense [`TypeIndex`] after a bounds-checked mapping.
//! - The per-request path (`classify`, `on_arrival`, `next_dispatch`, `on_completion`) does not
//!   allocate: every queue is allocated once, at construction, with a fixed capacity. The only
//!   exception is DARC applying a new plan (at most once per `samples_needed` completions).
//!
//! ## How it is tested
//! `cargo test -p psp-scheduler`: the reservation vectors of docs/design.md §1.9 (DISP2,
//! SBIM2, TPC-C, RocksDB, DISP3 at 14 workers), per-policy decision sequences, DARC's bootstrap switch,
//! hysteresis and update trigger, configuration errors, and proptest properties over random
//! arrival / completion / preemption sequences for every policy (conservation, one request per
//! worker, bounds, DARC's reservation rule, draining). `cargo bench -p psp-scheduler` measures
//! the per-request cost of each policy.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

/// Nanoseconds, the only unit of time in this crate.
pub type Nanos = u64;

/// Depth of each per-type (and per-worker) FIFO by default: the original's `RQUEUE_LEN`
/// (Perséphone `Request.hh`, 4096 entries).
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// Largest `queue_capacity` accepted: 256× the original's 4096, so that a mistyped
/// configuration is an error rather than a multi-gigabyte allocation (every queue is
/// allocated in full at construction).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// Most request types a scheduler accepts. Far above the original's `MAX_TYPES = 8`, which the
/// TPC-C and RocksDB type ids overflowed (docs/design.md §8.3).
pub const MAX_TYPES: usize = 64;

/// Largest [`SchedulerConfig::worker_queue_depth`]: JBSQ(2). One request waiting behind the
/// running one hides the dispatcher→worker handoff; more would only add head-of-line blocking
/// behind a long request, which a type-aware policy exists to avoid.
pub const MAX_WORKER_QUEUE_DEPTH: usize = 2;

/// Most workers a scheduler accepts (the idle set is a `u128` bit mask; the original's 32-bit
/// `free_peers` capped it at 31).
pub const MAX_WORKERS: usize = 128;

/// An opaque request handle chosen by the driver (a slab index, a request id, an mbuf slot).
/// The scheduler stores it and hands it back; it never interprets it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// A worker index in `0..workers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

impl WorkerId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// A dense index into the registered request types, in registration order, or
/// [`TypeIndex::UNKNOWN`] for anything that was not registered.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeIndex(pub u16);

impl TypeIndex {
    /// The class of every request whose wire type was not registered.
    pub const UNKNOWN: TypeIndex = TypeIndex(u16::MAX);

    /// Whether this is [`TypeIndex::UNKNOWN`].
    pub fn is_unknown(self) -> bool {
        self == Self::UNKNOWN
    }

    /// The dense index, or `None` for UNKNOWN.
    pub fn index(self) -> Option<usize> {
        if self.is_unknown() {
            None
        } else {
            Some(usize::from(self.0))
        }
    }
}

/// Tolerance on `Σ ratios = 1` (absolute): decimal fractions in YAML do not add up to exactly
/// 1.0 in binary floating point. The server configuration, workload files and the client's
/// schedules all check against it.
pub const RATIO_SUM_TOLERANCE: f64 = 1e-6;

/// One request type as registered from configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestTypeSpec {
    /// Human name (`SHORT`, `GET`, `NewOrder`...).
    pub name: String,
    /// The value carried in the request's type field on the wire.
    pub wire_id: u32,
    /// Known mean service time, if configured (SJF order, oracle DARC, slowdown, EDF default).
    pub mean_ns: Option<Nanos>,
    /// Known share of arrivals in `[0, 1]`, if configured.
    pub ratio: Option<f64>,
    /// Relative deadline (EDF): a request arriving at `t` is due at `t + deadline_ns`.
    pub deadline_ns: Option<Nanos>,
}

impl RequestTypeSpec {
    /// A type with only a name and a wire id (what DARC's profiling mode needs).
    pub fn new(name: impl Into<String>, wire_id: u32) -> Self {
        Self {
            name: name.into(),
            wire_id,
            mean_ns: None,
            ratio: None,
            deadline_ns: None,
        }
    }

    /// Builder: sets the mean service time.
    pub fn with_mean_ns(mut self, mean_ns: Nanos) -> Self {
        self.mean_ns = Some(mean_ns);
        self
    }

    /// Builder: sets the arrival ratio.
    pub fn with_ratio(mut self, ratio: f64) -> Self {
        self.ratio = Some(ratio);
        self
    }

    /// Builder: sets the relative deadline.
    pub fn with_deadline_ns(mut self, deadline_ns: Nanos) -> Self {
        self.deadline_ns = Some(deadline_ns);
        self
    }
}

/// A decision: run `token` (of type `ty`) on `worker`, which had a free slot until now (was idle,
/// unless `worker_queue_depth` is 2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The worker that now holds the request.
    pub worker: WorkerId,
    /// The driver's handle, as given to `on_arrival`.
    pub token: Token,
    /// The request's class.
    pub ty: TypeIndex,
    /// `Some(q)` under time sharing (`ts`; `darc-ts` for its longest group): the worker must stop
    /// after `q` ns and the driver calls [`Scheduler::on_preempted`] if the request is not
    /// finished. `None`: run to completion.
    pub quantum_ns: Option<Nanos>,
    /// The request was taken from another worker's queue (work stealing, `ws`): a driver may
    /// charge the cost of a steal (the simulator's `steal_cost_ns`).
    pub stolen: bool,
    /// The worker already holds a request (`worker_queue_depth: 2`): this one waits behind it,
    /// in the worker's own queue, and starts when that one completes.
    pub behind: bool,
}

/// What `on_completion` reports about the request that just finished.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The finished request's handle.
    pub token: Token,
    /// Its class.
    pub ty: TypeIndex,
    /// Dispatch-to-completion time as the scheduler saw it (what DARC profiles).
    pub service_ns: Nanos,
}

/// Why an arrival was refused; the token comes back so the driver can free its buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The refused handle.
    pub token: Token,
    /// The reason, for the drop counters.
    pub reason: RejectReason,
}

/// Reasons an arrival is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The queue this request would join is at capacity.
    QueueFull,
}

/// Errors from `on_completion` / `on_preempted` (a driver bug or a forged notification; the
/// scheduler's state is unchanged).
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// The worker index is not in `0..workers`.
    #[error("worker {0} does not exist")]
    NoSuchWorker(WorkerId),
    /// The worker holds no request.
    #[error("worker {0} is idle: nothing to complete")]
    WorkerIdle(WorkerId),
    /// `on_preempted` under a policy that never sets a quantum (only `ts` and `darc-ts`
    /// preempt), or for a request dispatched without one.
    #[error("worker {0} was preempted, but its request runs to completion")]
    NotPreemptive(WorkerId),
}

/// Invalid scheduler configuration.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Zero or too many workers.
    #[error("workers = {0}: must be between 1 and {MAX_WORKERS}")]
    Workers(usize),
    /// Too many types.
    #[error("{0} request types: at most {MAX_TYPES} are supported")]
    TooManyTypes(usize),
    /// Two types share a wire id or a name.
    #[error("request type {0:?} is registered twice")]
    DuplicateType(String),
    /// A parameter is out of range.
    #[error("{field} = {value}: {why}")]
    Invalid {
        /// The parameter's name.
        field: &'static str,
        /// Its value, printed.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The policy needs something the types do not provide.
    #[error("policy {policy}: {why}")]
    Policy {
        /// The policy's name.
        policy: &'static str,
        /// What is missing.
        why: String,
    },
    /// An unknown policy name.
    #[error("unknown policy {name:?} (expected one of: {expected})")]
    UnknownPolicy {
        /// The name given.
        name: String,
        /// The names the registry knows, comma-separated.
        expected: String,
    },
}

/// Everything a [`Scheduler`] is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// Number of application workers.
    pub workers: usize,
    /// Registered types, in configuration order (this order defines [`TypeIndex`]).
    pub types: Vec<RequestTypeSpec>,
    /// The policy.
    pub policy: Policy,
    /// Capacity of each queue (per type, per worker for d-FCFS, and the UNKNOWN queue).
    pub queue_capacity: usize,
    /// Requests a worker may hold at once: 1 (default) or 2 (JBSQ(2): the next request waits
    /// in the worker's own queue while it runs the current one, hiding the handoff gap; see
    /// [`Scheduler::next_dispatch`]). At most [`MAX_WORKER_QUEUE_DEPTH`]; `ts` needs 1.
    pub worker_queue_depth: usize,
}

impl SchedulerConfig {
    /// A config with the default queue capacity.
    pub fn new(workers: usize, types: Vec<RequestTypeSpec>, policy: Policy) -> Self {
        Self {
            workers,
            types,
            policy,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            worker_queue_depth: 1,
        }
    }

    /// `worker_queue_depth`: 1 or 2, and 1 under `ts`, which preempts the request a worker
    /// runs (a request committed to a second slot would wait out the quantum that time sharing
    /// exists to cut). [`Scheduler::new`] checks it; the server configuration reports it under
    /// its own key.
    pub fn check_worker_queue_depth(&self) -> Result<(), ConfigError> {
        let depth = self.worker_queue_depth;
        if !(1..=MAX_WORKER_QUEUE_DEPTH).contains(&depth) {
            return Err(ConfigError::Invalid {
                field: "worker_queue_depth",
                value: depth.to_string(),
                why: "must be 1 or 2",
            });
        }
        if depth > 1 && matches!(self.policy, Policy::TimeSharing(_)) {
            return Err(ConfigError::Invalid {
                field: "worker_queue_depth",
                value: depth.to_string(),
                why: "ts preempts the request a worker runs: it needs depth 1",
            });
        }
        Ok(())
    }
}

/// A group of types with similar service times and the workers it owns (DARC).
#[derive(Clone, Debug, PartialEq)]
pub struct TypeGroup {
    /// Member types, ascending by mean service time.
    pub members: Vec<TypeIndex>,
    /// Mean service time of the group's shortest member (ns).
    pub leader_mean_ns: f64,
    /// CPU demand in workers (`Σ mean·ratio / window_mean · workers`), before rounding.
    pub demand_workers: f64,
    /// Workers reserved to this group, in the order they are tried (may end with the spillway).
    pub reserved: Vec<WorkerId>,
    /// Workers this group may steal when idle: those reserved to longer groups or unreserved.
    pub stealable: Vec<WorkerId>,
    /// Whether the group wanted more workers than were left and was given the spillway (which
    /// then ends `reserved`, unless it was already in it).
    pub uses_spillway: bool,
}

/// DARC's current allocation of workers to type groups.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ReservationPlan {
    /// Groups, shortest first.
    pub groups: Vec<TypeGroup>,
    /// The spillway worker (the last one): overflowing groups and UNKNOWN requests use it.
    pub spillway: Option<WorkerId>,
}

/// One applied reservation change (a "window" of the original's log, docs/design.md §8.6).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanUpdate {
    /// Sequence number of this window, from 0.
    pub window_id: u64,
    /// When the window that produced this plan started.
    pub start_ns: Nanos,
    /// When the plan was applied.
    pub end_ns: Nanos,
    /// Completions profiled in that window.
    pub samples: u64,
    /// Queue length per registered type at the time of the update, by [`TypeIndex`].
    pub queue_lens: Vec<usize>,
    /// Profiled mean service time per registered type (ns), by [`TypeIndex`].
    pub means_ns: Vec<f64>,
    /// Profiled arrival ratio per registered type, by [`TypeIndex`].
    pub ratios: Vec<f64>,
    /// The new plan.
    pub plan: ReservationPlan,
}

pub mod policy;
mod queue;
mod scheduler;
mod state;
pub mod wire_type;

pub use policy::darc::model::{Model, ModelChoice, Prediction, TypeLoad, TypeTail};
pub use policy::darc::plan::{
    demand_workers, group_types, plan_reservations, plan_with_allocation, round_demand,
    validate_allocation, window_mean_ns, ProfileGroup, TypeProfile, INACTIVE_MEAN_NS,
};
pub use policy::darc::{DarcParams, PlanMode, ROUNDING_CUT_RANGE};
pub use policy::darc_ts::DarcTsParams;
pub use policy::ts::TimeSharingParams;
pub use policy::{
    BuildContext, CustomPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout, Registry,
};
pub use queue::WorkerSet;
pub use scheduler::{Scheduler, SchedulerCounters, ShadowVerdict};
pub use state::{QueuedRequest, SchedulerState, PLAN_UPDATE_CAPACITY};
