//! # `psp live`: the paper's experiment on this machine, in one command
//!
//! For each policy: write a server and a client config (`configs`), start `psp-app` on the
//! planned cores (`layout`), run a warm-up (DARC profiles during it), sweep the loads with
//! `psp-client`, stop the server with SIGINT (it drains and writes `report.json`), then read
//! both sides (`results`). Finally simulate the same workload, workers and loads with the
//! dispatcher cost the server measured, and write `live.csv`, `plot.svg` and a table comparing
//! live and simulated capacity.
//!
//! Invariants: every input is checked before any process starts (workload file, policy names,
//! loads, core list, binaries), each error names the value; no child outlives the run, on
//! success, error or Ctrl-C ([`procs::Managed`]). Tested by the unit tests of each module and
//! end to end by `tests/live.rs` (1 worker over memif on 2 cores, and the error cases).

pub mod configs;
pub mod layout;
pub mod procs;
pub mod results;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use psp_client::sweep::parse_load_range;
use psp_scheduler::{DarcParams, Policy, Registry};
use psp_sim::cli::parse_policy_names;
use psp_sim::engine::{RunConfig, RunResult, DEFAULT_WARMUP_FRACTION};
use psp_sim::sweep::{sweep, SweepSpec};
use psp_workload::Workload;

use configs::{client_yaml, server_yaml, ServerSpec, Transport, SERVER_IP, SERVER_PORT};
use layout::{plan_layout, Layout};
use procs::Managed;
use results::{live_plot, live_table, read_policy_run, summary_table, PolicyRun};

/// Load of the warm-up run that precedes each sweep (DARC profiles during it).
const WARMUP_LOAD: f64 = 0.5;
/// DARC needs its samples twice over during the warm-up (first plan, then one update).
const WARMUP_SAMPLE_ROUNDS: f64 = 2.0;
/// Bounds of the automatic warm-up, seconds.
const WARMUP_MIN_S: f64 = 1.0;
const WARMUP_MAX_S: f64 = 30.0;
/// Time for psp-app to start and drain, and for psp-client beyond its schedule.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
const SERVER_STOP_GRACE: Duration = Duration::from_secs(30);
const CLIENT_SLACK_S: f64 = 60.0;
/// Simulated requests per point at least, and per DARC sample (so that the simulator's 10 %
/// warm-up covers DARC's profiling).
const SIM_MIN_REQUESTS: u64 = 500_000;
const SIM_REQUESTS_PER_DARC_SAMPLE: u64 = 10;
/// What the server prints when it waits for its memif peer, and when it serves over UDP.
const SERVER_READY_MEMIF: &str = "waiting for the link";
const SERVER_READY_UDP: &str = "serving";

/// `psp live`.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// Workload YAML (e.g. configs/workloads/DISP2.yml).
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// Policies to run, comma-separated (live ones: cfcfs, dfcfs, sjf, edf, darc, darc-static, ws).
    #[arg(long, short = 'p', default_value = "darc,cfcfs")]
    pub policies: String,
    /// Server workers (default: as many as the cores allow, leaving one to the OS).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Loads A:B:STEP (or one load), relative to the workers' capacity.
    #[arg(long, default_value = "0.1:0.9:0.1")]
    pub load: String,
    /// Seconds per load point.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// SLO on the overall p99.9 slowdown.
    #[arg(long, default_value_t = 20.0)]
    pub slo: f64,
    /// Output directory (created).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// CPUs to use, in the order client, dispatcher, workers (default: the allowed CPUs but the
    /// first).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub cores: Option<Vec<usize>>,
    /// Allow threads to share cores (idle threads yield) when there are too few.
    #[arg(long)]
    pub share_cores: bool,
    /// Network path between client and server.
    #[arg(long, value_enum, default_value = "memif")]
    pub transport: Transport,
    /// DARC's profiling samples before its first plan (the original's 50 000).
    #[arg(long, default_value_t = DarcParams::default().samples_needed)]
    pub darc_samples: u64,
    /// DARC's rounding hysteresis, in workers (`psp.darc.rounding_hysteresis`; 0, the
    /// original: every crossing of the rounding cut re-plans).
    #[arg(long, default_value_t = DarcParams::default().rounding_hysteresis)]
    pub darc_rounding_hysteresis: f64,
    /// Seconds of warm-up at load 0.5 before each sweep (default: enough for DARC's samples).
    #[arg(long)]
    pub warmup_s: Option<f64>,
    /// Simulated requests per load point (default: max(500 000, 10 × DARC samples)).
    #[arg(long)]
    pub sim_requests: Option<u64>,
    /// Seed of the client's and the simulator's request streams.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where psp-app and psp-client are (default: beside this program).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// Everything checked before any process starts.
