//! Server config tests: the reference schema, every rejection, the policy mapping and every
//! shipped file under `configs/server/`.

use super::*;
use psp_scheduler::{PlanMode, RequestTypeSpec};

/// The original's base config shape (docs/design.md §6.1), with TPC-C types and every ignored key.
const ORIGINAL: &str = r#"
cpus: [2, 4, 6, 8]
log_dir: /tmpfs/experiments/
net_workers:
  - ip: 192.168.10.10
    port: 6789
    dp: CFCFS
    is_echo: 0
network:
  device_id: 0
  mac: '42:00:00:00:00:01'
  eal_init: [-n, 2, -l, '2, 4, 6, 8', --file-prefix, X, -w, '0000:18:00.1']
requests:
  - {type: NewOrder, mean_ns: 20000, ratio: 0.44}
  - {type: Payment, mean_ns: 5700, ratio: 0.44}
  - {type: Delivery, mean_ns: 88000, ratio: 0.04}
  - {type: OrderStatus, mean_ns: 6000, ratio: 0.04}
  - {type: StockLevel, mean_ns: 100000, ratio: 0.04}
workers:
  number: 3
  type: TPCC
"#;

/// A minimal config; tests replace one line of it.
const BASE: &str = r#"
cpus: [0, 1, 2]
net_workers:
  - {ip: 10.0.0.1, port: 6789, dp: DARC}
network:
  mac: '42:00:00:00:00:01'
requests:
  - {type: SHORT, mean_ns: 1000, ratio: 0.5}
  - {type: LONG, mean_ns: 100000, ratio: 0.5}
workers: {number: 2, type: MB}
"#;

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

fn error_of(text: &str) -> String {
    match ServerConfig::from_yaml_str(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// The error names the key and the value.
fn assert_rejects(text: &str, key: &str, value: &str) {
    let message = error_of(text);
    assert!(
        message.contains(key),
        "{message:?} does not name key {key:?}"
    );
    assert!(
        message.contains(value),
        "{message:?} does not name value {value:?}"
    );
}

#[test]
fn original_schema_parses() {
    let config = ServerConfig::from_yaml_str(ORIGINAL).unwrap();
    assert_eq!(config.dispatcher_cpu, 2);
    assert_eq!(config.worker_cpus, vec![4, 6, 8]);
    assert_eq!(config.workers(), 3);
    assert_eq!(config.scheduler.worker_queue_depth, 1, "the default");
    assert_eq!(config.local.ip, Ipv4Addr::new(192, 168, 10, 10));
    assert_eq!(config.local.port, 6789);
    assert_eq!(config.local.mac, MacAddr([0x42, 0, 0, 0, 0, 1]));
    assert_eq!(config.log_dir, Some(PathBuf::from("/tmpfs/experiments/")));
    assert_eq!(
        config.eal_args,
        [
            "-n",
            "2",
            "-l",
            "2, 4, 6, 8",
            "--file-prefix",
            "X",
            "-a",
            "0000:18:00.1"
        ]
    );
    assert_eq!(config.worker_kind, WorkerKind::Tpcc);
    assert_eq!(config.app.kind, AppKind::Spin);
    assert!(!config.is_echo);
    assert_eq!(config.scheduler.policy, Policy::Cfcfs);
    let ids: Vec<u32> = config.scheduler.types.iter().map(|t| t.wire_id).collect();
    assert_eq!(ids, [5, 6, 7, 8, 9]);
    assert_eq!(
        config.scheduler.types[0],
        RequestTypeSpec::new("NewOrder", 5)
            .with_mean_ns(20_000)
            .with_ratio(0.44)
    );
    assert_eq!(config.idle, IdleMode::Spin);
    assert_eq!(config.parse, ParseOptions::STRICT);
    // The original's `-w` (DPDK ≤ 20.11) is rewritten for DPDK 22.11, with a warning.
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].contains("\"-w\""),
        "{:?}",
        config.warnings
    );
}

