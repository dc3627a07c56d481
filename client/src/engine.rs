//! The open-loop engine: sends a workload's requests at their intended times over any
//! [`Port`], matches responses, and measures latency from the **intended** send time.
//!
//! ## How a run goes
//! 1. Each phase gets its own RNG (`seed` mixed with the phase index) and a
//!    [`PhaseGenerator`] at the phase's rate. A dry pass over the same generators counts the
//!    requests, so the warm-up is exactly the first `warmup_fraction` of them in send order
//!    (docs/design.md §5.5), without storing a schedule.
//! 2. Phases play back to back on one timeline: phase `k` starts when phase `k-1`'s duration
//!    ends (intended time, not actual), so falling behind never shifts the schedule.
//! 3. The loop polls every RX queue (over memif the server answers on `1 + workers` queues:
//!    memif pairs queue i with queue i), then sends every request whose intended time has come, in bursts of up to
//!    [`TX_BURST`]. It never waits for a response (open loop). When the last poll found nothing
//!    and the next send is further away than one wait costs it in CPU time plus
//!    [`IDLE_MIN_SLEEP_NS`], it gives the core back until then less a wake-up margin — both
//!    learnt from the waits themselves ([`Idler`]) — and polls the rest, so on a 2-core box it
//!    does not starve the server ([`IdlePolicy`]: spin, yield — the default, which naps while
//!    requests are in flight on a polled device — or sleep). A shorter gap is spun: spinning it
//!    costs less CPU than waiting for it (on a VM a wait costs some 30 µs and wakes about as
//!    late), and sends on time.
//! 4. After the last phase it drains responses until none is outstanding or
//!    [`EngineConfig::drain_timeout_ns`] passes; whatever is still outstanding is then given up
//!    on, and the engine listens [`EngineConfig::late_listen_ns`] more for *late* answers.
//!    Every sent request ends as answered in time, late, or never answered
//!    ([`Counters::balanced`]); late and never answered ones are +∞ in every percentile.
//! 5. [`Progress::stop`] (set by another thread: the link went down) ends the run early, with
//!    no drain; the partial result says so ([`RunResult::stopped_early`]).
//!
//! ## Measurement
//! - latency = receive time − intended send time, so queueing in the client itself is charged
//!   to the request (no coordinated omission). The receive time is the packet's arrival stamp
//!   where the port gives one ([`RxQueue::stamp_arrivals`]: a kernel socket's
//!   `SO_TIMESTAMPNS`, taken back to the run's clock per burst, `BurstTime`), else one clock
//!   read per RX burst (polled devices: DPDK, the in-memory pair);
//! - send lag = time after `tx_burst` − intended send time, in its own histogram;
//! - late, duplicate, unknown-id, mismatched and malformed responses are counted and ignored;
//! - one [`Engine`] keeps its queues across runs (a sweep), and each run's request ids continue
//!   the previous run's generations, so a straggler from an earlier run never matches;
//! - with [`EngineConfig::trace_limit`] > 0, per-request traces go to a buffer reserved before
//!   the first send (`--sample`).
//!
//! ## Hot path
//! Sending and receiving allocate nothing: the in-flight table ([`InFlightTable`]), the burst
//! vectors and the histograms are allocated before the first send (a histogram only grows for a
//! latency beyond 1 s). Progress is published with relaxed atomic stores.
//!
//! ## Sans-IO
//! The send/receive logic — schedule, concurrency limit, in-flight table, drain and late-listen
//! deadlines, accounting — is [`ClientMachine`] ([`machine`]), which is given the time and does
//! no I/O. [`Engine::run`] is the thin I/O loop around it: it reads the clock, polls the RX
//! queues into [`ClientMachine::on_response`], sends what [`ClientMachine::poll_transmit`]
//! builds, and idles until [`ClientMachine::poll_timeout`].
//!
//! Tested by `tests/engine.rs` (in-memory port pair against an echo thread, kernel UDP on
//! 127.0.0.1, faulty responders, stale responses across runs, traces, several phases), the
//! virtual-time tests of [`machine`] and the unit tests below.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{self, DropCounters, Endpoint, ParseOptions};
use psp_workload::{PhaseGenerator, RunStats, Sampled, Workload};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::inflight::{GivenUp, InFlightTable, MatchOutcome, RequestInfo, NO_TRACE};

pub mod forward;
pub mod machine;
pub mod threads;
pub use forward::Forwarder;
pub use machine::{ClientMachine, RunState};
pub use threads::ThreadedEngine;

/// Packets fetched per RX queue per poll (DPDK's customary burst).
pub const RX_BURST: usize = 32;
/// Most requests sent in one TX burst.
pub const TX_BURST: usize = 32;
/// Shortest wait worth giving the core back for: an idle engine ([`IdlePolicy::Yield`] or
/// [`IdlePolicy::Sleep`]) waits after a poll that received nothing when the next send is
/// further away than what one wait costs its thread in CPU time (learnt, at most
/// [`IDLE_SPIN_MAX_NS`]) plus this (three busy pollers on two cores need idle backoff:
/// measured on a 2-core VM).
pub const IDLE_MIN_SLEEP_NS: u64 = 3_000;
/// First guess of how late a timed wait wakes up; [`Idler`] then learns it from the waits
/// themselves, between [`IDLE_WAKE_MARGIN_MIN_NS`] and [`IDLE_SPIN_MAX_NS`] (a few µs on bare
/// metal once the timer slack is [`IDLE_TIMER_SLACK_NS`]; some 30–40 µs on the 2-core VM). The
/// engine wakes that much before a send (at most [`IDLE_WAKE_MARGIN_MAX_NS`]) and polls the
/// rest; on the VM idle sends then leave some 20–30 µs late: the send-lag histogram shows it,
/// and latency is still measured from the intended send time.
pub const IDLE_WAKE_MARGIN_NS: u64 = 10_000;
/// Smallest learnt wake-up lateness (and margin) and wait cost.
pub const IDLE_WAKE_MARGIN_MIN_NS: u64 = 2_000;
/// Largest wake-up margin: beyond it, sends leave late rather than the core spinning (issue
/// #12: `--idle yield` at 10 krps under 30 % of a core on the 2-core VM, where a 30 µs margin
/// costs about half a core; and on a loaded machine wake-ups are late because the cores are
/// busy, which spinning longer would make worse). `benches/idle_cpu.rs` measures it.
pub const IDLE_WAKE_MARGIN_MAX_NS: u64 = 10_000;
/// How much one timed wait moves the learnt lateness and wait cost towards their medians.
pub const IDLE_WAKE_MARGIN_STEP_NS: u64 = 500;
/// Longest learnt wait cost (and wake-up lateness): the CPU time one wait costs the engine's
/// thread (the system call, the switches away and back, the wake-up), read from its CPU clock
/// around each wait. A gap between sends shorter than the cost (plus [`IDLE_MIN_SLEEP_NS`]) is
/// spun rather than waited for: spinning it costs less CPU, and sends on time. On the 2-core VM
/// a wait costs 25–40 µs (and wakes about as late; `benches/idle_cpu.rs` counts the waits), on
/// bare metal a few µs; where the core goes to another thread during the wait it costs less,
/// so a busy machine makes the engine wait rather than spin, and the cap bounds the spinning.
pub const IDLE_SPIN_MAX_NS: u64 = 40_000;
/// Timer slack of the engine's thread while it runs with an idle policy (Linux's default is
/// 50 µs, which would make every timed wait that much late).
pub const IDLE_TIMER_SLACK_NS: u64 = 1_000;
/// Longest nap with requests in flight of [`IdlePolicy::Yield`] on a port that cannot wait for
/// packets (DPDK), and of every idle policy during the drain: a response that arrives during
/// it is timestamped at most this late.
pub const IDLE_NAP_MAX_NS: u64 = 100_000;
/// Oldest arrival stamp believed ([`PacketBuf::arrived_at`]): the engine reads its queues at
/// least every [`IDLE_WAIT_MAX_NS`], so an older stamp means the wall clock was stepped
/// between the arrival and the read, and the read's own time is taken instead.
pub const MAX_STAMP_AGE_NS: u64 = 1_000_000_000;
/// Widest spread of the wall-clock reads around a read of the run's clock that pairs the two
/// clocks for arrival stamps (`BurstTime`): wider means the thread was preempted in between.
pub const CLOCK_PAIR_MAX_SPREAD_NS: u64 = 2_000;
/// Reads of the clock pair before the last one is taken whatever its spread.
pub const CLOCK_PAIR_TRIES: usize = 4;
/// Longest single wait for packets during the drain (the deadline is checked between waits).
pub const DRAIN_WAIT_MAX_NS: u64 = 1_000_000;
/// Longest single idle wait between sends, so that [`Progress::stop`] is seen within it.
pub const IDLE_WAIT_MAX_NS: u64 = 10_000_000;
/// Default time the engine listens for late answers after the drain gave up on requests.
pub const DEFAULT_LATE_LISTEN_NS: u64 = 100_000_000;
/// A request sent more than this after its intended time counts as "behind schedule".
pub const BEHIND_SCHEDULE_LAG_NS: u64 = 10_000;
/// `tx_burst` attempts for one burst before the leftover requests are given up (counted).
pub const TX_RETRY_LIMIT: usize = 1_000;
/// Most requests one run may plan (rate × duration summed over phases): 1 Mrps for 1000 s.
/// The dry pass that counts them takes about a second per 10⁸ requests.
pub const MAX_PLANNED_REQUESTS: f64 = 1e9;
/// Default drain time after the last send (the original waits up to 5 s per phase; 2 s is ample
/// for microsecond-scale services and keeps test runs short).
pub const DEFAULT_DRAIN_TIMEOUT_NS: u64 = 2_000_000_000;
/// Default age at which an unanswered request's slot may be reused (sizes the in-flight table).
pub const DEFAULT_RESPONSE_TIMEOUT_NS: u64 = 1_000_000_000;
/// Default warm-up cut: the first 10 % of requests (docs/design.md §5.5).
pub const DEFAULT_WARMUP_FRACTION: f64 = 0.1;
/// `req_size` the original client puts in every request (docs/design.md §4.2).
pub const REQ_SIZE_WORD: u32 = psp_net::wire::psp::DEFAULT_REQ_SIZE;
/// Checks applied to responses by default: everything but the IPv4 header checksum (a response
/// with a wrong destination MAC, IP or port, a fragment, a bad length… is still refused and
/// counted). Skipping the checksum saves about a fifth of the per-response cost; the original
/// client checks nothing at all (docs/design.md §4.5), and the links the client runs on (memif,
/// loopback, kernel sockets) do not corrupt headers. [`ParseOptions::STRICT`] turns it back on.
pub const CLIENT_PARSE_OPTIONS: ParseOptions = ParseOptions {
    verify_ip_checksum: false,
    ..ParseOptions::STRICT
};
/// Odd constant mixing an index (a phase, a client thread) into a seed (SplitMix64's
/// increment, 2^64/φ).
const SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// Nanoseconds per second.
const NS_PER_S: f64 = 1e9;

