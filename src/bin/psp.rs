//! `psp`: offline tools — the simulator (`sim`), DARC's plan (`plan`) and the allocation
//! search (`search`). The logic lives in `psp_sim::cli`; this is only the entry point.
//! Further subcommands join [`Command`] next to the flattened simulator ones.

use clap::{Parser, Subcommand};

/// psp tools: simulate scheduling policies, print DARC plans, search allocations.
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(c) => psp_sim::cli::run(c),
    }
}
