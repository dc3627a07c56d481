//! The shadow policy (`psp.shadow: NAME`): a second scheduler that sees the same arrivals and
//! completions as the live one, is asked at each live decision what it would have done
//! ([`psp_scheduler::Scheduler::shadow_dispatch`]), and never dispatches anything itself.
//!
//! ## Off the dispatcher's thread
//! Running a second scheduler costs about what the first does (≈ 30–40 ns per request,
//! `benches/telemetry.rs`), so it runs on its own thread. The dispatcher only writes each
//! event (arrival, live decision, completion: 16 bytes) into a batch taken from a pool of
//! [`SHADOW_POOL_BATCHES`] preallocated batches, and hands the batch over once per loop
//! iteration (or when it is full) on a lock-free queue, without waking the thread (it looks
//! every 50 µs): nothing allocates, locks, logs or makes a system call on its path. When the shadow thread is so far behind that no batch is free, events are dropped and
//! counted, and the shadow is out of sync from then on (it cannot be toggled live).
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
use psp_scheduler::{Scheduler, ShadowVerdict, Token, TypeIndex, WorkerId};
use serde::Serialize;

/// Events per batch: one loop iteration's worth at full bursts, with room to spare.
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

/// One thing the live scheduler did, for the shadow to replay, in 16 bytes (a quarter of a
/// cache line: the dispatcher writes three per request). Measured against an 8-byte event with
/// the time in separate events when it changes: the branches cost more than the bytes saved.
#[derive(Copy, Clone, Debug)]
#[repr(C)]
struct Event {
    now_ns: u64,
    /// The request's token (the dispatcher's slab index, a `u32`); unused for a completion.
    token: u32,
    /// The type index (arrival) or the worker (decision, completion).
    arg: u16,
    kind: EventKind,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
enum EventKind {
    Arrival,
    Dispatch,
    Completion,
}

const _: () = assert!(std::mem::size_of::<Event>() == 16);

type Batch = Vec<Event>;

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

/// The dispatcher's end: the batch being filled and the way to the shadow thread.
pub(crate) struct ShadowFeed {
    shared: Arc<Shared>,
    /// The batch being filled; `None` when no batch was free at the last hand-over.
    batch: Option<Batch>,
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
            let _ = shared.free.push(Vec::with_capacity(SHADOW_BATCH_EVENTS));
        }
        let (control, control_rx) = mpsc::channel();
        let (back_tx, back) = mpsc::channel();
        let policy = scheduler.policy().name();
        let thread_shared = Arc::clone(&shared);
        let batch = shared.free.pop();
        let join = std::thread::Builder::new()
            .name("psp-shadow".into())
            .spawn(move || shadow_thread(scheduler, &thread_shared, &control_rx, &back_tx))?;
        Ok(Self {
            shared,
            batch,
            events_dropped: 0,
            policy,
            control,
            back,
            join: Some(join),
        })
    }

    /// Appends `event` to the batch being filled (taking one from the pool if needed; none
    /// free: dropped and counted); a full batch is handed over at once.
    #[inline]
    fn record(&mut self, event: Event) {
        match &mut self.batch {
            Some(batch) => {
                batch.push(event);
                if batch.len() == SHADOW_BATCH_EVENTS {
                    self.flush();
                }
            }
            None => self.events_dropped += 1,
        }
    }

    /// The live scheduler accepted `token` (a token beyond `u32`, which the dispatcher's slab
    /// never issues, is dropped and counted).
    #[inline]
    pub(super) fn on_arrival(&mut self, now_ns: u64, ty: TypeIndex, token: Token) {
        self.record_token(now_ns, token, ty.0, EventKind::Arrival);
    }

    /// The live scheduler started `token` on `worker`.
    #[inline]
    pub(super) fn on_dispatch(&mut self, now_ns: u64, worker: WorkerId, token: Token) {
        self.record_token(now_ns, token, worker.0, EventKind::Dispatch);
    }

    /// The live worker `worker` finished.
    #[inline]
    pub(super) fn on_completion(&mut self, now_ns: u64, worker: WorkerId) {
        self.record(Event {
            now_ns,
            token: 0,
            arg: worker.0,
            kind: EventKind::Completion,
        });
    }

    #[inline]
    fn record_token(&mut self, now_ns: u64, token: Token, arg: u16, kind: EventKind) {
        match u32::try_from(token.0) {
            Ok(token) => self.record(Event {
                now_ns,
                token,
                arg,
                kind,
            }),
            Err(_) => self.events_dropped += 1,
        }
    }

    /// Hands the batch being filled to the shadow thread (once per loop iteration).
    #[inline]
    pub(super) fn flush(&mut self) {
        if self.batch.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        if let Some(batch) = self.batch.take() {
            // `full` holds every batch of the pool: the push cannot fail. No wake-up: the
            // shadow thread looks every `SHADOW_POLL` (an unpark would be a system call
            // whenever it sleeps).
            let _ = self.shared.full.push(batch);
        }
        // The next batch, taken here once rather than checked for at every event; none free:
        // events are dropped (counted) until the next hand-over finds one.
        self.batch = self.shared.free.pop();
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
            batch.clear();
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
                    batch.clear();
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
fn apply(scheduler: &mut Scheduler, batch: &[Event], counts: &Counts) {
    let (mut refused, mut decisions) = (0u64, 0u64);
    let mut verdicts = [0u64; 4];
    for e in batch {
        let token = Token(u64::from(e.token));
        match e.kind {
            EventKind::Arrival => {
                if scheduler
                    .on_arrival(e.now_ns, TypeIndex(e.arg), token)
                    .is_err()
                {
                    refused += 1;
                }
            }
            EventKind::Dispatch => {
                decisions += 1;
                let verdict = scheduler.shadow_dispatch(e.now_ns, WorkerId(e.arg), token);
                verdicts[verdict as usize] += 1;
            }
            EventKind::Completion => {
                // A worker the shadow thinks idle was counted out of sync when dispatched.
                let _ = scheduler.on_completion(e.now_ns, WorkerId(e.arg));
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
        .fetch_add(batch.len() as u64, Ordering::Release);
}

/// The dispatcher's end of a shadow, driven from outside (`benches/telemetry.rs`).
#[doc(hidden)]
pub mod bench {
    use super::{ShadowFeed, ShadowReport};
    use psp_scheduler::{Scheduler, Token, TypeIndex, WorkerId};

    /// A [`ShadowFeed`] and its thread.
    pub struct FeedBench(ShadowFeed);

    impl FeedBench {
        /// Starts a shadow thread for `scheduler`.
        pub fn spawn(scheduler: Scheduler) -> std::io::Result<Self> {
            ShadowFeed::spawn(scheduler).map(Self)
        }
        /// One request's three events, as the dispatcher records them.
        #[inline]
        pub fn on_request(&mut self, now_ns: u64, ty: TypeIndex, token: Token, worker: WorkerId) {
            self.0.on_arrival(now_ns, ty, token);
            self.0.on_dispatch(now_ns, worker, token);
            self.0.on_completion(now_ns, worker);
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
