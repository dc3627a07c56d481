//! The dispatcher driven one step at a time on times the test chooses, with the test playing the
//! client (over the in-memory port) and the workers (the job and completion rings): no worker
//! threads, so every decision is deterministic.

use std::sync::Arc;

use super::*;
use crate::port::pool::PoolBuf;
use crate::server::dispatcher::Dispatcher;
use crate::server::preempt::PreemptFlags;
use crate::server::worker::{Done, Job, Notice};

type Steps = Dispatcher<MemRxQueue, MemTxQueue, WireTypeClassifier>;
/// The workers' ends of the rings: jobs to pop, notices to push.
type WorkerEnds = (
    Vec<ring::Receiver<Job<PoolBuf>>>,
    Vec<ring::Sender<Notice<PoolBuf>>>,
);

/// A dispatcher on side B of a fresh pair, its client on side A, and the workers' ends of the
/// rings.
fn stepped(policy: Policy, workers: usize) -> (Steps, Client, WorkerEnds) {
    stepped_with(options(policy, workers))
}

/// As [`stepped`], with the server options given.
fn stepped_with(options: ServerOptions) -> (Steps, Client, WorkerEnds) {
    let (dispatcher, client, ends, _flags) = stepped_with_flags(options);
    (dispatcher, client, ends)
}

/// As [`stepped_with`], also returning the workers' preempt flags (the test plays the
/// workers: it publishes their slice starts and reads their flags).
fn stepped_with_flags(options: ServerOptions) -> (Steps, Client, WorkerEnds, Arc<PreemptFlags>) {
    let workers = options.scheduler.workers;
    let queues = workers as u16 + 1;
    let (mut a, mut b): (MemPort, MemPort) = pair(&MemPortConfig::with_queues(queues));
    let client = Client::new(&mut a, queues, MacAddr(b.mac()));
    let scheduler = Scheduler::new(options.scheduler.clone()).expect("scheduler");
    let (mut job_tx, mut job_rx, mut done_tx, mut done_rx) = (vec![], vec![], vec![], vec![]);
    for _ in 0..workers {
        let (jobs_in, jobs_out) = ring::channel(JOB_RING_SLOTS);
        let (done_in, done_out) = ring::channel(JOB_RING_SLOTS);
        job_tx.push(jobs_in);
        job_rx.push(jobs_out);
        done_tx.push(done_in);
        done_rx.push(done_out);
    }
    let local = Endpoint::new(MacAddr(b.mac()), SERVER_IP, SERVER_PORT);
    let flags = Arc::new(PreemptFlags::new(workers));
    let dispatcher = Dispatcher::new(
        &options,
        scheduler,
        local,
        Clock::start(),
        vec![b.take_rx(0).expect("rx 0")],
        b.take_tx(0).expect("tx 0"),
        WireTypeClassifier,
        job_tx,
        done_rx,
        Arc::clone(&flags),
    );
    (dispatcher, client, (job_rx, done_tx), flags)
}

fn done(job: &Job<PoolBuf>) -> Notice<PoolBuf> {
    Notice::Done(Done {
        arrival_ns: job.arrival_ns,
        service_ns: 500,
    })
}

/// c-FCFS over two workers: arrivals go to the lowest idle worker, the third waits for the
/// first completion, and the drain ends once nothing is queued or in flight.
#[test]
fn steps_dispatch_and_drain_deterministically() {
    let (mut d, mut client, (mut jobs, mut completions)) = stepped(Policy::Cfcfs, 2);
    client.send(&[(0, 1), (1, 1), (2, 2)]);
    assert_eq!(d.step_receive(1_000, false), Some(true));
    assert!(d.step_dispatch(1_000, true));
    let first = jobs[0].pop().expect("request 0 on worker 0");
    let second = jobs[1].pop().expect("request 1 on worker 1");
    assert_eq!((first.request.req_id, second.request.req_id), (0, 1));
    assert!(
        jobs[0].pop().is_none() && jobs[1].pop().is_none(),
        "request 2 waits"
    );
    // Nothing new: an idle step, with work pending (the loop must not sleep).
    assert_eq!(d.step_receive(2_000, false), Some(false));
    assert!(!d.step_dispatch(2_000, false));
    // Worker 1 finishes: request 2 goes to it at once.
    assert!(completions[1].push(done(&second)).is_ok());
    assert_eq!(d.step_receive(3_000, false), Some(false));
    assert!(d.step_dispatch(3_000, false));
    let third = jobs[1].pop().expect("request 2 on worker 1");
    assert_eq!(third.request.req_id, 2);
    // Shutdown: the drain starts, then ends when the last two complete.
    assert_eq!(d.step_receive(4_000, true), Some(false));
    assert!(!d.step_dispatch(4_000, false));
    assert!(completions[0].push(done(&first)).is_ok());
    assert!(completions[1].push(done(&third)).is_ok());
    assert_eq!(d.step_receive(5_000, true), Some(false));
    assert!(d.step_dispatch(5_000, false));
    assert_eq!(
        d.step_receive(6_000, true),
        None,
        "nothing left: the drain is over"
    );
    let (report, _, _) = d.finish();
    assert_eq!(
        (report.rx_packets, report.dispatched, report.completed),
        (3, 3, 3)
    );
    assert_eq!(report.abandoned_at_shutdown, 0);
    assert_eq!(
        report.per_type[0].completed + report.per_type[1].completed,
        3
    );
    // The queue wait of request 2 is stamped against the dispatch time given to the step.
    assert_eq!(report.stages.queue_wait[1].count(), 1);
}

