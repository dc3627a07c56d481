//! A small closed-loop request peer and a scheduler-less echo, over any [`Port`].
//!
//! These are the test and benchmark counterparts of `psp-app` (hidden `psp-app peer` and
//! `psp-app raw-echo` subcommands; `benches/echo_rtt.rs`):
//! - [`run_peer`] sends a burst of deliberately malformed frames (one per [`MalformedKind`]),
//!   then `requests` valid requests with at most `window` outstanding, and polls **every** RX
//!   queue of its port for responses (over memif, the server's TX queue *i* arrives on RX queue
//!   *i*, so a peer of a server with N workers needs 1 + N RX queues). It measures each
//!   request's round trip and stops when all are answered, or when no response arrived for
//!   `stall_timeout`, or at `deadline`.
//! - [`run_raw_echo`] answers every request on RX queue 0 from TX queue 0, with no rings, no
//!   scheduler and no workers: the baseline the bench compares `psp-app`'s `echo` app against.
//!
//! Neither allocates per packet: buffers come from the port, timestamps go to a table
//! preallocated for `requests` entries and to an HDR histogram.
//! Tested over memif in `tests/dpdk_memif.rs` (in one process) and `tests/e2e_memif.rs`
//! (against `psp-app` in another).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{
    self, DropReason, Endpoint, LocalAddr, RequestRepr, IPV4_OFFSET, PAYLOAD_OFFSET,
    REQUEST_FRAME_LEN, UDP_OFFSET,
};

/// Packets handled per burst (the original net worker's RX burst is 8; 32 is DPDK's usual).
pub const BURST: usize = 32;
/// Highest round trip the histogram records, ns (10 s).
const MAX_RTT_NS: u64 = 10_000_000_000;
/// Significant digits of the RTT histogram.
const RTT_SIGNIFICANT_DIGITS: u8 = 3;
/// Marks an unanswered slot in the send-time table.
const NOT_OUTSTANDING: u64 = u64::MAX;

/// What a polling thread does when a poll finds nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Poll again at once (best with a core per polling thread).
    Spin,
    /// `std::thread::yield_now()` (required when polling threads outnumber cores).
    Yield,
}

impl IdleStrategy {
    #[inline]
    fn idle(self) {
        if self == Self::Yield {
            std::thread::yield_now();
        }
    }
}

/// One kind of malformed frame the peer sends, and the reason a strict server drops it for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MalformedKind {
    /// 10 bytes: shorter than an Ethernet header.
    Runt,
    /// EtherType IPv6.
    NotIpv4,
    /// IPv4 header checksum off by one.
    BadIpChecksum,
    /// Addressed to another UDP port.
    WrongDstPort,
    /// A UDP payload of 8 bytes instead of 16.
    ShortPayload,
}

impl MalformedKind {
    /// Every kind, in the order the peer sends them.
    pub const ALL: [MalformedKind; 5] = [
        MalformedKind::Runt,
        MalformedKind::NotIpv4,
        MalformedKind::BadIpChecksum,
        MalformedKind::WrongDstPort,
        MalformedKind::ShortPayload,
    ];

    /// The reason a strict server counts this frame under.
    pub const fn expected_reason(self) -> DropReason {
        match self {
            MalformedKind::Runt => DropReason::TooShort,
            MalformedKind::NotIpv4 => DropReason::NotIpv4,
            MalformedKind::BadIpChecksum => DropReason::BadIpChecksum,
            MalformedKind::WrongDstPort => DropReason::WrongDstPort,
            MalformedKind::ShortPayload => DropReason::TruncatedPayload,
        }
    }

