//! End to end over kernel UDP (no DPDK needed): the real `psp-app --udp` and `psp-client
//! --transport udp` processes; every request is answered and the per-type counts of the
//! client's `summary.json` match the server's summary table. Small load, bounded in time.

mod client_server_common;
mod common;

use std::time::Duration;

use client_server_common::{
    assert_exits_ok, check_counts_match, client_summary, spawn_client, start_udp_server,
    write_workload,
};
use common::{Proc, ScratchDir};

/// Time for a process to start, finish or exit after SIGINT.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn psp_client_against_psp_app_over_udp() {
    let dir = ScratchDir::new("client-server-udp");
    let (mut server, ip, port) = start_udp_server(&dir, PROCESS_TIMEOUT);

    let workload = write_workload(&dir, "duration: 1, rate: 400");
    let out = dir.file("client");
    let mut client = spawn_client(
        "client",
        &[
            "--workload",
            &workload.display().to_string(),
            "-I",
            &ip,
            "-P",
            &port,
            "--transport",
            "udp",
            "--bind",
            "127.0.0.1:0",
            "--outdir",
            &out.display().to_string(),
            "--seed",
            "5",
            "--sample",
            "0",
            "--drain-timeout",
            "10",
        ],
        &dir,
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);

    let summary = client_summary(&out);
    // stderr is a file, not a terminal: no progress bar.
    assert!(
        !client.stderr_text().contains(" sent  "),
        "{}",
        client.stderr_text()
    );
    assert!(
        client.stdout_text().contains("sent but not answered 0"),
        "{}",
        client.stdout_text()
    );
    check_counts_match(&summary, &server.stdout_text());
    // --sample 0: one trace row per measured (post-warm-up) answered request, plus a header.
    let traces = std::fs::read_to_string(out.join("traces")).expect("traces");
    assert_eq!(traces.lines().count() as u64, summary.latency_ns.count + 1);
}

#[test]
fn psp_client_sweep_over_udp_writes_csv_and_plots() {
    let dir = ScratchDir::new("client-server-udp-sweep");
    let (mut server, ip, port) = start_udp_server(&dir, PROCESS_TIMEOUT);
    let workload = write_workload(&dir, "duration: 0.3");
    let out = dir.file("sweep");
    // Loads relative to one worker's capacity (1e9 / 3.7 µs = 270 krps): 1.35 and 2.7 krps.
    let mut client = spawn_client(
        "client",
        &[
            "--workload",
            &workload.display().to_string(),
            "-I",
            &ip,
            "-P",
            &port,
            "--transport",
            "udp",
            "--load-range",
            "0.005:0.01:0.005",
            "--workers",
            "1",
            "--outdir",
            &out.display().to_string(),
            "--no-progress",
        ],
        &dir,
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    server.wait(PROCESS_TIMEOUT);
    let csv = std::fs::read_to_string(out.join("sweep.csv")).expect("sweep.csv");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("load,offered_rps,achieved_rps"), "{csv}");
    for file in ["sweep_slowdown.svg", "sweep_latency.svg"] {
        let svg = std::fs::read_to_string(out.join(file)).expect(file);
        assert!(svg.contains("<svg"), "{file}");
    }
    for load in ["load_0.005", "load_0.010"] {
        let summary = client_summary(&out.join(load));
        assert!(summary.counters.sent > 0, "{load}: {:?}", summary.counters);
        assert_eq!(
            summary.load.map(|l| (l * 1000.0).round()),
            Some(load[5..].parse::<f64>().unwrap() * 1000.0)
        );
    }
}

