//! A [`Port`] over a kernel UDP socket, so the server and the load generator run without DPDK.
//!
//! **RX** receives one datagram per buffer and synthesizes the Ethernet II + IPv4 + UDP headers
//! around it (42 bytes, the original's `NET_HDR_SIZE`): destination = this port's MAC and bound
//! address (0.0.0.0 for a wildcard bind), source = the sender's address (and a MAC derived from
//! its IPv4 address). The same parsing code therefore runs over DPDK and over sockets; a server
//! over this port validates against the bound IP and port.
//! **TX** reads the frame's IPv4 destination and UDP destination port and `sendto`s the UDP
//! payload there; MACs and the source address are ignored (the kernel owns them). A frame that is
//! not Ethernet/IPv4/UDP, or whose lengths are inconsistent, counts as a TX error and is freed.
//!
//! A datagram that fills a buffer's whole payload room (`buf_capacity - 42` bytes) may have been
//! cut by the kernel, so it is dropped and counted in `rx_errors` instead of served truncated:
//! the largest datagram served is one byte less than the room (2005 B by default).
//! [`Port::stats`]'s `rx_missed` is the kernel's drop counter of the socket (receive buffer
//! full), read from `/proc/self/net/udp`, so overload shows where it happens. After
//! [`RxQueue::stamp_arrivals`] (the load generator asks) every datagram carries the kernel's
//! receive timestamp (`SO_TIMESTAMPNS`, read with `recvmsg`) as [`PacketBuf::arrived_at`]. The
//! kernel starts stamping arrivals a moment after the first socket of the machine asks
//! (deferred work); until then it stamps a datagram when it is read, the time the caller would
//! have taken anyway.
//!
//! Sockets are non-blocking; every queue holds its own `try_clone` of one socket, so RX and TX
//! queues can live on different threads. IPv4 only.
//!
//! Invariants: `rx_burst` and `tx_burst` never block (`wait_ready` blocks, in `ppoll`, for an
//! idle poller); a frame produced by RX, replied to in place
//! with swapped addresses, reaches the original sender.
//! Tested below over 127.0.0.1.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::SystemTime;

use super::pool::{BufPool, PoolBuf, DEFAULT_BUF_CAPACITY, DEFAULT_POOL_BUFFERS};
use super::{PacketBuf, Port, PortStats, RxQueue, SoftwareCounters, TxQueue};
use crate::wire::{self, checksum};

/// Ethernet II header length.
pub const ETH_HEADER_LEN: usize = wire::ethernet::HEADER_LEN;
/// IPv4 header length without options.
pub const IPV4_HEADER_LEN: usize = wire::ipv4::HEADER_LEN;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = wire::udp::HEADER_LEN;
/// Ethernet + IPv4 + UDP: the original's `NET_HDR_SIZE` (42 B).
pub const FRAME_HEADERS_LEN: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// EtherType of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of UDP.
const IP_PROTO_UDP: u8 = wire::ipv4::PROTOCOL_UDP;
/// TTL written into synthesized IPv4 headers (Linux's default `ip_default_ttl`).
const SYNTH_TTL: u8 = wire::ipv4::DEFAULT_TTL;

/// Default MAC of a UDP port (locally administered).
pub const DEFAULT_UDP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// How to open a [`UdpPort`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpPortConfig {
    /// Address to bind (port 0 picks a free port).
    pub bind: SocketAddrV4,
    /// RX queues (all receive from the same socket).
    pub rx_queues: u16,
    /// TX queues (all send on the same socket).
    pub tx_queues: u16,
    /// The MAC this port reports and writes as the destination of received frames.
    pub mac: [u8; 6],
    /// Buffers in the pool.
    pub pool_buffers: usize,
    /// Capacity of each buffer (headers + largest datagram), in bytes.
    pub buf_capacity: usize,
}

