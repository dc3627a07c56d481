//! The EAL: one per process, cleaned up when its last handle goes.
//!
//! `rte_eal_init` works once per process (a second call fails with EALREADY, and calling it again
//! after `rte_eal_cleanup` is not supported), so [`Eal::init`] keeps a process-wide state and
//! refuses every call after the first. [`Eal`] is a cheap clonable handle; pools, ports and
//! registered threads hold one, so `rte_eal_cleanup` runs only after all of them are gone.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use super::{sys, DpdkError, Result};

/// Program name passed as `argv[0]` (EAL parses from `argv[1]`).
const EAL_PROGRAM_NAME: &str = "psp";
/// `LCORE_ID_ANY` (rte_lcore.h): what `rte_lcore_id()` returns on a thread that is not an lcore.
const LCORE_ID_ANY: u32 = u32::MAX;

/// EAL options that set the runtime-file prefix (two DPDK processes with the same prefix
/// collide: "Cannot create lock on '/var/run/dpdk/rte/config'").
const FILE_PREFIX_OPTION: &str = "--file-prefix";
/// EAL option that makes a process share no runtime files (no prefix needed).
const NO_SHCONF_OPTION: &str = "--no-shconf";

/// `args` plus `--file-prefix <stem>-<pid>` when they set no prefix (and no `--no-shconf`), so
/// that two DPDK processes (server and client, parallel tests) never share runtime files.
pub fn with_unique_file_prefix<S: AsRef<str>>(args: &[S], stem: &str) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    let has_prefix = args.iter().any(|arg| {
        arg == FILE_PREFIX_OPTION
            || arg.starts_with(&format!("{FILE_PREFIX_OPTION}="))
            || arg == NO_SHCONF_OPTION
    });
    if !has_prefix {
        args.push(format!(
            "{FILE_PREFIX_OPTION}={stem}-{}",
            std::process::id()
        ));
    }
    args
}

/// No EAL has been initialised in this process.
const STATE_UNINIT: u8 = 0;
/// `Eal::init` was called (successfully or not); no further init is possible.
const STATE_USED: u8 = 1;
static EAL_STATE: AtomicU8 = AtomicU8::new(STATE_UNINIT);
/// Whether the EAL is up (initialised and not cleaned up).
static EAL_RUNNING: AtomicBool = AtomicBool::new(false);
/// Set when a pool had to be leaked (buffers still out): cleaning the EAL up would then free
/// memory those buffers point into, so the cleanup is skipped.
static EAL_MEMORY_LEAKED: AtomicBool = AtomicBool::new(false);

/// A handle on the process's EAL. Clones share it; the last one to drop runs `rte_eal_cleanup`.
#[derive(Clone, Debug)]
pub struct Eal {
    inner: Arc<EalInner>,
}

#[derive(Debug)]
struct EalInner {
    args: Vec<String>,
}

