//! The server and client configs `psp live` writes for each policy, as YAML text in the
//! Perséphone schema that `psp-app --cfg` and `psp-client -c` read (so a run can be repeated
//! by hand from the files in its output directory).
//!
//! Over memif the server owns the socket (`role=server`) and the client connects to it; each
//! process gets its own EAL file prefix (psp adds a unique one when none is given). Over UDP the
//! server binds 127.0.0.1 and the client sends there through the kernel.
//!
//! Tested below by parsing what is written with the same parsers the binaries use.

use std::path::Path;

use psp_scheduler::Policy;
use psp_workload::Workload;

use super::layout::Layout;

/// The server's address on the memif link (any address works: nothing routes it).
pub const SERVER_IP: &str = "192.168.10.10";
/// The client's address on the memif link.
pub const CLIENT_IP: &str = "192.168.10.11";
/// The server's UDP port.
pub const SERVER_PORT: u16 = 6789;
/// MACs of the two memif ends.
const SERVER_MAC: &str = "42:00:00:00:00:01";
const CLIENT_MAC: &str = "42:00:00:00:00:02";
/// memif ring size (log2 slots): 16k slots absorb bursts while a thread is descheduled.
const MEMIF_RSIZE_LOG2: u32 = 14;
/// EAL memory without hugepages, MiB: the server's mbuf pool and rings.
const SERVER_EAL_MEMORY_MB: u32 = 1024;
const CLIENT_EAL_MEMORY_MB: u32 = 512;

/// The network path between client and server.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// DPDK `net_memif` shared memory (the default: kernel-bypass end to end).
    Memif,
    /// Kernel UDP on 127.0.0.1 (no DPDK needed).
    Udp,
}

/// A YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn memif_vdev(role: &str, socket: &Path) -> String {
    quoted(&format!(
        "--vdev=net_memif0,role={role},socket={},rsize={MEMIF_RSIZE_LOG2}",
        socket.display()
    ))
}

/// What the server config of one policy's run needs.
pub struct ServerSpec<'a> {
    /// The policy, its DARC parameters (samples, rounding hysteresis) as `psp live` set them.
    pub policy: &'a Policy,
    /// Thread placement.
    pub layout: &'a Layout,
    /// The workload (types, means, ratios of its first phase).
    pub workload: &'a Workload,
    /// Transport.
    pub transport: Transport,
    /// memif socket path.
    pub socket: &'a Path,
    /// DARC's log and the report go under it.
    pub log_dir: &'a Path,
}

/// The server YAML.
pub fn server_yaml(spec: &ServerSpec<'_>) -> String {
    let layout = spec.layout;
    let cpus: Vec<String> = std::iter::once(layout.dispatcher_cpu)
        .chain(layout.worker_cpus.iter().copied())
        .map(|c| c.to_string())
        .collect();
    let idle = if layout.shared { "yield" } else { "spin" };
    let mut yaml = format!(
        "# Written by `psp live`: {} over {:?}.\ncpus: [{}]\nlog_dir: {}\nnet_workers:\n  - {{ip: {SERVER_IP}, port: {SERVER_PORT}, dp: CFCFS}}\n",
        spec.policy.name(),
        spec.transport,
        cpus.join(", "),
        quoted(&spec.log_dir.display().to_string())
    );
    yaml += &format!(
        "network:\n  device_id: 0\n  mac: '{SERVER_MAC}'\n  eal_init: [--no-huge, -m, '{SERVER_EAL_MEMORY_MB}', --no-pci, --no-telemetry, -l, '{}', --log-level=lib.eal:warning, {}]\n",
        layout.dispatcher_cpu,
        memif_vdev("server", spec.socket)
    );
    yaml += "requests:\n";
    for class in &spec.workload.classes {
        let first = spec.workload.phases[0]
            .types
            .iter()
            .find(|t| t.wire_id == class.wire_id);
        let (mean_ns, ratio) = first.map_or((0.0, 0.0), |t| (t.mean_ns, t.ratio));
        yaml += &format!(
            "  - {{type: {}, id: {}, mean_ns: {}, ratio: {ratio}}}\n",
            quoted(&class.name),
            class.wire_id,
            mean_ns.round().max(1.0) as u64
        );
    }
    yaml += &format!(
        "workers: {{number: {}, type: MB}}\npsp:\n  policy: {}\n  idle: {idle}\n  app: spin\n  spin: {{mode: clock}}\n",
        layout.worker_cpus.len(),
        spec.policy.name()
    );
    if let Some(darc) = spec.policy.darc_params() {
        yaml += &format!(
            "  darc: {{samples_needed: {}, rounding_hysteresis: {}}}\n",
            darc.samples_needed, darc.rounding_hysteresis
        );
    }
    yaml
}

