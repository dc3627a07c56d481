//! The server runner: one dispatcher thread and N worker threads over any [`Port`].
//!
//! ## Threads and queues (docs/design.md §3.1–3.2)
//! - The **dispatcher** (the calling thread of [`Server::run`]) owns RX queue 0 and TX queue 0.
//!   Each loop iteration: RX burst → ARP requests answered in place on TX queue 0 → every other
//!   frame parsed ([`crate::wire::parse_request_with`]; a refusal is dropped and counted by
//!   [`crate::wire::DropReason`]) → classified ([`Classifier::classify`] then
//!   [`Scheduler::classify`]) → parked in a preallocated slab of pending buffers and handed to
//!   [`Scheduler::on_arrival`] with the slab index as token (full slab or a rejected arrival →
//!   counted drop; RX never blocks) → every worker's completion ring polled →
//!   [`Scheduler::on_completion`] → `while let Some(d) = next_dispatch(now)` the buffer moves to
//!   worker `d.worker`'s job ring → [`Scheduler::poll_plan_update`] feeds the DARC windows log.
//! - **Worker** `i` owns TX queue `i + 1`. It pops a job, runs the application on the request in
//!   place ([`Application::handle`]), turns the frame into the response in place (addresses
//!   swapped), transmits it on its
//!   own queue (holding it for at most one more job when the next one already waits: TX batching,
//!   [`WORKER_TX_BATCH`]) and sends a completion back on its own ring. At most `worker_queue_depth` jobs
//!   (1, or 2 for JBSQ(2): the next job waits in the ring while the worker runs the current
//!   one) per worker are ever outstanding (the scheduler's rule), so rings of
//!   [`JOB_RING_SLOTS`] never fill.
//! - Under `ts` (live time sharing by cooperative preemption) the dispatcher also times each
//!   worker's slice and, once it has run its quantum while another request waits, sets that
//!   worker's preempt flag (`preempt.rs`); the application stops at its next check and the
//!   worker sends the job back instead of a response; the dispatcher parks it again under its
//!   token and [`Scheduler::on_preempted`] re-queues it at its type's tail (see `dispatcher.rs`).
//! - With [`ServerOptions::telemetry`], the dispatcher closes a window every interval and hands
//!   it, through a lock-free snapshot pool, to a writer thread (JSON lines to a file and to the
//!   control socket's clients; socket threads take commands): see [`telemetry`].
//! - Each thread polls; when a poll finds nothing it follows the [`IdleStrategy`].
//! - Time is a monotonic ns clock ([`Clock`]: the TSC where invariant, zero at start) passed to the
//!   scheduler.
//!
//! ## Shutdown
//! When the shutdown flag is set, the dispatcher stops serving RX (what is left in the RX queue
//! is read, freed and counted as `rx_left_at_stop`), keeps dispatching until every queued and
//! in-flight request has completed or [`ServerOptions::drain_timeout`] passed (what is still
//! queued then is counted as abandoned; what is in flight is finished by its worker and counted
//! as completed, never both), then tells the workers to stop, joins them (a worker whose TX
//! queue takes nothing stops anyway, its unsent responses counted as `tx_dropped`), counts the
//! last completions, writes the windows log and returns the [`ServerReport`], whose
//! accounting identity (`rx = answered + dropped + abandoned + arp`) every test checks.
//!
//! ## Hot path
//! From RX to TX, nothing allocates (buffers come from the port's pool, queues and the slab are
//! preallocated), nothing locks and nothing logs: every event is a counter.
//!
//! ## Tests
//! `tests` below run whole servers over the in-memory port pair with a test thread as client:
//! addressing of every response, per-type counts, malformed traffic, queue-full drops, every
//! live policy, and drain on shutdown. `tests/step.rs` drives the dispatcher alone, one step
//! at a time on chosen times (the dispatcher's `step_receive` and `step_dispatch`, the body of
//! its loop), with the test as client and workers: deterministic, no threads.

mod affinity;
mod dispatcher;
mod idle;
mod layout;
mod preempt;
mod report;
mod report_json;
mod slab;
pub mod stages;
pub mod telemetry;
mod usage;
mod windows;
mod worker;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use psp_scheduler::{ConfigError, Policy, Scheduler, SchedulerConfig};

use crate::app::{AppFactory, Application, Classifier};
use crate::config::{IdleMode, ServerConfig, MAX_PENDING_SLOTS, MAX_RX_BURST};
use crate::port::Port;
use crate::ring;
use crate::wire::{Endpoint, MacAddr, ParseOptions};

