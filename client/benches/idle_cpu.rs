//! How much of a core the client's engine thread uses at a modest rate, per idle policy, and
//! what that costs in send lag and measured latency (issue #12's target: `--idle yield` at
//! 10 krps under 30 % of a core on the 2-core machine). Prints one line per (port, policy);
//! not a criterion bench (each line is a whole open-loop run), and no timed assertion.
//!
//! Ports: kernel UDP on 127.0.0.1 against a blocking echo socket thread (the kernel stamps
//! arrivals, so `yield` sleeps until the next send like `sleep`), and the in-memory pair with
//! two RX queues against a polling echo thread (a polled device like DPDK memif: `yield` naps
//! while requests are in flight). CPU is the engine thread's own user + system time
//! (`cpu-time`'s `ThreadTime`), wall is the run's, drain included. The context-switch columns
//! explain it: on the 2-core VM each wait that blocks costs some 25–40 µs of the thread's CPU
//! time (and wakes about as late), so at 10 krps (100 µs mean gap) the waits, not the system
//! calls, are most of the CPU; `preempted` counts the UDP echo thread taking the engine's core
//! when the engine's `sendto` wakes it. A first line times short sleeps of the bench's own
//! thread and prints what one wait costs this machine and the floor it sets for a punctual
//! sender at the rate: 1 − exp(−cost × rate) of a core (each exponential gap costs at least
//! min(gap, cost): a shorter gap is spun, a longer one waited for), so that figures from
//! different runs and machines can be compared with it.
//!
//! Run: `cargo bench -p psp-client --bench idle_cpu` (optionally `-- RATE_RPS SECONDS`,
//! default 10000 and 3, and words that pick rows: `udp`, `memory`, `spin`, `yield`, `sleep`;
//! e.g. `-- udp yield` to profile one row).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use psp_client::engine::{self, EngineConfig, IdlePolicy};
use psp_net::port::memory::{pair, MemPortConfig};
use psp_net::port::udp::{UdpPort, UdpPortConfig};
use psp_net::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_net::wire::{self, Endpoint, MacAddr};
use psp_workload::Workload;

/// Default offered rate (requests/s): the 10 krps.
const DEFAULT_RATE_RPS: f64 = 10_000.0;
/// Default seconds per run.
const DEFAULT_RUN_S: f64 = 3.0;
/// Longest an echo thread runs.
const ECHO_LIMIT: Duration = Duration::from_secs(120);
/// Sleeps timed before the rows, to show what one wait costs this machine.
const PROBE_SLEEPS: u32 = 2_000;
/// Length of each probe sleep (µs): about the gaps of the default rate.
const PROBE_SLEEP_US: u64 = 50;
/// Bytes of a Perséphone response (what the UDP echo returns).
const RESPONSE_LEN: usize = 12;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut numbers = args.iter().filter_map(|a| a.parse::<f64>().ok());
    let rate_rps = numbers.next().unwrap_or(DEFAULT_RATE_RPS);
    let run_s = numbers.next().unwrap_or(DEFAULT_RUN_S);
    // Words pick rows (cargo bench passes `--bench`, which picks nothing).
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| a.parse::<f64>().is_err() && !a.starts_with('-'))
        .collect();
    let picked = |port: &str, policy: IdlePolicy| {
        let policy = policy_name(policy);
        let ports = ["udp", "memory"];
        let policies = ["spin", "yield", "sleep"];
        (!words.iter().any(|w| ports.contains(w)) || words.contains(&port))
            && (!words.iter().any(|w| policies.contains(w)) || words.contains(&policy.as_str()))
    };
    let workload = Workload::from_yaml_str(
        "idle_cpu",
        &format!(
            "- {{mean_ns: [1000, 100000], ratios: [.5, .5], rtype: [SHORT, LONG], \
             duration: {run_s}}}"
        ),
    )
    .expect("workload");
    println!("idle_cpu: {rate_rps} rps for {run_s} s; CPU = engine thread user+sys / wall");
    let (cost_us, late_us) = probe_wait_cost();
    // A punctual sender pays min(gap, cost) per exponential gap at best (it spins a gap
    // shorter than a wait costs): 1 - exp(-cost × rate) of a core.
    let floor = 1.0 - (-cost_us * 1e-6 * rate_rps).exp();
    println!(
        "a {PROBE_SLEEP_US} µs sleep here costs the thread {cost_us:.1} µs of CPU and wakes \
         {late_us:.1} µs late: a punctual sender's floor at this rate is about {:.0} % of a core",
        100.0 * floor
    );
    println!("port     idle   cpu_share  sent   received  waits/req  preempted/req  send_lag_p50_us  send_lag_p99_us  latency_p50_us  latency_p99_us");
    for policy in [IdlePolicy::Spin, IdlePolicy::Yield, IdlePolicy::Sleep] {
        if picked("udp", policy) {
            udp_point(&workload, rate_rps, policy);
        }
    }
    for policy in [IdlePolicy::Spin, IdlePolicy::Yield, IdlePolicy::Sleep] {
        if picked("memory", policy) {
            memory_point(&workload, rate_rps, policy);
        }
    }
}

/// Context switches of the calling thread so far, as `(voluntary, involuntary)`: its waits
/// that blocked, and the times another thread took its core (on the 2-core VM each costs
/// some 10–30 µs of the thread's CPU time); 0 where `/proc/thread-self/status` cannot be read.
fn context_switches() -> (u64, u64) {
    (
        switches_of_kind("voluntary_ctxt_switches:"),
        switches_of_kind("nonvoluntary_ctxt_switches:"),
    )
}

