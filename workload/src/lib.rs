//! # psp-workload: workloads, generators, statistics and reports
//!
//! Shared by the simulator (`psp-sim`) and the load generator (`psp-client`), so that both read
//! the same workload files, draw requests the same way and summarise latencies the same way.
//!
//! - [`spec`]: the workload YAML. The schema is Perséphone's schedule schema (a list of phases,
//!   each with `mean_ns`, `ratios`, `rtype`, `duration`, `uniform`, `ptype`; docs/design.md §6.3,
//!   §5.2–5.3) plus optional extensions: per-type service distributions, an explicit arrival
//!   process, per-type deadlines and explicit wire ids. Parsing validates everything and yields a
//!   [`Workload`]; errors name the field and the value.
//! - [`gen`]: seeded, allocation-free per-request samplers: type picker (cumulative ratios),
//!   inter-arrival gaps (Poisson or uniform), service times (fixed, exponential, lognormal,
//!   bimodal).
//! - [`stats`]: per-type HDR histograms of latency and slowdown, the overall slowdown histogram
//!   (p99.9 of per-request slowdown across types, docs/design.md §5.6), unanswered requests
//!   counted as +∞, exact merging. Memory does not grow with the number of requests.
//! - [`report`]: CSV tables and an SVG line plot (log y axis), e.g. "p99.9 slowdown vs load".
//!
//! ## Invariants
//! - A validated [`Workload`] has ≥ 1 phase, every phase ≥ 1 type, ratios in `[0, 1]` summing to
//!   1 (± [`spec::RATIO_SUM_TOLERANCE`]), finite positive means and durations.
//! - The same type name always carries the same wire id in every phase ([`Workload::classes`]).
//!
//! ## Tests
//! Unit tests in each module (parsing errors, sampler means, percentile and merge exactness),
//! and `tests/configs.rs`, which parses every file of `configs/workloads/` and checks the mean
//! service times against docs/design.md §1.9.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod gen;
pub mod report;
pub mod spec;
pub mod stats;

pub use gen::{InterArrivalSampler, PhaseGenerator, Sampled, ServiceSampler, TypePicker};
pub use spec::{
    wire_id_for_name, ArrivalProcess, PacketType, Phase, RequestType, ServiceDist, TypeClass,
    Workload, WorkloadError,
};
pub use stats::{Percentiles, RunStats, StatsError, TypeStats};
