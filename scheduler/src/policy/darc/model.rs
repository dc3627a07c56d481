//! DARC's model planner (`plan: model`): predicts each candidate allocation's p99.9 slowdown
//! per type with a queueing approximation and picks the allocation with the most headroom.
//!
//! DARC's formula ([`super::plan`]) gives each group its share of CPU demand rounded at 0.5.
//! That share is a mean; tails depend on how much slack each group and its stealers have. The
//! model keeps DARC's groups (δ) and its dispatch rule and only chooses the per-group worker
//! counts, among every composition of the workers into the groups (each ≥ 1, contiguous,
//! shortest group first: what [`super::plan::plan_with_allocation`] installs).
//!
//! ## The approximation (one pass per candidate, O(groups × workers))
//! Under DARC a request of group `g` waits only when every worker of its **pool**
//! `P_g = [start_g, workers)` (its own and every longer group's) is busy, and it is served
//! before longer groups (types are visited by ascending mean) but after shorter groups'
//! stolen requests. So per group:
//! 1. **Stealing** (overflow cascade): the traffic offered to group `j`'s own workers is its
//!    own plus what shorter groups overflowed; the share that finds them all busy moves on
//!    to the next (longer) group's workers, with Erlang B's blocking probability as the
//!    overflow share (the classic overflow-traffic approximation).
//! 2. **Pool**: `P_g`'s `n` workers carry `A` = the overflow from shorter groups + every group
//!    `≥ g` (in workers, `Σ λ·mean`); `A ≥ n` is unstable (infinite slowdown), except
//!    within [`RATE_RESOLUTION`] of capacity, which a profile cannot tell from just below it
//!    (predicted at [`MARGINAL_LOAD`]).
//!    `P(wait) = ErlangC(n, A)`, the FCFS mean wait by the M/G/c approximation
//!    `ErlangC · E[S] / (n − A) · (1 + c²) / 2` over the pool's service mix, and group
//!    `g`'s mean wait by the non-preemptive priority scaling (Bondi–Buzen)
//!    `W_g = W_fcfs · (1 − ρ) / ((1 − σ_hi) (1 − σ_hi − σ_g))`.
//! 3. **Tail**: `P(W_g > t) = P(wait) · exp(−t · P(wait) / W_g)` (exponential conditional wait);
//!    a type of mean `m` in group `g` has slowdown above `x` with probability
//!    `P(W_g > (x − 1) m)` plus its own service tail `exp(−(x − 1) / cv)` (0 for fixed service).
//!    The overall p99.9 is the `x` where the arrival-weighted mixture of the types' tails is
//!    0.1 % (the paper's metric: p99.9 of per-request slowdown over all types).
//!
//! 4. **Horizon and backlog** (the live planner, [`Model::with_horizon_ns`]): DARC re-plans
//!    every window, so a group that cannot keep up is not infinitely slow but builds a
//!    backlog until the next re-plan (its wait grows at the excess load, mean over the window
//!    length), and the work already queued (`TypeLoad::queued`) delays its arrivals until the
//!    spare capacity has drained it. A plan that overloads a rare long type for one window
//!    can thus beat one that starves the common short type, and the backlog it leaves pushes
//!    the next re-plan towards the long type. Without a horizon (`psp plan --model`,
//!    `psp search`) overload is +∞: the steady-state view.
//!
//! The planner smooths its input across windows ([`smooth`]): a type with few samples per
//! window would otherwise flip plans on noise.
//!
//! ## Choice and hysteresis
//! Candidates are ranked by predicted overall p99.9 slowdown (equal within 2 % → by predicted
//! mean slowdown). When no candidate is finite (overload, steady state), the rates are scaled
//! down until one is: the plan with the most headroom ([`ModelChoice::load_scale`]). The plan in force is re-predicted
//! on the same profile and kept unless the best candidate is better by more than the
//! hysteresis (`DarcParams::hysteresis`, 10 %), so profiling noise does not flip plans.
//!
//! ## How it is tested
//! Unit tests below: Erlang B/C against known values, the M/M/1 tail, monotonicity in load,
//! the paper workloads' choices (DISP2 keeps [1, 13]; TPC-C at 0.95 gives the NewOrder and
//! long groups room; SBIM2 reserves 3 short workers), hysteresis, overload, horizon and
//! backlog, smoothing, and the candidate count.
//! `sim/tests/model.rs` checks the predictions against the simulator.

use super::plan::{group_types, TypeProfile};
use crate::TypeIndex;

/// The tail the model predicts: p99.9 (the paper's metric).
pub const TAIL_QUANTILE: f64 = 0.999;

/// Largest slowdown the model reports as finite; beyond it a candidate counts as unstable.
pub const MAX_PREDICTED_SLOWDOWN: f64 = 1e9;

/// Two overall predictions within this ratio are equal for ranking (then the mean decides).
pub const RANK_TOLERANCE: f64 = 0.02;

