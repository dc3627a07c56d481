//! What a run leaves behind: the stdout lines, the JSON summary, the original's `traces_hist`
//! and `traces_rates`, and HDR interval logs that [`crate::merge`] can add up exactly.
//!
//! Everything is produced from a [`Report`], which holds histograms and counts only, so a report
//! built from one run ([`Report::from_run`]) and one merged from several clients' logs
//! ([`crate::merge::merge_dirs`]) print and serialise the same way.
//!
//! ## Files (written by [`write_run_files`])
//! - `summary.json`: [`Summary`] (serde_json); +∞ percentiles are the string `"inf"`, empty ones
//!   `null`. Counts: `counters` (all requests, warm-up included) and `measured` (post-warm-up),
//!   each `sent = received + late + unanswered`; the per-type rows add up to both
//!   ([`Summary::accounting_errors`] checks it); `stopped_early` marks partial results.
//! - `latency.hlog`, `slowdown.hlog`: interval logs (HdrHistogram's standard text format, V2
//!   deflate encoding), one interval per type tagged with the type name; the slowdown values
//!   are ×[`SLOWDOWN_SCALE`]. `send_lag.hlog`: the send-lag histogram (tag `send_lag`).
//! - `traces_hist`: docs/design.md §5.5 — warm-up cut, unanswered skipped, 1000 ns buckets; first
//!   all requests under the label `UNKNOWN`, then each type; per block a line
//!   `TYPE MIN MAX COUNT TOTAL <bucket_lo_ns…>` and a line `<name> min max count total <counts…>`
//!   (non-zero buckets only, tab-separated). Buckets come from the HDR histograms, exact below
//!   16 µs and within 0.1 % above; TOTAL is `mean·count`.
//! - `traces_rates`: `OFFERED\tACHIEVED`, one line per schedule (rps).
//!
//! Tested below (round trip of the files, the `traces_hist` layout, the +∞ rule).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use psp_workload::stats::{Percentiles, SLOWDOWN_SCALE};
use psp_workload::Workload;
use serde::{Deserialize, Serialize, Serializer};

use crate::engine::{Counters, Outcomes, PhaseResult, RunResult, TraceRecord};

/// Width of a `traces_hist` bucket (docs/design.md §5.5: 1000 ns).
pub const TRACES_HIST_BUCKET_NS: u64 = 1000;
/// File names inside an output directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// Latency interval log.
pub const LATENCY_LOG_FILE: &str = "latency.hlog";
/// Slowdown interval log.
pub const SLOWDOWN_LOG_FILE: &str = "slowdown.hlog";
/// Send-lag interval log.
pub const SEND_LAG_LOG_FILE: &str = "send_lag.hlog";
/// The original's latency histogram file.
pub const TRACES_HIST_FILE: &str = "traces_hist";
/// The original's offered/achieved rates file.
pub const TRACES_RATES_FILE: &str = "traces_rates";
/// The original's per-request trace file (`--sample` ≥ 0).
pub const TRACES_FILE: &str = "traces";
/// Tag of the send-lag histogram.
pub const SEND_LAG_TAG: &str = "send_lag";
/// The label of the all-types block in `traces_hist` (the original's).
pub const ALL_TYPES_LABEL: &str = "UNKNOWN";