/// What the engine does while it waits for the next send time.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Busy-poll: for a core of its own.
    Spin,
    /// When the last poll found nothing and the next send is further away than a wait costs
    /// plus [`IDLE_MIN_SLEEP_NS`] ([`IDLE_SPIN_MAX_NS`]), give the core back until
    /// then. Receive times stay exact: where the port stamps arrivals (kernel sockets) the wait
    /// lasts until the next send; where it can wait for packets without stamping them, a
    /// response ends the wait; on polled devices (DPDK) it naps at most [`IDLE_NAP_MAX_NS`] at
    /// a time while requests are in flight (the default).
    #[default]
    Yield,
    /// Sleep until the next send whatever is in flight: the fewest wake-ups, fairest to a server
    /// sharing the cores, at the price of receive times up to one send gap late on polled
    /// devices (where the port stamps arrivals, the same as [`IdlePolicy::Yield`]).
    Sleep,
}

/// Errors that stop a run before it starts.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The port has no TX queue 0 (or it was taken).
    #[error("the port has no free TX queue 0")]
    NoTxQueue,
    /// The port has no RX queue (or all were taken).
    #[error("the port has no free RX queue")]
    NoRxQueue,
    /// No server to send to.
    #[error("no target server configured")]
    NoTarget,
    /// `rates` does not have one entry per phase.
    #[error("{got} rates given for a workload of {phases} phases")]
    RateCount {
        /// Rates given.
        got: usize,
        /// Phases in the workload.
        phases: usize,
    },
    /// A phase's rate is not a finite positive number (or its generator refused it).
    #[error("phase {phase}: rate {rate_rps} rps is not a positive finite number")]
    BadRate {
        /// Phase index.
        phase: usize,
        /// The rate.
        rate_rps: f64,
    },
    /// More phases or types than the request table can tag (u16).
    #[error("workload too large: {0}")]
    TooLarge(String),
    /// A feature the engine does not have (e.g. IX or RAW packets).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A client thread could not start, plan or finish ([`threads`]).
    #[error("client threads: {0}")]
    Thread(String),
    /// The warm-up fraction is outside [0, 1).
    #[error("warm-up fraction {0} is not in [0, 1)")]
    BadWarmup(f64),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This client's address (source of requests, destination of responses).
    pub local: Endpoint,
    /// Servers, used round-robin by request.
    pub targets: Vec<Endpoint>,
    /// RNG seed: the same seed sends the same requests at the same intended times.
    pub seed: u64,
    /// Share of requests (send order) left out of the histograms.
    pub warmup_fraction: f64,
    /// Most requests in flight; a send slot that finds this many is skipped (`None`: unlimited).
    pub max_concurrency: Option<usize>,
    /// How long to wait for responses after the last send.
    pub drain_timeout_ns: u64,
    /// Age at which an unanswered request's slot may be reused.
    pub response_timeout_ns: u64,
    /// Checks applied to responses (default [`CLIENT_PARSE_OPTIONS`]).
    pub parse_options: ParseOptions,
    /// What to do while waiting for the next send time.
    pub idle: IdlePolicy,
    /// Most per-request trace records kept (post-warm-up requests in send order); 0 keeps
    /// none. The buffer is allocated before the first send.
    pub trace_limit: usize,
    /// How long to listen for late answers after the drain gave up on requests.
    pub late_listen_ns: u64,
    /// With several client threads sharing RX queues: this thread's tag in the top bits of
    /// its request ids, so that whichever thread receives a response knows whose it is
    /// ([`threads`]).
    pub thread_tag: Option<ThreadTag>,
}

/// A client thread's tag in its request ids ([`crate::inflight::InFlightTable::with_tag`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ThreadTag {
    /// The thread's index.
    pub thread: u32,
    /// Top bits of an id that hold it.
    pub bits: u32,
}

/// A response received by one client thread for another's request (shared RX queues): what
/// the owner needs to match and record it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The response's `req_id` (its top bits name the owner thread).
    pub req_id: u32,
    /// Its `req_type`.
    pub req_type: u32,
    /// When it was received (ns on the run's shared clock).
    pub now_ns: u64,
}

impl EngineConfig {
    /// Defaults for `local` sending to `targets`.
    pub fn new(local: Endpoint, targets: Vec<Endpoint>) -> Self {
        Self {
            local,
            targets,
            seed: 1,
            warmup_fraction: DEFAULT_WARMUP_FRACTION,
            max_concurrency: None,
            drain_timeout_ns: DEFAULT_DRAIN_TIMEOUT_NS,
            response_timeout_ns: DEFAULT_RESPONSE_TIMEOUT_NS,
            parse_options: CLIENT_PARSE_OPTIONS,
            idle: IdlePolicy::default(),
            trace_limit: 0,
            late_listen_ns: DEFAULT_LATE_LISTEN_NS,
            thread_tag: None,
        }
    }
}

/// Live counters for a progress display and a watchdog (relaxed atomics; written by the engine,
/// except [`Progress::stop`]).
#[derive(Debug, Default)]
pub struct Progress {
    /// Set by another thread to end the run early (e.g. the link went down): the engine stops
    /// sending and skips the drain; what is outstanding is never answered, and the result says
    /// [`RunResult::stopped_early`]. Checked once per loop turn.
    pub stop: AtomicBool,
    /// Requests sent so far.
    pub sent: AtomicU64,
    /// Responses matched so far.
    pub received: AtomicU64,
    /// Requests planned in the whole run (set before the first send).
    pub planned: AtomicU64,
    /// Current phase.
    pub phase: AtomicU64,
    /// Set when the run is over.
    pub done: AtomicBool,
}

