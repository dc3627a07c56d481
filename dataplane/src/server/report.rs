//! What a server run did: dispatcher, per-type and per-worker counters, where the time went
//! (stage histograms, measured against requested service time), and warnings; printed as
//! tables ([`fmt::Display`]) and as JSON ([`ServerReport::to_json`], `report.json`).
//!
//! Built once, after the threads have stopped (no hot-path cost). Tested through whole servers
//! in `server/tests.rs` (counts match what the client saw; the printed table; stage sums add
//! up; the JSON carries the same figures).

use std::fmt;
use std::path::PathBuf;

use psp_scheduler::SchedulerCounters;

use super::stages::{merged, DispatcherStages, StageHistogram, WorkerStages};
use super::telemetry::TelemetryReport;
use super::windows::WindowsLog;
use crate::port::PortStats;
use crate::wire::DropCounters;

/// Counters of one request type (or UNKNOWN).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeReport {
    /// Type name (`UNKNOWN` for unregistered wire types).
    pub name: String,
    /// Wire id, `None` for UNKNOWN.
    pub wire_id: Option<u32>,
    /// Requests parsed and classified as this type.
    pub arrivals: u64,
    /// Refused by the scheduler (queue full).
    pub rejected: u64,
    /// Dropped because the dispatcher's pending slab was full.
    pub slab_full: u64,
    /// Handed to a worker.
    pub dispatched: u64,
    /// Completed.
    pub completed: u64,
    /// Preemptions (`ts`): slices that ended at the preempt flag and went back to the queue.
    pub preempted: u64,
    /// Highest queue depth seen right after an arrival.
    pub queue_depth_hwm: u64,
    /// Σ (completion seen by the dispatcher − arrival), ns.
    pub sojourn_ns_total: u64,
}

impl TypeReport {
    pub(crate) fn new(name: &str, wire_id: Option<u32>) -> Self {
        Self {
            name: name.to_string(),
            wire_id,
            ..Self::default()
        }
    }

    /// Mean arrival-to-completion time at the dispatcher, ns (0 without completions).
    pub fn mean_sojourn_ns(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.sojourn_ns_total as f64 / self.completed as f64
        }
    }
}

