//! The server report as JSON (`log_dir/<label>/server/report.json`, `psp-app --report FILE`):
//! the same figures as the printed summary, for tools (`psp live`) and notebooks.
//!
//! Shape: `{policy, app, elapsed_s, rx_packets, served, responses, drops: {...}, dispatcher:
//! {...}, stages: {name: {count, mean_ns, p50_ns, ...}}, service: [{type, ...}], per_type: [...],
//! workers: [...], port: {...}, warnings: [...]}`. Tested in `server/tests.rs` against the
//! report it was made from.

use serde_json::{json, Value};

use super::report::ServerReport;
use super::stages::StageHistogram;

/// A histogram's summary in ns.
pub fn stage_json(h: &StageHistogram) -> Value {
    json!({
        "count": h.count(),
        "sum_ns": h.sum_ns(),
        "mean_ns": h.mean_ns(),
        "p50_ns": h.quantile_ns(0.5),
        "p90_ns": h.quantile_ns(0.9),
        "p99_ns": h.quantile_ns(0.99),
        "p999_ns": h.quantile_ns(0.999),
        "max_ns": h.histogram().max(),
    })
}

impl ServerReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> Value {
        let d = &self.dispatcher;
        let stages: serde_json::Map<String, Value> = self
            .stage_rows()
            .iter()
            .map(|(name, h)| ((*name).to_string(), stage_json(h)))
            .collect();
        let service: Vec<Value> = self
            .service_rows()
            .iter()
            .map(|row| {
                json!({
                    "type": row.name,
                    "nominal_mean_ns": row.nominal_mean_ns,
                    "requested_mean_ns": row.requested_mean_ns,
                    "measured": stage_json(&row.measured),
                    "inflation": row.inflation(self.app),
                })
            })
            .collect();
        let (per_type, workers) = (self.per_type_json(), self.workers_json());
        let drops: serde_json::Map<String, Value> = d
            .parse_drops
            .nonzero()
            .map(|(reason, count)| (format!("parse_{reason}"), json!(count)))
            .chain([
                ("slab_full".to_string(), json!(d.slab_full_drops)),
                ("queue_full".to_string(), json!(d.queue_full_drops)),
                ("abandoned".to_string(), json!(d.abandoned_at_shutdown)),
                ("total".to_string(), json!(self.total_drops())),
            ])
            .collect();
        json!({
            "policy": self.policy,
            "app": self.app,
            "elapsed_s": self.elapsed_ns as f64 / 1e9,
            "rx_packets": d.rx_packets,
            "served": self.requests_served(),
            "responses": self.responses_sent(),
            "drops": drops,
            "accounting": {
                "rx_packets": d.rx_packets,
                "answered": self.responses_sent(),
                "dropped": self.total_drops() - d.abandoned_at_shutdown,
                "abandoned": d.abandoned_at_shutdown,
                "arp": d.arp_requests,
                "balanced": self.accounted_rx() == d.rx_packets,
                "not_read": self.drops_before_dispatcher(),
            },
            "plan_updates": d.plan_updates,
            "plans_kept_by_rounding_hysteresis": d.scheduler.darc_plans_kept,
            "policy_switches": d.policy_switches,
            "policy_at_stop": d.policy_at_stop,
            "shadow": d.shadow,
            "model_planner": {
                "replans": d.scheduler.darc_model_replans,
                "candidates": d.scheduler.darc_model_candidates,
                "replan_ns_total": d.model_replan_ns_total,
                "replan_ns_max": d.model_replan_ns_max,
            },
            "preemption": {
                "preemptions": d.preemptions, "resumed": d.resumed,
                "flags_set": d.preempt_flags_set, "cost": stage_json(&d.preempt_cost),
            },
            "dispatcher": {
                "polls": d.polls, "busy_polls": d.busy_polls, "busy_ns": d.busy_ns,
                "utilisation": self.dispatcher_utilisation(),
                "busy_ns_per_request": self.dispatcher_ns_per_request(),
                "cpu_ns": d.cpu_ns,
                "cpu_ns_per_request": self.dispatcher_cpu_ns_per_request(),
                "involuntary_switches": d.involuntary_switches,
                "dispatched": d.dispatched, "completed": d.completed,
                "dispatched_behind": d.scheduler.dispatched_behind,
            },
            "stages": stages,
            "service": service,
            "per_type": per_type,
            "workers": workers,
            "port": {
                "rx_packets": self.port.rx_packets, "tx_packets": self.port.tx_packets,
                "rx_missed": self.port.rx_missed, "rx_errors": self.port.rx_errors,
                "tx_errors": self.port.tx_errors,
            },
            "telemetry": self.telemetry.as_ref().map(|t| json!({
                "interval_ns": t.interval_ns, "windows": t.windows,
                "windows_dropped": t.windows_dropped, "lines_written": t.lines_written,
                "lines_not_written": t.lines_not_written, "file": t.file,
                "file_error": t.file_error, "control_socket": t.control_socket,
                "clients": t.clients, "clients_refused": t.clients_refused,
                "commands": t.commands, "command_errors": t.command_errors,
                "lines_dropped_to_clients": t.lines_dropped_to_clients,
            })),
            "warnings": self.warnings(),
        })
    }

    /// One object per request type (UNKNOWN last).
    fn per_type_json(&self) -> Vec<Value> {
        self.dispatcher
            .per_type
            .iter()
            .map(|t| {
                json!({
                    "type": t.name, "wire_id": t.wire_id, "arrivals": t.arrivals,
                    "rejected": t.rejected, "slab_full": t.slab_full, "dispatched": t.dispatched, "completed": t.completed,
                    "preempted": t.preempted,
                    "queue_depth_hwm": t.queue_depth_hwm, "mean_sojourn_ns": t.mean_sojourn_ns(),
                })
            })
            .collect()
    }

    /// One object per worker.
    fn workers_json(&self) -> Vec<Value> {
        self.workers
            .iter()
            .map(|w| {
                json!({
                    "worker": w.worker, "cpu": w.cpu, "pin_failed": w.pin_failed,
                    "requests": w.requests, "busy_ns": w.busy_ns, "cpu_ns": w.cpu_ns,
                    "tx_packets": w.tx_packets, "tx_bursts": w.tx_bursts,
                    "tx_dropped": w.tx_dropped, "build_failures": w.build_failures,
                    "preempted_slices": w.preempted_slices,
                })
            })
            .collect()
    }
}
