//! The YAML as written (serde, unknown keys refused) and its validation into [`ServerConfig`].
//!
//! Invariants: a config that validates also passes the scheduler's own checks; an error names
//! the key (and, for a bad value, the value) it refused.
//! Tested in `config/tests.rs`: the original's schema, extensions, each refused value, the
//! shipped configs under `configs/server/`, and a property test that mutated YAML is an error or
//! a valid config, never a panic.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use psp_scheduler::{DarcParams, PlanMode, Policy, RequestTypeSpec, SchedulerConfig};
use serde::Deserialize;

use super::limits::{
    check_size, MAX_CALIBRATION_ROUNDS, MAX_DRAIN_TIMEOUT_MS, MAX_KV_KEYS, MAX_PENDING_SLOTS,
    MAX_RX_BURST,
};
use super::{
    check_control_socket, check_darc_params, check_scheduler, check_telemetry_interval,
    check_worker_queue_depth, check_workers, parse_ip, parse_mac, parse_policy, request_type_id,
    ConfigError, IdleMode, ServerConfig, WorkerKind, MAX_RX_QUEUES, RATIO_SUM_TOLERANCE,
};
use crate::app::{AppConfig, AppKind, SpinMode};
use crate::wire::{Endpoint, ParseOptions};

/// A YAML scalar of any kind (`eal_init` mixes strings and numbers: `[-n, 2]`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub(super) enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    fn to_arg(&self) -> String {
        match self {
            Scalar::Int(v) => v.to_string(),
            Scalar::Float(v) => v.to_string(),
            Scalar::Bool(v) => v.to_string(),
            Scalar::Text(v) => v.clone(),
        }
    }
}

