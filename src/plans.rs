//! # `psp plans`: DARC's plans over a live run, from the server's telemetry
//!
//! `psp plans --telemetry FILE` reads a server's `telemetry.jsonl` (one
//! [`TelemetryLine`] per window) and writes, in `--out DIR`:
//! - `plans.csv`: one row per window: its times (s since the server started, and ms on the wall
//!   clock), the arrivals of each type, the workers reserved to each type's group, the plans
//!   DARC applied and kept, whether the reservation changed, and the client's phase (below);
//! - `plan.svg`: the workers reserved to each type's group over time, and `mix.svg`: each
//!   type's arrival rate over time (where the mix shifted).
//!
//! With `--client DIR` (a psp-client run directory: its `summary.json`) the windows are put on
//! the client's phases through the wall clock (the server's `end_unix_ms`, the client's start),
//! and it judges online re-planning as the issue states it: at each shift DARC re-plans
//! within `--settle-windows` windows (default 3), and in a phase's steady part (from that many
//! windows after its start to its end) the reservation does not change. It prints one line per
//! phase and a verdict; `--check` makes a failed verdict exit with status 1.
//!
//! Tested below on synthetic lines ([`analyse`], the CSV and the error cases); end to end by
//! `scripts/replan-demo.sh`, which runs it on a live run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use psp_client::report::Summary;
use psp_dataplane::server::TelemetryLine;
use psp_workload::report::{LinePlot, Series, Table};

/// The per-window table written in `--out`.
pub const PLANS_CSV: &str = "plans.csv";
/// The plot of the reservation over time.
pub const PLAN_SVG: &str = "plan.svg";
/// The plot of the arrival rates over time.
pub const MIX_SVG: &str = "mix.svg";

/// `psp plans`.
#[derive(Debug, clap::Args)]
pub struct PlansArgs {
    /// The server's telemetry file (`log_dir/<label>/server/telemetry.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub telemetry: PathBuf,
    /// A psp-client run directory (holding summary.json): judge re-planning at its phases.
    #[arg(long, value_name = "DIR")]
    pub client: Option<PathBuf>,
    /// Where plans.csv, plan.svg and mix.svg go (created).
    #[arg(long, short = 'o', default_value = "out/plans", value_name = "DIR")]
    pub out: PathBuf,
    /// Windows after a shift within which DARC must re-plan, and after which the phase is
    /// steady.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub settle_windows: u64,
    /// Exit with status 1 when the verdict fails (needs --client).
    #[arg(long, requires = "client")]
    pub check: bool,
}

/// One window as the analysis sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window number.
    pub window: u64,
    /// Start, s since the server started.
    pub start_s: f64,
    /// End, s since the server started.
    pub end_s: f64,
    /// End on the wall clock, ms since the Unix epoch (0: unknown).
    pub end_unix_ms: u64,
    /// Arrivals per type (the types of [`Windows::types`]).
    pub arrivals: Vec<u64>,
    /// Workers reserved to each type's group; `None` before DARC's first plan (or without
    /// DARC).
    pub reserved: Option<Vec<usize>>,
    /// Plans DARC applied in the window.
    pub plan_updates: u64,
    /// Re-plans it kept by its rounding hysteresis.
    pub plans_kept: u64,
}

impl WindowRow {
    /// Whether DARC changed its reservation since the window `before` (which had one).
    fn reservation_changed_from(&self, before: &WindowRow) -> bool {
        before.reserved.is_some() && self.reserved != before.reserved
    }

    fn from_line(line: &TelemetryLine, types: &[String]) -> Self {
        let arrivals = types
            .iter()
            .map(|name| {
                line.types
                    .iter()
                    .find(|t| &t.name == name)
                    .map_or(0, |t| t.arrivals)
            })
            .collect();
        let reserved = line.plan.as_ref().map(|plan| {
            types
                .iter()
                .map(|name| {
                    plan.groups
                        .iter()
                        .find(|g| g.types.contains(name))
                        .map_or(0, |g| g.reserved.len())
                })
                .collect()
        });
        Self {
            window: line.window,
            start_s: line.start_ns as f64 / 1e9,
            end_s: line.end_ns as f64 / 1e9,
            end_unix_ms: line.end_unix_ms,
            arrivals,
            reserved,
            plan_updates: line.plan_updates,
            plans_kept: line.plans_kept,
        }
    }
}

