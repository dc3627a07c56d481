//! Several client threads run as one client (issue #12: one thread offers about 3 Mrps; the
//! paper drove 14 workers from 6 machines).
//!
//! ## How it works
//! - Each thread opens its own port ([`ThreadedEngine::spawn`]: its own kernel UDP socket, so
//!   its own source port: the server answers each request to the address it came from, which
//!   routes every response to the thread that sent it — on a NIC the same holds with one flow
//!   rule per source port), or takes its share of one port's queues
//!   ([`ThreadedEngine::spawn_shared`]: DPDK over memif, where a response lands on the RX queue
//!   of the server worker that answered; request ids then carry the thread, and responses are
//!   forwarded to their owner, [`super::forward`]). Queues are taken on the thread that polls
//!   them and kept across the runs of a sweep.
//! - Each thread plays the whole workload at `rate / N` with its own seed ([`thread_seed`]): N
//!   independent Poisson streams at `λ/N` merge into one Poisson stream at `λ`, and every
//!   request draws its type independently, so the merged stream is the same process as one
//!   thread's at the total rate. (A workload with deterministic gaps is N interleaved streams.)
//! - A run goes in two steps: every thread plans (the dry pass that counts its requests), then
//!   all start from one [`RunStart`], so their results share one timeline.
//! - The results merge exactly ([`merge_results`]): counters, per-class outcomes and per-phase
//!   figures add up, histograms add bucket by bucket (as `psp merge` does), traces interleave in
//!   intended-send order. `-m` (most requests in flight) is split among the threads.
//! - While the threads run, the calling thread sums their [`Progress`] into the caller's and
//!   passes its `stop` on.
//!
//! ## Invariants
//! - Thread `i` of a run gets seed [`thread_seed`]`(seed, i)`, and thread 0 the run's seed
//!   itself: one thread is exactly the single-threaded client.
//! - Every thread's `sent = received + late + unanswered`, so the merged result's too.
//!
//! Tested below (seeds, the merge of counters and histograms), in `tests/engine.rs` (threads
//! over kernel UDP against an echo server; two threads sharing an in-memory port's RX queues
//! against a server that scatters its answers; the exact merge) and end to end over memif in
//! the root crate's `tests/client_server_memif.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use psp_net::port::Port;
use psp_net::wire::Endpoint;
use psp_workload::Workload;

use super::{
    validate, ClassCounts, ClientMachine, Engine, EngineConfig, EngineError, Forwarder,
    PhaseResult, Progress, RunResult, RunStart, ThreadTag, SEED_MIX,
};

/// How often the calling thread sums the threads' progress while they run.
const WATCH_PERIOD: Duration = Duration::from_millis(5);

