//! # Wire format: Ethernet II / IPv4 / UDP / Perséphone payload, and ARP
//!
//! Two layers, in the style of smoltcp's `wire` module:
//!
//! - **Per-protocol views** ([`ethernet::Frame`], [`ipv4::Packet`], [`udp::Packet`],
//!   [`arp::Packet`], [`psp::Message`]): zero-copy wrappers over any `T: AsRef<[u8]>` with
//!   `new_unchecked` / `new_checked` / `check_len` and field accessors, plus a validated
//!   `Repr` with `parse` / `emit` / `buffer_len`. **Contract: once `check_len` (or
//!   `new_checked`) returned `Ok`, no accessor of that view panics.**
//! - **Frame-level entry points** for the dataplane: [`parse_request`] (dispatcher),
//!   [`build_response_in_place`] / [`build_reply_in_place`] (worker), [`build_request`] and
//!   [`parse_response`] (client), [`build_arp_reply`] (dispatcher, TX queue 0). They take plain
//!   byte slices, never allocate, never panic on any input, and report every refusal as a
//!   [`DropReason`] to count in a [`DropCounters`] table.
//!
//! ## Decisions
//! - **Frame layout**: Ethernet II without VLAN (14 B) + IPv4 without options (20 B) + UDP
//!   (8 B) = [`PAYLOAD_OFFSET`] 42 B, then the 16 B request / 12 B response of [`psp`]
//!   (little-endian `u32`s, byte-compatible with the original). Frames shorter than
//!   [`MIN_FRAME_LEN`] (60 B) are zero-padded to it on output.
//! - **IPv4 header checksum**: always computed on output (memif and most test paths have no
//!   offload). Verified on input by default ([`ParseOptions::verify_ip_checksum`]): 20 bytes of
//!   additions are cheap next to a cache miss; turn it off for a peer that relies on TX offload
//!   it does not have (the original C++ client over memif).
//! - **UDP checksum**: 0 ("none", permitted over IPv4 by RFC 768) on output; not verified on
//!   input by default ([`ParseOptions::verify_udp_checksum`]), a non-zero one is checked when
//!   asked. The Ethernet FCS protects the link.
//! - **Refused on input**: IPv4 options, fragments, version ≠ 4, non-UDP, a UDP length that
//!   disagrees with the IPv4 total length, a short payload, the wrong destination port, and
//!   (by default) the wrong destination MAC or IP. Trailing Ethernet padding is allowed.
//! - **Addressing of responses** (docs/design.md §4.4 bugs fixed): destination MAC/IP/port = the
//!   request's source; source = the request's destination (our address, as validated).
//!
//! ## Tests
//! Unit tests per protocol (round trips, known checksum vectors, every length check) and, in
//! `frame`, the entry points: a request truncated at every byte offset, every malformed case
//! of [`DropReason`], response addressing, ARP, and proptests feeding random and mutated
//! frames that must never panic.

pub mod arp;
pub mod checksum;
pub mod ethernet;
mod frame;
pub mod ipv4;
pub mod psp;
mod reason;
pub mod udp;

pub use ethernet::{MacAddr, ParseMacError, MIN_FRAME_LEN};
pub use frame::{
    build_arp_reply, build_arp_request, build_reply_in_place, build_request,
    build_response_in_place, build_udp_frame, parse_arp, parse_request, parse_request_with,
    parse_response, parse_response_with, Endpoint, LocalAddr, ParseOptions, RequestView,
    ResponseView, IPV4_OFFSET, PAYLOAD_OFFSET, REQUEST_FRAME_LEN, RESPONSE_FRAME_LEN, UDP_OFFSET,
};
pub use psp::{RequestRepr, ResponseRepr};
pub use reason::{DropCounters, DropReason};

/// Errors of the per-protocol views.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than a length the packet needs (header, length field).
    #[error("buffer too short")]
    Truncated,
    /// A field is out of range (header length, total length, options, fragment, version).
    #[error("malformed header")]
    Malformed,
    /// A checksum is wrong.
    #[error("bad checksum")]
    Checksum,
    /// A well-formed packet of a kind this crate does not handle.
    #[error("unrecognized packet")]
    Unrecognized,
}

/// Result of the per-protocol views.
pub type Result<T> = core::result::Result<T, Error>;