/// Errors from writing or reading outputs.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A histogram could not be encoded or decoded, or a log is malformed.
    #[error("{path}: {why}")]
    Histogram {
        /// The path.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// A summary could not be (de)serialised.
    #[error("{path}: {source}")]
    Json {
        /// The path.
        path: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// Plotting or CSV failed.
    #[error(transparent)]
    Plot(#[from] psp_workload::report::ReportError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub use psp_workload::stats::{new_histogram, sum_histograms};

/// One type's measured data.
#[derive(Clone, Debug)]
pub struct TypeReport {
    /// Type name.
    pub name: String,
    /// Wire id.
    pub wire_id: u32,
    /// Configured mean (ns) in the first phase that has the type.
    pub mean_ns: f64,
    /// Outcomes of all its requests (warm-up included).
    pub all: Outcomes,
    /// Outcomes of its measured (post-warm-up) requests: the late and never answered ones are
    /// +∞ in the percentiles.
    pub measured: Outcomes,
    /// Latency (ns) of measured answered requests.
    pub latency_ns: Histogram<u64>,
    /// Slowdown ×[`SLOWDOWN_SCALE`] of measured answered requests.
    pub slowdown_scaled: Histogram<u64>,
}

/// A run's (or several merged runs') results, ready to print and write.
#[derive(Clone, Debug)]
pub struct Report {
    /// Run label.
    pub label: String,
    /// Workload name.
    pub workload: String,
    /// Seed (of the first run for a merge).
    pub seed: u64,
    /// Load relative to the workload's capacity, for sweeps.
    pub load: Option<f64>,
    /// Counters (summed over merged runs).
    pub counters: Counters,
    /// Per phase (sent/received summed, rates summed over merged runs).
    pub phases: Vec<PhaseSummary>,
    /// Per type.
    pub types: Vec<TypeReport>,
    /// Send lag (ns).
    pub send_lag_ns: Histogram<u64>,
    /// Per phase, per type (multi-phase runs only): the interval logs then hold one interval per
    /// phase, a time series; their sum per type is `types`.
    pub phase_histograms: Vec<Vec<PhaseTypeHistograms>>,
    /// Where the measured interval starts, seconds after the run's start (phase intervals are
    /// logged relative to it).
    pub measured_offset_s: f64,
    /// Wall-clock start of the measured interval, seconds since the epoch.
    pub start_epoch_s: f64,
    /// Length of the measured interval, seconds.
    pub measured_s: f64,
    /// Whether the run (any merged run) ended before its schedule did: partial results.
    pub stopped_early: bool,
}

/// Per-phase rates and counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Configured rate (rps).
    pub rate_rps: f64,
    /// Offered rate (rps): sent / (last send − phase start).
    pub offered_rps: f64,
    /// Achieved rate (rps): received / (last response − phase start).
    pub achieved_rps: f64,
    /// Requests sent.
    pub sent: u64,
    /// Responses matched.
    pub received: u64,
    /// Intended start of the phase, seconds after the run's start.
    #[serde(default)]
    pub start_s: f64,
    /// Intended length of the phase, seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// Latency percentiles (ns) of the phase's measured requests (multi-phase runs only).
    #[serde(default)]
    pub latency_ns: Option<PercentileSummary>,
    /// Slowdown percentiles of the phase's measured requests (multi-phase runs only).
    #[serde(default)]
    pub slowdown: Option<PercentileSummary>,
}

impl From<&PhaseResult> for PhaseSummary {
    fn from(p: &PhaseResult) -> Self {
        Self {
            rate_rps: p.rate_rps,
            offered_rps: p.offered_rps(),
            achieved_rps: p.achieved_rps(),
            sent: p.sent,
            received: p.received,
            start_s: p.start_ns as f64 / 1e9,
            duration_s: p.duration_ns as f64 / 1e9,
            latency_ns: None,
            slowdown: None,
        }
    }
}

/// One type's histograms within one phase.
#[derive(Clone, Debug)]
pub struct PhaseTypeHistograms {
    /// Type name (the log tag).
    pub name: String,
    /// Latency (ns) of the phase's measured answered requests of this type.
    pub latency_ns: Histogram<u64>,
    /// Slowdown ×[`SLOWDOWN_SCALE`].
    pub slowdown_scaled: Histogram<u64>,
}

/// Percentiles with +∞ written as `"inf"` and NaN (no data) as `null` in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PercentileSummary {
    /// Answered requests.
    pub count: u64,
    /// Requests counted as +∞.
    pub infinite: u64,
    /// Median.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub p50: f64,
    /// 90th.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub p90: f64,
    /// 99th.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub p99: f64,
    /// 99.9th.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub p999: f64,
    /// 99.99th.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub p9999: f64,
    /// Largest finite value.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub max: f64,
    /// Mean of finite values.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub mean: f64,
}

fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_none()
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(*v)
    }
}

fn de_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
        Null(()),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Num(v) => v,
        Raw::Text(t) if t == "-inf" => f64::NEG_INFINITY,
        Raw::Text(_) => f64::INFINITY,
        Raw::Null(()) => f64::NAN,
    })
}

impl From<Percentiles> for PercentileSummary {
    fn from(p: Percentiles) -> Self {
        Self {
            count: p.count,
            infinite: p.infinite,
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            p9999: p.p9999,
            max: p.max,
            mean: p.mean,
        }
    }
}

/// Percentiles of `h` with `infinite` more samples at +∞, values divided by `scale`
/// ([`psp_workload::stats::percentiles`], in the JSON summary's form).
pub fn percentiles(h: &Histogram<u64>, infinite: u64, scale: f64) -> PercentileSummary {
    psp_workload::stats::percentiles(h, infinite, scale).into()
}

/// One type in the JSON summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeSummary {
    /// Type name.
    pub name: String,
    /// Wire id.
    pub wire_id: u32,
    /// Configured mean (ns).
    pub mean_ns: f64,
    /// Requests sent (warm-up included).
    pub sent: u64,
    /// Answered in time (warm-up included).
    pub received: u64,
    /// Answered after the client gave up on them (warm-up included).
    #[serde(default)]
    pub late: u64,
    /// Never answered (warm-up included): `sent = received + late + unanswered`.
    pub unanswered: u64,
    /// The same for measured (post-warm-up) requests only; its late and unanswered requests
    /// are the +∞ of the percentiles.
    #[serde(default)]
    pub measured: Outcomes,
    /// Latency percentiles (ns).
    pub latency_ns: PercentileSummary,
    /// Slowdown percentiles.
    pub slowdown: PercentileSummary,
}

