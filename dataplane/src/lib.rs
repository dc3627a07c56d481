//! psp-dataplane (under construction): wire format, ports, rings, dispatcher and worker loops.

pub mod port;
