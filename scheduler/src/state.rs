//! [`SchedulerState`]: the queues, counters and plan records every policy works on.
//!
//! A policy ([`crate::PolicyCore`]) owns only its own decision state (an order, a round-robin
//! counter, DARC's profile and plan); the requests themselves sit here, in fixed-capacity rings
//! allocated once by [`crate::Scheduler::new`] in the number the policy asked for
//! ([`crate::QueueLayout`]). What a queue index means is the policy's business (one central
//! FIFO, one per worker, one per type slot...).
//!
//! ## Invariants
//! - `nonempty` bit `q` is set iff queue `q` holds something (at most 128 queues), so empty
//!   queues are skipped without touching them.
//! - Σ queue lengths = `queued_total` = Σ `queued_by_type` (per type slot, UNKNOWN last), so
//!   [`crate::Scheduler::queue_len`] is O(1) whatever the layout.
//! - [`PlanUpdate`] records beyond [`PLAN_UPDATE_CAPACITY`] push out the oldest, counted.
//!
//! Tested through the scheduler's unit and property tests (conservation, bounds).

use std::collections::VecDeque;

use crate::queue::RingQueue;
use crate::{Nanos, PlanUpdate, SchedulerCounters, Token, TypeIndex};

/// Most [`PlanUpdate`]s kept for [`crate::Scheduler::poll_plan_update`]; beyond it the oldest is
/// dropped and counted in [`SchedulerCounters::plan_updates_dropped`] (the original's
/// `MAX_WINDOWS`, `DispatchSu.hh`, which it never checked).
pub const PLAN_UPDATE_CAPACITY: usize = 8192;

/// One queued request, as a policy sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueuedRequest {
    /// The driver's handle.
    pub token: Token,
    /// The request's class.
    pub ty: TypeIndex,
    /// When it arrived (kept across `ts` preemptions).
    pub arrival_ns: Nanos,
}

impl Default for QueuedRequest {
    fn default() -> Self {
        Self {
            token: Token(0),
            ty: TypeIndex::UNKNOWN,
            arrival_ns: 0,
        }
    }
}

/// The queues, counters and plan records shared by the scheduler and its policy.
#[derive(Debug)]
pub struct SchedulerState {
    n_types: usize,
    workers: usize,
    queues: Box<[RingQueue<QueuedRequest>]>,
    nonempty: u128,
    queued_by_type: Box<[usize]>,
    queued_total: usize,
    pub(crate) counters: SchedulerCounters,
    updates: VecDeque<PlanUpdate>,
}

impl SchedulerState {
    /// `queue_count` rings of `ring_capacity` slots each (allocated now).
    pub(crate) fn new(
        n_types: usize,
        workers: usize,
        queue_count: usize,
        ring_capacity: usize,
    ) -> Self {
        Self {
            n_types,
            workers,
            queues: (0..queue_count)
                .map(|_| RingQueue::with_capacity(ring_capacity))
                .collect(),
            nonempty: 0,
            queued_by_type: vec![0; n_types + 1].into_boxed_slice(),
            queued_total: 0,
            counters: SchedulerCounters::default(),
            updates: VecDeque::new(),
        }
    }

    /// Registered types; type slot `n_types` is UNKNOWN.
    #[inline]
    pub fn n_types(&self) -> usize {
        self.n_types
    }

    /// Number of workers.
    #[inline]
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Number of queues (what the policy's [`crate::QueueLayout`] asked for).
    #[inline]
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Bit `q` set iff queue `q` holds a request.
    #[inline]
    pub fn nonempty_mask(&self) -> u128 {
        self.nonempty
    }

    /// Whether queue `q` holds a request.
    #[inline]
    pub fn has(&self, q: usize) -> bool {
        self.nonempty & (1u128 << q) != 0
    }

    /// The oldest request of queue `q`.
    #[inline]
    pub fn front(&self, q: usize) -> Option<&QueuedRequest> {
        self.queues[q].front()
    }

    /// The `i`-th oldest request of queue `q` (0 = front).
    #[inline]
    pub fn get(&self, q: usize, i: usize) -> Option<&QueuedRequest> {
        self.queues[q].get(i)
    }

    /// Requests in queue `q`.
    #[inline]
    pub fn len(&self, q: usize) -> usize {
        self.queues[q].len()
    }

    /// Requests queued in all queues.
    #[inline]
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queued_total == 0
    }

    /// Requests queued per type slot (UNKNOWN last).
    #[inline]
    pub fn queued_by_type(&self) -> &[usize] {
        &self.queued_by_type
    }

