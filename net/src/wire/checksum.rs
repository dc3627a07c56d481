//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum.
//!
//! Used for the IPv4 header checksum (always) and the UDP checksum (optional for IPv4).
//! Tested against the worked example of RFC 1071 §3 and a captured IPv4 header.

/// Adds `data` to a running 32-bit one's complement accumulator, as big-endian 16-bit words
/// (an odd trailing byte is padded with a zero byte, RFC 768/1071).
pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

/// Folds the carries of a 32-bit accumulator into 16 bits (end-around carry).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves sum <= 0xffff, so the cast is lossless.
    sum as u16
}

/// The one's complement sum of `data` (not complemented).
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// The checksum to store in a header whose checksum field is zero while summing.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Whether `data`, checksum field included, sums to all ones (a valid checksum).
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// The IPv4 pseudo-header part of a UDP/TCP checksum accumulator (RFC 768).
pub fn pseudo_header_ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u32 {
    let mut acc = accumulate(0, &src);
    acc = accumulate(acc, &dst);
    acc = acc.wrapping_add(u32::from(protocol));
    acc.wrapping_add(u32::from(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// A well-known IPv4 header (Wikipedia "IPv4 header checksum" example): checksum 0xb861.
    #[test]
    fn known_ipv4_header() {
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(&header));
        header[15] ^= 1;
        assert!(!verify(&header));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), sum(&[0x12, 0x34, 0x56, 0x00]));
    }
}
