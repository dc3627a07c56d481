//! The shadow policy (`psp.shadow: NAME`): a second scheduler beside the live one that sees
//! the same arrivals and completions, is asked at each live decision what it would have done
//! ([`psp_scheduler::Scheduler::shadow_dispatch`]), and never dispatches anything itself. The
//! counts (agreement, and the shadow's own cost, timed on one call in
//! [`SHADOW_TIMING_EVERY`]) go to the report and to every telemetry window; `toggle` over the
//! control socket swaps live and shadow.
//!
//! Tested in `server/tests/step.rs` (virtual time: c-FCFS live, SJF shadow, the verdicts and a
//! toggle) and `tests/control_udp.rs`; its cost on the dispatcher in `benches/telemetry.rs`.

use psp_scheduler::{Scheduler, ShadowVerdict, Token, TypeIndex, WorkerId};
use serde::Serialize;

use crate::clock::Clock;

/// One shadow call in this many is timed (two clock reads) to estimate the shadow's cost
/// without paying for the reads on every call.
pub const SHADOW_TIMING_EVERY: u64 = 64;

/// What the shadow did over a run (cumulative), or over a telemetry window
/// ([`ShadowReport::since`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShadowReport {
    /// The shadow's policy.
    pub policy: &'static str,
    /// Live decisions it was compared on.
    pub decisions: u64,
    /// It would have started the same request on the same worker.
    pub agreed: u64,
    /// The same request, on another worker.
    pub same_request: u64,
    /// Another request (or none).
    pub disagreed: u64,
    /// Decisions it could not follow (a request it had refused, a worker it thought busy).
    pub out_of_sync: u64,
    /// Arrivals its queues refused (full) although the live ones took them.
    pub arrivals_refused: u64,
    /// DARC plans it applied.
    pub plan_updates: u64,
    /// Calls into the shadow (arrivals, completions, decisions).
    pub calls: u64,
    /// Calls timed, and their total time (ns): the cost per call is `timed_ns / timed_calls`.
    pub timed_calls: u64,
    /// See `timed_calls`.
    pub timed_ns: u64,
}

impl ShadowReport {
    /// Mean cost of one shadow call (ns), from the timed ones.
    pub fn ns_per_call(&self) -> f64 {
        self.timed_ns as f64 / self.timed_calls.max(1) as f64
    }

    /// Share of decisions it agreed with (same request, same worker).
    pub fn agreed_share(&self) -> f64 {
        self.agreed as f64 / self.decisions.max(1) as f64
    }

    /// The counts since `earlier` (same policy, or a toggle in between: then all of them).
    pub fn since(&self, earlier: &ShadowReport) -> ShadowReport {
        if self.policy != earlier.policy {
            return *self;
        }
        ShadowReport {
            policy: self.policy,
            decisions: self.decisions.saturating_sub(earlier.decisions),
            agreed: self.agreed.saturating_sub(earlier.agreed),
            same_request: self.same_request.saturating_sub(earlier.same_request),
            disagreed: self.disagreed.saturating_sub(earlier.disagreed),
            out_of_sync: self.out_of_sync.saturating_sub(earlier.out_of_sync),
            arrivals_refused: self
                .arrivals_refused
                .saturating_sub(earlier.arrivals_refused),
            plan_updates: self.plan_updates.saturating_sub(earlier.plan_updates),
            calls: self.calls.saturating_sub(earlier.calls),
            timed_calls: self.timed_calls.saturating_sub(earlier.timed_calls),
            timed_ns: self.timed_ns.saturating_sub(earlier.timed_ns),
        }
    }
}

/// The shadow scheduler and its counts.
pub(crate) struct Shadow {
    pub(super) scheduler: Scheduler,
    pub(super) report: ShadowReport,
}

impl Shadow {
    pub(crate) fn new(scheduler: Scheduler) -> Self {
        let report = ShadowReport {
            policy: scheduler.policy().name(),
            ..ShadowReport::default()
        };
        Self { scheduler, report }
    }

    /// Runs `f` on the shadow scheduler, timing one call in [`SHADOW_TIMING_EVERY`].
    #[inline]
    fn call<T>(&mut self, clock: &Clock, f: impl FnOnce(&mut Scheduler) -> T) -> T {
        self.report.calls += 1;
        if !self.report.calls.is_multiple_of(SHADOW_TIMING_EVERY) {
            return f(&mut self.scheduler);
        }
        let started = clock.now_ns();
        let out = f(&mut self.scheduler);
        self.report.timed_ns += clock.now_ns().saturating_sub(started);
        self.report.timed_calls += 1;
        out
    }

    /// The live scheduler accepted `token`.
    #[inline]
    pub(super) fn on_arrival(&mut self, clock: &Clock, now_ns: u64, ty: TypeIndex, token: Token) {
        if self
            .call(clock, |s| s.on_arrival(now_ns, ty, token))
            .is_err()
        {
            self.report.arrivals_refused += 1;
        }
    }

    /// The live worker `worker` finished.
    #[inline]
    pub(super) fn on_completion(&mut self, clock: &Clock, now_ns: u64, worker: WorkerId) {
        // A worker the shadow thinks idle was counted out of sync when it was dispatched.
        let _ = self.call(clock, |s| s.on_completion(now_ns, worker));
    }

    /// The live scheduler started `token` on `worker`.
    #[inline]
    pub(super) fn on_dispatch(
        &mut self,
        clock: &Clock,
        now_ns: u64,
        worker: WorkerId,
        token: Token,
    ) {
        let verdict = self.call(clock, |s| s.shadow_dispatch(now_ns, worker, token));
        let r = &mut self.report;
        r.decisions += 1;
        match verdict {
            ShadowVerdict::Agreed => r.agreed += 1,
            ShadowVerdict::SameRequest => r.same_request += 1,
            ShadowVerdict::Disagreed => r.disagreed += 1,
            ShadowVerdict::OutOfSync => r.out_of_sync += 1,
        }
    }

    /// Drops the shadow's plan records (counted; the live plan is what is logged).
    pub(super) fn drain_plan_updates(&mut self) {
        while self.scheduler.poll_plan_update().is_some() {
            self.report.plan_updates += 1;
        }
    }
}