/// A drain whose requests never complete ends at its deadline, counting what is still queued
/// as abandoned (and nothing twice).
#[test]
fn the_drain_ends_at_its_deadline_on_virtual_time() {
    let (mut d, mut client, (mut jobs, _completions)) = stepped(Policy::Cfcfs, 1);
    client.send(&[(0, 1), (1, 1), (2, 1)]);
    assert_eq!(d.step_receive(0, false), Some(true));
    assert!(d.step_dispatch(0, true));
    assert!(jobs[0].pop().is_some(), "request 0 runs");
    assert_eq!(d.step_receive(10, true), Some(false), "the drain starts");
    d.step_dispatch(10, false);
    let deadline_ns = 10 + DEFAULT_DRAIN_TIMEOUT.as_nanos() as u64;
    assert_eq!(d.step_receive(deadline_ns - 1, true), Some(false));
    d.step_dispatch(deadline_ns - 1, false);
    assert_eq!(
        d.step_receive(deadline_ns, true),
        None,
        "the deadline ends it"
    );
    let (report, _, _) = d.finish();
    assert_eq!(report.abandoned_at_shutdown, 2, "two never left the queue");
    assert_eq!(report.in_flight_lost, 1, "the running one never completed");
}

/// A policy switch posted on the control mailbox (c-FCFS → DARC with a pinned plan) is applied
/// at the next dispatch step: the running request stays on its worker, the queued ones move to
/// DARC's queues and each is dispatched once, by the new policy's rules.
#[test]
fn a_policy_switch_is_applied_between_steps_and_loses_nothing() {
    use crate::server::telemetry::mailbox::DispatcherCommand;
    use crate::server::telemetry::writer::Hub;
    use psp_scheduler::DarcParams;

    let (mut d, mut client, (mut jobs, mut completions)) = stepped(Policy::Cfcfs, 2);
    let hub = Arc::new(Hub::default());
    d.with_control(Arc::clone(&hub));
    // Requests 0 and 1 run; 2 (LONG) and 3, 4 (SHORT) wait.
    client.send(&[(0, 1), (1, 1), (2, 2), (3, 1), (4, 1)]);
    assert_eq!(d.step_receive(1_000, false), Some(true));
    assert!(d.step_dispatch(1_000, true));
    let running = [jobs[0].pop().expect("0"), jobs[1].pop().expect("1")];
    // DARC, planned once: SHORT reserved worker 0, LONG worker 1.
    let darc = Policy::Darc(DarcParams {
        dynamic: false,
        fixed_allocation: Some(vec![1, 1]),
        ..DarcParams::default()
    });
    let poster = Arc::clone(&hub);
    let answer = std::thread::spawn(move || {
        poster.mailbox.post(
            DispatcherCommand::SwitchPolicy(darc),
            std::time::Duration::from_secs(30),
        )
    });
    while !hub.mailbox.pending() {
        std::thread::yield_now();
    }
    assert_eq!(d.step_receive(2_000, false), Some(false));
    d.step_dispatch(2_000, false);
    let answer = answer.join().expect("poster").expect("switch applied");
    assert!(
        answer.contains("\"from\":\"cfcfs\",\"policy\":\"darc\",\"queued\":3,\"dropped\":0"),
        "{answer}"
    );
    // Both workers finish: LONG 2 goes to worker 1 (SHORT may steal it when idle).
    let mut seen = vec![running[0].request.req_id, running[1].request.req_id];
    for (w, job) in running.iter().enumerate() {
        assert!(completions[w].push(done(job)).is_ok());
    }
    for step in 0..6u64 {
        let now = 3_000 + step * 1_000;
        assert!(d.step_receive(now, false).is_some());
        d.step_dispatch(now, false);
        for (w, ring) in jobs.iter_mut().enumerate() {
            if let Some(job) = ring.pop() {
                assert!(
                    job.request.req_type == 1 || w == 1,
                    "DARC's reservation: LONG never on SHORT's worker 0"
                );
                seen.push(job.request.req_id);
                assert!(completions[w].push(done(&job)).is_ok());
            }
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3, 4], "each request dispatched once");
    assert_eq!(d.step_receive(20_000, true), Some(false));
    d.step_dispatch(20_000, false);
    assert_eq!(d.step_receive(21_000, true), None);
    let (report, _, _) = d.finish();
    assert_eq!((report.dispatched, report.completed), (5, 5));
    assert_eq!((report.policy_switches, report.policy_at_stop), (1, "darc"));
    assert_eq!(report.queue_full_drops, 0);
}

