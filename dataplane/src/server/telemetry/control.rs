//! The control socket (`psp.control.socket`): a Unix-domain stream socket, mode 0600.
//!
//! A client that connects receives every telemetry line as it is produced, and may send JSON
//! commands, one per line; each is answered, in order, by one line with `"ok": true` or
//! `"ok": false` and an `error` that names the offending field:
//! - `{"cmd": "snapshot"}` → `{"ok": true, "cmd": "snapshot", "window": <latest line or null>}`;
//! - `{"cmd": "stop"}` → `{"ok": true, "cmd": "stop"}`, then the server drains and stops as on
//!   SIGINT (the command sets the same flag, which the dispatcher reads once per iteration);
//! - anything else (not JSON, not an object, no or unknown `cmd`, an extra field) → an error
//!   reply; the server keeps serving. A line over [`MAX_COMMAND_BYTES`] → an error reply, and
//!   the client is disconnected once its queue is written.
//!
//! Threads: one accepts (non-blocking, polled), and each client has a reader (commands) and a
//! writer (its bounded queue of lines and replies, written with a timeout, so a client that
//! stops reading cannot hold the server). At most [`MAX_CONTROL_CLIENTS`] clients at a time.
//! At bind, a stale socket file (nobody listening) is replaced; a live one or a file that is
//! not a socket is refused. Tests: [`control_command_reply`] below; whole servers in
//! `server/tests.rs`; `tests/control_udp.rs` end to end.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::mailbox::{Answer, DispatcherCommand, CONTROL_REPLY_TIMEOUT};
use super::writer::{Hub, Outbound};
use crate::server::ServerError;

/// Longest command line accepted, bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Most clients connected at once; more are answered with an error and closed.
pub const MAX_CONTROL_CLIENTS: usize = 16;
/// Lines and replies queued per client; a telemetry line that finds the queue full is dropped.
const CLIENT_QUEUE: usize = 256;
/// How often the accept loop and client readers look at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// A client write that takes longer disconnects the client.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The configuration key, for errors.
const KEY: &str = "psp.control.socket";
/// Mode of the socket file: owner only.
const SOCKET_MODE: u32 = 0o600;

fn bind_error(path: &Path, why: String) -> ServerError {
    ServerError::ControlSocket {
        path: path.to_path_buf(),
        why,
    }
}

