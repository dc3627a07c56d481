//! Operating a running `psp-app` (kernel UDP, no DPDK needed) through its control socket: the
//! socket is created mode 0600, streams telemetry windows that count the requests sent,
//! `psp top --once` shows them, 1,000 malformed commands get 1,000 error replies while the
//! server keeps serving, and `{"cmd": "stop"}` drains and stops it with a balanced summary and
//! a telemetry.jsonl whose windows add up to what was sent.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{spawn_udp_server, Proc, ScratchDir, ServerAccounting};
use psp_dataplane::server::TelemetryLine;
use serde_json::Value;

/// Time for a process to start or exit.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on each read from the sockets.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Malformed commands sent.
const MALFORMED: usize = 1000;

fn send_requests(socket: &UdpSocket, addr: &str, ids: std::ops::Range<u32>) {
    let mut buf = [0u8; 64];
    for id in ids {
        let request: Vec<u8> = [id, 1 + id % 2, 4, 1_000]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        socket.send_to(&request, addr).unwrap();
        let (len, _) = socket.recv_from(&mut buf).expect("response");
        assert!(len >= 12);
        assert_eq!(u32::from_le_bytes(buf[0..4].try_into().unwrap()), id);
    }
}

fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => {
                stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                return stream;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "{}: {e}", path.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The next line that is not a telemetry window, or the next window, as asked.
fn next_line(reader: &mut impl BufRead, window: bool) -> Value {
    let mut text = String::new();
    for _ in 0..100_000 {
        text.clear();
        let n = reader.read_line(&mut text).expect("a line in time");
        assert!(n > 0, "the server closed the socket");
        let value: Value = serde_json::from_str(&text).expect("one JSON object per line");
        if (value["kind"] == "window") == window {
            return value;
        }
    }
    panic!("no such line");
}

#[test]
fn control_socket_streams_telemetry_answers_commands_and_stops_the_server() {
    let dir = ScratchDir::new("ctl-udp");
    let socket_path = dir.file("ctl.sock");
    let cfg = dir.file("ctl.yml");
    std::fs::write(
        &cfg,
        format!(
            "cpus: [0, 1, 1]\nlog_dir: {}\n\
             net_workers:\n  - {{ip: 127.0.0.1, port: 6789, dp: CFCFS}}\n\
             network: {{device_id: 0, mac: '02:00:00:00:00:01', eal_init: [--no-huge]}}\n\
             requests:\n  - {{type: SHORT, mean_ns: 1000, ratio: 0.5}}\n  \
             - {{type: LONG, mean_ns: 2000, ratio: 0.5}}\n\
             workers: {{number: 2, type: MB}}\n\
             psp: {{idle: yield, telemetry: {{interval_ms: 50}}, control: {{socket: {}}}}}\n",
            dir.file("logs").display(),
            socket_path.display()
        ),
    )
    .unwrap();
    let (mut server, addr) =
        spawn_udp_server("server", &cfg, &["--label", "ctl"], &dir, PROCESS_TIMEOUT);
    let stream = connect(&socket_path);
    let mode = std::fs::metadata(&socket_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    let mut commands = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);

    // A first window proves the subscription: every later window reaches this client.
    next_line(&mut reader, true);
    // Requests, and the windows that count them.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    udp.send_to(b"runt", &addr).unwrap(); // a counted parse drop
    send_requests(&udp, &addr, 0..200);
    let mut arrivals = 0;
    while arrivals < 200 {
        let line: TelemetryLine = serde_json::from_value(next_line(&mut reader, true)).unwrap();
        assert_eq!(line.policy, "cfcfs");
        assert_eq!(line.workers.len(), 2);
        arrivals += line.types.iter().map(|t| t.arrivals).sum::<u64>();
    }
    assert_eq!(arrivals, 200, "windows count every request once");

    // psp top --once.
    let top_args: Vec<String> = vec![
        "top".into(),
        "--socket".into(),
        socket_path.display().to_string(),
        "--once".into(),
    ];
    let mut top = Proc::spawn("top", env!("CARGO_BIN_EXE_psp").as_ref(), &top_args, &dir);
    let status = top.wait(PROCESS_TIMEOUT);
    let shown = top.stdout_text();
    assert!(status.success(), "{status}\n{}", top.stderr_text());
    for needle in [
        "policy cfcfs",
        "SHORT",
        "LONG",
        "arrivals/s",
        "workers busy",
        "dispatcher",
    ] {
        assert!(shown.contains(needle), "{needle:?} in:\n{shown}");
    }

    // 1,000 malformed commands, written by another thread while this one reads the replies.
    let writer = std::thread::spawn(move || {
        for i in 0..MALFORMED {
            let bad = [
                "garbage",
                "{\"cmd\": 7}",
                "{\"cmd\": \"dance\"}",
                "{}",
                "[1]",
            ][i % 5];
            writeln!(commands, "{bad}").expect("command sent");
        }
        commands
    });
    for i in 0..MALFORMED {
        let reply = next_line(&mut reader, false);
        assert_eq!(reply["ok"], false, "reply {i}: {reply}");
        let error = reply["error"].as_str().expect("error text");
        assert!(
            error.starts_with("cmd:") || error.starts_with("command:"),
            "{error}"
        );
    }
    let mut commands = writer.join().expect("writer thread");
    // Still serving.
    send_requests(&udp, &addr, 200..250);
    // psp top --send: an unknown command is an error naming the field, exit status 1.
    let send_args: Vec<String> = vec![
        "top".into(),
        "--socket".into(),
        socket_path.display().to_string(),
        "--send".into(),
        "{\"cmd\": \"dance\"}".into(),
    ];
    let mut send = Proc::spawn("send", env!("CARGO_BIN_EXE_psp").as_ref(), &send_args, &dir);
    assert_eq!(send.wait(PROCESS_TIMEOUT).code(), Some(1));
    assert!(
        send.stdout_text().contains("\"ok\":false"),
        "{}",
        send.stdout_text()
    );
    assert!(
        send.stderr_text().contains("cmd: unknown command"),
        "{}",
        send.stderr_text()
    );

    // Stop over the socket: drain, summary, clean exit, socket removed.
    writeln!(commands, "{{\"cmd\": \"stop\"}}").unwrap();
    let reply = next_line(&mut reader, false);
    assert_eq!(reply, serde_json::json!({"ok": true, "cmd": "stop"}));
    let status = server.wait(PROCESS_TIMEOUT);
    assert!(status.success(), "{status}\n{}", server.stderr_text());
    let summary = server.stdout_text();
    assert!(summary.contains("served 250 requests"), "{summary}");
    ServerAccounting::from_summary(&summary).assert_all_sent_counted(251);
    assert!(
        summary.contains(&format!(
            "3 client(s) (0 refused), {} command(s), {} error(s)",
            MALFORMED + 3,
            MALFORMED + 1
        )),
        "{summary}"
    );
    assert!(!socket_path.exists(), "socket file removed");

    // The file: every window, adding up to what was sent.
    let file = dir
        .file("logs")
        .join("ctl")
        .join("server")
        .join("telemetry.jsonl");
    let text = std::fs::read_to_string(&file).expect("telemetry.jsonl");
    let lines: Vec<TelemetryLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a telemetry line"))
        .collect();
    let total = |f: fn(&TelemetryLine) -> u64| lines.iter().map(f).sum::<u64>();
    assert_eq!(total(|l| l.types.iter().map(|t| t.arrivals).sum()), 250);
    assert_eq!(total(|l| l.types.iter().map(|t| t.completions).sum()), 250);
    assert_eq!(
        total(|l| l.parse_drops.get("truncated_payload").copied().unwrap_or(0)),
        1
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.window, i as u64, "windows numbered without gaps");
    }
}