/// A shadow SJF beside a live c-FCFS: it is asked at each live decision and disagrees when a
/// SHORT request waits behind a LONG one; `toggle` then makes SJF live, which serves the SHORT
/// requests first; every request is dispatched once.
#[test]
fn a_shadow_policy_is_compared_then_toggled_live() {
    use crate::server::telemetry::mailbox::DispatcherCommand;
    use crate::server::telemetry::writer::Hub;

    let (mut d, mut client, (mut jobs, mut completions)) = stepped(Policy::Cfcfs, 2);
    let types = options(Policy::Sjf, 2).scheduler;
    let shadow = Scheduler::new(types).expect("shadow");
    d.with_shadow(
        crate::server::dispatcher::shadow::ShadowFeed::spawn(shadow).expect("shadow thread"),
    );
    let hub = Arc::new(Hub::default());
    d.with_control(Arc::clone(&hub));
    // LONG 0 and 1 take both workers; LONG 2 then SHORT 3 wait.
    client.send(&[(0, 2), (1, 2), (2, 2), (3, 1)]);
    assert_eq!(d.step_receive(1_000, false), Some(true));
    d.step_dispatch(1_000, true);
    let first = jobs[0].pop().expect("0");
    let _second = jobs[1].pop().expect("1");
    // Worker 0 finishes: c-FCFS starts LONG 2, SJF would have started SHORT 3.
    assert!(completions[0].push(done(&first)).is_ok());
    assert_eq!(d.step_receive(2_000, false), Some(false));
    d.step_dispatch(2_000, false);
    let third = jobs[0].pop().expect("LONG 2 on worker 0");
    assert_eq!(third.request.req_id, 2);
    // Toggle: SJF is live from now on, c-FCFS the shadow.
    let poster = Arc::clone(&hub);
    let answer = std::thread::spawn(move || {
        poster.mailbox.post(
            DispatcherCommand::Toggle,
            std::time::Duration::from_secs(30),
        )
    });
    while !hub.mailbox.pending() {
        std::thread::yield_now();
    }
    assert_eq!(d.step_receive(3_000, false), Some(false));
    d.step_dispatch(3_000, false);
    let answer = answer.join().expect("poster").expect("toggled");
    assert!(
        answer.contains("\"from\":\"cfcfs\",\"policy\":\"sjf\""),
        "{answer}"
    );
    // New arrivals: LONG 4 then SHORT 5; worker 0 frees: SJF starts SHORT 3 first.
    client.send(&[(4, 2), (5, 1)]);
    assert!(completions[0].push(done(&third)).is_ok());
    assert_eq!(d.step_receive(4_000, false), Some(true));
    d.step_dispatch(4_000, true);
    let next = jobs[0].pop().expect("a SHORT on worker 0");
    assert_eq!(next.request.req_id, 3, "SJF: the waiting SHORT first");
    assert_eq!(d.step_receive(30_000, true), Some(false));
    d.step_dispatch(30_000, false);
    let deadline = 30_000 + DEFAULT_DRAIN_TIMEOUT.as_nanos() as u64;
    assert_eq!(d.step_receive(deadline, true), None);
    let (report, _, _) = d.finish();
    assert_eq!((report.policy_switches, report.policy_at_stop), (1, "sjf"));
    let shadow = report.shadow.expect("a shadow ran");
    // After the toggle the shadow (now c-FCFS) starts over: it saw SJF's decision on SHORT 3,
    // where c-FCFS would also have picked the oldest waiting request (3, before 4 and 5).
    assert_eq!(shadow.policy, "cfcfs");
    assert_eq!(
        (shadow.decisions, shadow.agreed, shadow.out_of_sync),
        (1, 1, 0)
    );
}