    /// The scheduler's counters.
    #[inline]
    pub fn counters(&self) -> &SchedulerCounters {
        &self.counters
    }

    /// Type slot (`n_types` for UNKNOWN) of any `TypeIndex`: out-of-range indices are UNKNOWN.
    #[inline]
    pub fn slot_of(&self, ty: TypeIndex) -> usize {
        let t = usize::from(ty.0);
        if t < self.n_types {
            t
        } else {
            self.n_types
        }
    }

    /// The class of type slot `slot` (UNKNOWN for `n_types` and beyond).
    #[inline]
    pub fn type_of_slot(&self, slot: usize) -> TypeIndex {
        if slot < self.n_types {
            TypeIndex(slot as u16)
        } else {
            TypeIndex::UNKNOWN
        }
    }

    /// Appends to queue `q`; a full ring hands the request back.
    #[inline]
    pub(crate) fn push(&mut self, q: usize, item: QueuedRequest) -> Result<(), QueuedRequest> {
        self.queues[q].push_back(item)?;
        self.nonempty |= 1u128 << q;
        let slot = self.slot_of(item.ty);
        self.queued_by_type[slot] += 1;
        self.queued_total += 1;
        Ok(())
    }

    /// Takes the oldest request of queue `q`.
    #[inline]
    pub(crate) fn pop(&mut self, q: usize) -> Option<QueuedRequest> {
        let item = self.queues[q].pop_front()?;
        self.taken(q, &item);
        Some(item)
    }

    /// The bookkeeping of `item` leaving queue `q` (non-empty mask, counts).
    #[inline]
    fn taken(&mut self, q: usize, item: &QueuedRequest) {
        if self.queues[q].is_empty() {
            self.nonempty &= !(1u128 << q);
        }
        let slot = self.slot_of(item.ty);
        self.queued_by_type[slot] -= 1;
        self.queued_total -= 1;
    }

    /// Where request `token` waits: its queue and its place in it (O(queued)).
    pub(crate) fn find(&self, token: Token) -> Option<(usize, usize)> {
        let mut mask = self.nonempty;
        while mask != 0 {
            let q = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let queue = &self.queues[q];
            if let Some(i) =
                (0..queue.len()).find(|&i| queue.get(i).is_some_and(|r| r.token == token))
            {
                return Some((q, i));
            }
        }
        None
    }

    /// Takes the `offset`-th oldest request of queue `q` out.
    pub(crate) fn remove(&mut self, q: usize, offset: usize) -> Option<QueuedRequest> {
        let item = self.queues[q].remove(offset)?;
        self.taken(q, &item);
        Some(item)
    }

    /// Moves every request of queue `from`, in order, to its type slot's queue (DARC's
    /// bootstrap switch). A request that finds no room is counted as rejected (unreachable when
    /// every ring has the same capacity).
    pub(crate) fn move_to_typed_queues(&mut self, from: usize) {
        while let Some(item) = self.pop(from) {
            let slot = self.slot_of(item.ty);
            if self.push(slot, item).is_err() {
                self.counters.rejected += 1;
            }
        }
    }

    /// Takes every queued request out, oldest first across queues (arrival time; ties keep
    /// queue order), and the plan records not yet polled: what a policy switch carries over.
    pub(crate) fn take_all(&mut self) -> (Vec<QueuedRequest>, VecDeque<PlanUpdate>) {
        let mut items = Vec::with_capacity(self.queued_total);
        for q in 0..self.queues.len() {
            while let Some(item) = self.pop(q) {
                items.push(item);
            }
        }
        items.sort_by_key(|item| item.arrival_ns);
        (items, std::mem::take(&mut self.updates))
    }

    /// Puts back plan records taken by [`SchedulerState::take_all`], before any new one.
    pub(crate) fn restore_updates(&mut self, mut updates: VecDeque<PlanUpdate>) {
        updates.append(&mut self.updates);
        self.updates = updates;
    }

    /// Records an applied plan (its `queue_lens` are filled in here, from the current queues).
    pub(crate) fn record_plan_update(&mut self, mut update: PlanUpdate) {
        update.queue_lens = self.queued_by_type[..self.n_types].to_vec();
        self.counters.plan_updates += 1;
        if self.updates.len() >= PLAN_UPDATE_CAPACITY {
            self.updates.pop_front();
            self.counters.plan_updates_dropped += 1;
        }
        self.updates.push_back(update);
    }

    /// The oldest plan record not yet polled.
    pub(crate) fn poll_plan_update(&mut self) -> Option<PlanUpdate> {
        self.updates.pop_front()
    }
}
