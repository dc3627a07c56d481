//! # `psp top`: a running server's numbers, from its control socket
//!
//! `psp top --socket PATH` connects to a server's control socket (`psp.control.socket`) and
//! redraws, in place, every telemetry window it streams: per request type the arrival and
//! completion rates, drops, service p50/p99 and deepest queue; per worker the busy share; the
//! dispatcher's utilisation; and DARC's plan. It ends when the server stops (the stream ends).
//! `--once` asks for the latest window (`{"cmd": "snapshot"}`), waits for the first one if the
//! server has not closed any yet, prints it and exits. `--send JSON` sends one command (e.g.
//! `{"cmd": "stop"}`) and prints the reply.
//!
//! The line format is `psp_dataplane::server::TelemetryLine`, the one definition the server
//! writes. Tested: [`render`] below; `tests/control_udp.rs` runs `psp top --once` against a
//! live `psp-app`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use psp_dataplane::server::TelemetryLine;
use serde_json::Value;

/// ANSI: cursor home, clear screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// `psp top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The server's control socket (`psp.control.socket` in its config).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// Print one snapshot and exit.
    #[arg(long)]
    pub once: bool,
    /// Send one JSON command (e.g. '{"cmd": "stop"}'), print the server's reply and exit
    /// (status 1 if it is an error).
    #[arg(long, value_name = "JSON", conflicts_with = "once")]
    pub send: Option<String>,
    /// With --once or --send: seconds to wait for the server's answer (and its first window).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout_s: f64,
}

/// Runs `psp top`.
pub fn run(args: &TopArgs) -> Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout_s)
        .ok()
        .filter(|t| !t.is_zero())
        .with_context(|| format!("--timeout-s {}: expected seconds > 0", args.timeout_s))?;
    let mut stdout = std::io::stdout().lock();
    if let Some(command) = &args.send {
        let reply = send(&args.socket, command, timeout)?;
        writeln!(stdout, "{reply}")?;
        if reply["ok"] != true {
            bail!("the server refused the command: {}", reply["error"]);
        }
        return Ok(());
    }
    if args.once {
        let line = snapshot(&args.socket, timeout)?;
        stdout.write_all(render(&line, &args.socket).as_bytes())?;
        return Ok(());
    }
    let stream = connect(&args.socket)?;
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    let mut shown = 0u64;
    loop {
        text.clear();
        if reader.read_line(&mut text)? == 0 {
            writeln!(
                stdout,
                "psp top: the server closed the socket ({shown} windows shown)"
            )?;
            return Ok(());
        }
        if let Some(line) = window_line(&text)? {
            write!(stdout, "{CLEAR}{}", render(&line, &args.socket))?;
            stdout.flush()?;
            shown += 1;
        }
    }
}

fn connect(socket: &Path) -> Result<UnixStream> {
    UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the control socket {} (is psp-app running with psp.control.socket?)",
            socket.display()
        )
    })
}

/// The telemetry window in a streamed line, `None` for a command reply.
fn window_line(text: &str) -> Result<Option<TelemetryLine>> {
    let value: Value =
        serde_json::from_str(text).with_context(|| format!("server sent {text:?}"))?;
    if value.get("kind").and_then(Value::as_str)
        != Some(psp_dataplane::server::telemetry::WINDOW_KIND)
    {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_value(value).context("a telemetry line")?,
    ))
}

/// The server's latest window: asks with `{"cmd": "snapshot"}`; when no window has closed
/// yet, waits for the first one streamed. At most `timeout` in all.
pub fn snapshot(socket: &Path, timeout: Duration) -> Result<TelemetryLine> {
    let started = Instant::now();
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    writeln!(stream, "{{\"cmd\": \"snapshot\"}}").context("sending the snapshot command")?;
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    let mut answered = false;
    while started.elapsed() < timeout {
        text.clear();
        let n = reader
            .read_line(&mut text)
            .with_context(|| format!("no answer from {} within {timeout:?}", socket.display()))?;
        if n == 0 {
            bail!("{}: the server closed the socket", socket.display());
        }
        if let Some(line) = window_line(&text)? {
            if answered {
                return Ok(line);
            }
            continue;
        }
        let reply: Value = serde_json::from_str(&text)?;
        if reply["ok"] != true {
            bail!(
                "the server refused the snapshot command: {}",
                reply["error"]
            );
        }
        match &reply["window"] {
            Value::Null => answered = true, // none closed yet: take the next streamed one
            window => return serde_json::from_value(window.clone()).context("the snapshot"),
        }
    }
    bail!(
        "no telemetry window from {} within {timeout:?}",
        socket.display()
    )
}