    /// Writes this malformed frame into `buf` (a valid request is built first and then
    /// damaged); returns its length.
    pub fn build(self, buf: &mut [u8], src: &Endpoint, dst: &Endpoint) -> usize {
        let request = RequestRepr {
            req_id: u32::MAX,
            req_type: 1,
            req_size: wire::psp::DEFAULT_REQ_SIZE,
            run_ns: 0,
        };
        match self {
            MalformedKind::Runt => {
                let len = 10.min(buf.len());
                buf[..len].fill(0xee);
                len
            }
            MalformedKind::NotIpv4 => {
                let len = wire::build_request(buf, &request, src, dst).unwrap_or(0);
                if len > 13 {
                    buf[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                }
                len
            }
            MalformedKind::BadIpChecksum => {
                let len = wire::build_request(buf, &request, src, dst).unwrap_or(0);
                if len > IPV4_OFFSET + 11 {
                    buf[IPV4_OFFSET + 11] ^= 0x01;
                }
                len
            }
            MalformedKind::WrongDstPort => {
                let other = Endpoint::new(dst.mac, dst.ip, dst.port.wrapping_add(1));
                wire::build_request(buf, &request, src, &other).unwrap_or(0)
            }
            MalformedKind::ShortPayload => {
                wire::build_udp_frame(buf, src, dst, SHORT_PAYLOAD_LEN).unwrap_or(0)
            }
        }
    }
}

/// EtherType of IPv6 (IEEE registry), for a frame the server must refuse as not IPv4.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// UDP payload of the short-payload frame: half a request.
const SHORT_PAYLOAD_LEN: usize = 8;

/// What the peer sends.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Our address (source of requests, destination of responses).
    pub local: Endpoint,
    /// The server's address.
    pub server: Endpoint,
    /// Valid requests to send.
    pub requests: u32,
    /// Most requests outstanding at once (1 measures unloaded round trips).
    pub window: u32,
    /// `(req_type, run_ns)` of the requests, used in turn.
    pub request_types: Vec<(u32, u32)>,
    /// Rounds of malformed frames (one of each [`MalformedKind`] per round) sent first.
    pub malformed_rounds: u32,
    /// Stop when no response arrived for this long.
    pub stall_timeout: Duration,
    /// Stop at this total duration whatever happens.
    pub deadline: Duration,
    /// Idle strategy when a poll finds nothing.
    pub idle: IdleStrategy,
}

/// What the peer saw.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PeerReport {
    /// Valid requests sent.
    pub sent: u64,
    /// Requests answered (each once).
    pub answered: u64,
    /// Requests never answered.
    pub unanswered: u64,
    /// Responses to an id already answered or never sent.
    pub unexpected: u64,
    /// Received frames that were not responses for us, by reason.
    pub rx_dropped: BTreeMap<String, u64>,
    /// Malformed frames sent, by the reason the server should count them under.
    pub malformed_sent: BTreeMap<String, u64>,
    /// Responses per request type.
    pub answered_by_type: BTreeMap<u32, u64>,
    /// Wall time from the first request to the last response, ns.
    pub elapsed_ns: u64,
    /// Answered requests per second over `elapsed_ns`.
    pub rate_rps: f64,
    /// Round-trip time percentiles, ns (0 when nothing was answered).
    pub rtt_p50_ns: u64,
    /// 99th percentile round trip, ns.
    pub rtt_p99_ns: u64,
    /// Mean round trip, ns.
    pub rtt_mean_ns: f64,
    /// Largest round trip, ns.
    pub rtt_max_ns: u64,
    /// Frames the port would not take (TX ring full), retried.
    pub tx_retries: u64,
}

/// Runs the closed-loop peer over `port` (which must be started and linked). Takes TX queue 0
/// and every RX queue.
pub fn run_peer<P: Port>(port: &mut P, config: &PeerConfig) -> anyhow::Result<PeerReport> {
    anyhow::ensure!(config.window > 0, "peer window must be at least 1");
    anyhow::ensure!(
        !config.request_types.is_empty(),
        "peer needs at least one request type"
    );
    let mut tx = port
        .take_tx(0)
        .ok_or_else(|| anyhow::anyhow!("TX queue 0 unavailable"))?;
    let mut rxs: Vec<P::Rx> = (0..port.rx_queue_count())
        .filter_map(|queue| port.take_rx(queue))
        .collect();
    anyhow::ensure!(!rxs.is_empty(), "no RX queue available");
    tx.on_thread_start();
    rxs.iter_mut().for_each(|rx| rx.on_thread_start());

    let mut report = PeerReport::default();
    let mut outgoing: Vec<P::Buf> = Vec::with_capacity(BURST);
    let mut incoming: Vec<P::Buf> = Vec::with_capacity(BURST);
    // Malformed frames first: the server must count them and keep serving.
    for _ in 0..config.malformed_rounds {
        queue_malformed(&mut tx, &mut outgoing, &mut report, config)?;
        send_all(&mut tx, &mut outgoing, &mut report, config.idle);
    }
    let mut state = PeerState::new(config)?;
    let mut last_progress = state.start;
    while report.answered < u64::from(config.requests) {
        let now = state.start.elapsed();
        if now >= config.deadline || last_progress.elapsed() >= config.stall_timeout {
            break;
        }
        state.fill_window(&mut tx, &mut outgoing, &mut report, config);
        if !outgoing.is_empty() {
            tx.tx_burst(&mut outgoing);
        }
        // Poll every RX queue.
        let mut received_any = false;
        for rx in &mut rxs {
            if rx.rx_burst(&mut incoming, BURST) == 0 {
                continue;
            }
            received_any = true;
            let now_ns = state.start.elapsed().as_nanos() as u64;
            for buf in incoming.drain(..) {
                state.on_frame(buf.data(), now_ns, &mut report);
            }
        }
        if received_any {
            last_progress = Instant::now();
        } else {
            config.idle.idle();
        }
    }
    state.finish(&mut report);
    Ok(report)
}

