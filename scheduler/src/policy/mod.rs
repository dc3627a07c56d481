//! Scheduling policies as plug-ins: the [`PolicyCore`] trait, the [`Registry`] of policy
//! names, and the one list (`policies!`) that ties each built-in policy's file to its
//! [`Policy`] variant.
//!
//! ## What a policy is
//! A policy owns its decision state only; the requests sit in the [`SchedulerState`]'s queues,
//! which [`crate::Scheduler`] allocates in the number and depth the policy's
//! [`PolicyCore::layout`] asks for. On every call the scheduler asks the policy a narrow
//! question: which queue an arrival joins ([`PolicyCore::arrival_queue`]), which (queue, idle
//! worker) pair runs next ([`PolicyCore::choose`]); it tells it about completions, and lets it
//! act before each decision ([`PolicyCore::before_dispatch`], DARC's profiling trigger). The
//! scheduler keeps every invariant that is not a policy's: one request per worker, admission
//! against the queue capacity, conservation, the counters.
//!
//! ## Built-in and custom policies
//! Built-in policies are one file each in this directory and one line of the `policies!` list
//! below; the list declares each policy's module and generates the [`Policy`] enum (a variant per policy, with its parameters),
//! the static `Engine` enum the scheduler dispatches through (no virtual call on the
//! per-request path) and the built-in [`Registry`] (names, aliases, parameters, live or
//! simulator-only). A policy defined outside this crate is a [`PolicyEntry`] whose default is
//! a [`Policy::Custom`]: add it to a [`Registry`] with [`Registry::with`] and every name
//! lookup through that registry finds it; it runs behind one `Box<dyn PolicyCore>`.
//!
//! ## How it is tested
//! Each policy's decisions are pinned in `scheduler/tests.rs` and checked by the property
//! tests there; `registry_*` tests below check names and aliases; the simulator's tests add a
//! toy policy through a registry alone and run it (`sim/tests/custom_policy.rs`).

use std::fmt;
use std::sync::Arc;

use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, RequestTypeSpec, ReservationPlan, SchedulerConfig};

/// How many queues a policy needs and how deep they are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Number of queues (at most 128: the non-empty set is a `u128`).
    pub queues: usize,
    /// Slots each ring has beyond the configured `queue_capacity` (admission still refuses an
    /// arrival at `queue_capacity`: the extra slots are for requests that come back, such as
    /// preempted ones under `ts`).
    pub extra_slots: usize,
}

/// A scheduling policy's decision logic. The scheduler calls these on every request; keep
/// them allocation-free (see the crate docs' invariants).
pub trait PolicyCore: fmt::Debug + Send {
    /// The queues this policy needs (asked once, after it is built).
    fn layout(&self) -> QueueLayout;

    /// Called once the queues exist, before the first arrival (DARC installs a configured
    /// plan here).
    fn on_start(&mut self, _state: &mut SchedulerState) {}

    /// The queue an arriving request of type slot `slot` joins (`slot` = `n_types` for
    /// UNKNOWN). Must be `< layout().queues`.
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize;

    /// Called at the start of every [`crate::Scheduler::next_dispatch`], before the scheduler
    /// checks for an idle worker and a queued request.
    #[inline]
    fn before_dispatch(&mut self, _now_ns: Nanos, _state: &mut SchedulerState) {}

