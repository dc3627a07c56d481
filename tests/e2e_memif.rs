//! End to end over DPDK memif, with real processes: `psp-app --cfg` (memif server) against a
//! `psp-app peer` process (memif client) built on the same bindings.
//!
//! - valid requests of two types are all answered, a burst of malformed frames is counted by
//!   reason in the server's summary, and the server keeps serving;
//! - SIGINT gives a clean exit with the summary and no DPDK runtime files left; a second run
//!   right after works (same memif socket, same file prefix); SIGINT before any peer connects
//!   exits cleanly too;
//! - invalid configs are refused before the EAL starts, with a message naming the key;
//! - under DARC with a two-type workload, the windows log appears with one group per type.
//!
//! Every child has a timeout and is killed if the test fails; tests run one at a time (2-core
//! machines) and the server yields when idle.
#![cfg(feature = "dpdk")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use common::{memif_eal_args, Proc, ScratchDir, ServerAccounting};

/// One e2e test at a time: each runs two polling processes.
static SERIAL: Mutex<()> = Mutex::new(());

const SERVER_MAC: &str = "02:00:00:00:00:01";
const SERVER_IP: &str = "10.0.0.1";
const SERVER_PORT: u16 = 6789;
/// Time for a server to start, serve and exit; generous for loaded CI machines.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// Time for a server to come up and wait for its link.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_psp-app"))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server's YAML. `policy_block` holds `dp`-related lines; `extra` goes under `psp:`.
fn server_config(
    dir: &ScratchDir,
    tag: &str,
    dp: &str,
    workers: usize,
    requests_yaml: &str,
    psp_extra: &str,
) -> PathBuf {
    let socket = dir.file("memif.sock");
    let prefix = format!("psp-e2e-{tag}-srv-{}", std::process::id());
    let eal: Vec<String> = memif_eal_args(&prefix, "server", &socket)
        .into_iter()
        .map(|arg| format!("'{arg}'"))
        .collect();
    // cpus[0] = dispatcher; worker i on core (i + 1) % 2: one worker shares core 0 with the
    // dispatcher (both yield when idle), the other has core 1, so that no two workers
    // time-slice one core (a spinning worker would stall the other for a scheduler tick).
    let cpus: Vec<String> = std::iter::once("0".to_string())
        .chain((0..workers).map(|i| ((i + 1) % 2).to_string()))
        .collect();
    let text = format!(
        "cpus: [{cpus}]\n\
         log_dir: {log_dir}\n\
         net_workers:\n  - {{ip: {SERVER_IP}, port: {SERVER_PORT}, dp: {dp}}}\n\
         network:\n  device_id: 0\n  mac: '{SERVER_MAC}'\n  eal_init: [{eal}]\n\
         requests:\n{requests_yaml}\
         workers: {{number: {workers}, type: MB}}\n\
         psp:\n  idle: yield\n{psp_extra}",
        cpus = cpus.join(", "),
        log_dir = dir.file("logs").display(),
        eal = eal.join(", "),
    );
    let path = dir.file(&format!("{tag}.yml"));
    std::fs::write(&path, text).expect("write config");
    path
}

fn peer_args(
    dir: &ScratchDir,
    tag: &str,
    requests: u32,
    types: &str,
    malformed_rounds: u32,
    server_workers: usize,
) -> Vec<String> {
    let prefix = format!("psp-e2e-{tag}-peer-{}", std::process::id());
    let mut args: Vec<String> = [
        "peer",
        "--ip",
        "10.0.0.2",
        "--port",
        "40000",
        "--mac",
        "02:00:00:00:00:02",
        "--server-mac",
        SERVER_MAC,
        "--server-ip",
        SERVER_IP,
        "--server-port",
        &SERVER_PORT.to_string(),
        "--requests",
        &requests.to_string(),
        "--window",
        "4",
        "--types",
        types,
        "--malformed-rounds",
        &malformed_rounds.to_string(),
        "--rx-queues",
        // One per server TX queue (dispatcher + workers): memif pairs queue i with queue i.
        &(server_workers + 1).to_string(),
        "--stall-timeout-s",
        "5",
        "--deadline-s",
        "40",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(memif_eal_args(&prefix, "client", &dir.file("memif.sock")));
    args
}

/// The peer's JSON report.
fn run_peer(dir: &ScratchDir, tag: &str, args: Vec<String>) -> serde_json::Value {
    let mut peer = Proc::spawn(&format!("{tag}-peer"), &exe(), &args, dir);
    let status = peer.wait(PROCESS_TIMEOUT);
    assert!(
        status.success(),
        "peer failed: {status}\n{}",
        peer.stderr_text()
    );
    let stdout = peer.stdout_text();
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("peer printed no report:\n{stdout}"));
    serde_json::from_str(line).expect("peer report is JSON")
}

