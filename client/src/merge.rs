//! Combining the outputs of several client instances (`psp merge DIR...`).
//!
//! Several clients load one server together (the original used six, docs/design.md §7.1); their
//! tails can only be combined by adding their histograms, never by averaging percentiles
//! (docs/design.md §5.6: "histograms are merged across the 6 clients"). [`merge_dirs`] does that from
//! the files each run leaves behind (see [`crate::report`]).
//!
//! Tested below: merging two halves of a data set equals the report of the whole set.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use crate::engine::{Counters, Outcomes};
use crate::report::{
    io_err, new_histogram, write_run_files, PhaseSummary, Report, ReportError, Summary, TypeReport,
    LATENCY_LOG_FILE, SEND_LAG_LOG_FILE, SEND_LAG_TAG, SLOWDOWN_LOG_FILE, SUMMARY_FILE,
};

/// Label of a merged summary.
pub const MERGED_LABEL: &str = "merged";

/// Errors from merging.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No directory given.
    #[error("nothing to merge: no directories given")]
    Empty,
    /// Reading or writing failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A directory's files disagree with each other (e.g. a type in the log but not the summary).
    #[error("{path}: {why}")]
    Inconsistent {
        /// The file.
        path: String,
        /// What disagrees.
        why: String,
    },
}

/// Reads the tagged histograms of an interval log, adding intervals with the same tag.
pub fn read_interval_log(path: &Path) -> Result<BTreeMap<String, Histogram<u64>>, ReportError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let hist_err = |why: String| ReportError::Histogram {
        path: path.display().to_string(),
        why,
    };
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| hist_err(format!("{e:?}")))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let tag = interval
            .tag()
            .map_or_else(String::new, |t| t.as_str().to_string());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| hist_err(format!("interval {tag:?}: {e}")))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| hist_err(format!("interval {tag:?}: {e:?}")))?;
        let sum = out.entry(tag).or_insert_with(new_histogram);
        sum.add(&h).map_err(|e| hist_err(format!("{e:?}")))?;
    }
    Ok(out)
}

fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| ReportError::Json {
        path: path.display().to_string(),
        source,
    })
}

