//! End to end over kernel UDP (`psp-app --udp`, no DPDK needed): requests of two types are
//! answered with their ids and types, a short datagram is counted as a drop, SIGINT prints the
//! summary and exits cleanly.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{spawn_udp_server, Proc, ScratchDir, ServerAccounting};

/// Time for the server to start, and to exit after SIGINT.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Receive timeout per response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests sent.
const REQUESTS: u32 = 200;

#[test]
fn serves_over_kernel_udp() {
    let dir = ScratchDir::new("e2e-udp");
    let cfg = dir.file("udp.yml");
    std::fs::write(
        &cfg,
        "cpus: [0, 1]\n\
         net_workers:\n  - {ip: 127.0.0.1, port: 6789, dp: CFCFS}\n\
         network: {device_id: 0, mac: '02:00:00:00:00:01', eal_init: [--no-huge]}\n\
         requests:\n  - {type: SHORT, mean_ns: 1000, ratio: 0.5}\n  \
         - {type: LONG, mean_ns: 2000, ratio: 0.5}\n\
         workers: {number: 1, type: MB}\n\
         psp: {idle: yield}\n",
    )
    .unwrap();
    let (mut server, addr) = spawn_udp_server("udp-server", &cfg, &[], &dir, PROCESS_TIMEOUT);

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
    socket.send_to(b"runt", &addr).unwrap(); // shorter than a request: dropped
    let mut buf = [0u8; 64];
    for id in 0..REQUESTS {
        let req_type = 1 + id % 2;
        let mut request = Vec::with_capacity(16);
        for word in [id, req_type, 4, 1_000] {
            request.extend_from_slice(&word.to_le_bytes());
        }
        socket.send_to(&request, &addr).unwrap();
        let (len, _) = socket.recv_from(&mut buf).expect("response");
        assert!(len >= 12, "response payload of {len} bytes");
        let word = |i: usize| u32::from_le_bytes(buf[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!((word(0), word(1)), (id, req_type), "response {id}");
    }

    server.signal("INT");
    let status = server.wait(PROCESS_TIMEOUT);
    assert!(
        status.success(),
        "clean exit: {status}\n{}",
        server.stderr_text()
    );
    let summary = server.stdout_text();
    assert!(
        summary.contains(&format!("served {REQUESTS} requests")),
        "{summary}"
    );
    // The requests and the runt: every datagram read is answered or counted.
    let accounting = ServerAccounting::from_summary(&summary);
    accounting.assert_all_sent_counted(u64::from(REQUESTS) + 1);
    assert_eq!(accounting.answered, u64::from(REQUESTS));
    assert!(
        summary
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>()
                == ["parse", "drop", "truncated_payload", "1"]),
        "the runt is counted:\n{summary}"
    );
}

#[test]
fn bad_command_lines_fail_with_a_message() {
    let dir = ScratchDir::new("e2e-cli");
    let exe: &std::path::Path = env!("CARGO_BIN_EXE_psp-app").as_ref();
    let missing = dir.file("missing.yml").display().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&[], "--cfg FILE is required"),
        (&["--cfg", &missing], "missing.yml"),
        (&["--cfg", &missing, "--udp", "not-an-address"], "--udp"),
    ];
    for (args, needle) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut proc = Proc::spawn("cli", exe, &args, &dir);
        let status = proc.wait(PROCESS_TIMEOUT);
        assert!(!status.success(), "{args:?} fails");
        let stderr = proc.stderr_text();
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} in:\n{stderr}"
        );
    }
}

/// A server config over UDP; `extra` goes at the end (top-level keys or a `psp:` block).
fn udp_config(dir: &ScratchDir, name: &str, dp: &str, extra: &str) -> std::path::PathBuf {
    let cfg = dir.file(name);
    std::fs::write(
        &cfg,
        format!(
            "cpus: [0, 1]\n\
             net_workers:\n  - {{ip: 127.0.0.1, port: 6789, dp: {dp}}}\n\
             network: {{device_id: 0, mac: '02:00:00:00:00:01', eal_init: [--no-huge]}}\n\
             requests:\n  - {{type: SHORT, mean_ns: 1000, ratio: 0.5}}\n  \
             - {{type: LONG, mean_ns: 2000, ratio: 0.5}}\n\
             workers: {{number: 1, type: MB}}\n{extra}"
        ),
    )
    .unwrap();
    cfg
}