/// A run's windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Windows {
    /// The registered types (UNKNOWN too when anything arrived as it).
    pub types: Vec<String>,
    /// In order.
    pub rows: Vec<WindowRow>,
}

/// Parses `text` (telemetry lines): a line that is not a telemetry window is an error naming
/// it, except a last line without its newline (the server was writing it), which is skipped.
pub fn parse(text: &str) -> Result<Windows> {
    let complete = if text.ends_with('\n') || text.is_empty() {
        text
    } else {
        text.rsplit_once('\n').map_or("", |(done, _)| done)
    };
    let mut lines = Vec::new();
    for (i, raw) in complete.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: TelemetryLine = serde_json::from_str(raw)
            .with_context(|| format!("line {}: not a telemetry window", i + 1))?;
        lines.push(line);
    }
    let Some(first) = lines.first() else {
        bail!("no telemetry windows");
    };
    let mut types: Vec<String> = first
        .types
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| n != "UNKNOWN")
        .collect();
    let unknown_arrived = lines
        .iter()
        .flat_map(|l| &l.types)
        .any(|t| t.name == "UNKNOWN" && t.arrivals > 0);
    if unknown_arrived {
        types.push("UNKNOWN".to_string());
    }
    let rows = lines
        .iter()
        .map(|l| WindowRow::from_line(l, &types))
        .collect();
    Ok(Windows { types, rows })
}

/// A client phase on the server's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// Start, s since the server started.
    pub start_s: f64,
    /// End, s since the server started.
    pub end_s: f64,
}

/// The client's phases (its `summary.json`) on the server's clock.
pub fn phases_on_server_clock(summary: &Summary, windows: &Windows) -> Result<Vec<Phase>> {
    let spans: Vec<(f64, f64)> = summary
        .phases
        .iter()
        .map(|p| (p.start_s, p.duration_s))
        .collect();
    phases_from(summary.run_start_epoch_s(), &spans, windows)
}

/// Phases given as `(start_s, duration_s)` after a run that started at `run_start_unix_s` on
/// the wall clock, on the server's clock (which read a window's `end_s` at its `end_unix_ms`).
pub fn phases_from(
    run_start_unix_s: f64,
    spans: &[(f64, f64)],
    windows: &Windows,
) -> Result<Vec<Phase>> {
    let Some(anchor) = windows.rows.iter().find(|r| r.end_unix_ms > 0) else {
        bail!(
            "the telemetry has no wall-clock times (end_unix_ms): it was written by a server \
             from before they were"
        );
    };
    // Server clock = wall clock − origin.
    let origin_unix_s = anchor.end_unix_ms as f64 / 1e3 - anchor.end_s;
    let run_start_s = run_start_unix_s - origin_unix_s;
    Ok(spans
        .iter()
        .map(|&(start_s, duration_s)| Phase {
            start_s: run_start_s + start_s,
            end_s: run_start_s + start_s + duration_s,
        })
        .collect())
}

/// Which phase `t_s` falls in (1-based), 0 before the first, `phases.len() + 1` after the last.
fn phase_of(t_s: f64, phases: &[Phase]) -> usize {
    match phases.iter().position(|p| t_s < p.end_s) {
        Some(i) if t_s >= phases[i].start_s => i + 1,
        Some(0) => 0,
        Some(i) => i + 1,
        None => phases.len() + 1,
    }
}

/// Times compared within this are equal (they are sums of seconds in floating point).
const TIME_SLACK_S: f64 = 1e-6;

/// One phase judged.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseVerdict {
    /// 1-based.
    pub phase: usize,
    /// DARC's answer to the phase: its first new reservation in the phase or, if the
    /// reservation stayed, its first plan.
    pub replanned: Option<Replan>,
    /// Windows of the steady part whose reservation differs from the window before.
    pub steady_changes: Vec<u64>,
    /// Windows in the steady part.
    pub steady_windows: u64,
}

/// When DARC answered a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replan {
    /// The window.
    pub window: u64,
    /// Windows after the phase's start that window ended (1: the window the phase started in).
    pub windows_after: u64,
    /// Whether the reservation changed (else DARC applied a plan with the one before).
    pub changed: bool,
}

