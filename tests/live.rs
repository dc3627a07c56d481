//! `psp live` end to end: the real psp-app and psp-client over memif with one worker (what a
//! 2-core machine can run), and every refusal: a core list too short, a missing workload, an
//! unknown policy, a server that fails to start, a client that fails while the
//! server runs — each a one-line error naming the value, a non-zero exit, and no process left
//! behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ScratchDir;

fn psp() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_psp"))
}

fn workload() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/configs/workloads/DISP2.yml").to_string()
}

fn live(args: &[&str], out: &Path) -> Output {
    Command::new(psp())
        .arg("live")
        .args(args)
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run psp live")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts a failed run whose message contains every one of `needles`.
fn assert_refused(output: &Output, needles: &[&str]) {
    let all = text(output);
    assert!(!output.status.success(), "accepted:\n{all}");
    for needle in needles {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }
}

#[cfg(feature = "dpdk")]
#[test]
fn one_worker_over_memif_compares_live_and_sim() {
    let dir = ScratchDir::new("live-memif");
    let out = dir.file("out");
    let output = live(
        &[
            "--workload",
            &workload(),
            "--policies",
            "darc,cfcfs",
            "--workers",
            "1",
            "--share-cores",
            "--load",
            "0.1:0.2:0.1",
            "--duration",
            "1",
            "--darc-samples",
            "500",
            "--warmup-s",
            "0.5",
            "--sim-requests",
            "20000",
        ],
        &out,
    );
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains("live_capacity") && all.contains("sim_capacity"),
        "{all}"
    );
    let csv = std::fs::read_to_string(out.join("live.csv")).expect("live.csv");
    for policy in ["darc", "cfcfs"] {
        for source in ["live", "sim"] {
            let rows = csv
                .lines()
                .filter(|l| l.starts_with(&format!("{policy},{source},")))
                .count();
            assert_eq!(rows, 2, "{policy} {source}:\n{csv}");
        }
        // The server's report covers every request the client sent (warm-up and sweep).
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(policy).join("report.json")).expect("report"),
        )
        .expect("report.json");
        let sent: u64 = ["warmup", "client"]
            .iter()
            .map(|run| client_sent(&out.join(policy).join(run)))
            .sum();
        let accounting = &report["accounting"];
        let field = |name: &str| accounting[name].as_u64().unwrap();
        assert_eq!(
            field("rx_packets") + field("not_read"),
            sent,
            "{policy}: client sent = server rx + counted drops before the dispatcher"
        );
        assert_eq!(accounting["balanced"], true, "{policy}: {accounting}");
        assert_eq!(
            report["stages"]["rx_to_tx"]["count"].as_u64().unwrap(),
            field("answered")
                + report["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["tx_dropped"].as_u64().unwrap())
                    .sum::<u64>(),
            "{policy}: every request served is in the stage histograms"
        );
    }
    let svg = std::fs::read_to_string(out.join("plot.svg")).expect("plot.svg");
    assert!(svg.contains("darc live") && svg.contains("cfcfs sim"));
}

/// Requests sent by one client run: the sum of its points' `sent`.
#[cfg(feature = "dpdk")]
fn client_sent(run_dir: &Path) -> u64 {
    let csv = std::fs::read_to_string(run_dir.join("sweep.csv")).expect("sweep.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "sent").unwrap();
    lines
        .map(|l| l.split(',').nth(col).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn bad_inputs_are_refused_before_anything_starts() {
    let dir = ScratchDir::new("live-bad");
    let out = dir.file("out");
    let w = workload();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--workload", &w, "--workers", "2", "--cores", "0"],
            vec!["--cores 0", "4 needed"],
        ),
        (
            vec!["--workload", "/nonexistent/W.yml", "--workers", "1"],
            vec!["/nonexistent/W.yml"],
        ),
        (
            vec![
                "--workload",
                &w,
                "--workers",
                "1",
                "--policies",
                "darc,nosuch",
            ],
            vec!["nosuch"],
        ),
        (
            vec!["--workload", &w, "--workers", "1", "--load", "0.5:0.1:x"],
            vec!["--load 0.5:0.1:x"],
        ),
        (
            vec!["--workload", &w, "--workers", "1", "--slo", "0"],
            vec!["--slo 0"],
        ),
    ];
    for (args, needles) in cases {
        let output = live(&args, &out);
        assert_refused(&output, &needles);
        assert!(
            !out.exists(),
            "nothing written before the inputs are checked"
        );
    }
}

/// A fake program: a shell script in `dir`.
fn script(dir: &ScratchDir, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.file(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `psp live` on one worker with the fake psp-app and psp-client of `dir`.
fn live_with_fakes(dir: &ScratchDir, extra: &[&str]) -> Output {
    let bin = dir.path.display().to_string();
    let w = workload();
    let mut args = vec![
        "--workload",
        &w,
        "--workers",
        "1",
        "--share-cores",
        "--bin-dir",
        &bin,
    ];
    args.extend_from_slice(extra);
    live(&args, &dir.file("out"))
}

fn alive(pid: u32) -> bool {
    // A zombie would still have /proc/PID; our children are reaped, so absence means gone.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_server_that_fails_to_start_is_reported_with_its_log() {
    let dir = ScratchDir::new("live-nostart");
    script(
        &dir,
        "psp-app",
        "echo 'Error: cannot open the port' >&2; exit 1",
    );
    script(&dir, "psp-client", "exit 0");
    let output = live_with_fakes(&dir, &[]);
    assert_refused(
        &output,
        &["policy darc", "psp-app exited", "cannot open the port"],
    );
}

#[test]
fn a_failing_client_stops_the_server_it_started() {
    let dir = ScratchDir::new("live-orphan");
    let pid_file = dir.file("server.pid");
    script(
        &dir,
        "psp-app",
        &format!(
            "echo $$ > {}; echo 'psp-app: waiting for the link'; exec sleep 60",
            pid_file.display()
        ),
    );
    script(&dir, "psp-client", "echo 'Error: link down' >&2; exit 2");
    let output = live_with_fakes(&dir, &["--warmup-s", "0"]);
    assert_refused(&output, &["psp-client failed", "link down"]);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the fake server ran")
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(pid), "psp-app (pid {pid}) outlived psp live");
}

/// Ctrl-C (SIGINT to psp live alone: its children run in their own process group) stops the
/// client and the server it started, and psp live exits non-zero saying why.
#[test]
fn an_interrupted_run_leaves_no_process_behind() {
    let dir = ScratchDir::new("live-sigint");
    let (server_pid, client_pid) = (dir.file("server.pid"), dir.file("client.pid"));
    script(
        &dir,
        "psp-app",
        &format!(
            "echo $$ > {}; echo 'psp-app: waiting for the link'; exec sleep 60",
            server_pid.display()
        ),
    );
    script(
        &dir,
        "psp-client",
        &format!("echo $$ > {}; exec sleep 60", client_pid.display()),
    );
    let bin = dir.path.display().to_string();
    let w = workload();
    let out = dir.file("out");
    let child = Command::new(psp())
        .args(["live", "--workload", &w, "--workers", "1", "--share-cores"])
        .args(["--warmup-s", "0", "--bin-dir", &bin, "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psp live");
    let started = std::time::Instant::now();
    while !client_pid.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "client never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().expect("psp live exits");
    assert_refused(&output, &["interrupted"]);
    for pid_file in [server_pid, client_pid] {
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !alive(pid),
            "{} (pid {pid}) outlived psp live",
            pid_file.display()
        );
    }
}