/// One round of malformed frames (one per [`MalformedKind`]) queued in `outgoing`.
fn queue_malformed<T: TxQueue>(
    tx: &mut T,
    outgoing: &mut Vec<T::Buf>,
    report: &mut PeerReport,
    config: &PeerConfig,
) -> anyhow::Result<()> {
    for kind in MalformedKind::ALL {
        let mut buf = tx
            .alloc()
            .ok_or_else(|| anyhow::anyhow!("peer buffer pool exhausted"))?;
        buf.set_len(REQUEST_FRAME_LEN.min(buf.capacity()))
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        let len = kind.build(buf.data_mut(), &config.local, &config.server);
        buf.set_len(len).map_err(|err| anyhow::anyhow!("{err}"))?;
        outgoing.push(buf);
        *report
            .malformed_sent
            .entry(kind.expected_reason().as_str().to_string())
            .or_default() += 1;
    }
    Ok(())
}

/// The valid requests' side of a peer run: send times, round trips, the window.
struct PeerState {
    start: Instant,
    histogram: Histogram<u64>,
    /// Send time of each request id, `NOT_OUTSTANDING` once answered (or never sent).
    sent_at_ns: Vec<u64>,
    local: LocalAddr,
    last_response_ns: u64,
    next_id: u32,
    outstanding: u32,
}

impl PeerState {
    fn new(config: &PeerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            start: Instant::now(),
            histogram: Histogram::<u64>::new_with_bounds(1, MAX_RTT_NS, RTT_SIGNIFICANT_DIGITS)?,
            sent_at_ns: vec![NOT_OUTSTANDING; config.requests as usize],
            local: config.local,
            last_response_ns: 0,
            next_id: 0,
            outstanding: 0,
        })
    }

    /// Queues new requests in `outgoing` up to the window (and one burst).
    fn fill_window<T: TxQueue>(
        &mut self,
        tx: &mut T,
        outgoing: &mut Vec<T::Buf>,
        report: &mut PeerReport,
        config: &PeerConfig,
    ) {
        while self.outstanding < config.window
            && self.next_id < config.requests
            && outgoing.len() < BURST
        {
            let Some(mut buf) = tx.alloc() else { break };
            let (req_type, run_ns) =
                config.request_types[self.next_id as usize % config.request_types.len()];
            let request = RequestRepr {
                req_id: self.next_id,
                req_type,
                req_size: wire::psp::DEFAULT_REQ_SIZE,
                run_ns,
            };
            if buf.set_len(REQUEST_FRAME_LEN).is_err() {
                break;
            }
            let len = wire::build_request(buf.data_mut(), &request, &config.local, &config.server)
                .unwrap_or(0);
            if len == 0 || buf.set_len(len).is_err() {
                break;
            }
            self.sent_at_ns[self.next_id as usize] = self.start.elapsed().as_nanos() as u64;
            outgoing.push(buf);
            self.next_id += 1;
            self.outstanding += 1;
            report.sent += 1;
        }
    }

    /// A received frame: a response to an outstanding request, or counted as why not.
    fn on_frame(&mut self, frame: &[u8], now_ns: u64, report: &mut PeerReport) {
        match wire::parse_response(frame, &self.local) {
            Ok(response) => match self.sent_at_ns.get_mut(response.req_id as usize) {
                Some(sent) if *sent != NOT_OUTSTANDING => {
                    let _ = self.histogram.record(now_ns.saturating_sub(*sent).max(1));
                    *sent = NOT_OUTSTANDING;
                    report.answered += 1;
                    self.outstanding -= 1;
                    *report
                        .answered_by_type
                        .entry(response.req_type)
                        .or_default() += 1;
                    self.last_response_ns = now_ns;
                }
                _ => report.unexpected += 1,
            },
            Err(reason) => {
                *report
                    .rx_dropped
                    .entry(reason.as_str().to_string())
                    .or_default() += 1;
            }
        }
    }

    /// Unanswered count, rate and round-trip percentiles into `report`.
    fn finish(&self, report: &mut PeerReport) {
        report.unanswered = report.sent - report.answered;
        report.elapsed_ns = self.last_response_ns;
        if self.last_response_ns > 0 {
            report.rate_rps = report.answered as f64 * 1e9 / self.last_response_ns as f64;
        }
        if !self.histogram.is_empty() {
            report.rtt_p50_ns = self.histogram.value_at_quantile(0.50);
            report.rtt_p99_ns = self.histogram.value_at_quantile(0.99);
            report.rtt_mean_ns = self.histogram.mean();
            report.rtt_max_ns = self.histogram.max();
        }
    }
}

