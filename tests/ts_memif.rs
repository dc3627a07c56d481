//! Live time sharing end to end over DPDK memif: `psp-app` with `dp: TS` and one worker (and
//! `policy: darc-ts` with two) serves DISP2 (50 % 1 µs, 50 % 100 µs) from `psp-client`; every
//! request is answered exactly once (the client's accounting has no error and nothing
//! unanswered) and the server's summary reports the preemptions and their measured cost. A
//! `ts` server with the echo application, or a quantum out of range, refuses to start with one
//! line naming the app or the key. Beside them, on the same harness: a client told of fewer
//! workers than the server has says how many RX queues it polled when answers go missing.
//! Small loads (≈ 1000 requests), every wait bounded.
#![cfg(feature = "dpdk")]

mod client_server_common;
mod common;

use std::time::Duration;

use client_server_common::{assert_exits_ok, client_summary, spawn_client};
use common::{memif_eal_args, Proc, ScratchDir};

/// Time for a process to start, finish or exit after SIGINT (memif link-up included).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(90);

/// A one-worker `dp: TS` server over `eal_init` with DISP2's types, app `app` and `extra_psp`
/// keys under `psp:`.
fn ts_server_config(eal_init: &[String], log_dir: &std::path::Path, psp: &str) -> String {
    server_config(eal_init, log_dir, 1, psp)
}

/// A `dp: TS` server with `workers` workers (the dispatcher on CPU 0, the workers on CPU 1)
/// over `eal_init` with DISP2's types and `psp` keys under `psp:` (where `policy:` may
/// override `dp`).
fn server_config(
    eal_init: &[String],
    log_dir: &std::path::Path,
    workers: usize,
    psp: &str,
) -> String {
    let eal: Vec<String> = eal_init.iter().map(|a| format!("'{a}'")).collect();
    let cpus: Vec<&str> = std::iter::once("0")
        .chain(std::iter::repeat_n("1", workers))
        .collect();
    format!(
        "cpus: [{}]\n\
         log_dir: {}\n\
         net_workers:\n  - {{ip: 10.9.0.1, port: 6789, dp: TS}}\n\
         network: {{device_id: 0, mac: '02:00:00:00:09:01', eal_init: [{}]}}\n\
         requests:\n  - {{type: SHORT, mean_ns: 1000, ratio: 0.5}}\n  \
         - {{type: LONG, mean_ns: 100000, ratio: 0.5}}\n\
         workers: {{number: {workers}, type: MB}}\n\
         psp: {{idle: yield, {psp}}}\n",
        cpus.join(", "),
        log_dir.display(),
        eal.join(", "),
    )
}

#[test]
fn disp2_under_ts_over_memif_answers_every_request() {
    serve_disp2_over_memif("ts-memif", 1, "app: spin", "policy ts");
}

/// `darc-ts` live over memif: DARC's plan from the configured means (SHORT reserves worker 0,
/// LONG worker 1, which lends SHORT's idle worker a quantum at a time); every request
/// answered once, the server's accounting balanced.
#[test]
fn disp2_under_darc_ts_over_memif_answers_every_request() {
    serve_disp2_over_memif(
        "darc-ts-memif",
        2,
        "app: spin, policy: darc-ts, darc: {dynamic: false}",
        "policy darc-ts",
    );
}

/// A `workers`-worker server with `psp` keys serves DISP2 over memif from `psp-client` at
/// ≈ 20 % of one worker: every request answered, and the server's summary names `policy`
/// and balances its accounting.
fn serve_disp2_over_memif(name: &str, workers: usize, psp: &str, policy: &str) {
    let run = run_disp2_over_memif(name, workers, psp, workers, 10);
    let (summary, stdout, report) = (&run.summary, &run.client_stdout, &run.server_report);
    assert!(
        stdout.contains("sent but not answered 0"),
        "{stdout}\n{report}"
    );
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
    assert!(summary.counters.sent > 0);
    assert_eq!(summary.counters.received, summary.counters.sent, "{stdout}");

    assert!(report.contains(policy), "{report}");
    assert!(report.contains("(balanced)"), "{report}");
    // Preemptions need the dispatcher to run while the worker spins; on 2 busy cores a run
    // may see none, so their line is checked when it is there.
    if let Some(line) = report.lines().find(|l| l.starts_with("preemption: ")) {
        eprintln!("{line}");
        assert!(line.contains("cost flag set → worker free: mean"), "{line}");
    }
}

