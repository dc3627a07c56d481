//! Why a received frame was not a request (or response) for us, and a fixed-size counter table
//! indexed by that reason.
//!
//! The dispatcher counts every frame it does not queue; nothing on this path allocates or logs.

use std::fmt;

/// Why [`parse_request`](super::parse_request) / [`parse_response`](super::parse_response)
/// refused a frame, in the order the checks run.
///
/// [`DropReason::Arp`] is not an error: the frame is an ARP packet for the caller to answer
/// with [`build_arp_reply`](super::build_arp_reply).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header (14 B).
    TooShort,
    /// EtherType is neither IPv4 nor ARP.
    NotIpv4,
    /// An ARP packet (handled separately, not a drop).
    Arp,
    /// Destination MAC is not ours (when checked).
    WrongDstMac,
    /// Frame too short for the IPv4 header or for the IPv4 total length.
    TruncatedIp,
    /// IP version is not 4.
    BadIpVersion,
    /// IHL below 5 words.
    BadHeaderLength,
    /// IHL above 5 words: IPv4 options are not accepted.
    IpOptions,
    /// IPv4 total length below the header length.
    BadIpLength,
    /// IPv4 header checksum is wrong (when verified).
    BadIpChecksum,
    /// A fragment (more-fragments flag or non-zero offset).
    Fragmented,
    /// IP protocol is not UDP.
    NotUdp,
    /// Destination IP is not ours (when checked).
    WrongDstIp,
    /// IPv4 payload shorter than a UDP header.
    TruncatedUdp,
    /// UDP length field below 8 or different from the IPv4 payload length.
    BadUdpLength,
    /// UDP checksum is non-zero and wrong (when verified).
    BadUdpChecksum,
    /// Destination UDP port is not ours.
    WrongDstPort,
    /// UDP payload shorter than a request (16 B) or response (12 B).
    TruncatedPayload,
    /// An ARP packet that is not Ethernet/IPv4 or is too short.
    ArpMalformed,
    /// An ARP packet that is not a request for our IP (replies, gratuitous ARP, other hosts).
    ArpNotForUs,
}

impl DropReason {
    /// Number of reasons (the size of [`DropCounters`]).
    pub const COUNT: usize = 20;

    /// Every reason, in declaration order (`ALL[r.index()] == r`).
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::TooShort,
        DropReason::NotIpv4,
        DropReason::Arp,
        DropReason::WrongDstMac,
        DropReason::TruncatedIp,
        DropReason::BadIpVersion,
        DropReason::BadHeaderLength,
        DropReason::IpOptions,
        DropReason::BadIpLength,
        DropReason::BadIpChecksum,
        DropReason::Fragmented,
        DropReason::NotUdp,
        DropReason::WrongDstIp,
        DropReason::TruncatedUdp,
        DropReason::BadUdpLength,
        DropReason::BadUdpChecksum,
        DropReason::WrongDstPort,
        DropReason::TruncatedPayload,
        DropReason::ArpMalformed,
        DropReason::ArpNotForUs,
    ];

    /// Dense index in `0..COUNT`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for counter tables and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::Arp => "arp",
            DropReason::WrongDstMac => "wrong_dst_mac",
            DropReason::TruncatedIp => "truncated_ip",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::IpOptions => "ip_options",
            DropReason::BadIpLength => "bad_ip_length",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::Fragmented => "fragmented",
            DropReason::NotUdp => "not_udp",
            DropReason::WrongDstIp => "wrong_dst_ip",
            DropReason::TruncatedUdp => "truncated_udp",
            DropReason::BadUdpLength => "bad_udp_length",
            DropReason::BadUdpChecksum => "bad_udp_checksum",
            DropReason::WrongDstPort => "wrong_dst_port",
            DropReason::TruncatedPayload => "truncated_payload",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::ArpNotForUs => "arp_not_for_us",
        }
    }

    /// Whether the frame is lost (everything but [`DropReason::Arp`]).
    pub const fn is_drop(self) -> bool {
        !matches!(self, DropReason::Arp)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One counter per [`DropReason`]; a plain array, owned by one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl DropCounters {
    /// All zero.
    pub const fn new() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }

    /// Counts one frame.
    #[inline]
    pub fn record(&mut self, reason: DropReason) {
        self.add(reason, 1);
    }

    /// Counts `n` frames.
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let slot = &mut self.counts[reason.index()];
        *slot = slot.wrapping_add(n);
    }

    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Frames lost (every reason but [`DropReason::Arp`]).
    pub fn total_drops(&self) -> u64 {
        self.iter()
            .filter(|(reason, _)| reason.is_drop())
            .map(|(_, n)| n)
            .fold(0, u64::wrapping_add)
    }

    /// `(reason, count)` for every reason, in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(move |&reason| (reason, self.counts[reason.index()]))
    }

    /// `(reason, count)` for the reasons with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        self.iter().filter(|&(_, n)| n != 0)
    }

    /// Adds another table into this one.
    pub fn merge(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.wrapping_add(*theirs);
        }
    }

    /// The raw table, indexed by [`DropReason::index`].
    pub fn as_array(&self) -> &[u64; DropReason::COUNT] {
        &self.counts
    }

    /// The raw table, mutable.
    pub fn as_array_mut(&mut self) -> &mut [u64; DropReason::COUNT] {
        &mut self.counts
    }
}

impl fmt::Display for DropCounters {
    /// `name=count` pairs of the non-zero counters, space separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (reason, n) in self.nonzero() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{reason}={n}")?;
        }
        Ok(())
    }
}

impl From<super::ipv4::Refusal> for DropReason {
    fn from(refusal: super::ipv4::Refusal) -> Self {
        use super::ipv4::Refusal;
        match refusal {
            Refusal::Truncated => DropReason::TruncatedIp,
            Refusal::BadVersion => DropReason::BadIpVersion,
            Refusal::BadHeaderLength => DropReason::BadHeaderLength,
            Refusal::Options => DropReason::IpOptions,
            Refusal::BadTotalLength => DropReason::BadIpLength,
            Refusal::Checksum => DropReason::BadIpChecksum,
            Refusal::Fragment => DropReason::Fragmented,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn all_is_dense_and_names_are_unique() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let names: HashSet<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_count_and_merge() {
        let mut a = DropCounters::new();
        a.record(DropReason::WrongDstPort);
        a.record(DropReason::WrongDstPort);
        a.record(DropReason::Arp);
        let mut b = DropCounters::default();
        b.add(DropReason::NotUdp, 5);
        a.merge(&b);
        assert_eq!(a.get(DropReason::WrongDstPort), 2);
        assert_eq!(a.get(DropReason::NotUdp), 5);
        assert_eq!(a.total_drops(), 7, "ARP is not a drop");
        assert_eq!(a.to_string(), "arp=1 not_udp=5 wrong_dst_port=2");
        assert_eq!(a.nonzero().count(), 3);
    }
}
