//! DARC's planning step as pure functions: grouping, demand, rounding, contiguous reservation.
//!
//! This is `set_darc()` of the original (docs/design.md §1.7), with none of its state: given each
//! type's mean service time and arrival ratio, [`plan_reservations`] returns which workers each
//! group of similar types reserves and which it may steal. The scheduler calls it on every DARC
//! update; `psp plan` and the simulator's allocation search call it (or
//! [`plan_with_allocation`], which takes the per-group core counts as given) directly.
//!
//! ## The algorithm (defaults in [`DarcParams`])
//! 1. Sort types ascending by mean (stable: equal means keep input order).
//! 2. Group: walking the sorted list, each type not yet grouped leads a new group; the following
//!    types join while `mean - leader.mean < delta × leader.mean` (δ = 0.2), i.e. within δ of the
//!    group's **shortest** member.
//! 3. Demand: `window_mean = Σ mean·ratio` over all types; a group's demand is
//!    `Σ_members mean·ratio / window_mean × workers`. When `window_mean` is not positive (every
//!    ratio 0) every demand is 0 — there is no division by zero (the original's oracle path
//!    divided by a zeroed window mean, docs/design.md §8.3).
//! 4. Rounding: integer part 0 → 1 worker (every group gets one); fraction ≤ `rounding_cut`
//!    (0.5) → floor; above → ceil.
//! 5. Reservation, shortest group first, contiguous from worker 0: a group that fits takes the
//!    next `k` workers; one that does not fit takes all remaining workers plus the **spillway**
//!    (the last worker, the AEC `master` semantics, docs/design.md §8.2), so a group that finds no
//!    worker left gets only the spillway.
//! 6. Stealable: `[end of the group's own reservation, workers)`, i.e. the workers reserved to
//!    longer groups or unreserved. A longer group never runs on a shorter group's reserved
//!    worker (the spillway excepted, when a longer group overflows onto it).
//!
//! ## How it is tested
//! Unit tests below replay the docs/design.md §1.9 vectors at 14 workers (DISP2, SBIM2, TPC-C,
//! RocksDB, DISP3) and check groups, reserved workers, spillway and stealable sets exactly, plus
//! the degenerate inputs (no types, all ratios zero, more groups than workers, fixed
//! allocations and their validation).

use crate::{ConfigError, DarcParams, ReservationPlan, TypeGroup, TypeIndex, WorkerId};

/// What planning needs to know about one type.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TypeProfile {
    /// The type.
    pub ty: TypeIndex,
    /// Mean service time (ns): configured, or profiled (inactive types use
    /// [`INACTIVE_MEAN_NS`] so that they sort last).
    pub mean_ns: f64,
    /// Share of arrivals in `[0, 1]` (0 for an inactive type).
    pub ratio: f64,
}

/// Mean given to a type with no sample in a window, so that it sorts after every active type
/// (the original's `mean_ns = 1e9`, `dispatch_su.cc` update_darc).
pub const INACTIVE_MEAN_NS: f64 = 1e9;

/// A group of types before workers are assigned: members sorted ascending by mean.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileGroup {
    /// Members, ascending by mean.
    pub members: Vec<TypeProfile>,
}

impl ProfileGroup {
    /// Mean of the shortest member (the group's leader).
    pub fn leader_mean_ns(&self) -> f64 {
        self.members.first().map_or(0.0, |m| m.mean_ns)
    }

    /// `Σ mean·ratio` over the members (the group's contribution to the window mean).
    pub fn contribution_ns(&self) -> f64 {
        self.members.iter().map(|m| m.mean_ns * m.ratio).sum()
    }
}

/// Sorts `types` ascending by mean (stable) and groups them: a type joins the current group
/// while `mean - leader.mean < delta × leader.mean`.
pub fn group_types(types: &[TypeProfile], delta: f64) -> Vec<ProfileGroup> {
    let mut sorted: Vec<TypeProfile> = types.to_vec();
    sorted.sort_by(|a, b| a.mean_ns.total_cmp(&b.mean_ns));
    let mut groups: Vec<ProfileGroup> = Vec::new();
    for t in sorted {
        match groups.last_mut() {
            Some(g) if t.mean_ns - g.leader_mean_ns() < delta * g.leader_mean_ns() => {
                g.members.push(t)
            }
            _ => groups.push(ProfileGroup { members: vec![t] }),
        }
    }
    groups
}

/// `Σ mean·ratio` over all types: the window's mean service time.
pub fn window_mean_ns(types: &[TypeProfile]) -> f64 {
    types.iter().map(|t| t.mean_ns * t.ratio).sum()
}

