//! Ethernet ports (`rte_eth_dev_*`) and their queue handles; the DPDK [`Port`] implementation.
//!
//! An [`EthPort`] is configured and started by [`EthPort::start`] and stopped and closed when the
//! port and every queue handle taken from it are gone (they share the device through an `Arc`).
//! Queue handles are taken once each, so exactly one thread polls a queue.
//!
//! Tested in `tests/dpdk_ring.rs` (`net_ring` loopback through the `Port` trait) and
//! `tests/dpdk_memif.rs` (two memif ports: queue pairing, peer against raw echo).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use psp_net::port::{Port, PortStats, RxQueue, TxQueue};

use super::{register_current_thread, sys, DpdkError, Eal, Mbuf, Mempool, Result};

/// `SOCKET_ID_ANY` (rte_memory.h).
const SOCKET_ID_ANY: i32 = -1;
/// How often the link state is polled while waiting for it.
const LINK_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Most packets one `rte_eth_{rx,tx}_burst` call takes (its count is a u16).
const MAX_BURST: usize = u16::MAX as usize;

/// How to set a port up.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// DPDK port id (the order EAL probed devices in: 0 for the only `--vdev`).
    pub port_id: u16,
    /// RX queues (the dispatcher polls queue 0).
    pub rx_queues: u16,
    /// TX queues (the dispatcher's queue 0, then one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_ring_size: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_ring_size: u16,
    /// Put the port in promiscuous mode (ignored by devices that cannot, e.g. memif).
    pub promiscuous: bool,
    /// The MAC address to use (a config's `network.mac`): set on the device where it can be,
    /// and reported by [`Port::mac`] in any case (memif and ring do not filter by MAC).
    pub mac: Option<[u8; 6]>,
}

impl PortConfig {
    /// The original's RX/TX ring size (psp context.hh: 128 each). memif's own ring size is set
    /// by its `rsize` devarg instead.
    pub const DEFAULT_RING_SIZE: u16 = 128;

    /// Port `port_id` with 1 RX queue and `1 + workers` TX queues (Perséphone's layout).
    pub fn server(port_id: u16, workers: u16) -> Self {
        Self {
            port_id,
            rx_queues: 1,
            tx_queues: 1 + workers,
            rx_ring_size: Self::DEFAULT_RING_SIZE,
            tx_ring_size: Self::DEFAULT_RING_SIZE,
            promiscuous: true,
            mac: None,
        }
    }
}

/// Drivers that refuse different RX and TX queue counts.
const EQUAL_QUEUE_COUNT_DRIVERS: [&str; 1] = ["net_tap"];

/// Drivers that spread received packets over all their RX queues whatever the configuration:
/// net_af_packet opens one AF_PACKET socket per queue pair (`qpairs=N`) at probe time, in a
/// PACKET_FANOUT hash group, so a flow may land on any of them. Every RX queue of these is set
/// up, and the handle of RX queue 0 also polls the queues never handed out, so that no flow
/// lands on a queue nobody reads.
const FANOUT_RX_DRIVERS: [&str; 1] = ["net_af_packet"];

/// Whether the device's driver is one of `drivers`.
fn driver_is_one_of(info: &sys::rte_eth_dev_info, drivers: &[&str]) -> bool {
    if info.driver_name.is_null() {
        return false;
    }
    // SAFETY: driver_name points to the driver's static NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(info.driver_name) };
    drivers
        .iter()
        .any(|driver| name.to_bytes() == driver.as_bytes())
}

fn driver_needs_equal_queue_counts(info: &sys::rte_eth_dev_info) -> bool {
    driver_is_one_of(info, &EQUAL_QUEUE_COUNT_DRIVERS)
}

/// The device, shared by the port and its queue handles; stopped and closed when the last goes.
#[derive(Debug)]
struct Device {
    port_id: u16,
    pool: Arc<Mempool>,
    eal: Eal,
    /// What each RX queue handed out, by queue.
    rx_counters: Box<[QueueCounters]>,
    /// What each TX queue had accepted, by queue.
    tx_counters: Box<[QueueCounters]>,
    /// Frames the RX handles dropped because they spanned several buffers (reported in
    /// `rx_errors`, so that no drop is invisible).
    rx_multi_segment_drops: AtomicU64,
}