/// Sends one command line and returns the server's reply (telemetry lines are skipped).
pub fn send(socket: &Path, command: &str, timeout: Duration) -> Result<Value> {
    anyhow::ensure!(
        !command.contains('\n'),
        "--send {command:?}: one command, on one line"
    );
    let started = Instant::now();
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    writeln!(stream, "{command}").context("sending the command")?;
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    while started.elapsed() < timeout {
        text.clear();
        let n = reader
            .read_line(&mut text)
            .with_context(|| format!("no answer from {} within {timeout:?}", socket.display()))?;
        if n == 0 {
            bail!("{}: the server closed the socket", socket.display());
        }
        if window_line(&text)?.is_none() {
            return Ok(serde_json::from_str(&text)?);
        }
    }
    bail!("no answer from {} within {timeout:?}", socket.display())
}

/// `n / seconds`, formatted.
fn rate(n: u64, seconds: f64) -> String {
    format!("{:.0}", n as f64 / seconds)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// One window as the screen shows it.
pub fn render(line: &TelemetryLine, socket: &Path) -> String {
    let seconds = line.seconds();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "psp top  {}  policy {}  window {} ({:.3} s to {:.3} s, {:.0} ms)",
        socket.display(),
        line.policy,
        line.window,
        line.start_ns as f64 / 1e9,
        line.end_ns as f64 / 1e9,
        seconds * 1e3
    );
    let _ = writeln!(
        out,
        "{:<14} {:>11} {:>13} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "type",
        "arrivals/s",
        "completions/s",
        "queue full",
        "slab full",
        "p50 us",
        "p99 us",
        "max depth"
    );
    for t in &line.types {
        if t.name == "UNKNOWN" && t.arrivals == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>13} {:>10} {:>10} {:>10.2} {:>10.2} {:>9}",
            t.name,
            rate(t.arrivals, seconds),
            rate(t.completions, seconds),
            t.drops.queue_full,
            t.drops.slab_full,
            us(t.service_p50_ns),
            us(t.service_p99_ns),
            t.max_queue_depth
        );
    }
    let workers: Vec<String> = line
        .workers
        .iter()
        .map(|w| format!("{}:{:.0}%", w.worker, 100.0 * w.busy_share))
        .collect();
    let _ = writeln!(out, "workers busy   {}", workers.join("  "));
    let _ = writeln!(
        out,
        "dispatcher     {:.1} % of polls found work, busy {:.1} % of the window",
        100.0 * line.dispatcher.utilisation,
        100.0 * line.dispatcher.busy_share
    );
    render_plan(&mut out, line);
    if let Some(shadow) = &line.shadow {
        let _ = writeln!(
            out,
            "shadow {:<7} agreed {:.1} % of {} decisions (same request elsewhere {}, other {}), out of sync {}, dropped {}, {:.0} ns CPU per decision",
            shadow.policy,
            100.0 * shadow.agreed_share,
            shadow.decisions,
            shadow.same_request,
            shadow.disagreed,
            shadow.out_of_sync,
            shadow.events_dropped,
            shadow.cpu_ns_per_decision
        );
    }
    let preempted: Vec<String> = line
        .types
        .iter()
        .filter(|t| t.preempted > 0)
        .map(|t| format!("{} {}", t.name, rate(t.preempted, seconds)))
        .collect();
    if !preempted.is_empty() {
        let _ = writeln!(out, "preempted/s    {}", preempted.join("  "));
    }
    if !line.parse_drops.is_empty() {
        let drops: Vec<String> = line
            .parse_drops
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        let _ = writeln!(out, "parse drops    {}", drops.join("  "));
    }
    if line.windows_dropped > 0 {
        let _ = writeln!(
            out,
            "windows dropped (writer behind): {}",
            line.windows_dropped
        );
    }
    out
}