/// Relative resolution of a profiled arrival rate: a group whose load exceeds its capacity
/// by less than this counts as loaded to [`MARGINAL_LOAD`] rather than unstable. A window of
/// 50 000 samples holds 250 requests of a 0.5 % type (±6 %; smoothed over windows, ±2.5 %),
/// so a plan cannot be told apart from one 3 % further from overload.
pub const RATE_RESOLUTION: f64 = 0.03;

/// The load (of capacity) a group within [`RATE_RESOLUTION`] of overload is predicted at.
pub const MARGINAL_LOAD: f64 = 0.99;

/// The load share at which the priority scaling saturates (an overloaded group's).
const MAX_PRIORITY_LOAD: f64 = 0.999;

/// Overloaded profiles are re-ranked at rates scaled down by this step, down to
/// [`MIN_LOAD_SCALE`] (see [`ModelChoice::load_scale`]).
pub const LOAD_SCALE_STEP: f64 = 0.97;

/// Lowest rate scale tried for an overloaded profile.
pub const MIN_LOAD_SCALE: f64 = 0.5;

/// Most candidate allocations one re-plan evaluates (C(16, 4) = 1820 for 17 workers and 5
/// groups); more groups or workers than that fall back to DARC's formula.
pub const MAX_CANDIDATES: usize = 20_000;

/// What the model knows about one type: profiled (or configured) mean, service-time
/// variability and arrival rate.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TypeLoad {
    /// The type.
    pub ty: TypeIndex,
    /// Mean service time (ns).
    pub mean_ns: f64,
    /// Squared coefficient of variation of its service time (0: fixed, 1: exponential).
    pub scv: f64,
    /// Arrivals per ns.
    pub rate_per_ns: f64,
    /// Requests of this type queued now (0 for a steady-state prediction).
    pub queued: f64,
}

impl TypeLoad {
    /// Its load in workers (`λ · mean`).
    fn load(&self) -> f64 {
        self.rate_per_ns * self.mean_ns
    }

    /// `λ · E[S²]`.
    fn second_moment_rate(&self) -> f64 {
        self.rate_per_ns * self.mean_ns * self.mean_ns * (1.0 + self.scv)
    }
}

/// A stream of requests in the model: its rate, load and `λ·E[S²]` (so streams add up).
#[derive(Copy, Clone, Debug, Default, PartialEq)]
struct Traffic {
    rate: f64,
    load: f64,
    m2_rate: f64,
}

impl Traffic {
    fn add(self, o: Traffic) -> Traffic {
        Traffic {
            rate: self.rate + o.rate,
            load: self.load + o.load,
            m2_rate: self.m2_rate + o.m2_rate,
        }
    }

    fn scale(self, f: f64) -> Traffic {
        Traffic {
            rate: self.rate * f,
            load: self.load * f,
            m2_rate: self.m2_rate * f,
        }
    }
}

/// One group's members and traffic (built once per re-plan).
#[derive(Clone, Debug)]
struct ModelGroup {
    members: Vec<TypeLoad>,
    traffic: Traffic,
    /// Work queued now (ns of service).
    backlog_ns: f64,
}

/// Groups of a profile, ready for predictions: built once, then evaluated per allocation.
#[derive(Clone, Debug)]
pub struct Model {
    groups: Vec<ModelGroup>,
    workers: usize,
    total_rate: f64,
    /// Time until the next re-plan (ns): an overloaded group's backlog grows for this long
    /// at most before the planner looks again. Infinite: steady state (overload = +∞).
    horizon_ns: f64,
}

/// One type's waiting time under one allocation.
#[derive(Copy, Clone, Debug, PartialEq)]
struct TypeWait {
    ty: TypeIndex,
    rate_per_ns: f64,
    mean_ns: f64,
    scv: f64,
    /// `P(wait > 0)`.
    p_wait: f64,
    /// Mean wait given a wait (ns); infinite when its group cannot keep up.
    conditional_mean_ns: f64,
}

/// A group's shared congestion under one allocation, before per-type priorities.
#[derive(Copy, Clone, Debug, PartialEq)]
struct GroupWait {
    /// `P(wait > 0)`.
    p_wait: f64,
    /// Mean wait given a wait (ns), as if served first come first served.
    conditional_mean_ns: f64,
    /// Workers the group can count on: its own plus the stealable ones longer groups leave.
    capacity: f64,
    /// Its own workers' utilisation.
    utilisation: f64,
}

/// The model's prediction for one allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Workers per group, shortest group first.
    pub allocation: Vec<usize>,
    /// Predicted p99.9 of per-request slowdown over all types (+∞ if a pool is unstable).
    pub overall_p999: f64,
    /// Predicted mean slowdown over all requests.
    pub mean_slowdown: f64,
    /// Highest load over capacity (own workers plus what longer groups leave of the
    /// stealable ones) of a group: ranks candidates that are all unstable.
    pub max_utilisation: f64,
}

/// Per-type predicted p99.9 slowdown (for reports).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TypeTail {
    /// The type.
    pub ty: TypeIndex,
    /// Predicted p99.9 slowdown of this type's requests.
    pub p999_slowdown: f64,
}