/// A group's CPU demand in workers: `contribution / window_mean × workers`; 0 when the window
/// mean is not positive or the result is not finite.
pub fn demand_workers(contribution_ns: f64, window_mean_ns: f64, workers: usize) -> f64 {
    if window_mean_ns > 0.0 {
        let d = contribution_ns / window_mean_ns * workers as f64;
        if d.is_finite() && d > 0.0 {
            d
        } else {
            0.0
        }
    } else {
        0.0
    }
}

/// Workers reserved for a demand: integer part 0 → 1; fraction ≤ `rounding_cut` → floor;
/// otherwise ceil.
pub fn round_demand(demand_workers: f64, rounding_cut: f64) -> usize {
    if demand_workers.is_nan() || demand_workers < 1.0 {
        return 1;
    }
    let whole = demand_workers.trunc();
    let fraction = demand_workers - whole;
    let whole = whole as usize; // saturating float→int cast
    if fraction <= rounding_cut {
        whole
    } else {
        whole.saturating_add(1)
    }
}

/// Whether `count` workers still do for a group whose demand is now `demand_workers`, given
/// [`round_demand`]'s bands widened by `hysteresis_workers` on each side: `count` = 1 holds
/// while the demand is ≤ 1 + cut + h, a larger count while it is in
/// (count − 1 + cut − h, count + cut + h]. With `h` = 0 this is exactly "rounds to `count`".
pub fn count_still_fits(
    demand_workers: f64,
    count: usize,
    rounding_cut: f64,
    hysteresis_workers: f64,
) -> bool {
    if demand_workers.is_nan() {
        return count == 1;
    }
    let upper = count as f64 + rounding_cut + hysteresis_workers;
    let lower = if count <= 1 {
        f64::NEG_INFINITY
    } else {
        (count - 1) as f64 + rounding_cut - hysteresis_workers
    };
    demand_workers > lower && demand_workers <= upper
}

/// Assigns `counts[i]` workers to `groups[i]` contiguously from worker 0 (step 5–6 of the module
/// docs), with `demands[i]` recorded in the plan.
fn assign(
    groups: Vec<ProfileGroup>,
    demands: &[f64],
    counts: &[usize],
    workers: usize,
) -> ReservationPlan {
    if workers == 0 {
        return ReservationPlan::default();
    }
    let spillway = workers - 1;
    let mut next_free = 0usize;
    let mut out = Vec::with_capacity(groups.len());
    for ((group, &demand), &count) in groups.into_iter().zip(demands).zip(counts) {
        let available = workers - next_free;
        let mut reserved: Vec<WorkerId> = Vec::new();
        let overflow = count > available;
        let end = if overflow { workers } else { next_free + count };
        reserved.extend((next_free..end).map(|w| WorkerId(w as u16)));
        if overflow && !reserved.contains(&WorkerId(spillway as u16)) {
            reserved.push(WorkerId(spillway as u16));
        }
        next_free = end;
        out.push(TypeGroup {
            leader_mean_ns: group.leader_mean_ns(),
            members: group.members.iter().map(|m| m.ty).collect(),
            demand_workers: demand,
            reserved,
            stealable: (next_free..workers).map(|w| WorkerId(w as u16)).collect(),
            uses_spillway: overflow,
        });
    }
    ReservationPlan {
        groups: out,
        spillway: Some(WorkerId(spillway as u16)),
    }
}

/// DARC's plan for `types` on `workers` workers (docs/design.md §1.7).
/// `params.fixed_allocation` is ignored here: see [`plan_with_allocation`]. `workers` above [`crate::MAX_WORKERS`] is the
/// caller's business (the scheduler validates it); 0 workers gives an empty plan.
pub fn plan_reservations(
    types: &[TypeProfile],
    workers: usize,
    params: &DarcParams,
) -> ReservationPlan {
    let groups = group_types(types, params.delta);
    let window_mean = window_mean_ns(types);
    let demands: Vec<f64> = groups
        .iter()
        .map(|g| demand_workers(g.contribution_ns(), window_mean, workers))
        .collect();
    let counts: Vec<usize> = demands
        .iter()
        .map(|&d| round_demand(d, params.rounding_cut))
        .collect();
    assign(groups, &demands, &counts, workers)
}