/// The dispatcher's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DispatcherReport {
    /// Packets received on RX queue 0.
    pub rx_packets: u64,
    /// Policy switches applied over the control socket.
    pub policy_switches: u64,
    /// The policy after the last switch (empty when none happened).
    pub policy_at_stop: &'static str,
    /// The shadow policy's counts (`psp.shadow`), if one ran.
    pub shadow: Option<super::ShadowReport>,
    /// Frames refused by the parser, by reason.
    pub parse_drops: DropCounters,
    /// ARP requests for our address answered (replies built).
    pub arp_requests: u64,
    /// ARP replies the device took.
    pub arp_replies: u64,
    /// ARP replies the device refused (dropped).
    pub arp_tx_drops: u64,
    /// Requests dropped because the pending slab was full.
    pub slab_full_drops: u64,
    /// Requests refused by the scheduler (queue full).
    pub queue_full_drops: u64,
    /// Requests handed to workers (first slice only under `ts`).
    pub dispatched: u64,
    /// Preempted requests handed to a worker again (`ts`).
    pub resumed: u64,
    /// Preemptions (`ts`): requests that stopped at the preempt flag and were re-queued.
    pub preemptions: u64,
    /// Preempt flags set (`ts`); a flag set as the request finished anyway costs nothing.
    pub preempt_flags_set: u64,
    /// Cost of one preemption (`ts`), ns: the dispatcher sets the worker's flag → the worker is
    /// free (its notice sent).
    pub preempt_cost: StageHistogram,
    /// Completions received.
    pub completed: u64,
    /// Completion notices the scheduler refused (a worker that held nothing).
    pub spurious_completions: u64,
    /// Dispatch tokens that matched no pending request (scheduler bug guard).
    pub lost_tokens: u64,
    /// Times a worker's job ring was full (should stay 0).
    pub job_ring_full: u64,
    /// Requests still queued when the drain timeout expired (never answered; requests in
    /// flight then are finished by their workers and counted as completed).
    pub abandoned_at_shutdown: u64,
    /// Dispatched requests whose completion never came (a worker panicked).
    pub in_flight_lost: u64,
    /// Packets left in the RX queue when serving stopped, read and freed unanswered.
    pub rx_left_at_stop: u64,
    /// Requests still queued in the scheduler at exit.
    pub final_queued: u64,
    /// DARC plans applied.
    pub plan_updates: u64,
    /// DARC's model planner (`plan: model`): wall time of the dispatcher steps in which it
    /// re-planned (total and longest, ns), measured around the scheduler call; the count is
    /// the scheduler's `darc_model_replans`.
    pub model_replan_ns_total: u64,
    /// See `model_replan_ns_total`.
    pub model_replan_ns_max: u64,
    /// Worker threads that panicked.
    pub worker_panics: u64,
    /// Per type, in registration order, then UNKNOWN.
    pub per_type: Vec<TypeReport>,
    /// The scheduler's own counters.
    pub scheduler: SchedulerCounters,
    /// Loop iterations (polls of RX, completions and dispatch).
    pub polls: u64,
    /// Loop iterations that found work.
    pub busy_polls: u64,
    /// Time spent in iterations that found work, ns.
    pub busy_ns: u64,
    /// CPU time of the dispatcher thread over the run (idle polls included), ns.
    pub cpu_ns: u64,
    /// Times the OS descheduled the dispatcher thread against its will over the run: each one
    /// may have stretched one busy iteration (`busy_ns` is wall-clock time), so when they are
    /// few against `busy_polls`, `busy_ns` is the loop's CPU time for the work it found.
    pub involuntary_switches: u64,
    /// RX → enqueued and queue-wait histograms.
    pub stages: DispatcherStages,
}

/// One worker's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// CPU it was pinned to, if any.
    pub cpu: Option<usize>,
    /// Pinning was requested and failed (the worker ran unpinned).
    pub pin_failed: bool,
    /// Requests processed.
    pub requests: u64,
    /// Time spent processing (handler + response + TX), ns.
    pub busy_ns: u64,
    /// Slices that ended at the preempt flag (`ts`).
    pub preempted_slices: u64,
    /// Responses the device took.
    pub tx_packets: u64,
    /// TX bursts attempted (responses per burst = `tx_packets / tx_bursts`: TX batching).
    pub tx_bursts: u64,
    /// The thread's CPU time (idle polls included), ns.
    pub cpu_ns: u64,
    /// Responses dropped (TX backlog full or left at shutdown).
    pub tx_dropped: u64,
    /// Requests whose response could not be built (buffer too small).
    pub build_failures: u64,
    /// Handoff, service, TX and RX→TX histograms.
    pub stages: WorkerStages,
}

/// Everything a run reports.
#[derive(Clone, Debug)]
pub struct ServerReport {
    /// Policy name.
    pub policy: &'static str,
    /// The workers' application (`spin`, `kv`, `echo`).
    pub app: &'static str,
    /// Configured mean service time per registered type, if any.
    pub nominal_mean_ns: Vec<Option<u64>>,
    /// What was wrong with the layout before the run (shared cores, unpinnable CPUs...).
    pub startup_warnings: Vec<String>,
    /// Wall time of the run, ns.
    pub elapsed_ns: u64,
    /// Dispatcher counters.
    pub dispatcher: DispatcherReport,
    /// Per-worker counters, by index.
    pub workers: Vec<WorkerReport>,
    /// The port's device counters at exit.
    pub port: PortStats,
    /// DARC's windows (DARC policies only).
    pub windows: Option<WindowsLog>,
    /// Where the windows log was written.
    pub windows_log_path: Option<PathBuf>,
    /// Why writing the windows log failed.
    pub windows_log_error: Option<String>,
    /// What telemetry and the control socket did, if they ran.
    pub telemetry: Option<TelemetryReport>,
}

