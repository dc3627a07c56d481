//! Scheduler tests: hand-made sequences per policy, then property tests over random sequences.

use super::*;
use crate::{
    DarcParams, DarcTsParams, PlanMode, PlanUpdate, TimeSharingParams, TypeGroup,
    PLAN_UPDATE_CAPACITY,
};

const SHORT: TypeIndex = TypeIndex(0);
const LONG: TypeIndex = TypeIndex(1);
const SHORT_WIRE: u32 = 1;
const LONG_WIRE: u32 = 2;

/// DISP2-like: SHORT 1 µs 50 %, LONG 100 µs 50 %.
fn disp2_types() -> Vec<RequestTypeSpec> {
    vec![
        RequestTypeSpec::new("SHORT", SHORT_WIRE)
            .with_mean_ns(1_000)
            .with_ratio(0.5),
        RequestTypeSpec::new("LONG", LONG_WIRE)
            .with_mean_ns(100_000)
            .with_ratio(0.5),
    ]
}

fn build(workers: usize, types: Vec<RequestTypeSpec>, policy: Policy) -> Scheduler {
    Scheduler::new(SchedulerConfig::new(workers, types, policy)).expect("valid test config")
}

fn oracle() -> Policy {
    Policy::Darc(DarcParams {
        dynamic: false,
        ..DarcParams::default()
    })
}

fn drain(s: &mut Scheduler, now: Nanos) -> Vec<(u16, u64)> {
    let mut out = Vec::new();
    while let Some(d) = s.next_dispatch(now) {
        out.push((d.worker.0, d.token.0));
    }
    out
}

fn arrive(s: &mut Scheduler, now: Nanos, ty: TypeIndex, token: u64) {
    s.on_arrival(now, ty, Token(token)).expect("queue has room");
}

#[test]
fn cfcfs_is_one_fifo_to_the_lowest_idle_worker() {
    let mut s = build(2, disp2_types(), Policy::Cfcfs);
    arrive(&mut s, 0, LONG, 0);
    arrive(&mut s, 1, TypeIndex::UNKNOWN, 1);
    arrive(&mut s, 2, SHORT, 2);
    arrive(&mut s, 3, SHORT, 3);
    assert_eq!(drain(&mut s, 5), vec![(0, 0), (1, 1)]);
    assert_eq!(s.queue_len(SHORT), 2);
    let done = s.on_completion(9, WorkerId(1)).unwrap();
    assert_eq!(
        (done.token, done.ty, done.service_ns),
        (Token(1), TypeIndex::UNKNOWN, 4)
    );
    assert_eq!(drain(&mut s, 9), vec![(1, 2)]);
    s.on_completion(10, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 10), vec![(0, 3)]);
    assert_eq!(s.queued(), 0);
    assert_eq!(s.counters().dispatched, 4);
}

#[test]
fn dfcfs_feeds_workers_round_robin_and_each_runs_only_its_own_queue() {
    let mut s = build(3, disp2_types(), Policy::Dfcfs);
    for token in 0..7 {
        arrive(&mut s, token, SHORT, token);
    }
    assert_eq!(drain(&mut s, 10), vec![(0, 0), (1, 1), (2, 2)]);
    s.on_completion(11, WorkerId(1)).unwrap();
    assert_eq!(drain(&mut s, 11), vec![(1, 4)]);
    s.on_completion(12, WorkerId(1)).unwrap();
    // Worker 1's queue is empty; worker 0's (3, 6) waits for worker 0.
    assert_eq!(drain(&mut s, 12), vec![]);
    assert!(s.is_idle(WorkerId(1)));
    s.on_completion(13, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 13), vec![(0, 3)]);
}

/// Work stealing: own queue first; an idle worker with an empty queue takes the oldest request
/// of the longest queue, and that dispatch (only that one) is flagged as stolen.
#[test]
fn ws_runs_its_own_queue_then_steals_the_oldest_of_the_longest() {
    let mut s = build(3, disp2_types(), Policy::Ws);
    // Round-robin: w0 gets 0, 3, 6; w1 gets 1, 4; w2 gets 2, 5.
    for token in 0..7 {
        arrive(&mut s, token, SHORT, token);
    }
    let mut first = Vec::new();
    while let Some(d) = s.next_dispatch(10) {
        assert!(!d.stolen, "own queues first: {d:?}");
        first.push((d.worker.0, d.token.0));
    }
    assert_eq!(first, vec![(0, 0), (1, 1), (2, 2)]);
    // w1 runs its own 4, then its queue is empty: it steals 3, the head of w0's (longest) queue.
    s.on_completion(11, WorkerId(1)).unwrap();
    assert_eq!(drain(&mut s, 11), vec![(1, 4)]);
    s.on_completion(12, WorkerId(1)).unwrap();
    let d = s.next_dispatch(12).expect("w1 steals");
    assert_eq!((d.worker.0, d.token.0, d.stolen), (1, 3, true));
    // w2 runs its own 5; then w2 steals w0's last (6): nothing is left idle while work waits.
    s.on_completion(13, WorkerId(2)).unwrap();
    assert_eq!(drain(&mut s, 13), vec![(2, 5)]);
    s.on_completion(14, WorkerId(2)).unwrap();
    let d = s.next_dispatch(14).expect("w2 steals");
    assert_eq!((d.worker.0, d.token.0, d.stolen), (2, 6, true));
    assert_eq!(s.queued(), 0);
}

#[test]
fn dfcfs_round_robin_has_no_256_glitch() {
    let workers = 14;
    let mut s = Scheduler::new(SchedulerConfig {
        queue_capacity: 64,
        ..SchedulerConfig::new(workers, disp2_types(), Policy::Dfcfs)
    })
    .unwrap();
    let total = 600u64;
    for token in 0..total {
        arrive(&mut s, token, SHORT, token);
    }
    let mut seen = 0;
    let mut now = total;
    while seen < total {
        for (w, token) in drain(&mut s, now) {
            assert_eq!(
                token % workers as u64,
                u64::from(w),
                "token {token} on w{w}"
            );
            seen += 1;
        }
        now += 1;
        for w in 0..workers {
            let _ = s.on_completion(now, WorkerId(w as u16));
        }
    }
}

#[test]
fn sjf_serves_the_shortest_configured_type_first_and_unknown_last() {
    let mut s = build(1, disp2_types(), Policy::Sjf);
    arrive(&mut s, 0, TypeIndex::UNKNOWN, 0);
    arrive(&mut s, 1, LONG, 1);
    arrive(&mut s, 2, LONG, 2);
    arrive(&mut s, 3, SHORT, 3);
    let mut order = Vec::new();
    for now in 10..14 {
        order.extend(drain(&mut s, now).into_iter().map(|(_, t)| t));
        let _ = s.on_completion(now, WorkerId(0));
    }
    assert_eq!(order, vec![3, 1, 2, 0]);
}

#[test]
fn sjf_needs_every_mean_and_names_the_type() {
    let types = vec![
        RequestTypeSpec::new("A", 1).with_mean_ns(5),
        RequestTypeSpec::new("B", 2),
    ];
    let err = Scheduler::new(SchedulerConfig::new(2, types, Policy::Sjf)).unwrap_err();
    assert!(err.to_string().contains("\"B\""), "{err}");
}

