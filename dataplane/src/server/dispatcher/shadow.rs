//! The shadow policy (`psp.shadow: NAME`): a second scheduler that sees the same arrivals and
//! completions as the live one, is asked at each live decision what it would have done
//! ([`psp_scheduler::Scheduler::shadow_dispatch`]), and never dispatches anything itself.
//!
//! ## Off the dispatcher's thread
//! Running a second scheduler costs about what the first does (≈ 30–40 ns per request,
//! `benches/telemetry.rs`), so it runs on its own thread. The dispatcher only writes each
//! event (arrival, live decision, completion: 4 bytes each) into a staging buffer of its own,
//! which no other core reads and so stays in its cache; once per loop iteration (or when the
//! stage is full) it copies the stage into a batch taken from a pool of
//! [`SHADOW_POOL_BATCHES`] preallocated batches, with the iteration's two clock readings, and
//! hands the batch over on a lock-free queue, without waking the thread (it looks every
//! 50 µs): nothing allocates, locks, logs or makes a system call on its path. The copy brings
//! the batch's cache lines (read by the shadow thread last time round) back in one burst; one
//! store per event into the shared batch stalled on them one by one, and cost the dispatcher
//! twice as much within a scheduling loop (`benches/telemetry.rs`). When the shadow thread is
//! so far behind that no batch is free, the stage's events are dropped and counted, and the
//! shadow is out of sync from then on (it cannot be toggled live).
//!
//! The shadow thread applies the events in order and keeps the counts (agreement, its own CPU
//! time) in atomics that the dispatcher reads once per telemetry window and at the end.
//! `toggle` ([`ShadowFeed::take_back`]) flushes, waits until the thread has applied everything,
//! takes its scheduler back, swaps it with the live one and hands the old live one over.
//!
//! Tested in `server/tests/step.rs` (virtual time: c-FCFS live, SJF shadow, a toggle) and end
//! to end in `tests/client_server_udp.rs`; the dispatcher's share in `benches/telemetry.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use psp_scheduler::{Scheduler, ShadowVerdict, Token, TypeIndex, WorkerId, MAX_TYPES, MAX_WORKERS};

use crate::config::MAX_PENDING_SLOTS;
use serde::Serialize;

/// Events per batch (and in the dispatcher's stage): one loop iteration's worth at full bursts,
/// with room to spare.
pub const SHADOW_BATCH_EVENTS: usize = 256;
/// Batches between the dispatcher and the shadow thread.
pub const SHADOW_POOL_BATCHES: usize = 64;
/// How often an idle shadow thread looks for batches: the pool holds far more than arrives
/// meanwhile (64 batches of up to 256 events against ≈ 1 000 events per 50 µs at 7 Mrps of
/// events), and the dispatcher never pays for a wake-up.
const SHADOW_POLL: Duration = Duration::from_micros(50);
/// How long a toggle waits for the shadow thread to catch up.
const TAKE_BACK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the shadow did over a run (cumulative), or over a telemetry window
/// ([`ShadowReport::since`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShadowReport {
    /// The shadow's policy.
    pub policy: &'static str,
    /// Live decisions it was compared on.
    pub decisions: u64,
    /// It would have started the same request on the same worker.
    pub agreed: u64,
    /// The same request, on another worker.
    pub same_request: u64,
    /// Another request (or none).
    pub disagreed: u64,
    /// Decisions it could not follow (a request it had refused or missed, a worker it thought
    /// busy).
    pub out_of_sync: u64,
    /// Arrivals its queues refused (full) although the live ones took them.
    pub arrivals_refused: u64,
    /// Events the dispatcher dropped because no batch was free (the thread was behind).
    pub events_dropped: u64,
    /// DARC plans it applied.
    pub plan_updates: u64,
    /// Events it applied (arrivals, decisions, completions).
    pub events: u64,
    /// CPU time of the shadow thread (ns).
    pub cpu_ns: u64,
}

impl ShadowReport {
    /// Share of decisions it agreed with (same request, same worker).
    pub fn agreed_share(&self) -> f64 {
        self.agreed as f64 / self.decisions.max(1) as f64
    }

