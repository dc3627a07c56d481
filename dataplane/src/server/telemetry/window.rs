//! The dispatcher's side of telemetry: the live window and its hand-off to the writer.
//!
//! Per request: [`WindowRecorder::on_service`] (one histogram record per completion) and
//! [`WindowRecorder::on_depth`] (one `max` per arrival). Per window: [`WindowRecorder::close`]
//! takes a snapshot from the pool (lock-free), swaps the live histograms into it, fills it
//! with the differences of the dispatcher's cumulative counters and queues it for the writer.
//! Nothing here allocates after construction. Tests: `server/tests.rs` (whole servers).

use std::sync::Arc;
use std::thread::Thread;

use crossbeam_queue::ArrayQueue;
use psp_scheduler::{ReservationPlan, Scheduler, TypeIndex};

use super::histogram::ServiceHistogram;
use super::{PlanView, WorkerBusySlots, TELEMETRY_POOL_WINDOWS};
use crate::server::report::DispatcherReport;
use crate::server::ShadowReport;
use crate::wire::DropCounters;

/// One type slot of a closed window.
#[derive(Debug)]
pub(crate) struct TypeSnapshot {
    pub(crate) arrivals: u64,
    pub(crate) completions: u64,
    pub(crate) queue_full: u64,
    pub(crate) slab_full: u64,
    /// Slices preempted (`ts`, `darc-ts`).
    pub(crate) preempted: u64,
    pub(crate) max_queue_depth: u64,
    pub(crate) service: ServiceHistogram,
}

/// A closed window, as it travels to the writer and back.
#[derive(Debug)]
pub(crate) struct WindowSnapshot {
    pub(crate) window: u64,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    /// Registered types, then UNKNOWN.
    pub(crate) types: Vec<TypeSnapshot>,
    pub(crate) parse_drops: DropCounters,
    pub(crate) worker_busy_ns: Vec<u64>,
    pub(crate) polls: u64,
    pub(crate) busy_polls: u64,
    pub(crate) busy_ns: u64,
    pub(crate) plan: Option<Arc<PlanView>>,
    pub(crate) windows_dropped: u64,
    /// Plans DARC applied in the window.
    pub(crate) plan_updates: u64,
    /// Re-plans DARC kept by its rounding hysteresis in the window.
    pub(crate) plans_kept: u64,
    /// The live policy at the close (a switch changes it).
    pub(crate) policy: &'static str,
    /// The shadow policy's counts in the window, if one runs.
    pub(crate) shadow: Option<ShadowReport>,
}

impl WindowSnapshot {
    fn new(type_slots: usize, workers: usize) -> Self {
        Self {
            window: 0,
            start_ns: 0,
            end_ns: 0,
            types: (0..type_slots)
                .map(|_| TypeSnapshot {
                    arrivals: 0,
                    completions: 0,
                    queue_full: 0,
                    slab_full: 0,
                    preempted: 0,
                    max_queue_depth: 0,
                    service: ServiceHistogram::default(),
                })
                .collect(),
            parse_drops: DropCounters::new(),
            worker_busy_ns: vec![0; workers],
            polls: 0,
            busy_polls: 0,
            busy_ns: 0,
            plan: None,
            windows_dropped: 0,
            plan_updates: 0,
            plans_kept: 0,
            policy: "",
            shadow: None,
        }
    }

    /// Makes a returned snapshot ready for reuse (the writer calls it, off the dispatcher).
    pub(crate) fn recycle(&mut self) {
        for t in &mut self.types {
            t.service.reset();
        }
        self.plan = None;
    }
}

/// Snapshots between the dispatcher and the writer: `free` ones for the dispatcher to fill,
/// `full` ones for the writer to render. Both queues hold every snapshot, so pushes never fail.
#[derive(Debug)]
pub(crate) struct SnapshotPool {
    pub(crate) free: ArrayQueue<Box<WindowSnapshot>>,
    pub(crate) full: ArrayQueue<Box<WindowSnapshot>>,
}

impl SnapshotPool {
    /// [`TELEMETRY_POOL_WINDOWS`] snapshots for `type_slots` slots and `workers` workers.
    pub(crate) fn new(type_slots: usize, workers: usize) -> Self {
        let free = ArrayQueue::new(TELEMETRY_POOL_WINDOWS);
        for _ in 0..TELEMETRY_POOL_WINDOWS {
            let _ = free.push(Box::new(WindowSnapshot::new(type_slots, workers)));
        }
        Self {
            free,
            full: ArrayQueue::new(TELEMETRY_POOL_WINDOWS),
        }
    }
}

