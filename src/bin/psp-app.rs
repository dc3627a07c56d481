//! `psp-app`: the Perséphone server (dispatcher + workers) over DPDK or kernel UDP.
//!
//! ```text
//! psp-app --cfg configs/server/memif-demo.yml [--label run1]     # DPDK, EAL from the config
//! psp-app --cfg configs/server/memif-demo.yml --udp 127.0.0.1:6789  # kernel UDP, no DPDK
//! ```
//! The config is validated before the EAL starts (errors name the key and value). SIGINT or
//! SIGTERM stops RX; the server drains, prints its counters and the port's, and releases the
//! EAL (its runtime files included), so a second run can follow at once. With `log_dir` or
//! `psp.control.socket`, telemetry windows go to `log_dir/<label>/server/telemetry.jsonl` and the
//! control socket, which also takes commands (`{"cmd": "stop"}` stops as SIGINT does; see
//! `psp top`).
//!
//! Hidden subcommands, for tests and benchmarks (DPDK builds only; EAL arguments after `--`):
//! - `psp-app peer [options] -- <EAL args>`: a closed-loop request peer (memif client) that
//!   sends malformed frames then requests, and prints a JSON report on stdout.
//! - `psp-app raw-echo [options] -- <EAL args>`: a scheduler-less DPDK echo, the baseline of
//!   `benches/echo_rtt.rs`.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "psp-app",
    version,
    about = "Perséphone server: DARC and other policies over DPDK or UDP"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Server configuration (YAML).
    #[arg(long = "cfg", value_name = "FILE")]
    cfg: Option<std::path::PathBuf>,
    /// Label of this run, used in output file names.
    #[arg(long)]
    label: Option<String>,
    /// Serve over a kernel UDP socket bound to ADDR instead of DPDK.
    #[arg(long, value_name = "ADDR")]
    udp: Option<std::net::SocketAddr>,
    /// Also write the run's report as JSON to FILE (it is always written to
    /// `log_dir/<label>/server/report.json` when the config has a log_dir).
    #[arg(long, value_name = "FILE")]
    report: Option<std::path::PathBuf>,
    #[command(subcommand)]
    tool: Option<Tool>,
}

#[derive(Subcommand, Debug)]
enum Tool {
    /// Closed-loop request peer (tests, benches).
    #[command(hide = true)]
    Peer(PeerArgs),
    /// Scheduler-less DPDK echo (bench baseline).
    #[command(hide = true)]
    RawEcho(RawEchoArgs),
}

/// Addressing and device options shared by the tools.
#[derive(Args, Debug)]
struct ToolCommon {
    /// Our MAC (default: the port's).
    #[arg(long)]
    mac: Option<String>,
    /// Our IPv4 address.
    #[arg(long)]
    ip: Ipv4Addr,
    /// Our UDP port.
    #[arg(long)]
    port: u16,
    /// RX queues to configure (a memif peer of a server with N workers needs 1 + N).
    #[arg(long, default_value_t = 1)]
    rx_queues: u16,
    /// TX queues to configure.
    #[arg(long, default_value_t = 1)]
    tx_queues: u16,
    /// Seconds to wait for the link (memif needs its peer).
    #[arg(long, default_value_t = 30.0)]
    link_timeout_s: f64,
    /// Poll without yielding when idle.
    #[arg(long)]
    spin: bool,
    /// EAL arguments.
    #[arg(last = true, required = true)]
    eal: Vec<String>,
}

#[derive(Args, Debug)]
struct PeerArgs {
    #[command(flatten)]
    common: ToolCommon,
    /// Server MAC.
    #[arg(long)]
    server_mac: String,
    /// Server IPv4 address.
    #[arg(long)]
    server_ip: Ipv4Addr,
    /// Server UDP port.
    #[arg(long)]
    server_port: u16,
    /// Valid requests to send.
    #[arg(long, default_value_t = 1000)]
    requests: u32,
    /// Most requests outstanding.
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// Request types as TYPE:RUN_NS, used in turn (e.g. 1:1000,2:50000).
    #[arg(long, value_delimiter = ',', default_value = "1:0")]
    types: Vec<String>,
    /// Rounds of malformed frames sent before the requests.
    #[arg(long, default_value_t = 0)]
    malformed_rounds: u32,
    /// Stop after this many seconds without a response.
    #[arg(long, default_value_t = 2.0)]
    stall_timeout_s: f64,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = 60.0)]
    deadline_s: f64,
    /// Seconds to wait after link-up before sending (lets the server finish starting).
    #[arg(long, default_value_t = 0.0)]
    warmup_s: f64,
}