/// Counters of a run (all requests, warm-up included).
///
/// Every sent request ends as exactly one of `received` (answered in time), `late` (answered
/// after the client gave up on it) and `unanswered` (never answered):
/// `sent = received + late + unanswered` ([`Counters::balanced`]). The other counters count
/// send slots that never became a sent request (`skipped`, `tx_failed`), frames the client's own
/// socket or ring dropped (`rx_dropped`), and responses that answer nothing new (`duplicate`,
/// `unknown_id`, `mismatched`, `malformed`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Requests planned by the generators.
    pub planned: u64,
    /// Requests the device took.
    pub sent: u64,
    /// Requests answered in time: while the client still waited for them.
    pub received: u64,
    /// Requests answered late: after the client had given up on them (their in-flight slot was
    /// reused after the response timeout, or the drain had ended). They stay +∞ in the
    /// percentiles, like requests never answered.
    #[serde(default)]
    pub late: u64,
    /// Requests sent and never answered.
    pub unanswered: u64,
    /// Requests sent more than [`BEHIND_SCHEDULE_LAG_NS`] after their intended time.
    pub behind_schedule: u64,
    /// Send slots skipped because `max_concurrency` requests were in flight.
    pub skipped: u64,
    /// Requests given up because no buffer was free or the device would not take them.
    pub tx_failed: u64,
    /// Frames the client's own socket or receive ring dropped (kernel socket buffer overflow;
    /// DPDK `imissed` + `rx_nombuf`), from the port's counters over the run. The engine sees
    /// queues only: the caller that owns the port fills this in.
    #[serde(default)]
    pub rx_dropped: u64,
    /// Warm-up requests (first `warmup_fraction` in send order), not in the histograms.
    pub warmup: u64,
    /// Responses for a request already answered (in time or late).
    pub duplicate: u64,
    /// Responses with an id never issued.
    pub unknown_id: u64,
    /// Responses whose id is outstanding but whose type differs from the request's.
    pub mismatched: u64,
    /// Received frames that were not valid responses for us (sum of `malformed_by_reason`).
    pub malformed: u64,
    /// `malformed` by reason (wire `DropReason` names), non-zero only.
    pub malformed_by_reason: Vec<(String, u64)>,
    /// Measured requests left out of the per-request traces (trace buffer full).
    #[serde(default)]
    pub untraced: u64,
    /// Responses received for another client thread's request that its inbox could not take
    /// (that request ends never answered).
    #[serde(default)]
    pub forward_dropped: u64,
}

impl Counters {
    /// Whether every sent request is accounted for: `sent = received + late + unanswered`.
    pub fn balanced(&self) -> bool {
        self.outcomes().balanced()
    }

    /// Adds `other`'s counts to these (a client's threads, summed).
    pub fn add(&mut self, other: &Counters) {
        self.planned += other.planned;
        self.sent += other.sent;
        self.received += other.received;
        self.late += other.late;
        self.unanswered += other.unanswered;
        self.behind_schedule += other.behind_schedule;
        self.skipped += other.skipped;
        self.tx_failed += other.tx_failed;
        self.rx_dropped += other.rx_dropped;
        self.warmup += other.warmup;
        self.duplicate += other.duplicate;
        self.unknown_id += other.unknown_id;
        self.mismatched += other.mismatched;
        self.malformed += other.malformed;
        self.untraced += other.untraced;
        self.forward_dropped += other.forward_dropped;
        for (reason, n) in &other.malformed_by_reason {
            match self
                .malformed_by_reason
                .iter_mut()
                .find(|(r, _)| r == reason)
            {
                Some((_, m)) => *m += n,
                None => self.malformed_by_reason.push((reason.clone(), *n)),
            }
        }
    }

    /// The outcomes of all requests (warm-up included).
    pub fn outcomes(&self) -> Outcomes {
        Outcomes {
            sent: self.sent,
            received: self.received,
            late: self.late,
            unanswered: self.unanswered,
        }
    }
}

/// How a set of sent requests ended: each is exactly one of received (answered in time), late
/// (answered after the client gave up on it) and unanswered (never answered).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcomes {
    /// Requests sent.
    pub sent: u64,
    /// Answered in time.
    pub received: u64,
    /// Answered after the client gave up on them.
    pub late: u64,
    /// Never answered.
    pub unanswered: u64,
}

impl Outcomes {
    /// Whether `sent = received + late + unanswered`.
    pub fn balanced(&self) -> bool {
        self.received
            .checked_add(self.late)
            .and_then(|n| n.checked_add(self.unanswered))
            == Some(self.sent)
    }

    /// Adds `other` to these.
    pub fn add(&mut self, other: &Outcomes) {
        self.sent += other.sent;
        self.received += other.received;
        self.late += other.late;
        self.unanswered += other.unanswered;
    }

    /// Requests counted +∞ in the percentiles: answered late or never.
    pub fn infinite(&self) -> u64 {
        self.late + self.unanswered
    }
}

/// Per-phase figures (all requests of the phase, warm-up included).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseResult {
    /// Configured rate (rps).
    pub rate_rps: f64,
    /// Phase length (intended), ns.
    pub duration_ns: u64,
    /// Requests planned.
    pub planned: u64,
    /// Requests sent.
    pub sent: u64,
    /// Responses matched.
    pub received: u64,
    /// Intended start of the phase, ns since the run's start.
    pub start_ns: u64,
    /// Actual time of the phase's last send, ns since the run's start.
    pub last_send_ns: u64,
    /// Actual time of the phase's last matched response (or its last send if none), ns.
    pub end_ns: u64,
}

impl PhaseResult {
    /// Offered rate: sent / (last send − start) (the original's `traces_rates`, docs/design.md §5.5).
    pub fn offered_rps(&self) -> f64 {
        rate(self.sent, self.last_send_ns.saturating_sub(self.start_ns))
    }

    /// Achieved rate (goodput): received / (end − start).
    pub fn achieved_rps(&self) -> f64 {
        rate(self.received, self.end_ns.saturating_sub(self.start_ns))
    }
}

fn rate(count: u64, span_ns: u64) -> f64 {
    if span_ns == 0 {
        0.0
    } else {
        count as f64 * NS_PER_S / span_ns as f64
    }
}

/// Per-class request outcomes, for comparing with the server: the classes' `all` add up to the
/// run's [`Counters`], and their `measured` to the requests behind the percentiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassCounts {
    /// Type name.
    pub name: String,
    /// Wire id.
    pub wire_id: u32,
    /// All requests of the class, warm-up included.
    pub all: Outcomes,
    /// Measured requests only (warm-up excluded).
    pub measured: Outcomes,
}

/// One request's trace (the original's `traces` rows, docs/design.md §5.5).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TraceRecord {
    /// The request's wire id.
    pub req_id: u32,
    /// Its wire type.
    pub req_type: u32,
    /// Its phase.
    pub phase: u16,
    /// Intended send time, ns since the run's start.
    pub intended_ns: u64,
    /// Actual send time (after `tx_burst`), ns; 0 if the device refused it.
    pub sent_ns: u64,
    /// Receive time of its response, ns; 0 if never answered.
    pub completed_ns: u64,
    /// The type's configured mean, ns.
    pub mean_ns: f64,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Latency and slowdown histograms per class, warm-up excluded, unanswered as +∞.
    pub stats: RunStats,
    /// The same per phase, for workloads of several phases (empty for one phase).
    pub phase_stats: Vec<RunStats>,
    /// Send lag (actual − intended send time, ns) of every sent request.
    pub send_lag_ns: Histogram<u64>,
    /// Counters.
    pub counters: Counters,
    /// Per phase.
    pub phases: Vec<PhaseResult>,
    /// Per class.
    pub classes: Vec<ClassCounts>,
    /// Wall-clock time of the run's start (time 0 of every `*_ns` field).
    pub started_at: SystemTime,
    /// Intended send time of the first measured (post-warm-up) request, ns.
    pub measured_from_ns: u64,
    /// When the run ended (drain included), ns.
    pub ended_ns: u64,
    /// Per-request traces of measured requests, in send order (empty unless
    /// [`EngineConfig::trace_limit`] > 0).
    pub traces: Vec<TraceRecord>,
    /// Whether [`Progress::stop`] ended the run before its schedule did (partial results).
    pub stopped_early: bool,
}

impl RunResult {
    /// Offered rate over all phases: sent / (last send − start).
    pub fn offered_rps(&self) -> f64 {
        let last = self
            .phases
            .iter()
            .map(|p| p.last_send_ns)
            .max()
            .unwrap_or(0);
        rate(self.counters.sent, last)
    }

