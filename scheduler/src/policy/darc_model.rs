//! `darc-model`: DARC whose re-plans choose the reservation by model (`darc` with
//! `plan: model`, [`crate::policy::darc::model`]), under its own name so that sweeps and
//! reports can put it beside `darc`.
//!
//! It is DARC in every other respect (profiling, bootstrap, dispatch, update trigger): the
//! state is [`DarcState`], built with [`PlanMode::Model`] whatever `plan` says. Tested with
//! DARC's tests in `scheduler/tests.rs` (it is in the property tests' policy list) and in the
//! simulator (`sim/tests/engine.rs`).

use super::darc::{Darc, DarcParams, DarcState, PlanMode};
use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos, ReservationPlan};

/// DARC with the model planner.
#[derive(Debug)]
pub struct DarcModel(Darc);

impl DarcModel {
    /// The DARC state underneath (the model planner's last decision, for reports).
    pub fn darc(&self) -> &DarcState {
        &self.0
    }
}

impl BuiltinPolicy for DarcModel {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "darc-model",
        aliases: &["darc_model", "DARC_MODEL"],
        summary: "DARC whose reservations are chosen by a tail-latency model (darc, plan: model)",
        params: &[("...", "DARC's parameters; plan is always model")],
        live: true,
        default: || {
            Policy::DarcModel(DarcParams {
                plan: PlanMode::Model,
                ..DarcParams::default()
            })
        },
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let Policy::DarcModel(p) = cx.policy() else {
            return Err(cx.error("not a darc-model configuration".into()));
        };
        let params = DarcParams {
            plan: PlanMode::Model,
            ..p.clone()
        };
        DarcState::build(cx, &params).map(DarcModel)
    }
}

impl PolicyCore for DarcModel {
    fn layout(&self) -> QueueLayout {
        self.0.layout()
    }
    fn on_start(&mut self, state: &mut SchedulerState) {
        self.0.on_start(state)
    }
    #[inline]
    fn arrival_queue(&mut self, slot: usize, state: &SchedulerState) -> usize {
        self.0.arrival_queue(slot, state)
    }
    #[inline]
    fn before_dispatch(&mut self, now_ns: Nanos, state: &mut SchedulerState) {
        self.0.before_dispatch(now_ns, state)
    }
    #[inline]
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.0.choose(now_ns, state, idle)
    }
    /// DARC's: a second slot only on a worker reserved for the request's own group.
    #[inline]
    fn choose_behind(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        busy: WorkerSet,
    ) -> Option<(usize, usize)> {
        self.0.choose_behind(now_ns, state, busy)
    }
    #[inline]
    fn on_completion(&mut self, slot: Option<usize>, service_ns: Nanos) {
        self.0.on_completion(slot, service_ns)
    }
    fn plan(&self) -> Option<&ReservationPlan> {
        self.0.plan()
    }
    fn in_bootstrap(&self) -> bool {
        self.0.in_bootstrap()
    }
}
