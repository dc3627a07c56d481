//! Packet-buffer pools (`rte_pktmbuf_pool_create`).
//!
//! Invariant: a pool outlives every buffer taken from it and keeps the EAL alive (see the
//! module docs of [`crate::dpdk`]). Tested in `tests/dpdk_ring.rs` and `tests/dpdk_memif.rs`.

use std::ffi::CString;
use std::ptr::NonNull;

use super::{sys, DpdkError, Eal, Mbuf, Result};

/// `SOCKET_ID_ANY` (rte_memory.h).
const SOCKET_ID_ANY: i32 = -1;

/// How to size a pool.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Pool name, unique in the process (DPDK's memzone names are at most 26 characters).
    pub name: String,
    /// Number of buffers. DPDK recommends 2^k - 1.
    pub mbufs: u32,
    /// Per-lcore cache size (0 disables; at most `mbufs / 1.5`).
    pub cache_size: u32,
    /// Data room per buffer, headroom included.
    pub data_room_bytes: u16,
}

impl MempoolConfig {
    /// Buffers in a server's pool: the original's 16383 (psp dpdk.cc, per port).
    pub const DEFAULT_MBUFS: u32 = 16_383;
    /// The original's cache size of 512 is meant for 14 workers; 256 suits a few.
    pub const DEFAULT_CACHE_SIZE: u32 = 256;

    /// A pool named `name` with the defaults above and DPDK's default buffer size (2 KiB +
    /// headroom, which holds any standard Ethernet frame in one segment).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            mbufs: Self::DEFAULT_MBUFS,
            cache_size: Self::DEFAULT_CACHE_SIZE,
            data_room_bytes: sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
        }
    }
}

/// A pool of packet buffers. Shared (`Arc`) by the port and queues that use it.
///
/// Dropping it frees the pool if every buffer is back; otherwise the pool (and the EAL) is
/// leaked, so outstanding [`Mbuf`]s never point into freed memory.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    _eal: Eal,
}

// SAFETY: DPDK mempools are thread-safe with the default ops ("ring_mp_mc"): any thread may get
// and put buffers concurrently. The pointer itself is never mutated.
unsafe impl Send for Mempool {}
// SAFETY: as above; all methods taking `&self` call thread-safe DPDK functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool on the caller's NUMA socket.
    pub fn new(eal: &Eal, config: &MempoolConfig) -> Result<Self> {
        let name = CString::new(config.name.clone())
            .map_err(|_| DpdkError::BadName(config.name.clone()))?;
        // SAFETY: the EAL is up (we hold a handle); name is a valid C string DPDK copies.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                name.as_ptr(),
                config.mbufs,
                config.cache_size,
                0,
                config.data_room_bytes,
                SOCKET_ID_ANY,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            DpdkError::from_rte_errno(format!(
                "rte_pktmbuf_pool_create({:?}, {} mbufs)",
                config.name, config.mbufs
            ))
        })?;
        Ok(Self {
            raw,
            name: config.name.clone(),
            _eal: eal.clone(),
        })
    }

    /// A fresh empty buffer, or `None` if the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live; the returned mbuf (if any) is exclusively ours.
        unsafe { Mbuf::from_raw(sys::rte_pktmbuf_alloc(self.raw.as_ptr())) }
    }

    /// Buffers available (in the pool and in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Buffers currently handed out (owned by `Mbuf`s or by the driver's rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw pool, for queue setup.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.in_use() != 0 {
            // Buffers are still out: freeing would leave them dangling.
            Eal::note_memory_leaked();
            return;
        }
        // SAFETY: no buffer is out and no port uses the pool any more (ports hold an Arc to it).
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
