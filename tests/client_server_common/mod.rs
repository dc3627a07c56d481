//! Helpers shared by the client↔server end-to-end tests: the server config and workload they
//! use, starting `psp-app` over UDP and `psp-client`, and the comparison of the client's
//! `summary.json` with the server's summary table. Needs `mod common;` in the including test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{spawn_udp_server, Proc, ScratchDir};

/// The server's request types (names the client's workload uses too, so wire ids agree).
pub const SERVER_TYPES: [&str; 2] = ["SHORT", "LONG"];

/// A two-worker c-FCFS spin server config with `eal_init`, logging under `log_dir`.
pub fn server_config(eal_init: &[String], log_dir: &Path) -> String {
    let eal: Vec<String> = eal_init.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "cpus: [0, 1, 1]\n\
         log_dir: {}\n\
         net_workers:\n  - {{ip: 10.9.0.1, port: 6789, dp: CFCFS}}\n\
         network: {{device_id: 0, mac: '02:00:00:00:09:01', eal_init: [{}]}}\n\
         requests:\n  - {{type: {}, mean_ns: 1000, ratio: 0.7}}\n  \
         - {{type: {}, mean_ns: 10000, ratio: 0.3}}\n\
         workers: {{number: 2, type: MB}}\n\
         psp: {{idle: yield, app: spin}}\n",
        log_dir.display(),
        eal.join(", "),
        SERVER_TYPES[0],
        SERVER_TYPES[1]
    )
}

/// Writes `workload.yml` in `dir`: one schedule of [`SERVER_TYPES`] at 70/30 %, means 1 and
/// 10 µs, with the further schedule keys `keys` (e.g. `"duration: 1, rate: 400"`).
pub fn write_workload(dir: &ScratchDir, keys: &str) -> PathBuf {
    let workload = dir.file("workload.yml");
    std::fs::write(
        &workload,
        format!(
            "- {{mean_ns: [1000, 10000], ratios: [.7, .3], rtype: [{}, {}], {keys}}}\n",
            SERVER_TYPES[0], SERVER_TYPES[1]
        ),
    )
    .unwrap();
    workload
}

/// Starts `psp-app` with [`server_config`] over kernel UDP on 127.0.0.1 (a free port) and waits
/// until it serves. Returns the process and the `(ip, port)` it prints.
pub fn start_udp_server(dir: &ScratchDir, timeout: Duration) -> (Proc, String, String) {
    let cfg = dir.file("server.yml");
    std::fs::write(&cfg, server_config(&["--no-huge".to_string()], &dir.path)).unwrap();
    let (server, addr) = spawn_udp_server("server", &cfg, &[], dir, timeout);
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    let (ip, port) = (ip.to_string(), port.to_string());
    (server, ip, port)
}

/// Spawns `psp-client` as process `name` with `args`.
pub fn spawn_client(name: &str, args: &[&str], dir: &ScratchDir) -> Proc {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    Proc::spawn(name, env!("CARGO_BIN_EXE_psp-client").as_ref(), &args, dir)
}

/// Waits (bounded) for `process` and asserts that it exited with status 0, showing its stdout
/// and stderr otherwise.
pub fn assert_exits_ok(process: &mut Proc, timeout: Duration) {
    let status = process.wait(timeout);
    assert!(
        status.success(),
        "{}: {status}\n{}\n{}",
        process.name,
        process.stdout_text(),
        process.stderr_text()
    );
}

/// The client's `summary.json` in `dir`.
pub fn client_summary(dir: &Path) -> psp_client::report::Summary {
    let path = dir.join(psp_client::report::SUMMARY_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(name, arrivals, completed)` rows of the server's per-type table: the line that starts with
/// `type` and names `arrivals`, then one row per type until a blank line.
pub fn server_type_counts(stdout: &str) -> Vec<(String, u64, u64)> {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !(l.starts_with("type") && l.contains("arrivals")));
    let header: Vec<&str> = lines
        .next()
        .expect("server prints a per-type table")
        .split_whitespace()
        .collect();
    // "wire id" is two header words but one value: a value's index is its header index − 1.
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name) - 1;
    let (arrivals, completed) = (column("arrivals"), column("completed"));
    lines
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("worker"))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let number = |i: usize| {
                cells[i]
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("{l}: {e}"))
            };
            (cells[0].to_string(), number(arrivals), number(completed))
        })
        .collect()
}

/// Every request answered, none malformed, the accounting adds up (per type, overall, with and
/// without warm-up), and per-type counts equal on both sides.
pub fn check_counts_match(summary: &psp_client::report::Summary, server_stdout: &str) {
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
    let c = &summary.counters;
    assert!(c.sent > 0, "{c:?}");
    assert_eq!(c.sent, c.planned, "{c:?}");
    assert_eq!(c.received, c.sent, "every request answered: {c:?}");
    assert_eq!(
        c.unanswered + c.late + c.duplicate + c.unknown_id + c.malformed,
        0,
        "{c:?}"
    );
    let server = server_type_counts(server_stdout);
    for t in &summary.types {
        let (_, arrivals, completed) = server
            .iter()
            .find(|(name, _, _)| name == &t.name)
            .unwrap_or_else(|| {
                panic!(
                    "type {} not in the server's table:\n{server_stdout}",
                    t.name
                )
            });
        assert_eq!(
            t.sent, *arrivals,
            "{}: client sent vs server arrivals",
            t.name
        );
        assert_eq!(
            t.received, *completed,
            "{}: client received vs server completed",
            t.name
        );
    }
    assert_eq!(summary.types.iter().map(|t| t.sent).sum::<u64>(), c.sent);
    // client sent = server rx + counted drops; server rx = answered + dropped + abandoned.
    let accounting = crate::common::ServerAccounting::from_summary(server_stdout);
    accounting.assert_all_sent_counted(c.sent);
    assert_eq!(accounting.answered, c.received, "{accounting:?}");
}