/// `is_echo`: the original writes `0`/`1`; `true`/`false` is accepted too.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(untagged)]
pub(super) enum Flag {
    Bool(bool),
    Int(i64),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    cpus: Vec<usize>,
    #[serde(default)]
    log_dir: Option<String>,
    #[serde(default)]
    n_resas: Option<i64>,
    net_workers: Vec<NetWorker>,
    network: Network,
    requests: Vec<Request>,
    workers: Workers,
    #[serde(default)]
    psp: Psp,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct NetWorker {
    ip: String,
    port: i64,
    dp: String,
    #[serde(default)]
    is_echo: Option<Flag>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Network {
    #[serde(default)]
    device_id: Option<u16>,
    mac: String,
    #[serde(default)]
    eal_init: Vec<Scalar>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    mean_ns: Option<u64>,
    #[serde(default)]
    ratio: Option<f64>,
    #[serde(default, alias = "deadline_ns")]
    deadline: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Workers {
    number: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Psp {
    #[serde(default)]
    idle: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    kv: Option<Kv>,
    #[serde(default)]
    spin: Option<Spin>,
    #[serde(default)]
    darc: Option<Darc>,
    #[serde(default)]
    ts: Option<Ts>,
    #[serde(default)]
    queue_capacity: Option<usize>,
    #[serde(default)]
    worker_queue_depth: Option<usize>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    shadow: Option<String>,
    #[serde(default)]
    rx: Option<Rx>,
    #[serde(default)]
    rx_burst: Option<usize>,
    #[serde(default)]
    rx_queues: Option<i64>,
    #[serde(default)]
    pending_slots: Option<usize>,
    #[serde(default)]
    drain_timeout_ms: Option<u64>,
    #[serde(default)]
    telemetry: Option<Telemetry>,
    #[serde(default)]
    control: Option<Control>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Ts {
    #[serde(default)]
    quantum_ns: Option<u64>,
    #[serde(default)]
    slice_all: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Telemetry {
    #[serde(default)]
    interval_ms: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Control {
    socket: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Kv {
    #[serde(default)]
    keys: Option<usize>,
    #[serde(default)]
    scan_len: Option<usize>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Spin {
    #[serde(default)]
    max_run_ns: Option<u32>,
    #[serde(default)]
    calibration_rounds: Option<u32>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Darc {
    #[serde(default)]
    delta: Option<f64>,
    #[serde(default)]
    samples_needed: Option<u64>,
    #[serde(default)]
    hysteresis: Option<f64>,
    #[serde(default)]
    rounding_cut: Option<f64>,
    #[serde(default)]
    rounding_hysteresis: Option<f64>,
    #[serde(default)]
    profile_overhead_ns: Option<u64>,
    #[serde(default)]
    dynamic: Option<bool>,
    #[serde(default)]
    plan: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Rx {
    #[serde(default)]
    verify_ip_checksum: Option<bool>,
    #[serde(default)]
    verify_udp_checksum: Option<bool>,
    #[serde(default)]
    check_dst_mac: Option<bool>,
    #[serde(default)]
    check_dst_ip: Option<bool>,
}

impl ServerFile {
    pub(super) fn validate(self) -> Result<ServerConfig, ConfigError> {
        let mut warnings = Vec::new();
        let (number, worker_kind) =
            check_cpus_and_workers(&self.cpus, &self.workers, &mut warnings)?;
        let (net, ip, port, is_echo) = check_net_worker(self.net_workers)?;

        // network.
        let mac = parse_mac("network.mac", &self.network.mac)?;
        let eal_args = rewrite_legacy_eal_args(
            self.network.eal_init.iter().map(Scalar::to_arg).collect(),
            &mut warnings,
        );

        // requests.
        let types = request_types(&self.requests)?;
        let policy = choose_policy(&net.dp, &self.psp, self.n_resas, number, &mut warnings)?;
        let mut scheduler = SchedulerConfig::new(number, types, policy);
        if let Some(capacity) = self.psp.queue_capacity {
            check_size(
                "psp.queue_capacity",
                capacity,
                psp_scheduler::MAX_QUEUE_CAPACITY,
            )?;
            scheduler.queue_capacity = capacity;
        }
        if let Some(depth) = self.psp.worker_queue_depth {
            scheduler.worker_queue_depth = depth;
            check_worker_queue_depth(&scheduler)?;
        }
        check_scheduler(&scheduler)?;
        let app = app_config(&self.psp, is_echo, worker_kind, &mut warnings)?;
        let idle = idle_mode(&self.psp)?;
        let parse = rx_checks_and_sizes(&self.psp)?;
        let telemetry_interval = self
            .psp
            .telemetry
            .as_ref()
            .and_then(|t| t.interval_ms)
            .map(check_telemetry_interval)
            .transpose()?;
        let control_socket = self
            .psp
            .control
            .as_ref()
            .map(|c| check_control_socket(&c.socket))
            .transpose()?;
        let shadow = self
            .psp
            .shadow
            .as_deref()
            .map(|name| shadow_policy(name, &scheduler.policy))
            .transpose()?;

        Ok(ServerConfig {
            dispatcher_cpu: self.cpus[0],
            worker_cpus: self.cpus[1..=number].to_vec(),
            cpus: self.cpus,
            log_dir: self.log_dir.map(PathBuf::from),
            local: Endpoint::new(mac, ip, port),
            device_id: self.network.device_id.unwrap_or(0),
            eal_args,
            worker_kind,
            is_echo,
            scheduler,
            app,
            idle,
            parse,
            rx_burst: self.psp.rx_burst,
            rx_queues: rx_queues(self.psp.rx_queues)?,
            pending_slots: self.psp.pending_slots,
            drain_timeout: self.psp.drain_timeout_ms.map(Duration::from_millis),
            telemetry_interval,
            control_socket,
            shadow,
            warnings,
        })
    }
}

/// `psp.rx_queues`: RX queues the dispatcher polls (1 by default; over memif one per client
/// thread, since a memif server accepts as many client TX rings as it has RX queues).
fn rx_queues(value: Option<i64>) -> Result<u16, ConfigError> {
    match value {
        None => Ok(1),
        Some(n) => u16::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_RX_QUEUES).contains(n))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "psp.rx_queues",
                    n,
                    format!("must be between 1 and {MAX_RX_QUEUES}"),
                )
            }),
    }
}

/// `psp.shadow`: a policy of the registry that can run live, not a preemptive one (`ts`,
/// `darc-ts`: their slices are not mirrored), beside a live policy that is not one either.
fn shadow_policy(name: &str, live: &Policy) -> Result<Policy, ConfigError> {
    let shadow = parse_policy("psp.shadow", name)?;
    if shadow.preempts() || live.preempts() {
        return Err(ConfigError::invalid(
            "psp.shadow",
            format!("{name:?}"),
            format!(
                "a preemptive policy (ts, darc-ts) cannot run as a shadow or beside one (live \
                 policy {}): its preemptible slices are not mirrored",
                live.name()
            ),
        ));
    }
    Ok(shadow)
}

/// `cpus` and `workers`: the worker count, its kind, a warning for unused CPUs.
fn check_cpus_and_workers(
    cpus: &[usize],
    workers: &Workers,
    warnings: &mut Vec<String>,
) -> Result<(usize, WorkerKind), ConfigError> {
    // cpus and workers.
    if cpus.is_empty() {
        return Err(ConfigError::invalid(
            "cpus",
            "[]",
            "needs the dispatcher's CPU and one per worker",
        ));
    }
    let number = usize::try_from(workers.number)
        .map_err(|_| ConfigError::invalid("workers.number", workers.number, "must be ≥ 1"))?;
    check_workers(number, cpus)?;
    let worker_kind = match super::normalize(&workers.kind).as_str() {
        "MB" => WorkerKind::Mb,
        "TPCC" => WorkerKind::Tpcc,
        "ROCKSDB" => WorkerKind::Rocksdb,
        "ECHO" => WorkerKind::Echo,
        _ => {
            return Err(ConfigError::invalid(
                "workers.type",
                format!("{:?}", workers.kind),
                "unknown worker type (expected MB, TPCC, ROCKSDB or ECHO)",
            ))
        }
    };
    if cpus.len() > number + 1 {
        warnings.push(format!(
            "cpus: {} entries for 1 dispatcher + {number} workers; the last {} are unused",
            cpus.len(),
            cpus.len() - number - 1
        ));
    }

    Ok((number, worker_kind))
}

/// `net_workers`: exactly one, with a unicast IP, a port and the `is_echo` flag.
fn check_net_worker(
    net_workers: Vec<NetWorker>,
) -> Result<(NetWorker, std::net::Ipv4Addr, u16, bool), ConfigError> {
    // net_workers: exactly one.
    let [net] = <[NetWorker; 1]>::try_from(net_workers).map_err(|list| {
        ConfigError::invalid(
            "net_workers",
            format!("{} entries", list.len()),
            "exactly one net worker (the dispatcher) is supported",
        )
    })?;
    let ip = parse_ip("net_workers[0].ip", &net.ip)?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(ConfigError::invalid(
            "net_workers[0].ip",
            ip,
            "must be a unicast address",
        ));
    }
    let port = u16::try_from(net.port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| {
            ConfigError::invalid("net_workers[0].port", net.port, "must be in 1..=65535")
        })?;
    let is_echo = match net.is_echo {
        None | Some(Flag::Bool(false)) | Some(Flag::Int(0)) => false,
        Some(Flag::Bool(true)) | Some(Flag::Int(1)) => true,
        Some(Flag::Int(other)) => {
            return Err(ConfigError::invalid(
                "net_workers[0].is_echo",
                other,
                "must be 0, 1, true or false",
            ))
        }
    };

    Ok((net, ip, port, is_echo))
}

/// The policy: `dp`, overridden by `psp.policy`; `n_resas` turns DARC into darc-static;
/// `psp.darc` and `psp.ts` set their parameters.
fn choose_policy(
    dp: &str,
    psp: &Psp,
    n_resas: Option<i64>,
    number: usize,
    warnings: &mut Vec<String>,
) -> Result<Policy, ConfigError> {
    let mut policy = parse_policy("net_workers[0].dp", dp)?;
    if let Some(name) = &psp.policy {
        policy = parse_policy("psp.policy", name)?;
    }
    if let Some(n_resas) = n_resas {
        match policy {
            // `n_resas: K` is the original's manual DARC (docs/design.md §1.3): the shortest type
            // alone is reserved workers [0, K) and may steal [K, N); longer types share
            // [K, N). K = 0 is the original's base config (`base_psp_cfg.yml`) and the
            // first point of Fig. 4a: no worker is reserved, the shortest type may use
            // every worker and is served first, the longer types use every worker too.
            Policy::Darc(_) | Policy::DarcStatic { .. } => {
                let reserved = usize::try_from(n_resas)
                    .ok()
                    .filter(|&n| n < number)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "n_resas",
                            n_resas,
                            format!(
                                "must be between 0 and {} (leave at least 1 of the \
                                 {number} workers to the longer types)",
                                number - 1
                            ),
                        )
                    })?;
                policy = Policy::DarcStatic {
                    reserved_short: reserved,
                };
            }
            _ => warnings.push(format!(
                "n_resas = {n_resas} has no effect under policy {}",
                policy.name()
            )),
        }
    }
    if let Some(darc) = &psp.darc {
        let model_policy = matches!(policy, Policy::DarcModel(_));
        match policy.darc_params_mut() {
            Some(params) => {
                apply_darc(params, darc)?;
                if model_policy {
                    // `darc-model` is `darc` with `plan: model`, whatever `plan` says.
                    params.plan = PlanMode::Model;
                }
                check_darc_params(params)?;
            }
            None => warnings.push(format!(
                "psp.darc has no effect under policy {}",
                policy.name()
            )),
        }
    }

    if let Some(ts) = &psp.ts {
        apply_ts(&mut policy, ts, warnings)?;
    }

    Ok(policy)
}

/// `psp.ts` under a preemptive policy: `quantum_ns` (`ts`, `darc-ts`), `slice_all`
/// (`darc-ts`); elsewhere a warning.
fn apply_ts(policy: &mut Policy, ts: &Ts, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let name = policy.name();
    if let Some(quantum_ns) = ts.quantum_ns {
        crate::server::check_ts_quantum("psp.ts.quantum_ns", quantum_ns).map_err(|_| {
            ConfigError::invalid(
                "psp.ts.quantum_ns",
                quantum_ns,
                crate::server::TS_QUANTUM_RANGE,
            )
        })?;
    }
    let Some(params) = policy.time_sharing_mut() else {
        warnings.push(format!("psp.ts has no effect under policy {name}"));
        return Ok(());
    };
    if let Some(quantum_ns) = ts.quantum_ns {
        params.quantum_ns = quantum_ns;
    }
    match (policy, ts.slice_all) {
        (Policy::DarcTs(params), Some(slice_all)) => params.slice_all = slice_all,
        (_, Some(_)) => warnings.push(format!(
            "psp.ts.slice_all has no effect under policy {name}"
        )),
        (_, None) => {}
    }
    Ok(())
}

/// `psp.app`, `psp.kv`, `psp.spin` (the application follows `workers.type` or `is_echo` when
/// not named).
fn app_config(
    psp: &Psp,
    is_echo: bool,
    worker_kind: WorkerKind,
    warnings: &mut Vec<String>,
) -> Result<AppConfig, ConfigError> {
    // Application.
    let kind = match &psp.app {
        Some(name) => name.parse::<AppKind>().map_err(|_| {
            ConfigError::invalid(
                "psp.app",
                format!("{name:?}"),
                "unknown application (expected spin, kv or echo)",
            )
        })?,
        None if is_echo => AppKind::Echo,
        None => worker_kind.default_app(),
    };
    let mut app = AppConfig {
        kind,
        ..AppConfig::default()
    };
    if let Some(kv) = &psp.kv {
        if let Some(keys) = kv.keys {
            check_size("psp.kv.keys", keys, MAX_KV_KEYS)?;
            app.kv_keys = keys;
            app.kv_scan_len = keys;
        }
        if let Some(scan_len) = kv.scan_len {
            check_size("psp.kv.scan_len", scan_len, MAX_KV_KEYS)?;
            app.kv_scan_len = scan_len;
        }
    }
    if let Some(spin) = &psp.spin {
        if let Some(max) = spin.max_run_ns {
            app.spin_max_run_ns = max;
        }
        if let Some(rounds) = spin.calibration_rounds {
            check_size(
                "psp.spin.calibration_rounds",
                rounds as usize,
                MAX_CALIBRATION_ROUNDS as usize,
            )?;
            app.spin_calibration_rounds = rounds;
        }
        if let Some(mode) = &spin.mode {
            app.spin_mode = SpinMode::from_name(mode).ok_or_else(|| {
                ConfigError::invalid("psp.spin.mode", mode, "expected clock or iterations")
            })?;
        }
    }

    if psp.kv.is_some() && kind != AppKind::Kv {
        warnings.push(format!("psp.kv has no effect with app {kind}"));
    }
    if psp.spin.is_some() && kind != AppKind::Spin {
        warnings.push(format!("psp.spin has no effect with app {kind}"));
    }

    Ok(app)
}

/// `psp.idle`.
fn idle_mode(psp: &Psp) -> Result<IdleMode, ConfigError> {
    let idle = match psp.idle.as_deref().map(str::trim) {
        None => IdleMode::default(),
        Some(name) if name.eq_ignore_ascii_case("spin") => IdleMode::Spin,
        Some(name) if name.eq_ignore_ascii_case("yield") => IdleMode::Yield,
        Some(other) => {
            return Err(ConfigError::invalid(
                "psp.idle",
                format!("{other:?}"),
                "expected spin or yield",
            ))
        }
    };
    Ok(idle)
}

/// `psp.rx` checks, and the bounds of `psp.rx_burst`, `psp.pending_slots`,
/// `psp.drain_timeout_ms`.
fn rx_checks_and_sizes(psp: &Psp) -> Result<ParseOptions, ConfigError> {
    let mut parse = ParseOptions::default();
    if let Some(rx) = &psp.rx {
        parse.verify_ip_checksum = rx.verify_ip_checksum.unwrap_or(parse.verify_ip_checksum);
        parse.verify_udp_checksum = rx.verify_udp_checksum.unwrap_or(parse.verify_udp_checksum);
        parse.check_dst_mac = rx.check_dst_mac.unwrap_or(parse.check_dst_mac);
        parse.check_dst_ip = rx.check_dst_ip.unwrap_or(parse.check_dst_ip);
    }
    for (key, value, max) in [
        ("psp.rx_burst", psp.rx_burst, MAX_RX_BURST),
        ("psp.pending_slots", psp.pending_slots, MAX_PENDING_SLOTS),
    ] {
        if let Some(value) = value {
            check_size(key, value, max)?;
        }
    }
    if let Some(ms) = psp.drain_timeout_ms {
        if ms > MAX_DRAIN_TIMEOUT_MS {
            return Err(ConfigError::invalid(
                "psp.drain_timeout_ms",
                ms,
                format!("must be at most {MAX_DRAIN_TIMEOUT_MS} (ten minutes)"),
            ));
        }
    }

    Ok(parse)
}

/// EAL options of DPDK ≤ 20.11 that DPDK 22.11 rejects, and their replacements: the original's
/// `eal_init` allows its NIC with `-w` (docs/design.md §6.1), which 22.11 refuses with "invalid option".
const LEGACY_EAL_OPTIONS: [(&str, &str); 3] = [
    ("-w", "-a"),
    ("--pci-whitelist", "--allow"),
    ("--pci-blacklist", "--block"),
];

/// Rewrites [`LEGACY_EAL_OPTIONS`] (separate, attached `-wX` or `--opt=X` values) to their
/// DPDK 22.11 names, with one warning per rewrite.
fn rewrite_legacy_eal_args(args: Vec<String>, warnings: &mut Vec<String>) -> Vec<String> {
    args.into_iter()
        .map(|arg| {
            for (old, new) in LEGACY_EAL_OPTIONS {
                let rewritten = if arg == old {
                    Some(new.to_string())
                } else if old == "-w" && arg.starts_with("-w") && !arg.starts_with("--") {
                    Some(format!("-a{}", &arg[2..]))
                } else {
                    arg.strip_prefix(old)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(|value| format!("{new}={value}"))
                };
                if let Some(rewritten) = rewritten {
                    warnings.push(format!(
                        "network.eal_init: {arg:?} is a DPDK ≤ 20.11 option that DPDK 22.11 \
                         rejects; using {rewritten:?}"
                    ));
                    return rewritten;
                }
            }
            arg
        })
        .collect()
}

fn apply_darc(params: &mut DarcParams, darc: &Darc) -> Result<(), ConfigError> {
    if let Some(v) = darc.delta {
        params.delta = v;
    }
    if let Some(v) = darc.samples_needed {
        params.samples_needed = v;
    }
    if let Some(v) = darc.hysteresis {
        params.hysteresis = v;
    }
    if let Some(v) = darc.rounding_cut {
        params.rounding_cut = v;
    }
    if let Some(v) = darc.rounding_hysteresis {
        params.rounding_hysteresis = v;
    }
    if let Some(v) = darc.profile_overhead_ns {
        params.profile_overhead_ns = v;
    }
    if let Some(v) = darc.dynamic {
        params.dynamic = v;
    }
    if let Some(v) = &darc.plan {
        params.plan = PlanMode::parse(v).map_err(|_| {
            ConfigError::invalid(
                "psp.darc.plan",
                v,
                format!("expected one of: {}", PlanMode::NAMES),
            )
        })?;
    }
    Ok(())
}

fn request_types(requests: &[Request]) -> Result<Vec<RequestTypeSpec>, ConfigError> {
    if requests.is_empty() {
        return Err(ConfigError::invalid(
            "requests",
            "[]",
            "at least one request type is required",
        ));
    }
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    let mut types = Vec::with_capacity(requests.len());
    let mut ratio_sum = 0.0;
    let mut ratios_given = 0;
    for (i, request) in requests.iter().enumerate() {
        let key = |field: &str| format!("requests[{i}].{field}");
        let name = request.type_name.trim();
        let wire_id = match (request.id, request_type_id(name)) {
            (Some(id), _) => id,
            (None, Some(id)) => id,
            (None, None) => {
                return Err(ConfigError::invalid(
                    key("type"),
                    format!("{name:?}"),
                    "unknown request type: use one of SHORT, LONG, PAGE, REGEX, NEW_ORDER, \
                     PAYMENT, DELIVERY, ORDER_STATUS, STOCK_LEVEL, GET, SCAN, or give `id:`",
                ))
            }
        };
        if wire_id == 0 {
            return Err(ConfigError::invalid(
                key(if request.id.is_some() { "id" } else { "type" }),
                format!("{name:?} (wire id 0)"),
                "wire id 0 is UNKNOWN, the class of unregistered types; it cannot be registered",
            ));
        }
        if !names.insert(super::normalize(name)) {
            return Err(ConfigError::invalid(
                key("type"),
                format!("{name:?}"),
                "duplicate request type",
            ));
        }
        if !ids.insert(wire_id) {
            return Err(ConfigError::invalid(
                key("id"),
                wire_id,
                format!("duplicate wire id (type {name:?})"),
            ));
        }
        let mut spec = RequestTypeSpec::new(name, wire_id);
        if let Some(mean_ns) = request.mean_ns {
            if mean_ns == 0 {
                return Err(ConfigError::invalid(key("mean_ns"), 0, "must be ≥ 1 ns"));
            }
            spec = spec.with_mean_ns(mean_ns);
        }
        if let Some(ratio) = request.ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(ConfigError::invalid(
                    key("ratio"),
                    ratio,
                    "must be in [0, 1]",
                ));
            }
            ratio_sum += ratio;
            ratios_given += 1;
            spec = spec.with_ratio(ratio);
        }
        if let Some(deadline) = request.deadline {
            if deadline == 0 {
                return Err(ConfigError::invalid(key("deadline"), 0, "must be ≥ 1 ns"));
            }
            spec = spec.with_deadline_ns(deadline);
        }
        types.push(spec);
    }
    let all_given = ratios_given == requests.len();
    if (all_given && (ratio_sum - 1.0).abs() > RATIO_SUM_TOLERANCE)
        || ratio_sum > 1.0 + RATIO_SUM_TOLERANCE
    {
        return Err(ConfigError::invalid(
            "requests[*].ratio",
            format!("sum {ratio_sum}"),
            "ratios must sum to 1",
        ));
    }
    Ok(types)
}