pub use crate::clock::Clock;
pub use affinity::{
    allowed_cpus, pin_current_thread, remember_process_cpus, restrict_current_thread,
};
pub use dispatcher::shadow::bench as shadow_bench;
pub use dispatcher::shadow::{ShadowReport, SHADOW_BATCH_EVENTS, SHADOW_POOL_BATCHES};
pub use idle::{IdleStrategy, IDLE_SLEEP, YIELD_POLLS_BEFORE_SLEEP};
pub use layout::{layout_warnings, startup_warnings};
pub use report::{
    DispatcherReport, ServerReport, ServiceRow, TypeReport, WorkerReport, SERVICE_INFLATION_WARNING,
};
pub use report_json::stage_json;
pub use slab::PendingSlab;
pub use telemetry::{
    ShadowLine, TelemetryLine, TelemetryOptions, TelemetryReport, DEFAULT_TELEMETRY_INTERVAL,
    TELEMETRY_FILE,
};
pub use windows::{WindowRecord, WindowTypeRow, WindowsLog, MAX_WINDOWS, WINDOWS_HEADER};

/// Packets read per RX burst: DPDK's customary burst of 32 (its examples' `MAX_PKT_BURST`),
/// above the original's 8 (net_su.cc) so that bursts drain faster under load.
pub const DEFAULT_RX_BURST: usize = 32;

/// Slots of each dispatcher→worker job ring and worker→dispatcher completion ring. A worker
/// never has more than `worker_queue_depth` (≤ 2) outstanding jobs, so 4 leaves slack without
/// wasting cache lines
/// (the original sized its LRPC rings 4096 for batching it never did).
pub const JOB_RING_SLOTS: usize = 4;

const _: () = assert!(JOB_RING_SLOTS >= psp_scheduler::MAX_WORKER_QUEUE_DEPTH);

/// Pending requests the dispatcher can park by default: the original's per-type queue depth
/// (`RQUEUE_LEN` 4096) times 4, enough for a few full typed queues.
pub const DEFAULT_PENDING_SLOTS: usize = 4 * psp_scheduler::DEFAULT_QUEUE_CAPACITY;

/// How long shutdown waits for queued and in-flight requests to finish.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Responses a worker keeps waiting for TX room before dropping the oldest: the original's
/// per-worker outbound ring of 128 (context.hh).
pub const WORKER_TX_BACKLOG: usize = 128;

/// Responses a worker transmits in one TX burst at most. It transmits after every job whose
/// successor is not already in its ring; with `worker_queue_depth: 2` a response whose
/// successor is waiting is held until that one is answered too, so at 2 a response waits for
/// at most one job (issue #11's bound).
pub const WORKER_TX_BATCH: usize = 2;

/// Shortest live time-sharing quantum: 1 µs, the preempt-check interval of the applications
/// ([`crate::app::PREEMPT_CHECK_NS`]); a shorter one would preempt before a check could see it.
pub const MIN_TS_QUANTUM_NS: u64 = 1_000;
/// Longest live time-sharing quantum: 1 s (longer is no time sharing at all).
pub const MAX_TS_QUANTUM_NS: u64 = 1_000_000_000;

/// What a live `ts` quantum must be.
pub const TS_QUANTUM_RANGE: &str = "must be between 1000 ns (1 µs) and 1000000000 ns (1 s)";

/// Checks a live `ts` quantum; `field` names it in the error.
pub fn check_ts_quantum(field: &'static str, quantum_ns: u64) -> Result<(), ServerError> {
    if (MIN_TS_QUANTUM_NS..=MAX_TS_QUANTUM_NS).contains(&quantum_ns) {
        Ok(())
    } else {
        Err(ServerError::Invalid {
            field,
            value: quantum_ns.to_string(),
            why: TS_QUANTUM_RANGE,
        })
    }
}

impl From<IdleMode> for IdleStrategy {
    fn from(mode: IdleMode) -> Self {
        match mode {
            IdleMode::Spin => IdleStrategy::Spin,
            IdleMode::Yield => IdleStrategy::Yield,
        }
    }
}

