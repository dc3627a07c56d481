//! psp-workload (under construction).