/// The JSON summary (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run label.
    pub label: String,
    /// Workload name.
    pub workload: String,
    /// Seed.
    pub seed: u64,
    /// Load relative to capacity (sweeps).
    pub load: Option<f64>,
    /// Offered rate over all phases (rps).
    pub offered_rps: f64,
    /// Achieved rate over all phases (rps).
    pub achieved_rps: f64,
    /// Counters (all requests, warm-up included; the per-type rows add up to them).
    pub counters: Counters,
    /// Outcomes of measured (post-warm-up) requests, all types (the per-type `measured` add up
    /// to it).
    #[serde(default)]
    pub measured: Outcomes,
    /// Whether the run ended before its schedule did (e.g. the link went down): partial
    /// results.
    #[serde(default)]
    pub stopped_early: bool,
    /// Per phase.
    pub phases: Vec<PhaseSummary>,
    /// Send lag percentiles (ns).
    pub send_lag_ns: PercentileSummary,
    /// All types: latency (ns).
    pub latency_ns: PercentileSummary,
    /// All types: per-request slowdown (docs/design.md §5.6).
    pub slowdown: PercentileSummary,
    /// Per type.
    pub types: Vec<TypeSummary>,
    /// Wall-clock start of the measured interval, seconds since the epoch.
    pub start_epoch_s: f64,
    /// Where the measured interval starts in the run, seconds (the warm-up before it): the run,
    /// whose time the phases' `start_s` count, started at `start_epoch_s − measured_offset_s`.
    #[serde(default)]
    pub measured_offset_s: f64,
    /// Length of the measured interval, seconds.
    pub measured_s: f64,
}

impl Summary {
    /// Wall-clock start of the run (phase 1's `start_s` = 0), seconds since the epoch.
    pub fn run_start_epoch_s(&self) -> f64 {
        self.start_epoch_s - self.measured_offset_s
    }
}

impl TypeSummary {
    /// Outcomes of all the type's requests (warm-up included).
    pub fn outcomes(&self) -> Outcomes {
        Outcomes {
            sent: self.sent,
            received: self.received,
            late: self.late,
            unanswered: self.unanswered,
        }
    }
}

impl Summary {
    /// Where the accounting does not add up, one line each (empty when it does):
    /// `sent = received + late + unanswered` for all requests and measured ones, overall and per
    /// type, and the per-type rows summing to the overall figures.
    pub fn accounting_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut check = |what: &str, o: &Outcomes| {
            if !o.balanced() {
                errors.push(format!(
                    "{what}: sent != received + late + unanswered: {o:?}"
                ));
            }
        };
        check("ALL", &self.counters.outcomes());
        check("ALL measured", &self.measured);
        let (mut all, mut measured) = (Outcomes::default(), Outcomes::default());
        for t in &self.types {
            check(&t.name, &t.outcomes());
            check(&format!("{} measured", t.name), &t.measured);
            all.add(&t.outcomes());
            measured.add(&t.measured);
        }
        if all != self.counters.outcomes() {
            errors.push(format!(
                "types add up to {all:?}, ALL is {:?}",
                self.counters.outcomes()
            ));
        }
        if measured != self.measured {
            errors.push(format!(
                "types' measured add up to {measured:?}, ALL measured is {:?}",
                self.measured
            ));
        }
        if measured.infinite() != self.latency_ns.infinite {
            errors.push(format!(
                "{} measured late or never answered, {} +inf in the percentiles",
                measured.infinite(),
                self.latency_ns.infinite
            ));
        }
        errors
    }
}

impl Report {
    /// The report of one engine run.
    pub fn from_run(
        label: &str,
        workload: &Workload,
        seed: u64,
        load: Option<f64>,
        run: &RunResult,
    ) -> Self {
        let types = run
            .stats
            .types()
            .iter()
            .enumerate()
            .map(|(class, t)| {
                let mean_ns = workload
                    .phases
                    .iter()
                    .flat_map(|p| &p.types)
                    .find(|rt| rt.class == class)
                    .map_or(f64::NAN, |rt| rt.mean_ns);
                let counts = run.classes.get(class).cloned().unwrap_or_default();
                TypeReport {
                    name: t.name.clone(),
                    wire_id: t.wire_id,
                    mean_ns,
                    all: counts.all,
                    measured: counts.measured,
                    latency_ns: t.latency_histogram().clone(),
                    slowdown_scaled: t.slowdown_histogram().clone(),
                }
            })
            .collect();
        let start = run.started_at + Duration::from_nanos(run.measured_from_ns);
        let mut phases: Vec<PhaseSummary> = run.phases.iter().map(PhaseSummary::from).collect();
        for (summary, stats) in phases.iter_mut().zip(&run.phase_stats) {
            summary.latency_ns = Some(stats.latency().into());
            summary.slowdown = Some(stats.slowdown().into());
        }
        let phase_histograms = run
            .phase_stats
            .iter()
            .map(|stats| {
                stats
                    .types()
                    .iter()
                    .map(|t| PhaseTypeHistograms {
                        name: t.name.clone(),
                        latency_ns: t.latency_histogram().clone(),
                        slowdown_scaled: t.slowdown_histogram().clone(),
                    })
                    .collect()
            })
            .collect();
        Self {
            label: label.to_string(),
            workload: workload.name.clone(),
            seed,
            load,
            counters: run.counters.clone(),
            phases,
            types,
            send_lag_ns: run.send_lag_ns.clone(),
            phase_histograms,
            measured_offset_s: run.measured_from_ns as f64 / 1e9,
            start_epoch_s: start
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            measured_s: run.ended_ns.saturating_sub(run.measured_from_ns) as f64 / 1e9,
            stopped_early: run.stopped_early,
        }
    }

