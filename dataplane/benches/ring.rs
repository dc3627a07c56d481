//! Ring handoff: the hand-written LRPC ring (`psp_dataplane::ring`) against `rtrb`.
//!
//! - `same_thread`: push one item then pop it (pure per-item cost, no sharing), measured in the
//!   thread's CPU time (`support/thread_cpu.rs`).
//! - `cross_thread_stream`: a producer thread streams items through a 64-slot ring while the
//!   measuring thread pops them; time per item.
//! - `ping_pong`: one item goes to an echo thread and comes back on a second ring (round trip,
//!   what a dispatch + completion costs in ring traffic).
//!
//! Run: `cargo bench -p psp-dataplane --bench ring -- --warm-up-time 1 --measurement-time 2`.
//! The cross-thread figures are wall time: on a machine with fewer than two free cores they
//! measure the OS scheduler, not the ring.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/thread_cpu.rs"]
mod thread_cpu;
use psp_dataplane::ring;
use thread_cpu::ThreadCpuTime;

/// Ring depth for the cross-thread benches (small, so wrap-around and full rings happen).
const BENCH_RING_SLOTS: usize = 64;

/// Item carried in the benches: a 16-byte message like the original's `lrpc_msg`.
type Msg = (u64, u64);

fn same_thread(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("ring/same_thread_push_pop");
    let (mut tx, mut rx) = ring::channel::<Msg>(BENCH_RING_SLOTS);
    group.bench_function("lrpc", |b| {
        b.iter(|| {
            let _ = tx.push(black_box((1, 2)));
            black_box(rx.pop())
        })
    });
    let (mut ptx, mut prx) = rtrb::RingBuffer::<Msg>::new(BENCH_RING_SLOTS);
    group.bench_function("rtrb", |b| {
        b.iter(|| {
            let _ = ptx.push(black_box((1, 2)));
            black_box(prx.pop().ok())
        })
    });
    group.finish();
}

/// Streams `items` through a ring built by `make`, producer on a spawned thread.
fn stream<S, R>(
    items: u64,
    make: impl Fn() -> (S, R),
    mut push: impl FnMut(&mut S, Msg) -> bool + Send + 'static,
    mut pop: impl FnMut(&mut R) -> Option<Msg>,
) -> Duration
where
    S: Send + 'static,
{
    let (mut tx, mut rx) = make();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while i < items {
            if push(&mut tx, (i, i)) {
                i += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut got = 0;
    while got < items {
        if let Some(m) = pop(&mut rx) {
            black_box(m);
            got += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    let elapsed = start.elapsed();
    producer.join().expect("producer");
    elapsed
}

fn cross_thread_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/cross_thread_stream");
    group.bench_function("lrpc", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                || ring::channel::<Msg>(BENCH_RING_SLOTS),
                |tx: &mut ring::Sender<Msg>, m| tx.push(m).is_ok(),
                |rx: &mut ring::Receiver<Msg>| rx.pop(),
            )
        })
    });
    group.bench_function("rtrb", |b| {
        b.iter_custom(|iters| {
            stream(
                iters,
                || rtrb::RingBuffer::<Msg>::new(BENCH_RING_SLOTS),
                |tx: &mut rtrb::Producer<Msg>, m| tx.push(m).is_ok(),
                |rx: &mut rtrb::Consumer<Msg>| rx.pop().ok(),
            )
        })
    });
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/ping_pong_round_trip");
    group.bench_function("lrpc", |b| {
        b.iter_custom(|iters| {
            let (mut to_echo, mut echo_in) = ring::channel::<Msg>(BENCH_RING_SLOTS);
            let (mut echo_out, mut back) = ring::channel::<Msg>(BENCH_RING_SLOTS);
            let echo = std::thread::spawn(move || {
                let mut seen = 0;
                while seen < iters {
                    if let Some(m) = echo_in.pop() {
                        let _ = echo_out.push(m);
                        seen += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                let _ = to_echo.push((i, i));
                while back.pop().is_none() {
                    std::hint::spin_loop();
                }
            }
            let elapsed = start.elapsed();
            echo.join().expect("echo");
            elapsed
        })
    });
    group.bench_function("rtrb", |b| {
        b.iter_custom(|iters| {
            let (mut to_echo, mut echo_in) = rtrb::RingBuffer::<Msg>::new(BENCH_RING_SLOTS);
            let (mut echo_out, mut back) = rtrb::RingBuffer::<Msg>::new(BENCH_RING_SLOTS);
            let echo = std::thread::spawn(move || {
                let mut seen = 0;
                while seen < iters {
                    if let Ok(m) = echo_in.pop() {
                        let _ = echo_out.push(m);
                        seen += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            });
            let start = Instant::now();
            for i in 0..iters {
                let _ = to_echo.push((i, i));
                while back.pop().is_err() {
                    std::hint::spin_loop();
                }
            }
            let elapsed = start.elapsed();
            echo.join().expect("echo");
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = same_thread_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = same_thread
}
criterion_group!(cross_thread_benches, cross_thread_stream, ping_pong);
criterion_main!(same_thread_benches, cross_thread_benches);
