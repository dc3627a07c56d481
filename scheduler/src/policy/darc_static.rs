//! `darc-static`: DARC with a fixed split, the original's manual `n_resas` mode (Fig. 4 of
//! the paper, docs/design.md §1.3). Types are sorted by configured mean (all types need one,
//! or none: then configuration order); the shortest type alone reserves `[0, k)` and may
//! steal `[k, n)`; every other type shares `[k, n)`; UNKNOWN runs on the last worker only.
//! `0 ≤ k ≤ n - 1`. Dispatch is DARC's reserved dispatch over this one plan, which never
//! changes.
//!
//! Tested in `scheduler/tests.rs` (`darc_static_*` and the property tests).

use super::darc::Reservations;
use crate::policy::{
    order_by_mean, BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout,
};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, RequestTypeSpec, ReservationPlan, TypeGroup, TypeIndex, WorkerId};

/// The built darc-static policy, boxed for the same reason as [`super::darc::Darc`].
pub type DarcStatic = Box<DarcStaticState>;

/// darc-static: queue = type slot (UNKNOWN at `n_types`).
#[derive(Debug)]
pub struct DarcStaticState {
    n_types: usize,
    reservations: Reservations,
    /// The plan with its configured means and ratios, applied in `on_start`.
    initial: Option<(ReservationPlan, Vec<f64>, Vec<f64>)>,
}

impl BuiltinPolicy for DarcStatic {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "darc-static",
        aliases: &[],
        summary: "the shortest type reserves reserved_short workers, the others share the rest",
        params: &[(
            "reserved_short",
            "workers reserved for the shortest type, 0..=workers-1 (1)",
        )],
        live: true,
        default: || Policy::DarcStatic { reserved_short: 1 },
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let Policy::DarcStatic { reserved_short: k } = *cx.policy() else {
            return Err(cx.error("not a darc-static configuration".into()));
        };
        let (workers, n_types, types) = (cx.workers(), cx.n_types(), cx.types());
        if k >= workers {
            return Err(ConfigError::Invalid {
                field: "darc-static.reserved_short",
                value: k.to_string(),
                why: "must be in 0..=workers-1 (longer types need at least one worker)",
            });
        }
        let configured = types.iter().filter(|t| t.mean_ns.is_some()).count();
        let order = if configured == 0 {
            (0..n_types).collect()
        } else {
            order_by_mean(&cx.configured_means("means must be given for all types or none")?)
        };
        let plan = static_plan(&order, types, workers, k);
        let means = types
            .iter()
            .map(|t| t.mean_ns.map_or(0.0, |m| m as f64))
            .collect();
        let ratios = types.iter().map(|t| t.ratio.unwrap_or(0.0)).collect();
        Ok(Box::new(DarcStaticState {
            n_types,
            reservations: Reservations::new(n_types, workers),
            initial: Some((plan, means, ratios)),
        }))
    }
}

impl PolicyCore for DarcStaticState {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: self.n_types + 1,
            extra_slots: 0,
        }
    }

    fn on_start(&mut self, state: &mut SchedulerState) {
        if let Some((plan, means, ratios)) = self.initial.take() {
            self.reservations
                .apply(state, (0, 0, 0), means, ratios, plan);
        }
    }

    #[inline]
    fn arrival_queue(&mut self, slot: usize, _state: &SchedulerState) -> usize {
        slot
    }

    #[inline]
    fn choose(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.reservations.choose(state, idle)
    }

    #[inline]
    fn choose_behind(
        &self,
        _now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.reservations.choose_reserved(state, busy)
    }

    fn plan(&self) -> Option<&ReservationPlan> {
        self.reservations.plan()
    }
}

/// darc-static's plan: the first type of `order` alone reserves `[0, k)` and steals `[k, n)`;
/// the others share `[k, n)`; the spillway is worker `n - 1`.
fn static_plan(
    order: &[usize],
    types: &[RequestTypeSpec],
    workers: usize,
    k: usize,
) -> ReservationPlan {
    let ids = |r: std::ops::Range<usize>| r.map(|w| WorkerId(w as u16)).collect::<Vec<_>>();
    let mean = |t: usize| types[t].mean_ns.map_or(0.0, |m| m as f64);
    let mut groups = Vec::new();
    if let Some((&short, rest)) = order.split_first() {
        groups.push(TypeGroup {
            members: vec![TypeIndex(short as u16)],
            leader_mean_ns: mean(short),
            demand_workers: k as f64,
            reserved: ids(0..k),
            stealable: ids(k..workers),
            uses_spillway: false,
        });
        if let Some(&leader) = rest.first() {
            groups.push(TypeGroup {
                members: rest.iter().map(|&t| TypeIndex(t as u16)).collect(),
                leader_mean_ns: mean(leader),
                demand_workers: (workers - k) as f64,
                reserved: ids(k..workers),
                stealable: Vec::new(),
                uses_spillway: false,
            });
        }
    }
    ReservationPlan {
        groups,
        spillway: Some(WorkerId((workers - 1) as u16)),
    }
}