    /// Latency (ns) of all measured answered requests.
    pub fn all_latency(&self) -> Histogram<u64> {
        sum_histograms(self.types.iter().map(|t| &t.latency_ns))
    }

    /// Slowdown (×[`SLOWDOWN_SCALE`]) of all measured answered requests.
    pub fn all_slowdown(&self) -> Histogram<u64> {
        sum_histograms(self.types.iter().map(|t| &t.slowdown_scaled))
    }

    /// Outcomes of the measured requests of all types.
    pub fn measured(&self) -> Outcomes {
        let mut sum = Outcomes::default();
        for t in &self.types {
            sum.add(&t.measured);
        }
        sum
    }

    /// Offered rate over all phases (sum of per-phase offered rates weighted by sends).
    pub fn offered_rps(&self) -> f64 {
        weighted_rate(&self.phases, |p| p.offered_rps, |p| p.sent)
    }

    /// Achieved rate over all phases.
    pub fn achieved_rps(&self) -> f64 {
        weighted_rate(&self.phases, |p| p.achieved_rps, |p| p.received)
    }

    /// The JSON summary.
    pub fn summary(&self) -> Summary {
        let measured = self.measured();
        let infinite = measured.infinite();
        Summary {
            label: self.label.clone(),
            workload: self.workload.clone(),
            seed: self.seed,
            load: self.load,
            offered_rps: self.offered_rps(),
            achieved_rps: self.achieved_rps(),
            counters: self.counters.clone(),
            measured,
            stopped_early: self.stopped_early,
            phases: self.phases.clone(),
            send_lag_ns: percentiles(&self.send_lag_ns, 0, 1.0),
            latency_ns: percentiles(&self.all_latency(), infinite, 1.0),
            slowdown: percentiles(&self.all_slowdown(), infinite, SLOWDOWN_SCALE),
            types: self
                .types
                .iter()
                .map(|t| TypeSummary {
                    name: t.name.clone(),
                    wire_id: t.wire_id,
                    mean_ns: t.mean_ns,
                    sent: t.all.sent,
                    received: t.all.received,
                    late: t.all.late,
                    unanswered: t.all.unanswered,
                    measured: t.measured,
                    latency_ns: percentiles(&t.latency_ns, t.measured.infinite(), 1.0),
                    slowdown: percentiles(
                        &t.slowdown_scaled,
                        t.measured.infinite(),
                        SLOWDOWN_SCALE,
                    ),
                })
                .collect(),
            start_epoch_s: self.start_epoch_s,
            measured_offset_s: self.measured_offset_s,
            measured_s: self.measured_s,
        }
    }
}

/// Rate over phases: Σ rate·weight / Σ weight (the single phase's rate when there is one).
fn weighted_rate(
    phases: &[PhaseSummary],
    rate: impl Fn(&PhaseSummary) -> f64,
    weight: impl Fn(&PhaseSummary) -> u64,
) -> f64 {
    let total: u64 = phases.iter().map(&weight).sum();
    if total == 0 {
        return 0.0;
    }
    phases
        .iter()
        .map(|p| rate(p) * weight(p) as f64)
        .sum::<f64>()
        / total as f64
}

/// Nanoseconds as a µs table cell (one decimal).
fn fmt_us(ns: f64) -> String {
    psp_workload::report::fmt_cell(ns / 1e3, 1)
}

/// A ratio (slowdown) as a table cell (two decimals).
fn fmt_x(v: f64) -> String {
    psp_workload::report::fmt_cell(v, 2)
}

/// The original's exit line, extended: sent = received (in time) + late + sent but not answered
/// (never), behind schedule, skipped; the client's own drops; then the responses counted and
/// ignored.
pub fn final_line(summary: &Summary) -> String {
    let c = &summary.counters;
    format!(
        "[{}] sent {}, received {}, late {}, sent but not answered {}, behind schedule {}, \
         skipped {}{} | offered {:.0} rps, achieved {:.0} rps | client drops: rx {}, tx failed {} \
         | ignored responses: duplicate {}, unknown id {}, mismatched {}, malformed {}",
        summary.label,
        c.sent,
        c.received,
        c.late,
        c.unanswered,
        c.behind_schedule,
        c.skipped,
        if summary.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        summary.offered_rps,
        summary.achieved_rps,
        c.rx_dropped,
        c.tx_failed,
        c.duplicate,
        c.unknown_id,
        c.mismatched,
        c.malformed
    )
}

