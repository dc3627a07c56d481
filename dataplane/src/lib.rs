//! # psp-dataplane: the live server's data path
//!
//! Everything between a network device and the sans-IO scheduler (`psp-scheduler`):
//! - [`port`] and [`wire`]: re-exported from `psp-net` (the `Port` trait and its in-memory,
//!   kernel-UDP and fault-injecting ports; the wire format), which the client shares.
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
pub use psp_net::{port, wire};
#[allow(unsafe_code)] // the slot table's UnsafeCell/MaybeUninit accesses; see ring.rs
pub mod ring;
pub mod server;
