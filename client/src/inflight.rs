//! The in-flight table: which requests are outstanding, matched by the `req_id` their responses
//! carry, without allocating per request.
//!
//! The table is a power-of-two array of slots allocated once. A request takes the slot under a
//! round-robin cursor; its wire `req_id` is `generation << index_bits | index`, where the slot's
//! generation counts how many times the slot was reused (modulo `2^(32 - index_bits)`). A response
//! is matched by indexing the slot with the low bits and comparing the generation, so a stale or
//! duplicated response can never complete a newer request that reuses the slot.
//!
//! If the cursor reaches a slot whose request is still outstanding, that request has waited a full
//! table turn (the table is sized so that a turn is at least the response timeout at the highest
//! rate): it *expires* — the client gives up on it — and the slot is reused. A response that
//! comes for an expired request later is *late*: [`MatchOutcome::Late`] says which request it
//! was (its type and warm-up flag are kept for one more generation), so a caller can move it
//! from "never answered" to "answered late".
//!
//! ## Invariants
//! - `outstanding()` equals the number of slots in state `Outstanding`.
//! - A `req_id` completes at most once, in time ([`MatchOutcome::Matched`]) or late
//!   ([`MatchOutcome::Late`]): any further response for it is a duplicate.
//! - `complete` never panics, whatever 32-bit id it is handed.
//!
//! Tested below (unit tests for every outcome, plus a property test against a model).

/// Fewest index bits (a 65 536-slot table, 1.5 MiB): at low rates a slot then lives far longer
/// than any drain timeout, so slow responses are matched instead of counted late.
pub const MIN_INDEX_BITS: u32 = 16;
/// Most index bits (16 Mi slots, 256 MiB at 16 B per slot), leaving 8 bits of generation.
pub const MAX_INDEX_BITS: u32 = 24;

/// Most tag bits ([`InFlightTable::with_tag`]): 256 client threads.
pub const MAX_TAG_BITS: u32 = 8;

/// The tag in the top `tag_bits` bits of `id` (0 when `tag_bits` is 0).
#[inline]
pub fn tag_of(id: u32, tag_bits: u32) -> u32 {
    match tag_bits.min(MAX_TAG_BITS) {
        0 => 0,
        bits => id >> (32 - bits),
    }
}

/// What the table knows about one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// When the request was meant to leave, in ns since the run's start.
    pub intended_send_ns: u64,
    /// The request's (phase, type) as an index into the caller's flat table of types.
    pub type_slot: u32,
    /// Whether the request falls in the warm-up (not recorded in the histograms).
    pub warmup: bool,
    /// Index of its per-request trace record, or [`NO_TRACE`].
    pub trace: u32,
}

/// [`RequestInfo::trace`] of a request without a trace record.
pub const NO_TRACE: u32 = u32::MAX;

/// What is kept of a request the client gave up on, to account for a late response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GivenUp {
    /// [`RequestInfo::type_slot`] of the request.
    pub type_slot: u32,
    /// [`RequestInfo::warmup`] of the request.
    pub warmup: bool,
}

