//! DPDK over memif inside one process: a memif server port and a memif client port on the same
//! socket (one EAL, two vdevs). Checks the queue pairing (the server's TX queue *i* arrives on
//! the client's RX queue *i*), link state, and the peer / raw-echo tools of `psp::peer`
//! against each other from separate threads.
//!
//! DPDK 22.11's memif prints "EAL: Error: Invalid memory" twice here (when a client-role port
//! starts beside a server-role port of the same process, and when the pool is freed); it does
//! not when the two roles are separate processes, and nothing is lost (the test checks every
//! buffer comes back).
#![cfg(feature = "dpdk")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use psp::dpdk::{Eal, EthPort, Mempool, MempoolConfig, PortConfig};
use psp::peer::{run_peer, run_raw_echo, IdleStrategy, MalformedKind, PeerConfig};
use psp_dataplane::port::{PacketBuf, Port, RxQueue, TxQueue};
use psp_dataplane::wire::{Endpoint, MacAddr};

/// Queues on each side (1 dispatcher + 2 workers).
const QUEUES: u16 = 3;
const LINK_TIMEOUT: Duration = Duration::from_secs(20);

/// Removes the test's directory on drop, also when the test fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn memif_pair_in_one_process() {
    let dir = std::env::temp_dir().join(format!("psp-memif-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir_guard = RemoveOnDrop(dir.clone());
    let socket = dir.join("memif.sock");
    let echo_socket = dir.join("echo.sock");
    let prefix = format!("psp-test-memif-{}", std::process::id());
    let args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--log-level=lib.eal:warning",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
        &format!(
            "--vdev=net_memif0,role=server,socket={},rsize=10",
            socket.display()
        ),
        &format!(
            "--vdev=net_memif1,role=client,socket={},rsize=10",
            socket.display()
        ),
        &format!(
            "--vdev=net_memif2,role=server,socket={},rsize=10",
            echo_socket.display()
        ),
        &format!(
            "--vdev=net_memif3,role=client,socket={},rsize=10",
            echo_socket.display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL with two memif ports");
    assert_eq!(EthPort::count_available(), 4);

    let mut pool_config = MempoolConfig::named("memif_pool");
    pool_config.mbufs = 4095;
    let pool = Arc::new(Mempool::new(&eal, &pool_config).unwrap());
    let mut server_config = PortConfig::server(0, QUEUES - 1);
    server_config.rx_queues = QUEUES;
    let mut client_config = server_config.clone();
    client_config.port_id = 1;
    let mut server = EthPort::start(&eal, Arc::clone(&pool), &server_config).unwrap();
    let mut client = EthPort::start(&eal, Arc::clone(&pool), &client_config).unwrap();
    server.wait_link_up(LINK_TIMEOUT).expect("server link");
    client.wait_link_up(LINK_TIMEOUT).expect("client link");

    // Server TX queue i → client RX queue i.
    for queue in 0..QUEUES {
        let mut tx = server.take_tx(queue).unwrap();
        let mut rx = client.take_rx(queue).unwrap();
        let mut m = tx.alloc().unwrap();
        m.set_len(60).unwrap();
        m.data_mut().fill(0x40 + queue as u8);
        let mut out = vec![m];
        // A memif client hands the server free slots on its RX ring when it polls it: poll
        // once first (cross-process peers poll continuously).
        let mut got = Vec::with_capacity(8);
        assert_eq!(rx.rx_burst(&mut got, 8), 0);
        let mut tries = 0;
        while tx.tx_burst(&mut out) == 0 && tries < 1000 {
            tries += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(out.is_empty(), "queue {queue}: sent (after {tries} tries)");
        for _ in 0..10_000 {
            if rx.rx_burst(&mut got, 8) > 0 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(got.len(), 1, "queue {queue}: one frame");
        assert_eq!(got[0].data(), &[0x40 + queue as u8; 60][..]);
    }
    drop(client);
    drop(server);

    // Second pair: the raw echo on the server side, the peer on the client side, each on its
    // own thread as in separate processes.
    let mut echo_port = EthPort::start(&eal, Arc::clone(&pool), &PortConfig::server(2, 0)).unwrap();
    let mut peer_port = EthPort::start(&eal, Arc::clone(&pool), &PortConfig::server(3, 0)).unwrap();
    echo_port.wait_link_up(LINK_TIMEOUT).expect("echo link");
    peer_port.wait_link_up(LINK_TIMEOUT).expect("peer link");
    let server_addr = Endpoint::new(MacAddr([2, 0, 0, 0, 0, 1]), [10, 0, 0, 1].into(), 6789);
    let peer_addr = Endpoint::new(MacAddr([2, 0, 0, 0, 0, 2]), [10, 0, 0, 2].into(), 40000);
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let echo = std::thread::spawn(move || {
        run_raw_echo(&mut echo_port, server_addr, &echo_stop, IdleStrategy::Yield)
    });
    let config = PeerConfig {
        local: peer_addr,
        server: server_addr,
        requests: 500,
        window: 8,
        request_types: vec![(1, 0), (2, 0)],
        malformed_rounds: 3,
        stall_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
        idle: IdleStrategy::Yield,
    };
    let report = run_peer(&mut peer_port, &config).expect("peer");
    stop.store(true, Ordering::Relaxed);
    let echo_report = echo.join().expect("echo thread").expect("echo");
    assert_eq!(report.sent, 500);
    assert_eq!(report.answered, 500, "{report:?}");
    assert_eq!(report.unexpected, 0);
    assert_eq!(report.answered_by_type.get(&1), Some(&250));
    assert_eq!(report.answered_by_type.get(&2), Some(&250));
    assert!(report.rtt_p50_ns > 0 && report.rtt_p50_ns <= report.rtt_p99_ns);
    assert_eq!(echo_report.echoed, 500);
    for kind in MalformedKind::ALL {
        let reason = kind.expected_reason().as_str();
        assert_eq!(report.malformed_sent.get(reason), Some(&3), "{reason}");
        assert_eq!(
            echo_report.dropped.get(reason),
            Some(&3),
            "echo counted {reason}"
        );
    }
    drop(peer_port);

    assert_eq!(
        pool.in_use(),
        0,
        "every buffer back once the ports are gone"
    );
    drop(pool);
    drop(eal);
}
