//! The mailbox between the control socket's threads and the dispatcher: a command that only the
//! dispatcher can carry out (switch policy, new DARC parameters, pin a plan) is posted here by
//! a control thread, which then waits for the dispatcher's answer.
//!
//! The dispatcher looks at one atomic flag per loop iteration ([`Mailbox::pending`]: a relaxed
//! load, nothing else on its hot path); only when a command is there does it take the lock, at
//! a dispatch boundary. One command at a time: a second poster while one waits gets an error.
//!
//! Tested below (post and answer across threads, a busy mailbox, a dispatcher that never
//! answers) and end to end in `tests/control_udp.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use psp_scheduler::Policy;

/// How long a control thread waits for the dispatcher to answer a command (the dispatcher takes
/// it within one loop iteration; a server that is stopping may never).
pub const CONTROL_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the dispatcher is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DispatcherCommand {
    /// Switch the scheduler to this policy (DARC parameters and a pinned plan travel in it).
    SwitchPolicy(Policy),
    /// Swap the live and the shadow policy.
    Toggle,
}

/// The dispatcher's answer: a JSON object's fields after `"ok":true` (e.g. `"policy":"darc"`),
/// or an error message that names the field.
pub(crate) type Answer = Result<String, String>;

type Posted = (DispatcherCommand, Sender<Answer>);

/// One command slot and its flag.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    pending: AtomicBool,
    slot: Mutex<Option<Posted>>,
}

impl Mailbox {
    /// Control side: posts `command` and waits up to `timeout` for the dispatcher's answer.
    pub(crate) fn post(&self, command: DispatcherCommand, timeout: Duration) -> Answer {
        let (tx, rx) = mpsc::channel();
        {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_some() {
                return Err("command: another command is being applied; try again".into());
            }
            *slot = Some((command, tx));
            self.pending.store(true, Ordering::Release);
        }
        match rx.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(_) => {
                // Withdraw it if the dispatcher has not taken it; if it has, it still applies.
                let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.take().is_some() {
                    self.pending.store(false, Ordering::Release);
                    Err(format!(
                        "command: the dispatcher did not take it within {} s (is the server \
                         stopping?); not applied",
                        timeout.as_secs_f64()
                    ))
                } else {
                    Err("command: taken by the dispatcher but not answered in time".into())
                }
            }
        }
    }

    /// Dispatcher side: whether a command waits (one relaxed load).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Dispatcher side: takes the waiting command and where its answer goes.
    pub(crate) fn take(&self) -> Option<(DispatcherCommand, Sender<Answer>)> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        self.pending.store(false, Ordering::Release);
        slot.take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_posted_command_is_answered_by_the_taker() {
        let mailbox = Arc::new(Mailbox::default());
        assert!(!mailbox.pending());
        let taker = Arc::clone(&mailbox);
        let dispatcher = std::thread::spawn(move || loop {
            if taker.pending() {
                let (command, reply) = taker.take().expect("posted");
                assert_eq!(command, DispatcherCommand::SwitchPolicy(Policy::Cfcfs));
                reply
                    .send(Ok("\"policy\":\"cfcfs\"".into()))
                    .expect("waiting");
                return;
            }
            std::thread::yield_now();
        });
        let answer = mailbox.post(
            DispatcherCommand::SwitchPolicy(Policy::Cfcfs),
            Duration::from_secs(10),
        );
        dispatcher.join().expect("dispatcher");
        assert_eq!(answer, Ok("\"policy\":\"cfcfs\"".into()));
        assert!(!mailbox.pending());
    }

    #[test]
    fn an_unanswered_command_is_withdrawn_and_a_busy_mailbox_refuses() {
        let mailbox = Mailbox::default();
        let e = mailbox
            .post(
                DispatcherCommand::SwitchPolicy(Policy::Sjf),
                Duration::from_millis(10),
            )
            .unwrap_err();
        assert!(e.contains("not applied"), "{e}");
        assert!(!mailbox.pending() && mailbox.take().is_none());
        // A command left in the slot makes the next poster wait its turn.
        let (tx, _rx) = mpsc::channel();
        *mailbox.slot.lock().unwrap() = Some((DispatcherCommand::SwitchPolicy(Policy::Edf), tx));
        let e = mailbox
            .post(
                DispatcherCommand::SwitchPolicy(Policy::Sjf),
                Duration::from_millis(10),
            )
            .unwrap_err();
        assert!(e.contains("another command"), "{e}");
    }
}
