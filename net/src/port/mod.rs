//! The [`Port`] trait: what the dataplane needs from a network device.
//!
//! A port has numbered RX and TX queues. Each queue is taken once, as an owned handle that can
//! move to the thread that polls it (the dispatcher owns RX queue 0; worker `i` owns TX queue
//! `i + 1`; the dispatcher's own TX queue 0 answers ARP). Buffers are owned values that free
//! themselves on drop (a DPDK mbuf goes back to its mempool), so a packet can never be freed twice.
//!
//! Implementations: the DPDK port (root crate, `dpdk` feature), the in-memory pair
//! ([`memory::pair`]) and the kernel UDP port ([`udp::UdpPort`]) of this crate, both with
//! [`pool::PoolBuf`] buffers; [`fault::FaultPort`] wraps any port to inject receive faults.
//!
//! Invariants: `take_rx`/`take_tx` hand out each queue at most once; `rx_burst` and `tx_burst`
//! never block (only `RxQueue::wait_ready`, called by idle pollers, does); packets `tx_burst` did not take stay with the caller.
//! Tested in each implementation's module (ordering and queue pairing, full rings, pool
//! exhaustion, UDP framing, fault injection) and, for DPDK, in the root crate's `tests/dpdk_*.rs`.

pub mod fault;
pub mod memory;
pub mod pool;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};

/// A packet buffer. Dropping it releases it.
pub trait PacketBuf: Send + 'static {
    /// The packet's bytes (the first `len` bytes of the buffer).
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable in place.
    fn data_mut(&mut self) -> &mut [u8];
    /// Sets the packet length. Fails, leaving the buffer unchanged, above [`PacketBuf::capacity`].
    fn set_len(&mut self, len: usize) -> Result<(), BufferTooSmall>;
    /// The largest length `set_len` accepts.
    fn capacity(&self) -> usize;
    /// When a received packet arrived, stamped below the queue (the kernel's receive
    /// timestamp of a UDP datagram, after [`RxQueue::stamp_arrivals`]); `None` where the
    /// device does not say (the default), and the caller takes its own receive time.
    fn arrived_at(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// `set_len` beyond the buffer's capacity.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("packet length {wanted} exceeds buffer capacity {capacity}")]
pub struct BufferTooSmall {
    /// The requested length.
    pub wanted: usize,
    /// The buffer's capacity.
    pub capacity: usize,
}

/// A receive queue handle, owned by one thread.
pub trait RxQueue: Send + 'static {
    /// The buffer type.
    type Buf: PacketBuf;
    /// Appends up to `max` received packets to `out`; returns how many. Never blocks.
    /// Callers reserve `out`'s capacity once, so this does not allocate.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;
    /// Called once by the polling thread before its first burst (DPDK registers the thread as
    /// an lcore here). Default: nothing.
    fn on_thread_start(&mut self) {}
    /// Blocks until a packet may be ready or `timeout` passes, giving the core back meanwhile
    /// (an idle load generator then timestamps a response when it arrives, not when a nap
    /// ends): `Some(false)` when the timeout passed with nothing to receive, `Some(true)` when
    /// a packet may be ready (or a signal cut the wait short). Returns `None` at once if the
    /// queue cannot wait (the default: polled devices), and the caller naps instead. Never
    /// receives anything.
    fn wait_ready(&mut self, _timeout: std::time::Duration) -> Option<bool> {
        None
    }
    /// Asks the queue to stamp every packet it receives from now on with its arrival time
    /// ([`PacketBuf::arrived_at`]); returns whether it will. A caller that measures receive
    /// times then need not be awake when a packet arrives. Default: `false` (polled devices).
    fn stamp_arrivals(&mut self) -> bool {
        false
    }
}

/// A transmit queue handle, owned by one thread.
pub trait TxQueue: Send + 'static {
    /// The buffer type.
    type Buf: PacketBuf;
    /// A fresh empty buffer (length 0), or `None` if the pool is exhausted.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// Transmits packets from the front of `pkts`, removing those the device took; returns how
    /// many. Packets it did not take stay in `pkts` (the caller retries or drops them).
    fn tx_burst(&mut self, pkts: &mut Vec<Self::Buf>) -> usize;
    /// Called once by the owning thread before its first use. Default: nothing.
    fn on_thread_start(&mut self) {}
}

/// Device counters, as the device reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets the device dropped on receive (ring full, no buffer).
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// The counters of a port whose device keeps none (the in-memory pair, the UDP socket), shared
/// by its queues. Queues add once per non-empty burst; relaxed ordering, as these are statistics
/// and order nothing.
#[derive(Debug, Default)]
pub(crate) struct SoftwareCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_errors: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_errors: AtomicU64,
}

impl SoftwareCounters {
    /// Counts a receive burst of `packets` packets, `bytes` bytes in all (nothing if empty).
    #[inline]
    pub(crate) fn add_rx(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.rx_packets.fetch_add(packets, Ordering::Relaxed);
            self.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts a transmit burst of `packets` packets, `bytes` bytes in all (nothing if empty).
    #[inline]
    pub(crate) fn add_tx(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.tx_packets.fetch_add(packets, Ordering::Relaxed);
            self.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts one receive error.
    #[inline]
    pub(crate) fn add_rx_error(&self) {
        self.rx_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one transmit error.
    #[inline]
    pub(crate) fn add_tx_error(&self) {
        self.tx_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far (`rx_missed` is 0: nothing below these ports drops on receive).
    pub(crate) fn snapshot(&self) -> PortStats {
        PortStats {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            rx_missed: 0,
            rx_errors: self.rx_errors.load(Ordering::Relaxed),
            tx_errors: self.tx_errors.load(Ordering::Relaxed),
        }
    }
}

/// A network device with numbered queues.
pub trait Port {
    /// The buffer type of every queue.
    type Buf: PacketBuf;
    /// RX queue handle.
    type Rx: RxQueue<Buf = Self::Buf>;
    /// TX queue handle.
    type Tx: TxQueue<Buf = Self::Buf>;
    /// The port's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Number of RX queues.
    fn rx_queue_count(&self) -> u16;
    /// Number of TX queues.
    fn tx_queue_count(&self) -> u16;
    /// Takes RX queue `queue`; `None` if out of range or already taken.
    fn take_rx(&mut self, queue: u16) -> Option<Self::Rx>;
    /// Takes TX queue `queue`; `None` if out of range or already taken.
    fn take_tx(&mut self, queue: u16) -> Option<Self::Tx>;
    /// Device counters.
    fn stats(&self) -> PortStats;
}