    /// The next decision: a non-empty queue and an idle worker (a member of `idle`), or
    /// `None` to leave every idle worker idle. Called only when `idle` and the queues are
    /// both non-empty.
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)>;

    /// `worker_queue_depth: 2`: the next decision among busy workers with a free second slot
    /// (`busy`), asked only when [`PolicyCore::choose`] placed nothing on an idle worker. The
    /// request then waits behind the worker's current one, so the default takes `choose`'s
    /// answer over `busy` unless it is a steal (stealing is what an idle worker does); a
    /// policy whose `choose` lends workers to other types without flagging steals (DARC's
    /// stealable workers) overrides it to keep a second slot for the worker's own types.
    #[inline]
    fn choose_behind(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.choose(now_ns, state, busy)
            .filter(|&(q, w)| !self.is_steal(q, w))
    }

    /// A request of type slot `slot` (`None`: UNKNOWN) finished after `service_ns` on its
    /// worker.
    #[inline]
    fn on_completion(&mut self, _slot: Option<usize>, _service_ns: Nanos) {}

    /// `Some(q)`: the policy preempts: dispatches carry a quantum of `q` ns (those
    /// [`PolicyCore::slice_ns`] gives one) and the driver reports preemptions
    /// ([`crate::Scheduler::on_preempted`]). `None`: run to completion.
    fn quantum_ns(&self) -> Option<Nanos> {
        None
    }

    /// A preemptive policy's quantum for running the head of `queue` on `worker` (`None`: that
    /// dispatch runs to completion). Asked only when [`PolicyCore::quantum_ns`] is `Some`;
    /// the default slices every dispatch (`ts`), `darc-ts` only its longest group's.
    #[inline]
    fn slice_ns(&self, _queue: usize, _worker: usize) -> Option<Nanos> {
        self.quantum_ns()
    }

    /// A request of type slot `slot` (`None`: UNKNOWN) was preempted after running `ran_ns`
    /// on its worker (its quantum and the preemption cost); it is back in its queue. DARC's
    /// profile under `darc-ts` counts the slice as service of the request's type.
    #[inline]
    fn on_preempted(&mut self, _slot: Option<usize>, _ran_ns: Nanos) {}

    /// The reservation plan in force, for policies that have one.
    fn plan(&self) -> Option<&ReservationPlan> {
        None
    }

    /// Whether running the head of `queue` on `worker` is a steal (work stealing: the queue
    /// belongs to another worker). Flags the [`crate::Dispatch`]; decides nothing.
    #[inline]
    fn is_steal(&self, _queue: usize, _worker: usize) -> bool {
        false
    }

    /// Whether the policy is still in a bootstrap phase (DARC's profiling c-FCFS).
    fn in_bootstrap(&self) -> bool {
        false
    }
}

/// A boxed policy is a policy (large built-in states are boxed, see [`darc::Darc`]).
impl<P: PolicyCore + ?Sized> PolicyCore for Box<P> {
    #[inline]
    fn layout(&self) -> QueueLayout {
        (**self).layout()
    }
    #[inline]
    fn on_start(&mut self, state: &mut SchedulerState) {
        (**self).on_start(state)
    }
    #[inline]
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize {
        (**self).arrival_queue(slot, state)
    }
    #[inline]
    fn before_dispatch(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        (**self).before_dispatch(now_ns, state)
    }
    #[inline]
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        (**self).choose(now_ns, state, idle)
    }
    #[inline]
    fn choose_behind(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        (**self).choose_behind(now_ns, state, busy)
    }
    #[inline]
    fn on_completion(&mut self, slot: Option<usize>, service_ns: Nanos) {
        (**self).on_completion(slot, service_ns)
    }
    #[inline]
    fn quantum_ns(&self) -> Option<Nanos> {
        (**self).quantum_ns()
    }
    #[inline]
    fn slice_ns(&self, queue: usize, worker: usize) -> Option<Nanos> {
        (**self).slice_ns(queue, worker)
    }
    #[inline]
    fn on_preempted(&mut self, slot: Option<usize>, ran_ns: Nanos) {
        (**self).on_preempted(slot, ran_ns)
    }
    #[inline]
    fn plan(&self) -> Option<&ReservationPlan> {
        (**self).plan()
    }
    #[inline]
    fn in_bootstrap(&self) -> bool {
        (**self).in_bootstrap()
    }
}

/// What a policy is built from: the validated scheduler configuration.
#[derive(Copy, Clone, Debug)]
pub struct BuildContext<'a> {
    config: &'a SchedulerConfig,
}

impl<'a> BuildContext<'a> {
    pub(crate) fn new(config: &'a SchedulerConfig) -> Self {
        Self { config }
    }

    /// The whole configuration.
    pub fn config(&self) -> &'a SchedulerConfig {
        self.config
    }

    /// Number of workers (validated: `1..=MAX_WORKERS`).
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// Registered types (validated: at most `MAX_TYPES`, no duplicates).
    pub fn types(&self) -> &'a [RequestTypeSpec] {
        &self.config.types
    }

    /// Number of registered types; type slot `n_types()` is UNKNOWN.
    pub fn n_types(&self) -> usize {
        self.config.types.len()
    }

    /// The policy being built.
    pub fn policy(&self) -> &'a Policy {
        &self.config.policy
    }

    /// A [`ConfigError::Policy`] naming this policy.
    pub fn error(&self, why: String) -> ConfigError {
        ConfigError::Policy {
            policy: self.config.policy.name(),
            why,
        }
    }

    /// Configured means of every type, or an error naming the first type without one
    /// (`why` says what the policy needs them for).
    pub fn configured_means(&self, why: &str) -> Result<Vec<Nanos>, ConfigError> {
        self.types()
            .iter()
            .map(|t| {
                t.mean_ns.ok_or_else(|| {
                    self.error(format!("request type {:?} has no mean_ns ({why})", t.name))
                })
            })
            .collect()
    }
}