#[test]
fn edf_picks_the_earliest_absolute_deadline() {
    let types = vec![
        RequestTypeSpec::new("LAX", 1).with_deadline_ns(100),
        RequestTypeSpec::new("TIGHT", 2).with_deadline_ns(10),
        RequestTypeSpec::new("BY_MEAN", 3).with_mean_ns(30),
    ];
    let mut s = build(1, types, Policy::Edf);
    arrive(&mut s, 0, TypeIndex(0), 0); // due 100
    arrive(&mut s, 0, TypeIndex::UNKNOWN, 1); // never due
    arrive(&mut s, 50, TypeIndex(1), 2); // due 60
    arrive(&mut s, 20, TypeIndex(2), 3); // due 50
    let mut order = Vec::new();
    for now in 60..64 {
        order.extend(drain(&mut s, now).into_iter().map(|(_, t)| t));
        let _ = s.on_completion(now, WorkerId(0));
    }
    assert_eq!(order, vec![3, 2, 0, 1]);
    let err = Scheduler::new(SchedulerConfig::new(
        1,
        vec![RequestTypeSpec::new("NONE", 9)],
        Policy::Edf,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("\"NONE\""), "{err}");
}

#[test]
fn darc_oracle_keeps_the_short_core_idle_for_short_requests() {
    let mut s = build(14, disp2_types(), oracle());
    let plan = s.plan().expect("oracle plans at construction").clone();
    assert_eq!(plan.groups[0].reserved, vec![WorkerId(0)]);
    for token in 0..20 {
        arrive(&mut s, 0, LONG, token);
    }
    let first = drain(&mut s, 0);
    assert_eq!(first.len(), 13);
    assert!(
        first.iter().all(|&(w, _)| w != 0),
        "LONG ran on SHORT's core"
    );
    assert!(s.is_idle(WorkerId(0)));
    assert_eq!(s.queue_len(LONG), 7);
    arrive(&mut s, 1, SHORT, 100);
    assert_eq!(drain(&mut s, 1), vec![(0, 100)]);
    // A second SHORT waits: its reserved core is busy and every stealable core too.
    arrive(&mut s, 2, SHORT, 101);
    assert_eq!(drain(&mut s, 2), vec![]);
    // A LONG core frees: SHORT (visited first) steals it before the queued LONGs.
    s.on_completion(3, WorkerId(5)).unwrap();
    assert_eq!(drain(&mut s, 3), vec![(5, 101)]);
    // Worker 0 frees with only LONGs queued: it stays idle.
    s.on_completion(4, WorkerId(0)).unwrap();
    assert_eq!(drain(&mut s, 4), vec![]);
    assert!(s.is_idle(WorkerId(0)));
    let u = s.poll_plan_update().expect("the oracle plan is recorded");
    assert_eq!((u.window_id, u.plan), (0, plan));
    assert!(s.poll_plan_update().is_none());
}

#[test]
fn darc_sends_unknown_only_to_the_spillway() {
    let mut s = build(4, disp2_types(), oracle());
    let spillway = s.plan().unwrap().spillway.unwrap();
    assert_eq!(spillway, WorkerId(3));
    for token in 0..3 {
        arrive(&mut s, 0, TypeIndex::UNKNOWN, token);
    }
    assert_eq!(drain(&mut s, 0), vec![(3, 0)]);
    s.on_completion(1, WorkerId(3)).unwrap();
    assert_eq!(drain(&mut s, 1), vec![(3, 1)]);
    assert_eq!(s.queue_len(TypeIndex::UNKNOWN), 1);
    assert_eq!(s.counters().unknown_arrivals, 3);
}

#[test]
fn darc_oracle_needs_means_and_ratios_and_names_the_type() {
    let types = vec![
        RequestTypeSpec::new("A", 1).with_mean_ns(5).with_ratio(0.5),
        RequestTypeSpec::new("B", 2).with_mean_ns(50),
    ];
    let err = Scheduler::new(SchedulerConfig::new(2, types, oracle())).unwrap_err();
    assert!(err.to_string().contains("\"B\""), "{err}");
    // Oracle with all ratios 0: no division by zero, one worker per group.
    let zero = vec![
        RequestTypeSpec::new("A", 1).with_mean_ns(5).with_ratio(0.0),
        RequestTypeSpec::new("B", 2)
            .with_mean_ns(50)
            .with_ratio(0.0),
    ];
    let s = build(4, zero, oracle());
    let plan = s.plan().unwrap();
    assert!(plan.groups.iter().all(|g| g.reserved.len() == 1));
}

#[test]
fn darc_fixed_allocation_is_used_and_validated() {
    let fixed = |alloc: Vec<usize>| {
        Policy::Darc(DarcParams {
            fixed_allocation: Some(alloc),
            ..DarcParams::default()
        })
    };
    let s = build(14, disp2_types(), fixed(vec![4, 10]));
    assert!(!s.in_bootstrap());
    let plan = s.plan().unwrap();
    assert_eq!(plan.groups[0].reserved.len(), 4);
    assert_eq!(plan.groups[1].reserved.first(), Some(&WorkerId(4)));
    for bad in [vec![4], vec![0, 3], vec![10, 10]] {
        let err = Scheduler::new(SchedulerConfig::new(14, disp2_types(), fixed(bad.clone())))
            .unwrap_err();
        assert!(
            err.to_string().contains("fixed_allocation"),
            "{bad:?}: {err}"
        );
    }
}

/// Runs `n` requests of (type, service) through `s` one at a time on whatever worker it picks.
fn serve_one_at_a_time(
    s: &mut Scheduler,
    now: &mut Nanos,
    token: &mut u64,
    mix: &[(TypeIndex, Nanos)],
    n: usize,
) {
    for i in 0..n {
        let (ty, service) = mix[i % mix.len()];
        arrive(s, *now, ty, *token);
        *token += 1;
        let d = s.next_dispatch(*now).expect("an idle worker");
        *now += service;
        s.on_completion(*now, d.worker).unwrap();
    }
}

fn dynamic_darc(samples_needed: u64) -> Policy {
    Policy::Darc(DarcParams {
        samples_needed,
        ..DarcParams::default()
    })
}

#[test]
fn darc_bootstraps_in_cfcfs_then_switches_to_a_profiled_plan() {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1),
        RequestTypeSpec::new("LONG", 2),
    ];
    let mut s = build(14, types, dynamic_darc(10));
    assert!(s.in_bootstrap() && s.plan().is_none());
    let (mut now, mut token) = (0, 0);
    serve_one_at_a_time(
        &mut s,
        &mut now,
        &mut token,
        &[(SHORT, 1_000), (LONG, 100_000)],
        10,
    );
    // Bootstrap is c-FCFS: a LONG can take worker 0.
    arrive(&mut s, now, LONG, 999);
    let queued_before_switch = s.queued();
    assert_eq!(queued_before_switch, 1);
    // dispatched = 10, not yet > 10: still bootstrap; this dispatch makes it 11.
    let d = s.next_dispatch(now).unwrap();
    assert_eq!(d.worker, WorkerId(0));
    assert!(s.in_bootstrap());
    s.on_completion(now + 100_000, d.worker).unwrap();
    now += 100_000;
    arrive(&mut s, now, LONG, 1000);
    let d = s.next_dispatch(now).unwrap();
    assert!(!s.in_bootstrap());
    assert_ne!(
        d.worker,
        WorkerId(0),
        "LONG must not take SHORT's reserved core"
    );
    let u = s.poll_plan_update().expect("switch recorded");
    assert_eq!(u.window_id, 0);
    assert_eq!(u.samples, 11);
    assert_eq!(u.means_ns, vec![1_000.0, 100_000.0]);
    assert!((u.ratios[0] - 5.0 / 11.0).abs() < 1e-12);
    assert!((u.ratios[1] - 6.0 / 11.0).abs() < 1e-12);
    assert_eq!(u.plan.groups[0].members, vec![SHORT]);
    assert_eq!(u.plan.groups[0].reserved, vec![WorkerId(0)]);
    assert_eq!(s.plan(), Some(&u.plan));
}

