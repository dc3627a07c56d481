//! psp-client (under construction).
