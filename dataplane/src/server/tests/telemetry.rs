//! Whole servers with telemetry: the windows add up to the report, the control socket streams
//! lines, answers commands (errors included) and stops the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::*;
use crate::server::telemetry::TelemetryLine;

/// A scratch directory, removed at drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("psp-tm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn telemetry_options(
    policy: Policy,
    file: Option<PathBuf>,
    socket: Option<PathBuf>,
) -> ServerOptions {
    let mut opts = options(policy, 2);
    opts.telemetry = Some(TelemetryOptions {
        interval: Duration::from_millis(50),
        file,
        control_socket: socket,
    });
    opts
}

#[test]
fn telemetry_windows_add_up_to_the_report() {
    let dir = Scratch::new("sum");
    let file = dir.0.join("server").join("telemetry.jsonl");
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
    };
    let started_unix_ms = unix_ms();
    let opts = telemetry_options(
        Policy::DarcStatic { reserved_short: 1 },
        Some(file.clone()),
        None,
    );
    let mut run = start(opts, Duration::from_micros(50));
    let mut answered = 0;
    for batch in 0..4u32 {
        let requests: Vec<(u32, u32)> = (0..50).map(|i| (batch * 50 + i, 1 + i % 2)).collect();
        run.client.send(&requests);
        answered += run.client.collect(50).len();
        std::thread::sleep(Duration::from_millis(60));
    }
    let (_, report) = run.stop();
    let stopped_unix_ms = unix_ms();
    assert_eq!(answered, 200, "{report}");
    let telemetry = report.telemetry.as_ref().expect("telemetry report");
    let text = std::fs::read_to_string(&file).expect("telemetry file");
    let lines: Vec<TelemetryLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a telemetry line"))
        .collect();
    assert!(lines.len() >= 4, "{} windows", lines.len());
    assert_eq!(lines.len() as u64, telemetry.windows);
    assert_eq!(telemetry.lines_written, telemetry.windows);
    assert_eq!(telemetry.windows_dropped, 0);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.window, i as u64);
        assert!(line.end_ns >= line.start_ns);
        assert_eq!(line.policy, "darc-static");
        assert_eq!(line.types.len(), 3, "SHORT, LONG, UNKNOWN");
        assert!(line
            .workers
            .iter()
            .all(|w| (0.0..=1.0).contains(&w.busy_share)));
        let plan = line
            .plan
            .as_ref()
            .expect("darc-static has a plan from the start");
        assert_eq!(plan.groups[0].types, ["SHORT"]);
        assert_eq!(plan.groups[0].reserved, [0]);
        // On the wall clock within the run, and as far apart as on the server's clock.
        assert!(
            (started_unix_ms..=stopped_unix_ms).contains(&line.end_unix_ms),
            "window {i} ended at {} ms, the run spans {started_unix_ms}..={stopped_unix_ms}",
            line.end_unix_ms
        );
        if let Some(next) = lines.get(i + 1) {
            let clock_ms = (next.end_ns - line.end_ns) as f64 / 1e6;
            let wall_ms = (next.end_unix_ms - line.end_unix_ms) as f64;
            assert!(
                (wall_ms - clock_ms).abs() <= 1.0,
                "{wall_ms} ms vs {clock_ms} ms"
            );
        }
    }
    assert_eq!(
        lines.iter().map(|l| l.plan_updates).sum::<u64>(),
        report.dispatcher.plan_updates
    );
    assert_eq!(
        lines.iter().map(|l| l.plans_kept).sum::<u64>(),
        report.dispatcher.scheduler.darc_plans_kept
    );
    for (slot, totals) in report.dispatcher.per_type.iter().enumerate() {
        let sum = |f: fn(&crate::server::telemetry::TypeLine) -> u64| -> u64 {
            lines.iter().map(|l| f(&l.types[slot])).sum()
        };
        assert_eq!(sum(|t| t.arrivals), totals.arrivals, "{}", totals.name);
        assert_eq!(sum(|t| t.completions), totals.completed, "{}", totals.name);
        assert_eq!(
            sum(|t| t.drops.queue_full),
            totals.rejected,
            "{}",
            totals.name
        );
        assert_eq!(
            sum(|t| t.service_count),
            totals.completed,
            "{}",
            totals.name
        );
    }
    // Service times of 50 µs requests are seen as about that.
    let p50 = lines
        .iter()
        .flat_map(|l| &l.types)
        .filter(|t| t.service_count > 0)
        .map(|t| t.service_p50_ns)
        .min()
        .expect("some window served requests");
    assert!(p50 >= 40_000, "p50 {p50} ns");
    // Busy shares times window lengths add up to each worker's busy time (to float rounding).
    for worker in &report.workers {
        let busy_ns: f64 = lines
            .iter()
            .map(|l| l.workers[worker.worker].busy_share * (l.end_ns - l.start_ns) as f64)
            .sum();
        assert!(worker.busy_ns > 0, "worker {} was busy", worker.worker);
        let off = (busy_ns / worker.busy_ns as f64 - 1.0).abs();
        assert!(
            off < 1e-6,
            "worker {}: {busy_ns} vs {}",
            worker.worker,
            worker.busy_ns
        );
    }
    let polls: u64 = lines.iter().map(|l| l.dispatcher.polls).sum();
    let busy_polls: u64 = lines.iter().map(|l| l.dispatcher.busy_polls).sum();
    assert_eq!(
        (polls, busy_polls),
        (report.dispatcher.polls, report.dispatcher.busy_polls)
    );
    assert!(report.to_string().contains("telemetry: "), "{report}");
}

