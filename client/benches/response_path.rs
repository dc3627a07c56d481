//! The client's per-response path: parse the frame (Ethernet/IPv4/UDP + 12-byte Perséphone
//! response, with the client's default checks), match its id in the in-flight table, record latency and
//! slowdown in the HDR histograms. Target: ≤ 50 ns per response.
//!
//! Each iteration re-registers `BATCH` outstanding requests (setup, not timed), then feeds their
//! responses (timed, caches warm as in a steady run); criterion reports the time per response
//! (throughput in elements). `part_*` time the parse and the histogram recording alone.
//! Also timed: the send-side bookkeeping (`track`: take a slot, build the id).
//!
//! Run: `cargo bench -p psp-client --bench response_path`.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use psp_client::engine::ResponseSink;
use psp_net::wire::{self, Endpoint, MacAddr, RequestRepr};
use psp_workload::Workload;

/// Responses per timed batch.
const BATCH: usize = 1024;
/// In-flight table size of the bench (2^20 slots, the size a 1 Mrps run gets).
const INDEX_BITS: u32 = 20;

fn endpoints() -> (Endpoint, Endpoint) {
    let client = Endpoint::new(
        MacAddr([2, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(10, 0, 0, 2),
        40000,
    );
    let server = Endpoint::new(
        MacAddr([2, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(10, 0, 0, 1),
        6789,
    );
    (client, server)
}

/// A server's response frame for request `req_id` of wire type `req_type`.
fn response_frame(req_id: u32, req_type: u32) -> [u8; 64] {
    let (client, server) = endpoints();
    let mut frame = [0u8; 64];
    let request = RequestRepr {
        req_id,
        req_type,
        req_size: 4,
        run_ns: 1000,
    };
    wire::build_request(&mut frame, &request, &client, &server).expect("64 B hold a request");
    wire::build_response_in_place(&mut frame);
    frame
}

fn bench(c: &mut Criterion) {
    let workload = Workload::from_yaml_str(
        "bench",
        "- {mean_ns: [1000, 100000], ratios: [.5, .5], rtype: [SHORT, LONG], duration: 1}",
    )
    .expect("bench workload");
    let (client, _) = endpoints();
    let sink = RefCell::new(ResponseSink::for_bench(&workload, INDEX_BITS, client));
    let now_ns = Cell::new(0u64);

    let mut group = c.benchmark_group("client_response_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("parse_match_record", |b| {
        b.iter_batched_ref(
            || {
                let mut sink = sink.borrow_mut();
                (0..BATCH)
                    .map(|i| {
                        now_ns.set(now_ns.get() + 1_000);
                        let ty = (i % 2) as u16;
                        let id = sink.track(0, ty, now_ns.get());
                        response_frame(id, u32::from(ty) + 1)
                    })
                    .collect::<Vec<_>>()
            },
            |frames| {
                let mut sink = sink.borrow_mut();
                let received_at = now_ns.get() + 25_000;
                for frame in frames.iter() {
                    sink.on_frame(black_box(&frame[..60]), received_at);
                }
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("track_send_side", |b| {
        let mut sink = sink.borrow_mut();
        b.iter(|| {
            for i in 0..BATCH {
                black_box(sink.track(0, (i % 2) as u16, i as u64));
            }
        });
    });
    // Breakdown of the path's parts.
    let frames: Vec<[u8; 64]> = (0..BATCH as u32)
        .map(|i| response_frame(i, 1 + i % 2))
        .collect();
    group.bench_function("part_parse", |b| {
        b.iter(|| {
            for frame in &frames {
                black_box(wire::parse_response(black_box(&frame[..60]), &client).is_ok());
            }
        });
    });
    let no_checksum = wire::ParseOptions {
        verify_ip_checksum: false,
        ..wire::ParseOptions::STRICT
    };
    group.bench_function("part_parse_no_ip_checksum", |b| {
        b.iter(|| {
            for frame in &frames {
                black_box(
                    wire::parse_response_with(black_box(&frame[..60]), &client, &no_checksum)
                        .is_ok(),
                );
            }
        });
    });
    group.bench_function("part_record_runstats", |b| {
        let mut stats = psp_workload::RunStats::new(&workload.classes);
        b.iter(|| {
            for i in 0..BATCH {
                stats.record(i % 2, black_box(25_000 + i as u64), 1000.0);
            }
        });
    });
    group.finish();
    let sink = sink.borrow();
    assert!(
        sink.recorded() > 0 && sink.counters().unknown_id == 0,
        "{:?}",
        sink.counters()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