    /// The shadow thread's CPU time per live decision (ns).
    pub fn cpu_ns_per_decision(&self) -> f64 {
        self.cpu_ns as f64 / self.decisions.max(1) as f64
    }

    /// Whether every event reached the shadow and it followed every decision.
    pub fn in_sync(&self) -> bool {
        self.out_of_sync == 0 && self.arrivals_refused == 0 && self.events_dropped == 0
    }

    /// The counts since `earlier` (same policy; after a toggle, all of them).
    pub fn since(&self, earlier: &ShadowReport) -> ShadowReport {
        if self.policy != earlier.policy {
            return *self;
        }
        let d = |now: u64, then: u64| now.saturating_sub(then);
        ShadowReport {
            policy: self.policy,
            decisions: d(self.decisions, earlier.decisions),
            agreed: d(self.agreed, earlier.agreed),
            same_request: d(self.same_request, earlier.same_request),
            disagreed: d(self.disagreed, earlier.disagreed),
            out_of_sync: d(self.out_of_sync, earlier.out_of_sync),
            arrivals_refused: d(self.arrivals_refused, earlier.arrivals_refused),
            events_dropped: d(self.events_dropped, earlier.events_dropped),
            plan_updates: d(self.plan_updates, earlier.plan_updates),
            events: d(self.events, earlier.events),
            cpu_ns: d(self.cpu_ns, earlier.cpu_ns),
        }
    }
}

/// One thing the live scheduler did, for the shadow to replay, packed in 4 bytes (the
/// dispatcher writes three per request). From the top: the kind (2 bits), the argument (8 bits:
/// the type index, UNKNOWN as 255, or the worker) and the token (22 bits: the dispatcher's slab
/// index, below [`MAX_PENDING_SLOTS`]). Its time is its batch's: a batch holds one loop
/// iteration, whose arrivals share the receive half's time and whose decisions and completions
/// share the dispatch half's ([`Batch`]). Measured per request fed back to back
/// (`benches/telemetry.rs`, stored in the shared batch one by one): 6.0–7.8 ns, against
/// 6.7–7.9 for 16-byte events with their own time and 6.4–6.9 for 8-byte ones; 8-byte events
/// with the time in separate events when it changes cost more than the bytes they saved.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Event(u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum EventKind {
    Arrival = 0,
    Dispatch = 1,
    Completion = 2,
}

/// Bits of an event's token.
const TOKEN_BITS: u32 = 22;
/// Bits of an event's argument.
const ARG_BITS: u32 = 8;
/// The argument that stands for [`TypeIndex::UNKNOWN`].
const UNKNOWN_ARG: u32 = (1 << ARG_BITS) - 1;
const _: () = assert!(
    MAX_PENDING_SLOTS <= 1 << TOKEN_BITS,
    "every slab index fits"
);
const _: () = assert!(MAX_WORKERS <= 1 << ARG_BITS, "every worker fits");
const _: () = assert!(
    MAX_TYPES < UNKNOWN_ARG as usize,
    "every type fits beside UNKNOWN"
);

impl Event {
    /// `kind` with `arg` (below 2^8) and `token`, or `None` for a token of 22 bits or more
    /// (which the dispatcher's slab never issues).
    #[inline]
    fn new(kind: EventKind, arg: u32, token: u64) -> Option<Self> {
        (token < 1 << TOKEN_BITS).then_some(Self(
            (kind as u32) << (ARG_BITS + TOKEN_BITS) | arg << TOKEN_BITS | token as u32,
        ))
    }

    fn kind(self) -> EventKind {
        match self.0 >> (ARG_BITS + TOKEN_BITS) {
            0 => EventKind::Arrival,
            1 => EventKind::Dispatch,
            _ => EventKind::Completion,
        }
    }

    fn arg(self) -> u32 {
        (self.0 >> TOKEN_BITS) & UNKNOWN_ARG
    }

    fn token(self) -> Token {
        Token(u64::from(self.0 & ((1 << TOKEN_BITS) - 1)))
    }

    /// The argument of an arrival: its type.
    fn type_index(self) -> TypeIndex {
        match self.arg() {
            UNKNOWN_ARG => TypeIndex::UNKNOWN,
            // Below 2^8.
            ty => TypeIndex(ty as u16),
        }
    }

