//! psp-client: the open-loop load generator (Perséphone's client, docs/design.md §5).
//!
//! Reads a client YAML (`-c`, docs/design.md §6.2) and/or a workload file (`--workload`), sends
//! requests to the server(s) given by `--ip/--port` over DPDK (`--transport dpdk`, e.g. memif,
//! feature `dpdk`) or kernel UDP sockets (`--transport udp`, works against any UDP server),
//! and prints a per-type table and the original's final line. With `--collect-logs`, `--outdir`
//! or a sweep, files go to `<log_dir>/<label>/<outdir>` (see `psp_client::report`).
//!
//! Examples (servers from configs/server/memif-demo.yml: `psp-app --cfg … [--udp ADDR]`):
//! ```text
//! psp-client -c configs/client/udp-local.yml -I 127.0.0.1 -P 6789 --transport udp
//! psp-client --workload configs/workloads/DISP2.yml -I 127.0.0.1 -P 6789 --transport udp \
//!            --load-range 0.05:0.25:0.05 --workers 2 --duration 2 --outdir sweep-disp2
//! psp-client -c configs/client/memif-demo.yml -I 192.168.10.10 -P 6789 --workers 2  # memif
//! ```
//! Over memif the client polls `1 + workers` RX queues (`--workers N` or `--rx-queues N+1`).

#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use psp_client::config::{ClientConfig, DEFAULT_REQ_OFFSET};
use psp_client::engine::{
    Engine, EngineConfig, EngineError, IdlePolicy, Progress, RunResult, ThreadedEngine,
    DEFAULT_DRAIN_TIMEOUT_NS,
};
use psp_client::report::{print_summary, write_run_files, Report, Summary};
use psp_client::sweep::{parse_load_range, write_sweep_files, SweepPoint};
use psp_net::port::Port;
use psp_net::wire::{Endpoint, MacAddr};
use psp_workload::Workload;

/// The original's default label (client.cc).
const DEFAULT_LABEL: &str = "rateclient";
/// How often the progress bar refreshes.
const PROGRESS_REFRESH: Duration = Duration::from_millis(200);
/// Most per-request trace records kept with `--sample` ≥ 0 (≈ 48 B each: 192 MiB).
const MAX_TRACE_RECORDS: usize = 4_000_000;
/// `-m -1`: no limit on the requests in flight (the original's default, docs/design.md §5.1).
const UNLIMITED: i64 = -1;
/// A run that got no response this long after its first sends is warned about (issue #12).
const NO_RESPONSE_WARNING_AFTER: Duration = Duration::from_secs(1);
/// How often the watchdog looks at the run's progress and the link.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(20);
/// Exit status when the server was lost: the link went down mid-run, or a run got no response
/// at all (results are still written). Errors in the input or setup exit with 1.
const EXIT_PEER_LOST: u8 = 3;
/// Most client threads (`--threads`).
const MAX_THREADS: u16 = 256;
/// How often `--reconnect` looks at a link that went down.
#[cfg(feature = "dpdk")]
const RELINK_POLL: Duration = Duration::from_millis(10);
/// How long `--reconnect` waits for the link after each restart of the port before the next.
#[cfg(feature = "dpdk")]
const RELINK_ROUND: Duration = Duration::from_millis(500);
/// How long to wait for a DPDK link (a memif client waits for its server).
const DEFAULT_LINK_TIMEOUT_S: f64 = 60.0;

/// What the client does while waiting for the next send time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Idle {
    /// Busy-poll (a core of its own).
    Spin,
    /// Give the core back between sends (UDP: the kernel stamps each response's arrival, so it
    /// sleeps until the next send; DPDK: naps of at most 100 µs while requests are in flight, so
    /// a receive time is at most that late) (default).
    Yield,
    /// Sleep until the next send whatever is in flight: fewest wake-ups (fairest to a server on
    /// the same cores); over DPDK receive times up to one send gap late, over UDP exact (kernel
    /// arrival stamps).
    Sleep,
}

/// Which network path to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// DPDK (memif, PCI NICs): needs `network.eal_init` in the config and the `dpdk` feature.
    Dpdk,
    /// Kernel UDP sockets.
    Udp,
}

