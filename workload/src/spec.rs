//! The workload YAML schema and its validated model.
//!
//! A workload file is Perséphone's schedule file (docs/design.md §6.3): a YAML **list of phases**
//! played one after the other (a single mapping is accepted as a one-phase workload). Each
//! phase:
//!
//! ```yaml
//! - mean_ns: [1000, 100000]      # per-type mean service time (ns)
//!   ratios: [.5, .5]             # per-type share of arrivals, sums to 1
//!   rtype: [SHORT, LONG]         # type names; wire ids come from the original ReqType enum
//!   duration: 5                  # seconds
//!   uniform: false               # true: fixed inter-arrival gap instead of Poisson
//!   ptype: PSP_MB                # PSP_MB | IX | RAW (packet format)
//!   # --- optional extensions (not in the original) ---
//!   rate: 100000                 # offered rate (rps) when no load is given elsewhere
//!   pkt_size: 64                 # RAW packet size (original client flag)
//!   arrival: poisson             # poisson | uniform (must agree with `uniform` if both given)
//!   service: [fixed, {dist: lognormal, sigma: 1.0}]  # per type: fixed (default) | exponential
//!                                # | {dist: lognormal, sigma} | {dist: bimodal, low_ns, high_ns, p_high}
//!   deadline_ns: [10000, 1000000]  # per type (EDF)
//!   wire_id: [1, 2]              # per type, overrides the name-derived id
//! ```
//!
//! Invariants of a validated [`Workload`]: at least one phase; each phase has at least one type;
//! every per-type list has as many entries as `rtype`; means, durations, rates are finite and
//! positive; ratios are in `[0, 1]` and sum to 1 within [`RATIO_SUM_TOLERANCE`]; a distribution's
//! mean equals the type's `mean_ns` (bimodal is checked within [`BIMODAL_MEAN_TOLERANCE`]); wire
//! ids are unique within a phase and a type name maps to one wire id across all phases.
//!
//! Tested by the unit tests below (one per error class) and `tests/configs.rs`.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use psp_scheduler::RATIO_SUM_TOLERANCE;

/// Relative tolerance between a bimodal distribution's implied mean and the type's `mean_ns`.
pub const BIMODAL_MEAN_TOLERANCE: f64 = 1e-3;

/// The original's `ReqType` enum (Perséphone `Request.hh`, docs/design.md §3.4): the wire id
/// a type name maps to (the one table, in the scheduler crate).
pub use psp_scheduler::wire_type::NAMES as WIRE_IDS;

/// The original wire id of a type name ([`WIRE_IDS`]), if it has one. Names compare
/// case-insensitively, ignoring `_`, `-` and blanks, so `NewOrder`, `NEW_ORDER` and
/// `new-order` are the same type.
pub use psp_scheduler::wire_type::id_of as wire_id_for_name;

/// Errors from loading or validating a workload. Every variant names the field and the value.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("reading workload file {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The OS error (part of the message, so not also reported as a source).
        error: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, a wrong type or an unknown enum value
    /// (e.g. an unknown distribution); the message carries the line and column.
    #[error("workload {name}: {error}")]
    Yaml {
        /// The workload's name (file stem).
        name: String,
        /// The parser's error (part of the message, so not also reported as a source).
        error: serde_norway::Error,
    },
    /// The file holds an empty list of phases.
    #[error("workload {0}: no phases (the file must hold a list of schedules)")]
    NoPhases(String),
    /// A field has an invalid value.
    #[error("workload {name}, phase {phase}: {field} = {value}: {why}")]
    Invalid {
        /// The workload's name.
        name: String,
        /// Phase index from 0.
        phase: usize,
        /// The field, with its index for per-type lists (`ratios[1]`).
        field: String,
        /// The offending value, printed.
        value: String,
        /// What is wrong.
        why: String,
    },
    /// A per-type list does not have one entry per `rtype`.
    #[error(
        "workload {name}, phase {phase}: {field} has {got} entries but rtype has {expected} types"
    )]
    Length {
        /// The workload's name.
        name: String,
        /// Phase index from 0.
        phase: usize,
        /// The list.
        field: &'static str,
        /// Its length.
        got: usize,
        /// `rtype`'s length.
        expected: usize,
    },
}

