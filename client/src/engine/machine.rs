//! The client's send/receive logic as a state machine that is given the time (sans-IO, in the
//! style of quinn-proto): it reads no clock, sleeps never and touches no queue. The thin I/O
//! loop of [`super::Engine`] reads the clock, moves frames between the machine and a port's
//! queues, and idles; tests drive the same machine on virtual time.
//!
//! ## Protocol
//! - [`ClientMachine::poll_timeout`]: when the machine next needs to act — the next intended
//!   send time while sending, the drain or late-listen deadline after — or `None` once finished.
//! - [`ClientMachine::poll_transmit`]`(now, alloc, out)`: builds into `out` the request frames
//!   of every request whose intended time has come (at most [`TX_BURST`], never across a phase
//!   boundary); a due request that finds `max_concurrency` in flight is skipped and counted.
//!   Each call that built frames is followed by [`ClientMachine::on_transmitted`]`(now,
//!   refused)` with the frames the device did not take (a suffix of `out`).
//! - [`ClientMachine::on_response`]`(now, frame)`: one received frame (the per-response path:
//!   parse, match, record; allocates nothing).
//! - [`ClientMachine::handle_timeout`]`(now)`: ends the drain (all answered, or its deadline:
//!   what is outstanding is given up on) and the late listen (all late ones came, or its
//!   deadline).
//! - [`ClientMachine::stop`]`(now)`: ends the run early ([`super::Progress::stop`]).
//! - [`ClientMachine::is_finished`], then [`ClientMachine::into_result`].
//!
//! ## States
//! `Sending` → `Draining` (when the last request has been handed out; deadline = that time +
//! [`super::EngineConfig::drain_timeout_ns`]) → `LateListen` (only if some request was never
//! answered; deadline = drain end + [`super::EngineConfig::late_listen_ns`]) → `Finished`.
//!
//! ## Invariants
//! - `sent = received + late + unanswered` once finished ([`super::Counters::balanced`]); while
//!   running, `sent = received + late + unanswered + outstanding`.
//! - Every planned request is sent, skipped, or failed (`tx_failed`) unless the run was stopped.
//!
//! Tested below on virtual time (no threads, no ports): send times, the concurrency limit,
//! response outcomes, device refusals, the drain and late-listen deadlines and early stops.

use std::time::SystemTime;

use hdrhistogram::Histogram;
use psp_net::port::PacketBuf;
use psp_net::wire::{self, Endpoint, RequestRepr};
use psp_workload::stats::new_histogram;
use psp_workload::{Sampled, Workload};

use super::{
    count_arrivals, validate, Arrivals, EngineConfig, EngineError, Forwarded, PhaseResult,
    ResponseSink, RunResult, ThreadTag, TypeSlot, BEHIND_SCHEDULE_LAG_NS, NS_PER_S, REQ_SIZE_WORD,
    TX_BURST,
};
use crate::inflight::{tag_of, InFlightTable, RequestInfo, NO_TRACE};

/// Where a run is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Sending the schedule.
    Sending,
    /// Everything sent: waiting for the outstanding responses until `deadline_ns`.
    Draining {
        /// When the drain gives up on what is still outstanding.
        deadline_ns: u64,
    },
    /// Gave up on some requests: listening for their late answers until `deadline_ns`.
    LateListen {
        /// When the run ends.
        deadline_ns: u64,
    },
    /// Over: [`ClientMachine::into_result`].
    Finished,
}

/// A request of the burst last built, waiting for the device's verdict.
#[derive(Copy, Clone, Debug, Default)]
struct Built {
    id: u32,
    intended_ns: u64,
    type_slot: u32,
    warmup: bool,
    trace: u32,
}

/// The sans-IO client: schedule, in-flight table, accounting and statistics of one run.
pub struct ClientMachine {
    sink: ResponseSink,
    /// Arrivals of every phase; `phase` indexes the current one.
    arrivals: Vec<Arrivals>,
    phase: usize,
    /// The next request of the current phase (`None` once the last phase is done).
    pending: Option<(u64, Sampled)>,
    /// Requests handed out so far (sent, skipped or failed), 1-based in send order.
    seq: u64,
    warmup_requests: u64,
    measured_from_ns: u64,
    send_lag_ns: Histogram<u64>,
    /// The burst last built: `batch[..batch_len]`, of phase `batch_phase`.
    batch: [Built; TX_BURST],
    batch_len: usize,
    batch_phase: usize,
    local: Endpoint,
    targets: Vec<Endpoint>,
    max_in_flight: usize,
    trace_limit: usize,
    drain_timeout_ns: u64,
    late_listen_ns: u64,
    state: RunState,
    ended_ns: u64,
    stopped_early: bool,
}

