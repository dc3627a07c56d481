//! The engine end to end over real ports: the in-memory pair against an echo thread (answering
//! on another queue, like a Perséphone worker over memif), a faulty responder (drops,
//! duplicates, junk, unknown ids), and kernel UDP on 127.0.0.1 against a socket echo thread.
//! Loads are small and every loop is bounded in time.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use psp_client::engine::{self, EngineConfig, IdlePolicy, Progress};
use psp_client::report::{write_run_files, Report};
use psp_net::port::memory::{pair, MemPort, MemPortConfig};
use psp_net::port::udp::{UdpPort, UdpPortConfig};
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{self, Endpoint, MacAddr};
use psp_workload::Workload;

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER_PORT: u16 = 6789;
const CLIENT_PORT: u16 = 40000;
/// Longest any responder thread runs (safety bound).
const RESPONDER_LIMIT: Duration = Duration::from_secs(20);

fn workload(duration_s: f64) -> Workload {
    Workload::from_yaml_str(
        "bimodal",
        &format!(
            "- {{mean_ns: [1000, 10000], ratios: [.8, .2], rtype: [SHORT, LONG], duration: {duration_s}}}"
        ),
    )
    .unwrap()
}

/// What the responder does to the i-th request (0-based).
#[derive(Clone, Copy, Default)]
struct Faults {
    /// Never answer every n-th request.
    drop_every: Option<u64>,
    /// Answer every n-th request twice.
    duplicate_every: Option<u64>,
    /// Send a junk frame and a response with an unknown id every n-th request.
    junk_every: Option<u64>,
    /// Hold back the response to every n-th request until no request came for
    /// [`HOLD_RELEASE_IDLE`] (after the client's drain: a late answer).
    hold_every: Option<u64>,
}

/// How long a [`Faults::hold_every`] responder waits without requests before releasing.
const HOLD_RELEASE_IDLE: Duration = Duration::from_millis(100);

/// Every request accounted for: `sent = received + late + unanswered` overall, per class, for
/// all and for measured requests; the classes add up to the counters; the measured late and
/// never answered requests are the +∞ of the percentiles; the report agrees.
fn assert_accounted(r: &engine::RunResult) {
    let c = &r.counters;
    assert!(c.balanced(), "{c:?}");
    let mut all = engine::Outcomes::default();
    let mut measured = engine::Outcomes::default();
    for class in &r.classes {
        assert!(
            class.all.balanced() && class.measured.balanced(),
            "{class:?}"
        );
        all.add(&class.all);
        measured.add(&class.measured);
    }
    assert_eq!(all, c.outcomes());
    assert_eq!(measured.sent, c.sent - c.warmup, "{c:?}");
    assert_eq!(measured.infinite(), r.stats.unanswered(), "{measured:?}");
    assert_eq!(measured.received, r.stats.completed());
    let w = workload(0.01);
    let summary = Report::from_run("t", &w, 1, None, r).summary();
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
}