/// How request inter-arrival gaps are drawn.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    /// Exponential gaps: an open-loop Poisson process (the original's default).
    #[default]
    Poisson,
    /// A fixed gap of `1/rate` (the original's `uniform: true`).
    Uniform,
}

/// The packet format a client sends (docs/design.md §4.2, §4.5). The simulator ignores it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize, Default)]
pub enum PacketType {
    /// Perséphone's 16-byte request (`{id, type, size, run_ns}`).
    #[default]
    #[serde(rename = "PSP_MB")]
    PspMb,
    /// Shinjuku's IX format.
    #[serde(rename = "IX")]
    Ix,
    /// A u32 id followed by padding.
    #[serde(rename = "RAW")]
    Raw,
}

/// A per-type service-time distribution. Every variant has the type's `mean_ns` as its mean.
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub enum ServiceDist {
    /// Always `mean_ns` (the original's synthetic workloads, docs/design.md §5.2).
    #[default]
    Fixed,
    /// Exponential with mean `mean_ns`.
    Exponential,
    /// Lognormal with shape `sigma` and mean `mean_ns` (`mu = ln(mean) - sigma²/2`).
    Lognormal {
        /// Shape (standard deviation of the underlying normal), > 0.
        sigma: f64,
    },
    /// `high_ns` with probability `p_high`, else `low_ns`; its mean must equal `mean_ns`.
    Bimodal {
        /// The common value (ns).
        low_ns: f64,
        /// The rare value (ns).
        high_ns: f64,
        /// Probability of `high_ns`, in `[0, 1]`.
        p_high: f64,
    },
}

impl fmt::Display for ServiceDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceDist::Fixed => write!(f, "fixed"),
            ServiceDist::Exponential => write!(f, "exponential"),
            ServiceDist::Lognormal { sigma } => write!(f, "lognormal(sigma={sigma})"),
            ServiceDist::Bimodal {
                low_ns,
                high_ns,
                p_high,
            } => write!(f, "bimodal({low_ns}ns, {high_ns}ns, p_high={p_high})"),
        }
    }
}

/// One phase as written in YAML (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    mean_ns: Vec<f64>,
    ratios: Vec<f64>,
    rtype: Vec<String>,
    duration: f64,
    #[serde(default)]
    uniform: Option<bool>,
    #[serde(default)]
    ptype: Option<PacketType>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    pkt_size: Option<u32>,
    #[serde(default)]
    arrival: Option<ArrivalProcess>,
    #[serde(default)]
    service: Option<Vec<serde_norway::Value>>,
    #[serde(default)]
    deadline_ns: Option<Vec<u64>>,
    #[serde(default)]
    wire_id: Option<Vec<u32>>,
}

/// A request type within one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestType {
    /// The name as written in `rtype`.
    pub name: String,
    /// The value of the request's type field on the wire.
    pub wire_id: u32,
    /// Index into [`Workload::classes`] (stable across phases).
    pub class: usize,
    /// Mean service time (ns): the rate normaliser and the slowdown normaliser.
    pub mean_ns: f64,
    /// Share of this phase's arrivals.
    pub ratio: f64,
    /// Service-time distribution.
    pub service: ServiceDist,
    /// Relative deadline (EDF), if configured.
    pub deadline_ns: Option<u64>,
}

/// One phase ("schedule") of a workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// The phase's types, in file order.
    pub types: Vec<RequestType>,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Arrival process.
    pub arrival: ArrivalProcess,
    /// Packet format.
    pub ptype: PacketType,
    /// Configured rate (rps), if any.
    pub rate_rps: Option<f64>,
    /// Configured packet size (RAW), if any.
    pub pkt_size: Option<u32>,
}

impl Phase {
    /// Mean service time of a request of this phase: `Σ mean·ratio` (ns).
    pub fn mean_service_ns(&self) -> f64 {
        self.types.iter().map(|t| t.mean_ns * t.ratio).sum()
    }

    /// Offered rate (rps) for a load on `workers` workers: `load·workers·1e9/Σ(mean·ratio)`
    /// (docs/design.md §5.6: load 1.0 is the theoretical peak of the workers).
    pub fn rate_for_load(&self, load: f64, workers: usize) -> f64 {
        load * workers as f64 * NS_PER_S / self.mean_service_ns()
    }
}