/// The cumulative counters at the last window close.
#[derive(Debug)]
struct Baseline {
    arrivals: Vec<u64>,
    completed: Vec<u64>,
    rejected: Vec<u64>,
    slab_full: Vec<u64>,
    preempted: Vec<u64>,
    parse_drops: DropCounters,
    polls: u64,
    busy_polls: u64,
    busy_ns: u64,
    worker_busy_ns: Vec<u64>,
    shadow: ShadowReport,
    plan_updates: u64,
    plans_kept: u64,
}

/// Closed and dropped windows, for the server report.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecorderCounts {
    pub(crate) windows: u64,
    pub(crate) windows_dropped: u64,
}

/// The dispatcher's live window.
pub(crate) struct WindowRecorder {
    interval_ns: u64,
    next_close_ns: u64,
    start_ns: u64,
    window: u64,
    service: Vec<ServiceHistogram>,
    max_depth: Vec<u64>,
    baseline: Baseline,
    workers: Arc<WorkerBusySlots>,
    plan: Option<Arc<PlanView>>,
    type_names: Vec<String>,
    pool: Arc<SnapshotPool>,
    writer: Thread,
    counts: RecorderCounts,
}

impl WindowRecorder {
    /// A recorder whose first window starts at `now_ns`.
    pub(crate) fn new(
        interval_ns: u64,
        now_ns: u64,
        type_names: Vec<String>,
        workers: Arc<WorkerBusySlots>,
        pool: Arc<SnapshotPool>,
        writer: Thread,
    ) -> Self {
        let slots = type_names.len() + 1;
        let interval_ns = interval_ns.max(1);
        Self {
            interval_ns,
            next_close_ns: now_ns.saturating_add(interval_ns),
            start_ns: now_ns,
            window: 0,
            service: (0..slots).map(|_| ServiceHistogram::default()).collect(),
            max_depth: vec![0; slots],
            baseline: Baseline {
                arrivals: vec![0; slots],
                completed: vec![0; slots],
                rejected: vec![0; slots],
                slab_full: vec![0; slots],
                preempted: vec![0; slots],
                parse_drops: DropCounters::new(),
                polls: 0,
                busy_polls: 0,
                busy_ns: 0,
                worker_busy_ns: vec![0; workers.len()],
                shadow: ShadowReport::default(),
                plan_updates: 0,
                plans_kept: 0,
            },
            workers,
            plan: None,
            type_names,
            pool,
            writer,
            counts: RecorderCounts::default(),
        }
    }

    /// Whether the window is due to close at `now_ns`.
    #[inline]
    pub(crate) fn due(&self, now_ns: u64) -> bool {
        now_ns >= self.next_close_ns
    }

    /// A completion of type slot `slot` whose service took `service_ns`.
    #[inline]
    pub(crate) fn on_service(&mut self, slot: usize, service_ns: u64) {
        if let Some(h) = self.service.get_mut(slot) {
            h.record(service_ns);
        }
    }

    /// Type slot `slot`'s queue is `depth` deep.
    #[inline]
    pub(crate) fn on_depth(&mut self, slot: usize, depth: u64) {
        if let Some(max) = self.max_depth.get_mut(slot) {
            *max = (*max).max(depth);
        }
    }

    /// DARC applied a new plan (rare: allocates the view).
    pub(crate) fn set_plan(&mut self, plan: &ReservationPlan) {
        self.plan = Some(Arc::new(PlanView::new(plan, &self.type_names)));
    }

    /// The policy has no plan any more (a switch away from DARC).
    pub(crate) fn clear_plan(&mut self) {
        self.plan = None;
    }

