//! Bounded fuzzing end to end: 100,000 mutated datagrams (random lengths, truncated headers,
//! special and unknown type ids, id collisions, oversize, bit flips; seeded) sent to
//! `psp-app --udp` on 127.0.0.1, then every one of them reconciled exactly from the server's
//! summary and the kernel's socket counters:
//!
//! - sent by the test = server rx + left in the RX queue at stop + kernel drops (`rx missed`) +
//!   oversize datagrams (`rx errors`);
//! - server rx = answered + dropped (by reason) + abandoned + ARP (the summary's `balanced`);
//! - answered = responses the test received + the test socket's own kernel drops + server TX
//!   errors.
//!
//! Paced in bursts so that most datagrams reach the parser; bounded in count and time.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{spawn_udp_server, ScratchDir, ServerAccounting};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Datagrams sent.
const DATAGRAMS: u64 = 100_000;
/// Datagrams per burst, and the pause between bursts (≈ 40 k datagrams/s).
const BURST: u64 = 200;
const BURST_PAUSE: Duration = Duration::from_millis(5);
/// Time for the server to start and to exit after SIGINT.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which no more responses are expected.
const QUIET: Duration = Duration::from_millis(500);
/// Bytes of a valid request payload (id, type, size, run_ns).
const REQUEST_LEN: usize = 16;
/// Largest datagram payload the server's buffers hold (2048 − 42 headers − 1).
const LARGEST_SERVED: usize = 2005;

/// One mutated datagram: a valid request, then one mutation picked at random.
fn mutated(rng: &mut StdRng, id: u32) -> Vec<u8> {
    let req_type: u32 = match rng.random_range(0..6) {
        0 => 0,                          // UNKNOWN
        1 => rng.random_range(3..1_000), // unregistered
        2 => u32::MAX,
        _ => rng.random_range(1..=2), // SHORT or LONG
    };
    // Ids collide on purpose: a few hundred distinct values.
    let id = if rng.random_bool(0.2) { id % 300 } else { id };
    let mut payload: Vec<u8> = [id, req_type, 4, 0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    match rng.random_range(0..8) {
        0 => payload.truncate(rng.random_range(0..REQUEST_LEN)), // truncated header
        1 => {
            // bit flips
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..payload.len());
                payload[at] ^= 1 << rng.random_range(0..8);
            }
        }
        2 => payload.resize(rng.random_range(REQUEST_LEN..LARGEST_SERVED + 40), 0xa5), // long, some oversize
        3 => payload = (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),   // noise
        _ => {}                                                                        // valid
    }
    payload
}

/// The number after `key` on the summary's `port:` line.
fn port_stat(summary: &str, key: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with("port: "))
        .unwrap_or_else(|| panic!("no port line:\n{summary}"));
    let rest = &line[line.find(key).expect(key) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn hundred_thousand_mutated_datagrams_reconcile_exactly() {
    let dir = ScratchDir::new("fuzz-udp");
    let cfg = dir.file("fuzz.yml");
    std::fs::write(
        &cfg,
        "cpus: [0, 1]\n\
         net_workers:\n  - {ip: 127.0.0.1, port: 6789, dp: CFCFS}\n\
         network: {device_id: 0, mac: '02:00:00:00:00:01', eal_init: [--no-huge]}\n\
         requests:\n  - {type: SHORT, mean_ns: 1000, ratio: 0.5}\n  \
         - {type: LONG, mean_ns: 2000, ratio: 0.5}\n\
         workers: {number: 1, type: MB}\n\
         psp: {idle: yield, app: echo}\n",
    )
    .unwrap();
    let (mut server, addr) = spawn_udp_server("fuzz-server", &cfg, &[], &dir, PROCESS_TIMEOUT);

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let inode = psp_dataplane::port::udp::socket_inode(&socket).expect("socket inode");
    let received = Arc::new(AtomicU64::new(0));
    let last_response = Arc::new(std::sync::Mutex::new(Instant::now()));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let socket = socket.try_clone().unwrap();
        let (received, last_response, done) = (
            Arc::clone(&received),
            Arc::clone(&last_response),
            Arc::clone(&done),
        );
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !done.load(Ordering::Relaxed) {
                if socket.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                    *last_response.lock().unwrap() = Instant::now();
                }
            }
        })
    };

    let mut rng = StdRng::seed_from_u64(0x5eed_f022);
    let started = Instant::now();
    for id in 0..DATAGRAMS {
        let datagram = mutated(&mut rng, id as u32);
        socket.send_to(&datagram, &addr).expect("loopback send");
        if (id + 1) % BURST == 0 {
            std::thread::sleep(BURST_PAUSE);
        }
    }
    eprintln!(
        "sent {DATAGRAMS} datagrams in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let wait_until = Instant::now() + PROCESS_TIMEOUT;
    while last_response.lock().unwrap().elapsed() < QUIET && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("INT");
    let status = server.wait(PROCESS_TIMEOUT);
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(status.success(), "{status}\n{}", server.stderr_text());

    let summary = server.stdout_text();
    eprintln!("{summary}");
    let accounting = ServerAccounting::from_summary(&summary);
    assert!(
        accounting.rx > DATAGRAMS / 2,
        "most datagrams reached the server:\n{summary}"
    );
    assert!(
        accounting.dropped > 0 && accounting.answered > 0,
        "{summary}"
    );
    assert!(
        accounting.rx_errors > 0,
        "oversize datagrams were sent and counted:\n{summary}"
    );
    // Every datagram sent is counted by the server or the kernel.
    accounting.assert_all_sent_counted(DATAGRAMS);
    let answered = accounting.answered;
    let client_drops = psp_dataplane::port::udp::kernel_socket_drops(inode).unwrap_or(0);
    let tx_errors = port_stat(&summary, "tx errors ");
    assert_eq!(
        received.load(Ordering::Relaxed) + client_drops + tx_errors,
        answered,
        "every response sent reached the test or was counted (client socket drops \
         {client_drops}):\n{summary}"
    );
}