#[test]
fn psp_client_rejects_bad_input_before_sending() {
    let dir = ScratchDir::new("client-bad-config");
    // A socket standing in for the server: it must receive nothing.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let good = "schedules: [{rate: 100, cmd_mean_ns: [1000], cmd_ratios: [1], duration: 1}]\n";
    // (config file, its text, further flags, what the error must name)
    let cases: [(&str, &str, &[&str], &str); 10] = [
        (
            "ratios.yml",
            "schedules: [{rate: 100, cmd_mean_ns: [1000, 2000], cmd_ratios: [0.5, 0.4], duration: 1}]\n",
            &[],
            "schedules[0].cmd_ratios",
        ),
        (
            "rate.yml",
            "schedules: [{rate: -5, cmd_mean_ns: [1000], cmd_ratios: [1], duration: 1}]\n",
            &[],
            // Not bare "-5": the message also names the config path, whose temporary directory
            // ends in the test's pid (`-5826/rate.yml` matched twice).
            "rate = -5",
        ),
        (
            "missing.yml",
            "schedules: [{cmd_mean_ns: [1000], cmd_ratios: [1], duration: 1}]\n",
            &[],
            "rate",
        ),
        (
            "typo.yml",
            "network: {eal_iint: [--no-huge]}\nschedules: [{rate: 100, cmd_mean_ns: [1000], cmd_ratios: [1], duration: 1}]\n",
            &[],
            "unknown field `eal_iint`",
        ),
        ("flag-rate.yml", good, &["-r", "-5"], "-r/--rate -5"),
        ("flag-rate0.yml", good, &["--rate", "0"], "-r/--rate 0"),
        ("flag-duration.yml", good, &["-d", "-1"], "-d/--duration -1"),
        ("flag-m.yml", good, &["-m", "0"], "-m/--max-concurrency 0"),
        ("flag-workers.yml", good, &["--workers", "-2"], "--workers -2"),
        ("flag-threads.yml", good, &["--threads", "0"], "--threads 0"),
    ];
    for (name, yaml, flags, needle) in cases {
        let cfg = dir.file(name);
        std::fs::write(&cfg, yaml).unwrap();
        let cfg = cfg.display().to_string();
        let mut args = vec!["-c", &cfg, "-I", "127.0.0.1", "-P", &port];
        args.extend_from_slice(flags);
        let mut client = spawn_client("client", &args, &dir);
        let status = client.wait(PROCESS_TIMEOUT);
        assert!(!status.success(), "{name} {flags:?} accepted");
        let stderr = client.stderr_text();
        assert!(stderr.contains(needle), "{name} {flags:?}: {stderr}");
        assert_eq!(
            stderr.matches(needle).count(),
            1,
            "one clean message: {stderr}"
        );
    }
    let mut buf = [0u8; 64];
    assert!(server.recv_from(&mut buf).is_err(), "nothing was sent");
}

#[test]
fn no_server_is_warned_about_within_a_second_and_fails_the_run() {
    let dir = ScratchDir::new("client-no-server");
    // A bound socket that never answers stands in for a server that is not there.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let workload = write_workload(&dir, "duration: 1.5, rate: 200");
    let out = dir.file("client");
    let mut client = spawn_client(
        "client",
        &[
            "--workload",
            &workload.display().to_string(),
            "-I",
            "127.0.0.1",
            "-P",
            &port,
            "--transport",
            "udp",
            "--outdir",
            &out.display().to_string(),
            "--drain-timeout",
            "0.2",
        ],
        &dir,
    );
    let status = client.wait(PROCESS_TIMEOUT);
    let stderr = client.stderr_text();
    assert_eq!(status.code(), Some(3), "{status}\n{stderr}");
    let warning = format!("warning: no response from 127.0.0.1:{port} within 1 s");
    assert!(stderr.contains(&warning), "{stderr}");
    // The results are still written, every request accounted for as never answered.
    let summary = client_summary(&out);
    assert_eq!(summary.counters.unanswered, summary.counters.sent);
    assert_eq!(summary.accounting_errors(), Vec::<String>::new());
}

#[test]
fn two_clients_side_by_side_merge_exactly() {
    let dir = ScratchDir::new("client-server-udp-merge");
    let (mut server, ip, port) = start_udp_server(&dir, PROCESS_TIMEOUT);
    let workload = write_workload(&dir, "duration: 0.5, rate: 300");
    let outs = [dir.file("client0"), dir.file("client1")];
    let mut clients: Vec<Proc> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            spawn_client(
                &format!("client{i}"),
                &[
                    "--workload",
                    &workload.display().to_string(),
                    "-I",
                    &ip,
                    "-P",
                    &port,
                    "--transport",
                    "udp",
                    "--outdir",
                    &out.display().to_string(),
                    "--seed",
                    &(10 + i).to_string(),
                    "--drain-timeout",
                    "10",
                ],
                &dir,
            )
        })
        .collect();
    for client in &mut clients {
        assert_exits_ok(client, PROCESS_TIMEOUT);
    }
    server.signal("INT");
    server.wait(PROCESS_TIMEOUT);
    let merged = psp_client::merge::merge_dirs(&outs, &dir.file("merged")).expect("merge");
    let parts: Vec<_> = outs.iter().map(|o| client_summary(o)).collect();
    assert_eq!(
        merged.counters.sent,
        parts.iter().map(|p| p.counters.sent).sum::<u64>()
    );
    assert_eq!(
        merged.latency_ns.count,
        parts.iter().map(|p| p.latency_ns.count).sum::<u64>()
    );
    // The merged per-type counts are the server's (both clients together).
    check_counts_match(&merged, &server.stdout_text());
    let written = client_summary(&dir.file("merged"));
    assert_eq!(written.counters, merged.counters);
    assert_eq!(written.latency_ns.p999, merged.latency_ns.p999);
}