/// Nanoseconds per second.
pub const NS_PER_S: f64 = 1e9;

/// A type name and its wire id, shared by every phase that uses the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeClass {
    /// The name as first written.
    pub name: String,
    /// The wire id.
    pub wire_id: u32,
}

/// A validated workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The workload's name (file stem, e.g. `DISP2`).
    pub name: String,
    /// Phases, played in order.
    pub phases: Vec<Phase>,
    /// Every distinct type over all phases, in order of first appearance.
    pub classes: Vec<TypeClass>,
}

impl Workload {
    /// Reads and validates a workload file; its name is the file stem.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, WorkloadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| WorkloadError::Io {
            path: path.display().to_string(),
            error,
        })?;
        let name = path.file_stem().map_or_else(
            || "workload".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        Self::from_yaml_str(&name, &text)
    }

    /// Parses and validates a workload from YAML text.
    pub fn from_yaml_str(name: &str, text: &str) -> Result<Self, WorkloadError> {
        let yaml_err = |error| WorkloadError::Yaml {
            name: name.to_string(),
            error,
        };
        let value: serde_norway::Value = serde_norway::from_str(text).map_err(yaml_err)?;
        // Deserialise from the text again (not from `value`) so errors keep line numbers.
        let raw: Vec<RawPhase> = if value.is_sequence() {
            serde_norway::from_str(text).map_err(yaml_err)?
        } else {
            vec![serde_norway::from_str(text).map_err(yaml_err)?]
        };
        if raw.is_empty() {
            return Err(WorkloadError::NoPhases(name.to_string()));
        }
        let mut classes: Vec<TypeClass> = Vec::new();
        let mut phases = Vec::with_capacity(raw.len());
        for (index, raw_phase) in raw.into_iter().enumerate() {
            phases.push(validate_phase(name, index, raw_phase, &mut classes)?);
        }
        Ok(Self {
            name: name.to_string(),
            phases,
            classes,
        })
    }

    /// The only phase, if the workload has exactly one.
    pub fn single_phase(&self) -> Option<&Phase> {
        match self.phases.as_slice() {
            [p] => Some(p),
            _ => None,
        }
    }

    /// Per-phase offered rates (rps) for `load` on `workers` workers ([`Phase::rate_for_load`]).
    pub fn rates_for_load(&self, load: f64, workers: usize) -> Vec<f64> {
        self.phases
            .iter()
            .map(|p| p.rate_for_load(load, workers))
            .collect()
    }

    /// Mean service time of the first phase (ns): the whole workload's when it has one phase.
    pub fn mean_service_ns(&self) -> f64 {
        self.phases.first().map_or(0.0, Phase::mean_service_ns)
    }

    /// Offered rate (rps) of the first phase at `load` ([`Phase::rate_for_load`]).
    pub fn rate_for_load(&self, load: f64, workers: usize) -> f64 {
        self.phases
            .first()
            .map_or(0.0, |p| p.rate_for_load(load, workers))
    }
}

/// Where an error of one phase is: the workload's name and the phase's index.
#[derive(Copy, Clone)]
struct PhaseAt<'a> {
    name: &'a str,
    phase: usize,
}

impl PhaseAt<'_> {
    fn invalid(self, field: String, value: String, why: String) -> WorkloadError {
        WorkloadError::Invalid {
            name: self.name.to_string(),
            phase: self.phase,
            field,
            value,
            why,
        }
    }
}

fn validate_phase(
    name: &str,
    phase: usize,
    raw: RawPhase,
    classes: &mut Vec<TypeClass>,
) -> Result<Phase, WorkloadError> {
    let at = PhaseAt { name, phase };
    let arrival = validate_phase_shape(at, &raw)?;
    let mut types: Vec<RequestType> = Vec::with_capacity(raw.rtype.len());
    for i in 0..raw.rtype.len() {
        let ty = validate_type(at, &raw, i, &types, classes)?;
        types.push(ty);
    }
    Ok(Phase {
        types,
        duration_s: raw.duration,
        arrival,
        ptype: raw.ptype.unwrap_or_default(),
        rate_rps: raw.rate,
        pkt_size: raw.pkt_size,
    })
}