/// Open-loop load generator for psp (and any Perséphone-format UDP server).
#[derive(Parser, Debug)]
#[command(name = "psp-client", version)]
struct Args {
    /// Client YAML (Perséphone schema: cpus, network, net_workers, schedules, log_dir).
    #[arg(short = 'c', long = "config-path", value_name = "FILE")]
    config_path: Option<PathBuf>,
    /// Run label (outputs go to <log_dir>/<label>/<outdir>).
    #[arg(short = 'l', long, default_value = DEFAULT_LABEL)]
    label: String,
    /// Server IPv4 address (repeat for several servers, used round-robin).
    #[arg(short = 'I', long = "ip", value_name = "IP", required = true)]
    ip: Vec<Ipv4Addr>,
    /// Server UDP port (one for all servers, or one per --ip).
    #[arg(short = 'P', long = "port", value_name = "PORT", required = true)]
    port: Vec<u16>,
    /// Most requests in flight, N > 0; a send slot that finds this many is skipped (-1, the
    /// default: unlimited).
    #[arg(short = 'm', long = "max-concurrency", default_value_t = UNLIMITED, allow_negative_numbers = true)]
    max_concurrency: i64,
    /// -1: histograms only; 0: also every request in `traces`; N > 0: ~N traces per type.
    #[arg(short = 'S', long, default_value_t = -1, allow_negative_numbers = true)]
    sample: i64,
    /// Write the output files (nonzero; the bare flag means 1).
    #[arg(long = "collect-logs", default_value_t = 0, num_args = 0..=1, default_missing_value = "1")]
    collect_logs: u32,
    /// Output subdirectory (e.g. client0); implies writing the files.
    #[arg(short = 'o', long, value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Wire id of the first type of the config's schedules (1 MB, 5 TPC-C, 10 RocksDB).
    #[arg(long = "req-offset", default_value_t = DEFAULT_REQ_OFFSET)]
    req_offset: u32,
    /// RNG seed: the same seed sends the same requests at the same intended times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override every phase's duration (seconds).
    #[arg(
        short = 'd',
        long,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    duration: Option<f64>,
    /// Override every phase's rate (requests/s).
    #[arg(short = 'r', long, value_name = "RPS", allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Workload file (psp-workload YAML, e.g. configs/workloads/DISP2.yml); replaces the
    /// config's schedules.
    #[arg(long, value_name = "FILE")]
    workload: Option<PathBuf>,
    /// Network path (default: dpdk when the config has network.eal_init, else udp).
    #[arg(long, value_enum)]
    transport: Option<Transport>,
    /// Sweep loads A:B:STEP relative to the capacity of --workers workers.
    #[arg(long = "load-range", value_name = "A:B:STEP", requires = "workers")]
    load_range: Option<String>,
    /// Server workers (the load convention's N; default RX queues 1 + N over DPDK).
    #[arg(long, allow_negative_numbers = true)]
    workers: Option<i64>,
    /// Share of requests (send order) discarded as warm-up.
    #[arg(long, default_value_t = psp_client::engine::DEFAULT_WARMUP_FRACTION, allow_negative_numbers = true)]
    warmup: f64,
    /// Seconds to wait for responses after the last send.
    #[arg(long = "drain-timeout", default_value_t = DEFAULT_DRAIN_TIMEOUT_NS as f64 / 1e9, allow_negative_numbers = true)]
    drain_timeout_s: f64,
    /// Server MAC (overrides network.remote_mac; DPDK only).
    #[arg(long = "server-mac", value_name = "MAC")]
    server_mac: Option<String>,
    /// Local address (UDP: bind address, default net_workers[0] or 0.0.0.0:0; DPDK: source).
    #[arg(long, value_name = "IP:PORT")]
    bind: Option<SocketAddrV4>,
    /// DPDK RX queues to configure and poll (over memif: 1 + the server's workers).
    #[arg(long = "rx-queues", allow_negative_numbers = true)]
    rx_queues: Option<i64>,
    /// Seconds to wait for the DPDK link.
    #[arg(long = "link-timeout", default_value_t = DEFAULT_LINK_TIMEOUT_S, allow_negative_numbers = true)]
    link_timeout_s: f64,
    /// Also verify the IPv4 header checksum of every response (off by default: see
    /// psp_client::engine::CLIENT_PARSE_OPTIONS).
    #[arg(long = "verify-ip-checksum")]
    verify_ip_checksum: bool,
    /// Idle behaviour between sends.
    #[arg(long, value_enum, default_value = "yield")]
    idle: Idle,
    /// Client threads: each sends 1/N of the rate and the results merge exactly; over UDP each
    /// from its own socket (net_workers[i] when the config lists one per thread, else a free
    /// port), over DPDK each on its own TX queue, the RX queues shared (the memif server needs
    /// psp.rx_queues ≥ N); default: one per net_workers entry, at least 1.
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<i64>,
    /// Never show the progress bar.
    #[arg(long = "no-progress")]
    no_progress: bool,
    /// DPDK: when the link goes down mid-run, wait up to --link-timeout for it to come back and
    /// run the interrupted point again (its partial results go to `interrupted-K/`), instead of
    /// stopping with exit code 3.
    #[arg(long)]
    reconnect: bool,
}

impl Args {
    /// `--workers`, once [`check_numbers`] has refused zero and negative counts.
    fn workers(&self) -> Option<usize> {
        self.workers.and_then(|w| usize::try_from(w).ok())
    }

    /// Client threads: `--threads`, else one per `net_workers` entry, at least 1.
    fn threads(&self, config: Option<&ClientConfig>) -> usize {
        self.threads
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or_else(|| config.map_or(1, |c| c.net_workers.len()))
            .max(1)
    }
}