/// Type slots sorted by ascending mean (stable: equal means keep configuration order).
pub fn order_by_mean(means: &[Nanos]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..means.len()).collect();
    order.sort_by_key(|&t| means[t]);
    order
}

/// A built-in policy: its registry entry and its constructor. The `policies!` list calls
/// these; a custom policy implements [`PolicyCore`] only.
pub trait BuiltinPolicy: PolicyCore + Sized {
    /// Name, aliases, parameters, default configuration.
    const ENTRY: PolicyEntry;

    /// Validates the policy's parameters against the configuration and builds its state.
    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError>;
}

/// One line of a [`Registry`]: how a policy is named and configured.
#[derive(Copy, Clone, Debug)]
pub struct PolicyEntry {
    /// Canonical name (`darc`, `cfcfs`...), what reports print.
    pub name: &'static str,
    /// Other accepted spellings, the original's first (`DARC`, `c-FCFS`). Matching ignores
    /// case, surrounding blanks, and `_` versus `-`.
    pub aliases: &'static [&'static str],
    /// One line: what the policy does.
    pub summary: &'static str,
    /// Its parameters (`name`: meaning, default), for help texts; empty if none.
    pub params: &'static [(&'static str, &'static str)],
    /// Whether the live server can run it (`false`: simulator only).
    pub live: bool,
    /// The policy with default parameters.
    pub default: fn() -> Policy,
}