impl ServerReport {
    /// Requests processed by all workers.
    pub fn requests_served(&self) -> u64 {
        self.workers.iter().map(|w| w.requests).sum()
    }

    /// Responses transmitted by all workers.
    pub fn responses_sent(&self) -> u64 {
        self.workers.iter().map(|w| w.tx_packets).sum()
    }

    /// Every request lost after RX: parse drops, slab and queue-full drops, abandoned ones,
    /// responses the workers could not build or send, completions that never came.
    pub fn total_drops(&self) -> u64 {
        let d = &self.dispatcher;
        d.parse_drops.total_drops()
            + d.slab_full_drops
            + d.queue_full_drops
            + d.abandoned_at_shutdown
            + d.in_flight_lost
            + self.worker_drops()
    }

    /// Responses dropped by the workers (TX backlog full or left at stop, or not buildable).
    pub fn worker_drops(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.tx_dropped + w.build_failures)
            .sum()
    }

    /// Frames read while serving that are accounted for: answered, dropped (with a reason) or
    /// abandoned requests, and ARP requests answered. Equals `dispatcher.rx_packets` (the
    /// server's accounting identity, printed in the summary and checked by every test).
    pub fn accounted_rx(&self) -> u64 {
        self.responses_sent() + self.total_drops() + self.dispatcher.arp_requests
    }

    /// Packets that reached the port but not the dispatcher, counted: left in the RX queue at
    /// stop, dropped by the device or the kernel (`port.rx_missed`: a full RX ring, or a full
    /// socket receive buffer for `--udp`) and received in error (`port.rx_errors`: for `--udp`,
    /// datagrams larger than a buffer). What a client sent = `dispatcher.rx_packets` + this.
    pub fn drops_before_dispatcher(&self) -> u64 {
        self.dispatcher.rx_left_at_stop + self.port.rx_missed + self.port.rx_errors
    }
}

/// Measured service time above or below the reference by more than this share is warned of.
pub const SERVICE_INFLATION_WARNING: f64 = 0.10;
/// Completions of a type needed before its service time is compared with the reference.
const MIN_SAMPLES_FOR_WARNING: u64 = 10;

/// One type's service time: configured, asked for by the requests, measured.
#[derive(Clone, Debug)]
pub struct ServiceRow {
    /// Type name.
    pub name: String,
    /// Configured mean (`requests[].mean_ns`), if any.
    pub nominal_mean_ns: Option<u64>,
    /// Mean `run_ns` the requests carried.
    pub requested_mean_ns: f64,
    /// Application time per request, as measured by the workers.
    pub measured: StageHistogram,
}

impl ServiceRow {
    /// What the measured time should be: the requests' own `run_ns` for the spin application,
    /// else the configured mean.
    pub fn reference_ns(&self, app: &str) -> Option<f64> {
        if app == "spin" {
            Some(self.requested_mean_ns).filter(|&ns| ns > 0.0)
        } else {
            self.nominal_mean_ns
                .map(|ns| ns as f64)
                .filter(|&ns| ns > 0.0)
        }
    }

    /// measured mean / reference − 1, if there is a reference.
    pub fn inflation(&self, app: &str) -> Option<f64> {
        self.reference_ns(app)
            .map(|reference| self.measured.mean_ns() / reference - 1.0)
    }
}

impl ServerReport {
    /// Every worker's stage histograms merged.
    pub fn worker_stages(&self) -> WorkerStages {
        let slots = self.dispatcher.per_type.len();
        let mut all = WorkerStages::new(slots);
        for worker in &self.workers {
            all.merge(&worker.stages);
        }
        all
    }

