//! The dispatcher's slab of pending requests: a fixed array of slots and a free list, so that
//! a request parked between RX and dispatch is named by a small integer (the scheduler
//! [`Token`]) and parking or taking one never allocates.
//!
//! Invariants: a token returned by `insert` names exactly one occupied slot until `take`
//! returns its item; `take` of a free or out-of-range token returns `None` and changes nothing.
//! Under preemptive time sharing a dispatched request keeps its token (the scheduler re-queues
//! it by that token): `lend` takes the item but keeps the slot reserved, `restore` parks it
//! again (preempted), `release` frees the slot (completed). A reserved slot is neither free
//! nor occupied: `take` and `insert` never touch it.

use psp_scheduler::Token;

/// A fixed-capacity slab.
#[derive(Debug)]
pub struct PendingSlab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    /// Reserved slots (lent items).
    lent: usize,
}

impl<T> PendingSlab<T> {
    /// A slab of `capacity` slots (at most `u32::MAX`; larger requests are capped).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(u32::MAX as usize);
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || None);
        // Pop order 0, 1, 2...: the free list is a stack, so push in reverse.
        let free = (0..capacity as u32).rev().collect();
        Self {
            slots,
            free,
            lent: 0,
        }
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

    /// The item parked under `token`, to update in place.
    #[inline]
    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        self.slots.get_mut(usize::try_from(token.0).ok()?)?.as_mut()
    }

    /// Takes the item parked under `token` and keeps the slot reserved for it (see the module
    /// docs): `restore` or `release` it later.
    #[inline]
    pub fn lend(&mut self, token: Token) -> Option<T> {
        let slot = usize::try_from(token.0).ok()?;
        let item = self.slots.get_mut(slot)?.take()?;
        self.lent += 1;
        Some(item)
    }

    /// Parks a lent item again under its token; `Err` hands it back if `token` is not lent
    /// (occupied or out of range).
    #[inline]
    pub fn restore(&mut self, token: Token, item: T) -> Result<(), T> {
        let Some(slot) = usize::try_from(token.0)
            .ok()
            .and_then(|slot| self.slots.get_mut(slot))
            .filter(|slot| slot.is_none())
        else {
            return Err(item);
        };
        *slot = Some(item);
        self.lent -= 1;
        Ok(())
    }

    /// Frees the reserved slot of a lent item that finished. Returns `false` (and changes
    /// nothing) if `token` names an occupied or out-of-range slot.
    #[inline]
    pub fn release(&mut self, token: Token) -> bool {
        match usize::try_from(token.0)
            .ok()
            .and_then(|s| self.slots.get(s))
        {
            Some(None) if self.lent > 0 => {
                self.lent -= 1;
                // The slot indexed `slots`, whose length fits u32.
                self.free.push(token.0 as u32);
                true
            }
            _ => false,
        }
    }

    /// Slots reserved for lent items.
    pub fn lent(&self) -> usize {
        self.lent
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len() - self.lent
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

    #[test]
    fn lent_slots_stay_reserved_until_released() {
        let mut slab = PendingSlab::new(2);
        let a = slab.insert("a").expect("slot");
        assert_eq!(slab.lend(a), Some("a"));
        assert_eq!((slab.len(), slab.lent()), (0, 1));
        let b = slab.insert("b").expect("slot");
        assert_ne!(b, a, "a reserved slot is not reused");
        assert_eq!(slab.insert("c"), Err("c"));
        assert_eq!(slab.take(a), None, "nothing parked there");
        assert_eq!(slab.restore(b, "x"), Err("x"), "b is occupied");
        assert_eq!(slab.restore(a, "a2"), Ok(()));
        assert_eq!(slab.lend(a), Some("a2"));
        assert!(!slab.release(b), "b is not lent");
        assert!(slab.release(a));
        assert!(!slab.release(a), "released twice");
        assert_eq!(slab.insert("c"), Ok(a));
        assert_eq!((slab.len(), slab.lent()), (2, 0));
    }
}
