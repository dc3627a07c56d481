//! What a `psp live` run found: the client's sweep per policy (its `sweep.csv`), the server's
//! own report (`report.json`), the simulator's prediction for the same workers and loads, and
//! the comparison (`live.csv`, `plot.svg`, the printed table).
//!
//! A live point **passes** the SLO when its overall p99.9 slowdown is within the SLO and at
//! most [`MAX_DROP_FRACTION`] of its requests went unanswered, as a simulated point does
//! (`psp_sim::sweep::passes_slo`); the live capacity is the highest passing load. Tested below
//! on hand-written CSV and JSON.

use std::path::Path;

use anyhow::{bail, Context, Result};
use psp_sim::engine::RunResult;
use psp_sim::sweep::{capacity, passes_slo, MAX_DROP_FRACTION};
use psp_workload::report::{LinePlot, Series, Table};

/// One load point of the client's sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePoint {
    /// Offered load (share of the workers' capacity).
    pub load: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests never answered in time (answered late, after the client gave up, included).
    pub unanswered: u64,
    /// Overall p99.9 slowdown (inf when requests went unanswered).
    pub p999_slowdown: f64,
}

impl LivePoint {
    /// Share of sent requests never answered.
    pub fn drop_fraction(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.unanswered as f64 / self.sent as f64
        }
    }

    /// Whether the point meets `slo` (see the module docs).
    pub fn passes(&self, slo: f64) -> bool {
        self.p999_slowdown <= slo && self.drop_fraction() <= MAX_DROP_FRACTION
    }
}

fn cell_f64(text: &str) -> f64 {
    match text.trim() {
        "" => f64::NAN,
        "inf" => f64::INFINITY,
        t => t.parse().unwrap_or(f64::NAN),
    }
}

/// The points of a client `sweep.csv`.
pub fn parse_sweep_csv(text: &str) -> Result<Vec<LivePoint>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("empty sweep.csv")?
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("sweep.csv has no column {name:?}"))
    };
    let (load, sent, unanswered, p999) = (
        column("load")?,
        column("sent")?,
        column("unanswered")?,
        column("p999_slowdown")?,
    );
    // Clients that tell late answers apart have a `late` column: those count as unanswered.
    let late = header.iter().position(|h| h.trim() == "late");
    let mut points = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let get = |i: usize| cells.get(i).copied().unwrap_or("");
        points.push(LivePoint {
            load: cell_f64(get(load)),
            sent: get(sent).trim().parse().unwrap_or(0),
            unanswered: get(unanswered).trim().parse().unwrap_or(0)
                + late.map_or(0, |i| get(i).trim().parse().unwrap_or(0)),
            p999_slowdown: cell_f64(get(p999)),
        });
    }
    if points.is_empty() {
        bail!("sweep.csv has no load point");
    }
    Ok(points)
}

/// The highest passing load of `points`.
pub fn live_capacity(points: &[LivePoint], slo: f64) -> Option<f64> {
    points
        .iter()
        .filter(|p| p.passes(slo))
        .map(|p| p.load)
        .max_by(f64::total_cmp)
}

/// What the server's `report.json` says about one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerFigures {
    /// Largest |measured / requested − 1| over the types, with the type's name.
    pub worst_inflation: Option<(String, f64)>,
    /// Dispatcher busy time per received request, ns.
    pub dispatcher_ns_per_request: Option<f64>,
    /// Mean cost of one preemption (flag set → worker free), ns, when there were any
    /// (`ts`, `darc-ts`).
    pub preempt_cost_ns: Option<f64>,
    /// DARC plans applied.
    pub plan_updates: u64,
    /// Σ of the stage medians (rx→enqueue … worker TX) / median RX→TX: near 1 when the
    /// stages account for where the time goes.
    pub stage_median_ratio: Option<f64>,
    /// The server's warnings.
    pub warnings: Vec<String>,
}

/// The stages that make up RX→TX, in order (see `psp_dataplane::server::stages`).
const STAGES: [&str; 5] = [
    "rx_to_enqueue",
    "queue_wait",
    "handoff",
    "service",
    "worker_tx",
];

