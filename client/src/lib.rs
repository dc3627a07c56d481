//! # psp-client: the open-loop load generator
//!
//! A Rust counterpart of Perséphone's client (docs/design.md §5): it sends a workload's requests at
//! pre-drawn intended times over any [`psp_net::port::Port`] — DPDK (memif, NICs) in the
//! `psp-client` binary, kernel UDP sockets, or the in-memory pair in tests — never waiting for
//! responses, and measures each latency from the request's **intended** send time.
//!
//! - [`config`]: the Perséphone client YAML (docs/design.md §6.2) validated and turned into a
//!   [`psp_workload::Workload`], so the client draws requests exactly like the simulator.
//! - [`engine`]: the send/receive logic as a sans-IO state machine given the time
//!   ([`engine::ClientMachine`], tested on virtual time), the thin I/O loop around it
//!   ([`engine::Engine`]), per-phase arrivals, the response path ([`engine::ResponseSink`]:
//!   parse, match, record) and run results.
//! - [`inflight`]: the preallocated table of outstanding requests; a `req_id` encodes slot index
//!   and generation, so stale, duplicate and unknown responses are told apart.
//! - [`report`]: stdout table and final line, `summary.json`, the original's `traces_hist` and
//!   `traces_rates`, HDR interval logs.
//! - [`merge`]: exact merging of several clients' outputs ([`merge::merge_dirs`]).
//! - [`sweep`]: load ranges relative to capacity, sweep CSV and SVG plots.
//!
//! ## Invariants
//! - Open loop: the schedule (intended times, types, service times) depends only on the
//!   workload, the rates and the seed; falling behind never shifts it.
//! - The per-request path allocates nothing, takes no lock and logs nothing: counters only.
//! - Every sent request ends as exactly one of answered in time, answered late (after the client
//!   gave up on it) and never answered: `sent = received + late + unanswered`, overall and per
//!   type, with and without warm-up ([`report::Summary::accounting_errors`]). A request is
//!   answered at most once; late and never answered ones are +∞ in every percentile.
//! - Bad input (config, responses) yields an error naming field and value, or a counter; never
//!   a panic.
//!
//! ## Tests
//! Unit tests in every module; `tests/engine.rs` runs the engine over the in-memory port pair
//! against echo threads (including faulty ones) and over kernel UDP on 127.0.0.1; the root
//! crate's `tests/client_server_{udp,memif}.rs` run the real `psp-app` and `psp-client`
//! processes. Benches: `benches/response_path.rs` (criterion, per response),
//! `benches/send_rate.rs` (sustained send rate and send lag of one core) and
//! `benches/idle_cpu.rs` (CPU share of an idle engine thread per idle policy at 10 krps).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod inflight;
pub mod merge;
pub mod report;
pub mod sweep;