/// Runtime options of a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Workers, request types, policy and queue depth.
    pub scheduler: SchedulerConfig,
    /// Our IPv4 address (requests to another IP are dropped when `parse.check_dst_ip`).
    pub ip: Ipv4Addr,
    /// Our MAC for validation and ARP replies; `None`: the port's MAC.
    pub mac: Option<[u8; 6]>,
    /// Our UDP port (requests to another port are dropped).
    pub udp_port: u16,
    /// Which optional header checks run.
    pub parse: ParseOptions,
    /// What idle threads do.
    pub idle: IdleStrategy,
    /// CPU for the dispatcher thread (the calling thread), if pinned.
    pub dispatcher_cpu: Option<usize>,
    /// CPUs for the workers, one per worker, or empty for no pinning.
    pub worker_cpus: Vec<usize>,
    /// Packets per RX burst.
    pub rx_burst: usize,
    /// Requests the dispatcher can hold between RX and dispatch.
    pub pending_slots: usize,
    /// How long shutdown waits for queued and in-flight requests.
    pub drain_timeout: Duration,
    /// Where to write DARC's windows log (`<log_dir>/<label>/server/windows`), if anywhere.
    pub windows_log: Option<PathBuf>,
    /// Telemetry windows and the control socket, if they run.
    pub telemetry: Option<TelemetryOptions>,
    /// A shadow policy run beside the live one (`psp.shadow`), if any.
    pub shadow: Option<Policy>,
}

impl ServerOptions {
    /// Options with defaults for everything but the scheduler and our address.
    pub fn new(scheduler: SchedulerConfig, ip: Ipv4Addr, udp_port: u16) -> Self {
        Self {
            scheduler,
            ip,
            mac: None,
            udp_port,
            parse: ParseOptions::default(),
            idle: IdleStrategy::default(),
            dispatcher_cpu: None,
            worker_cpus: Vec::new(),
            rx_burst: DEFAULT_RX_BURST,
            pending_slots: DEFAULT_PENDING_SLOTS,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            windows_log: None,
            telemetry: None,
            shadow: None,
        }
    }

    /// The runtime options a validated server YAML asks for. `label` names the run's log
    /// directory (`<log_dir>/<label>/server/windows`, written only if `log_dir` is set).
    pub fn from_config(config: &ServerConfig, label: &str) -> Self {
        let mut options = Self::new(config.scheduler.clone(), config.local.ip, config.local.port);
        options.mac = Some(config.local.mac.0);
        options.parse = config.parse;
        options.idle = config.idle.into();
        options.dispatcher_cpu = Some(config.dispatcher_cpu);
        options.worker_cpus = config.worker_cpus.clone();
        if let Some(rx_burst) = config.rx_burst {
            options.rx_burst = rx_burst;
        }
        if let Some(pending_slots) = config.pending_slots {
            options.pending_slots = pending_slots;
        }
        if let Some(drain_timeout) = config.drain_timeout {
            options.drain_timeout = drain_timeout;
        }
        options.shadow.clone_from(&config.shadow);
        options.windows_log = config
            .log_dir
            .as_ref()
            .map(|dir| Self::windows_log_path(dir, label));
        // Telemetry runs when it has somewhere to go: the log directory or the control socket.
        let file = options.windows_log.as_ref().map(|windows| {
            let mut path = windows.clone();
            path.set_file_name(TELEMETRY_FILE);
            path
        });
        if file.is_some() || config.control_socket.is_some() {
            options.telemetry = Some(TelemetryOptions {
                interval: config
                    .telemetry_interval
                    .unwrap_or(DEFAULT_TELEMETRY_INTERVAL),
                file,
                control_socket: config.control_socket.clone(),
            });
        }
        options
    }

