//! The client YAML (Perséphone's `base_client_psp_cfg.yml` schema, docs/design.md §6.2):
//!
//! ```yaml
//! cpus: [2]                       # cores for client threads (informational for UDP)
//! log_dir: /tmp/psp-experiments   # outputs go to <log_dir>/<label>/<outdir>
//! network:                        # DPDK only
//!   device_id: 0
//!   mac: "02:00:00:00:00:02"      # this client's MAC
//!   remote_mac: "02:00:00:00:00:01"
//!   eal_init: [--no-huge, --no-pci, --file-prefix, client, --vdev, "net_memif0,role=client"]
//! net_workers: [{ip: 10.0.0.2, port: 6789}]   # this client's source address(es)
//! schedules:                      # phases, played one after another
//!   - {rate: 100000, cmd_mean_ns: [1000, 100000], cmd_ratios: [.5, .5], duration: 5,
//!      uniform: false, ptype: PSP_MB}
//! ```
//!
//! Types are implied by order: the type at index `i` goes on the wire as `req_offset + i`
//! (docs/design.md §6.2; `--req-offset`, default 1) and takes the original `ReqType` name of that id
//! when there is one (`SHORT`, `LONG`, …), `TYPE<id>` otherwise. The schedules are turned into a
//! [`psp_workload::Workload`] so that the client draws requests exactly like the simulator.
//!
//! Validation happens before anything is sent; each error names the field (with its path, e.g.
//! `schedules[1].cmd_ratios`) and the offending value. Unknown keys are refused with their name
//! (a typo such as `network.eal_iint` must not silently turn a DPDK run into a UDP one). Tested by the unit tests below.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use psp_workload::spec::RATIO_SUM_TOLERANCE;
use psp_workload::spec::WIRE_IDS;
use psp_workload::{Workload, WorkloadError};
use serde::{Deserialize, Serialize};

/// The original client's default `--req-offset` (docs/design.md §5.1): the first type is wire id 1.
pub const DEFAULT_REQ_OFFSET: u32 = 1;

/// Errors from reading or validating a client config. Every variant names the field and value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading client config {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Malformed YAML, an unknown key, a missing field or a value of the wrong type (the
    /// message names the key and has line/column). Not a `source`: the message already holds
    /// serde's, so an error chain prints it once.
    #[error("client config: {0}")]
    Yaml(serde_norway::Error),
    /// A field has an invalid value.
    #[error("client config: {field} = {value}: {why}")]
    Invalid {
        /// The field, with its path (`schedules[0].rate`).
        field: String,
        /// The offending value.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// The schedules did not make a valid workload (names the field and value).
    #[error("client config schedules: {0}")]
    Workload(#[from] WorkloadError),
}

impl From<serde_norway::Error> for ConfigError {
    fn from(e: serde_norway::Error) -> Self {
        Self::Yaml(e)
    }
}

fn invalid(field: impl Into<String>, value: impl ToString, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        why: why.into(),
    }
}

/// `network:` (DPDK settings).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// DPDK port id.
    #[serde(default)]
    pub device_id: u16,
    /// This client's MAC, `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub mac: Option<String>,
    /// The server's MAC.
    #[serde(default)]
    pub remote_mac: Option<String>,
    /// EAL arguments.
    #[serde(default)]
    pub eal_init: Vec<String>,
}

/// One `net_workers:` entry: a client thread's source address.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetWorkerEntry {
    /// Source IPv4 address.
    pub ip: String,
    /// Source UDP port.
    pub port: u16,
}

/// One `schedules:` entry as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// Offered rate, requests per second (whole client).
    pub rate: f64,
    /// Per-type mean service time, ns (also the `run_ns` sent: constant per type).
    pub cmd_mean_ns: Vec<f64>,
    /// Per-type share of requests, summing to 1.
    pub cmd_ratios: Vec<f64>,
    /// Phase length, seconds.
    pub duration: f64,
    /// Fixed gaps instead of Poisson.
    #[serde(default)]
    pub uniform: bool,
    /// Packet format (`PSP_MB`, `IX`, `RAW`).
    #[serde(default = "default_ptype")]
    pub ptype: String,
    /// Packet size (RAW only in the original).
    #[serde(default)]
    pub pkt_size: Option<u32>,
}

