//! # Where each microsecond goes: per-stage latency histograms of the live server
//!
//! Every request that reaches a worker is stamped five times on the server's [`super::Clock`]:
//! `rx` (its RX burst returned), `enqueued` (its burst classified and handed to the scheduler:
//! one clock read per burst), `dispatched` (pushed to the worker's ring), `started` (popped by
//! the worker), `served` (the application returned) and `sent` (its response left on the
//! worker's TX queue, in a burst of at most `WORKER_TX_BATCH`: one clock read per burst). With
//! `worker_queue_depth: 2`, `handoff` includes the wait behind the worker's previous request.
//! The stages are the differences:
//!
//! | stage | from → to | recorded by |
//! |---|---|---|
//! | `rx_to_enqueue` | rx → enqueued | dispatcher, at dispatch |
//! | `queue_wait` | enqueued → dispatched | dispatcher, at dispatch (per type) |
//! | `handoff` | dispatched → started | worker |
//! | `service` | started → served | worker (per type) |
//! | `worker_tx` | served → sent | worker |
//! | `rx_to_tx` | rx → sent | worker (per type) |
//!
//! Invariants: recording allocates nothing (histograms are sized at construction and saturate
//! at [`MAX_RECORDED_NS`]); each [`StageHistogram`] also keeps the exact sum of what it
//! recorded, so for requests that went all the way the stage sums add up exactly to the
//! `rx_to_tx` sum (the timestamps telescope). Under live time sharing (`ts`) a preempted
//! request's `service` is the sum of its slices, `handoff` that of its last slice and
//! `queue_wait` its first wait: its waits after a preemption are in no stage, so its stages
//! do not telescope. Tests: below, and the whole-server test
//! `stage_histograms_add_up` in `server/tests.rs`.

use hdrhistogram::Histogram;

/// Largest value a stage histogram records exactly: 100 s; larger values saturate.
pub const MAX_RECORDED_NS: u64 = 100_000_000_000;
/// Significant digits of the stage histograms: 1 % resolution, ~25 KiB each.
const SIGNIFICANT_DIGITS: u8 = 2;

/// One stage's distribution in ns, with its exact sum.
#[derive(Clone, Debug)]
pub struct StageHistogram {
    hist: Histogram<u64>,
    sum_ns: u64,
}

impl Default for StageHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for StageHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.sum_ns == other.sum_ns && self.hist == other.hist
    }
}

impl StageHistogram {
    /// An empty histogram covering 1 ns to [`MAX_RECORDED_NS`].
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_RECORDED_NS, SIGNIFICANT_DIGITS)
            .expect("static histogram bounds are valid");
        Self { hist, sum_ns: 0 }
    }

    /// Records one duration (saturating above [`MAX_RECORDED_NS`]). Never allocates.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds `other`'s recordings to this one.
    pub fn merge(&mut self, other: &StageHistogram) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Exact sum of the recorded durations, ns.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// Exact mean, ns (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_ns as f64 / n as f64,
        }
    }

    /// The `q` quantile (0..=1), ns, to the histogram's 1 % resolution (0 when empty).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count() == 0 {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

/// The stages one worker records: all types together, plus per type slot (registration order,
/// then UNKNOWN) where the type matters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStages {
    /// Dispatched → popped by the worker.
    pub handoff: StageHistogram,
    /// Application time, per type slot.
    pub service: Vec<StageHistogram>,
    /// Response built and transmitted, after the application returned.
    pub worker_tx: StageHistogram,
    /// RX → response sent, per type slot.
    pub rx_to_tx: Vec<StageHistogram>,
    /// Σ `run_ns` the requests asked for, per type slot (what a spin app should take).
    pub requested_run_ns: Vec<u64>,
}

impl WorkerStages {
    /// Empty histograms for `type_slots` slots.
    pub fn new(type_slots: usize) -> Self {
        Self {
            handoff: StageHistogram::new(),
            service: (0..type_slots).map(|_| StageHistogram::new()).collect(),
            worker_tx: StageHistogram::new(),
            rx_to_tx: (0..type_slots).map(|_| StageHistogram::new()).collect(),
            requested_run_ns: vec![0; type_slots],
        }
    }

    /// Adds `other`'s recordings (same number of slots) to this one.
    pub fn merge(&mut self, other: &WorkerStages) {
        self.handoff.merge(&other.handoff);
        self.worker_tx.merge(&other.worker_tx);
        merge_slots(&mut self.service, &other.service);
        merge_slots(&mut self.rx_to_tx, &other.rx_to_tx);
        if self.requested_run_ns.len() < other.requested_run_ns.len() {
            self.requested_run_ns
                .resize(other.requested_run_ns.len(), 0);
        }
        for (mine, theirs) in self
            .requested_run_ns
            .iter_mut()
            .zip(&other.requested_run_ns)
        {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

/// The stages the dispatcher records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DispatcherStages {
    /// RX burst returned → the whole burst classified and enqueued.
    pub rx_to_enqueue: StageHistogram,
    /// Enqueued → dispatched, per type slot.
    pub queue_wait: Vec<StageHistogram>,
}

impl DispatcherStages {
    /// Empty histograms for `type_slots` slots.
    pub fn new(type_slots: usize) -> Self {
        Self {
            rx_to_enqueue: StageHistogram::new(),
            queue_wait: (0..type_slots).map(|_| StageHistogram::new()).collect(),
        }
    }
}

fn merge_slots(into: &mut Vec<StageHistogram>, from: &[StageHistogram]) {
    if into.len() < from.len() {
        into.resize_with(from.len(), StageHistogram::new);
    }
    for (mine, theirs) in into.iter_mut().zip(from) {
        mine.merge(theirs);
    }
}

/// All slots of `slots` merged into one.
pub fn merged(slots: &[StageHistogram]) -> StageHistogram {
    let mut all = StageHistogram::new();
    for slot in slots {
        all.merge(slot);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sums_and_quantiles() {
        let mut h = StageHistogram::new();
        assert_eq!((h.count(), h.mean_ns(), h.quantile_ns(0.5)), (0, 0.0, 0));
        for ns in [1_000, 2_000, 3_000, 4_000] {
            h.record(ns);
        }
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_ns(), 10_000);
        assert_eq!(h.mean_ns(), 2_500.0);
        let p50 = h.quantile_ns(0.5) as f64;
        assert!((p50 / 2_000.0 - 1.0).abs() <= 0.01, "{p50}");
        // Absurd values saturate instead of failing or allocating.
        h.record(u64::MAX);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_ns(), u64::MAX);
    }

    #[test]
    fn merging_workers_adds_counts_and_sums() {
        let mut a = WorkerStages::new(2);
        let mut b = WorkerStages::new(2);
        a.service[0].record(1_000);
        a.requested_run_ns[0] += 1_000;
        b.service[0].record(3_000);
        b.service[1].record(100_000);
        b.requested_run_ns[1] += 100_000;
        b.handoff.record(200);
        a.merge(&b);
        assert_eq!(a.service[0].count(), 2);
        assert_eq!(a.service[0].sum_ns(), 4_000);
        assert_eq!(a.service[1].count(), 1);
        assert_eq!(a.handoff.count(), 1);
        assert_eq!(a.requested_run_ns, vec![1_000, 100_000]);
        assert_eq!(merged(&a.service).count(), 3);
    }
}