    /// The argument of a decision or a completion: its worker.
    fn worker(self) -> WorkerId {
        // Below 2^8.
        WorkerId(self.arg() as u16)
    }
}

/// Events of (at most) one loop iteration and its two times, stamped at the hand-over.
#[derive(Debug)]
struct Batch {
    /// The receive half's time: the arrivals'.
    receive_ns: u64,
    /// The dispatch half's time: the decisions' and completions'.
    dispatch_ns: u64,
    events: Vec<Event>,
}

impl Batch {
    fn new() -> Self {
        Self {
            receive_ns: 0,
            dispatch_ns: 0,
            events: Vec::with_capacity(SHADOW_BATCH_EVENTS),
        }
    }

    /// When an event of `kind` happened.
    fn time_of(&self, kind: EventKind) -> u64 {
        match kind {
            EventKind::Arrival => self.receive_ns,
            EventKind::Dispatch | EventKind::Completion => self.dispatch_ns,
        }
    }
}

/// The counts, written by the shadow thread (events dropped: by the dispatcher).
#[derive(Debug, Default)]
struct Counts {
    decisions: AtomicU64,
    agreed: AtomicU64,
    same_request: AtomicU64,
    disagreed: AtomicU64,
    out_of_sync: AtomicU64,
    arrivals_refused: AtomicU64,
    plan_updates: AtomicU64,
    events: AtomicU64,
    cpu_ns: AtomicU64,
}

impl Counts {
    fn report(&self, policy: &'static str) -> ShadowReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShadowReport {
            policy,
            decisions: load(&self.decisions),
            agreed: load(&self.agreed),
            same_request: load(&self.same_request),
            disagreed: load(&self.disagreed),
            out_of_sync: load(&self.out_of_sync),
            arrivals_refused: load(&self.arrivals_refused),
            events_dropped: 0,
            plan_updates: load(&self.plan_updates),
            events: load(&self.events),
            cpu_ns: load(&self.cpu_ns),
        }
    }
}

/// What the dispatcher and the shadow thread share.
#[derive(Debug)]
struct Shared {
    free: ArrayQueue<Batch>,
    full: ArrayQueue<Batch>,
    counts: Counts,
    stop: AtomicBool,
}

/// Control messages to the shadow thread (rare: a toggle).
enum Control {
    /// Apply everything queued, then send the scheduler back.
    GiveBack,
    /// Shadow this scheduler from now on (its counts start over).
    Take(Box<Scheduler>),
}

/// The dispatcher's end: the staged events and the way to the shadow thread.
pub(crate) struct ShadowFeed {
    shared: Arc<Shared>,
    /// The loop iteration's events so far, in the dispatcher's own memory (it stays in its
    /// cache: no other core reads it); copied into a pooled batch at the hand-over.
    staging: Box<[Event]>,
    /// Events in `staging`.
    staged: usize,
    /// The time of the arrivals being recorded (the loop iteration's receive half).
    receive_ns: u64,
    /// The time of the decisions and completions being recorded (its dispatch half).
    dispatch_ns: u64,
    /// Events dropped so far (the dispatcher's own counter: no shared cache line per drop).
    events_dropped: u64,
    policy: &'static str,
    control: Sender<Control>,
    back: Receiver<Box<Scheduler>>,
    join: Option<JoinHandle<()>>,
}

