//! The dispatcher loop: RX, ARP, parse, classify, enqueue, completions, dispatch, plan log.
//!
//! Every structure is sized at construction: the RX and ARP burst vectors, the pending slab
//! and its free list, the per-type counters. The loop allocates only when DARC applies a new
//! plan (the scheduler's record of it and the windows log row set), which happens at most once
//! per profiling window.
//!
//! Live time sharing (`ts`, a policy with a quantum): each dispatch starts a slice on its
//! worker; once a slice has run past its quantum while another request is queued, the
//! dispatcher sets the worker's preempt flag ([`PreemptFlags`]). A worker that stops sends its
//! job back ([`Notice::Preempted`]); [`Scheduler::on_preempted`] re-queues the token at its
//! type's tail and the job is parked again under the same token: under `ts` a dispatched job's
//! slab slot stays reserved ([`PendingSlab::lend`]) until its request completes, so a token is
//! never reused while the scheduler may still name it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use psp_scheduler::{Policy, Scheduler, Token, TypeIndex, WorkerId};

use super::idle::Idler;
use super::preempt::PreemptFlags;
use super::report::{DispatcherReport, TypeReport};
use super::slab::PendingSlab;
use super::stages::DispatcherStages;
use super::telemetry::window::{RecorderCounts, WindowRecorder};
use super::telemetry::writer::Hub;
use super::usage::{duration_ns, involuntary_switches};
use super::windows::WindowsLog;
use super::worker::{Job, Notice};
use super::{Clock, ServerOptions};
use crate::app::Classifier;
use crate::port::{PacketBuf, RxQueue, TxQueue};
use crate::ring;
use crate::wire::{
    build_arp_reply, parse_request_with, DropCounters, DropReason, LocalAddr, ParseOptions,
    MIN_FRAME_LEN, PAYLOAD_OFFSET,
};

/// Most packets read and discarded from the RX queue at stop: 64× the largest RX ring
/// ([`crate::config::MAX_RX_BURST`] descriptors), so a peer that keeps sending cannot hold the
/// stop up.
pub(crate) const MAX_RX_LEFT_AT_STOP: u64 = 1 << 18;

mod control;
pub(crate) mod shadow;

use shadow::ShadowFeed;

/// The dispatcher thread's state.
pub(crate) struct Dispatcher<R: RxQueue, T: TxQueue<Buf = R::Buf>, C> {
    scheduler: Scheduler,
    local: LocalAddr,
    parse: ParseOptions,
    clock: Clock,
    idle: Idler,
    /// Every RX queue of the port (one per client TX ring over memif, `psp.rx_queues`).
    rx: Vec<R>,
    rx_burst: usize,
    rx_bufs: Vec<R::Buf>,
    /// Tokens of the requests the current RX burst parked (stamped enqueued at its end).
    burst_tokens: Vec<Token>,
    arp_tx: T,
    arp_out: Vec<R::Buf>,
    classifier: C,
    jobs: Vec<ring::Sender<Job<R::Buf>>>,
    /// A job the worker's ring refused, retried first (never happens while the scheduler keeps
    /// at most `worker_queue_depth` ≤ 2 jobs per worker in rings of 4; kept so a violation
    /// cannot lose a request).
    stalled: Vec<Option<Job<R::Buf>>>,
    done: Vec<ring::Receiver<Notice<R::Buf>>>,
    /// Every worker's preempt flag (`ts`).
    preempt: Arc<PreemptFlags>,
    /// The policy preempts (`ts`): slab slots are lent, slices timed.
    preemptive: bool,
    /// Per worker: the slice it runs, under `ts`.
    slices: Vec<SliceState>,
    /// Requests between RX and dispatch, parked as the job they will become (one move less).
    slab: PendingSlab<Job<R::Buf>>,
    drain_timeout_ns: u64,
    windows: Option<WindowsLog>,
    /// The live telemetry window, when telemetry runs.
    telemetry: Option<WindowRecorder>,
    /// Where control-socket commands for the dispatcher wait ([`control`]).
    control: Option<Arc<Hub>>,
    /// The shadow policy, when one runs ([`shadow`]).
    shadow: Option<ShadowFeed>,
    report: DispatcherReport,
    drops: DropCounters,
    in_flight: u64,
    /// Set when shutdown is first seen: the drain ends by then at the latest.
    drain_deadline_ns: Option<u64>,
}

