//! What a polling thread does when a poll finds nothing.
//!
//! `spin` burns the core (lowest latency, what the original does on dedicated cores); `yield`
//! gives the core away with `sched_yield` and, after [`YIELD_POLLS_BEFORE_SLEEP`] empty polls
//! in a row, sleeps [`IDLE_SLEEP`] per poll, so that idle servers on small shared machines
//! (CI, 2 cores) cost almost nothing. Any useful poll resets the count. A caller that still has
//! work outstanding (the dispatcher with requests queued or in flight) asks for
//! [`Idler::idle_no_sleep`]: it never sleeps then, so a completion is noticed at once.

use std::time::Duration;

/// Empty polls in a row, under `yield`, before the thread starts sleeping between polls.
/// At roughly 0.5–1 µs per `sched_yield` on an otherwise idle core this is about 10 ms of
/// idleness: a worker serving even 100 requests/s never sleeps (so sleeping never adds to a
/// measured latency), while a server left idle stops burning CPU within milliseconds.
pub const YIELD_POLLS_BEFORE_SLEEP: u32 = 1 << 14;

/// Sleep per empty poll once the thread is idle (bounds the wake-up latency of an idle server).
pub const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// Idle strategy of the dispatcher and worker threads.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum IdleStrategy {
    /// Busy-poll (`spin_loop` hint). For dedicated cores.
    #[default]
    Spin,
    /// `std::thread::yield_now` on an empty poll, then short sleeps after a long idle stretch.
    Yield,
}

impl IdleStrategy {
    /// The strategy's configuration name.
    pub fn name(self) -> &'static str {
        match self {
            IdleStrategy::Spin => "spin",
            IdleStrategy::Yield => "yield",
        }
    }

    /// Parses `spin` or `yield` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "spin" => Some(IdleStrategy::Spin),
            "yield" => Some(IdleStrategy::Yield),
            _ => None,
        }
    }
}

/// Per-thread idle state.
#[derive(Debug)]
pub(crate) struct Idler {
    strategy: IdleStrategy,
    empty_polls: u32,
}

impl Idler {
    pub(crate) fn new(strategy: IdleStrategy) -> Self {
        Self {
            strategy,
            empty_polls: 0,
        }
    }

    /// A poll did some work.
    #[inline]
    pub(crate) fn busy(&mut self) {
        self.empty_polls = 0;
    }

    /// A poll found nothing.
    #[inline]
    pub(crate) fn idle(&mut self) {
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => {
                if self.empty_polls < YIELD_POLLS_BEFORE_SLEEP {
                    self.empty_polls += 1;
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(IDLE_SLEEP);
                }
            }
        }
    }

    /// A poll found nothing but work is outstanding elsewhere: spin or yield, never sleep.
    #[inline]
    pub(crate) fn idle_no_sleep(&mut self) {
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [IdleStrategy::Spin, IdleStrategy::Yield] {
            assert_eq!(IdleStrategy::from_name(s.name()), Some(s));
        }
        assert_eq!(
            IdleStrategy::from_name(" YIELD "),
            Some(IdleStrategy::Yield)
        );
        assert_eq!(IdleStrategy::from_name("sleep"), None);
    }

    #[test]
    fn yield_backs_off_and_resets() {
        let mut idler = Idler::new(IdleStrategy::Yield);
        for _ in 0..YIELD_POLLS_BEFORE_SLEEP {
            idler.idle();
        }
        assert_eq!(idler.empty_polls, YIELD_POLLS_BEFORE_SLEEP);
        idler.busy();
        assert_eq!(idler.empty_polls, 0);
    }
}