#[test]
fn type_names_map_to_original_ids() {
    for (name, id) in REQUEST_TYPE_IDS {
        assert_eq!(request_type_id(name), Some(id));
    }
    assert_eq!(request_type_id("new-order"), Some(5));
    assert_eq!(request_type_id("scan"), Some(11));
    assert_eq!(request_type_id("polpot"), None);
    // Explicit ids for names the original does not know.
    let config = ServerConfig::from_yaml_str(&with(
        "  - {type: LONG, mean_ns: 100000, ratio: 0.5}",
        "  - {type: polpot, id: 42, mean_ns: 100000, ratio: 0.5, deadline_ns: 7}",
    ))
    .unwrap();
    assert_eq!(config.scheduler.types[1].wire_id, 42);
    assert_eq!(config.scheduler.types[1].deadline_ns, Some(7));
}

#[test]
fn extensions_are_applied() {
    let text = format!(
        "{BASE}n_resas: 1\npsp:\n  idle: yield\n  app: kv\n  kv: {{keys: 100, scan_len: 10}}\n  \
         spin: {{max_run_ns: 5000, calibration_rounds: 3}}\n  queue_capacity: 64\n  \
         worker_queue_depth: 2\n  rx: {{verify_ip_checksum: false, check_dst_mac: false}}\n  rx_burst: 16\n  \
         pending_slots: 512\n  drain_timeout_ms: 250\n"
    );
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(config.idle, IdleMode::Yield);
    assert_eq!(config.app.kind, AppKind::Kv);
    assert_eq!((config.app.kv_keys, config.app.kv_scan_len), (100, 10));
    assert_eq!(config.app.spin_max_run_ns, 5000);
    assert_eq!(config.app.spin_calibration_rounds, 3);
    assert_eq!(config.scheduler.queue_capacity, 64);
    assert_eq!(config.scheduler.worker_queue_depth, 2);
    assert_eq!(
        config.scheduler.policy,
        Policy::DarcStatic { reserved_short: 1 }
    );
    assert!(!config.parse.verify_ip_checksum);
    assert!(!config.parse.check_dst_mac);
    assert!(config.parse.check_dst_ip);
    assert_eq!(config.rx_burst, Some(16));
    assert_eq!(config.pending_slots, Some(512));
    assert_eq!(config.drain_timeout, Some(Duration::from_millis(250)));
    assert_eq!(config.warnings, ["psp.spin has no effect with app kv"]);
}