/// Judges each phase: re-planned within `settle` windows of its start; no reservation change
/// in its steady part (from `settle` windows after its start to its end).
pub fn analyse(windows: &Windows, phases: &[Phase], settle: u64) -> Vec<PhaseVerdict> {
    let interval_s = typical_interval_s(windows);
    phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let from_start = |r: &WindowRow| {
                ((r.end_s - phase.start_s - TIME_SLACK_S) / interval_s).ceil() as u64
            };
            let in_phase = || {
                windows
                    .rows
                    .iter()
                    .filter(|r| r.end_s > phase.start_s && r.start_s < phase.end_s)
            };
            let before = windows
                .rows
                .iter()
                .take_while(|r| r.end_s <= phase.start_s)
                .last()
                .and_then(|r| r.reserved.as_ref());
            let replan = |r: &WindowRow, changed| Replan {
                window: r.window,
                windows_after: from_start(r).max(1),
                changed,
            };
            let replanned = in_phase()
                .find(|r| r.reserved.is_some() && r.reserved.as_ref() != before)
                .map(|r| replan(r, true))
                .or_else(|| {
                    in_phase()
                        .find(|r| r.plan_updates > 0)
                        .map(|r| replan(r, false))
                });
            let steady_from_s = phase.start_s + settle as f64 * interval_s;
            let mut steady_changes = Vec::new();
            let mut steady_windows = 0;
            for pair in windows.rows.windows(2) {
                let (before, row) = (&pair[0], &pair[1]);
                if row.start_s + TIME_SLACK_S < steady_from_s
                    || row.end_s > phase.end_s + TIME_SLACK_S
                {
                    continue;
                }
                steady_windows += 1;
                if row.reservation_changed_from(before) {
                    steady_changes.push(row.window);
                }
            }
            PhaseVerdict {
                phase: i + 1,
                replanned,
                steady_changes,
                steady_windows,
            }
        })
        .collect()
}

/// The median window length (s).
fn typical_interval_s(windows: &Windows) -> f64 {
    let mut lengths: Vec<f64> = windows
        .rows
        .iter()
        .map(|r| r.end_s - r.start_s)
        .filter(|l| *l > 0.0)
        .collect();
    lengths.sort_by(f64::total_cmp);
    lengths.get(lengths.len() / 2).copied().unwrap_or(0.1)
}

/// The per-window table (`phases` may be empty).
pub fn table(windows: &Windows, phases: &[Phase]) -> Table {
    let mut header = vec![
        "window".to_string(),
        "start_s".to_string(),
        "end_s".to_string(),
        "end_unix_ms".to_string(),
        "phase".to_string(),
    ];
    header.extend(windows.types.iter().map(|t| format!("{t}_arrivals")));
    header.extend(windows.types.iter().map(|t| format!("{t}_reserved")));
    header.extend(["plan_updates", "plans_kept", "changed"].map(String::from));
    let mut table = Table::new(header);
    let mut previous: Option<&WindowRow> = None;
    for row in &windows.rows {
        let phase = if phases.is_empty() {
            String::new()
        } else {
            phase_of((row.start_s + row.end_s) / 2.0, phases).to_string()
        };
        let mut cells = vec![
            row.window.to_string(),
            format!("{:.3}", row.start_s),
            format!("{:.3}", row.end_s),
            row.end_unix_ms.to_string(),
            phase,
        ];
        cells.extend(row.arrivals.iter().map(u64::to_string));
        match &row.reserved {
            Some(r) => cells.extend(r.iter().map(usize::to_string)),
            None => cells.extend(windows.types.iter().map(|_| String::new())),
        }
        let changed = previous.is_some_and(|before| row.reservation_changed_from(before));
        cells.extend([
            row.plan_updates.to_string(),
            row.plans_kept.to_string(),
            changed.to_string(),
        ]);
        table.push(cells);
        previous = Some(row);
    }
    table
}

/// Workers reserved per type over time (steps), and arrival rates per type over time; the
/// client's phase starts, if known, as vertical lines on both.
fn plots(windows: &Windows, phases: &[Phase]) -> (LinePlot, LinePlot) {
    let mut plan = LinePlot::new(
        "DARC reservations over time (live)",
        "server time (s)",
        "workers reserved to the type's group",
        false,
    );
    let mut mix = LinePlot::new(
        "arrival rate per type (live)",
        "server time (s)",
        "arrivals per second",
        false,
    );
    for (t, name) in windows.types.iter().enumerate() {
        let steps = windows
            .rows
            .iter()
            .filter_map(|r| Some((r, r.reserved.as_ref()?.get(t).copied()? as f64)))
            .flat_map(|(r, y)| [(r.start_s, y), (r.end_s, y)])
            .collect();
        plan.series.push(Series {
            name: name.clone(),
            points: steps,
        });
        let rates = windows
            .rows
            .iter()
            .filter(|r| r.end_s > r.start_s)
            .map(|r| {
                let rate = r.arrivals.get(t).copied().unwrap_or(0) as f64 / (r.end_s - r.start_s);
                ((r.start_s + r.end_s) / 2.0, rate)
            })
            .collect();
        mix.series.push(Series {
            name: name.clone(),
            points: rates,
        });
    }
    for plot in [&mut plan, &mut mix] {
        let top = plot
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.1)
            .fold(1.0, f64::max);
        for (i, phase) in phases.iter().enumerate() {
            plot.series.push(Series {
                name: format!("client phase {}", i + 1),
                points: vec![(phase.start_s, 0.0), (phase.start_s, top)],
            });
        }
    }
    (plan, mix)
}

