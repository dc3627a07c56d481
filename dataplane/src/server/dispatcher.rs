//! The dispatcher loop: RX, ARP, parse, classify, enqueue, completions, dispatch, plan log.
//!
//! Every structure is sized at construction: the RX and ARP burst vectors, the pending slab
//! and its free list, the per-type counters. The loop allocates only when DARC applies a new
//! plan (the scheduler's record of it and the windows log row set), which happens at most once
//! per profiling window.

use std::sync::atomic::{AtomicBool, Ordering};

use psp_scheduler::{Policy, Scheduler, TypeIndex, WorkerId};

use super::idle::Idler;
use super::report::{DispatcherReport, TypeReport};
use super::slab::PendingSlab;
use super::stages::DispatcherStages;
use super::telemetry::window::{RecorderCounts, WindowRecorder};
use super::windows::WindowsLog;
use super::worker::{Done, Job};
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

/// The dispatcher thread's state.
pub(crate) struct Dispatcher<R: RxQueue, T: TxQueue<Buf = R::Buf>, C> {
    scheduler: Scheduler,
    local: LocalAddr,
    parse: ParseOptions,
    clock: Clock,
    idle: Idler,
    rx: R,
    rx_burst: usize,
    rx_bufs: Vec<R::Buf>,
    arp_tx: T,
    arp_out: Vec<R::Buf>,
    classifier: C,
    jobs: Vec<ring::Sender<Job<R::Buf>>>,
    /// A job the worker's ring refused, retried first (never happens while the scheduler keeps
    /// one job per worker; kept so a violation cannot lose a request).
    stalled: Vec<Option<Job<R::Buf>>>,
    done: Vec<ring::Receiver<Done>>,
    /// Requests between RX and dispatch, parked as the job they will become (one move less).
    slab: PendingSlab<Job<R::Buf>>,
    drain_timeout_ns: u64,
    windows: Option<WindowsLog>,
    /// The live telemetry window, when telemetry runs.
    telemetry: Option<WindowRecorder>,
    report: DispatcherReport,
    drops: DropCounters,
    in_flight: u64,
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
        rx: R,
        arp_tx: T,
        classifier: C,
        jobs: Vec<ring::Sender<Job<R::Buf>>>,
        done: Vec<ring::Receiver<Done>>,
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
            Policy::Darc(_) | Policy::DarcStatic { .. }
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
            arp_tx,
            arp_out: Vec::with_capacity(options.rx_burst),
            classifier,
            stalled: (0..workers).map(|_| None).collect(),
            jobs,
            done,
            slab: PendingSlab::new(options.pending_slots),
            drain_timeout_ns: u64::try_from(options.drain_timeout.as_nanos()).unwrap_or(u64::MAX),
            windows,
            telemetry: None,
            report: DispatcherReport {
                stages: DispatcherStages::new(per_type.len()),
                per_type,
                ..DispatcherReport::default()
            },
            drops: DropCounters::default(),
            scheduler,
            in_flight: 0,
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
    pub(crate) fn run(&mut self, shutdown: &AtomicBool) {
        self.rx.on_thread_start();
        self.arp_tx.on_thread_start();
        let cpu_started = cpu_time::ThreadTime::now();
        let mut drain_deadline_ns: Option<u64> = None;
        // Utilisation: the time of every loop iteration that found work.
        let (mut last_start_ns, mut last_worked) = (self.clock.now_ns(), false);
        loop {
            let now_ns = self.clock.now_ns();
            if last_worked {
                self.report.busy_ns += now_ns.saturating_sub(last_start_ns);
            }
            last_start_ns = now_ns;
            let mut worked = false;
            match drain_deadline_ns {
                None => {
                    if shutdown.load(Ordering::Acquire) {
                        self.discard_rx_left_at_stop();
                        drain_deadline_ns = Some(now_ns.saturating_add(self.drain_timeout_ns));
                    } else {
                        worked |= self.receive(now_ns);
                    }
                }
                Some(deadline_ns) => {
                    if self.scheduler.queued() == 0 && self.in_flight == 0 {
                        break;
                    }
                    if now_ns >= deadline_ns {
                        // Queued requests are never answered; in-flight ones will be.
                        self.report.abandoned_at_shutdown = self.scheduler.queued() as u64;
                        break;
                    }
                }
            }
            worked |= self.flush_arp();
            let now_ns = self.clock.now_ns();
            worked |= self.poll_completions(now_ns);
            worked |= self.dispatch(now_ns);
            self.poll_plan_updates();
            self.report.polls += 1;
            self.report.busy_polls += u64::from(worked);
            if let Some(telemetry) = &mut self.telemetry {
                if telemetry.due(now_ns) {
                    telemetry.close(now_ns, &self.report, &self.drops, &self.scheduler);
                }
            }
            last_worked = worked;
            if worked {
                self.idle.busy();
            } else if self.in_flight > 0 || self.scheduler.queued() > 0 {
                self.idle.idle_no_sleep();
            } else {
                self.idle.idle();
            }
        }
        self.report.cpu_ns = u64::try_from(cpu_started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    }

    /// After the workers have stopped: counts the completions of requests that were in flight
    /// at the drain deadline (every worker finishes the job it holds before it exits), discards
    /// and counts what reached RX meanwhile, and returns the counters and the windows log
    /// (DARC policies only).
    pub(crate) fn finish(
        mut self,
    ) -> (DispatcherReport, Option<WindowsLog>, Option<RecorderCounts>) {
        let now_ns = self.clock.now_ns();
        while self.poll_completions(now_ns) {}
        self.discard_rx_left_at_stop();
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
        while discarded < MAX_RX_LEFT_AT_STOP {
            let received = self.rx.rx_burst(&mut self.rx_bufs, self.rx_burst);
            if received == 0 {
                break;
            }
            discarded += received as u64;
            self.rx_bufs.clear();
        }
        self.report.rx_left_at_stop += discarded;
    }

    /// One RX burst: parse, classify, park, enqueue. Returns whether anything arrived.
    #[inline]
    fn receive(&mut self, now_ns: u64) -> bool {
        let received = self.rx.rx_burst(&mut self.rx_bufs, self.rx_burst);
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
                        enqueued_ns: self.clock.now_ns(),
                        dispatched_ns: 0,
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
                            let depth = self.scheduler.queue_len(ty) as u64;
                            let stats = &mut self.report.per_type[slot];
                            stats.queue_depth_hwm = stats.queue_depth_hwm.max(depth);
                            if let Some(telemetry) = &mut self.telemetry {
                                telemetry.on_depth(slot, depth);
                            }
                        }
                        Err(rejected) => {
                            drop(self.slab.take(rejected.token));
                            self.report.per_type[slot].rejected += 1;
                            self.report.queue_full_drops += 1;
                        }
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
        true
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

    /// Polls every worker's completion ring once.
    #[inline]
    fn poll_completions(&mut self, now_ns: u64) -> bool {
        let n_types = self.scheduler.types().len();
        let mut any = false;
        for (w, done) in self.done.iter_mut().enumerate() {
            let Some(completion) = done.pop() else {
                continue;
            };
            any = true;
            // `w` < workers ≤ MAX_WORKERS (128).
            match self.scheduler.on_completion(now_ns, WorkerId(w as u16)) {
                Ok(completed) => {
                    self.in_flight -= 1;
                    let slot = type_slot(completed.ty, n_types);
                    let stats = &mut self.report.per_type[slot];
                    stats.completed += 1;
                    stats.sojourn_ns_total += now_ns.saturating_sub(completion.arrival_ns);
                    self.report.completed += 1;
                    if let Some(log) = &mut self.windows {
                        log.on_completion(completed.ty);
                    }
                    if let Some(telemetry) = &mut self.telemetry {
                        telemetry.on_service(slot, completion.service_ns);
                    }
                }
                Err(_) => self.report.spurious_completions += 1,
            }
        }
        any
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
            self.report.per_type[slot].dispatched += 1;
            let Some(mut job) = self.slab.take(decision.token) else {
                // A token we never issued: a scheduler bug; count it, the worker stays busy
                // until freed by nothing, so hand it back as completed at once.
                self.report.lost_tokens += 1;
                let _ = self.scheduler.on_completion(now_ns, decision.worker);
                continue;
            };
            let w = decision.worker.index();
            job.dispatched_ns = now_ns;
            let stages = &mut self.report.stages;
            stages
                .rx_to_enqueue
                .record(job.enqueued_ns.saturating_sub(job.arrival_ns));
            if let Some(wait) = stages.queue_wait.get_mut(slot) {
                wait.record(now_ns.saturating_sub(job.enqueued_ns));
            }
            self.in_flight += 1;
            self.report.dispatched += 1;
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
        any
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