/// A policy switch asked over the control socket (`psp.control.socket`): the names and keys of
/// the server YAML's `psp.policy` and `psp.darc`, plus `allocation` to pin DARC's plan.
///
/// - `{"cmd": "policy", "policy": NAME, "darc": {...}, "allocation": [...]}`;
/// - `{"cmd": "pin", "allocation": [k1, k2, ...], "darc": {...}}`: DARC with that many workers
///   per group (shortest group first), planned once from the configured means.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PolicyCommand {
    cmd: String,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    darc: Option<Darc>,
    #[serde(default)]
    allocation: Option<Vec<usize>>,
}

/// The policy a `policy` or `pin` control command asks for, or an error naming the field.
pub(crate) fn policy_command(command: &serde_json::Value) -> Result<Policy, String> {
    let c = PolicyCommand::deserialize(command).map_err(|e| format!("command: {e}"))?;
    let name = match (c.cmd.as_str(), c.policy.as_deref()) {
        ("pin", None) => "darc",
        (_, Some(name)) => name,
        (_, None) => return Err("policy: missing (the policy to switch to, e.g. \"darc\")".into()),
    };
    let error = |e: ConfigError| match e {
        ConfigError::Invalid { key, value, why } => format!("{key}: {value}: {why}"),
        other => other.to_string(),
    };
    let mut policy = parse_policy("policy", name).map_err(error)?;
    if c.cmd == "pin" && c.allocation.is_none() {
        return Err("allocation: missing (workers per DARC group, shortest group first)".into());
    }
    match &mut policy {
        Policy::Darc(params) | Policy::DarcModel(params) => {
            if let Some(darc) = &c.darc {
                apply_darc(params, darc)
                    .and_then(|()| check_darc_params(params))
                    .map_err(|e| error(e).replacen("psp.darc.", "darc.", 1))?;
            }
            if let Some(allocation) = c.allocation {
                params.fixed_allocation = Some(allocation);
            }
        }
        other if c.darc.is_some() || c.allocation.is_some() => {
            return Err(format!(
                "{}: only with policy darc, not {}",
                if c.darc.is_some() {
                    "darc"
                } else {
                    "allocation"
                },
                other.name()
            ))
        }
        _ => {}
    }
    Ok(policy)
}