/// Refuses numeric flags out of range before anything is read or sent; each error names the
/// flag and the value given.
fn check_numbers(args: &Args) -> Result<()> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let non_negative = |v: f64| v.is_finite() && v >= 0.0;
    if let Some(r) = args.rate {
        ensure!(
            positive(r),
            "-r/--rate {r}: must be a positive number of requests/s"
        );
    }
    if let Some(d) = args.duration {
        ensure!(
            positive(d),
            "-d/--duration {d}: must be a positive number of seconds"
        );
    }
    ensure!(
        args.max_concurrency == UNLIMITED || args.max_concurrency > 0,
        "-m/--max-concurrency {}: must be a positive number of requests in flight, or -1 for no \
         limit",
        args.max_concurrency
    );
    ensure!(
        args.sample >= -1,
        "-S/--sample {}: must be -1 (histograms only), 0 (every request) or a positive count",
        args.sample
    );
    if let Some(w) = args.workers {
        ensure!(w > 0, "--workers {w}: must be a positive number of workers");
    }
    if let Some(t) = args.threads {
        ensure!(
            (1..=i64::from(MAX_THREADS)).contains(&t),
            "--threads {t}: must be between 1 and {MAX_THREADS}"
        );
    }
    if let Some(q) = args.rx_queues {
        ensure!(
            q > 0 && q <= i64::from(u16::MAX),
            "--rx-queues {q}: must be between 1 and {}",
            u16::MAX
        );
    }
    ensure!(
        (0.0..1.0).contains(&args.warmup),
        "--warmup {}: must be a share in [0, 1)",
        args.warmup
    );
    ensure!(
        non_negative(args.drain_timeout_s),
        "--drain-timeout {}: must be a non-negative number of seconds",
        args.drain_timeout_s
    );
    ensure!(
        non_negative(args.link_timeout_s),
        "--link-timeout {}: must be a non-negative number of seconds",
        args.link_timeout_s
    );
    Ok(())
}

/// What to run: the workload and the per-phase rates of each point.
struct Plan {
    workload: Workload,
    /// `(load, rates)` per point; `load` is `None` outside sweeps.
    points: Vec<(Option<f64>, Vec<f64>)>,
}

fn load_plan(args: &Args, config: Option<&ClientConfig>) -> Result<Plan> {
    let mut workload = match (&args.workload, config) {
        (Some(path), _) => {
            Workload::from_path(path).with_context(|| format!("--workload {}", path.display()))?
        }
        (None, Some(config)) => {
            let name = args
                .config_path
                .as_deref()
                .and_then(Path::file_stem)
                .map_or_else(|| args.label.clone(), |s| s.to_string_lossy().into_owned());
            config
                .workload(&name, args.req_offset)?
                .context("the config has no schedules: add some or give --workload FILE")?
        }
        (None, None) => {
            bail!("nothing to send: give --config-path with schedules or --workload FILE")
        }
    };
    if let Some(d) = args.duration {
        for phase in &mut workload.phases {
            phase.duration_s = d;
        }
    }
    let points = if let Some(range) = &args.load_range {
        let workers = args.workers().context("--load-range needs --workers")?;
        parse_load_range(range)?
            .into_iter()
            .map(|load| (Some(load), workload.rates_for_load(load, workers)))
            .collect()
    } else {
        let rates = workload
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                args.rate.or(p.rate_rps).with_context(|| {
                    format!("phase {i} has no rate: give --rate or --load-range with --workers")
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        vec![(None, rates)]
    };
    Ok(Plan { workload, points })
}

fn targets(args: &Args, mac: MacAddr) -> Result<Vec<Endpoint>> {
    let ports: Vec<u16> = match args.port.len() {
        1 => vec![args.port[0]; args.ip.len()],
        n if n == args.ip.len() => args.port.clone(),
        n => bail!(
            "--port given {n} times for {} --ip: give one port or one per ip",
            args.ip.len()
        ),
    };
    Ok(args
        .ip
        .iter()
        .zip(ports)
        .map(|(&ip, port)| Endpoint::new(mac, ip, port))
        .collect())
}

fn output_dir(args: &Args, config: Option<&ClientConfig>) -> PathBuf {
    let mut dir = config
        .and_then(|c| c.log_dir.as_ref())
        .map(|d| d.join(&args.label))
        .unwrap_or_default();
    if let Some(outdir) = &args.outdir {
        dir = dir.join(outdir);
    }
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(&args.label);
    }
    dir
}

/// What [`run_points`] watches besides the engine's queues.
struct PortWatch<'a> {
    /// The servers, for messages (`10.0.0.1:6789, …`).
    servers: String,
    /// Frames the client's own socket or receive ring dropped so far (cumulative); `None` where
    /// the engine's threads count them themselves.
    rx_dropped: Option<&'a (dyn Fn() -> u64 + Sync)>,
    /// Whether the link is up (DPDK); `None` where there is no link (kernel UDP).
    link_up: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// The points run, and why the server was given up on, if it was.
struct RunOutcome {
    points: Vec<SweepPoint>,
    peer_lost: Option<String>,
}

/// One run of an engine (one thread's [`Engine::run`] or [`ThreadedEngine::run`]).
type RunFn<'a> = dyn FnMut(
        &Workload,
        &[f64],
        &EngineConfig,
        Option<&Progress>,
    ) -> std::result::Result<RunResult, EngineError>
    + 'a;

