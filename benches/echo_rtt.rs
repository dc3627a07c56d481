//! Echo overhead of psp-app over memif: round trip (p50, p99) and saturation rate of `psp-app`
//! running the `echo` app (dispatcher + scheduler + worker), against a minimal DPDK echo built
//! from the same bindings with no scheduler (`psp-app raw-echo`), in the same run; prints both
//! and their ratios.
//!
//! ```text
//! cargo bench --bench echo_rtt                     # idle = yield (best on 2 cores)
//! cargo bench --bench echo_rtt -- --idle both      # yield, then spin
//! cargo bench --bench echo_rtt -- --rtt-requests 20000 --sat-requests 200000 --window 64
//! cargo bench --bench echo_rtt -- --idle spin --workers 1,2,4 --worker-cpu 2   # saturation per N
//! ```
//! With `--workers LIST`, psp-app is measured once per worker count N, worker i pinned to cpu
//! `--worker-cpu + i` (wrapping over the machine's CPUs), and the table has one row per N.
//! Each measurement is a fresh server process (memif server) and a peer process (`psp-app
//! peer`, memif client) on the other core: first a window of 1 (unloaded round trip), then a
//! window of `--window` outstanding requests (saturation rate). Every child is bounded in time
//! and killed if the bench fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Server MAC, IP and UDP port used by the bench (memif carries any addresses).
const SERVER_MAC: &str = "02:00:00:00:00:01";
const SERVER_IP: &str = "10.0.0.1";
const SERVER_PORT: u16 = 6789;
/// Peer MAC, IP and UDP port.
const PEER_MAC: &str = "02:00:00:00:00:02";
const PEER_IP: &str = "10.0.0.2";
const PEER_PORT: u16 = 40000;
/// The request type sent: SHORT (wire id 1), the only type in the server config.
const ECHO_REQ_TYPE: u32 = 1;
/// How long a server gets to drain and exit after SIGINT before it is killed (a killed
/// DPDK process leaves its runtime directory behind).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of one child process's life.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
/// memif ring size exponent: 2^12 slots (the recommended 14 costs 32 MiB of shared memory per
/// ring; 12 is plenty for a closed-loop peer whose window is far below it).
const MEMIF_RSIZE: u32 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    RawEcho,
    PspApp,
}

#[derive(Debug)]
struct Options {
    idles: Vec<&'static str>,
    rtt_requests: u32,
    sat_requests: u32,
    window: u32,
    /// Worker counts to measure psp-app with.
    workers: Vec<u16>,
    /// CPU of the first worker; worker i runs on `worker_cpu + i` (mod the CPU count).
    worker_cpu: u32,
}

fn parse_options() -> Options {
    let mut options = Options {
        idles: vec!["yield"],
        rtt_requests: 20_000,
        sat_requests: 200_000,
        window: 64,
        workers: vec![1],
        worker_cpu: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--idle" => {
                options.idles = match value.as_str() {
                    "spin" => vec!["spin"],
                    "both" => vec!["yield", "spin"],
                    _ => vec!["yield"],
                };
                i += 1;
            }
            "--rtt-requests" => {
                options.rtt_requests = value.parse().expect("--rtt-requests N");
                i += 1;
            }
            "--sat-requests" => {
                options.sat_requests = value.parse().expect("--sat-requests N");
                i += 1;
            }
            "--window" => {
                options.window = value.parse().expect("--window N");
                i += 1;
            }
            "--worker-cpu" => {
                options.worker_cpu = value.parse().expect("--worker-cpu N");
                i += 1;
            }
            "--workers" => {
                options.workers = value
                    .split(',')
                    .map(|n| n.trim().parse().expect("--workers N[,N...]"))
                    .collect();
                i += 1;
            }
            _ => {} // cargo's own flags (--bench)
        }
        i += 1;
    }
    options
}

/// A directory removed on drop (also when the bench panics).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child killed and reaped on drop.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn eal_args(prefix: &str, role: &str, socket: &Path, lcore: u32) -> Vec<String> {
    vec![
        "--no-huge".into(),
        "-m".into(),
        "256".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level=lib.eal:warning".into(),
        "-l".into(),
        lcore.to_string(),
        "--file-prefix".into(),
        prefix.into(),
        format!(
            "--vdev=net_memif0,role={role},socket={},rsize={MEMIF_RSIZE}",
            socket.display()
        ),
    ]
}

