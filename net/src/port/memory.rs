//! An in-memory port pair: two [`MemPort`]s wired back to back, like a DPDK `net_memif` link.
//!
//! [`pair`] returns sides A and B. Queue `i` of one side's TX arrives on queue `i` of the other
//! side's RX, through a bounded single-producer single-consumer ring (`rtrb`) of
//! [`MemPortConfig::ring_slots`] packets. A full ring makes `tx_burst` take fewer packets (the
//! caller keeps the rest), exactly like a NIC TX ring. Each side allocates from its own
//! [`BufPool`]; a buffer returns to the pool it came from when dropped, on whichever side.
//!
//! Invariants: no packet is lost or duplicated between a successful `tx_burst` and the peer's
//! `rx_burst`; per-queue order is preserved; each queue handle is taken at most once.
//! Tested below (addressing per queue, order, full ring, pool exhaustion, stats) and by the server
//! tests, which run the whole dataplane over a pair.

use std::sync::Arc;

use super::pool::{BufPool, PoolBuf, DEFAULT_BUF_CAPACITY};
use super::{PacketBuf, Port, PortStats, RxQueue, SoftwareCounters, TxQueue};

/// Default ring depth per queue: memif's `rsize=14` (16k slots), which absorbs bursts when a
/// polling thread is descheduled on a small machine (memif rings fill while their poller is away).
pub const DEFAULT_RING_SLOTS: usize = 1 << 14;

/// Default buffers per side: enough to fill every default ring of a few queues.
pub const DEFAULT_MEM_POOL_BUFFERS: usize = 1 << 15;

/// Default MAC of side A (locally administered).
pub const DEFAULT_MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// Default MAC of side B (locally administered).
pub const DEFAULT_MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// Shape of an in-memory link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemPortConfig {
    /// Queues per direction on each side (RX count = TX count = `queues`).
    pub queues: u16,
    /// Depth of each queue's ring, in packets.
    pub ring_slots: usize,
    /// Buffers in each side's pool.
    pub pool_buffers: usize,
    /// Capacity of each buffer, in bytes.
    pub buf_capacity: usize,
    /// MAC of side A.
    pub mac_a: [u8; 6],
    /// MAC of side B.
    pub mac_b: [u8; 6],
}

impl MemPortConfig {
    /// `queues` queues per direction, other fields at their defaults.
    pub fn with_queues(queues: u16) -> Self {
        Self {
            queues,
            ..Self::default()
        }
    }
}

impl Default for MemPortConfig {
    fn default() -> Self {
        Self {
            queues: 1,
            ring_slots: DEFAULT_RING_SLOTS,
            pool_buffers: DEFAULT_MEM_POOL_BUFFERS,
            buf_capacity: DEFAULT_BUF_CAPACITY,
            mac_a: DEFAULT_MAC_A,
            mac_b: DEFAULT_MAC_B,
        }
    }
}

/// One side of an in-memory link.
#[derive(Debug)]
pub struct MemPort {
    mac: [u8; 6],
    rx: Vec<Option<MemRxQueue>>,
    tx: Vec<Option<MemTxQueue>>,
    pool: Arc<BufPool>,
    counters: Arc<SoftwareCounters>,
}

/// Receive queue of a [`MemPort`].
#[derive(Debug)]
pub struct MemRxQueue {
    ring: rtrb::Consumer<PoolBuf>,
    counters: Arc<SoftwareCounters>,
}

/// Transmit queue of a [`MemPort`].
#[derive(Debug)]
pub struct MemTxQueue {
    ring: rtrb::Producer<PoolBuf>,
    pool: Arc<BufPool>,
    counters: Arc<SoftwareCounters>,
}

/// Builds a linked pair `(A, B)`: A's TX queue `i` feeds B's RX queue `i` and vice versa.
/// A `queues` of 0 is raised to 1.
pub fn pair(config: &MemPortConfig) -> (MemPort, MemPort) {
    let queues = usize::from(config.queues.max(1));
    let slots = config.ring_slots.max(1);
    let mut side_a = MemPort::empty(config.mac_a, config);
    let mut side_b = MemPort::empty(config.mac_b, config);
    for _ in 0..queues {
        let (a_to_b_tx, a_to_b_rx) = rtrb::RingBuffer::new(slots);
        let (b_to_a_tx, b_to_a_rx) = rtrb::RingBuffer::new(slots);
        side_a.tx.push(Some(side_a.tx_queue(a_to_b_tx)));
        side_b.rx.push(Some(side_b.rx_queue(a_to_b_rx)));
        side_b.tx.push(Some(side_b.tx_queue(b_to_a_tx)));
        side_a.rx.push(Some(side_a.rx_queue(b_to_a_rx)));
    }
    (side_a, side_b)
}

impl MemPort {
    fn empty(mac: [u8; 6], config: &MemPortConfig) -> Self {
        Self {
            mac,
            rx: Vec::new(),
            tx: Vec::new(),
            pool: BufPool::new(config.pool_buffers, config.buf_capacity),
            counters: Arc::default(),
        }
    }

    fn tx_queue(&self, ring: rtrb::Producer<PoolBuf>) -> MemTxQueue {
        MemTxQueue {
            ring,
            pool: Arc::clone(&self.pool),
            counters: Arc::clone(&self.counters),
        }
    }

    fn rx_queue(&self, ring: rtrb::Consumer<PoolBuf>) -> MemRxQueue {
        MemRxQueue {
            ring,
            counters: Arc::clone(&self.counters),
        }
    }

    /// This side's buffer pool (for tests and the load generator's accounting).
    pub fn pool(&self) -> &Arc<BufPool> {
        &self.pool
    }
}