/// The per-type table (latencies in µs), with an `ALL` row. The counts cover all requests,
/// warm-up included, so that `sent = received + late + never` in every row and the rows add up
/// to `ALL`; `warmup` is how many of `sent` were warm-up, and `inf` how many measured requests
/// (late or never answered) count +∞ in the percentiles.
pub fn type_table(summary: &Summary) -> psp_workload::report::Table {
    let mut table = psp_workload::report::Table::new([
        "type",
        "id",
        "mean_us",
        "sent",
        "received",
        "late",
        "never",
        "warmup",
        "inf",
        "p50_us",
        "p90_us",
        "p99_us",
        "p99.9_us",
        "p99.99_us",
        "p99_slowdown",
        "p99.9_slowdown",
    ]);
    let row = |name: &str,
               id: String,
               mean: f64,
               all: Outcomes,
               measured: Outcomes,
               lat: &PercentileSummary,
               slow: &PercentileSummary| {
        vec![
            name.to_string(),
            id,
            fmt_us(mean),
            all.sent.to_string(),
            all.received.to_string(),
            all.late.to_string(),
            all.unanswered.to_string(),
            all.sent.saturating_sub(measured.sent).to_string(),
            lat.infinite.to_string(),
            fmt_us(lat.p50),
            fmt_us(lat.p90),
            fmt_us(lat.p99),
            fmt_us(lat.p999),
            fmt_us(lat.p9999),
            fmt_x(slow.p99),
            fmt_x(slow.p999),
        ]
    };
    for t in &summary.types {
        table.push(row(
            &t.name,
            t.wire_id.to_string(),
            t.mean_ns,
            t.outcomes(),
            t.measured,
            &t.latency_ns,
            &t.slowdown,
        ));
    }
    table.push(row(
        "ALL",
        "-".into(),
        f64::NAN,
        summary.counters.outcomes(),
        summary.measured,
        &summary.latency_ns,
        &summary.slowdown,
    ));
    table
}

/// The per-phase table (multi-phase runs): rates, counts, p99.9 latency (µs) and slowdown.
pub fn phase_table(summary: &Summary) -> psp_workload::report::Table {
    let mut table = psp_workload::report::Table::new([
        "phase",
        "start_s",
        "rate_rps",
        "offered_rps",
        "achieved_rps",
        "sent",
        "received",
        "p99_us",
        "p99.9_us",
        "p99.9_slowdown",
    ]);
    for (i, p) in summary.phases.iter().enumerate() {
        let pick = |v: &Option<PercentileSummary>, f: fn(&PercentileSummary) -> f64| {
            v.as_ref().map_or(f64::NAN, f)
        };
        table.push(vec![
            i.to_string(),
            format!("{:.1}", p.start_s),
            format!("{:.0}", p.rate_rps),
            format!("{:.0}", p.offered_rps),
            format!("{:.0}", p.achieved_rps),
            p.sent.to_string(),
            p.received.to_string(),
            fmt_us(pick(&p.latency_ns, |l| l.p99)),
            fmt_us(pick(&p.latency_ns, |l| l.p999)),
            fmt_x(pick(&p.slowdown, |l| l.p999)),
        ]);
    }
    table
}

/// `traces_hist` text (see the module docs).
pub fn traces_hist(report: &Report) -> String {
    let mut text = String::new();
    let all = report.all_latency();
    hist_block(&mut text, ALL_TYPES_LABEL, &all);
    for t in &report.types {
        hist_block(&mut text, &t.name, &t.latency_ns);
    }
    text
}

fn hist_block(text: &mut String, name: &str, h: &Histogram<u64>) {
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let lo = v.value_iterated_to() / TRACES_HIST_BUCKET_NS * TRACES_HIST_BUCKET_NS;
        match buckets.last_mut() {
            Some((b, n)) if *b == lo => *n += v.count_at_value(),
            _ => buckets.push((lo, v.count_at_value())),
        }
    }
    let (min, max) = if h.is_empty() {
        (0, 0)
    } else {
        (h.min(), h.max())
    };
    let total = (h.mean() * h.len() as f64).round() as u64;
    text.push_str("TYPE\tMIN\tMAX\tCOUNT\tTOTAL");
    for (lo, _) in &buckets {
        let _ = write!(text, "\t{lo}");
    }
    let _ = write!(text, "\n{name}\t{min}\t{max}\t{}\t{total}", h.len());
    for (_, n) in &buckets {
        let _ = write!(text, "\t{n}");
    }
    text.push('\n');
}

/// `traces_rates` text: `OFFERED\tACHIEVED` then one line per phase.
pub fn traces_rates(report: &Report) -> String {
    let mut text = String::from("OFFERED\tACHIEVED\n");
    for p in &report.phases {
        let _ = writeln!(text, "{:.3}\t{:.3}", p.offered_rps, p.achieved_rps);
    }
    text
}

/// One interval of an interval log.
pub struct LogInterval<'a> {
    /// Tag (a type name; no spaces or commas).
    pub tag: &'a str,
    /// The histogram.
    pub histogram: &'a Histogram<u64>,
    /// Start, seconds after the log's base time (the measured interval's start).
    pub start_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
}