/// After the switch, a second window with ratios `mix` and an old enough second-in-line SHORT
/// triggers an evaluation; returns whether a new plan was applied.
fn second_window_applies(mix: &[(TypeIndex, Nanos)]) -> (bool, Scheduler) {
    let base = [(SHORT, 1_000), (LONG, 100_000)];
    second_window_with(dynamic_darc(20), &base, mix, 2_000)
}

/// [`second_window_applies`] with the policy, the first window's mix and the second-in-line
/// SHORT's wait (longer than SHORT's profiled mean) given.
fn second_window_with(
    policy: Policy,
    base: &[(TypeIndex, Nanos)],
    mix: &[(TypeIndex, Nanos)],
    wait_ns: Nanos,
) -> (bool, Scheduler) {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1),
        RequestTypeSpec::new("LONG", 2),
    ];
    let mut s = build(14, types, policy);
    let (mut now, mut token) = (0, 0);
    serve_one_at_a_time(&mut s, &mut now, &mut token, base, 22);
    assert!(!s.in_bootstrap());
    assert!(s.poll_plan_update().is_some());
    serve_one_at_a_time(&mut s, &mut now, &mut token, mix, 21);
    // Occupy SHORT's core and every stealable core, then queue two SHORTs.
    for _ in 0..14 {
        arrive(&mut s, now, LONG, token);
        token += 1;
    }
    arrive(&mut s, now, SHORT, token);
    drain(&mut s, now);
    arrive(&mut s, now, SHORT, token + 1);
    arrive(&mut s, now, SHORT, token + 2);
    let evaluations = s.counters().darc_evaluations;
    let updates = s.counters().plan_updates;
    drain(&mut s, now + wait_ns);
    assert_eq!(s.counters().darc_evaluations, evaluations + 1);
    (s.counters().plan_updates > updates, s)
}

/// SHORT 10 µs beside LONG 100 µs at about 50/50 on 14 workers is 1.39 workers of demand (one
/// reserved); at 13 µs it is 1.61 (two): the demand moved by 16 %, past the cut.
fn short_demand_crosses_the_cut(rounding_hysteresis: f64) -> (bool, Scheduler) {
    let policy = Policy::Darc(DarcParams {
        samples_needed: 20,
        rounding_hysteresis,
        ..DarcParams::default()
    });
    let base = [(SHORT, 10_000), (LONG, 100_000)];
    second_window_with(policy, &base, &[(SHORT, 13_000), (LONG, 100_000)], 30_000)
}

#[test]
fn darc_rounding_hysteresis_keeps_a_plan_whose_counts_still_fit() {
    // The original re-plans: SHORT 1 → 2 workers, LONG 13 → 12.
    let (applied, mut s) = short_demand_crosses_the_cut(0.0);
    assert!(applied);
    let u = s.poll_plan_update().unwrap();
    assert_eq!(u.plan.groups[0].reserved.len(), 2);
    assert!((u.plan.groups[0].demand_workers - 1.61).abs() < 0.01);
    assert_eq!(s.counters().darc_plans_kept, 0);
    // With a quarter worker of hysteresis 1.61 ≤ 1 + 0.5 + 0.25 and 12.39 > 12 + 0.5 − 0.25:
    // the plan in force stays, counted.
    let (applied, mut s) = short_demand_crosses_the_cut(0.25);
    assert!(!applied);
    assert!(s.poll_plan_update().is_none());
    assert_eq!(s.counters().darc_plans_kept, 1);
    assert_eq!(s.plan().unwrap().groups[0].reserved, vec![WorkerId(0)]);
}

#[test]
fn darc_rounding_hysteresis_still_applies_a_change_beyond_it() {
    // SHORT 20× longer, as in `darc_applies_large_demand_changes`: far outside any band.
    let policy = Policy::Darc(DarcParams {
        samples_needed: 20,
        rounding_hysteresis: 0.25,
        ..DarcParams::default()
    });
    let base = [(SHORT, 1_000), (LONG, 100_000)];
    let (applied, s) =
        second_window_with(policy, &base, &[(SHORT, 20_000), (LONG, 100_000)], 2_000);
    assert!(applied);
    assert_eq!(s.counters().darc_plans_kept, 0);
}

#[test]
fn darc_hysteresis_suppresses_small_demand_changes() {
    // Same 50/50 mix, service times 5 % longer: demand moves < 10 %.
    let (applied, mut s) = second_window_applies(&[(SHORT, 1_050), (LONG, 105_000)]);
    assert!(!applied);
    assert!(s.poll_plan_update().is_none());
}

#[test]
fn darc_applies_large_demand_changes() {
    // SHORT becomes 20× longer: its demand grows far beyond 10 %.
    let (applied, mut s) = second_window_applies(&[(SHORT, 20_000), (LONG, 100_000)]);
    assert!(applied);
    let u = s.poll_plan_update().unwrap();
    assert_eq!(u.window_id, 1);
    // The request dispatched at the switch completes in the new window: 1 + 21 samples.
    assert_eq!(u.samples, 22);
    assert!((u.means_ns[0] - 20_000.0).abs() < 1.0);
    // Two SHORTs wait; 14 LONGs found 13 LONG workers.
    assert_eq!(u.queue_lens, vec![2, 1]);
}

/// DISP2 at 90 % of 14 workers: SHORT 1 µs and LONG 100 µs alternate, Poisson arrivals
/// (mean gap 4 µs, from a fixed xorshift seed); completions happen at their exact times
/// (an event loop in miniature).
fn offer_disp2_at_high_load(s: &mut Scheduler, now: &mut Nanos, token: &mut u64, n: usize) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ *token;
    let mut gap_ns = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let uniform = ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (-uniform.ln() * 4_000.0) as Nanos
    };
    let service = |ty: TypeIndex| if ty == SHORT { 1_000 } else { 100_000 };
    let mut running: Vec<(Nanos, WorkerId)> = Vec::new();
    let dispatch = |s: &mut Scheduler, at: Nanos, running: &mut Vec<(Nanos, WorkerId)>| {
        while let Some(d) = s.next_dispatch(at) {
            running.push((at + service(d.ty), d.worker));
        }
        running.sort_by_key(|r| std::cmp::Reverse(r.0));
    };
    for i in 0..n {
        while running.last().is_some_and(|r| r.0 <= *now) {
            let (at, w) = running.pop().unwrap();
            s.on_completion(at, w).unwrap();
            dispatch(s, at, &mut running);
        }
        arrive(s, *now, if i % 2 == 0 { SHORT } else { LONG }, *token);
        *token += 1;
        dispatch(s, *now, &mut running);
        *now += gap_ns();
    }
    while let Some((at, w)) = running.pop() {
        s.on_completion(at, w).unwrap();
        *now = (*now).max(at);
        dispatch(s, at, &mut running);
    }
}