    /// Achieved rate over all phases: received / (last response − start).
    pub fn achieved_rps(&self) -> f64 {
        let end = self.phases.iter().map(|p| p.end_ns).max().unwrap_or(0);
        rate(self.counters.received, end)
    }
}

/// The seed of phase `phase`'s RNG.
pub fn phase_seed(seed: u64, phase: usize) -> u64 {
    seed ^ (phase as u64).wrapping_add(1).wrapping_mul(SEED_MIX)
}

/// The arrivals of one phase: intended send times (absolute, ns since the run's start) and
/// what to send.
#[derive(Clone, Debug)]
pub struct Arrivals {
    generator: PhaseGenerator,
    rng: StdRng,
    next_ns: f64,
    end_ns: f64,
}

impl Arrivals {
    /// The arrivals of `workload`'s phase `phase` at `rate_rps`, starting at `start_ns`.
    pub fn new(
        workload: &Workload,
        phase: usize,
        rate_rps: f64,
        start_ns: u64,
        seed: u64,
    ) -> Option<Self> {
        let p = workload.phases.get(phase)?;
        let generator = PhaseGenerator::new(p, rate_rps)?;
        Some(Self {
            generator,
            rng: StdRng::seed_from_u64(phase_seed(seed, phase)),
            next_ns: start_ns as f64,
            end_ns: start_ns as f64 + p.duration_s * NS_PER_S,
        })
    }

    /// The next request and its intended send time, or `None` once past the phase's end.
    #[inline]
    pub fn next_request(&mut self) -> Option<(u64, Sampled)> {
        let sample = self.generator.next(&mut self.rng);
        self.next_ns += sample.gap_ns;
        if self.next_ns < self.end_ns {
            Some((self.next_ns as u64, sample))
        } else {
            self.next_ns = self.end_ns;
            None
        }
    }

    /// The configured mean (ns) of type `ty` of this phase.
    pub fn mean_ns(&self, ty: usize) -> f64 {
        self.generator.mean_ns(ty)
    }
}

/// Counts the requests a phase will plan (the same draws as the run itself).
fn count_arrivals(mut arrivals: Arrivals) -> u64 {
    let mut n = 0;
    while arrivals.next_request().is_some() {
        n += 1;
    }
    n
}

/// What the engine needs per (phase, type) on the response path.
#[derive(Copy, Clone, Debug)]
struct TypeSlot {
    class: usize,
    wire_id: u32,
    mean_ns: f64,
    phase: usize,
}

/// Mutable state of the response path, kept apart so that benches can drive it.
pub struct ResponseSink {
    table: InFlightTable,
    /// Every (phase, type), flat: phase `p`'s type `t` is `types[type_offsets[p] + t]`.
    types: Vec<TypeSlot>,
    type_offsets: Vec<usize>,
    stats: RunStats,
    /// Per-phase statistics, only for multi-phase workloads.
    phase_stats: Vec<RunStats>,
    counters: Counters,
    drops: DropCounters,
    phases: Vec<PhaseResult>,
    classes: Vec<ClassCounts>,
    local: Endpoint,
    parse_options: ParseOptions,
    traces: Vec<TraceRecord>,
}

impl ResponseSink {
    fn new(
        workload: &Workload,
        table: InFlightTable,
        local: Endpoint,
        parse_options: ParseOptions,
    ) -> Self {
        let mut types = Vec::new();
        let mut type_offsets = Vec::with_capacity(workload.phases.len());
        for (phase, p) in workload.phases.iter().enumerate() {
            type_offsets.push(types.len());
            types.extend(p.types.iter().map(|t| TypeSlot {
                class: t.class,
                wire_id: t.wire_id,
                mean_ns: t.mean_ns,
                phase,
            }));
        }
        Self {
            table,
            types,
            type_offsets,
            stats: RunStats::new(&workload.classes),
            phase_stats: if workload.phases.len() > 1 {
                workload
                    .phases
                    .iter()
                    .map(|_| RunStats::new(&workload.classes))
                    .collect()
            } else {
                Vec::new()
            },
            counters: Counters::default(),
            drops: DropCounters::new(),
            phases: Vec::new(),
            classes: workload
                .classes
                .iter()
                .map(|c| ClassCounts {
                    name: c.name.clone(),
                    wire_id: c.wire_id,
                    ..ClassCounts::default()
                })
                .collect(),
            local,
            parse_options,
            traces: Vec::new(),
        }
    }

    /// A sink for benches and tests: `workload`'s types, a table of `2^index_bits` slots.
    pub fn for_bench(workload: &Workload, index_bits: u32, local: Endpoint) -> Self {
        let mut sink = Self::new(
            workload,
            InFlightTable::with_index_bits(index_bits),
            local,
            CLIENT_PARSE_OPTIONS,
        );
        sink.phases = workload
            .phases
            .iter()
            .map(|p| PhaseResult {
                rate_rps: p.rate_rps.unwrap_or(0.0),
                duration_ns: 0,
                planned: 0,
                sent: 0,
                received: 0,
                start_ns: 0,
                last_send_ns: 0,
                end_ns: 0,
            })
            .collect();
        sink
    }

    /// Registers a request of `phase`'s type `ty` as sent (bench and test helper); returns its id.
    pub fn track(&mut self, phase: u16, ty: u16, intended_send_ns: u64) -> u32 {
        let type_slot = self.type_slot(usize::from(phase), usize::from(ty));
        let (id, expired) = self.table.insert(RequestInfo {
            intended_send_ns,
            type_slot,
            warmup: false,
            trace: NO_TRACE,
        });
        if let Some(e) = expired {
            self.on_expired(e.0);
        }
        id
    }

    /// The flat index of `phase`'s type `ty` (`u32::MAX` if there is none).
    fn type_slot(&self, phase: usize, ty: usize) -> u32 {
        self.type_offsets
            .get(phase)
            .map(|offset| offset + ty)
            .filter(|&slot| slot < self.types.len())
            .and_then(|slot| u32::try_from(slot).ok())
            .unwrap_or(u32::MAX)
    }

    /// The outcomes of `type_slot`'s class, all and measured (`None` for a slot that does not
    /// exist, which `insert` never hands out).
    fn class_outcomes(&mut self, type_slot: u32) -> Option<(&mut Outcomes, &mut Outcomes)> {
        let class = self.types.get(type_slot as usize)?.class;
        let c = self.classes.get_mut(class)?;
        Some((&mut c.all, &mut c.measured))
    }

    /// Counts a request the device took.
    fn on_sent(&mut self, type_slot: u32, warmup: bool) {
        self.counters.sent += 1;
        if warmup {
            self.counters.warmup += 1;
        }
        if let Some((all, measured)) = self.class_outcomes(type_slot) {
            all.sent += 1;
            if !warmup {
                measured.sent += 1;
            }
        }
    }

    /// Gives up on a request: never answered (+∞) unless a late response comes.
    fn on_expired(&mut self, info: RequestInfo) {
        self.counters.unanswered += 1;
        if let Some((all, measured)) = self.class_outcomes(info.type_slot) {
            all.unanswered += 1;
            if !info.warmup {
                measured.unanswered += 1;
            }
        }
        if !info.warmup {
            if let Some(t) = self.types.get(info.type_slot as usize) {
                self.stats.record_unanswered(t.class, 1);
                if let Some(p) = self.phase_stats.get_mut(t.phase) {
                    p.record_unanswered(t.class, 1);
                }
            }
        }
    }

    /// A request given up on was answered after all: from never answered to late (it stays
    /// +∞ in the percentiles: the client had stopped waiting for it).
    fn on_late(&mut self, request: GivenUp) {
        self.counters.unanswered = self.counters.unanswered.saturating_sub(1);
        self.counters.late += 1;
        if let Some((all, measured)) = self.class_outcomes(request.type_slot) {
            all.unanswered = all.unanswered.saturating_sub(1);
            all.late += 1;
            if !request.warmup {
                measured.unanswered = measured.unanswered.saturating_sub(1);
                measured.late += 1;
            }
        }
    }

    /// Handles one received frame at `now_ns`: parse, match, record. Never panics.
    #[inline]
    pub fn on_frame(&mut self, frame: &[u8], now_ns: u64) {
        if let Some((req_id, req_type)) = self.parse(frame) {
            self.on_response(req_id, req_type, now_ns);
        }
    }