/// Reads the figures out of a server `report.json`.
pub fn parse_server_report(text: &str) -> Result<ServerFigures> {
    let json: serde_json::Value = serde_json::from_str(text).context("parsing report.json")?;
    let worst_inflation = json["service"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| {
            Some((
                row["type"].as_str()?.to_string(),
                row["inflation"].as_f64()?,
            ))
        })
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
    let median = |stage: &str| json["stages"][stage]["p50_ns"].as_f64();
    let stage_sum: Option<f64> = STAGES.iter().map(|s| median(s)).sum();
    let stage_median_ratio = match (stage_sum, median("rx_to_tx")) {
        (Some(sum), Some(total)) if total > 0.0 => Some(sum / total),
        _ => None,
    };
    Ok(ServerFigures {
        worst_inflation,
        stage_median_ratio,
        dispatcher_ns_per_request: json["dispatcher"]["busy_ns_per_request"].as_f64(),
        preempt_cost_ns: (json["preemption"]["cost"]["count"].as_u64() > Some(0))
            .then(|| json["preemption"]["cost"]["mean_ns"].as_f64())
            .flatten(),
        plan_updates: json["plan_updates"].as_u64().unwrap_or(0),
        warnings: json["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
    })
}

/// One policy's live run.
#[derive(Clone, Debug)]
pub struct PolicyRun {
    /// Policy name.
    pub policy: String,
    /// The client's sweep.
    pub points: Vec<LivePoint>,
    /// The server's report figures.
    pub server: ServerFigures,
}

/// `live.csv`: one row per policy × source (live, sim) × load.
pub fn live_table(runs: &[PolicyRun], sim: &[RunResult], slo: f64) -> Table {
    let mut table = Table::new([
        "policy",
        "source",
        "load",
        "p999_slowdown",
        "drop_fraction",
        "passes_slo",
    ]);
    let fmt = |v: f64| psp_workload::report::fmt_cell(v, 3);
    for run in runs {
        for p in &run.points {
            table.push(vec![
                run.policy.clone(),
                "live".into(),
                fmt(p.load),
                fmt(p.p999_slowdown),
                fmt(p.drop_fraction()),
                p.passes(slo).to_string(),
            ]);
        }
        for r in sim.iter().filter(|r| r.policy == run.policy) {
            table.push(vec![
                run.policy.clone(),
                "sim".into(),
                fmt(r.load),
                fmt(r.stats.slowdown().p999),
                fmt(r.drop_fraction()),
                passes_slo(r, slo).to_string(),
            ]);
        }
    }
    table
}

/// The comparison plot: p99.9 slowdown vs load, live and simulated per policy.
pub fn live_plot(workload: &str, runs: &[PolicyRun], sim: &[RunResult], slo: f64) -> LinePlot {
    let mut plot = LinePlot::new(
        &format!("{workload}: live vs simulated p99.9 slowdown"),
        "offered load (1.0 = workers / mean service time)",
        "p99.9 slowdown (all requests)",
        true,
    );
    plot.reference_line = Some((slo, format!("SLO {slo}")));
    for run in runs {
        plot.series.push(Series {
            name: format!("{} live", run.policy),
            points: run
                .points
                .iter()
                .map(|p| {
                    let y = if p.drop_fraction() > MAX_DROP_FRACTION {
                        f64::INFINITY
                    } else {
                        p.p999_slowdown
                    };
                    (p.load, y)
                })
                .collect(),
        });
        plot.series.push(Series {
            name: format!("{} sim", run.policy),
            points: sim
                .iter()
                .filter(|r| r.policy == run.policy)
                .map(|r| (r.load, r.stats.slowdown().p999))
                .collect(),
        });
    }
    plot
}

fn fmt_capacity(c: Option<f64>) -> String {
    c.map_or_else(|| "none".to_string(), |c| format!("{c:.2}"))
}

/// The printed comparison: per policy, live and simulated capacity, their difference, the
/// measured service inflation, the dispatcher's cost and DARC's plan changes.
pub fn summary_table(runs: &[PolicyRun], sim: &[RunResult], slo: f64) -> Table {
    let mut table = Table::new([
        "policy",
        "live_capacity",
        "sim_capacity",
        "difference",
        "service_inflation",
        "dispatcher_ns_per_req",
        "plan_updates",
        "stage_medians_vs_rx_to_tx",
    ]);
    for run in runs {
        let live = live_capacity(&run.points, slo);
        let simulated = capacity(sim, &run.policy, slo);
        let difference = match (live, simulated) {
            (Some(l), Some(s)) => format!("{:+.2}", l - s),
            (None, None) => "-".into(),
            _ => "n/a".into(),
        };
        let inflation = run.server.worst_inflation.as_ref().map_or_else(
            || "-".into(),
            |(ty, x)| format!("{:+.1} % ({ty})", 100.0 * x),
        );
        table.push(vec![
            run.policy.clone(),
            fmt_capacity(live),
            fmt_capacity(simulated),
            difference,
            inflation,
            run.server
                .dispatcher_ns_per_request
                .map_or_else(|| "-".into(), |ns| format!("{ns:.0}")),
            run.server.plan_updates.to_string(),
            run.server
                .stage_median_ratio
                .map_or_else(|| "-".into(), |r| format!("{r:.2}")),
        ]);
    }
    table
}

/// Reads one policy's outputs from its run directory.
pub fn read_policy_run(policy: &str, dir: &Path) -> Result<PolicyRun> {
    let csv = dir.join("client").join("sweep.csv");
    let text =
        std::fs::read_to_string(&csv).with_context(|| format!("reading {}", csv.display()))?;
    let points = parse_sweep_csv(&text).with_context(|| format!("in {}", csv.display()))?;
    let report = dir.join("report.json");
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("reading {}", report.display()))?;
    let server = parse_server_report(&text).with_context(|| format!("in {}", report.display()))?;
    Ok(PolicyRun {
        policy: policy.to_string(),
        points,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "load,offered_rps,achieved_rps,sent,received,unanswered,p50_latency_ns,p99_latency_ns,p999_latency_ns,p99_slowdown,p999_slowdown,send_lag_p99_ns\n\
        0.100,1,1,10000,10000,0,1,1,1,2.0,3.500,1\n\
        0.200,1,1,10000,10000,5,1,1,1,2.0,19.000,1\n\
        0.300,1,1,10000,9000,1000,1,1,1,2.0,inf,1\n\
        0.400,1,1,10000,10000,0,1,1,1,2.0,25.000,1\n";

    #[test]
    fn sweep_csv_points_and_capacity() {
        let points = parse_sweep_csv(CSV).unwrap();
        assert_eq!(points.len(), 4);
        assert_eq!(points[1].unanswered, 5);
        assert_eq!(points[2].p999_slowdown, f64::INFINITY);
        assert!(points[1].passes(20.0), "0.05 % unanswered passes");
        assert!(!points[2].passes(20.0));
        assert!(!points[3].passes(20.0));
        assert_eq!(live_capacity(&points, 20.0), Some(0.2));
        assert_eq!(live_capacity(&points, 1.0), None);
        assert!(
            parse_sweep_csv("load,sent\n0.1,5\n").is_err(),
            "missing columns"
        );
        assert!(
            parse_sweep_csv(&CSV[..CSV.find('\n').unwrap()]).is_err(),
            "no rows"
        );
    }

    #[test]
    fn server_report_figures() {
        let json = r#"{"service": [{"type": "SHORT", "inflation": 0.02},
                                   {"type": "LONG", "inflation": -0.15}],
                       "dispatcher": {"busy_ns_per_request": 210.5},
                       "stages": {"rx_to_enqueue": {"p50_ns": 1}, "queue_wait": {"p50_ns": 2},
                                  "handoff": {"p50_ns": 3}, "service": {"p50_ns": 4},
                                  "worker_tx": {"p50_ns": 10}, "rx_to_tx": {"p50_ns": 25}},
                       "plan_updates": 2, "warnings": ["w1"]}"#;
        let figures = parse_server_report(json).unwrap();
        assert_eq!(figures.worst_inflation, Some(("LONG".to_string(), -0.15)));
        assert_eq!(figures.dispatcher_ns_per_request, Some(210.5));
        assert_eq!(figures.plan_updates, 2);
        assert_eq!(figures.stage_median_ratio, Some(0.8));
        assert_eq!(figures.warnings, vec!["w1".to_string()]);
        assert_eq!(figures.preempt_cost_ns, None, "no preemption section");
        // A preemptive policy's cost of one preemption; none measured without preemptions.
        let ts = r#"{"preemption": {"cost": {"count": 4, "mean_ns": 2320.5}}}"#;
        assert_eq!(
            parse_server_report(ts).unwrap().preempt_cost_ns,
            Some(2320.5)
        );
        let none = r#"{"preemption": {"cost": {"count": 0, "mean_ns": 0.0}}}"#;
        assert_eq!(parse_server_report(none).unwrap().preempt_cost_ns, None);
        assert!(parse_server_report("not json").is_err());
    }

    #[test]
    fn summary_compares_live_and_sim() {
        let runs = vec![PolicyRun {
            policy: "darc".into(),
            points: parse_sweep_csv(CSV).unwrap(),
            server: parse_server_report(r#"{"service": [], "dispatcher": {}}"#).unwrap(),
        }];
        let table = summary_table(&runs, &[], 20.0);
        let text = table.to_text();
        assert!(
            text.contains("darc") && text.contains("0.20") && text.contains("none"),
            "{text}"
        );
        let csv = live_table(&runs, &[], 20.0);
        assert_eq!(csv.rows.len(), 4);
    }
}
