//! # Server configuration: the Perséphone server YAML, validated before anything starts
//!
//! [`ServerConfig::from_yaml_str`] / [`ServerConfig::from_path`] accept the original server
//! schema (docs/design.md §6.1), including the keys the original parses and ignores, plus
//! extensions under `psp:`:
//!
//! ```yaml
//! cpus: [2, 4, 6]               # cpus[0] = dispatcher, then one per worker
//! log_dir: /tmp/psp-logs        # optional
//! n_resas: 1                    # optional: with dp DARC → darc-static, 0..N-1 reserved workers
//! net_workers:                  # exactly one
//!   - {ip: 192.168.10.10, port: 6789, dp: DARC, is_echo: 0}   # CFCFS|DFCFS|SJF|EDF|DARC
//! network: {device_id: 0, mac: '42:00:00:00:00:01', eal_init: [-n, 2, --file-prefix, psp]}
//! requests:                     # mandatory; name → original wire id, or an explicit `id:`
//!   - {type: SHORT, mean_ns: 1000, ratio: 0.5}
//!   - {type: LONG, mean_ns: 100000, ratio: 0.5, deadline: 1000000}
//! workers: {number: 2, type: MB}   # MB|TPCC → app spin, ROCKSDB → app kv, ECHO → app echo
//! psp:                          # all optional
//!   idle: yield                 # spin (default) | yield
//!   app: spin                   # spin | kv | echo (default from workers.type)
//!   kv: {keys: 5000, scan_len: 5000}
//!   spin: {mode: clock, max_run_ns: 10000000, calibration_rounds: 20}  # mode: clock | iterations
//!   darc: {delta: 0.2, samples_needed: 50000, hysteresis: 0.1, rounding_cut: 0.5,
//!          rounding_hysteresis: 0, profile_overhead_ns: 0, dynamic: true,
//!          plan: formula}       # plan: formula | model; rounding_hysteresis: workers, 0..1
//!   queue_capacity: 4096
//!   worker_queue_depth: 1       # 1 | 2: JBSQ(2), the next request waits in a busy worker's ring
//!   policy: darc-static         # overrides dp; any live psp_scheduler::Policy name
//!   ts: {quantum_ns: 5000, slice_all: false}  # ts, darc-ts: the quantum; darc-ts: slice its
//!                               # longest group on its own workers too
//!   rx: {verify_ip_checksum: true, verify_udp_checksum: false, check_dst_mac: true,
//!        check_dst_ip: true}
//!   rx_burst: 32
//!   pending_slots: 8192
//!   drain_timeout_ms: 1000
//!   telemetry: {interval_ms: 100}   # one JSON line per window (log_dir and/or the socket)
//!   control: {socket: /tmp/psp.ctl} # Unix socket: telemetry stream + JSON commands
//! ```
//!
//! Units: `mean_ns` and `deadline` are nanoseconds (`deadline_ns` is accepted as an alias).
//!
//! ## Invariants
//! A [`ServerConfig`] that exists is runnable: every key was known, every value had the right
//! type and range, the scheduler configuration was accepted by `psp_scheduler::Scheduler::new`.
//! Every error names the key (as a path, `net_workers[0].port`) and the value.
//!
//! ## Tests
//! `tests.rs`: the reference schema, every rejection (message checked for key and value), the
//! policy mapping, and every file under `configs/server/`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use psp_scheduler::{DarcParams, Policy, Registry, Scheduler, SchedulerConfig, MAX_WORKERS};
use serde::Deserialize;

use crate::app::{AppConfig, AppKind};
use crate::wire::{Endpoint, MacAddr, ParseOptions};

mod limits;
mod raw;

/// Most RX queues the dispatcher polls (`psp.rx_queues`): client threads over memif.
pub const MAX_RX_QUEUES: u16 = 64;
pub(crate) use raw::policy_command;

pub use limits::{
    available_memory_bytes, MemoryEstimate, MAX_CALIBRATION_ROUNDS, MAX_DRAIN_TIMEOUT_MS,
    MAX_KV_KEYS, MAX_PENDING_SLOTS, MAX_RX_BURST, PENDING_SLOT_BYTES,
};
pub use psp_scheduler::RATIO_SUM_TOLERANCE;

/// The original's request type names and wire ids (one table, in the scheduler crate).
pub use psp_scheduler::wire_type::NAMES as REQUEST_TYPE_IDS;