    /// The original's windows log path: `<log_dir>/<label>/server/windows`.
    pub fn windows_log_path(log_dir: impl Into<PathBuf>, label: &str) -> PathBuf {
        let mut path = log_dir.into();
        path.push(label);
        path.push("server");
        path.push("windows");
        path
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The scheduler configuration is invalid.
    #[error("scheduler configuration: {0}")]
    Scheduler(#[from] ConfigError),
    /// The policy cannot run live.
    #[error("policy {0} is simulator-only")]
    NotLive(&'static str),
    /// The policy preempts and the application cannot be preempted.
    #[error("policy {policy} preempts requests, and application {app} does not support preemption (use spin or kv)")]
    NotPreemptible {
        /// The policy.
        policy: &'static str,
        /// The application.
        app: &'static str,
    },
    /// The port lacks a queue the server needs.
    #[error("port has {rx} RX / {tx} TX queues; {workers} workers need 1 RX and {needed} TX queues (dispatcher + one per worker)")]
    Queues {
        /// RX queues of the port.
        rx: u16,
        /// TX queues of the port.
        tx: u16,
        /// Workers configured.
        workers: usize,
        /// TX queues needed.
        needed: usize,
    },
    /// A queue was already taken.
    #[error("port queue {direction} {queue} is unavailable (already taken?)")]
    QueueTaken {
        /// `rx` or `tx`.
        direction: &'static str,
        /// The queue index.
        queue: u16,
    },
    /// The number of applications differs from the number of workers.
    #[error("{apps} applications given for {workers} workers")]
    Apps {
        /// Applications given.
        apps: usize,
        /// Workers configured.
        workers: usize,
    },
    /// `worker_cpus` is neither empty nor one per worker.
    #[error("worker_cpus lists {cpus} cpus for {workers} workers (give one per worker, or none)")]
    WorkerCpus {
        /// CPUs listed.
        cpus: usize,
        /// Workers configured.
        workers: usize,
    },
    /// A field is out of range.
    #[error("{field} = {value}: {why}")]
    Invalid {
        /// Option name.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Pinning the dispatcher failed.
    #[error("pinning the dispatcher to cpu {cpu}: {source}")]
    Affinity {
        /// The CPU.
        cpu: usize,
        /// The OS error.
        source: std::io::Error,
    },
    /// The control socket cannot be served at this path.
    #[error("psp.control.socket = {path}: {why}")]
    ControlSocket {
        /// The socket path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A telemetry or control thread could not be spawned.
    #[error("spawning the {name} thread: {source}")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker thread could not be spawned.
    #[error("spawning worker {worker}: {source}")]
    Spawn {
        /// The worker index.
        worker: usize,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `ts` and `darc-ts` preempt: their applications must support preemption.
fn check_app<A: Application>(policy: &Policy, app: &A) -> Result<(), ServerError> {
    if policy.preempts() && !app.supports_preemption() {
        return Err(ServerError::NotPreemptible {
            policy: policy.name(),
            app: app.name(),
        });
    }
    Ok(())
}

/// A configured server, ready to [`run`](Server::run) on a port.
#[derive(Debug)]
pub struct Server {
    options: ServerOptions,
    scheduler: Scheduler,
    /// The shadow policy's scheduler (`psp.shadow`).
    shadow: Option<Scheduler>,
    /// Layout warnings, computed when the server is built: before a device library (DPDK's
    /// EAL) narrows the calling thread's CPU set.
    startup_warnings: Vec<String>,
}

impl Server {
    /// Validates the options and builds the scheduler.
    pub fn new(options: ServerOptions) -> Result<Self, ServerError> {
        if !options.scheduler.policy.is_live() {
            return Err(ServerError::NotLive(options.scheduler.policy.name()));
        }
        if let Some(ts) = options.scheduler.policy.time_sharing() {
            check_ts_quantum("ts.quantum_ns", ts.quantum_ns)?;
        }
        let workers = options.scheduler.workers;
        if !options.worker_cpus.is_empty() && options.worker_cpus.len() != workers {
            return Err(ServerError::WorkerCpus {
                cpus: options.worker_cpus.len(),
                workers,
            });
        }
        if options.rx_burst == 0 || options.rx_burst > MAX_RX_BURST {
            return Err(ServerError::Invalid {
                field: "rx_burst",
                value: options.rx_burst.to_string(),
                why: "must be between 1 and MAX_RX_BURST (4096)",
            });
        }
        if options.pending_slots == 0 || options.pending_slots > MAX_PENDING_SLOTS {
            return Err(ServerError::Invalid {
                field: "pending_slots",
                value: options.pending_slots.to_string(),
                why: "must be between 1 and MAX_PENDING_SLOTS (2^22)",
            });
        }
        if let Some(telemetry) = &options.telemetry {
            if telemetry.interval.is_zero() {
                return Err(ServerError::Invalid {
                    field: "telemetry.interval",
                    value: format!("{:?}", telemetry.interval),
                    why: "must be at least 1 ms",
                });
            }
        }
        let scheduler = Scheduler::new(options.scheduler.clone())?;
        let shadow = options
            .shadow
            .as_ref()
            .map(|policy| Self::shadow_scheduler(&options.scheduler, policy))
            .transpose()?;
        let startup_warnings = startup_warnings(&options);
        Ok(Self {
            options,
            scheduler,
            shadow,
            startup_warnings,
        })
    }

    /// The shadow's scheduler: the live one's workers and types under `policy`. Preemptive
    /// policies are not mirrored, live or shadow.
    fn shadow_scheduler(live: &SchedulerConfig, policy: &Policy) -> Result<Scheduler, ServerError> {
        if policy.preempts() || live.policy.preempts() {
            return Err(ServerError::Invalid {
                field: "shadow",
                value: format!("{} beside {}", policy.name(), live.policy.name()),
                why: "a preemptive policy (ts, darc-ts) cannot run as a shadow or beside one \
                      (its slices are not mirrored)",
            });
        }
        let mut config = live.clone();
        config.policy = policy.clone();
        Ok(Scheduler::new(config)?)
    }

    /// The options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// What is wrong with the thread layout (shared cores, CPUs this process may not use, no
    /// core left to the OS); printed at start and kept in the report.
    pub fn startup_warnings(&self) -> &[String] {
        &self.startup_warnings
    }

    /// Whether the policy can run `app` (a preemptive policy needs an application that
    /// supports preemption); [`Server::run`] checks every worker's, this checks one early.
    pub fn check_app<A: Application>(&self, app: &A) -> Result<(), ServerError> {
        check_app(self.scheduler.policy(), app)
    }

    /// [`Server::run`] with one application per worker from `factory` and its classifier.
    pub fn run_with_factory<P: Port>(
        self,
        port: P,
        factory: &AppFactory,
        shutdown: Arc<AtomicBool>,
    ) -> Result<ServerReport, ServerError> {
        let apps = (0..self.scheduler.workers())
            .map(|_| factory.make())
            .collect();
        self.run(port, factory.classifier(), apps, shutdown)
    }

    /// Runs until `shutdown` is set and the drain finishes. The calling thread becomes the
    /// dispatcher and runs `classifier`; `apps[i]` runs on worker `i`.
    pub fn run<P, C, A>(
        self,
        mut port: P,
        classifier: C,
        apps: Vec<A>,
        shutdown: Arc<AtomicBool>,
    ) -> Result<ServerReport, ServerError>
    where
        P: Port,
        C: Classifier,
        A: Application,
    {
        let Server {
            options,
            scheduler,
            shadow,
            startup_warnings,
        } = self;
        let workers = scheduler.workers();
        if apps.len() != workers {
            return Err(ServerError::Apps {
                apps: apps.len(),
                workers,
            });
        }
        let app_name = apps.first().map_or("none", |app| app.name());
        for app in &apps {
            check_app(scheduler.policy(), app)?;
        }
        let (rx_count, tx_count) = (port.rx_queue_count(), port.tx_queue_count());
        if rx_count < 1 || usize::from(tx_count) < workers + 1 {
            return Err(ServerError::Queues {
                rx: rx_count,
                tx: tx_count,
                workers,
                needed: workers + 1,
            });
        }
        let taken = |direction, queue| ServerError::QueueTaken { direction, queue };
        let rx = (0..rx_count)
            .map(|q| port.take_rx(q).ok_or_else(|| taken("rx", q)))
            .collect::<Result<Vec<_>, _>>()?;
        let arp_tx = port.take_tx(0).ok_or_else(|| taken("tx", 0))?;
        let mut worker_tx = Vec::with_capacity(workers);
        for w in 0..workers {
            // workers ≤ MAX_WORKERS (128), so w + 1 fits u16.
            let queue = (w + 1) as u16;
            worker_tx.push(port.take_tx(queue).ok_or_else(|| taken("tx", queue))?);
        }
        // Helper threads (telemetry writer, control socket, shadow) inherit this thread's CPUs:
        // spawn them on the CPUs no busy-polling thread is pinned to, then pin the dispatcher.
        let mut pinned = options.worker_cpus.clone();
        pinned.extend(options.dispatcher_cpu);
        if !pinned.is_empty() {
            let helpers = affinity::helper_cpus(&affinity::allowed_cpus(), &pinned);
            // Best effort: where it fails the helpers share the process's CPUs, as before.
            let _ = affinity::restrict_current_thread(&helpers);
        }

        let telemetry = match &options.telemetry {
            Some(t) => Some(telemetry::TelemetryRun::start(
                t,
                &scheduler,
                Arc::clone(&shutdown),
            )?),
            None => None,
        };
        let shadow = match shadow
            .map(dispatcher::shadow::ShadowFeed::spawn)
            .transpose()
        {
            Ok(shadow) => shadow,
            Err(source) => {
                if let Some(telemetry) = telemetry {
                    telemetry.finish(None);
                }
                return Err(ServerError::Thread {
                    name: "shadow",
                    source,
                });
            }
        };
        if let Some(cpu) = options.dispatcher_cpu {
            if let Err(source) = pin_current_thread(cpu) {
                if let Some(telemetry) = telemetry {
                    telemetry.finish(None);
                }
                drop(shadow);
                return Err(ServerError::Affinity { cpu, source });
            }
        }
        let clock = Clock::start();
        let scheduler_types = scheduler.types().len();
        let nominal_mean_ns: Vec<Option<u64>> =
            scheduler.types().iter().map(|t| t.mean_ns).collect();
        let mac = options.mac.unwrap_or_else(|| port.mac());
        let local = Endpoint::new(MacAddr(mac), options.ip, options.udp_port);
        let stop_workers = Arc::new(AtomicBool::new(false));
        let preempt = Arc::new(preempt::PreemptFlags::new(workers));
        let mut job_senders = Vec::with_capacity(workers);
        let mut done_receivers = Vec::with_capacity(workers);
        let mut joins = Vec::with_capacity(workers);
        for (w, (app, tx)) in apps.into_iter().zip(worker_tx).enumerate() {
            let (job_tx, job_rx) = ring::channel(JOB_RING_SLOTS);
            let (done_tx, done_rx) = ring::channel(JOB_RING_SLOTS);
            job_senders.push(job_tx);
            done_receivers.push(done_rx);
            let ctx = worker::WorkerContext {
                index: w,
                cpu: options.worker_cpus.get(w).copied(),
                idle: options.idle,
                clock: clock.clone(),
                jobs: job_rx,
                done: done_tx,
                preempt: Arc::clone(&preempt),
                tx,
                app,
                stop: Arc::clone(&stop_workers),
                // Registered types + UNKNOWN, as the dispatcher's per-type tables.
                type_slots: scheduler.types().len() + 1,
                busy: telemetry.as_ref().map(telemetry::TelemetryRun::busy_slots),
            };
            let join = std::thread::Builder::new()
                .name(format!("psp-worker-{w}"))
                .spawn(move || ctx.run());
            match join {
                Ok(join) => joins.push(join),
                Err(source) => {
                    stop_workers.store(true, Ordering::Release);
                    for join in joins {
                        let _ = join.join();
                    }
                    if let Some(telemetry) = telemetry {
                        telemetry.finish(None);
                    }
                    return Err(ServerError::Spawn { worker: w, source });
                }
            }
        }

        let mut dispatcher = dispatcher::Dispatcher::new(
            &options,
            scheduler,
            local,
            clock.clone(),
            rx,
            arp_tx,
            classifier,
            job_senders,
            done_receivers,
            preempt,
        );
        if let Some(telemetry) = &telemetry {
            dispatcher.with_telemetry(telemetry.recorder(clock.now_ns()));
            dispatcher.with_control(telemetry.hub());
        }
        if let Some(shadow) = shadow {
            dispatcher.with_shadow(shadow);
        }
        dispatcher.run(&shutdown);
        stop_workers.store(true, Ordering::Release);
        let mut worker_reports = Vec::with_capacity(workers);
        let mut worker_panics = 0;
        for (w, join) in joins.into_iter().enumerate() {
            match join.join() {
                Ok(report) => worker_reports.push(report),
                Err(_) => {
                    worker_panics += 1;
                    worker_reports.push(WorkerReport {
                        worker: w,
                        stages: stages::WorkerStages::new(scheduler_types + 1),
                        ..WorkerReport::default()
                    });
                }
            }
        }
        let (mut dispatcher_report, windows, recorder_counts) = dispatcher.finish();
        let telemetry = telemetry.map(|telemetry| telemetry.finish(recorder_counts));
        dispatcher_report.worker_panics += worker_panics;
        let elapsed_ns = clock.now_ns();
        let mut windows_log_error = None;
        let mut windows_log_path = None;
        if let (Some(path), Some(log)) = (&options.windows_log, &windows) {
            match log.write_file(path) {
                Ok(()) => windows_log_path = Some(path.clone()),
                Err(e) => windows_log_error = Some(format!("{}: {e}", path.display())),
            }
        }
        Ok(ServerReport {
            policy: options.scheduler.policy.name(),
            nominal_mean_ns,
            app: app_name,
            startup_warnings,
            elapsed_ns,
            dispatcher: dispatcher_report,
            workers: worker_reports,
            port: port.stats(),
            windows,
            windows_log_path,
            windows_log_error,
            telemetry,
        })
    }
}