#[test]
fn darc_model_plans_from_the_profiled_rate_and_keeps_a_plan_within_hysteresis() {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1),
        RequestTypeSpec::new("LONG", 2),
    ];
    let policy = Policy::from_name("darc-model").unwrap();
    assert_eq!(policy.name(), "darc-model");
    let policy = match policy {
        Policy::DarcModel(p) => Policy::DarcModel(DarcParams {
            samples_needed: 2_000,
            ..p
        }),
        other => other,
    };
    let mut s = build(14, types, policy);
    let (mut now, mut token) = (0, 0);
    offer_disp2_at_high_load(&mut s, &mut now, &mut token, 2_100);
    assert!(!s.in_bootstrap());
    assert_eq!(s.counters().darc_model_replans, 1);
    // Two groups on 14 workers: every split [k, 14 − k] is a candidate.
    assert_eq!(s.counters().darc_model_candidates, 13);
    let u = s
        .poll_plan_update()
        .expect("the switch applies the model's plan");
    // 12.5 workers of LONG demand: the model keeps 13 for it, as DARC's formula does.
    let counts: Vec<usize> = u.plan.groups.iter().map(|g| g.reserved.len()).collect();
    assert_eq!(counts, vec![1, 13]);
    // Same load and mix again: the plan in force is within the hysteresis, nothing applies.
    let updates = s.counters().plan_updates;
    for _ in 0..20 {
        offer_disp2_at_high_load(&mut s, &mut now, &mut token, 2_100);
    }
    assert!(s.counters().darc_model_replans > 1);
    assert_eq!(s.counters().plan_updates, updates);
    assert!(s.counters().darc_evaluations >= s.counters().darc_model_replans);
}

#[test]
fn darc_model_needs_profiling() {
    let types = disp2_types();
    for params in [
        DarcParams {
            plan: PlanMode::Model,
            dynamic: false,
            ..DarcParams::default()
        },
        DarcParams {
            plan: PlanMode::Model,
            fixed_allocation: Some(vec![1, 13]),
            ..DarcParams::default()
        },
    ] {
        let err = Scheduler::new(SchedulerConfig::new(
            14,
            types.clone(),
            Policy::Darc(params),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("darc.plan = model: "), "{err}");
    }
    assert_eq!(PlanMode::parse(" Model "), Ok(PlanMode::Model));
    assert!(PlanMode::parse("guess")
        .unwrap_err()
        .to_string()
        .contains("darc.plan"));
}

#[test]
fn darc_update_needs_enough_samples_and_a_late_second_request() {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1),
        RequestTypeSpec::new("LONG", 2),
    ];
    let mut s = build(2, types, dynamic_darc(4));
    let (mut now, mut token) = (0, 0);
    serve_one_at_a_time(
        &mut s,
        &mut now,
        &mut token,
        &[(SHORT, 1_000), (LONG, 9_000)],
        6,
    );
    assert!(!s.in_bootstrap());
    let evaluations = s.counters().darc_evaluations;
    // Few samples: queued SHORTs waiting long trigger nothing.
    arrive(&mut s, now, LONG, 50);
    arrive(&mut s, now, SHORT, 51);
    arrive(&mut s, now, SHORT, 52);
    arrive(&mut s, now, SHORT, 53);
    drain(&mut s, now + 1_000_000);
    assert_eq!(s.counters().darc_evaluations, evaluations);
}

#[test]
fn darc_static_reserves_k_short_workers() {
    let mut s = build(4, disp2_types(), Policy::DarcStatic { reserved_short: 2 });
    let plan = s.plan().unwrap().clone();
    assert_eq!(plan.groups[0].reserved, vec![WorkerId(0), WorkerId(1)]);
    assert_eq!(plan.groups[0].stealable, vec![WorkerId(2), WorkerId(3)]);
    assert_eq!(plan.groups[1].reserved, vec![WorkerId(2), WorkerId(3)]);
    for token in 0..4 {
        arrive(&mut s, 0, LONG, token);
    }
    assert_eq!(drain(&mut s, 0), vec![(2, 0), (3, 1)]);
    for token in 10..13 {
        arrive(&mut s, 0, SHORT, token);
    }
    assert_eq!(drain(&mut s, 0), vec![(0, 10), (1, 11)]);
    // k = 0 is allowed (Fig. 4 sweeps 0..N-1); k = N is not.
    assert!(Scheduler::new(SchedulerConfig::new(
        4,
        disp2_types(),
        Policy::DarcStatic { reserved_short: 0 }
    ))
    .is_ok());
    let err = Scheduler::new(SchedulerConfig::new(
        4,
        disp2_types(),
        Policy::DarcStatic { reserved_short: 4 },
    ))
    .unwrap_err();
    assert!(err.to_string().contains("reserved_short"), "{err}");
}

#[test]
fn darc_static_without_means_uses_configuration_order() {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1),
        RequestTypeSpec::new("LONG", 2),
    ];
    let s = build(3, types, Policy::DarcStatic { reserved_short: 1 });
    let plan = s.plan().unwrap();
    assert_eq!(plan.groups[0].members, vec![SHORT]);
    assert_eq!(plan.groups[1].members, vec![LONG]);
}

#[test]
fn ts_preempts_round_robin_within_a_type_and_serves_the_most_late_type() {
    let mut s = build(
        1,
        disp2_types(),
        Policy::TimeSharing(TimeSharingParams::default()),
    );
    assert!(
        s.policy().is_live(),
        "the live server preempts cooperatively"
    );
    arrive(&mut s, 0, LONG, 1);
    arrive(&mut s, 0, LONG, 2);
    let d = s.next_dispatch(0).unwrap();
    assert_eq!((d.token, d.quantum_ns), (Token(1), Some(5_000)));
    s.on_preempted(5_000, WorkerId(0)).unwrap();
    assert_eq!(s.next_dispatch(5_000).unwrap().token, Token(2));
    s.on_preempted(10_000, WorkerId(0)).unwrap();
    assert_eq!(s.next_dispatch(10_000).unwrap().token, Token(1));
    // A SHORT arriving at 10 µs has waited 5 µs at 15 µs: 5/10 µs SLO beats LONG's 15/1000 µs.
    arrive(&mut s, 10_000, SHORT, 3);
    s.on_preempted(15_000, WorkerId(0)).unwrap();
    assert_eq!(s.next_dispatch(15_000).unwrap().token, Token(3));
    assert_eq!(s.counters().preempted, 3);
    assert_eq!(s.queue_len(LONG), 2);
    let err = s.on_preempted(16_000, WorkerId(3)).unwrap_err();
    assert_eq!(err, CompletionError::NoSuchWorker(WorkerId(3)));
}

/// `darc-ts` with DISP2's configured plan (no profiling).
fn darc_ts(slice_all: bool) -> Policy {
    Policy::DarcTs(DarcTsParams {
        darc: DarcParams {
            dynamic: false,
            ..DarcParams::default()
        },
        slice_all,
        ..DarcTsParams::default()
    })
}

/// Every dispatch possible now: (worker, token, quantum).
fn drain_slices(s: &mut Scheduler, now: Nanos) -> Vec<(u16, u64, Option<Nanos>)> {
    std::iter::from_fn(|| s.next_dispatch(now))
        .map(|d| (d.worker.0, d.token.0, d.quantum_ns))
        .collect()
}