/// The seed of thread `thread` of a client run with `seed`: `seed` itself for thread 0, a
/// SplitMix64 mix of both for the others (so two threads never draw the same stream).
pub fn thread_seed(seed: u64, thread: usize) -> u64 {
    if thread == 0 {
        return seed;
    }
    let mut z = seed.wrapping_add((thread as u64).wrapping_mul(SEED_MIX));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Each thread's configuration: its own source address and seed, its share of `-m`.
pub fn thread_config(
    config: &EngineConfig,
    thread: usize,
    threads: usize,
    local: Endpoint,
) -> EngineConfig {
    let mut c = config.clone();
    c.local = local;
    c.seed = thread_seed(config.seed, thread);
    c.max_concurrency = config
        .max_concurrency
        .map(|m| m.div_ceil(threads.max(1)).max(1));
    c
}

/// What the calling thread asks of a client thread.
enum Command {
    /// Plan a run (every thread's config is in the job; thread `i` takes `configs[i]`).
    Plan(Arc<Job>),
    /// Start the planned run with this time 0.
    Start(RunStart),
    /// Forget the planned run (another thread could not plan it).
    Abort,
}

/// One run, as handed to every thread.
struct Job {
    workload: Workload,
    /// Per-phase rates of each thread (the total's `1/N`).
    rates_rps: Vec<f64>,
    configs: Vec<EngineConfig>,
}

/// What a client thread answers.
enum Reply {
    /// Its port is open (its source address) or could not be.
    Opened(Result<Endpoint, String>),
    /// It planned the run (requests planned) or refused it.
    Planned(Result<u64, EngineError>),
    /// The run is over.
    Finished(Box<RunResult>),
}

/// One client thread, seen from the calling thread.
struct Handle {
    commands: Sender<Command>,
    replies: Receiver<Reply>,
    progress: Arc<Progress>,
    join: Option<JoinHandle<()>>,
}

/// N client threads that run as one client: [`ThreadedEngine::run`] has the same contract as
/// [`Engine::run`] and returns the merged result.
pub struct ThreadedEngine {
    threads: Vec<Handle>,
    locals: Vec<Endpoint>,
    /// Tag bits of the request ids when the threads share RX queues.
    tag_bits: Option<u32>,
    /// Tells the threads to stop forwarding (shared with [`Shared::abort`]).
    abort: Arc<AtomicBool>,
}

/// What a client thread knows of the others.
struct Shared {
    index: usize,
    threads: usize,
    /// Its links to the others, when RX queues are shared.
    forward: Option<Forwarder>,
    /// Runs finished, summed over threads (a thread's run is over for everyone once this
    /// reaches `runs × threads`).
    finished: Arc<AtomicU64>,
    /// Set when the engine goes away (or a thread died): stop forwarding and wind down.
    abort: Arc<AtomicBool>,
}

/// What a client thread sends with: its own port (kernel UDP: its own socket), or its share
/// of one device's queues (DPDK: RX queues shared with the other threads, so responses are
/// forwarded by id tag, [`super::forward`]).
pub enum ThreadPort<P: Port> {
    /// A port of its own, and the source address its requests carry.
    Own(P, Endpoint),
    /// A TX queue and some RX queues of a shared port, and the source address.
    Queues(P::Tx, Vec<P::Rx>, Endpoint),
}

impl ThreadedEngine {
    /// Starts `threads` threads; thread `i` opens its port with `open(i)` (returning the port and
    /// the source address its requests carry) and takes its queues. Fails with the first
    /// thread's error, naming the thread.
    pub fn spawn<P, F>(threads: usize, open: F) -> Result<Self, EngineError>
    where
        P: Port,
        F: Fn(usize) -> Result<(P, Endpoint), String> + Send + Sync + 'static,
    {
        Self::spawn_with(threads, None, move |i| {
            open(i).map(|(port, local)| ThreadPort::Own(port, local))
        })
    }

    /// Starts `threads` threads that share one port's RX queues: thread `i` gets its TX queue,
    /// RX queues and source address from `open(i)` (on its own thread), its request ids carry
    /// its index, and responses received by one thread for another are forwarded.
    pub fn spawn_shared<P, F>(threads: usize, open: F) -> Result<Self, EngineError>
    where
        P: Port,
        F: Fn(usize) -> Result<(P::Tx, Vec<P::Rx>, Endpoint), String> + Send + Sync + 'static,
    {
        let bits = usize::BITS - threads.max(2).saturating_sub(1).leading_zeros();
        if bits > crate::inflight::MAX_TAG_BITS {
            return Err(EngineError::Thread(format!(
                "{threads} threads sharing RX queues: at most {}",
                1u32 << crate::inflight::MAX_TAG_BITS
            )));
        }
        Self::spawn_with(threads, Some(bits), move |i| {
            open(i).map(|(tx, rxs, local)| ThreadPort::<P>::Queues(tx, rxs, local))
        })
    }

    fn spawn_with<P, F>(threads: usize, tag_bits: Option<u32>, open: F) -> Result<Self, EngineError>
    where
        P: Port,
        F: Fn(usize) -> Result<ThreadPort<P>, String> + Send + Sync + 'static,
    {
        let open = Arc::new(open);
        let threads = threads.max(1);
        let mut forwarders: Vec<Option<Forwarder>> = match tag_bits {
            Some(bits) => Forwarder::mesh(threads, bits)
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..threads).map(|_| None).collect(),
        };
        let finished = Arc::new(AtomicU64::new(0));
        let abort = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        let mut locals = Vec::with_capacity(threads);
        for (index, forward) in forwarders.iter_mut().enumerate() {
            let (command_tx, command_rx) = mpsc::channel();
            let (reply_tx, reply_rx) = mpsc::channel();
            let progress = Arc::new(Progress::default());
            let shared = Shared {
                index,
                threads,
                forward: forward.take(),
                finished: Arc::clone(&finished),
                abort: Arc::clone(&abort),
            };
            let (open, thread_progress) = (Arc::clone(&open), Arc::clone(&progress));
            let join = std::thread::Builder::new()
                .name(format!("psp-client-{index}"))
                .spawn(move || {
                    client_thread(shared, &*open, &command_rx, &reply_tx, &thread_progress)
                })
                .map_err(|e| EngineError::Thread(format!("starting thread {index}: {e}")))?;
            let handle = Handle {
                commands: command_tx,
                replies: reply_rx,
                progress,
                join: Some(join),
            };
            let opened = handle.replies.recv();
            handles.push(handle);
            match opened {
                Ok(Reply::Opened(Ok(local))) => locals.push(local),
                Ok(Reply::Opened(Err(e))) => {
                    return Err(EngineError::Thread(format!("thread {index}: {e}")))
                }
                _ => return Err(EngineError::Thread(format!("thread {index} died at start"))),
            }
        }
        Ok(Self {
            threads: handles,
            locals,
            tag_bits,
            abort,
        })
    }

    /// Threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// The source address of each thread.
    pub fn locals(&self) -> &[Endpoint] {
        &self.locals
    }

    /// Runs `workload` with one total rate per phase (rps) on every thread (each at `1/N` of
    /// it); blocks for the whole run and returns the merged result. `config.local` is ignored:
    /// each thread sends from its own address.
    pub fn run(
        &mut self,
        workload: &Workload,
        rates_rps: &[f64],
        config: &EngineConfig,
        progress: Option<&Progress>,
    ) -> Result<RunResult, EngineError> {
        validate(workload, rates_rps, config)?;
        let n = self.threads.len();
        let job = Arc::new(Job {
            workload: workload.clone(),
            rates_rps: rates_rps.iter().map(|r| r / n as f64).collect(),
            configs: (0..n)
                .map(|i| {
                    let mut c = thread_config(config, i, n, self.locals[i]);
                    c.thread_tag = self.tag_bits.map(|bits| ThreadTag {
                        thread: i as u32,
                        bits,
                    });
                    c
                })
                .collect(),
        });
        let planned = self.plan_all(&job)?;
        if let Some(p) = progress {
            p.planned.store(planned, Ordering::Relaxed);
        }
        let start = RunStart::now();
        for t in &self.threads {
            t.progress.stop.store(false, Ordering::Relaxed);
            t.commands
                .send(Command::Start(start))
                .map_err(|_| EngineError::Thread("a client thread died".into()))?;
        }
        let results = self.wait_all(progress)?;
        if let Some(p) = progress {
            p.done.store(true, Ordering::Relaxed);
        }
        merge_results(results, config.trace_limit)
    }

    /// Has every thread plan `job`; the total planned, or the first refusal (then every
    /// thread forgets the job).
    fn plan_all(&self, job: &Arc<Job>) -> Result<u64, EngineError> {
        for t in &self.threads {
            t.commands
                .send(Command::Plan(Arc::clone(job)))
                .map_err(|_| EngineError::Thread("a client thread died".into()))?;
        }
        let mut planned = 0;
        let mut refusal = None;
        for (i, t) in self.threads.iter().enumerate() {
            match t.replies.recv() {
                Ok(Reply::Planned(Ok(n))) => planned += n,
                Ok(Reply::Planned(Err(e))) => {
                    refusal.get_or_insert(e);
                }
                _ => {
                    refusal.get_or_insert(EngineError::Thread(format!("thread {i} died")));
                }
            }
        }
        match refusal {
            None => Ok(planned),
            Some(e) => {
                for t in &self.threads {
                    // A thread that died cannot take it; the error above says so.
                    let _ = t.commands.send(Command::Abort);
                }
                Err(e)
            }
        }
    }

    /// Waits for every thread's result, summing their progress into `progress` and passing
    /// its `stop` on meanwhile.
    fn wait_all(&self, progress: Option<&Progress>) -> Result<Vec<RunResult>, EngineError> {
        let mut results: Vec<Option<RunResult>> = self.threads.iter().map(|_| None).collect();
        while results.iter().any(Option::is_none) {
            for (i, t) in self.threads.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                match t.replies.try_recv() {
                    Ok(Reply::Finished(r)) => results[i] = Some(*r),
                    Ok(_) | Err(TryRecvError::Disconnected) => {
                        self.abort.store(true, Ordering::Release);
                        return Err(EngineError::Thread(format!("thread {i} died mid-run")));
                    }
                    Err(TryRecvError::Empty) => {}
                }
            }
            if let Some(p) = progress {
                self.sum_progress(p);
            }
            if results.iter().any(Option::is_none) {
                std::thread::sleep(WATCH_PERIOD);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Sums the threads' counts into `progress` and hands its `stop` to every thread.
    fn sum_progress(&self, progress: &Progress) {
        let sum = |f: fn(&Progress) -> u64| self.threads.iter().map(|t| f(&t.progress)).sum();
        progress
            .sent
            .store(sum(|p| p.sent.load(Ordering::Relaxed)), Ordering::Relaxed);
        progress.received.store(
            sum(|p| p.received.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let phase = self
            .threads
            .iter()
            .map(|t| t.progress.phase.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        progress.phase.store(phase, Ordering::Relaxed);
        if progress.stop.load(Ordering::Relaxed) {
            for t in &self.threads {
                t.progress.stop.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for ThreadedEngine {
    fn drop(&mut self) {
        // A thread still forwarding for one that died must not hold the join up.
        self.abort.store(true, Ordering::Release);
        for t in &mut self.threads {
            // Closing the command channel ends the thread's loop.
            let (closed, _) = mpsc::channel();
            t.commands = closed;
        }
        for t in &mut self.threads {
            if let Some(join) = t.join.take() {
                // A thread that panicked has said so on stderr; nothing is left to clean up.
                let _ = join.join();
            }
        }
    }
}

/// A client thread: opens its port (or takes its queues), then plans and runs what it is
/// asked until the calling thread goes away.
fn client_thread<P: Port>(
    shared: Shared,
    open: &dyn Fn(usize) -> Result<ThreadPort<P>, String>,
    commands: &Receiver<Command>,
    replies: &Sender<Reply>,
    progress: &Progress,
) {
    let index = shared.index;
    let opened = open(index).and_then(|port| match port {
        ThreadPort::Own(mut port, local) => {
            let engine = Engine::new(&mut port).map_err(|e| e.to_string())?;
            Ok((Some(port), engine, local))
        }
        ThreadPort::Queues(tx, rxs, local) => Ok((None, Engine::from_queues(tx, rxs), local)),
    });
    let (port, mut engine) = match opened {
        Ok((port, engine, local)) => {
            let _ = replies.send(Reply::Opened(Ok(local)));
            (port, engine)
        }
        Err(e) => {
            let _ = replies.send(Reply::Opened(Err(e)));
            return;
        }
    };
    let rx_missed = || port.as_ref().map_or(0, |p| p.stats().rx_missed);
    let mut planned: Option<(ClientMachine, Arc<Job>)> = None;
    let mut runs = 0u64;
    while let Ok(command) = commands.recv() {
        match command {
            Command::Plan(job) => {
                let machine = engine.prepare(&job.workload, &job.rates_rps, &job.configs[index]);
                let reply = machine.as_ref().map(ClientMachine::planned);
                let reply = reply.map_err(|e| EngineError::Thread(format!("thread {index}: {e}")));
                if let Ok(machine) = machine {
                    planned = Some((machine, job));
                }
                let _ = replies.send(Reply::Planned(reply));
            }
            Command::Start(start) => {
                let Some((machine, job)) = planned.take() else {
                    continue;
                };
                runs += 1;
                let config = &job.configs[index];
                let dropped_before = rx_missed();
                let forward = shared.forward.as_ref();
                let mut result = engine.drive(machine, start, config, Some(progress), forward);
                if port.is_some() {
                    result.counters.rx_dropped = rx_missed().saturating_sub(dropped_before);
                }
                shared.finished.fetch_add(1, Ordering::AcqRel);
                if let Some(forward) = forward {
                    // The others may still wait for responses that arrive on this thread's
                    // queues.
                    let all = runs * shared.threads as u64;
                    let done = || {
                        shared.finished.load(Ordering::Acquire) >= all
                            || shared.abort.load(Ordering::Acquire)
                    };
                    engine.forward_until(forward, config, start, &done);
                }
                let _ = replies.send(Reply::Finished(Box::new(result)));
            }
            Command::Abort => planned = None,
        }
    }
}

/// Merges the results of one run's threads (all started from one [`RunStart`]) into one, as if
/// one client had sent everything: counts add, histograms add, traces interleave by intended
/// send time and keep the first `trace_limit`.
pub fn merge_results(
    results: Vec<RunResult>,
    trace_limit: usize,
) -> Result<RunResult, EngineError> {
    let mut iter = results.into_iter();
    let Some(mut merged) = iter.next() else {
        return Err(EngineError::Thread("no thread ran".into()));
    };
    let merge_err =
        |e: psp_workload::stats::StatsError| EngineError::Thread(format!("merging: {e}"));
    let mut measured_from = (merged.measured_from_ns > 0).then_some(merged.measured_from_ns);
    for r in iter {
        merged.stats.merge(&r.stats).map_err(merge_err)?;
        for (m, s) in merged.phase_stats.iter_mut().zip(&r.phase_stats) {
            m.merge(s).map_err(merge_err)?;
        }
        merged
            .send_lag_ns
            .add(&r.send_lag_ns)
            .map_err(|e| EngineError::Thread(format!("merging send lags: {e:?}")))?;
        merged.counters.add(&r.counters);
        for (m, p) in merged.phases.iter_mut().zip(&r.phases) {
            m.add(p);
        }
        for (m, c) in merged.classes.iter_mut().zip(&r.classes) {
            m.add(c);
        }
        if r.measured_from_ns > 0 {
            measured_from =
                Some(measured_from.map_or(r.measured_from_ns, |m| m.min(r.measured_from_ns)));
        }
        merged.ended_ns = merged.ended_ns.max(r.ended_ns);
        merged.traces.extend(r.traces);
        merged.stopped_early |= r.stopped_early;
    }
    merged.measured_from_ns = measured_from.unwrap_or(0);
    merged.traces.sort_by_key(|t| t.intended_ns);
    if merged.traces.len() > trace_limit {
        merged.counters.untraced += (merged.traces.len() - trace_limit) as u64;
        merged.traces.truncate(trace_limit);
    }
    Ok(merged)
}

impl PhaseResult {
    /// Adds another thread's figures for the same phase: rates and counts add, the phase spans
    /// from the earliest start to the latest send and response.
    pub fn add(&mut self, other: &PhaseResult) {
        self.rate_rps += other.rate_rps;
        self.planned += other.planned;
        self.sent += other.sent;
        self.received += other.received;
        self.start_ns = self.start_ns.min(other.start_ns);
        self.last_send_ns = self.last_send_ns.max(other.last_send_ns);
        self.end_ns = self.end_ns.max(other.end_ns);
    }
}

impl ClassCounts {
    /// Adds another thread's outcomes for the same class.
    pub fn add(&mut self, other: &ClassCounts) {
        self.all.add(&other.all);
        self.measured.add(&other.measured);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Counters;

    #[test]
    fn thread_zero_keeps_the_seed_and_others_differ() {
        assert_eq!(thread_seed(7, 0), 7);
        let seeds: std::collections::HashSet<u64> = (0..64).map(|t| thread_seed(7, t)).collect();
        assert_eq!(seeds.len(), 64);
        assert_ne!(thread_seed(7, 1), thread_seed(8, 1));
    }

    #[test]
    fn concurrency_limit_is_split_and_never_zero() {
        let ep = Endpoint::new(psp_net::wire::MacAddr([0; 6]), [10, 0, 0, 2].into(), 1);
        let mut config = EngineConfig::new(ep, vec![ep]);
        config.max_concurrency = Some(10);
        assert_eq!(thread_config(&config, 1, 4, ep).max_concurrency, Some(3));
        config.max_concurrency = Some(1);
        assert_eq!(thread_config(&config, 3, 4, ep).max_concurrency, Some(1));
        config.max_concurrency = None;
        assert_eq!(thread_config(&config, 0, 4, ep).max_concurrency, None);
        assert_eq!(thread_config(&config, 0, 4, ep).seed, config.seed);
    }

    #[test]
    fn counters_add_field_by_field_and_reasons_by_name() {
        let a = Counters {
            planned: 10,
            sent: 9,
            received: 7,
            late: 1,
            unanswered: 1,
            malformed: 2,
            malformed_by_reason: vec![("bad_len".into(), 2)],
            ..Counters::default()
        };
        let b = Counters {
            planned: 5,
            sent: 5,
            received: 5,
            malformed: 3,
            malformed_by_reason: vec![("bad_len".into(), 1), ("arp".into(), 2)],
            ..Counters::default()
        };
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!((sum.planned, sum.sent, sum.received), (15, 14, 12));
        assert!(sum.balanced());
        assert_eq!(sum.malformed, 5);
        assert_eq!(
            sum.malformed_by_reason,
            vec![("bad_len".to_string(), 3), ("arp".to_string(), 2)]
        );
    }
}