/// Answers requests arriving on B's RX queue 0 on B's TX queue `reply_queue`.
fn responder(
    mut port: MemPort,
    reply_queue: u16,
    faults: Faults,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    let local = Endpoint::new(MacAddr(port.mac()), SERVER_IP, SERVER_PORT);
    let mut rx = port.take_rx(0).unwrap();
    let mut tx = port.take_tx(reply_queue).unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut bufs = Vec::with_capacity(32);
        let mut out = Vec::with_capacity(128);
        let mut held = Vec::new();
        let mut last_request = Instant::now();
        let mut seen = 0u64;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < RESPONDER_LIMIT {
            if rx.rx_burst(&mut bufs, 32) == 0 {
                if !held.is_empty() && last_request.elapsed() > HOLD_RELEASE_IDLE {
                    while !held.is_empty() {
                        tx.tx_burst(&mut held);
                    }
                }
                thread::yield_now();
                continue;
            }
            last_request = Instant::now();
            for mut buf in bufs.drain(..) {
                if wire::parse_request(buf.data(), &local).is_err() {
                    continue;
                }
                let i = seen;
                seen += 1;
                let len = wire::build_response_in_place(buf.data_mut());
                buf.set_len(len).unwrap();
                if faults.junk_every.is_some_and(|n| i.is_multiple_of(n)) {
                    let mut junk = tx.alloc().unwrap();
                    junk.set_len(30).unwrap();
                    junk.data_mut().fill(0xab);
                    out.push(junk);
                    let mut unknown = tx.alloc().unwrap();
                    unknown.set_len(len).unwrap();
                    unknown.data_mut().copy_from_slice(buf.data());
                    // Flip the top generation bit: an id the client never issued.
                    let mut message = wire::psp::Message::new_unchecked(
                        &mut unknown.data_mut()[wire::PAYLOAD_OFFSET..],
                    );
                    message.set_req_id(message.req_id() ^ 0x8000_0000);
                    out.push(unknown);
                }
                if faults.duplicate_every.is_some_and(|n| i.is_multiple_of(n)) {
                    let mut copy = tx.alloc().unwrap();
                    copy.set_len(len).unwrap();
                    copy.data_mut().copy_from_slice(buf.data());
                    out.push(copy);
                }
                if faults.drop_every.is_some_and(|n| i.is_multiple_of(n)) {
                    continue;
                }
                if faults.hold_every.is_some_and(|n| i.is_multiple_of(n)) {
                    held.push(buf);
                    continue;
                }
                out.push(buf);
            }
            while !out.is_empty() {
                tx.tx_burst(&mut out);
            }
        }
        seen
    })
}

/// The in-memory pair (two queues a side) with a [`responder`] on B answering on queue 1:
/// returns A (the client's port), the responder's stop flag and its thread.
fn mem_pair_with_responder(faults: Faults) -> (MemPort, Arc<AtomicBool>, thread::JoinHandle<u64>) {
    let (client, server) = pair(&MemPortConfig::with_queues(2));
    let stop = Arc::new(AtomicBool::new(false));
    let handle = responder(server, 1, faults, Arc::clone(&stop));
    (client, stop, handle)
}

/// An engine config from `client` (`CLIENT_IP:CLIENT_PORT`) to the pair's B side
/// (`SERVER_IP:SERVER_PORT`, B's default MAC).
fn config_to_mem_server(client: &MemPort) -> EngineConfig {
    let local = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, CLIENT_PORT);
    let target = Endpoint::new(
        MacAddr(MemPortConfig::default().mac_b),
        SERVER_IP,
        SERVER_PORT,
    );
    EngineConfig::new(local, vec![target])
}

fn mem_run(faults: Faults, requests_per_s: f64, duration_s: f64) -> (engine::RunResult, u64) {
    let (mut client, stop, handle) = mem_pair_with_responder(faults);
    let mut config = config_to_mem_server(&client);
    config.seed = 42;
    config.drain_timeout_ns = 200_000_000;
    let progress = Progress::default();
    let w = workload(duration_s);
    let result = engine::run(&mut client, &w, &[requests_per_s], &config, Some(&progress)).unwrap();
    assert!(progress.done.load(Ordering::Relaxed));
    assert_eq!(progress.sent.load(Ordering::Relaxed), result.counters.sent);
    stop.store(true, Ordering::Relaxed);
    let seen = handle.join().unwrap();
    (result, seen)
}

#[test]
fn memory_pair_every_request_answered_on_worker_queue() {
    let (r, seen) = mem_run(Faults::default(), 20_000.0, 0.05);
    let c = &r.counters;
    assert!(c.planned > 700, "{c:?}");
    assert_eq!(c.sent, c.planned);
    assert_eq!(seen, c.sent);
    assert_eq!(c.received, c.sent, "{c:?}");
    assert_eq!(c.unanswered, 0);
    assert_eq!(
        c.duplicate + c.late + c.unknown_id + c.malformed + c.mismatched,
        0,
        "{c:?}"
    );
    assert_eq!(c.warmup, (c.planned as f64 * 0.1).ceil() as u64);
    assert_eq!(c.untraced, 0, "tracing is off");
    assert_eq!(r.stats.completed(), c.received - c.warmup);
    let latency = r.stats.latency();
    assert!(latency.p999.is_finite() && latency.p50 > 0.0, "{latency:?}");
    assert_eq!(r.classes.iter().map(|k| k.all.sent).sum::<u64>(), c.sent);
    assert!(r.classes[0].all.sent > r.classes[1].all.sent);
    assert_accounted(&r);
    let phase = &r.phases[0];
    assert!(
        phase.offered_rps() > 10_000.0 && phase.offered_rps() < 30_000.0,
        "{phase:?}"
    );
    assert_eq!(r.send_lag_ns.len(), c.sent);
}

