//! # Telemetry: one JSON line per window of a running server, and the control socket
//!
//! Every [`TelemetryOptions::interval`] the dispatcher closes a *window* and emits one
//! [`TelemetryLine`]: per request type the arrivals, completions, drops by reason, service time
//! p50/p99 and the deepest queue of the window; per worker its busy share; the dispatcher's
//! utilisation; and the current DARC plan. Lines go to `log_dir/<label>/server/telemetry.jsonl`
//! and to every client of the control socket ([`control`]), which also takes JSON commands.
//!
//! ## Who does what (and why the dispatcher stays fast)
//! - **Dispatcher** ([`window::WindowRecorder`]): per request it only records the service time
//!   of each completion into the window's per-type histogram (the worker measured it and sent it
//!   in its completion notice, on the ring that already carries that notice) and keeps the
//!   window's deepest queue per type. Arrivals, completions and drops are differences of the
//!   dispatcher's cumulative counters, taken once per window. Closing a window swaps the live
//!   histograms with those of a preallocated snapshot taken from a lock-free pool and pushes
//!   the snapshot on a lock-free queue: nothing allocates, locks or logs, ever. When the pool is
//!   empty (the writer is behind), the window is dropped and counted.
//! - **Workers** publish their cumulative busy time and the start of the job they hold in two
//!   atomics on their own cache line ([`WorkerBusy`]), read by the dispatcher once per window.
//! - **Writer thread** ([`writer`]): computes the quantiles, renders the line, appends it to the
//!   file, hands it to the control clients (a client whose queue is full misses the line,
//!   counted) and returns the snapshot to the pool.
//! - **Control threads** ([`control`]): accept clients on the Unix socket, stream the lines,
//!   answer commands. A `stop` command sets the same flag as SIGINT; the dispatcher reads it
//!   once per loop iteration.
//!
//! ## Invariants
//! Summed over all windows of a run (the last one is closed after the drain), per type the
//! arrivals, completions and drops equal the server report's totals. Tested in
//! `server/tests.rs` (`telemetry_windows_add_up_to_the_report`, control socket tests) and end
//! to end in `tests/control_udp.rs`; the cost is measured by `benches/telemetry.rs` (the
//! dispatcher's share alone) and `benches/dispatcher_loop.rs` (a whole server, off and on).

pub(crate) mod control;
pub(crate) mod histogram;
pub(crate) mod mailbox;
pub(crate) mod window;
pub(crate) mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use psp_scheduler::ReservationPlan;
use serde::{Deserialize, Serialize};

use super::ServerError;

pub use control::{MAX_COMMAND_BYTES, MAX_CONTROL_CLIENTS};
pub use mailbox::CONTROL_REPLY_TIMEOUT;

/// Default window length: 100 ms (issue #14).
pub const DEFAULT_TELEMETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Snapshots in the pool between the dispatcher and the writer: the writer may fall this many
/// windows behind before windows are dropped.
pub const TELEMETRY_POOL_WINDOWS: usize = 8;

/// Upper bound on one per-window service histogram (0 – 100 s at 1 %, `u32` counts: 3 899
/// counters). Checked against the real size in the tests.
pub const SERVICE_HISTOGRAM_BYTES: u64 = 16 * 1024;

/// Upper bound on what telemetry allocates for `types` request types: the live window and the
/// pool's snapshots, one service histogram per type slot each (the rest is small).
pub fn telemetry_memory_bytes(types: usize) -> u64 {
    ((TELEMETRY_POOL_WINDOWS + 1) * (types + 1)) as u64 * SERVICE_HISTOGRAM_BYTES
}

/// The file name of the telemetry log beside the windows log.
pub const TELEMETRY_FILE: &str = "telemetry.jsonl";

/// Most bytes written to the telemetry file; later lines are counted, not written (a server
/// left running for weeks must not fill the disk).
pub const MAX_TELEMETRY_FILE_BYTES: u64 = 1 << 30;

/// The `kind` of a telemetry line (replies to commands carry `ok` instead).
pub const WINDOW_KIND: &str = "window";

/// What telemetry a server produces and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryOptions {
    /// Window length.
    pub interval: Duration,
    /// The JSON-lines file, if any.
    pub file: Option<PathBuf>,
    /// The control socket (`psp.control.socket`), if any.
    pub control_socket: Option<PathBuf>,
}