/// Binds the socket at `path` (mode 0600), replacing a stale socket file.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bind_error(
            path,
            format!("directory {} does not exist", dir.display()),
        ));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(bind_error(
                path,
                "exists and is not a socket (not removed)".into(),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(bind_error(path, "another server is listening on it".into()));
        }
        std::fs::remove_file(path)
            .map_err(|e| bind_error(path, format!("removing the stale socket: {e}")))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| bind_error(path, format!("binding: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| bind_error(path, format!("setting mode 0600: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| bind_error(path, format!("setting non-blocking: {e}")))?;
    Ok(listener)
}

/// The running control socket.
pub(crate) struct Control {
    join: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
}

impl Control {
    /// Serves `listener` (bound at `path`) until [`Control::finish`]; `shutdown` is the
    /// server's stop flag.
    pub(crate) fn spawn(
        listener: UnixListener,
        path: PathBuf,
        hub: Arc<Hub>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let join = std::thread::Builder::new()
            .name("psp-control".into())
            .spawn(move || accept_loop(&listener, &hub, &shutdown, &flag))?;
        Ok(Self { join, stop, path })
    }

    /// Disconnects every client, stops accepting and removes the socket file.
    pub(crate) fn finish(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.join.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(
    listener: &UnixListener,
    hub: &Arc<Hub>,
    shutdown: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        clients.retain(|c| !c.is_finished());
        match listener.accept() {
            Ok((mut stream, _)) => {
                if clients.len() >= MAX_CONTROL_CLIENTS {
                    hub.counters.clients_refused.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                    let _ = writeln!(
                        stream,
                        "{}",
                        error_reply(format!(
                            "{KEY}: {MAX_CONTROL_CLIENTS} clients are connected already"
                        ))
                    );
                    continue;
                }
                hub.counters.clients.fetch_add(1, Ordering::Relaxed);
                let (hub, shutdown, stop) =
                    (Arc::clone(hub), Arc::clone(shutdown), Arc::clone(stop));
                let spawned = std::thread::Builder::new()
                    .name("psp-control-client".into())
                    .spawn(move || serve_client(stream, &hub, &shutdown, &stop));
                if let Ok(join) = spawned {
                    clients.push(join);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(POLL);
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for client in clients {
        let _ = client.join();
    }
}

/// One client: this thread reads commands, a second one writes its queue.
fn serve_client(stream: UnixStream, hub: &Hub, shutdown: &AtomicBool, stop: &Arc<AtomicBool>) {
    let (tx, rx) = sync_channel::<Outbound>(CLIENT_QUEUE);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_nonblocking(false);
    let _ = out.set_write_timeout(Some(WRITE_TIMEOUT));
    let writer_stop = Arc::clone(stop);
    // Set when this client is to be disconnected once its queue is written.
    let closing = Arc::new(AtomicBool::new(false));
    let writer_closing = Arc::clone(&closing);
    let writer = std::thread::Builder::new()
        .name("psp-control-out".into())
        .spawn(move || {
            loop {
                let message = match rx.recv_timeout(POLL) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout)
                        if !writer_stop.load(Ordering::Acquire)
                            && !writer_closing.load(Ordering::Acquire) =>
                    {
                        continue
                    }
                    Err(_) => break,
                };
                let text: &str = match &message {
                    Outbound::Line(line) => line,
                    Outbound::Reply(reply) => reply,
                };
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .is_err()
                {
                    break;
                }
            }
            let _ = out.shutdown(std::net::Shutdown::Both);
        });
    let Ok(writer) = writer else {
        return;
    };
    hub.subscribe(tx.clone());
    if read_commands(&stream, &tx, hub, shutdown, stop) == ReaderEnd::Disconnect {
        closing.store(true, Ordering::Release);
    }
    drop(tx);
    let _ = writer.join();
}

/// Why a client's reader ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ReaderEnd {
    /// EOF (the client may still read the stream) or the server stops.
    KeepStreaming,
    /// An over-long line or a broken connection: disconnect once the queue is written.
    Disconnect,
}

/// Reads command lines until EOF, an error, an over-long line or `stop`; queues each reply.
fn read_commands(
    stream: &UnixStream,
    tx: &SyncSender<Outbound>,
    hub: &Hub,
    shutdown: &AtomicBool,
    stop: &AtomicBool,
) -> ReaderEnd {
    let _ = stream.set_read_timeout(Some(POLL));
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    while !stop.load(Ordering::Acquire) {
        let room = (MAX_COMMAND_BYTES + 1).saturating_sub(line.len()) as u64;
        match reader.by_ref().take(room).read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => return ReaderEnd::KeepStreaming, // EOF
            Ok(_) if line.last() == Some(&b'\n') || line.len() <= MAX_COMMAND_BYTES => {
                // A whole line, or the last one without its newline at EOF.
                let text = String::from_utf8_lossy(&line);
                let (mut reply, mut action) = control_command_reply(
                    text.trim_end_matches(['\n', '\r']),
                    hub.latest().as_deref(),
                );
                if let ControlAction::Dispatch(command) = action {
                    (reply, action) =
                        dispatch_reply(&reply, hub.mailbox.post(command, CONTROL_REPLY_TIMEOUT));
                }
                hub.counters.commands.fetch_add(1, Ordering::Relaxed);
                if action == ControlAction::Refused {
                    hub.counters.command_errors.fetch_add(1, Ordering::Relaxed);
                }
                line.clear();
                if tx.send(Outbound::Reply(reply)).is_err() {
                    return ReaderEnd::Disconnect;
                }
                if action == ControlAction::Stop {
                    shutdown.store(true, Ordering::Release);
                }
            }
            Ok(_) => {
                hub.counters.commands.fetch_add(1, Ordering::Relaxed);
                hub.counters.command_errors.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Outbound::Reply(error_reply(format!(
                    "command: longer than {MAX_COMMAND_BYTES} bytes; closing the connection"
                ))));
                return ReaderEnd::Disconnect;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return ReaderEnd::Disconnect,
        }
    }
    ReaderEnd::KeepStreaming
}

/// What became of a command, besides its reply.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ControlAction {
    /// Refused: the reply is an error.
    Refused,
    /// Answered.
    Answered,
    /// Answered; the server must drain and stop.
    Stop,
    /// For the dispatcher to apply ([`Mailbox`]); the reply is its answer.
    Dispatch(DispatcherCommand),
}

/// The reply to command `cmd` that the dispatcher answered with `answer`.
fn dispatch_reply(cmd: &str, answer: Answer) -> (String, ControlAction) {
    match answer {
        Ok(fields) => (
            format!(
                "{{\"ok\":true,\"cmd\":{},{fields}}}",
                Value::String(cmd.into())
            ),
            ControlAction::Answered,
        ),
        Err(e) => (error_reply(e), ControlAction::Refused),
    }
}

/// `{"ok":false,"error":...}`, `ok` first so that a reader sees the verdict at once.
fn error_reply(error: String) -> String {
    format!("{{\"ok\":false,\"error\":{}}}", Value::String(error))
}

/// The reply to one command line, given the latest telemetry line, and what it asks for.
pub(crate) fn control_command_reply(line: &str, latest: Option<&str>) -> (String, ControlAction) {
    const EXPECTED: &str = "expected \"snapshot\", \"stop\", \"policy\", \"pin\" or \"toggle\"";
    let fail = |error: String| (error_reply(error), ControlAction::Refused);
    let value: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            return fail(format!(
                "command: not JSON ({e}); send one object per line, like {{\"cmd\": \"snapshot\"}}"
            ))
        }
    };
    let Some(object) = value.as_object() else {
        return fail(format!(
            "command: expected a JSON object like {{\"cmd\": \"snapshot\"}}, got {value}"
        ));
    };
    let cmd = match object.get("cmd") {
        Some(Value::String(cmd)) => cmd.as_str(),
        Some(other) => return fail(format!("cmd: expected a string ({EXPECTED}), got {other}")),
        None => return fail(format!("cmd: missing ({EXPECTED})")),
    };
    if matches!(cmd, "policy" | "pin") {
        return match crate::config::policy_command(&value) {
            Ok(policy) => (
                cmd.to_string(),
                ControlAction::Dispatch(DispatcherCommand::SwitchPolicy(policy)),
            ),
            Err(e) => fail(e),
        };
    }
    if cmd == "toggle" {
        if let Some(extra) = object.keys().find(|k| k.as_str() != "cmd") {
            return fail(format!("{extra}: unknown field for cmd \"toggle\""));
        }
        return (
            cmd.to_string(),
            ControlAction::Dispatch(DispatcherCommand::Toggle),
        );
    }
    if !matches!(cmd, "snapshot" | "stop") {
        return fail(format!("cmd: unknown command {cmd:?} ({EXPECTED})"));
    }
    if let Some(extra) = object.keys().find(|k| k.as_str() != "cmd") {
        return fail(format!("{extra}: unknown field for cmd {cmd:?}"));
    }
    match cmd {
        "stop" => (
            "{\"ok\":true,\"cmd\":\"stop\"}".to_string(),
            ControlAction::Stop,
        ),
        _ => (
            format!(
                "{{\"ok\":true,\"cmd\":\"snapshot\",\"window\":{}}}",
                latest.unwrap_or("null")
            ),
            ControlAction::Answered,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error_of(line: &str) -> String {
        let (reply, action) = control_command_reply(line, None);
        assert_eq!(action, ControlAction::Refused, "{line}");
        let value: Value = serde_json::from_str(&reply).expect("reply is JSON");
        assert_eq!(value["ok"], false, "{line}: {reply}");
        value["error"].as_str().expect("error text").to_string()
    }

    #[test]
    fn malformed_and_unknown_commands_name_the_field() {
        assert!(error_of("").starts_with("command: not JSON"));
        assert!(error_of("{\"cmd\": ").starts_with("command: not JSON"));
        assert!(error_of("[1, 2]").starts_with("command: expected a JSON object"));
        assert!(error_of("{}").starts_with("cmd: missing"));
        assert!(error_of("{\"cmd\": 5}").starts_with("cmd: expected a string"));
        assert!(error_of("{\"cmd\": \"reboot\"}").contains("unknown command \"reboot\""));
        assert!(error_of("{\"cmd\": \"stop\", \"now\": true}").starts_with("now: unknown field"));
    }

    #[test]
    fn policy_and_pin_commands_become_switches_or_name_the_field() {
        use psp_scheduler::{DarcParams, Policy};
        let switch = |line: &str| match control_command_reply(line, None) {
            (cmd, ControlAction::Dispatch(DispatcherCommand::SwitchPolicy(p))) => (cmd, p),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(
            switch("{\"cmd\":\"policy\",\"policy\":\"CFCFS\"}"),
            ("policy".to_string(), Policy::Cfcfs)
        );
        let (_, darc) = switch(
            "{\"cmd\":\"policy\",\"policy\":\"darc\",\"darc\":{\"delta\":0.3,\"samples_needed\":500}}",
        );
        assert_eq!(
            darc,
            Policy::Darc(DarcParams {
                delta: 0.3,
                samples_needed: 500,
                ..DarcParams::default()
            })
        );
        let (cmd, pinned) = switch("{\"cmd\":\"pin\",\"allocation\":[1,13]}");
        assert_eq!(cmd, "pin");
        assert!(matches!(pinned, Policy::Darc(p) if p.fixed_allocation == Some(vec![1, 13])));
        for (line, needle) in [
            ("{\"cmd\":\"policy\"}", "policy: missing"),
            (
                "{\"cmd\":\"policy\",\"policy\":\"fifo\"}",
                "policy: \"fifo\": unknown policy",
            ),
            ("{\"cmd\":\"policy\",\"policy\":7}", "command: invalid type"),
            (
                "{\"cmd\":\"policy\",\"policy\":\"sjf\",\"darc\":{}}",
                "darc: only with policy darc",
            ),
            (
                "{\"cmd\":\"policy\",\"policy\":\"darc\",\"darc\":{\"delta\":-1}}",
                "darc.delta",
            ),
            (
                "{\"cmd\":\"policy\",\"policy\":\"darc\",\"darc\":{\"dleta\":1}}",
                "unknown field `dleta`",
            ),
            ("{\"cmd\":\"pin\"}", "allocation: missing"),
            (
                "{\"cmd\":\"pin\",\"policy\":\"cfcfs\",\"allocation\":[1]}",
                "allocation: only with policy darc",
            ),
            (
                "{\"cmd\":\"policy\",\"policy\":\"darc\",\"now\":1}",
                "unknown field `now`",
            ),
        ] {
            let e = error_of(line);
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn a_dispatcher_answer_becomes_the_reply() {
        let (reply, action) = dispatch_reply("policy", Ok("\"policy\":\"darc\"".into()));
        assert_eq!(action, ControlAction::Answered);
        let value: Value = serde_json::from_str(&reply).expect("JSON");
        assert_eq!(
            (value["ok"].clone(), value["policy"].clone()),
            (json!(true), json!("darc"))
        );
        let (reply, action) = dispatch_reply("pin", Err("policy: darc: nope".into()));
        assert_eq!(action, ControlAction::Refused);
        assert!(
            reply.starts_with("{\"ok\":false") && reply.contains("nope"),
            "{reply}"
        );
    }

    #[test]
    fn snapshot_embeds_the_latest_line_and_stop_asks_to_stop() {
        let (reply, action) = control_command_reply("{\"cmd\":\"snapshot\"}", None);
        assert_eq!(action, ControlAction::Answered);
        let value: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            (value["ok"].clone(), value["window"].clone()),
            (json!(true), Value::Null)
        );
        let latest = "{\"kind\":\"window\",\"window\":3}";
        let (reply, _) = control_command_reply(" {\"cmd\": \"snapshot\"} ", Some(latest));
        let value: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(value["window"]["window"], 3);
        let (reply, action) = control_command_reply("{\"cmd\":\"stop\"}", Some(latest));
        assert_eq!(action, ControlAction::Stop);
        assert!(reply.contains("\"ok\":true"), "{reply}");
    }

    #[test]
    fn bind_refuses_a_missing_directory_and_a_regular_file_and_replaces_a_stale_socket() {
        let dir = std::env::temp_dir().join(format!("psp-control-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope").join("ctl.sock");
        let err = bind(&missing).unwrap_err().to_string();
        assert!(
            err.contains("psp.control.socket") && err.contains("does not exist"),
            "{err}"
        );
        let file = dir.join("file");
        std::fs::write(&file, "keep me").unwrap();
        let err = bind(&file).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let path = dir.join("ctl.sock");
        drop(UnixListener::bind(&path).unwrap()); // stale: the file stays, nobody listens
        let live = bind(&path).expect("stale socket replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = bind(&path).unwrap_err().to_string();
        assert!(err.contains("another server"), "{err}");
        drop(live);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
