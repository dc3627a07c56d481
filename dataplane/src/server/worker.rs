//! The worker loop: pop a job, run the application in place, build the response in place, transmit
//! it on the worker's own TX queue, report the completion.
//!
//! TX batching: the worker transmits after a job unless its next job is already in its ring
//! (`worker_queue_depth: 2`) and fewer than [`WORKER_TX_BATCH`] responses wait; so a response
//! waits for at most one more job, and at depth 1 (the ring is empty after every job: the next
//! one comes after this completion) every response leaves at once. One clock read after the
//! burst stamps every response in it.
//!
//! Under live time sharing (`ts`) the application runs through
//! [`Application::handle_preemptible`] with this worker's preempt flag (set only by the
//! dispatcher, cleared by it before each dispatch): a request that stops early is not answered;
//! its job (buffer, progress, service so far) goes back on the completion ring as
//! [`Notice::Preempted`] and the dispatcher re-queues it. Every other policy never sets the
//! flag, so the call runs the request to the end.
//!
//! Invariants: the loop allocates nothing, locks nothing and logs nothing; a response that the
//! port does not take is counted, never retried forever. Tested through whole servers in
//! `server/tests.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::idle::{IdleStrategy, Idler};
use super::preempt::PreemptFlags;
use super::report::WorkerReport;
use super::stages::WorkerStages;
use super::telemetry::WorkerBusySlots;
use super::{pin_current_thread, Clock, WORKER_TX_BACKLOG, WORKER_TX_BATCH};
use crate::app::{respond_in_place_with, Application, Outcome, Resume};
use crate::port::{PacketBuf, TxQueue};
use crate::ring;
use crate::wire::{RequestView, PAYLOAD_OFFSET};

/// Attempts to transmit a worker's last responses at shutdown before dropping them.
const FINAL_FLUSH_ATTEMPTS: u32 = 1000;

/// A request handed to a worker.
pub(crate) struct Job<B> {
    pub(crate) buf: B,
    pub(crate) request: RequestView,
    /// Its type's slot in the per-type tables (registration order, then UNKNOWN).
    pub(crate) type_slot: u16,
    /// When its RX burst returned.
    pub(crate) arrival_ns: u64,
    /// When its RX burst had been classified and handed to the scheduler.
    pub(crate) enqueued_ns: u64,
    pub(crate) dispatched_ns: u64,
    /// Where a preempted request stands (meaningful once `slices > 0`).
    pub(crate) resume: Resume,
    /// Service of its earlier slices, ns (0 unless preempted).
    pub(crate) served_ns: u64,
    /// Slices it ran before this one (0 unless preempted).
    pub(crate) slices: u32,
}

/// What a worker reports on its completion ring (the worker is implied by the ring).
pub(crate) enum Notice<B> {
    /// The request was answered.
    Done(Done),
    /// The request stopped at the preempt flag: its job, to re-queue, and when the worker
    /// became free.
    Preempted { job: Job<B>, freed_ns: u64 },
}

/// A worker's completion notice.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Done {
    /// When the request arrived at the dispatcher.
    pub(crate) arrival_ns: u64,
    /// Its service time (the application's run, all slices), ns: the `service` stage, for
    /// telemetry.
    pub(crate) service_ns: u64,
}

/// What one slice of a job did.
enum Slice {
    /// Answered (`Some`: when the application returned) or unanswerable (`None`).
    Answered(Option<u64>),
    /// Stopped at the preempt flag.
    Preempted(Resume),
}

/// Everything a worker thread owns.
pub(crate) struct WorkerContext<T: TxQueue, A> {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) idle: IdleStrategy,
    pub(crate) clock: Clock,
    pub(crate) jobs: ring::Receiver<Job<T::Buf>>,
    pub(crate) done: ring::Sender<Notice<T::Buf>>,
    /// Every worker's preempt flag (this worker reads slot `index`).
    pub(crate) preempt: Arc<PreemptFlags>,
    pub(crate) tx: T,
    pub(crate) app: A,
    pub(crate) stop: Arc<AtomicBool>,
    /// Slots of the per-type stage tables (types + UNKNOWN).
    pub(crate) type_slots: usize,
    /// Where this worker publishes its busy time for telemetry (slot `index`), if it runs.
    pub(crate) busy: Option<Arc<WorkerBusySlots>>,
}

