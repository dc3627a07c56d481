//! Load sweeps: `--load-range A:B:STEP --workers N` runs the workload at each load, where load
//! 1.0 is the theoretical capacity of `N` workers (docs/design.md §5.6:
//! `rate = load · N · 1e9 / Σ mean_i · ratio_i`), and summarises the points as a CSV table and
//! SVG plots of p99.9 slowdown and latency against the offered load.
//!
//! Plots follow the original notebook's `remove_drops` convention: a point whose achieved rate
//! is below [`DROP_TOLERANCE`] × offered is drawn off the chart (+∞), since it lost requests.
//!
//! Tested below (range parsing, table columns, plot files).

use std::path::Path;

use psp_workload::report::{LinePlot, Series, Table};

use crate::report::{ReportError, Summary};

/// A point achieving less than this share of its offered rate is treated as violating any SLO
/// (the original loader's `remove_drops`: `achieved < 0.999 · offered`).
pub const DROP_TOLERANCE: f64 = 0.999;
/// Most points a range may expand to (guards against a tiny step).
pub const MAX_SWEEP_POINTS: usize = 1000;
/// Slack when comparing the last point with the range's end (float steps).
const RANGE_EPSILON: f64 = 1e-9;
/// Sweep CSV file name.
pub const SWEEP_CSV_FILE: &str = "sweep.csv";
/// Slowdown plot file name.
pub const SWEEP_SLOWDOWN_SVG_FILE: &str = "sweep_slowdown.svg";
/// Latency plot file name.
pub const SWEEP_LATENCY_SVG_FILE: &str = "sweep_latency.svg";

/// Errors from parsing a load range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--load-range {text:?}: {why}")]
pub struct LoadRangeError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub why: String,
}

/// Parses `A:B:STEP` (e.g. `0.1:0.9:0.1`) into the loads `A, A+STEP, …, ≤ B`; `A` alone is one
/// point.
pub fn parse_load_range(text: &str) -> Result<Vec<f64>, LoadRangeError> {
    let err = |why: &str| LoadRangeError {
        text: text.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = text.split(':').collect();
    let num = |s: &str, what: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| err(&format!("{what} {s:?} is not a number")))
    };
    let (start, end, step) = match parts.as_slice() {
        [a] => {
            let a = num(a, "load")?;
            (a, a, 1.0)
        }
        [a, b, step] => (num(a, "start")?, num(b, "end")?, num(step, "step")?),
        _ => return Err(err("expected A:B:STEP")),
    };
    if start <= 0.0 {
        return Err(err("loads must be positive"));
    }
    if end < start {
        return Err(err("end is below start"));
    }
    if step <= 0.0 {
        return Err(err("step must be positive"));
    }
    let count = ((end - start) / step + RANGE_EPSILON).floor() as usize + 1;
    if count > MAX_SWEEP_POINTS {
        return Err(err(&format!("{count} points (at most {MAX_SWEEP_POINTS})")));
    }
    Ok((0..count).map(|i| start + step * i as f64).collect())
}

/// One point of a sweep.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// Load relative to capacity.
    pub load: f64,
    /// The run's summary.
    pub summary: Summary,
}

impl SweepPoint {
    /// Whether the point lost requests (achieved below [`DROP_TOLERANCE`] × offered, any
    /// measured request answered late or never, or the run stopped early).
    pub fn dropped(&self) -> bool {
        let s = &self.summary;
        s.achieved_rps < DROP_TOLERANCE * s.offered_rps
            || s.latency_ns.infinite > 0
            || s.stopped_early
    }
}

fn cell(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.3}")
    }
}