/// `worker_queue_depth: 2` on virtual time: each worker's ring holds its running job and the
/// next one; a completion lets the dispatcher refill the freed slot in the same step, and every
/// request is answered once (sent = dispatched = completed).
#[test]
fn depth_2_keeps_the_next_job_in_each_workers_ring() {
    let mut opts = options(Policy::Cfcfs, 2);
    opts.scheduler.worker_queue_depth = 2;
    let (mut d, mut client, (mut jobs, mut completions)) = stepped_with(opts);
    client.send(&[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(d.step_receive(1_000, false), Some(true));
    assert!(d.step_dispatch(1_000, true));
    // Idle workers first (0 → w0, 1 → w1), then the second slots (2 → w0, 3 → w1); 4 waits.
    let ids = |ring: &mut ring::Receiver<Job<PoolBuf>>| {
        std::iter::from_fn(|| ring.pop())
            .map(|job| job.request.req_id)
            .collect::<Vec<_>>()
    };
    let w0: Vec<Job<PoolBuf>> = std::iter::from_fn(|| jobs[0].pop()).collect();
    let w1 = ids(&mut jobs[1]);
    assert_eq!(
        w0.iter().map(|j| j.request.req_id).collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(w1, vec![1, 3]);
    // Worker 0 finishes request 0: request 4 joins its ring behind request 2 at once.
    assert!(completions[0].push(done(&w0[0])).is_ok());
    assert_eq!(d.step_receive(2_000, false), Some(false));
    assert!(d.step_dispatch(2_000, false));
    assert_eq!(ids(&mut jobs[0]), vec![4]);
    assert!(jobs[1].pop().is_none());
    // The rest complete, in each worker's order; the drain then ends.
    for (w, _) in [(0, 2), (1, 1), (1, 3), (0, 4)] {
        assert!(completions[w]
            .push(Notice::Done(Done {
                arrival_ns: 1_000,
                service_ns: 500,
            }))
            .is_ok());
        d.step_dispatch(3_000, false);
    }
    assert_eq!(d.step_receive(4_000, true), Some(false));
    assert!(!d.step_dispatch(4_000, false));
    assert_eq!(d.step_receive(5_000, true), None, "nothing left");
    let (report, _, _) = d.finish();
    assert_eq!(
        (report.rx_packets, report.dispatched, report.completed),
        (5, 5, 5)
    );
    assert_eq!(
        (
            report.scheduler.dispatched,
            report.scheduler.dispatched_behind
        ),
        (5, 3)
    );
    assert_eq!((report.in_flight_lost, report.spurious_completions), (0, 0));
}

/// `darc-ts` on 2 workers (SHORT reserves worker 0, LONG worker 1): a LONG lent SHORT's worker
/// is flagged at its quantum while a SHORT waits, and finishes before it sees the flag; the
/// SHORT then dispatched to that worker runs to completion: the stale flag is cleared first.
#[test]
fn darc_ts_clears_a_stale_preempt_flag_before_a_run_to_completion_job() {
    let policy = Policy::DarcTs(psp_scheduler::DarcTsParams {
        darc: psp_scheduler::DarcParams {
            dynamic: false,
            ..psp_scheduler::DarcParams::default()
        },
        ..psp_scheduler::DarcTsParams::default()
    });
    let quantum_ns = policy.time_sharing().expect("preemptive").quantum_ns;
    let (mut d, mut client, (mut jobs, mut completions), flags) =
        stepped_with_flags(options(policy, 2));
    client.send(&[(0, 2), (1, 2)]);
    assert_eq!(d.step_receive(1_000, false), Some(true));
    assert!(d.step_dispatch(1_000, true));
    let own = jobs[1].pop().expect("LONG 0 on its own worker");
    let lent = jobs[0].pop().expect("LONG 1 on SHORT's idle worker");
    assert_eq!((own.request.req_id, lent.request.req_id), (0, 1));
    flags.started(0, 1_000);
    flags.started(1, 1_000);
    client.send(&[(2, 1)]);
    assert_eq!(d.step_receive(2_000, false), Some(true));
    d.step_dispatch(2_000, true);
    assert!(jobs[0].pop().is_none(), "the SHORT waits for its worker");
    // Past the quantum with a request waiting: the lent worker's flag is set, not the other's.
    let late_ns = 1_000 + quantum_ns + 1;
    d.step_dispatch(late_ns, false);
    assert!(flags.flag(0).load(std::sync::atomic::Ordering::Acquire));
    assert!(!flags.flag(1).load(std::sync::atomic::Ordering::Acquire));
    // The LONG finished just before it would have seen the flag.
    assert!(completions[0].push(done(&lent)).is_ok());
    d.step_dispatch(late_ns + 100, false);
    let short = jobs[0].pop().expect("the SHORT on its reserved worker");
    assert_eq!(short.request.req_id, 2);
    assert!(
        !flags.flag(0).load(std::sync::atomic::Ordering::Acquire),
        "a run-to-completion job must not find the flag set"
    );
}