    /// The `(req_id, req_type)` of a response to us; anything else is counted and `None`.
    #[inline]
    fn parse(&mut self, frame: &[u8]) -> Option<(u32, u32)> {
        match wire::parse_response_with(frame, &self.local, &self.parse_options) {
            Ok(r) => Some((r.req_id, r.req_type)),
            Err(reason) => {
                self.drops.record(reason);
                None
            }
        }
    }

    /// Matches and records a parsed response received at `now_ns` (on this thread or, with
    /// several client threads, on another one that forwarded it).
    #[inline]
    pub fn on_response(&mut self, req_id: u32, req_type: u32, now_ns: u64) {
        let types = &self.types;
        let outcome = self.table.complete_if(req_id, |info| {
            types
                .get(info.type_slot as usize)
                .is_some_and(|t| t.wire_id == req_type)
        });
        match outcome {
            MatchOutcome::Matched(info) => {
                // complete_if only accepts requests whose type slot exists.
                let Some(&t) = self.types.get(info.type_slot as usize) else {
                    return;
                };
                self.counters.received += 1;
                if let Some(c) = self.classes.get_mut(t.class) {
                    c.all.received += 1;
                    if !info.warmup {
                        c.measured.received += 1;
                    }
                }
                if let Some(p) = self.phases.get_mut(t.phase) {
                    p.received += 1;
                    p.end_ns = p.end_ns.max(now_ns);
                }
                if !info.warmup {
                    let latency_ns = now_ns.saturating_sub(info.intended_send_ns);
                    self.stats.record(t.class, latency_ns, t.mean_ns);
                    if let Some(p) = self.phase_stats.get_mut(t.phase) {
                        p.record(t.class, latency_ns, t.mean_ns);
                    }
                }
                if let Some(trace) = self.traces.get_mut(info.trace as usize) {
                    trace.completed_ns = now_ns;
                }
            }
            MatchOutcome::Duplicate => self.counters.duplicate += 1,
            MatchOutcome::Late(request) => self.on_late(request),
            MatchOutcome::UnknownId => self.counters.unknown_id += 1,
            MatchOutcome::Mismatched => self.counters.mismatched += 1,
        }
    }

