//! CLI smoke tests: `psp sim` writes its CSV and SVG; `psp plan` reproduces docs/design.md §1.9.

use clap::Parser;
use psp_scheduler::{DarcParams, WorkerId};
use psp_sim::alloc::{describe_plans, plans};
use psp_sim::cli::{parse_loads, run, Command};
use psp_workload::Workload;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn workload_path(name: &str) -> String {
    format!(
        "{}/../configs/workloads/{name}.yml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("psp-sim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn sim_writes_csv_and_svg() {
    let out = temp_dir("cli");
    let cli = Cli::try_parse_from([
        "psp",
        "sim",
        "--workload",
        &workload_path("DISP2"),
        "--policies",
        "darc,cfcfs",
        "--load",
        "0.3:0.9:0.3",
        "--requests",
        "5000",
        "--darc-samples",
        "400",
        "--seed",
        "3",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    run(cli.command).unwrap();
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("policy,load,"));
    // 2 policies × 3 loads × (2 types + ALL).
    assert_eq!(lines.len(), 1 + 2 * 3 * 3, "{csv}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("darc,0.900,all,") && l.contains(",ALL,")));
    let svg = std::fs::read_to_string(out.join("plot.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("darc") && svg.contains("cfcfs"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_arguments_are_errors() {
    assert!(parse_loads("0.5:0.1:0.1").is_err());
    assert!(parse_loads("0.5,x").is_err());
    assert!(parse_loads("-1").is_err());
    assert_eq!(parse_loads("0.05:1.05:0.05").unwrap().len(), 21);
    assert_eq!(parse_loads("0.5, 0.9").unwrap(), vec![0.5, 0.9]);
    let out = temp_dir("bad");
    let cli = Cli::try_parse_from([
        "psp",
        "sim",
        "--workload",
        &workload_path("DISP2"),
        "--policies",
        "fifo",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let e = run(cli.command).unwrap_err();
    assert!(format!("{e:#}").contains("fifo"), "{e:#}");
    // --worker-queue-depth: 1 or 2; 2 with ts (one of the default policies) is refused.
    for (depth, policies, message) in [
        ("3", "cfcfs", "--worker-queue-depth 3: must be 1 or 2"),
        ("2", "darc,ts", "--worker-queue-depth 2: ts preempts"),
        ("2", "darc-ts", "--worker-queue-depth 2: darc-ts preempts"),
    ] {
        let cli = Cli::try_parse_from([
            "psp",
            "sim",
            "--workload",
            &workload_path("DISP2"),
            "--policies",
            policies,
            "--worker-queue-depth",
            depth,
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        let e = format!("{:#}", run(cli.command).unwrap_err());
        assert!(e.starts_with(message), "{e}");
    }
}

/// `psp sim --policies darc-ts` with the time-slicing flags: DISP2 at 0.95, where LONG runs
/// slices on SHORT's worker (the `preemptions` column), with and without `--darc-ts-slice-all`
/// (which slices every LONG: many more preemptions).
#[test]
fn darc_ts_runs_with_its_flags() {
    let preemptions = |slice_all: bool| {
        let out = temp_dir(if slice_all { "darc-ts-all" } else { "darc-ts" });
        let mut args = vec![
            "psp".to_string(),
            "sim".into(),
            "--workload".into(),
            workload_path("DISP2"),
            "--policies".into(),
            "darc-ts".into(),
            "--load".into(),
            "0.95".into(),
            "--requests".into(),
            "20000".into(),
            "--darc-samples".into(),
            "2000".into(),
            "--preemption-cost-ns".into(),
            "300".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        if slice_all {
            args.push("--darc-ts-slice-all".into());
        }
        run(Cli::try_parse_from(args).unwrap().command).unwrap();
        let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let column = header.iter().position(|&c| c == "preemptions").unwrap();
        let all = csv
            .lines()
            .find(|l| l.starts_with("darc-ts,") && l.contains(",ALL,"))
            .expect("an ALL row");
        all.split(',').nth(column).unwrap().parse::<u64>().unwrap()
    };
    let (lent, sliced) = (preemptions(false), preemptions(true));
    assert!(lent > 0, "{lent}");
    // Every LONG (100 µs) is preempted 19 times once all are sliced.
    assert!(sliced > 5 * lent, "{sliced} vs {lent}");
}

fn reserved(plan: &psp_scheduler::ReservationPlan) -> Vec<Vec<u16>> {
    plan.groups
        .iter()
        .map(|g| g.reserved.iter().map(|w: &WorkerId| w.0).collect())
        .collect()
}

#[test]
fn plan_reproduces_reference_outcomes() {
    let params = DarcParams::default();
    let plan = |name: &str| {
        let w = Workload::from_path(workload_path(name)).unwrap();
        plans(&w, 14, &params).remove(0)
    };
    let range = |a: u16, b: u16| (a..b).collect::<Vec<u16>>();
    // DISP2: SHORT → [0]; LONG → [1..13] + spillway (13, already in).
    let p = plan("DISP2");
    assert_eq!(reserved(&p), vec![vec![0], range(1, 14)]);
    assert!(p.groups[1].uses_spillway);
    assert_eq!(p.groups[0].stealable.len(), 13);
    // SBIM2: SHORT → [0, 1]; LONG → [2..13].
    assert_eq!(reserved(&plan("SBIM2")), vec![range(0, 2), range(2, 14)]);
    // TPC-C: {Payment, OrderStatus} → [0,1]; {NewOrder} → [2..7]; {Delivery, StockLevel} → [8..13].
    let p = plan("TPCC");
    assert_eq!(reserved(&p), vec![range(0, 2), range(2, 8), range(8, 14)]);
    assert_eq!(p.groups[0].members.len(), 2);
    assert_eq!(p.groups[2].members.len(), 2);
    // RocksDB: GET → [0]; SCAN → [1..13] + spillway.
    assert_eq!(reserved(&plan("ROCKSDB")), vec![vec![0], range(1, 14)]);
    // DISP3: SHORT → 2, LONG → 12.
    assert_eq!(reserved(&plan("DISP3")), vec![range(0, 2), range(2, 14)]);

    let w = Workload::from_path(workload_path("TPCC")).unwrap();
    let text = describe_plans(&w, 14, &params);
    assert!(
        text.contains("window mean 19.0680 µs") && text.contains("734214 rps"),
        "{text}"
    );
}

#[test]
fn search_finds_an_allocation_no_worse_than_the_formula() {
    let cli = Cli::try_parse_from([
        "psp",
        "search",
        "--workload",
        &workload_path("DISP2"),
        "--workers",
        "4",
        "--load",
        "0.8",
        "--requests",
        "4000",
        "--threads",
        "2",
    ])
    .unwrap();
    run(cli.command).unwrap();
    let w = Workload::from_path(workload_path("DISP2")).unwrap();
    let run_cfg = psp_sim::RunConfig {
        workers: 4,
        requests: 4_000,
        ..Default::default()
    };
    let report =
        psp_sim::alloc::search(&w, 0.8, 20.0, &run_cfg, 2, &DarcParams::default(), &|| ()).unwrap();
    // 2 groups on 4 workers: C(3, 1) = 3 allocations.
    assert_eq!(report.ranked.len(), 3);
    let best = report.best().unwrap();
    // The formula's plan ([0] + [1..3]) is one of the candidates, so the best is no worse.
    assert!(
        best.score() <= report.formula.score(),
        "{} vs {}",
        best.score(),
        report.formula.score()
    );
}

#[test]
fn multi_phase_sweep_has_per_phase_rows() {
    let out = temp_dir("phases");
    let cli = Cli::try_parse_from([
        "psp",
        "sim",
        "--workload",
        &workload_path("sched4"),
        "--policies",
        "cfcfs",
        "--load",
        "0.5",
        "--requests",
        "4000",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    run(cli.command).unwrap();
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    // (all + 4 phases) × (2 types + ALL).
    assert_eq!(csv.lines().count(), 1 + 5 * 3, "{csv}");
    assert!(csv
        .lines()
        .any(|l| l.starts_with("cfcfs,0.500,3,") && l.contains(",ALL,")));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn timeline_writes_the_darc_plan_log_and_its_plot() {
    let out = temp_dir("plans");
    let cli = Cli::try_parse_from([
        "psp",
        "sim",
        "--workload",
        &workload_path("MIX-shift"),
        "--policies",
        "darc,cfcfs",
        "--load",
        "0.8",
        "--requests",
        "60000",
        "--darc-samples",
        "2000",
        "--timeline-ms",
        "20",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    run(cli.command).unwrap();
    let timeline = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    assert!(timeline.lines().count() > 10, "{timeline}");
    let plans = std::fs::read_to_string(out.join("plans.csv")).unwrap();
    let lines: Vec<&str> = plans.lines().collect();
    assert_eq!(
        lines[0],
        "policy,load,at_ms,darc_window,changed,SHORT_workers,LONG_workers,SHORT_ratio,LONG_ratio"
    );
    // DARC's bootstrap plan, then the 90/10 phase's [7, 7]; c-FCFS has no plan.
    assert!(lines.len() >= 3, "{plans}");
    assert!(lines[1].starts_with("darc,0.800,") && lines[1].contains(",0,true,1,13,"));
    assert!(lines.iter().any(|l| l.contains(",true,7,7,")), "{plans}");
    assert!(lines.iter().skip(1).all(|l| l.starts_with("darc,")));
    let svg = std::fs::read_to_string(out.join("plan.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("darc @ 0.80: SHORT"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn plan_model_prints_its_choice_beside_darcs() {
    let w = Workload::from_path(workload_path("TPCC")).unwrap();
    let text = psp_sim::alloc::describe_model_plans(&w, 14, &DarcParams::default(), 0.95, 3);
    assert!(
        text.contains("model planner at load 0.95 (78 candidate allocations)"),
        "{text}"
    );
    // The model's choice, then DARC's formula plan with its predicted tails per type.
    let model = text
        .lines()
        .find(|l| l.trim_start().starts_with("model "))
        .unwrap();
    let darc = text
        .lines()
        .find(|l| l.trim_start().starts_with("darc "))
        .unwrap();
    assert!(
        darc.contains("[2, 6, 6]") && darc.contains("StockLevel"),
        "{text}"
    );
    assert!(
        model.contains("predicted p99.9 slowdown") && !model.contains("inf"),
        "{text}"
    );
    assert_eq!(text.matches("\n    [").count(), 3, "{text}");
    let cli = Cli::try_parse_from([
        "psp",
        "plan",
        "--workload",
        &workload_path("TPCC"),
        "--model",
        "--load",
        "0.9",
    ])
    .unwrap();
    run(cli.command).unwrap();
    let cli = Cli::try_parse_from([
        "psp",
        "plan",
        "--workload",
        &workload_path("TPCC"),
        "--model",
        "--load=0",
    ])
    .unwrap();
    assert!(format!("{:#}", run(cli.command).unwrap_err()).contains("--load 0"));
}
