//! Frame-level entry points: parse a request, turn it into its response in place, build a
//! request, parse a response, answer ARP. Plain byte slices in, no allocation, no panic.
//!
//! Tested in `frame/tests.rs`: round trips, the original client's captured frame, every
//! malformed case with its [`DropReason`], truncation at every offset, ARP, and a property test
//! that random bytes never panic any entry point.

use std::net::Ipv4Addr;

use super::ethernet::{self, EtherType, MacAddr, MIN_FRAME_LEN};
use super::psp::{self, RequestRepr, ResponseRepr};
use super::{arp, ipv4, udp, DropReason, Error, Result};

/// Offset of the IPv4 header in a frame.
pub const IPV4_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the UDP header in a frame (IPv4 without options).
pub const UDP_OFFSET: usize = IPV4_OFFSET + ipv4::HEADER_LEN;
/// Offset of the UDP payload (the original's `NET_HDR_SIZE`, 42 B).
pub const PAYLOAD_OFFSET: usize = UDP_OFFSET + udp::HEADER_LEN;
/// Length of a request frame on the wire: 42 + 16 = 58 B, padded to 60.
pub const REQUEST_FRAME_LEN: usize = max(PAYLOAD_OFFSET + psp::REQUEST_LEN, MIN_FRAME_LEN);
/// Length of a response frame on the wire: 42 + 12 = 54 B, padded to 60.
pub const RESPONSE_FRAME_LEN: usize = max(PAYLOAD_OFFSET + psp::RESPONSE_LEN, MIN_FRAME_LEN);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// One end of a UDP flow: MAC, IPv4 address, UDP port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// MAC address.
    pub mac: MacAddr,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// UDP port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint.
    pub const fn new(mac: MacAddr, ip: Ipv4Addr, port: u16) -> Self {
        Endpoint { mac, ip, port }
    }
}

/// Our own address, as the parsers validate destinations against it.
pub type LocalAddr = Endpoint;

/// Which optional checks the parsers run. [`ParseOptions::default`] is the strict set.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParseOptions {
    /// Verify the IPv4 header checksum (default `true`).
    pub verify_ip_checksum: bool,
    /// Verify a non-zero UDP checksum (default `false`: the original never computes one).
    pub verify_udp_checksum: bool,
    /// Refuse frames not addressed to our MAC (default `true`).
    pub check_dst_mac: bool,
    /// Refuse packets not addressed to our IP (default `true`).
    pub check_dst_ip: bool,
}

impl ParseOptions {
    /// Every check on but the UDP checksum.
    pub const STRICT: ParseOptions = ParseOptions {
        verify_ip_checksum: true,
        verify_udp_checksum: false,
        check_dst_mac: true,
        check_dst_ip: true,
    };
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self::STRICT
    }
}

/// A request accepted by [`parse_request`]: the payload fields and where it came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestView {
    /// Request id.
    pub req_id: u32,
    /// Request type (wire id).
    pub req_type: u32,
    /// Size word.
    pub req_size: u32,
    /// Service time to emulate, ns.
    pub run_ns: u32,
    /// The client: source MAC, IP and port.
    pub src: Endpoint,
    /// UDP payload length (≥ 16; the payload is `frame[PAYLOAD_OFFSET..][..payload_len]`).
    pub payload_len: usize,
}

impl RequestView {
    /// The request's payload fields.
    pub fn repr(&self) -> RequestRepr {
        RequestRepr {
            req_id: self.req_id,
            req_type: self.req_type,
            req_size: self.req_size,
            run_ns: self.run_ns,
        }
    }
}

/// A response accepted by [`parse_response`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResponseView {
    /// Request id, echoed.
    pub req_id: u32,
    /// Request type, echoed.
    pub req_type: u32,
    /// Size word (the application's result).
    pub req_size: u32,
    /// The server: source MAC, IP and port.
    pub src: Endpoint,
    /// UDP payload length (≥ 12).
    pub payload_len: usize,
}

impl ResponseView {
    /// The response's payload fields.
    pub fn repr(&self) -> ResponseRepr {
        ResponseRepr {
            req_id: self.req_id,
            req_type: self.req_type,
            req_size: self.req_size,
        }
    }
}