/// The DARC plan line of a window (or why there is none).
fn render_plan(out: &mut String, line: &TelemetryLine) {
    match &line.plan {
        Some(plan) => {
            let groups: Vec<String> = plan
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "[{}] reserved {:?} steals {:?}",
                        g.types.join(","),
                        g.reserved,
                        g.stealable
                    )
                })
                .collect();
            let spillway = plan
                .spillway
                .map_or_else(|| "none".to_string(), |w| w.to_string());
            let _ = writeln!(
                out,
                "plan           {}  spillway {spillway}",
                groups.join("  ")
            );
        }
        None if line.policy.starts_with("darc") => {
            let _ = writeln!(out, "plan           none yet (DARC is profiling)");
        }
        None => {
            let _ = writeln!(
                out,
                "plan           none ({} reserves no workers)",
                line.policy
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"window","window":7,"start_ns":700000000,"end_ns":800000000,
        "policy":"darc","types":[
          {"name":"SHORT","arrivals":1000,"completions":990,"drops":{"queue_full":3,"slab_full":0},
           "service_count":990,"service_p50_ns":1000,"service_p99_ns":2500,"max_queue_depth":12},
          {"name":"UNKNOWN","arrivals":0,"completions":0,"drops":{"queue_full":0,"slab_full":0},
           "service_count":0,"service_p50_ns":0,"service_p99_ns":0,"max_queue_depth":0}],
        "parse_drops":{"truncated_payload":2},
        "workers":[{"worker":0,"busy_share":0.5},{"worker":1,"busy_share":0.25}],
        "dispatcher":{"polls":100,"busy_polls":40,"utilisation":0.4,"busy_share":0.1},
        "plan":{"groups":[{"types":["SHORT"],"reserved":[0],"stealable":[1]}],"spillway":1},
        "windows_dropped":0}"#;

    #[test]
    fn renders_rates_quantiles_workers_and_plan() {
        let text = LINE.replace('\n', " ");
        let line = window_line(&text).unwrap().expect("a window");
        let shown = render(&line, Path::new("/tmp/ctl.sock"));
        assert!(shown.contains("policy darc  window 7"), "{shown}");
        // 1000 arrivals in 100 ms = 10000/s; p50 1 µs, p99 2.5 µs.
        let short = shown.lines().find(|l| l.starts_with("SHORT")).unwrap();
        let cols: Vec<&str> = short.split_whitespace().collect();
        assert_eq!(
            cols,
            ["SHORT", "10000", "9900", "3", "0", "1.00", "2.50", "12"]
        );
        assert!(!shown.contains("UNKNOWN"), "{shown}");
        assert!(shown.contains("0:50%  1:25%"), "{shown}");
        assert!(shown.contains("40.0 % of polls"), "{shown}");
        assert!(
            shown.contains("[SHORT] reserved [0] steals [1]  spillway 1"),
            "{shown}"
        );
        assert!(shown.contains("truncated_payload 2"), "{shown}");
        assert!(!shown.contains("shadow"), "no shadow ran: {shown}");
        // A line without `preempted` (an older server) reads as none; 50 in 100 ms is 500/s.
        assert!(!shown.contains("preempted"), "{shown}");
        let preempting = text.replace(
            r#""max_queue_depth":12}"#,
            r#""max_queue_depth":12,"preempted":50}"#,
        );
        let line = window_line(&preempting).unwrap().expect("a window");
        let shown = render(&line, Path::new("/tmp/ctl.sock"));
        assert!(shown.contains("preempted/s    SHORT 500\n"), "{shown}");
        let with_shadow = text.replace(
            "\"windows_dropped\"",
            "\"shadow\":{\"policy\":\"sjf\",\"decisions\":200,\"agreed\":150,\"same_request\":10,\"disagreed\":40,\"out_of_sync\":0,\"agreed_share\":0.75,\"events_dropped\":0,\"cpu_ns_per_decision\":41.5},\"windows_dropped\"",
        );
        let line = window_line(&with_shadow).unwrap().expect("a window");
        let shown = render(&line, Path::new("/tmp/ctl.sock"));
        assert!(
            shown.contains("shadow sjf     agreed 75.0 % of 200 decisions (same request elsewhere 10, other 40), out of sync 0, dropped 0, 42 ns CPU per decision"),
            "{shown}"
        );
        // A command reply is not a window.
        assert!(window_line("{\"ok\":true,\"cmd\":\"stop\"}")
            .unwrap()
            .is_none());
    }
}