#[test]
fn darc_params_and_policy_override() {
    let text = format!(
        "{BASE}psp:\n  darc: {{delta: 0.3, samples_needed: 10, hysteresis: 0.2, \
         rounding_cut: 0.4, rounding_hysteresis: 0.25, profile_overhead_ns: 230, \
         dynamic: false}}\n"
    );
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(
        config.scheduler.policy,
        Policy::Darc(DarcParams {
            delta: 0.3,
            samples_needed: 10,
            hysteresis: 0.2,
            rounding_cut: 0.4,
            rounding_hysteresis: 0.25,
            profile_overhead_ns: 230,
            dynamic: false,
            ..DarcParams::default()
        })
    );
    // The model planner: `plan: model` under darc, or the policy darc-model (always model).
    let text = format!("{BASE}psp:\n  darc: {{plan: model, samples_needed: 10}}\n");
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    let params = config.scheduler.policy.darc_params().unwrap();
    assert_eq!((params.plan, params.samples_needed), (PlanMode::Model, 10));
    let text = format!("{BASE}psp:\n  policy: darc-model\n  darc: {{plan: formula}}\n");
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(config.scheduler.policy.name(), "darc-model");
    assert_eq!(
        config.scheduler.policy.darc_params().unwrap().plan,
        PlanMode::Model
    );
    let text = format!("{BASE}psp:\n  policy: sjf\n  darc: {{delta: 0.3}}\n");
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(config.scheduler.policy, Policy::Sjf);
    assert_eq!(config.warnings.len(), 1, "psp.darc is inert under sjf");
    for (dp, policy) in [
        ("CFCFS", Policy::Cfcfs),
        ("DFCFS", Policy::Dfcfs),
        ("SJF", Policy::Sjf),
        ("DARC", Policy::Darc(DarcParams::default())),
    ] {
        let config = ServerConfig::from_yaml_str(&with("dp: DARC", &format!("dp: {dp}"))).unwrap();
        assert_eq!(config.scheduler.policy, policy);
    }
    // Live time sharing: `dp: TS`, its quantum from psp.ts (1 µs to 1 s).
    let ts = ServerConfig::from_yaml_str(&with("dp: DARC", "dp: TS")).unwrap();
    assert_eq!(
        ts.scheduler.policy,
        Policy::TimeSharing(psp_scheduler::TimeSharingParams::default())
    );
    let quantum = |ns: u64| {
        format!(
            "{}psp:\n  ts: {{quantum_ns: {ns}}}\n",
            with("dp: DARC", "dp: TS")
        )
    };
    let Policy::TimeSharing(params) = ServerConfig::from_yaml_str(&quantum(10_000))
        .unwrap()
        .scheduler
        .policy
    else {
        panic!("dp: TS is ts");
    };
    assert_eq!(params.quantum_ns, 10_000);
    assert_rejects(&quantum(1_000_000_001), "psp.ts.quantum_ns", "1000000001");
    assert_rejects(&quantum(0), "psp.ts.quantum_ns", "= 0");
    // EDF needs deadlines (the scheduler says which); with deadlines it is accepted.
    let edf = with("dp: DARC", "dp: EDF").replace("ratio: 0.5}", "ratio: 0.5, deadline: 5000}");
    assert_eq!(
        ServerConfig::from_yaml_str(&edf).unwrap().scheduler.policy,
        Policy::Edf
    );
}

/// `policy: darc-ts` takes psp.ts (quantum, slice_all) and psp.darc; slice_all under `ts` and
/// psp.ts under a policy that does not preempt are warnings.
#[test]
fn darc_ts_takes_ts_and_darc_keys() {
    let text = format!(
        "{BASE}psp:\n  policy: darc-ts\n  ts: {{quantum_ns: 20000, slice_all: true}}\n  \
         darc: {{samples_needed: 100}}\n"
    );
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    let Policy::DarcTs(params) = &config.scheduler.policy else {
        panic!("{:?}", config.scheduler.policy);
    };
    assert_eq!(params.ts.quantum_ns, 20_000);
    assert!(params.slice_all);
    assert_eq!(params.darc.samples_needed, 100);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_rejects(
        &format!("{BASE}psp: {{policy: darc-ts, ts: {{quantum_ns: 5}}}}\n"),
        "psp.ts.quantum_ns",
        "5",
    );
    let ts = format!("{BASE}psp: {{policy: ts, ts: {{slice_all: true}}}}\n");
    let config = ServerConfig::from_yaml_str(&ts).unwrap();
    assert_eq!(
        config.warnings,
        ["psp.ts.slice_all has no effect under policy ts"]
    );
    let cfcfs = format!("{BASE}psp: {{policy: cfcfs, ts: {{quantum_ns: 20000}}}}\n");
    let config = ServerConfig::from_yaml_str(&cfcfs).unwrap();
    assert_eq!(config.warnings, ["psp.ts has no effect under policy cfcfs"]);
}

#[test]
fn n_resas_under_other_policies_is_a_warning() {
    let config =
        ServerConfig::from_yaml_str(&format!("{}n_resas: 1\n", with("dp: DARC", "dp: CFCFS")))
            .unwrap();
    assert_eq!(config.scheduler.policy, Policy::Cfcfs);
    assert!(config.warnings[0].contains("n_resas"));
}