/// Writes an interval log (StartTime = BaseTime = the measured interval's start).
pub fn write_interval_log(
    path: &Path,
    report: &Report,
    intervals: &[LogInterval<'_>],
    comment: &str,
) -> Result<(), ReportError> {
    let hist_err = |why: String| ReportError::Histogram {
        path: path.display().to_string(),
        why,
    };
    let mut bytes = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let start = UNIX_EPOCH + Duration::from_secs_f64(report.start_epoch_s.max(0.0));
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut bytes, &mut serializer)
            .map_err(|e| hist_err(e.to_string()))?;
        for interval in intervals {
            let tag = Tag::new(interval.tag).ok_or_else(|| {
                hist_err(format!(
                    "type name {:?} is not a valid log tag",
                    interval.tag
                ))
            })?;
            let seconds =
                |s: f64| Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 });
            writer
                .write_histogram(
                    interval.histogram,
                    seconds(interval.start_s),
                    seconds(interval.duration_s),
                    Some(tag),
                )
                .map_err(|e| hist_err(format!("{e:?}")))?;
        }
    }
    fs::write(path, bytes).map_err(io_err(path))
}

/// The intervals of the latency (`slowdown == false`) or slowdown log: one per type over the
/// measured interval, or one per (phase, type) for multi-phase runs.
fn type_intervals(report: &Report, slowdown: bool) -> Vec<LogInterval<'_>> {
    if report.phase_histograms.is_empty() {
        return report
            .types
            .iter()
            .map(|t| LogInterval {
                tag: &t.name,
                histogram: if slowdown {
                    &t.slowdown_scaled
                } else {
                    &t.latency_ns
                },
                start_s: 0.0,
                duration_s: report.measured_s,
            })
            .collect();
    }
    let mut intervals = Vec::new();
    for (phase, types) in report.phases.iter().zip(&report.phase_histograms) {
        let start_s = (phase.start_s - report.measured_offset_s).max(0.0);
        let end_s = phase.start_s + phase.duration_s - report.measured_offset_s;
        for t in types {
            intervals.push(LogInterval {
                tag: &t.name,
                histogram: if slowdown {
                    &t.slowdown_scaled
                } else {
                    &t.latency_ns
                },
                start_s,
                duration_s: (end_s - start_s).max(0.0),
            });
        }
    }
    intervals
}

/// Writes every file of a run into `dir` (created if missing); returns the summary.
pub fn write_run_files(dir: &Path, report: &Report) -> Result<Summary, ReportError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let summary = report.summary();
    let path = dir.join(SUMMARY_FILE);
    let json = serde_json::to_vec_pretty(&summary).map_err(|source| ReportError::Json {
        path: path.display().to_string(),
        source,
    })?;
    fs::write(&path, json).map_err(io_err(&path))?;
    write_interval_log(
        &dir.join(LATENCY_LOG_FILE),
        report,
        &type_intervals(report, false),
        "psp-client latency (ns) per type",
    )?;
    write_interval_log(
        &dir.join(SLOWDOWN_LOG_FILE),
        report,
        &type_intervals(report, true),
        "psp-client slowdown x1000 per type",
    )?;
    write_interval_log(
        &dir.join(SEND_LAG_LOG_FILE),
        report,
        &[LogInterval {
            tag: SEND_LAG_TAG,
            histogram: &report.send_lag_ns,
            start_s: 0.0,
            duration_s: report.measured_s,
        }],
        "psp-client send lag (ns)",
    )?;
    let path = dir.join(TRACES_HIST_FILE);
    fs::write(&path, traces_hist(report)).map_err(io_err(&path))?;
    let path = dir.join(TRACES_RATES_FILE);
    fs::write(&path, traces_rates(report)).map_err(io_err(&path))?;
    Ok(summary)
}

/// The rows of the original's `traces` file (docs/design.md §5.5) kept by `--sample`: all answered
/// requests for `sample == 0`; for `sample = N > 0`, per type the minimum, every `(n/N)`-th and
/// the maximum latency (sorted by latency), then all back in send order. Requests never
/// answered or never sent are left out.
pub fn sample_traces(traces: &[TraceRecord], sample: usize) -> Vec<TraceRecord> {
    let answered = traces
        .iter()
        .filter(|t| t.sent_ns != 0 && t.completed_ns != 0);
    if sample == 0 {
        return answered.copied().collect();
    }
    let latency = |t: &TraceRecord| t.completed_ns.saturating_sub(t.intended_ns);
    let mut by_type: std::collections::BTreeMap<u32, Vec<TraceRecord>> = Default::default();
    for t in answered {
        by_type.entry(t.req_type).or_default().push(*t);
    }
    let mut kept = Vec::new();
    for (_, mut rows) in by_type {
        rows.sort_by_key(latency);
        let step = (rows.len() / sample).max(1);
        let last = rows.len() - 1;
        kept.extend(
            rows.iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i == last)
                .map(|(_, t)| *t),
        );
    }
    kept.sort_by_key(|t| (t.intended_ns, t.req_id));
    kept
}

