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
