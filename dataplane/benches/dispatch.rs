//! The dispatcher's per-request cost, composed from the same public pieces its loop uses:
//! wire parse (`parse_request_with`, strict checks incl. IPv4 checksum) + classify
//! (`Scheduler::classify`) + park in the pending slab + `on_arrival` + `next_dispatch` +
//! job-ring push. To keep the cycle going, each request is then popped from the job ring and
//! completed (`on_completion`): that part is included in the figures, so they are an upper
//! bound of the dispatch path (target ≤ 100 ns per request).
//!
//! Requests go through in bursts of 32 (one clock read per burst, as in the dispatcher):
//! `time` is per burst, `thrpt` counts requests. Figures are the bench thread's **CPU time**
//! (`support/thread_cpu.rs`), so a busy shared machine inflates them far less than wall time.
//!
//! Also: `handoff`, one job-sized item pushed and popped on the LRPC ring (same thread).
//!
//! Run: `cargo bench -p psp-dataplane --bench dispatch -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "support/thread_cpu.rs"]
mod thread_cpu;
use psp_dataplane::port::memory::{pair, MemPortConfig};
use psp_dataplane::port::pool::PoolBuf;
use psp_dataplane::port::{PacketBuf, Port, TxQueue};
use psp_dataplane::ring;
use psp_dataplane::server::{Clock, PendingSlab};
use psp_dataplane::wire::{
    build_request, parse_request_with, Endpoint, MacAddr, ParseOptions, RequestRepr, RequestView,
    REQUEST_FRAME_LEN,
};
use psp_scheduler::{Policy, Registry, RequestTypeSpec, Scheduler, SchedulerConfig};
use thread_cpu::ThreadCpuTime;

/// Requests per burst: the server's default RX burst.
const BURST: usize = 32;
/// Workers: the paper's 14 application workers (docs/design.md §1.9).
const WORKERS: usize = 14;

/// What the dispatcher parks and hands to a worker (same shape as the server's job).
struct Job {
    buf: PoolBuf,
    request: RequestView,
    arrival_ns: u64,
    dispatched_ns: u64,
}

/// The server's and the client's addresses in every benchmarked frame.
fn endpoints() -> (Endpoint, Endpoint) {
    let server = Endpoint::new(
        MacAddr([2, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(10, 0, 0, 1),
        6789,
    );
    let client = Endpoint::new(
        MacAddr([2, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(10, 0, 0, 2),
        40_000,
    );
    (server, client)
}

fn scheduler(policy: Policy) -> Scheduler {
    let types = vec![
        RequestTypeSpec::new("SHORT", 1)
            .with_mean_ns(1_000)
            .with_ratio(0.5)
            .with_deadline_ns(10_000),
        RequestTypeSpec::new("LONG", 2)
            .with_mean_ns(100_000)
            .with_ratio(0.5)
            .with_deadline_ns(1_000_000),
    ];
    Scheduler::new(SchedulerConfig::new(WORKERS, types, policy)).expect("valid scheduler")
}

fn dispatch_path(c: &mut Criterion<ThreadCpuTime>) {
    let (server, client) = endpoints();
    let (mut side, _peer) = pair(&MemPortConfig::default());
    let mut tx = side.take_tx(0).expect("tx queue");
    let mut group = c.benchmark_group("dispatch/per_request");
    group.throughput(Throughput::Elements(BURST as u64));
    // Every policy the live server runs, except those that start in a profiling bootstrap
    // (dynamic DARC: its figure is the scheduler bench's, after warm-up).
    for entry in Registry::builtin().entries().iter().filter(|e| e.live) {
        let name = entry.name;
        let mut sched = scheduler((entry.default)());
        if sched.in_bootstrap() {
            continue;
        }
        let mut slab: PendingSlab<Job> = PendingSlab::new(4096);
        let (mut job_tx, mut job_rx): (Vec<_>, Vec<_>) =
            (0..WORKERS).map(|_| ring::channel::<Job>(4)).unzip();
        let mut spare: Vec<PoolBuf> = (0..BURST as u32)
            .map(|i| {
                let mut buf = tx.alloc().expect("buffer");
                buf.set_len(REQUEST_FRAME_LEN).expect("fits");
                let request = RequestRepr {
                    req_id: i,
                    req_type: 1 + i % 2,
                    req_size: 4,
                    run_ns: 0,
                };
                build_request(buf.data_mut(), &request, &client, &server).expect("build");
                buf
            })
            .collect();
        let mut returned: Vec<PoolBuf> = Vec::with_capacity(BURST);
        let clock = Clock::start();
        let options = ParseOptions::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                let now_ns = clock.now_ns();
                for buf in spare.drain(..) {
                    let request =
                        parse_request_with(buf.data(), &server, &options).expect("valid request");
                    let ty = sched.classify(request.req_type);
                    let job = Job {
                        buf,
                        request,
                        arrival_ns: now_ns,
                        dispatched_ns: 0,
                    };
                    let Ok(token) = slab.insert(job) else {
                        panic!("slab full")
                    };
                    if sched.on_arrival(now_ns, ty, token).is_err() {
                        panic!("queue full");
                    }
                    while let Some(d) = sched.next_dispatch(now_ns) {
                        let mut job = slab.take(d.token).expect("parked");
                        job.dispatched_ns = now_ns;
                        let w = d.worker.index();
                        if job_tx[w].push(job).is_err() {
                            panic!("job ring full");
                        }
                        // The worker side, folded in: take the job back, complete it.
                        if let Some(job) = job_rx[w].pop() {
                            black_box((job.request.req_id, job.arrival_ns, job.dispatched_ns));
                            let _ = sched.on_completion(now_ns, d.worker);
                            returned.push(job.buf);
                        }
                    }
                }
                std::mem::swap(&mut spare, &mut returned);
            })
        });
    }
    group.finish();
}

