//! End to end over DPDK memif (shared memory, no NIC, no hugepages): the real `psp-app` (memif
//! server role) and `psp-client` (client role, polling 1 + 2 workers RX queues) processes.
//! Every request is answered — including those the workers send on their own queues — and the
//! per-type counts of the client's `summary.json` match the server's summary table; a server
//! killed mid-run stops the client with its partial results and exit status 3.
//! Small loads (≈ 400 and ≈ 600 requests), every wait bounded.
#![cfg(feature = "dpdk")]

mod client_server_common;
mod common;

use std::time::Duration;

use client_server_common::{
    assert_exits_ok, check_counts_match, client_summary, server_config, spawn_client,
    write_workload,
};
use common::{memif_eal_args, Proc, ScratchDir};

/// Time for a process to start, finish or exit after SIGINT (memif link-up included).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(90);
/// Server workers (the server answers on 1 + WORKERS TX queues).
const WORKERS: usize = 2;

/// Starts `psp-app` as the memif server (2 workers) in `dir`, and `psp-client` as its memif
/// client sending the shared workload (`schedule`, e.g. `"duration: 1, rate: 400"`) with
/// outputs in `dir/client`; returns both processes and the client's output directory. `name`
/// keeps the DPDK file prefixes of tests running side by side apart.
fn start_server_and_client(
    dir: &ScratchDir,
    name: &str,
    schedule: &str,
) -> (Proc, Proc, std::path::PathBuf) {
    start_server_and_client_with(dir, name, schedule, &[], "")
}

/// Starts `psp-app` as the memif server of `dir` (its config written once; `name` tells
/// servers of one test apart) and waits until it listens.
fn start_server(dir: &ScratchDir, name: &str, tag: &str) -> Proc {
    start_server_with(dir, name, tag, "")
}

/// [`start_server`] with more `psp:` keys (e.g. `", rx_queues: 2"`).
fn start_server_with(dir: &ScratchDir, name: &str, tag: &str, psp_extra: &str) -> Proc {
    let socket = dir.file("memif.sock");
    let cfg = dir.file(&format!("server-{name}.yml"));
    let server_eal = memif_eal_args(&format!("psp-cs-{name}-{tag}"), "server", &socket);
    let config = server_config(&server_eal, &dir.path).replace(
        "psp: {idle: yield, app: spin}",
        &format!("psp: {{idle: yield, app: spin{psp_extra}}}"),
    );
    assert!(
        config.contains(psp_extra),
        "test bug: no psp line in the config"
    );
    std::fs::write(&cfg, config).unwrap();
    let server_args: Vec<String> = vec!["--cfg".into(), cfg.display().to_string()];
    let mut server = Proc::spawn(
        name,
        env!("CARGO_BIN_EXE_psp-app").as_ref(),
        &server_args,
        dir,
    );
    server.wait_for_output("waiting for the link", PROCESS_TIMEOUT);
    server
}

/// [`start_server_and_client`] with extra client flags and `psp:` keys for the server.
fn start_server_and_client_with(
    dir: &ScratchDir,
    name: &str,
    schedule: &str,
    extra: &[&str],
    psp_extra: &str,
) -> (Proc, Proc, std::path::PathBuf) {
    let socket = dir.file("memif.sock");
    let tag = format!("{name}-{}", std::process::id());
    let server = start_server_with(dir, "server", &tag, psp_extra);

    let client_eal = memif_eal_args(&format!("psp-cs-client-{tag}"), "client", &socket);
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
    let workload = write_workload(dir, schedule);
    let out = dir.file("client");
    let client = spawn_client(
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
            &WORKERS.to_string(),
            "--outdir",
            &out.display().to_string(),
            "--seed",
            "9",
            "--drain-timeout",
            "10",
            "--link-timeout",
            "60",
            "--no-progress",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
        dir,
    );
    (server, client, out)
}

#[test]
fn psp_client_against_psp_app_over_memif() {
    let dir = ScratchDir::new("client-server-memif");
    let (mut server, mut client, out) =
        start_server_and_client(&dir, "ok", "duration: 1, rate: 400");
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);

    let summary = client_summary(&out);
    assert!(
        client.stdout_text().contains("sent but not answered 0"),
        "{}",
        client.stdout_text()
    );
    check_counts_match(&summary, &server.stdout_text());
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
}