#[test]
fn darc_ts_lends_the_short_worker_to_long_requests_one_quantum_at_a_time() {
    let mut s = build(14, disp2_types(), darc_ts(false));
    assert!(s.policy().is_live() && s.policy().preempts());
    let plan = s.plan().expect("planned from the configuration").clone();
    assert_eq!(plan.groups[0].reserved, vec![WorkerId(0)]);
    for token in 0..20 {
        arrive(&mut s, 0, LONG, token);
    }
    // DARC's rule first: LONG's own 13 workers, run to completion; then SHORT's idle worker,
    // lent for one quantum.
    let mut want: Vec<_> = (1..14).map(|w| (w, u64::from(w) - 1, None)).collect();
    want.push((0, 13, Some(5_000)));
    assert_eq!(drain_slices(&mut s, 0), want);
    // A SHORT waits for the quantum, not for a whole LONG.
    arrive(&mut s, 1_000, SHORT, 100);
    assert_eq!(drain_slices(&mut s, 1_000), vec![]);
    s.on_preempted(6_000, WorkerId(0)).unwrap();
    assert_eq!(drain_slices(&mut s, 6_000), vec![(0, 100, None)]);
    // The preempted LONG went behind the waiting ones: the next lent slice is token 14's.
    s.on_completion(7_000, WorkerId(0)).unwrap();
    assert_eq!(drain_slices(&mut s, 7_000), vec![(0, 14, Some(5_000))]);
    // A request dispatched without a quantum cannot be preempted.
    let err = s.on_preempted(8_000, WorkerId(1)).unwrap_err();
    assert_eq!(err, CompletionError::NotPreemptive(WorkerId(1)));
    assert!(!s.is_idle(WorkerId(1)));
    s.on_completion(9_000, WorkerId(1)).unwrap();
    assert_eq!(drain_slices(&mut s, 9_000), vec![(1, 15, None)]);
    assert_eq!(s.queue_len(LONG), 5, "16..19 and the preempted 13");
    assert_eq!(s.counters().preempted, 1);
}

#[test]
fn darc_ts_slice_all_slices_every_long_dispatch_and_no_short_one() {
    let mut s = build(2, disp2_types(), darc_ts(true));
    arrive(&mut s, 0, LONG, 1);
    arrive(&mut s, 0, SHORT, 2);
    arrive(&mut s, 0, LONG, 3);
    // SHORT first (ascending mean) on its worker 0, LONG on its worker 1, sliced.
    assert_eq!(
        drain_slices(&mut s, 0),
        vec![(0, 2, None), (1, 1, Some(5_000))]
    );
    s.on_preempted(6_000, WorkerId(1)).unwrap();
    assert_eq!(drain_slices(&mut s, 6_000), vec![(1, 3, Some(5_000))]);
    let err = s.on_preempted(6_500, WorkerId(0)).unwrap_err();
    assert_eq!(err, CompletionError::NotPreemptive(WorkerId(0)));
}

#[test]
fn darc_ts_refuses_depth_2_and_the_model_planner() {
    let mut config = SchedulerConfig::new(4, disp2_types(), darc_ts(false));
    config.worker_queue_depth = 2;
    let err = Scheduler::new(config).unwrap_err().to_string();
    assert!(err.contains("worker_queue_depth"), "{err}");
    let model = Policy::DarcTs(DarcTsParams {
        darc: DarcParams {
            plan: PlanMode::Model,
            ..DarcParams::default()
        },
        ..DarcTsParams::default()
    });
    let err = Scheduler::new(SchedulerConfig::new(4, disp2_types(), model))
        .unwrap_err()
        .to_string();
    assert!(err.contains("darc.plan"), "{err}");
}

/// DARC's profile under `darc-ts`: a LONG preempted once profiles as its whole service (its
/// slice, preemption included, and its last run), so a re-plan sees what LONG costs.
#[test]
fn darc_ts_profiles_a_preempted_request_as_its_whole_service() {
    let policy = Policy::DarcTs(DarcTsParams {
        darc: DarcParams {
            samples_needed: 4,
            ..DarcParams::default()
        },
        ..DarcTsParams::default()
    });
    let mut s = build(2, disp2_types(), policy);
    let mut now = 0;
    // Bootstrap (c-FCFS, no quanta): SHORT 1 µs and LONG 100 µs alternately, 5 dispatches.
    for token in 0..5 {
        let (ty, service) = if token % 2 == 0 {
            (SHORT, 1_000)
        } else {
            (LONG, 100_000)
        };
        arrive(&mut s, now, ty, token);
        let d = s.next_dispatch(now).expect("an idle worker");
        assert_eq!(d.quantum_ns, None);
        now += service;
        s.on_completion(now, d.worker).unwrap();
    }
    // The switch (more than 4 dispatched): SHORT [0], LONG [1].
    assert!(s.next_dispatch(now).is_none());
    assert!(!s.in_bootstrap());
    assert!(s.poll_plan_update().is_some());
    // LONG 10 on its worker; LONG 11 on SHORT's idle worker, one slice (5 µs + 1 µs of
    // preemption), then again, and it finishes 4 µs into the second slice.
    arrive(&mut s, now, LONG, 10);
    arrive(&mut s, now, LONG, 11);
    assert_eq!(
        drain_slices(&mut s, now),
        vec![(1, 10, None), (0, 11, Some(5_000))]
    );
    s.on_preempted(now + 6_000, WorkerId(0)).unwrap();
    assert_eq!(
        drain_slices(&mut s, now + 6_000),
        vec![(0, 11, Some(5_000))]
    );
    s.on_completion(now + 10_000, WorkerId(0)).unwrap();
    now += 100_000;
    s.on_completion(now, WorkerId(1)).unwrap();
    // Three more LONGs of 100 µs on LONG's worker: 5 completions in the window.
    for token in 12..15 {
        arrive(&mut s, now, LONG, token);
        assert_eq!(drain_slices(&mut s, now), vec![(1, token, None)]);
        now += 100_000;
        s.on_completion(now, WorkerId(1)).unwrap();
    }
    // An evaluation is due when a second-in-line request waited longer than LONG's mean.
    for token in 15..19 {
        arrive(&mut s, now, LONG, token);
    }
    assert_eq!(drain_slices(&mut s, now).len(), 2);
    assert!(s.next_dispatch(now + 200_000).is_none());
    let update = s
        .poll_plan_update()
        .expect("a re-plan (SHORT went inactive)");
    // LONG: 100 + (6 + 4) + 3 × 100 µs over 5 completions (82 µs; 80.8 without the slice).
    assert_eq!(update.samples, 5);
    assert_eq!(update.means_ns[1], 82_000.0);
}

#[test]
fn non_preemptive_policies_refuse_preemption() {
    let mut s = build(1, disp2_types(), Policy::Cfcfs);
    arrive(&mut s, 0, SHORT, 1);
    drain(&mut s, 0);
    let err = s.on_preempted(1, WorkerId(0)).unwrap_err();
    assert_eq!(err, CompletionError::NotPreemptive(WorkerId(0)));
    assert!(!s.is_idle(WorkerId(0)));
    assert_eq!(s.on_completion(2, WorkerId(0)).unwrap().token, Token(1));
}

#[test]
fn unregistered_ids_are_unknown_and_never_out_of_bounds() {
    let s = build(2, disp2_types(), Policy::Sjf);
    assert_eq!(s.classify(SHORT_WIRE), SHORT);
    assert_eq!(s.classify(LONG_WIRE), LONG);
    for wire in [0, 3, 12, u32::MAX] {
        assert_eq!(s.classify(wire), TypeIndex::UNKNOWN);
    }
    let mut s = build(2, disp2_types(), Policy::Edf);
    s.on_arrival(0, TypeIndex(7), Token(1)).unwrap();
    assert_eq!(s.queue_len(TypeIndex::UNKNOWN), 1);
    assert_eq!(s.queue_len(TypeIndex(40)), 1);
    assert_eq!(s.next_dispatch(0).unwrap().ty, TypeIndex::UNKNOWN);
}

#[test]
fn full_queues_reject_and_return_the_token() {
    let mut s = Scheduler::new(SchedulerConfig {
        queue_capacity: 2,
        ..SchedulerConfig::new(1, disp2_types(), Policy::Cfcfs)
    })
    .unwrap();
    arrive(&mut s, 0, SHORT, 1);
    arrive(&mut s, 0, SHORT, 2);
    let r = s.on_arrival(0, SHORT, Token(3)).unwrap_err();
    assert_eq!((r.token, r.reason), (Token(3), RejectReason::QueueFull));
    assert_eq!((s.counters().accepted, s.counters().rejected), (2, 1));
}