    /// Completed (post-warm-up) requests recorded so far.
    pub fn recorded(&self) -> u64 {
        self.stats.completed()
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// A clock: ns since the run's start.
struct Clock(Instant);

impl Clock {
    #[inline]
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Receive times of one RX burst on the run's clock: a packet's arrival stamp
/// ([`PacketBuf::arrived_at`], on the wall clock) where it has one, else the burst's clock read.
#[derive(Copy, Clone, Debug)]
pub(crate) struct BurstTime {
    /// The run's clock (ns since its start) when the burst was received.
    now_ns: u64,
    /// The wall clock at the same moment, where the queues stamp arrivals.
    wall: Option<SystemTime>,
}

impl BurstTime {
    /// Reads the clocks after a burst (the wall clock only if `stamped`). The run's clock is
    /// read between two wall-clock reads, and the pair taken is (first wall read, run clock):
    /// a thread preempted between the reads pairs them wrongly, so a pair whose wall reads
    /// spread more than [`CLOCK_PAIR_MAX_SPREAD_NS`] is read again (a few times); whatever the
    /// spread, the pair only errs late — a later receive time, as an unstamped read would be —
    /// never earlier than the packet arrived.
    #[inline]
    pub(crate) fn read(instant: Instant, stamped: bool) -> Self {
        let run_ns = || u64::try_from(instant.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if !stamped {
            return Self {
                now_ns: run_ns(),
                wall: None,
            };
        }
        let mut pair = (SystemTime::now(), run_ns());
        for _ in 1..CLOCK_PAIR_TRIES {
            let spread = SystemTime::now().duration_since(pair.0).unwrap_or_default();
            if spread.as_nanos() <= u128::from(CLOCK_PAIR_MAX_SPREAD_NS) {
                break;
            }
            pair = (SystemTime::now(), run_ns());
        }
        Self {
            now_ns: pair.1,
            wall: Some(pair.0),
        }
    }

    /// When `buf` arrived, ns since the run's start: the burst time less how long ago its
    /// stamp says it arrived. A stamp "from the future" or older than [`MAX_STAMP_AGE_NS`] —
    /// the wall clock was stepped in between — counts as the burst time.
    #[inline]
    pub(crate) fn of<B: PacketBuf>(&self, buf: &B) -> u64 {
        let ago_ns = match (self.wall, buf.arrived_at()) {
            (Some(wall), Some(arrived)) => wall
                .duration_since(arrived)
                .ok()
                .and_then(|ago| u64::try_from(ago.as_nanos()).ok())
                .filter(|&ago_ns| ago_ns <= MAX_STAMP_AGE_NS)
                .unwrap_or(0),
            _ => 0,
        };
        self.now_ns.saturating_sub(ago_ns)
    }
}

/// The queues a run uses: TX queue 0 and every RX queue of a port (over memif the server
/// answers on `1 + workers` queues). Keep one `Engine` for several runs (a load sweep): the
/// queues are taken once. Create it on the thread that runs it (DPDK registers that thread).
pub struct Engine<P: Port> {
    tx: P::Tx,
    rxs: Vec<P::Rx>,
    /// Whether every RX queue stamps arrivals ([`RxQueue::stamp_arrivals`]).
    stamped: bool,
    /// First id generation of the next run (past every id of the previous runs).
    next_generation: u32,
}

impl<P: Port> Engine<P> {
    /// Takes TX queue 0 and every RX queue of `port`.
    pub fn new(port: &mut P) -> Result<Self, EngineError> {
        let tx = port.take_tx(0).ok_or(EngineError::NoTxQueue)?;
        let rxs: Vec<P::Rx> = (0..port.rx_queue_count())
            .filter_map(|q| port.take_rx(q))
            .collect();
        if rxs.is_empty() {
            return Err(EngineError::NoRxQueue);
        }
        Ok(Self::from_queues(tx, rxs))
    }

    /// An engine on queues taken elsewhere (a client thread's share of a port); call it on the
    /// thread that runs it. `rxs` may be empty when responses are forwarded to this thread.
    /// Every queue that can stamp arrivals is asked to ([`RxQueue::stamp_arrivals`]: kernel
    /// sockets), so that receive times are arrival times whatever the idle policy.
    pub fn from_queues(mut tx: P::Tx, mut rxs: Vec<P::Rx>) -> Self {
        tx.on_thread_start();
        for rx in &mut rxs {
            rx.on_thread_start();
        }
        let mut stamped = !rxs.is_empty();
        for rx in &mut rxs {
            stamped &= rx.stamp_arrivals();
        }
        Self {
            tx,
            rxs,
            stamped,
            next_generation: 0,
        }
    }

    /// Whether every RX queue stamps arrivals, so that receive times need no wake-up.
    pub fn arrivals_stamped(&self) -> bool {
        self.stamped
    }

    /// RX queues polled.
    pub fn rx_queue_count(&self) -> usize {
        self.rxs.len()
    }

    /// The queues, between runs (e.g. to restart the device they belong to).
    pub fn queues_mut(&mut self) -> (&mut P::Tx, &mut [P::Rx]) {
        (&mut self.tx, &mut self.rxs)
    }

    /// Runs `workload` with one rate per phase (rps); blocks for the whole run.
    pub fn run(
        &mut self,
        workload: &Workload,
        rates_rps: &[f64],
        config: &EngineConfig,
        progress: Option<&Progress>,
    ) -> Result<RunResult, EngineError> {
        let machine = ClientMachine::new(workload, rates_rps, config, self.next_generation)?;
        Ok(self.drive(machine, RunStart::now(), config, progress, None))
    }
}

impl<P: Port> Engine<P> {
    /// Plans a run (the dry pass included) without starting it: [`Engine::drive`] runs it.
    /// Lets several threads plan first and then start together ([`threads`]).
    pub fn prepare(
        &self,
        workload: &Workload,
        rates_rps: &[f64],
        config: &EngineConfig,
    ) -> Result<ClientMachine, EngineError> {
        ClientMachine::new(workload, rates_rps, config, self.next_generation)
    }

    /// Runs a machine from [`Engine::prepare`] with `start` as time 0; blocks for the whole run.
    /// With `forward`, the RX queues are shared with other client threads: responses are
    /// routed by their ids' tags ([`forward`]).
    pub fn drive(
        &mut self,
        machine: ClientMachine,
        start: RunStart,
        config: &EngineConfig,
        progress: Option<&Progress>,
        forward: Option<&Forwarder>,
    ) -> RunResult {
        drive_machine(self, machine, start, config, progress, forward)
    }

    /// After this thread's run: keeps reading its RX queues and forwarding what belongs to
    /// the other threads until `others_done` (their runs need what arrives here).
    pub fn forward_until(
        &mut self,
        forward: &Forwarder,
        config: &EngineConfig,
        start: RunStart,
        others_done: &dyn Fn() -> bool,
    ) {
        forward::forward_until::<P>(
            &mut self.rxs,
            self.stamped,
            forward,
            config,
            start,
            others_done,
        );
    }
}

/// Runs `workload` over `port` with one rate per phase (rps): [`Engine::new`] then
/// [`Engine::run`].
pub fn run<P: Port>(
    port: &mut P,
    workload: &Workload,
    rates_rps: &[f64],
    config: &EngineConfig,
    progress: Option<&Progress>,
) -> Result<RunResult, EngineError> {
    validate(workload, rates_rps, config)?;
    Engine::new(port)?.run(workload, rates_rps, config, progress)
}

fn validate(
    workload: &Workload,
    rates_rps: &[f64],
    config: &EngineConfig,
) -> Result<(), EngineError> {
    if rates_rps.len() != workload.phases.len() {
        return Err(EngineError::RateCount {
            got: rates_rps.len(),
            phases: workload.phases.len(),
        });
    }
    if config.targets.is_empty() {
        return Err(EngineError::NoTarget);
    }
    if !(0.0..1.0).contains(&config.warmup_fraction) {
        return Err(EngineError::BadWarmup(config.warmup_fraction));
    }
    if workload.phases.len() > usize::from(u16::MAX)
        || workload
            .phases
            .iter()
            .any(|p| p.types.len() > usize::from(u16::MAX))
    {
        return Err(EngineError::TooLarge(
            "more than 65535 phases or types per phase".into(),
        ));
    }
    if let Some((phase, p)) = workload
        .phases
        .iter()
        .enumerate()
        .find(|(_, p)| p.ptype != psp_workload::PacketType::PspMb)
    {
        return Err(EngineError::Unsupported(format!(
            "phase {phase}: ptype {:?}: psp-client sends PSP_MB requests only",
            p.ptype
        )));
    }
    for (phase, &rate_rps) in rates_rps.iter().enumerate() {
        if !(rate_rps.is_finite() && rate_rps > 0.0) {
            return Err(EngineError::BadRate { phase, rate_rps });
        }
    }
    let expected: f64 = rates_rps
        .iter()
        .zip(&workload.phases)
        .map(|(rate, phase)| rate * phase.duration_s)
        .sum();
    if expected > MAX_PLANNED_REQUESTS {
        return Err(EngineError::TooLarge(format!(
            "rate × duration plans about {expected:.3e} requests, more than {MAX_PLANNED_REQUESTS:e}"
        )));
    }
    Ok(())
}

/// When a run starts: time 0 of its clock and of every `*_ns` field of its result. Threads of
/// one client share it, so that their results are on one timeline ([`threads`]).
#[derive(Copy, Clone, Debug)]
pub struct RunStart {
    /// Time 0 of the run's clock.
    pub instant: Instant,
    /// The same moment on the wall clock ([`RunResult::started_at`]).
    pub wall: SystemTime,
}

impl RunStart {
    /// Now.
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Runs a prepared `machine` on `engine`'s queues from `start` until it is finished.
fn drive_machine<P: Port>(
    engine: &mut Engine<P>,
    mut machine: ClientMachine,
    start: RunStart,
    config: &EngineConfig,
    progress: Option<&Progress>,
    forward: Option<&Forwarder>,
) -> RunResult {
    if let Some(p) = progress {
        p.planned.store(machine.planned(), Ordering::Relaxed);
    }
    let _timer_slack = (config.idle != IdlePolicy::Spin).then(TimerSlack::tighten);
    let mut io = IoLoop::<P> {
        tx: &mut engine.tx,
        rxs: &mut engine.rxs,
        rx_bufs: Vec::with_capacity(RX_BURST),
        tx_bufs: Vec::with_capacity(TX_BURST),
        clock: Clock(start.instant),
        stamped: engine.stamped,
        idler: Idler::new(config.idle, engine.stamped),
        progress,
        forward,
    };
    io.drive(&mut machine);
    engine.next_generation = machine.next_generation();
    io.publish(&machine);
    if let Some(p) = progress {
        p.done.store(true, Ordering::Relaxed);
    }
    machine.into_result(start.wall)
}

/// The thin I/O loop around a [`ClientMachine`]: reads the clock, moves frames between the
/// machine and the port's queues, idles as the [`IdlePolicy`] says, publishes [`Progress`].
struct IoLoop<'a, P: Port> {
    tx: &'a mut P::Tx,
    rxs: &'a mut [P::Rx],
    rx_bufs: Vec<P::Buf>,
    tx_bufs: Vec<P::Buf>,
    clock: Clock,
    /// Whether the RX queues stamp arrivals ([`BurstTime`]).
    stamped: bool,
    idler: Idler,
    progress: Option<&'a Progress>,
    /// Several client threads share the RX queues: route responses by their ids' tags.
    forward: Option<&'a Forwarder>,
}

impl<P: Port> IoLoop<'_, P> {
    /// Runs `machine` until it is finished (or [`Progress::stop`] ends it).
    fn drive(&mut self, machine: &mut ClientMachine) {
        let mut poll_next = true;
        loop {
            if self
                .progress
                .is_some_and(|p| p.stop.load(Ordering::Relaxed))
            {
                machine.stop(self.clock.now_ns());
            }
            if machine.is_finished() {
                return;
            }
            if machine.is_sending() {
                poll_next = self.send_turn(machine, poll_next);
            } else {
                self.drain_turn(machine);
            }
        }
    }

    /// One turn while sending: poll (unless the last wait saw nothing arrive), then send every
    /// due request or idle until the next one. Returns whether the next turn should poll.
    #[inline]
    fn send_turn(&mut self, machine: &mut ClientMachine, poll_next: bool) -> bool {
        let received = if poll_next { self.poll_rx(machine) } else { 0 };
        let now = self.clock.now_ns();
        if let Some(next_send_ns) = machine.poll_timeout().filter(|&t| now < t) {
            return self.idler.idle(
                &self.clock,
                now,
                next_send_ns,
                machine.outstanding(),
                received,
                self.rxs,
            );
        }
        if let Some(p) = self.progress {
            p.phase.store(machine.phase() as u64, Ordering::Relaxed);
        }
        let tx = &mut *self.tx;
        if machine.poll_transmit(now, || tx.alloc(), &mut self.tx_bufs) == 0 {
            return true;
        }
        let mut attempts = 0;
        while !self.tx_bufs.is_empty() && attempts < TX_RETRY_LIMIT {
            tx.tx_burst(&mut self.tx_bufs);
            attempts += 1;
        }
        machine.on_transmitted(self.clock.now_ns(), &mut self.tx_bufs);
        self.publish(machine);
        true
    }

    /// One turn of the drain or the late listen: end it if due, else poll, and idle after an
    /// empty poll as the policy says, at most [`IDLE_NAP_MAX_NS`] per nap.
    fn drain_turn(&mut self, machine: &mut ClientMachine) {
        let now = self.clock.now_ns();
        machine.handle_timeout(now);
        let Some(deadline_ns) = machine.poll_timeout() else {
            return;
        };
        if let Some(p) = self.progress {
            p.received
                .store(machine.counters().received, Ordering::Relaxed);
        }
        if self.poll_rx(machine) > 0 {
            return;
        }
        let left_ns = deadline_ns.saturating_sub(now);
        match self.idler.policy {
            IdlePolicy::Spin => {}
            IdlePolicy::Yield if wait_ready(self.rxs, left_ns.min(DRAIN_WAIT_MAX_NS)).is_some() => {
            }
            _ => sleep_ns(left_ns.min(IDLE_NAP_MAX_NS)),
        }
    }

    /// Receives from every RX queue and hands the frames to `machine` (one clock read per
    /// burst); returns how many came in.
    #[inline]
    fn poll_rx(&mut self, machine: &mut ClientMachine) -> usize {
        let mut total = 0;
        for rx in self.rxs.iter_mut() {
            let n = rx.rx_burst(&mut self.rx_bufs, RX_BURST);
            if n == 0 {
                continue;
            }
            total += n;
            let time = BurstTime::read(self.clock.0, self.stamped);
            match self.forward {
                None => {
                    for buf in self.rx_bufs.drain(..) {
                        machine.on_response(time.of(&buf), buf.data());
                    }
                }
                Some(forward) => {
                    for buf in self.rx_bufs.drain(..) {
                        if let Some(response) =
                            machine.on_response_routed(time.of(&buf), buf.data(), forward.tag)
                        {
                            if !forward.send(response) {
                                machine.on_forward_dropped();
                            }
                        }
                    }
                }
            }
        }
        if let Some(forward) = self.forward {
            while let Some(response) = forward.receive() {
                machine.on_forwarded(response);
                total += 1;
            }
        }
        total
    }

    /// Publishes the sent and received counts.
    fn publish(&self, machine: &ClientMachine) {
        if let Some(p) = self.progress {
            p.sent.store(machine.counters().sent, Ordering::Relaxed);
            p.received
                .store(machine.counters().received, Ordering::Relaxed);
        }
    }
}

/// Waits up to `ns` for a packet if there is one RX queue and it can wait (a kernel socket):
/// whether one may be ready; `None` (at once) if it cannot wait.
fn wait_ready<R: RxQueue>(rxs: &mut [R], ns: u64) -> Option<bool> {
    match rxs {
        [rx] => rx.wait_ready(Duration::from_nanos(ns)),
        _ => None,
    }
}

/// The calling thread's timer slack set to [`IDLE_TIMER_SLACK_NS`] while this lives (Linux;
/// elsewhere, and if the kernel refuses, nothing changes: waits are just less punctual).
struct TimerSlack {
    #[cfg(target_os = "linux")]
    previous_ns: Option<u64>,
}

impl TimerSlack {
    fn tighten() -> Self {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::prctl;
            let previous_ns = prctl::get_timerslack()
                .ok()
                .and_then(|ns| u64::try_from(ns).ok());
            let _ = prctl::set_timerslack(IDLE_TIMER_SLACK_NS as _);
            Self { previous_ns }
        }
        #[cfg(not(target_os = "linux"))]
        Self {}
    }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(ns) = self.previous_ns {
            let _ = nix::sys::prctl::set_timerslack(ns as _);
        }
    }
}

/// Gives the core back between sends as its [`IdlePolicy`] says. It learns, as medians (one
/// [`IDLE_WAKE_MARGIN_STEP_NS`] towards each new value, so outliers move them no more than any
/// other wait), how late timed waits wake up — it wakes that much before a send, at most
/// [`IDLE_WAKE_MARGIN_MAX_NS`] — and how much CPU time a wait costs its thread: it does not
/// wait for a gap shorter than that (at most [`IDLE_SPIN_MAX_NS`]) plus [`IDLE_MIN_SLEEP_NS`],
/// which costs less spun. Where the thread's CPU clock cannot be read, the lateness stands in
/// for the cost.
struct Idler {
    policy: IdlePolicy,
    /// The RX queues stamp arrivals: receive times need no wake-up, so [`IdlePolicy::Yield`]
    /// waits like [`IdlePolicy::Sleep`] (one wake-up per send instead of one more per
    /// response that arrives during a wait).
    stamped: bool,
    /// Learnt median wake-up lateness, between [`IDLE_WAKE_MARGIN_MIN_NS`] and
    /// [`IDLE_SPIN_MAX_NS`].
    late_ns: u64,
    /// Learnt median CPU time of one wait, within the same bounds.
    cost_ns: u64,
}

impl Idler {
    fn new(policy: IdlePolicy, stamped: bool) -> Self {
        Self {
            policy,
            stamped,
            late_ns: IDLE_WAKE_MARGIN_NS,
            cost_ns: IDLE_WAKE_MARGIN_NS,
        }
    }