#[test]
fn client_threads_over_udp_merge_and_match_the_server() {
    let dir = ScratchDir::new("client-threads-udp");
    let (mut server, ip, port) = start_udp_server(&dir, PROCESS_TIMEOUT);
    let workload = write_workload(&dir, "duration: 1, rate: 600");
    let out = dir.file("client");
    let mut client = spawn_client(
        "client",
        &[
            "--workload",
            &workload.display().to_string(),
            "-I",
            &ip,
            "-P",
            &port,
            "--transport",
            "udp",
            "--bind",
            "127.0.0.1:0",
            "--threads",
            "3",
            "--outdir",
            &out.display().to_string(),
            "--drain-timeout",
            "10",
        ],
        &dir,
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);
    assert!(
        client
            .stderr_text()
            .contains("3 threads, UDP from 127.0.0.1:"),
        "{}",
        client.stderr_text()
    );
    assert!(
        client.stdout_text().contains("sent but not answered 0"),
        "{}",
        client.stdout_text()
    );
    // The three threads' requests, merged, are exactly what the server saw and answered.
    check_counts_match(&client_summary(&out), &server.stdout_text());
}

/// Issue "operate a running server": policy switches over the control socket while psp-client
/// offers load (c-FCFS → DARC → SJF → DARC pinned → c-FCFS, then a toggle with the shadow SJF):
/// every request is answered once and the two sides' counts agree.
#[test]
fn policy_switches_under_load_lose_nothing() {
    let dir = ScratchDir::new("switch-udp");
    let socket = dir.file("ctl.sock");
    let cfg = dir.file("server.yml");
    let config = client_server_common::server_config(&["--no-huge".to_string()], &dir.path)
        .replace(
            "psp: {idle: yield, app: spin}",
            &format!(
                "psp: {{idle: yield, app: spin, shadow: sjf, control: {{socket: {}}}}}",
                socket.display()
            ),
        );
    assert!(config.contains("control:"), "{config}");
    std::fs::write(&cfg, config).unwrap();
    let (mut server, addr) = common::spawn_udp_server("server", &cfg, &[], &dir, PROCESS_TIMEOUT);
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    let workload = write_workload(&dir, "duration: 3, rate: 2000");
    let out = dir.file("client");
    let mut client = spawn_client(
        "client",
        &[
            "--workload",
            &workload.display().to_string(),
            "-I",
            ip,
            "-P",
            port,
            "--transport",
            "udp",
            "--bind",
            "127.0.0.1:0",
            "--outdir",
            &out.display().to_string(),
            "--drain-timeout",
            "10",
        ],
        &dir,
    );
    let switches = [
        "{\"cmd\":\"policy\",\"policy\":\"darc\",\"darc\":{\"samples_needed\":300}}",
        "{\"cmd\":\"policy\",\"policy\":\"sjf\"}",
        "{\"cmd\":\"pin\",\"allocation\":[1,1]}",
        "{\"cmd\":\"policy\",\"policy\":\"cfcfs\"}",
        "{\"cmd\":\"toggle\"}",
    ];
    std::thread::sleep(Duration::from_millis(500));
    for (i, command) in switches.iter().enumerate() {
        let args: Vec<String> = vec![
            "top".into(),
            "--socket".into(),
            socket.display().to_string(),
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
        let reply = send.stdout_text();
        assert!(
            status.success(),
            "{command}: {status}\n{reply}\n{}",
            send.stderr_text()
        );
        assert!(reply.contains("\"ok\":true"), "{reply}");
        assert!(
            reply.contains("\"dropped\":0") || command.contains("toggle"),
            "{reply}"
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);
    let stdout = server.stdout_text();
    assert!(
        stdout.contains("control: 5 policy switch(es): started as cfcfs, stopped as sjf"),
        "{stdout}"
    );
    // After the toggle c-FCFS is the shadow, in sync with every live decision.
    assert!(stdout.contains("shadow cfcfs: "), "{stdout}");
    assert!(stdout.contains(", out of sync 0 |"), "{stdout}");
    check_counts_match(&client_summary(&out), &stdout);
}