impl UdpPortConfig {
    /// One RX and `tx_queues` TX queues bound to `bind`, other fields at their defaults.
    pub fn new(bind: SocketAddrV4, tx_queues: u16) -> Self {
        Self {
            bind,
            rx_queues: 1,
            tx_queues,
            mac: DEFAULT_UDP_MAC,
            pool_buffers: DEFAULT_POOL_BUFFERS,
            buf_capacity: DEFAULT_BUF_CAPACITY,
        }
    }
}

/// A kernel UDP socket seen as a [`Port`].
#[derive(Debug)]
pub struct UdpPort {
    mac: [u8; 6],
    local: SocketAddrV4,
    /// The socket's inode, which names it in `/proc/self/net/udp` (its drop counter).
    inode: Option<u64>,
    /// Keeps the socket (and its drop counter) alive after the queues are dropped, so that
    /// `stats` still reads it once the server has stopped.
    _socket: UdpSocket,
    rx: Vec<Option<UdpRxQueue>>,
    tx: Vec<Option<UdpTxQueue>>,
    pool: Arc<BufPool>,
    counters: Arc<SoftwareCounters>,
}

/// Receive queue of a [`UdpPort`].
#[derive(Debug)]
pub struct UdpRxQueue {
    socket: UdpSocket,
    mac: [u8; 6],
    local: SocketAddrV4,
    pool: Arc<BufPool>,
    /// A buffer allocated for a receive that found nothing, kept for the next try.
    spare: Option<PoolBuf>,
    counters: Arc<SoftwareCounters>,
    /// Room for the kernel's receive timestamp (`SO_TIMESTAMPNS`) once
    /// [`RxQueue::stamp_arrivals`] turned it on; empty before.
    stamp_space: Vec<u8>,
}

/// Transmit queue of a [`UdpPort`].
#[derive(Debug)]
pub struct UdpTxQueue {
    socket: UdpSocket,
    pool: Arc<BufPool>,
    counters: Arc<SoftwareCounters>,
}

impl UdpPort {
    /// Binds the socket and builds the queues.
    pub fn bind(config: &UdpPortConfig) -> io::Result<Self> {
        let socket = UdpSocket::bind(config.bind)?;
        socket.set_nonblocking(true)?;
        let local = match socket.local_addr()? {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(v6) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("UdpPort is IPv4 only, bound to {v6}"),
                ))
            }
        };
        // A wildcard bind (0.0.0.0) stays the frames' destination IP as it is: the kernel does
        // not tell which local address a datagram was sent to, and a server configured with the
        // address it bound then sees frames addressed to exactly that.
        let inode = socket_inode(&socket);
        let pool = BufPool::new(config.pool_buffers, config.buf_capacity);
        let counters = Arc::<SoftwareCounters>::default();
        let mut rx = Vec::new();
        for _ in 0..config.rx_queues {
            rx.push(Some(UdpRxQueue {
                socket: socket.try_clone()?,
                mac: config.mac,
                local,
                pool: Arc::clone(&pool),
                spare: None,
                counters: Arc::clone(&counters),
                stamp_space: Vec::new(),
            }));
        }
        let mut tx = Vec::new();
        for _ in 0..config.tx_queues {
            tx.push(Some(UdpTxQueue {
                socket: socket.try_clone()?,
                pool: Arc::clone(&pool),
                counters: Arc::clone(&counters),
            }));
        }
        Ok(Self {
            mac: config.mac,
            local,
            inode,
            _socket: socket,
            rx,
            tx,
            pool,
            counters,
        })
    }

    /// The bound address, as written into received frames as their destination (a wildcard
    /// bind stays 0.0.0.0).
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// The buffer pool.
    pub fn pool(&self) -> &Arc<BufPool> {
        &self.pool
    }
}

impl Port for UdpPort {
    type Buf = PoolBuf;
    type Rx = UdpRxQueue;
    type Tx = UdpTxQueue;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn rx_queue_count(&self) -> u16 {
        u16::try_from(self.rx.len()).unwrap_or(u16::MAX)
    }

