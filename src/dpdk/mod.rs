//! DPDK glue (feature `dpdk`): raw bindings ([`sys`]) and safe RAII wrappers over them.
//!
//! - [`Eal`]: the Environment Abstraction Layer, initialised once per process from an argument
//!   list (a server config's `eal_init`). A second initialisation is an error, never UB. The EAL
//!   is cleaned up when the last handle (the `Eal` itself, and every pool and port made from it)
//!   is dropped.
//! - [`Mempool`]: a packet-buffer pool. [`Mbuf`]: one buffer, returned to its pool on drop
//!   (ownership moves into the driver on transmit, so it is never freed twice).
//! - [`EthPort`]: a configured and started ethdev port (memif, ring, tap, af_packet or PCI),
//!   implementing psp-net's [`Port`](psp_net::port::Port) trait with queue handles
//!   [`DpdkRxQueue`] and [`DpdkTxQueue`], so the dispatcher and workers run unchanged over DPDK.
//! - [`register_current_thread`]: makes a non-EAL (Rust) thread an lcore (call after pinning).
//! - [`with_unique_file_prefix`]: adds `--file-prefix <stem>-<pid>` to EAL arguments that set
//!   none, so two DPDK processes never collide on `/var/run/dpdk/rte`.
//! - [`Device`]: EAL + mbuf pool + one started port, the set-up every binary needs, in one
//!   call.
//!
//! Invariants: every `unsafe` block in the crate lives under this module and carries a
//! `// SAFETY:` comment; everything DPDK allocates is owned by one Rust value whose `Drop`
//! releases it; drop order is enforced with `Arc`s (a port keeps its pool alive, a pool keeps the
//! EAL alive), and a pool with buffers still out is leaked rather than freed under them (the EAL
//! is then left up too).
//!
//! Tests: `rte_eal_init` works once per process, so the tests live in root integration tests,
//! one EAL per test binary: `tests/dpdk_ring.rs` (`net_ring` loopback: EAL once, mbuf
//! ownership, the `Port` trait, thread registration), `tests/dpdk_memif.rs` (two memif ports in
//! one process: queue pairing, peer against raw echo) and `tests/e2e_memif.rs` (psp-app and a
//! peer as separate processes).

mod device;
mod eal;
mod ethdev;
mod mbuf;
mod mempool;
pub mod sys;

use std::ffi::CStr;

pub use device::{Device, DeviceConfig, DeviceError};
pub use eal::{current_lcore, register_current_thread, with_unique_file_prefix, Eal};
pub use ethdev::{DpdkPort, DpdkRxQueue, DpdkTxQueue, EthPort, PortConfig};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, MempoolConfig};

/// Errors from the DPDK wrappers. Each names the operation and DPDK's error text.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `Eal::init` called while an EAL exists or after one was torn down in this process.
    #[error("the DPDK EAL was already initialised in this process (rte_eal_init works once)")]
    AlreadyInitialized,
    /// An EAL argument contains a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    /// A DPDK call failed.
    #[error("{operation} failed: {message} (errno {errno})")]
    Call {
        /// What was being done, e.g. `rte_eth_dev_configure(port 0)`.
        operation: String,
        /// The positive errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// The port id does not name a probed device.
    #[error(
        "no DPDK port {port_id} ({available} port(s) probed; check the --vdev/-a EAL arguments)"
    )]
    NoSuchPort {
        /// The requested port.
        port_id: u16,
        /// How many ports EAL probed.
        available: u16,
    },
    /// The device offers fewer queues than asked for.
    #[error("port {port_id} supports {max} {direction} queue(s), {wanted} requested")]
    TooManyQueues {
        /// The port.
        port_id: u16,
        /// `"RX"` or `"TX"`.
        direction: &'static str,
        /// Requested count.
        wanted: u16,
        /// Device maximum.
        max: u16,
    },
    /// The link did not come up in time.
    #[error("port {port_id}: link still down after {waited_ms} ms (is the memif peer running?)")]
    LinkDown {
        /// The port.
        port_id: u16,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A name given to DPDK is unusable.
    #[error("invalid DPDK object name {0:?}")]
    BadName(String),
    /// [`EthPort::restart`] was not handed every queue the port gave out, once each.
    #[error("port {port_id}: restart needs every queue it handed out: {detail}")]
    QueuesInUse {
        /// The port.
        port_id: u16,
        /// What did not match.
        detail: String,
    },
}

impl DpdkError {
    /// Builds [`DpdkError::Call`] from a negative return value or a positive errno.
    pub(crate) fn call(operation: impl Into<String>, errno: i32) -> Self {
        let errno = errno.abs();
        Self::Call {
            operation: operation.into(),
            errno,
            message: strerror(errno),
        }
    }

    /// Builds [`DpdkError::Call`] from the current thread's `rte_errno`.
    pub(crate) fn from_rte_errno(operation: impl Into<String>) -> Self {
        // SAFETY: reads a thread-local integer; no preconditions.
        let errno = unsafe { sys::shim_rte_errno() };
        Self::call(operation, errno)
    }
}

/// DPDK's text for an errno value (covers DPDK's own codes above `__ELASTERROR`).
fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string,
    // valid until the next call on this thread; it is copied out immediately.
    unsafe {
        let text = sys::rte_strerror(errno);
        if text.is_null() {
            format!("error {errno}")
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}

/// Result of the DPDK wrappers.
pub type Result<T, E = DpdkError> = std::result::Result<T, E>;
