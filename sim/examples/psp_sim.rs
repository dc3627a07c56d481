//! The `psp` simulator subcommands without the root package (which needs DPDK to build):
//! `cargo run --release -p psp-sim --example psp_sim -- sim --workload configs/workloads/DISP2.yml --out /tmp/disp2`.

use clap::Parser;

/// psp simulator tools (sim, plan, search).
#[derive(Debug, Parser)]
#[command(name = "psp_sim", about)]
struct Cli {
    #[command(subcommand)]
    command: psp_sim::cli::Command,
}

fn main() -> anyhow::Result<()> {
    psp_sim::cli::run(Cli::parse().command)
}
