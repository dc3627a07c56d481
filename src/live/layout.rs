//! Which CPU runs the client, the dispatcher and each worker of a `psp live` run.
//!
//! Rules, in order:
//! - `--cores LIST` given: every entry must be a CPU this process may use, with no repeats.
//!   With at least `workers + 2` entries the layout is dedicated (client, dispatcher, workers,
//!   in list order); with fewer it is an error, unless `--share-cores` allows a shared layout.
//! - No list: with at least `workers + 3` allowed CPUs, the lowest one (where interrupts and
//!   kernel threads usually land) is left to the OS and the next `workers + 2` are used; with
//!   exactly `workers + 2`, all of them (warned: no core left to the OS); with fewer, a shared
//!   layout (a 2-core machine).
//! - A **shared** layout time-shares cores: the dispatcher and the client on the first CPU, the
//!   workers round-robin over the others (or the first one if it is all there is). Every thread
//!   then idles by yielding, never by spinning.
//!
//! Pure function of its inputs; tested below.

use std::fmt;

/// Where each thread of a live run goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The client's (one) thread.
    pub client_cpu: usize,
    /// The server's dispatcher.
    pub dispatcher_cpu: usize,
    /// One per worker.
    pub worker_cpus: Vec<usize>,
    /// Threads share cores: idle by yielding.
    pub shared: bool,
    /// Allowed CPUs that run none of our threads.
    pub free_cpus: Vec<usize>,
}

/// A core list that cannot host the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A listed CPU this process may not use.
    #[error("--cores: cpu {cpu} is not available to this process (allowed: {allowed})")]
    NotAllowed {
        /// The CPU.
        cpu: usize,
        /// The allowed CPUs, listed.
        allowed: String,
    },
    /// A CPU listed twice.
    #[error("--cores: cpu {0} is listed twice")]
    Repeated(usize),
    /// Too few CPUs for a dedicated layout.
    #[error(
        "--cores {list}: {given} core(s) for 1 client + 1 dispatcher + {workers} worker(s) \
         ({needed} needed); list more cores, or add --share-cores to time-share them"
    )]
    TooFew {
        /// The list as given.
        list: String,
        /// Its length.
        given: usize,
        /// Workers asked for.
        workers: usize,
        /// Cores a dedicated layout needs.
        needed: usize,
    },
    /// Nothing to run on.
    #[error("no CPU to run on (the core list is empty and the allowed set unknown)")]
    Empty,
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client cpu {}, dispatcher cpu {}, workers on cpus [{}]{}, free for the OS: [{}]",
            self.client_cpu,
            self.dispatcher_cpu,
            list(&self.worker_cpus),
            if self.shared {
                " (shared cores, idle threads yield)"
            } else {
                " (dedicated cores, threads spin)"
            },
            list(&self.free_cpus)
        )
    }
}

/// The layout of `workers` workers on `cores` (or, without a list, on `allowed`).
pub fn plan_layout(
    workers: usize,
    cores: Option<&[usize]>,
    allowed: &[usize],
    share_cores: bool,
) -> Result<Layout, LayoutError> {
    let needed = workers + 2;
    let chosen: Vec<usize> = match cores {
        Some(cores) => {
            for (i, &cpu) in cores.iter().enumerate() {
                if !allowed.is_empty() && !allowed.contains(&cpu) {
                    return Err(LayoutError::NotAllowed {
                        cpu,
                        allowed: list(allowed),
                    });
                }
                if cores[..i].contains(&cpu) {
                    return Err(LayoutError::Repeated(cpu));
                }
            }
            if cores.len() < needed && !share_cores {
                return Err(LayoutError::TooFew {
                    list: list(cores),
                    given: cores.len(),
                    workers,
                    needed,
                });
            }
            cores.to_vec()
        }
        None if allowed.len() > needed => allowed[1..=needed].to_vec(),
        None => allowed.to_vec(),
    };
    if chosen.is_empty() {
        return Err(LayoutError::Empty);
    }
    let layout = if chosen.len() >= needed {
        Layout {
            client_cpu: chosen[0],
            dispatcher_cpu: chosen[1],
            worker_cpus: chosen[2..needed].to_vec(),
            shared: false,
            free_cpus: Vec::new(),
        }
    } else {
        let others = if chosen.len() > 1 {
            &chosen[1..]
        } else {
            &chosen[..]
        };
        Layout {
            client_cpu: chosen[0],
            dispatcher_cpu: chosen[0],
            worker_cpus: (0..workers).map(|w| others[w % others.len()]).collect(),
            shared: true,
            free_cpus: Vec::new(),
        }
    };
    let used = |cpu: &usize| {
        *cpu == layout.client_cpu
            || *cpu == layout.dispatcher_cpu
            || layout.worker_cpus.contains(cpu)
    };
    let free_cpus = allowed.iter().copied().filter(|c| !used(c)).collect();
    Ok(Layout {
        free_cpus,
        ..layout
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_cores_leave_the_first_to_the_os() {
        let allowed: Vec<usize> = (0..16).collect();
        let layout = plan_layout(12, None, &allowed, false).unwrap();
        assert_eq!(layout.client_cpu, 1);
        assert_eq!(layout.dispatcher_cpu, 2);
        assert_eq!(layout.worker_cpus, (3..15).collect::<Vec<_>>());
        assert!(!layout.shared);
        assert_eq!(layout.free_cpus, vec![0, 15]);
        // Exactly enough: all used, none free.
        let layout = plan_layout(14, None, &allowed, false).unwrap();
        assert_eq!(layout.free_cpus, Vec::<usize>::new());
        assert!(!layout.shared);
    }

    #[test]
    fn two_cores_share_with_the_worker_alone() {
        let layout = plan_layout(1, None, &[0, 1], false).unwrap();
        assert!(layout.shared);
        assert_eq!((layout.client_cpu, layout.dispatcher_cpu), (0, 0));
        assert_eq!(layout.worker_cpus, vec![1]);
        let layout = plan_layout(3, None, &[0, 1], false).unwrap();
        assert_eq!(layout.worker_cpus, vec![1, 1, 1]);
        let layout = plan_layout(2, None, &[5], false).unwrap();
        assert_eq!(layout.worker_cpus, vec![5, 5]);
    }

    #[test]
    fn explicit_lists_are_checked() {
        let allowed: Vec<usize> = (0..8).collect();
        let layout = plan_layout(2, Some(&[7, 6, 5, 4]), &allowed, false).unwrap();
        assert_eq!(
            (
                layout.client_cpu,
                layout.dispatcher_cpu,
                layout.worker_cpus.clone()
            ),
            (7, 6, vec![5, 4])
        );
        assert_eq!(layout.free_cpus, vec![0, 1, 2, 3]);
        let e = plan_layout(3, Some(&[0, 1]), &allowed, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cores 0,1: 2 core(s) for 1 client + 1 dispatcher + 3 worker(s) (5 needed); \
             list more cores, or add --share-cores to time-share them"
        );
        assert!(
            plan_layout(3, Some(&[0, 1]), &allowed, true)
                .unwrap()
                .shared
        );
        assert_eq!(
            plan_layout(1, Some(&[0, 99, 1]), &allowed, false).unwrap_err(),
            LayoutError::NotAllowed {
                cpu: 99,
                allowed: "0,1,2,3,4,5,6,7".into()
            }
        );
        assert_eq!(
            plan_layout(1, Some(&[1, 2, 1]), &allowed, false).unwrap_err(),
            LayoutError::Repeated(1)
        );
        assert_eq!(
            plan_layout(1, Some(&[]), &allowed, true).unwrap_err(),
            LayoutError::Empty
        );
    }
}
