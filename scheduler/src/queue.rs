//! Fixed-capacity FIFO ring buffer and the worker bit set.
//!
//! [`RingQueue`] is allocated once, at construction, and never grows: `push_back` on a full
//! ring hands the value back instead of reallocating. This is what keeps the scheduler's
//! per-request path allocation-free (the original's `rqueue[RQUEUE_LEN]` rings, `Request.hh`).
//!
//! [`WorkerSet`] is a `u128` bit mask over worker indices (the original's `free_peers`, widened
//! from 32 bits so that `1 << 31` is not undefined and 128 workers fit).
//!
//! Invariants: `len <= capacity`; `head < capacity` (when `capacity > 0`); the live entries are
//! `head, head+1, …` modulo `capacity`, oldest first. Tested by the unit tests below (wrap-around,
//! full and empty rings, indexed access) and indirectly by every scheduler property test.

/// A FIFO of `Copy` values with a capacity fixed at construction.
#[derive(Clone, Debug)]
pub(crate) struct RingQueue<T: Copy + Default> {
    slots: Box<[T]>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> RingQueue<T> {
    /// An empty ring holding at most `capacity` values (allocates `capacity` slots now).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: vec![T::default(); capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Values queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Physical slot of the `offset`-th live entry (`offset < capacity`).
    #[inline]
    fn slot(&self, offset: usize) -> usize {
        let i = self.head + offset;
        if i >= self.slots.len() {
            i - self.slots.len()
        } else {
            i
        }
    }

    /// Appends `value`; a full ring hands it back.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) -> Result<(), T> {
        if self.len == self.slots.len() {
            return Err(value);
        }
        let i = self.slot(self.len);
        self.slots[i] = value;
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the oldest value.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.slots[self.head];
        self.head = self.slot(1);
        self.len -= 1;
        Some(value)
    }

    /// Removes and returns the `offset`-th oldest value, keeping the others in order (O(len);
    /// off the per-request path: a shadow scheduler following the live decision).
    pub(crate) fn remove(&mut self, offset: usize) -> Option<T> {
        if offset >= self.len {
            return None;
        }
        let value = self.slots[self.slot(offset)];
        for i in offset..self.len - 1 {
            let (to, from) = (self.slot(i), self.slot(i + 1));
            self.slots[to] = self.slots[from];
        }
        self.len -= 1;
        Some(value)
    }

    /// The oldest value.
    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The `offset`-th oldest value (0 = the head).
    #[inline]
    pub(crate) fn get(&self, offset: usize) -> Option<&T> {
        if offset < self.len {
            Some(&self.slots[self.slot(offset)])
        } else {
            None
        }
    }
}

/// A set of worker indices `0..128` as a bit mask.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSet(pub u128);

impl WorkerSet {
    /// The empty set.
    pub const EMPTY: WorkerSet = WorkerSet(0);

    /// Workers `start..end` (`end <= 128`).
    pub fn range(start: usize, end: usize) -> WorkerSet {
        let upto = |n: usize| -> u128 {
            if n >= 128 {
                u128::MAX
            } else {
                (1u128 << n) - 1
            }
        };
        if start >= end {
            WorkerSet::EMPTY
        } else {
            WorkerSet(upto(end) & !upto(start))
        }
    }

    /// Whether `w` is in the set.
    #[inline]
    pub fn contains(self, w: usize) -> bool {
        w < 128 && self.0 & (1u128 << w) != 0
    }

    /// Adds `w` (`w < 128`).
    #[inline]
    pub fn insert(&mut self, w: usize) {
        self.0 |= 1u128 << w;
    }

    /// Removes `w` (`w < 128`).
    #[inline]
    pub fn remove(&mut self, w: usize) {
        self.0 &= !(1u128 << w);
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The intersection.
    #[inline]
    pub fn and(self, other: WorkerSet) -> WorkerSet {
        WorkerSet(self.0 & other.0)
    }

    /// The highest index in the set.
    #[inline]
    pub fn highest(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(127 - self.0.leading_zeros() as usize)
        }
    }

    /// The lowest index in the set.
    #[inline]
    pub fn lowest(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_fifo_across_wrap_around() {
        let mut q = RingQueue::<u32>::with_capacity(3);
        assert!(q.is_empty());
        for round in 0..5u32 {
            q.push_back(round * 10).unwrap();
            q.push_back(round * 10 + 1).unwrap();
            assert_eq!(q.front(), Some(&(round * 10)));
            assert_eq!(q.get(1), Some(&(round * 10 + 1)));
            assert_eq!(q.get(2), None);
            assert_eq!(q.pop_front(), Some(round * 10));
            assert_eq!(q.pop_front(), Some(round * 10 + 1));
            assert_eq!(q.pop_front(), None);
        }
    }

    #[test]
    fn full_ring_hands_the_value_back() {
        let mut q = RingQueue::<u32>::with_capacity(2);
        q.push_back(1).unwrap();
        q.push_back(2).unwrap();
        assert_eq!(q.push_back(3), Err(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_front(), Some(1));
        q.push_back(3).unwrap();
        assert_eq!((q.get(0), q.get(1)), (Some(&2), Some(&3)));
    }

    #[test]
    fn zero_capacity_ring_refuses_everything() {
        let mut q = RingQueue::<u32>::with_capacity(0);
        assert_eq!(q.push_back(7), Err(7));
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn worker_set_ranges_and_lowest() {
        assert_eq!(WorkerSet::range(0, 128).0, u128::MAX);
        assert_eq!(WorkerSet::range(2, 5).0, 0b11100);
        assert!(WorkerSet::range(5, 5).is_empty());
        let mut s = WorkerSet::range(3, 6);
        assert_eq!(s.lowest(), Some(3));
        s.remove(3);
        assert_eq!(s.lowest(), Some(4));
        assert!(!s.contains(3));
        s.insert(127);
        assert!(s.contains(127));
        assert!(!s.contains(200));
        assert_eq!(s.and(WorkerSet::range(100, 128)).lowest(), Some(127));
    }

    #[test]
    fn remove_keeps_the_rest_in_order_across_the_wrap() {
        let mut q = RingQueue::<u32>::with_capacity(4);
        for v in 0..3 {
            q.push_back(v).unwrap();
        }
        q.pop_front();
        q.push_back(3).unwrap();
        q.push_back(4).unwrap(); // wrapped: 1 2 3 4
        assert_eq!(q.remove(1), Some(2));
        assert_eq!(q.remove(5), None);
        let rest: Vec<u32> = std::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(rest, [1, 3, 4]);
    }
}