#[test]
fn server_killed_mid_run_stops_the_client_with_partial_results() {
    let dir = ScratchDir::new("client-server-memif-kill");
    // 30 s planned: the test ends long before, or the client missed the link going down.
    let (mut server, mut client, out) =
        start_server_and_client(&dir, "kill", "duration: 30, rate: 400");
    client.wait_for_output("link up", PROCESS_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("KILL");
    server.wait(PROCESS_TIMEOUT);
    let status = client.wait(PROCESS_TIMEOUT);
    let stderr = client.stderr_text();
    assert_eq!(status.code(), Some(3), "{status}\n{stderr}");
    assert!(stderr.contains("went down"), "{stderr}");
    let summary = client_summary(&out);
    let c = &summary.counters;
    assert!(summary.stopped_early, "{c:?}");
    assert!(c.sent > 0 && c.sent < c.planned, "{c:?}");
    assert!(c.received > 0, "answered before the kill: {c:?}");
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
    assert!(client.stdout_text().contains("stopped early"));
}

#[test]
fn reconnect_runs_the_interrupted_point_again_once_the_server_is_back() {
    let dir = ScratchDir::new("client-server-memif-reconnect");
    let (mut server, mut client, out) = start_server_and_client_with(
        &dir,
        "relink",
        "duration: 3, rate: 300",
        &["--reconnect"],
        "",
    );
    client.wait_for_output("link up", PROCESS_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1000));
    server.signal("KILL");
    server.wait(PROCESS_TIMEOUT);
    client.wait_for_output("waiting up to", PROCESS_TIMEOUT);
    let tag = format!("relink2-{}", std::process::id());
    let mut second = start_server(&dir, "server2", &tag);
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    second.signal("INT");
    assert_exits_ok(&mut second, PROCESS_TIMEOUT);
    let stderr = client.stderr_text();
    assert!(
        stderr.contains("running the interrupted point again"),
        "{stderr}"
    );
    // The interrupted run's partial results are kept; the rerun is complete and matches the
    // second server exactly.
    let partial = client_summary(&out.join("interrupted-1"));
    assert!(partial.stopped_early, "{:?}", partial.counters);
    assert_eq!(partial.accounting_errors(), Vec::<String>::new());
    let summary = client_summary(&out);
    assert!(!summary.stopped_early);
    assert_eq!(
        summary.counters.received, summary.counters.sent,
        "{:?}",
        summary.counters
    );
    check_counts_match(&summary, &second.stdout_text());
}

/// Issue "operate a running server": policy switches over the control socket while the memif
/// client offers load; no request is lost or answered twice, and both sides' counts agree.
#[test]
fn policy_switches_under_load_over_memif_lose_nothing() {
    let dir = ScratchDir::new("client-server-memif-switch");
    let control = format!(", control: {{socket: {}}}", dir.file("ctl.sock").display());
    let (mut server, mut client, out) =
        start_server_and_client_with(&dir, "switch", "duration: 3, rate: 2000", &[], &control);
    client.wait_for_output("link up", PROCESS_TIMEOUT);
    std::thread::sleep(Duration::from_millis(300));
    for (i, command) in [
        "{\"cmd\":\"policy\",\"policy\":\"darc\",\"darc\":{\"samples_needed\":300}}",
        "{\"cmd\":\"policy\",\"policy\":\"dfcfs\"}",
        "{\"cmd\":\"policy\",\"policy\":\"cfcfs\"}",
    ]
    .iter()
    .enumerate()
    {
        let args: Vec<String> = vec![
            "top".into(),
            "--socket".into(),
            dir.file("ctl.sock").display().to_string(),
            "--send".into(),
            command.to_string(),
        ];
        let mut send = Proc::spawn(
            &format!("switch{i}"),
            env!("CARGO_BIN_EXE_psp").as_ref(),
            &args,
            &dir,
        );
        let status = send.wait(PROCESS_TIMEOUT);
        assert!(status.success(), "{command}: {}", send.stdout_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);
    let stdout = server.stdout_text();
    assert!(stdout.contains("control: 3 policy switch(es)"), "{stdout}");
    check_counts_match(&client_summary(&out), &stdout);
}

/// Two client threads over one memif port (`--threads 2`; the server opens `psp.rx_queues: 2`
/// so that it takes both client TX rings): responses land on whichever client RX queue pairs
/// with the worker that answered and are forwarded to the thread that sent the request; every
/// request is answered once and both sides' counts agree.
#[test]
fn two_client_threads_over_memif_share_the_rx_queues() {
    let dir = ScratchDir::new("client-server-memif-threads");
    let (mut server, mut client, out) = start_server_and_client_with(
        &dir,
        "threads",
        "duration: 2, rate: 1000",
        &["--threads", "2"],
        ", rx_queues: 2",
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);
    let stderr = client.stderr_text();
    assert!(stderr.contains("2 threads over DPDK"), "{stderr}");
    assert!(
        server.stderr_text().contains("(2 RX, 3 TX queues"),
        "{}",
        server.stderr_text()
    );
    let summary = client_summary(&out);
    assert_eq!(summary.counters.forward_dropped, 0);
    check_counts_match(&summary, &server.stdout_text());
}