    fn tx_queue_count(&self) -> u16 {
        u16::try_from(self.tx.len()).unwrap_or(u16::MAX)
    }

    fn take_rx(&mut self, queue: u16) -> Option<UdpRxQueue> {
        self.rx.get_mut(usize::from(queue))?.take()
    }

    fn take_tx(&mut self, queue: u16) -> Option<UdpTxQueue> {
        self.tx.get_mut(usize::from(queue))?.take()
    }

    /// `rx_missed` is the kernel's count of datagrams it dropped for this socket (receive
    /// buffer full: the `drops` column of `/proc/net/udp`); `rx_errors` counts datagrams larger
    /// than a buffer, dropped rather than truncated.
    fn stats(&self) -> PortStats {
        let mut stats = self.counters.snapshot();
        stats.rx_missed = self.inode.and_then(kernel_socket_drops).unwrap_or(0);
        stats
    }
}

/// The inode of `socket` (the `inode` column of `/proc/net/udp`), from `/proc/self/fd`.
pub fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .map(|meta| meta.ino())
}

/// Datagrams the kernel dropped for the UDP socket with this inode (its `sk_drops`: receive
/// buffer full, or a bad checksum), from `/proc/self/net/udp`; `None` where that cannot be read.
pub fn kernel_socket_drops(inode: u64) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/self/net/udp").ok()?;
    udp_table_drops(&table, inode)
}

/// The `drops` column of the `/proc/net/udp` row whose `inode` column is `inode`.
fn udp_table_drops(table: &str, inode: u64) -> Option<u64> {
    /// Columns of a row: sl, local, remote, st, tx:rx queue, tr:when, retrnsmt, uid, timeout,
    /// inode, ref, pointer, drops.
    const INODE_COLUMN: usize = 9;
    const DROPS_COLUMN: usize = 12;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let row_inode: u64 = fields.get(INODE_COLUMN)?.parse().ok()?;
        (row_inode == inode)
            .then(|| fields.get(DROPS_COLUMN)?.parse().ok())
            .flatten()
    })
}

/// The MAC a synthesized frame gives a sender: locally administered, then its IPv4 address.
pub fn synthetic_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Writes Ethernet + IPv4 + UDP headers for a `payload_len`-byte datagram from `src` to `dst`
/// into `frame[..FRAME_HEADERS_LEN]`. `frame` must be at least that long.
pub fn write_frame_headers(
    frame: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload_len: usize,
) {
    let (eth, rest) = frame.split_at_mut(ETH_HEADER_LEN);
    eth[0..6].copy_from_slice(&dst_mac);
    eth[6..12].copy_from_slice(&src_mac);
    eth[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let (ip, rest) = rest.split_at_mut(IPV4_HEADER_LEN);
    let udp_len = (UDP_HEADER_LEN + payload_len) as u16;
    let ip_len = IPV4_HEADER_LEN as u16 + udp_len;
    ip[0] = 0x45; // version 4, IHL 5 words
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
    ip[8] = SYNTH_TTL;
    ip[9] = IP_PROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let header_checksum = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&header_checksum.to_be_bytes());
    let udp = &mut rest[..UDP_HEADER_LEN];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
}

/// The UDP destination and payload of an Ethernet/IPv4/UDP frame, or `None` if it is not one or
/// its lengths do not fit the frame.
pub fn frame_udp_destination(frame: &[u8]) -> Option<(SocketAddrV4, &[u8])> {
    if frame.len() < FRAME_HEADERS_LEN
        || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4
    {
        return None;
    }
    let ip = &frame[ETH_HEADER_LEN..];
    let ihl_bytes = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl_bytes < IPV4_HEADER_LEN || ip[9] != IP_PROTO_UDP {
        return None;
    }
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = ip.get(ihl_bytes..)?;
    if udp.len() < UDP_HEADER_LEN {
        return None;
    }
    let dst_port = u16::from_be_bytes([udp[2], udp[3]]);
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let payload = udp.get(UDP_HEADER_LEN..udp_len.max(UDP_HEADER_LEN))?;
    Some((SocketAddrV4::new(dst_ip, dst_port), payload))
}

