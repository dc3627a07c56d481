//! The dispatcher's slab of pending requests: a fixed array of slots and a free list, so that
//! a request parked between RX and dispatch is named by a small integer (the scheduler
//! [`Token`]) and parking or taking one never allocates.
//!
//! Invariants: a token returned by `insert` names exactly one occupied slot until `take`
//! returns its item; `take` of a free or out-of-range token returns `None` and changes nothing.

use psp_scheduler::Token;

/// A fixed-capacity slab.
#[derive(Debug)]
pub struct PendingSlab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> PendingSlab<T> {
    /// A slab of `capacity` slots (at most `u32::MAX`; larger requests are capped).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(u32::MAX as usize);
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || None);
        // Pop order 0, 1, 2...: the free list is a stack, so push in reverse.
        let free = (0..capacity as u32).rev().collect();
        Self { slots, free }
    }

    /// Parks `item`; `Err` hands it back when every slot is taken.
    #[inline]
    pub fn insert(&mut self, item: T) -> Result<Token, T> {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(item);
                Ok(Token(u64::from(slot)))
            }
            None => Err(item),
        }
    }

    /// Takes the item parked under `token`.
    #[inline]
    pub fn take(&mut self, token: Token) -> Option<T> {
        let slot = usize::try_from(token.0).ok()?;
        let item = self.slots.get_mut(slot)?.take()?;
        // `slot` indexed `slots`, whose length fits u32 (capped in `new`).
        self.free.push(slot as u32);
        Some(item)
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_take_full_and_bogus_tokens() {
        let mut slab = PendingSlab::new(2);
        let a = slab.insert("a").expect("slot");
        let b = slab.insert("b").expect("slot");
        assert_eq!(slab.insert("c"), Err("c"));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.take(a), Some("a"));
        assert_eq!(slab.take(a), None, "taken twice");
        assert_eq!(slab.take(Token(99)), None, "out of range");
        let c = slab.insert("c").expect("freed slot reused");
        assert_eq!(c, a);
        assert_eq!(slab.take(b), Some("b"));
        assert_eq!(slab.take(c), Some("c"));
        assert!(slab.is_empty());
        assert_eq!(slab.capacity(), 2);
    }
}