impl ShadowFeed {
    /// Starts the shadow thread with `scheduler`.
    pub(crate) fn spawn(scheduler: Scheduler) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            free: ArrayQueue::new(SHADOW_POOL_BATCHES),
            full: ArrayQueue::new(SHADOW_POOL_BATCHES),
            counts: Counts::default(),
            stop: AtomicBool::new(false),
        });
        for _ in 0..SHADOW_POOL_BATCHES {
            let _ = shared.free.push(Batch::new());
        }
        let (control, control_rx) = mpsc::channel();
        let (back_tx, back) = mpsc::channel();
        let policy = scheduler.policy().name();
        let thread_shared = Arc::clone(&shared);
        let join = std::thread::Builder::new()
            .name("psp-shadow".into())
            .spawn(move || shadow_thread(scheduler, &thread_shared, &control_rx, &back_tx))?;
        Ok(Self {
            shared,
            staging: vec![Event(0); SHADOW_BATCH_EVENTS].into_boxed_slice(),
            staged: 0,
            receive_ns: 0,
            dispatch_ns: 0,
            events_dropped: 0,
            policy,
            control,
            back,
            join: Some(join),
        })
    }

    /// Appends `event` to the staged events; a full stage is handed over at once.
    #[inline]
    fn record(&mut self, event: Event) {
        if let Some(slot) = self.staging.get_mut(self.staged) {
            *slot = event;
            self.staged += 1;
        }
        if self.staged == SHADOW_BATCH_EVENTS {
            self.flush();
        }
    }

    /// A loop iteration's receive half starts at `now_ns`: the arrivals recorded next happened
    /// then. Events of an earlier receive half not yet handed over (a driver that receives
    /// twice without dispatching; the dispatcher's loop never does) are handed over first.
    #[inline]
    pub(super) fn begin_receive(&mut self, now_ns: u64) {
        self.flush();
        self.receive_ns = now_ns;
    }

    /// The dispatch half starts at `now_ns`: the decisions and completions recorded next
    /// happened then. It ends with [`ShadowFeed::flush`].
    #[inline]
    pub(super) fn begin_dispatch(&mut self, now_ns: u64) {
        self.dispatch_ns = now_ns;
    }

    /// The live scheduler accepted `token` (a token of 22 bits or more, which the dispatcher's
    /// slab never issues, is dropped and counted).
    #[inline]
    pub(super) fn on_arrival(&mut self, ty: TypeIndex, token: Token) {
        let arg = u32::from(ty.0).min(UNKNOWN_ARG);
        self.record_token(EventKind::Arrival, arg, token);
    }

    /// The live scheduler started `token` on `worker`.
    #[inline]
    pub(super) fn on_dispatch(&mut self, worker: WorkerId, token: Token) {
        self.record_token(EventKind::Dispatch, u32::from(worker.0), token);
    }

    /// The live worker `worker` finished.
    #[inline]
    pub(super) fn on_completion(&mut self, worker: WorkerId) {
        self.record_token(EventKind::Completion, u32::from(worker.0), Token(0));
    }

    #[inline]
    fn record_token(&mut self, kind: EventKind, arg: u32, token: Token) {
        match Event::new(kind, arg, token.0) {
            Some(event) => self.record(event),
            None => self.events_dropped += 1,
        }
    }

    /// Hands the batch being filled to the shadow thread (once per loop iteration).
    #[inline]
    pub(super) fn flush(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        if staged == 0 {
            return;
        }
        match self.shared.free.pop() {
            Some(mut batch) => {
                // One copy in a burst: the batch's lines, which the shadow thread read last
                // time round, come back to this core together rather than one per event.
                // At most SHADOW_BATCH_EVENTS, its capacity: no allocation.
                batch.events.extend_from_slice(&self.staging[..staged]);
                batch.receive_ns = self.receive_ns;
                batch.dispatch_ns = self.dispatch_ns;
                // `full` holds every batch of the pool: the push cannot fail. No wake-up: the
                // shadow thread looks every `SHADOW_POLL` (an unpark would be a system call
                // whenever it sleeps).
                let _ = self.shared.full.push(batch);
            }
            // The shadow thread is so far behind that the pool is empty.
            None => self.events_dropped += staged as u64,
        }
    }

    /// The counts so far.
    pub(super) fn report(&self) -> ShadowReport {
        ShadowReport {
            events_dropped: self.events_dropped,
            ..self.shared.counts.report(self.policy)
        }
    }

    /// Toggle, first half: waits until the thread has applied every event and takes its
    /// scheduler; the thread then waits for [`ShadowFeed::shadow`]. An error names why not.
    pub(super) fn take_back(&mut self) -> Result<Scheduler, String> {
        let report = self.report();
        if !report.in_sync() {
            return Err(format!(
                "toggle: the shadow {} lost track (out of sync {}, arrivals refused {}, events \
                 dropped {}); switch with {{\"cmd\": \"policy\"}} instead",
                report.policy, report.out_of_sync, report.arrivals_refused, report.events_dropped
            ));
        }
        self.flush();
        if self.control.send(Control::GiveBack).is_err() {
            return Err("toggle: the shadow thread is gone".into());
        }
        if let Some(join) = &self.join {
            join.thread().unpark();
        }
        match self.back.recv_timeout(TAKE_BACK_TIMEOUT) {
            Ok(scheduler) => Ok(*scheduler),
            Err(_) => Err("toggle: the shadow thread did not answer in time".into()),
        }
    }

    /// Toggle, second half: the thread shadows `scheduler` from now on (its counts start over).
    pub(super) fn shadow(&mut self, scheduler: Scheduler) {
        self.policy = scheduler.policy().name();
        // It is the live scheduler as it is now: nothing dropped before concerns it.
        self.events_dropped = 0;
        let _ = self.control.send(Control::Take(Box::new(scheduler)));
        if let Some(join) = &self.join {
            join.thread().unpark();
        }
    }

    /// Applies what is left, stops the thread and returns the final counts.
    pub(super) fn finish(&mut self) -> ShadowReport {
        self.flush();
        self.shared.stop.store(true, Ordering::Release);
        if let Some(join) = self.join.take() {
            join.thread().unpark();
            // A panicking shadow has said so on stderr; its counts stand as they are.
            let _ = join.join();
        }
        self.report()
    }
}