/// Packets and bytes one queue moved, counted by the queue's own thread (single writer:
/// relaxed load + store, no read-modify-write) and read by [`Port::stats`]. A cache line each,
/// so queues on different threads never share one.
///
/// They back up the device counters: memif zeroes its counters when the peer disconnects, so
/// a summary printed after the client left would otherwise read 0.
#[derive(Debug, Default)]
#[repr(align(64))]
struct QueueCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl QueueCounters {
    #[inline]
    fn add(&self, packets: u64, bytes: u64) {
        self.packets.store(
            self.packets.load(Ordering::Relaxed) + packets,
            Ordering::Relaxed,
        );
        self.bytes.store(
            self.bytes.load(Ordering::Relaxed) + bytes,
            Ordering::Relaxed,
        );
    }

    fn sum(counters: &[QueueCounters]) -> (u64, u64) {
        counters.iter().fold((0, 0), |(packets, bytes), c| {
            (
                packets + c.packets.load(Ordering::Relaxed),
                bytes + c.bytes.load(Ordering::Relaxed),
            )
        })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: no queue handle is left (they hold this Arc), so no thread is polling; stop
        // then close is the documented teardown. Errors are irrelevant at this point.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
    }
}

/// A started DPDK port. Implements [`Port`] (this is the "DpdkPort").
#[derive(Debug)]
pub struct EthPort {
    device: Arc<Device>,
    mac: Option<[u8; 6]>,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    /// RX queues set up but never handed out, polled by RX queue 0's handle
    /// ([`FANOUT_RX_DRIVERS`]).
    rx_unclaimed: Vec<u16>,
}

/// The DPDK implementation of psp-net's [`Port`].
pub type DpdkPort = EthPort;

fn check(ret: i32, operation: impl FnOnce() -> String) -> Result<()> {
    if ret < 0 {
        Err(DpdkError::call(operation(), ret))
    } else {
        Ok(())
    }
}

impl EthPort {
    /// Number of ports EAL probed.
    pub fn count_available() -> u16 {
        // SAFETY: reads the ethdev table.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Configures `config.port_id` with its queues (RX buffers from `pool`) and starts it.
    /// Does not wait for the link: see [`EthPort::wait_link_up`].
    pub fn start(eal: &Eal, pool: Arc<Mempool>, config: &PortConfig) -> Result<Self> {
        let port_id = config.port_id;
        // SAFETY: reads the ethdev table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::NoSuchPort {
                port_id,
                available: Self::count_available(),
            });
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port; info is a writable struct of the right type.
        let ret = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
        check(ret, || format!("rte_eth_dev_info_get(port {port_id})"))?;
        for (direction, wanted, max) in [
            ("RX", config.rx_queues, info.max_rx_queues),
            ("TX", config.tx_queues, info.max_tx_queues),
        ] {
            if wanted > max || wanted == 0 {
                return Err(DpdkError::TooManyQueues {
                    port_id,
                    direction,
                    wanted,
                    max,
                });
            }
        }
        let rx_unclaimed = configure_queues(port_id, &info, config, &pool)?;
        // From here on, dropping `device` stops and closes the port.
        let device = Arc::new(Device {
            port_id,
            pool,
            eal: eal.clone(),
            rx_counters: (0..config.rx_queues)
                .map(|_| QueueCounters::default())
                .collect(),
            tx_counters: (0..config.tx_queues)
                .map(|_| QueueCounters::default())
                .collect(),
            rx_multi_segment_drops: AtomicU64::new(0),
        });
        // SAFETY: fully configured port.
        check(unsafe { sys::rte_eth_dev_start(port_id) }, || {
            format!("rte_eth_dev_start(port {port_id})")
        })?;
        if config.promiscuous {
            // SAFETY: started port. memif and ring do not support it; that is fine.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        }
        if let Some(mac) = config.mac {
            let mut addr = sys::rte_ether_addr { addr_bytes: mac };
            // SAFETY: started port; addr is a valid address the driver copies. Drivers that
            // cannot change their address (-ENOTSUP) still get the override in `mac()`.
            let _ = unsafe { sys::rte_eth_dev_default_mac_addr_set(port_id, &mut addr) };
        }
        Ok(Self {
            device,
            mac: config.mac,
            rx_taken: vec![false; usize::from(config.rx_queues)],
            tx_taken: vec![false; usize::from(config.tx_queues)],
            rx_unclaimed,
        })
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.device.port_id
    }

    /// The pool RX buffers come from.
    pub fn pool(&self) -> &Arc<Mempool> {
        &self.device.pool
    }

