//! # psp-dataplane: the live server's data path
//!
//! Everything between a network device and the sans-IO scheduler (`psp-scheduler`):
//! - [`port`]: the [`port::Port`] trait (numbered RX/TX queues, owned buffers that free
//!   themselves on drop) and two implementations without DPDK: an in-memory link
//!   ([`port::memory::pair`]) and a kernel UDP socket ([`port::udp::UdpPort`]); plus a
//!   fault-injecting wrapper ([`port::fault::FaultPort`]).
//! - [`wire`]: packet parsing and building (Ethernet/IPv4/UDP, ARP, the PSP request format).
//! - [`app`]: the [`app::Application`] run by workers and the request classifier.
//! - [`config`]: the server's YAML configuration.
//! - [`ring`]: the single-producer single-consumer rings between the dispatcher and each worker.
//! - [`clock`]: the cheap monotonic ns clock (TSC where invariant) that stamps request stages.
//! - [`server`]: the dispatcher and worker loops and the runner that wires them to a port.
//!
//! Invariants: the per-request path allocates nothing, takes no lock and logs nothing (counters
//! only); malformed input is a counted drop, never a panic. Tested by unit tests per module,
//! whole-server tests over the in-memory port pair, and criterion benches (`benches/`).
//! `unsafe` is denied everywhere but in [`ring`]'s slot table, each block there with a
//! `// SAFETY:` comment.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod clock;
pub mod config;
pub mod port;
#[allow(unsafe_code)] // the slot table's UnsafeCell/MaybeUninit accesses; see ring.rs
pub mod ring;
pub mod server;
pub mod wire;