#[test]
fn faulty_responder_is_counted_never_crashes_and_lost_requests_are_infinite() {
    let faults = Faults {
        drop_every: Some(50),
        duplicate_every: Some(7),
        junk_every: Some(11),
        ..Faults::default()
    };
    let (r, seen) = mem_run(faults, 20_000.0, 0.05);
    let c = &r.counters;
    // Every 50th is not answered, except every 350th, whose duplicate stands in for it.
    let dropped = seen.div_ceil(50) - seen.div_ceil(350);
    assert_eq!(seen, c.sent);
    assert_eq!(c.unanswered, dropped, "{c:?}");
    assert_eq!(c.received, c.sent - dropped);
    assert_eq!(
        c.duplicate,
        seen.div_ceil(7) - seen.div_ceil(7 * 50),
        "{c:?}"
    );
    assert_eq!(c.unknown_id, seen.div_ceil(11), "{c:?}");
    assert_eq!(c.malformed, seen.div_ceil(11), "{c:?}");
    // 2 % never answered: p99 and beyond are +∞, the median is not.
    let latency = r.stats.latency();
    assert!(
        latency.p99.is_infinite() && latency.p50.is_finite(),
        "{latency:?}"
    );
    assert_eq!(latency.infinite, r.stats.unanswered());
    assert_accounted(&r);
}

