//! ring (under construction).