/// What one re-plan decided.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelChoice {
    /// The best candidate.
    pub best: Prediction,
    /// The plan in force, re-predicted on this profile (if its groups still match).
    pub current: Option<Prediction>,
    /// Whether the plan in force is kept (hysteresis).
    pub keep_current: bool,
    /// Candidates evaluated (more than the allocations when overloaded, see `load_scale`).
    pub candidates: usize,
    /// 1, or, when no allocation keeps every type's tail finite at the profiled rates, the
    /// factor on the rates at which the best one does (then ranked there): the plan with
    /// the most headroom.
    pub load_scale: f64,
}

impl ModelChoice {
    /// The allocation to install: the current one when kept, else the best.
    pub fn allocation(&self) -> &[usize] {
        match (&self.current, self.keep_current) {
            (Some(c), true) => &c.allocation,
            _ => &self.best.allocation,
        }
    }
}

/// Weight of the newest window in [`smooth`].
pub const SMOOTHING_WEIGHT: f64 = 0.3;

/// A change of a type's mean or rate beyond this factor restarts the smoothing (the
/// workload changed, not the noise).
pub const SMOOTHING_RESET_FACTOR: f64 = 1.5;

/// Exponentially weighted profile: `previous` moved towards `window` by
/// [`SMOOTHING_WEIGHT`] (means, variability, rates; queue contents are the window's), or
/// `window` itself when there is no previous profile of the same types or a type's mean or
/// rate moved by more than [`SMOOTHING_RESET_FACTOR`]. Smoothing keeps a type with few
/// samples per window (0.5 % of SBIM2's arrivals: ±6 % per 50 000-sample window) from
/// flipping plans on noise.
pub fn smooth(previous: Option<&[TypeLoad]>, window: &[TypeLoad]) -> Vec<TypeLoad> {
    let jumped = |a: f64, b: f64| {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        hi > lo * SMOOTHING_RESET_FACTOR + f64::EPSILON
    };
    let Some(previous) = previous.filter(|p| {
        p.len() == window.len()
            && p.iter().zip(window).all(|(a, b)| {
                a.ty == b.ty && !jumped(a.mean_ns, b.mean_ns) && !jumped(a.rate_per_ns, b.rate_per_ns)
            })
    }) else {
        return window.to_vec();
    };
    let mix = |old: f64, new: f64| old + SMOOTHING_WEIGHT * (new - old);
    previous
        .iter()
        .zip(window)
        .map(|(old, new)| TypeLoad {
            ty: new.ty,
            mean_ns: mix(old.mean_ns, new.mean_ns),
            scv: mix(old.scv, new.scv),
            rate_per_ns: mix(old.rate_per_ns, new.rate_per_ns),
            queued: new.queued,
        })
        .collect()
}

/// Erlang B blocking probability of `servers` servers offered `load` (in servers), by the
/// stable recursion `B(k) = A·B(k−1) / (k + A·B(k−1))`.
pub fn erlang_b(servers: usize, load: f64) -> f64 {
    if load <= 0.0 {
        return if servers == 0 { 1.0 } else { 0.0 };
    }
    let mut b = 1.0;
    for k in 1..=servers {
        b = load * b / (k as f64 + load * b);
    }
    b
}

/// Erlang C: probability that an arrival waits in M/M/`servers` with `load` (< servers);
/// 1 when `load ≥ servers`.
pub fn erlang_c(servers: usize, load: f64) -> f64 {
    let n = servers as f64;
    if servers == 0 || load >= n {
        return 1.0;
    }
    let b = erlang_b(servers, load);
    (n * b / (n - load * (1.0 - b))).clamp(0.0, 1.0)
}

impl Model {
    /// A model of `types` (δ-grouped as DARC groups them) on `workers` workers. Types with no
    /// arrivals count in no group's traffic but keep their place in the grouping.
    pub fn new(types: &[TypeLoad], workers: usize, delta: f64) -> Self {
        let profiles: Vec<TypeProfile> = types
            .iter()
            .map(|t| TypeProfile {
                ty: t.ty,
                mean_ns: t.mean_ns,
                ratio: t.rate_per_ns,
            })
            .collect();
        let groups = group_types(&profiles, delta)
            .into_iter()
            .map(|g| {
                let members: Vec<TypeLoad> = g
                    .members
                    .iter()
                    .filter_map(|m| types.iter().find(|t| t.ty == m.ty).copied())
                    .collect();
                let traffic = members.iter().fold(Traffic::default(), |acc, t| {
                    acc.add(Traffic {
                        rate: t.rate_per_ns.max(0.0),
                        load: t.load().max(0.0),
                        m2_rate: t.second_moment_rate().max(0.0),
                    })
                });
                let backlog_ns = members
                    .iter()
                    .map(|t| t.queued.max(0.0) * t.mean_ns.max(0.0))
                    .sum();
                ModelGroup {
                    members,
                    traffic,
                    backlog_ns,
                }
            })
            .collect();
        Self {
            groups,
            workers,
            total_rate: types.iter().map(|t| t.rate_per_ns.max(0.0)).sum(),
            horizon_ns: f64::INFINITY,
        }
    }

