//! The `psp` tool's simulator subcommands (`sim`, `plan`, `search`), with clap derive.
//!
//! `src/bin/psp.rs` is a thin `main`; it flattens [`Command`] into its own subcommand enum, so
//! other subcommands (e.g. `psp merge`) are added there without touching this crate. This is
//! binary logic living in the library so that it can be tested: it reports errors with
//! `anyhow` and context, like a binary.
//!
//! Tested by `tests/cli.rs` (a small sweep writing CSV and SVG to a temporary directory, `plan`
//! reproducing docs/design.md §1.9, a small `search`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use psp_scheduler::{
    DarcParams, DarcTsParams, PlanMode, Policy, Registry, TimeSharingParams,
    DEFAULT_QUEUE_CAPACITY, MAX_WORKER_QUEUE_DEPTH,
};
use psp_workload::report::{LinePlot, Series};
use psp_workload::Workload;

use crate::alloc::{describe_plans, search};
use crate::engine::{RunConfig, RunResult, DEFAULT_WARMUP_FRACTION};
use crate::sweep::{capacity, passes_slo, results_table, slowdown_plot, sweep, SweepSpec};

/// `println!` that returns an error on a closed stdout (`psp sim ... | head`) instead of
/// panicking; the binary ends quietly on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).context("writing to stdout")?
    }};
}

/// `print!` with the error of [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).context("writing to stdout")?
    }};
}

/// Simulator subcommands of `psp`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a load sweep: every policy at every load; writes results.csv and plot.svg.
    Sim(SimArgs),
    /// Print DARC's groups, reserved and stealable workers and spillway from a workload's
    /// configured means and ratios.
    Plan(PlanArgs),
    /// Exhaustively search DARC's per-group worker counts with the simulator at one load.
    Search(SearchArgs),
}

/// Runs a simulator subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Sim(a) => run_sim(&a),
        Command::Plan(a) => run_plan(&a),
        Command::Search(a) => run_search(&a),
    }
}

