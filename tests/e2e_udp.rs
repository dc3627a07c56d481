//! End to end over kernel UDP (`psp-app --udp`, no DPDK needed): requests of two types are
//! answered with their ids and types, a short datagram is counted as a drop, SIGINT prints the
//! summary and exits cleanly.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Proc, ScratchDir};

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
    let args: Vec<String> = ["--cfg", &cfg.display().to_string(), "--udp", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut server = Proc::spawn(
        "udp-server",
        env!("CARGO_BIN_EXE_psp-app").as_ref(),
        &args,
        &dir,
    );
    server.wait_for_output("serving", PROCESS_TIMEOUT);
    let stderr = server.stderr_text();
    let addr = stderr
        .lines()
        .find_map(|line| line.strip_prefix("psp-app: UDP "))
        .expect("server prints its UDP address")
        .trim()
        .to_string();

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
