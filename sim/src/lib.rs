//! psp-sim (under construction).