impl From<&RequestInfo> for GivenUp {
    fn from(info: &RequestInfo) -> Self {
        Self {
            type_slot: info.type_slot,
            warmup: info.warmup,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SlotState {
    /// Never used.
    Unused,
    /// Waiting for its response.
    Outstanding,
    /// Answered.
    Answered,
    /// Given up on (counted as never answered) but not reused yet.
    Expired,
    /// Given up on, then answered late.
    AnsweredLate,
    /// Taken back because the request could not be transmitted.
    Cancelled,
}

#[derive(Copy, Clone, Debug)]
struct Slot {
    info: RequestInfo,
    generation: u32,
    state: SlotState,
    /// State of the previous generation when this slot was reused (answered or expired), to tell
    /// a duplicate from a late response for the previous occupant.
    previous: SlotState,
    /// The previous occupant, for a late response to it.
    previous_request: GivenUp,
}

/// The result of matching a response id.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MatchOutcome {
    /// The first response for an outstanding request.
    Matched(RequestInfo),
    /// A second response for a request already answered.
    Duplicate,
    /// The first response for a request that had already expired (the client had given up on
    /// it); later ones are duplicates.
    Late(GivenUp),
    /// An id the client never issued (or issued so long ago that the slot has moved on twice).
    UnknownId,
    /// The id is outstanding but the response disagrees with the request (e.g. another type):
    /// not ours; the request stays outstanding.
    Mismatched,
}

/// A request that expired when its slot was reused (or at the end of the run).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Expired(pub RequestInfo);

/// The preallocated table of outstanding requests.
#[derive(Debug)]
pub struct InFlightTable {
    slots: Box<[Slot]>,
    index_bits: u32,
    generation_mask: u32,
    /// Top bits of every id: the client thread that owns the table ([`InFlightTable::with_tag`]).
    tag_bits: u32,
    tag: u32,
    cursor: usize,
    outstanding: usize,
    /// Generation every slot starts at.
    first_generation: u32,
    /// Times the cursor went round the table.
    wraps: u32,
}

impl InFlightTable {
    /// A table of `2^index_bits` slots; `index_bits` is clamped to
    /// [`MIN_INDEX_BITS`]..=[`MAX_INDEX_BITS`].
    pub fn with_index_bits(index_bits: u32) -> Self {
        Self::with_exact_index_bits(index_bits.clamp(MIN_INDEX_BITS, MAX_INDEX_BITS))
    }

    /// A table of exactly `2^index_bits` slots (tests use tiny tables to exercise reuse).
    fn with_exact_index_bits(index_bits: u32) -> Self {
        let index_bits = index_bits.clamp(1, MAX_INDEX_BITS);
        let empty = Slot {
            info: RequestInfo {
                intended_send_ns: 0,
                type_slot: 0,
                warmup: false,
                trace: NO_TRACE,
            },
            generation: 0,
            state: SlotState::Unused,
            previous: SlotState::Unused,
            previous_request: GivenUp {
                type_slot: 0,
                warmup: false,
            },
        };
        Self {
            slots: vec![empty; 1usize << index_bits].into_boxed_slice(),
            index_bits,
            generation_mask: u32::MAX >> index_bits,
            tag_bits: 0,
            tag: 0,
            cursor: 0,
            outstanding: 0,
            first_generation: 0,
            wraps: 0,
        }
    }

    /// Starts every slot at generation `generation` (modulo the generation bits), so that the
    /// ids of this table differ from those of a previous table on the same link: a late response
    /// from an earlier run (a load sweep) is then an unknown id, not a false match.
    pub fn with_first_generation(mut self, generation: u32) -> Self {
        let generation = generation & self.generation_mask;
        for slot in self.slots.iter_mut() {
            slot.generation = generation;
        }
        self.first_generation = generation;
        self
    }

    /// Puts `tag` in the top `tag_bits` bits of every id (at most [`MAX_TAG_BITS`]), so that
    /// any client thread can tell from a response's id which thread sent the request
    /// ([`tag_of`]); the generation keeps the bits that are left (at least 8: the table
    /// shrinks if it must). Call before any insert and before [`Self::with_first_generation`].
    pub fn with_tag(self, tag: u32, tag_bits: u32) -> Self {
        let tag_bits = tag_bits.min(MAX_TAG_BITS);
        let mut table = if self.index_bits + tag_bits > MAX_INDEX_BITS {
            Self::with_exact_index_bits(MAX_INDEX_BITS - tag_bits)
        } else {
            self
        };
        table.tag_bits = tag_bits;
        table.tag = tag & (u32::MAX >> (32 - tag_bits.max(1)));
        table.generation_mask = u32::MAX >> (table.index_bits + tag_bits);
        table
    }

    /// A first generation for the next table on the same link: past every generation this
    /// table has issued.
    pub fn next_first_generation(&self) -> u32 {
        self.first_generation
            .wrapping_add(self.wraps)
            .wrapping_add(2)
    }

    /// A table big enough that a request is kept at least `timeout_ns` at `max_rate_rps` before
    /// its slot is reused (rounded up to a power of two, within the bit limits).
    pub fn for_rate(max_rate_rps: f64, timeout_ns: u64) -> Self {
        let wanted = (max_rate_rps.max(0.0) * timeout_ns as f64 / 1e9).ceil();
        let wanted = if wanted.is_finite() {
            wanted.min((1u64 << MAX_INDEX_BITS) as f64)
        } else {
            0.0
        };
        let slots = (wanted as u64).max(1).next_power_of_two();
        Self::with_index_bits(slots.trailing_zeros())
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Requests currently outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Takes the next slot for `info`; returns the request's wire id and, if the slot still held
    /// an outstanding request, that request (now expired, never answered).
    #[inline]
    pub fn insert(&mut self, info: RequestInfo) -> (u32, Option<Expired>) {
        let index = self.cursor;
        self.cursor = (self.cursor + 1) & (self.slots.len() - 1);
        if self.cursor == 0 {
            self.wraps = self.wraps.wrapping_add(1);
        }
        let slot = &mut self.slots[index];
        let mut expired = None;
        match slot.state {
            SlotState::Unused => {}
            state => {
                slot.previous = if state == SlotState::Outstanding {
                    expired = Some(Expired(slot.info));
                    self.outstanding -= 1;
                    SlotState::Expired
                } else {
                    state
                };
                slot.previous_request = GivenUp::from(&slot.info);
                slot.generation = (slot.generation + 1) & self.generation_mask;
            }
        }
        slot.info = info;
        slot.state = SlotState::Outstanding;
        self.outstanding += 1;
        let id = (slot.generation << self.index_bits) | index as u32;
        (self.tagged(id), expired)
    }

    /// `id` with this table's tag in its top bits.
    #[inline]
    fn tagged(&self, id: u32) -> u32 {
        match self.tag_bits {
            0 => id,
            bits => id | (self.tag << (32 - bits)),
        }
    }

    /// Takes back a request that was inserted but could not be transmitted. Returns whether `id`
    /// was outstanding.
    pub fn cancel(&mut self, id: u32) -> bool {
        let (index, generation) = self.split(id);
        let slot = &mut self.slots[index];
        if slot.state == SlotState::Outstanding && slot.generation == generation {
            slot.state = SlotState::Cancelled;
            self.outstanding -= 1;
            true
        } else {
            false
        }
    }

    /// Matches a response id.
    #[inline]
    pub fn complete(&mut self, id: u32) -> MatchOutcome {
        self.complete_if(id, |_| true)
    }

    /// Matches a response id, completing the request only if `accept` agrees with what was sent
    /// (otherwise [`MatchOutcome::Mismatched`], and the request stays outstanding).
    #[inline]
    pub fn complete_if(
        &mut self,
        id: u32,
        accept: impl FnOnce(&RequestInfo) -> bool,
    ) -> MatchOutcome {
        let (index, generation) = self.split(id);
        let slot = &mut self.slots[index];
        if slot.generation == generation {
            match slot.state {
                SlotState::Outstanding if !accept(&slot.info) => MatchOutcome::Mismatched,
                SlotState::Outstanding => {
                    slot.state = SlotState::Answered;
                    self.outstanding -= 1;
                    MatchOutcome::Matched(slot.info)
                }
                SlotState::Answered | SlotState::AnsweredLate => MatchOutcome::Duplicate,
                SlotState::Expired => {
                    slot.state = SlotState::AnsweredLate;
                    MatchOutcome::Late(GivenUp::from(&slot.info))
                }
                SlotState::Unused | SlotState::Cancelled => MatchOutcome::UnknownId,
            }
        } else if slot.state != SlotState::Unused
            && ((slot.generation.wrapping_sub(1)) & self.generation_mask) == generation
        {
            match slot.previous {
                SlotState::Answered | SlotState::AnsweredLate => MatchOutcome::Duplicate,
                SlotState::Expired => {
                    slot.previous = SlotState::AnsweredLate;
                    MatchOutcome::Late(slot.previous_request)
                }
                _ => MatchOutcome::UnknownId,
            }
        } else {
            MatchOutcome::UnknownId
        }
    }

    /// Expires every outstanding request (end of the run), calling `on_expired` for each.
    pub fn expire_all(&mut self, mut on_expired: impl FnMut(RequestInfo)) {
        for slot in self.slots.iter_mut() {
            if slot.state == SlotState::Outstanding {
                slot.state = SlotState::Expired;
                on_expired(slot.info);
            }
        }
        self.outstanding = 0;
    }

    #[inline]
    fn split(&self, id: u32) -> (usize, u32) {
        if self.tag_bits > 0 && tag_of(id, self.tag_bits) != self.tag {
            // Another thread's id: no generation of ours matches it.
            return (0, u32::MAX);
        }
        let index = (id as usize) & (self.slots.len() - 1);
        let generation = id.checked_shr(self.index_bits).unwrap_or(0) & self.generation_mask;
        (index, generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(t: u64) -> RequestInfo {
        RequestInfo {
            intended_send_ns: t,
            type_slot: (t % 3) as u32,
            warmup: false,
            trace: NO_TRACE,
        }
    }

    #[test]
    fn matched_then_duplicate() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let (id, expired) = table.insert(info(5));
        assert_eq!(expired, None);
        assert_eq!(table.outstanding(), 1);
        assert_eq!(table.complete(id), MatchOutcome::Matched(info(5)));
        assert_eq!(table.outstanding(), 0);
        assert_eq!(table.complete(id), MatchOutcome::Duplicate);
    }

    #[test]
    fn mismatched_response_leaves_request_outstanding() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let (id, _) = table.insert(info(4));
        assert_eq!(
            table.complete_if(id, |i| i.type_slot == 9),
            MatchOutcome::Mismatched
        );
        assert_eq!(table.outstanding(), 1);
        assert_eq!(
            table.complete_if(id, |i| i.type_slot == 1),
            MatchOutcome::Matched(info(4))
        );
    }

    #[test]
    fn unknown_ids_never_issued() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        assert_eq!(table.complete(0), MatchOutcome::UnknownId);
        assert_eq!(table.complete(u32::MAX), MatchOutcome::UnknownId);
        let (id, _) = table.insert(info(1));
        // Same index, a generation never issued.
        assert_eq!(table.complete(id | (7 << 6)), MatchOutcome::UnknownId);
        assert_eq!(table.outstanding(), 1);
    }

    #[test]
    fn wraparound_expires_outstanding_and_late_response_is_late() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let capacity = table.capacity();
        let (first, _) = table.insert(info(0));
        for i in 1..capacity {
            let (id, expired) = table.insert(info(i as u64));
            assert_eq!(expired, None);
            assert_eq!(table.complete(id), MatchOutcome::Matched(info(i as u64)));
        }
        // The cursor is back on slot 0, still outstanding: it expires.
        let (reused, expired) = table.insert(info(99));
        assert_eq!(expired, Some(Expired(info(0))));
        assert_ne!(reused, first);
        assert_eq!(
            table.complete(first),
            MatchOutcome::Late(GivenUp::from(&info(0)))
        );
        // Answered once, late: the next copy is a duplicate.
        assert_eq!(table.complete(first), MatchOutcome::Duplicate);
        assert_eq!(table.complete(reused), MatchOutcome::Matched(info(99)));
    }

    #[test]
    fn late_response_after_expire_all_is_late_once() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let warm = RequestInfo {
            warmup: true,
            ..info(4)
        };
        let (id, _) = table.insert(warm);
        table.expire_all(|_| {});
        assert_eq!(
            table.complete(id),
            MatchOutcome::Late(GivenUp {
                type_slot: 1,
                warmup: true
            })
        );
        assert_eq!(table.complete(id), MatchOutcome::Duplicate);
    }

