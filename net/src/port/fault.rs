//! A fault-injecting wrapper around any [`Port`] (smoltcp's `FaultInjector`, for the dataplane).
//!
//! [`FaultPort`] passes every queue through unchanged except that, on **receive**, it drops,
//! corrupts or truncates packets according to a [`FaultPlan`]: deterministic "one in N" rules
//! driven by a seeded xorshift generator, so a test with a given seed sees the same faults every
//! run. Counts of what it did are in [`FaultCounters`], shared by all queues.
//!
//! Invariants: with every rate at 0 the wrapper is transparent; a dropped packet's buffer is
//! released (dropped) at once; corrupting never changes a packet's length and truncating never
//! lengthens it.
//! Tested below and by the server's malformed-traffic test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{PacketBuf, Port, PortStats, RxQueue};

/// What to do to received packets. A rate of `n` means "about one packet in `n`"; 0 disables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Drop about one received packet in this many.
    pub drop_one_in: u64,
    /// Flip one random byte of about one received packet in this many.
    pub corrupt_one_in: u64,
    /// Cut about one received packet in this many to a random shorter length.
    pub truncate_one_in: u64,
    /// Seed of the per-queue generators (queue `q` uses `seed ^ q`).
    pub seed: u64,
}

/// What a [`FaultPort`] did, over all its queues.
#[derive(Debug, Default)]
pub struct FaultCounters {
    /// Packets dropped.
    pub dropped: AtomicU64,
    /// Packets with one byte flipped.
    pub corrupted: AtomicU64,
    /// Packets shortened.
    pub truncated: AtomicU64,
}

/// A [`Port`] whose receive queues inject faults.
#[derive(Debug)]
pub struct FaultPort<P> {
    inner: P,
    plan: FaultPlan,
    counters: Arc<FaultCounters>,
}

impl<P: Port> FaultPort<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, plan: FaultPlan) -> Self {
        Self {
            inner,
            plan,
            counters: Arc::default(),
        }
    }

    /// The shared fault counters.
    pub fn counters(&self) -> Arc<FaultCounters> {
        Arc::clone(&self.counters)
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }
}

/// A receive queue that injects faults.
#[derive(Debug)]
pub struct FaultRxQueue<R> {
    inner: R,
    plan: FaultPlan,
    rng_state: u64,
    counters: Arc<FaultCounters>,
}

/// Replaces a zero xorshift state (which would stay zero forever); any odd constant works.
const XORSHIFT_NONZERO_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

impl<R> FaultRxQueue<R> {
    /// xorshift64 (Marsaglia 2003): fast, deterministic, good enough to pick faults.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng_state = x;
        x
    }

    fn one_in(&mut self, n: u64) -> bool {
        n != 0 && self.next_random().is_multiple_of(n)
    }
}

impl<R: RxQueue> RxQueue for FaultRxQueue<R> {
    type Buf = R::Buf;

    fn rx_burst(&mut self, out: &mut Vec<R::Buf>, max: usize) -> usize {
        let start = out.len();
        self.inner.rx_burst(out, max);
        let mut kept = start;
        for i in start..out.len() {
            if self.one_in(self.plan.drop_one_in) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue; // left behind, removed by the truncate below
            }
            if self.one_in(self.plan.corrupt_one_in) && !out[i].data().is_empty() {
                let len = out[i].data().len() as u64;
                let at = (self.next_random() % len) as usize;
                let flip = (self.next_random() % 255 + 1) as u8;
                out[i].data_mut()[at] ^= flip;
                self.counters.corrupted.fetch_add(1, Ordering::Relaxed);
            }
            if self.one_in(self.plan.truncate_one_in) && !out[i].data().is_empty() {
                let len = out[i].data().len() as u64;
                let new_len = (self.next_random() % len) as usize;
                if out[i].set_len(new_len).is_ok() {
                    self.counters.truncated.fetch_add(1, Ordering::Relaxed);
                }
            }
            out.swap(kept, i);
            kept += 1;
        }
        out.truncate(kept);
        kept - start
    }

    fn on_thread_start(&mut self) {
        self.inner.on_thread_start();
    }
}

impl<P: Port> Port for FaultPort<P> {
    type Buf = P::Buf;
    type Rx = FaultRxQueue<P::Rx>;
    type Tx = P::Tx;

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn rx_queue_count(&self) -> u16 {
        self.inner.rx_queue_count()
    }

    fn tx_queue_count(&self) -> u16 {
        self.inner.tx_queue_count()
    }

    fn take_rx(&mut self, queue: u16) -> Option<Self::Rx> {
        let seed = self.plan.seed ^ u64::from(queue);
        Some(FaultRxQueue {
            inner: self.inner.take_rx(queue)?,
            plan: self.plan.clone(),
            rng_state: if seed == 0 {
                XORSHIFT_NONZERO_SEED
            } else {
                seed
            },
            counters: Arc::clone(&self.counters),
        })
    }

    fn take_tx(&mut self, queue: u16) -> Option<P::Tx> {
        self.inner.take_tx(queue)
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{pair, MemPortConfig};
    use crate::port::TxQueue;

    fn roundtrip(plan: FaultPlan, packets: usize) -> (Vec<Vec<u8>>, Arc<FaultCounters>) {
        let (mut a, b) = pair(&MemPortConfig::default());
        let mut b = FaultPort::new(b, plan);
        let counters = b.counters();
        let mut tx = a.take_tx(0).expect("tx");
        let mut rx = b.take_rx(0).expect("rx");
        let mut burst = Vec::new();
        for i in 0..packets {
            let mut buf = tx.alloc().expect("buffer");
            buf.set_len(8).expect("fits");
            buf.data_mut().copy_from_slice(&(i as u64).to_le_bytes());
            burst.push(buf);
        }
        assert_eq!(tx.tx_burst(&mut burst), packets);
        let mut out = Vec::new();
        while rx.rx_burst(&mut out, 32) > 0 {}
        (out.iter().map(|b| b.data().to_vec()).collect(), counters)
    }

    #[test]
    fn transparent_without_faults() {
        let (got, counters) = roundtrip(FaultPlan::default(), 100);
        assert_eq!(got.len(), 100);
        for (i, bytes) in got.iter().enumerate() {
            assert_eq!(bytes.as_slice(), &(i as u64).to_le_bytes());
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn faults_are_counted_and_deterministic() {
        let plan = FaultPlan {
            drop_one_in: 5,
            corrupt_one_in: 7,
            truncate_one_in: 11,
            seed: 42,
        };
        let (got, counters) = roundtrip(plan.clone(), 1000);
        let dropped = counters.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped > 100 && dropped < 300, "dropped {dropped}");
        assert_eq!(got.len(), 1000 - dropped);
        assert!(counters.corrupted.load(Ordering::Relaxed) > 50);
        let truncated = counters.truncated.load(Ordering::Relaxed) as usize;
        assert_eq!(got.iter().filter(|b| b.len() < 8).count(), truncated);
        let (again, _) = roundtrip(plan, 1000);
        assert_eq!(got, again, "same seed, same faults");
    }
}