    /// The stages of all types, in request order: (name, histogram).
    pub fn stage_rows(&self) -> Vec<(&'static str, StageHistogram)> {
        let workers = self.worker_stages();
        vec![
            (
                "rx_to_enqueue",
                self.dispatcher.stages.rx_to_enqueue.clone(),
            ),
            ("queue_wait", merged(&self.dispatcher.stages.queue_wait)),
            ("handoff", workers.handoff),
            ("service", merged(&workers.service)),
            ("worker_tx", workers.worker_tx),
            ("rx_to_tx", merged(&workers.rx_to_tx)),
        ]
    }

    /// Per type that completed anything: nominal, requested and measured service time.
    pub fn service_rows(&self) -> Vec<ServiceRow> {
        let workers = self.worker_stages();
        self.dispatcher
            .per_type
            .iter()
            .enumerate()
            .filter_map(|(slot, t)| {
                let measured = workers.service.get(slot)?.clone();
                (measured.count() > 0).then(|| ServiceRow {
                    name: t.name.clone(),
                    nominal_mean_ns: self.nominal_mean_ns.get(slot).copied().flatten(),
                    requested_mean_ns: workers.requested_run_ns[slot] as f64
                        / measured.count() as f64,
                    measured,
                })
            })
            .collect()
    }

    /// Share of dispatcher loop iterations that found work (0 without iterations).
    pub fn dispatcher_utilisation(&self) -> f64 {
        let d = &self.dispatcher;
        if d.polls == 0 {
            0.0
        } else {
            d.busy_polls as f64 / d.polls as f64
        }
    }

    /// Dispatcher time spent on work per received packet, ns: an upper bound of its cost per
    /// request (what `psp sim --dispatch-cost-ns` models). `None` before any packet.
    pub fn dispatcher_ns_per_request(&self) -> Option<f64> {
        let d = &self.dispatcher;
        (d.rx_packets > 0).then(|| d.busy_ns as f64 / d.rx_packets as f64)
    }

    /// The workers' CPU time per request served (idle polls included), ns.
    pub fn worker_cpu_ns_per_request(&self) -> Option<f64> {
        let served = self.requests_served();
        (served > 0)
            .then(|| self.workers.iter().map(|w| w.cpu_ns).sum::<u64>() as f64 / served as f64)
    }

    /// Responses per TX burst, over all workers.
    pub fn responses_per_tx_burst(&self) -> Option<f64> {
        let bursts: u64 = self.workers.iter().map(|w| w.tx_bursts).sum();
        (bursts > 0).then(|| self.responses_sent() as f64 / bursts as f64)
    }

    /// Dispatcher thread CPU time per received packet, ns (idle polls included, so an upper
    /// bound at low load; near the true cost when the dispatcher is saturated).
    pub fn dispatcher_cpu_ns_per_request(&self) -> Option<f64> {
        let d = &self.dispatcher;
        (d.rx_packets > 0).then(|| d.cpu_ns as f64 / d.rx_packets as f64)
    }