    #[test]
    fn duplicate_of_previous_generation_is_duplicate() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let (first, _) = table.insert(info(0));
        assert!(matches!(table.complete(first), MatchOutcome::Matched(_)));
        for i in 1..table.capacity() {
            let (id, _) = table.insert(info(i as u64));
            table.complete(id);
        }
        let (_, expired) = table.insert(info(7));
        assert_eq!(expired, None);
        assert_eq!(table.complete(first), MatchOutcome::Duplicate);
    }

    #[test]
    fn cancel_takes_back_and_expire_all_reports_rest() {
        let mut table = InFlightTable::with_exact_index_bits(6);
        let (a, _) = table.insert(info(1));
        let (_b, _) = table.insert(info(2));
        assert!(table.cancel(a));
        assert!(!table.cancel(a));
        assert_eq!(table.complete(a), MatchOutcome::UnknownId);
        let mut expired = Vec::new();
        table.expire_all(|i| expired.push(i));
        assert_eq!(expired, vec![info(2)]);
        assert_eq!(table.outstanding(), 0);
    }

    #[test]
    fn a_new_table_does_not_match_the_previous_tables_ids() {
        let mut old = InFlightTable::with_exact_index_bits(6);
        let old_ids: Vec<u32> = (0..150).map(|t| old.insert(info(t)).0).collect();
        let mut new = InFlightTable::with_exact_index_bits(6)
            .with_first_generation(old.next_first_generation());
        for t in 0..64 {
            new.insert(info(1000 + t));
        }
        for id in old_ids {
            assert!(
                !matches!(new.complete(id), MatchOutcome::Matched(_)),
                "{id:#x}"
            );
        }
        assert_eq!(new.outstanding(), 64);
    }

    #[test]
    fn public_constructor_clamps() {
        assert_eq!(
            InFlightTable::with_index_bits(3).capacity(),
            1 << MIN_INDEX_BITS
        );
        assert_eq!(
            InFlightTable::with_index_bits(40).capacity(),
            1 << MAX_INDEX_BITS
        );
    }

    #[test]
    fn for_rate_sizes_to_rate_times_timeout() {
        assert_eq!(
            InFlightTable::for_rate(200_000.0, 1_000_000_000).capacity(),
            1 << 18
        );
        assert_eq!(
            InFlightTable::for_rate(1000.0, 1_000_000_000).capacity(),
            1 << MIN_INDEX_BITS
        );
        assert_eq!(
            InFlightTable::for_rate(1e6, 1_000_000_000).capacity(),
            1 << 20
        );
        assert_eq!(
            InFlightTable::for_rate(1e12, 1_000_000_000).capacity(),
            1 << MAX_INDEX_BITS
        );
        assert_eq!(
            InFlightTable::for_rate(f64::NAN, 1).capacity(),
            1 << MIN_INDEX_BITS
        );
    }

    proptest! {
        /// Against a model: each issued id matches exactly once while its slot has not been
        /// reused; no other id ever matches.
        #[test]
        fn matches_at_most_once(ops in proptest::collection::vec((any::<bool>(), any::<u32>()), 1..3000)) {
            let mut table = InFlightTable::with_exact_index_bits(6);
            let mut issued: Vec<(u32, RequestInfo, bool)> = Vec::new();
            for (n, (send, pick)) in ops.into_iter().enumerate() {
                if send || issued.is_empty() {
                    let (id, _) = table.insert(info(n as u64));
                    issued.push((id, info(n as u64), false));
                } else {
                    let k = pick as usize % issued.len();
                    let (id, sent, answered) = issued[k];
                    let still_in_table = issued.len() - k <= table.capacity();
                    let outcome = table.complete(id);
                    if answered || !still_in_table {
                        prop_assert!(!matches!(outcome, MatchOutcome::Matched(_)));
                    } else {
                        prop_assert_eq!(outcome, MatchOutcome::Matched(sent));
                        issued[k].2 = true;
                    }
                }
                prop_assert!(table.outstanding() <= table.capacity());
            }
        }
    }

    #[test]
    fn tagged_ids_carry_their_thread_and_match_only_in_their_table() {
        let info = RequestInfo {
            intended_send_ns: 5,
            type_slot: 0,
            warmup: false,
            trace: NO_TRACE,
        };
        let mut table = InFlightTable::with_index_bits(20).with_tag(3, 2);
        let mut other = InFlightTable::with_index_bits(20).with_tag(1, 2);
        let (id, _) = table.insert(info);
        let (other_id, _) = other.insert(info);
        assert_eq!((tag_of(id, 2), tag_of(other_id, 2)), (3, 1));
        assert_eq!(table.complete(other_id), MatchOutcome::UnknownId);
        assert_eq!(table.complete(id), MatchOutcome::Matched(info));
        assert_eq!(table.complete(id), MatchOutcome::Duplicate);
        // The generation wraps within the bits left, the tag stays.
        let mut small = InFlightTable::with_exact_index_bits(1).with_tag(2, 8);
        for _ in 0..1_000 {
            let (id, _) = small.insert(info);
            assert_eq!(tag_of(id, 8), 2);
            assert_eq!(small.complete(id), MatchOutcome::Matched(info));
        }
        // A table too big for the tag shrinks to leave 8 generation bits.
        let big = InFlightTable::with_index_bits(MAX_INDEX_BITS).with_tag(0, 4);
        assert_eq!(big.capacity(), 1 << (MAX_INDEX_BITS - 4));
    }
}
