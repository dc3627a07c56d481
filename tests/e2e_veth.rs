//! A real kernel network path: `psp-app` serves on DPDK's `net_af_packet` bound to one end of a
//! veth pair in a network namespace made by this test, and `psp-client --transport udp` sends
//! from a second namespace through the kernel's UDP/IP stack. The client's kernel resolves the
//! server by ARP (answered by psp-app) and verifies the IPv4 header checksum of every response
//! (a bad one is dropped by the kernel, so a wrong checksum shows as unanswered requests).
//!
//! Addresses exist only inside the test's own namespaces (10.9.0.0/24 on the veth pair); the
//! namespaces, and with them the veth pair, are deleted when the test ends, pass or fail. Where
//! namespaces cannot be created (no root, no `ip`, a restricted container) the test says so and
//! is skipped.
#![cfg(feature = "dpdk")]

mod client_server_common;
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use client_server_common::{assert_exits_ok, client_summary, server_config, write_workload};
use common::{Proc, ScratchDir, ServerAccounting};

/// Time for a process to start, finish or exit after SIGINT.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// The server's address and MAC in `server_config`; the client's address on the same /24.
const SERVER_IP: &str = "10.9.0.1";
const SERVER_MAC: &str = "02:00:00:00:09:01";
const CLIENT_CIDR: &str = "10.9.0.2/24";
/// Workers in `server_config`.
const SERVER_WORKERS: usize = 2;

/// Runs `ip args...`; `Err` with its stderr if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("ip {}: {err}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct VethPair {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
}

impl VethPair {
    /// Creates the namespaces and the pair, addresses the client side and brings both up.
    fn create() -> Result<Self, String> {
        let pid = std::process::id();
        let pair = Self {
            server_ns: format!("psp-srv-{pid}"),
            client_ns: format!("psp-cli-{pid}"),
            server_if: format!("pspS{pid}"),
            client_if: format!("pspC{pid}"),
        };
        ip(&["netns", "add", &pair.server_ns])?;
        // From here on, drop cleans up whatever was made.
        ip(&["netns", "add", &pair.client_ns])?;
        let (s_ns, c_ns, s_if, c_if) = (
            pair.server_ns.as_str(),
            pair.client_ns.as_str(),
            pair.server_if.as_str(),
            pair.client_if.as_str(),
        );
        ip(&["link", "add", s_if, "type", "veth", "peer", "name", c_if])?;
        ip(&["link", "set", s_if, "address", SERVER_MAC, "netns", s_ns])?;
        ip(&["link", "set", c_if, "netns", c_ns])?;
        ip(&["-n", s_ns, "link", "set", s_if, "up"])?;
        ip(&["-n", c_ns, "addr", "add", CLIENT_CIDR, "dev", c_if])?;
        ip(&["-n", c_ns, "link", "set", c_if, "up"])?;
        ip(&["-n", c_ns, "link", "set", "lo", "up"])?;
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the pair.
        let _ = ip(&["netns", "del", &self.server_ns]);
        let _ = ip(&["netns", "del", &self.client_ns]);
    }
}

/// `ip netns exec NS program args...` as a [`Proc`].
fn spawn_in(ns: &str, name: &str, program: &str, args: &[String], dir: &ScratchDir) -> Proc {
    let mut full: Vec<String> = vec!["netns".into(), "exec".into(), ns.into(), program.into()];
    full.extend(args.iter().cloned());
    Proc::spawn(name, "ip".as_ref(), &full, dir)
}

#[test]
fn psp_client_reaches_psp_app_through_the_kernel_over_veth() {
    let pair = match VethPair::create() {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("skipped: cannot create network namespaces and a veth pair ({why})");
            return;
        }
    };
    let dir = ScratchDir::new("e2e-veth");
    let eal: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "-l",
        "0",
        "--log-level=lib.eal:warning",
        "--file-prefix",
        &format!("psp-veth-{}", std::process::id()),
        &format!(
            "--vdev=net_af_packet0,iface={},qpairs={}",
            pair.server_if,
            SERVER_WORKERS + 1
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = dir.file("server.yml");
    std::fs::write(&cfg, server_config(&eal, &dir.path)).unwrap();
    let server_args = vec!["--cfg".to_string(), cfg.display().to_string()];
    let mut server = spawn_in(
        &pair.server_ns,
        "server",
        env!("CARGO_BIN_EXE_psp-app"),
        &server_args,
        &dir,
    );
    server.wait_for_output("serving", PROCESS_TIMEOUT);

    let workload = write_workload(&dir, "duration: 1, rate: 300");
    let out = dir.file("client");
    let client_args: Vec<String> = [
        "--workload",
        &workload.display().to_string(),
        "-I",
        SERVER_IP,
        "-P",
        "6789",
        "--transport",
        "udp",
        "--outdir",
        &out.display().to_string(),
        "--seed",
        "9",
        "--drain-timeout",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut client = spawn_in(
        &pair.client_ns,
        "client",
        env!("CARGO_BIN_EXE_psp-client"),
        &client_args,
        &dir,
    );
    assert_exits_ok(&mut client, PROCESS_TIMEOUT);
    server.signal("INT");
    assert_exits_ok(&mut server, PROCESS_TIMEOUT);

    let summary = client_summary(&out);
    let c = &summary.counters;
    let server_stdout = server.stdout_text();
    assert!(c.sent > 0, "{c:?}");
    assert_eq!(
        c.received, c.sent,
        "every response passed the client kernel's checks: {c:?}\n{server_stdout}"
    );
    assert_eq!(c.malformed + c.unknown_id + c.duplicate, 0, "{c:?}");
    let accounting = ServerAccounting::from_summary(&server_stdout);
    assert!(
        accounting.arp >= 1,
        "the client's kernel resolved the server by ARP:\n{server_stdout}"
    );
    assert_eq!(accounting.answered, c.sent, "{server_stdout}");
    // The kernel may send frames of its own (IPv6 neighbour discovery...): each is counted.
    assert!(accounting.rx >= c.sent + accounting.arp, "{server_stdout}");
}
