//! UDP datagrams (RFC 768).
//!
//! [`Packet::check_len`] checks that the buffer holds the 8 B header and that the length field
//! covers the header and fits in the buffer. Checksums: a zero checksum means "none" over IPv4
//! (RFC 768) and is what this crate emits; [`Packet::verify_checksum`] and
//! [`Packet::fill_checksum`] exist for callers that want one.

use std::net::Ipv4Addr;

use super::{checksum, ipv4, Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A zero-copy view of a UDP datagram.
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

    /// Buffer ≥ 8 B (`Truncated`), length field ≥ 8 (`Malformed`), length ≤ buffer (`Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Whether the length field says the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum, raw (0 = none).
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The payload (up to the length field).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is absent (0) or correct for this pseudo-header.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let length = self.len();
        let acc =
            checksum::pseudo_header_ipv4(src.octets(), dst.octets(), ipv4::PROTOCOL_UDP, length);
        let acc = checksum::accumulate(acc, &self.buffer.as_ref()[..usize::from(length)]);
        checksum::fold(acc) == 0xffff
    }

    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.write_u16(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.write_u16(field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the checksum, raw.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Computes and stores the checksum (a computed 0 is sent as 0xffff, RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let length = self.len();
        let acc =
            checksum::pseudo_header_ipv4(src.octets(), dst.octets(), ipv4::PROTOCOL_UDP, length);
        let acc = checksum::accumulate(acc, &self.buffer.as_ref()[..usize::from(length)]);
        let sum = !checksum::fold(acc);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

/// The validated form of a UDP header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked datagram.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with checksum 0 (none); the payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let length = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| Error::Malformed)?;
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(length);
        packet.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksum() {
        let repr = Repr {
            src_port: 32768,
            dst_port: 6789,
            payload_len: 5,
        };
        let mut buf = [0u8; HEADER_LEN + 5];
        buf[HEADER_LEN..].copy_from_slice(b"hello");
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet).unwrap();
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        assert!(packet.verify_checksum(src, dst), "checksum 0 means none");
        packet.fill_checksum(src, dst);
        assert_ne!(packet.checksum(), 0);
        assert!(packet.verify_checksum(src, dst));
        assert!(!packet.verify_checksum(src, Ipv4Addr::new(10, 0, 0, 3)));
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
        assert_eq!(packet.payload(), b"hello");
    }

    /// A UDP datagram whose checksum was computed independently (Python, RFC 768 arithmetic):
    /// 192.168.0.1:1234 → 192.168.0.199:6789, payload "psp!".
    #[test]
    fn known_checksum_vector() {
        let mut buf = [0u8; HEADER_LEN + 4];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        Repr {
            src_port: 1234,
            dst_port: 6789,
            payload_len: 4,
        }
        .emit(&mut packet)
        .unwrap();
        packet.payload_mut().copy_from_slice(b"psp!");
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 0, 199);
        packet.fill_checksum(src, dst);
        assert_eq!(packet.checksum(), KNOWN_UDP_CHECKSUM);
    }

    const KNOWN_UDP_CHECKSUM: u16 = 0x7dd1;

    #[test]
    fn check_len_cases() {
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]).unwrap_err(),
            Error::Truncated
        );
        let mut buf = [0u8; 8];
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        buf[4..6].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
    }
}