/// The psp-app server config: echo app, c-FCFS, memif server, the given idle strategy. The
/// dispatcher runs on core 0 like the single-threaded raw echo, worker i on `worker_cpu + i`
/// wrapped over the machine's CPUs (default 0 with one worker: both servers get one core and
/// the peer the other).
fn psp_config(dir: &Path, socket: &Path, idle: &str, workers: u16, worker_cpu: u32) -> PathBuf {
    let cpus_online = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let prefix = format!("psp-bench-srv-{}", std::process::id());
    let eal: Vec<String> = eal_args(&prefix, "server", socket, 0)
        .into_iter()
        .map(|arg| format!("'{arg}'"))
        .collect();
    let cpus: Vec<String> = std::iter::once("0".to_string())
        .chain((0..u32::from(workers)).map(|i| ((worker_cpu + i) % cpus_online).to_string()))
        .collect();
    let text = format!(
        "cpus: [{cpus}]\n\
         net_workers:\n  - {{ip: {SERVER_IP}, port: {SERVER_PORT}, dp: CFCFS}}\n\
         network:\n  device_id: 0\n  mac: '{SERVER_MAC}'\n  eal_init: [{eal}]\n\
         requests:\n  - {{type: SHORT, mean_ns: 1000, ratio: 1.0}}\n\
         workers: {{number: {workers}, type: MB}}\n\
         psp:\n  idle: {idle}\n  app: echo\n",
        cpus = cpus.join(", "),
        eal = eal.join(", "),
    );
    let path = dir.join("echo.yml");
    std::fs::write(&path, text).expect("write bench config");
    path
}

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    rtt_p50_ns: u64,
    rtt_p99_ns: u64,
    rate_rps: f64,
}