struct Plan {
    workload: Workload,
    policies: Vec<Policy>,
    loads: Vec<f64>,
    layout: Layout,
    warmup_s: f64,
    app: PathBuf,
    client: PathBuf,
}

fn finite_positive(flag: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        bail!("{flag} {value}: must be a positive number")
    }
}

fn parse_policies(text: &str, args: &LiveArgs) -> Result<Vec<Policy>> {
    parse_policy_names(&Registry::builtin(), text)?
        .into_iter()
        .map(|policy| {
            if !policy.is_live() {
                bail!("--policies {}: simulator-only", policy.name());
            }
            let mut policy = policy;
            if let Some(params) = policy.darc_params_mut() {
                params.samples_needed = args.darc_samples;
                params.rounding_hysteresis = args.darc_rounding_hysteresis;
                params
                    .validate()
                    .map_err(|e| anyhow!("--darc-rounding-hysteresis: {e}"))?;
            }
            Ok(policy)
        })
        .collect()
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{}: no such program (build it with `cargo build --release`, or give --bin-dir)",
            path.display()
        );
    }
    Ok(path)
}

fn plan(args: &LiveArgs) -> Result<Plan> {
    let workload = Workload::from_path(&args.workload)
        .with_context(|| format!("--workload {}", args.workload.display()))?;
    let policies = parse_policies(&args.policies, args)?;
    let loads = parse_load_range(&args.load).with_context(|| format!("--load {}", args.load))?;
    finite_positive("--duration", args.duration)?;
    finite_positive("--slo", args.slo)?;
    let allowed = psp_dataplane::server::allowed_cpus();
    let workers = match args.workers {
        Some(0) => bail!("--workers 0: need at least one worker"),
        Some(n) => n,
        None => allowed.len().saturating_sub(3).max(1),
    };
    if workers > psp_scheduler::MAX_WORKERS {
        bail!(
            "--workers {workers}: at most {}",
            psp_scheduler::MAX_WORKERS
        );
    }
    let layout = plan_layout(workers, args.cores.as_deref(), &allowed, args.share_cores)?;
    let warmup_s = match args.warmup_s {
        Some(s) if s.is_finite() && s >= 0.0 => s,
        Some(s) => bail!("--warmup-s {s}: must be a number of seconds ≥ 0"),
        None => {
            let rate = workload.rate_for_load(WARMUP_LOAD, workers);
            (WARMUP_SAMPLE_ROUNDS * args.darc_samples as f64 / rate)
                .clamp(WARMUP_MIN_S, WARMUP_MAX_S)
        }
    };
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("locating this program")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program has no directory")?,
    };
    Ok(Plan {
        app: binary(&bin_dir, "psp-app")?,
        client: binary(&bin_dir, "psp-client")?,
        workload,
        policies,
        loads,
        layout,
        warmup_s,
    })
}

/// Runs `psp live`.
pub fn run(args: &LiveArgs) -> Result<()> {
    let plan = plan(args)?;
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&cancel))
            .with_context(|| format!("installing the handler for signal {signal}"))?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    println!(
        "psp live: {} on {} worker(s), loads {}, {} s each; {}",
        plan.workload.name,
        plan.layout.worker_cpus.len(),
        args.load,
        args.duration,
        plan.layout
    );
    if plan.layout.free_cpus.is_empty() && !plan.layout.shared {
        println!("psp live: WARNING: no core is left to the OS; expect descheduling in the tails");
    }
    let mut runs = Vec::new();
    for policy in &plan.policies {
        let dir = out.join(policy.name());
        run_policy(args, &plan, policy, &dir, &cancel)
            .with_context(|| format!("policy {}", policy.name()))?;
        runs.push(read_policy_run(policy.name(), &dir)?);
    }
    let sim = simulate(args, &plan, &runs)?;
    write_outputs(args, &plan, &out, &runs, &sim)
}