impl ClientMachine {
    /// Plans `workload` at one rate per phase (rps): per-phase generators, exact request counts
    /// (a dry pass over the same draws), the warm-up cut, the in-flight table (its ids start at
    /// generation `first_generation`) and every buffer of the run. Time 0 is the run's start.
    pub fn new(
        workload: &Workload,
        rates_rps: &[f64],
        config: &EngineConfig,
        first_generation: u32,
    ) -> Result<Self, EngineError> {
        validate(workload, rates_rps, config)?;
        let (arrivals, phases) = plan(workload, rates_rps, config.seed)?;
        let planned: u64 = phases.iter().map(|p| p.planned).sum();
        let max_rate = rates_rps.iter().copied().fold(0.0, f64::max);
        let mut sink = ResponseSink::new(
            workload,
            config
                .thread_tag
                .iter()
                .fold(
                    InFlightTable::for_rate(max_rate, config.response_timeout_ns),
                    |table, tag| table.with_tag(tag.thread, tag.bits),
                )
                .with_first_generation(first_generation),
            config.local,
            config.parse_options,
        );
        sink.counters.planned = planned;
        sink.phases = phases;
        sink.traces = Vec::with_capacity(
            config
                .trace_limit
                .min(usize::try_from(planned).unwrap_or(usize::MAX)),
        );
        let mut machine = Self {
            sink,
            arrivals,
            phase: 0,
            pending: None,
            seq: 0,
            warmup_requests: (planned as f64 * config.warmup_fraction).ceil() as u64,
            measured_from_ns: u64::MAX,
            send_lag_ns: new_histogram(),
            batch: [Built::default(); TX_BURST],
            batch_len: 0,
            batch_phase: 0,
            local: config.local,
            targets: config.targets.clone(),
            max_in_flight: config.max_concurrency.unwrap_or(usize::MAX),
            trace_limit: config.trace_limit,
            drain_timeout_ns: config.drain_timeout_ns,
            late_listen_ns: config.late_listen_ns,
            state: RunState::Sending,
            ended_ns: 0,
            stopped_early: false,
        };
        machine.pending = machine
            .arrivals
            .first_mut()
            .and_then(Arrivals::next_request);
        machine.next_phase_if_done(0);
        Ok(machine)
    }

    /// Requests planned over the whole run.
    pub fn planned(&self) -> u64 {
        self.sink.counters.planned
    }

