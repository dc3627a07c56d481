//! # psp: binaries and DPDK glue
//!
//! The root package holds the three binaries (`psp-app`, `psp-client`, `psp`) and, behind the
//! `dpdk` feature, the safe DPDK wrappers (`dpdk`) that implement the dataplane's `Port` trait.

#[cfg(feature = "dpdk")]
pub mod dpdk;