impl PolicyEntry {
    /// Whether `name` is this entry's name or one of its aliases.
    pub fn matches(&self, name: &str) -> bool {
        let wanted = normalize(name);
        std::iter::once(self.name)
            .chain(self.aliases.iter().copied())
            .any(|n| normalize(n) == wanted)
    }
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

/// The constructor of a [`CustomPolicy`].
pub type BuildFn =
    dyn Fn(&BuildContext<'_>) -> Result<Box<dyn PolicyCore>, ConfigError> + Send + Sync;

/// A policy defined outside this crate: a name and a constructor (which may capture the
/// policy's parameters). Two custom policies are equal when they have the same name and the
/// same constructor.
#[derive(Clone)]
pub struct CustomPolicy {
    name: &'static str,
    live: bool,
    build: Arc<BuildFn>,
}

impl CustomPolicy {
    /// A custom policy called `name`; `live`: whether the live server may run it.
    pub fn new(
        name: &'static str,
        live: bool,
        build: impl Fn(&BuildContext<'_>) -> Result<Box<dyn PolicyCore>, ConfigError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            name,
            live,
            build: Arc::new(build),
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn build(&self, cx: &BuildContext<'_>) -> Result<Box<dyn PolicyCore>, ConfigError> {
        (self.build)(cx)
    }
}

impl fmt::Debug for CustomPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomPolicy")
            .field("name", &self.name)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CustomPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.build, &other.build)
    }
}

/// The policies a program knows by name: the built-ins, plus any added with
/// [`Registry::with`]. The server configuration, `psp sim`, the benches and the error messages
/// all read it.
#[derive(Clone, Debug)]
pub struct Registry {
    entries: Vec<PolicyEntry>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The built-in policies, in the `policies!` list's order.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN.to_vec(),
        }
    }

    /// This registry plus `entry` (which shadows an earlier entry of the same name).
    pub fn with(mut self, entry: PolicyEntry) -> Self {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
        self
    }

    /// Every entry, in registration order.
    pub fn entries(&self) -> &[PolicyEntry] {
        &self.entries
    }

    /// The entry called `name` (or one of its aliases).
    pub fn find(&self, name: &str) -> Option<&PolicyEntry> {
        self.entries.iter().find(|e| e.matches(name))
    }

    /// The policy called `name`, with its default parameters.
    pub fn parse(&self, name: &str) -> Result<Policy, ConfigError> {
        self.find(name)
            .map(|e| (e.default)())
            .ok_or_else(|| ConfigError::UnknownPolicy {
                name: name.to_string(),
                expected: self.names(false),
            })
    }

    /// The canonical names, comma-separated (`live_only`: those the live server runs).
    pub fn names(&self, live_only: bool) -> String {
        self.entries
            .iter()
            .filter(|e| e.live || !live_only)
            .map(|e| e.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Generates, from one list of built-in policies, the [`Policy`] enum, the static dispatch
/// enum `Engine` and the built-in registry. A line is
/// `Variant(Params) => module::Type;` (or a unit or struct variant), where `module::Type`
/// implements [`BuiltinPolicy`].
macro_rules! policies {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($($tuple:tt)*))? $({$($fields:tt)*})? => $module:ident :: $ty:ident;
    )*) => {
        $( pub mod $module; )*

        /// A scheduling policy and its parameters: a variant per built-in policy (see each
        /// module of [`crate::policy`]), or a [`Policy::Custom`] one.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Policy {
            $( $(#[$doc])* $variant $(($($tuple)*))? $({$($fields)*})?, )*
            /// A policy defined outside this crate (see [`Registry::with`]).
            Custom(CustomPolicy),
        }

        /// The built-in registry's entries.
        const BUILTIN: &[PolicyEntry] = &[ $( <$module::$ty as BuiltinPolicy>::ENTRY, )* ];

        impl Policy {
            /// The policy's canonical name (`darc`, `cfcfs`...).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Policy::$variant { .. } => <$module::$ty as BuiltinPolicy>::ENTRY.name, )*
                    Policy::Custom(c) => c.name,
                }
            }

            /// Whether the live server can run this policy (every built-in can; a custom policy
            /// says).
            pub fn is_live(&self) -> bool {
                match self {
                    $( Policy::$variant { .. } => <$module::$ty as BuiltinPolicy>::ENTRY.live, )*
                    Policy::Custom(c) => c.live,
                }
            }
        }

        /// The built policy the scheduler dispatches through: static dispatch for the
        /// built-ins, one virtual call per step for a custom policy.
        #[derive(Debug)]
        pub(crate) enum Engine {
            $( $variant($module::$ty), )*
            Custom(Guarded),
        }

        impl Engine {
            /// Builds the configured policy (the configuration's common part is validated).
            pub(crate) fn build(cx: &BuildContext<'_>) -> Result<Engine, ConfigError> {
                Ok(match cx.policy() {
                    $( Policy::$variant { .. } => Engine::$variant(
                        <$module::$ty as BuiltinPolicy>::build(cx)?), )*
                    Policy::Custom(c) => Engine::Custom(Guarded(c.build(cx)?)),
                })
            }
        }

        policies!(@forward [$($variant)*]
            shared {
                fn layout() -> QueueLayout;
                fn choose(now_ns: Nanos, state: &SchedulerState, idle: WorkerSet)
                    -> Option<(usize, usize)>;
                fn choose_behind(now_ns: Nanos, state: &SchedulerState, busy: WorkerSet)
                    -> Option<(usize, usize)>;
                fn quantum_ns() -> Option<Nanos>;
                fn slice_ns(queue: usize, worker: usize) -> Option<Nanos>;
                fn plan() -> Option<&ReservationPlan>;
                fn in_bootstrap() -> bool;
                fn is_steal(queue: usize, worker: usize) -> bool;
            }
            exclusive {
                fn on_start(state: &mut SchedulerState);
                fn arrival_queue(slot: usize, state: &SchedulerState) -> usize;
                fn before_dispatch(now_ns: Nanos, state: &mut SchedulerState);
                fn on_completion(slot: Option<usize>, service_ns: Nanos);
                fn on_preempted(slot: Option<usize>, ran_ns: Nanos);
            }
        );
    };
    (@forward $variants:tt
        shared { $( fn $method:ident($($arg:ident: $arg_ty:ty),*) $(-> $ret:ty)?; )* }
        exclusive { $( fn $method_mut:ident($($arg_mut:ident: $arg_mut_ty:ty),*)
            $(-> $ret_mut:ty)?; )* }
    ) => {
        impl PolicyCore for Engine {
            $(
                #[inline(always)]
                fn $method(&self $(, $arg: $arg_ty)*) $(-> $ret)? {
                    policies!(@call self $variants $method ($($arg),*))
                }
            )*
            $(
                #[inline(always)]
                fn $method_mut(&mut self $(, $arg_mut: $arg_mut_ty)*) $(-> $ret_mut)? {
                    policies!(@call self $variants $method_mut ($($arg_mut),*))
                }
            )*
        }
    };
    (@call $this:tt [$($variant:ident)*] $method:ident $args:tt) => {
        match $this {
            $( Engine::$variant(p) => p.$method $args, )*
            Engine::Custom(p) => p.$method $args,
        }
    };
}