/// The sweep table: one row per point, overall and per-type p99.9 figures.
pub fn sweep_table(points: &[SweepPoint]) -> Table {
    let type_names: Vec<String> = points
        .first()
        .map(|p| p.summary.types.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = [
        "load",
        "offered_rps",
        "achieved_rps",
        "sent",
        "received",
        "late",
        "unanswered",
        "p50_latency_ns",
        "p99_latency_ns",
        "p999_latency_ns",
        "p99_slowdown",
        "p999_slowdown",
        "send_lag_p99_ns",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    for name in &type_names {
        header.push(format!("{name}_p999_latency_ns"));
        header.push(format!("{name}_p999_slowdown"));
    }
    let mut table = Table::new(header);
    for p in points {
        let s = &p.summary;
        let mut row = vec![
            cell(p.load),
            cell(s.offered_rps),
            cell(s.achieved_rps),
            s.counters.sent.to_string(),
            s.counters.received.to_string(),
            s.counters.late.to_string(),
            s.counters.unanswered.to_string(),
            cell(s.latency_ns.p50),
            cell(s.latency_ns.p99),
            cell(s.latency_ns.p999),
            cell(s.slowdown.p99),
            cell(s.slowdown.p999),
            cell(s.send_lag_ns.p99),
        ];
        for name in &type_names {
            match s.types.iter().find(|t| &t.name == name) {
                Some(t) => {
                    row.push(cell(t.latency_ns.p999));
                    row.push(cell(t.slowdown.p999));
                }
                None => row.extend([String::new(), String::new()]),
            }
        }
        table.push(row);
    }
    table
}

/// Writes `sweep.csv`, `sweep_slowdown.svg` and `sweep_latency.svg` into `dir`.
pub fn write_sweep_files(
    dir: &Path,
    label: &str,
    points: &[SweepPoint],
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(crate::report::io_err(dir))?;
    sweep_table(points).write_csv_file(dir.join(SWEEP_CSV_FILE))?;
    let type_names: Vec<String> = points
        .first()
        .map(|p| p.summary.types.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let x = |p: &SweepPoint| p.summary.offered_rps / 1e3;
    let y = |p: &SweepPoint, v: f64| if p.dropped() { f64::INFINITY } else { v };
    let mut slowdown = LinePlot::new(
        &format!("{label}: p99.9 slowdown vs offered load"),
        "offered load (krps)",
        "p99.9 slowdown",
        true,
    );
    let mut latency = LinePlot::new(
        &format!("{label}: p99.9 latency vs offered load"),
        "offered load (krps)",
        "p99.9 latency (us)",
        true,
    );
    slowdown.series.push(Series {
        name: "all".into(),
        points: points
            .iter()
            .map(|p| (x(p), y(p, p.summary.slowdown.p999)))
            .collect(),
    });
    latency.series.push(Series {
        name: "all".into(),
        points: points
            .iter()
            .map(|p| (x(p), y(p, p.summary.latency_ns.p999 / 1e3)))
            .collect(),
    });
    for name in &type_names {
        let per_type = |f: &dyn Fn(&crate::report::TypeSummary) -> f64| Series {
            name: name.clone(),
            points: points
                .iter()
                .filter_map(|p| {
                    let t = p.summary.types.iter().find(|t| &t.name == name)?;
                    Some((x(p), y(p, f(t))))
                })
                .collect(),
        };
        slowdown.series.push(per_type(&|t| t.slowdown.p999));
        latency.series.push(per_type(&|t| t.latency_ns.p999 / 1e3));
    }
    slowdown.write_svg(dir.join(SWEEP_SLOWDOWN_SVG_FILE))?;
    latency.write_svg(dir.join(SWEEP_LATENCY_SVG_FILE))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_ranges() {
        let loads = parse_load_range("0.1:0.5:0.1").unwrap();
        assert_eq!(loads.len(), 5);
        assert!((loads[4] - 0.5).abs() < 1e-12);
        assert_eq!(parse_load_range("0.7").unwrap(), vec![0.7]);
        assert_eq!(parse_load_range("0.05:1.05:0.05").unwrap().len(), 21);
        for bad in [
            "",
            "a:b:c",
            "0.5:0.1:0.1",
            "0:1:0.1",
            "0.1:1:0",
            "0.1:1",
            "1:2:0.0000001",
        ] {
            let e = parse_load_range(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn table_and_plots() {
        let mut summary = crate::report::tests::sample_report().summary();
        summary.offered_rps = 1000.0;
        summary.achieved_rps = 1000.0;
        let points = vec![
            SweepPoint {
                load: 0.1,
                summary: summary.clone(),
            },
            SweepPoint { load: 0.2, summary },
        ];
        let table = sweep_table(&points);
        assert_eq!(table.rows.len(), 2);
        assert!(table.header.contains(&"LONG_p999_slowdown".to_string()));
        // The sample lost a request: plotted off the chart.
        assert!(points[0].dropped());
        let dir = std::env::temp_dir().join(format!("psp-client-sweep-{}", std::process::id()));
        write_sweep_files(&dir, "t", &points).unwrap();
        let svg = std::fs::read_to_string(dir.join(SWEEP_SLOWDOWN_SVG_FILE)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("SHORT"));
        assert!(std::fs::read_to_string(dir.join(SWEEP_CSV_FILE))
            .unwrap()
            .starts_with("load,"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