    /// Where the run is.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        self.state == RunState::Finished
    }

    /// Whether requests are still to be sent.
    pub fn is_sending(&self) -> bool {
        self.state == RunState::Sending
    }

    /// The current phase (the last one once everything is sent).
    pub fn phase(&self) -> usize {
        self.phase
    }

    /// Requests in flight.
    pub fn outstanding(&self) -> usize {
        self.sink.table.outstanding()
    }

    /// The counters so far (`malformed` is filled in by [`Self::into_result`]).
    pub fn counters(&self) -> &super::Counters {
        &self.sink.counters
    }

    /// When the machine next needs to act, ns since the run's start: the next intended send
    /// time, or the deadline of the drain or the late listen; `None` once finished.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            RunState::Sending => self.pending.map(|(intended_ns, _)| intended_ns),
            RunState::Draining { deadline_ns } | RunState::LateListen { deadline_ns } => {
                Some(deadline_ns)
            }
            RunState::Finished => None,
        }
    }

    /// Builds into `out` (which must be empty) the request frames of every request of the
    /// current phase whose intended time is at most `now_ns`, up to [`TX_BURST`], in buffers
    /// from `alloc`; returns how many. A due request that finds `max_concurrency` requests in
    /// flight is skipped, one for which `alloc` has no buffer (or whose frame does not fit)
    /// fails: both are counted, neither is sent. Follow a call that built frames with
    /// [`Self::on_transmitted`]. Allocates nothing.
    #[inline]
    pub fn poll_transmit<B: PacketBuf>(
        &mut self,
        now_ns: u64,
        mut alloc: impl FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) -> usize {
        debug_assert!(out.is_empty() && self.batch_len == 0);
        if self.state != RunState::Sending {
            return 0;
        }
        self.batch_phase = self.phase;
        while let Some((intended_ns, sample)) = self.pending {
            if intended_ns > now_ns || out.len() == TX_BURST {
                break;
            }
            self.pending = self.arrivals[self.phase].next_request();
            self.seq += 1;
            if self.sink.table.outstanding() >= self.max_in_flight {
                self.sink.counters.skipped += 1;
                continue;
            }
            let Some(mut buf) = alloc() else {
                self.sink.counters.tx_failed += 1;
                continue;
            };
            if let Some(built) = self.build_request(&mut buf, intended_ns, &sample) {
                self.batch[out.len()] = built;
                out.push(buf);
            }
        }
        self.batch_len = out.len();
        self.next_phase_if_done(now_ns);
        out.len()
    }

    /// Takes a slot for the due request `(intended_ns, sample)` and writes its frame into
    /// `buf`; `None` (counted as failed, slot taken back) if the frame does not fit.
    #[inline]
    fn build_request<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        intended_ns: u64,
        sample: &Sampled,
    ) -> Option<Built> {
        let warmup = self.seq <= self.warmup_requests;
        let trace = self.trace_index(warmup);
        // The generator only yields types of this phase: the slot exists.
        let type_slot = (self.sink.type_offsets[self.phase] + sample.ty) as u32;
        let (id, expired) = self.sink.table.insert(RequestInfo {
            intended_send_ns: intended_ns,
            type_slot,
            warmup,
            trace,
        });
        if let Some(e) = expired {
            self.sink.on_expired(e.0);
        }
        let TypeSlot {
            wire_id, mean_ns, ..
        } = self.sink.types[type_slot as usize];
        let request = RequestRepr {
            req_id: id,
            req_type: wire_id,
            req_size: REQ_SIZE_WORD,
            run_ns: u32::try_from(sample.service_ns).unwrap_or(u32::MAX),
        };
        let target = &self.targets[(self.seq % self.targets.len() as u64) as usize];
        let capacity = buf.capacity();
        let built = buf
            .set_len(capacity)
            .ok()
            .and_then(|()| wire::build_request(buf.data_mut(), &request, &self.local, target).ok())
            .and_then(|len| buf.set_len(len).ok());
        if built.is_none() {
            self.sink.table.cancel(id);
            self.sink.counters.tx_failed += 1;
            return None;
        }
        if !warmup && self.measured_from_ns == u64::MAX {
            self.measured_from_ns = intended_ns;
        }
        if trace != NO_TRACE {
            // Within the capacity reserved before the run: no reallocation.
            self.sink.traces.push(super::TraceRecord {
                req_id: id,
                req_type: wire_id,
                phase: self.phase as u16,
                intended_ns,
                sent_ns: 0,
                completed_ns: 0,
                mean_ns,
            });
        }
        Some(Built {
            id,
            intended_ns,
            type_slot,
            warmup,
            trace,
        })
    }

    /// The trace record the next request gets, if any (counted when the buffer is full).
    #[inline]
    fn trace_index(&mut self, warmup: bool) -> u32 {
        if warmup {
            NO_TRACE
        } else if self.sink.traces.len() < self.sink.traces.capacity() {
            self.sink.traces.len() as u32
        } else {
            if self.trace_limit > 0 {
                self.sink.counters.untraced += 1;
            }
            NO_TRACE
        }
    }

    /// Moves to the next phase with requests once the current one has none left; after the
    /// last, starts the drain at `now_ns`.
    fn next_phase_if_done(&mut self, now_ns: u64) {
        while self.pending.is_none() && self.phase + 1 < self.arrivals.len() {
            self.phase += 1;
            self.pending = self.arrivals[self.phase].next_request();
        }
        if self.pending.is_none() && self.state == RunState::Sending {
            self.state = RunState::Draining {
                deadline_ns: now_ns.saturating_add(self.drain_timeout_ns),
            };
        }
    }

    /// The device took the burst last built but `refused` (its tail, which this empties: the
    /// requests are taken back and counted failed) at `now_ns`: counts the sent requests and
    /// their send lag.
    #[inline]
    pub fn on_transmitted<B>(&mut self, now_ns: u64, refused: &mut Vec<B>) {
        let taken = self.batch_len.saturating_sub(refused.len());
        for built in &self.batch[taken..self.batch_len] {
            self.sink.table.cancel(built.id);
        }
        self.sink.counters.tx_failed += (self.batch_len - taken) as u64;
        refused.clear();
        for built in &self.batch[..taken] {
            let lag = now_ns.saturating_sub(built.intended_ns);
            if self.send_lag_ns.record(lag).is_err() {
                self.send_lag_ns.saturating_record(lag);
            }
            if lag > BEHIND_SCHEDULE_LAG_NS {
                self.sink.counters.behind_schedule += 1;
            }
            self.sink.on_sent(built.type_slot, built.warmup);
            if let Some(t) = self.sink.traces.get_mut(built.trace as usize) {
                t.sent_ns = now_ns;
            }
        }
        self.batch_len = 0;
        if taken > 0 {
            let phase = &mut self.sink.phases[self.batch_phase];
            phase.sent += taken as u64;
            phase.last_send_ns = now_ns;
            phase.end_ns = phase.end_ns.max(now_ns);
        }
    }

    /// One frame received at `now_ns`: a response is matched and recorded, anything else
    /// counted. Allocates nothing; never panics.
    #[inline]
    pub fn on_response(&mut self, now_ns: u64, frame: &[u8]) {
        self.sink.on_frame(frame, now_ns);
    }

    /// One frame received at `now_ns` on RX queues shared by several client threads: a
    /// response to a request of thread `tag.thread` is matched here, one to another thread's
    /// is returned for forwarding; anything else is counted.
    #[inline]
    pub fn on_response_routed(
        &mut self,
        now_ns: u64,
        frame: &[u8],
        tag: ThreadTag,
    ) -> Option<Forwarded> {
        let (req_id, req_type) = self.sink.parse(frame)?;
        if tag_of(req_id, tag.bits) == tag.thread {
            self.sink.on_response(req_id, req_type, now_ns);
            None
        } else {
            Some(Forwarded {
                req_id,
                req_type,
                now_ns,
            })
        }
    }

    /// A response another client thread received for one of this thread's requests.
    #[inline]
    pub fn on_forwarded(&mut self, response: Forwarded) {
        self.sink
            .on_response(response.req_id, response.req_type, response.now_ns);
    }

    /// Counts a response that could not be forwarded to its thread (its inbox was full): that
    /// request ends never answered.
    pub fn on_forward_dropped(&mut self) {
        self.sink.counters.forward_dropped += 1;
    }

    /// Ends the drain once nothing is outstanding or at its deadline (giving up on what is
    /// left), and the late listen once every given-up request was answered or at its deadline.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        match self.state {
            RunState::Draining { deadline_ns }
                if self.sink.table.outstanding() == 0 || now_ns >= deadline_ns =>
            {
                self.give_up(now_ns);
                self.state = if self.sink.counters.unanswered > 0 {
                    // Listen a little longer, so that a slow answer counts late, not lost.
                    RunState::LateListen {
                        deadline_ns: now_ns.saturating_add(self.late_listen_ns),
                    }
                } else {
                    RunState::Finished
                };
            }
            RunState::LateListen { deadline_ns }
                if self.sink.counters.unanswered == 0 || now_ns >= deadline_ns =>
            {
                self.state = RunState::Finished;
            }
            _ => {}
        }
    }

    /// Ends the run at `now_ns` ([`super::Progress::stop`]): no more sends, no drain, no late
    /// listen; what is outstanding is never answered. A stop while sending marks the result
    /// [`RunResult::stopped_early`].
    pub fn stop(&mut self, now_ns: u64) {
        match self.state {
            RunState::Sending => {
                self.stopped_early = true;
                self.give_up(now_ns);
            }
            RunState::Draining { .. } => self.give_up(now_ns),
            RunState::LateListen { .. } | RunState::Finished => {}
        }
        self.state = RunState::Finished;
    }

    /// The run's end is `now_ns`: every outstanding request is given up on (never answered).
    fn give_up(&mut self, now_ns: u64) {
        self.ended_ns = now_ns;
        // `expire_all` calls back per request while it borrows the table; the sink's accounting
        // needs the whole sink, so the requests are collected first (once, off the hot path).
        let mut leftovers = Vec::new();
        self.sink.table.expire_all(|info| leftovers.push(info));
        for info in leftovers {
            self.sink.on_expired(info);
        }
    }

    /// First id generation of the next run on the same link (past every id of this one).
    pub fn next_generation(&self) -> u32 {
        self.sink.table.next_first_generation()
    }

    /// The run's results, `started_at` being the wall-clock time of time 0. Meant for a
    /// finished run; before that, what is outstanding counts as never answered.
    pub fn into_result(mut self, started_at: SystemTime) -> RunResult {
        if !self.is_finished() {
            self.give_up(self.ended_ns);
        }
        let sink = self.sink;
        let mut counters = sink.counters;
        counters.malformed = sink.drops.total_drops() + sink.drops.get(wire::DropReason::Arp);
        counters.malformed_by_reason = sink
            .drops
            .nonzero()
            .map(|(r, n)| (r.as_str().to_string(), n))
            .collect();
        RunResult {
            stats: sink.stats,
            phase_stats: sink.phase_stats,
            send_lag_ns: self.send_lag_ns,
            counters,
            phases: sink.phases,
            classes: sink.classes,
            started_at,
            measured_from_ns: if self.measured_from_ns == u64::MAX {
                0
            } else {
                self.measured_from_ns
            },
            ended_ns: self.ended_ns,
            traces: sink.traces,
            stopped_early: self.stopped_early,
        }
    }
}