/// Where one policy's run talks: the memif socket, the server's address, its files.
struct PolicyProcesses<'a> {
    args: &'a LiveArgs,
    plan: &'a Plan,
    policy: &'a Policy,
    dir: &'a Path,
    socket: PathBuf,
    ip: String,
    port: u16,
}

impl PolicyProcesses<'_> {
    /// Writes the server and client configs.
    fn write_configs(&self) -> Result<()> {
        std::fs::create_dir_all(self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let logs = self.dir.join("logs");
        std::fs::write(
            self.dir.join("server.yml"),
            server_yaml(&ServerSpec {
                policy: self.policy,
                layout: &self.plan.layout,
                workload: &self.plan.workload,
                transport: self.args.transport,
                socket: &self.socket,
                log_dir: &logs,
            }),
        )?;
        std::fs::write(
            self.dir.join("client.yml"),
            client_yaml(&self.plan.layout, self.args.transport, &self.socket, &logs),
        )?;
        Ok(())
    }

    /// Starts psp-app and waits until it is ready for the client.
    fn start_server(&self, cancel: &AtomicBool) -> Result<Managed> {
        let mut command = Command::new(&self.plan.app);
        command
            .arg("--cfg")
            .arg(self.dir.join("server.yml"))
            .args(["--label", "live", "--report"])
            .arg(self.dir.join("report.json"));
        let ready = match self.args.transport {
            Transport::Memif => SERVER_READY_MEMIF,
            Transport::Udp => {
                command
                    .arg("--udp")
                    .arg(format!("{}:{}", self.ip, self.port));
                SERVER_READY_UDP
            }
        };
        let log = self.dir.join("server.log");
        println!(
            "== {}: starting psp-app ({})",
            self.policy.name(),
            log.display()
        );
        let mut server = Managed::spawn("psp-app", command, &log)?;
        server.wait_for_log(ready, SERVER_START_TIMEOUT, cancel)?;
        Ok(server)
    }

    /// One psp-client run at `load` (a single load or A:B:STEP), outputs in `outdir`.
    fn client_run(
        &self,
        load: &str,
        duration: f64,
        outdir: &str,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let (args, plan) = (self.args, self.plan);
        let mut cmd = Command::new(&plan.client);
        cmd.arg("-c")
            .arg(self.dir.join("client.yml"))
            .args(["-I", &self.ip, "-P", &self.port.to_string(), "--workload"])
            .arg(&args.workload)
            .args(["--workers", &plan.layout.worker_cpus.len().to_string()])
            .args(["--load-range", load, "--duration", &duration.to_string()])
            .args([
                "--seed",
                &args.seed.to_string(),
                "--no-progress",
                "--label",
                "live",
            ])
            .args(["--idle", if plan.layout.shared { "yield" } else { "spin" }])
            .arg("--outdir")
            .arg(self.dir.join(outdir));
        if args.transport == Transport::Udp {
            cmd.args(["--transport", "udp"]);
        }
        let points = parse_load_range(load).map_or(1, |l| l.len()) as f64;
        let timeout = Duration::from_secs_f64(points * (duration + 5.0) + CLIENT_SLACK_S);
        let log = self.dir.join(format!("{outdir}.log"));
        Managed::spawn("psp-client", cmd, &log)?.wait_success(timeout, cancel)
    }
}