    /// Start-up warnings, then what the run showed: workers that could not be pinned, and
    /// types whose measured service time is off its reference by more than
    /// [`SERVICE_INFLATION_WARNING`].
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.startup_warnings.clone();
        for w in self.workers.iter().filter(|w| w.pin_failed) {
            let cpu = w.cpu.map_or_else(|| "-".to_string(), |c| c.to_string());
            warnings.push(format!(
                "worker {} could not be pinned to cpu {cpu}: it ran unpinned",
                w.worker
            ));
        }
        for row in self.service_rows() {
            let (Some(inflation), Some(reference)) =
                (row.inflation(self.app), row.reference_ns(self.app))
            else {
                continue;
            };
            if row.measured.count() >= MIN_SAMPLES_FOR_WARNING
                && inflation.abs() > SERVICE_INFLATION_WARNING
            {
                warnings.push(format!(
                    "type {}: measured service {:.2} µs is {:+.0} % off the {:.2} µs {} \
                     (every load point offers a different load than it says)",
                    row.name,
                    row.measured.mean_ns() / 1e3,
                    100.0 * inflation,
                    reference / 1e3,
                    if self.app == "spin" {
                        "requested"
                    } else {
                        "configured"
                    },
                ));
            }
        }
        warnings
    }
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dispatcher;
        let secs = self.elapsed_ns as f64 / 1e9;
        writeln!(
            f,
            "server: policy {} ran {:.3} s; rx {} packets, served {} requests, sent {} responses",
            self.policy,
            secs,
            d.rx_packets,
            self.requests_served(),
            self.responses_sent()
        )?;
        writeln!(
            f,
            "dispatcher: dispatched {} completed {} | drops: parse {} slab-full {} queue-full {} abandoned {} | arp {} (tx drops {}) | plan updates {}{}",
            d.dispatched,
            d.completed,
            d.parse_drops.total_drops(),
            d.slab_full_drops,
            d.queue_full_drops,
            d.abandoned_at_shutdown,
            d.arp_replies,
            d.arp_tx_drops,
            d.plan_updates,
            match d.scheduler.darc_plans_kept {
                0 => String::new(),
                kept => format!(" (kept {kept} by rounding hysteresis)"),
            }
        )?;
        self.fmt_operation(f)?;
        let accounted = self.accounted_rx();
        writeln!(
            f,
            "accounting: rx {} = answered {} + dropped {} + abandoned {} + arp {} ({}) | not read: left in rx queue at stop {}, rx missed {}, rx errors {}",
            d.rx_packets,
            self.responses_sent(),
            self.total_drops() - d.abandoned_at_shutdown,
            d.abandoned_at_shutdown,
            d.arp_requests,
            if accounted == d.rx_packets {
                "balanced".to_string()
            } else {
                format!("UNBALANCED by {}", i128::from(d.rx_packets) - i128::from(accounted))
            },
            d.rx_left_at_stop,
            self.port.rx_missed,
            self.port.rx_errors
        )?;
        if d.in_flight_lost > 0 {
            writeln!(f, "in flight lost (worker panics): {}", d.in_flight_lost)?;
        }
        let anomalies = d.spurious_completions + d.lost_tokens + d.job_ring_full + d.worker_panics;
        if anomalies > 0 {
            writeln!(
                f,
                "anomalies: spurious completions {} lost tokens {} job ring full {} worker panics {}",
                d.spurious_completions, d.lost_tokens, d.job_ring_full, d.worker_panics
            )?;
        }
        for (reason, count) in d.parse_drops.nonzero() {
            writeln!(f, "  parse drop {reason:<20} {count:>12}")?;
        }
        self.fmt_types(f)?;
        self.fmt_workers(f)?;
        writeln!(
            f,
            "port: rx {} tx {} rx missed {} rx errors {} tx errors {}",
            self.port.rx_packets,
            self.port.tx_packets,
            self.port.rx_missed,
            self.port.rx_errors,
            self.port.tx_errors
        )?;
        if let Some(path) = &self.windows_log_path {
            let n = self.windows.as_ref().map_or(0, |w| w.windows().len());
            writeln!(f, "windows log: {} ({n} windows)", path.display())?;
        }
        if let Some(error) = &self.windows_log_error {
            writeln!(f, "windows log NOT written: {error}")?;
        }
        if let Some(t) = &self.telemetry {
            fmt_telemetry(f, t)?;
        }
        self.fmt_timing(f)?;
        for warning in self.warnings() {
            writeln!(f, "WARNING: {warning}")?;
        }
        Ok(())
    }
}