/// Per-phase arrivals and results of `workload` at `rates_rps`: phases play back to back on one
/// timeline (phase `k` starts when phase `k-1`'s intended duration ends).
fn plan(
    workload: &Workload,
    rates_rps: &[f64],
    seed: u64,
) -> Result<(Vec<Arrivals>, Vec<PhaseResult>), EngineError> {
    let mut arrivals = Vec::with_capacity(workload.phases.len());
    let mut phases = Vec::with_capacity(workload.phases.len());
    let mut start_ns = 0u64;
    for (index, (&rate_rps, phase)) in rates_rps.iter().zip(&workload.phases).enumerate() {
        let a = Arrivals::new(workload, index, rate_rps, start_ns, seed).ok_or(
            EngineError::BadRate {
                phase: index,
                rate_rps,
            },
        )?;
        let planned = count_arrivals(a.clone());
        let duration_ns = (phase.duration_s * NS_PER_S) as u64;
        phases.push(PhaseResult {
            rate_rps,
            duration_ns,
            planned,
            sent: 0,
            received: 0,
            start_ns,
            last_send_ns: start_ns,
            end_ns: start_ns,
        });
        arrivals.push(a);
        start_ns = start_ns.saturating_add(duration_ns);
    }
    Ok((arrivals, phases))
}