/// The wire id of an original type name. Case, `_` and `-` are ignored, so `NewOrder`,
/// `new_order` and `NEW-ORDER` are all 5.
pub use psp_scheduler::wire_type::id_of as request_type_id;

/// A name as the original's YAML values compare: case, `_`, `-` and blanks ignored.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read server config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid YAML for the schema: unknown key, wrong type, missing key (the message names
    /// the key path and the value).
    #[error("server config: {0}")]
    Yaml(String),
    /// A value out of range or inconsistent with another.
    #[error("server config: {key} = {value}: {why}")]
    Invalid {
        /// The key, as a path (`net_workers[0].port`).
        key: String,
        /// The offending value, printed.
        value: String,
        /// What is wrong.
        why: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, value: impl fmt::Display, why: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            why: why.into(),
        }
    }
}

/// The original's `workers.type`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WorkerKind {
    /// Micro-benchmark: spin for `run_ns`.
    Mb,
    /// TPC-C service times emulated by spinning.
    Tpcc,
    /// RocksDB GET/SCAN (here: the `kv` application).
    Rocksdb,
    /// Extension (`ECHO`): the payload back (the `echo` application).
    Echo,
}

impl WorkerKind {
    /// The application this kind runs unless `psp.app` says otherwise.
    pub fn default_app(self) -> AppKind {
        match self {
            WorkerKind::Mb | WorkerKind::Tpcc => AppKind::Spin,
            WorkerKind::Rocksdb => AppKind::Kv,
            WorkerKind::Echo => AppKind::Echo,
        }
    }
}

/// What idle dispatcher and worker threads do (`psp.idle`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum IdleMode {
    /// Busy-poll (dedicated cores; the original).
    #[default]
    Spin,
    /// Yield the CPU on an empty poll (shared cores; required on small machines).
    Yield,
}

impl IdleMode {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            IdleMode::Spin => "spin",
            IdleMode::Yield => "yield",
        }
    }
}

/// A validated server configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// `cpus` as given.
    pub cpus: Vec<usize>,
    /// `cpus[0]`: the dispatcher's CPU.
    pub dispatcher_cpu: usize,
    /// `cpus[1..=workers.number]`: one CPU per worker (may repeat on small machines).
    pub worker_cpus: Vec<usize>,
    /// `log_dir`, if given.
    pub log_dir: Option<PathBuf>,
    /// Our address: `network.mac`, `net_workers[0].ip` and `.port`.
    pub local: Endpoint,
    /// `network.device_id` (DPDK port id; default 0).
    pub device_id: u16,
    /// `network.eal_init`, every item as a string.
    pub eal_args: Vec<String>,
    /// `workers.type`.
    pub worker_kind: WorkerKind,
    /// `net_workers[0].is_echo` (parsed; the original ignores it too; see `psp.app: echo`).
    pub is_echo: bool,
    /// Workers, request types, policy and queue depth, accepted by `Scheduler::new`.
    pub scheduler: SchedulerConfig,
    /// The application.
    pub app: AppConfig,
    /// `psp.idle`.
    pub idle: IdleMode,
    /// `psp.rx`: which optional header checks the dispatcher runs.
    pub parse: ParseOptions,
    /// `psp.rx_burst`, if given.
    pub rx_burst: Option<usize>,
    /// `psp.pending_slots`, if given.
    pub pending_slots: Option<usize>,
    /// `psp.drain_timeout_ms`, if given.
    pub drain_timeout: Option<Duration>,
    /// `psp.telemetry.interval_ms`, if given.
    pub telemetry_interval: Option<Duration>,
    /// `psp.control.socket`, if given (its directory existed at validation).
    pub control_socket: Option<PathBuf>,
    /// `psp.shadow`: a policy run in shadow beside the live one, if given.
    pub shadow: Option<Policy>,
    /// `psp.rx_queues`: RX queues of the port, all polled by the dispatcher (default 1).
    pub rx_queues: u16,
    /// Keys that were accepted but have no effect here (printed at start-up).
    pub warnings: Vec<String>,
}

impl ServerConfig {
    /// Reads and validates a YAML file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        let raw = raw::ServerFile::deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|e| ConfigError::Yaml(e.to_string()))?;
        raw.validate()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.scheduler.workers
    }
}

