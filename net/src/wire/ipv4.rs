//! IPv4 headers (RFC 791).
//!
//! [`Packet::check_len`] checks that the buffer holds the fixed 20 B header, that the header
//! length (IHL) is at least 5 words and fits, and that the total length covers the header and
//! fits in the buffer (a longer buffer is Ethernet padding; [`Packet::payload`] excludes it).
//! [`Packet::check_plain`] is the one definition of the packets psp accepts: a 20 B header (no
//! options), version 4, a total length that covers the header and fits, not a fragment, and
//! (when asked) a good header checksum; its [`Refusal`] says which check failed, in the order
//! tested. [`Repr::parse`] and the frame parser (`wire::frame`, which names each refusal as a
//! drop reason) both use it.

use std::net::Ipv4Addr;

use super::{checksum, Error, Result};

/// Length of a header without options (IHL = 5).
pub const HEADER_LEN: usize = 20;

/// Time to live of emitted packets (Linux's default `net.ipv4.ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// IP protocol number of UDP (IANA).
pub const PROTOCOL_UDP: u8 = 17;

/// The "don't fragment" flag in the flags/fragment-offset word.
pub const FLAG_DONT_FRAGMENT: u16 = 0x4000;
/// The "more fragments" flag in the flags/fragment-offset word.
pub const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
/// Mask of the fragment offset in the flags/fragment-offset word.
pub const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Why a buffer is not a plain IPv4 packet ([`Packet::check_plain`]), in the order checked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Shorter than the 20 B header, or than the total length.
    Truncated,
    /// Version field ≠ 4.
    BadVersion,
    /// IHL < 5 words.
    BadHeaderLength,
    /// IHL > 5 words: options, which psp does not accept.
    Options,
    /// Total length shorter than the header.
    BadTotalLength,
    /// Wrong header checksum (checked only when asked).
    Checksum,
    /// A fragment (more-fragments flag or a non-zero offset).
    Fragment,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Truncated => Error::Truncated,
            Refusal::Checksum => Error::Checksum,
            _ => Error::Malformed,
        }
    }
}

/// A zero-copy view of an IPv4 packet.
///
/// Contract: once [`Packet::check_len`] (or [`Packet::new_checked`]) succeeded, no accessor
/// panics.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and runs [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths every accessor relies on: buffer ≥ 20 B (`Truncated`),
    /// IHL ≥ 5 (`Malformed`), header ≤ buffer (`Truncated`),
    /// header ≤ total length (`Malformed`), total length ≤ buffer (`Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks that this is a packet psp accepts, in this order: buffer ≥ 20 B, version 4,
    /// IHL = 5 (less: bad header length; more: options), total length ≥ 20 and ≤ buffer,
    /// checksum (when `verify_checksum`), not a fragment. Once it succeeded,
    /// [`Packet::check_len`] holds too: no accessor panics.
    pub fn check_plain(&self, verify_checksum: bool) -> core::result::Result<(), Refusal> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Refusal::Truncated);
        }
        if self.version() != 4 {
            return Err(Refusal::BadVersion);
        }
        match self.header_len() {
            n if n < HEADER_LEN => return Err(Refusal::BadHeaderLength),
            n if n > HEADER_LEN => return Err(Refusal::Options),
            _ => {}
        }
        let total_len = usize::from(self.total_len());
        if total_len < HEADER_LEN {
            return Err(Refusal::BadTotalLength);
        }
        if total_len > len {
            return Err(Refusal::Truncated);
        }
        if verify_checksum && !self.verify_checksum() {
            return Err(Refusal::Checksum);
        }
        if self.is_fragment() {
            return Err(Refusal::Fragment);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length (header + payload) in bytes.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::TOTAL_LEN.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    /// Flags and fragment offset, raw.
    pub fn flags_frag(&self) -> u16 {
        self.read_u16(field::FLAGS_FRAG.start)
    }

    /// Whether this is a fragment (more-fragments flag or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        let word = self.flags_frag();
        word & FLAG_MORE_FRAGMENTS != 0 || word & FRAGMENT_OFFSET_MASK != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol number.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum, raw.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR.start)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR.start)
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..self.header_len()])
    }

    /// The payload: bytes from the end of the header to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and header length (bytes; must be a multiple of 4 below 64).
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ihl;
    }

    /// Sets DSCP and ECN.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        self.write_u16(field::TOTAL_LEN.start, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT.start, value);
    }

    /// Sets flags and fragment offset.
    pub fn set_flags_frag(&mut self, value: u16) {
        self.write_u16(field::FLAGS_FRAG.start, value);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol number.
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the checksum field, raw.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        // Clamped so that a header claiming options the buffer lacks cannot index out of bounds.
        let header_len = self.header_len().min(self.buffer.as_ref().len());
        let sum = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(sum);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }

    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