#[test]
fn echo_flag_and_worker_type_choose_the_app() {
    let config = ServerConfig::from_yaml_str(&with("dp: DARC}", "dp: DARC, is_echo: 1}")).unwrap();
    assert!(config.is_echo);
    assert_eq!(config.app.kind, AppKind::Echo);
    let config = ServerConfig::from_yaml_str(&with("type: MB}", "type: ROCKSDB}")).unwrap();
    assert_eq!(config.app.kind, AppKind::Kv);
    let config = ServerConfig::from_yaml_str(&with("type: MB}", "type: ECHO}")).unwrap();
    assert_eq!(config.app.kind, AppKind::Echo);
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    assert_rejects(&format!("{BASE}colour: blue\n"), "colour", "unknown field");
    assert_rejects(
        &with("dp: DARC}", "dp: DARC, speed: 3}"),
        "speed",
        "unknown field",
    );
    assert_rejects(
        &format!("{BASE}psp: {{idel: yield}}\n"),
        "idel",
        "unknown field",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{detla: 1}}}}\n"),
        "detla",
        "unknown field",
    );
}

#[test]
fn wrong_types_are_rejected_with_key_and_value() {
    assert_rejects(&with("cpus: [0, 1, 2]", "cpus: [0, one, 2]"), "cpus", "one");
    assert_rejects(
        &with("type: MB}", "type: MB, number: 2}").replace("{number: 2, type: MB, ", "{"),
        "workers",
        "",
    );
    assert_rejects(
        &with("{number: 2,", "{number: two,"),
        "workers.number",
        "two",
    );
    assert_rejects(
        &with("mean_ns: 1000,", "mean_ns: fast,"),
        "requests[0].mean_ns",
        "fast",
    );
    assert_rejects(
        &format!("{BASE}psp: {{queue_capacity: -1}}\n"),
        "queue_capacity",
        "-1",
    );
}

