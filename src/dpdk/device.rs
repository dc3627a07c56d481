//! [`Device`]: what every DPDK program here does before it serves or sends — initialise the EAL
//! from a config's `eal_init` (with a unique `--file-prefix` when it sets none), create the mbuf
//! pool, configure and start one port — in one call, with errors that name the config key.
//!
//! Drop order is the field order: the port, then the EAL handle (the pool lives as long as the
//! port, which holds it). Tested through every DPDK end-to-end test (`psp-app`, `psp-client`
//! and the `psp-app peer`/`raw-echo` tools all open their device here).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{with_unique_file_prefix, DpdkError, Eal, EthPort, Mempool, MempoolConfig, PortConfig};

/// How often [`Device::wait_link`] looks at the link.
const LINK_POLL: Duration = Duration::from_millis(10);

/// What to open.
#[derive(Clone, Debug)]
pub struct DeviceConfig<'a> {
    /// EAL arguments as configured (`network.eal_init`).
    pub eal_args: &'a [String],
    /// Stem of the `--file-prefix` added when the arguments set none (`psp-app`, `psp-client`).
    pub prefix_stem: &'a str,
    /// Name of the mbuf pool.
    pub pool_name: &'a str,
    /// The port and its queues.
    pub port: PortConfig,
}

/// Why a device could not be opened; each names the config key at fault.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `rte_eal_init` refused the arguments.
    #[error("network.eal_init = {args:?}: {source}")]
    Eal {
        /// The arguments as configured.
        args: Vec<String>,
        /// DPDK's error.
        source: DpdkError,
    },
    /// No port with that id was probed.
    #[error(
        "network.device_id = {port_id}: the EAL probed {available} port(s) (give a --vdev such \
         as net_memif0,role=server,socket=/tmp/psp.sock, or a PCI device, in network.eal_init)"
    )]
    NoSuchPort {
        /// The port asked for.
        port_id: u16,
        /// Ports the EAL probed.
        available: u16,
    },
    /// The mbuf pool could not be created.
    #[error(
        "creating the mbuf pool (without hugepages, give -m 256 or more in network.eal_init): {0}"
    )]
    Pool(DpdkError),
    /// The port could not be configured or started.
    #[error("starting DPDK port {port_id}: {source}")]
    Start {
        /// The port.
        port_id: u16,
        /// DPDK's error.
        source: DpdkError,
    },
}

/// A started port and the EAL it runs on.
#[derive(Debug)]
pub struct Device {
    /// The port (implements `psp_net::port::Port`).
    pub port: EthPort,
    /// The EAL: keep it (drop it) after the port.
    pub eal: Eal,
}

impl Device {
    /// Initialises the EAL, creates the pool and starts the port (does not wait for the link).
    pub fn open(config: &DeviceConfig<'_>) -> Result<Device, DeviceError> {
        let args = with_unique_file_prefix(config.eal_args, config.prefix_stem);
        let eal = Eal::init(&args).map_err(|source| DeviceError::Eal {
            args: config.eal_args.to_vec(),
            source,
        })?;
        let available = EthPort::count_available();
        if config.port.port_id >= available {
            return Err(DeviceError::NoSuchPort {
                port_id: config.port.port_id,
                available,
            });
        }
        let pool = Mempool::new(&eal, &MempoolConfig::named(config.pool_name))
            .map_err(DeviceError::Pool)?;
        let port = EthPort::start(&eal, Arc::new(pool), &config.port).map_err(|source| {
            DeviceError::Start {
                port_id: config.port.port_id,
                source,
            }
        })?;
        Ok(Device { port, eal })
    }

    /// Waits for the link: `Ok(true)` once it is up, `Ok(false)` if `stop` was set first, an
    /// error after `timeout`.
    pub fn wait_link(&self, timeout: Duration, stop: &AtomicBool) -> Result<bool, DpdkError> {
        let started = Instant::now();
        while !self.port.link_up() {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if started.elapsed() >= timeout {
                return Err(DpdkError::LinkDown {
                    port_id: self.port.port_id(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(LINK_POLL);
        }
        Ok(true)
    }
}