impl ServerReport {
    /// The lines that appear only when something happened: policy switches, the shadow
    /// policy, the model planner's re-plans, preemptions, second-slot dispatches.
    fn fmt_operation(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dispatcher;
        if d.preempt_flags_set > 0 || d.preemptions > 0 {
            let cost = &d.preempt_cost;
            writeln!(
                f,
                "preemption: {} preemptions ({} resumed, {} flags set) | cost flag set → worker free: mean {:.2} µs p50 {:.2} µs p99 {:.2} µs",
                d.preemptions,
                d.resumed,
                d.preempt_flags_set,
                cost.mean_ns() / 1e3,
                cost.quantile_ns(0.5) as f64 / 1e3,
                cost.quantile_ns(0.99) as f64 / 1e3
            )?;
        }
        if d.scheduler.dispatched_behind > 0 {
            writeln!(
                f,
                "worker queues (depth 2): {} of {} dispatches waited in a busy worker's ring",
                d.scheduler.dispatched_behind, d.scheduler.dispatched
            )?;
        }
        if d.policy_switches > 0 {
            writeln!(
                f,
                "control: {} policy switch(es): started as {}, stopped as {}",
                d.policy_switches, self.policy, d.policy_at_stop
            )?;
        }
        if let Some(sh) = &d.shadow {
            let share = |n: u64| 100.0 * n as f64 / sh.decisions.max(1) as f64;
            writeln!(
                f,
                "shadow {}: {} decisions, agreed {:.1} %, same request elsewhere {:.1} %, disagreed {:.1} %, out of sync {} | {} events (dropped {}), its thread's CPU {:.0} ns per decision",
                sh.policy,
                sh.decisions,
                share(sh.agreed),
                share(sh.same_request),
                share(sh.disagreed),
                sh.out_of_sync,
                sh.events,
                sh.events_dropped,
                sh.cpu_ns_per_decision()
            )?;
        }
        let replans = self.dispatcher.scheduler.darc_model_replans;
        if replans > 0 {
            writeln!(
                f,
                "model planner: {replans} re-plans, {:.0} candidates each, {:.1} µs mean, {:.1} µs max per re-plan (dispatcher step)",
                self.dispatcher.scheduler.darc_model_candidates as f64 / replans as f64,
                d.model_replan_ns_total as f64 / replans as f64 / 1e3,
                d.model_replan_ns_max as f64 / 1e3
            )?;
        }
        Ok(())
    }
}

impl ServerReport {
    /// The per-type table (UNKNOWN only when something unknown arrived).
    fn fmt_types(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dispatcher;
        writeln!(
            f,
            "{:<14} {:>8} {:>12} {:>10} {:>12} {:>12} {:>10} {:>10} {:>14}",
            "type",
            "wire id",
            "arrivals",
            "rejected",
            "dispatched",
            "completed",
            "preempted",
            "max depth",
            "mean sojourn"
        )?;
        for t in &d.per_type {
            if t.wire_id.is_none() && t.arrivals == 0 {
                continue; // UNKNOWN row only when something unknown arrived
            }
            let wire = t.wire_id.map_or_else(|| "-".to_string(), |w| w.to_string());
            writeln!(
                f,
                "{:<14} {:>8} {:>12} {:>10} {:>12} {:>12} {:>10} {:>10} {:>11.1} µs",
                t.name,
                wire,
                t.arrivals,
                t.rejected,
                t.dispatched,
                t.completed,
                t.preempted,
                t.queue_depth_hwm,
                t.mean_sojourn_ns() / 1e3
            )?;
        }
        Ok(())
    }

