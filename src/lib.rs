//! # psp: binaries and DPDK glue
//!
//! The root package holds the three binaries (`psp-app`, `psp-client`, `psp`) and, behind the
//! `dpdk` feature, the safe DPDK wrappers (`dpdk`) that implement the dataplane's `Port` trait.
//! `unsafe` is denied outside `dpdk` (the FFI glue), where each block carries a `// SAFETY:`
//! comment. The binaries forbid it.
//!
//! Tested by the root integration tests: `tests/dpdk_ring.rs` and `tests/dpdk_memif.rs` (the
//! DPDK wrappers in one process), `tests/e2e_udp.rs` and `tests/e2e_memif.rs` (`psp-app` against
//! a request peer), `tests/client_server_udp.rs` and `tests/client_server_memif.rs` (`psp-app`
//! against `psp-client`), `tests/control_udp.rs` (`psp-app`'s control socket and `psp top`); the
//! DPDK ones need the `dpdk` feature.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "dpdk")]
#[allow(unsafe_code)] // FFI to DPDK's C API
pub mod dpdk;
pub mod exit;
pub mod live;
pub mod peer;
pub mod plans;
pub mod top;
