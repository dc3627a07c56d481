//! # psp-sim: a discrete-event simulator of psp's dispatcher
//!
//! Drives [`psp_scheduler::Scheduler`] through its public, sans-IO API in virtual time, with
//! open-loop arrivals from a [`psp_workload::Workload`], so a policy simulated here makes the
//! decisions it makes in the live server.
//!
//! - [`mod@engine`]: one run (one policy, one load): event loop, dispatcher costs, preemption for
//!   `ts`, warm-up, statistics overall and per phase, an optional per-window timeline.
//!   Deterministic for a seed; no per-request allocation in steady state.
//! - [`mod@sweep`]: every policy × every load in parallel; capacity at an SLO; CSV rows; the
//!   p99.9-slowdown-vs-load plot.
//! - [`alloc`]: DARC's plan from configured means (`psp plan`) and the exhaustive search of
//!   per-group worker counts (`psp search`).
//! - [`cli`]: the `psp sim | plan | search` subcommands (clap derive).
//!
//! ## Load and slowdown conventions (docs/design.md §5.6)
//! Load 1.0 is `workers / Σ(mean·ratio)` requests per second. Slowdown is a request's latency
//! divided by its type's configured mean; the headline metric is the p99.9 of the per-request
//! slowdown over all types.
//!
//! ## DARC and run length
//! DARC profiles before it reserves: it starts in c-FCFS and switches after
//! `samples_needed` dispatched requests (50 000, the original's `RESA_SAMPLES_NEEDED`). The
//! simulator keeps that default; the warm-up (10 % of the arrivals) hides the bootstrap only
//! when the run has at least 500 000 requests. Shorter runs should lower `--darc-samples` (the
//! CLI prints a note) or use `--darc-oracle`.
//!
//! ## Tests
//! `tests/engine.rs`: determinism (also across thread counts), conservation under every policy
//! (with and without drops), an M/M/1 check, DARC beating c-FCFS on DISP2 at high load,
//! dispatcher-cost serialization, `ts` preemptions, sched4 phases; `tests/cli.rs`: CLI smoke
//! tests writing CSV/SVG (and the timeline), `plan` against docs/design.md §1.9, a small `search`.
//!
//! ## Speed
//! `cargo bench -p psp-sim --bench throughput` prints simulated requests per second per core
//! (per CPU-second of the simulating thread); the criterion bench `sim` measures the same per
//! policy. `ts` is slower per request because every quantum is an event (a 100 µs request at
//! a 5 µs quantum is 20 events).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alloc;
pub mod cli;
pub mod engine;
pub mod sweep;

pub use engine::{run, PlanChange, RunConfig, RunResult, SimError};
pub use sweep::{capacity, passes_slo, sweep, SweepSpec};
