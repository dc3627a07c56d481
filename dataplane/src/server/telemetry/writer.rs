//! The telemetry writer thread and the hub it feeds.
//!
//! The writer takes closed windows from the pool's `full` queue, renders each as one JSON
//! line ([`render`]), appends it to the file (at most [`MAX_TELEMETRY_FILE_BYTES`]), makes it
//! the hub's latest line and offers it to every subscribed control client (a client whose
//! queue is full misses it, counted), then recycles the snapshot. It sleeps (parked) between
//! windows; the dispatcher unparks it. Locks here are taken by the writer and control threads
//! only, never by the dispatcher. Tested through whole servers in `server/tests.rs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::window::{SnapshotPool, WindowSnapshot};
use super::{
    DispatcherLine, ShadowLine, TelemetryLine, TypeDrops, TypeLine, WorkerLine,
    MAX_TELEMETRY_FILE_BYTES, WINDOW_KIND,
};

/// Longest the writer sleeps without being unparked (it then checks for stop).
const WRITER_PARK: Duration = Duration::from_millis(50);

/// What goes to one control client, in order.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A telemetry line (without its newline).
    Line(Arc<str>),
    /// A reply to one of its commands (without its newline).
    Reply(String),
}

/// Counters shared by the writer and control threads.
#[derive(Debug, Default)]
pub(crate) struct HubCounters {
    pub(crate) clients: AtomicU64,
    pub(crate) clients_refused: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) command_errors: AtomicU64,
    pub(crate) lines_dropped_to_clients: AtomicU64,
}

/// The latest line and the streaming clients.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    latest: Mutex<Option<Arc<str>>>,
    subscribers: Mutex<Vec<SyncSender<Outbound>>>,
    pub(crate) counters: HubCounters,
    /// Commands for the dispatcher, posted by control threads.
    pub(crate) mailbox: super::mailbox::Mailbox,
    /// The wall-clock time (ns since the Unix epoch) at which the server's clock read 0; 0
    /// until the dispatcher starts.
    clock_origin_unix_ns: AtomicU64,
}

impl Hub {
    /// The server's clock reads `now_ns` now: anchors it to the wall clock.
    pub(crate) fn set_clock_origin(&self, now_ns: u64) {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.clock_origin_unix_ns
            .store(unix_ns.saturating_sub(now_ns), Ordering::Relaxed);
    }

    /// `clock_ns` of the server's clock on the wall clock, ms since the Unix epoch (0 before
    /// the anchor is set).
    fn unix_ms(&self, clock_ns: u64) -> u64 {
        match self.clock_origin_unix_ns.load(Ordering::Relaxed) {
            0 => 0,
            origin => origin.saturating_add(clock_ns) / 1_000_000,
        }
    }

    /// The latest telemetry line, if any window was closed yet.
    pub(crate) fn latest(&self) -> Option<Arc<str>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds a streaming client.
    pub(crate) fn subscribe(&self, sender: SyncSender<Outbound>) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
    }

    /// Makes `line` the latest and offers it to every client.
    fn publish(&self, line: Arc<str>) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&line));
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(
            |client| match client.try_send(Outbound::Line(Arc::clone(&line))) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.counters
                        .lines_dropped_to_clients
                        .fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
        );
    }

    /// No more lines: drops every client's stream sender (a client's queue then ends once its
    /// reader, which holds the other sender, stops too).
    fn close(&self) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// What the writer needs besides the snapshots.
#[derive(Debug)]
pub(crate) struct WriterSetup {
    pub(crate) policy: &'static str,
    /// Registered type names, then `UNKNOWN`.
    pub(crate) slot_names: Vec<String>,
    pub(crate) file: Option<PathBuf>,
}

/// What the writer did.
#[derive(Debug, Default)]
pub(crate) struct WriterCounts {
    pub(crate) lines_written: u64,
    pub(crate) lines_not_written: u64,
    pub(crate) file: Option<PathBuf>,
    pub(crate) file_error: Option<String>,
}

/// The running writer.
pub(crate) struct Writer {
    join: JoinHandle<WriterCounts>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread.
    pub(crate) fn spawn(
        setup: WriterSetup,
        pool: Arc<SnapshotPool>,
        hub: Arc<Hub>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let join = std::thread::Builder::new()
            .name("psp-telemetry".into())
            .spawn(move || write_loop(&setup, &pool, &hub, &flag))?;
        Ok(Self { join, stop })
    }

    /// The thread, for the dispatcher to unpark.
    pub(crate) fn thread(&self) -> std::thread::Thread {
        self.join.thread().clone()
    }

    /// Writes what is queued, then stops.
    pub(crate) fn finish(self) -> WriterCounts {
        self.stop.store(true, Ordering::Release);
        self.join.thread().unpark();
        self.join.join().unwrap_or_else(|_| WriterCounts {
            file_error: Some("the telemetry writer panicked".into()),
            ..WriterCounts::default()
        })
    }
}

/// The file sink, bounded in bytes.
struct FileSink {
    out: BufWriter<File>,
    bytes: u64,
}

fn open_file(path: &PathBuf) -> std::io::Result<FileSink> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    Ok(FileSink {
        out: BufWriter::new(File::create(path)?),
        bytes: 0,
    })
}