/// A custom policy, with its answers checked: the built-ins are trusted (their tests pin
/// them), a policy from outside the crate could name a queue that does not exist or a busy
/// worker. An out-of-range arrival queue becomes the last queue; a decision naming a busy
/// worker or a missing queue becomes "nothing to dispatch".
#[derive(Debug)]
pub(crate) struct Guarded(Box<dyn PolicyCore>);

impl PolicyCore for Guarded {
    fn layout(&self) -> QueueLayout {
        self.0.layout()
    }
    fn on_start(&mut self, state: &mut SchedulerState) {
        self.0.on_start(state)
    }
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize {
        self.0
            .arrival_queue(slot, state)
            .min(state.queue_count().saturating_sub(1))
    }
    fn before_dispatch(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        self.0.before_dispatch(now_ns, state)
    }
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.0
            .choose(now_ns, state, idle)
            .filter(|&(q, w)| q < state.queue_count() && idle.contains(w))
    }
    fn choose_behind(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.0
            .choose_behind(now_ns, state, busy)
            .filter(|&(q, w)| q < state.queue_count() && busy.contains(w))
    }
    fn on_completion(&mut self, slot: Option<usize>, service_ns: Nanos) {
        self.0.on_completion(slot, service_ns)
    }
    fn quantum_ns(&self) -> Option<Nanos> {
        self.0.quantum_ns()
    }
    fn slice_ns(&self, queue: usize, worker: usize) -> Option<Nanos> {
        self.0.slice_ns(queue, worker)
    }
    fn on_preempted(&mut self, slot: Option<usize>, ran_ns: Nanos) {
        self.0.on_preempted(slot, ran_ns)
    }
    fn plan(&self) -> Option<&ReservationPlan> {
        self.0.plan()
    }
    fn in_bootstrap(&self) -> bool {
        self.0.in_bootstrap()
    }
    fn is_steal(&self, queue: usize, worker: usize) -> bool {
        self.0.is_steal(queue, worker)
    }
}

// The registry of built-in policies: one line per policy (its docs, its `Policy` variant and
// parameters, the module — `policy/<module>.rs`, declared by this list — and the type in it).
// Adding a policy = a file in this directory + a line here (see the README's "Adding a
// policy").
policies! {
    /// One central FIFO; the lowest-numbered idle worker takes the head.
    Cfcfs => cfcfs::Cfcfs;
    /// Per-worker FIFOs fed round-robin at arrival; a worker runs only its own queue.
    Dfcfs => dfcfs::Dfcfs;
    /// Fixed priority by configured mean service time (shortest first; every type needs a
    /// `mean_ns`), UNKNOWN last, work conserving.
    Sjf => sjf::Sjf;
    /// Earliest `arrival + deadline` first (`deadline_ns`, else the type's `mean_ns`), UNKNOWN
    /// last, work conserving.
    Edf => edf::Edf;
    /// Perséphone's Dynamic Application-aware Reserved Cores (see [`darc::DarcParams`] and
    /// [`crate::plan_reservations`]).
    Darc(darc::DarcParams) => darc::Darc;
    /// DARC with a fixed split (the original's manual `n_resas` mode, Fig. 4): types sorted by
    /// configured mean (all types need one, or none: then configuration order), the shortest
    /// type alone gets `reserved_short` workers `[0, k)` and may steal `[k, n)`; every other
    /// type shares `[k, n)`; UNKNOWN runs on the last worker only. `0 ≤ k ≤ n - 1`.
    DarcStatic {
        /// Workers reserved for the shortest type (the original's `n_resas`).
        reserved_short: usize,
    } => darc_static::DarcStatic;
    /// Centralized preemptive time sharing (Shinjuku): dispatches carry a quantum and the
    /// driver reports preemptions with [`crate::Scheduler::on_preempted`] (the simulator at the
    /// quantum, the live server cooperatively).
    TimeSharing(ts::TimeSharingParams) => ts::TimeSharing;
    /// Per-worker FIFOs fed round-robin; an idle worker with an empty queue steals the oldest
    /// request of the longest queue (Shenango / ZygOS, the paper's work-stealing baseline).
    Ws => ws::WorkStealing;
    /// DARC whose re-plans choose the reservation by a tail-latency model (`darc` with
    /// `plan: model`; see [`darc::model`]).
    DarcModel(darc::DarcParams) => darc_model::DarcModel;
    /// DARC's reservations for the shorter groups, time slicing for the longest group: it may
    /// also run on idle workers reserved to shorter groups, one quantum at a time (see
    /// [`darc_ts::DarcTsParams`]). Live too: the server preempts its lent slices as `ts`'s.
    DarcTs(darc_ts::DarcTsParams) => darc_ts::DarcTs;
}