impl TelemetryOptions {
    /// Windows of [`DEFAULT_TELEMETRY_INTERVAL`], no file, no socket.
    pub fn new() -> Self {
        Self {
            interval: DEFAULT_TELEMETRY_INTERVAL,
            file: None,
            control_socket: None,
        }
    }
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One worker's busy time as it publishes it (single writer: the worker; reader: the
/// dispatcher, once per window).
#[derive(Debug, Default)]
pub(crate) struct WorkerBusy {
    /// When the job it holds started (its clock), 0 when idle.
    started_ns: AtomicU64,
    /// Busy time of every job it finished.
    busy_ns: AtomicU64,
}

/// The busy slots of all workers, one cache line each.
pub(crate) type WorkerBusySlots = [CachePadded<WorkerBusy>];

impl WorkerBusy {
    /// The worker starts a job at `now_ns` (never 0 in practice: the clock starts before).
    #[inline]
    pub(crate) fn start(&self, now_ns: u64) {
        self.started_ns.store(now_ns.max(1), Ordering::Release);
    }

    /// The worker finished the job it started, having been busy `busy_ns`.
    #[inline]
    pub(crate) fn finish(&self, busy_ns: u64) {
        let total = self.busy_ns.load(Ordering::Relaxed).saturating_add(busy_ns);
        // Total first, then idle: a reader that sees the job still running sees the old total.
        self.busy_ns.store(total, Ordering::Release);
        self.started_ns.store(0, Ordering::Release);
    }

    /// Busy time up to `now_ns`, the running job included. A read that races with a job's
    /// start or end is retried; after a few tries the finished jobs alone are counted (the
    /// next window makes up for it).
    pub(crate) fn busy_until(&self, now_ns: u64) -> u64 {
        for _ in 0..4 {
            let started = self.started_ns.load(Ordering::Acquire);
            let total = self.busy_ns.load(Ordering::Acquire);
            if self.started_ns.load(Ordering::Acquire) == started {
                let running = if started == 0 {
                    0
                } else {
                    now_ns.saturating_sub(started)
                };
                return total.saturating_add(running);
            }
        }
        self.busy_ns.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerBusy;

    #[test]
    fn the_histogram_bound_holds() {
        let counters = super::histogram::SERVICE_COUNTERS as u64;
        assert_eq!(counters, 3_899, "the count the docs give");
        assert!(counters * 4 <= super::SERVICE_HISTOGRAM_BYTES);
    }

    #[test]
    fn busy_time_counts_finished_jobs_and_the_running_one() {
        let busy = WorkerBusy::default();
        assert_eq!(busy.busy_until(1_000), 0);
        busy.start(100);
        assert_eq!(busy.busy_until(150), 50, "the running job so far");
        busy.finish(70);
        assert_eq!(busy.busy_until(10_000), 70, "idle: finished jobs only");
        busy.start(20_000);
        assert_eq!(busy.busy_until(20_005), 75);
        assert_eq!(
            busy.busy_until(10),
            70,
            "a reader behind the worker's clock adds nothing"
        );
    }
}

/// One line of `telemetry.jsonl` and of the control socket's stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryLine {
    /// Always [`WINDOW_KIND`].
    pub kind: String,
    /// Window number, from 0.
    pub window: u64,
    /// Window start, ns since the server started.
    pub start_ns: u64,
    /// Window end, ns since the server started.
    pub end_ns: u64,
    /// Window end on the wall clock, ms since the Unix epoch (to line windows up with other
    /// logs, e.g. a client's phases: `psp plans --client`); 0 in lines of older servers.
    #[serde(default)]
    pub end_unix_ms: u64,
    /// The live policy.
    pub policy: String,
    /// Per request type, in registration order, then `UNKNOWN`.
    pub types: Vec<TypeLine>,
    /// Frames refused by the parser in the window, by reason (non-zero reasons only).
    pub parse_drops: BTreeMap<String, u64>,
    /// Per worker.
    pub workers: Vec<WorkerLine>,
    /// The dispatcher loop.
    pub dispatcher: DispatcherLine,
    /// The current DARC plan (`null` for other policies, and before DARC's first plan).
    pub plan: Option<PlanView>,
    /// Windows dropped so far because the writer was behind.
    pub windows_dropped: u64,
    /// Plans DARC applied in the window (the plan above is the last; a plan can be applied
    /// with the same reservation as the one before).
    #[serde(default)]
    pub plan_updates: u64,
    /// Re-plans DARC kept by `psp.darc.rounding_hysteresis` in the window.
    #[serde(default)]
    pub plans_kept: u64,
    /// The shadow policy in the window (`psp.shadow`; absent when none runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowLine>,
}

/// The shadow policy's window: how often it agreed with the live decisions, and its cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShadowLine {
    /// The shadow's policy.
    pub policy: String,
    /// Live decisions it was compared on.
    pub decisions: u64,
    /// Same request on the same worker.
    pub agreed: u64,
    /// Same request, another worker.
    pub same_request: u64,
    /// Another request.
    pub disagreed: u64,
    /// Decisions it could not follow.
    pub out_of_sync: u64,
    /// `agreed / decisions` (0 when none).
    pub agreed_share: f64,
    /// Events the dispatcher dropped because the shadow thread was behind.
    pub events_dropped: u64,
    /// The shadow thread's CPU time per decision in the window (ns).
    pub cpu_ns_per_decision: f64,
}

