//! Whole-server tests over the in-memory port pair (and one over kernel UDP): a test thread
//! plays the client on side A, the server runs on side B. Loads are small (hundreds of
//! requests), threads yield when idle, every wait is bounded.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use psp_scheduler::{DarcParams, Policy, RequestTypeSpec, SchedulerConfig};

use super::*;
use crate::app::{Application, WireTypeClassifier};
use crate::port::memory::{pair, MemPort, MemPortConfig, MemRxQueue, MemTxQueue};
use crate::port::udp::{UdpPort, UdpPortConfig};
use crate::port::{PacketBuf, Port, RxQueue, TxQueue};
use crate::wire::{
    build_request, parse_response, DropReason, Endpoint, MacAddr, RequestRepr, RequestView,
    ResponseView, REQUEST_FRAME_LEN,
};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER_PORT: u16 = 6789;
const CLIENT_PORT: u16 = 40_000;
/// Bound on every wait for responses.
const RESPONSE_WAIT: Duration = Duration::from_secs(10);
/// Silence after which a test expecting some drops stops waiting for more responses.
const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// Echoes the 12-byte response prefix; optionally spins `spin_ns` per request.
#[derive(Clone)]
struct TestHandler {
    spin: Duration,
}

impl Application for TestHandler {
    fn name(&self) -> &'static str {
        "test"
    }

    fn handle(&mut self, _request: &RequestView, _payload: &mut [u8]) -> usize {
        if !self.spin.is_zero() {
            let start = Instant::now();
            while start.elapsed() < self.spin {
                std::hint::spin_loop();
            }
        }
        crate::wire::psp::RESPONSE_LEN
    }

    fn supports_preemption(&self) -> bool {
        true
    }

    /// Spins what is left of `spin`, stopping at the flag.
    fn handle_preemptible(
        &mut self,
        _request: &RequestView,
        _payload: &mut [u8],
        preempt: &AtomicBool,
        resume: Option<crate::app::Resume>,
    ) -> crate::app::Outcome {
        let work_ns = resume.map_or(self.spin.as_nanos() as u64, |r| r.remaining_ns);
        let start = Instant::now();
        loop {
            let done_ns = start.elapsed().as_nanos() as u64;
            if done_ns >= work_ns {
                return crate::app::Outcome::Done(crate::wire::psp::RESPONSE_LEN);
            }
            if preempt.load(Ordering::Relaxed) {
                return crate::app::Outcome::Preempted(crate::app::Resume {
                    remaining_ns: work_ns - done_ns,
                    progress: 0,
                });
            }
        }
    }
}

fn types() -> Vec<RequestTypeSpec> {
    vec![
        RequestTypeSpec::new("SHORT", 1)
            .with_mean_ns(1_000)
            .with_ratio(0.5)
            .with_deadline_ns(10_000),
        RequestTypeSpec::new("LONG", 2)
            .with_mean_ns(100_000)
            .with_ratio(0.5)
            .with_deadline_ns(1_000_000),
    ]
}

fn options(policy: Policy, workers: usize) -> ServerOptions {
    let mut options = ServerOptions::new(
        SchedulerConfig::new(workers, types(), policy),
        SERVER_IP,
        SERVER_PORT,
    );
    options.idle = IdleStrategy::Yield;
    options
}

struct Client {
    tx: MemTxQueue,
    rx: Vec<MemRxQueue>,
    me: Endpoint,
    server: Endpoint,
}

struct Running {
    client: Client,
    shutdown: Arc<AtomicBool>,
    server: JoinHandle<Result<ServerReport, ServerError>>,
}

fn start(options: ServerOptions, spin: Duration) -> Running {
    let workers = options.scheduler.workers;
    let (mut a, b): (MemPort, MemPort) = pair(&MemPortConfig::with_queues(workers as u16 + 1));
    let server_mac = MacAddr(b.mac());
    let client = Client::new(&mut a, workers as u16 + 1, server_mac);
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server = std::thread::spawn(move || {
        let handler = TestHandler { spin };
        let server = Server::new(options)?;
        server.run(b, WireTypeClassifier, vec![handler; workers], flag)
    });
    Running {
        client,
        shutdown,
        server,
    }
}

impl Client {
    /// Takes `port`'s TX queue 0 and RX queues `0..rx_queues` for a client at
    /// `CLIENT_IP:CLIENT_PORT` talking to `server_mac` at `SERVER_IP:SERVER_PORT`.
    fn new(port: &mut MemPort, rx_queues: u16, server_mac: MacAddr) -> Self {
        Self {
            tx: port.take_tx(0).expect("client tx"),
            rx: (0..rx_queues)
                .map(|q| port.take_rx(q).expect("client rx"))
                .collect(),
            me: Endpoint::new(MacAddr(port.mac()), CLIENT_IP, CLIENT_PORT),
            server: Endpoint::new(server_mac, SERVER_IP, SERVER_PORT),
        }
    }

