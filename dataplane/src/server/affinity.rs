//! Pinning the calling thread to one CPU (`sched_setaffinity`), as the original pins each lcore.
//!
//! Safe wrappers over `nix::sched`; this module holds no `unsafe`. A CPU index at or beyond
//! `CPU_SETSIZE` is refused with `InvalidInput` before any system call. Tested below by pinning a
//! spawned thread to an allowed CPU and reading its affinity back.

use std::io;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Pid 0 in the `sched_*affinity` calls means the calling thread.
fn calling_thread() -> Pid {
    Pid::from_raw(0)
}

/// Pins the calling thread to `cpu`. Fails if `cpu` is out of range for a `cpu_set_t` or not
/// available to this process.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let cpu_set_size = CpuSet::count();
    if cpu >= cpu_set_size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is beyond CPU_SETSIZE ({cpu_set_size})"),
        ));
    }
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(calling_thread(), &set)?;
    Ok(())
}

/// The CPUs this process may run on, ascending (empty if the query fails).
pub fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(calling_thread()) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_an_allowed_cpu_and_refuses_out_of_range() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        let cpu = allowed[0];
        std::thread::spawn(move || {
            pin_current_thread(cpu).expect("pin to an allowed cpu");
            assert_eq!(allowed_cpus(), vec![cpu]);
        })
        .join()
        .expect("pinned thread");
        let err = pin_current_thread(CpuSet::count()).expect_err("cpu beyond CPU_SETSIZE");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