fn default_ptype() -> String {
    "PSP_MB".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientConfig {
    #[serde(default)]
    cpus: Vec<u32>,
    #[serde(default)]
    log_dir: Option<PathBuf>,
    #[serde(default)]
    network: NetworkSection,
    #[serde(default)]
    net_workers: Vec<NetWorkerEntry>,
    #[serde(default)]
    schedules: Vec<ScheduleEntry>,
}

/// A validated client config.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Cores for client threads.
    pub cpus: Vec<u32>,
    /// Root of the output tree.
    pub log_dir: Option<PathBuf>,
    /// DPDK device id.
    pub device_id: u16,
    /// This client's MAC, if given.
    pub mac: Option<[u8; 6]>,
    /// The server's MAC, if given.
    pub remote_mac: Option<[u8; 6]>,
    /// EAL arguments.
    pub eal_init: Vec<String>,
    /// Source addresses, one per client thread in the original.
    pub net_workers: Vec<SocketAddrV4>,
    /// The phases, validated (empty if the file has no `schedules`).
    pub schedules: Vec<ScheduleEntry>,
}

/// Parses `aa:bb:cc:dd:ee:ff` (or `-`-separated) into bytes; `field` names it in the error.
pub fn parse_mac(field: &str, text: &str) -> Result<[u8; 6], ConfigError> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in mac.iter_mut() {
        let part = parts
            .next()
            .ok_or_else(|| invalid(field, text, "expected 6 hex bytes"))?;
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| invalid(field, text, format!("`{part}` is not a hex byte")))?;
    }
    if parts.next().is_some() {
        return Err(invalid(field, text, "expected 6 hex bytes"));
    }
    Ok(mac)
}

impl ClientConfig {
    /// Reads and validates a client config file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Parses and validates a client config from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawClientConfig = serde_norway::from_str(text)?;
        let mac = raw
            .network
            .mac
            .as_deref()
            .map(|m| parse_mac("network.mac", m))
            .transpose()?;
        let remote_mac = raw
            .network
            .remote_mac
            .as_deref()
            .map(|m| parse_mac("network.remote_mac", m))
            .transpose()?;
        let mut net_workers = Vec::with_capacity(raw.net_workers.len());
        for (i, entry) in raw.net_workers.iter().enumerate() {
            let ip: Ipv4Addr = entry.ip.parse().map_err(|_| {
                invalid(
                    format!("net_workers[{i}].ip"),
                    &entry.ip,
                    "not an IPv4 address",
                )
            })?;
            net_workers.push(SocketAddrV4::new(ip, entry.port));
        }
        for (i, s) in raw.schedules.iter().enumerate() {
            validate_schedule(i, s)?;
        }
        Ok(Self {
            cpus: raw.cpus,
            log_dir: raw.log_dir,
            device_id: raw.network.device_id,
            mac,
            remote_mac,
            eal_init: raw.network.eal_init,
            net_workers,
            schedules: raw.schedules,
        })
    }

    /// The schedules as a workload named `name`, with wire ids `req_offset + index`. `None` if
    /// the config has no schedules.
    pub fn workload(&self, name: &str, req_offset: u32) -> Result<Option<Workload>, ConfigError> {
        if self.schedules.is_empty() {
            return Ok(None);
        }
        schedules_to_workload(name, &self.schedules, req_offset).map(Some)
    }
}

fn validate_schedule(index: usize, s: &ScheduleEntry) -> Result<(), ConfigError> {
    let field = |name: &str| format!("schedules[{index}].{name}");
    if !(s.rate.is_finite() && s.rate > 0.0) {
        return Err(invalid(
            field("rate"),
            s.rate,
            "must be a positive number of requests/s",
        ));
    }
    if !(s.duration.is_finite() && s.duration > 0.0) {
        return Err(invalid(
            field("duration"),
            s.duration,
            "must be a positive number of seconds",
        ));
    }
    if s.cmd_mean_ns.is_empty() {
        return Err(invalid(
            field("cmd_mean_ns"),
            "[]",
            "at least one type is needed",
        ));
    }
    if s.cmd_ratios.len() != s.cmd_mean_ns.len() {
        return Err(invalid(
            field("cmd_ratios"),
            format!("{:?}", s.cmd_ratios),
            format!(
                "has {} entries, cmd_mean_ns has {}",
                s.cmd_ratios.len(),
                s.cmd_mean_ns.len()
            ),
        ));
    }
    for (t, &mean) in s.cmd_mean_ns.iter().enumerate() {
        if !(mean.is_finite() && mean > 0.0 && mean <= f64::from(u32::MAX)) {
            return Err(invalid(
                format!("schedules[{index}].cmd_mean_ns[{t}]"),
                mean,
                "must be a positive number of ns that fits the 32-bit run_ns field",
            ));
        }
    }
    for (t, &ratio) in s.cmd_ratios.iter().enumerate() {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(invalid(
                format!("schedules[{index}].cmd_ratios[{t}]"),
                ratio,
                "must be in [0, 1]",
            ));
        }
    }
    let sum: f64 = s.cmd_ratios.iter().sum();
    if (sum - 1.0).abs() > RATIO_SUM_TOLERANCE {
        return Err(invalid(
            field("cmd_ratios"),
            format!("{:?}", s.cmd_ratios),
            format!("sum to {sum}, not 1"),
        ));
    }
    if !matches!(s.ptype.as_str(), "PSP_MB" | "IX" | "RAW") {
        return Err(invalid(
            field("ptype"),
            &s.ptype,
            "expected PSP_MB, IX or RAW",
        ));
    }
    Ok(())
}