/// The UDP part every parser shares.
struct UdpMeta {
    src: Endpoint,
    payload_len: usize,
}

/// Validates Ethernet, IPv4 and UDP up to the destination port and a minimum payload length.
fn parse_udp(
    frame: &[u8],
    local: &LocalAddr,
    options: &ParseOptions,
    min_payload: usize,
) -> core::result::Result<UdpMeta, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::TooShort)?;
    match eth.ethertype() {
        EtherType::Ipv4 => {}
        EtherType::Arp => return Err(DropReason::Arp),
        EtherType::Unknown(_) => return Err(DropReason::NotIpv4),
    }
    if options.check_dst_mac && eth.dst_addr() != local.mac {
        return Err(DropReason::WrongDstMac);
    }

    let ip = ipv4::Packet::new_unchecked(eth.payload());
    ip.check_plain(options.verify_ip_checksum)?;
    // From here on ip.check_len() holds: every accessor is in bounds.
    if ip.protocol() != ipv4::PROTOCOL_UDP {
        return Err(DropReason::NotUdp);
    }
    let dst_ip = ip.dst_addr();
    if options.check_dst_ip && dst_ip != local.ip {
        return Err(DropReason::WrongDstIp);
    }

    let udp_bytes = ip.payload();
    if udp_bytes.len() < udp::HEADER_LEN {
        return Err(DropReason::TruncatedUdp);
    }
    let datagram = udp::Packet::new_unchecked(udp_bytes);
    if usize::from(datagram.len()) != udp_bytes.len() {
        return Err(DropReason::BadUdpLength);
    }
    // udp length == IPv4 payload length ≥ 8: datagram.check_len() holds.
    let src_ip = ip.src_addr();
    if options.verify_udp_checksum && !datagram.verify_checksum(src_ip, dst_ip) {
        return Err(DropReason::BadUdpChecksum);
    }
    if datagram.dst_port() != local.port {
        return Err(DropReason::WrongDstPort);
    }
    let payload_len = datagram.payload().len();
    if payload_len < min_payload {
        return Err(DropReason::TruncatedPayload);
    }
    Ok(UdpMeta {
        src: Endpoint {
            mac: eth.src_addr(),
            ip: src_ip,
            port: datagram.src_port(),
        },
        payload_len,
    })
}

/// The dispatcher's entry point: validates a received frame as a request to `local` with the
/// strict [`ParseOptions`], and reads its fields. `Err(DropReason::Arp)` means "answer it with
/// [`build_arp_reply`]"; every other error is a drop to count.
pub fn parse_request(
    frame: &[u8],
    local: &LocalAddr,
) -> core::result::Result<RequestView, DropReason> {
    parse_request_with(frame, local, &ParseOptions::STRICT)
}

/// [`parse_request`] with explicit options.
pub fn parse_request_with(
    frame: &[u8],
    local: &LocalAddr,
    options: &ParseOptions,
) -> core::result::Result<RequestView, DropReason> {
    let meta = parse_udp(frame, local, options, psp::REQUEST_LEN)?;
    // parse_udp guarantees frame[PAYLOAD_OFFSET..][..payload_len] exists with payload_len ≥ 16.
    let message = psp::Message::new_unchecked(&frame[PAYLOAD_OFFSET..]);
    Ok(RequestView {
        req_id: message.req_id(),
        req_type: message.req_type(),
        req_size: message.req_size(),
        run_ns: message.run_ns(),
        src: meta.src,
        payload_len: meta.payload_len,
    })
}

/// The client's entry point: validates a received frame as a response to `local` (our MAC,
/// IP and port; strict options) and reads its fields.
pub fn parse_response(
    frame: &[u8],
    local: &LocalAddr,
) -> core::result::Result<ResponseView, DropReason> {
    parse_response_with(frame, local, &ParseOptions::STRICT)
}

/// [`parse_response`] with explicit options.
pub fn parse_response_with(
    frame: &[u8],
    local: &LocalAddr,
    options: &ParseOptions,
) -> core::result::Result<ResponseView, DropReason> {
    let meta = parse_udp(frame, local, options, psp::RESPONSE_LEN)?;
    let message = psp::Message::new_unchecked(&frame[PAYLOAD_OFFSET..]);
    Ok(ResponseView {
        req_id: message.req_id(),
        req_type: message.req_type(),
        req_size: message.req_size(),
        src: meta.src,
        payload_len: meta.payload_len,
    })
}

