//! The `psp` tools binary's edges: argument checks of `psp sim`, a closed stdout
//! (`psp sim ... | head`), DARC's bootstrap covered by the warm-up, one-line errors.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::ScratchDir;

/// Time for one small simulation.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

fn psp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_psp"));
    command.env("RUST_BACKTRACE", "1").stdin(Stdio::null());
    command
}

fn workload() -> String {
    format!("{}/configs/workloads/DISP2.yml", env!("CARGO_MANIFEST_DIR"))
}

/// `psp sim` with a small run and `extra` arguments.
fn sim_args(out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sim",
        "-w",
        &workload(),
        "-p",
        "cfcfs",
        "-l",
        "0.5",
        "--requests",
        "2000",
        "-o",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs `command` to the end (bounded: the runs are tiny) and returns (status code, stderr).
fn run(command: &mut Command) -> (Option<i32>, String) {
    let output = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run psp");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn sim_refuses_impossible_slo_and_threads() {
    let dir = ScratchDir::new("psp-sim-args");
    for (flag, value) in [
        ("--slo", "0"),
        ("--slo=-1", ""),
        ("--slo", "nan"),
        ("--slo", "inf"),
        ("--threads", "0"),
    ] {
        let extra: Vec<&str> = [flag, value]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let (code, stderr) = run(psp().args(sim_args(&dir.path, &extra)));
        assert_eq!(code, Some(1), "{extra:?} refused:\n{stderr}");
        let name = flag.split('=').next().unwrap();
        assert!(
            stderr.starts_with("psp: error: ") && stderr.contains(name),
            "{extra:?}: {stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line, no backtrace:\n{stderr}"
        );
    }
}

/// `psp sim ... | head` closes stdout early: the tool ends quietly (it panicked, exit 101).
#[test]
fn closed_stdout_ends_quietly() {
    let dir = ScratchDir::new("psp-sim-pipe");
    let mut child = psp()
        .args(sim_args(&dir.path, &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psp");
    drop(child.stdout.take()); // the reader is gone before anything is written
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < PROCESS_TIMEOUT, "psp sim still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Fewer requests than DARC's profiling needs in the default warm-up: the warm-up is raised to
/// cover the c-FCFS bootstrap (DARC's capacity dropped from 0.90 to 0.55 silently).
#[test]
fn darc_bootstrap_is_covered_by_the_warm_up() {
    let dir = ScratchDir::new("psp-sim-warmup");
    let mut args = sim_args(&dir.path, &["--darc-samples", "500"]);
    args[4] = "darc".to_string(); // -p darc
    let (code, stderr) = run(psp().args(&args));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warm-up raised from 200 to 550 requests"),
        "{stderr}"
    );
    // More than half the run would be bootstrap: a warning instead.
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a == "500" {
                "1500".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let (code, stderr) = run(psp().args(&args));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("warning: DARC bootstraps"), "{stderr}");
}