#[derive(Args, Debug)]
struct RawEchoArgs {
    #[command(flatten)]
    common: ToolCommon,
}

/// Exit status when a second SIGINT/SIGTERM cuts the drain short.
const EXIT_ON_SECOND_SIGNAL: i32 = 130;

fn main() -> std::process::ExitCode {
    psp::exit::init();
    psp::exit::finish("psp-app", run())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a drain; a second one (stop already set) exits at once.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            EXIT_ON_SECOND_SIGNAL,
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
        .with_context(|| format!("installing the handler for signal {signal}"))?;
    }
    match cli.tool {
        Some(tool) => run_tool(tool, &stop),
        None => {
            let cfg = cli
                .cfg
                .as_deref()
                .context("--cfg FILE is required (see --help)")?;
            server::run(
                cfg,
                cli.label.as_deref(),
                cli.udp,
                cli.report.as_deref(),
                &stop,
            )
        }
    }
}

#[cfg(not(feature = "dpdk"))]
fn run_tool(_tool: Tool, _stop: &AtomicBool) -> Result<()> {
    anyhow::bail!(
        "psp-app was built without the `dpdk` feature: the peer and raw-echo tools need it"
    )
}

#[cfg(feature = "dpdk")]
fn run_tool(tool: Tool, stop: &AtomicBool) -> Result<()> {
    use psp::dpdk::{Device, DeviceConfig, PortConfig};
    use psp::peer::{self, IdleStrategy, PeerConfig};
    use psp_net::port::Port;
    use psp_net::wire::{Endpoint, MacAddr};

    let common = match &tool {
        Tool::Peer(args) => &args.common,
        Tool::RawEcho(args) => &args.common,
    };
    let idle = if common.spin {
        IdleStrategy::Spin
    } else {
        IdleStrategy::Yield
    };
    // Every option is checked before the EAL starts.
    let link_timeout = seconds("--link-timeout-s", common.link_timeout_s)?;
    let mac = common
        .mac
        .as_deref()
        .map(|text| parse_mac("--mac", text))
        .transpose()?;
    let peer_setup = match &tool {
        Tool::Peer(args) => {
            let request_types = args
                .types
                .iter()
                .map(|text| parse_type(text))
                .collect::<Result<Vec<_>>>()?;
            let server = Endpoint::new(
                parse_mac("--server-mac", &args.server_mac)?,
                args.server_ip,
                args.server_port,
            );
            Some((
                PeerConfig {
                    local: Endpoint::new(MacAddr([0; 6]), common.ip, common.port),
                    server,
                    requests: args.requests,
                    window: args.window,
                    request_types,
                    malformed_rounds: args.malformed_rounds,
                    stall_timeout: seconds("--stall-timeout-s", args.stall_timeout_s)?,
                    deadline: seconds("--deadline-s", args.deadline_s)?,
                    idle,
                },
                seconds("--warmup-s", args.warmup_s)?,
            ))
        }
        Tool::RawEcho(_) => None,
    };
    let mut port_config = PortConfig::server(0, common.tx_queues.saturating_sub(1));
    port_config.rx_queues = common.rx_queues;
    let mut device = Device::open(&DeviceConfig {
        eal_args: &common.eal,
        prefix_stem: "psp-tool",
        pool_name: "psp_mbufs",
        port: port_config,
    })?;
    eprintln!("psp-app: DPDK port 0 started; waiting for the link");
    if !device
        .wait_link(link_timeout, stop)
        .context("waiting for the link")?
    {
        return Ok(());
    }
    let local = Endpoint::new(
        mac.unwrap_or(MacAddr(device.port.mac())),
        common.ip,
        common.port,
    );
    match peer_setup {
        Some((mut config, warmup)) => {
            config.local = local;
            std::thread::sleep(warmup);
            let report = peer::run_peer(&mut device.port, &config)?;
            println!("{}", serde_json::to_string(&report)?);
        }
        None => {
            eprintln!("raw-echo: serving {local:?}");
            let report = peer::run_raw_echo(&mut device.port, local, stop, idle)?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

/// A duration option in seconds: finite and ≥ 0.
#[cfg(feature = "dpdk")]
fn seconds(key: &str, value: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{key} {value}: expected a finite number of seconds ≥ 0"))
}

#[cfg(feature = "dpdk")]
fn parse_mac(key: &str, text: &str) -> Result<psp_net::wire::MacAddr> {
    text.parse()
        .map_err(|err| anyhow::anyhow!("{key} {text:?}: not a MAC address ({err:?})"))
}

/// `TYPE:RUN_NS` (e.g. `1:1000`).
#[cfg(feature = "dpdk")]
fn parse_type(text: &str) -> Result<(u32, u32)> {
    let (req_type, run_ns) = text
        .split_once(':')
        .with_context(|| format!("--types {text:?}: expected TYPE:RUN_NS"))?;
    Ok((
        req_type
            .trim()
            .parse()
            .with_context(|| format!("--types {text:?}: bad TYPE"))?,
        run_ns
            .trim()
            .parse()
            .with_context(|| format!("--types {text:?}: bad RUN_NS"))?,
    ))
}

/// Server mode: config → validation → port (DPDK or UDP) → dispatcher and workers → summary.
mod server {
    use std::net::{SocketAddr, SocketAddrV4};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use anyhow::{Context, Result};
    use psp_dataplane::app::{AppFactory, AppKind};
    use psp_dataplane::config::ServerConfig;
    use psp_dataplane::server::{Server, ServerOptions, ServerReport};
    use psp_net::port::Port;

    /// The report's file name beside DARC's windows log.
    const REPORT_JSON: &str = "report.json";

    /// Everything validated before any device is touched.
    struct Prepared {
        config: ServerConfig,
        server: Server,
        factory: AppFactory,
    }

    fn load(cfg: &Path) -> Result<ServerConfig> {
        let config = ServerConfig::from_path(cfg)
            .with_context(|| format!("loading server config {}", cfg.display()))?;
        for warning in &config.warnings {
            eprintln!("psp-app: config warning: {warning}");
        }
        // Everything the config allocates, checked before anything is allocated.
        if let Some(available) = psp_dataplane::config::available_memory_bytes() {
            config
                .check_memory(available)
                .with_context(|| format!("loading server config {}", cfg.display()))?;
        }
        Ok(config)
    }

    /// Builds the server from a validated config; `udp_local` is the bound UDP socket's
    /// address in `--udp` mode.
    fn prepare(
        config: ServerConfig,
        label: &str,
        udp_local: Option<SocketAddrV4>,
    ) -> Result<Prepared> {
        let mut options = ServerOptions::from_config(&config, label);
        if let Some(addr) = udp_local {
            // The kernel owns addressing: our IP and port are the socket's, and the MAC is the
            // one the UDP port synthesizes into received frames.
            options.ip = *addr.ip();
            options.udp_port = addr.port();
            options.mac = None;
        }
        let server = Server::new(options).context("server configuration")?;
        // Spin calibration and the kv store are built here, before any device is touched.
        let factory = AppFactory::new(&config.app);
        server
            .check_app(&factory.make())
            .context("server configuration")?;
        Ok(Prepared {
            config,
            server,
            factory,
        })
    }

    /// Loads `cfg`, validates it, and serves until `stop`; writes the report to `report_path`
    /// and to `log_dir/<label>/server/report.json`.
    pub fn run(
        cfg: &Path,
        label: Option<&str>,
        udp: Option<SocketAddr>,
        report_path: Option<&Path>,
        stop: &Arc<AtomicBool>,
    ) -> Result<()> {
        let label = label.map_or_else(
            || {
                cfg.file_stem()
                    .map_or_else(|| "psp".to_string(), |s| s.to_string_lossy().into_owned())
            },
            str::to_string,
        );
        let config = load(cfg)?;
        let json_paths: Vec<PathBuf> = report_path
            .map(Path::to_path_buf)
            .into_iter()
            .chain(config.log_dir.as_ref().map(|dir| {
                let mut path = ServerOptions::windows_log_path(dir, &label);
                path.set_file_name(REPORT_JSON);
                path
            }))
            .collect();
        let announce = |prepared: &Prepared| {
            eprintln!(
                "psp-app: {label}: policy {}, {} worker(s), app {}{}, idle {}",
                prepared.config.scheduler.policy.name(),
                prepared.config.workers(),
                prepared.config.app.kind,
                if prepared.config.app.kind == AppKind::Spin {
                    format!(" (spin mode {})", prepared.config.app.spin_mode.name())
                } else {
                    String::new()
                },
                prepared.config.idle.name()
            );
            for warning in prepared.server.startup_warnings() {
                eprintln!("psp-app: WARNING: {warning}");
            }
        };
        let report = match udp {
            Some(SocketAddr::V4(addr)) => {
                use psp_net::port::udp::{UdpPort, UdpPortConfig};
                let tx_queues = u16::try_from(config.workers() + 1)
                    .context("too many workers for the UDP port")?;
                let port = UdpPort::bind(&UdpPortConfig::new(addr, tx_queues))
                    .with_context(|| format!("--udp {addr}: binding"))?;
                let local = port.local_addr();
                let prepared = prepare(config, &label, Some(local))?;
                announce(&prepared);
                eprintln!("psp-app: UDP {local}");
                serve(prepared, port, stop)?
            }
            Some(SocketAddr::V6(addr)) => anyhow::bail!("--udp {addr}: only IPv4 is supported"),
            None => {
                let prepared = prepare(config, &label, None)?;
                announce(&prepared);
                match run_dpdk(prepared, stop)? {
                    Some(report) => report,
                    None => {
                        eprintln!("psp-app: stopped before the link came up; nothing served");
                        return Ok(());
                    }
                }
            }
        };
        println!("psp-app summary ({label}):");
        print!("{report}");
        for path in &json_paths {
            write_json(path, &report)?;
            println!("report: {}", path.display());
        }
        Ok(())
    }

    fn write_json(path: &Path, report: &ServerReport) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    fn serve<P: Port>(prepared: Prepared, port: P, stop: &Arc<AtomicBool>) -> Result<ServerReport> {
        let Prepared {
            server, factory, ..
        } = prepared;
        eprintln!("psp-app: serving (SIGINT or SIGTERM stops)");
        server
            .run_with_factory(port, &factory, Arc::clone(stop))
            .context("running the server")
    }

    #[cfg(not(feature = "dpdk"))]
    fn run_dpdk(_prepared: Prepared, _stop: &Arc<AtomicBool>) -> Result<Option<ServerReport>> {
        anyhow::bail!(
            "psp-app was built without the `dpdk` feature: serve over kernel UDP with --udp ADDR"
        )
    }

    #[cfg(feature = "dpdk")]
    /// Serves over DPDK; `None` if stopped before the link came up.
    fn run_dpdk(prepared: Prepared, stop: &Arc<AtomicBool>) -> Result<Option<ServerReport>> {
        use std::time::Duration;

        use psp::dpdk::{Device, DeviceConfig, PortConfig};

        /// How long to wait for the link (a memif server waits for its client).
        const LINK_TIMEOUT: Duration = Duration::from_secs(60);

        let config = &prepared.config;
        let workers = u16::try_from(config.workers()).context("workers.number")?;
        let mut port_config = PortConfig::server(config.device_id, workers);
        port_config.mac = Some(config.local.mac.0);
        port_config.rx_queues = config.rx_queues;
        let device = Device::open(&DeviceConfig {
            eal_args: &config.eal_args,
            prefix_stem: "psp-app",
            pool_name: "psp_mbufs",
            port: port_config,
        })?;
        let tx_queues = device.port.tx_queue_count();
        eprintln!(
            "psp-app: DPDK port {} started ({} RX, {tx_queues} TX queues: the dispatcher's and one \
             per worker; a memif client polls them all with psp-client --workers {workers}, or \
             misses the answers on those it does not poll); waiting for the link",
            config.device_id,
            device.port.rx_queue_count(),
        );
        if !device
            .wait_link(LINK_TIMEOUT, stop)
            .context("waiting for the link (is the peer running?)")?
        {
            return Ok(None);
        }
        eprintln!("psp-app: link up");
        let Device { port, eal } = device;
        let report = serve(prepared, port, stop)?;
        // The port is closed once the runner returns; the EAL goes last.
        drop(eal);
        Ok(Some(report))
    }
}