impl<T: TxQueue, A: Application> WorkerContext<T, A> {
    /// The thread body.
    pub(crate) fn run(mut self) -> WorkerReport {
        let mut report = WorkerReport {
            worker: self.index,
            cpu: self.cpu,
            stages: WorkerStages::new(self.type_slots),
            ..WorkerReport::default()
        };
        if let Some(cpu) = self.cpu {
            if pin_current_thread(cpu).is_err() {
                report.pin_failed = true;
            }
        }
        self.tx.on_thread_start();
        let cpu_started = cpu_time::ThreadTime::now();
        let mut idler = Idler::new(self.idle);
        let mut out = Outbound {
            bufs: Vec::with_capacity(WORKER_TX_BACKLOG),
            unsent: [None; WORKER_TX_BATCH],
            unsent_len: 0,
        };
        let busy_slots = self.busy.take();
        let busy = busy_slots
            .as_deref()
            .and_then(|slots| slots.get(self.index));
        loop {
            if let Some(job) = self.jobs.pop() {
                idler.busy();
                let started_ns = self.clock.now_ns();
                self.preempt.started(self.index, started_ns);
                if let Some(busy) = busy {
                    busy.start(started_ns);
                }
                let (mut notice, served_ns) = self.serve(job, started_ns, &mut out, &mut report);
                // Flush unless the next job is already waiting (depth 2) and the batch has room:
                // a response then waits at most for that one job.
                let finished_ns = if self.jobs.is_empty() || out.unsent_len >= WORKER_TX_BATCH {
                    self.flush(&mut out, &mut report)
                } else {
                    served_ns
                };
                report.busy_ns += finished_ns.saturating_sub(started_ns);
                if let Some(busy) = busy {
                    busy.finish(finished_ns.saturating_sub(started_ns));
                }
                if let Notice::Preempted { freed_ns, .. } = &mut notice {
                    *freed_ns = finished_ns;
                }
                // The ring has room: this worker never has more than `worker_queue_depth` (≤ 2)
                // jobs outstanding.
                while let Err(back) = self.done.push(notice) {
                    notice = back;
                    if self.stop.load(Ordering::Acquire) {
                        break;
                    }
                    std::hint::spin_loop();
                }
            } else if self.stop.load(Ordering::Acquire) {
                // Jobs pushed before the stop flag are visible now (Release/Acquire on the flag
                // orders them), so one last pop decides. Responses still waiting for TX room
                // get the bounded final flush below: a peer that went away (memif link down)
                // never makes room, and must not keep the worker from stopping.
                if self.jobs.is_empty() {
                    break;
                }
            } else if !out.bufs.is_empty() || out.unsent_len > 0 {
                self.flush(&mut out, &mut report);
                idler.idle();
            } else {
                idler.idle();
            }
        }
        self.flush(&mut out, &mut report);
        let mut attempts = 1;
        while !out.bufs.is_empty() && attempts < FINAL_FLUSH_ATTEMPTS {
            report.tx_packets += self.tx.tx_burst(&mut out.bufs) as u64;
            report.tx_bursts += 1;
            attempts += 1;
            std::thread::yield_now();
        }
        report.tx_dropped += out.bufs.len() as u64;
        report.cpu_ns = super::usage::duration_ns(cpu_started.elapsed());
        report
    }

    /// Transmits what `out` holds (what the port refuses stays for the next flush) and records
    /// the stages of the requests answered since the last flush. Returns the clock read after
    /// the transmission.
    #[inline]
    fn flush(&mut self, out: &mut Outbound<T::Buf>, report: &mut WorkerReport) -> u64 {
        if !out.bufs.is_empty() {
            report.tx_packets += self.tx.tx_burst(&mut out.bufs) as u64;
            report.tx_bursts += 1;
        }
        let finished_ns = self.clock.now_ns();
        for stamps in out.unsent[..out.unsent_len].iter_mut() {
            if let Some(mut stamps) = stamps.take() {
                stamps.finished_ns = finished_ns;
                stamps.record(&mut report.stages);
            }
        }
        out.unsent_len = 0;
        finished_ns
    }