    /// The same model over a finite horizon (the re-plan interval, ns): a group that cannot
    /// keep up is not infinitely slow but builds a backlog for that long (see the module
    /// docs); with the queues' current contents (`TypeLoad::queued`) this is what a planner
    /// that re-plans every window should weigh. Not finite or ≤ 0: steady state.
    pub fn with_horizon_ns(mut self, horizon_ns: f64) -> Self {
        self.horizon_ns = if horizon_ns.is_finite() && horizon_ns > 0.0 {
            horizon_ns
        } else {
            f64::INFINITY
        };
        self
    }

    /// Number of groups (the length of every allocation).
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The members of group `g`, ascending by mean.
    pub fn group_members(&self, g: usize) -> Vec<TypeIndex> {
        self.groups
            .get(g)
            .map_or_else(Vec::new, |grp| grp.members.iter().map(|m| m.ty).collect())
    }

    /// Every type's waiting time under `allocation` (one entry per group, each ≥ 1, summing
    /// to at most the workers; the caller guarantees it), into `out`; returns the highest
    /// load over capacity of a group (see [`Prediction::max_utilisation`]).
    fn waits(&self, allocation: &[usize], out: &mut Vec<TypeWait>) -> f64 {
        out.clear();
        let total: usize = allocation.iter().sum();
        let spare = self.workers.saturating_sub(total);
        // Overflow cascade: traffic that found every worker of groups < g busy.
        let mut overflow = Traffic::default();
        let mut start = 0usize;
        let mut max_utilisation = 0.0f64;
        let last = allocation.len().saturating_sub(1);
        for (g, (group, &k)) in self.groups.iter().zip(allocation).enumerate() {
            // Unreserved workers behave as the longest group's: count them there.
            let own = if g == last { k + spare } else { k };
            let stealable = self.workers - start - own.min(self.workers - start);
            let longer = self.groups[g + 1..]
                .iter()
                .fold(Traffic::default(), |acc, h| acc.add(h.traffic));
            let offered = overflow.add(group.traffic);
            let wait = group_wait(own, offered, stealable, longer, group.backlog_ns, self.horizon_ns);
            max_utilisation = max_utilisation.max(offered.load / wait.capacity.max(1e-9));
            push_type_waits(out, &group.members, overflow.load, offered.load, wait);
            overflow = if g == last || offered.load <= 0.0 {
                Traffic::default()
            } else {
                offered.scale(overflow_share(own, offered, stealable, longer))
            };
            start += k;
        }
        max_utilisation
    }

    /// The prediction for `allocation`, reusing `scratch`.
    fn predict_into(&self, allocation: &[usize], scratch: &mut Vec<TypeWait>) -> Prediction {
        let max_utilisation = self.waits(allocation, scratch);
        let (overall_p999, mean_slowdown) = if self.total_rate > 0.0 {
            let mean = scratch
                .iter()
                .filter(|t| t.rate_per_ns > 0.0)
                .map(|t| {
                    let mean_wait = t.p_wait * t.conditional_mean_ns;
                    t.rate_per_ns * (1.0 + mean_wait / t.mean_ns.max(1.0))
                })
                .sum::<f64>()
                / self.total_rate;
            (quantile(scratch, None), mean)
        } else {
            (1.0, 1.0)
        };
        Prediction {
            allocation: allocation.to_vec(),
            overall_p999,
            mean_slowdown,
            max_utilisation,
        }
    }

    /// The prediction for one allocation.
    pub fn predict(&self, allocation: &[usize]) -> Prediction {
        self.predict_into(allocation, &mut Vec::new())
    }

    /// Predicted p99.9 slowdown of each type under `allocation`, shortest first.
    pub fn type_tails(&self, allocation: &[usize]) -> Vec<TypeTail> {
        let mut waits = Vec::new();
        self.waits(allocation, &mut waits);
        waits
            .iter()
            .map(|t| TypeTail {
                ty: t.ty,
                p999_slowdown: quantile(&waits, Some(t.ty)),
            })
            .collect()
    }

    /// Evaluates every composition of the workers into the groups and picks the best; keeps
    /// `current` (if it has one entry per group) unless the best is better by more than
    /// `hysteresis`. `None` when there are no groups or more candidates than
    /// [`MAX_CANDIDATES`].
    pub fn choose(&self, current: Option<&[usize]>, hysteresis: f64) -> Option<ModelChoice> {
        let groups = self.groups.len();
        if groups == 0
            || groups > self.workers
            || candidate_count(groups, self.workers) > MAX_CANDIDATES
        {
            return None;
        }
        let mut scratch = Vec::new();
        let mut candidates = 0usize;
        // Overloaded (no candidate keeps every type finite): the plan with the most headroom
        // is the one that recovers first as the load falls.
        let mut load_scale = 1.0;
        let mut scaled = None;
        let best = loop {
            let model = scaled.as_ref().unwrap_or(self);
            let best = model.best(&mut scratch, &mut candidates)?;
            if best.overall_p999.is_finite() || load_scale < MIN_LOAD_SCALE {
                break best;
            }
            load_scale *= LOAD_SCALE_STEP;
            scaled = Some(self.scaled(load_scale));
        };
        let model = scaled.as_ref().unwrap_or(self);
        let current = current
            .filter(|c| c.len() == groups && c.iter().all(|&k| k >= 1))
            .filter(|c| c.iter().sum::<usize>() <= self.workers)
            .map(|c| model.predict_into(c, &mut scratch));
        let keep_current = current
            .as_ref()
            .is_some_and(|c| c.allocation == best.allocation || !better(&best, c, hysteresis));
        Some(ModelChoice {
            best,
            current,
            keep_current,
            candidates,
            load_scale,
        })
    }

