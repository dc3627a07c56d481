//! psp-dataplane (under construction).
