//! Child processes of `psp live`: started in their own process group (so a terminal's Ctrl-C
//! reaches only `psp live`, which then stops them in order), output to a log file, stopped
//! with SIGINT (psp-app drains and writes its report) and killed when they do not stop.
//!
//! Invariant: a [`Managed`] process never outlives its handle: dropping one that still runs
//! interrupts it, waits [`DROP_GRACE`], then kills it. Every wait is bounded and gives up
//! early when the run is cancelled. Tested by `tests/live.rs` (no process left behind after
//! errors) and below.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often waits poll the child and its log.
const POLL: Duration = Duration::from_millis(20);
/// How long a dropped process gets to stop after SIGINT before it is killed.
pub const DROP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a failed process's log quoted in the error.
const LOG_TAIL_LINES: usize = 15;

/// A running child with its log.
pub struct Managed {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Managed {
    /// Starts `command` in its own process group, stdout and stderr to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({program})"))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The log's text so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, indented, for an error message.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..]
            .iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits until the log contains `needle`. Fails if the process exits first, the wait
    /// passes `timeout`, or `cancel` is set.
    pub fn wait_for_log(
        &mut self,
        needle: &str,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.log_text().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_status() {
                bail!(
                    "{} exited ({status}) before it was ready; its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            if cancel.load(Ordering::Relaxed) {
                bail!("interrupted while waiting for {}", self.name);
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} was not ready after {timeout:?}; its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the process to exit on its own; a non-zero exit is an error quoting the log.
    pub fn wait_success(&mut self, timeout: Duration, cancel: &AtomicBool) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                self.child = None;
                if status.success() {
                    return Ok(());
                }
                bail!(
                    "{} failed ({status}); its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            if cancel.load(Ordering::Relaxed) {
                bail!("interrupted while {} was running", self.name);
            }
            if start.elapsed() > timeout {
                bail!("{} still running after {timeout:?}", self.name);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGINT and waits up to `grace` for the exit, then kills. Returns the exit status
    /// if it stopped by itself.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop(DROP_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_child_is_stopped_and_reaped() {
        let dir = std::env::temp_dir().join(format!("psp-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo ready; exec sleep 30"]);
        let cancel = AtomicBool::new(false);
        let mut child = Managed::spawn("sleeper", command, &dir.join("log")).unwrap();
        child
            .wait_for_log("ready", Duration::from_secs(10), &cancel)
            .unwrap();
        let pid = child.child.as_ref().unwrap().id();
        let started = Instant::now();
        drop(child);
        assert!(started.elapsed() < DROP_GRACE + Duration::from_secs(2));
        // Reaped: the pid no longer names our child.
        assert!(kill(Pid::from_raw(pid as i32), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_quote_the_log() {
        let dir = std::env::temp_dir().join(format!("psp-procs-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'Error: bad thing'; exit 3"]);
        let cancel = AtomicBool::new(false);
        let mut child = Managed::spawn("failer", command, &dir.join("log")).unwrap();
        let e = child
            .wait_for_log("never", Duration::from_secs(10), &cancel)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("failer exited") && e.contains("Error: bad thing"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