/// Parameters shared by `sim` and `search`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Workload YAML (Perséphone schedule format, see configs/workloads/).
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// Application workers.
    #[arg(long, default_value_t = 14)]
    pub workers: usize,
    /// SLO on the overall p99.9 slowdown.
    #[arg(long, default_value_t = 20.0)]
    pub slo: f64,
    /// Arrivals per load point, warm-up included.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    pub requests: u64,
    /// RNG seed (each load point derives its own; all policies see the same arrivals).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of the first arrivals discarded from the statistics.
    #[arg(long, default_value_t = DEFAULT_WARMUP_FRACTION)]
    pub warmup: f64,
    /// Dispatcher cost per arrival (ns); the dispatcher is a single server.
    #[arg(long, default_value_t = 0)]
    pub dispatch_cost_ns: u64,
    /// Dispatcher cost per completion notification (ns).
    #[arg(long, default_value_t = 0)]
    pub completion_cost_ns: u64,
    /// Extra service time of a stolen request under `ws` (ns).
    #[arg(long, default_value_t = 0)]
    pub steal_cost_ns: u64,
    /// Capacity of each scheduler queue (the original's RQUEUE_LEN by default).
    #[arg(long, default_value_t = DEFAULT_QUEUE_CAPACITY)]
    pub queue_capacity: usize,
    /// Requests a worker holds at once: 1, or 2 for JBSQ(2) (the next request waits in a busy
    /// worker's queue and starts the moment the current one completes; the server's
    /// `psp.worker_queue_depth`). `ts` needs 1.
    #[arg(long, default_value_t = 1)]
    pub worker_queue_depth: usize,
    /// DARC: completions profiled before the bootstrap switch and between updates. The
    /// original's 50 000: keep `requests × warmup` above it so the c-FCFS bootstrap falls in
    /// the warm-up.
    #[arg(long, default_value_t = DarcParams::default().samples_needed)]
    pub darc_samples: u64,
    /// DARC: grouping factor δ.
    #[arg(long, default_value_t = DarcParams::default().delta)]
    pub darc_delta: f64,
    /// DARC: workers of demand past the rounding cut before a re-plan changes a group's
    /// worker count (0, the original: every crossing of the cut re-plans).
    #[arg(long, default_value_t = DarcParams::default().rounding_hysteresis)]
    pub darc_rounding_hysteresis: f64,
    /// DARC: plan once from the configured means and ratios instead of profiling.
    #[arg(long)]
    pub darc_oracle: bool,
    /// DARC: how re-plans choose the reservation: `formula` (the original's) or `model`
    /// (predicted tails; what `darc-model` always uses).
    #[arg(long, default_value = "formula", value_parser = parse_plan_mode)]
    pub darc_plan: PlanMode,
    /// Worker threads for the sweep (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl RunArgs {
    fn run_config(&self) -> Result<RunConfig> {
        if !(0.0..1.0).contains(&self.warmup) {
            bail!("--warmup {}: must be in [0, 1)", self.warmup);
        }
        if self.requests == 0 {
            bail!("--requests 0: need at least one request");
        }
        if !(self.slo.is_finite() && self.slo > 0.0) {
            bail!("--slo {}: must be a finite slowdown > 0", self.slo);
        }
        if self.threads == Some(0) {
            bail!("--threads 0: need at least one thread");
        }
        if !(1..=MAX_WORKER_QUEUE_DEPTH).contains(&self.worker_queue_depth) {
            bail!(
                "--worker-queue-depth {}: must be 1 or 2",
                self.worker_queue_depth
            );
        }
        Ok(RunConfig {
            workers: self.workers,
            requests: self.requests,
            seed: self.seed,
            warmup_fraction: self.warmup,
            dispatch_cost_ns: self.dispatch_cost_ns,
            completion_cost_ns: self.completion_cost_ns,
            steal_cost_ns: self.steal_cost_ns,
            timeline_window_ns: None,
            queue_capacity: self.queue_capacity,
            worker_queue_depth: self.worker_queue_depth,
        })
    }

    fn darc_params(&self) -> DarcParams {
        DarcParams {
            samples_needed: self.darc_samples,
            delta: self.darc_delta,
            rounding_hysteresis: self.darc_rounding_hysteresis,
            dynamic: !self.darc_oracle,
            plan: self.darc_plan,
            ..DarcParams::default()
        }
    }

    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    fn workload(&self) -> Result<Workload> {
        Workload::from_path(&self.workload)
            .with_context(|| format!("loading workload {}", self.workload.display()))
    }
}

/// `psp sim`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// Policies, comma-separated (names from psp_scheduler's policy registry).
    #[arg(long, short = 'p', default_value = "darc,cfcfs,dfcfs,sjf,ts", help = policies_help())]
    pub policies: String,
    /// Loads: `start:stop:step` (inclusive) or a comma-separated list.
    #[arg(long, short = 'l', default_value = "0.05:1.05:0.05")]
    pub load: String,
    /// Output directory (created) for results.csv and plot.svg.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// darc-static: workers reserved for the shortest type.
    #[arg(long, default_value_t = 1)]
    pub darc_static_reserved: usize,
    /// ts and darc-ts: preemption quantum (ns).
    #[arg(long, default_value_t = TimeSharingParams::default().quantum_ns)]
    pub ts_quantum_ns: u64,
    /// darc-ts: slice the longest group on its own workers too (default: only on the workers
    /// shorter groups lend it).
    #[arg(long)]
    pub darc_ts_slice_all: bool,
    /// ts and darc-ts: cost of one preemption (ns), charged to the preempted worker (psp-app's
    /// report measures it: flag set → worker free; ≈ 300 ns on a 2-core VM).
    #[arg(
        long,
        visible_alias = "preempt-cost-ns",
        default_value_t = TimeSharingParams::default().preemption_cost_ns
    )]
    pub preemption_cost_ns: u64,
    /// Also write timeline.csv and timeline.svg: slowdown percentiles of the requests that
    /// arrived in each window of this many ms (warm-up included), like the paper's Fig. 8; and,
    /// for DARC, plans.csv and plan.svg: every reservation plan applied and when.
    #[arg(long)]
    pub timeline_ms: Option<f64>,
}

