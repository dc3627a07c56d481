//! `ts`: Shinjuku-like centralized preemptive time sharing (docs/design.md §7.2). One FIFO
//! per type slot; the head with the largest `wait / (slo_factor × mean)` runs for one quantum
//! ([`crate::Dispatch::quantum_ns`]); the driver preempts it with
//! [`crate::Scheduler::on_preempted`], which re-queues it at its type's tail with its original
//! arrival time. UNKNOWN runs only when no typed queue holds anything. The simulator preempts
//! at the quantum; the live server preempts cooperatively (a per-worker flag its applications
//! check, set once the quantum is over and another request waits).
//!
//! The rings have `workers` extra slots so that a preempted request can always go back:
//! admission still refuses at `queue_capacity`, so queued(t) + running(t) ≤ capacity + workers
//! for every type `t`, and a preemption (running(t) ≥ 1) always finds a free slot.
//!
//! Tested in `scheduler/tests.rs` (`ts_*` and the property tests) and by the simulator.

use crate::policy::{BuildContext, BuiltinPolicy, Policy, PolicyCore, PolicyEntry, QueueLayout};
use crate::queue::WorkerSet;
use crate::state::SchedulerState;
use crate::{ConfigError, Nanos};

/// Shinjuku-style time sharing tunables.
///
/// The scheduler only sets the quantum on each [`crate::Dispatch`] and re-queues preempted
/// requests; the driver enforces the quantum and charges `preemption_cost_ns` (the simulator
/// keeps the preempted worker busy that long before calling
/// [`crate::Scheduler::on_preempted`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSharingParams {
    /// Preemption quantum (Shinjuku's default for DISP2/SBIM2: 5 µs, docs/design.md §7.2).
    pub quantum_ns: Nanos,
    /// Cost of one preemption, charged by the driver to the preempted worker (Perséphone's
    /// motivation assumes an optimistic 1 µs).
    pub preemption_cost_ns: Nanos,
    /// Per-type SLO = `slo_factor` × the type's mean (Shinjuku configs use 10×).
    pub slo_factor: f64,
}

impl Default for TimeSharingParams {
    fn default() -> Self {
        Self {
            quantum_ns: 5_000,
            preemption_cost_ns: 1_000,
            slo_factor: 10.0,
        }
    }
}

/// Time sharing: queue = type slot (UNKNOWN at `n_types`).
#[derive(Debug)]
pub struct TimeSharing {
    /// `1 / SLO` per registered type (ns⁻¹).
    inverse_slo: Box<[f64]>,
    quantum_ns: Nanos,
    workers: usize,
}

impl BuiltinPolicy for TimeSharing {
    const ENTRY: PolicyEntry = PolicyEntry {
        name: "ts",
        aliases: &["shinjuku"],
        summary: "preemptive time sharing: largest wait/SLO first, one quantum at a time",
        params: &[
            ("quantum_ns", "preemption quantum (5000)"),
            (
                "preemption_cost_ns",
                "cost of one preemption, charged by the driver (1000)",
            ),
            ("slo_factor", "per-type SLO = slo_factor × mean_ns (10)"),
        ],
        live: true,
        default: || Policy::TimeSharing(TimeSharingParams::default()),
    };

    fn build(cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let Policy::TimeSharing(p) = cx.policy() else {
            return Err(cx.error("not a time-sharing configuration".into()));
        };
        if p.quantum_ns == 0 {
            return Err(ConfigError::Invalid {
                field: "ts.quantum_ns",
                value: "0".into(),
                why: "must be at least 1",
            });
        }
        if !(p.slo_factor.is_finite() && p.slo_factor > 0.0) {
            return Err(ConfigError::Invalid {
                field: "ts.slo_factor",
                value: p.slo_factor.to_string(),
                why: "must be a positive number",
            });
        }
        let means = cx.configured_means("the SLO is slo_factor × mean")?;
        let mut inverse_slo = Vec::with_capacity(cx.n_types());
        for (t, &m) in cx.types().iter().zip(&means) {
            if m == 0 {
                return Err(cx.error(format!(
                    "request type {:?} has mean_ns 0 (SLO would be 0)",
                    t.name
                )));
            }
            inverse_slo.push(1.0 / (p.slo_factor * m as f64));
        }
        Ok(TimeSharing {
            inverse_slo: inverse_slo.into_boxed_slice(),
            quantum_ns: p.quantum_ns,
            workers: cx.workers(),
        })
    }
}

impl PolicyCore for TimeSharing {
    fn layout(&self) -> QueueLayout {
        QueueLayout {
            queues: self.inverse_slo.len() + 1,
            extra_slots: self.workers,
        }
    }

    #[inline]
    fn arrival_queue(&mut self, slot: usize, _state: &SchedulerState) -> usize {
        slot
    }

    #[inline]
    fn choose(
        &self,
        now_ns: Nanos,
        state: &SchedulerState,
        idle: WorkerSet,
    ) -> Option<(usize, usize)> {
        let n_types = self.inverse_slo.len();
        let mut best: Option<(f64, usize)> = None;
        let mut bits = state.nonempty_mask() & !(1u128 << n_types);
        while bits != 0 {
            let q = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(head) = state.front(q) {
                let score = now_ns.saturating_sub(head.arrival_ns) as f64 * self.inverse_slo[q];
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, q));
                }
            }
        }
        let q = best.map_or(n_types, |(_, q)| q);
        Some((q, idle.lowest()?))
    }

    fn quantum_ns(&self) -> Option<Nanos> {
        Some(self.quantum_ns)
    }
}
