//! What send rate one client core sustains, and its send lag, over the in-memory port pair
//! against an echo thread (the second core). Prints one line per offered rate; not a criterion
//! bench (each point is a whole open-loop run).
//!
//! Run: `cargo bench -p psp-client --bench send_rate` (optionally `-- 2.0` for seconds per point).
//!
//! `-- --threads N`: N client threads ([`ThreadedEngine`]), each with its own port pair and echo
//! thread (2N cores), the rate split among them and the results merged: the issue's "≥ 8 Mrps
//! with 4 threads on a ≥ 16-core machine" (rates up to 12.8 Mrps are tried).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use psp_client::engine::{Engine, EngineConfig, IdlePolicy, RunResult, ThreadedEngine};
use psp_client::report::{percentiles, sum_histograms};
use psp_net::port::memory::{pair, MemPortConfig};
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{self, Endpoint, MacAddr};
use psp_workload::Workload;

/// Offered rates tried (requests/s); with threads, also 12.8 Mrps.
const RATES_RPS: [f64; 9] = [
    50_000.0,
    100_000.0,
    200_000.0,
    400_000.0,
    800_000.0,
    1_600_000.0,
    3_200_000.0,
    6_400_000.0,
    12_800_000.0,
];
/// Default seconds per point.
const DEFAULT_POINT_S: f64 = 1.0;
/// Longest the echo thread runs.
const ECHO_LIMIT: Duration = Duration::from_secs(120);

fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The server's address every thread sends to (the in-memory pair does not filter by MAC).
const SERVER: Endpoint = Endpoint::new(MacAddr([2, 0, 0, 0, 0, 1]), SERVER_IP, 6789);

/// A port pair whose server side an echo thread answers (requests to [`SERVER`]) until `stop`:
/// the client side and the echo thread.
fn echo_pair(stop: Arc<AtomicBool>) -> (psp_net::port::memory::MemPort, thread::JoinHandle<()>) {
    let (client, mut server) = pair(&MemPortConfig::with_queues(1));
    let server_addr = SERVER;
    let mut rx = server.take_rx(0).expect("rx");
    let mut tx = server.take_tx(0).expect("tx");
    let echo = thread::spawn(move || {
        let started = Instant::now();
        let mut bufs = Vec::with_capacity(64);
        while !stop.load(Ordering::Relaxed) && started.elapsed() < ECHO_LIMIT {
            if rx.rx_burst(&mut bufs, 64) == 0 {
                thread::yield_now();
                continue;
            }
            for buf in bufs.iter_mut() {
                if wire::parse_request(buf.data(), &server_addr).is_ok() {
                    let len = wire::build_response_in_place(buf.data_mut());
                    let _ = buf.set_len(len);
                }
            }
            while !bufs.is_empty() {
                tx.tx_burst(&mut bufs);
            }
        }
    });
    (client, echo)
}

/// One point: a run at a rate (one thread's engine, or the threads').
type RunPoint = dyn FnMut(&EngineConfig, f64) -> RunResult;

fn main() {
    let point_s: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_POINT_S);
    let threads: usize = arg_value("--threads")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .max(1);
    let workload = Workload::from_yaml_str(
        "send_rate",
        &format!("- {{mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: {point_s}}}"),
    )
    .expect("workload");
    let stop = Arc::new(AtomicBool::new(false));
    let (mut run, echos): (Box<RunPoint>, _) = if threads == 1 {
        let (mut client, echo) = echo_pair(Arc::clone(&stop));
        let client_addr = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, 40000);
        let mut engine = Engine::new(&mut client).expect("engine");
        let workload = workload.clone();
        let run = move |base: &EngineConfig, rate: f64| {
            let mut config = base.clone();
            config.local = client_addr;
            engine.run(&workload, &[rate], &config, None).expect("run")
        };
        (Box::new(run), vec![echo])
    } else {
        let echos = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (echo_list, echo_stop) = (Arc::clone(&echos), Arc::clone(&stop));
        let mut engine = ThreadedEngine::spawn(threads, move |i| {
            let (client, echo) = echo_pair(Arc::clone(&echo_stop));
            echo_list.lock().map_err(|e| e.to_string())?.push(echo);
            let local = Endpoint::new(MacAddr(client.mac()), CLIENT_IP, 40000 + i as u16);
            Ok((client, local))
        })
        .expect("threads");
        let workload = workload.clone();
        let run = move |config: &EngineConfig, rate: f64| {
            engine.run(&workload, &[rate], config, None).expect("run")
        };
        let handles = std::mem::take(&mut *echos.lock().expect("echos"));
        (Box::new(run), handles)
    };
    println!("client threads: {threads}");
    println!(
        "{:>6} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12} {:>12} {:>14} {:>12}",
        "idle",
        "rate_rps",
        "offered_rps",
        "achieved_rps",
        "sent",
        "unanswered",
        "lag_p50_ns",
        "lag_p99_ns",
        "behind_sched",
        "lat_p99_ns"
    );
    let rates = if threads == 1 {
        &RATES_RPS[..8]
    } else {
        &RATES_RPS[..]
    };
    for (idle, &rate) in [IdlePolicy::Spin, IdlePolicy::Yield]
        .into_iter()
        .flat_map(|idle| rates.iter().map(move |rate| (idle, rate)))
    {
        let placeholder = Endpoint::new(MacAddr([0; 6]), CLIENT_IP, 40000);
        let mut config = EngineConfig::new(placeholder, vec![SERVER]);
        config.idle = idle;
        config.drain_timeout_ns = 500_000_000;
        let r = run(&config, rate);
        let lag = percentiles(&r.send_lag_ns, 0, 1.0);
        let latency = sum_histograms(r.stats.types().iter().map(|t| t.latency_histogram()));
        let lat = percentiles(&latency, r.stats.unanswered(), 1.0);
        println!(
            "{:>6} {:>10.0} {:>12.0} {:>12.0} {:>10} {:>10} {:>12.0} {:>12.0} {:>14} {:>12.0}",
            format!("{idle:?}").to_lowercase(),
            rate,
            r.phases[0].offered_rps(),
            r.phases[0].achieved_rps(),
            r.counters.sent,
            r.counters.unanswered,
            lag.p50,
            lag.p99,
            r.counters.behind_schedule,
            lat.p99
        );
    }
    drop(run);
    stop.store(true, Ordering::Relaxed);
    for echo in echos {
        echo.join().expect("echo thread");
    }
}