fn write_loop(
    setup: &WriterSetup,
    pool: &SnapshotPool,
    hub: &Hub,
    stop: &AtomicBool,
) -> WriterCounts {
    let mut counts = WriterCounts::default();
    let mut sink = match setup.file.as_ref().map(open_file).transpose() {
        Ok(sink) => {
            counts.file = setup.file.clone();
            sink
        }
        Err(e) => {
            counts.file_error = setup.file.as_ref().map(|p| format!("{}: {e}", p.display()));
            None
        }
    };
    loop {
        let stopping = stop.load(Ordering::Acquire);
        while let Some(mut snapshot) = pool.full.pop() {
            let line: Arc<str> = render(&snapshot, setup, hub.unix_ms(snapshot.end_ns)).into();
            snapshot.recycle();
            let _ = pool.free.push(snapshot);
            write_line(&mut sink, &mut counts, &line);
            hub.publish(line);
        }
        if stopping {
            break;
        }
        std::thread::park_timeout(WRITER_PARK);
    }
    if let Some(sink) = &mut sink {
        if let Err(e) = sink.out.flush() {
            counts.file_error = Some(format!("flushing the telemetry file: {e}"));
        }
    }
    hub.close();
    counts
}

fn write_line(sink: &mut Option<FileSink>, counts: &mut WriterCounts, line: &str) {
    let Some(file) = sink else {
        if counts.file_error.is_some() {
            counts.lines_not_written += 1;
        }
        return;
    };
    let bytes = line.len() as u64 + 1;
    if file.bytes.saturating_add(bytes) > MAX_TELEMETRY_FILE_BYTES {
        counts.lines_not_written += 1;
        return;
    }
    // One flush per line: a reader tailing the file sees whole windows.
    match writeln!(file.out, "{line}").and_then(|()| file.out.flush()) {
        Ok(()) => {
            file.bytes += bytes;
            counts.lines_written += 1;
        }
        Err(e) => {
            counts.file_error = Some(format!("writing the telemetry file: {e}"));
            counts.lines_not_written += 1;
            *sink = None;
        }
    }
}

/// Share of `window_ns` that `busy_ns` covers, within 0..=1.
fn share(busy_ns: u64, window_ns: u64) -> f64 {
    (busy_ns as f64 / window_ns.max(1) as f64).clamp(0.0, 1.0)
}

/// The JSON line of a closed window that ended at `end_unix_ms` on the wall clock.
pub(crate) fn render(s: &WindowSnapshot, setup: &WriterSetup, end_unix_ms: u64) -> String {
    let window_ns = s.end_ns.saturating_sub(s.start_ns);
    let types = s
        .types
        .iter()
        .zip(&setup.slot_names)
        .map(|(t, name)| TypeLine {
            name: name.clone(),
            arrivals: t.arrivals,
            completions: t.completions,
            drops: TypeDrops {
                queue_full: t.queue_full,
                slab_full: t.slab_full,
            },
            service_count: t.service.len(),
            service_p50_ns: t.service.value_at_quantile(0.5),
            service_p99_ns: t.service.value_at_quantile(0.99),
            max_queue_depth: t.max_queue_depth,
            preempted: t.preempted,
        })
        .collect();
    let parse_drops: BTreeMap<String, u64> = s
        .parse_drops
        .nonzero()
        .filter(|(reason, _)| reason.is_drop())
        .map(|(reason, n)| (reason.as_str().to_string(), n))
        .collect();
    let line = TelemetryLine {
        kind: WINDOW_KIND.to_string(),
        window: s.window,
        start_ns: s.start_ns,
        end_ns: s.end_ns,
        end_unix_ms,
        policy: if s.policy.is_empty() {
            setup.policy.to_string()
        } else {
            s.policy.to_string()
        },
        types,
        parse_drops,
        workers: s
            .worker_busy_ns
            .iter()
            .enumerate()
            .map(|(worker, &busy_ns)| WorkerLine {
                worker,
                busy_share: share(busy_ns, window_ns),
            })
            .collect(),
        dispatcher: DispatcherLine {
            polls: s.polls,
            busy_polls: s.busy_polls,
            utilisation: if s.polls == 0 {
                0.0
            } else {
                s.busy_polls as f64 / s.polls as f64
            },
            busy_share: share(s.busy_ns, window_ns),
        },
        plan: s.plan.as_deref().cloned(),
        windows_dropped: s.windows_dropped,
        plan_updates: s.plan_updates,
        plans_kept: s.plans_kept,
        shadow: s.shadow.map(|r| ShadowLine {
            policy: r.policy.to_string(),
            decisions: r.decisions,
            agreed: r.agreed,
            same_request: r.same_request,
            disagreed: r.disagreed,
            out_of_sync: r.out_of_sync,
            agreed_share: if r.decisions == 0 {
                0.0
            } else {
                r.agreed_share()
            },
            events_dropped: r.events_dropped,
            cpu_ns_per_decision: if r.decisions == 0 {
                0.0
            } else {
                r.cpu_ns_per_decision()
            },
        }),
    };
    serde_json::to_string(&line).unwrap_or_else(|e| {
        // Unreachable: every field serializes. Keep the stream line-shaped anyway.
        format!("{{\"kind\":\"error\",\"error\":\"{e}\"}}")
    })
}