/// DARC's plan with the per-group worker counts given (`allocation[i]` workers for the `i`-th
/// group, shortest first; groups formed by δ as in [`group_types`]). Demands are still computed
/// for the record. Errors name the offending value: the allocation must have one entry per
/// group, each ≥ 1, summing to at most `workers`.
pub fn plan_with_allocation(
    types: &[TypeProfile],
    workers: usize,
    delta: f64,
    allocation: &[usize],
) -> Result<ReservationPlan, ConfigError> {
    let groups = group_types(types, delta);
    validate_allocation(allocation, groups.len(), workers)?;
    let window_mean = window_mean_ns(types);
    let demands: Vec<f64> = groups
        .iter()
        .map(|g| demand_workers(g.contribution_ns(), window_mean, workers))
        .collect();
    Ok(assign(groups, &demands, allocation, workers))
}

/// Checks a fixed allocation against the number of groups and workers.
pub fn validate_allocation(
    allocation: &[usize],
    groups: usize,
    workers: usize,
) -> Result<(), ConfigError> {
    let shown = || format!("{allocation:?}");
    if allocation.len() != groups {
        return Err(ConfigError::Invalid {
            field: "darc.fixed_allocation",
            value: format!("{} ({} entries for {groups} type groups)", shown(), allocation.len()),
            why: "needs exactly one worker count per type group (groups formed by delta from the configured means)",
        });
    }
    if let Some(zero) = allocation.iter().position(|&k| k == 0) {
        return Err(ConfigError::Invalid {
            field: "darc.fixed_allocation",
            value: format!("{} (entry {zero} is 0)", shown()),
            why: "every group needs at least 1 worker",
        });
    }
    let total = allocation
        .iter()
        .fold(0usize, |acc, &k| acc.saturating_add(k));
    if total > workers {
        return Err(ConfigError::Invalid {
            field: "darc.fixed_allocation",
            value: format!("{} (sum {total} > {workers} workers)", shown()),
            why: "the groups' workers must sum to at most the number of workers",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKERS: usize = 14;

    fn profiles(spec: &[(f64, f64)]) -> Vec<TypeProfile> {
        spec.iter()
            .enumerate()
            .map(|(i, &(mean_us, ratio))| TypeProfile {
                ty: TypeIndex(i as u16),
                mean_ns: mean_us * 1000.0,
                ratio,
            })
            .collect()
    }

    fn ws(range: std::ops::Range<u16>) -> Vec<WorkerId> {
        range.map(WorkerId).collect()
    }

    fn tys(ids: &[u16]) -> Vec<TypeIndex> {
        ids.iter().map(|&i| TypeIndex(i)).collect()
    }

    fn plan(spec: &[(f64, f64)]) -> ReservationPlan {
        plan_reservations(&profiles(spec), WORKERS, &DarcParams::default())
    }

    #[test]
    fn disp2_reserves_one_short_worker_and_overflows_long_onto_spillway() {
        let p = plan(&[(1.0, 0.5), (100.0, 0.5)]);
        assert_eq!(p.spillway, Some(WorkerId(13)));
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[0].members, tys(&[0]));
        assert_eq!(p.groups[0].reserved, ws(0..1));
        assert_eq!(p.groups[0].stealable, ws(1..14));
        assert!(!p.groups[0].uses_spillway);
        assert!((p.groups[0].demand_workers - 0.5 / 50.5 * 14.0).abs() < 1e-9);
        assert_eq!(p.groups[1].members, tys(&[1]));
        assert_eq!(p.groups[1].reserved, ws(1..14));
        assert!(p.groups[1].uses_spillway);
        assert!(p.groups[1].stealable.is_empty());
        assert!((p.groups[1].demand_workers - 13.861).abs() < 1e-3);
    }

    #[test]
    fn sbim2_reserves_two_short_workers() {
        let p = plan(&[(0.5, 0.995), (500.0, 0.005)]);
        assert_eq!(p.groups[0].reserved, ws(0..2));
        assert_eq!(p.groups[0].stealable, ws(2..14));
        assert!((p.groups[0].demand_workers - 2.3236).abs() < 1e-3);
        assert_eq!(p.groups[1].reserved, ws(2..14));
        assert!(!p.groups[1].uses_spillway);
        assert!(p.groups[1].stealable.is_empty());
        assert!((p.groups[1].demand_workers - 11.676).abs() < 1e-3);
    }

    #[test]
    fn tpcc_forms_three_groups() {
        // Config order: NewOrder, Payment, Delivery, OrderStatus, StockLevel.
        let p = plan(&[
            (20.0, 0.44),
            (5.7, 0.44),
            (88.0, 0.04),
            (6.0, 0.04),
            (100.0, 0.04),
        ]);
        assert_eq!(p.groups.len(), 3);
        assert_eq!(p.groups[0].members, tys(&[1, 3]));
        assert_eq!(p.groups[0].leader_mean_ns, 5700.0);
        assert_eq!(p.groups[0].reserved, ws(0..2));
        assert_eq!(p.groups[0].stealable, ws(2..14));
        assert!((p.groups[0].demand_workers - 2.0176).abs() < 1e-3);
        assert_eq!(p.groups[1].members, tys(&[0]));
        assert_eq!(p.groups[1].reserved, ws(2..8));
        assert_eq!(p.groups[1].stealable, ws(8..14));
        assert!((p.groups[1].demand_workers - 6.461).abs() < 1e-3);
        assert_eq!(p.groups[2].members, tys(&[2, 4]));
        assert_eq!(p.groups[2].reserved, ws(8..14));
        assert!(p.groups[2].stealable.is_empty());
        assert!((p.groups[2].demand_workers - 5.521).abs() < 1e-3);
        assert!(p.groups.iter().all(|g| !g.uses_spillway));
    }

    #[test]
    fn rocksdb_reserves_one_get_worker() {
        let p = plan(&[(1.5, 0.5), (635.0, 0.5)]);
        assert_eq!(p.groups[0].reserved, ws(0..1));
        assert_eq!(p.groups[0].stealable, ws(1..14));
        assert_eq!(p.groups[1].reserved, ws(1..14));
        assert!(p.groups[1].uses_spillway);
        assert!(p.groups[1].stealable.is_empty());
        assert!((p.groups[1].demand_workers - 13.967).abs() < 1e-3);
    }

    #[test]
    fn disp3_reserves_two_short_workers() {
        let p = plan(&[(1.0, 0.95), (100.0, 0.05)]);
        assert_eq!(p.groups[0].reserved, ws(0..2));
        assert!((p.groups[0].demand_workers - 2.235).abs() < 1e-3);
        assert_eq!(p.groups[1].reserved, ws(2..14));
        assert!((p.groups[1].demand_workers - 11.765).abs() < 1e-3);
    }

    #[test]
    fn rounding_follows_the_cut() {
        assert_eq!(round_demand(0.0, 0.5), 1);
        assert_eq!(round_demand(0.99, 0.5), 1);
        assert_eq!(round_demand(f64::NAN, 0.5), 1);
        assert_eq!(round_demand(2.5, 0.5), 2);
        assert_eq!(round_demand(2.51, 0.5), 3);
        assert_eq!(round_demand(2.3, 0.2), 3);
        assert_eq!(round_demand(f64::INFINITY, 0.5), usize::MAX);
    }

    #[test]
    fn grouping_is_relative_to_the_shortest_member() {
        // 10, 11.9 join 10 (< 12); 12 does not (12 - 10 = 2, not < 2): it leads a new group,
        // which 14 joins (14 - 12 < 2.4).
        let types = profiles(&[(12.0, 0.25), (10.0, 0.25), (14.0, 0.25), (11.9, 0.25)]);
        let groups = group_types(&types, 0.2);
        let members: Vec<Vec<u16>> = groups
            .iter()
            .map(|g| g.members.iter().map(|m| m.ty.0).collect())
            .collect();
        assert_eq!(members, vec![vec![1, 3], vec![0, 2]]);
    }

    #[test]
    fn zero_ratios_never_divide_by_zero() {
        let p = plan(&[(1.0, 0.0), (100.0, 0.0)]);
        for g in &p.groups {
            assert_eq!(g.demand_workers, 0.0);
            assert_eq!(g.reserved.len(), 1);
        }
        assert_eq!(p.groups[0].reserved, ws(0..1));
        assert_eq!(p.groups[1].reserved, ws(1..2));
        assert_eq!(p.groups[1].stealable, ws(2..14));
    }

    #[test]
    fn groups_beyond_the_workers_get_only_the_spillway() {
        let types = profiles(&[(1.0, 0.3), (10.0, 0.3), (100.0, 0.4)]);
        let p = plan_reservations(&types, 2, &DarcParams::default());
        assert_eq!(p.spillway, Some(WorkerId(1)));
        assert_eq!(p.groups[0].reserved, ws(0..1));
        assert_eq!(p.groups[1].reserved, ws(1..2));
        assert_eq!(p.groups[2].reserved, vec![WorkerId(1)]);
        assert!(p.groups[2].uses_spillway);
    }

    #[test]
    fn no_types_or_no_workers_give_empty_plans() {
        let p = plan_reservations(&[], 4, &DarcParams::default());
        assert!(p.groups.is_empty());
        assert_eq!(p.spillway, Some(WorkerId(3)));
        let p = plan_reservations(&profiles(&[(1.0, 1.0)]), 0, &DarcParams::default());
        assert_eq!(p, ReservationPlan::default());
    }

    #[test]
    fn fixed_allocation_is_applied_and_validated() {
        let types = profiles(&[(1.0, 0.5), (100.0, 0.5)]);
        let p = plan_with_allocation(&types, 14, 0.2, &[3, 9]).unwrap();
        assert_eq!(p.groups[0].reserved, ws(0..3));
        assert_eq!(p.groups[0].stealable, ws(3..14));
        assert_eq!(p.groups[1].reserved, ws(3..12));
        assert_eq!(p.groups[1].stealable, ws(12..14));
        for bad in [&[3usize][..], &[0, 14], &[7, 8]] {
            let err = plan_with_allocation(&types, 14, 0.2, bad).unwrap_err();
            assert!(err.to_string().contains("darc.fixed_allocation"), "{err}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn profile_list() -> impl Strategy<Value = Vec<TypeProfile>> {
            proptest::collection::vec((1.0f64..1e6, 0.0f64..1.0), 0..8).prop_map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (mean_ns, ratio))| TypeProfile {
                        ty: TypeIndex(i as u16),
                        mean_ns,
                        ratio,
                    })
                    .collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            #[test]
            fn plans_are_contiguous_disjoint_and_cover_every_type(
                types in profile_list(),
                workers in 1usize..20,
                delta in 0.0f64..1.0,
            ) {
                let params = DarcParams { delta, ..DarcParams::default() };
                let plan = plan_reservations(&types, workers, &params);
                let spillway = WorkerId((workers - 1) as u16);
                prop_assert_eq!(plan.spillway, Some(spillway));
                let mut planned: Vec<TypeIndex> =
                    plan.groups.iter().flat_map(|g| g.members.clone()).collect();
                planned.sort();
                let mut given: Vec<TypeIndex> = types.iter().map(|t| t.ty).collect();
                given.sort();
                prop_assert_eq!(planned, given);
                let mut next_free = 0usize;
                let mut previous_leader = f64::NEG_INFINITY;
                for g in &plan.groups {
                    prop_assert!(!g.reserved.is_empty(), "a group without workers: {:?}", plan);
                    prop_assert!(g.leader_mean_ns >= previous_leader);
                    previous_leader = g.leader_mean_ns;
                    for m in &g.members {
                        let mean = types[usize::from(m.0)].mean_ns;
                        prop_assert!(mean - g.leader_mean_ns < delta * g.leader_mean_ns
                            || mean == g.leader_mean_ns);
                    }
                    let own: Vec<usize> = g
                        .reserved
                        .iter()
                        .map(|w| w.index())
                        .filter(|&w| !(g.uses_spillway && w == spillway.index() && w < next_free))
                        .collect();
                    let expected: Vec<usize> = (next_free..next_free + own.len()).collect();
                    prop_assert_eq!(&own, &expected, "not contiguous from {}", next_free);
                    next_free += own.len();
                    prop_assert!(next_free <= workers);
                    if g.uses_spillway {
                        prop_assert_eq!(next_free, workers);
                        prop_assert!(g.reserved.contains(&spillway));
                    }
                    let stealable: Vec<usize> = g.stealable.iter().map(|w| w.index()).collect();
                    prop_assert_eq!(stealable, (next_free..workers).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn count_still_fits_is_rounding_widened_by_the_hysteresis() {
        for tenth in 0..=60 {
            let demand = f64::from(tenth) / 10.0;
            for count in 1..=6 {
                assert_eq!(
                    count_still_fits(demand, count, 0.5, 0.0),
                    round_demand(demand, 0.5) == count,
                    "demand {demand}, count {count}"
                );
            }
        }
        // One worker holds up to 1.75 with h = 0.25; two from 1.25 to 2.75.
        assert!(count_still_fits(1.75, 1, 0.5, 0.25));
        assert!(!count_still_fits(1.76, 1, 0.5, 0.25));
        assert!(count_still_fits(1.26, 2, 0.5, 0.25));
        assert!(!count_still_fits(1.25, 2, 0.5, 0.25));
        assert!(count_still_fits(2.75, 2, 0.5, 0.25));
        assert!(!count_still_fits(2.76, 2, 0.5, 0.25));
        assert!(count_still_fits(f64::NAN, 1, 0.5, 0.25));
        assert!(!count_still_fits(f64::NAN, 2, 0.5, 0.25));
    }

}