/// The original `ReqType` name of a wire id, or `TYPE<id>`.
pub fn type_name_for_wire_id(wire_id: u32) -> String {
    WIRE_IDS
        .iter()
        .find(|&&(_, id)| id == wire_id)
        .map_or_else(|| format!("TYPE{wire_id}"), |&(name, _)| name.to_string())
}

/// One phase in the workload file schema (psp-workload), built from a client schedule.
#[derive(Serialize)]
struct WorkloadPhaseOut {
    mean_ns: Vec<f64>,
    ratios: Vec<f64>,
    rtype: Vec<String>,
    wire_id: Vec<u32>,
    duration: f64,
    uniform: bool,
    ptype: String,
    rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pkt_size: Option<u32>,
}

/// Turns client schedules into a validated [`Workload`]: type `i` is wire id `req_offset + i`.
pub fn schedules_to_workload(
    name: &str,
    schedules: &[ScheduleEntry],
    req_offset: u32,
) -> Result<Workload, ConfigError> {
    let mut phases = Vec::with_capacity(schedules.len());
    for (index, s) in schedules.iter().enumerate() {
        validate_schedule(index, s)?;
        let mut wire_id = Vec::with_capacity(s.cmd_mean_ns.len());
        for t in 0..s.cmd_mean_ns.len() {
            let id = u32::try_from(t)
                .ok()
                .and_then(|t| req_offset.checked_add(t))
                .ok_or_else(|| invalid("--req-offset", req_offset, "type ids overflow 32 bits"))?;
            wire_id.push(id);
        }
        phases.push(WorkloadPhaseOut {
            mean_ns: s.cmd_mean_ns.clone(),
            ratios: s.cmd_ratios.clone(),
            rtype: wire_id
                .iter()
                .map(|&id| type_name_for_wire_id(id))
                .collect(),
            wire_id,
            duration: s.duration,
            uniform: s.uniform,
            ptype: s.ptype.clone(),
            rate: s.rate,
            pkt_size: s.pkt_size,
        });
    }
    let text = serde_norway::to_string(&phases)?;
    Ok(Workload::from_yaml_str(name, &text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cpus: [2]
log_dir: /tmp/psp
network:
  device_id: 0
  mac: "02:00:00:00:00:02"
  remote_mac: "02:00:00:00:00:01"
  eal_init: [--no-huge]
net_workers: [{ip: 10.0.0.2, port: 6789}]
schedules:
  - {rate: 1000, cmd_mean_ns: [1000, 100000], cmd_ratios: [.5, .5], duration: 2, uniform: false, ptype: PSP_MB}
  - {rate: 2000, cmd_mean_ns: [500], cmd_ratios: [1], duration: 1}
"#;

    fn error_of(text: &str) -> String {
        match ClientConfig::from_yaml_str(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_config_parses_and_makes_workload() {
        let config = ClientConfig::from_yaml_str(GOOD).unwrap();
        assert_eq!(config.mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(
            config.net_workers,
            vec![SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 6789)]
        );
        let workload = config
            .workload("test", DEFAULT_REQ_OFFSET)
            .unwrap()
            .unwrap();
        assert_eq!(workload.phases.len(), 2);
        let first = &workload.phases[0];
        assert_eq!(first.types[0].name, "SHORT");
        assert_eq!(first.types[0].wire_id, 1);
        assert_eq!(first.types[1].name, "LONG");
        assert_eq!(first.types[1].wire_id, 2);
        assert_eq!(first.rate_rps, Some(1000.0));
        assert_eq!(workload.phases[1].duration_s, 1.0);
        let rocks = config.workload("test", 10).unwrap().unwrap();
        assert_eq!(rocks.phases[0].types[1].name, "SCAN");
    }

    #[test]
    fn missing_field_is_named() {
        let e = error_of("schedules: [{cmd_mean_ns: [1], cmd_ratios: [1], duration: 1}]");
        assert!(e.contains("rate"), "{e}");
    }

    #[test]
    fn ratios_not_summing_to_one_are_named_with_value() {
        let e = error_of(
            "schedules: [{rate: 10, cmd_mean_ns: [1, 2], cmd_ratios: [.5, .4], duration: 1}]",
        );
        assert!(
            e.contains("schedules[0].cmd_ratios") && e.contains("0.9"),
            "{e}"
        );
    }

    #[test]
    fn negative_rate_is_named_with_value() {
        let e = error_of("schedules: [{rate: -5, cmd_mean_ns: [1], cmd_ratios: [1], duration: 1}]");
        assert!(e.contains("schedules[0].rate") && e.contains("-5"), "{e}");
    }

    #[test]
    fn bad_lengths_ptype_mac_ip_are_named() {
        let e =
            error_of("schedules: [{rate: 5, cmd_mean_ns: [1, 2], cmd_ratios: [1], duration: 1}]");
        assert!(e.contains("schedules[0].cmd_ratios"), "{e}");
        let e = error_of(
            "schedules: [{rate: 5, cmd_mean_ns: [1], cmd_ratios: [1], duration: 1, ptype: FOO}]",
        );
        assert!(e.contains("ptype") && e.contains("FOO"), "{e}");
        let e = error_of("network: {mac: '02:00:zz:00:00:01'}");
        assert!(e.contains("network.mac") && e.contains("zz"), "{e}");
        let e = error_of("net_workers: [{ip: 300.1.1.1, port: 1}]");
        assert!(
            e.contains("net_workers[0].ip") && e.contains("300.1.1.1"),
            "{e}"
        );
        let e = error_of("schedules: [{rate: 5, cmd_mean_ns: [-3], cmd_ratios: [1], duration: 1}]");
        assert!(e.contains("cmd_mean_ns[0]") && e.contains("-3"), "{e}");
        let e = error_of("schedules: [{rate: 5, cmd_mean_ns: [3], cmd_ratios: [1], duration: 0}]");
        assert!(e.contains("schedules[0].duration"), "{e}");
    }

    #[test]
    fn shipped_client_configs_are_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/client");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml") {
                let config = ClientConfig::from_path(&path).unwrap();
                let workload = config.workload("c", DEFAULT_REQ_OFFSET).unwrap().unwrap();
                assert!(
                    workload.phases.iter().all(|p| p.rate_rps.is_some()),
                    "{path:?}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 3, "{seen} configs in {dir:?}");
    }

    #[test]
    fn no_schedules_means_no_workload() {
        let config = ClientConfig::from_yaml_str("cpus: [1]").unwrap();
        assert!(config.workload("x", 1).unwrap().is_none());
    }

    #[test]
    fn workload_file_errors_name_field_and_value() {
        // `--workload` files go through psp-workload's validation: same promise.
        let e = Workload::from_yaml_str(
            "w",
            "- {mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: 1, service: [gamma]}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gamma"), "{e}");
        let e = Workload::from_yaml_str(
            "w",
            "- {mean_ns: [1000, 5], ratios: [.5, .6], rtype: [SHORT, LONG], duration: 1}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ratios"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        for (yaml, key) in [
            ("network: {eal_iint: [--no-huge]}", "eal_iint"),
            ("colour: blue", "colour"),
            ("net_workers: [{ip: 10.0.0.1, port: 1, prot: 2}]", "prot"),
            (
                "schedules: [{rate: 5, cmd_mean_ns: [1], cmd_ratios: [1], duration: 1, rtae: 3}]",
                "rtae",
            ),
        ] {
            let e = error_of(yaml);
            assert!(
                e.contains(key) && e.contains("unknown field"),
                "{yaml}: {e}"
            );
        }
    }

    #[test]
    fn unknown_type_id_gets_generic_name() {
        assert_eq!(type_name_for_wire_id(42), "TYPE42");
        assert_eq!(type_name_for_wire_id(5), "NEW_ORDER");
    }
}