#[test]
fn missing_mandatory_keys_are_named() {
    let no_requests = BASE
        .lines()
        .filter(|l| !l.starts_with("requests") && !l.starts_with("  - {type"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_rejects(&no_requests, "requests", "missing field");
    assert_rejects(
        &with("  mac: '42:00:00:00:00:01'", "  device_id: 0"),
        "mac",
        "missing field",
    );
}

#[test]
fn impossible_values_are_rejected_with_key_and_value() {
    let cases: [(String, &str, &str); 19] = [
        (with("{number: 2,", "{number: 3,"), "workers.number", "3"),
        (with("{number: 2,", "{number: 0,"), "workers.number", "0"),
        (with("{number: 2,", "{number: -2,"), "workers.number", "-2"),
        (with("cpus: [0, 1, 2]", "cpus: []"), "cpus", "[]"),
        (with("dp: DARC", "dp: FIFO"), "net_workers[0].dp", "FIFO"),
        (
            format!(
                "{}psp:\n  ts: {{quantum_ns: 999}}\n",
                with("dp: DARC", "dp: TS")
            ),
            "psp.ts.quantum_ns",
            "999",
        ),
        (
            with("ip: 10.0.0.1", "ip: 10.0.0.300"),
            "net_workers[0].ip",
            "10.0.0.300",
        ),
        (
            with("ip: 10.0.0.1", "ip: 0.0.0.0"),
            "net_workers[0].ip",
            "0.0.0.0",
        ),
        (with("port: 6789", "port: 0"), "net_workers[0].port", "0"),
        (
            with("port: 6789", "port: 70000"),
            "net_workers[0].port",
            "70000",
        ),
        (
            with("'42:00:00:00:00:01'", "'42:00:00:00:01'"),
            "network.mac",
            "42:00:00:00:01",
        ),
        (
            with("'42:00:00:00:00:01'", "'ff:ff:ff:ff:ff:ff'"),
            "network.mac",
            "ff:ff:ff:ff:ff:ff",
        ),
        (
            with("type: LONG,", "type: SHORT,"),
            "requests[1].type",
            "SHORT",
        ),
        (
            with("type: LONG,", "type: LONG, id: 1,"),
            "requests[1].id",
            "1",
        ),
        (
            with(
                "ratio: 0.5}\n  - {type: LONG",
                "ratio: 0.6}\n  - {type: LONG",
            ),
            "ratio",
            "1.1",
        ),
        (
            with("type: LONG,", "type: BANANA,"),
            "requests[1].type",
            "BANANA",
        ),
        (
            with("type: LONG,", "type: UNKNOWN,"),
            "requests[1].type",
            "UNKNOWN",
        ),
        (
            with("{number: 2, type: MB}", "{number: 2, type: GPU}"),
            "workers.type",
            "GPU",
        ),
        (
            with("mean_ns: 1000,", "mean_ns: 0,"),
            "requests[0].mean_ns",
            "0",
        ),
    ];
    for (text, key, value) in cases {
        assert_rejects(&text, key, value);
    }
}

#[test]
fn more_impossible_values() {
    assert_rejects(&format!("{BASE}n_resas: 2\n"), "n_resas", "2");
    assert_rejects(&format!("{BASE}n_resas: -1\n"), "n_resas", "-1");
    assert_rejects(&format!("{BASE}psp: {{idle: nap}}\n"), "psp.idle", "nap");
    assert_rejects(
        &format!("{BASE}psp: {{app: rocksdb}}\n"),
        "psp.app",
        "rocksdb",
    );
    assert_rejects(
        &format!("{BASE}psp: {{policy: lifo}}\n"),
        "psp.policy",
        "lifo",
    );
    assert_rejects(
        &format!("{BASE}psp: {{queue_capacity: 0}}\n"),
        "psp.queue_capacity",
        "0",
    );
    for depth in ["0", "3"] {
        assert_eq!(
            error_of(&format!("{BASE}psp: {{worker_queue_depth: {depth}}}\n")),
            format!("server config: psp.worker_queue_depth = {depth}: must be 1 or 2")
        );
    }
    assert_rejects(
        &format!("{BASE}psp: {{worker_queue_depth: 2, policy: ts}}\n"),
        "psp.worker_queue_depth",
        "2",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{rounding_cut: 1.5}}}}\n"),
        "psp.darc.rounding_cut",
        "1.5",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{rounding_hysteresis: -0.1}}}}\n"),
        "psp.darc.rounding_hysteresis",
        "-0.1",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{samples_needed: 0}}}}\n"),
        "psp.darc.samples_needed",
        "0",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{plan: guess}}}}\n"),
        "psp.darc.plan",
        "guess",
    );
    assert_rejects(
        &format!("{BASE}psp: {{darc: {{plan: model, dynamic: false}}}}\n"),
        "psp.darc.plan",
        "model",
    );
    assert_rejects(
        &format!("{BASE}psp: {{kv: {{keys: 0}}}}\n"),
        "psp.kv.keys",
        "0",
    );
    assert_rejects(
        &format!("{BASE}psp: {{rx_burst: 0}}\n"),
        "psp.rx_burst",
        "0",
    );
    assert_rejects(
        &with("dp: DARC}", "dp: DARC, is_echo: 2}"),
        "net_workers[0].is_echo",
        "2",
    );
    let two_net_workers = with(
        "  - {ip: 10.0.0.1, port: 6789, dp: DARC}",
        "  - {ip: 10.0.0.1, port: 6789, dp: DARC}\n  - {ip: 10.0.0.2, port: 6789, dp: DARC}",
    );
    assert_rejects(&two_net_workers, "net_workers", "2 entries");
    let no_requests = with(
        "  - {type: SHORT, mean_ns: 1000, ratio: 0.5}\n  - {type: LONG, mean_ns: 100000, ratio: 0.5}",
        "  []",
    )
    .replace("requests:\n  []", "requests: []");
    assert_rejects(&no_requests, "requests", "[]");
    // SJF without means: the scheduler's own check, reported against the policy.
    let sjf_no_means = with("dp: DARC", "dp: SJF").replace("mean_ns: 100000, ", "");
    assert_rejects(&sjf_no_means, "dp", "sjf");
}

#[test]
fn unreadable_file_names_the_path() {
    let err = ServerConfig::from_path("/nonexistent/psp.yml").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/psp.yml"), "{err}");
}