fn json_u64(report: &serde_json::Value, key: &str) -> u64 {
    report
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

fn run_peer(
    exe: &Path,
    socket: &Path,
    requests: u32,
    window: u32,
    idle: &str,
    tag: &str,
    rx_queues: u16,
) -> serde_json::Value {
    let prefix = format!("psp-bench-peer-{tag}-{}", std::process::id());
    let mut args: Vec<String> = vec![
        "peer".into(),
        "--ip".into(),
        PEER_IP.into(),
        "--port".into(),
        PEER_PORT.to_string(),
        "--mac".into(),
        PEER_MAC.into(),
        "--server-mac".into(),
        SERVER_MAC.into(),
        "--server-ip".into(),
        SERVER_IP.into(),
        "--server-port".into(),
        SERVER_PORT.to_string(),
        "--requests".into(),
        requests.to_string(),
        "--window".into(),
        window.to_string(),
        "--types".into(),
        format!("{ECHO_REQ_TYPE}:0"),
        "--rx-queues".into(),
        // One per server TX queue: memif pairs the server's TX queue i with our RX queue i.
        rx_queues.to_string(),
        "--deadline-s".into(),
        "60".into(),
    ];
    if idle == "spin" {
        args.push("--spin".into());
    }
    args.push("--".into());
    args.extend(eal_args(&prefix, "client", socket, 1));
    let started = Instant::now();
    let output = Command::new(exe)
        .args(&args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run peer");
    assert!(
        started.elapsed() < CHILD_TIMEOUT,
        "peer ran past {CHILD_TIMEOUT:?}"
    );
    assert!(
        output.status.success(),
        "peer failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with('{'))
        .expect("peer JSON report");
    serde_json::from_str(line).expect("peer report is JSON")
}

fn measure(
    exe: &Path,
    target: Target,
    idle: &str,
    workers: u16,
    options: &Options,
) -> Option<Figures> {
    let dir = std::env::temp_dir().join(format!("psp-bench-{}-{target:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let _dir_guard = RemoveOnDrop(dir.clone());
    let socket = dir.join("memif.sock");
    let server_args: Vec<String> = match target {
        Target::RawEcho => {
            let prefix = format!("psp-bench-raw-{}", std::process::id());
            let mut args: Vec<String> = vec![
                "raw-echo".into(),
                "--ip".into(),
                SERVER_IP.into(),
                "--port".into(),
                SERVER_PORT.to_string(),
                "--mac".into(),
                SERVER_MAC.into(),
            ];
            if idle == "spin" {
                args.push("--spin".into());
            }
            args.push("--".into());
            args.extend(eal_args(&prefix, "server", &socket, 0));
            args
        }
        Target::PspApp => {
            let cfg = psp_config(&dir, &socket, idle, workers, options.worker_cpu);
            vec!["--cfg".into(), cfg.display().to_string()]
        }
    };
    let log = std::fs::File::create(dir.join("server.log")).expect("server log");
    let server = Command::new(exe)
        .args(&server_args)
        .env("RUST_BACKTRACE", "0")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn server");
    let mut server = Guard(Some(server));
    // The peer starts once the server waits for its link (memif server socket created).
    let ready = Instant::now();
    while !std::fs::read_to_string(dir.join("server.log"))
        .unwrap_or_default()
        .contains("waiting for the link")
    {
        let exited = server
            .0
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some());
        if exited || ready.elapsed() > CHILD_TIMEOUT {
            eprintln!(
                "{target:?} ({idle}): server not ready:\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let server_tx_queues = match target {
        Target::RawEcho => 1,
        Target::PspApp => 1 + workers,
    };
    let rtt = run_peer(
        exe,
        &socket,
        options.rtt_requests,
        1,
        idle,
        "rtt",
        server_tx_queues,
    );
    let sat = run_peer(
        exe,
        &socket,
        options.sat_requests,
        options.window,
        idle,
        "sat",
        server_tx_queues,
    );
    if let Some(child) = server.0.as_mut() {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < SHUTDOWN_TIMEOUT {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(server);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let answered = json_u64(&rtt, "answered") + json_u64(&sat, "answered");
    if answered == 0 {
        eprintln!("{target:?} ({idle}): no response; server log:\n{log}");
        return None;
    }
    for (phase, report) in [("rtt", &rtt), ("saturation", &sat)] {
        if json_u64(report, "unanswered") > 0 {
            eprintln!(
                "{target:?} ({idle}) {phase}: {} of {} unanswered",
                json_u64(report, "unanswered"),
                json_u64(report, "sent")
            );
        }
    }
    Some(Figures {
        rtt_p50_ns: json_u64(&rtt, "rtt_p50_ns"),
        rtt_p99_ns: json_u64(&rtt, "rtt_p99_ns"),
        rate_rps: sat
            .get("rate_rps")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
    })
}

fn print_row(idle: &str, name: &str, figures: Option<Figures>) {
    match figures {
        Some(f) => println!(
            "{idle:<8} {name:<12} {:>12.2} {:>12.2} {:>14.1}",
            f.rtt_p50_ns as f64 / 1e3,
            f.rtt_p99_ns as f64 / 1e3,
            f.rate_rps / 1e3
        ),
        None => println!("{idle:<8} {name:<12} {:>12} {:>12} {:>14}", "-", "-", "-"),
    }
}

fn main() {
    let options = parse_options();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_psp-app"));
    println!(
        "echo_rtt: memif, {} RTT requests (window 1), {} saturation requests (window {}), psp-app with {:?} worker(s) from cpu {}",
        options.rtt_requests, options.sat_requests, options.window, options.workers, options.worker_cpu
    );
    println!(
        "{:<8} {:<12} {:>12} {:>12} {:>14}",
        "idle", "server", "rtt_p50_us", "rtt_p99_us", "rate_krps"
    );
    for idle in &options.idles {
        let raw = measure(&exe, Target::RawEcho, idle, 0, &options);
        print_row(idle, "raw-echo", raw);
        for &workers in &options.workers {
            let psp = measure(&exe, Target::PspApp, idle, workers, &options);
            print_row(idle, &format!("psp-app N={workers}"), psp);
            if let (Some(raw), Some(psp)) = (raw, psp) {
                println!(
                    "{idle:<8} ratio psp/raw (N={workers}): rtt_p50 {:.2}x, rtt_p99 {:.2}x, rate {:.2}x",
                    psp.rtt_p50_ns as f64 / raw.rtt_p50_ns.max(1) as f64,
                    psp.rtt_p99_ns as f64 / raw.rtt_p99_ns.max(1) as f64,
                    psp.rate_rps / raw.rate_rps.max(1.0)
                );
            }
        }
    }
}