/// `--reconnect`: brings a link that went down back up; whether it came back in time.
type Relink<'a> = dyn FnMut() -> bool + 'a;

/// Runs every point of the plan on `engine`, printing and writing as it goes. Stops after a
/// point whose link went down or that got no response at all (its results are written); with
/// `--reconnect`, a point whose link went down is run again once the link is back.
fn run_points(
    engine: &mut RunFn<'_>,
    mut relink: Option<&mut Relink<'_>>,
    args: &Args,
    plan: &Plan,
    engine_config: &EngineConfig,
    out_dir: Option<&Path>,
    watch: &PortWatch<'_>,
) -> Result<RunOutcome> {
    let mut points = Vec::new();
    let mut interrupted = 0;
    let mut next = plan.points.iter().peekable();
    while let Some((load, rates)) = next.peek() {
        if let Some(load) = load {
            eprintln!("psp-client: load {load:.3} -> rates {rates:?} rps");
        }
        let result = run_point(engine, args, plan, rates, engine_config, watch)?;
        let peer_lost = peer_lost(&result, watch);
        let relinked = result.stopped_early
            && relink.as_mut().is_some_and(|relink| {
                eprintln!(
                    "psp-client: the link went down: waiting up to {} s for it (--reconnect)",
                    args.link_timeout_s
                );
                relink()
            });
        let mut dir = out_dir.map(|d| match load {
            Some(l) => d.join(format!("load_{l:.3}")),
            None => d.to_path_buf(),
        });
        if relinked {
            interrupted += 1;
            dir = dir.map(|d| d.join(format!("interrupted-{interrupted}")));
        }
        let summary = report_point(args, plan, *load, &result, dir.as_deref())?;
        if relinked {
            eprintln!("psp-client: link up again: running the interrupted point again");
            continue;
        }
        points.push(SweepPoint {
            load: load.unwrap_or(f64::NAN),
            summary,
        });
        next.next();
        if peer_lost.is_some() {
            return Ok(RunOutcome { points, peer_lost });
        }
    }
    Ok(RunOutcome {
        points,
        peer_lost: None,
    })
}

/// One point's run, with the watchdog (and the progress bar on a terminal) beside it.
fn run_point(
    engine: &mut RunFn<'_>,
    args: &Args,
    plan: &Plan,
    rates: &[f64],
    engine_config: &EngineConfig,
    watch: &PortWatch<'_>,
) -> Result<RunResult> {
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let progress = Progress::default();
    let dropped_before = watch.rx_dropped.map(|f| f());
    let mut result = std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| progress_bar(&progress));
        }
        scope.spawn(|| watchdog(&progress, watch));
        let result = engine(&plan.workload, rates, engine_config, Some(&progress));
        progress.done.store(true, Ordering::Relaxed);
        result
    })?;
    if let (Some(f), Some(before)) = (watch.rx_dropped, dropped_before) {
        result.counters.rx_dropped = f().saturating_sub(before);
    }
    Ok(result)
}

/// Why the server counts as lost after `result`, if it does: the link went down, or nothing
/// was answered at all.
fn peer_lost(result: &RunResult, watch: &PortWatch<'_>) -> Option<String> {
    let c = &result.counters;
    if result.stopped_early {
        Some(format!(
            "the link to {} went down mid-run: {} of {} planned requests sent; partial results \
             written",
            watch.servers, c.sent, c.planned
        ))
    } else if c.sent > 0 && c.received + c.late == 0 {
        Some(format!(
            "no response from {} during the whole run ({} requests sent): is the server running \
             and listening there?",
            watch.servers, c.sent
        ))
    } else {
        None
    }
}

/// Prints a point's summary, and writes its files to `dir` when given.
fn report_point(
    args: &Args,
    plan: &Plan,
    load: Option<f64>,
    result: &RunResult,
    dir: Option<&Path>,
) -> Result<Summary> {
    let report = Report::from_run(&args.label, &plan.workload, args.seed, load, result);
    let summary: Summary = match dir {
        Some(dir) => {
            let summary = write_run_files(dir, &report)
                .with_context(|| format!("writing outputs to {}", dir.display()))?;
            if let Ok(sample) = usize::try_from(args.sample) {
                let rows = psp_client::report::write_traces(dir, &result.traces, sample)
                    .with_context(|| format!("writing traces to {}", dir.display()))?;
                if result.counters.untraced > 0 {
                    eprintln!(
                        "psp-client: traces hold the first {MAX_TRACE_RECORDS} measured \
                         requests; {} more were not traced",
                        result.counters.untraced
                    );
                }
                eprintln!("psp-client: {rows} trace rows");
            }
            eprintln!("psp-client: outputs in {}", dir.display());
            summary
        }
        None => report.summary(),
    };
    print_summary(&mut std::io::stdout().lock(), &summary).context("writing to stdout")?;
    Ok(summary)
}