impl TelemetryLine {
    /// Window length in seconds (at least 1 ns, so rates stay finite).
    pub fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns).max(1) as f64 / 1e9
    }
}

/// One type's figures in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeLine {
    /// Type name.
    pub name: String,
    /// Requests of this type that arrived (classified) in the window.
    pub arrivals: u64,
    /// Completions in the window.
    pub completions: u64,
    /// Drops in the window, by reason.
    pub drops: TypeDrops,
    /// Service times recorded in the window (completions whose worker measured them).
    pub service_count: u64,
    /// Median service time in the window, ns (0 when none), to 1 %.
    pub service_p50_ns: u64,
    /// 99th percentile service time in the window, ns (0 when none), to 1 %.
    pub service_p99_ns: u64,
    /// Deepest queue of this type in the window (its depth at the window's start included).
    pub max_queue_depth: u64,
    /// Slices of this type preempted in the window (`ts`, `darc-ts`; absent from lines of
    /// servers before it was added: 0).
    #[serde(default)]
    pub preempted: u64,
}

/// A type's drops in one window, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDrops {
    /// The type's queue was full.
    pub queue_full: u64,
    /// The dispatcher's pending slab was full.
    pub slab_full: u64,
}

/// One worker's figures in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerLine {
    /// Worker index.
    pub worker: usize,
    /// Share of the window it spent running requests (0..=1).
    pub busy_share: f64,
}

/// The dispatcher loop in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatcherLine {
    /// Loop iterations.
    pub polls: u64,
    /// Iterations that found work.
    pub busy_polls: u64,
    /// `busy_polls / polls` (0 when no poll).
    pub utilisation: f64,
    /// Share of the window's wall time spent in iterations that found work (0..=1).
    pub busy_share: f64,
}

/// DARC's plan as telemetry shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// Groups, shortest first.
    pub groups: Vec<PlanGroupView>,
    /// The spillway worker.
    pub spillway: Option<u16>,
}

/// One group of a [`PlanView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanGroupView {
    /// Member type names, shortest first.
    pub types: Vec<String>,
    /// Workers reserved to the group.
    pub reserved: Vec<u16>,
    /// Workers the group may steal.
    pub stealable: Vec<u16>,
}

impl PlanView {
    /// The view of `plan`, with type names from `names` (by dense type index).
    pub fn new(plan: &ReservationPlan, names: &[String]) -> Self {
        let name = |t: &psp_scheduler::TypeIndex| {
            t.index()
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_else(|| "UNKNOWN".to_string())
        };
        Self {
            groups: plan
                .groups
                .iter()
                .map(|g| PlanGroupView {
                    types: g.members.iter().map(name).collect(),
                    reserved: g.reserved.iter().map(|w| w.0).collect(),
                    stealable: g.stealable.iter().map(|w| w.0).collect(),
                })
                .collect(),
            spillway: plan.spillway.map(|w| w.0),
        }
    }
}