/// `psp plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Workload YAML.
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// Application workers.
    #[arg(long, default_value_t = 14)]
    pub workers: usize,
    /// Grouping factor δ.
    #[arg(long, default_value_t = DarcParams::default().delta)]
    pub delta: f64,
    /// Fractional demand above this rounds up.
    #[arg(long, default_value_t = DarcParams::default().rounding_cut)]
    pub rounding_cut: f64,
    /// Also print the model planner's choice (`darc` with `plan: model`) and its predicted
    /// p99.9 slowdown per type beside DARC's plan, at `--load`.
    #[arg(long)]
    pub model: bool,
    /// Offered load the model plans for (with `--model`).
    #[arg(long, short = 'l', default_value_t = 0.9)]
    pub load: f64,
    /// How many of the model's best candidates to list (with `--model`).
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}

/// `psp search`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// Offered load of the search.
    #[arg(long, short = 'l')]
    pub load: f64,
    /// How many of the best allocations to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

fn parse_plan_mode(text: &str) -> Result<PlanMode, String> {
    PlanMode::parse(text).map_err(|e| e.to_string())
}

/// Parses `start:stop:step` (inclusive, to within half a step) or `a,b,c`.
pub fn parse_loads(spec: &str) -> Result<Vec<f64>> {
    let number = |s: &str| -> Result<f64> {
        let v: f64 = s
            .trim()
            .parse()
            .with_context(|| format!("--load: {s:?} is not a number"))?;
        if !(v.is_finite() && v > 0.0) {
            bail!("--load: {v} must be a positive load");
        }
        Ok(v)
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let loads = match parts.as_slice() {
        [start, stop, step] => {
            let (start, stop, step) = (number(start)?, number(stop)?, number(step)?);
            if stop < start {
                bail!("--load {spec}: stop {stop} is below start {start}");
            }
            let count = ((stop - start) / step + 0.5).floor() as usize + 1;
            if count > MAX_LOAD_POINTS {
                bail!("--load {spec}: {count} points, at most {MAX_LOAD_POINTS}");
            }
            // Rounded to 1e-9 so 0.05 + 2×0.05 prints as 0.15.
            (0..count)
                .map(|i| ((start + i as f64 * step) * 1e9).round() / 1e9)
                .collect()
        }
        [_] => spec
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(number)
            .collect::<Result<Vec<f64>>>()?,
        _ => bail!("--load {spec}: expected start:stop:step or a comma-separated list"),
    };
    if loads.is_empty() {
        bail!("--load {spec:?}: no load given");
    }
    Ok(loads)
}

/// Most load points one sweep accepts.
pub const MAX_LOAD_POINTS: usize = 1000;

/// `--policies` help: the registry's names and what each does.
fn policies_help() -> String {
    let mut help = String::from("Policies, comma-separated:");
    for entry in Registry::builtin().entries() {
        let scope = if entry.live { "" } else { " (simulator only)" };
        help.push_str(&format!("\n  {}: {}{scope}", entry.name, entry.summary));
    }
    help
}

/// Parses a comma-separated list of policy names through `registry` (default parameters).
pub fn parse_policy_names(registry: &Registry, spec: &str) -> Result<Vec<Policy>> {
    let mut out = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        out.push(
            registry
                .parse(name)
                .with_context(|| format!("--policies {name}"))?,
        );
    }
    if out.is_empty() {
        bail!("--policies {spec:?}: no policy given");
    }
    Ok(out)
}

/// `--policies` with the command line's DARC, darc-static and ts parameters applied.
fn parse_policies(args: &SimArgs, darc: &DarcParams) -> Result<Vec<Policy>> {
    let policies = parse_policy_names(&Registry::builtin(), &args.policies)?;
    Ok(policies
        .into_iter()
        .map(|policy| match policy {
            Policy::Darc(_) => Policy::Darc(darc.clone()),
            Policy::DarcModel(_) => Policy::DarcModel(DarcParams {
                plan: PlanMode::Model,
                ..darc.clone()
            }),
            Policy::DarcStatic { .. } => Policy::DarcStatic {
                reserved_short: args.darc_static_reserved,
            },
            Policy::TimeSharing(p) => Policy::TimeSharing(TimeSharingParams {
                quantum_ns: args.ts_quantum_ns,
                preemption_cost_ns: args.preemption_cost_ns,
                ..p
            }),
            Policy::DarcTs(p) => Policy::DarcTs(DarcTsParams {
                // The hybrid plans with DARC's formula (`--darc-plan` is for `darc`).
                darc: DarcParams {
                    plan: PlanMode::Formula,
                    ..darc.clone()
                },
                ts: TimeSharingParams {
                    quantum_ns: args.ts_quantum_ns,
                    preemption_cost_ns: args.preemption_cost_ns,
                    ..p.ts
                },
                slice_all: args.darc_ts_slice_all,
            }),
            other => other,
        })
        .collect())
}

