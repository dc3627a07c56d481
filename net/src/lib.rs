//! # psp-net: what travels between client and server, and the devices it travels on
//!
//! Shared by the server (`psp-dataplane`) and the load generator (`psp-client`), neither of
//! which depends on the other:
//! - [`wire`]: packet parsing and building in the smoltcp style — a zero-copy view of the
//!   bytes and a plain representation per layer (Ethernet, IPv4, UDP, ARP, the Perséphone
//!   request and response), checksums, and the reasons a frame is refused.
//! - [`port`]: the [`port::Port`] trait (numbered RX/TX queues, owned buffers that free
//!   themselves on drop) and its implementations without DPDK: an in-memory link
//!   ([`port::memory::pair`]), a kernel UDP socket ([`port::udp::UdpPort`]) and a
//!   fault-injecting wrapper ([`port::fault::FaultPort`]), over a preallocated buffer pool
//!   ([`port::pool`]). The DPDK port (`EthPort`) lives in the root crate, the only place with
//!   DPDK's `unsafe`.
//!
//! Invariants: no `unsafe`; parsing never panics on any input (a refusal names a
//! [`wire::DropReason`]); a buffer returns to its pool exactly once. Tested by unit and property
//! tests per module.

#![forbid(unsafe_code)]

pub mod port;
pub mod wire;
