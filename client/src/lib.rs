//! psp-client (under construction).

pub mod config;
pub mod engine;
pub mod inflight;
pub mod merge;
pub mod report;
pub mod sweep;