/// Connects to `path`, retrying while the server binds it.
fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + RESPONSE_WAIT;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => {
                stream.set_read_timeout(Some(RESPONSE_WAIT)).unwrap();
                return stream;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "connect {}: {e}", path.display());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Reads lines until one that `wanted` accepts; every line must be JSON.
fn read_until(
    reader: &mut impl BufRead,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut line = String::new();
    for _ in 0..100_000 {
        line.clear();
        assert!(
            reader
                .read_line(&mut line)
                .expect("a line within the timeout")
                > 0,
            "EOF"
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if wanted(&value) {
            return value;
        }
    }
    panic!("no wanted line");
}

#[test]
fn control_socket_streams_answers_errors_and_stops() {
    let dir = Scratch::new("ctl");
    let socket = dir.0.join("ctl.sock");
    let mut run = start(
        telemetry_options(Policy::Cfcfs, None, Some(socket.clone())),
        Duration::ZERO,
    );
    let stream = connect(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    // A first window proves the subscription: every later window reaches this client.
    read_until(&mut reader, |v| v["kind"] == "window");
    run.client.send(&mixed_requests(30));
    assert_eq!(run.client.collect(30).len(), 30);
    // Streaming: windows arrive until one has seen the requests.
    let mut arrivals = 0;
    while arrivals < 30 {
        let line = read_until(&mut reader, |v| v["kind"] == "window");
        let line: TelemetryLine = serde_json::from_value(line).unwrap();
        arrivals += line.types.iter().map(|t| t.arrivals).sum::<u64>();
    }
    assert_eq!(arrivals, 30);
    // Malformed and unknown commands: one error each, in order, and serving goes on.
    const BAD: usize = 100;
    for i in 0..BAD {
        let bad = ["not json", "{\"cmd\": 1}", "{\"cmd\": \"reboot\"}", "[]"][i % 4];
        writeln!(writer, "{bad}").unwrap();
    }
    writeln!(writer, "{{\"cmd\": \"snapshot\"}}").unwrap();
    for _ in 0..BAD {
        let reply = read_until(&mut reader, |v| v.get("ok").is_some());
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(reply["error"].as_str().unwrap().starts_with("c"), "{reply}");
    }
    let snapshot = read_until(&mut reader, |v| v.get("ok").is_some());
    assert_eq!(snapshot["ok"], true, "{snapshot}");
    assert_eq!(snapshot["window"]["kind"], "window", "{snapshot}");
    run.client.send(&mixed_requests(10));
    assert_eq!(run.client.collect(10).len(), 10, "still serving");
    // Stop: the server drains and returns by itself.
    writeln!(writer, "{{\"cmd\": \"stop\"}}").unwrap();
    let reply = read_until(&mut reader, |v| v.get("ok").is_some());
    assert_eq!(reply["ok"], true, "{reply}");
    let deadline = Instant::now() + RESPONSE_WAIT;
    while !run.server.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the stop command stopped the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(run.shutdown.load(Ordering::Acquire));
    let (_, report) = run.stop();
    let telemetry = report.telemetry.clone().expect("telemetry report");
    assert_eq!(telemetry.commands, BAD as u64 + 2);
    assert_eq!(telemetry.command_errors, BAD as u64);
    assert_eq!(telemetry.clients, 1);
    assert_eq!(report.requests_served(), 40);
    assert!(!socket.exists(), "socket file removed at stop");
    // The stream ends after the last window.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

#[test]
fn an_over_long_command_is_answered_and_the_client_disconnected() {
    let dir = Scratch::new("long");
    let socket = dir.0.join("ctl.sock");
    let run = start(
        telemetry_options(Policy::Cfcfs, None, Some(socket.clone())),
        Duration::ZERO,
    );
    let stream = connect(&socket);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(&vec![
            b'x';
            crate::server::telemetry::MAX_COMMAND_BYTES + 10
        ])
        .unwrap();
    let reply = read_until(&mut reader, |v| v.get("ok").is_some());
    assert_eq!(reply["ok"], false);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("longer than 4096 bytes"),
        "{reply}"
    );
    // Disconnected: the stream ends (within the read timeout) while the server runs on.
    let mut rest = String::new();
    reader
        .read_to_string(&mut rest)
        .expect("EOF, not a timeout");
    assert!(!run.server.is_finished());
    // Another client is served.
    let stream = connect(&socket);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    writeln!(&stream, "{{\"cmd\": \"snapshot\"}}").unwrap();
    let reply = read_until(&mut reader, |v| v.get("ok").is_some());
    assert_eq!(reply["ok"], true, "{reply}");
    let (_, report) = run.stop();
    let telemetry = report.telemetry.expect("telemetry report");
    assert_eq!(
        (
            telemetry.clients,
            telemetry.commands,
            telemetry.command_errors
        ),
        (2, 2, 1)
    );
}

#[test]
fn clients_beyond_the_limit_are_refused_with_an_error() {
    use crate::server::telemetry::MAX_CONTROL_CLIENTS;
    let dir = Scratch::new("many");
    let socket = dir.0.join("ctl.sock");
    let run = start(
        telemetry_options(Policy::Cfcfs, None, Some(socket.clone())),
        Duration::ZERO,
    );
    let mut held: Vec<BufReader<UnixStream>> = (0..MAX_CONTROL_CLIENTS)
        .map(|_| BufReader::new(connect(&socket)))
        .collect();
    // Connections are accepted in order: the first ones are served (they stream windows), the
    // one beyond the limit is refused.
    let extra = connect(&socket);
    for reader in &mut held {
        read_until(reader, |v| v["kind"] == "window");
    }
    let mut extra = BufReader::new(extra);
    let refusal = read_until(&mut extra, |v| v.get("ok").is_some());
    assert_eq!(refusal["ok"], false);
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("clients are connected already"),
        "{refusal}"
    );
    drop(held);
    let (_, report) = run.stop();
    let telemetry = report.telemetry.expect("telemetry report");
    assert_eq!(telemetry.clients, MAX_CONTROL_CLIENTS as u64);
    assert_eq!(telemetry.clients_refused, 1);
}

#[test]
fn a_bad_control_socket_is_an_error_naming_the_key() {
    let dir = Scratch::new("bad");
    let socket = dir.0.join("missing-dir").join("ctl.sock");
    let opts = telemetry_options(Policy::Cfcfs, None, Some(socket));
    let (_, b) = pair(&MemPortConfig::with_queues(3));
    let err = Server::new(opts)
        .unwrap()
        .run(
            b,
            WireTypeClassifier,
            vec![
                TestHandler {
                    spin: Duration::ZERO
                };
                2
            ],
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("psp.control.socket") && err.contains("does not exist"),
        "{err}"
    );
}

/// Under live time sharing the windows still add up: a preempted request's slices count as
/// busy time of the workers that ran them, it arrives and completes once, and the windows'
/// preemptions add up to the report's.
#[test]
fn telemetry_windows_add_up_under_ts_with_preemptions() {
    let dir = Scratch::new("ts");
    let file = dir.0.join("server").join("telemetry.jsonl");
    let opts = telemetry_options(
        Policy::from_name("ts").expect("ts"),
        Some(file.clone()),
        None,
    );
    let mut run = start(opts, Duration::from_micros(50));
    let mut answered = 0;
    for batch in 0..3u32 {
        let requests: Vec<(u32, u32)> = (0..40).map(|i| (batch * 40 + i, 1 + i % 2)).collect();
        run.client.send(&requests);
        answered += run.client.collect(40).len();
        std::thread::sleep(Duration::from_millis(60));
    }
    let (_, report) = run.stop();
    assert_eq!(answered, 120, "{report}");
    let text = std::fs::read_to_string(&file).expect("telemetry file");
    let lines: Vec<TelemetryLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a telemetry line"))
        .collect();
    for (slot, totals) in report.dispatcher.per_type.iter().enumerate() {
        let sum = |f: fn(&crate::server::telemetry::TypeLine) -> u64| -> u64 {
            lines.iter().map(|l| f(&l.types[slot])).sum()
        };
        assert_eq!(sum(|t| t.arrivals), totals.arrivals, "{}", totals.name);
        assert_eq!(sum(|t| t.completions), totals.completed, "{}", totals.name);
        assert_eq!(
            sum(|t| t.service_count),
            totals.completed,
            "{}",
            totals.name
        );
        assert_eq!(sum(|t| t.preempted), totals.preempted, "{}", totals.name);
    }
    for worker in &report.workers {
        let busy_ns: f64 = lines
            .iter()
            .map(|l| l.workers[worker.worker].busy_share * (l.end_ns - l.start_ns) as f64)
            .sum();
        let off = (busy_ns / worker.busy_ns.max(1) as f64 - 1.0).abs();
        assert!(
            off < 1e-6,
            "worker {}: {busy_ns} vs {}",
            worker.worker,
            worker.busy_ns
        );
    }
}

/// CPUs of this process's threads named `name` (`/proc/self/task/*/status`), one list per
/// thread.
fn cpus_of_threads(name: &str) -> Vec<Vec<usize>> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("a task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        let mut cpus = Vec::new();
        for part in list.trim().split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi): (usize, usize) = (lo.parse().expect("cpu"), hi.parse().expect("cpu"));
            cpus.extend(lo..=hi);
        }
        found.push(cpus);
    }
    found
}