impl Drop for ShadowFeed {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.finish();
        }
    }
}

/// The shadow thread: applies batches in order until told to stop (after the last batch).
fn shadow_thread(
    mut scheduler: Scheduler,
    shared: &Shared,
    control: &Receiver<Control>,
    back: &Sender<Box<Scheduler>>,
) {
    let cpu = cpu_time::ThreadTime::now();
    loop {
        let mut worked = false;
        while let Some(mut batch) = shared.full.pop() {
            apply(&mut scheduler, &batch, &shared.counts);
            batch.events.clear();
            let _ = shared.free.push(batch);
            worked = true;
        }
        shared.counts.cpu_ns.store(
            u64::try_from(cpu.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match control.try_recv() {
            Ok(Control::GiveBack) => {
                // The dispatcher flushed before asking and waits: this is everything.
                while let Some(mut batch) = shared.full.pop() {
                    apply(&mut scheduler, &batch, &shared.counts);
                    batch.events.clear();
                    let _ = shared.free.push(batch);
                }
                let Ok(Control::Take(next)) = hand_over(scheduler, back, control) else {
                    return;
                };
                scheduler = *next;
                reset(&shared.counts);
                continue;
            }
            Ok(Control::Take(next)) => scheduler = *next,
            Err(_) => {}
        }
        if shared.stop.load(Ordering::Acquire) && shared.full.is_empty() {
            return;
        }
        if !worked {
            std::thread::park_timeout(SHADOW_POLL);
        }
    }
}

/// Sends the scheduler back and waits for the one to shadow next.
fn hand_over(
    scheduler: Scheduler,
    back: &Sender<Box<Scheduler>>,
    control: &Receiver<Control>,
) -> Result<Control, mpsc::RecvError> {
    if back.send(Box::new(scheduler)).is_err() {
        return Err(mpsc::RecvError);
    }
    control.recv()
}

/// Starts the counts over (a new shadow policy after a toggle; CPU time keeps counting).
fn reset(counts: &Counts) {
    for c in [
        &counts.decisions,
        &counts.agreed,
        &counts.same_request,
        &counts.disagreed,
        &counts.out_of_sync,
        &counts.arrivals_refused,
        &counts.plan_updates,
        &counts.events,
    ] {
        c.store(0, Ordering::Relaxed);
    }
}

/// Replays one batch on the shadow scheduler; the counts are added once per batch.
fn apply(scheduler: &mut Scheduler, batch: &Batch, counts: &Counts) {
    let (mut refused, mut decisions) = (0u64, 0u64);
    let mut verdicts = [0u64; 4];
    for &e in &batch.events {
        let kind = e.kind();
        let now_ns = batch.time_of(kind);
        match kind {
            EventKind::Arrival => {
                if scheduler
                    .on_arrival(now_ns, e.type_index(), e.token())
                    .is_err()
                {
                    refused += 1;
                }
            }
            EventKind::Dispatch => {
                decisions += 1;
                let verdict = scheduler.shadow_dispatch(now_ns, e.worker(), e.token());
                verdicts[verdict as usize] += 1;
            }
            EventKind::Completion => {
                // A worker the shadow thinks idle was counted out of sync when dispatched.
                let _ = scheduler.on_completion(now_ns, e.worker());
            }
        }
    }
    let add = |c: &AtomicU64, n: u64| {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    };
    add(&counts.arrivals_refused, refused);
    add(&counts.decisions, decisions);
    add(&counts.agreed, verdicts[ShadowVerdict::Agreed as usize]);
    add(
        &counts.same_request,
        verdicts[ShadowVerdict::SameRequest as usize],
    );
    add(
        &counts.disagreed,
        verdicts[ShadowVerdict::Disagreed as usize],
    );
    add(
        &counts.out_of_sync,
        verdicts[ShadowVerdict::OutOfSync as usize],
    );
    let mut plans = 0;
    while scheduler.poll_plan_update().is_some() {
        plans += 1;
    }
    add(&counts.plan_updates, plans);
    // Last: a reader that sees every event applied sees the counts above too.
    counts
        .events
        .fetch_add(batch.events.len() as u64, Ordering::Release);
}

/// The dispatcher's end of a shadow, driven from outside (`benches/telemetry.rs`).
#[doc(hidden)]
pub mod bench {
    use super::{ShadowFeed, ShadowReport};
    use psp_scheduler::{Scheduler, Token, TypeIndex, WorkerId};

    /// A [`ShadowFeed`] and its thread, and the events recorded through it.
    pub struct FeedBench(ShadowFeed, u64);

    impl FeedBench {
        /// Starts a shadow thread for `scheduler`.
        pub fn spawn(scheduler: Scheduler) -> std::io::Result<Self> {
            ShadowFeed::spawn(scheduler).map(|feed| Self(feed, 0))
        }
        /// The start of a loop iteration at `now_ns` (both halves at the same time).
        #[inline]
        pub fn begin(&mut self, now_ns: u64) {
            self.0.begin_receive(now_ns);
            self.0.begin_dispatch(now_ns);
        }
        /// One request's three events, as the dispatcher records them.
        #[inline]
        pub fn on_request(&mut self, ty: TypeIndex, token: Token, worker: WorkerId) {
            self.on_arrival(ty, token);
            self.on_dispatch(worker, token);
            self.on_completion(worker);
        }
        /// The live scheduler accepted `token`.
        #[inline]
        pub fn on_arrival(&mut self, ty: TypeIndex, token: Token) {
            self.1 += 1;
            self.0.on_arrival(ty, token);
        }
        /// The live scheduler started `token` on `worker`.
        #[inline]
        pub fn on_dispatch(&mut self, worker: WorkerId, token: Token) {
            self.1 += 1;
            self.0.on_dispatch(worker, token);
        }
        /// Worker `worker` finished.
        #[inline]
        pub fn on_completion(&mut self, worker: WorkerId) {
            self.1 += 1;
            self.0.on_completion(worker);
        }
        /// Events recorded so far (applied, dropped or in a batch).
        pub fn events_recorded(&self) -> u64 {
            self.1
        }
        /// The end of a loop iteration.
        #[inline]
        pub fn flush(&mut self) {
            self.0.flush();
        }
        /// Events the shadow thread has applied so far.
        pub fn events_applied(&self) -> u64 {
            self.0.report().events
        }
        /// Events dropped so far (no batch free).
        pub fn events_dropped(&self) -> u64 {
            self.0.events_dropped
        }
        /// Stops the thread; the final counts.
        pub fn finish(mut self) -> ShadowReport {
            self.0.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psp_scheduler::{Policy, RequestTypeSpec, SchedulerConfig};

    #[test]
    fn events_pack_and_unpack_every_field_at_its_limits() {
        let last_token = (1u64 << TOKEN_BITS) - 1;
        for (kind, arg, token) in [
            (EventKind::Arrival, 0, 0),
            (EventKind::Arrival, MAX_TYPES as u32 - 1, last_token),
            (EventKind::Dispatch, MAX_WORKERS as u32 - 1, 12_345),
            (EventKind::Completion, 7, 0),
        ] {
            let e = Event::new(kind, arg, token).expect("in range");
            assert_eq!((e.kind(), e.arg(), e.token()), (kind, arg, Token(token)));
        }
        let unknown = Event::new(EventKind::Arrival, UNKNOWN_ARG, 3).expect("in range");
        assert_eq!(unknown.type_index(), TypeIndex::UNKNOWN);
        assert_eq!(
            Event::new(EventKind::Dispatch, 127, 1).map(Event::worker),
            Some(WorkerId(127))
        );
        assert_eq!(Event::new(EventKind::Arrival, 0, last_token + 1), None);
    }

    fn sjf() -> Scheduler {
        let types = vec![
            RequestTypeSpec::new("SHORT", 1).with_mean_ns(1_000),
            RequestTypeSpec::new("LONG", 2).with_mean_ns(100_000),
        ];
        Scheduler::new(SchedulerConfig::new(2, types, Policy::Sjf)).expect("valid")
    }

    /// Waits (bounded) until the shadow thread has applied `events`.
    fn applied(feed: &ShadowFeed, events: u64) -> ShadowReport {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let report = feed.report();
            if report.events >= events || std::time::Instant::now() > deadline {
                return report;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_token_beyond_the_slab_is_dropped_counted_and_the_rest_replayed() {
        let mut feed = ShadowFeed::spawn(sjf()).expect("shadow thread");
        feed.begin_receive(100);
        feed.on_arrival(TypeIndex(0), Token(1));
        feed.on_arrival(TypeIndex(1), Token(1 << TOKEN_BITS));
        feed.begin_dispatch(150);
        feed.on_dispatch(WorkerId(0), Token(1));
        feed.flush();
        let report = applied(&feed, 2);
        assert_eq!(report.events, 2, "the arrival and the decision");
        assert_eq!(report.events_dropped, 1, "the token beyond 22 bits");
        assert_eq!((report.decisions, report.agreed), (1, 1));
        feed.finish();
    }

    #[test]
    fn a_second_receive_half_hands_over_the_first_with_its_own_time() {
        // An EDF shadow: LONG arrives at 100 (deadline 1 100), SHORT at 200 (deadline 1 150),
        // in two receive halves with no dispatch between; live starts LONG at 300. EDF agrees
        // only if each arrival kept its own time: stamped both at 100 or both at 200, SHORT's
        // deadline would be the earlier.
        let types = vec![
            RequestTypeSpec::new("SHORT", 1).with_deadline_ns(950),
            RequestTypeSpec::new("LONG", 2).with_deadline_ns(1_000),
        ];
        let edf = Scheduler::new(SchedulerConfig::new(2, types, Policy::Edf)).expect("valid");
        let mut feed = ShadowFeed::spawn(edf).expect("shadow thread");
        feed.begin_receive(100);
        feed.on_arrival(TypeIndex(1), Token(1));
        feed.begin_receive(200);
        feed.on_arrival(TypeIndex(0), Token(2));
        feed.begin_dispatch(300);
        feed.on_dispatch(WorkerId(0), Token(1));
        feed.flush();
        let report = applied(&feed, 3);
        assert_eq!(report.events, 3);
        assert_eq!((report.decisions, report.agreed), (1, 1), "{report:?}");
        feed.finish();
    }

    #[test]
    fn a_stage_with_no_free_batch_is_dropped_and_counted() {
        let mut feed = ShadowFeed::spawn(sjf()).expect("shadow thread");
        // While the thread waits for its next scheduler (a toggle's first half), it applies
        // nothing: the pool runs dry.
        let scheduler = feed.take_back().expect("in sync");
        for i in 0..(SHADOW_POOL_BATCHES as u64 + 3) {
            feed.begin_receive(i);
            feed.on_arrival(TypeIndex(0), Token(i));
            feed.on_arrival(TypeIndex(1), Token(i + 1_000));
            feed.flush();
        }
        let report = feed.report();
        assert_eq!(
            report.events_dropped, 6,
            "3 stages of 2 events found no batch"
        );
        feed.shadow(scheduler);
        let report = applied(&feed, 2 * SHADOW_POOL_BATCHES as u64);
        assert_eq!(
            report.events,
            2 * SHADOW_POOL_BATCHES as u64,
            "every batch applied"
        );
        feed.finish();
    }
}
