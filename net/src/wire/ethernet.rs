//! Ethernet II frames (no VLAN tag): 6 B destination, 6 B source, 2 B EtherType.

use std::fmt;
use std::str::FromStr;

use super::{Error, Result};

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// Shortest frame on the wire without the 4 B FCS (IEEE 802.3 minimum 64 B − FCS). Shorter
/// frames are zero-padded to this length on output.
pub const MIN_FRAME_LEN: usize = 60;

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// A 48-bit MAC address.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The address bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A MAC address that is not six `:`- or `-`-separated hex octets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 42:00:00:00:00:01")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || ParseMacError(text.to_string());
        let mut octets = [0u8; 6];
        let mut parts = text.trim().split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

/// EtherType values this crate knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800.
    Ipv4,
    /// 0x0806.
    Arp,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an Ethernet II frame.
///
/// Contract: once [`Frame::check_len`] (or [`Frame::new_checked`]) succeeded, no accessor panics.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer, checking that it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        MacAddr(octets)
    }

    /// Source address.
    pub fn src_addr(&self) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        MacAddr(octets)
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The validated form of an Ethernet II header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads a header from a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Header length in bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; the frame must be at least [`HEADER_LEN`] long (checked first).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        frame.check_len()?;
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display_round_trip() {
        let mac: MacAddr = "42:00:0A:ff:00:01".parse().unwrap();
        assert_eq!(mac.0, [0x42, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(mac.to_string(), "42:00:0a:ff:00:01");
        assert_eq!("42-00-0a-ff-00-01".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn mac_rejects_malformed() {
        for bad in [
            "",
            "42:00:00:00:00",
            "42:00:00:00:00:01:02",
            "42:00:00:00:00:zz",
            "420:00:00:00:00:01",
            "42::00:00:00:01",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(err.0, bad);
        }
    }

    #[test]
    fn header_round_trip() {
        let repr = Repr {
            src_addr: MacAddr([1, 2, 3, 4, 5, 6]),
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::Arp,
        };
        let mut buf = [0u8; HEADER_LEN];
        repr.emit(&mut Frame::new_unchecked(&mut buf[..])).unwrap();
        let frame = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&frame).unwrap(), repr);
        assert!(frame.payload().is_empty());
        assert_eq!(
            Frame::new_checked(&buf[..HEADER_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
    }
}