/// Turns a request frame accepted by [`parse_request`] into its Perséphone response, in place:
/// payload = the request's first 12 B (`run_ns` excluded; an application may have rewritten
/// them first). Equivalent to `build_reply_in_place(frame, 12)`.
pub fn build_response_in_place(frame: &mut [u8]) -> usize {
    build_reply_in_place(frame, psp::RESPONSE_LEN)
}

/// Turns a received UDP frame (accepted by [`parse_request`], so with a 20 B IPv4 header
/// addressed to us) into a reply carrying the first `payload_len` bytes already at
/// [`PAYLOAD_OFFSET`]:
/// swaps MACs, IPs and ports, sets the IPv4 total length, TTL and checksum and the UDP length
/// (checksum 0), zeroes the padding up to 60 B, and returns the new frame length
/// (`max(42 + payload_len, 60)`).
///
/// Returns 0 (build nothing, drop the frame) if `frame` is shorter than `42 + payload_len`.
/// Padding bytes beyond `frame.len()` cannot be zeroed here: give it a slice of at least
/// [`MIN_FRAME_LEN`] bytes (grow the buffer first) for fully zeroed padding.
pub fn build_reply_in_place(frame: &mut [u8], payload_len: usize) -> usize {
    let end = PAYLOAD_OFFSET.saturating_add(payload_len);
    if frame.len() < end {
        return 0;
    }
    let Ok(udp_len) = u16::try_from(udp::HEADER_LEN + payload_len) else {
        return 0;
    };
    let Ok(ip_total_len) = u16::try_from(ipv4::HEADER_LEN + usize::from(udp_len)) else {
        return 0;
    };
    {
        let mut eth = ethernet::Frame::new_unchecked(&mut frame[..]);
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        eth.set_src_addr(dst);
        eth.set_dst_addr(src);
    }
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut frame[IPV4_OFFSET..UDP_OFFSET]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        ip.set_version_and_header_len(4, ipv4::HEADER_LEN);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_total_len(ip_total_len);
        ip.set_flags_frag(ipv4::FLAG_DONT_FRAGMENT);
        ip.set_ttl(ipv4::DEFAULT_TTL);
        ip.fill_checksum();
    }
    {
        let mut datagram = udp::Packet::new_unchecked(&mut frame[UDP_OFFSET..PAYLOAD_OFFSET]);
        let (src, dst) = (datagram.src_port(), datagram.dst_port());
        datagram.set_src_port(dst);
        datagram.set_dst_port(src);
        datagram.set_len(udp_len);
        datagram.set_checksum(0);
    }
    let padded = end.max(MIN_FRAME_LEN);
    let pad_end = padded.min(frame.len());
    if end < pad_end {
        frame[end..pad_end].fill(0);
    }
    padded
}

/// Writes Ethernet + IPv4 + UDP headers for a `payload_len`-byte datagram from `src` to `dst`
/// (the payload itself goes at [`PAYLOAD_OFFSET`]), zeroes the padding up to 60 B and returns
/// the frame length. `Err(Truncated)` if `buf` cannot hold the padded frame, `Err(Malformed)`
/// if the payload does not fit a UDP length.
pub fn build_udp_frame(
    buf: &mut [u8],
    src: &Endpoint,
    dst: &Endpoint,
    payload_len: usize,
) -> Result<usize> {
    let udp_repr = udp::Repr {
        src_port: src.port,
        dst_port: dst.port,
        payload_len,
    };
    let ip_repr = ipv4::Repr {
        src_addr: src.ip,
        dst_addr: dst.ip,
        protocol: ipv4::PROTOCOL_UDP,
        payload_len: udp::HEADER_LEN.saturating_add(payload_len),
        ttl: ipv4::DEFAULT_TTL,
    };
    let end = PAYLOAD_OFFSET.saturating_add(payload_len);
    let padded = end.max(MIN_FRAME_LEN);
    if buf.len() < padded {
        return Err(Error::Truncated);
    }
    ethernet::Repr {
        src_addr: src.mac,
        dst_addr: dst.mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..IPV4_OFFSET]))?;
    ip_repr.emit(&mut ipv4::Packet::new_unchecked(
        &mut buf[IPV4_OFFSET..UDP_OFFSET],
    ))?;
    udp_repr.emit(&mut udp::Packet::new_unchecked(
        &mut buf[UDP_OFFSET..PAYLOAD_OFFSET],
    ))?;
    buf[end..padded].fill(0);
    Ok(padded)
}

