//! The dispatcher's side of the control socket: commands posted in the [`Hub`]'s mailbox are
//! applied here, between two loop iterations (a dispatch boundary), and answered.
//!
//! A policy switch ([`Scheduler::switch_policy`]) keeps every request: queued ones move to the
//! new policy's queues, running ones finish where they run; a request the new queues cannot
//! hold is dropped as queue-full (counted, so `rx = answered + drops` still holds). Switching
//! to or from `ts` is refused: its workers run preemptible slices that the other policies do
//! not track.
//!
//! Tested in `server/tests/control.rs` (virtual time: a switch with requests queued and
//! running, every one answered once) and end to end in `tests/control_udp.rs`.

use std::sync::Arc;

use psp_scheduler::{Policy, Scheduler};
use serde_json::Value;

use super::Dispatcher;
use crate::app::Classifier;
use crate::port::{RxQueue, TxQueue};
use crate::server::telemetry::mailbox::{Answer, DispatcherCommand};
use crate::server::telemetry::writer::Hub;
use crate::server::windows::WindowsLog;

impl<R, T, C> Dispatcher<R, T, C>
where
    R: RxQueue,
    T: TxQueue<Buf = R::Buf>,
    C: Classifier,
{
    /// Feeds the shadow policy's thread from now on.
    pub(crate) fn with_shadow(&mut self, shadow: super::shadow::ShadowFeed) {
        self.shadow = Some(shadow);
    }

    /// Takes commands from `hub`'s mailbox from now on.
    pub(crate) fn with_control(&mut self, hub: Arc<Hub>) {
        self.control = Some(hub);
    }

    /// Applies the command waiting in the mailbox, if any, and answers it.
    #[cold]
    #[inline(never)]
    pub(super) fn apply_control(&mut self, now_ns: u64) {
        let Some((command, reply)) = self.control.as_ref().and_then(|hub| hub.mailbox.take())
        else {
            return;
        };
        let answer = match command {
            DispatcherCommand::SwitchPolicy(policy) => self.switch_policy(policy, now_ns),
            DispatcherCommand::Toggle => self.toggle(),
        };
        // The poster may have given up waiting; the switch stands either way.
        let _ = reply.send(answer);
    }

    /// Switches the scheduler to `policy`; the answer's fields name both policies and what
    /// happened to the queued requests.
    fn switch_policy(&mut self, policy: Policy, now_ns: u64) -> Answer {
        let from = self.scheduler.policy().name();
        let to = policy.name();
        if self.preemptive || policy.preempts() {
            return Err(format!(
                "policy: {from} → {to}: switching to or from a preemptive policy (ts, darc-ts) \
                 is not supported live (its workers run preemptible slices); restart the server \
                 with psp.policy: {to}"
            ));
        }
        let queued = self.scheduler.queued();
        let handed_back = self
            .scheduler
            .switch_policy(policy, now_ns)
            .map_err(|e| format!("policy: {to}: {e}"))?;
        for &token in &handed_back {
            self.drop_queue_full(token);
        }
        self.report.policy_switches += 1;
        self.report.policy_at_stop = self.scheduler.policy().name();
        self.after_switch();
        Ok(switch_fields(
            from,
            &self.scheduler,
            queued,
            handed_back.len(),
        ))
    }

    /// Swaps the live and the shadow scheduler. The shadow followed every live decision, so it
    /// holds exactly the live requests (queued and running); one that could not follow some
    /// decision is refused.
    fn toggle(&mut self) -> Answer {
        let Some(shadow) = &mut self.shadow else {
            return Err("toggle: no shadow policy runs (set psp.shadow in the config)".into());
        };
        let next = shadow.take_back()?;
        let previous = std::mem::replace(&mut self.scheduler, next);
        let (from, live) = (previous.policy().name(), self.scheduler.policy().name());
        shadow.shadow(previous);
        self.report.policy_switches += 1;
        self.report.policy_at_stop = live;
        self.after_switch();
        Ok(format!(
            "\"from\":{},\"policy\":{},\"shadow\":{}",
            Value::String(from.into()),
            Value::String(live.into()),
            Value::String(from.into())
        ))
    }

    /// What every change of the live policy needs: a windows log for DARC, the plan in the
    /// telemetry.
    fn after_switch(&mut self) {
        let darc = matches!(
            self.scheduler.policy(),
            Policy::Darc(_) | Policy::DarcModel(_) | Policy::DarcStatic { .. }
        );
        if darc && self.windows.is_none() {
            self.windows = Some(WindowsLog::new(self.scheduler.types().len()));
        }
        self.poll_plan_updates();
        if let Some(telemetry) = &mut self.telemetry {
            match self.scheduler.plan() {
                Some(plan) => telemetry.set_plan(plan),
                None => telemetry.clear_plan(),
            }
        }
    }
}

/// `"from":…,"policy":…,"queued":…,"dropped":…`: the answer to a switch.
fn switch_fields(from: &str, scheduler: &Scheduler, queued: usize, dropped: usize) -> String {
    format!(
        "\"from\":{},\"policy\":{},\"queued\":{queued},\"dropped\":{dropped}",
        Value::String(from.into()),
        Value::String(scheduler.policy().name().into())
    )
}
