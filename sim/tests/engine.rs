//! Simulator behaviour: determinism, conservation, queueing-theory sanity, DARC vs c-FCFS.

use psp_scheduler::{DarcParams, DarcTsParams, Policy, TimeSharingParams};
use psp_sim::{run, sweep, RunConfig, SweepSpec};
use psp_workload::Workload;

fn workload(name: &str) -> Workload {
    let path = format!(
        "{}/../configs/workloads/{name}.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    Workload::from_path(&path).unwrap()
}

fn darc(samples: u64) -> Policy {
    Policy::Darc(DarcParams {
        samples_needed: samples,
        ..DarcParams::default()
    })
}

fn all_policies() -> Vec<Policy> {
    vec![
        Policy::Cfcfs,
        Policy::Dfcfs,
        Policy::Sjf,
        Policy::Edf,
        darc(1_000),
        Policy::DarcStatic { reserved_short: 2 },
        Policy::TimeSharing(TimeSharingParams::default()),
        darc_ts(1_000, false),
        darc_ts(1_000, true),
    ]
}

fn darc_ts(samples: u64, slice_all: bool) -> Policy {
    Policy::DarcTs(DarcTsParams {
        darc: DarcParams {
            samples_needed: samples,
            ..DarcParams::default()
        },
        slice_all,
        ..DarcTsParams::default()
    })
}

fn config(requests: u64, seed: u64) -> RunConfig {
    RunConfig {
        requests,
        seed,
        ..RunConfig::default()
    }
}

#[test]
fn same_seed_same_results() {
    let w = workload("DISP2");
    for policy in [
        darc(2_000),
        Policy::TimeSharing(TimeSharingParams::default()),
    ] {
        let a = run(&w, &policy, 0.8, &config(8_000, 7)).unwrap();
        let b = run(&w, &policy, 0.8, &config(8_000, 7)).unwrap();
        let c = run(&w, &policy, 0.8, &config(8_000, 8)).unwrap();
        assert_eq!(a.stats.slowdown_histogram(), b.stats.slowdown_histogram());
        assert_eq!(a.stats.latency_histogram(), b.stats.latency_histogram());
        assert_eq!(
            (a.completed, a.end_ns, a.plan_updates),
            (b.completed, b.end_ns, b.plan_updates)
        );
        assert_ne!(a.stats.latency_histogram(), c.stats.latency_histogram());
    }
}

#[test]
fn sweep_does_not_depend_on_thread_count() {
    let w = workload("SBIM2");
    let mut spec = SweepSpec {
        policies: vec![Policy::Cfcfs, darc(1_000)],
        loads: vec![0.3, 0.7],
        run: config(10_000, 3),
        threads: 1,
    };
    let one = sweep(&w, &spec, &|| ()).unwrap();
    spec.threads = 3;
    let three = sweep(&w, &spec, &|| ()).unwrap();
    assert_eq!(one.len(), 4);
    for (a, b) in one.iter().zip(&three) {
        assert_eq!((a.policy, a.load), (b.policy, b.load));
        assert_eq!(a.stats.slowdown_histogram(), b.stats.slowdown_histogram());
    }
}

#[test]
fn every_arrival_completes_or_is_dropped() {
    const REQUESTS: u64 = 8_000;
    let w = workload("TPCC");
    for policy in all_policies() {
        for (load, capacity) in [(0.7, 4096), (1.6, 16)] {
            let mut cfg = config(REQUESTS, 11);
            cfg.queue_capacity = capacity;
            let r = run(&w, &policy, load, &cfg).unwrap();
            assert_eq!(r.arrivals, REQUESTS, "{}", policy.name());
            assert_eq!(
                r.completed + r.dropped,
                r.arrivals,
                "{} at {load}",
                policy.name()
            );
            let measured = r.stats.completed() + r.stats.dropped();
            assert_eq!(
                measured,
                REQUESTS - REQUESTS / 10,
                "{} at {load}",
                policy.name()
            );
            if capacity == 16 {
                assert!(
                    r.dropped > 0,
                    "{} dropped nothing at load {load}",
                    policy.name()
                );
            }
        }
    }
}

#[test]
fn mm1_mean_latency_is_twice_the_service_time_at_half_load() {
    // M/M/1 at ρ = 0.5: mean response time = S / (1 − ρ) = 2 S.
    let w = Workload::from_yaml_str(
        "mm1",
        "- {mean_ns: [10000], ratios: [1], rtype: [SHORT], duration: 1, service: [exponential]}",
    )
    .unwrap();
    let cfg = RunConfig {
        workers: 1,
        ..config(100_000, 5)
    };
    let r = run(&w, &Policy::Cfcfs, 0.5, &cfg).unwrap();
    let mean = r.stats.latency().mean;
    assert!(
        (mean - 20_000.0).abs() < 0.05 * 20_000.0,
        "mean latency {mean} ns"
    );
    assert!(
        (r.offered_rps - 50_000.0).abs() < 0.02 * 50_000.0,
        "{}",
        r.offered_rps
    );
}

#[test]
fn mm2_mean_latency_matches_erlang_c() {
    // M/M/2 at ρ = 0.5 (offered a = λ/μ = 1): Erlang C = 1/3, W = S + C·S/(c − a) = 4/3 S.
    let w = Workload::from_yaml_str(
        "mm2",
        "- {mean_ns: [10000], ratios: [1], rtype: [SHORT], duration: 1, service: [exponential]}",
    )
    .unwrap();
    let cfg = RunConfig {
        workers: 2,
        ..config(100_000, 6)
    };
    let r = run(&w, &Policy::Cfcfs, 0.5, &cfg).unwrap();
    let mean = r.stats.latency().mean;
    let expected = 10_000.0 * 4.0 / 3.0;
    assert!(
        (mean - expected).abs() < 0.04 * expected,
        "mean latency {mean} ns vs {expected}"
    );
}

#[test]
fn darc_beats_cfcfs_on_disp2_at_high_load() {
    let w = workload("DISP2");
    let cfg = config(60_000, 2);
    let load = 0.85;
    let c = run(&w, &Policy::Cfcfs, load, &cfg).unwrap();
    let d = run(&w, &darc(5_000), load, &cfg).unwrap();
    let (c999, d999) = (c.stats.slowdown().p999, d.stats.slowdown().p999);
    assert!(d.plan_updates >= 1, "DARC never left its bootstrap");
    assert!(
        d999 * 2.0 < c999,
        "darc p99.9 slowdown {d999} vs cfcfs {c999}"
    );
}

#[test]
fn dispatcher_costs_serialize() {
    // One 1 µs dispatch cost per arrival caps the dispatcher at 1 Mrps: SBIM2 on 14 workers at
    // load 0.5 offers 2.3 Mrps, so the queues overflow and requests are dropped.
    let w = workload("SBIM2");
    let mut cfg = config(50_000, 4);
    let free = run(&w, &Policy::Cfcfs, 0.5, &cfg).unwrap();
    cfg.dispatch_cost_ns = 1_000;
    let costly = run(&w, &Policy::Cfcfs, 0.5, &cfg).unwrap();
    assert!(
        costly.stats.latency().p50 > 10.0 * free.stats.latency().p50,
        "{:?} vs {:?}",
        costly.stats.latency(),
        free.stats.latency()
    );
}

/// JBSQ(2): a worker holding its next request starts it the moment the current one completes,
/// while at depth 1 it waits for the dispatcher to handle the completion (here 1 µs) and
/// dispatch: 1 µs requests at 0.7 Mrps on one worker overload it at depth 1 (2 µs per
/// request) and not at depth 2. Every arrival still completes or is counted as dropped.
#[test]
fn depth_2_hides_the_completion_cost() {
    let w = Workload::from_yaml_str(
        "fixed",
        "- {mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: 1, service: [fixed]}",
    )
    .unwrap();
    let mut cfg = RunConfig {
        workers: 1,
        completion_cost_ns: 1_000,
        queue_capacity: 64,
        ..config(20_000, 3)
    };
    let depth_1 = run(&w, &Policy::Cfcfs, 0.7, &cfg).unwrap();
    cfg.worker_queue_depth = 2;
    let depth_2 = run(&w, &Policy::Cfcfs, 0.7, &cfg).unwrap();
    for r in [&depth_1, &depth_2] {
        assert_eq!(r.completed + r.dropped, 20_000);
    }
    assert!(
        depth_1.dropped > 1_000,
        "depth 1 overloads: {}",
        depth_1.dropped
    );
    assert_eq!(depth_2.dropped, 0);
    assert!(
        depth_2.stats.latency().p50 * 5.0 < depth_1.stats.latency().p50,
        "{:?} vs {:?}",
        depth_2.stats.latency(),
        depth_1.stats.latency()
    );
    // The same option refused where the scheduler refuses it.
    let ts = Policy::TimeSharing(TimeSharingParams::default());
    let err = run(&w, &ts, 0.5, &cfg).unwrap_err().to_string();
    assert!(err.contains("worker_queue_depth = 2"), "{err}");
}

#[test]
fn time_sharing_preempts_long_requests() {
    let w = workload("DISP2");
    let r = run(
        &w,
        &Policy::TimeSharing(TimeSharingParams::default()),
        0.5,
        &config(10_000, 9),
    )
    .unwrap();
    // Every LONG (100 µs) request is preempted ⌈100/5⌉ − 1 = 19 times.
    assert!(r.preemptions > 19 * 4_000, "{} preemptions", r.preemptions);
    assert_eq!(r.completed + r.dropped, r.arrivals);
}

/// DISP2 at 0.95 of 14 workers: LONG needs 13.2 workers, DARC's plan gives it 13 (SHORT's
/// reserved worker idles 99 % of the time) and its queue grows; `darc-ts` lends it SHORT's
/// idle worker one quantum at a time, keeps up, and SHORT still waits for a quantum at most.
#[test]
fn darc_ts_lends_the_short_worker_where_darc_overloads() {
    let w = workload("DISP2");
    let cfg = config(100_000, 5);
    let d = run(&w, &darc(5_000), 0.95, &cfg).unwrap();
    let h = run(&w, &darc_ts(5_000, false), 0.95, &cfg).unwrap();
    for r in [&d, &h] {
        assert_eq!(r.completed + r.dropped, r.arrivals, "{}", r.policy);
        assert_eq!(r.final_allocation, Some(vec![1, 13]), "{}", r.policy);
    }
    assert_eq!(d.preemptions, 0);
    assert!(h.preemptions > 1_000, "{} preemptions", h.preemptions);
    let slowdown = |r: &psp_sim::RunResult, class: usize| r.stats.types()[class].slowdown().p999;
    eprintln!(
        "DISP2 0.95 p99.9 slowdown: darc SHORT {} LONG {}, darc-ts SHORT {} LONG {}",
        slowdown(&d, 0),
        slowdown(&d, 1),
        slowdown(&h, 0),
        slowdown(&h, 1)
    );
    assert!(slowdown(&h, 1) * 2.0 < slowdown(&d, 1), "LONG gains");
    // A SHORT waits for a quantum and a preemption (5 + 1 µs) at most on its own worker:
    // well within the SLO (20).
    assert!(slowdown(&h, 0) < 10.0, "SHORT {}", slowdown(&h, 0));
}

#[test]
fn phases_play_in_order() {
    // sched4: phase 0 has SHORT = 100 µs, phases 1-2 SHORT = 1 µs, phase 3 only SHORT = 3.5 µs.
    let w = workload("sched4");
    let r = run(&w, &Policy::Cfcfs, 0.5, &config(20_000, 1)).unwrap();
    assert_eq!(r.completed + r.dropped, 20_000);
    let types = r.stats.types();
    assert_eq!(types.len(), 2);
    // Phase 3 (SHORT only) is the longest in requests; SHORT must outnumber LONG.
    assert!(
        types[0].completed() > 2 * types[1].completed(),
        "{} vs {}",
        types[0].completed(),
        types[1].completed()
    );
    // Slowdown is normalised per phase: SHORT's median slowdown stays near 1 at half load.
    assert!(types[0].slowdown().p50 < 2.0, "{:?}", types[0].slowdown());
}

/// DARC windows of the re-planning tests, in completions.
const REPLAN_SAMPLES: u64 = 10_000;

/// Runs `name` (a three-phase mix shift) with DARC at load 0.8 on 14 workers, phases
/// shortened to `PHASE_S`, DARC windows of `REPLAN_SAMPLES` completions; checks that within 3
/// windows of each shift DARC re-plans from the new mix, and that it changes the reservation
/// nowhere else; returns the plan log.
fn check_replanning(name: &str, seed: u64) -> Vec<psp_sim::PlanChange> {
    check_replanning_with(name, seed, &darc(REPLAN_SAMPLES))
}

/// [`check_replanning`] with the DARC policy given (its windows of `REPLAN_SAMPLES`).
fn check_replanning_with(name: &str, seed: u64, policy: &Policy) -> Vec<psp_sim::PlanChange> {
    const SAMPLES: u64 = REPLAN_SAMPLES;
    let rounding_hysteresis = policy
        .darc_params()
        .is_some_and(|p| p.rounding_hysteresis > 0.0);
    const PHASE_S: f64 = 0.25;
    let mut w = workload(name);
    for phase in &mut w.phases {
        phase.duration_s = PHASE_S;
    }
    let (workers, load) = (14, 0.8);
    let rates = w.rates_for_load(load, workers);
    // As many requests as the phases plan: each phase keeps its duration.
    let planned: f64 = rates.iter().map(|r| r * PHASE_S).sum();
    let r = run(&w, policy, load, &config(planned as u64, seed)).unwrap();
    let log = r.plan_log;
    assert_eq!(log.len() as u64, r.plan_updates);
    let phase_ns = |phase: usize| (phase as f64 * PHASE_S * 1e9) as u64;
    let in_phase = |phase: usize| {
        log.iter()
            .filter(|c| (phase_ns(phase)..phase_ns(phase + 1)).contains(&c.at_ns))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        in_phase(0).len(),
        1,
        "{name}: the bootstrap plan only: {log:?}"
    );
    for (phase, short_ratio) in [(1, 0.9), (2, 0.1)] {
        let deadline_ns = phase_ns(phase) + (3.0 * SAMPLES as f64 / rates[phase] * 1e9) as u64;
        let early = |c: &&&psp_sim::PlanChange| c.at_ns <= deadline_ns;
        let changes = in_phase(phase);
        // With rounding hysteresis a window that straddles the shift may already give the
        // counts the new mix rounds to: later windows then keep it and log nothing.
        assert!(
            changes
                .iter()
                .filter(early)
                .any(|c| (c.ratios[0] - short_ratio).abs() < 0.03 || rounding_hysteresis),
            "{name} seed {seed}: no plan from the new mix within 3 windows of shift {phase}: {log:?}"
        );
        assert!(
            changes.iter().filter(|c| c.changed).all(|c| early(&c)),
            "{name} seed {seed}: a reservation change late in steady phase {phase}: {log:?}"
        );
    }
    log
}

/// Issue "operate a running server", online re-planning, on DISP2's types with a mix that
/// shifts 50/50 → 90/10 → 10/90 at constant load: DARC re-plans from each new mix within 3 of
/// its profiling windows; SHORT's demand stays under 1.5 workers, so the reservation [1, 13]
/// never changes. With 10 µs / 100 µs types it follows the mix, [1, 13] → [7, 7] → [1, 13]
/// (through an intermediate plan when a window straddles the shift), changing only within 3
/// windows of each shift.
#[test]
fn darc_replans_within_three_windows_of_each_shift_and_not_in_steady_phases() {
    for seed in 1..=4 {
        let log = check_replanning("DISP2-shift", seed);
        assert!(log.iter().skip(1).all(|c| !c.changed), "{log:?}");
        let log = check_replanning("MIX-shift", seed);
        assert_follows_mix_shift(&log);
    }
}

/// The plan in force at the end of each of MIX-shift's phases (a window straddling a shift may
/// give an intermediate plan first) is [1, 13], [7, 7], [1, 13].
fn assert_follows_mix_shift(log: &[psp_sim::PlanChange]) {
    let reservations: Vec<_> = [0.25e9, 0.5e9, 0.75e9]
        .iter()
        .filter_map(|&end| log.iter().rev().find(|c| (c.at_ns as f64) < end))
        .map(|c| c.reserved_per_type.clone())
        .collect();
    assert_eq!(
        reservations,
        [vec![1, 13], vec![7, 7], vec![1, 13]],
        "{log:?}"
    );
}

/// Rounding hysteresis (`darc.rounding_hysteresis`) keeps a plan near the cut, not one the mix
/// has moved away from: with a quarter worker of it DARC still follows MIX-shift's
/// [1, 13] → [7, 7] → [1, 13] within 3 windows of each shift, on the same seeds.
#[test]
fn darc_with_rounding_hysteresis_still_follows_each_shift() {
    let policy = Policy::Darc(DarcParams {
        samples_needed: REPLAN_SAMPLES,
        rounding_hysteresis: 0.25,
        ..DarcParams::default()
    });
    for seed in 1..=4 {
        let log = check_replanning_with("MIX-shift", seed, &policy);
        assert_follows_mix_shift(&log);
    }
}
