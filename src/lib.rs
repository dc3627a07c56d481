//! # psp: binaries and DPDK glue
//!
//! The root package holds the three binaries (`psp-app`, `psp-client`, `psp`) and, behind the
//! `dpdk` feature, the safe DPDK wrappers (`dpdk`) that implement the dataplane's `Port` trait.
//! `unsafe` is denied outside `dpdk` (the FFI glue), where each block carries a `// SAFETY:`
//! comment. The binaries forbid it.

#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
#[allow(unsafe_code)] // FFI to DPDK's C API
pub mod dpdk;