/// The phase's lists have one entry per type, its duration and rate are positive, its arrival
/// process is consistent, its ratios sum to 1. Returns the arrival process.
fn validate_phase_shape(at: PhaseAt<'_>, raw: &RawPhase) -> Result<ArrivalProcess, WorkloadError> {
    let invalid = |field: String, value: String, why: String| at.invalid(field, value, why);
    let (name, phase) = (at.name, at.phase);
    let n = raw.rtype.len();
    if n == 0 {
        return Err(invalid(
            "rtype".into(),
            "[]".into(),
            "at least one type is needed".into(),
        ));
    }
    let check_len = |field: &'static str, got: usize| {
        if got == n {
            Ok(())
        } else {
            Err(WorkloadError::Length {
                name: name.to_string(),
                phase,
                field,
                got,
                expected: n,
            })
        }
    };
    check_len("mean_ns", raw.mean_ns.len())?;
    check_len("ratios", raw.ratios.len())?;
    if let Some(s) = &raw.service {
        check_len("service", s.len())?;
    }
    if let Some(d) = &raw.deadline_ns {
        check_len("deadline_ns", d.len())?;
    }
    if let Some(w) = &raw.wire_id {
        check_len("wire_id", w.len())?;
    }
    if !(raw.duration.is_finite() && raw.duration > 0.0) {
        return Err(invalid(
            "duration".into(),
            raw.duration.to_string(),
            "must be a positive number of seconds".into(),
        ));
    }
    if let Some(rate) = raw.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid(
                "rate".into(),
                rate.to_string(),
                "must be a positive rate (requests/s)".into(),
            ));
        }
    }
    let arrival = match (raw.uniform, raw.arrival) {
        (Some(true), Some(ArrivalProcess::Poisson))
        | (Some(false), Some(ArrivalProcess::Uniform)) => {
            return Err(invalid(
                "arrival".into(),
                format!("{:?}", raw.arrival),
                format!("contradicts uniform: {:?}", raw.uniform),
            ))
        }
        (_, Some(a)) => a,
        (Some(true), None) => ArrivalProcess::Uniform,
        _ => ArrivalProcess::Poisson,
    };
    let ratio_sum: f64 = raw.ratios.iter().sum();
    let ratios_sum_to_one = (ratio_sum - 1.0).abs() <= RATIO_SUM_TOLERANCE;
    if !ratios_sum_to_one {
        return Err(invalid(
            "ratios".into(),
            format!("{:?}", raw.ratios),
            format!("sum to {ratio_sum}, must sum to 1 (±{RATIO_SUM_TOLERANCE})"),
        ));
    }
    Ok(arrival)
}

