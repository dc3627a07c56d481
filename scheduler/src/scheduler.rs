//! The [`Scheduler`] state machine: type table, queues, idle set and the policy.
//!
//! TEMPORARY skeleton: only c-FCFS is implemented; the other policies are being written.

use std::collections::VecDeque;

use crate::{
    Completed, CompletionError, ConfigError, Dispatch, Nanos, PlanUpdate, Policy, RejectReason,
    Rejected, RequestTypeSpec, SchedulerConfig, Token, TypeIndex, WorkerId, MAX_TYPES, MAX_WORKERS,
};

/// Counters kept by the scheduler (cheap to read at any time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerCounters {
    /// Accepted arrivals.
    pub accepted: u64,
    /// Refused arrivals (queue full).
    pub rejected: u64,
    /// Dispatch decisions.
    pub dispatched: u64,
    /// Completions.
    pub completed: u64,
}

#[derive(Copy, Clone, Debug)]
struct Running {
    token: Token,
    ty: TypeIndex,
    dispatched_ns: Nanos,
}

/// The sans-IO scheduler. See the crate docs for the driving loop.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    queue: VecDeque<(Token, TypeIndex, Nanos)>,
    running: Vec<Option<Running>>,
    idle: u128,
    counters: SchedulerCounters,
}

impl Scheduler {
    /// Builds a scheduler; validates the configuration.
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(ConfigError::Workers(config.workers));
        }
        if config.types.len() > MAX_TYPES {
            return Err(ConfigError::TooManyTypes(config.types.len()));
        }
        if !matches!(config.policy, Policy::Cfcfs) {
            return Err(ConfigError::Policy {
                policy: config.policy.name(),
                why: "not implemented yet".into(),
            });
        }
        let idle = if config.workers == 128 {
            u128::MAX
        } else {
            (1u128 << config.workers) - 1
        };
        Ok(Self {
            queue: VecDeque::with_capacity(config.queue_capacity),
            running: vec![None; config.workers],
            idle,
            counters: SchedulerCounters::default(),
            config,
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.config.workers
    }

    /// The registered types, indexed by [`TypeIndex`].
    pub fn types(&self) -> &[RequestTypeSpec] {
        &self.config.types
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    /// Maps a wire type id to its class; unregistered ids are [`TypeIndex::UNKNOWN`].
    pub fn classify(&self, wire_type: u32) -> TypeIndex {
        self.config
            .types
            .iter()
            .position(|t| t.wire_id == wire_type)
            .map_or(TypeIndex::UNKNOWN, |i| TypeIndex(i as u16))
    }

    /// A request arrives. `Err` hands the token back (counted drop).
    pub fn on_arrival(
        &mut self,
        now_ns: Nanos,
        ty: TypeIndex,
        token: Token,
    ) -> Result<(), Rejected> {
        if self.queue.len() >= self.config.queue_capacity {
            self.counters.rejected += 1;
            return Err(Rejected {
                token,
                reason: RejectReason::QueueFull,
            });
        }
        self.queue.push_back((token, ty, now_ns));
        self.counters.accepted += 1;
        Ok(())
    }

    /// The next decision, if any worker can take a request now. Call until `None`.
    pub fn next_dispatch(&mut self, now_ns: Nanos) -> Option<Dispatch> {
        if self.idle == 0 {
            return None;
        }
        let (token, ty, _) = self.queue.pop_front()?;
        let w = self.idle.trailing_zeros() as usize;
        self.idle &= !(1u128 << w);
        self.running[w] = Some(Running {
            token,
            ty,
            dispatched_ns: now_ns,
        });
        self.counters.dispatched += 1;
        Some(Dispatch {
            worker: WorkerId(w as u16),
            token,
            ty,
            quantum_ns: None,
        })
    }

    /// `worker` finished its request.
    pub fn on_completion(
        &mut self,
        now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<Completed, CompletionError> {
        let slot = self
            .running
            .get_mut(worker.index())
            .ok_or(CompletionError::NoSuchWorker(worker))?;
        let r = slot.take().ok_or(CompletionError::WorkerIdle(worker))?;
        self.idle |= 1u128 << worker.index();
        self.counters.completed += 1;
        Ok(Completed {
            token: r.token,
            ty: r.ty,
            service_ns: now_ns.saturating_sub(r.dispatched_ns),
        })
    }

    /// `ts` only: `worker`'s quantum expired before its request finished; the request goes back
    /// to the tail of its queue (keeping its arrival time) and the worker is idle again.
    pub fn on_preempted(
        &mut self,
        _now_ns: Nanos,
        worker: WorkerId,
    ) -> Result<(), CompletionError> {
        Err(CompletionError::WorkerIdle(worker))
    }

    /// The next applied reservation change (DARC), oldest first.
    pub fn poll_plan_update(&mut self) -> Option<PlanUpdate> {
        None
    }

    /// The current DARC plan, if the policy has one and it has been computed.
    pub fn plan(&self) -> Option<&crate::ReservationPlan> {
        None
    }

    /// Requests queued for `ty` (UNKNOWN included).
    pub fn queue_len(&self, ty: TypeIndex) -> usize {
        self.queue.iter().filter(|q| q.1 == ty).count()
    }

    /// Requests queued in all queues.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether `worker` is idle.
    pub fn is_idle(&self, worker: WorkerId) -> bool {
        worker.index() < self.config.workers && self.idle & (1u128 << worker.index()) != 0
    }

    /// Counters.
    pub fn counters(&self) -> &SchedulerCounters {
        &self.counters
    }
}