#[cfg(test)]
mod tests {
    //! The machine on virtual time: a fake clock, frames in plain vectors, no threads, no ports.

    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use psp_net::port::BufferTooSmall;
    use psp_net::wire::{MacAddr, PAYLOAD_OFFSET};

    use super::*;

    /// Drain timeout of the tests, ns.
    const DRAIN_NS: u64 = 100_000;
    /// Late listen of the tests, ns.
    const LATE_NS: u64 = 1_000_000;
    /// Rate of the tests: about 1000 requests per 1 ms phase.
    const RATE_RPS: f64 = 1e6;

    /// A heap-backed packet buffer.
    struct TestBuf {
        bytes: Vec<u8>,
        len: usize,
    }

    impl PacketBuf for TestBuf {
        fn data(&self) -> &[u8] {
            &self.bytes[..self.len]
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut self.bytes[..self.len]
        }
        fn set_len(&mut self, len: usize) -> Result<(), BufferTooSmall> {
            if len > self.bytes.len() {
                return Err(BufferTooSmall {
                    wanted: len,
                    capacity: self.bytes.len(),
                });
            }
            self.len = len;
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    fn alloc() -> Option<TestBuf> {
        Some(TestBuf {
            bytes: vec![0; 2048],
            len: 0,
        })
    }

    fn local() -> Endpoint {
        Endpoint::new(MacAddr([2, 0, 0, 0, 0, 1]), [10, 0, 0, 1].into(), 40000)
    }

    fn config(max_concurrency: Option<usize>) -> EngineConfig {
        let server = Endpoint::new(MacAddr([2, 0, 0, 0, 0, 2]), [10, 0, 0, 2].into(), 6789);
        let mut config = EngineConfig::new(local(), vec![server]);
        config.seed = 3;
        config.warmup_fraction = 0.0;
        config.trace_limit = 1 << 20;
        config.max_concurrency = max_concurrency;
        config.drain_timeout_ns = DRAIN_NS;
        config.late_listen_ns = LATE_NS;
        config
    }

    /// One phase of two types, 1 ms; or two such phases.
    fn workload(phases: usize) -> Workload {
        let phase =
            "- {mean_ns: [1000, 10000], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 0.001}\n";
        Workload::from_yaml_str("t", &phase.repeat(phases)).unwrap()
    }

    fn machine(phases: usize, max_concurrency: Option<usize>) -> ClientMachine {
        let rates = vec![RATE_RPS; phases];
        ClientMachine::new(&workload(phases), &rates, &config(max_concurrency), 0).unwrap()
    }

    /// The server's response to request frame `request`.
    fn response(request: &[u8]) -> Vec<u8> {
        let mut frame = request.to_vec();
        let len = wire::build_response_in_place(&mut frame);
        frame.truncate(len);
        frame
    }

    /// The `req_id` of a response frame, read through the wire layer.
    fn req_id(frame: &[u8]) -> u32 {
        wire::parse_response(frame, &local())
            .expect("a response to us")
            .req_id
    }

    /// Sends at `now_ns` everything due, all taken by the device; returns the frames.
    fn send_due(m: &mut ClientMachine, now_ns: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut frames = Vec::new();
        while m.poll_transmit(now_ns, alloc, &mut out) > 0 {
            frames.extend(out.drain(..).map(|b| b.data().to_vec()));
            m.on_transmitted(now_ns, &mut out);
        }
        frames
    }

    /// Runs `m` to the end on virtual time: sends at the intended times, and a server that
    /// answers the `i`-th request sent (0-based) with the frames `answer(i, request)` returns,
    /// each after its delay (ns). Returns the time of the last send.
    fn run_virtual(
        m: &mut ClientMachine,
        mut answer: impl FnMut(usize, &[u8]) -> Vec<(u64, Vec<u8>)>,
    ) -> u64 {
        let mut wire_to_client: BinaryHeap<Reverse<(u64, usize, Vec<u8>)>> = BinaryHeap::new();
        let (mut now, mut sent, mut last_send_ns) = (0u64, 0usize, 0u64);
        while let Some(timeout_ns) = m.poll_timeout() {
            let next_response = wire_to_client.peek().map(|Reverse((t, _, _))| *t);
            now = now.max(next_response.map_or(timeout_ns, |t| t.min(timeout_ns)));
            while let Some(Reverse((t, _, frame))) = wire_to_client.peek() {
                if *t > now {
                    break;
                }
                m.on_response(now, frame);
                wire_to_client.pop();
            }
            m.handle_timeout(now);
            for request in send_due(m, now) {
                for (delay_ns, frame) in answer(sent, &request) {
                    wire_to_client.push(Reverse((now + delay_ns, wire_to_client.len(), frame)));
                }
                sent += 1;
                last_send_ns = now;
            }
        }
        last_send_ns
    }

    #[test]
    fn requests_leave_at_their_intended_times() {
        let mut m = machine(1, None);
        let w = workload(1);
        let mut arrivals = Arrivals::new(&w, 0, RATE_RPS, 0, config(None).seed).unwrap();
        let expected: Vec<u64> = std::iter::from_fn(|| arrivals.next_request())
            .map(|(t, _)| t)
            .collect();
        assert_eq!(m.planned(), expected.len() as u64);
        assert!(expected.len() > 500, "{}", expected.len());
        let mut out: Vec<TestBuf> = Vec::new();
        while m.is_sending() {
            let t = m.poll_timeout().unwrap();
            // Nothing leaves before its time.
            assert_eq!(m.poll_transmit(t.saturating_sub(1), alloc, &mut out), 0);
            assert!(!send_due(&mut m, t).is_empty() || t == 0);
        }
        let last_ns = *expected.last().unwrap();
        assert_eq!(
            m.state(),
            RunState::Draining {
                deadline_ns: last_ns + DRAIN_NS
            }
        );
        let r = m.into_result(SystemTime::now());
        assert_eq!(r.counters.sent, expected.len() as u64);
        assert_eq!(r.counters.behind_schedule, 0);
        assert_eq!(r.send_lag_ns.max(), 0);
        let intended: Vec<u64> = r.traces.iter().map(|t| t.intended_ns).collect();
        assert_eq!(intended, expected);
        assert!(r.traces.iter().all(|t| t.sent_ns == t.intended_ns));
        assert_eq!(r.phases[0].last_send_ns, last_ns);
        // Not finished when turned into a result: what was outstanding is never answered.
        assert_eq!(r.counters.unanswered, r.counters.sent);
        assert!(r.counters.balanced());
    }

    #[test]
    fn a_send_slot_that_finds_the_concurrency_limit_is_skipped_and_counted() {
        const LIMIT: usize = 3;
        let mut m = machine(1, Some(LIMIT));
        let mut answered = 0;
        let planned = m.planned();
        // Each request is answered 5 µs after it leaves: at 1 Mrps some slots find 3 in flight.
        run_virtual(&mut m, |_, request| {
            answered += 1;
            vec![(5_000, response(request))]
        });
        let r = m.into_result(SystemTime::now());
        let c = &r.counters;
        assert!(c.skipped > 0, "{c:?}");
        assert_eq!(c.sent + c.skipped, planned);
        assert_eq!(c.received, c.sent);
        assert_eq!(answered, c.sent);
        assert!(c.balanced(), "{c:?}");
        // Without answers, exactly LIMIT requests ever leave.
        let mut m = machine(1, Some(LIMIT));
        let mut most_outstanding = 0;
        while m.is_sending() {
            let t = m.poll_timeout().unwrap();
            send_due(&mut m, t);
            most_outstanding = most_outstanding.max(m.outstanding());
        }
        assert_eq!(most_outstanding, LIMIT);
        assert_eq!(m.counters().sent, LIMIT as u64);
        assert_eq!(m.counters().skipped, planned - LIMIT as u64);
    }

    #[test]
    fn every_response_outcome_is_accounted() {
        let mut m = machine(1, None);
        let planned = m.planned() as usize;
        let last = planned - 1;
        let unknown = |request: &[u8]| {
            let mut frame = response(request);
            let id = req_id(&frame) | 0xF000_0000;
            wire::psp::Message::new_unchecked(&mut frame[PAYLOAD_OFFSET..]).set_req_id(id);
            frame
        };
        let last_send_ns = run_virtual(&mut m, |i, request| match (i == last, i % 4) {
            // After the drain's deadline, before the late listen's.
            (true, _) => vec![(DRAIN_NS + 1_000, response(request))],
            (false, 0) => vec![],
            (false, 1) => vec![(20_000, response(request))],
            (false, 2) => vec![(20_000, response(request)), (30_000, response(request))],
            _ => vec![
                (20_000, response(request)),
                (20_000, unknown(request)),
                (20_000, request[..20].to_vec()),
            ],
        });
        let r = m.into_result(SystemTime::now());
        let c = &r.counters;
        let count = |k| (0..last).filter(|i| i % 4 == k).count() as u64;
        assert_eq!(c.sent, planned as u64);
        assert_eq!(c.unanswered, count(0));
        assert_eq!(c.received, count(1) + count(2) + count(3));
        assert_eq!(c.late, 1);
        assert_eq!(c.duplicate, count(2));
        assert_eq!(c.unknown_id, count(3));
        assert_eq!(c.malformed, count(3));
        assert!(c.balanced(), "{c:?}");
        // Latency is measured from the intended send time; late ones are not recorded.
        let latency = r.stats.latency();
        assert_eq!(r.stats.completed(), c.received);
        assert!((19_900.0..=20_100.0).contains(&latency.p50), "{latency:?}");
        assert_eq!(r.stats.unanswered(), c.unanswered + c.late);
        // The drain gave up at its deadline; the late listen ran to its own.
        assert_eq!(r.ended_ns, last_send_ns + DRAIN_NS);
        let measured: u64 = r.classes.iter().map(|k| k.measured.late).sum();
        assert_eq!(measured, 1);
    }

    #[test]
    fn the_drain_ends_when_all_are_answered_or_at_its_deadline() {
        // All answered: the run ends with the last response, without a late listen.
        let mut m = machine(1, None);
        let last_send_ns = run_virtual(&mut m, |_, request| vec![(7_000, response(request))]);
        assert!(m.is_finished());
        let r = m.into_result(SystemTime::now());
        assert_eq!(r.ended_ns, last_send_ns + 7_000);
        assert_eq!(r.counters.received, r.counters.sent);
        assert_eq!((r.counters.late, r.counters.unanswered), (0, 0));

        // None answered: the drain waits to its deadline, then the late listen to its own.
        let mut m = machine(1, None);
        let mut last_send_ns = 0;
        while m.is_sending() {
            last_send_ns = m.poll_timeout().unwrap();
            send_due(&mut m, last_send_ns);
        }
        let deadline_ns = last_send_ns + DRAIN_NS;
        assert_eq!(m.poll_timeout(), Some(deadline_ns));
        m.handle_timeout(deadline_ns - 1);
        assert_eq!(m.state(), RunState::Draining { deadline_ns });
        m.handle_timeout(deadline_ns);
        let late_deadline_ns = deadline_ns + LATE_NS;
        assert_eq!(
            m.state(),
            RunState::LateListen {
                deadline_ns: late_deadline_ns
            }
        );
        assert_eq!(m.outstanding(), 0);
        m.handle_timeout(late_deadline_ns - 1);
        assert!(!m.is_finished());
        m.handle_timeout(late_deadline_ns);
        assert!(m.is_finished());
        assert_eq!(m.poll_timeout(), None);
        let r = m.into_result(SystemTime::now());
        assert_eq!(r.counters.unanswered, r.counters.sent);
        assert_eq!(r.ended_ns, deadline_ns);
    }

    #[test]
    fn phases_play_back_to_back() {
        let mut m = machine(2, None);
        run_virtual(&mut m, |_, request| vec![(1_000, response(request))]);
        let r = m.into_result(SystemTime::now());
        assert_eq!(r.phases.len(), 2);
        assert_eq!(r.phases[1].start_ns, 1_000_000);
        for p in &r.phases {
            assert_eq!((p.sent, p.received), (p.planned, p.planned));
        }
        let first_of_second = r.traces.iter().find(|t| t.phase == 1).unwrap();
        assert!(first_of_second.intended_ns >= 1_000_000);
        assert!(r.traces.iter().all(|t| t.completed_ns == t.sent_ns + 1_000));
        assert!(r.counters.balanced());
    }

    #[test]
    fn refused_frames_and_missing_buffers_are_taken_back_and_counted() {
        let mut m = machine(1, None);
        let mut out = Vec::new();
        let mut now = 0;
        let built = loop {
            now = m.poll_timeout().unwrap().max(now + 5_000);
            let n = m.poll_transmit(now, alloc, &mut out);
            if n >= 3 {
                break n;
            }
            out.clear();
            m.on_transmitted(now, &mut out);
        };
        let sent_before = m.counters().sent;
        // The device takes all but the last two.
        out.drain(..built - 2);
        m.on_transmitted(now, &mut out);
        assert!(out.is_empty());
        assert_eq!(m.counters().sent, sent_before + built as u64 - 2);
        assert_eq!(m.counters().tx_failed, 2);
        assert_eq!(m.outstanding() as u64, m.counters().sent);
        // No buffer: the due requests fail, nothing is in flight for them.
        let t = m.poll_timeout().unwrap();
        assert_eq!(m.poll_transmit(t, || None::<TestBuf>, &mut out), 0);
        assert!(m.counters().tx_failed > 2);
        assert_eq!(m.outstanding() as u64, m.counters().sent);
        m.stop(t);
        let r = m.into_result(SystemTime::now());
        assert!(r.stopped_early);
        assert!(r.counters.balanced(), "{:?}", r.counters);
    }

    #[test]
    fn a_stop_ends_the_run_at_once() {
        let mut m = machine(1, None);
        let t = m.poll_timeout().unwrap();
        let sent = send_due(&mut m, t).len() as u64;
        m.stop(t + 10);
        assert!(m.is_finished());
        assert_eq!(
            m.poll_transmit(t + 1_000_000, alloc, &mut Vec::<TestBuf>::new()),
            0
        );
        let r = m.into_result(SystemTime::now());
        assert!(r.stopped_early);
        assert_eq!(r.ended_ns, t + 10);
        assert_eq!((r.counters.sent, r.counters.unanswered), (sent, sent));
        // A stop during the drain ends it without marking the run stopped early.
        let mut m = machine(1, None);
        while m.is_sending() {
            let t = m.poll_timeout().unwrap();
            send_due(&mut m, t);
        }
        m.stop(5_000_000);
        let r = m.into_result(SystemTime::now());
        assert!(!r.stopped_early);
        assert_eq!(r.counters.unanswered, r.counters.sent);
    }
}