/// Merges the outputs of several client runs and writes the merged outputs into `out`.
///
/// # Contract
/// - Each of `dirs` must hold the files [`crate::report::write_run_files`] writes:
///   `summary.json`, `latency.hlog` and `slowdown.hlog` are required, `send_lag.hlog` is used
///   when present.
/// - Types are matched **by name** (the log tags); a type missing from some runs counts zero
///   there. Latency and slowdown histograms are **added** (exact: the merged percentiles are
///   those of all requests together, never averages of percentiles). Late and never answered
///   requests are summed per type and stay +∞ in the merged percentiles.
/// - Counters and per-type outcomes (all and measured) are summed. Phases are matched by index: their
///   sent/received, configured, offered and achieved rates are **summed**, since the clients
///   ran side by side (the original sums `traces_rates` over client threads, docs/design.md §5.5).
///   Per-phase percentiles of multi-phase runs are not carried over (the inputs' per-phase
///   intervals are summed per type like every other interval).
/// - `out` is created if needed and receives `summary.json` (label [`MERGED_LABEL`]),
///   `latency.hlog`, `slowdown.hlog`, `send_lag.hlog`, `traces_hist` and `traces_rates`.
///   The measured interval spans the earliest start to the latest end of the inputs.
/// - Returns the merged summary. Fails with [`MergeError::Empty`] for no input, and with an
///   error naming the file for anything unreadable or inconsistent; nothing is written to
///   `out` unless every input was read.
pub fn merge_dirs(dirs: &[PathBuf], out: &Path) -> Result<Summary, MergeError> {
    let first_dir = dirs.first().ok_or(MergeError::Empty)?;
    let mut types: Vec<TypeReport> = Vec::new();
    let mut counters = Counters::default();
    let mut phases: Vec<PhaseSummary> = Vec::new();
    let mut send_lag_ns = new_histogram();
    let (mut start, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut workload = String::new();
    let mut seed = 0;
    let mut load = None;
    let mut stopped_early = false;
    for dir in dirs {
        let summary = read_summary(&dir.join(SUMMARY_FILE))?;
        if dir == first_dir {
            workload = summary.workload.clone();
            seed = summary.seed;
            load = summary.load;
        }
        merge_types(&mut types, &summary, dir)?;
        let lag_path = dir.join(SEND_LAG_LOG_FILE);
        if lag_path.is_file() {
            if let Some(lag) = read_interval_log(&lag_path)?.get(SEND_LAG_TAG) {
                send_lag_ns.add(lag).map_err(|e| MergeError::Inconsistent {
                    path: lag_path.display().to_string(),
                    why: format!("{e:?}"),
                })?;
            }
        }
        counters.add(&summary.counters);
        stopped_early |= summary.stopped_early;
        merge_phases(&mut phases, &summary.phases);
        start = start.min(summary.start_epoch_s);
        end = end.max(summary.start_epoch_s + summary.measured_s);
    }
    let report = Report {
        label: MERGED_LABEL.to_string(),
        workload,
        seed,
        load,
        counters,
        phases,
        types,
        send_lag_ns,
        phase_histograms: Vec::new(),
        measured_offset_s: 0.0,
        start_epoch_s: if start.is_finite() { start } else { 0.0 },
        measured_s: if end > start { end - start } else { 0.0 },
        stopped_early,
    };
    Ok(write_run_files(out, &report)?)
}

/// Adds the per-type outcomes and histograms of the run in `dir` (whose summary is `summary`)
/// to `types`, matching types by name.
fn merge_types(
    types: &mut Vec<TypeReport>,
    summary: &Summary,
    dir: &Path,
) -> Result<(), MergeError> {
    let latency_path = dir.join(LATENCY_LOG_FILE);
    let mut latency = read_interval_log(&latency_path)?;
    let mut slowdown = read_interval_log(&dir.join(SLOWDOWN_LOG_FILE))?;
    for t in &summary.types {
        let (Some(lat), Some(slow)) = (latency.remove(&t.name), slowdown.remove(&t.name)) else {
            return Err(MergeError::Inconsistent {
                path: latency_path.display().to_string(),
                why: format!(
                    "type {} of summary.json has no latency or slowdown histogram",
                    t.name
                ),
            });
        };
        let merged = match types.iter_mut().find(|m| m.name == t.name) {
            Some(m) => m,
            None => {
                types.push(TypeReport {
                    name: t.name.clone(),
                    wire_id: t.wire_id,
                    mean_ns: t.mean_ns,
                    all: Outcomes::default(),
                    measured: Outcomes::default(),
                    latency_ns: new_histogram(),
                    slowdown_scaled: new_histogram(),
                });
                types.last_mut().ok_or(MergeError::Empty)?
            }
        };
        merged.all.add(&t.outcomes());
        merged.measured.add(&t.measured);
        let add_err = |e: hdrhistogram::AdditionError| MergeError::Inconsistent {
            path: latency_path.display().to_string(),
            why: format!("{e:?}"),
        };
        merged.latency_ns.add(&lat).map_err(add_err)?;
        merged.slowdown_scaled.add(&slow).map_err(add_err)?;
    }
    if let Some(extra) = latency.keys().next() {
        return Err(MergeError::Inconsistent {
            path: latency_path.display().to_string(),
            why: format!("histogram {extra:?} is not a type of summary.json"),
        });
    }
    Ok(())
}

/// Adds one run's phases to `phases`, matched by index (rates summed: the clients ran side by
/// side).
fn merge_phases(phases: &mut Vec<PhaseSummary>, run: &[PhaseSummary]) {
    for (i, p) in run.iter().enumerate() {
        match phases.get_mut(i) {
            Some(m) => {
                m.rate_rps += p.rate_rps;
                m.offered_rps += p.offered_rps;
                m.achieved_rps += p.achieved_rps;
                m.sent += p.sent;
                m.received += p.received;
            }
            None => phases.push(PhaseSummary {
                // Per-phase percentiles are not merged (the merged logs hold one interval
                // per type); the phase totals are.
                latency_ns: None,
                slowdown: None,
                ..p.clone()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::percentiles;

    fn report(label: &str, values: &[(usize, u64)], unanswered: [u64; 2]) -> Report {
        let mut types: Vec<TypeReport> = ["SHORT", "LONG"]
            .iter()
            .enumerate()
            .map(|(i, name)| TypeReport {
                name: (*name).into(),
                wire_id: i as u32 + 1,
                mean_ns: [1000.0, 100_000.0][i],
                all: Outcomes {
                    sent: unanswered[i],
                    unanswered: unanswered[i],
                    ..Outcomes::default()
                },
                measured: Outcomes::default(),
                latency_ns: new_histogram(),
                slowdown_scaled: new_histogram(),
            })
            .collect();
        for &(ty, v) in values {
            let t = &mut types[ty];
            t.latency_ns.record(v).unwrap();
            t.slowdown_scaled
                .record(v * 1000 / t.mean_ns as u64)
                .unwrap();
            t.all.sent += 1;
            t.all.received += 1;
        }
        for t in &mut types {
            // No warm-up in these reports.
            t.measured = t.all;
        }
        let sent = types.iter().map(|t| t.all.sent).sum();
        Report {
            label: label.into(),
            workload: "W".into(),
            seed: 1,
            load: None,
            counters: Counters {
                sent,
                received: values.len() as u64,
                unanswered: unanswered.iter().sum(),
                ..Counters::default()
            },
            phases: vec![PhaseSummary {
                rate_rps: 100.0,
                offered_rps: 99.0,
                achieved_rps: 98.0,
                sent,
                received: values.len() as u64,
                start_s: 0.0,
                duration_s: 2.0,
                latency_ns: None,
                slowdown: None,
            }],
            types,
            send_lag_ns: new_histogram(),
            phase_histograms: Vec::new(),
            measured_offset_s: 0.0,
            start_epoch_s: 1000.0,
            measured_s: 2.0,
            stopped_early: false,
        }
    }

    fn data(seed: u64, n: usize) -> Vec<(usize, u64)> {
        // A deterministic spread over 3 decades, both types.
        (0..n)
            .map(|i| {
                let x = (i as u64).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1_000_000;
                (i % 3 / 2, 1_000 + x * (1 + i as u64 % 7))
            })
            .collect()
    }

    #[test]
    fn merging_halves_equals_the_whole() {
        let base = std::env::temp_dir().join(format!("psp-client-merge-{}", std::process::id()));
        let a = data(1, 3000);
        let b = data(2, 2000);
        write_run_files(&base.join("a"), &report("a", &a, [1, 0])).unwrap();
        write_run_files(&base.join("b"), &report("b", &b, [0, 2])).unwrap();
        let merged = merge_dirs(&[base.join("a"), base.join("b")], &base.join("m")).unwrap();
        let whole_values: Vec<(usize, u64)> = a.iter().chain(&b).copied().collect();
        let whole = report("whole", &whole_values, [1, 2]).summary();
        assert_eq!(merged.latency_ns, whole.latency_ns);
        assert_eq!(merged.slowdown, whole.slowdown);
        for (m, w) in merged.types.iter().zip(&whole.types) {
            assert_eq!(m.latency_ns, w.latency_ns);
            assert_eq!(m.unanswered, w.unanswered);
            assert_eq!(m.sent, w.sent);
        }
        assert_eq!(merged.counters.sent, whole.counters.sent);
        assert_eq!(merged.measured, whole.measured);
        assert_eq!(merged.accounting_errors(), Vec::<String>::new());
        assert_eq!(merged.phases[0].offered_rps, 198.0);
        assert_eq!(merged.label, MERGED_LABEL);
        // The merged files can be merged again.
        let again = merge_dirs(&[base.join("m")], &base.join("m2")).unwrap();
        assert_eq!(again.latency_ns, merged.latency_ns);
        let lat = percentiles(&report("x", &whole_values, [1, 2]).all_latency(), 3, 1.0);
        assert_eq!(lat, merged.latency_ns);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_or_inconsistent_inputs_are_errors() {
        let base =
            std::env::temp_dir().join(format!("psp-client-merge-bad-{}", std::process::id()));
        assert!(matches!(merge_dirs(&[], &base), Err(MergeError::Empty)));
        let e = merge_dirs(&[base.join("nope")], &base.join("out")).unwrap_err();
        assert!(e.to_string().contains("summary.json"), "{e}");
        write_run_files(&base.join("a"), &report("a", &data(1, 10), [0, 0])).unwrap();
        fs::write(base.join("a").join(LATENCY_LOG_FILE), "garbage\n").unwrap();
        let e = merge_dirs(&[base.join("a")], &base.join("out")).unwrap_err();
        assert!(e.to_string().contains("latency.hlog"), "{e}");
        assert!(!base.join("out").exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