/// Watches a run from beside the engine until it is done: warns once when nothing was answered
/// within [`NO_RESPONSE_WARNING_AFTER`] of the first sends, and stops the run (through
/// [`Progress::stop`]) when the link goes down.
fn watchdog(progress: &Progress, watch: &PortWatch<'_>) {
    let mut first_send: Option<Instant> = None;
    let mut warned = false;
    while !progress.done.load(Ordering::Relaxed) {
        let sent = progress.sent.load(Ordering::Relaxed);
        if sent > 0 && first_send.is_none() {
            first_send = Some(Instant::now());
        }
        if !warned
            && first_send.is_some_and(|t| t.elapsed() >= NO_RESPONSE_WARNING_AFTER)
            && progress.received.load(Ordering::Relaxed) == 0
        {
            eprintln!(
                "psp-client: warning: no response from {} within {} s of the first sends ({sent} \
                 sent so far): is the server running and listening there?",
                watch.servers,
                NO_RESPONSE_WARNING_AFTER.as_secs_f64()
            );
            warned = true;
        }
        if watch.link_up.is_some_and(|up| !up()) {
            eprintln!(
                "psp-client: the link to {} went down: stopping the run",
                watch.servers
            );
            progress.stop.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(WATCHDOG_PERIOD);
    }
}

/// Draws a progress bar (sent of planned, send rate, elapsed) until the run is done.
fn progress_bar(progress: &Progress) {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} sent  {msg}",
    ) {
        bar.set_style(style);
    }
    let started = std::time::Instant::now();
    while !progress.done.load(Ordering::Relaxed) {
        let sent = progress.sent.load(Ordering::Relaxed);
        bar.set_length(progress.planned.load(Ordering::Relaxed));
        bar.set_position(sent);
        bar.set_message(format!(
            "{:.0} rps  received {}  phase {}",
            sent as f64 / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE),
            progress.received.load(Ordering::Relaxed),
            progress.phase.load(Ordering::Relaxed)
        ));
        std::thread::sleep(PROGRESS_REFRESH);
    }
    bar.finish_and_clear();
}

fn engine_config(args: &Args, local: Endpoint, targets: Vec<Endpoint>) -> Result<EngineConfig> {
    let mut config = EngineConfig::new(local, targets);
    config.seed = args.seed;
    config.warmup_fraction = args.warmup;
    // check_numbers let through -1 (unlimited) and positive counts only.
    config.max_concurrency = usize::try_from(args.max_concurrency).ok();
    config.drain_timeout_ns = (args.drain_timeout_s * 1e9) as u64;
    if args.sample >= 0 {
        config.trace_limit = MAX_TRACE_RECORDS;
    }
    config.parse_options.verify_ip_checksum = args.verify_ip_checksum;
    config.idle = match args.idle {
        Idle::Spin => IdlePolicy::Spin,
        Idle::Yield => IdlePolicy::Yield,
        Idle::Sleep => IdlePolicy::Sleep,
    };
    Ok(config)
}

fn run_udp(
    args: &Args,
    config: Option<&ClientConfig>,
    plan: &Plan,
    out_dir: Option<&Path>,
) -> Result<RunOutcome> {
    use psp_net::port::udp::{UdpPort, UdpPortConfig};
    let threads = args.threads(config);
    if threads > 1 {
        return run_udp_threads(args, config, plan, out_dir, threads);
    }
    let bind = args
        .bind
        .or_else(|| config.and_then(|c| c.net_workers.first().copied()))
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut port = UdpPort::bind(&UdpPortConfig::new(bind, 1)).with_context(|| {
        format!("binding the UDP socket to {bind} (set --bind or net_workers[0])")
    })?;
    let local_addr = port.local_addr();
    let local = Endpoint::new(MacAddr(port.mac()), *local_addr.ip(), local_addr.port());
    let targets = targets(args, MacAddr([0; 6]))?;
    let engine_config = engine_config(args, local, targets)?;
    eprintln!("psp-client: UDP from {local_addr} to {:?}", args.ip);
    let mut engine = Engine::new(&mut port).context("taking the UDP port's queues")?;
    let port = &port;
    let watch = PortWatch {
        servers: servers(&engine_config.targets),
        rx_dropped: Some(&|| port.stats().rx_missed),
        link_up: None,
    };
    run_points(
        &mut |w, r, c, p| engine.run(w, r, c, p),
        None,
        args,
        plan,
        &engine_config,
        out_dir,
        &watch,
    )
}

/// The source address of each of `threads` UDP client threads: `net_workers[i]` where the
/// config lists one per thread, else `--bind`'s (or net_workers[0]'s) IP with a free port.
fn thread_binds(args: &Args, config: Option<&ClientConfig>, threads: usize) -> Vec<SocketAddrV4> {
    let listed = config.map_or(&[][..], |c| &c.net_workers[..]);
    let ip = args
        .bind
        .or_else(|| listed.first().copied())
        .map_or(Ipv4Addr::UNSPECIFIED, |a| *a.ip());
    (0..threads)
        .map(|i| match listed.get(i) {
            Some(&a) if listed.len() >= threads && args.bind.is_none() => a,
            _ => SocketAddrV4::new(ip, 0),
        })
        .collect()
}