    /// Runs one slice of `job`: answers it (response queued on `out`, its stages recorded at
    /// the next flush) or hands it back preempted. Returns the notice for the dispatcher and
    /// when the application returned.
    #[inline]
    fn serve(
        &mut self,
        mut job: Job<T::Buf>,
        started_ns: u64,
        out: &mut Outbound<T::Buf>,
        report: &mut WorkerReport,
    ) -> (Notice<T::Buf>, u64) {
        let resume = (job.slices > 0).then_some(job.resume);
        let served_ns = match self.respond(&job.request, &mut job.buf, resume) {
            Slice::Preempted(resume) => {
                let now_ns = self.clock.now_ns();
                job.served_ns += now_ns.saturating_sub(started_ns);
                job.slices += 1;
                job.resume = resume;
                report.preempted_slices += 1;
                return (Notice::Preempted { job, freed_ns: 0 }, now_ns);
            }
            Slice::Answered(Some(served_ns)) => {
                if out.bufs.len() >= WORKER_TX_BACKLOG {
                    // The port has refused the backlog for a while: the oldest response goes
                    // (swap_remove: O(1), the newest takes its place at the front).
                    out.bufs.swap_remove(0);
                    report.tx_dropped += 1;
                }
                out.bufs.push(job.buf);
                served_ns
            }
            Slice::Answered(None) => {
                report.build_failures += 1;
                self.clock.now_ns()
            }
        };
        report.requests += 1;
        let service_ns = job.served_ns + served_ns.saturating_sub(started_ns);
        // `unsent_len < WORKER_TX_BATCH`: every job that leaves a stamp is followed by a
        // flush once the batch is full.
        if let Some(slot) = out.unsent.get_mut(out.unsent_len) {
            *slot = Some(Stamps {
                type_slot: job.type_slot,
                run_ns: job.request.run_ns,
                arrival_ns: job.arrival_ns,
                dispatched_ns: job.dispatched_ns,
                started_ns,
                service_ns,
                served_ns,
                finished_ns: served_ns,
            });
            out.unsent_len += 1;
        }
        let notice = Notice::Done(Done {
            arrival_ns: job.arrival_ns,
            service_ns,
        });
        (notice, served_ns)
    }

    /// Runs the application (one slice) and turns `buf` into the response, in place.
    #[inline]
    fn respond(
        &mut self,
        request: &RequestView,
        buf: &mut T::Buf,
        resume: Option<Resume>,
    ) -> Slice {
        // Expose the whole buffer so the application may write a response longer than the
        // request.
        let capacity = buf.capacity();
        if buf.set_len(capacity).is_err() || capacity < PAYLOAD_OFFSET {
            return Slice::Answered(None);
        }
        let preempt = self.preempt.flag(self.index);
        let (app, clock) = (&mut self.app, &self.clock);
        let mut served_ns = 0;
        let built = respond_in_place_with(buf.data_mut(), |payload| {
            match app.handle_preemptible(request, payload, preempt, resume) {
                Outcome::Done(len) => {
                    served_ns = clock.now_ns();
                    Ok(len)
                }
                Outcome::Preempted(resume) => Err(resume),
            }
        });
        match built {
            Err(resume) => Slice::Preempted(resume),
            Ok(frame_len) => Slice::Answered(
                (frame_len != 0 && buf.set_len(frame_len).is_ok()).then_some(served_ns),
            ),
        }
    }
}

/// Responses waiting for transmission, and the stamps of the requests answered since the last
/// flush (recorded with the flush's time).
struct Outbound<B> {
    bufs: Vec<B>,
    unsent: [Option<Stamps>; WORKER_TX_BATCH],
    unsent_len: usize,
}

/// One request's timestamps on a worker (see `stages.rs`).
#[derive(Copy, Clone)]
struct Stamps {
    type_slot: u16,
    run_ns: u32,
    arrival_ns: u64,
    dispatched_ns: u64,
    /// Started → served of the last slice (`started_ns` is the last slice's start), plus
    /// every earlier slice's service.
    started_ns: u64,
    service_ns: u64,
    served_ns: u64,
    finished_ns: u64,
}

impl Stamps {
    /// Records the worker-side stages.
    #[inline]
    fn record(&self, stages: &mut WorkerStages) {
        let slot = usize::from(self.type_slot).min(stages.service.len().saturating_sub(1));
        stages
            .handoff
            .record(self.started_ns.saturating_sub(self.dispatched_ns));
        stages
            .worker_tx
            .record(self.finished_ns.saturating_sub(self.served_ns));
        if let (Some(service), Some(total), Some(requested)) = (
            stages.service.get_mut(slot),
            stages.rx_to_tx.get_mut(slot),
            stages.requested_run_ns.get_mut(slot),
        ) {
            service.record(self.service_ns);
            total.record(self.finished_ns.saturating_sub(self.arrival_ns));
            *requested = requested.saturating_add(u64::from(self.run_ns));
        }
    }
}
