//! ARP (RFC 826) for IPv4 over Ethernet only: hardware type 1, protocol 0x0800, lengths 6 and 4.

use std::net::Ipv4Addr;

use super::ethernet::MacAddr;
use super::{Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// Hardware type of Ethernet (RFC 826).
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type of IPv4 (the IPv4 EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// ARP operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1.
    Request,
    /// 2.
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an ARP packet.
///
/// Contract: once [`Packet::check_len`] succeeded, no accessor panics.
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

    /// `Err(Truncated)` below [`PACKET_LEN`] bytes (trailing Ethernet padding is allowed).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }

    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        Operation::from(self.read_u16(field::OPER))
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        MacAddr(octets)
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SPA.start)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        MacAddr(octets)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.read_addr(field::TPA.start)
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
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

/// The validated form of an Ethernet/IPv4 ARP packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: MacAddr,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: MacAddr,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet; anything but Ethernet/IPv4 is `Unrecognized`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != PTYPE_IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unrecognized);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Length of the emitted packet.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        packet.check_len()?;
        packet.write_u16(field::HTYPE, HTYPE_ETHERNET);
        packet.write_u16(field::PTYPE, PTYPE_IPV4);
        let b = packet.buffer.as_mut();
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        packet.write_u16(field::OPER, self.operation.into());
        let b = packet.buffer.as_mut();
        b[field::SHA].copy_from_slice(&self.source_hardware_addr.0);
        b[field::SPA].copy_from_slice(&self.source_protocol_addr.octets());
        b[field::THA].copy_from_slice(&self.target_hardware_addr.0);
        b[field::TPA].copy_from_slice(&self.target_protocol_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let repr = Repr {
            operation: Operation::Request,
            source_hardware_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: MacAddr([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut buf = [0u8; PACKET_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(),
            repr
        );
        // Known bytes of the fixed part: htype 1, ptype 0x0800, 6, 4, oper 1.
        assert_eq!(buf[..8], [0, 1, 8, 0, 6, 4, 0, 1]);
    }

    #[test]
    fn refuses_other_hardware_and_short_buffers() {
        let mut buf = [0u8; PACKET_LEN];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
            Err(Error::Unrecognized)
        );
        buf[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        assert!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).is_ok());
        assert_eq!(
            Packet::new_checked(&buf[..PACKET_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
    }
}
