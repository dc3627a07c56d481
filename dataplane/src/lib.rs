//! psp-dataplane (under construction): wire format, ports, rings, dispatcher and worker loops.

pub mod app;
pub mod config;
pub mod port;
pub mod ring;
pub mod server;
pub mod wire;