fn count(report: &serde_json::Value, path: &[&str]) -> u64 {
    let mut value = report;
    for key in path {
        value = &value[*key];
    }
    value.as_u64().unwrap_or(0)
}

/// The count on the summary line `parse drop <reason> <count>`.
fn summary_drop_count(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .filter_map(|line| line.trim().strip_prefix("parse drop "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            (words.next()? == reason).then(|| words.next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Starts the server and waits until it waits for its link (or is already serving).
fn start_server(dir: &ScratchDir, name: &str, cfg: &Path) -> Proc {
    let args = vec![
        "--cfg".to_string(),
        cfg.display().to_string(),
        "--label".to_string(),
        name.to_string(),
    ];
    let mut server = Proc::spawn(name, &exe(), &args, dir);
    server.wait_for_output("waiting for the link", START_TIMEOUT);
    server
}

/// SIGINT, then a clean exit with the summary; returns stdout.
fn stop_server(mut server: Proc) -> String {
    server.signal("INT");
    let status = server.wait(PROCESS_TIMEOUT);
    assert!(
        status.success(),
        "server exit {status}\nstdout:\n{}\nstderr:\n{}",
        server.stdout_text(),
        server.stderr_text()
    );
    let stdout = server.stdout_text();
    assert!(
        stdout.contains("psp-app summary"),
        "summary printed:\n{stdout}"
    );
    stdout
}

#[test]
fn serves_counts_malformed_frames_and_restarts_cleanly() {
    let _serial = serial();
    let dir = ScratchDir::new("e2e-serve");
    let requests_yaml = "  - {type: SHORT, mean_ns: 1000, ratio: 0.5}\n  \
                         - {type: LONG, mean_ns: 5000, ratio: 0.5}\n";
    let cfg = server_config(&dir, "serve", "CFCFS", 1, requests_yaml, "");
    let requests = 2_000;
    let malformed_rounds = 3;

    for run in 0..2 {
        let server = start_server(&dir, &format!("serve{run}"), &cfg);
        let report = run_peer(
            &dir,
            &format!("serve{run}"),
            peer_args(
                &dir,
                "serve",
                requests,
                "1:1000,2:5000",
                malformed_rounds,
                1,
            ),
        );
        assert_eq!(count(&report, &["sent"]), u64::from(requests));
        assert_eq!(
            count(&report, &["answered"]),
            u64::from(requests),
            "every valid request answered (run {run}): {report}"
        );
        assert_eq!(count(&report, &["unexpected"]), 0);
        assert_eq!(count(&report, &["answered_by_type", "1"]), 1_000);
        assert_eq!(count(&report, &["answered_by_type", "2"]), 1_000);

        let summary = stop_server(server);
        for reason in [
            "too_short",
            "not_ipv4",
            "bad_ip_checksum",
            "wrong_dst_port",
            "truncated_payload",
        ] {
            assert_eq!(
                count(&report, &["malformed_sent", reason]),
                u64::from(malformed_rounds)
            );
            assert_eq!(
                summary_drop_count(&summary, reason),
                u64::from(malformed_rounds),
                "{reason} counted in the summary:\n{summary}"
            );
        }
        assert!(
            summary.contains(&format!("served {requests} requests")),
            "{summary}"
        );
        // The port's counters survive the peer's disconnect (memif zeroes its own).
        let port_rx: u64 = summary
            .lines()
            .find_map(|line| line.strip_prefix("port: rx "))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("port line in:\n{summary}"));
        let frames_sent = u64::from(requests) + 5 * u64::from(malformed_rounds);
        assert_eq!(port_rx, frames_sent, "{summary}");
        let accounting = ServerAccounting::from_summary(&summary);
        accounting.assert_all_sent_counted(frames_sent);
        assert_eq!(accounting.answered, u64::from(requests), "{summary}");
        // Clean release: no DPDK runtime directory left behind (memif's socket is abstract by
        // default; that the second run can listen on it shows it was released).
        let runtime_dir =
            Path::new("/var/run/dpdk").join(format!("psp-e2e-serve-srv-{}", std::process::id()));
        assert!(!runtime_dir.exists(), "{} removed", runtime_dir.display());
    }
}

#[test]
fn invalid_configs_are_refused_naming_the_key() {
    let _serial = serial();
    let dir = ScratchDir::new("e2e-invalid");
    let requests_yaml = "  - {type: SHORT, mean_ns: 1000, ratio: 1.0}\n";
    let good = server_config(&dir, "good", "CFCFS", 1, requests_yaml, "");
    let good_text = std::fs::read_to_string(&good).unwrap();
    let cases = [
        ("workers", "number: 1", "number: 0", "workers.number"),
        ("mac", SERVER_MAC, "zz:00:00:00:00:01", "network.mac"),
        ("policy", "dp: CFCFS", "dp: FASTEST", "dp"),
        ("ip", "ip: 10.0.0.1", "ip: 10.0.0.300", "ip"),
    ];
    for (name, from, to, key) in cases {
        assert!(good_text.contains(from), "{name}: template has {from:?}");
        let path = dir.file(&format!("bad-{name}.yml"));
        std::fs::write(&path, good_text.replacen(from, to, 1)).unwrap();
        let mut server = Proc::spawn(
            &format!("bad-{name}"),
            &exe(),
            &["--cfg".to_string(), path.display().to_string()],
            &dir,
        );
        let status = server.wait(PROCESS_TIMEOUT);
        assert!(!status.success(), "{name}: refused");
        let stderr = server.stderr_text();
        assert!(
            stderr.contains(key) && stderr.contains(to.split_once(' ').map_or(to, |(_, v)| v)),
            "{name}: message names {key:?} and the value:\n{stderr}"
        );
        assert!(
            !stderr.contains("EAL:"),
            "{name}: refused before EAL init:\n{stderr}"
        );
    }
}

#[test]
fn darc_writes_the_windows_log_with_one_group_per_type() {
    let _serial = serial();
    let dir = ScratchDir::new("e2e-darc");
    let requests_yaml = "  - {type: SHORT, mean_ns: 1000, ratio: 0.5}\n  \
                         - {type: LONG, mean_ns: 2000000, ratio: 0.5}\n";
    let darc = "  darc: {samples_needed: 200}\n";
    let cfg = server_config(&dir, "darc", "DARC", 2, requests_yaml, darc);
    let server = start_server(&dir, "darc", &cfg);
    let requests = 600;
    let report = run_peer(
        &dir,
        "darc",
        peer_args(&dir, "darc", requests, "1:1000,2:2000000", 0, 2),
    );
    assert_eq!(
        count(&report, &["answered"]),
        u64::from(requests),
        "{report}"
    );
    let summary = stop_server(server);
    assert!(summary.contains("policy darc"), "{summary}");
    let accounting = ServerAccounting::from_summary(&summary);
    accounting.assert_all_sent_counted(u64::from(requests));
    assert_eq!(accounting.answered, u64::from(requests), "{summary}");

    let windows = dir.file("logs").join("darc").join("server").join("windows");
    let text = std::fs::read_to_string(&windows)
        .unwrap_or_else(|err| panic!("windows log {}: {err}\n{summary}", windows.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ID\tSTART\tEND\tGID\tRES\tSTEAL\tCOUNT\tUPDATED\tQLEN")
    );
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split('\t').collect()).collect();
    assert!(!rows.is_empty(), "at least one window:\n{text}");
    // Rows come per window, one per type (GID 0 = SHORT, 1 = LONG), with nine columns.
    let window_ids: std::collections::BTreeSet<&str> = rows.iter().map(|row| row[0]).collect();
    for id in &window_ids {
        let window: Vec<&Vec<&str>> = rows.iter().filter(|row| row[0] == *id).collect();
        assert_eq!(window.len(), 2, "window {id}: one row per type:\n{text}");
        assert_eq!((window[0][3], window[1][3]), ("0", "1"), "GIDs:\n{text}");
        for row in &window {
            assert_eq!(row.len(), 9, "nine columns: {row:?}");
            assert_eq!(row[7], "1", "UPDATED");
        }
        let reserved: u32 = window
            .iter()
            .map(|row| row[4].parse::<u32>().expect("RES"))
            .sum();
        assert_eq!(
            reserved, 2,
            "window {id}: the two workers are reserved:\n{text}"
        );
    }
    // 1 µs and 2 ms are far apart (measured service times include scheduling noise on a
    // shared machine, so at least one window must show it): SHORT and LONG each lead their own
    // group with one reserved worker, and SHORT may steal LONG's.
    assert!(
        window_ids.iter().any(|id| {
            let res: Vec<&str> = rows
                .iter()
                .filter(|row| row[0] == *id)
                .map(|row| row[4])
                .collect();
            res == ["1", "1"]
        }),
        "a window with one group per type:\n{text}"
    );
}

#[test]
fn sigint_before_any_peer_exits_cleanly() {
    let _serial = serial();
    let dir = ScratchDir::new("e2e-nopeer");
    let requests_yaml = "  - {type: SHORT, mean_ns: 1000, ratio: 1.0}\n";
    let cfg = server_config(&dir, "nopeer", "CFCFS", 1, requests_yaml, "");
    let mut server = start_server(&dir, "nopeer", &cfg);
    server.signal("INT");
    let status = server.wait(PROCESS_TIMEOUT);
    assert!(status.success(), "exit {status}\n{}", server.stderr_text());
    assert!(
        server.stderr_text().contains("nothing served"),
        "{}",
        server.stderr_text()
    );
    let runtime_dir =
        Path::new("/var/run/dpdk").join(format!("psp-e2e-nopeer-srv-{}", std::process::id()));
    assert!(!runtime_dir.exists(), "{} removed", runtime_dir.display());
}
