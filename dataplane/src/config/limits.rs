//! Bounds on every size in the server config, and the memory a whole config asks for.
//!
//! Every count that becomes an allocation (`psp.rx_burst`, `psp.pending_slots`,
//! `psp.queue_capacity`, `psp.kv.keys`) or a wait (`psp.drain_timeout_ms`,
//! `psp.spin.calibration_rounds`) has a named bound here, checked by validation with an error that
//! names the key and the value. The bounds alone still allow a config of several GiB, so
//! [`MemoryEstimate`] adds up what a config allocates at start-up and `psp-app` refuses to start
//! when that exceeds the memory the machine has available ([`ServerConfig::check_memory`]).
//!
//! Invariants: a config within the bounds never asks for an allocation the estimate does not
//! list; each per-item byte figure is an upper bound (checked against `size_of` in the tests
//! where the type is visible from this crate).
//! Tested in `config/tests.rs` (each bound, the estimate, the refusal) and end to end in
//! `tests/e2e_udp.rs` (absurd sizes exit with one line, not an allocation abort).

use std::fmt;

use super::{ConfigError, ServerConfig};
use crate::app::AppKind;
use crate::port::pool::{DEFAULT_BUF_CAPACITY, DEFAULT_POOL_BUFFERS};

/// Largest `psp.rx_burst`: the largest RX descriptor ring of common NICs (Intel i40e/ice,
/// 4096 descriptors); a burst cannot return more than the ring holds.
pub const MAX_RX_BURST: usize = 4096;

/// Largest `psp.pending_slots`: 1024× the original's per-type queue depth (`RQUEUE_LEN` 4096),
/// far more requests than a dispatcher can hold within any latency target.
pub const MAX_PENDING_SLOTS: usize = 1 << 22;

/// Largest `psp.kv.keys` and `psp.kv.scan_len`: 3,355× the original's 5000-key database.
pub const MAX_KV_KEYS: usize = 1 << 24;

/// Largest `psp.drain_timeout_ms`: ten minutes (a drain is bounded by the slowest request).
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 600_000;

/// Largest `psp.spin.calibration_rounds` (1 ms each): ten seconds of start-up calibration.
pub const MAX_CALIBRATION_ROUNDS: u32 = 10_000;

/// Upper bound on one pending-slab slot: the parked job (a buffer handle, the parsed request
/// view, timestamps, a preempted request's progress) plus its free-list index. Checked against
/// `size_of` in the tests.
pub const PENDING_SLOT_BYTES: u64 = 160;

/// Upper bound on one scheduler queue entry (token, arrival time, type, ring slack).
pub const QUEUE_ENTRY_BYTES: u64 = 64;

/// Upper bound on one key of the `kv` store: a B-tree entry with a boxed key (≤ 23 B) and a
/// boxed value, their heap blocks and the node's share.
pub const KV_ENTRY_BYTES: u64 = 160;

/// Upper bound on one row of DARC's windows log (preallocated for every window and type).
pub const WINDOW_ROW_BYTES: u64 = 96;

/// Packet buffers of the kernel UDP port (`--udp`), allocated on demand up to this total.
pub const UDP_POOL_BYTES: u64 = (DEFAULT_POOL_BUFFERS * DEFAULT_BUF_CAPACITY) as u64;

/// What a validated config allocates at start-up, item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// `(config key, bytes)`, largest first.
    pub items: Vec<(&'static str, u64)>,
}

impl MemoryEstimate {
    /// Total bytes.
    pub fn total_bytes(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes))
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "about {}", mib(self.total_bytes()))?;
        let parts: Vec<String> = self
            .items
            .iter()
            .take(3)
            .map(|(key, bytes)| format!("{key} {}", mib(*bytes)))
            .collect();
        write!(f, " ({})", parts.join(", "))
    }
}

/// Bytes as MiB, one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `count × each`, saturating.
fn times(count: usize, each: u64) -> u64 {
    (count as u64).saturating_mul(each)
}

impl ServerConfig {
    /// What this config allocates at start-up (the DPDK mempool, sized by `eal_init`'s `-m`,
    /// is not included; the UDP port's buffers are).
    pub fn memory_estimate(&self) -> MemoryEstimate {
        let workers = self.workers();
        let n_types = self.scheduler.types.len();
        let rx_burst = self.rx_burst.unwrap_or(crate::server::DEFAULT_RX_BURST);
        let pending = self
            .pending_slots
            .unwrap_or(crate::server::DEFAULT_PENDING_SLOTS);
        // Typed queues, UNKNOWN and the per-worker queues of d-FCFS, each with room for
        // `queue_capacity + workers` entries.
        let queues = n_types + 1 + workers;
        let per_queue = self.scheduler.queue_capacity.saturating_add(workers);
        let mut items = vec![
            ("psp.pending_slots", times(pending, PENDING_SLOT_BYTES)),
            (
                "psp.queue_capacity",
                times(queues.saturating_mul(per_queue), QUEUE_ENTRY_BYTES),
            ),
            ("psp.rx_burst", times(rx_burst.saturating_mul(2), 64)),
            ("packet buffers", UDP_POOL_BYTES),
        ];
        if self.app.kind == AppKind::Kv {
            items.push(("psp.kv.keys", times(self.app.kv_keys, KV_ENTRY_BYTES)));
        }
        if matches!(
            self.scheduler.policy,
            psp_scheduler::Policy::Darc(_)
                | psp_scheduler::Policy::DarcModel(_)
                | psp_scheduler::Policy::DarcStatic { .. }
        ) {
            let rows = crate::server::MAX_WINDOWS.saturating_mul(n_types);
            items.push(("windows log", times(rows, WINDOW_ROW_BYTES)));
        }
        if self.log_dir.is_some() || self.control_socket.is_some() {
            let bytes = crate::server::telemetry::telemetry_memory_bytes(n_types);
            items.push(("psp.telemetry windows", bytes));
        }
        items.sort_by_key(|item| std::cmp::Reverse(item.1));
        MemoryEstimate { items }
    }

    /// Refuses a config whose [`memory_estimate`](Self::memory_estimate) exceeds
    /// `available_bytes`, naming its largest items.
    pub fn check_memory(&self, available_bytes: u64) -> Result<(), ConfigError> {
        let estimate = self.memory_estimate();
        if estimate.total_bytes() <= available_bytes {
            return Ok(());
        }
        let (key, _) = estimate.items[0];
        Err(ConfigError::invalid(
            key,
            self.size_value(key),
            format!(
                "the config needs {estimate} at start-up, more than the {} available",
                mib(available_bytes)
            ),
        ))
    }

    /// The configured value behind an estimate item, for the error message.
    fn size_value(&self, key: &str) -> String {
        match key {
            "psp.pending_slots" => self
                .pending_slots
                .unwrap_or(crate::server::DEFAULT_PENDING_SLOTS)
                .to_string(),
            "psp.queue_capacity" => self.scheduler.queue_capacity.to_string(),
            "psp.rx_burst" => self
                .rx_burst
                .unwrap_or(crate::server::DEFAULT_RX_BURST)
                .to_string(),
            "psp.kv.keys" => self.app.kv_keys.to_string(),
            _ => "-".to_string(),
        }
    }
}

/// Checks `value` of `key` against `1..=max`.
pub(super) fn check_size(key: &str, value: usize, max: usize) -> Result<(), ConfigError> {
    if value == 0 || value > max {
        return Err(ConfigError::invalid(
            key,
            value,
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(())
}

/// The memory this machine has available for a new process (`MemAvailable` of
/// `/proc/meminfo`), or `None` where that cannot be read.
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable:  N kB` → bytes.
pub(super) fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}