impl Eal {
    /// Initialises the EAL from `args` (without a program name, e.g. a config's `eal_init`:
    /// `["--no-huge", "--no-pci", "--file-prefix", "p1", "--vdev", "net_ring0"]`).
    ///
    /// Fails with [`DpdkError::AlreadyInitialized`] on every call after the first one in this
    /// process, whatever the first one's outcome.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Self> {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let mut c_args = Vec::with_capacity(args.len() + 1);
        for arg in std::iter::once(EAL_PROGRAM_NAME).chain(args.iter().map(String::as_str)) {
            c_args.push(CString::new(arg).map_err(|_| DpdkError::BadArgument(arg.to_string()))?);
        }
        if EAL_STATE
            .compare_exchange(
                STATE_UNINIT,
                STATE_USED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(DpdkError::AlreadyInitialized);
        }
        // EAL may keep pointers into argv (getopt permutes it, device arguments are referenced
        // during probing), so the strings live for the rest of the process.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as c_int;
        // rte_eal_init pins the calling thread to the main lcore's CPU, and every thread spawned
        // from it afterwards would inherit that one CPU (psp-client's threads, the server's
        // helpers). psp pins its busy-polling threads itself: remember the process's CPUs first
        // and give them back to the thread after.
        psp_dataplane::server::remember_process_cpus();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked (live
        // forever); EAL_STATE guarantees this is the process's only call.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno(format!("rte_eal_init({args:?})")));
        }
        // Best effort: where it fails the thread stays on the main lcore's CPU, as DPDK left it.
        let _ =
            psp_dataplane::server::restrict_current_thread(&psp_dataplane::server::allowed_cpus());
        EAL_RUNNING.store(true, Ordering::Release);
        Ok(Self {
            inner: Arc::new(EalInner { args }),
        })
    }

    /// The arguments the EAL was initialised with (without the program name).
    pub fn args(&self) -> &[String] {
        &self.inner.args
    }

    /// Whether an EAL is up in this process.
    pub fn is_running() -> bool {
        EAL_RUNNING.load(Ordering::Acquire)
    }

    /// Records that DPDK memory had to be leaked: the EAL will not be cleaned up.
    pub(crate) fn note_memory_leaked() {
        EAL_MEMORY_LEAKED.store(true, Ordering::Release);
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        EAL_RUNNING.store(false, Ordering::Release);
        if EAL_MEMORY_LEAKED.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: rte_eal_get_runtime_dir returns a pointer to a static NUL-terminated string,
        // copied out before cleanup. Then this is the last handle: every pool, port and
        // registered thread (which all hold an `Eal`) is gone, so nothing references EAL memory.
        let runtime_dir = unsafe {
            let dir = sys::rte_eal_get_runtime_dir();
            let dir = (!dir.is_null()).then(|| CStr::from_ptr(dir).to_string_lossy().into_owned());
            sys::rte_eal_cleanup();
            dir
        };
        // DPDK 22.11 leaves its runtime files (/var/run/dpdk/<file-prefix>/) behind; they are
        // this process's alone (psp runs no secondary processes), so remove them.
        if let Some(dir) = runtime_dir.filter(|dir| !dir.is_empty()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

thread_local! {
    /// Keeps the EAL up while this thread is registered; unregisters it at thread exit.
    static THREAD_REGISTRATION: std::cell::RefCell<Option<ThreadRegistration>> =
        const { std::cell::RefCell::new(None) };
}

struct ThreadRegistration {
    _eal: Eal,
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread was registered by `register_current_thread`, and the EAL is still
        // up (this registration holds a handle on it).
        unsafe { sys::rte_thread_unregister() }
    }
}

/// Makes the calling thread a DPDK lcore (`rte_thread_register`), so per-lcore mempool caches
/// work on it; call after pinning it. Returns its lcore id. Threads that already are lcores
/// (EAL threads, or registered before) just get their id. The thread is unregistered when it
/// exits, and keeps `eal` up until then.
pub fn register_current_thread(eal: &Eal) -> Result<u32> {
    if let Some(lcore) = current_lcore() {
        return Ok(lcore);
    }
    // SAFETY: the EAL is up (we hold a handle); the call only touches this thread's state.
    if unsafe { sys::rte_thread_register() } < 0 {
        return Err(DpdkError::from_rte_errno("rte_thread_register"));
    }
    THREAD_REGISTRATION.with(|slot| {
        *slot.borrow_mut() = Some(ThreadRegistration { _eal: eal.clone() });
    });
    current_lcore().ok_or_else(|| DpdkError::from_rte_errno("rte_thread_register"))
}

/// The calling thread's lcore id, or `None` if it is not an lcore.
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads a thread-local variable.
    let lcore = unsafe { sys::rte_lcore_id() };
    (lcore != LCORE_ID_ANY).then_some(lcore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_prefix_is_added_only_when_missing() {
        let added = with_unique_file_prefix(&["--no-huge", "--no-pci"], "psp-x");
        assert_eq!(added.len(), 3);
        assert_eq!(
            added[2],
            format!("--file-prefix=psp-x-{}", std::process::id())
        );
        for given in [
            vec!["--no-huge", "--file-prefix", "mine"],
            vec!["--file-prefix=mine"],
            vec!["--no-shconf"],
        ] {
            assert_eq!(
                with_unique_file_prefix(&given, "psp-x"),
                given,
                "{given:?} kept"
            );
        }
    }
}
