//! Helpers for the end-to-end tests: unique names, child processes that are killed if a test
//! fails, bounded waits, signals through `kill(1)`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a bounded wait polls a child.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// A scratch directory removed at drop, unique per process and tag.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("psp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A child process with stdout/stderr in files; killed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &ScratchDir) -> Self {
        Self::spawn_with_env(name, program, args, dir, &[("RUST_BACKTRACE", "0")])
    }

    /// As [`Proc::spawn`], with the environment variables `env` set.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &ScratchDir,
        env: &[(&str, &str)],
    ) -> Self {
        let stdout = dir.file(&format!("{name}.out"));
        let stderr = dir.file(&format!("{name}.err"));
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {name} ({}): {err}", program.display()));
        Self {
            name: name.to_string(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (e.g. "INT") with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Waits at most `timeout` for the exit; panics (the drop kills it) on timeout.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        let child = self.child.as_mut().expect("not yet reaped");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if started.elapsed() > timeout {
                panic!(
                    "{} still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.stdout_text(),
                    self.stderr_text()
                );
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `needle` appears in stdout or stderr, at most `timeout`.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.stdout_text().contains(needle) || self.stderr_text().contains(needle) {
                return;
            }
            assert!(
                self.running(),
                "{} exited before printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout_text(),
                self.stderr_text()
            );
            std::thread::sleep(WAIT_POLL);
        }
        panic!(
            "{} did not print {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout_text(),
            self.stderr_text()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// EAL arguments of a test process: no hugepages, no PCI, one memif port.
pub fn memif_eal_args(prefix: &str, role: &str, socket: &Path) -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=lib.eal:warning",
        "--file-prefix",
        prefix,
        &format!(
            "--vdev=net_memif0,role={role},socket={},rsize=12",
            socket.display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The numbers of a `psp-app` summary's `accounting:` line: the server's identity
/// `rx = answered + dropped + abandoned + arp`, and what reached the port but not the
/// dispatcher (left in the RX queue at stop, missed by the device or kernel, received in error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerAccounting {
    pub rx: u64,
    pub answered: u64,
    pub dropped: u64,
    pub abandoned: u64,
    pub arp: u64,
    pub left_at_stop: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
}

impl ServerAccounting {
    /// Parses the summary's `accounting:` line and checks that it is balanced.
    pub fn from_summary(summary: &str) -> Self {
        let line = summary
            .lines()
            .find(|l| l.starts_with("accounting: "))
            .unwrap_or_else(|| panic!("no accounting line in:\n{summary}"));
        let number = |key: &str| -> u64 {
            let at = line
                .find(key)
                .unwrap_or_else(|| panic!("{key:?} in {line}"))
                + key.len();
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| !w.is_empty())
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("{key:?} value in {line}"))
        };
        let accounting = Self {
            rx: number("accounting: rx "),
            answered: number("answered "),
            dropped: number("dropped "),
            abandoned: number("abandoned "),
            arp: number("arp "),
            left_at_stop: number("left in rx queue at stop "),
            rx_missed: number("rx missed "),
            rx_errors: number("rx errors "),
        };
        assert!(line.contains("(balanced)"), "{line}");
        assert_eq!(
            accounting.rx,
            accounting.answered + accounting.dropped + accounting.abandoned + accounting.arp,
            "{line}"
        );
        accounting
    }

    /// Packets that reached the port but not the dispatcher, each counted.
    pub fn not_read(&self) -> u64 {
        self.left_at_stop + self.rx_missed + self.rx_errors
    }

    /// Checks `sent = rx + counted drops before the dispatcher` for a peer that sent `sent`
    /// frames and nothing else reached the port.
    pub fn assert_all_sent_counted(&self, sent: u64) {
        assert_eq!(self.rx + self.not_read(), sent, "{self:?}");
    }
}

/// Starts `psp-app --cfg cfg --udp 127.0.0.1:0 [extra]`, waits until it serves and returns it
/// with the UDP address the kernel gave it.
pub fn spawn_udp_server(
    name: &str,
    cfg: &Path,
    extra: &[&str],
    dir: &ScratchDir,
    timeout: Duration,
) -> (Proc, String) {
    let args: Vec<String> = ["--cfg", &cfg.display().to_string(), "--udp", "127.0.0.1:0"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    let mut server = Proc::spawn(name, env!("CARGO_BIN_EXE_psp-app").as_ref(), &args, dir);
    server.wait_for_output("serving", timeout);
    let addr = server
        .stderr_text()
        .lines()
        .find_map(|line| line.strip_prefix("psp-app: UDP "))
        .expect("server prints its UDP address")
        .trim()
        .to_string();
    (server, addr)
}