/// `traces` text: `W_ID\tREQ_ID\tREQ_TYPE\tSENDING\tCOMPLETED\tRESP_TIME\tMEAN_NS\tSCHED_ID`
/// (ns since the run's start). SENDING is the **intended** send time — the base of every
/// latency here — and RESP_TIME = COMPLETED − SENDING. One client thread: W_ID is 0.
pub fn traces_text(rows: &[TraceRecord]) -> String {
    let mut text =
        String::from("W_ID\tREQ_ID\tREQ_TYPE\tSENDING\tCOMPLETED\tRESP_TIME\tMEAN_NS\tSCHED_ID\n");
    for t in rows {
        let _ = writeln!(
            text,
            "0\t{}\t{}\t{}\t{}\t{}\t{:.0}\t{}",
            t.req_id,
            t.req_type,
            t.intended_ns,
            t.completed_ns,
            t.completed_ns.saturating_sub(t.intended_ns),
            t.mean_ns,
            t.phase
        );
    }
    text
}

/// Writes `traces` into `dir` (see [`sample_traces`]); returns the number of rows.
pub fn write_traces(
    dir: &Path,
    traces: &[TraceRecord],
    sample: usize,
) -> Result<usize, ReportError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let rows = sample_traces(traces, sample);
    let path = dir.join(TRACES_FILE);
    fs::write(&path, traces_text(&rows)).map_err(io_err(&path))?;
    Ok(rows.len())
}