/// One policy: server up, warm-up, sweep, server down.
fn run_policy(
    args: &LiveArgs,
    plan: &Plan,
    policy: &Policy,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let name = policy.name();
    let (ip, port) = match args.transport {
        Transport::Memif => (SERVER_IP.to_string(), SERVER_PORT),
        Transport::Udp => ("127.0.0.1".to_string(), free_udp_port()?),
    };
    let run = PolicyProcesses {
        args,
        plan,
        policy,
        dir,
        // A short path: a Unix socket's name is limited to 107 bytes, output directories are not.
        socket: std::env::temp_dir().join(format!("psp-live-{}-{name}.sock", std::process::id())),
        ip,
        port,
    };
    let _ = std::fs::remove_file(&run.socket);
    run.write_configs()?;
    let mut server = run.start_server(cancel)?;
    if plan.warmup_s > 0.0 {
        println!(
            "== {name}: warm-up at load {WARMUP_LOAD} for {:.1} s",
            plan.warmup_s
        );
        run.client_run(&WARMUP_LOAD.to_string(), plan.warmup_s, "warmup", cancel)?;
    }
    println!(
        "== {name}: sweep {} ({})",
        args.load,
        dir.join("client.log").display()
    );
    run.client_run(&args.load, args.duration, "client", cancel)?;
    let stopped = server.stop(SERVER_STOP_GRACE);
    let _ = std::fs::remove_file(&run.socket);
    match stopped {
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!(
            "psp-app exited with {status}; its log:\n{}",
            server.log_tail()
        ),
        None => bail!("psp-app did not stop within {SERVER_STOP_GRACE:?} of SIGINT and was killed"),
    }
}

fn free_udp_port() -> Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
    Ok(socket.local_addr()?.port())
}

/// The simulator on the same workload, workers and loads, with the dispatcher cost the live
/// server measured (the largest over the policies' runs) and, for a preemptive policy, the
/// preemption cost its server measured (flag set → worker free, mean).
fn simulate(args: &LiveArgs, plan: &Plan, runs: &[PolicyRun]) -> Result<Vec<RunResult>> {
    let dispatch_cost_ns = runs
        .iter()
        .filter_map(|r| r.server.dispatcher_ns_per_request)
        .fold(0.0f64, f64::max)
        .round() as u64;
    let requests = args
        .sim_requests
        .unwrap_or(SIM_MIN_REQUESTS.max(SIM_REQUESTS_PER_DARC_SAMPLE * args.darc_samples));
    let mut policies = plan.policies.clone();
    for policy in &mut policies {
        let name = policy.name();
        let measured = runs
            .iter()
            .find(|r| r.policy == name)
            .and_then(|r| r.server.preempt_cost_ns);
        if let (Some(ts), Some(cost_ns)) = (policy.time_sharing_mut(), measured) {
            ts.preemption_cost_ns = cost_ns.round() as u64;
            println!("== simulating {name} with the preemption cost its server measured: {cost_ns:.0} ns");
        }
    }
    let spec = SweepSpec {
        policies,
        loads: plan.loads.clone(),
        run: RunConfig {
            workers: plan.layout.worker_cpus.len(),
            requests,
            seed: args.seed,
            warmup_fraction: DEFAULT_WARMUP_FRACTION,
            dispatch_cost_ns,
            ..RunConfig::default()
        },
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    println!("== simulating the same sweep ({requests} requests per point, dispatch cost {dispatch_cost_ns} ns)");
    sweep(&plan.workload, &spec, &|| {}).context("simulating the sweep")
}

fn write_outputs(
    args: &LiveArgs,
    plan: &Plan,
    out: &Path,
    runs: &[PolicyRun],
    sim: &[RunResult],
) -> Result<()> {
    live_table(runs, sim, args.slo).write_csv_file(out.join("live.csv"))?;
    live_plot(&plan.workload.name, runs, sim, args.slo).write_svg(out.join("plot.svg"))?;
    for run in runs {
        for warning in &run.server.warnings {
            println!("{}: server WARNING: {warning}", run.policy);
        }
    }
    println!(
        "capacity at p99.9 slowdown ≤ {} ({} worker(s), {}):",
        args.slo,
        plan.layout.worker_cpus.len(),
        plan.workload.name
    );
    print!("{}", summary_table(runs, sim, args.slo).to_text());
    println!(
        "wrote {} and {}",
        out.join("live.csv").display(),
        out.join("plot.svg").display()
    );
    Ok(())
}