    /// The best of every composition of the workers into the groups.
    fn best(&self, scratch: &mut Vec<TypeWait>, candidates: &mut usize) -> Option<Prediction> {
        let groups = self.groups.len();
        let mut allocation = vec![1usize; groups];
        allocation[groups - 1] = self.workers.checked_sub(groups - 1)?;
        let mut best: Option<Prediction> = None;
        loop {
            *candidates += 1;
            let p = self.predict_into(&allocation, scratch);
            if best.as_ref().is_none_or(|b| better(&p, b, 0.0)) {
                best = Some(p);
            }
            if !next_composition(&mut allocation) {
                break best;
            }
        }
    }

    /// The same profile with every arrival rate multiplied by `scale`.
    fn scaled(&self, scale: f64) -> Model {
        let mut m = self.clone();
        for g in &mut m.groups {
            g.traffic = g.traffic.scale(scale);
            for t in &mut g.members {
                t.rate_per_ns *= scale;
            }
        }
        m.total_rate *= scale;
        m
    }
}

/// The wait of a group with `own` reserved workers offered `offered` (its traffic plus the
/// shorter groups' overflow), with `stealable` workers beyond its own that carry `longer`
/// (the longer groups' traffic).
///
/// It waits when its own workers are all busy (Erlang C of `own` with the offered load) and
/// no stealable worker is free of longer work (Erlang C of `stealable` with the longer
/// load); while it waits, its queue drains through its own workers (the M/G/c conditional
/// wait) and through stealable workers as longer requests finish (one every
/// `longer mean / stealable`); when its own workers are overloaded the backlog grows at the
/// excess between those releases.
fn group_wait(
    own: usize,
    offered: Traffic,
    stealable: usize,
    longer: Traffic,
    backlog_ns: f64,
    horizon_ns: f64,
) -> GroupWait {
    let k = own as f64;
    let s = stealable as f64;
    let utilisation = if own > 0 { offered.load / k } else { f64::INFINITY };
    // Capacity left to this group on the stealable workers, on average.
    let capacity = k + (s - longer.load).max(0.0);
    // Queued work, drained by that capacity.
    let backlog_wait_ns = if capacity > 0.0 {
        backlog_ns / capacity
    } else {
        f64::INFINITY
    };
    if offered.rate <= 0.0 {
        return GroupWait {
            p_wait: if backlog_ns > 0.0 { 1.0 } else { 0.0 },
            conditional_mean_ns: if backlog_ns > 0.0 { backlog_wait_ns } else { 0.0 },
            capacity,
            utilisation,
        };
    }
    // Within the profile's resolution of capacity: as good as at capacity.
    let offered = if horizon_ns.is_infinite()
        && offered.load >= capacity
        && offered.load < capacity * (1.0 + RATE_RESOLUTION)
    {
        offered.scale(capacity * MARGINAL_LOAD / offered.load)
    } else {
        offered
    };
    if offered.load >= capacity {
        // Overloaded: the backlog grows at the excess until the next re-plan (fluid view:
        // a wait of `backlog + excess × t` at time t of the horizon, mean over it).
        let excess = if capacity > 0.0 {
            offered.load / capacity - 1.0
        } else {
            f64::INFINITY
        };
        return GroupWait {
            p_wait: 1.0,
            conditional_mean_ns: if horizon_ns.is_finite() {
                backlog_wait_ns + excess * horizon_ns / 2.0
            } else {
                f64::INFINITY
            },
            capacity,
            utilisation,
        };
    }
    let mean = offered.load / offered.rate;
    let scv = (offered.m2_rate / offered.rate / (mean * mean) - 1.0).max(0.0);
    let p_own = erlang_c(own, offered.load);
    let p_stealable = stealable_busy(stealable, longer.load);
    let release_ns = if stealable == 0 || longer.rate <= 0.0 {
        f64::INFINITY
    } else {
        longer.load / longer.rate / s
    };
    let own_drain_ns = if offered.load < k {
        mean * (1.0 + scv) / 2.0 / (k - offered.load)
    } else {
        f64::INFINITY
    };
    let drain_ns = 1.0 / (1.0 / own_drain_ns + 1.0 / release_ns);
    let overload_ns = if release_ns.is_finite() {
        release_ns * (utilisation - 1.0).max(0.0)
    } else {
        0.0
    };
    let p_wait = p_own * p_stealable;
    let conditional_mean_ns = drain_ns + overload_ns;
    if backlog_wait_ns > 0.0 && horizon_ns.is_finite() {
        // Queued work drains at the spare capacity; until it is gone (or the horizon ends)
        // every arrival waits behind it.
        let clear_ns = backlog_wait_ns / (1.0 - offered.load / capacity);
        let share = (clear_ns / horizon_ns).min(1.0);
        let p = p_wait.max(share);
        let mean = p_wait * conditional_mean_ns + share * backlog_wait_ns / 2.0;
        return GroupWait {
            p_wait: p,
            conditional_mean_ns: mean / p,
            capacity,
            utilisation,
        };
    }
    GroupWait {
        p_wait,
        conditional_mean_ns,
        capacity,
        utilisation,
    }
}