/// What telemetry did in a run (part of the server report).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TelemetryReport {
    /// Window length, ns.
    pub interval_ns: u64,
    /// Windows the dispatcher closed and handed to the writer.
    pub windows: u64,
    /// Windows dropped because the writer was behind (no free snapshot).
    pub windows_dropped: u64,
    /// Lines written to the file.
    pub lines_written: u64,
    /// Lines not written because the file reached [`MAX_TELEMETRY_FILE_BYTES`] or failed.
    pub lines_not_written: u64,
    /// The file, if one was written.
    pub file: Option<PathBuf>,
    /// Why the file could not be written, if it could not.
    pub file_error: Option<String>,
    /// The control socket, if one was served.
    pub control_socket: Option<PathBuf>,
    /// Control clients that connected.
    pub clients: u64,
    /// Clients refused because [`MAX_CONTROL_CLIENTS`] were connected.
    pub clients_refused: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands answered with an error.
    pub command_errors: u64,
    /// Lines a client missed because its queue was full.
    pub lines_dropped_to_clients: u64,
}

/// Telemetry's threads and shared state during a run.
pub(crate) struct TelemetryRun {
    interval_ns: u64,
    type_names: Vec<String>,
    busy: Arc<WorkerBusySlots>,
    pool: Arc<window::SnapshotPool>,
    hub: Arc<writer::Hub>,
    writer: writer::Writer,
    control: Option<control::Control>,
    control_socket: Option<PathBuf>,
}

impl TelemetryRun {
    /// Binds the control socket (if any) and starts the writer and control threads.
    pub(crate) fn start(
        options: &TelemetryOptions,
        scheduler: &psp_scheduler::Scheduler,
        shutdown: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Self, ServerError> {
        let interval_ns = u64::try_from(options.interval.as_nanos()).unwrap_or(u64::MAX);
        let listener = options
            .control_socket
            .as_deref()
            .map(control::bind)
            .transpose()?;
        let type_names: Vec<String> = scheduler.types().iter().map(|t| t.name.clone()).collect();
        let mut slot_names = type_names.clone();
        slot_names.push("UNKNOWN".to_string());
        let workers = scheduler.workers();
        let busy: Arc<WorkerBusySlots> = (0..workers)
            .map(|_| CachePadded::new(WorkerBusy::default()))
            .collect();
        let pool = Arc::new(window::SnapshotPool::new(slot_names.len(), workers));
        let hub = Arc::new(writer::Hub::default());
        let thread_error = |name: &'static str| move |source| ServerError::Thread { name, source };
        let writer = writer::Writer::spawn(
            writer::WriterSetup {
                policy: scheduler.policy().name(),
                slot_names,
                file: options.file.clone(),
            },
            Arc::clone(&pool),
            Arc::clone(&hub),
        )
        .map_err(thread_error("telemetry writer"))?;
        let control = match (listener, &options.control_socket) {
            (Some(listener), Some(path)) => {
                match control::Control::spawn(listener, path.clone(), Arc::clone(&hub), shutdown) {
                    Ok(control) => Some(control),
                    Err(source) => {
                        writer.finish();
                        let _ = std::fs::remove_file(path);
                        return Err(ServerError::Thread {
                            name: "control socket",
                            source,
                        });
                    }
                }
            }
            _ => None,
        };
        Ok(Self {
            interval_ns,
            type_names,
            busy,
            pool,
            hub,
            writer,
            control,
            control_socket: options.control_socket.clone(),
        })
    }

    /// The workers' busy slots.
    pub(crate) fn busy_slots(&self) -> Arc<WorkerBusySlots> {
        Arc::clone(&self.busy)
    }

    /// The dispatcher's recorder, its first window starting at `now_ns` (a reading of the
    /// server's clock, taken now: it anchors the lines' wall-clock times).
    pub(crate) fn recorder(&self, now_ns: u64) -> window::WindowRecorder {
        self.hub.set_clock_origin(now_ns);
        window::WindowRecorder::new(
            self.interval_ns,
            now_ns,
            self.type_names.clone(),
            Arc::clone(&self.busy),
            Arc::clone(&self.pool),
            self.writer.thread(),
        )
    }

    /// The hub the control threads post dispatcher commands to.
    pub(crate) fn hub(&self) -> Arc<writer::Hub> {
        Arc::clone(&self.hub)
    }

    /// Writes the last lines, disconnects the clients, removes the socket; `counts` are the
    /// dispatcher's (none if it never ran).
    pub(crate) fn finish(self, counts: Option<window::RecorderCounts>) -> TelemetryReport {
        let written = self.writer.finish();
        if let Some(control) = self.control {
            control.finish();
        }
        let counts = counts.unwrap_or_default();
        let hub = &self.hub.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TelemetryReport {
            interval_ns: self.interval_ns,
            windows: counts.windows,
            windows_dropped: counts.windows_dropped,
            lines_written: written.lines_written,
            lines_not_written: written.lines_not_written,
            file: written.file,
            file_error: written.file_error,
            control_socket: self.control_socket,
            clients: load(&hub.clients),
            clients_refused: load(&hub.clients_refused),
            commands: load(&hub.commands),
            command_errors: load(&hub.command_errors),
            lines_dropped_to_clients: load(&hub.lines_dropped_to_clients),
        }
    }
}

/// Telemetry's dispatcher-side work driven alone, for `benches/telemetry.rs` (which measures
/// it per request without the noise of a whole server on a shared machine). Not an API.
#[doc(hidden)]
pub mod bench {
    use std::sync::Arc;