    fn send_frames(&mut self, frames: Vec<crate::port::pool::PoolBuf>) {
        let mut burst = frames;
        let deadline = Instant::now() + RESPONSE_WAIT;
        while !burst.is_empty() {
            self.tx.tx_burst(&mut burst);
            assert!(Instant::now() < deadline, "client TX stuck");
        }
    }

    fn request_frame(&mut self, req_id: u32, req_type: u32) -> crate::port::pool::PoolBuf {
        self.request_frame_running(req_id, req_type, 0)
    }

    fn request_frame_running(
        &mut self,
        req_id: u32,
        req_type: u32,
        run_ns: u32,
    ) -> crate::port::pool::PoolBuf {
        let mut buf = self.tx.alloc().expect("client buffer");
        buf.set_len(REQUEST_FRAME_LEN).expect("fits");
        let request = RequestRepr {
            req_id,
            req_type,
            req_size: 4,
            run_ns,
        };
        let len = build_request(buf.data_mut(), &request, &self.me, &self.server).expect("build");
        buf.set_len(len).expect("fits");
        buf
    }

    fn send(&mut self, requests: &[(u32, u32)]) {
        let frames = requests
            .iter()
            .map(|&(id, ty)| self.request_frame(id, ty))
            .collect();
        self.send_frames(frames);
    }

    /// Collects responses on every RX queue until `want` arrived or the wait ends; checks the
    /// addressing of each.
    fn collect(&mut self, want: usize) -> Vec<(u16, ResponseView)> {
        self.collect_until(want, RESPONSE_WAIT)
    }