    /// How long before a send a timed wait ends.
    fn margin_ns(&self) -> u64 {
        self.late_ns.min(IDLE_WAKE_MARGIN_MAX_NS)
    }

    /// The shortest gap worth a wait: longer than a wait costs, and than the margin (a wait
    /// must leave time before its wake-up target), by [`IDLE_MIN_SLEEP_NS`].
    fn min_wait_gap_ns(&self) -> u64 {
        self.cost_ns.max(self.margin_ns()) + IDLE_MIN_SLEEP_NS
    }

    /// Waits, if worth it, after a poll that received `received` frames with `outstanding`
    /// requests in flight, when it is `now` and the next send is meant for `next_send_ns`.
    /// Returns whether the next turn should poll: not after a wait on the socket that saw
    /// nothing arrive (one receive call saved per send).
    #[inline]
    fn idle<R: RxQueue>(
        &mut self,
        clock: &Clock,
        now: u64,
        next_send_ns: u64,
        outstanding: usize,
        received: usize,
        rxs: &mut [R],
    ) -> bool {
        let gap_ns = next_send_ns.saturating_sub(now);
        if self.policy == IdlePolicy::Spin || received > 0 || gap_ns <= self.min_wait_gap_ns() {
            return true;
        }
        let wait_ns = gap_ns
            .saturating_sub(self.margin_ns())
            .min(IDLE_WAIT_MAX_NS);
        let cpu_before_ns = thread_cpu_ns();
        let (wait_ns, poll_next) = match self.policy {
            // One unstamped socket: a response wakes the wait, so its receive time stays exact.
            IdlePolicy::Yield if !self.stamped => match wait_ready(rxs, wait_ns) {
                Some(ready) => (wait_ns, ready),
                None => {
                    let nap_ns = if outstanding == 0 {
                        wait_ns
                    } else {
                        wait_ns.min(IDLE_NAP_MAX_NS)
                    };
                    sleep_ns(nap_ns);
                    (nap_ns, true)
                }
            },
            _ => {
                sleep_ns(wait_ns);
                (wait_ns, true)
            }
        };
        let cost_ns = cpu_before_ns
            .zip(thread_cpu_ns())
            .map(|(a, b)| b.saturating_sub(a));
        // A wait a packet ended early says nothing about wake-up latency.
        let target_ns = now + wait_ns;
        let woke_ns = clock.now_ns();
        let late_ns = woke_ns.checked_sub(target_ns);
        self.learn(late_ns, cost_ns.or(late_ns));
        poll_next
    }

    /// Moves the learnt lateness and wait cost one step towards these samples (`None`: not
    /// known from this wait).
    fn learn(&mut self, late_ns: Option<u64>, cost_ns: Option<u64>) {
        if let Some(late_ns) = late_ns {
            self.late_ns = median_step(self.late_ns, late_ns);
        }
        if let Some(cost_ns) = cost_ns {
            self.cost_ns = median_step(self.cost_ns, cost_ns);
        }
    }
}

/// `estimate` one [`IDLE_WAKE_MARGIN_STEP_NS`] towards `sample`, within
/// [`IDLE_WAKE_MARGIN_MIN_NS`]..=[`IDLE_SPIN_MAX_NS`]: repeated, it follows the median.
fn median_step(estimate: u64, sample: u64) -> u64 {
    if sample > estimate {
        estimate + IDLE_WAKE_MARGIN_STEP_NS
    } else {
        estimate.saturating_sub(IDLE_WAKE_MARGIN_STEP_NS)
    }
    .clamp(IDLE_WAKE_MARGIN_MIN_NS, IDLE_SPIN_MAX_NS)
}

/// The calling thread's CPU time so far (ns), where it can be read (Linux).
fn thread_cpu_ns() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let now = cpu_time::ThreadTime::try_now().ok()?;
        u64::try_from(now.as_duration().as_nanos()).ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[inline]
fn sleep_ns(ns: u64) {
    std::thread::sleep(Duration::from_nanos(ns));
}

#[cfg(test)]
mod tests {
    use super::*;
    use psp_net::wire::RequestRepr;

    fn workload() -> Workload {
        Workload::from_yaml_str(
            "t",
            "- {mean_ns: [1000, 10000], ratios: [.9, .1], rtype: [SHORT, LONG], duration: 0.01}\n\
             - {mean_ns: [2000], ratios: [1], rtype: [SHORT], duration: 0.01}",
        )
        .unwrap()
    }