/// Probability that all `stealable` workers are busy with `longer` load (1 with none).
fn stealable_busy(stealable: usize, longer: f64) -> f64 {
    if stealable == 0 {
        1.0
    } else {
        erlang_c(stealable, longer)
    }
}

/// Appends the group's members' waits: one shared congestion, scaled per type by
/// non-preemptive priority (Bondi–Buzen's M/G/c form of Cobham's formula): types are served
/// by ascending mean, after the shorter groups' overflow (`higher_load`).
fn push_type_waits(
    out: &mut Vec<TypeWait>,
    members: &[TypeLoad],
    higher_load: f64,
    offered_load: f64,
    wait: GroupWait,
) {
    // An overloaded group (finite horizon) counts as just below saturation: its backlog
    // falls on its lowest-priority members.
    let rho = (offered_load / wait.capacity).min(MAX_PRIORITY_LOAD);
    let mut before = (higher_load / wait.capacity).min(rho);
    for t in members {
        let sigma = (t.load().max(0.0) / wait.capacity).min(rho - before);
        let factor = (1.0 - rho) / ((1.0 - before) * (1.0 - before - sigma)).max(1e-12);
        before += sigma;
        let conditional_mean_ns = if wait.conditional_mean_ns.is_finite() {
            wait.conditional_mean_ns * factor
        } else {
            f64::INFINITY
        };
        out.push(TypeWait {
            ty: t.ty,
            rate_per_ns: t.rate_per_ns.max(0.0),
            mean_ns: t.mean_ns,
            scv: t.scv,
            p_wait: wait.p_wait,
            conditional_mean_ns,
        });
    }
}

/// The slowdown `x` at which the arrival-weighted tail of `only` (or of every type) is
/// `1 − TAIL_QUANTILE`, by bisection on `ln x`.
fn quantile(waits: &[TypeWait], only: Option<TypeIndex>) -> f64 {
    let selected = |t: &&TypeWait| only.is_none_or(|ty| ty == t.ty);
    let weight: f64 = waits.iter().filter(selected).map(|t| t.rate_per_ns).sum();
    if weight <= 0.0 {
        return 1.0;
    }
    let target = (1.0 - TAIL_QUANTILE) * weight;
    let tail = |x: f64| -> f64 {
        let excess = x - 1.0;
        let mut sum = 0.0;
        for t in waits.iter().filter(selected) {
            if !t.conditional_mean_ns.is_finite() {
                sum += t.rate_per_ns;
                continue;
            }
            let wait = if t.conditional_mean_ns > 0.0 {
                t.p_wait * (-excess * t.mean_ns / t.conditional_mean_ns).exp()
            } else {
                0.0
            };
            let service = if t.scv > 1e-6 {
                (-excess / t.scv.sqrt()).exp()
            } else {
                0.0
            };
            sum += t.rate_per_ns * (wait + service).min(1.0);
        }
        sum
    };
    if tail(1.0) <= target {
        return 1.0;
    }
    if tail(MAX_PREDICTED_SLOWDOWN) > target {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (0.0f64, MAX_PREDICTED_SLOWDOWN.ln());
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if tail(mid.exp()) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi.exp()
}

/// The share of the traffic offered to `own` workers that runs on stealable ones: arrivals
/// that find their own workers busy (Erlang B: the overflow of a loss system, as such
/// arrivals leave for a stealable worker) and a stealable worker free of longer work, plus,
/// of those that wait, the share the stealable workers' releases take from the queue; at
/// least the excess over the own workers' capacity.
fn overflow_share(own: usize, offered: Traffic, stealable: usize, longer: Traffic) -> f64 {
    let k = own as f64;
    let p_stealable = stealable_busy(stealable, longer.load);
    let found_free = erlang_b(own, offered.load) * (1.0 - p_stealable);
    let own_release = if offered.load > 0.0 {
        k * offered.rate / offered.load
    } else {
        0.0
    };
    let stealable_release = if longer.load > 0.0 {
        stealable as f64 * longer.rate / longer.load
    } else {
        0.0
    };
    let queued_share = if own_release + stealable_release > 0.0 {
        stealable_release / (own_release + stealable_release)
    } else {
        0.0
    };
    let queued = erlang_c(own, offered.load) * p_stealable * queued_share;
    let excess = (offered.load - k).max(0.0) / offered.load;
    (found_free + queued).max(excess).min(1.0)
}

/// `a` ranks before `b` by more than `margin`: lower overall p99.9 (beyond the rank tolerance
/// and the margin), else (equal) lower mean slowdown by the margin; both unstable → lower
/// utilisation.
fn better(a: &Prediction, b: &Prediction, margin: f64) -> bool {
    match (a.overall_p999.is_finite(), b.overall_p999.is_finite()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.max_utilisation < b.max_utilisation * (1.0 - margin),
        (true, true) => {
            let tolerance = RANK_TOLERANCE.max(margin);
            if a.overall_p999 < b.overall_p999 * (1.0 - tolerance) {
                true
            } else if a.overall_p999 <= b.overall_p999 * (1.0 + RANK_TOLERANCE) {
                a.mean_slowdown < b.mean_slowdown * (1.0 - margin)
            } else {
                false
            }
        }
    }
}

/// Number of compositions of `workers` into `groups` positive parts: C(workers−1, groups−1)
/// (saturating).
pub fn candidate_count(groups: usize, workers: usize) -> usize {
    if groups == 0 || groups > workers {
        return 0;
    }
    let (n, k) = (workers - 1, groups - 1);
    let k = k.min(n - k);
    let mut c: usize = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
    }
    c
}