/// The client YAML (its schedules come from `--workload`).
pub fn client_yaml(layout: &Layout, transport: Transport, socket: &Path, log_dir: &Path) -> String {
    let mut yaml = format!(
        "# Written by `psp live`.\ncpus: [{}]\nlog_dir: {}\n",
        layout.client_cpu,
        quoted(&log_dir.display().to_string())
    );
    match transport {
        Transport::Memif => {
            yaml += &format!(
                "network:\n  device_id: 0\n  mac: '{CLIENT_MAC}'\n  remote_mac: '{SERVER_MAC}'\n  eal_init: [--no-huge, -m, '{CLIENT_EAL_MEMORY_MB}', --no-pci, --no-telemetry, -l, '{}', --log-level=lib.eal:warning, {}]\nnet_workers: [{{ip: {CLIENT_IP}, port: {SERVER_PORT}}}]\n",
                layout.client_cpu,
                memif_vdev("client", socket)
            );
        }
        Transport::Udp => yaml += "net_workers: [{ip: 127.0.0.1, port: 0}]\n",
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::layout::plan_layout;
    use psp_dataplane::config::ServerConfig;

    fn workload() -> Workload {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/workloads/DISP2.yml");
        Workload::from_path(path).unwrap()
    }

    #[test]
    fn server_config_parses_with_the_layout_and_types() {
        let layout = plan_layout(12, None, &(0..16).collect::<Vec<_>>(), false).unwrap();
        let workload = workload();
        for name in ["darc", "cfcfs", "sjf"] {
            let mut policy = Policy::from_name(name).unwrap();
            if let Some(darc) = policy.darc_params_mut() {
                darc.samples_needed = 5000;
            }
            let yaml = server_yaml(&ServerSpec {
                policy: &policy,
                layout: &layout,
                workload: &workload,
                transport: Transport::Memif,
                socket: Path::new("/tmp/it's here/memif.sock"),
                log_dir: Path::new("/tmp/logs"),
            });
            let config =
                ServerConfig::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert_eq!(config.workers(), 12);
            assert_eq!(config.scheduler.policy, policy);
            assert_eq!(config.dispatcher_cpu, 2);
            assert_eq!(config.worker_cpus, (3..15).collect::<Vec<_>>());
            let types = &config.scheduler.types;
            assert_eq!(types.len(), 2);
            assert_eq!((types[0].wire_id, types[0].mean_ns), (1, Some(1_000)));
            assert_eq!((types[1].wire_id, types[1].mean_ns), (2, Some(100_000)));
            assert!(yaml.contains("socket=/tmp/it''s here/memif.sock"));
            assert!(yaml.contains("idle: spin"));
        }
    }

    #[test]
    fn client_config_parses_for_both_transports() {
        let layout = plan_layout(1, None, &[0, 1], false).unwrap();
        for transport in [Transport::Memif, Transport::Udp] {
            let yaml = client_yaml(
                &layout,
                transport,
                Path::new("/tmp/m.sock"),
                Path::new("/tmp/l"),
            );
            let config = psp_client::config::ClientConfig::from_yaml_str(&yaml)
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert_eq!(config.cpus, vec![0]);
            assert_eq!(transport == Transport::Memif, yaml.contains("role=client"));
        }
    }
}