    #[test]
    fn idler_learns_wake_up_lateness_and_wait_cost_within_bounds() {
        let mut idler = Idler::new(IdlePolicy::Yield, false);
        // Wake-ups 6 µs late, with every third one a 5 ms outlier: the median is 6 µs.
        for i in 0..300 {
            idler.learn(Some(if i % 3 == 2 { 5_000_000 } else { 6_000 }), None);
        }
        assert!(
            (5_000..=7_000).contains(&idler.late_ns),
            "{}",
            idler.late_ns
        );
        assert_eq!(idler.margin_ns(), idler.late_ns);
        assert_eq!(idler.cost_ns, IDLE_WAKE_MARGIN_NS, "no cost seen yet");
        for _ in 0..500 {
            idler.learn(Some(1_000), Some(1_000));
        }
        assert_eq!(idler.late_ns, IDLE_WAKE_MARGIN_MIN_NS);
        assert_eq!(idler.margin_ns(), IDLE_WAKE_MARGIN_MIN_NS);
        assert_eq!(
            idler.min_wait_gap_ns(),
            IDLE_WAKE_MARGIN_MIN_NS + IDLE_MIN_SLEEP_NS
        );
        // The 2-core VM: waits wake 35 µs late and cost 30 µs. The margin stops at its cap
        // (sends leave late rather than the engine spinning); gaps cheaper spun are spun.
        for _ in 0..200 {
            idler.learn(Some(35_000), Some(30_000));
        }
        assert!(
            (34_500..=35_500).contains(&idler.late_ns),
            "{}",
            idler.late_ns
        );
        assert_eq!(idler.margin_ns(), IDLE_WAKE_MARGIN_MAX_NS);
        assert!(
            (29_500..=30_500).contains(&idler.cost_ns),
            "{}",
            idler.cost_ns
        );
        assert_eq!(idler.min_wait_gap_ns(), idler.cost_ns + IDLE_MIN_SLEEP_NS);
        // A busy machine: wake-ups are late, but a wait that hands the core to another thread
        // is cheap, so the engine waits rather than spins (for any gap that leaves time before
        // the wake-up margin).
        for _ in 0..200 {
            idler.learn(Some(10_000_000), Some(4_000));
        }
        assert_eq!(idler.late_ns, IDLE_SPIN_MAX_NS);
        assert_eq!(idler.margin_ns(), IDLE_WAKE_MARGIN_MAX_NS);
        assert!(
            (3_500..=4_500).contains(&idler.cost_ns),
            "{}",
            idler.cost_ns
        );
        assert_eq!(
            idler.min_wait_gap_ns(),
            IDLE_WAKE_MARGIN_MAX_NS + IDLE_MIN_SLEEP_NS
        );
        // Dear waits: the spun gaps stop at their cap.
        for _ in 0..200 {
            idler.learn(None, Some(10_000_000));
        }
        assert_eq!(idler.cost_ns, IDLE_SPIN_MAX_NS);
    }

    #[test]
    fn thread_cpu_clock_is_read_and_moves_forward() {
        let before = thread_cpu_ns();
        assert_eq!(before.is_some(), cfg!(target_os = "linux"));
        let mut x = 0u64;
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        if let (Some(before), Some(after)) = (before, thread_cpu_ns()) {
            assert!(after >= before, "{before} {after} {x}");
        }
    }

    /// A received packet, stamped or not.
    struct Arrived(Option<SystemTime>);

    impl PacketBuf for Arrived {
        fn data(&self) -> &[u8] {
            &[]
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut []
        }
        fn set_len(&mut self, _: usize) -> Result<(), psp_net::port::BufferTooSmall> {
            Ok(())
        }
        fn capacity(&self) -> usize {
            0
        }
        fn arrived_at(&self) -> Option<SystemTime> {
            self.0
        }
    }

    #[test]
    fn burst_time_takes_arrival_stamps_back_to_the_run_clock() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let stamped = BurstTime {
            now_ns: 1_000_000,
            wall: Some(wall),
        };
        let ago = |ns| Arrived(Some(wall - Duration::from_nanos(ns)));
        assert_eq!(stamped.of(&ago(0)), 1_000_000);
        assert_eq!(stamped.of(&ago(25_000)), 975_000);
        // Before the run started: never below 0.
        assert_eq!(stamped.of(&ago(5_000_000)), 0);
        // Older than any read could be (a wall-clock step forward): the burst time.
        let stepped = BurstTime {
            now_ns: 10 * MAX_STAMP_AGE_NS,
            wall: Some(wall),
        };
        assert_eq!(stepped.of(&ago(MAX_STAMP_AGE_NS)), 9 * MAX_STAMP_AGE_NS);
        assert_eq!(
            stepped.of(&ago(MAX_STAMP_AGE_NS + 1)),
            10 * MAX_STAMP_AGE_NS
        );
        // From the future (a wall-clock step back): the burst time.
        assert_eq!(
            stamped.of(&Arrived(Some(wall + Duration::from_micros(3)))),
            1_000_000
        );
        // No stamp, or queues that do not stamp: the burst time.
        assert_eq!(stamped.of(&Arrived(None)), 1_000_000);
        let unstamped = BurstTime {
            now_ns: 1_000_000,
            wall: None,
        };
        assert_eq!(unstamped.of(&ago(25_000)), 1_000_000);
        let read = BurstTime::read(Instant::now(), true);
        assert!(read.wall.is_some());
        assert!(BurstTime::read(Instant::now(), false).wall.is_none());
    }

    #[test]
    fn arrivals_are_reproducible_and_within_phase() {
        let w = workload();
        let mut a = Arrivals::new(&w, 0, 1e6, 0, 7).unwrap();
        let mut b = Arrivals::new(&w, 0, 1e6, 0, 7).unwrap();
        let mut n = 0;
        let mut last = 0;
        while let Some((t, s)) = a.next_request() {
            assert_eq!(Some((t, s)), b.next_request());
            assert!(t >= last && t < 10_000_000);
            last = t;
            n += 1;
        }
        assert_eq!(b.next_request(), None);
        // 1 Mrps for 10 ms: 10k requests ± 5 sigma.
        assert!((9_500..10_500).contains(&n), "{n}");
        let c = Arrivals::new(&w, 0, 1e6, 0, 8).unwrap();
        assert_ne!(count_arrivals(c), 0);
    }

    #[test]
    fn second_phase_starts_after_first() {
        let w = workload();
        let mut a = Arrivals::new(&w, 1, 1e5, 10_000_000, 1).unwrap();
        let (t, s) = a.next_request().unwrap();
        assert!(t >= 10_000_000);
        assert_eq!(s.ty, 0);
        assert_ne!(phase_seed(1, 0), phase_seed(1, 1));
    }

    #[test]
    fn sink_counts_every_response_kind() {
        let w = workload();
        let local = Endpoint::new(
            wire::MacAddr([2, 0, 0, 0, 0, 1]),
            [10, 0, 0, 1].into(),
            5000,
        );
        let server = Endpoint::new(
            wire::MacAddr([2, 0, 0, 0, 0, 2]),
            [10, 0, 0, 2].into(),
            6789,
        );
        let mut sink = ResponseSink::for_bench(&w, 10, local);
        let id = sink.track(0, 1, 100);
        let mut frame = [0u8; 64];
        let request = RequestRepr {
            req_id: id,
            req_type: 2,
            req_size: 4,
            run_ns: 10,
        };
        // A response is a request frame from the server to us (12-byte payload suffices).
        wire::build_request(&mut frame, &request, &server, &local).unwrap();
        sink.on_frame(&frame, 1100);
        assert_eq!(sink.counters().received, 1);
        assert_eq!(sink.recorded(), 1);
        sink.on_frame(&frame, 1200);
        assert_eq!(sink.counters().duplicate, 1);
        let wrong_type = RequestRepr {
            req_type: 1,
            req_id: sink.track(0, 1, 5),
            ..request
        };
        wire::build_request(&mut frame, &wrong_type, &server, &local).unwrap();
        sink.on_frame(&frame, 1300);
        assert_eq!(sink.counters().mismatched, 1);
        let unknown = RequestRepr {
            req_id: 0xdead_beef,
            ..request
        };
        wire::build_request(&mut frame, &unknown, &server, &local).unwrap();
        sink.on_frame(&frame, 1400);
        assert_eq!(sink.counters().unknown_id, 1);
        sink.on_frame(&frame[..20], 1500);
        sink.on_frame(&[], 1500);
        assert_eq!(sink.drops.total_drops(), 2);
        let latency = sink.stats.types()[1].latency();
        assert_eq!(latency.count, 1);
        assert!((999.0..=1001.0).contains(&latency.p50), "{latency:?}");
    }
}