fn progress_bar(total: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} points [{elapsed}<{eta}]")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// A slowdown as a table cell (two decimals).
fn fmt_slowdown(v: f64) -> String {
    psp_workload::report::fmt_cell(v, 2)
}

fn summary_table(results: &[RunResult], slo: f64) -> psp_workload::report::Table {
    let type_names: Vec<String> = results
        .first()
        .map(|r| r.stats.types().iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let mut header = vec![
        "policy".to_string(),
        "load".into(),
        "offered_rps".into(),
        "achieved_rps".into(),
        "p99.9_sd".into(),
    ];
    header.extend(type_names.iter().map(|n| format!("{n}_p99.9_sd")));
    header.extend(["drops".to_string(), "slo".into(), "plan".into()]);
    let mut table = psp_workload::report::Table::new(header);
    for r in results {
        let mut row = vec![
            r.policy.to_string(),
            format!("{:.2}", r.load),
            format!("{:.0}", r.offered_rps),
            format!("{:.0}", r.achieved_rps),
            fmt_slowdown(r.stats.slowdown().p999),
        ];
        row.extend(
            r.stats
                .types()
                .iter()
                .map(|t| fmt_slowdown(t.slowdown().p999)),
        );
        row.push(r.stats.dropped().to_string());
        row.push(if passes_slo(r, slo) { "ok" } else { "VIOLATED" }.into());
        row.push(
            r.final_allocation
                .as_ref()
                .map_or_else(|| "-".into(), |a| format!("{a:?}").replace(' ', "")),
        );
        table.push(row);
    }
    table
}

fn run_sim(args: &SimArgs) -> Result<()> {
    let workload = args.run.workload()?;
    let run = args.run.run_config()?;
    let darc = args.run.darc_params();
    let policies = parse_policies(args, &darc)?;
    if run.worker_queue_depth > 1 {
        if let Some(ts) = policies.iter().find(|p| p.time_sharing().is_some()) {
            bail!(
                "--worker-queue-depth {}: {} preempts the request a worker runs and needs depth 1 (leave it out of --policies)",
                run.worker_queue_depth,
                ts.name()
            );
        }
    }
    let loads = parse_loads(&args.load)?;
    let mut run = run;
    if let Some(ms) = args.timeline_ms {
        let window_ns = ms * 1e6;
        if !(window_ns.is_finite() && window_ns >= 1.0) {
            bail!("--timeline-ms {ms}: must be a positive number of milliseconds");
        }
        run.timeline_window_ns = Some(window_ns as u64);
    }
    if policies
        .iter()
        .any(|p| p.darc_params().is_some_and(|d| d.dynamic))
    {
        cover_darc_bootstrap(&mut run, darc.samples_needed);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let spec = SweepSpec {
        policies: policies.clone(),
        loads,
        run,
        threads: args.run.threads(),
    };
    let bar = progress_bar(spec.policies.len() * spec.loads.len());
    let started = std::time::Instant::now();
    let results = sweep(&workload, &spec, &|| bar.inc(1)).context("simulating the sweep")?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    write_outputs(&args.out, &workload, &results, &policies, args.run.slo)?;
    if args.timeline_ms.is_some() {
        write_timeline(&args.out, &workload, &results, args.run.slo)?;
    }
    out!("{}", summary_table(&results, args.run.slo).to_text());
    let simulated: u64 = results.iter().map(|r| r.arrivals).sum();
    outln!(
        "\n{} points, {simulated} requests simulated in {:.2} s ({:.2} M requests/s over {} threads)",
        results.len(),
        elapsed.as_secs_f64(),
        simulated as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
        spec.threads
    );
    let phase_mean = workload.mean_service_ns();
    outln!(
        "capacity at overall p99.9 slowdown ≤ {} (drops ≤ 0.1 %, achieved ≥ 99.9 % of offered):",
        args.run.slo
    );
    for p in &policies {
        match capacity(&results, p.name(), args.run.slo) {
            Some(load) => outln!(
                "  {:<12} load {load:.2} ({:.0} rps)",
                p.name(),
                load * args.run.workers as f64 * 1e9 / phase_mean
            ),
            None => outln!("  {:<12} no load point meets the SLO", p.name()),
        }
    }
    let (replans, candidates) = results.iter().fold((0, 0), |(r, c), x| {
        (r + x.model_replans, c + x.model_candidates)
    });
    if replans > 0 {
        outln!(
            "model planner: {replans} re-plans over the sweep, {:.0} candidate allocations \
             each (time per re-plan: cargo bench -p psp-scheduler --bench planner)",
            candidates as f64 / replans as f64
        );
    }
    outln!(
        "wrote {} and {}",
        args.out.join(RESULTS_CSV).display(),
        args.out.join(PLOT_SVG).display()
    );
    Ok(())
}

/// Sizes the warm-up so that dynamic DARC's c-FCFS bootstrap (its first `samples_needed`
/// requests, profiled before the first plan) is not recorded: otherwise a run with fewer
/// requests than that profiling needs measures mostly c-FCFS and DARC's capacity drops silently
/// (0.90 → 0.55 on DISP2 with `--requests 200000`). Every policy gets the same warm-up (same
/// arrivals). Where the bootstrap would take more than half the requests, warns instead.
fn cover_darc_bootstrap(run: &mut RunConfig, samples_needed: u64) {
    let warmup_requests = (run.warmup_fraction * run.requests as f64) as u64;
    if warmup_requests >= samples_needed {
        return;
    }
    if samples_needed.saturating_mul(2) <= run.requests {
        // A 10 % margin: the switch happens after `samples_needed` dispatches.
        let covered = (samples_needed as f64 * 1.1).min(run.requests as f64 / 2.0);
        run.warmup_fraction = covered / run.requests as f64;
        eprintln!(
            "note: warm-up raised from {warmup_requests} to {} requests ({:.1} %) so that DARC's \
             c-FCFS bootstrap ({samples_needed} profiled requests) is not recorded",
            covered as u64,
            run.warmup_fraction * 100.0
        );
    } else {
        eprintln!(
            "warning: DARC bootstraps in c-FCFS for its first {samples_needed} requests, more \
             than half of the {} simulated: its figures are mostly c-FCFS's (raise --requests \
             or lower --darc-samples)",
            run.requests
        );
    }
}

/// `--timeline-ms`: timeline.csv and timeline.svg, and for DARC plans.csv and plan.svg.
fn write_timeline(out: &Path, workload: &Workload, results: &[RunResult], slo: f64) -> Result<()> {
    timeline_table(results)
        .write_csv_file(out.join(TIMELINE_CSV))
        .context("writing the timeline CSV")?;
    timeline_plot(workload, results, slo)
        .write_svg(out.join(TIMELINE_SVG))
        .context("writing the timeline plot")?;
    outln!("wrote {}", out.join(TIMELINE_CSV).display());
    if results.iter().any(|r| !r.plan_log.is_empty()) {
        plans_table(results)
            .write_csv_file(out.join(PLANS_CSV))
            .context("writing the plans CSV")?;
        plan_plot(workload, results)
            .write_svg(out.join(PLAN_SVG))
            .context("writing the plan plot")?;
        outln!("wrote {}", out.join(PLANS_CSV).display());
    }
    Ok(())
}

/// File name of the timeline CSV (`--timeline-ms`).
pub const TIMELINE_CSV: &str = "timeline.csv";
/// File name of the timeline plot (`--timeline-ms`).
pub const TIMELINE_SVG: &str = "timeline.svg";

/// One row per policy × load × window: completions per type, drops, slowdown percentiles.
pub fn timeline_table(results: &[RunResult]) -> psp_workload::report::Table {
    let names: Vec<String> = results
        .first()
        .map(|r| r.stats.types().iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = ["policy", "load", "window_start_ms"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(names.iter().map(|n| format!("{n}_completed")));
    header.extend(
        ["dropped", "p50_slowdown", "p99_slowdown", "p999_slowdown"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut table = psp_workload::report::Table::new(header);
    for r in results {
        for w in &r.timeline {
            let mut row = vec![
                r.policy.to_string(),
                format!("{:.3}", r.load),
                format!("{:.3}", w.start_ns as f64 / 1e6),
            ];
            row.extend(w.completed.iter().map(u64::to_string));
            row.push(w.dropped.to_string());
            row.extend([0.5, 0.99, 0.999].map(|q| fmt_slowdown(w.slowdown_at(q))));
            table.push(row);
        }
    }
    table
}

/// File name of the DARC plan log (`--timeline-ms`).
pub const PLANS_CSV: &str = "plans.csv";
/// File name of the plot of the DARC plan over time (`--timeline-ms`).
pub const PLAN_SVG: &str = "plan.svg";

/// One row per plan change of every run: when, which profiling window, workers reserved to each
/// type's group and the type's profiled ratio.
pub fn plans_table(results: &[RunResult]) -> psp_workload::report::Table {
    let names: Vec<String> = results
        .first()
        .map(|r| r.stats.types().iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = ["policy", "load", "at_ms", "darc_window", "changed"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(names.iter().map(|n| format!("{n}_workers")));
    header.extend(names.iter().map(|n| format!("{n}_ratio")));
    let mut table = psp_workload::report::Table::new(header);
    for r in results {
        for change in &r.plan_log {
            let mut row = vec![
                r.policy.to_string(),
                format!("{:.3}", r.load),
                format!("{:.3}", change.at_ns as f64 / 1e6),
                change.window_id.to_string(),
                change.changed.to_string(),
            ];
            row.extend(change.reserved_per_type.iter().map(u16::to_string));
            row.extend(change.ratios.iter().map(|x| format!("{x:.4}")));
            table.push(row);
        }
    }
    table
}

/// Workers reserved to each type's group over time (a step line per run × type), from the plan
/// log: where DARC re-planned and what it chose.
pub fn plan_plot(workload: &Workload, results: &[RunResult]) -> LinePlot {
    let mut plot = LinePlot::new(
        &format!("{}: DARC reservations over time", workload.name),
        "virtual time (ms)",
        "workers reserved to the type's group",
        false,
    );
    for r in results.iter().filter(|r| !r.plan_log.is_empty()) {
        let end_ms = r.end_ns as f64 / 1e6;
        for (t, stats) in r.stats.types().iter().enumerate() {
            let mut points = Vec::new();
            for (i, change) in r.plan_log.iter().enumerate() {
                let y = f64::from(change.reserved_per_type.get(t).copied().unwrap_or(0));
                let x = change.at_ns as f64 / 1e6;
                if let Some(&(_, previous)) = points.last() {
                    points.push((x, previous));
                }
                points.push((x, y));
                if i + 1 == r.plan_log.len() {
                    points.push((end_ms.max(x), y));
                }
            }
            plot.series.push(Series {
                name: format!("{} @ {:.2}: {}", r.policy, r.load, stats.name),
                points,
            });
        }
    }
    plot
}

/// p99.9 slowdown per window over time, one line per policy × load.
pub fn timeline_plot(workload: &Workload, results: &[RunResult], slo: f64) -> LinePlot {
    let mut plot = LinePlot::new(
        &format!("{}: p99.9 slowdown over time", workload.name),
        "arrival time (ms of virtual time)",
        "p99.9 slowdown (requests arrived in the window)",
        true,
    );
    plot.reference_line = Some((slo, format!("SLO {slo}")));
    for r in results {
        plot.series.push(Series {
            name: format!("{} @ {:.2}", r.policy, r.load),
            points: r
                .timeline
                .iter()
                .map(|w| (w.start_ns as f64 / 1e6, w.slowdown_at(0.999)))
                .filter(|p| !p.1.is_nan())
                .collect(),
        });
    }
    plot
}

/// File name of the sweep's CSV.
pub const RESULTS_CSV: &str = "results.csv";
/// File name of the sweep's plot.
pub const PLOT_SVG: &str = "plot.svg";

fn write_outputs(
    out: &Path,
    workload: &Workload,
    results: &[RunResult],
    policies: &[Policy],
    slo: f64,
) -> Result<()> {
    results_table(results, slo)
        .write_csv_file(out.join(RESULTS_CSV))
        .context("writing the results CSV")?;
    slowdown_plot(workload, results, policies, slo)
        .write_svg(out.join(PLOT_SVG))
        .context("writing the plot")?;
    Ok(())
}

fn run_plan(args: &PlanArgs) -> Result<()> {
    let workload = Workload::from_path(&args.workload)
        .with_context(|| format!("loading workload {}", args.workload.display()))?;
    if args.workers == 0 || args.workers > psp_scheduler::MAX_WORKERS {
        bail!(
            "--workers {}: must be between 1 and {}",
            args.workers,
            psp_scheduler::MAX_WORKERS
        );
    }
    let params = DarcParams {
        delta: args.delta,
        rounding_cut: args.rounding_cut,
        ..DarcParams::default()
    };
    params
        .validate()
        .context("--delta / --rounding-cut out of range")?;
    out!("{}", describe_plans(&workload, args.workers, &params));
    if args.model {
        if !(args.load.is_finite() && args.load > 0.0) {
            bail!("--load {}: must be a positive load", args.load);
        }
        out!(
            "{}",
            crate::alloc::describe_model_plans(
                &workload,
                args.workers,
                &params,
                args.load,
                args.top
            )
        );
    }
    Ok(())
}

fn run_search(args: &SearchArgs) -> Result<()> {
    let workload = args.run.workload()?;
    let run = args.run.run_config()?;
    let params = args.run.darc_params();
    let groups = workload.phases.first().map_or(0, |p| {
        psp_scheduler::group_types(&crate::alloc::type_profiles(p), params.delta).len()
    });
    // DARC's formula plus every allocation.
    let bar = progress_bar(1 + crate::alloc::allocations(groups, run.workers).len());
    let report = search(
        &workload,
        args.load,
        args.run.slo,
        &run,
        args.run.threads(),
        &params,
        &|| bar.inc(1),
    )
    .context("searching allocations")?;
    bar.finish_and_clear();
    outln!(
        "{} at load {:.2} on {} workers, {} requests per allocation: {} allocations simulated",
        workload.name,
        args.load,
        args.run.workers,
        args.run.requests,
        report.ranked.len()
    );
    let model = workload
        .phases
        .first()
        .map(|p| crate::alloc::phase_model(p, args.load, run.workers, &params));
    let predicted = |c: &crate::alloc::Candidate| -> String {
        match (&model, &c.allocation) {
            (Some(m), Some(a)) => fmt_slowdown(m.predict(a).overall_p999),
            (Some(m), None) => {
                let counts: Vec<usize> = report
                    .formula_plan
                    .groups
                    .iter()
                    .map(|g| g.reserved.len())
                    .collect();
                if counts.iter().sum::<usize>() <= run.workers {
                    fmt_slowdown(m.predict(&counts).overall_p999)
                } else {
                    "-".into()
                }
            }
            _ => "-".into(),
        }
    };
    let show = |label: &str, c: &crate::alloc::Candidate| -> Result<()> {
        outln!(
            "  {label:<28} overall p99.9 slowdown {:>9}  (model {:>9})  {}",
            fmt_slowdown(c.score()),
            predicted(c),
            if report.passes(c) {
                "meets SLO"
            } else {
                "violates SLO"
            }
        );
        Ok(())
    };
    outln!("DARC formula plan:");
    for (g, group) in report.formula_plan.groups.iter().enumerate() {
        outln!(
            "  group {g}: demand {:.3} → reserved {:?}{}",
            group.demand_workers,
            group.reserved.iter().map(|w| w.index()).collect::<Vec<_>>(),
            if group.uses_spillway {
                " (+spillway)"
            } else {
                ""
            }
        );
    }
    show("DARC formula", &report.formula)?;
    outln!("best fixed allocations (workers per group, shortest group first):");
    for c in report.ranked.iter().take(args.top) {
        show(&format!("{:?}", c.allocation.as_deref().unwrap_or(&[])), c)?;
    }
    Ok(())
}
