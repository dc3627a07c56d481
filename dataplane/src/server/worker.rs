//! The worker loop: pop a job, run the application in place, build the response in place, transmit
//! it on the worker's own TX queue, report the completion.
//!
//! Invariants: the loop allocates nothing, locks nothing and logs nothing; a response that the
//! port does not take is counted, never retried forever. Tested through whole servers in
//! `server/tests.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::idle::{IdleStrategy, Idler};
use super::report::WorkerReport;
use super::{pin_current_thread, Clock, WORKER_TX_BACKLOG};
use crate::app::Application;
use crate::port::{PacketBuf, TxQueue};
use crate::ring;
use crate::wire::{build_reply_in_place, RequestView, PAYLOAD_OFFSET};

/// Attempts to transmit a worker's last responses at shutdown before dropping them.
const FINAL_FLUSH_ATTEMPTS: u32 = 1000;

/// A request handed to a worker.
pub(crate) struct Job<B> {
    pub(crate) buf: B,
    pub(crate) request: RequestView,
    pub(crate) arrival_ns: u64,
    pub(crate) dispatched_ns: u64,
}

/// A worker's completion notice (the worker is implied by the ring it arrives on).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Done {
    /// When the request arrived at the dispatcher.
    pub(crate) arrival_ns: u64,
}

/// Everything a worker thread owns.
pub(crate) struct WorkerContext<T: TxQueue, A> {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) idle: IdleStrategy,
    pub(crate) clock: Clock,
    pub(crate) jobs: ring::Receiver<Job<T::Buf>>,
    pub(crate) done: ring::Sender<Done>,
    pub(crate) tx: T,
    pub(crate) app: A,
    pub(crate) stop: Arc<AtomicBool>,
}

impl<T: TxQueue, A: Application> WorkerContext<T, A> {
    /// The thread body.
    pub(crate) fn run(mut self) -> WorkerReport {
        let mut report = WorkerReport {
            worker: self.index,
            cpu: self.cpu,
            ..WorkerReport::default()
        };
        if let Some(cpu) = self.cpu {
            if pin_current_thread(cpu).is_err() {
                report.pin_failed = true;
            }
        }
        self.tx.on_thread_start();
        let mut idler = Idler::new(self.idle);
        let mut outbound: Vec<T::Buf> = Vec::with_capacity(WORKER_TX_BACKLOG);
        loop {
            if let Some(job) = self.jobs.pop() {
                idler.busy();
                let started_ns = self.clock.now_ns();
                report.queueing_ns += job.dispatched_ns.saturating_sub(job.arrival_ns);
                let mut buf = job.buf;
                if self.respond(&job.request, &mut buf) {
                    if outbound.len() >= WORKER_TX_BACKLOG {
                        outbound.remove(0);
                        report.tx_dropped += 1;
                    }
                    outbound.push(buf);
                } else {
                    report.build_failures += 1;
                }
                report.tx_packets += self.tx.tx_burst(&mut outbound) as u64;
                let finished_ns = self.clock.now_ns();
                report.busy_ns += finished_ns.saturating_sub(started_ns);
                report.requests += 1;
                let mut done = Done {
                    arrival_ns: job.arrival_ns,
                };
                // The ring has room: this worker never has more than one job outstanding.
                while let Err(back) = self.done.push(done) {
                    done = back;
                    if self.stop.load(Ordering::Acquire) {
                        break;
                    }
                    std::hint::spin_loop();
                }
            } else if !outbound.is_empty() {
                // A device that takes nothing (a peer that stopped reading) must not hold the
                // stop up: once stopped with no job left, the bounded final flush decides.
                if self.stop.load(Ordering::Acquire) && self.jobs.is_empty() {
                    break;
                }
                report.tx_packets += self.tx.tx_burst(&mut outbound) as u64;
                idler.idle();
            } else if self.stop.load(Ordering::Acquire) {
                // Jobs pushed before the stop flag are visible now (Release/Acquire on the flag
                // orders them), so one last pop decides.
                if self.jobs.is_empty() {
                    break;
                }
            } else {
                idler.idle();
            }
        }
        let mut attempts = 0;
        while !outbound.is_empty() && attempts < FINAL_FLUSH_ATTEMPTS {
            report.tx_packets += self.tx.tx_burst(&mut outbound) as u64;
            attempts += 1;
            std::thread::yield_now();
        }
        report.tx_dropped += outbound.len() as u64;
        report
    }

    /// Runs the application and turns `buf` into the response, in place. `false`: nothing to
    /// send.
    #[inline]
    fn respond(&mut self, request: &RequestView, buf: &mut T::Buf) -> bool {
        // Expose the whole buffer so the application may write a response longer than the
        // request.
        let capacity = buf.capacity();
        if buf.set_len(capacity).is_err() || capacity < PAYLOAD_OFFSET {
            return false;
        }
        let frame = buf.data_mut();
        let payload_room = frame.len() - PAYLOAD_OFFSET;
        let reply_len = self
            .app
            .handle(request, &mut frame[PAYLOAD_OFFSET..])
            .min(payload_room);
        let frame_len = build_reply_in_place(frame, reply_len);
        frame_len != 0 && buf.set_len(frame_len).is_ok()
    }
}