#[test]
fn bad_notifications_are_errors_that_change_nothing() {
    let mut s = build(2, disp2_types(), Policy::Cfcfs);
    assert_eq!(
        s.on_completion(0, WorkerId(9)).unwrap_err(),
        CompletionError::NoSuchWorker(WorkerId(9))
    );
    assert_eq!(
        s.on_completion(0, WorkerId(1)).unwrap_err(),
        CompletionError::WorkerIdle(WorkerId(1))
    );
    assert_eq!(s.counters().invalid_notifications, 2);
    assert!(s.is_idle(WorkerId(1)));
    assert!(!s.is_idle(WorkerId(9)));
}

#[test]
fn configuration_errors_name_the_field() {
    let cases = [
        SchedulerConfig::new(0, disp2_types(), Policy::Cfcfs),
        SchedulerConfig::new(MAX_WORKERS + 1, disp2_types(), Policy::Cfcfs),
        SchedulerConfig {
            queue_capacity: 0,
            ..SchedulerConfig::new(2, disp2_types(), Policy::Cfcfs)
        },
        SchedulerConfig {
            queue_capacity: MAX_QUEUE_CAPACITY + 1,
            ..SchedulerConfig::new(2, disp2_types(), Policy::Cfcfs)
        },
        SchedulerConfig::new(
            2,
            vec![RequestTypeSpec::new("A", 1), RequestTypeSpec::new("B", 1)],
            Policy::Cfcfs,
        ),
        SchedulerConfig::new(
            2,
            disp2_types(),
            Policy::Darc(DarcParams {
                rounding_cut: 1.5,
                ..DarcParams::default()
            }),
        ),
        SchedulerConfig::new(
            2,
            vec![RequestTypeSpec::new("A", 1).with_ratio(2.0)],
            Policy::Cfcfs,
        ),
    ];
    let expected = [
        "workers",
        "workers",
        "queue_capacity",
        "queue_capacity",
        "\"B\"",
        "rounding_cut",
        "ratio",
    ];
    for (config, needle) in cases.into_iter().zip(expected) {
        let err = Scheduler::new(config).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let too_many: Vec<_> = (0..=MAX_TYPES as u32)
        .map(|i| RequestTypeSpec::new(format!("T{i}"), i))
        .collect();
    assert_eq!(
        Scheduler::new(SchedulerConfig::new(1, too_many, Policy::Cfcfs)).unwrap_err(),
        ConfigError::TooManyTypes(MAX_TYPES + 1)
    );
}

#[test]
fn plan_update_buffer_is_bounded_and_counts_drops() {
    let mut s = build(2, disp2_types(), oracle());
    let plan = s.plan().unwrap().clone();
    for window_id in 1..=PLAN_UPDATE_CAPACITY as u64 {
        s.state.record_plan_update(PlanUpdate {
            window_id,
            start_ns: 0,
            end_ns: 0,
            samples: 0,
            queue_lens: Vec::new(),
            means_ns: Vec::new(),
            ratios: Vec::new(),
            plan: plan.clone(),
        });
    }
    assert_eq!(s.counters().plan_updates_dropped, 1);
    let mut kept = 0;
    let first = s.poll_plan_update().unwrap().window_id;
    while s.poll_plan_update().is_some() {
        kept += 1;
    }
    assert_eq!(kept + 1, PLAN_UPDATE_CAPACITY);
    assert_eq!(first, 1);
}

/// A small event-driven run at 14 workers, 70 % load: SHORT/LONG 50/50 whose service times
/// swap after `swap_after` requests (like the paper's Fig. 8 phases). Returns the scheduler
/// and the plans seen, checking DARC's reservation rule on every dispatch.
fn phased_darc_run(requests: u64, swap_after: u64) -> (Scheduler, Vec<ReservationPlan>) {
    const WORKERS: usize = 14;
    const INTERARRIVAL_NS: Nanos = 5_150;
    let types = vec![RequestTypeSpec::new("A", 1), RequestTypeSpec::new("B", 2)];
    let mut s = build(WORKERS, types, dynamic_darc(500));
    let service = |ty: TypeIndex, swapped: bool| -> Nanos {
        match (ty == SHORT) ^ swapped {
            true => 1_000,
            false => 100_000,
        }
    };
    let mut busy_until: Vec<Option<Nanos>> = vec![None; WORKERS];
    let mut plans: Vec<ReservationPlan> = Vec::new();
    let mut next_arrival: Nanos = 0;
    let mut sent = 0u64;
    let mut lcg: u64 = 12_345;
    loop {
        let next_completion = busy_until
            .iter()
            .enumerate()
            .filter_map(|(w, t)| t.map(|t| (t, w)))
            .min();
        let now = match next_completion {
            Some((t, w)) if sent >= requests || t <= next_arrival => {
                s.on_completion(t, WorkerId(w as u16)).unwrap();
                busy_until[w] = None;
                t
            }
            _ if sent < requests => {
                lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let ty = if lcg >> 63 == 0 { SHORT } else { LONG };
                let _ = s.on_arrival(next_arrival, ty, Token(sent));
                sent += 1;
                next_arrival += INTERARRIVAL_NS;
                next_arrival - INTERARRIVAL_NS
            }
            _ => break,
        };
        while let Some(d) = s.next_dispatch(now) {
            let plan = s.plan().cloned();
            if let Some(plan) = plan {
                if !d.ty.is_unknown() {
                    let gi = plan
                        .groups
                        .iter()
                        .position(|g| g.members.contains(&d.ty))
                        .unwrap();
                    assert!(
                        allowed(&plan, &plan.groups[gi], gi, d.worker),
                        "{d:?} {plan:?}"
                    );
                }
                if plans.last() != Some(&plan) {
                    plans.push(plan);
                }
            }
            let swapped = d.token.0 >= swap_after;
            busy_until[d.worker.index()] = Some(now + service(d.ty, swapped));
        }
    }
    (s, plans)
}

#[test]
fn darc_adapts_when_service_times_swap() {
    let (s, plans) = phased_darc_run(12_000, 6_000);
    assert!(plans.len() >= 2, "no adaptation: {plans:?}");
    let first = &plans[0];
    let last = plans.last().unwrap();
    // Before the swap A (type 0) is short: it leads; after, B does.
    assert_eq!(first.groups[0].members, vec![SHORT]);
    assert_eq!(last.groups[0].members, vec![LONG]);
    assert_eq!(last.groups[0].reserved, vec![WorkerId(0)]);
    assert_eq!(s.queued(), 0);
    assert_eq!(s.counters().completed, s.counters().accepted);
}

/// Whether `worker` may run a request of group `g` of `plan` without breaking DARC's rule that
/// a longer group never runs on a shorter group's reserved worker (the spillway excepted).
fn allowed(plan: &ReservationPlan, g: &TypeGroup, gi: usize, worker: WorkerId) -> bool {
    let own = g.reserved.contains(&worker) || g.stealable.contains(&worker);
    let shorter_reserved = plan.groups[..gi]
        .iter()
        .any(|s| s.reserved.contains(&worker) && Some(worker) != plan.spillway);
    own && !shorter_reserved
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Arrive { wire: u32, dt_ns: Nanos },
        Complete { worker: u16, dt_ns: Nanos },
        Preempt { worker: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (prop_oneof![9 => 0u32..5, 1 => any::<u32>()], 0u64..3_000)
                .prop_map(|(wire, dt_ns)| Op::Arrive { wire, dt_ns }),
            3 => (0u16..8, 0u64..20_000).prop_map(|(worker, dt_ns)| Op::Complete { worker, dt_ns }),
            1 => (0u16..8).prop_map(|worker| Op::Preempt { worker }),
        ]
    }

    fn types() -> Vec<RequestTypeSpec> {
        vec![
            RequestTypeSpec::new("A", 1)
                .with_mean_ns(1_000)
                .with_ratio(0.6),
            RequestTypeSpec::new("B", 2)
                .with_mean_ns(1_100)
                .with_ratio(0.2),
            RequestTypeSpec::new("C", 3)
                .with_mean_ns(20_000)
                .with_ratio(0.1),
            RequestTypeSpec::new("D", 4)
                .with_mean_ns(90_000)
                .with_ratio(0.1),
        ]
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::Cfcfs),
            Just(Policy::Dfcfs),
            Just(Policy::Sjf),
            Just(Policy::Edf),
            (1u64..30).prop_map(|samples_needed| Policy::Darc(DarcParams {
                samples_needed,
                ..DarcParams::default()
            })),
            Just(oracle()),
            (1u64..30).prop_map(|samples_needed| Policy::DarcModel(DarcParams {
                samples_needed,
                plan: PlanMode::Model,
                ..DarcParams::default()
            })),
            (0usize..4).prop_map(|reserved_short| Policy::DarcStatic { reserved_short }),
            Just(Policy::TimeSharing(TimeSharingParams::default())),
            Just(Policy::Ws),
            (0u64..30, any::<bool>()).prop_map(|(samples_needed, slice_all)| {
                Policy::DarcTs(DarcTsParams {
                    darc: DarcParams {
                        samples_needed: samples_needed.max(1),
                        // 0: oracle (planned from the configured means and ratios).
                        dynamic: samples_needed > 0,
                        ..DarcParams::default()
                    },
                    slice_all,
                    ..DarcTsParams::default()
                })
            }),
        ]
    }

    /// The reference model: where every accepted token is.
    #[derive(Default)]
    struct Model {
        queued: HashMap<u64, TypeIndex>,
        /// Per worker, what it holds, oldest first (at most `worker_queue_depth`).
        running: HashMap<u16, std::collections::VecDeque<(u64, TypeIndex)>>,
        completed: u64,
        /// Arrival time of every accepted token.
        arrival_ns: HashMap<u64, Nanos>,
        /// Last token dispatched (c-FCFS order check).
        last_dispatched: Option<u64>,
        /// `ts`: each type's queue in order (preempted requests rejoin at the tail).
        ts_queues: std::collections::BTreeMap<u16, std::collections::VecDeque<u64>>,
        /// Tokens running with a quantum (only those may be preempted).
        sliced: std::collections::HashSet<u64>,
    }

    /// Configured mean of a type in [`types`], UNKNOWN after every type.
    fn mean_of(ty: TypeIndex) -> Nanos {
        ty.index()
            .and_then(|t| types().get(t).and_then(|spec| spec.mean_ns))
            .unwrap_or(Nanos::MAX)
    }

    /// EDF due time (every type in [`types`] has a mean and no deadline).
    fn due_of(m: &Model, token: u64, ty: TypeIndex) -> Nanos {
        m.arrival_ns[&token].saturating_add(mean_of(ty))
    }

    /// The policy's ordering rule for dispatch `d` (the model's queue no longer holds it).
    fn check_order(
        s: &Scheduler,
        m: &mut Model,
        d: &Dispatch,
        now: Nanos,
    ) -> Result<(), TestCaseError> {
        match s.policy() {
            Policy::TimeSharing(p) => {
                // Largest wait / (slo_factor × mean) among typed heads, lowest type on ties;
                // UNKNOWN only when no typed request waits.
                let mut best: Option<(f64, u16)> = None;
                for (&ty, q) in &m.ts_queues {
                    if let (Some(&head), false) = (q.front(), TypeIndex(ty).is_unknown()) {
                        let slo = p.slo_factor * mean_of(TypeIndex(ty)) as f64;
                        let score = now.saturating_sub(m.arrival_ns[&head]) as f64 * (1.0 / slo);
                        if best.is_none_or(|(b, _)| score > b) {
                            best = Some((score, ty));
                        }
                    }
                }
                let ty = best.map_or(TypeIndex::UNKNOWN.0, |(_, ty)| ty);
                let head = m.ts_queues.get_mut(&ty).and_then(|q| q.pop_front());
                prop_assert_eq!(head, Some(d.token.0), "ts picked the wrong head");
            }
            Policy::Cfcfs => {
                prop_assert!(
                    m.last_dispatched.is_none_or(|last| d.token.0 > last),
                    "not FIFO"
                );
                m.last_dispatched = Some(d.token.0);
            }
            Policy::Dfcfs => {
                prop_assert_eq!(d.token.0 % s.workers() as u64, u64::from(d.worker.0));
            }
            Policy::Sjf => {
                let mine = mean_of(d.ty);
                prop_assert!(
                    m.queued.values().all(|&ty| mean_of(ty) >= mine),
                    "a shorter type was queued"
                );
            }
            Policy::Edf => {
                let mine = due_of(m, d.token.0, d.ty);
                prop_assert!(
                    m.queued
                        .iter()
                        .all(|(&tok, &ty)| due_of(m, tok, ty) >= mine),
                    "an earlier deadline was queued"
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Which dispatches carry a quantum: all of `ts`'s; under `darc-ts`, exactly those of the
    /// plan's longest group on a worker DARC would not give it (lent by a shorter group), or
    /// all of that group's with `slice_all`; no other policy's.
    fn check_slice(s: &Scheduler, d: &Dispatch) -> Result<(), TestCaseError> {
        let expected = match s.policy() {
            Policy::TimeSharing(p) => Some(p.quantum_ns),
            Policy::DarcTs(p) => s.plan().and_then(|plan| {
                let last = plan.groups.len().checked_sub(1)?;
                let group = &plan.groups[last];
                let lent = !allowed(plan, group, last, d.worker);
                (group.members.contains(&d.ty) && (p.slice_all || lent)).then_some(p.ts.quantum_ns)
            }),
            _ => None,
        };
        prop_assert_eq!(d.quantum_ns, expected, "quantum of {:?}", d);
        Ok(())
    }

    fn dispatch_all(s: &mut Scheduler, m: &mut Model, now: Nanos) -> Result<(), TestCaseError> {
        while let Some(d) = s.next_dispatch(now) {
            prop_assert!((d.worker.index()) < s.workers());
            let held = m.running.get(&d.worker.0).map_or(0, |h| h.len());
            prop_assert!(
                held < s.worker_queue_depth(),
                "{} holds {} requests at depth {}",
                d.worker,
                held + 1,
                s.worker_queue_depth()
            );
            prop_assert_eq!(d.behind, held > 0);
            if d.behind {
                // A second slot never takes a steal, and a work-conserving policy that may use
                // any worker fills every idle one first.
                prop_assert!(!d.stolen, "{} stole into its second slot", d.worker);
                if matches!(s.policy(), Policy::Cfcfs | Policy::Sjf | Policy::Edf) {
                    prop_assert!(
                        (0..s.workers() as u16)
                            .all(|w| m.running.get(&w).is_some_and(|h| !h.is_empty())),
                        "second slot of {} used while a worker was idle",
                        d.worker
                    );
                }
            }
            let ty = m.queued.remove(&d.token.0);
            check_order(s, m, &d, now)?;
            prop_assert_eq!(
                ty,
                Some(d.ty),
                "token {:?} not queued or wrong type",
                d.token
            );
            m.running
                .entry(d.worker.0)
                .or_default()
                .push_back((d.token.0, d.ty));
            prop_assert!(!s.is_idle(d.worker));
            prop_assert_eq!(s.held(d.worker), held + 1);
            if d.quantum_ns.is_some() {
                m.sliced.insert(d.token.0);
            }
            check_slice(s, &d)?;
            if matches!(
                s.policy(),
                Policy::Darc(_)
                    | Policy::DarcModel(_)
                    | Policy::DarcStatic { .. }
                    | Policy::DarcTs(_)
            ) {
                if let Some(plan) = s.plan().filter(|_| d.behind && !s.in_bootstrap()) {
                    // Only behind a request of the worker's own group (reserved, or the
                    // spillway for UNKNOWN), never on a worker the type may only steal.
                    let own = if d.ty.is_unknown() {
                        plan.spillway == Some(d.worker)
                    } else {
                        plan.groups
                            .iter()
                            .any(|g| g.members.contains(&d.ty) && g.reserved.contains(&d.worker))
                    };
                    prop_assert!(
                        own,
                        "type {:?} behind on {} breaks {:?}",
                        d.ty,
                        d.worker,
                        plan
                    );
                }
                if let Some(plan) = s.plan() {
                    if d.ty.is_unknown() {
                        prop_assert_eq!(Some(d.worker), plan.spillway);
                    } else {
                        let gi = plan
                            .groups
                            .iter()
                            .position(|g| g.members.contains(&d.ty))
                            .expect("every type is planned");
                        // `darc-ts` lends shorter groups' workers to its longest group, one
                        // quantum at a time (`check_slice`).
                        prop_assert!(
                            allowed(plan, &plan.groups[gi], gi, d.worker) || d.quantum_ns.is_some(),
                            "type {:?} on {} breaks {:?}",
                            d.ty,
                            d.worker,
                            plan
                        );
                    }
                }
            }
        }
        prop_assert_eq!(s.queued(), m.queued.len());
        Ok(())
    }

    fn run(
        policy: Policy,
        workers: usize,
        depth: usize,
        ops: Vec<Op>,
    ) -> Result<(), TestCaseError> {
        let mut s = Scheduler::new(SchedulerConfig {
            queue_capacity: 16,
            worker_queue_depth: depth,
            ..SchedulerConfig::new(workers, types(), policy)
        })
        .expect("valid property config");
        let mut m = Model::default();
        let mut now: Nanos = 0;
        let mut next_token = 0u64;
        let preemptive = s.policy().time_sharing().is_some();
        for op in ops {
            match op {
                Op::Arrive { wire, dt_ns } => {
                    now += dt_ns;
                    let ty = s.classify(wire);
                    prop_assert!(ty.is_unknown() || ty.index().is_some_and(|t| t < 4));
                    prop_assert_eq!(ty.is_unknown(), !(1..=4).contains(&wire));
                    let token = next_token;
                    next_token += 1;
                    match s.on_arrival(now, ty, Token(token)) {
                        Ok(()) => {
                            m.queued.insert(token, ty);
                            m.arrival_ns.insert(token, now);
                            m.ts_queues.entry(ty.0).or_default().push_back(token);
                        }
                        Err(r) => prop_assert_eq!(r.token, Token(token)),
                    }
                }
                Op::Complete { worker, dt_ns } => {
                    now += dt_ns;
                    let expected = m.running.get_mut(&worker).and_then(|h| h.pop_front());
                    match (s.on_completion(now, WorkerId(worker)), expected) {
                        (Ok(c), Some((token, ty))) => {
                            prop_assert_eq!((c.token.0, c.ty), (token, ty));
                            m.completed += 1;
                        }
                        (Err(_), None) => {}
                        (got, want) => prop_assert!(false, "completion {:?} vs {:?}", got, want),
                    }
                }
                Op::Preempt { worker } => {
                    let held = m.running.get(&worker).and_then(|h| h.front()).copied();
                    let sliced = held.is_some_and(|(token, _)| m.sliced.contains(&token));
                    match (s.on_preempted(now, WorkerId(worker)), held) {
                        (Ok(()), Some((token, ty))) => {
                            prop_assert!(preemptive && sliced, "preempted an unsliced request");
                            m.running.get_mut(&worker).and_then(|h| h.pop_front());
                            m.sliced.remove(&token);
                            m.queued.insert(token, ty);
                            m.ts_queues.entry(ty.0).or_default().push_back(token);
                        }
                        (Err(_), _) => prop_assert!(!preemptive || !sliced),
                        (Ok(()), None) => prop_assert!(false, "preempted an idle worker"),
                    }
                }
            }
            dispatch_all(&mut s, &mut m, now)?;
        }
        // Arrivals stop; completions keep coming: everything queued is served exactly once.
        for _ in 0..10_000 {
            m.running.retain(|_, h| !h.is_empty());
            if m.queued.is_empty() && m.running.is_empty() {
                break;
            }
            now += 1_000;
            let busy: Vec<u16> = m.running.keys().copied().collect();
            prop_assert!(
                !busy.is_empty(),
                "queued requests but no worker busy: stuck"
            );
            for w in busy {
                let token = m
                    .running
                    .get_mut(&w)
                    .and_then(|h| h.pop_front())
                    .map(|(token, _)| token);
                let c = s.on_completion(now, WorkerId(w));
                prop_assert_eq!(c.map(|c| c.token.0).ok(), token);
                m.completed += 1;
            }
            dispatch_all(&mut s, &mut m, now)?;
        }
        m.running.retain(|_, h| !h.is_empty());
        prop_assert!(m.queued.is_empty() && m.running.is_empty());
        prop_assert_eq!(s.queued(), 0);
        let c = s.counters();
        prop_assert_eq!(c.accepted, m.completed);
        prop_assert_eq!(c.completed, m.completed);
        prop_assert_eq!(c.dispatched, c.completed + c.preempted);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn every_policy_conserves_tokens_and_drains(
            policy in policy(),
            workers in 1usize..6,
            depth in 1usize..=2,
            ops in proptest::collection::vec(op(), 0..160),
        ) {
            let policy = match policy {
                Policy::DarcStatic { reserved_short } => Policy::DarcStatic {
                    reserved_short: reserved_short.min(workers - 1),
                },
                p => p,
            };
            // `ts` and `darc-ts` preempt the request a worker runs: depth 1 only (checked in
            // unit tests).
            let depth = if policy.time_sharing().is_some() { 1 } else { depth };
            run(policy, workers, depth, ops)?;
        }

        #[test]
        fn darc_keeps_its_invariants_across_many_updates(
            samples_needed in 1u64..8,
            workers in 2usize..9,
            depth in 1usize..=2,
            model in any::<bool>(),
            ops in proptest::collection::vec(op(), 100..400),
        ) {
            let plan = if model { PlanMode::Model } else { PlanMode::Formula };
            let policy = Policy::Darc(DarcParams { samples_needed, plan, ..DarcParams::default() });
            run(policy, workers, depth, ops)?;
        }

        #[test]
        fn classify_never_goes_out_of_bounds(wires in proptest::collection::vec(any::<u32>(), 1..64)) {
            let mut s = build(3, types(), Policy::Sjf);
            for (i, &wire) in wires.iter().enumerate() {
                let ty = s.classify(wire);
                let _ = s.on_arrival(i as Nanos, ty, Token(i as u64));
                prop_assert!(s.queue_len(ty) >= 1 || s.counters().rejected > 0);
            }
            prop_assert_eq!(s.queued() as u64, s.counters().accepted);
        }
    }
}
