//! Simulator speed: simulated requests per second on one core, per policy (criterion reports
//! the throughput as elements/s = requests/s). One run = 200 000 DISP2 requests at load 0.8 on
//! 14 workers.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use psp_scheduler::{DarcParams, Policy, Registry};
use psp_sim::{run, RunConfig};
use psp_workload::Workload;

const REQUESTS: u64 = 200_000;
const LOAD: f64 = 0.8;

fn bench(c: &mut Criterion) {
    let path = format!(
        "{}/../configs/workloads/DISP2.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let workload = Workload::from_path(path).expect("DISP2 workload");
    let config = RunConfig {
        requests: REQUESTS,
        ..RunConfig::default()
    };
    // Every registered policy; DARC profiles for 20 000 samples so that it plans within a run.
    let policies: Vec<Policy> = Registry::builtin()
        .entries()
        .iter()
        .map(|entry| match (entry.default)() {
            Policy::Darc(p) => Policy::Darc(DarcParams {
                samples_needed: 20_000,
                ..p
            }),
            other => other,
        })
        .collect();
    let mut group = c.benchmark_group("simulate_disp2");
    group.throughput(Throughput::Elements(REQUESTS));
    group.sample_size(10);
    for policy in &policies {
        group.bench_with_input(
            BenchmarkId::from_parameter(policy.name()),
            policy,
            |b, p| b.iter(|| run(&workload, p, LOAD, &config).expect("simulation")),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
