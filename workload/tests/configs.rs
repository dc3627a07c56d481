//! Every workload file of `configs/workloads/` parses, and the mean service times match the
//! values of docs/design.md §1.9 / §6.3 (Σ mean·ratio).

use std::path::PathBuf;

use psp_workload::Workload;

fn workloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/workloads")
}

fn load(name: &str) -> Workload {
    let path = workloads_dir().join(format!("{name}.yml"));
    Workload::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_workload_file_parses() {
    let mut parsed = 0;
    for entry in std::fs::read_dir(workloads_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            Workload::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            parsed += 1;
        }
    }
    assert!(parsed >= 6, "only {parsed} workload files found");
}

#[test]
fn mean_service_times_match_the_reference() {
    // (workload, Σ mean·ratio in ns) from docs/design.md §1.9 (BIM1/BIM2 from §6.3's
    // loader table).
    let expected = [
        ("DISP2", 50_500.0),
        ("SBIM2", 2_997.5),
        ("TPCC", 19_068.0),
        ("ROCKSDB", 318_250.0),
        ("DISP3", 5_950.0),
        ("BIM1", 1_000.0),
        ("BIM2", 1_000.0),
    ];
    for (name, mean_ns) in expected {
        let w = load(name);
        let got = w.single_phase().expect("one phase").mean_service_ns();
        assert!(
            (got - mean_ns).abs() < 1e-6 * mean_ns,
            "{name}: {got} ns vs {mean_ns} ns"
        );
    }
}

#[test]
fn wire_ids_follow_the_original_enum() {
    let tpcc = load("TPCC");
    let ids: Vec<u32> = tpcc.classes.iter().map(|c| c.wire_id).collect();
    assert_eq!(ids, [5, 6, 7, 8, 9]);
    let rocks = load("ROCKSDB");
    let ids: Vec<u32> = rocks.classes.iter().map(|c| c.wire_id).collect();
    assert_eq!(ids, [10, 11]);
}

#[test]
fn sched4_has_four_phases() {
    let w = load("sched4");
    assert_eq!(w.phases.len(), 4);
    let means: Vec<f64> = w.phases.iter().map(|p| p.mean_service_ns()).collect();
    assert_eq!(means, [50_500.0, 50_500.0, 5_950.0, 3_500.0]);
    assert_eq!(w.classes.len(), 2);
    assert!(w.phases.iter().all(|p| p.duration_s == 5.0));
}