/// [`run_udp`] with several client threads, each on its own socket ([`ThreadedEngine`]).
fn run_udp_threads(
    args: &Args,
    config: Option<&ClientConfig>,
    plan: &Plan,
    out_dir: Option<&Path>,
    threads: usize,
) -> Result<RunOutcome> {
    use psp_net::port::udp::{UdpPort, UdpPortConfig};
    let binds = thread_binds(args, config, threads);
    let mut engine = ThreadedEngine::spawn(threads, move |i| {
        let bind = binds[i];
        let port = UdpPort::bind(&UdpPortConfig::new(bind, 1))
            .map_err(|e| format!("binding the UDP socket to {bind}: {e}"))?;
        let a = port.local_addr();
        let local = Endpoint::new(MacAddr(port.mac()), *a.ip(), a.port());
        Ok((port, local))
    })
    .context("starting the client threads")?;
    let targets = targets(args, MacAddr([0; 6]))?;
    let engine_config = engine_config(args, engine.locals()[0], targets)?;
    let from: Vec<String> = engine
        .locals()
        .iter()
        .map(|l| SocketAddrV4::new(l.ip, l.port).to_string())
        .collect();
    eprintln!(
        "psp-client: {threads} threads, UDP from {} to {:?}",
        from.join(", "),
        args.ip
    );
    let watch = PortWatch {
        servers: servers(&engine_config.targets),
        rx_dropped: None,
        link_up: None,
    };
    run_points(
        &mut |w, r, c, p| engine.run(w, r, c, p),
        None,
        args,
        plan,
        &engine_config,
        out_dir,
        &watch,
    )
}

