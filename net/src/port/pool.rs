//! A fixed-size pool of heap packet buffers, the software stand-in for a DPDK mempool.
//!
//! [`BufPool::alloc`] hands out a [`PoolBuf`]: a `Vec<u8>` of fixed capacity plus a packet length.
//! Dropping the `PoolBuf` (on any thread) puts its storage back on the pool's lock-free free list,
//! so after warm-up allocation and release touch no allocator and take no lock. The pool creates
//! at most `limit` buffers, lazily; once they are all out, `alloc` returns `None` (pool
//! exhausted), like `rte_pktmbuf_alloc`.
//!
//! Invariants: a buffer's storage length always equals the pool's `buf_capacity`; `len <=
//! capacity`; a buffer is returned to the pool exactly once (on drop).
//! Tested below (exhaustion, recycling, `set_len` bounds).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_queue::ArrayQueue;

use super::{BufferTooSmall, PacketBuf};

/// Default buffer capacity in bytes: DPDK's default mbuf data room (`RTE_MBUF_DEFAULT_DATAROOM`,
/// 2048 B), above the original's 1024 B `max_rx_pkt_len`.
pub const DEFAULT_BUF_CAPACITY: usize = 2048;

/// Default number of buffers per pool: the original's mempool size (16383 mbufs, docs/design.md §3.3).
pub const DEFAULT_POOL_BUFFERS: usize = 16_383;

/// A pool of fixed-capacity packet buffers, shared (`Arc`) by every queue that allocates from it.
#[derive(Debug)]
pub struct BufPool {
    free: ArrayQueue<Vec<u8>>,
    created: AtomicUsize,
    limit: usize,
    buf_capacity: usize,
}

impl BufPool {
    /// A pool that creates at most `limit` buffers (at least 1) of `buf_capacity` bytes each.
    pub fn new(limit: usize, buf_capacity: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            free: ArrayQueue::new(limit),
            created: AtomicUsize::new(0),
            limit,
            buf_capacity,
        })
    }

    /// A fresh buffer of length 0, or `None` if all `limit` buffers are in use.
    pub fn alloc(self: &Arc<Self>) -> Option<PoolBuf> {
        let bytes = match self.free.pop() {
            Some(bytes) => bytes,
            None => {
                // Claim one of the `limit` creation slots; give it back if we lost the race.
                let before = self.created.fetch_add(1, Ordering::Relaxed);
                if before >= self.limit {
                    self.created.fetch_sub(1, Ordering::Relaxed);
                    // A buffer may have come back meanwhile.
                    self.free.pop()?
                } else {
                    vec![0; self.buf_capacity]
                }
            }
        };
        Some(PoolBuf {
            bytes,
            len: 0,
            arrived: None,
            pool: Arc::clone(self),
        })
    }

    /// Capacity of every buffer of this pool, in bytes.
    pub fn buf_capacity(&self) -> usize {
        self.buf_capacity
    }

    /// Buffers currently sitting on the free list (created and not in use).
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Buffers currently handed out.
    pub fn in_use(&self) -> usize {
        self.created
            .load(Ordering::Relaxed)
            .saturating_sub(self.free.len())
    }
}

/// A packet buffer from a [`BufPool`]; dropping it returns its storage to the pool.
#[derive(Debug)]
pub struct PoolBuf {
    bytes: Vec<u8>,
    len: usize,
    /// When the packet arrived, where the receive path knows ([`PacketBuf::arrived_at`]).
    arrived: Option<SystemTime>,
    pool: Arc<BufPool>,
}

impl PoolBuf {
    /// The whole storage (`capacity` bytes), regardless of the packet length. Receive paths write
    /// here first, then call `set_len`.
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Records when the packet arrived (a receive path that knows: the kernel's stamp).
    pub fn set_arrived_at(&mut self, arrived: Option<SystemTime>) {
        self.arrived = arrived;
    }
}

impl PacketBuf for PoolBuf {
    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }

    fn set_len(&mut self, len: usize) -> Result<(), BufferTooSmall> {
        if len > self.bytes.len() {
            return Err(BufferTooSmall {
                wanted: len,
                capacity: self.bytes.len(),
            });
        }
        self.len = len;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }

    fn arrived_at(&self) -> Option<SystemTime> {
        self.arrived
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        // The free list has room for every buffer the pool ever created, so this cannot fail;
        // if it somehow did, the storage is simply deallocated.
        let _ = self.pool.free.push(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausts_then_recycles() {
        let pool = BufPool::new(2, 64);
        let a = pool.alloc().expect("first buffer");
        let b = pool.alloc().expect("second buffer");
        assert!(pool.alloc().is_none(), "pool of 2 must be exhausted");
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.alloc().expect("recycled buffer");
        assert_eq!(c.capacity(), 64);
        assert_eq!(c.data().len(), 0);
        drop((b, c));
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn set_len_is_bounded_by_capacity() {
        let pool = BufPool::new(1, 16);
        let mut buf = pool.alloc().expect("buffer");
        assert_eq!(
            buf.set_len(17),
            Err(BufferTooSmall {
                wanted: 17,
                capacity: 16
            })
        );
        assert_eq!(buf.data().len(), 0);
        buf.set_len(16).expect("fits");
        buf.data_mut().copy_from_slice(&[7; 16]);
        assert_eq!(buf.data(), &[7; 16]);
    }

    #[test]
    fn buffers_return_from_other_threads() {
        let pool = BufPool::new(4, 32);
        let bufs: Vec<PoolBuf> = (0..4).map(|_| pool.alloc().expect("buffer")).collect();
        std::thread::spawn(move || drop(bufs))
            .join()
            .expect("dropper thread");
        assert_eq!(pool.available(), 4);
    }
}