/// Runs `psp plans`.
pub fn run(args: &PlansArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.telemetry)
        .with_context(|| format!("reading {}", args.telemetry.display()))?;
    let windows = parse(&text).with_context(|| format!("{}", args.telemetry.display()))?;
    let phases = match &args.client {
        Some(dir) => phases_on_server_clock(&read_summary(dir)?, &windows)?,
        None => Vec::new(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    table(&windows, &phases)
        .write_csv_file(args.out.join(PLANS_CSV))
        .context("writing plans.csv")?;
    let (plan, mix) = plots(&windows, &phases);
    plan.write_svg(args.out.join(PLAN_SVG))
        .context("writing plan.svg")?;
    mix.write_svg(args.out.join(MIX_SVG))
        .context("writing mix.svg")?;
    let changes = print_changes(&windows, &phases);
    let first_plan = windows.rows.iter().find(|r| r.reserved.is_some());
    match first_plan {
        Some(r) => println!(
            "{} windows; first plan in window {} ({:.2} s), then {changes} reservation changes; {} plans applied, {} kept by rounding hysteresis",
            windows.rows.len(),
            r.window,
            r.end_s,
            windows.rows.iter().map(|r| r.plan_updates).sum::<u64>(),
            windows.rows.iter().map(|r| r.plans_kept).sum::<u64>(),
        ),
        None => println!("{} windows; no DARC plan in them", windows.rows.len()),
    }
    let passed = phases.is_empty() || print_verdict(&windows, &phases, args.settle_windows);
    println!(
        "wrote {}, {} and {} in {}",
        PLANS_CSV,
        PLAN_SVG,
        MIX_SVG,
        args.out.display()
    );
    if args.check && !passed {
        bail!("re-planning verdict failed (see above)");
    }
    Ok(())
}

/// Prints the first plan and every reservation change after it (with the client's phase, if
/// known); returns the number of changes.
fn print_changes(windows: &Windows, phases: &[Phase]) -> usize {
    let mut previous: Option<&Vec<usize>> = None;
    let mut changes = 0;
    for row in &windows.rows {
        let Some(reserved) = &row.reserved else {
            continue;
        };
        if previous == Some(reserved) {
            continue;
        }
        changes += usize::from(previous.is_some());
        previous = Some(reserved);
        let phase = match phase_of((row.start_s + row.end_s) / 2.0, phases) {
            _ if phases.is_empty() => String::new(),
            0 => " (before the client)".to_string(),
            p if p > phases.len() => " (after the client)".to_string(),
            p => format!(" (phase {p})"),
        };
        let plan: Vec<String> = windows
            .types
            .iter()
            .zip(reserved)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!(
            "window {} ({:.2} s){phase}: {}",
            row.window,
            row.end_s,
            plan.join(", ")
        );
    }
    changes
}

/// Prints one line per phase and the verdict; whether it passed.
fn print_verdict(windows: &Windows, phases: &[Phase], settle: u64) -> bool {
    let verdicts = analyse(windows, phases, settle);
    let mut passed = true;
    for (v, p) in verdicts.iter().zip(phases) {
        let replanned = match v.replanned {
            Some(r) if v.phase == 1 => {
                format!(
                    "first plan in window {} ({} windows in)",
                    r.window, r.windows_after
                )
            }
            Some(r) => {
                passed &= r.windows_after <= settle;
                format!(
                    "re-planned in window {}, {} window(s) after the shift{}",
                    r.window,
                    r.windows_after,
                    if r.changed { "" } else { " (same reservation)" }
                )
            }
            None if v.phase == 1 => {
                passed = false;
                "no plan".to_string()
            }
            None => {
                passed = false;
                "never re-planned".to_string()
            }
        };
        passed &= v.steady_changes.is_empty();
        println!(
            "phase {} ({:.2}–{:.2} s): {replanned}; steady part: {} reservation change(s) in {} windows{}",
            v.phase,
            p.start_s,
            p.end_s,
            v.steady_changes.len(),
            v.steady_windows,
            if v.steady_changes.is_empty() {
                String::new()
            } else {
                format!(" (windows {:?})", v.steady_changes)
            }
        );
    }
    println!(
        "verdict: {} (re-planned within {settle} windows of each shift, no reservation change in steady parts)",
        if passed { "pass" } else { "FAIL" }
    );
    passed
}

fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join(psp_client::report::SUMMARY_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a client summary", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A telemetry line: 100 ms window `w` (server started at wall-clock 1 000 s), SHORT and
    /// LONG arrivals, DARC's reservation (SHORT's group, LONG's group) and plans applied.
    fn line(w: u64, arrivals: [u64; 2], reserved: Option<[u16; 2]>, updates: u64) -> String {
        let ty = |name: &str, n: u64| {
            serde_json::json!({"name": name, "arrivals": n, "completions": n,
                "drops": {"queue_full": 0, "slab_full": 0}, "service_count": n,
                "service_p50_ns": 0, "service_p99_ns": 0, "max_queue_depth": 0})
        };
        let plan = reserved.map(|[short, long]| {
            serde_json::json!({"groups": [
                {"types": ["SHORT"], "reserved": (0..short).collect::<Vec<_>>(), "stealable": []},
                {"types": ["LONG"], "reserved": (short..short + long).collect::<Vec<_>>(),
                 "stealable": []}], "spillway": null})
        });
        let end_ns = (w + 1) * 100_000_000;
        serde_json::json!({"kind": "window", "window": w, "start_ns": w * 100_000_000,
            "end_ns": end_ns, "end_unix_ms": 1_000_000 + end_ns / 1_000_000, "policy": "darc",
            "types": [ty("SHORT", arrivals[0]), ty("LONG", arrivals[1]), ty("UNKNOWN", 0)],
            "parse_drops": {}, "workers": [],
            "dispatcher": {"polls": 1, "busy_polls": 1, "utilisation": 1.0, "busy_share": 0.5},
            "plan": plan, "windows_dropped": 0, "plan_updates": updates, "plans_kept": 0})
        .to_string()
    }

    /// 30 windows: phase 1 (client from 0.5 s): first plan [1, 2] in window 8; shift at 1.5 s
    /// to [2, 1], applied in window 16; then `extra` changes a steady window's plan.
    fn windows(extra: Option<u64>) -> Windows {
        let mut text = String::new();
        for w in 0..30 {
            let (arrivals, mut reserved, updates) = match w {
                0..=4 => ([0, 0], None, 0),
                5..=7 => ([50, 50], None, 0),
                8 => ([50, 50], Some([1, 2]), 1),
                9..=14 => ([50, 50], Some([1, 2]), 0),
                15 => ([70, 30], Some([1, 2]), 0),
                16 => ([90, 10], Some([2, 1]), 1),
                _ => ([90, 10], Some([2, 1]), 0),
            };
            if extra == Some(w) {
                reserved = Some([3, 0]);
            }
            text.push_str(&line(w, arrivals, reserved, updates));
            text.push('\n');
        }
        parse(&text).expect("valid lines")
    }

    fn phases(windows: &Windows) -> Vec<Phase> {
        // The client started at wall-clock 1 000.5 s: 0.5 s into the server's clock.
        phases_from(1_000.5, &[(0.0, 1.0), (1.0, 1.0)], windows).expect("anchored")
    }

    #[test]
    fn the_client_phases_land_on_the_server_clock() {
        let windows = windows(None);
        assert_eq!(windows.types, ["SHORT", "LONG"]);
        let p = phases(&windows);
        assert!((p[0].start_s - 0.5).abs() < 1e-9 && (p[1].start_s - 1.5).abs() < 1e-9);
        assert!((p[1].end_s - 2.5).abs() < 1e-9);
    }

    #[test]
    fn a_replan_after_each_shift_and_steady_phases_pass() {
        let windows = windows(None);
        let verdicts = analyse(&windows, &phases(&windows), 3);
        let replan = |window, windows_after, changed| {
            Some(Replan {
                window,
                windows_after,
                changed,
            })
        };
        assert_eq!(
            verdicts[0].replanned,
            replan(8, 4, true),
            "window 8 ends 0.9 s"
        );
        assert_eq!(
            verdicts[1].replanned,
            replan(16, 2, true),
            "window 16 ends 1.7 s"
        );
        assert!(verdicts.iter().all(|v| v.steady_changes.is_empty()));
        assert_eq!(verdicts[1].steady_windows, 7, "1.8–2.5 s");
    }

    #[test]
    fn a_change_in_a_steady_part_is_named_and_a_late_replan_counted() {
        let windows = windows(Some(22));
        let verdicts = analyse(&windows, &phases(&windows), 3);
        assert_eq!(verdicts[1].steady_changes, [22, 23], "there and back");
        let verdicts = analyse(&windows, &phases(&windows), 1);
        let late = verdicts[1].replanned.expect("re-planned");
        assert_eq!(
            (late.window, late.windows_after),
            (16, 2),
            "later than 1 window"
        );
    }

    #[test]
    fn a_shift_that_keeps_the_reservation_counts_its_first_plan() {
        let text: String = (0..30)
            .map(|w| {
                let updates = u64::from(w == 8 || w == 17);
                line(w, [50, 50], (w >= 8).then_some([1, 2]), updates) + "\n"
            })
            .collect();
        let windows = parse(&text).expect("valid");
        let verdicts = analyse(&windows, &phases(&windows), 3);
        let second = verdicts[1].replanned.expect("a plan");
        assert_eq!((second.window, second.changed), (17, false));
        assert_eq!(second.windows_after, 3, "window 17 ends 1.8 s");
    }

    #[test]
    fn the_table_has_a_row_per_window_with_phase_and_changes() {
        let windows = windows(None);
        let table = table(&windows, &phases(&windows));
        assert_eq!(table.rows.len(), 30);
        let header = &table.header;
        let col = |name: &str| header.iter().position(|h| h == name).expect(name);
        assert_eq!(table.rows[16][col("phase")], "2");
        assert_eq!(table.rows[16][col("SHORT_reserved")], "2");
        assert_eq!(table.rows[16][col("changed")], "true");
        assert_eq!(table.rows[17][col("changed")], "false");
        assert_eq!(table.rows[3][col("LONG_reserved")], "", "no plan yet");
        assert_eq!(table.rows[29][col("phase")], "3", "after the last phase");
    }

    #[test]
    fn bad_lines_are_errors_naming_them_and_a_partial_last_line_is_skipped() {
        let good = line(0, [1, 1], None, 0);
        let err = parse(&format!("{good}\n{{\"kind\": 3}}\n")).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("line 2: not a telemetry window"),
            "{err:#}"
        );
        let partial = format!("{good}\n{}", &good[..40]);
        assert_eq!(parse(&partial).expect("partial skipped").rows.len(), 1);
        assert!(parse("").is_err());
        let old = good.replace("\"end_unix_ms\":1000100,", "");
        assert!(!old.contains("end_unix_ms"), "{old}");
        let windows = parse(&format!("{old}\n")).expect("older line");
        let err = phases_from(1.0, &[(0.0, 1.0)], &windows).unwrap_err();
        assert!(err.to_string().contains("no wall-clock times"), "{err}");
    }

    #[test]
    fn run_writes_the_table_and_both_plots() {
        let dir = std::env::temp_dir().join(format!("psp-plans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("telemetry.jsonl");
        let text: String = (0..5)
            .map(|w| line(w, [10, 10], Some([1, 2]), u64::from(w == 0)) + "\n")
            .collect();
        std::fs::write(&file, text).expect("written");
        let args = PlansArgs {
            telemetry: file,
            client: None,
            out: dir.join("out"),
            settle_windows: 3,
            check: false,
        };
        super::run(&args).expect("psp plans");
        let csv = std::fs::read_to_string(dir.join("out").join(PLANS_CSV)).expect("csv");
        assert_eq!(csv.lines().count(), 6, "header and 5 windows: {csv}");
        for svg in [PLAN_SVG, MIX_SVG] {
            let text = std::fs::read_to_string(dir.join("out").join(svg)).expect(svg);
            assert!(text.starts_with("<svg") && text.contains("SHORT"), "{svg}");
        }
        let missing = PlansArgs {
            telemetry: dir.join("none.jsonl"),
            ..args
        };
        let err = super::run(&missing).unwrap_err();
        assert!(format!("{err:#}").contains("none.jsonl"), "{err:#}");
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }
}