impl Policy {
    /// DARC's parameters, under `darc`, `darc-model` or `darc-ts`.
    pub fn darc_params(&self) -> Option<&darc::DarcParams> {
        match self {
            Policy::Darc(p) | Policy::DarcModel(p) => Some(p),
            Policy::DarcTs(p) => Some(&p.darc),
            _ => None,
        }
    }

    /// DARC's parameters, mutable, under `darc`, `darc-model` or `darc-ts` (drivers apply
    /// their DARC options through it; `darc-model` keeps `plan: model` whatever is set).
    pub fn darc_params_mut(&mut self) -> Option<&mut darc::DarcParams> {
        match self {
            Policy::Darc(p) | Policy::DarcModel(p) => Some(p),
            Policy::DarcTs(p) => Some(&mut p.darc),
            _ => None,
        }
    }
}

impl Policy {
    /// The time-sharing parameters (quantum, preemption cost) of a preemptive built-in policy:
    /// `ts`, or `darc-ts`'s.
    pub fn time_sharing(&self) -> Option<&ts::TimeSharingParams> {
        match self {
            Policy::TimeSharing(p) => Some(p),
            Policy::DarcTs(p) => Some(&p.ts),
            _ => None,
        }
    }

    /// The time-sharing parameters of a preemptive built-in policy, mutable (drivers set the
    /// preemption cost they measured through it).
    pub fn time_sharing_mut(&mut self) -> Option<&mut ts::TimeSharingParams> {
        match self {
            Policy::TimeSharing(p) => Some(p),
            Policy::DarcTs(p) => Some(&mut p.ts),
            _ => None,
        }
    }

    /// Whether the policy dispatches slices that the driver preempts at a quantum (`ts`,
    /// `darc-ts`): the live server then runs its workers' applications preemptibly.
    pub fn preempts(&self) -> bool {
        self.time_sharing().is_some()
    }
}

impl Policy {
    /// Parses a policy name of the built-in [`Registry`] with default parameters.
    /// Case-insensitive; accepts the original's spellings too (`CFCFS`, `DFCFS`, `DARC`,
    /// `c-FCFS`, `d-FCFS`). `darc-static` defaults to one reserved worker.
    pub fn from_name(name: &str) -> Result<Policy, ConfigError> {
        Registry::builtin().parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_names_and_the_originals_aliases() {
        let registry = Registry::builtin();
        for (name, canonical) in [
            ("CFCFS", "cfcfs"),
            (" c-FCFS ", "cfcfs"),
            ("d_fcfs", "dfcfs"),
            ("SJF", "sjf"),
            ("edf", "edf"),
            ("DARC", "darc"),
            ("DYN_RESA", "darc"),
            ("darc_static", "darc-static"),
            ("Shinjuku", "ts"),
        ] {
            let policy = registry.parse(name).expect(name);
            assert_eq!(policy.name(), canonical, "{name}");
            assert_eq!(registry.find(name).map(|e| e.name), Some(canonical));
        }
        // Prefixes: a policy added later joins the end of the lists.
        let err = registry.parse("fifo").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "unknown policy \"fifo\" (expected one of: cfcfs, dfcfs, sjf, edf, darc, \
                 darc-static, ts"
            ),
            "{err}"
        );
        let live = registry.names(true);
        assert!(
            live.starts_with("cfcfs, dfcfs, sjf, edf, darc, darc-static, ts"),
            "{live}"
        );
    }

    #[test]
    fn every_entry_default_round_trips_through_its_name() {
        for entry in Registry::builtin().entries() {
            let policy = (entry.default)();
            assert_eq!(policy.name(), entry.name);
            assert_eq!(policy.is_live(), entry.live);
            assert_eq!(Policy::from_name(entry.name), Ok(policy));
        }
    }
}