    /// Closes the window at `now_ns` and opens the next one.
    pub(crate) fn close(
        &mut self,
        now_ns: u64,
        report: &DispatcherReport,
        parse_drops: &DropCounters,
        scheduler: &Scheduler,
    ) {
        let mut snapshot = self.pool.free.pop();
        let plans_kept = scheduler.counters().darc_plans_kept;
        for (w, (slot, then)) in self
            .workers
            .iter()
            .zip(&mut self.baseline.worker_busy_ns)
            .enumerate()
        {
            let busy_ns = slot.busy_until(now_ns);
            if let Some(out) = snapshot.as_mut().and_then(|s| s.worker_busy_ns.get_mut(w)) {
                *out = busy_ns.saturating_sub(*then);
            }
            // Never backwards: a racing read may undercount, the next window makes up.
            *then = (*then).max(busy_ns);
        }
        match snapshot {
            Some(mut snapshot) => {
                self.fill(&mut snapshot, now_ns, report, parse_drops, plans_kept);
                snapshot.policy = scheduler.policy().name();
                self.counts.windows += 1;
                // Every snapshot fits in `full`; a failure would only lose this window.
                if self.pool.full.push(snapshot).is_err() {
                    self.counts.windows_dropped += 1;
                }
                self.writer.unpark();
            }
            None => {
                self.counts.windows_dropped += 1;
                self.service.iter_mut().for_each(ServiceHistogram::reset);
            }
        }
        self.rebase(report, parse_drops, plans_kept);
        let n_types = self.type_names.len();
        for (slot, depth) in self.max_depth.iter_mut().enumerate() {
            let ty = if slot < n_types {
                TypeIndex(slot as u16)
            } else {
                TypeIndex::UNKNOWN
            };
            *depth = scheduler.queue_len(ty) as u64;
        }
        self.window += 1;
        self.start_ns = now_ns;
        self.next_close_ns = now_ns.saturating_add(self.interval_ns);
    }

    /// Fills `s` with the window's differences of the cumulative counters (`plans_kept`: DARC's
    /// re-plans kept so far, which the scheduler counts).
    fn fill(
        &mut self,
        s: &mut WindowSnapshot,
        now_ns: u64,
        report: &DispatcherReport,
        parse_drops: &DropCounters,
        plans_kept: u64,
    ) {
        let b = &self.baseline;
        s.window = self.window;
        s.start_ns = self.start_ns;
        s.end_ns = now_ns;
        for (slot, t) in s.types.iter_mut().enumerate() {
            let Some(r) = report.per_type.get(slot) else {
                continue;
            };
            t.arrivals = r.arrivals.saturating_sub(b.arrivals[slot]);
            t.completions = r.completed.saturating_sub(b.completed[slot]);
            t.queue_full = r.rejected.saturating_sub(b.rejected[slot]);
            t.slab_full = r.slab_full.saturating_sub(b.slab_full[slot]);
            t.preempted = r.preempted.saturating_sub(b.preempted[slot]);
            t.max_queue_depth = self.max_depth[slot];
            if let Some(live) = self.service.get_mut(slot) {
                std::mem::swap(live, &mut t.service);
            }
        }
        for ((now, then), out) in parse_drops
            .as_array()
            .iter()
            .zip(b.parse_drops.as_array())
            .zip(s.parse_drops.as_array_mut())
        {
            *out = now.wrapping_sub(*then);
        }
        s.polls = report.polls.saturating_sub(b.polls);
        s.busy_polls = report.busy_polls.saturating_sub(b.busy_polls);
        s.busy_ns = report.busy_ns.saturating_sub(b.busy_ns);
        s.plan.clone_from(&self.plan);
        s.windows_dropped = self.counts.windows_dropped;
        s.plan_updates = report.plan_updates.saturating_sub(b.plan_updates);
        s.plans_kept = plans_kept.saturating_sub(b.plans_kept);
        s.shadow = report.shadow.map(|now| now.since(&b.shadow));
    }

    /// Takes the cumulative counters as the next window's baseline (workers: in `close`).
    fn rebase(&mut self, report: &DispatcherReport, parse_drops: &DropCounters, plans_kept: u64) {
        let b = &mut self.baseline;
        for (slot, r) in report.per_type.iter().enumerate().take(b.arrivals.len()) {
            b.arrivals[slot] = r.arrivals;
            b.completed[slot] = r.completed;
            b.rejected[slot] = r.rejected;
            b.slab_full[slot] = r.slab_full;
            b.preempted[slot] = r.preempted;
        }
        b.parse_drops.clone_from(parse_drops);
        b.polls = report.polls;
        b.busy_polls = report.busy_polls;
        b.busy_ns = report.busy_ns;
        b.plan_updates = report.plan_updates;
        b.plans_kept = plans_kept;
        b.shadow = report.shadow.unwrap_or_default();
    }

    /// Windows closed and dropped so far.
    pub(crate) fn counts(&self) -> RecorderCounts {
        self.counts
    }
}