/// Advances `a` to the next composition of the same sum (each part ≥ 1) in the order that
/// starts at `[1, …, 1, rest]` and ends at `[rest, 1, …, 1]`; `false` after the last.
fn next_composition(a: &mut [usize]) -> bool {
    let n = a.len();
    if n < 2 {
        return false;
    }
    // Find the rightmost position i < n−1 that can take one from the tail: the tail
    // a[i+1..] has more than its minimum (one each).
    for i in (0..n - 1).rev() {
        let tail: usize = a[i + 1..].iter().sum();
        if tail > n - 1 - i {
            a[i] += 1;
            let rest = tail - 1;
            for x in a[i + 1..n - 1].iter_mut() {
                *x = 1;
            }
            a[n - 1] = rest - (n - 2 - i);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(spec: &[(f64, f64, f64)], load: f64, workers: usize) -> Vec<TypeLoad> {
        // (mean µs, ratio, scv) at `load` of `workers` workers.
        let mean: f64 = spec.iter().map(|&(m, r, _)| m * 1e3 * r).sum();
        let rate = load * workers as f64 / mean;
        spec.iter()
            .enumerate()
            .map(|(i, &(m, r, scv))| TypeLoad {
                ty: TypeIndex(i as u16),
                mean_ns: m * 1e3,
                scv,
                rate_per_ns: rate * r,
                queued: 0.0,
            })
            .collect()
    }

    const TPCC: &[(f64, f64, f64)] = &[
        (20.0, 0.44, 0.0),
        (5.7, 0.44, 0.0),
        (88.0, 0.04, 0.0),
        (6.0, 0.04, 0.0),
        (100.0, 0.04, 0.0),
    ];

    #[test]
    fn erlang_formulas_match_known_values() {
        assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-12);
        assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-12);
        // M/M/1: P(wait) = ρ.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        // M/M/2 at A = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        assert_eq!(erlang_b(3, 0.0), 0.0);
    }

    #[test]
    fn single_exponential_server_has_the_mm1_tail() {
        // M/M/1 at ρ = 0.5, mean 1 µs: W ~ ρ·Exp(μ(1−ρ)); sojourn ~ Exp(μ(1−ρ)), so
        // P(T > t) = e^{−t/2µs}; p99.9 of sojourn/mean = 2 ln 1000 ≈ 13.8.
        let m = Model::new(&loads(&[(1.0, 1.0, 1.0)], 0.5, 1), 1, 0.2);
        let p = m.predict(&[1]);
        // The model adds the wait and service tails (an upper bound of the convolution).
        assert!(p.overall_p999 > 12.0 && p.overall_p999 < 16.0, "{p:?}");
        assert!((p.mean_slowdown - 2.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn predictions_grow_with_load_and_overload_is_infinite() {
        let mut last = 0.0;
        for load in [0.5, 0.7, 0.8, 0.9, 0.95] {
            let p = Model::new(&loads(TPCC, load, 14), 14, 0.2).predict(&[1, 3, 10]);
            assert!(p.overall_p999 >= last, "{load}: {p:?}");
            last = p.overall_p999;
        }
        let p = Model::new(&loads(TPCC, 1.05, 14), 14, 0.2).predict(&[1, 3, 10]);
        assert!(p.overall_p999.is_infinite());
    }

    #[test]
    fn compositions_are_enumerated_once_each() {
        let mut a = vec![1, 1, 12];
        let mut seen = vec![a.clone()];
        while next_composition(&mut a) {
            assert_eq!(a.iter().sum::<usize>(), 14);
            assert!(a.iter().all(|&k| k >= 1));
            seen.push(a.clone());
        }
        assert_eq!(seen.len(), 78);
        assert_eq!(candidate_count(3, 14), 78);
        assert_eq!(candidate_count(5, 14), 715);
        assert_eq!(candidate_count(1, 14), 1);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 78);
    }

    #[test]
    fn disp2_keeps_darcs_plan() {
        for load in [0.5, 0.8, 0.9] {
            let m = Model::new(&loads(&[(1.0, 0.5, 0.0), (100.0, 0.5, 0.0)], load, 14), 14, 0.2);
            let c = m.choose(None, 0.1).unwrap();
            assert_eq!(c.best.allocation, vec![1, 13], "{load}: {c:?}");
            assert_eq!(c.candidates, 13);
        }
    }

    #[test]
    fn sbim2_reserves_three_short_workers_at_high_load() {
        let spec = &[(0.5, 0.995, 0.0), (500.0, 0.005, 0.0)];
        let c = Model::new(&loads(spec, 0.9, 14), 14, 0.2)
            .choose(None, 0.1)
            .unwrap();
        assert_eq!(c.best.allocation, vec![3, 11], "{c:?}");
    }

    #[test]
    fn tpcc_at_095_gives_the_long_groups_room() {
        let m = Model::new(&loads(TPCC, 0.95, 14), 14, 0.2);
        let c = m.choose(Some(&[2, 6, 6]), 0.1).unwrap();
        assert!(!c.keep_current, "{c:?}");
        let best = &c.best.allocation;
        assert!(best[2] >= 8, "{c:?}");
        assert!(c.current.as_ref().unwrap().overall_p999 > c.best.overall_p999);
        let tails = m.type_tails(best);
        assert_eq!(tails.len(), 5);
        assert!(tails.iter().all(|t| t.p999_slowdown >= 1.0));
    }

    #[test]
    fn an_overloaded_profile_gets_the_plan_that_recovers_first() {
        let m = Model::new(&loads(TPCC, 1.05, 14), 14, 0.2);
        let c = m.choose(Some(&[2, 6, 6]), 0.1).unwrap();
        assert!(c.load_scale < 1.0 && c.load_scale > 0.8, "{c:?}");
        assert!(c.best.overall_p999.is_finite(), "{c:?}");
        assert!(c.candidates > 78);
        // Not overloaded: ranked at the profiled rates.
        let c = Model::new(&loads(TPCC, 0.9, 14), 14, 0.2).choose(None, 0.1).unwrap();
        assert_eq!((c.load_scale, c.candidates), (1.0, 78));
    }

    #[test]
    fn a_finite_horizon_bounds_overload_and_queued_work_counts() {
        // SBIM2 at 1.0: 11 LONG workers get 11.67 workers of LONG work (6 % over).
        let spec = &[(0.5, 0.995, 0.0), (500.0, 0.005, 0.0)];
        let steady = Model::new(&loads(spec, 1.0, 14), 14, 0.2);
        assert!(steady.predict(&[3, 11]).overall_p999.is_infinite());
        let horizon = steady.clone().with_horizon_ns(10e6);
        let p = horizon.predict(&[3, 11]);
        assert!(p.overall_p999.is_finite() && p.overall_p999 > 1.0, "{p:?}");
        // A backlog of 400 LONGs (≈ 18 ms of work for 11 workers) weighs on the prediction.
        let mut queued = loads(spec, 1.0, 14);
        queued[1].queued = 400.0;
        let backlog = Model::new(&queued, 14, 0.2).with_horizon_ns(10e6);
        let with = backlog.predict(&[3, 11]).overall_p999;
        assert!(with > p.overall_p999 * 2.0, "{with} vs {}", p.overall_p999);
        // 0.8 % over capacity (SBIM2 at 0.95) is within a profile's resolution: finite.
        let marginal = Model::new(&loads(spec, 0.95, 14), 14, 0.2).predict(&[3, 11]);
        assert!(marginal.overall_p999.is_finite(), "{marginal:?}");
    }

    #[test]
    fn smoothing_damps_noise_and_restarts_on_a_change() {
        let a = loads(TPCC, 0.9, 14);
        let mut b = a.clone();
        b[2].rate_per_ns *= 1.1;
        let s = smooth(Some(&a), &b);
        let expected = a[2].rate_per_ns * (1.0 + 0.1 * SMOOTHING_WEIGHT);
        assert!((s[2].rate_per_ns - expected).abs() < 1e-15, "{s:?}");
        assert_eq!(s[0], a[0]);
        // A type twice as long: the workload changed, take the window as it is.
        let mut c = a.clone();
        c[0].mean_ns *= 2.0;
        assert_eq!(smooth(Some(&a), &c), c);
        assert_eq!(smooth(None, &c), c);
        assert_eq!(smooth(Some(&a[..2]), &c), c);
    }

    #[test]
    fn hysteresis_keeps_a_plan_that_is_nearly_as_good() {
        let m = Model::new(&loads(TPCC, 0.9, 14), 14, 0.2);
        let best = m.choose(None, 0.0).unwrap().best;
        let c = m.choose(Some(&best.allocation), 0.1).unwrap();
        assert!(c.keep_current);
        assert_eq!(c.allocation(), &best.allocation[..]);
        // An absurd plan in force is replaced.
        let c = m.choose(Some(&[12, 1, 1]), 0.1).unwrap();
        assert!(!c.keep_current);
        assert_eq!(c.allocation(), &c.best.allocation[..]);
    }
}