/// The validated form of an option-less, unfragmented IPv4 header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Repr {
    /// Reads a checked packet: refuses version ≠ 4, options, fragments (all `Malformed`) and,
    /// when `verify_checksum`, a bad checksum (`Checksum`).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, verify_checksum: bool) -> Result<Repr> {
        packet.check_plain(verify_checksum)?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
        })
    }

    /// Header length of the emitted packet.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (no options, DF set, identification 0, checksum computed). The buffer
    /// must hold the header; the payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let total_len =
            u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::Malformed)?;
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_version_and_header_len(4, HEADER_LEN);
        packet.set_dscp_ecn(0);
        packet.set_total_len(total_len);
        packet.set_ident(0);
        packet.set_flags_frag(FLAG_DONT_FRAGMENT);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of the checksum example (Wikipedia "IPv4 header checksum"), with its payload.
    fn known_packet() -> Vec<u8> {
        let mut bytes = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        bytes.resize(0x73, 0xaa);
        bytes
    }

    #[test]
    fn parses_known_packet() {
        let bytes = known_packet();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        let repr = Repr::parse(&packet, true).unwrap();
        assert_eq!(repr.src_addr, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(repr.dst_addr, Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(repr.protocol, PROTOCOL_UDP);
        assert_eq!(repr.payload_len, 0x73 - 20);
    }

    #[test]
    fn emit_reproduces_known_checksum() {
        let bytes = known_packet();
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap(), true).unwrap();
        let mut out = vec![0u8; bytes.len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out[..HEADER_LEN], bytes[..HEADER_LEN]);
    }

    #[test]
    fn check_len_cases() {
        let bytes = known_packet();
        for cut in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..cut]).unwrap_err(),
                Error::Truncated
            );
        }
        // Total length beyond the buffer.
        assert_eq!(
            Packet::new_checked(&bytes[..bytes.len() - 1]).unwrap_err(),
            Error::Truncated
        );
        // Padding after total length is fine and excluded from the payload.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 6]);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 0x73 - 20);
        // IHL below 5.
        let mut short_ihl = bytes.clone();
        short_ihl[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&short_ihl[..]).unwrap_err(),
            Error::Malformed
        );
        // Total length below the header.
        let mut small_total = bytes.clone();
        small_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&small_total[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn parse_refuses_options_fragments_version_and_bad_checksum() {
        let bytes = known_packet();
        let mut options = bytes.clone();
        options[0] = 0x46;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&options[..]).unwrap(), false),
            Err(Error::Malformed)
        );
        let mut fragment = bytes.clone();
        fragment[6..8].copy_from_slice(&FLAG_MORE_FRAGMENTS.to_be_bytes());
        assert_eq!(
            Repr::parse(&Packet::new_checked(&fragment[..]).unwrap(), false),
            Err(Error::Malformed)
        );
        let mut version6 = bytes.clone();
        version6[0] = 0x65;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&version6[..]).unwrap(), false),
            Err(Error::Malformed)
        );
        let mut corrupt = bytes.clone();
        corrupt[8] ^= 1;
        let packet = Packet::new_checked(&corrupt[..]).unwrap();
        assert_eq!(Repr::parse(&packet, true), Err(Error::Checksum));
        assert!(Repr::parse(&packet, false).is_ok());
    }
}