impl RxQueue for UdpRxQueue {
    type Buf = PoolBuf;

    fn rx_burst(&mut self, out: &mut Vec<PoolBuf>, max: usize) -> usize {
        let mut received = 0;
        let mut bytes = 0u64;
        while received < max {
            let Some(mut buf) = self.spare.take().or_else(|| self.pool.alloc()) else {
                break; // pool exhausted: leave datagrams in the socket
            };
            let room = buf.storage_mut().len().saturating_sub(FRAME_HEADERS_LEN);
            let (result, arrived) = self.receive(&mut buf.storage_mut()[FRAME_HEADERS_LEN..]);
            match result {
                // A datagram that fills the room may have been cut (the kernel truncates
                // silently): dropped and counted, never served truncated.
                Ok((payload_len, _)) if payload_len >= room => {
                    self.counters.add_rx_error();
                    self.spare = Some(buf);
                }
                Ok((payload_len, SocketAddr::V4(sender))) => {
                    write_frame_headers(
                        buf.storage_mut(),
                        synthetic_mac(*sender.ip()),
                        self.mac,
                        sender,
                        self.local,
                        payload_len,
                    );
                    let frame_len = FRAME_HEADERS_LEN + payload_len;
                    if buf.set_len(frame_len).is_err() {
                        self.counters.add_rx_error();
                        self.spare = Some(buf);
                        continue;
                    }
                    bytes += frame_len as u64;
                    buf.set_arrived_at(arrived);
                    out.push(buf);
                    received += 1;
                }
                Ok((_, SocketAddr::V6(_))) => {
                    self.counters.add_rx_error();
                    self.spare = Some(buf);
                }
                Err(error) => {
                    if error.kind() != io::ErrorKind::WouldBlock
                        && error.kind() != io::ErrorKind::Interrupted
                    {
                        self.counters.add_rx_error();
                    }
                    self.spare = Some(buf);
                    break;
                }
            }
        }
        self.counters.add_rx(received as u64, bytes);
        received
    }

    /// Turns on `SO_TIMESTAMPNS`: every datagram then carries the time the kernel received it.
    fn stamp_arrivals(&mut self) -> bool {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
        if self.stamp_space.is_empty()
            && setsockopt(&self.socket, ReceiveTimestampns, &true).is_ok()
        {
            self.stamp_space = nix::cmsg_space!(nix::sys::time::TimeSpec);
        }
        !self.stamp_space.is_empty()
    }

    /// `ppoll` on the socket (nanosecond timeout; the thread's timer slack adds to it).
    fn wait_ready(&mut self, timeout: std::time::Duration) -> Option<bool> {
        use nix::poll::{ppoll, PollFd, PollFlags};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        let timeout = nix::sys::time::TimeSpec::from_duration(timeout);
        // 0: the timeout passed with nothing. An error (EINTR) only ends the wait early: the
        // caller polls and decides again.
        Some(!matches!(ppoll(&mut fds, Some(timeout), None), Ok(0)))
    }
}

impl UdpRxQueue {
    /// Receives one datagram into `payload`: its length and sender, and when the kernel
    /// received it once [`RxQueue::stamp_arrivals`] is on (`recvmsg` with the timestamp as
    /// control message; `recvfrom` before).
    fn receive(
        &mut self,
        payload: &mut [u8],
    ) -> (io::Result<(usize, SocketAddr)>, Option<SystemTime>) {
        if self.stamp_space.is_empty() {
            return (self.socket.recv_from(payload), None);
        }
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
        use std::os::fd::AsRawFd;
        let mut iov = [io::IoSliceMut::new(payload)];
        let message = match recvmsg::<SockaddrIn>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut self.stamp_space),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(message) => message,
            Err(errno) => return (Err(io::Error::from(errno)), None),
        };
        let arrived = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(stamp) => {
                    let since_epoch = std::time::Duration::from(stamp);
                    SystemTime::UNIX_EPOCH.checked_add(since_epoch)
                }
                _ => None,
            })
        });
        let sender = message
            .address
            .map(|address| SocketAddr::V4(SocketAddrV4::from(address)));
        match sender {
            Some(sender) => (Ok((message.bytes, sender)), arrived),
            None => (
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "datagram without a sender",
                )),
                None,
            ),
        }
    }
}

