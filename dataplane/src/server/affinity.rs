//! Pinning the calling thread to one CPU (`sched_setaffinity`), as the original pins each lcore.

use std::io;

/// Pins the calling thread to `cpu`. Fails if `cpu` is out of range for a `cpu_set_t` or not
/// available to this process.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // CPU_SETSIZE bits fit in a cpu_set_t; libc::CPU_SET would panic beyond it.
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is beyond CPU_SETSIZE ({})", libc::CPU_SETSIZE),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE` was checked above, so CPU_SET writes inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 means the calling thread; `set` is a valid, initialized cpu_set_t and the
    // size passed is its exact size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs this process may run on, ascending (empty if the query fails).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: all-zero is a valid empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = calling thread; `set` is valid for writes of its exact size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu < CPU_SETSIZE`, so CPU_ISSET reads inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
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
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
    }
}