/// Every shipped server config parses; the memif demo is what the docs say it is.
#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/server");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let config = ServerConfig::from_path(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(config.workers() >= 1);
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the four shipped configs in {}",
        dir.display()
    );

    let demo = ServerConfig::from_path(dir.join("memif-demo.yml")).unwrap();
    assert_eq!(demo.worker_cpus, vec![0, 1]);
    assert_eq!(demo.idle, IdleMode::Yield);
    assert!(matches!(demo.scheduler.policy, Policy::Darc(_)));
    assert!(demo
        .eal_args
        .iter()
        .any(|a| a.contains("net_memif") && a.contains("rsize=14")));
    assert!(demo.eal_args.iter().any(|a| a == "--no-huge"));
    for (file, policy) in [
        ("darc-14.yml", "darc"),
        ("cfcfs-14.yml", "cfcfs"),
        ("dfcfs-14.yml", "dfcfs"),
    ] {
        let config = ServerConfig::from_path(dir.join(file)).unwrap();
        assert_eq!(config.workers(), 14, "{file}");
        assert_eq!(config.scheduler.policy.name(), policy, "{file}");
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Arbitrary text is an error or a config, never a panic.
        #[test]
        fn arbitrary_text(text in ".{0,200}") {
            let _ = ServerConfig::from_yaml_str(&text);
        }

        /// The base config with one line dropped and one character replaced: an error or a
        /// config, never a panic; an accepted config still passes the scheduler's checks.
        #[test]
        fn mutated_base(drop_line in 0usize..12, at in 0usize..400, with in any::<char>()) {
            let mut lines: Vec<&str> = BASE.lines().collect();
            if drop_line < lines.len() {
                lines.remove(drop_line);
            }
            let mut text: Vec<char> = lines.join("\n").chars().collect();
            if at < text.len() {
                text[at] = with;
            }
            let text: String = text.into_iter().collect();
            if let Ok(config) = ServerConfig::from_yaml_str(&text) {
                prop_assert!(Scheduler::new(config.scheduler.clone()).is_ok());
                prop_assert_eq!(config.worker_cpus.len(), config.workers());
            }
        }
    }
}

#[test]
fn spin_mode_defaults_to_clock_and_accepts_iterations() {
    let config = ServerConfig::from_yaml_str(BASE).unwrap();
    assert_eq!(config.app.spin_mode, crate::app::SpinMode::Clock);
    let text = format!("{BASE}psp:\n  spin: {{mode: Iterations}}\n");
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(config.app.spin_mode, crate::app::SpinMode::Iterations);
    assert_rejects(
        &format!("{BASE}psp:\n  spin: {{mode: tsc}}\n"),
        "psp.spin.mode",
        "tsc",
    );
}
/// The original artifact's `base_psp_cfg.yml` has `n_resas: 0` with `dp: DARC`: static DARC
/// with no reserved worker, which the original runs (docs/design.md §1.3).
#[test]
fn n_resas_zero_is_static_darc_without_reserved_workers() {
    let config = ServerConfig::from_yaml_str(&format!("{BASE}n_resas: 0\n")).unwrap();
    assert_eq!(
        config.scheduler.policy,
        Policy::DarcStatic { reserved_short: 0 }
    );
    let scheduler = Scheduler::new(config.scheduler.clone()).unwrap();
    let plan = scheduler.plan().expect("static plan");
    assert!(plan.groups[0].reserved.is_empty(), "{plan:?}");
    assert_eq!(
        plan.groups[0].stealable.len(),
        2,
        "SHORT may use every worker"
    );
    assert_eq!(plan.groups[1].reserved.len(), 2, "LONG uses every worker");
}