/// A memif client told of fewer workers than the server has polls fewer RX queues than the
/// server answers on: the answers of the workers it does not poll are never read. Both sides
/// still account for every request, and the client says how many queues it polled.
#[test]
fn a_client_polling_too_few_queues_says_so() {
    let run = run_disp2_over_memif("memif-too-few", 2, "app: spin", 1, 1);
    let c = &run.summary.counters;
    assert!(c.sent > 0);
    assert!(c.unanswered > 0, "worker 1's answers went unread: {c:?}");
    assert_eq!(c.sent, c.received + c.late + c.unanswered, "{c:?}");
    assert!(
        run.client_stderr
            .contains("this client polled 2 RX queue(s)"),
        "{}",
        run.client_stderr
    );
    assert!(
        run.server_report.contains("(balanced)"),
        "{}",
        run.server_report
    );
}

/// What one [`run_disp2_over_memif`] left.
struct MemifRun {
    summary: psp_client::report::Summary,
    client_stdout: String,
    client_stderr: String,
    server_report: String,
}

/// A `workers`-worker server with `psp` keys, and `psp-client --workers client_workers` with
/// a drain of `drain_s` seconds, serving DISP2 over memif at ≈ 20 % of one worker; both exit
/// cleanly.
fn run_disp2_over_memif(
    name: &str,
    workers: usize,
    psp: &str,
    client_workers: usize,
    drain_s: u32,
) -> MemifRun {
    let dir = ScratchDir::new(name);
    let socket = dir.file("memif.sock");
    let tag = std::process::id();
    let cfg = dir.file("server.yml");
    let server_eal = memif_eal_args(&format!("psp-{name}-server-{tag}"), "server", &socket);
    std::fs::write(&cfg, server_config(&server_eal, &dir.path, workers, psp)).unwrap();
    let server_args: Vec<String> = vec!["--cfg".into(), cfg.display().to_string()];
    let mut server = Proc::spawn(
        "server",
        env!("CARGO_BIN_EXE_psp-app").as_ref(),
        &server_args,
        &dir,
    );
    server.wait_for_output("waiting for the link", PROCESS_TIMEOUT);

    let client_eal = memif_eal_args(&format!("psp-{name}-client-{tag}"), "client", &socket);
    let eal: Vec<String> = client_eal.iter().map(|a| format!("'{a}'")).collect();
    let client_cfg = dir.file("client.yml");
    std::fs::write(
        &client_cfg,
        format!(
            "network: {{device_id: 0, mac: '02:00:00:00:09:02', remote_mac: '02:00:00:00:09:01', \
             eal_init: [{}]}}\n\
             net_workers: [{{ip: 10.9.0.2, port: 40000}}]\n",
            eal.join(", ")
        ),
    )
    .unwrap();
    // DISP2 at ≈ 20 % of one worker: 4000 rps × 50.5 µs.
    let workload = dir.file("workload.yml");
    std::fs::write(
        &workload,
        "- {mean_ns: [1000, 100000], ratios: [.5, .5], rtype: [SHORT, LONG], \
         duration: 0.25, rate: 4000}\n",
    )
    .unwrap();
    let out = dir.file("client");
    let mut client = spawn_client(
        "client",
        &[
            "-c",
            &client_cfg.display().to_string(),
            "--workload",
            &workload.display().to_string(),
            "-I",
            "10.9.0.1",
            "-P",
            "6789",
            "--workers",
            &client_workers.to_string(),
            "--outdir",
            &out.display().to_string(),
            "--seed",
            "13",
            "--drain-timeout",
            &drain_s.to_string(),
            "--link-timeout",
            "60",
            "--no-progress",
        ],
        &dir,
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);
    MemifRun {
        summary: client_summary(&out),
        client_stdout: client.stdout_text(),
        client_stderr: client.stderr_text(),
        server_report: server.stdout_text(),
    }
}

/// A `ts` server refuses, before touching the device, an application that cannot be preempted
/// and a quantum out of range: one line naming the app or the key and value.
#[test]
fn ts_refuses_echo_and_bad_quanta_at_start() {
    let dir = ScratchDir::new("ts-refusals");
    let eal = vec!["--no-huge".to_string()];
    for (psp, needle) in [
        ("app: echo", "application echo"),
        (
            "app: spin, ts: {quantum_ns: 500}",
            "psp.ts.quantum_ns = 500",
        ),
        (
            "app: spin, ts: {quantum_ns: 2000000000}",
            "psp.ts.quantum_ns = 2000000000",
        ),
    ] {
        let cfg = dir.file("server.yml");
        std::fs::write(&cfg, ts_server_config(&eal, &dir.path, psp)).unwrap();
        let args: Vec<String> = vec![
            "--cfg".into(),
            cfg.display().to_string(),
            "--udp".into(),
            "127.0.0.1:0".into(),
        ];
        let mut server = Proc::spawn(
            "server",
            env!("CARGO_BIN_EXE_psp-app").as_ref(),
            &args,
            &dir,
        );
        let status = server.wait(PROCESS_TIMEOUT);
        let stderr = server.stderr_text();
        assert!(!status.success(), "{psp}: started\n{stderr}");
        assert!(stderr.contains(needle), "{psp}: {stderr}");
    }
}
