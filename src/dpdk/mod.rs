//! DPDK glue (feature `dpdk`): raw bindings ([`sys`]) and, on top, safe RAII wrappers.
pub mod sys;