    /// The per-worker table.
    fn fmt_workers(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:>5} {:>12} {:>8} {:>12} {:>10} {:>10}",
            "worker", "cpu", "requests", "busy %", "tx packets", "tx drops", "mean busy"
        )?;
        for w in &self.workers {
            let cpu = match (w.cpu, w.pin_failed) {
                (Some(c), false) => c.to_string(),
                (Some(c), true) => format!("{c}!"),
                (None, _) => "-".to_string(),
            };
            let busy_pct = if self.elapsed_ns == 0 {
                0.0
            } else {
                100.0 * w.busy_ns as f64 / self.elapsed_ns as f64
            };
            let mean_busy_us = if w.requests == 0 {
                0.0
            } else {
                w.busy_ns as f64 / w.requests as f64 / 1e3
            };
            writeln!(
                f,
                "{:<8} {:>5} {:>12} {:>7.1}% {:>12} {:>10} {:>7.2} µs",
                w.worker, cpu, w.requests, busy_pct, w.tx_packets, w.tx_dropped, mean_busy_us
            )?;
        }
        Ok(())
    }
}

fn fmt_telemetry(f: &mut fmt::Formatter<'_>, t: &TelemetryReport) -> fmt::Result {
    write!(
        f,
        "telemetry: {} windows of {} ms ({} dropped, writer behind)",
        t.windows,
        t.interval_ns as f64 / 1e6,
        t.windows_dropped
    )?;
    if let Some(file) = &t.file {
        write!(f, ", {} lines in {}", t.lines_written, file.display())?;
    }
    if t.lines_not_written > 0 {
        write!(f, ", {} lines not written", t.lines_not_written)?;
    }
    writeln!(f)?;
    if let Some(error) = &t.file_error {
        writeln!(f, "telemetry file NOT written: {error}")?;
    }
    if let Some(socket) = &t.control_socket {
        writeln!(
            f,
            "control socket {}: {} client(s) ({} refused), {} command(s), {} error(s), {} lines dropped to slow clients",
            socket.display(),
            t.clients,
            t.clients_refused,
            t.commands,
            t.command_errors,
            t.lines_dropped_to_clients
        )?;
    }
    Ok(())
}

fn us(ns: f64) -> f64 {
    ns / 1e3
}

impl ServerReport {
    /// The dispatcher loop line, the stage table and the per-type service table.
    fn fmt_timing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dispatcher;
        let per_request = self
            .dispatcher_ns_per_request()
            .map_or_else(|| "-".to_string(), |ns| format!("{ns:.0} ns"));
        writeln!(
            f,
            "dispatcher loop: {} polls, {:.1} % found work, busy {:.1} ms, {per_request} busy per request, CPU {:.1} ms",
            d.polls,
            100.0 * self.dispatcher_utilisation(),
            d.busy_ns as f64 / 1e6,
            d.cpu_ns as f64 / 1e6
        )?;
        writeln!(
            f,
            "{:<14} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "stage", "count", "mean us", "p50 us", "p99 us", "p99.9 us"
        )?;
        for (name, h) in self.stage_rows() {
            writeln!(
                f,
                "{name:<14} {:>12} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                h.count(),
                us(h.mean_ns()),
                us(h.quantile_ns(0.5) as f64),
                us(h.quantile_ns(0.99) as f64),
                us(h.quantile_ns(0.999) as f64)
            )?;
        }
        writeln!(
            f,
            "{:<14} {:>10} {:>12} {:>10} {:>10} {:>10} {:>8}",
            "service", "nominal us", "requested us", "mean us", "p50 us", "p99 us", "off %"
        )?;
        for row in self.service_rows() {
            let nominal = row
                .nominal_mean_ns
                .map_or_else(|| "-".to_string(), |ns| format!("{:.2}", us(ns as f64)));
            let off = row
                .inflation(self.app)
                .map_or_else(|| "-".to_string(), |x| format!("{:+.1}", 100.0 * x));
            writeln!(
                f,
                "{:<14} {nominal:>10} {:>12.2} {:>10.2} {:>10.2} {:>10.2} {off:>8}",
                row.name,
                us(row.requested_mean_ns),
                us(row.measured.mean_ns()),
                us(row.measured.quantile_ns(0.5) as f64),
                us(row.measured.quantile_ns(0.99) as f64)
            )?;
        }
        Ok(())
    }
}