/// Absurd sizes are one-line errors naming the key and value (they aborted the process on a
/// failed allocation, exit 134), and no error prints a backtrace although RUST_BACKTRACE=1 (as
/// scripts/test.sh sets it) unless PSP_BACKTRACE=1.
#[test]
fn absurd_sizes_fail_with_one_clean_line() {
    let dir = ScratchDir::new("e2e-sizes");
    let exe: &std::path::Path = env!("CARGO_BIN_EXE_psp-app").as_ref();
    let cases = [
        ("rx_burst: 1000000000000", "psp.rx_burst = 1000000000000"),
        (
            "pending_slots: 4294967295",
            "psp.pending_slots = 4294967295",
        ),
    ];
    for (i, (psp, needle)) in cases.iter().enumerate() {
        let cfg = udp_config(
            &dir,
            &format!("size{i}.yml"),
            "CFCFS",
            &format!("psp: {{idle: yield, {psp}}}\n"),
        );
        let args: Vec<String> = ["--cfg", &cfg.display().to_string(), "--udp", "127.0.0.1:0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut proc = Proc::spawn_with_env(
            &format!("size{i}"),
            exe,
            &args,
            &dir,
            &[("RUST_BACKTRACE", "1")],
        );
        let status = proc.wait(PROCESS_TIMEOUT);
        assert_eq!(status.code(), Some(1), "{psp}: {status}");
        let stderr = proc.stderr_text();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{psp}: one line:\n{stderr}");
        assert!(
            lines[0].starts_with("psp-app: error: ") && lines[0].contains(needle),
            "{psp}: {stderr}"
        );
    }
    // PSP_BACKTRACE=1 asks for the full report.
    let args: Vec<String> = vec![
        "--cfg".into(),
        dir.file("missing.yml").display().to_string(),
    ];
    let mut proc = Proc::spawn_with_env(
        "backtrace",
        exe,
        &args,
        &dir,
        &[("RUST_BACKTRACE", "1"), ("PSP_BACKTRACE", "1")],
    );
    assert_eq!(proc.wait(PROCESS_TIMEOUT).code(), Some(1));
    assert!(
        proc.stderr_text().contains("backtrace"),
        "{}",
        proc.stderr_text()
    );
}

/// The original artifact's base config: `dp: DARC` with `n_resas: 0` runs static DARC with no
/// reserved worker (it was refused).
#[test]
fn n_resas_zero_serves_as_static_darc() {
    let dir = ScratchDir::new("e2e-nresas0");
    let cfg = udp_config(
        &dir,
        "nresas0.yml",
        "DARC",
        "n_resas: 0\npsp: {idle: yield}\n",
    );
    let args: Vec<String> = ["--cfg", &cfg.display().to_string(), "--udp", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut server = Proc::spawn(
        "nresas0",
        env!("CARGO_BIN_EXE_psp-app").as_ref(),
        &args,
        &dir,
    );
    server.wait_for_output("serving", PROCESS_TIMEOUT);
    let addr = server_addr(&server);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
    let mut buf = [0u8; 64];
    for id in 0..20u32 {
        let request: Vec<u8> = [id, 1 + id % 2, 4, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        socket.send_to(&request, &addr).unwrap();
        socket.recv_from(&mut buf).expect("response");
    }
    server.signal("INT");
    assert!(server.wait(PROCESS_TIMEOUT).success());
    let summary = server.stdout_text();
    assert!(summary.contains("policy darc-static"), "{summary}");
    assert!(summary.contains("served 20 requests"), "{summary}");
    ServerAccounting::from_summary(&summary).assert_all_sent_counted(20);
}

/// The server's UDP address, as it prints it.
fn server_addr(server: &Proc) -> String {
    server
        .stderr_text()
        .lines()
        .find_map(|line| line.strip_prefix("psp-app: UDP "))
        .expect("server prints its UDP address")
        .trim()
        .to_string()
}