#[test]
fn legacy_eal_options_are_rewritten_with_a_warning() {
    let text = with(
        "network:\n  mac: '42:00:00:00:00:01'",
        "network:\n  mac: '42:00:00:00:00:01'\n  eal_init: [-w, '0000:18:00.1', '-w0000:19:00.0', \
         '--pci-whitelist=0000:1a:00.0', --pci-blacklist, '0000:1b:00.0', -l, '0']",
    );
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(
        config.eal_args,
        [
            "-a",
            "0000:18:00.1",
            "-a0000:19:00.0",
            "--allow=0000:1a:00.0",
            "--block",
            "0000:1b:00.0",
            "-l",
            "0"
        ]
    );
    assert_eq!(config.warnings.len(), 4, "{:?}", config.warnings);
}

/// Every size is bounded: the issue's `rx_burst: 1000000000000` and `pending_slots:
/// 4294967295` aborted on allocation before these bounds.
#[test]
fn absurd_sizes_are_rejected_with_key_and_value() {
    let cases = [
        ("rx_burst: 1000000000000", "psp.rx_burst", "1000000000000"),
        ("rx_burst: 4097", "psp.rx_burst", "4097"),
        (
            "pending_slots: 4294967295",
            "psp.pending_slots",
            "4294967295",
        ),
        ("pending_slots: 0", "psp.pending_slots", "0"),
        (
            "queue_capacity: 1000000000",
            "psp.queue_capacity",
            "1000000000",
        ),
        (
            "drain_timeout_ms: 86400000",
            "psp.drain_timeout_ms",
            "86400000",
        ),
        ("kv: {keys: 1000000000000}", "psp.kv.keys", "1000000000000"),
        (
            "kv: {scan_len: 1000000000000}",
            "psp.kv.scan_len",
            "1000000000000",
        ),
        (
            "spin: {calibration_rounds: 4000000000}",
            "psp.spin.calibration_rounds",
            "4000000000",
        ),
    ];
    for (psp, key, value) in cases {
        assert_rejects(&format!("{BASE}psp: {{{psp}}}\n"), key, value);
    }
    // The bounds themselves are accepted.
    let at_bounds = format!(
        "{BASE}psp: {{rx_burst: {MAX_RX_BURST}, pending_slots: {MAX_PENDING_SLOTS}, \
         drain_timeout_ms: {MAX_DRAIN_TIMEOUT_MS}}}\n"
    );
    ServerConfig::from_yaml_str(&at_bounds).unwrap();
}

#[test]
fn memory_estimate_adds_up_and_refuses_what_does_not_fit() {
    let small = ServerConfig::from_yaml_str(BASE).unwrap();
    let big = ServerConfig::from_yaml_str(&format!(
        "{BASE}psp: {{pending_slots: {MAX_PENDING_SLOTS}, queue_capacity: 1048576}}\n"
    ))
    .unwrap();
    let (small_bytes, big_bytes) = (
        small.memory_estimate().total_bytes(),
        big.memory_estimate().total_bytes(),
    );
    assert!(small_bytes < 64 << 20, "{}", small.memory_estimate());
    // 4 Mi slots and 5 queues of 1 Mi entries: at least their entries' sizes.
    assert!(big_bytes > (MAX_PENDING_SLOTS as u64) * 64 + 5 * (1 << 20) * 16);
    let items = big.memory_estimate().items;
    assert_eq!(
        items.iter().map(|(_, b)| b).sum::<u64>(),
        big_bytes,
        "total = sum of items"
    );
    assert!(items.windows(2).all(|w| w[0].1 >= w[1].1), "largest first");
    small.check_memory(small_bytes).unwrap();
    let message = big.check_memory(small_bytes).unwrap_err().to_string();
    assert!(message.contains(items[0].0), "{message}");
    assert!(message.contains("MiB"), "{message}");
    // A kv store is counted by its keys.
    let kv = ServerConfig::from_yaml_str(&format!(
        "{BASE}psp: {{app: kv, kv: {{keys: {MAX_KV_KEYS}}}}}\n"
    ))
    .unwrap();
    let message = kv.check_memory(1 << 30).unwrap_err().to_string();
    assert!(
        message.contains(&format!("psp.kv.keys = {MAX_KV_KEYS}")),
        "{message}"
    );
}