    /// Whether the link is up now.
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: started port; link is a writable struct of the right type.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.port_id(), &mut link) };
        ret == 0 && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP
    }

    /// Waits until the link is up (a memif link needs its peer started), at most `timeout`.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while !self.link_up() {
            if started.elapsed() >= timeout {
                return Err(DpdkError::LinkDown {
                    port_id: self.port_id(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(LINK_POLL_INTERVAL);
        }
        Ok(())
    }

    /// Stops and starts the port again. A memif client connects to its server when the port
    /// starts, and DPDK does not retry on its own: this is how it reconnects to a server that
    /// went away and came back (`psp-client --reconnect`). Queue set-up and counters stay.
    ///
    /// No queue may be polled while the port is stopped: the caller hands in, exclusively,
    /// every queue this port gave out (checked: same port, each once, none missing).
    pub fn restart(&self, rxs: &mut [DpdkRxQueue], txs: &mut [DpdkTxQueue]) -> Result<()> {
        let port_id = self.port_id();
        let all_handed_in = |taken: &[bool], ids: &mut dyn Iterator<Item = (u16, u16)>| {
            let mut seen = vec![false; taken.len()];
            for (port, queue) in ids {
                let q = usize::from(queue);
                if port != port_id || q >= seen.len() || seen[q] {
                    return false;
                }
                seen[q] = true;
            }
            seen == taken
        };
        if !all_handed_in(
            &self.rx_taken,
            &mut rxs.iter().map(|q| (q.port_id, q.queue_id)),
        ) || !all_handed_in(
            &self.tx_taken,
            &mut txs.iter().map(|q| (q.port_id, q.queue_id)),
        ) {
            return Err(DpdkError::QueuesInUse {
                port_id,
                detail: format!(
                    "{} RX and {} TX queue(s) handed in, {} and {} taken",
                    rxs.len(),
                    txs.len(),
                    self.rx_taken.iter().filter(|&&t| t).count(),
                    self.tx_taken.iter().filter(|&&t| t).count()
                ),
            });
        }
        // SAFETY: every queue handle of this port is exclusively borrowed by this call (checked
        // above), so no thread polls the port while it is stopped; stop then start is DPDK's
        // documented way to restart a configured port.
        check(unsafe { sys::rte_eth_dev_stop(port_id) }, || {
            format!("rte_eth_dev_stop(port {port_id})")
        })?;
        // SAFETY: as above; the port is configured and stopped.
        check(unsafe { sys::rte_eth_dev_start(port_id) }, || {
            format!("rte_eth_dev_start(port {port_id})")
        })
    }

    /// Resets the device counters.
    pub fn reset_stats(&self) {
        // SAFETY: valid port.
        let _ = unsafe { sys::rte_eth_stats_reset(self.port_id()) };
    }
}

/// Configures `port_id` (stopped) with the queues `config` asks for (padded where the driver
/// needs it) and sets each one up on `pool`. Returns the RX queues set up but not offered to
/// callers (fan-out drivers such as af_packet: polled along with queue 0).
fn configure_queues(
    port_id: u16,
    info: &sys::rte_eth_dev_info,
    config: &PortConfig,
    pool: &Mempool,
) -> Result<Vec<u16>> {
    // Some drivers (net_tap) need as many RX as TX queues: pad the smaller side with
    // queues that are set up but never handed out (without RSS nothing arrives on them).
    let (mut rx_queues, tx_queues) = if driver_needs_equal_queue_counts(info) {
        let both = config.rx_queues.max(config.tx_queues);
        (both, both)
    } else {
        (config.rx_queues, config.tx_queues)
    };
    let rx_unclaimed: Vec<u16> = if driver_is_one_of(info, &FANOUT_RX_DRIVERS) {
        rx_queues = rx_queues.max(info.max_rx_queues);
        (config.rx_queues..rx_queues).collect()
    } else {
        Vec::new()
    };
    // All-zero is the valid default configuration (no RSS, no offloads).
    let conf = sys::rte_eth_conf::default();
    // SAFETY: valid, stopped port; conf outlives the call (DPDK copies it).
    let ret = unsafe { sys::rte_eth_dev_configure(port_id, rx_queues, tx_queues, &conf) };
    check(ret, || format!("rte_eth_dev_configure(port {port_id})"))?;
    let (mut rx_ring, mut tx_ring) = (config.rx_ring_size, config.tx_ring_size);
    // SAFETY: configured port; the two counts are writable u16s.
    let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_ring, &mut tx_ring) };
    check(ret, || {
        format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {port_id})")
    })?;
    // SAFETY: valid port.
    let socket = match unsafe { sys::rte_eth_dev_socket_id(port_id) } {
        socket if socket < 0 => SOCKET_ID_ANY,
        socket => socket,
    };
    let socket = socket as u32;
    for queue in 0..rx_queues {
        // SAFETY: configured port, queue in range, live pool (kept alive by Device);
        // NULL rx_conf means the device defaults.
        let ret = unsafe {
            sys::rte_eth_rx_queue_setup(
                port_id,
                queue,
                rx_ring,
                socket,
                std::ptr::null(),
                pool.as_ptr(),
            )
        };
        check(ret, || {
            format!("rte_eth_rx_queue_setup(port {port_id}, queue {queue})")
        })?;
    }
    for queue in 0..tx_queues {
        // SAFETY: configured port, queue in range; NULL tx_conf means the device defaults.
        let ret = unsafe {
            sys::rte_eth_tx_queue_setup(port_id, queue, tx_ring, socket, std::ptr::null())
        };
        check(ret, || {
            format!("rte_eth_tx_queue_setup(port {port_id}, queue {queue})")
        })?;
    }
    Ok(rx_unclaimed)
}