/// Transmits everything in `outgoing`, retrying while the ring is full (bounded: gives up
/// after [`SEND_RETRY_LIMIT`] empty attempts, dropping the rest).
fn send_all<T: TxQueue>(
    tx: &mut T,
    outgoing: &mut Vec<T::Buf>,
    report: &mut PeerReport,
    idle: IdleStrategy,
) {
    let mut attempts = 0;
    while !outgoing.is_empty() && attempts < SEND_RETRY_LIMIT {
        if tx.tx_burst(outgoing) == 0 {
            attempts += 1;
            report.tx_retries += 1;
            idle.idle();
        }
    }
    outgoing.clear();
}

/// Empty TX attempts before the peer gives up on a malformed burst.
const SEND_RETRY_LIMIT: u32 = 100_000;

/// Counters of [`run_raw_echo`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RawEchoReport {
    /// Requests answered.
    pub echoed: u64,
    /// Frames dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Responses the TX ring would not take (dropped).
    pub tx_full: u64,
}

/// Answers every request arriving on RX queue 0 from TX queue 0 (echoing its whole payload,
/// like the `echo` app) until `stop` is set: no rings, no scheduler, no workers.
pub fn run_raw_echo<P: Port>(
    port: &mut P,
    local: LocalAddr,
    stop: &AtomicBool,
    idle: IdleStrategy,
) -> anyhow::Result<RawEchoReport> {
    let mut rx = port
        .take_rx(0)
        .ok_or_else(|| anyhow::anyhow!("RX queue 0 unavailable"))?;
    let mut tx = port
        .take_tx(0)
        .ok_or_else(|| anyhow::anyhow!("TX queue 0 unavailable"))?;
    rx.on_thread_start();
    tx.on_thread_start();
    let mut counters = wire::DropCounters::default();
    let mut report = RawEchoReport::default();
    let mut incoming: Vec<P::Buf> = Vec::with_capacity(BURST);
    let mut outgoing: Vec<P::Buf> = Vec::with_capacity(BURST);
    while !stop.load(Ordering::Relaxed) {
        if rx.rx_burst(&mut incoming, BURST) == 0 {
            idle.idle();
            continue;
        }
        for mut buf in incoming.drain(..) {
            match wire::parse_request(buf.data(), &local) {
                Ok(request) => {
                    let len = wire::build_reply_in_place(buf.data_mut(), request.payload_len);
                    if len != 0 && buf.set_len(len).is_ok() {
                        outgoing.push(buf);
                        report.echoed += 1;
                    }
                }
                Err(reason) => counters.record(reason),
            }
        }
        tx.tx_burst(&mut outgoing);
        report.tx_full += outgoing.len() as u64;
        outgoing.clear();
    }
    for reason in DropReason::ALL {
        let count = counters.get(reason);
        if count > 0 {
            report.dropped.insert(reason.as_str().to_string(), count);
        }
    }
    Ok(report)
}

// Offsets used by the malformed-frame builders must stay consistent with the wire layout.
const _: () = assert!(UDP_OFFSET == IPV4_OFFSET + 20 && PAYLOAD_OFFSET == UDP_OFFSET + 8);