#[test]
fn mem_available_is_read_from_meminfo() {
    let meminfo = "MemTotal:       16316412 kB\nMemFree:  1 kB\nMemAvailable:   12345 kB\n";
    assert_eq!(limits::parse_mem_available(meminfo), Some(12345 * 1024));
    assert_eq!(limits::parse_mem_available("MemTotal: 1 kB\n"), None);
}

#[test]
fn telemetry_and_control_keys_are_parsed_and_checked() {
    let dir = std::env::temp_dir();
    let socket = dir.join(format!("psp-cfg-{}.sock", std::process::id()));
    let text = format!(
        "{BASE}psp:\n  telemetry: {{interval_ms: 250}}\n  control: {{socket: {}}}\n",
        socket.display()
    );
    let config = ServerConfig::from_yaml_str(&text).unwrap();
    assert_eq!(config.telemetry_interval, Some(Duration::from_millis(250)));
    assert_eq!(config.control_socket.as_deref(), Some(socket.as_path()));
    let base = ServerConfig::from_yaml_str(BASE).unwrap();
    assert_eq!((base.telemetry_interval, base.control_socket), (None, None));

    for ms in ["0", "60001"] {
        assert_rejects(
            &format!("{BASE}psp: {{telemetry: {{interval_ms: {ms}}}}}\n"),
            "psp.telemetry.interval_ms",
            ms,
        );
    }
    assert_rejects(
        &format!("{BASE}psp: {{telemetry: {{period_ms: 5}}}}\n"),
        "period_ms",
        "unknown field",
    );
    assert_rejects(
        &format!("{BASE}psp: {{control: {{path: /tmp/x}}}}\n"),
        "path",
        "unknown field",
    );
    assert_rejects(
        &format!("{BASE}psp: {{control: {{socket: /no/such/dir/ctl.sock}}}}\n"),
        "psp.control.socket",
        "directory /no/such/dir does not exist",
    );
    let long = format!("/tmp/{}", "s".repeat(120));
    assert_rejects(
        &format!("{BASE}psp: {{control: {{socket: {long}}}}}\n"),
        "psp.control.socket",
        "longer than 107 bytes",
    );
}

#[test]
fn telemetry_runs_when_it_has_a_sink() {
    use crate::server::{ServerOptions, DEFAULT_TELEMETRY_INTERVAL};
    let none = ServerConfig::from_yaml_str(BASE).unwrap();
    assert_eq!(ServerOptions::from_config(&none, "l").telemetry, None);
    let logged = ServerConfig::from_yaml_str(&format!("{BASE}log_dir: /tmp/psp-logs\n")).unwrap();
    let telemetry = ServerOptions::from_config(&logged, "run1")
        .telemetry
        .expect("log_dir → telemetry file");
    assert_eq!(telemetry.interval, DEFAULT_TELEMETRY_INTERVAL);
    assert_eq!(
        telemetry.file.as_deref(),
        Some(std::path::Path::new(
            "/tmp/psp-logs/run1/server/telemetry.jsonl"
        ))
    );
    assert_eq!(telemetry.control_socket, None);
}

#[test]
fn shadow_policy_parses_and_ts_is_refused_on_either_side() {
    let c = ServerConfig::from_yaml_str(&format!("{BASE}psp: {{shadow: SJF}}\n")).unwrap();
    assert_eq!(c.shadow, Some(Policy::Sjf));
    assert_eq!(ServerConfig::from_yaml_str(BASE).unwrap().shadow, None);
    assert_rejects(&format!("{BASE}psp: {{shadow: ts}}\n"), "psp.shadow", "ts");
    assert_rejects(
        &format!("{BASE}psp: {{policy: ts, shadow: cfcfs}}\n"),
        "psp.shadow",
        "cfcfs",
    );
    assert_rejects(
        &format!("{BASE}psp: {{shadow: lifo}}\n"),
        "psp.shadow",
        "lifo",
    );
}