/// The pieces alone, to see where the per-request time goes.
fn components(c: &mut Criterion<ThreadCpuTime>) {
    let (server, client) = endpoints();
    let mut frame = [0u8; REQUEST_FRAME_LEN];
    let request = RequestRepr {
        req_id: 7,
        req_type: 1,
        req_size: 4,
        run_ns: 0,
    };
    build_request(&mut frame, &request, &client, &server).expect("build");
    let strict = ParseOptions::default();
    c.bench_function("dispatch/parse_request_strict", |b| {
        b.iter(|| parse_request_with(black_box(&frame), &server, &strict).map(|r| r.req_id))
    });
    let lax = ParseOptions {
        verify_ip_checksum: false,
        ..ParseOptions::default()
    };
    c.bench_function("dispatch/parse_request_no_ip_checksum", |b| {
        b.iter(|| parse_request_with(black_box(&frame), &server, &lax).map(|r| r.req_id))
    });
    let mut sched = scheduler(Policy::Cfcfs);
    let mut token = 0u64;
    c.bench_function(
        "dispatch/scheduler_arrival_dispatch_completion_cfcfs",
        |b| {
            b.iter(|| {
                token += 1;
                let ty = sched.classify(black_box(1));
                let _ = sched.on_arrival(token, ty, psp_scheduler::Token(token));
                let d = sched.next_dispatch(token).expect("idle worker");
                sched.on_completion(token, d.worker).map(|c| c.token)
            })
        },
    );
    let mut slab: PendingSlab<[u64; 12]> = PendingSlab::new(4096);
    c.bench_function("dispatch/slab_insert_take_96B", |b| {
        b.iter(|| {
            let Ok(t) = slab.insert(black_box([1; 12])) else {
                panic!("slab full")
            };
            slab.take(t)
        })
    });
}

fn handoff(c: &mut Criterion<ThreadCpuTime>) {
    let (mut side, _peer) = pair(&MemPortConfig::default());
    let mut tx = side.take_tx(0).expect("tx queue");
    let (mut job_tx, mut job_rx) = ring::channel::<Job>(4);
    let mut item = Some(Job {
        buf: tx.alloc().expect("buffer"),
        request: RequestView {
            req_id: 0,
            req_type: 1,
            req_size: 4,
            run_ns: 0,
            src: Endpoint::new(MacAddr([0; 6]), Ipv4Addr::LOCALHOST, 1),
            payload_len: 16,
        },
        arrival_ns: 0,
        dispatched_ns: 0,
    });
    c.bench_function("dispatch/ring_handoff_job", |b| {
        b.iter(|| {
            if let Some(job) = item.take() {
                if job_tx.push(job).is_err() {
                    panic!("ring full");
                }
            }
            item = job_rx.pop();
            black_box(&item);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = dispatch_path, components, handoff
}
criterion_main!(benches);