impl Port for EthPort {
    type Buf = Mbuf;
    type Rx = DpdkRxQueue;
    type Tx = DpdkTxQueue;

    fn mac(&self) -> [u8; 6] {
        if let Some(mac) = self.mac {
            return mac;
        }
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port; addr is a writable struct of the right type.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.port_id(), &mut addr) };
        if ret == 0 {
            addr.addr_bytes
        } else {
            [0; 6]
        }
    }

    fn rx_queue_count(&self) -> u16 {
        self.rx_taken.len() as u16
    }

    fn tx_queue_count(&self) -> u16 {
        self.tx_taken.len() as u16
    }

    fn take_rx(&mut self, queue: u16) -> Option<DpdkRxQueue> {
        let taken = self.rx_taken.get_mut(usize::from(queue))?;
        if std::mem::replace(taken, true) {
            return None;
        }
        Some(DpdkRxQueue {
            port_id: self.device.port_id,
            queue_id: queue,
            also_poll: if queue == 0 {
                self.rx_unclaimed.clone()
            } else {
                Vec::new()
            },
            multi_segment_dropped: 0,
            device: Arc::clone(&self.device),
        })
    }

    fn take_tx(&mut self, queue: u16) -> Option<DpdkTxQueue> {
        let taken = self.tx_taken.get_mut(usize::from(queue))?;
        if std::mem::replace(taken, true) {
            return None;
        }
        Some(DpdkTxQueue {
            port_id: self.device.port_id,
            queue_id: queue,
            pool: self.device.pool.as_ptr(),
            device: Arc::clone(&self.device),
        })
    }

    /// The device's counters; packet and byte counts are never below what this port's queues
    /// counted themselves (memif resets its counters when the peer disconnects).
    fn stats(&self) -> PortStats {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: valid port; stats is a writable struct of the right type.
        if unsafe { sys::rte_eth_stats_get(self.port_id(), &mut stats) } != 0 {
            stats = sys::rte_eth_stats::default();
        }
        let (rx_packets, rx_bytes) = QueueCounters::sum(&self.device.rx_counters);
        let (tx_packets, tx_bytes) = QueueCounters::sum(&self.device.tx_counters);
        PortStats {
            rx_packets: stats.ipackets.max(rx_packets),
            tx_packets: stats.opackets.max(tx_packets),
            rx_bytes: stats.ibytes.max(rx_bytes),
            tx_bytes: stats.obytes.max(tx_bytes),
            rx_missed: stats.imissed + stats.rx_nombuf,
            rx_errors: stats.ierrors + self.device.rx_multi_segment_drops.load(Ordering::Relaxed),
            tx_errors: stats.oerrors,
        }
    }
}

/// An RX queue of an [`EthPort`], owned by the thread that polls it.
#[derive(Debug)]
pub struct DpdkRxQueue {
    port_id: u16,
    queue_id: u16,
    /// Further device queues this handle polls after its own ([`FANOUT_RX_DRIVERS`]).
    also_poll: Vec<u16>,
    multi_segment_dropped: u64,
    device: Arc<Device>,
}

impl DpdkRxQueue {
    /// The queue's index on its port.
    pub fn queue_id(&self) -> u16 {
        self.queue_id
    }

    /// Frames dropped because they spanned several buffers (larger than one buffer's data
    /// room; never the case for psp's frames with the default pool).
    pub fn multi_segment_dropped(&self) -> u64 {
        self.multi_segment_dropped
    }
}

