//! DPDK wrappers over a `net_ring` loopback (no NIC, no hugepages): EAL once per process, mbuf
//! ownership, TX→RX round trips through the `Port` trait, thread registration.
//!
//! `rte_eal_init` works once per process, so this binary holds a single test that runs every
//! check on one EAL.
#![cfg(feature = "dpdk")]

use std::sync::Arc;

use psp::dpdk::{current_lcore, DpdkError, Eal, EthPort, Mempool, MempoolConfig, PortConfig};
use psp_dataplane::port::{PacketBuf, Port, RxQueue, TxQueue};

/// Buffers in the test pool (2^k - 1).
const TEST_POOL_MBUFS: u32 = 1023;
/// A burst of test frames.
const BURST: usize = 32;

fn eal_args() -> Vec<String> {
    let prefix = format!("psp-test-ring-{}", std::process::id());
    [
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-telemetry",
        "--log-level=lib.eal:warning",
        "-l",
        "0",
        "--vdev=net_ring0",
        "--file-prefix",
        &prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn dpdk_over_net_ring() {
    let cpus_before = psp_dataplane::server::allowed_cpus();
    let eal = Eal::init(&eal_args()).expect("EAL init over net_ring");
    assert!(Eal::is_running());
    // rte_eal_init pins the calling thread to the main lcore (`-l 0`); psp pins its threads
    // itself, so the EAL hands the thread back with the process's CPUs.
    let after = std::thread::spawn(psp_dataplane::server::allowed_cpus)
        .join()
        .expect("a thread spawned after init");
    assert_eq!(
        after, cpus_before,
        "threads spawned after the EAL keep the process's CPUs"
    );
    // A second init is refused, not UB.
    assert!(matches!(
        Eal::init(&eal_args()),
        Err(DpdkError::AlreadyInitialized)
    ));

    let mut pool_config = MempoolConfig::named("test_pool");
    pool_config.mbufs = TEST_POOL_MBUFS;
    pool_config.cache_size = 0;
    let pool = Arc::new(Mempool::new(&eal, &pool_config).expect("pool"));
    check_mbufs(&pool);

    let mut config = PortConfig::server(0, 1);
    config.rx_queues = 2;
    let mut port = EthPort::start(&eal, Arc::clone(&pool), &config).expect("start net_ring0");
    port.wait_link_up(std::time::Duration::from_secs(5))
        .expect("ring link up");
    check_port_trait(&mut port);
    check_round_trip(&mut port, &pool);

    // Bad port ids and queue counts are errors naming the problem.
    let err = EthPort::start(&eal, Arc::clone(&pool), &PortConfig::server(7, 1)).unwrap_err();
    assert!(
        matches!(err, DpdkError::NoSuchPort { port_id: 7, .. }),
        "{err}"
    );

    drop(port);
    assert_eq!(pool.in_use(), 0, "every buffer back in the pool");
    drop(pool);
    drop(eal);
    assert!(!Eal::is_running(), "last handle cleans the EAL up");
}

fn check_mbufs(pool: &Mempool) {
    let mut mbuf = pool.alloc().expect("alloc");
    assert_eq!(pool.in_use(), 1);
    assert_eq!(mbuf.data().len(), 0);
    let capacity = mbuf.capacity();
    assert!(capacity >= 1500, "room for a frame: {capacity}");
    mbuf.set_len(60).unwrap();
    mbuf.data_mut().copy_from_slice(&[0xab; 60]);
    assert_eq!(mbuf.data(), &[0xab; 60][..]);
    mbuf.set_len(20).unwrap();
    assert_eq!(mbuf.data(), &[0xab; 20][..]);
    let err = mbuf.set_len(capacity + 1).unwrap_err();
    assert_eq!((err.wanted, err.capacity), (capacity + 1, capacity));
    assert_eq!(
        mbuf.data().len(),
        20,
        "failed set_len leaves the buffer unchanged"
    );
    assert_eq!(mbuf.append(4).map(|b| b.len()), Some(4));
    assert_eq!(mbuf.data().len(), 24);
    drop(mbuf);
    assert_eq!(pool.in_use(), 0, "drop returns the buffer");

    // Exhaustion is a None, not a crash; everything comes back.
    let all: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(all.len(), TEST_POOL_MBUFS as usize);
    assert!(pool.alloc().is_none());
    drop(all);
    assert_eq!(pool.in_use(), 0);
}

fn check_port_trait(port: &mut EthPort) {
    assert_eq!(port.rx_queue_count(), 2);
    assert_eq!(port.tx_queue_count(), 2);
    assert!(port.take_rx(2).is_none(), "out of range");
    assert!(port.take_tx(5).is_none(), "out of range");
    let _ = port.mac();
}

fn check_round_trip(port: &mut EthPort, pool: &Mempool) {
    let mut rx = port.take_rx(1).expect("rx 1");
    let mut tx = port.take_tx(1).expect("tx 1");
    assert!(port.take_rx(1).is_none(), "taken once");
    assert!(port.take_tx(1).is_none(), "taken once");
    let stats_before = port.stats();

    // From a non-EAL thread, registered as an lcore, as the dispatcher and workers do.
    let handle = std::thread::spawn(move || {
        rx.on_thread_start();
        tx.on_thread_start();
        let mut pkts = Vec::with_capacity(BURST);
        for i in 0..BURST {
            let mut m = tx.alloc().expect("alloc");
            m.set_len(60).unwrap();
            m.data_mut().fill(i as u8);
            pkts.push(m);
        }
        let sent = tx.tx_burst(&mut pkts);
        assert_eq!(sent, BURST);
        assert!(pkts.is_empty(), "sent packets leave the vector");
        let mut received = Vec::with_capacity(BURST);
        let mut tries = 0;
        while received.len() < BURST && tries < 1000 {
            rx.rx_burst(&mut received, BURST);
            tries += 1;
        }
        assert_eq!(received.len(), BURST);
        for (i, m) in received.iter().enumerate() {
            assert_eq!(m.data(), &[i as u8; 60][..], "payload {i} intact");
        }
        assert_eq!(rx.rx_burst(&mut received, BURST), 0, "nothing more");
        let lcore = current_lcore();
        (lcore, received.len())
    });
    let (lcore, count) = handle.join().expect("io thread");
    assert!(lcore.is_some(), "thread registered as an lcore");
    assert_eq!(count, BURST);
    let stats = port.stats();
    assert_eq!(stats.tx_packets - stats_before.tx_packets, BURST as u64);
    assert_eq!(stats.rx_packets - stats_before.rx_packets, BURST as u64);
    assert_eq!(stats.tx_bytes - stats_before.tx_bytes, (BURST * 60) as u64);
    assert_eq!(stats.rx_bytes - stats_before.rx_bytes, (BURST * 60) as u64);
    assert_eq!(pool.in_use(), 0, "received buffers freed on drop");
}
