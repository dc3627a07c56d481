//! `psp`: tools — the simulator (`sim`), DARC's plan (`plan`), the allocation search (`search`),
//! `live` (the experiment on real processes: `psp::live`), `top` (a running server's numbers
//! from its control socket: `psp::top`) and `merge`, which combines several psp-client runs' histograms exactly.
//! The simulator's logic lives in `psp_sim::cli` and the merge in `psp_client::merge`; this is
//! only the entry point.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// psp tools: simulate scheduling policies, print DARC plans, search allocations, merge client runs.
#[derive(Debug, Parser)]
#[command(name = "psp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Sim(psp_sim::cli::Command),
    /// Run the paper's experiment live: psp-app per policy and psp-client sweeping the loads on
    /// this machine's cores, compared with the simulator (live.csv, plot.svg, a table).
    Live(psp::live::LiveArgs),
    /// Merge several psp-client output directories (multi-machine runs): histograms are added,
    /// never percentiles averaged; writes summary.json, *.hlog, traces_hist and traces_rates.
    Merge(MergeArgs),
    /// Show a running server's numbers from its control socket (psp.control.socket), refreshed
    /// every telemetry window; --once prints one snapshot and exits.
    Top(psp::top::TopArgs),
    /// DARC's plans over a live run, from the server's telemetry.jsonl: plans.csv, plan.svg
    /// (workers reserved per type over time) and mix.svg; with --client, judges re-planning at
    /// the client's phase shifts.
    Plans(psp::plans::PlansArgs),
}

/// `psp merge`.
#[derive(Debug, Args)]
struct MergeArgs {
    /// psp-client output directories (each holds summary.json, latency.hlog, slowdown.hlog).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where the merged outputs go (created).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
}

fn merge(args: &MergeArgs) -> anyhow::Result<()> {
    let summary = psp_client::merge::merge_dirs(&args.dirs, &args.out)
        .with_context(|| format!("merging {} client runs", args.dirs.len()))?;
    let mut stdout = std::io::stdout().lock();
    psp_client::report::print_summary(&mut stdout, &summary).context("writing the summary")?;
    println!("merged outputs written to {}", args.out.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    psp::exit::init();
    psp::exit::finish("psp", run())
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(c) => psp_sim::cli::run(c),
        Command::Merge(args) => merge(&args),
        Command::Live(args) => psp::live::run(&args),
        Command::Top(args) => psp::top::run(&args),
        Command::Plans(args) => psp::plans::run(&args),
    }
}
