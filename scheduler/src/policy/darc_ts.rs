//! `darc-ts`: DARC's reservations for the shorter groups, time slicing for the longest one
//! (issue #15's hybrid for where static reservation hits its ceiling: High Bimodal at 0.95,
//! where LONG needs 13.2 of the 13 workers DARC leaves it).
//!
//! ## Behaviour
//! - Everything DARC does, from the same state ([`DarcState`], the formula planner): the
//!   bootstrap in c-FCFS, profiling, re-plans, types by ascending mean, a type's head on its
//!   group's reserved workers, else on the stealable ones, UNKNOWN on the spillway only.
//! - When DARC's rule places nothing and a request of the plan's **longest group** waits, the
//!   idle workers reserved to shorter groups are lent to it ([`Reservations::choose_lent`]),
//!   one quantum at a time: the dispatch carries [`TimeSharingParams::quantum_ns`], the
//!   driver preempts it at the quantum (as under `ts`, [`crate::Scheduler::on_preempted`]),
//!   and it goes back to the tail of its type's queue, behind the other waiting long requests.
//!   A short request whose reserved worker is lent out waits for one quantum and one
//!   preemption at most, never behind a whole long request; the longest group gets the
//!   shorter groups' idle time.
//! - [`DarcTsParams::slice_all`]: every dispatch of the longest group carries the quantum, on
//!   its own workers too (time slicing on the long cores, Shinjuku-style), so that a short
//!   request that spills onto a long worker also waits one quantum at most.
//! - Shorter groups' dispatches run to completion; the driver may preempt only a request
//!   dispatched with a quantum.
//! - A preempted slice counts in DARC's profile as service of its type without a completion
//!   ([`DarcState::record_slice`]), so the profiled mean stays the whole request's service.
//! - Preemptive: refused at `worker_queue_depth: 2`. Live as `ts` is: the dispatcher sets a
//!   lent (or sliced) worker's preempt flag once its quantum ran out while a request waits, and
//!   the application stops at it (the spin app does; `psp.ts: {quantum_ns, slice_all}`).
//!
//! The rings have `workers` extra slots, as `ts`'s, so a preempted request always goes back.
//!
//! Tested in `scheduler/tests.rs` (`darc_ts_*`, and the property tests: conservation, DARC's
//! reservation rule for the shorter groups, quanta exactly on the longest group's lent or
//! sliced dispatches) and by the simulator (`sim/tests/engine.rs`).

use super::darc::{Darc, DarcParams, DarcState, PlanMode, Reservations};
use super::ts::TimeSharingParams;
use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, ReservationPlan};

/// `darc-ts`'s parameters: DARC's and the time slicing's (defaults: theirs, `slice_all` off).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DarcTsParams {
    /// DARC's tunables (`plan` must be [`PlanMode::Formula`]).
    pub darc: DarcParams,
    /// The quantum and the preemption cost the driver charges (`slo_factor` is unused).
    pub ts: TimeSharingParams,
    /// `true`: slice every dispatch of the longest group, on its own workers too. `false`
    /// (default): only the dispatches on workers lent by shorter groups.
    pub slice_all: bool,
}

/// The built hybrid.
#[derive(Debug)]
pub struct DarcTs {
    darc: Darc,
    quantum_ns: Nanos,
    slice_all: bool,
    workers: usize,
}

impl BuiltinPolicy for DarcTs {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "darc-ts",
        aliases: &["darc_ts", "DARC_TS"],
        summary: "DARC for the shorter groups; the longest group also runs, one quantum at a \
                  time, on idle workers reserved to them",
        params: &[
            ("darc", "DARC's parameters (plan: formula)"),
            ("ts.quantum_ns", "quantum of a lent (or sliced) dispatch (5000)"),
            (
                "ts.preemption_cost_ns",
                "cost of one preemption, charged by the driver (1000)",
            ),
            (
                "slice_all",
                "slice the longest group on its own workers too (false)",
            ),
        ],
        live: true,
        default: || Policy::DarcTs(DarcTsParams::default()),
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let Policy::DarcTs(p) = cx.policy() else {
            return Err(cx.error("not a darc-ts configuration".into()));
        };
        if p.ts.quantum_ns == 0 {
            return Err(ConfigError::Invalid {
                field: "ts.quantum_ns",
                value: "0".into(),
                why: "must be at least 1",
            });
        }
        if p.darc.plan != PlanMode::Formula {
            return Err(ConfigError::Invalid {
                field: "darc.plan",
                value: p.darc.plan.name().into(),
                why: "darc-ts plans with DARC's formula (the model planner does not model \
                      lent workers)",
            });
        }
        Ok(DarcTs {
            darc: DarcState::build(cx, &p.darc)?,
            quantum_ns: p.ts.quantum_ns,
            slice_all: p.slice_all,
            workers: cx.workers(),
        })
    }
}

impl DarcTs {
    /// The reservations in force (`None` during bootstrap).
    #[inline]
    fn reservations(&self) -> Option<&Reservations> {
        self.darc.reservations()
    }
}

impl PolicyCore for DarcTs {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            extra_slots: self.workers,
            ..self.darc.layout()
        }
    }
    fn on_start(&mut self, state: &mut SchedulerState) {
        self.darc.on_start(state)
    }
    #[inline]
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize {
        self.darc.arrival_queue(slot, state)
    }
    #[inline]
    fn before_dispatch(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        self.darc.before_dispatch(now_ns, state)
    }

    #[inline]
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.darc.choose(now_ns, state, idle).or_else(|| {
            self.reservations()
                .and_then(|r| r.choose_lent(state, idle))
        })
    }

    #[inline]
    fn slice_ns(&self, queue: usize, worker: usize) -> Option<Nanos> {
        let r = self.reservations()?;
        (r.in_longest(queue) && (self.slice_all || !r.may_run(queue, worker)))
            .then_some(self.quantum_ns)
    }

    #[inline]
    fn on_completion(&mut self, slot: Option<usize>, service_ns: Nanos) {
        self.darc.on_completion(slot, service_ns)
    }

    #[inline]
    fn on_preempted(&mut self, slot: Option<usize>, ran_ns: Nanos) {
        self.darc.record_slice(slot, ran_ns)
    }

    fn quantum_ns(&self) -> Option<Nanos> {
        Some(self.quantum_ns)
    }
    fn plan(&self) -> Option<&ReservationPlan> {
        self.darc.plan()
    }
    fn in_bootstrap(&self) -> bool {
        self.darc.in_bootstrap()
    }
}