/// Parses a dispatch policy name from `dp` or `psp.policy` through the scheduler's policy
/// registry; a simulator-only policy is refused.
fn parse_policy(key: &str, name: &str) -> Result<Policy, ConfigError> {
    let registry = Registry::builtin();
    let Some(entry) = registry.find(name) else {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?}"),
            format!(
                "unknown policy (expected one of: {}; the original's CFCFS, DFCFS, DARC... too)",
                registry.names(true)
            ),
        ));
    };
    if !entry.live {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?}"),
            "simulator only",
        ));
    }
    Ok((entry.default)())
}

/// `psp.darc`: `samples_needed ≥ 1` here; the numeric ranges are the scheduler's
/// ([`DarcParams::validate`]), reported under `psp.`.
fn check_darc_params(params: &DarcParams) -> Result<(), ConfigError> {
    if params.samples_needed == 0 {
        return Err(ConfigError::invalid(
            "psp.darc.samples_needed",
            0,
            "must be ≥ 1",
        ));
    }
    params.validate().map_err(|e| match e {
        psp_scheduler::ConfigError::Invalid { field, value, why } => {
            ConfigError::invalid(format!("psp.{field}"), value, why)
        }
        other => ConfigError::invalid("psp.darc", "", other.to_string()),
    })
}

/// Longest telemetry window: one minute.
pub const MAX_TELEMETRY_INTERVAL_MS: u64 = 60_000;
/// Longest Unix socket path: `sun_path` holds 108 bytes with the terminating NUL (unix(7)).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

fn check_telemetry_interval(ms: u64) -> Result<Duration, ConfigError> {
    if !(1..=MAX_TELEMETRY_INTERVAL_MS).contains(&ms) {
        return Err(ConfigError::invalid(
            "psp.telemetry.interval_ms",
            ms,
            format!("must be between 1 and {MAX_TELEMETRY_INTERVAL_MS}"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn check_control_socket(text: &str) -> Result<PathBuf, ConfigError> {
    let key = "psp.control.socket";
    let path = PathBuf::from(text.trim());
    if path.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key, format!("{text:?}"), "empty path"));
    }
    if path.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?}"),
            format!("longer than {MAX_SOCKET_PATH_BYTES} bytes (the Unix socket limit)"),
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?}"),
            format!("directory {} does not exist", dir.display()),
        ));
    }
    Ok(path)
}

fn parse_ip(key: &str, text: &str) -> Result<Ipv4Addr, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("{text:?}"), "not an IPv4 address"))
}

fn parse_mac(key: &str, text: &str) -> Result<MacAddr, ConfigError> {
    let mac: MacAddr = text.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{text:?}"),
            "not a MAC address (six hex octets like 42:00:00:00:00:01)",
        )
    })?;
    if mac.0[0] & 1 != 0 {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?}"),
            "a multicast or broadcast address cannot be a port's address",
        ));
    }
    Ok(mac)
}

fn check_workers(number: usize, cpus: &[usize]) -> Result<(), ConfigError> {
    if number == 0 || number > MAX_WORKERS {
        return Err(ConfigError::invalid(
            "workers.number",
            number,
            format!("must be between 1 and {MAX_WORKERS}"),
        ));
    }
    let available = cpus.len().saturating_sub(1);
    if number > available {
        return Err(ConfigError::invalid(
            "workers.number",
            number,
            format!(
                "more workers than worker CPUs: cpus has {} entries (cpus[0] is the \
                 dispatcher), so at most {available} workers",
                cpus.len()
            ),
        ));
    }
    Ok(())
}

/// Final check: the scheduler accepts the configuration.
/// `psp.worker_queue_depth`: the scheduler's rule (1 or 2; 1 under `ts`), reported under
/// the key.
fn check_worker_queue_depth(config: &SchedulerConfig) -> Result<(), ConfigError> {
    config.check_worker_queue_depth().map_err(|e| match e {
        psp_scheduler::ConfigError::Invalid { value, why, .. } => {
            ConfigError::invalid("psp.worker_queue_depth", value, why)
        }
        other => ConfigError::invalid("psp.worker_queue_depth", "", other.to_string()),
    })
}

fn check_scheduler(config: &SchedulerConfig) -> Result<(), ConfigError> {
    Scheduler::new(config.clone())
        .map(|_| ())
        .map_err(|e| ConfigError::invalid("requests / dp", config.policy.name(), e.to_string()))
}

#[cfg(test)]
mod tests;