/// The client's request builder: a complete, padded request frame from `src` to `dst`.
/// Returns the frame length ([`REQUEST_FRAME_LEN`]); `Err(Truncated)` if `buf` is shorter.
pub fn build_request(
    buf: &mut [u8],
    request: &RequestRepr,
    src: &Endpoint,
    dst: &Endpoint,
) -> Result<usize> {
    let len = build_udp_frame(buf, src, dst, psp::REQUEST_LEN)?;
    request.emit(&mut psp::Message::new_unchecked(
        &mut buf[PAYLOAD_OFFSET..PAYLOAD_OFFSET + psp::REQUEST_LEN],
    ))?;
    Ok(len)
}

/// Validates an ARP frame (Ethernet/IPv4 ARP, broadcast or to our MAC).
pub fn parse_arp(frame: &[u8]) -> core::result::Result<arp::Repr, DropReason> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| DropReason::TooShort)?;
    if eth.ethertype() != EtherType::Arp {
        return Err(DropReason::NotIpv4);
    }
    let packet = arp::Packet::new_checked(eth.payload()).map_err(|_| DropReason::ArpMalformed)?;
    arp::Repr::parse(&packet).map_err(|_| DropReason::ArpMalformed)
}

/// Turns an ARP request for `local.ip` into our reply, in place; returns the frame length
/// (60). Anything else (replies, requests for other addresses) is `Err(ArpNotForUs)`; a
/// malformed packet is `Err(ArpMalformed)`; the frame is then left unchanged.
/// Padding beyond `frame.len()` is not zeroed (see [`build_reply_in_place`]).
pub fn build_arp_reply(
    frame: &mut [u8],
    local: &LocalAddr,
) -> core::result::Result<usize, DropReason> {
    let request = parse_arp(frame)?;
    if request.operation != arp::Operation::Request || request.target_protocol_addr != local.ip {
        return Err(DropReason::ArpNotForUs);
    }
    let reply = arp::Repr {
        operation: arp::Operation::Reply,
        source_hardware_addr: local.mac,
        source_protocol_addr: local.ip,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    let end = ethernet::HEADER_LEN + arp::PACKET_LEN;
    // parse_arp checked frame.len() ≥ end.
    ethernet::Repr {
        src_addr: local.mac,
        dst_addr: request.source_hardware_addr,
        ethertype: EtherType::Arp,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]))
    .map_err(|_| DropReason::ArpMalformed)?;
    reply
        .emit(&mut arp::Packet::new_unchecked(
            &mut frame[ethernet::HEADER_LEN..end],
        ))
        .map_err(|_| DropReason::ArpMalformed)?;
    let padded = end.max(MIN_FRAME_LEN);
    let pad_end = padded.min(frame.len());
    frame[end..pad_end].fill(0);
    Ok(padded)
}

/// Writes a broadcast ARP request from `local` asking for `target`; returns the frame length
/// (60) or `Err(Truncated)` if `buf` is shorter.
pub fn build_arp_request(buf: &mut [u8], local: &LocalAddr, target: Ipv4Addr) -> Result<usize> {
    let end = ethernet::HEADER_LEN + arp::PACKET_LEN;
    let padded = end.max(MIN_FRAME_LEN);
    if buf.len() < padded {
        return Err(Error::Truncated);
    }
    ethernet::Repr {
        src_addr: local.mac,
        dst_addr: MacAddr::BROADCAST,
        ethertype: EtherType::Arp,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]))?;
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: local.mac,
        source_protocol_addr: local.ip,
        target_hardware_addr: MacAddr([0; 6]),
        target_protocol_addr: target,
    }
    .emit(&mut arp::Packet::new_unchecked(
        &mut buf[ethernet::HEADER_LEN..end],
    ))?;
    buf[end..padded].fill(0);
    Ok(padded)
}

#[cfg(test)]
mod tests;