/// The `kind` line of `/proc/thread-self/status`.
fn switches_of_kind(kind: &str) -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .map(|status| {
            status
                .lines()
                .filter(|l| l.starts_with(kind))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The mean CPU time (µs) one short sleep costs this thread, and how late (µs) it wakes, with
/// the timer slack the engine sets for its idle waits.
fn probe_wait_cost() -> (f64, f64) {
    #[cfg(target_os = "linux")]
    let previous_slack = nix::sys::prctl::get_timerslack().ok();
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_timerslack(engine::IDLE_TIMER_SLACK_NS as _);
    let sleep = Duration::from_micros(PROBE_SLEEP_US);
    let cpu = ThreadTime::now();
    let mut late = Duration::ZERO;
    for _ in 0..PROBE_SLEEPS {
        let started = Instant::now();
        thread::sleep(sleep);
        late += started.elapsed().saturating_sub(sleep);
    }
    #[cfg(target_os = "linux")]
    if let Some(slack) = previous_slack.and_then(|ns| u64::try_from(ns).ok()) {
        let _ = nix::sys::prctl::set_timerslack(slack as _);
    }
    let per_sleep_us = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(PROBE_SLEEPS);
    (per_sleep_us(cpu.elapsed()), per_sleep_us(late))
}

/// The policy as its command-line word.
fn policy_name(policy: IdlePolicy) -> String {
    format!("{policy:?}").to_lowercase()
}

/// Runs `workload` over `port` with `config` on this thread and prints its line.
fn measure<P: Port>(
    label: &str,
    port: &mut P,
    workload: &Workload,
    rate_rps: f64,
    config: &EngineConfig,
) {
    let switches = context_switches();
    let cpu = ThreadTime::now();
    let wall = Instant::now();
    let r = engine::run(port, workload, &[rate_rps], config, None).expect("run");
    let cpu_s = cpu.elapsed().as_secs_f64();
    let wall_s = wall.elapsed().as_secs_f64();
    let (waits, preempted) = context_switches();
    let per_request = |n: u64| n as f64 / r.counters.sent.max(1) as f64;
    let lag = psp_client::report::percentiles(&r.send_lag_ns, 0, 1.0);
    let latency = r.stats.latency();
    println!(
        "{label:<8} {:<6} {:>8.1} %  {:>6} {:>9} {:>9.2} {:>13.2} {:>16.1} {:>16.1} {:>15.1} {:>15.1}",
        policy_name(config.idle),
        100.0 * cpu_s / wall_s,
        r.counters.sent,
        r.counters.received,
        per_request(waits.saturating_sub(switches.0)),
        per_request(preempted.saturating_sub(switches.1)),
        lag.p50 / 1e3,
        lag.p99 / 1e3,
        latency.p50 / 1e3,
        latency.p99 / 1e3,
    );
}

fn udp_point(workload: &Workload, rate_rps: f64, policy: IdlePolicy) {
    let echo = UdpSocket::bind("127.0.0.1:0").expect("echo socket");
    echo.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let SocketAddr::V4(server) = echo.local_addr().expect("addr") else {
        unreachable!("bound to 127.0.0.1")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let echo_thread = thread::Builder::new()
        .name("echo".into())
        .spawn(move || {
            let started = Instant::now();
            let mut buf = [0u8; 2048];
            while !echo_stop.load(Ordering::Relaxed) && started.elapsed() < ECHO_LIMIT {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    if n >= RESPONSE_LEN {
                        let _ = echo.send_to(&buf[..RESPONSE_LEN], from);
                    }
                }
            }
        })
        .expect("echo thread");
    let mut port = UdpPort::bind(&UdpPortConfig::new(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        1,
    ))
    .expect("client socket");
    let local_addr = port.local_addr();
    let local = Endpoint::new(MacAddr(port.mac()), *local_addr.ip(), local_addr.port());
    let target = Endpoint::new(MacAddr([0; 6]), *server.ip(), server.port());
    let mut config = EngineConfig::new(local, vec![target]);
    config.idle = policy;
    measure("udp", &mut port, workload, rate_rps, &config);
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().expect("echo thread");
}

fn memory_point(workload: &Workload, rate_rps: f64, policy: IdlePolicy) {
    let (mut client, mut server) = pair(&MemPortConfig::with_queues(2));
    let server_addr = Endpoint::new(MacAddr(server.mac()), Ipv4Addr::new(10, 0, 0, 1), 6789);
    let client_addr = Endpoint::new(MacAddr(client.mac()), Ipv4Addr::new(10, 0, 0, 2), 40000);
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let mut rx = server.take_rx(0).expect("rx");
    // Answers on queue 1, like a Perséphone worker over memif.
    let mut tx = server.take_tx(1).expect("tx");
    let echo_thread = thread::Builder::new()
        .name("echo".into())
        .spawn(move || {
            let started = Instant::now();
            let mut bufs = Vec::with_capacity(64);
            while !echo_stop.load(Ordering::Relaxed) && started.elapsed() < ECHO_LIMIT {
                if rx.rx_burst(&mut bufs, 64) == 0 {
                    thread::sleep(Duration::from_micros(20));
                    continue;
                }
                for buf in bufs.iter_mut() {
                    let len = wire::build_response_in_place(buf.data_mut());
                    buf.set_len(len).expect("response fits");
                }
                while !bufs.is_empty() {
                    tx.tx_burst(&mut bufs);
                }
            }
        })
        .expect("echo thread");
    let mut config = EngineConfig::new(client_addr, vec![server_addr]);
    config.idle = policy;
    measure("memory", &mut client, workload, rate_rps, &config);
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().expect("echo thread");
}