/// Prints the final line and the per-type table to `out`.
pub fn print_summary(out: &mut impl std::io::Write, summary: &Summary) -> std::io::Result<()> {
    writeln!(out, "{}", type_table(summary).to_text())?;
    if summary.phases.len() > 1 {
        writeln!(out, "{}", phase_table(summary).to_text())?;
    }
    writeln!(
        out,
        "send lag: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        fmt_us(summary.send_lag_ns.p50),
        fmt_us(summary.send_lag_ns.p99),
        fmt_us(summary.send_lag_ns.p999),
        fmt_us(summary.send_lag_ns.max)
    )?;
    writeln!(out, "{}", final_line(summary))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_report() -> Report {
        let mut short = new_histogram();
        let mut short_slow = new_histogram();
        for v in [1_500u64, 2_400, 2_600, 15_000] {
            short.record(v).unwrap();
            short_slow.record(v * 1000 / 1000).unwrap();
        }
        let mut long = new_histogram();
        let mut long_slow = new_histogram();
        long.record(120_000).unwrap();
        long_slow.record(1_200).unwrap();
        Report {
            label: "test".into(),
            workload: "DISP".into(),
            seed: 3,
            load: Some(0.5),
            counters: Counters {
                sent: 6,
                received: 5,
                unanswered: 1,
                warmup: 0,
                ..Counters::default()
            },
            phases: vec![PhaseSummary {
                rate_rps: 10.0,
                offered_rps: 9.5,
                achieved_rps: 9.0,
                sent: 6,
                received: 5,
                start_s: 0.0,
                duration_s: 1.0,
                latency_ns: None,
                slowdown: None,
            }],
            types: vec![
                TypeReport {
                    name: "SHORT".into(),
                    wire_id: 1,
                    mean_ns: 1000.0,
                    all: Outcomes {
                        sent: 4,
                        received: 4,
                        ..Outcomes::default()
                    },
                    measured: Outcomes {
                        sent: 4,
                        received: 4,
                        ..Outcomes::default()
                    },
                    latency_ns: short,
                    slowdown_scaled: short_slow,
                },
                TypeReport {
                    name: "LONG".into(),
                    wire_id: 2,
                    mean_ns: 100_000.0,
                    all: Outcomes {
                        sent: 2,
                        received: 1,
                        late: 0,
                        unanswered: 1,
                    },
                    measured: Outcomes {
                        sent: 2,
                        received: 1,
                        late: 0,
                        unanswered: 1,
                    },
                    latency_ns: long,
                    slowdown_scaled: long_slow,
                },
            ],
            send_lag_ns: new_histogram(),
            phase_histograms: Vec::new(),
            measured_offset_s: 0.25,
            start_epoch_s: 1_700_000_000.0,
            measured_s: 1.0,
            stopped_early: false,
        }
    }

    #[test]
    fn traces_hist_has_all_block_first_and_1us_buckets() {
        let text = traces_hist(&sample_report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            "TYPE\tMIN\tMAX\tCOUNT\tTOTAL\t1000\t2000\t15000\t120000"
        );
        let all: Vec<&str> = lines[1].split('\t').collect();
        assert_eq!(all[..2], ["UNKNOWN", "1500"]);
        assert_eq!(all[3], "5");
        // TOTAL is mean·count of HDR values: within 0.1 % of the exact 141 500.
        let total: f64 = all[4].parse().unwrap();
        assert!((total - 141_500.0).abs() < 141.5, "{total}");
        assert_eq!(all[5..], ["1", "2", "1", "1"]);
        assert_eq!(lines[2], "TYPE\tMIN\tMAX\tCOUNT\tTOTAL\t1000\t2000\t15000");
        assert!(
            lines[3].starts_with("SHORT\t1500\t15007\t4\t"),
            "{}",
            lines[3]
        );
        assert!(lines[5].starts_with("LONG\t"));
    }

    fn trace(req_id: u32, req_type: u32, intended_ns: u64, latency_ns: u64) -> TraceRecord {
        TraceRecord {
            req_id,
            req_type,
            phase: 0,
            intended_ns,
            sent_ns: intended_ns + 1,
            completed_ns: if latency_ns == 0 {
                0
            } else {
                intended_ns + latency_ns
            },
            mean_ns: 1000.0,
        }
    }

    #[test]
    fn traces_sampling_keeps_min_max_and_every_nth_in_send_order() {
        let rows: Vec<TraceRecord> = (0..100u32)
            .map(|i| {
                trace(
                    i,
                    1 + i % 2,
                    u64::from(i) * 10,
                    u64::from((i * 37) % 100 + 1),
                )
            })
            .chain(std::iter::once(trace(100, 1, 5000, 0)))
            .collect();
        assert_eq!(sample_traces(&rows, 0).len(), 100);
        let kept = sample_traces(&rows, 10);
        // 50 per type, step 5: 10 each + the max of each type.
        assert_eq!(kept.len(), 22, "{kept:?}");
        assert!(kept
            .windows(2)
            .all(|w| w[0].intended_ns <= w[1].intended_ns));
        for ty in [1, 2] {
            let lat = |t: &&TraceRecord| t.completed_ns - t.intended_ns;
            let all: Vec<&TraceRecord> = rows
                .iter()
                .filter(|t| t.req_type == ty && t.completed_ns != 0)
                .collect();
            let mine: Vec<&TraceRecord> = kept.iter().filter(|t| t.req_type == ty).collect();
            assert_eq!(mine.iter().map(lat).min(), all.iter().map(lat).min());
            assert_eq!(mine.iter().map(lat).max(), all.iter().map(lat).max());
        }
        let text = traces_text(&kept[..1]);
        assert!(
            text.starts_with(
                "W_ID\tREQ_ID\tREQ_TYPE\tSENDING\tCOMPLETED\tRESP_TIME\tMEAN_NS\tSCHED_ID\n0\t"
            ),
            "{text}"
        );
    }

    #[test]
    fn unanswered_is_infinite_in_tail_and_json_says_inf() {
        let summary = sample_report().summary();
        let long = &summary.types[1];
        assert_eq!(long.latency_ns.count, 1);
        assert_eq!(long.latency_ns.infinite, 1);
        assert!(long.latency_ns.p99.is_infinite());
        assert!(summary.latency_ns.p999.is_infinite());
        assert!(summary.latency_ns.p50.is_finite());
        let json = serde_json::to_string(&summary).unwrap();
        assert!(json.contains("\"p99\":\"inf\""), "{json}");
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert!(back.types[1].latency_ns.p99.is_infinite());
        assert_eq!(back.counters, summary.counters);
    }

    #[test]
    fn files_are_written_and_table_has_all_row() {
        let dir = std::env::temp_dir().join(format!("psp-client-report-{}", std::process::id()));
        let report = sample_report();
        let summary = write_run_files(&dir, &report).unwrap();
        for f in [
            SUMMARY_FILE,
            LATENCY_LOG_FILE,
            SLOWDOWN_LOG_FILE,
            SEND_LAG_LOG_FILE,
            TRACES_HIST_FILE,
            TRACES_RATES_FILE,
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        let rates = fs::read_to_string(dir.join(TRACES_RATES_FILE)).unwrap();
        assert_eq!(rates, "OFFERED\tACHIEVED\n9.500\t9.000\n");
        let hlog = fs::read_to_string(dir.join(LATENCY_LOG_FILE)).unwrap();
        assert!(
            hlog.contains("Tag=SHORT,") && hlog.contains("Tag=LONG,"),
            "{hlog}"
        );
        let text = type_table(&summary).to_text();
        assert!(text.contains("ALL") && text.contains("inf"), "{text}");
        let table = type_table(&summary);
        let phases = phase_table(&summary);
        assert_eq!(phases.rows.len(), 1);
        assert_eq!(phases.rows[0][7], "-");
        assert!(
            final_line(&summary).contains("sent 6, received 5, late 0, sent but not answered 1"),
            "{}",
            final_line(&summary)
        );
        assert_eq!(summary.accounting_errors(), Vec::<String>::new());
        // The run's wall-clock start, read back from summary.json (phases count from it).
        let read: Summary =
            serde_json::from_str(&fs::read_to_string(dir.join(SUMMARY_FILE)).unwrap()).unwrap();
        assert_eq!(read.run_start_epoch_s(), 1_699_999_999.75);
        // Every row balances and the rows add up to ALL (columns sent..inf).
        let mut sums = [0u64; 6];
        for row in &table.rows {
            let cells: Vec<u64> = row[3..9].iter().map(|c| c.parse().unwrap()).collect();
            assert_eq!(cells[0], cells[1] + cells[2] + cells[3], "{row:?}");
            if row[0] != "ALL" {
                for (sum, cell) in sums.iter_mut().zip(&cells) {
                    *sum += cell;
                }
            } else {
                assert_eq!(cells, sums, "{table:?}");
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
