//! psp-client (under construction).

pub mod config;
pub mod inflight;