/// Type `i` of the phase: its mean, ratio, service distribution and wire id are valid, its name
/// and wire id are new in the phase and consistent with earlier phases (`classes`, extended
/// with a new class when the type first appears).
fn validate_type(
    at: PhaseAt<'_>,
    raw: &RawPhase,
    i: usize,
    types: &[RequestType],
    classes: &mut Vec<TypeClass>,
) -> Result<RequestType, WorkloadError> {
    let invalid = |field: String, value: String, why: String| at.invalid(field, value, why);
    let type_name = raw.rtype[i].clone();
    let mean_ns = raw.mean_ns[i];
    if !(mean_ns.is_finite() && mean_ns > 0.0) {
        return Err(invalid(
            format!("mean_ns[{i}]"),
            mean_ns.to_string(),
            "must be a positive number of nanoseconds".into(),
        ));
    }
    let ratio = raw.ratios[i];
    if !(ratio.is_finite() && (0.0..=1.0).contains(&ratio)) {
        return Err(invalid(
            format!("ratios[{i}]"),
            ratio.to_string(),
            "must be in [0, 1]".into(),
        ));
    }
    let service = match raw.service.as_ref() {
        None => ServiceDist::Fixed,
        Some(s) => parse_dist(&s[i])
            .map_err(|(value, why)| invalid(format!("service[{i}]"), value, why))?,
    };
    validate_dist(service, mean_ns)
        .map_err(|why| invalid(format!("service[{i}]"), service.to_string(), why))?;
    let wire_id = match raw.wire_id.as_ref().map(|w| w[i]) {
        Some(id) => id,
        None => wire_id_for_name(&type_name).ok_or_else(|| {
            invalid(
                format!("rtype[{i}]"),
                type_name.clone(),
                format!(
                    "no wire id known for this name (original ReqType names: {}); give an \
                     explicit wire_id",
                    WIRE_IDS[1..]
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
    };
    if let Some(other) = types
        .iter()
        .find(|t| t.wire_id == wire_id || t.name == type_name)
    {
        return Err(invalid(
            format!("rtype[{i}]"),
            format!("{type_name} (wire id {wire_id})"),
            format!(
                "same name or wire id as {} (wire id {}) in this phase",
                other.name, other.wire_id
            ),
        ));
    }
    let class = match classes
        .iter()
        .position(|c| c.name == type_name || c.wire_id == wire_id)
    {
        Some(c) if classes[c].name == type_name && classes[c].wire_id == wire_id => c,
        Some(c) => {
            return Err(invalid(
                format!("rtype[{i}]"),
                format!("{type_name} (wire id {wire_id})"),
                format!(
                    "an earlier phase has {} with wire id {}: a name must keep its wire id",
                    classes[c].name, classes[c].wire_id
                ),
            ))
        }
        None => {
            classes.push(TypeClass {
                name: type_name.clone(),
                wire_id,
            });
            classes.len() - 1
        }
    };
    Ok(RequestType {
        name: type_name,
        wire_id,
        class,
        mean_ns,
        ratio,
        service,
        deadline_ns: raw.deadline_ns.as_ref().map(|d| d[i]),
    })
}

/// Distribution names accepted in `service`.
pub const DIST_NAMES: [&str; 4] = ["fixed", "exponential", "lognormal", "bimodal"];

/// Parses one `service` entry: a name, or a mapping `{dist: NAME, params...}`.
/// Errors are `(value, why)`.
fn parse_dist(value: &serde_norway::Value) -> Result<ServiceDist, (String, String)> {
    use serde_norway::Value;
    let show = |v: &Value| {
        serde_norway::to_string(v).map_or_else(|_| format!("{v:?}"), |s| s.trim().to_string())
    };
    let (name, params) = match value {
        Value::String(name) => (name.as_str(), None),
        Value::Mapping(map) => match map.get("dist") {
            Some(Value::String(name)) => (name.as_str(), Some(map)),
            _ => {
                return Err((
                    show(value),
                    "a distribution mapping needs `dist: NAME`".into(),
                ))
            }
        },
        other => {
            return Err((
                show(other),
                format!(
                    "expected a distribution name ({}) or a mapping",
                    DIST_NAMES.join(", ")
                ),
            ))
        }
    };
    let allowed: &[&str] = match name {
        "fixed" | "exponential" => &["dist"],
        "lognormal" => &["dist", "sigma"],
        "bimodal" => &["dist", "low_ns", "high_ns", "p_high"],
        _ => {
            return Err((
                name.to_string(),
                format!(
                    "unknown distribution (expected one of: {})",
                    DIST_NAMES.join(", ")
                ),
            ))
        }
    };
    // Parameter values in `allowed[1..]` order.
    let mut numbers = [0.0f64; 3];
    match params {
        None if allowed.len() > 1 => {
            return Err((
                name.to_string(),
                format!(
                    "distribution {name} needs parameters: {{dist: {name}, {}}}",
                    allowed[1..].join(", ")
                ),
            ))
        }
        None => {}
        Some(map) => {
            for (key, v) in map {
                let key_text = key.as_str().unwrap_or("?");
                let Some(position) = allowed.iter().position(|k| *k == key_text) else {
                    return Err((
                        show(value),
                        format!(
                            "unknown key {key_text:?} for distribution {name} (allowed: {})",
                            allowed.join(", ")
                        ),
                    ));
                };
                if position > 0 {
                    numbers[position - 1] = v.as_f64().ok_or_else(|| {
                        (
                            show(value),
                            format!("{key_text} = {}: must be a number", show(v)),
                        )
                    })?;
                }
            }
            if let Some(missing) = allowed[1..].iter().find(|k| !map.contains_key(**k)) {
                return Err((
                    show(value),
                    format!("distribution {name} needs `{missing}`"),
                ));
            }
        }
    }
    Ok(match name {
        "fixed" => ServiceDist::Fixed,
        "exponential" => ServiceDist::Exponential,
        "lognormal" => ServiceDist::Lognormal { sigma: numbers[0] },
        _ => ServiceDist::Bimodal {
            low_ns: numbers[0],
            high_ns: numbers[1],
            p_high: numbers[2],
        },
    })
}

fn validate_dist(dist: ServiceDist, mean_ns: f64) -> Result<(), String> {
    match dist {
        ServiceDist::Fixed | ServiceDist::Exponential => Ok(()),
        ServiceDist::Lognormal { sigma } => {
            if sigma.is_finite() && sigma > 0.0 {
                Ok(())
            } else {
                Err(format!("sigma = {sigma}: must be positive"))
            }
        }
        ServiceDist::Bimodal {
            low_ns,
            high_ns,
            p_high,
        } => {
            if !(low_ns.is_finite() && low_ns > 0.0 && high_ns.is_finite() && high_ns > 0.0) {
                return Err(format!(
                    "low_ns = {low_ns}, high_ns = {high_ns}: must be positive"
                ));
            }
            if !(p_high.is_finite() && (0.0..=1.0).contains(&p_high)) {
                return Err(format!("p_high = {p_high}: must be in [0, 1]"));
            }
            let implied = low_ns * (1.0 - p_high) + high_ns * p_high;
            if (implied - mean_ns).abs() > BIMODAL_MEAN_TOLERANCE * mean_ns {
                return Err(format!(
                    "its mean is {implied} ns but mean_ns is {mean_ns} ns (they must agree)"
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISP2: &str = "- mean_ns: [1000, 100000]\n  ratios: [.5, .5]\n  uniform: false\n  \
                         ptype: PSP_MB\n  duration: 5\n  rtype: [SHORT, LONG]\n";

    fn err_text(yaml: &str) -> String {
        match Workload::from_yaml_str("t", yaml) {
            Ok(w) => panic!("expected an error, parsed {w:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_original_schedule_format() {
        let w = Workload::from_yaml_str("DISP2", DISP2).unwrap();
        assert_eq!(w.phases.len(), 1);
        let p = &w.phases[0];
        assert_eq!(p.types[0].name, "SHORT");
        assert_eq!(p.types[0].wire_id, 1);
        assert_eq!(p.types[1].wire_id, 2);
        assert_eq!(p.arrival, ArrivalProcess::Poisson);
        assert_eq!(p.ptype, PacketType::PspMb);
        assert!((p.mean_service_ns() - 50_500.0).abs() < 1e-9);
        // 14 workers at load 1: 14 / 50.5 µs = 277,227.7 rps (docs/design.md §1.9).
        assert!((p.rate_for_load(1.0, 14) - 277_227.722).abs() < 1e-2);
    }

    #[test]
    fn single_mapping_is_one_phase() {
        let yaml = "mean_ns: [500]\nratios: [1]\nrtype: [SHORT]\nduration: 1\nuniform: true\n";
        let w = Workload::from_yaml_str("one", yaml).unwrap();
        assert_eq!(w.phases.len(), 1);
        assert_eq!(w.phases[0].arrival, ArrivalProcess::Uniform);
    }

    #[test]
    fn extensions_parse() {
        let yaml = "- mean_ns: [1000, 100000, 3000]\n  ratios: [.5, .4, .1]\n  \
                    rtype: [SHORT, LONG, polpot]\n  duration: 2\n  arrival: uniform\n  \
                    service: [exponential, {dist: lognormal, sigma: 1.5}, \
                    {dist: bimodal, low_ns: 1000, high_ns: 21000, p_high: 0.1}]\n  \
                    deadline_ns: [10000, 1000000, 30000]\n  wire_id: [1, 2, 40]\n";
        let w = Workload::from_yaml_str("ext", yaml).unwrap();
        let t = &w.phases[0].types;
        assert_eq!(t[0].service, ServiceDist::Exponential);
        assert_eq!(t[1].service, ServiceDist::Lognormal { sigma: 1.5 });
        assert_eq!(t[2].wire_id, 40);
        assert_eq!(t[2].deadline_ns, Some(30_000));
        assert_eq!(w.phases[0].arrival, ArrivalProcess::Uniform);
    }

    #[test]
    fn names_map_to_original_wire_ids() {
        assert_eq!(wire_id_for_name("NewOrder"), Some(5));
        assert_eq!(wire_id_for_name("ORDER_STATUS"), Some(8));
        assert_eq!(wire_id_for_name("StockLevel"), Some(9));
        assert_eq!(wire_id_for_name("scan"), Some(11));
        assert_eq!(wire_id_for_name("polpot"), None);
    }

    #[test]
    fn phases_share_classes_by_name() {
        let yaml =
            "- {mean_ns: [100000, 1000], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 5}\n\
                    - {mean_ns: [3500], ratios: [1], rtype: [LONG], duration: 5}\n";
        let w = Workload::from_yaml_str("p", yaml).unwrap();
        assert_eq!(w.classes.len(), 2);
        assert_eq!(w.phases[1].types[0].class, 1);
    }

    #[test]
    fn ratio_sum_error_names_field_and_value() {
        let e =
            err_text("- {mean_ns: [1, 2], ratios: [.5, .4], rtype: [SHORT, LONG], duration: 5}");
        assert!(
            e.contains("ratios") && e.contains("0.4") && e.contains("sum"),
            "{e}"
        );
    }

    #[test]
    fn non_positive_mean_is_an_error() {
        let e =
            err_text("- {mean_ns: [0, 2], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 5}");
        assert!(e.contains("mean_ns[0]") && e.contains("= 0"), "{e}");
        let e =
            err_text("- {mean_ns: [-3, 2], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 5}");
        assert!(e.contains("mean_ns[0]") && e.contains("-3"), "{e}");
    }

    #[test]
    fn non_positive_rate_and_duration_are_errors() {
        let e = err_text("- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, rate: -1}");
        assert!(e.contains("rate = -1"), "{e}");
        let e = err_text("- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 0}");
        assert!(e.contains("duration = 0"), "{e}");
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let e =
            err_text("- {mean_ns: [1, 2, 3], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 5}");
        assert!(
            e.contains("mean_ns has 3 entries") && e.contains("2 types"),
            "{e}"
        );
    }

    #[test]
    fn unknown_distribution_is_an_error() {
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, service: [pareto]}",
        );
        assert!(
            e.contains("service[0] = pareto") && e.contains("unknown distribution"),
            "{e}"
        );
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, \
             service: [{dist: lognormal, sigma: 1, mu: 3}]}",
        );
        assert!(e.contains("\"mu\""), "{e}");
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, service: [lognormal]}",
        );
        assert!(e.contains("sigma"), "{e}");
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, \
             service: [{dist: bimodal, low_ns: 1, high_ns: 2}]}",
        );
        assert!(e.contains("needs `p_high`"), "{e}");
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, \
             service: [{dist: lognormal, sigma: wide}]}",
        );
        assert!(e.contains("sigma = wide"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = err_text("- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, rates: 3}");
        assert!(e.contains("rates"), "{e}");
    }

    #[test]
    fn unknown_name_without_wire_id_is_an_error() {
        let e = err_text("- {mean_ns: [1], ratios: [1], rtype: [polpot], duration: 5}");
        assert!(e.contains("polpot") && e.contains("wire_id"), "{e}");
    }

    #[test]
    fn inconsistent_bimodal_is_an_error() {
        let e = err_text(
            "- {mean_ns: [1000], ratios: [1], rtype: [SHORT], duration: 5, \
             service: [{dist: bimodal, low_ns: 500, high_ns: 600, p_high: 0.5}]}",
        );
        assert!(e.contains("service[0]") && e.contains("550"), "{e}");
    }

    #[test]
    fn duplicate_and_inconsistent_types_are_errors() {
        let e =
            err_text("- {mean_ns: [1, 2], ratios: [.5, .5], rtype: [SHORT, SHORT], duration: 5}");
        assert!(e.contains("SHORT"), "{e}");
        let e = err_text(
            "- {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5}\n\
             - {mean_ns: [1], ratios: [1], rtype: [SHORT], duration: 5, wire_id: [7]}",
        );
        assert!(e.contains("keep its wire id"), "{e}");
    }

    #[test]
    fn empty_list_is_an_error() {
        assert!(err_text("[]").contains("no phases"));
    }
}