#[test]
fn answers_after_the_drain_count_late_not_lost() {
    let faults = Faults {
        hold_every: Some(20),
        ..Faults::default()
    };
    let (mut client, stop, handle) = mem_pair_with_responder(faults);
    let mut config = config_to_mem_server(&client);
    config.drain_timeout_ns = 20_000_000;
    config.late_listen_ns = 2_000_000_000;
    let r = engine::run(&mut client, &workload(0.05), &[10_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = handle.join().unwrap();
    let c = &r.counters;
    assert_eq!(seen, c.sent);
    assert_eq!(c.late, seen.div_ceil(20), "{c:?}");
    assert_eq!(c.unanswered, 0, "{c:?}");
    assert_eq!(c.received + c.late, c.sent, "{c:?}");
    assert_eq!(c.duplicate + c.unknown_id, 0, "{c:?}");
    // Late answers stay +∞: the client had given up on them.
    assert!(r.stats.latency().p99.is_infinite());
    assert_accounted(&r);
}

#[test]
fn same_seed_same_schedule() {
    let (a, _) = mem_run(Faults::default(), 10_000.0, 0.02);
    let (b, _) = mem_run(Faults::default(), 10_000.0, 0.02);
    assert_eq!(a.counters.planned, b.counters.planned);
    let sent = |r: &engine::RunResult| r.classes.iter().map(|c| c.all.sent).collect::<Vec<_>>();
    assert_eq!(sent(&a), sent(&b));
}

#[test]
fn traces_hold_every_measured_request_up_to_the_limit() {
    let (mut client, stop, handle) = mem_pair_with_responder(Faults::default());
    let mut config = config_to_mem_server(&client);
    config.trace_limit = 100_000;
    let mut engine = engine::Engine::new(&mut client).unwrap();
    let w = workload(0.02);
    let r = engine.run(&w, &[20_000.0], &config, None).unwrap();
    let c = &r.counters;
    assert_eq!(r.traces.len() as u64, c.sent - c.warmup);
    assert!(r
        .traces
        .iter()
        .all(|t| t.sent_ns >= t.intended_ns && t.completed_ns >= t.sent_ns));
    assert!(r
        .traces
        .windows(2)
        .all(|w| w[0].intended_ns <= w[1].intended_ns));
    config.trace_limit = 10;
    let r = engine.run(&w, &[20_000.0], &config, None).unwrap();
    assert_eq!(r.traces.len(), 10);
    assert_eq!(
        r.counters.untraced,
        r.counters.sent - r.counters.warmup - 10
    );
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn multi_phase_run_reports_each_phase_and_logs_a_time_series() {
    let (mut client, stop, handle) = mem_pair_with_responder(Faults::default());
    let config = config_to_mem_server(&client);
    // Like sched4: the same type names with other means in each phase.
    let w = Workload::from_yaml_str(
        "phases",
        "- {mean_ns: [100000, 1000], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 0.02}\n\
         - {mean_ns: [1000, 100000], ratios: [.9, .1], rtype: [SHORT, LONG], duration: 0.02}\n",
    )
    .unwrap();
    let r = engine::run(&mut client, &w, &[10_000.0, 20_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    assert_eq!(r.phase_stats.len(), 2);
    assert_eq!(
        r.phase_stats.iter().map(|p| p.completed()).sum::<u64>(),
        r.stats.completed()
    );
    assert!(r.phases[1].sent > r.phases[0].sent);
    let report = Report::from_run("phases", &w, 1, None, &r);
    let dir = std::env::temp_dir().join(format!("psp-client-phases-{}", std::process::id()));
    let summary = write_run_files(&dir, &report).unwrap();
    let phase_counts: Vec<u64> = summary
        .phases
        .iter()
        .map(|p| p.latency_ns.as_ref().unwrap().count)
        .collect();
    assert_eq!(phase_counts.iter().sum::<u64>(), summary.latency_ns.count);
    // One interval per (phase, type); summing them per type gives the run's histograms.
    let log = std::fs::read_to_string(dir.join("latency.hlog")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("Tag=SHORT,")).count(),
        2,
        "{log}"
    );
    let summed = psp_client::merge::read_interval_log(&dir.join("latency.hlog")).unwrap();
    for t in r.stats.types() {
        assert_eq!(summed[&t.name].len(), t.latency_histogram().len());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_engine_runs_several_points() {
    let (mut client, stop, handle) = mem_pair_with_responder(Faults::default());
    let config = config_to_mem_server(&client);
    let mut engine = engine::Engine::new(&mut client).unwrap();
    assert_eq!(engine.rx_queue_count(), 2);
    let w = workload(0.02);
    let mut total = 0;
    for rate in [5_000.0, 20_000.0] {
        let r = engine.run(&w, &[rate], &config, None).unwrap();
        assert_eq!(r.counters.received, r.counters.sent, "{:?}", r.counters);
        assert_eq!(r.counters.unknown_id, 0);
        total += r.counters.sent;
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(handle.join().unwrap(), total);
}

#[test]
fn stale_responses_of_an_earlier_run_never_match_a_later_one() {
    let (mut client, mut server) = pair(&MemPortConfig::with_queues(1));
    let server_local = Endpoint::new(MacAddr(server.mac()), SERVER_IP, SERVER_PORT);
    let local = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, CLIENT_PORT);
    let mut config = EngineConfig::new(local, vec![server_local]);
    config.drain_timeout_ns = 1_000_000;
    let mut engine = engine::Engine::new(&mut client).unwrap();
    // Run 1: nobody answers.
    let first = engine
        .run(&workload(0.01), &[20_000.0], &config, None)
        .unwrap();
    assert_eq!(first.counters.unanswered, first.counters.sent);
    assert_accounted(&first);
    let mut rx = server.take_rx(0).unwrap();
    let mut tx = server.take_tx(0).unwrap();
    let mut stale = Vec::new();
    while rx.rx_burst(&mut stale, 64) > 0 {}
    for buf in stale.iter_mut() {
        let len = wire::build_response_in_place(buf.data_mut());
        buf.set_len(len).unwrap();
    }
    let stale_count = stale.len() as u64;
    assert_eq!(stale_count, first.counters.sent);
    // Run 2: answer everything, and replay run 1's responses once its ids are reused.
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let echo = thread::spawn(move || {
        let started = Instant::now();
        let mut bufs = Vec::with_capacity(32);
        let mut echoed = 0;
        while !echo_stop.load(Ordering::Relaxed) && started.elapsed() < RESPONDER_LIMIT {
            if rx.rx_burst(&mut bufs, 32) == 0 {
                thread::yield_now();
                continue;
            }
            for buf in bufs.iter_mut() {
                let len = wire::build_response_in_place(buf.data_mut());
                buf.set_len(len).unwrap();
                echoed += 1;
            }
            while !bufs.is_empty() {
                tx.tx_burst(&mut bufs);
            }
            if echoed >= 2 * stale.len() && !stale.is_empty() {
                while !stale.is_empty() {
                    tx.tx_burst(&mut stale);
                }
            }
        }
    });
    config.drain_timeout_ns = 200_000_000;
    let second = engine
        .run(&workload(0.05), &[20_000.0], &config, None)
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    let c = &second.counters;
    assert_eq!(c.received, c.sent, "{c:?}");
    assert_eq!(c.unknown_id, stale_count, "{c:?}");
    assert_eq!(c.duplicate + c.late + c.mismatched, 0, "{c:?}");
    assert_accounted(&second);
}

#[test]
fn max_concurrency_skips_send_slots() {
    // A responder that never answers: with at most 5 in flight, everything after is skipped.
    let (mut client, _server) = pair(&MemPortConfig::with_queues(1));
    let mut config = config_to_mem_server(&client);
    config.max_concurrency = Some(5);
    config.drain_timeout_ns = 10_000_000;
    config.warmup_fraction = 0.0;
    let r = engine::run(&mut client, &workload(0.01), &[20_000.0], &config, None).unwrap();
    let c = &r.counters;
    assert_eq!(c.sent, 5);
    assert_eq!(c.skipped, c.planned - 5);
    assert_eq!(c.unanswered, 5);
    assert!(r.stats.latency().p50.is_infinite());
    assert_accounted(&r);
}

#[test]
fn bad_arguments_are_refused_before_sending() {
    let (mut client, _server) = pair(&MemPortConfig::with_queues(1));
    let local = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, CLIENT_PORT);
    let w = workload(0.01);
    let no_target = EngineConfig::new(local, vec![]);
    assert!(engine::run(&mut client, &w, &[1000.0], &no_target, None).is_err());
    let config = EngineConfig::new(local, vec![local]);
    let e = engine::run(&mut client, &w, &[-3.0], &config, None).unwrap_err();
    assert!(e.to_string().contains("-3"), "{e}");
    assert!(engine::run(&mut client, &w, &[1.0, 2.0], &config, None).is_err());
    let ix = Workload::from_yaml_str(
        "ix",
        "- {mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: 0.01, ptype: IX}",
    )
    .unwrap();
    let e = engine::run(&mut client, &ix, &[1000.0], &config, None).unwrap_err();
    assert!(
        e.to_string().contains("Ix") && e.to_string().contains("PSP_MB"),
        "{e}"
    );
    let e = engine::run(&mut client, &w, &[1e12], &config, None).unwrap_err();
    assert!(e.to_string().contains("requests"), "{e}");
    assert_eq!(client.stats().tx_packets, 0);
}

/// A kernel UDP echo server: returns the first 12 bytes (the Perséphone response) of each
/// datagram to its sender.
fn udp_echo(stop: Arc<AtomicBool>) -> (SocketAddrV4, thread::JoinHandle<u64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = match socket.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let handle = thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < RESPONDER_LIMIT {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if n >= 12 && socket.send_to(&buf[..12], from).is_ok() {
                    answered += 1;
                }
            }
        }
        answered
    });
    (addr, handle)
}

/// A kernel UDP port on 127.0.0.1 and an engine configuration aimed at a [`udp_echo`] server
/// (drain 0.5 s), and the echo thread, which stops when `stop` is set and returns how many
/// requests it answered.
fn udp_port_against_echo(
    stop: &Arc<AtomicBool>,
) -> (UdpPort, EngineConfig, thread::JoinHandle<u64>) {
    let (server, handle) = udp_echo(Arc::clone(stop));
    let port = UdpPort::bind(&UdpPortConfig::new(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        1,
    ))
    .unwrap();
    let local_addr = port.local_addr();
    let local = Endpoint::new(MacAddr(port.mac()), *local_addr.ip(), local_addr.port());
    let target = Endpoint::new(MacAddr([0; 6]), *server.ip(), server.port());
    let mut config = EngineConfig::new(local, vec![target]);
    config.drain_timeout_ns = 500_000_000;
    (port, config, handle)
}

#[test]
fn kernel_udp_against_echo_server_on_loopback() {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut port, config, handle) = udp_port_against_echo(&stop);
    let r = engine::run(&mut port, &workload(0.05), &[5_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = handle.join().unwrap();
    let c = &r.counters;
    assert!(c.sent > 150, "{c:?}");
    assert_eq!(answered, c.sent);
    assert_eq!(c.received, c.sent, "{c:?}");
    assert_eq!(c.malformed + c.unknown_id, 0, "{c:?}");
    assert!(r.stats.latency().p99.is_finite());
}

#[test]
fn kernel_udp_receive_times_are_arrival_stamps_under_every_idle_policy() {
    for idle in [IdlePolicy::Spin, IdlePolicy::Yield, IdlePolicy::Sleep] {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut port, mut config, handle) = udp_port_against_echo(&stop);
        config.idle = idle;
        config.warmup_fraction = 0.0;
        config.trace_limit = 10_000;
        let mut engine = engine::Engine::new(&mut port).unwrap();
        assert!(engine.arrivals_stamped(), "a kernel socket stamps arrivals");
        let r = engine
            .run(&workload(0.03), &[5_000.0], &config, None)
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        let answered = handle.join().unwrap();
        let c = &r.counters;
        assert!(c.sent > 50, "{idle:?}: {c:?}");
        assert_eq!(answered, c.sent, "{idle:?}");
        assert_eq!(c.received, c.sent, "{idle:?}: {c:?}");
        assert!(c.balanced(), "{idle:?}: {c:?}");
        assert_eq!(r.traces.len() as u64, c.sent, "{idle:?}");
        // A response arrives after its request's intended send time and before the run ends,
        // whenever the engine got round to reading it.
        for t in &r.traces {
            assert!(t.completed_ns >= t.intended_ns, "{idle:?}: {t:?}");
            assert!(t.completed_ns <= r.ended_ns, "{idle:?}: {t:?}");
        }
    }
}

#[test]
fn polled_queues_do_not_stamp_arrivals() {
    let (mut client, _server) = pair(&MemPortConfig::with_queues(2));
    let engine = engine::Engine::new(&mut client).unwrap();
    assert!(!engine.arrivals_stamped());
}

/// A [`ThreadedEngine`] whose thread `i` sends from its own kernel UDP socket on 127.0.0.1.
fn udp_threads(threads: usize) -> engine::ThreadedEngine {
    engine::ThreadedEngine::spawn(threads, |_| {
        let port = UdpPort::bind(&UdpPortConfig::new(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            1,
        ))
        .map_err(|e| e.to_string())?;
        let a = port.local_addr();
        let local = Endpoint::new(MacAddr(port.mac()), *a.ip(), a.port());
        Ok((port, local))
    })
    .unwrap()
}

#[test]
fn threads_over_udp_split_the_rate_and_merge_exactly() {
    let stop = Arc::new(AtomicBool::new(false));
    let (server, handle) = udp_echo(Arc::clone(&stop));
    let mut threads = udp_threads(3);
    let locals: std::collections::HashSet<u16> = threads.locals().iter().map(|l| l.port).collect();
    assert_eq!(locals.len(), 3, "each thread has its own source port");
    let target = Endpoint::new(MacAddr([0; 6]), *server.ip(), server.port());
    let mut config = EngineConfig::new(threads.locals()[0], vec![target]);
    config.drain_timeout_ns = 500_000_000;
    config.trace_limit = 100;
    let w = workload(0.1);
    let progress = engine::Progress::default();
    let first = threads
        .run(&w, &[6_000.0], &config, Some(&progress))
        .unwrap();
    // A second point on the same threads: ids continue, nothing stale matches.
    let second = threads.run(&w, &[3_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = handle.join().unwrap();
    for r in [&first, &second] {
        assert_accounted(r);
        let c = &r.counters;
        assert_eq!(c.received, c.sent, "{c:?}");
        assert_eq!(c.malformed + c.unknown_id + c.duplicate, 0, "{c:?}");
        assert_eq!(r.phases[0].sent, c.sent);
        assert!(r
            .traces
            .windows(2)
            .all(|t| t[0].intended_ns <= t[1].intended_ns));
        assert!(r.traces.len() <= 100);
    }
    assert_eq!(answered, first.counters.sent + second.counters.sent);
    assert_eq!(progress.sent.load(Ordering::Relaxed), first.counters.sent);
    assert_eq!(
        progress.planned.load(Ordering::Relaxed),
        first.counters.planned
    );
    // The per-thread rates add up to the total; the merged stream has the total's count
    // (600 expected at 6 krps for 0.1 s: well within 5 sigma).
    assert!((first.phases[0].rate_rps - 6_000.0).abs() < 1e-6);
    assert!(
        (450..=750).contains(&first.counters.planned),
        "{:?}",
        first.counters
    );
}

#[test]
fn one_thread_is_the_single_threaded_client() {
    let stop = Arc::new(AtomicBool::new(false));
    let (server, handle) = udp_echo(Arc::clone(&stop));
    let mut threads = udp_threads(1);
    let target = Endpoint::new(MacAddr([0; 6]), *server.ip(), server.port());
    let mut config = EngineConfig::new(threads.locals()[0], vec![target]);
    config.drain_timeout_ns = 500_000_000;
    config.seed = 42;
    let w = workload(0.05);
    let threaded = threads.run(&w, &[4_000.0], &config, None).unwrap();
    let mut port = UdpPort::bind(&UdpPortConfig::new(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        1,
    ))
    .unwrap();
    let a = port.local_addr();
    config.local = Endpoint::new(MacAddr(port.mac()), *a.ip(), a.port());
    let single = engine::run(&mut port, &w, &[4_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    assert_eq!(threaded.counters.planned, single.counters.planned);
    assert_eq!(threaded.counters.warmup, single.counters.warmup);
}

#[test]
fn a_thread_that_cannot_open_its_port_is_named() {
    let e = engine::ThreadedEngine::spawn(2, |i| {
        if i == 1 {
            return Err("no such device".to_string());
        }
        let port = UdpPort::bind(&UdpPortConfig::new(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            1,
        ))
        .map_err(|e| e.to_string())?;
        let a = port.local_addr();
        let local = Endpoint::new(MacAddr(port.mac()), *a.ip(), a.port());
        Ok((port, local))
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("thread 1") && e.contains("no such device"),
        "{e}"
    );
}

/// Merging two runs is exact: counts add, and every histogram is the bucket-wise sum.
#[test]
fn merged_results_are_the_exact_sum_of_the_threads() {
    let (a, _) = mem_run(Faults::default(), 4_000.0, 0.05);
    let (b, _) = mem_run(
        Faults {
            drop_every: Some(9),
            ..Faults::default()
        },
        6_000.0,
        0.05,
    );
    let mut sum = a.stats.latency_histogram();
    sum.add(b.stats.latency_histogram()).unwrap();
    let mut lag = a.send_lag_ns.clone();
    lag.add(&b.send_lag_ns).unwrap();
    let (sent, unanswered) = (
        a.counters.sent + b.counters.sent,
        a.counters.unanswered + b.counters.unanswered,
    );
    let merged = engine::threads::merge_results(vec![a, b], 0).unwrap();
    assert_eq!(merged.stats.latency_histogram(), sum);
    assert_eq!(merged.send_lag_ns, lag);
    assert_eq!(
        (merged.counters.sent, merged.counters.unanswered),
        (sent, unanswered)
    );
    assert!(unanswered > 0, "the second run lost some");
    assert_accounted(&merged);
}

/// A server that reads requests on every one of its RX queues and answers each on the next of
/// its TX queues in turn, whatever queue the request came on: responses land on any client RX
/// queue, as psp-app's workers' do over memif.
fn scattering_responder(mut port: MemPort, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let local = Endpoint::new(MacAddr(port.mac()), SERVER_IP, SERVER_PORT);
    let mut rxs: Vec<_> = (0..port.rx_queue_count())
        .filter_map(|q| port.take_rx(q))
        .collect();
    let mut txs: Vec<_> = (0..port.tx_queue_count())
        .filter_map(|q| port.take_tx(q))
        .collect();
    thread::spawn(move || {
        let started = Instant::now();
        let mut bufs = Vec::with_capacity(32);
        let mut answered = 0u64;
        while !stop.load(Ordering::Relaxed) && started.elapsed() < RESPONDER_LIMIT {
            let mut any = false;
            for rx in &mut rxs {
                if rx.rx_burst(&mut bufs, 32) == 0 {
                    continue;
                }
                any = true;
                for mut buf in bufs.drain(..) {
                    if wire::parse_request(buf.data(), &local).is_err() {
                        continue;
                    }
                    let len = wire::build_response_in_place(buf.data_mut());
                    buf.set_len(len).unwrap();
                    let n = txs.len();
                    let tx = &mut txs[answered as usize % n];
                    let mut one = vec![buf];
                    while !one.is_empty() {
                        tx.tx_burst(&mut one);
                    }
                    answered += 1;
                }
            }
            if !any {
                thread::yield_now();
            }
        }
        answered
    })
}

/// Two client threads sharing one port: thread `i` sends on TX queue `i` and polls the RX
/// queues `q` with `q % 2 == i`; a response that lands on the other thread's queue is forwarded
/// to its owner by the id's tag. Every request is answered once, over two points of a sweep.
#[test]
fn threads_sharing_rx_queues_forward_responses_to_their_owner() {
    let (mut client, server) = pair(&MemPortConfig::with_queues(3));
    let stop = Arc::new(AtomicBool::new(false));
    let handle = scattering_responder(server, Arc::clone(&stop));
    let local = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, CLIENT_PORT);
    let mut shares: Vec<Option<_>> = (0..2u16)
        .map(|i| {
            let tx = client.take_tx(i).unwrap();
            let rxs: Vec<_> = (0..3u16)
                .filter(|q| q % 2 == i)
                .map(|q| client.take_rx(q).unwrap())
                .collect();
            Some((tx, rxs))
        })
        .collect();
    shares.push(None);
    let shares = std::sync::Mutex::new(shares);
    let mut threads = engine::ThreadedEngine::spawn_shared::<MemPort, _>(2, move |i| {
        let (tx, rxs) = shares.lock().unwrap()[i].take().ok_or("taken twice")?;
        Ok((tx, rxs, local))
    })
    .unwrap();
    let target = Endpoint::new(
        MacAddr(MemPortConfig::default().mac_b),
        SERVER_IP,
        SERVER_PORT,
    );
    let mut config = EngineConfig::new(local, vec![target]);
    config.drain_timeout_ns = 500_000_000;
    let w = workload(0.1);
    let first = threads.run(&w, &[8_000.0], &config, None).unwrap();
    let second = threads.run(&w, &[4_000.0], &config, None).unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = handle.join().unwrap();
    for r in [&first, &second] {
        assert_accounted(r);
        let c = &r.counters;
        assert_eq!(c.received, c.sent, "{c:?}");
        assert_eq!(
            c.unknown_id + c.duplicate + c.forward_dropped + c.mismatched,
            0,
            "{c:?}"
        );
    }
    assert_eq!(answered, first.counters.sent + second.counters.sent);
}
