//! Per-request cost of each policy: `classify`, `on_arrival`, `next_dispatch` (until `None`)
//! and one `on_completion`, at 14 workers with a DISP2-like mix (SHORT 1 µs / LONG 100 µs,
//! 50/50, wire types drawn from a fixed pseudo-random sequence).
//!
//! The harness is a tiny discrete-event loop in virtual time, shaped like the live
//! dispatcher's loop (poll completions, receive, dispatch): each iteration completes every
//! request due before the next arrival, takes that arrival (fixed inter-arrival time, 80 %
//! load), then dispatches until `None`. Each request runs its type's fixed service time from
//! its dispatch (so DARC profiles the real means). Running
//! requests sit in one FIFO per type: with fixed service times that is completion order, so
//! the harness itself costs O(1) per event. `ts` quanta are ignored (requests run to
//! completion): the figure is the scheduler's dispatch path. DARC (dynamic) is warmed past its
//! bootstrap before measuring, so the figure is the reserved-core path (plan updates, rare and
//! allocating, are included as they occur).
//!
//! Two groups: `per_request` (criterion's wall time) and `per_request_cpu` (the measuring
//! thread's on-CPU time from `/proc/thread-self/schedstat`, which is what to read on a shared,
//! overloaded machine: wall time there includes the time the thread waited for a core).
//!
//! Run: `cargo bench -p psp-scheduler --bench policies -- --quick`
//! (or `-- --warm-up-time 1 --measurement-time 2`). Target: ≤ 50 ns per request for `darc`.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use psp_scheduler::{
    DarcParams, Nanos, Policy, Registry, RequestTypeSpec, Scheduler, SchedulerConfig, Token,
    WorkerId,
};

/// The paper's 14 application workers (docs/design.md §7.1).
const WORKERS: usize = 14;
/// Wire type ids of the mix (the original's SHORT = 1, LONG = 2).
const SHORT_WIRE: u32 = 1;
const LONG_WIRE: u32 = 2;
/// Length of the pre-drawn wire-type sequence (a power of two, indexed with a mask).
const SEQUENCE_LEN: usize = 4096;
/// Service times of the mix (DISP2, docs/design.md §6.3).
const SERVICE_NS: [Nanos; 2] = [1_000, 100_000];
/// Time between arrivals: 50.5 µs mean over 14 workers at 80 % load.
const INTERARRIVAL_NS: Nanos = 4_509;
/// Iterations run before measuring DARC: past the default 50 000-sample bootstrap.
const DARC_WARMUP_REQUESTS: usize = 60_000;

fn disp2_types() -> Vec<RequestTypeSpec> {
    vec![
        RequestTypeSpec::new("SHORT", SHORT_WIRE)
            .with_mean_ns(1_000)
            .with_ratio(0.5),
        RequestTypeSpec::new("LONG", LONG_WIRE)
            .with_mean_ns(100_000)
            .with_ratio(0.5),
    ]
}

/// 50/50 SHORT/LONG from a xorshift generator (deterministic, no rand dependency needed).
fn wire_sequence() -> Vec<u32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..SEQUENCE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 1 == 0 {
                SHORT_WIRE
            } else {
                LONG_WIRE
            }
        })
        .collect()
}

/// The driver state of the steady-state loop.
struct Harness {
    scheduler: Scheduler,
    wires: Vec<u32>,
    /// Per type: (finish time, worker) of running requests, in finish order.
    running: [VecDeque<(Nanos, WorkerId)>; 2],
    now: Nanos,
    next: u64,
}

impl Harness {
    fn new(policy: Policy) -> Self {
        let scheduler = Scheduler::new(SchedulerConfig::new(WORKERS, disp2_types(), policy))
            .expect("valid bench config");
        Self {
            scheduler,
            wires: wire_sequence(),
            running: [
                VecDeque::with_capacity(WORKERS),
                VecDeque::with_capacity(WORKERS),
            ],
            now: 0,
            next: 0,
        }
    }

    #[inline]
    fn dispatch_all(&mut self, now: Nanos) {
        while let Some(d) = self.scheduler.next_dispatch(now) {
            let k = usize::from(d.ty.0 != 0);
            self.running[k].push_back((now + SERVICE_NS[k], d.worker));
        }
    }

    /// One request's worth of scheduler work: the completions due before the next arrival,
    /// the arrival, then dispatching.
    #[inline]
    fn step(&mut self) {
        let arrival_ns = self.now + INTERARRIVAL_NS;
        loop {
            let due =
                |q: &VecDeque<(Nanos, WorkerId)>| q.front().filter(|f| f.0 <= arrival_ns).copied();
            let (k, (finish_ns, worker)) = match (due(&self.running[0]), due(&self.running[1])) {
                (Some(a), Some(b)) if b.0 < a.0 => (1, b),
                (Some(a), _) => (0, a),
                (None, Some(b)) => (1, b),
                (None, None) => break,
            };
            self.running[k].pop_front();
            let _ = black_box(self.scheduler.on_completion(finish_ns, worker));
        }
        self.now = arrival_ns;
        let wire = self.wires[self.next as usize & (SEQUENCE_LEN - 1)];
        let ty = self.scheduler.classify(black_box(wire));
        let _ = self.scheduler.on_arrival(arrival_ns, ty, Token(self.next));
        self.next += 1;
        self.dispatch_all(arrival_ns);
    }
}

/// Every policy of the registry with its default parameters, plus DARC planned once from
/// the configured means (`darc-oracle`). A policy that starts in a bootstrap phase (dynamic
/// DARC) is warmed past it before measuring.
fn policies() -> Vec<(&'static str, Policy)> {
    let mut out = Vec::new();
    for entry in Registry::builtin().entries() {
        out.push((entry.name, (entry.default)()));
        if entry.name == "darc" {
            let oracle = DarcParams {
                dynamic: false,
                ..DarcParams::default()
            };
            out.push(("darc-oracle", Policy::Darc(oracle)));
        }
    }
    out
}

/// On-CPU time of the calling thread (ns), from the first field of
/// `/proc/thread-self/schedstat` (Linux; the kernel accounts the running slice when read).
/// Falls back to 0 where that file does not exist, which makes every figure 0 — obviously so.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Criterion measurement: thread CPU time in ns, formatted like wall time.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn per_request(c: &mut Criterion) {
    run_group(c, "per_request");
}

fn per_request_cpu(c: &mut Criterion<ThreadCpuTime>) {
    run_group(c, "per_request_cpu");
}

fn run_group<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for (name, policy) in policies() {
        let mut h = Harness::new(policy);
        let warmup = if h.scheduler.in_bootstrap() {
            DARC_WARMUP_REQUESTS
        } else {
            0
        };
        for _ in 0..warmup {
            h.step();
        }
        assert!(!h.scheduler.in_bootstrap(), "{name}: still bootstrapping");
        group.bench_function(name, |b| b.iter(|| h.step()));
        let counters = h.scheduler.counters();
        if counters.dispatched <= warmup as u64 {
            continue; // filtered out on the command line
        }
        eprintln!(
            "{group_name}/{name}: accepted {} rejected {} dispatched {} plan updates {}",
            counters.accepted, counters.rejected, counters.dispatched, counters.plan_updates
        );
    }
    group.finish();
}

criterion_group!(wall, per_request);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = per_request_cpu
}
criterion_main!(wall, cpu);