/// A worker's current slice under `ts`.
#[derive(Copy, Clone, Debug, Default)]
struct SliceState {
    /// The token of the request it runs (`None`: idle).
    token: Option<Token>,
    /// Its quantum.
    quantum_ns: u64,
    /// When the preempt flag was set, if it was.
    flag_set_ns: Option<u64>,
}

/// Type slot of `ty` in the per-type tables: the dense index, or the last slot for UNKNOWN.
#[inline]
fn type_slot(ty: TypeIndex, n_types: usize) -> usize {
    ty.index().filter(|&i| i < n_types).unwrap_or(n_types)
}

impl<R, T, C> Dispatcher<R, T, C>
where
    R: RxQueue,
    T: TxQueue<Buf = R::Buf>,
    C: Classifier,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        options: &ServerOptions,
        scheduler: Scheduler,
        local: LocalAddr,
        clock: Clock,
        rx: Vec<R>,
        arp_tx: T,
        classifier: C,
        jobs: Vec<ring::Sender<Job<R::Buf>>>,
        done: Vec<ring::Receiver<Notice<R::Buf>>>,
        preempt: Arc<PreemptFlags>,
    ) -> Self {
        let n_types = scheduler.types().len();
        let mut per_type: Vec<TypeReport> = scheduler
            .types()
            .iter()
            .map(|t| TypeReport::new(&t.name, Some(t.wire_id)))
            .collect();
        per_type.push(TypeReport::new("UNKNOWN", None));
        let windows = matches!(
            scheduler.policy(),
            Policy::Darc(_) | Policy::DarcModel(_) | Policy::DarcStatic { .. }
        )
        .then(|| WindowsLog::new(n_types));
        let workers = jobs.len();
        Self {
            local,
            parse: options.parse,
            clock,
            idle: Idler::new(options.idle),
            rx,
            rx_burst: options.rx_burst,
            rx_bufs: Vec::with_capacity(options.rx_burst),
            burst_tokens: Vec::with_capacity(options.rx_burst),
            arp_tx,
            arp_out: Vec::with_capacity(options.rx_burst),
            classifier,
            stalled: (0..workers).map(|_| None).collect(),
            jobs,
            done,
            preempt,
            preemptive: scheduler.policy().preempts(),
            slices: vec![SliceState::default(); workers],
            slab: PendingSlab::new(options.pending_slots),
            drain_timeout_ns: u64::try_from(options.drain_timeout.as_nanos()).unwrap_or(u64::MAX),
            windows,
            telemetry: None,
            control: None,
            shadow: None,
            report: DispatcherReport {
                stages: DispatcherStages::new(per_type.len()),
                per_type,
                ..DispatcherReport::default()
            },
            drops: DropCounters::default(),
            scheduler,
            in_flight: 0,
            drain_deadline_ns: None,
        }
    }

    /// Records telemetry windows with `recorder` (and gives it the current plan, if any).
    pub(crate) fn with_telemetry(&mut self, mut recorder: WindowRecorder) {
        if let Some(plan) = self.scheduler.plan() {
            recorder.set_plan(plan);
        }
        self.telemetry = Some(recorder);
    }

    /// Runs until `shutdown` is set and the drain ends (every queued and in-flight request
    /// done, or the drain timeout passed: what is still queued then is abandoned). Requests in
    /// flight at the deadline are left to their workers; [`Dispatcher::finish`], called once
    /// the workers have stopped, counts their completions.
    ///
    /// The I/O loop: it reads the clock and the shutdown flag, calls the two halves of a step
    /// ([`Dispatcher::step_receive`], [`Dispatcher::step_dispatch`]) and idles; tests call the
    /// halves directly with the times they choose.
    pub(crate) fn run(&mut self, shutdown: &AtomicBool) {
        for rx in &mut self.rx {
            rx.on_thread_start();
        }
        self.arp_tx.on_thread_start();
        let cpu_started = cpu_time::ThreadTime::now();
        let switches_started = involuntary_switches();
        // Utilisation: the time of every loop iteration that found work.
        let (mut last_start_ns, mut last_worked) = (self.clock.now_ns(), false);
        loop {
            let now_ns = self.clock.now_ns();
            if last_worked {
                self.report.busy_ns += now_ns.saturating_sub(last_start_ns);
            }
            last_start_ns = now_ns;
            let Some(received) = self.step_receive(now_ns, shutdown.load(Ordering::Acquire)) else {
                break;
            };
            let worked = self.step_dispatch(self.clock.now_ns(), received);
            last_worked = worked;
            if worked {
                self.idle.busy();
            } else if self.has_pending() {
                self.idle.idle_no_sleep();
            } else {
                self.idle.idle();
            }
        }
        self.report.cpu_ns = duration_ns(cpu_started.elapsed());
        self.report.involuntary_switches = involuntary_switches()
            .zip(switches_started)
            .map_or(0, |(now, then)| now.saturating_sub(then));
    }

    /// First half of a loop iteration, at `now_ns`: one RX burst (or, once `shutdown` is seen,
    /// the drain's bookkeeping) and the pending ARP replies. Returns whether anything was done,
    /// or `None` when the drain is over (nothing queued or in flight, or its deadline passed:
    /// what is still queued is counted abandoned).
    pub(crate) fn step_receive(&mut self, now_ns: u64, shutdown: bool) -> Option<bool> {
        let mut worked = false;
        if let Some(shadow) = &mut self.shadow {
            shadow.begin_receive(now_ns);
        }
        match self.drain_deadline_ns {
            None if shutdown => {
                self.discard_rx_left_at_stop();
                self.drain_deadline_ns = Some(now_ns.saturating_add(self.drain_timeout_ns));
            }
            None => worked |= self.receive(now_ns),
            Some(_) if !self.has_pending() => return None,
            Some(deadline_ns) if now_ns >= deadline_ns => {
                // Queued requests are never answered; in-flight ones will be.
                self.report.abandoned_at_shutdown = self.scheduler.queued() as u64;
                return None;
            }
            Some(_) => {}
        }
        worked |= self.flush_arp();
        Some(worked)
    }

    /// Second half of a loop iteration, at `now_ns`: completions, dispatch, quanta (`ts`), plan
    /// updates, the poll counters (`received`: the first half did something) and the telemetry
    /// window. Returns whether the iteration did anything.
    pub(crate) fn step_dispatch(&mut self, now_ns: u64, received: bool) -> bool {
        if let Some(shadow) = &mut self.shadow {
            shadow.begin_dispatch(now_ns);
        }
        if self
            .control
            .as_ref()
            .is_some_and(|hub| hub.mailbox.pending())
        {
            self.apply_control(now_ns);
        }
        let mut worked = received;
        worked |= self.poll_completions(now_ns);
        let replans = self.scheduler.counters().darc_model_replans;
        worked |= self.dispatch(now_ns);
        if self.scheduler.counters().darc_model_replans != replans {
            self.record_model_replan(now_ns);
        }
        if self.preemptive {
            self.check_quanta(now_ns);
        }
        self.poll_plan_updates();
        if let Some(shadow) = &mut self.shadow {
            shadow.flush();
        }
        self.report.polls += 1;
        self.report.busy_polls += u64::from(worked);
        if let Some(telemetry) = &mut self.telemetry {
            if telemetry.due(now_ns) {
                self.report.shadow = self.shadow.as_ref().map(ShadowFeed::report);
                telemetry.close(now_ns, &self.report, &self.drops, &self.scheduler);
            }
        }
        worked
    }

    /// Requests queued or in flight: the loop must not sleep, the drain not end.
    fn has_pending(&self) -> bool {
        self.in_flight > 0 || self.scheduler.queued() > 0
    }

    /// After the workers have stopped: counts the completions of requests that were in flight
    /// at the drain deadline (every worker finishes the job it holds before it exits), discards
    /// and counts what reached RX meanwhile, and returns the counters and the windows log
    /// (DARC policies only).
    pub(crate) fn finish(
        mut self,
    ) -> (DispatcherReport, Option<WindowsLog>, Option<RecorderCounts>) {
        let now_ns = self.clock.now_ns();
        let queued_before = self.scheduler.queued();
        while self.poll_completions(now_ns) {}
        // Requests preempted after the drain deadline went back to a queue nobody serves.
        self.report.abandoned_at_shutdown +=
            self.scheduler.queued().saturating_sub(queued_before) as u64;
        self.discard_rx_left_at_stop();
        self.report.shadow = self.shadow.as_mut().map(ShadowFeed::finish);
        // The last window, so that the windows add up to the report.
        let telemetry = self.telemetry.as_mut().map(|telemetry| {
            telemetry.close(now_ns, &self.report, &self.drops, &self.scheduler);
            telemetry.counts()
        });
        // A dispatched request whose completion never came: its worker panicked, or the job
        // stalled in front of a full ring.
        self.report.in_flight_lost = self.in_flight;
        // Whatever is still parked is freed with the slab; stalled jobs with their vector.
        self.report.parse_drops = self.drops.clone();
        self.report.scheduler = self.scheduler.counters().clone();
        self.report.final_queued = self.scheduler.queued() as u64;
        (self.report, self.windows, telemetry)
    }

    /// Reads what is left in the RX queue once serving has stopped and frees it, counted in
    /// `rx_left_at_stop` (at most [`MAX_RX_LEFT_AT_STOP`] packets: a peer that keeps sending
    /// cannot hold the stop up).
    fn discard_rx_left_at_stop(&mut self) {
        let mut discarded = 0u64;
        for q in 0..self.rx.len() {
            while discarded < MAX_RX_LEFT_AT_STOP {
                let received = self.rx[q].rx_burst(&mut self.rx_bufs, self.rx_burst);
                if received == 0 {
                    break;
                }
                discarded += received as u64;
                self.rx_bufs.clear();
            }
        }
        self.report.rx_left_at_stop += discarded;
    }

    /// One RX burst from every RX queue ([`Dispatcher::receive_from`]); whether anything came.
    #[inline]
    fn receive(&mut self, now_ns: u64) -> bool {
        let mut any = false;
        for q in 0..self.rx.len() {
            any |= self.receive_from(q, now_ns);
        }
        any
    }

    /// One RX burst: parse, classify, park, enqueue; then one clock read stamps every request
    /// of the burst as enqueued (the `rx_to_enqueue` stage is the burst's processing time).
    /// Returns whether anything arrived.
    #[inline]
    fn receive_from(&mut self, queue: usize, now_ns: u64) -> bool {
        let received = self.rx[queue].rx_burst(&mut self.rx_bufs, self.rx_burst);
        if received == 0 {
            return false;
        }
        self.report.rx_packets += received as u64;
        let n_types = self.scheduler.types().len();
        // Drain by index from the front without allocating: swap the vector out.
        let mut bufs = std::mem::take(&mut self.rx_bufs);
        for mut buf in bufs.drain(..) {
            match parse_request_with(buf.data(), &self.local, &self.parse) {
                Ok(request) => {
                    // parse_request_with guarantees the payload lies inside the frame.
                    let payload = buf
                        .data()
                        .get(PAYLOAD_OFFSET..PAYLOAD_OFFSET + request.payload_len)
                        .unwrap_or(&[]);
                    let wire_type = self.classifier.classify(&request, payload);
                    let ty = self.scheduler.classify(wire_type);
                    let slot = type_slot(ty, n_types);
                    self.report.per_type[slot].arrivals += 1;
                    let job = Job {
                        buf,
                        request,
                        // slot ≤ MAX_TYPES (a u16 count) by the scheduler's limits.
                        type_slot: slot as u16,
                        arrival_ns: now_ns,
                        // Stamped at the end of the burst.
                        enqueued_ns: now_ns,
                        dispatched_ns: 0,
                        resume: crate::app::Resume::default(),
                        served_ns: 0,
                        slices: 0,
                    };
                    let token = match self.slab.insert(job) {
                        Ok(token) => token,
                        Err(_dropped) => {
                            self.report.slab_full_drops += 1;
                            self.report.per_type[slot].slab_full += 1;
                            continue;
                        }
                    };
                    match self.scheduler.on_arrival(now_ns, ty, token) {
                        Ok(()) => {
                            if let Some(shadow) = &mut self.shadow {
                                shadow.on_arrival(ty, token);
                            }
                            self.burst_tokens.push(token);
                            let depth = self.scheduler.queue_len(ty) as u64;
                            let stats = &mut self.report.per_type[slot];
                            stats.queue_depth_hwm = stats.queue_depth_hwm.max(depth);
                            if let Some(telemetry) = &mut self.telemetry {
                                telemetry.on_depth(slot, depth);
                            }
                        }
                        Err(rejected) => self.drop_queue_full(rejected.token),
                    }
                }
                Err(DropReason::Arp) => {
                    if buf.data().len() < MIN_FRAME_LEN {
                        // Room for the padded reply; a buffer that small cannot hold one.
                        let _ = buf.set_len(MIN_FRAME_LEN.min(buf.capacity()));
                    }
                    match build_arp_reply(buf.data_mut(), &self.local) {
                        Ok(len) if buf.set_len(len).is_ok() => {
                            self.report.arp_requests += 1;
                            self.arp_out.push(buf);
                        }
                        Ok(_) => self.drops.record(DropReason::ArpMalformed),
                        Err(reason) => self.drops.record(reason),
                    }
                }
                Err(reason) => self.drops.record(reason),
            }
        }
        self.rx_bufs = bufs;
        if !self.burst_tokens.is_empty() {
            let enqueued_ns = self.clock.now_ns();
            for &token in &self.burst_tokens {
                if let Some(job) = self.slab.get_mut(token) {
                    job.enqueued_ns = enqueued_ns;
                }
            }
            self.burst_tokens.clear();
        }
        true
    }

    /// A request the scheduler's queues could not hold (on arrival, or at a policy switch):
    /// its buffer freed, counted as a queue-full drop of its type.
    fn drop_queue_full(&mut self, token: Token) {
        if let Some(job) = self.slab.take(token) {
            self.report.per_type[usize::from(job.type_slot)].rejected += 1;
            self.report.queue_full_drops += 1;
        }
    }

    /// Sends pending ARP replies on TX queue 0; a reply the device refuses is dropped and
    /// counted (ARP is retried by the requester).
    #[inline]
    fn flush_arp(&mut self) -> bool {
        if self.arp_out.is_empty() {
            return false;
        }
        let sent = self.arp_tx.tx_burst(&mut self.arp_out);
        self.report.arp_replies += sent as u64;
        self.report.arp_tx_drops += self.arp_out.len() as u64;
        self.arp_out.clear();
        true
    }

    /// Polls every worker's completion ring, taking all it holds (two notices at depth 2).
    #[inline]
    fn poll_completions(&mut self, now_ns: u64) -> bool {
        let mut any = false;
        for w in 0..self.done.len() {
            while let Some(notice) = self.done[w].pop() {
                any = true;
                match notice {
                    Notice::Done(completion) => {
                        self.on_done(now_ns, w, completion.arrival_ns, completion.service_ns);
                    }
                    Notice::Preempted { job, freed_ns } => {
                        self.on_preempted(now_ns, w, job, freed_ns)
                    }
                }
            }
        }
        any
    }

    /// Worker `w` answered its request.
    #[inline]
    fn on_done(&mut self, now_ns: u64, w: usize, arrival_ns: u64, service_ns: u64) {
        let n_types = self.scheduler.types().len();
        // `w` < workers ≤ MAX_WORKERS (128).
        match self.scheduler.on_completion(now_ns, WorkerId(w as u16)) {
            Ok(completed) => {
                if let Some(shadow) = &mut self.shadow {
                    shadow.on_completion(WorkerId(w as u16));
                }
                self.in_flight -= 1;
                if self.preemptive {
                    self.slices[w].token = None;
                    self.slab.release(completed.token);
                }
                let slot = type_slot(completed.ty, n_types);
                let stats = &mut self.report.per_type[slot];
                stats.completed += 1;
                stats.sojourn_ns_total += now_ns.saturating_sub(arrival_ns);
                self.report.completed += 1;
                if let Some(log) = &mut self.windows {
                    log.on_completion(completed.ty);
                }
                if let Some(telemetry) = &mut self.telemetry {
                    telemetry.on_service(slot, service_ns);
                }
            }
            Err(_) => self.report.spurious_completions += 1,
        }
    }

    /// Worker `w` stopped its request at the preempt flag (freed at `freed_ns`): back to the
    /// tail of its queue, parked again under its token.
    fn on_preempted(&mut self, now_ns: u64, w: usize, job: Job<R::Buf>, freed_ns: u64) {
        let slice = std::mem::take(&mut self.slices[w]);
        if let Some(set_ns) = slice.flag_set_ns {
            self.report
                .preempt_cost
                .record(freed_ns.saturating_sub(set_ns));
        }
        let Some(token) = slice.token else {
            // A preemption from a worker we gave nothing (cannot happen): the job is dropped.
            self.report.spurious_completions += 1;
            return;
        };
        self.in_flight -= 1;
        let slot = usize::from(job.type_slot);
        match self.scheduler.on_preempted(now_ns, WorkerId(w as u16)) {
            Ok(()) => match self.slab.restore(token, job) {
                Ok(()) => {
                    self.report.preemptions += 1;
                    if let Some(stats) = self.report.per_type.get_mut(slot) {
                        stats.preempted += 1;
                    }
                }
                // The slot was not lent (cannot happen): the request is lost, counted.
                Err(_job) => self.report.lost_tokens += 1,
            },
            Err(_) => {
                // The scheduler kept the request on its worker (no room to re-queue): the
                // worker continues it.
                self.in_flight += 1;
                self.start_slice(w, token, Some(slice.quantum_ns));
                self.push_job(w, job);
            }
        }
    }

    /// Sets the preempt flag of every worker whose slice ran past its quantum, if a request
    /// is waiting.
    #[inline]
    fn check_quanta(&mut self, now_ns: u64) {
        if self.scheduler.queued() == 0 {
            return;
        }
        for (w, slice) in self.slices.iter_mut().enumerate() {
            if slice.token.is_none() || slice.flag_set_ns.is_some() {
                continue;
            }
            // The quantum counts from when the worker started the slice.
            let Some(started_ns) = self.preempt.started_ns(w) else {
                continue;
            };
            if now_ns.saturating_sub(started_ns) >= slice.quantum_ns {
                self.preempt.set(w);
                slice.flag_set_ns = Some(now_ns);
                self.report.preempt_flags_set += 1;
            }
        }
    }

    /// Before worker `w` gets `token` under a preemptive policy: its flag cleared (so a flag a
    /// finished slice left set cannot stop this job) and, when the dispatch carries a quantum
    /// (`ts`, `darc-ts`'s lent dispatches), a slice recorded for [`Dispatcher::check_quanta`];
    /// without one (`darc-ts`'s shorter groups) no slice, so the job runs to completion.
    #[inline]
    fn start_slice(&mut self, w: usize, token: Token, quantum_ns: Option<u64>) {
        self.preempt.clear(w);
        if let Some(slice) = self.slices.get_mut(w) {
            *slice = match quantum_ns {
                Some(quantum_ns) => SliceState {
                    token: Some(token),
                    quantum_ns,
                    flag_set_ns: None,
                },
                None => SliceState::default(),
            };
        }
    }

    /// Pushes `job` to worker `w`'s ring, or parks it as stalled.
    #[inline]
    fn push_job(&mut self, w: usize, job: Job<R::Buf>) {
        match self.stalled.get_mut(w) {
            Some(stalled) if stalled.is_none() => {
                if let Err(job) = self.jobs[w].push(job) {
                    self.report.job_ring_full += 1;
                    *stalled = Some(job);
                }
            }
            _ => {
                // Out-of-range worker or a second job for a worker: scheduler bug.
                self.report.lost_tokens += 1;
                self.in_flight -= 1;
            }
        }
    }

    /// Moves every decided request to its worker.
    #[inline]
    fn dispatch(&mut self, now_ns: u64) -> bool {
        let mut any = false;
        for w in 0..self.stalled.len() {
            if let Some(job) = self.stalled[w].take() {
                any = true;
                if let Err(job) = self.jobs[w].push(job) {
                    self.stalled[w] = Some(job);
                }
            }
        }
        let n_types = self.scheduler.types().len();
        while let Some(decision) = self.scheduler.next_dispatch(now_ns) {
            any = true;
            let slot = type_slot(decision.ty, n_types);
            let job = if self.preemptive {
                self.slab.lend(decision.token)
            } else {
                self.slab.take(decision.token)
            };
            let Some(mut job) = job else {
                // A token we never issued: a scheduler bug; count it, the worker stays busy
                // until freed by nothing, so hand it back as completed at once.
                self.report.lost_tokens += 1;
                let _ = self.scheduler.on_completion(now_ns, decision.worker);
                continue;
            };
            let w = decision.worker.index();
            if let Some(shadow) = &mut self.shadow {
                shadow.on_dispatch(decision.worker, decision.token);
            }
            self.in_flight += 1;
            if self.preemptive {
                self.start_slice(w, decision.token, decision.quantum_ns);
            }
            if job.slices > 0 {
                // A preempted request's next slice: its first dispatch was counted.
                self.report.resumed += 1;
                job.dispatched_ns = now_ns;
                self.push_job(w, job);
                continue;
            }
            self.report.per_type[slot].dispatched += 1;
            job.dispatched_ns = now_ns;
            let stages = &mut self.report.stages;
            stages
                .rx_to_enqueue
                .record(job.enqueued_ns.saturating_sub(job.arrival_ns));
            if let Some(wait) = stages.queue_wait.get_mut(slot) {
                wait.record(now_ns.saturating_sub(job.enqueued_ns));
            }
            self.report.dispatched += 1;
            self.push_job(w, job);
        }
        any
    }

    /// DARC's model planner re-planned during this step's dispatch: its time (the step's,
    /// from `started_ns`) goes to the report. Off the per-request path: one re-plan per
    /// profiling window at most.
    #[cold]
    fn record_model_replan(&mut self, started_ns: u64) {
        let took_ns = self.clock.now_ns().saturating_sub(started_ns);
        self.report.model_replan_ns_total += took_ns;
        self.report.model_replan_ns_max = self.report.model_replan_ns_max.max(took_ns);
    }

    /// Drains DARC plan updates into the windows log.
    fn poll_plan_updates(&mut self) {
        while let Some(update) = self.scheduler.poll_plan_update() {
            self.report.plan_updates += 1;
            if let Some(log) = &mut self.windows {
                log.record(&update);
            }
            if let Some(telemetry) = &mut self.telemetry {
                telemetry.set_plan(&update.plan);
            }
        }
    }
}