#[test]
fn helper_threads_keep_off_the_pinned_dispatcher_cpu() {
    let allowed = crate::server::allowed_cpus();
    let (first, last) = (allowed[0], allowed[allowed.len() - 1]);
    let dir = Scratch::new("cpus");
    let mut opts = telemetry_options(Policy::Cfcfs, Some(dir.0.join("telemetry.jsonl")), None);
    opts.shadow = Some(Policy::Sjf);
    opts.dispatcher_cpu = Some(first);
    opts.worker_cpus = vec![last; 2];
    let mut run = start(opts, Duration::from_micros(10));
    run.client.send(&[(1, 1), (2, 2)]);
    assert_eq!(run.client.collect(2).len(), 2, "the server serves");
    let expected = crate::server::affinity::helper_cpus(&allowed, &[first, last]);
    // Other tests' servers run beside this one in the process: this server's helpers are among
    // the threads of that name, none of which is confined to the dispatcher's CPU.
    for name in ["psp-shadow", "psp-telemetry"] {
        let threads = cpus_of_threads(name);
        assert!(
            threads.contains(&expected),
            "no {name} thread on {expected:?}: {threads:?} (allowed {allowed:?})"
        );
        if expected != [first] {
            assert!(
                !threads.contains(&vec![first]),
                "a {name} thread on the dispatcher's CPU alone: {threads:?}"
            );
        }
    }
    let (_, report) = run.stop();
    assert_eq!(report.dispatcher.completed, 2);
}