    use crossbeam_utils::CachePadded;
    use psp_scheduler::{Policy, RequestTypeSpec, Scheduler, SchedulerConfig};

    use super::window::{SnapshotPool, WindowRecorder};
    use super::WorkerBusy;
    use crate::server::report::{DispatcherReport, TypeReport};
    use crate::wire::DropCounters;

    /// A recorder with `types` types and `workers` workers, and the counters it reads.
    pub struct RecorderBench {
        recorder: WindowRecorder,
        pool: Arc<SnapshotPool>,
        report: DispatcherReport,
        drops: DropCounters,
        scheduler: Scheduler,
    }

    impl RecorderBench {
        /// A fresh recorder (windows of `interval_ns`).
        pub fn new(types: usize, workers: usize, interval_ns: u64) -> Self {
            let specs: Vec<RequestTypeSpec> = (0..types)
                .map(|t| RequestTypeSpec::new(format!("T{t}"), t as u32 + 1))
                .collect();
            let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
            let scheduler = Scheduler::new(SchedulerConfig::new(workers, specs, Policy::Cfcfs))
                .expect("valid bench scheduler");
            let busy: Arc<super::WorkerBusySlots> = (0..workers)
                .map(|_| CachePadded::new(WorkerBusy::default()))
                .collect();
            let pool = Arc::new(SnapshotPool::new(types + 1, workers));
            let mut per_type: Vec<TypeReport> =
                names.iter().map(|n| TypeReport::new(n, None)).collect();
            per_type.push(TypeReport::new("UNKNOWN", None));
            Self {
                recorder: WindowRecorder::new(
                    interval_ns,
                    0,
                    names,
                    busy,
                    Arc::clone(&pool),
                    std::thread::current(),
                ),
                pool,
                report: DispatcherReport {
                    per_type,
                    ..DispatcherReport::default()
                },
                drops: DropCounters::new(),
                scheduler,
            }
        }

        /// What the dispatcher adds per request: the loop's window check, the arrival's queue
        /// depth and the completion's service time. Returns whether the window is due.
        #[inline]
        pub fn on_request(
            &mut self,
            now_ns: u64,
            slot: usize,
            depth: u64,
            service_ns: u64,
        ) -> bool {
            self.recorder.on_depth(slot, depth);
            self.recorder.on_service(slot, service_ns);
            self.recorder.due(now_ns)
        }

        /// Closes the window at `now_ns`.
        pub fn close(&mut self, now_ns: u64) {
            self.recorder
                .close(now_ns, &self.report, &self.drops, &self.scheduler);
        }

        /// The writer's part: renders nothing, returns the closed snapshots to the pool.
        pub fn recycle(&mut self) {
            while let Some(mut snapshot) = self.pool.full.pop() {
                snapshot.recycle();
                let _ = self.pool.free.push(snapshot);
            }
        }
    }
}
