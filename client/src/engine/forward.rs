//! Client threads that share RX queues (DPDK over memif: the server answers each request on
//! the TX queue of the worker that ran it, so a response reaches whichever client RX queue
//! pairs with that worker, not the thread that sent the request).
//!
//! Each thread's request ids carry its index in their top bits ([`ThreadTag`],
//! [`crate::inflight::InFlightTable::with_tag`]). A thread polls its share of the RX queues;
//! a response whose tag names another thread goes, parsed (id, type, receive time on the
//! shared clock: 16 bytes), into that thread's bounded inbox; each thread drains its inbox
//! every poll. Nothing allocates on this path. A full inbox drops the response, counted in
//! [`super::Counters::forward_dropped`] (its request then ends never answered). After its own
//! run a thread keeps forwarding until every thread is done ([`forward_until`]).
//!
//! Tested in `tests/engine.rs` (two threads over one in-memory port whose responder answers on
//! either RX queue at random: every request answered once).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use psp_net::port::{PacketBuf, Port, RxQueue};
use psp_net::wire;

use super::{BurstTime, EngineConfig, Forwarded, RunStart, ThreadTag, RX_BURST};
use crate::inflight::tag_of;

/// Responses one thread's inbox holds (≈ 16 ms at 1 Mrps of responses arriving elsewhere).
pub const FORWARD_INBOX: usize = 1 << 14;
/// How long [`forward_until`] naps when a poll found nothing.
const FORWARD_NAP: std::time::Duration = std::time::Duration::from_micros(20);

/// One client thread's links to the others.
#[derive(Debug)]
pub struct Forwarder {
    /// This thread's tag.
    pub tag: ThreadTag,
    /// Every thread's inbox, by thread index.
    outboxes: Vec<SyncSender<Forwarded>>,
    inbox: Receiver<Forwarded>,
}

impl Forwarder {
    /// The forwarders of `threads` threads, thread `i` at index `i`, with tags of `bits` bits.
    pub fn mesh(threads: usize, bits: u32) -> Vec<Forwarder> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| sync_channel(FORWARD_INBOX)).unzip();
        receivers
            .into_iter()
            .enumerate()
            .map(|(i, inbox)| Forwarder {
                tag: ThreadTag {
                    thread: i as u32,
                    bits,
                },
                outboxes: senders.clone(),
                inbox,
            })
            .collect()
    }

    /// Sends `response` to the thread its id names; `false` if that inbox is full or gone.
    #[inline]
    pub fn send(&self, response: Forwarded) -> bool {
        let owner = tag_of(response.req_id, self.tag.bits) as usize;
        match self.outboxes.get(owner).map(|o| o.try_send(response)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// The next response forwarded to this thread, if any.
    #[inline]
    pub fn receive(&self) -> Option<Forwarded> {
        self.inbox.try_recv().ok()
    }
}

/// Reads `rxs` and forwards every response for another thread until `others_done`; responses
/// for this thread (its run is over) and anything else are dropped. Bounded by `others_done`.
pub(super) fn forward_until<P: Port>(
    rxs: &mut [P::Rx],
    stamped: bool,
    forward: &Forwarder,
    config: &EngineConfig,
    start: RunStart,
    others_done: &dyn Fn() -> bool,
) {
    let mut bufs: Vec<P::Buf> = Vec::with_capacity(RX_BURST);
    while !others_done() {
        let mut any = false;
        for rx in rxs.iter_mut() {
            if rx.rx_burst(&mut bufs, RX_BURST) == 0 {
                continue;
            }
            any = true;
            // Receive times on the run's shared clock, as the owner's own reads are.
            let time = BurstTime::read(start.instant, stamped);
            for buf in bufs.drain(..) {
                let now_ns = time.of(&buf);
                let Ok(r) =
                    wire::parse_response_with(buf.data(), &config.local, &config.parse_options)
                else {
                    continue;
                };
                if tag_of(r.req_id, forward.tag.bits) != forward.tag.thread {
                    let _ = forward.send(Forwarded {
                        req_id: r.req_id,
                        req_type: r.req_type,
                        now_ns,
                    });
                }
            }
        }
        while forward.receive().is_some() {}
        if !any {
            std::thread::sleep(FORWARD_NAP);
        }
    }
}