impl TxQueue for UdpTxQueue {
    type Buf = PoolBuf;

    fn alloc(&mut self) -> Option<PoolBuf> {
        self.pool.alloc()
    }

    fn tx_burst(&mut self, pkts: &mut Vec<PoolBuf>) -> usize {
        let mut taken = 0;
        let mut sent = 0u64;
        let mut bytes = 0u64;
        for buf in pkts.iter() {
            let Some((dst, payload)) = frame_udp_destination(buf.data()) else {
                self.counters.add_tx_error();
                taken += 1;
                continue;
            };
            match self.socket.send_to(payload, dst) {
                Ok(_) => {
                    sent += 1;
                    bytes += buf.data().len() as u64;
                    taken += 1;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // Unreachable destination, refused port...: the device "sent" it and failed.
                    self.counters.add_tx_error();
                    taken += 1;
                }
            }
        }
        pkts.drain(..taken);
        self.counters.add_tx(sent, bytes);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Upper bound on waiting for loopback datagrams in tests.
    const LOOPBACK_WAIT: Duration = Duration::from_secs(2);

    fn loopback_port(tx_queues: u16) -> UdpPort {
        UdpPort::bind(&UdpPortConfig::new(
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            tx_queues,
        ))
        .expect("bind 127.0.0.1")
    }

    fn recv_some(rx: &mut UdpRxQueue, want: usize) -> Vec<PoolBuf> {
        let mut out = Vec::new();
        let deadline = Instant::now() + LOOPBACK_WAIT;
        while out.len() < want && Instant::now() < deadline {
            let missing = want - out.len();
            if rx.rx_burst(&mut out, missing) == 0 {
                std::thread::yield_now();
            }
        }
        out
    }

    #[test]
    fn wait_ready_returns_when_a_datagram_is_ready() {
        let mut port = loopback_port(1);
        let addr = port.local_addr();
        let mut rx = port.take_rx(0).expect("rx 0");
        // Nothing there: waits out a short timeout and says nothing came.
        assert_eq!(rx.wait_ready(Duration::from_millis(1)), Some(false));
        let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        client.send_to(b"ready", addr).expect("send");
        // A datagram is queued: ppoll returns long before this timeout.
        let started = Instant::now();
        assert_eq!(rx.wait_ready(LOOPBACK_WAIT * 5), Some(true));
        assert!(
            started.elapsed() < LOOPBACK_WAIT * 5,
            "woken by the datagram"
        );
        assert_eq!(recv_some(&mut rx, 1).len(), 1);
    }

    #[test]
    fn stamped_datagrams_carry_the_time_they_arrived() {
        let mut port = loopback_port(1);
        let addr = port.local_addr();
        let mut rx = port.take_rx(0).expect("rx 0");
        let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        client.send_to(b"before", addr).expect("send");
        let unstamped = recv_some(&mut rx, 1);
        assert_eq!(unstamped.len(), 1);
        assert_eq!(unstamped[0].arrived_at(), None, "not asked to stamp");
        assert!(rx.stamp_arrivals());
        assert!(rx.stamp_arrivals(), "asking again changes nothing");
        // The kernel turns arrival stamps on a moment after the first socket asks (deferred
        // work); until then it stamps a datagram when it is read. Bounded retries.
        for attempt in 0.. {
            let before_send = SystemTime::now();
            client.send_to(b"stamped", addr).expect("send");
            // The datagram waits in the socket; the stamp says when it came, not when it is read.
            std::thread::sleep(Duration::from_millis(5));
            let before_receive = SystemTime::now();
            let got = recv_some(&mut rx, 1);
            assert_eq!(got.len(), 1);
            assert_eq!(&got[0].data()[FRAME_HEADERS_LEN..], b"stamped");
            let arrived = got[0].arrived_at().expect("stamped");
            assert!(arrived >= before_send, "{arrived:?} {before_send:?}");
            if arrived < before_receive {
                break;
            }
            assert!(
                attempt < 200,
                "never stamped on arrival: {arrived:?} {before_receive:?}"
            );
        }
    }

    #[test]
    fn rx_synthesizes_frame_and_tx_reply_reaches_sender() {
        let mut server = loopback_port(2);
        let server_addr = server.local_addr();
        let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        client
            .set_read_timeout(Some(LOOPBACK_WAIT))
            .expect("timeout");
        let client_addr = match client.local_addr().expect("addr") {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
        };
        client
            .send_to(b"hello-psp", server_addr)
            .expect("client send");

        let mut rx = server.take_rx(0).expect("rx 0");
        let mut frames = recv_some(&mut rx, 1);
        assert_eq!(frames.len(), 1);
        let frame = frames[0].data();
        assert_eq!(frame.len(), FRAME_HEADERS_LEN + 9);
        assert_eq!(&frame[0..6], &DEFAULT_UDP_MAC);
        assert_eq!(&frame[6..12], &synthetic_mac(Ipv4Addr::LOCALHOST));
        assert!(checksum::verify(&frame[14..34]), "valid IP checksum");
        assert_eq!(&frame[26..30], &client_addr.ip().octets(), "src ip");
        assert_eq!(&frame[30..34], &server_addr.ip().octets(), "dst ip");
        assert_eq!(
            u16::from_be_bytes([frame[34], frame[35]]),
            client_addr.port()
        );
        assert_eq!(
            u16::from_be_bytes([frame[36], frame[37]]),
            server_addr.port()
        );
        assert_eq!(&frame[FRAME_HEADERS_LEN..], b"hello-psp");

        // Reply in place: swap addresses, shorten the payload, send on TX queue 1.
        let buf = &mut frames[0];
        write_frame_headers(
            buf.storage_mut(),
            DEFAULT_UDP_MAC,
            synthetic_mac(*client_addr.ip()),
            server_addr,
            client_addr,
            5,
        );
        buf.set_len(FRAME_HEADERS_LEN + 5).expect("fits");
        let mut tx = server.take_tx(1).expect("tx 1");
        assert_eq!(tx.tx_burst(&mut frames), 1);
        let mut reply = [0u8; 64];
        let (n, from) = client.recv_from(&mut reply).expect("reply");
        assert_eq!(&reply[..n], b"hello");
        assert_eq!(from, SocketAddr::V4(server_addr));
        let stats = server.stats();
        assert_eq!((stats.rx_packets, stats.tx_packets), (1, 1));
    }

    #[test]
    fn tx_counts_malformed_frames_as_errors() {
        let mut port = loopback_port(1);
        let mut tx = port.take_tx(0).expect("tx");
        let mut buf = tx.alloc().expect("buffer");
        buf.set_len(20).expect("fits"); // shorter than the headers
        let mut burst = vec![buf];
        assert_eq!(tx.tx_burst(&mut burst), 1);
        assert!(burst.is_empty());
        assert_eq!(port.stats().tx_errors, 1);
        assert_eq!(port.stats().tx_packets, 0);
    }

    #[test]
    fn empty_socket_returns_nothing_without_blocking() {
        let mut port = loopback_port(1);
        let mut rx = port.take_rx(0).expect("rx");
        let mut out = Vec::new();
        let started = Instant::now();
        assert_eq!(rx.rx_burst(&mut out, 8), 0);
        assert!(started.elapsed() < LOOPBACK_WAIT);
        assert_eq!(
            port.pool().in_use(),
            1,
            "one spare buffer kept for the next try"
        );
    }

    /// Datagrams the kernel drops because the socket's receive buffer is full are counted in
    /// `rx_missed`: sent = received + rx_missed, exactly.
    #[test]
    fn kernel_receive_buffer_drops_are_counted() {
        const SENT: u64 = 5_000;
        let mut port = loopback_port(1);
        let server_addr = port.local_addr();
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        // Far more than the default receive buffer holds: nobody reads meanwhile.
        for id in 0..SENT {
            client
                .send_to(&id.to_le_bytes(), server_addr)
                .expect("loopback send");
        }
        let mut rx = port.take_rx(0).expect("rx");
        let mut received = 0u64;
        let mut out = Vec::with_capacity(64);
        let missed_while_open = port.stats().rx_missed;
        let deadline = Instant::now() + LOOPBACK_WAIT;
        let mut quiet_polls = 0;
        while quiet_polls < 100 && Instant::now() < deadline {
            let n = rx.rx_burst(&mut out, 64);
            received += n as u64;
            out.clear();
            quiet_polls = if n == 0 { quiet_polls + 1 } else { 0 };
        }
        // The counter outlives the queues (a server reads it after its threads stopped).
        drop(rx);
        let stats = port.stats();
        assert!(stats.rx_missed > 0, "the buffer overflowed: {stats:?}");
        assert_eq!(stats.rx_missed, missed_while_open, "{stats:?}");
        assert_eq!(received + stats.rx_missed, SENT, "{stats:?}");
    }

    /// A datagram larger than a buffer is dropped and counted, not served truncated.
    #[test]
    fn oversize_datagrams_are_counted_not_truncated() {
        let mut port = loopback_port(1);
        let server_addr = port.local_addr();
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        let room = DEFAULT_BUF_CAPACITY - FRAME_HEADERS_LEN;
        for len in [room + 1, room, room - 1, 3000] {
            client.send_to(&vec![7u8; len], server_addr).expect("send");
        }
        let mut rx = port.take_rx(0).expect("rx");
        let frames = recv_some(&mut rx, 1);
        std::thread::sleep(Duration::from_millis(50));
        let mut rest = Vec::new();
        rx.rx_burst(&mut rest, 8);
        let lens: Vec<usize> = frames.iter().chain(&rest).map(|b| b.data().len()).collect();
        assert_eq!(
            lens,
            [FRAME_HEADERS_LEN + room - 1],
            "only the one that fits"
        );
        assert_eq!(port.stats().rx_errors, 3);
    }

    #[test]
    fn udp_table_drops_are_found_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     \x20 12: 0100007F:1A85 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 9120\n";
        assert_eq!(udp_table_drops(table, 4242), Some(9120));
        assert_eq!(udp_table_drops(table, 1), None);
    }

    #[test]
    fn frame_parser_rejects_non_udp() {
        let mut frame = [0u8; 64];
        write_frame_headers(
            &mut frame,
            [0; 6],
            [0; 6],
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2),
            4,
        );
        assert!(frame_udp_destination(&frame[..46]).is_some());
        assert!(frame_udp_destination(&frame[..45]).is_none(), "payload cut");
        frame[23] = 6; // TCP
        assert!(frame_udp_destination(&frame[..46]).is_none());
    }
}

#[cfg(test)]
mod wildcard_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn wildcard_bind_keeps_unspecified_destination() {
        let mut port = UdpPort::bind(&UdpPortConfig::new(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            1,
        ))
        .expect("bind 0.0.0.0");
        let local = port.local_addr();
        assert!(local.ip().is_unspecified());
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        client
            .send_to(b"0123456789abcdef", (Ipv4Addr::LOCALHOST, local.port()))
            .expect("send");
        let mut rx = port.take_rx(0).expect("rx");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while out.is_empty() && Instant::now() < deadline {
            if rx.rx_burst(&mut out, 1) == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            &out[0].data()[30..34],
            &[0, 0, 0, 0],
            "dst ip = bound wildcard"
        );
    }
}
