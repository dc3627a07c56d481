//! What send rate one client core sustains, and its send lag, over the in-memory port pair
//! against an echo thread (the second core). Prints one line per offered rate; not a criterion
//! bench (each point is a whole open-loop run).
//!
//! Run: `cargo bench -p psp-client --bench send_rate` (optionally `-- 2.0` for seconds per point).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use psp_client::engine::{Engine, EngineConfig, IdlePolicy};
use psp_client::report::{percentiles, sum_histograms};
use psp_net::port::memory::{pair, MemPortConfig};
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{self, Endpoint, MacAddr};
use psp_workload::Workload;

/// Offered rates tried (requests/s).
const RATES_RPS: [f64; 8] = [
    50_000.0,
    100_000.0,
    200_000.0,
    400_000.0,
    800_000.0,
    1_600_000.0,
    3_200_000.0,
    6_400_000.0,
];
/// Default seconds per point.
const DEFAULT_POINT_S: f64 = 1.0;
/// Longest the echo thread runs.
const ECHO_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    let point_s: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_POINT_S);
    let workload = Workload::from_yaml_str(
        "send_rate",
        &format!("- {{mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: {point_s}}}"),
    )
    .expect("workload");
    let (mut client, mut server) = pair(&MemPortConfig::with_queues(1));
    let server_addr = Endpoint::new(MacAddr(server.mac()), Ipv4Addr::new(10, 0, 0, 1), 6789);
    let client_addr = Endpoint::new(MacAddr(client.mac()), Ipv4Addr::new(10, 0, 0, 2), 40000);
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let mut rx = server.take_rx(0).expect("rx");
    let mut tx = server.take_tx(0).expect("tx");
    let echo = thread::spawn(move || {
        let started = Instant::now();
        let mut bufs = Vec::with_capacity(64);
        while !echo_stop.load(Ordering::Relaxed) && started.elapsed() < ECHO_LIMIT {
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
    let mut engine = Engine::new(&mut client).expect("engine");
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
    for (idle, rate) in [IdlePolicy::Spin, IdlePolicy::Yield]
        .into_iter()
        .flat_map(|idle| RATES_RPS.map(|rate| (idle, rate)))
    {
        let mut config = EngineConfig::new(client_addr, vec![server_addr]);
        config.idle = idle;
        config.drain_timeout_ns = 500_000_000;
        let r = engine.run(&workload, &[rate], &config, None).expect("run");
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
    stop.store(true, Ordering::Relaxed);
    echo.join().expect("echo thread");
}