impl Port for MemPort {
    type Buf = PoolBuf;
    type Rx = MemRxQueue;
    type Tx = MemTxQueue;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx_queue_count(&self) -> u16 {
        // `pair` builds at most u16::MAX queues.
        u16::try_from(self.rx.len()).unwrap_or(u16::MAX)
    }

    fn tx_queue_count(&self) -> u16 {
        u16::try_from(self.tx.len()).unwrap_or(u16::MAX)
    }

    fn take_rx(&mut self, queue: u16) -> Option<MemRxQueue> {
        self.rx.get_mut(usize::from(queue))?.take()
    }

    fn take_tx(&mut self, queue: u16) -> Option<MemTxQueue> {
        self.tx.get_mut(usize::from(queue))?.take()
    }

    fn stats(&self) -> PortStats {
        self.counters.snapshot()
    }
}

impl RxQueue for MemRxQueue {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let mut received = 0;
        let mut bytes = 0;
        while received < max {
            match self.ring.pop() {
                Ok(buf) => {
                    bytes += buf.data().len() as u64;
                    out.push(buf);
                    received += 1;
                }
                Err(_) => break,
            }
        }
        self.counters.add_rx(received as u64, bytes);
        received
    }
}

impl TxQueue for MemTxQueue {
    type Buf = PoolBuf;

    fn alloc(&mut self) -> Option<PoolBuf> {
        self.pool.alloc()
    }

    fn tx_burst(&mut self, pkts: &mut Vec<PoolBuf>) -> usize {
        let room = self.ring.slots().min(pkts.len());
        let mut bytes = 0;
        for buf in pkts.drain(..room) {
            bytes += buf.data().len() as u64;
            // `room` slots were free and only this thread produces: the push cannot fail.
            if let Err(rtrb::PushError::Full(buf)) = self.ring.push(buf) {
                drop(buf);
            }
        }
        self.counters.add_tx(room as u64, bytes);
        room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(tx: &mut MemTxQueue, bytes: &[u8]) -> bool {
        let mut buf = tx.alloc().expect("buffer");
        buf.set_len(bytes.len()).expect("fits");
        buf.data_mut().copy_from_slice(bytes);
        let mut burst = vec![buf];
        tx.tx_burst(&mut burst) == 1
    }

    #[test]
    fn queue_i_arrives_on_peer_queue_i_in_order() {
        let (mut a, mut b) = pair(&MemPortConfig::with_queues(3));
        assert_eq!((a.rx_queue_count(), a.tx_queue_count()), (3, 3));
        let mut a_tx2 = a.take_tx(2).expect("A tx 2");
        let mut b_rx2 = b.take_rx(2).expect("B rx 2");
        let mut b_rx0 = b.take_rx(0).expect("B rx 0");
        for i in 0..5u8 {
            assert!(send(&mut a_tx2, &[i, i]));
        }
        let mut out = Vec::with_capacity(8);
        assert_eq!(b_rx0.rx_burst(&mut out, 8), 0);
        assert_eq!(b_rx2.rx_burst(&mut out, 3), 3);
        assert_eq!(b_rx2.rx_burst(&mut out, 8), 2);
        let firsts: Vec<u8> = out.iter().map(|b| b.data()[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
        assert_eq!(a.stats().tx_packets, 5);
        assert_eq!(b.stats().rx_packets, 5);
        assert_eq!(b.stats().rx_bytes, 10);
        // B → A works the same way.
        let mut b_tx0 = b.take_tx(0).expect("B tx 0");
        let mut a_rx0 = a.take_rx(0).expect("A rx 0");
        assert!(send(&mut b_tx0, &[9]));
        out.clear();
        assert_eq!(a_rx0.rx_burst(&mut out, 8), 1);
        assert_eq!(out[0].data(), &[9]);
    }

    #[test]
    fn queues_are_taken_once_and_bounded() {
        let (mut a, _b) = pair(&MemPortConfig::with_queues(1));
        assert!(a.take_tx(0).is_some());
        assert!(a.take_tx(0).is_none());
        assert!(a.take_rx(1).is_none());
    }

    #[test]
    fn full_ring_leaves_packets_with_caller() {
        let config = MemPortConfig {
            ring_slots: 4,
            pool_buffers: 16,
            ..MemPortConfig::default()
        };
        let (mut a, mut b) = pair(&config);
        let mut tx = a.take_tx(0).expect("tx");
        let mut burst: Vec<PoolBuf> = (0..6).map(|_| tx.alloc().expect("buffer")).collect();
        assert_eq!(tx.tx_burst(&mut burst), 4);
        assert_eq!(burst.len(), 2, "two packets stay with the caller");
        let mut rx = b.take_rx(0).expect("rx");
        let mut out = Vec::new();
        assert_eq!(rx.rx_burst(&mut out, 2), 2);
        assert_eq!(tx.tx_burst(&mut burst), 2);
        assert!(burst.is_empty());
    }

    #[test]
    fn pool_exhaustion_and_return_across_sides() {
        let config = MemPortConfig {
            pool_buffers: 2,
            ..MemPortConfig::default()
        };
        let (mut a, mut b) = pair(&config);
        let mut tx = a.take_tx(0).expect("tx");
        let mut burst = vec![tx.alloc().expect("1"), tx.alloc().expect("2")];
        assert!(tx.alloc().is_none());
        assert_eq!(tx.tx_burst(&mut burst), 2);
        let mut rx = b.take_rx(0).expect("rx");
        let mut out = Vec::new();
        rx.rx_burst(&mut out, 8);
        drop(out); // B drops A's buffers: they go back to A's pool.
        assert_eq!(a.pool().in_use(), 0);
        assert!(tx.alloc().is_some());
    }
}