impl RxQueue for DpdkRxQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut kept = self.burst_from(self.queue_id, out, max);
        for i in 0..self.also_poll.len() {
            if kept >= max {
                break;
            }
            kept += self.burst_from(self.also_poll[i], out, max - kept);
        }
        kept
    }

    fn on_thread_start(&mut self) {
        // Without an lcore id the thread still works, only without mempool caches.
        let _ = register_current_thread(&self.device.eal);
    }
}

impl DpdkRxQueue {
    /// One burst of at most `max` packets from device queue `queue` (this handle's own, or one
    /// of `also_poll`), counted under this handle's queue.
    #[inline]
    fn burst_from(&mut self, queue: u16, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let wanted = max.min(MAX_BURST);
        out.reserve(wanted);
        let before = out.len();
        let spare = out.spare_capacity_mut();
        // SAFETY: `spare` has room for `wanted` pointers and Mbuf is repr(transparent) over a
        // non-null mbuf pointer; the driver writes `received` valid mbufs it hands over to us.
        // Only this thread polls this queue (handles are taken once; an unclaimed queue is
        // polled by RX queue 0's handle alone).
        let received = unsafe {
            sys::rte_eth_rx_burst(
                self.port_id,
                queue,
                spare.as_mut_ptr().cast::<*mut sys::rte_mbuf>(),
                wanted as u16,
            )
        };
        // SAFETY: the first `received` spare slots now hold owned, initialised mbufs.
        unsafe { out.set_len(before + usize::from(received)) };
        let mut index = before;
        let mut bytes = 0;
        while index < out.len() {
            if out[index].segments() > 1 {
                drop(out.swap_remove(index));
                self.multi_segment_dropped += 1;
                self.device
                    .rx_multi_segment_drops
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                bytes += out[index].len() as u64;
                index += 1;
            }
        }
        let kept = out.len() - before;
        self.device.rx_counters[usize::from(self.queue_id)].add(kept as u64, bytes);
        kept
    }
}

/// A TX queue of an [`EthPort`], owned by the thread that transmits on it.
#[derive(Debug)]
pub struct DpdkTxQueue {
    port_id: u16,
    queue_id: u16,
    pool: *mut sys::rte_mempool,
    device: Arc<Device>,
}

// SAFETY: `pool` points to the pool `device` keeps alive, and mempools are thread-safe; the
// queue itself is used by one thread at a time (it is owned).
unsafe impl Send for DpdkTxQueue {}

impl DpdkTxQueue {
    /// The queue's index on its port.
    pub fn queue_id(&self) -> u16 {
        self.queue_id
    }
}

impl TxQueue for DpdkTxQueue {
    type Buf = Mbuf;

    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        // SAFETY: the pool is live (held by `device`); the new mbuf is exclusively ours.
        unsafe { Mbuf::from_raw(sys::rte_pktmbuf_alloc(self.pool)) }
    }

    #[inline]
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let count = pkts.len().min(MAX_BURST);
        if count == 0 {
            return 0;
        }
        let offered_bytes: u64 = pkts[..count].iter().map(|m| m.len() as u64).sum();
        let base = pkts.as_mut_ptr();
        // SAFETY: `pkts` holds `count` valid mbufs, laid out as pointers (repr(transparent)).
        // The driver takes ownership of the first `sent`; only this thread uses this queue.
        let sent = usize::from(unsafe {
            sys::rte_eth_tx_burst(
                self.port_id,
                self.queue_id,
                base.cast::<*mut sys::rte_mbuf>(),
                count as u16,
            )
        });
        let remaining = pkts.len() - sent;
        // SAFETY: the first `sent` entries now belong to the driver: shift the rest over them
        // (a bitwise move, no drop) and shorten the vector, so they are never freed by us.
        unsafe {
            std::ptr::copy(base.add(sent), base, remaining);
            pkts.set_len(remaining);
        }
        // The packets not taken are still ours (now at the front): what was sent is the rest.
        let unsent_bytes: u64 = pkts[..count - sent].iter().map(|m| m.len() as u64).sum();
        self.device.tx_counters[usize::from(self.queue_id)]
            .add(sent as u64, offered_bytes - unsent_bytes);
        sent
    }

    fn on_thread_start(&mut self) {
        // Without an lcore id the thread still works, only without mempool caches.
        let _ = register_current_thread(&self.device.eal);
    }
}