/// `ip:port, …` of the servers, for messages.
fn servers(targets: &[Endpoint]) -> String {
    targets
        .iter()
        .map(|t| SocketAddrV4::new(t.ip, t.port).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(_: &Args, _: Option<&ClientConfig>, _: &Plan, _: Option<&Path>) -> Result<RunOutcome> {
    bail!("psp-client was built without the `dpdk` feature: use --transport udp")
}

#[cfg(feature = "dpdk")]
fn run_dpdk(
    args: &Args,
    config: Option<&ClientConfig>,
    plan: &Plan,
    out_dir: Option<&Path>,
) -> Result<RunOutcome> {
    use std::cell::RefCell;

    use psp::dpdk::Device;

    let config = config.context("--transport dpdk needs --config-path with network.eal_init")?;
    // Threads over DPDK: each its own TX queue, the RX queues shared (docs/design.md §5.2); a
    // memif server takes as many client TX rings as it has RX queues (psp.rx_queues).
    let threads = args
        .threads
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or(1);
    ensure!(
        threads == 1 || !args.reconnect,
        "--reconnect with --threads {threads}: not supported over DPDK (the port is restarted \
         with every queue, and the threads hold them)"
    );
    ensure!(
        !config.eal_init.is_empty(),
        "--transport dpdk: network.eal_init is empty in the config"
    );
    let server_mac = match &args.server_mac {
        Some(m) => psp_client::config::parse_mac("--server-mac", m)?,
        None => config
            .remote_mac
            .context("--transport dpdk needs network.remote_mac in the config or --server-mac")?,
    };
    let source = args
        .bind
        .or_else(|| config.net_workers.first().copied())
        .context("--transport dpdk needs net_workers[0] (this client's IP and port) or --bind")?;
    let device = open_dpdk(args, config, threads)?;
    let Device { mut port, eal } = device;
    eprintln!("psp-client: link up; sending to {:?}", args.ip);
    // memif and ring do not filter by MAC: network.mac, when given, is what we send from.
    let local = Endpoint::new(
        MacAddr(config.mac.unwrap_or(port.mac())),
        *source.ip(),
        source.port(),
    );
    let targets = targets(args, MacAddr(server_mac))?;
    let engine_config = engine_config(args, local, targets)?;
    let outcome = if threads > 1 {
        run_dpdk_threads(args, plan, out_dir, &mut port, &engine_config, threads)
    } else {
        let engine = RefCell::new(Engine::new(&mut port).context("taking the DPDK port's queues")?);
        let port = &port;
        let link_timeout = Duration::from_secs_f64(args.link_timeout_s);
        let mut relink = || relink_dpdk(port, &mut engine.borrow_mut(), link_timeout);
        let watch = PortWatch {
            servers: servers(&engine_config.targets),
            rx_dropped: Some(&|| port.stats().rx_missed),
            link_up: Some(&|| port.link_up()),
        };
        run_points(
            &mut |w, r, c, p| engine.borrow_mut().run(w, r, c, p),
            args.reconnect.then_some(&mut relink as &mut Relink<'_>),
            args,
            plan,
            &engine_config,
            out_dir,
            &watch,
        )
    };
    hint_unpolled_queues(&outcome, port.rx_queue_count());
    drop(port);
    drop(eal);
    outcome
}

/// Requests never answered over DPDK: a memif server answers each on its worker's TX queue
/// (1 + workers queues), and what lands on a queue this client does not poll is never read,
/// so say how many it polled.
#[cfg(feature = "dpdk")]
fn hint_unpolled_queues(outcome: &Result<RunOutcome>, rx_queues: u16) {
    let unanswered: u64 = outcome
        .iter()
        .flat_map(|o| &o.points)
        .map(|p| p.summary.counters.unanswered)
        .sum();
    if unanswered > 0 {
        eprintln!(
            "psp-client: {unanswered} request(s) never answered; this client polled {rx_queues} \
             RX queue(s), and a memif server answers on 1 + workers queues (answers on a queue \
             not polled are never read: --workers N or --rx-queues N+1)"
        );
    }
}

/// Opens the DPDK port of `config` with `threads` TX queues and the RX queues to poll, and
/// waits for its link.
#[cfg(feature = "dpdk")]
fn open_dpdk(args: &Args, config: &ClientConfig, threads: usize) -> Result<psp::dpdk::Device> {
    use std::sync::atomic::AtomicBool;

    use psp::dpdk::{Device, DeviceConfig, PortConfig};

    let rx_queues = dpdk_rx_queues(args);
    // memif pairs queue i with the peer's queue i, and its server side refuses more client TX
    // rings than it has RX queues (psp-app: psp.rx_queues, default 1): one TX queue per
    // thread, 1 + workers RX queues.
    let mut port_config = PortConfig::server(config.device_id, 0);
    port_config.rx_queues = rx_queues;
    port_config.tx_queues = u16::try_from(threads).context("--threads")?;
    let device = Device::open(&DeviceConfig {
        eal_args: &config.eal_init,
        prefix_stem: "psp-client",
        pool_name: "psp_client_mbufs",
        port: port_config,
    })?;
    eprintln!(
        "psp-client: DPDK port {} with {rx_queues} RX queue(s); waiting for the link",
        config.device_id
    );
    device
        .wait_link(
            Duration::from_secs_f64(args.link_timeout_s),
            &AtomicBool::new(false),
        )
        .with_context(|| {
            if threads > 1 {
                format!(
                    "waiting for the DPDK link (is the server running, with psp.rx_queues ≥ \
                     {threads}? a memif server refuses more client TX rings than its RX queues; \
                     --threads 1 needs one)"
                )
            } else {
                "waiting for the DPDK link (is the server running?)".to_string()
            }
        })?;
    Ok(device)
}

/// The RX queues to poll over DPDK: `--rx-queues`, else 1 + `--workers` (a Perséphone server
/// answers on 1 + workers queues over memif), else 1 with a word about it.
#[cfg(feature = "dpdk")]
fn dpdk_rx_queues(args: &Args) -> u16 {
    let rx_queues = args
        .rx_queues
        .and_then(|q| u16::try_from(q).ok())
        .or_else(|| args.workers().and_then(|w| u16::try_from(w + 1).ok()))
        .unwrap_or(1)
        .max(1);
    if rx_queues == 1 {
        eprintln!(
            "psp-client: polling 1 RX queue; a Perséphone server answers on 1 + workers queues \
             over memif: give --workers N or --rx-queues N+1"
        );
    }
    rx_queues
}

/// [`run_dpdk`] with `threads` client threads: thread `i` sends on TX queue `i` and polls the
/// RX queues `q` with `q % threads == i`; responses that land on another thread's queue are
/// forwarded to it by their ids' tags (`psp_client::engine::forward`).
#[cfg(feature = "dpdk")]
fn run_dpdk_threads(
    args: &Args,
    plan: &Plan,
    out_dir: Option<&Path>,
    port: &mut psp::dpdk::EthPort,
    engine_config: &EngineConfig,
    threads: usize,
) -> Result<RunOutcome> {
    use std::sync::Mutex;
    type Share = (psp::dpdk::DpdkTxQueue, Vec<psp::dpdk::DpdkRxQueue>);
    let rx_count = port.rx_queue_count();
    let mut shares: Vec<Option<Share>> = Vec::with_capacity(threads);
    for i in 0..threads {
        let tx = port
            .take_tx(u16::try_from(i)?)
            .with_context(|| format!("taking DPDK TX queue {i}"))?;
        let rxs = (0..rx_count)
            .filter(|q| usize::from(*q) % threads == i)
            .filter_map(|q| port.take_rx(q))
            .collect();
        shares.push(Some((tx, rxs)));
    }
    let shares = Mutex::new(shares);
    let local = engine_config.local;
    let mut engine = ThreadedEngine::spawn_shared::<psp::dpdk::EthPort, _>(threads, move |i| {
        let share = shares.lock().map_err(|e| e.to_string())?[i].take();
        let (tx, rxs) = share.ok_or("queues taken twice")?;
        Ok((tx, rxs, local))
    })
    .context("starting the client threads")?;
    eprintln!(
        "psp-client: {threads} threads over DPDK, {rx_count} RX queue(s) shared (the server needs \
         psp.rx_queues ≥ {threads})"
    );
    let port = &*port;
    let watch = PortWatch {
        servers: servers(&engine_config.targets),
        rx_dropped: Some(&|| port.stats().rx_missed),
        link_up: Some(&|| port.link_up()),
    };
    run_points(
        &mut |w, r, c, p| engine.run(w, r, c, p),
        None,
        args,
        plan,
        engine_config,
        out_dir,
        &watch,
    )
}

/// `--reconnect` over DPDK: restarts the port (a memif client connects when its port starts)
/// until the link is up, at most `timeout`; whether it came up.
#[cfg(feature = "dpdk")]
fn relink_dpdk(
    port: &psp::dpdk::EthPort,
    engine: &mut Engine<psp::dpdk::EthPort>,
    timeout: Duration,
) -> bool {
    let started = Instant::now();
    let mut said = false;
    loop {
        let (tx, rxs) = engine.queues_mut();
        match port.restart(rxs, std::slice::from_mut(tx)) {
            Ok(()) => {}
            Err(e @ psp::dpdk::DpdkError::QueuesInUse { .. }) => {
                eprintln!("psp-client: restarting the DPDK port: {e}");
                return false;
            }
            // A memif client's start fails while its server is away: try again next round.
            Err(e) if !said => {
                eprintln!("psp-client: the server is not back yet ({e}); retrying");
                said = true;
            }
            Err(_) => {}
        }
        let round = Instant::now();
        while round.elapsed() < RELINK_ROUND {
            if port.link_up() {
                return true;
            }
            std::thread::sleep(RELINK_POLL);
        }
        if started.elapsed() >= timeout {
            return false;
        }
    }
}

fn main() -> ExitCode {
    psp::exit::init();
    psp::exit::finish_with_code("psp-client", run())
}

/// The whole program: `Ok(EXIT_PEER_LOST)` when the server was lost (results written), an
/// error for bad input or setup.
fn run() -> Result<ExitCode> {
    let args = Args::parse();
    check_numbers(&args)?;
    let config = args
        .config_path
        .as_deref()
        .map(|p| {
            ClientConfig::from_path(p).with_context(|| format!("--config-path {}", p.display()))
        })
        .transpose()?;
    let plan = load_plan(&args, config.as_ref())?;
    let transport = args.transport.unwrap_or(
        if cfg!(feature = "dpdk") && config.as_ref().is_some_and(|c| !c.eal_init.is_empty()) {
            Transport::Dpdk
        } else {
            Transport::Udp
        },
    );
    if args.reconnect && transport == Transport::Udp {
        eprintln!("psp-client: --reconnect applies to DPDK links; kernel UDP has no link to lose");
    }
    let write_files = args.collect_logs != 0 || args.outdir.is_some() || args.load_range.is_some();
    let out_dir = write_files.then(|| output_dir(&args, config.as_ref()));
    let RunOutcome { points, peer_lost } = match transport {
        Transport::Udp => run_udp(&args, config.as_ref(), &plan, out_dir.as_deref())?,
        Transport::Dpdk => run_dpdk(&args, config.as_ref(), &plan, out_dir.as_deref())?,
    };
    if args.load_range.is_some() {
        if let Some(dir) = &out_dir {
            write_sweep_files(dir, &args.label, &points)
                .with_context(|| format!("writing the sweep files to {}", dir.display()))?;
            eprintln!(
                "psp-client: sweep.csv, sweep_slowdown.svg, sweep_latency.svg in {}",
                dir.display()
            );
        }
        print!("{}", psp_client::sweep::sweep_table(&points).to_text());
    }
    if let Some(why) = peer_lost {
        eprintln!("psp-client: {why}");
        return Ok(ExitCode::from(EXIT_PEER_LOST));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_name_flag_and_value() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["psp-client", "-I", "127.0.0.1", "-P", "9"];
            argv.extend_from_slice(extra);
            check_numbers(&Args::parse_from(argv)).map_err(|e| e.to_string())
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["-m", "-1"]).is_ok());
        assert!(parse(&["-m", "8"]).is_ok());
        for (flags, needle) in [
            (&["-r", "-5"][..], "-r/--rate -5"),
            (&["-d", "0"], "-d/--duration 0"),
            (&["-m", "0"], "-m/--max-concurrency 0"),
            (&["-m", "-7"], "-m/--max-concurrency -7"),
            (&["-S", "-2"], "-S/--sample -2"),
            (&["--workers", "0"], "--workers 0"),
            (&["--threads", "0"], "--threads 0"),
            (&["--threads", "999"], "--threads 999"),
            (&["--rx-queues", "70000"], "--rx-queues 70000"),
            (&["--warmup", "-0.1"], "--warmup -0.1"),
            (&["--drain-timeout", "inf"], "--drain-timeout inf"),
        ] {
            let e = parse(flags).unwrap_err();
            assert!(e.contains(needle), "{flags:?}: {e}");
        }
    }
}