    /// As `collect`, but also stops after `quiet` without any response.
    fn collect_until(&mut self, want: usize, quiet: Duration) -> Vec<(u16, ResponseView)> {
        let mut got = Vec::new();
        let mut bufs = Vec::with_capacity(64);
        let deadline = Instant::now() + RESPONSE_WAIT;
        let mut last_seen = Instant::now();
        while got.len() < want && Instant::now() < deadline && last_seen.elapsed() < quiet {
            let mut any = false;
            for (q, rx) in self.rx.iter_mut().enumerate() {
                if rx.rx_burst(&mut bufs, 64) > 0 {
                    any = true;
                }
                for buf in bufs.drain(..) {
                    let frame = buf.data();
                    let response = parse_response(frame, &self.me).expect("valid response");
                    assert_eq!(response.src, self.server, "response source = server");
                    assert_eq!(&frame[0..6], &self.me.mac.0, "dst MAC = client");
                    got.push((q as u16, response));
                }
            }
            if any {
                last_seen = Instant::now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        got
    }
}

impl Running {
    fn stop(self) -> (Client, ServerReport) {
        self.shutdown.store(true, Ordering::Release);
        let report = self
            .server
            .join()
            .expect("server thread")
            .expect("server ran");
        assert_balanced(&report);
        (self.client, report)
    }
}

/// The server's accounting identity: every frame read is answered, dropped with a reason,
/// abandoned, or an ARP request.
fn assert_balanced(report: &ServerReport) {
    assert_eq!(
        report.accounted_rx(),
        report.dispatcher.rx_packets,
        "accounting identity:\n{report}"
    );
    assert!(report.to_string().contains("(balanced)"), "{report}");
}

fn mixed_requests(n: u32) -> Vec<(u32, u32)> {
    (0..n)
        .map(|i| (i, if i % 3 == 0 { 2 } else { 1 }))
        .collect()
}

#[test]
fn every_request_answered_with_correct_addressing_and_counts() {
    let mut run = start(options(Policy::Cfcfs, 2), Duration::ZERO);
    let requests = mixed_requests(300);
    run.client.send(&requests);
    let got = run.client.collect(requests.len());
    let (_, report) = run.stop();
    assert_eq!(got.len(), 300, "{report}");
    let mut ids: Vec<u32> = got.iter().map(|(_, r)| r.req_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..300).collect::<Vec<_>>(), "each id answered once");
    let by_id: HashMap<u32, u32> = requests.iter().copied().collect();
    for (queue, response) in &got {
        assert_eq!(by_id[&response.req_id], response.req_type, "type echoed");
        assert!((1..=2).contains(queue), "responses come from worker queues");
    }
    let d = &report.dispatcher;
    assert_eq!(d.rx_packets, 300);
    assert_eq!(d.per_type[0].arrivals, 200);
    assert_eq!(d.per_type[1].arrivals, 100);
    assert_eq!(d.per_type[0].completed, 200);
    assert_eq!(d.per_type[1].completed, 100);
    assert_eq!(report.requests_served(), 300);
    assert_eq!(report.responses_sent(), 300);
    assert_eq!(report.total_drops(), 0);
    for w in &report.workers {
        // Depth 1: a worker's ring is empty after each job, so each response leaves at once.
        assert_eq!(w.tx_bursts, w.tx_packets, "worker {}", w.worker);
        assert!(w.cpu_ns > 0);
    }
    assert!(report.to_string().contains("SHORT"));
}

#[test]
fn malformed_frames_are_counted_and_serving_continues() {
    let mut run = start(options(Policy::Cfcfs, 1), Duration::ZERO);
    let mut frames = Vec::new();
    // Too short for Ethernet.
    let mut short = run.client.tx.alloc().expect("buffer");
    short.set_len(10).expect("fits");
    frames.push(short);
    // Not IPv4 (EtherType 0x86dd).
    let mut v6 = run.client.request_frame(1000, 1);
    v6.data_mut()[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    frames.push(v6);
    // Wrong UDP destination port.
    let mut wrong_port = run.client.request_frame(1001, 1);
    wrong_port.data_mut()[36..38].copy_from_slice(&1u16.to_be_bytes());
    frames.push(wrong_port);
    // Bad IPv4 checksum.
    let mut bad_sum = run.client.request_frame(1002, 1);
    bad_sum.data_mut()[24] ^= 0xff;
    frames.push(bad_sum);
    run.client.send_frames(frames);
    let requests = mixed_requests(100);
    run.client.send(&requests);
    let got = run.client.collect(100);
    let (_, report) = run.stop();
    assert_eq!(got.len(), 100, "{report}");
    let drops = &report.dispatcher.parse_drops;
    assert_eq!(drops.get(DropReason::TooShort), 1);
    assert_eq!(drops.get(DropReason::NotIpv4), 1);
    assert_eq!(drops.get(DropReason::WrongDstPort), 1);
    assert_eq!(drops.get(DropReason::BadIpChecksum), 1);
    assert_eq!(report.dispatcher.rx_packets, 104);
    assert_eq!(report.requests_served(), 100);
}

#[test]
fn queue_full_arrivals_are_dropped_and_counted() {
    let mut opts = options(Policy::Cfcfs, 1);
    opts.scheduler.queue_capacity = 4;
    // A slow worker so the queue fills: 64 requests arrive in two bursts of 32.
    let mut run = start(opts, Duration::from_micros(500));
    let requests: Vec<(u32, u32)> = (0..64).map(|i| (i, 1)).collect();
    run.client.send(&requests);
    let first = run.client.collect(1);
    assert!(!first.is_empty(), "a first response");
    // Let the worker finish what was accepted (≤ 1 running + 4 queued per burst).
    let rest = run.client.collect_until(64 - first.len(), QUIET_PERIOD);
    let (_, report) = run.stop();
    let d = &report.dispatcher;
    assert!(d.queue_full_drops > 0, "{report}");
    assert_eq!(d.queue_full_drops, d.per_type[0].rejected);
    assert_eq!(
        d.per_type[0].arrivals,
        d.per_type[0].completed + d.queue_full_drops
    );
    assert_eq!(
        (first.len() + rest.len()) as u64,
        d.per_type[0].completed,
        "every accepted request answered"
    );
    assert!(d.per_type[0].queue_depth_hwm <= 4);
}

fn serves_all_with(policy: Policy) -> ServerReport {
    let name = policy.name();
    let mut run = start(options(policy, 3), Duration::ZERO);
    let mut requests = mixed_requests(400);
    // A few requests of an unregistered type go to UNKNOWN.
    requests.extend((400..410).map(|i| (i, 77)));
    run.client.send(&requests);
    let got = run.client.collect(requests.len());
    let (_, report) = run.stop();
    assert_eq!(got.len(), requests.len(), "{name}: {report}");
    assert_eq!(
        report.dispatcher.per_type[2].completed, 10,
        "{name}: UNKNOWN"
    );
    assert_eq!(report.total_drops(), 0, "{name}: {report}");
    report
}

#[test]
fn every_live_policy_serves_all_requests() {
    // Every live policy of the registry, so that a new one is covered without editing this.
    let registry = psp_scheduler::Registry::builtin();
    let live: Vec<Policy> = registry
        .entries()
        .iter()
        .filter(|entry| entry.live)
        .map(|entry| (entry.default)())
        .collect();
    assert!(live.len() >= 7, "{live:?}");
    for policy in live {
        serves_all_with(policy);
    }
}

/// `worker_queue_depth: 2` end to end, for every live policy that takes it (all but the
/// preemptive `ts` and `darc-ts`):
/// small queues and 20 µs requests so that second slots are used and queues overflow; every
/// request sent is answered or counted as a drop, and the accounting balances.
#[test]
fn depth_2_serves_every_live_policy_and_accounts_for_every_request() {
    let registry = psp_scheduler::Registry::builtin();
    let policies = registry
        .entries()
        .iter()
        .filter(|entry| entry.live)
        .map(|entry| (entry.default)())
        .filter(|policy| !policy.preempts());
    for policy in policies {
        let name = policy.name();
        let mut opts = options(policy, 2);
        opts.scheduler.worker_queue_depth = 2;
        opts.scheduler.queue_capacity = 16;
        let mut run = start(opts, Duration::from_micros(20));
        let mut requests = mixed_requests(200);
        requests.extend((200..205).map(|i| (i, 77)));
        run.client.send(&requests);
        let got = run.client.collect_until(requests.len(), QUIET_PERIOD);
        let (_, report) = run.stop();
        let sent = requests.len() as u64;
        assert_eq!(report.dispatcher.rx_packets, sent, "{name}: {report}");
        assert_eq!(
            got.len() as u64 + report.total_drops(),
            sent,
            "{name}: sent = answered + counted drops\n{report}"
        );
        assert_eq!(got.len() as u64, report.responses_sent(), "{name}");
        for w in &report.workers {
            // TX batching: at most WORKER_TX_BATCH responses per burst (a response waits for
            // at most one more job).
            assert!(
                w.tx_bursts * WORKER_TX_BATCH as u64 >= w.tx_packets,
                "{name}: worker {} sent {} in {} bursts",
                w.worker,
                w.tx_packets,
                w.tx_bursts
            );
        }
        let scheduler = &report.dispatcher.scheduler;
        assert_eq!(scheduler.completed, report.dispatcher.completed, "{name}");
        if name == "cfcfs" {
            assert!(scheduler.dispatched_behind > 0, "{name}: {report}");
            assert!(report
                .to_string()
                .contains("waited in a busy worker's ring"));
        }
    }
}

#[test]
fn darc_model_replans_live_and_reports_its_time() {
    let opts = options(
        Policy::DarcModel(DarcParams {
            samples_needed: 50,
            plan: psp_scheduler::PlanMode::Model,
            ..DarcParams::default()
        }),
        3,
    );
    let mut run = start(opts, Duration::ZERO);
    let requests = mixed_requests(300);
    run.client.send(&requests);
    let got = run.client.collect(300);
    let (_, report) = run.stop();
    assert_eq!(got.len(), 300, "{report}");
    let d = &report.dispatcher;
    // The bootstrap switch at least: one re-plan by the model, its plan applied.
    assert!(d.scheduler.darc_model_replans >= 1, "{report}");
    assert!(d.plan_updates >= 1, "{report}");
    // Two groups on 3 workers: 2 candidate allocations per re-plan (more if overloaded).
    assert!(d.scheduler.darc_model_candidates >= 2 * d.scheduler.darc_model_replans);
    assert!(d.model_replan_ns_max > 0 && d.model_replan_ns_total >= d.model_replan_ns_max);
    assert!(report.to_string().contains("model planner: "), "{report}");
}

#[test]
fn darc_switches_and_writes_the_windows_log() {
    let dir = std::env::temp_dir().join(format!("psp-windows-{}", std::process::id()));
    let path = ServerOptions::windows_log_path(&dir, "test-label");
    let mut opts = options(
        Policy::Darc(DarcParams {
            samples_needed: 50,
            ..DarcParams::default()
        }),
        3,
    );
    opts.windows_log = Some(path.clone());
    let mut run = start(opts, Duration::ZERO);
    let requests = mixed_requests(300);
    run.client.send(&requests);
    let got = run.client.collect(300);
    let (_, report) = run.stop();
    assert_eq!(got.len(), 300, "{report}");
    assert!(report.dispatcher.plan_updates >= 1, "{report}");
    let text = std::fs::read_to_string(&path).expect("windows log written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(WINDOWS_HEADER));
    let first: Vec<&str> = lines.next().expect("a window row").split('\t').collect();
    assert_eq!(first.len(), 9);
    assert_eq!(first[0], "0");
    assert_eq!(first[7], "1");
    assert_eq!(report.windows_log_path.as_deref(), Some(path.as_path()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_drains_queued_and_in_flight_requests() {
    let mut run = start(options(Policy::Cfcfs, 1), Duration::from_micros(300));
    let requests: Vec<(u32, u32)> = (0..20).map(|i| (i, 1)).collect();
    run.client.send(&requests);
    // One response means the dispatcher has read the burst holding all 20.
    let mut got = run.client.collect(1);
    run.shutdown.store(true, Ordering::Release);
    let missing = 20 - got.len();
    got.extend(run.client.collect(missing));
    let (_, report) = run.stop();
    assert_eq!(got.len(), 20, "{report}");
    assert_eq!(report.dispatcher.abandoned_at_shutdown, 0);
    assert_eq!(report.dispatcher.final_queued, 0);
}

#[test]
fn misconfigurations_are_errors() {
    let mut cpus = options(Policy::Cfcfs, 2);
    cpus.worker_cpus = vec![0];
    assert!(matches!(
        Server::new(cpus),
        Err(ServerError::WorkerCpus { .. })
    ));
    // Too few TX queues on the port.
    let (_a, b) = pair(&MemPortConfig::with_queues(1));
    let server = Server::new(options(Policy::Cfcfs, 2)).expect("valid");
    let handler = TestHandler {
        spin: Duration::ZERO,
    };
    let result = server.run(
        b,
        WireTypeClassifier,
        vec![handler.clone(), handler],
        Arc::new(AtomicBool::new(true)),
    );
    assert!(matches!(result, Err(ServerError::Queues { .. })));
}

#[test]
fn serves_over_kernel_udp() {
    let workers = 2;
    let port = UdpPort::bind(&UdpPortConfig::new(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        workers as u16 + 1,
    ))
    .expect("bind");
    let server_addr = port.local_addr();
    let mut opts = options(Policy::Cfcfs, workers);
    opts.ip = *server_addr.ip();
    opts.udp_port = server_addr.port();
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server = std::thread::spawn(move || {
        let handler = TestHandler {
            spin: Duration::ZERO,
        };
        Server::new(opts)?.run(port, WireTypeClassifier, vec![handler; workers], flag)
    });
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut answered = std::collections::HashSet::new();
    let deadline = Instant::now() + RESPONSE_WAIT;
    let mut payload = [0u8; 16];
    for id in 0..50u32 {
        payload[0..4].copy_from_slice(&id.to_le_bytes());
        payload[4..8].copy_from_slice(&1u32.to_le_bytes());
        payload[8..12].copy_from_slice(&4u32.to_le_bytes());
        client.send_to(&payload, server_addr).expect("send");
    }
    let mut reply = [0u8; 64];
    while answered.len() < 50 && Instant::now() < deadline {
        if let Ok((n, from)) = client.recv_from(&mut reply) {
            assert_eq!(from, SocketAddr::V4(server_addr));
            assert_eq!(n, 12, "12-byte response payload");
            answered.insert(u32::from_le_bytes([reply[0], reply[1], reply[2], reply[3]]));
        }
    }
    shutdown.store(true, Ordering::Release);
    let report = server.join().expect("server thread").expect("server ran");
    assert_eq!(answered.len(), 50, "{report}");
    assert_eq!(report.requests_served(), 50);
}

#[test]
fn report_prints_a_summary_table() {
    let mut run = start(options(Policy::Sjf, 2), Duration::ZERO);
    run.client.send(&mixed_requests(30));
    assert_eq!(run.client.collect(30).len(), 30);
    let (_, report) = run.stop();
    let text = report.to_string();
    eprintln!("{text}");
    assert!(text.starts_with("server: policy sjf"));
    for needle in ["SHORT", "LONG", "worker", "busy %", "port: rx 30 tx 30"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// A server YAML (reference schema + `psp:` extensions) → options → a run with the configured
/// application (echo: the whole 16-byte payload comes back) and MAC.
#[test]
fn runs_from_a_server_yaml_with_the_configured_app() {
    let yaml = "
cpus: [0, 0, 0]
net_workers:
  - {ip: 10.0.0.1, port: 6789, dp: SJF, is_echo: 0}
network: {device_id: 0, mac: '42:00:00:00:00:01'}
requests:
  - {type: SHORT, mean_ns: 1000, ratio: 0.5}
  - {type: LONG, mean_ns: 100000, ratio: 0.5}
workers: {number: 2, type: MB}
psp: {idle: yield, app: echo, drain_timeout_ms: 500}
";
    let config = crate::config::ServerConfig::from_yaml_str(yaml).expect("valid YAML");
    let mut options = ServerOptions::from_config(&config, "yaml-test");
    assert_eq!(options.idle, IdleStrategy::Yield);
    assert_eq!(options.drain_timeout, Duration::from_millis(500));
    assert_eq!(options.dispatcher_cpu, Some(0));
    assert_eq!(options.worker_cpus, vec![0, 0]);
    assert!(options.windows_log.is_none(), "no log_dir, no windows log");
    // CPU 0 may not be ours on a CI runner: pinning has its own test.
    options.dispatcher_cpu = None;
    options.worker_cpus.clear();
    let factory = crate::app::AppFactory::new(&config.app);
    let (mut a, b) = pair(&MemPortConfig::with_queues(3));
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server =
        std::thread::spawn(move || Server::new(options)?.run_with_factory(b, &factory, flag));
    let mut client = Client::new(
        &mut a,
        3,
        // The configured MAC, not the memory port's own.
        MacAddr([0x42, 0, 0, 0, 0, 1]),
    );
    client.send(&mixed_requests(40));
    let got = client.collect(40);
    shutdown.store(true, Ordering::Release);
    let report = server.join().expect("server thread").expect("server ran");
    assert_eq!(got.len(), 40, "{report}");
    assert!(got.iter().all(|(_, r)| r.payload_len == 16), "echo app");
    assert_eq!(report.policy, "sjf");
}

#[test]
fn arp_requests_for_our_ip_are_answered_on_queue_zero() {
    use crate::wire::{arp, build_arp_request, parse_arp, MIN_FRAME_LEN};
    let mut run = start(options(Policy::Cfcfs, 1), Duration::ZERO);
    let mut frames = Vec::new();
    for target in [SERVER_IP, Ipv4Addr::new(10, 0, 0, 99)] {
        let mut buf = run.client.tx.alloc().expect("buffer");
        buf.set_len(MIN_FRAME_LEN).expect("fits");
        let len = build_arp_request(buf.data_mut(), &run.client.me, target).expect("build");
        buf.set_len(len).expect("fits");
        frames.push(buf);
    }
    run.client.send_frames(frames);
    let mut replies = Vec::new();
    let deadline = Instant::now() + RESPONSE_WAIT;
    while replies.is_empty() && Instant::now() < deadline {
        if run.client.rx[0].rx_burst(&mut replies, 8) == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    // Serving goes on after ARP.
    run.client.send(&mixed_requests(10));
    assert_eq!(run.client.collect(10).len(), 10);
    let (_, report) = run.stop();
    assert_eq!(replies.len(), 1, "{report}");
    let reply = parse_arp(replies[0].data()).expect("ARP reply");
    assert_eq!(reply.operation, arp::Operation::Reply);
    assert_eq!(reply.source_protocol_addr, SERVER_IP);
    assert_eq!(reply.source_hardware_addr, run_server_mac());
    assert_eq!(
        reply.target_hardware_addr,
        MacAddr(crate::port::memory::DEFAULT_MAC_A)
    );
    assert_eq!(report.dispatcher.arp_replies, 1);
    assert_eq!(
        report.dispatcher.parse_drops.get(DropReason::ArpNotForUs),
        1,
        "the request for another IP is counted, not answered"
    );
}

/// The server side's MAC in `start` (side B of the default pair).
fn run_server_mac() -> MacAddr {
    MacAddr(crate::port::memory::DEFAULT_MAC_B)
}

#[test]
fn drain_timeout_bounds_shutdown_and_counts_abandoned_requests() {
    let mut opts = options(Policy::Cfcfs, 1);
    opts.drain_timeout = Duration::from_millis(20);
    // 10 requests of 10 ms each cannot drain in 20 ms.
    let mut run = start(opts, Duration::from_millis(10));
    run.client
        .send(&(0..10).map(|i| (i, 1)).collect::<Vec<_>>());
    assert!(!run.client.collect(1).is_empty(), "a first response");
    let stop_started = Instant::now();
    let (_, report) = run.stop();
    assert!(
        stop_started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        stop_started.elapsed()
    );
    let d = &report.dispatcher;
    assert!(d.abandoned_at_shutdown > 0, "{report}");
    assert_eq!(
        d.per_type[0].arrivals,
        d.completed + d.abandoned_at_shutdown,
        "{report}"
    );
    // A request in flight at the deadline is answered by its worker, so it is not abandoned
    // too (it was counted twice: answered and abandoned).
    assert_eq!(
        report.responses_sent() + d.abandoned_at_shutdown,
        d.per_type[0].arrivals,
        "{report}"
    );
}

/// Under random drops, corruptions and truncations on the server's RX, every frame that
/// reaches the dispatcher is either answered once or counted as a parse drop.
#[test]
fn faulty_link_every_frame_answered_or_counted() {
    use crate::port::fault::{FaultPlan, FaultPort};
    let workers = 2;
    let (mut a, b) = pair(&MemPortConfig::with_queues(workers as u16 + 1));
    let server_mac = MacAddr(b.mac());
    let faulty = FaultPort::new(
        b,
        FaultPlan {
            drop_one_in: 10,
            corrupt_one_in: 4,
            truncate_one_in: 10,
            seed: 7,
        },
    );
    let faults = faulty.counters();
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server = std::thread::spawn(move || {
        let handler = TestHandler {
            spin: Duration::ZERO,
        };
        Server::new(options(Policy::Sjf, workers))?.run(
            faulty,
            WireTypeClassifier,
            vec![handler; workers],
            flag,
        )
    });
    let mut client = Client::new(&mut a, workers as u16 + 1, server_mac);
    client.send(&mixed_requests(500));
    // Count raw frames: a corrupted source address makes a response unparseable for us.
    let mut frames = 0u64;
    let mut bufs = Vec::with_capacity(64);
    let deadline = Instant::now() + RESPONSE_WAIT;
    let mut last_seen = Instant::now();
    while Instant::now() < deadline && last_seen.elapsed() < QUIET_PERIOD {
        let mut any = false;
        for rx in &mut client.rx {
            let n = rx.rx_burst(&mut bufs, 64);
            frames += n as u64;
            any |= n > 0;
            bufs.clear();
        }
        if any {
            last_seen = Instant::now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    shutdown.store(true, Ordering::Release);
    let report = server.join().expect("server thread").expect("server ran");
    let d = &report.dispatcher;
    let dropped_by_link = faults.dropped.load(Ordering::Relaxed);
    assert!(dropped_by_link > 0 && faults.corrupted.load(Ordering::Relaxed) > 0);
    assert_eq!(d.rx_packets, 500 - dropped_by_link, "{report}");
    assert!(d.parse_drops.total_drops() > 0, "{report}");
    assert_eq!(
        d.rx_packets,
        d.completed + d.parse_drops.total_drops(),
        "{report}"
    );
    assert_eq!(frames, d.completed, "one response per served request");
    assert_balanced(&report);
}

/// A client that stops reading its responses (the original C++ client aborting with a full
/// memif ring) fills the worker's TX queue: SIGINT must still stop the server, promptly, with
/// the responses it could not send counted.
#[test]
fn stop_completes_when_the_peer_stops_reading() {
    const REQUESTS: u32 = 40;
    let config = MemPortConfig {
        ring_slots: 8,
        ..MemPortConfig::with_queues(2)
    };
    let (mut a, b): (MemPort, MemPort) = pair(&config);
    let mut client = Client::new(&mut a, 2, MacAddr(b.mac()));
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let handler = TestHandler {
            spin: Duration::ZERO,
        };
        let result = Server::new(options(Policy::Cfcfs, 1))
            .and_then(|server| server.run(b, WireTypeClassifier, vec![handler], flag));
        let _ = done_tx.send(result);
    });
    // Requests in bursts the 8-slot ring takes; responses are never read.
    for chunk in (0..REQUESTS).collect::<Vec<_>>().chunks(4) {
        let burst: Vec<(u32, u32)> = chunk.iter().map(|&id| (id, 1)).collect();
        client.send(&burst);
    }
    // Wait (bounded) until the server has read them all.
    let deadline = Instant::now() + RESPONSE_WAIT;
    while a.stats().tx_packets < u64::from(REQUESTS) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(QUIET_PERIOD);
    shutdown.store(true, Ordering::Release);
    let report = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server stops although its TX queue stays full")
        .expect("server ran");
    let worker = &report.workers[0];
    assert_eq!(worker.requests, u64::from(REQUESTS), "{report}");
    assert_eq!(worker.tx_packets, 8, "the ring's 8 slots: {report}");
    assert_eq!(worker.tx_dropped, u64::from(REQUESTS) - 8, "{report}");
    assert_balanced(&report);
}

/// Frames still in the RX queue when the server stops are read, freed and counted, never lost
/// silently.
#[test]
fn frames_left_in_the_rx_queue_at_stop_are_counted() {
    let (mut a, b): (MemPort, MemPort) = pair(&MemPortConfig::with_queues(2));
    let mut client = Client::new(&mut a, 2, MacAddr(b.mac()));
    client.send(&mixed_requests(50));
    // Stopped before it starts: the 50 requests are still in the RX queue.
    let report = Server::new(options(Policy::Cfcfs, 1))
        .expect("valid")
        .run(
            b,
            WireTypeClassifier,
            vec![TestHandler {
                spin: Duration::ZERO,
            }],
            Arc::new(AtomicBool::new(true)),
        )
        .expect("server ran");
    assert_eq!(report.dispatcher.rx_packets, 0, "{report}");
    assert_eq!(report.dispatcher.rx_left_at_stop, 50, "{report}");
    assert_eq!(report.drops_before_dispatcher(), 50);
    assert!(
        report.to_string().contains("left in rx queue at stop 50"),
        "{report}"
    );
    assert_balanced(&report);
}

/// The config's memory estimate bounds a pending slot by [`crate::config::PENDING_SLOT_BYTES`].
#[test]
fn pending_slot_estimate_covers_a_parked_job() {
    let slot = std::mem::size_of::<Option<worker::Job<crate::port::pool::PoolBuf>>>()
        + std::mem::size_of::<u32>();
    assert!(
        slot as u64 <= crate::config::PENDING_SLOT_BYTES,
        "{slot} B per slot"
    );
}

/// Absurd sizes given through the library API are errors too, not allocation aborts.
#[test]
fn absurd_option_sizes_are_errors() {
    let mut burst = options(Policy::Cfcfs, 1);
    burst.rx_burst = 1_000_000_000_000;
    assert!(matches!(
        Server::new(burst),
        Err(ServerError::Invalid {
            field: "rx_burst",
            ..
        })
    ));
    let mut slots = options(Policy::Cfcfs, 1);
    slots.pending_slots = u32::MAX as usize;
    assert!(matches!(
        Server::new(slots),
        Err(ServerError::Invalid {
            field: "pending_slots",
            ..
        })
    ));
}

/// The stage histograms cover every request, add up to the RX→TX time (the timestamps
/// telescope), and the spin app in clock mode takes what each request asked for.
#[test]
fn stage_histograms_add_up() {
    let workers = 2;
    let (mut a, b): (MemPort, MemPort) = pair(&MemPortConfig::with_queues(workers as u16 + 1));
    let mut client = Client::new(&mut a, workers as u16 + 1, MacAddr(b.mac()));
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server = std::thread::spawn(move || {
        let app = crate::app::SpinApp::with_clock(Clock::start(), 1_000_000);
        Server::new(options(Policy::Cfcfs, workers))?.run(
            b,
            WireTypeClassifier,
            vec![app; workers],
            flag,
        )
    });
    let run_ns = |ty: u32| if ty == 1 { 20_000 } else { 200_000 };
    let requests = mixed_requests(90);
    let frames = requests
        .iter()
        .map(|&(id, ty)| client.request_frame_running(id, ty, run_ns(ty)))
        .collect();
    client.send_frames(frames);
    let got = client.collect(requests.len());
    shutdown.store(true, Ordering::Release);
    let report = server.join().expect("server thread").expect("server ran");
    assert_eq!(got.len(), 90, "{report}");

    let rows = report.stage_rows();
    for (name, h) in &rows {
        assert_eq!(h.count(), 90, "stage {name}");
    }
    let sum_of_stages: u64 = rows[..5].iter().map(|(_, h)| h.sum_ns()).sum();
    let rx_to_tx = rows[5].1.sum_ns();
    let gap = sum_of_stages.abs_diff(rx_to_tx) as f64 / rx_to_tx as f64;
    assert!(
        gap < 0.01,
        "stages {sum_of_stages} ns vs rx→tx {rx_to_tx} ns"
    );

    let service = report.service_rows();
    assert_eq!(service.len(), 2, "{report}");
    for row in &service {
        let asked = if row.name == "SHORT" {
            20_000.0
        } else {
            200_000.0
        };
        assert_eq!(row.requested_mean_ns, asked, "{}", row.name);
        assert!(
            row.measured.mean_ns() >= asked * 0.99,
            "{} {report}",
            row.name
        );
        assert_eq!(row.reference_ns("spin"), Some(asked));
    }
    let json = report.to_json();
    assert_eq!(json["stages"]["service"]["count"], 90);
    assert_eq!(json["service"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["rx_packets"], 90);
    let text = report.to_string();
    assert!(
        text.contains("rx_to_tx") && text.contains("requested us"),
        "{text}"
    );
}

/// A handler slower than the configured means is named in the warnings, with the figures.
#[test]
fn service_far_from_the_configured_mean_is_warned_of() {
    let mut run = start(options(Policy::Cfcfs, 1), Duration::from_micros(30));
    let requests: Vec<(u32, u32)> = (0..20).map(|i| (i, 1)).collect();
    run.client.send(&requests);
    let got = run.client.collect(requests.len());
    let (_, report) = run.stop();
    assert_eq!(got.len(), 20);
    let warnings = report.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("type SHORT: measured service")
                && w.contains("1.00 µs configured")),
        "{warnings:?}"
    );
    assert!(report.to_string().contains("WARNING: type SHORT"));
}

mod step;
mod telemetry;
mod ts;
