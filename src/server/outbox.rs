//! A connection's bounded outbound queue and the switch that closes the connection.
//!
//! Everything sent to a connection goes through its [`Outbox`]; its writer drains it. A full
//! queue means the receiver is too slow: rather than block the sender or buffer without
//! bound, the receiver is closed with 1013 (PROTOCOL §6).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The close reason of a receiver whose queue overflowed; its backlog is not flushed.
pub const TOO_SLOW: &str = "too slow to receive messages";

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::protocol::CloseCode;

/// Decides once how a connection ends, and tells its session. Polled on every wake of the
/// session, so checking it is one atomic load (a `CancellationToken` takes a lock).
#[derive(Debug, Default)]
pub struct CloseSwitch {
    reason: OnceLock<(CloseCode, &'static str)>,
    /// The session is the only waiter; `notify_one` keeps a permit if it is not waiting yet.
    notify: Notify,
}

impl CloseSwitch {
    /// Asks the session to close with `code`. The first request wins; later ones are ignored.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        if self.reason.set((code, reason)).is_ok() {
            self.notify.notify_one();
        }
    }

    pub fn reason(&self) -> Option<(CloseCode, &'static str)> {
        self.reason.get().copied()
    }

    pub fn is_closing(&self) -> bool {
        self.reason.get().is_some()
    }

    pub async fn closing(&self) {
        while !self.is_closing() {
            self.notify.notified().await;
        }
    }
}

/// One queued message; a relay remembers when its sender's frame was read, for the
/// relay-time histogram.
#[derive(Debug)]
pub struct Queued {
    pub text: Utf8Bytes,
    pub read_at: Option<std::time::Instant>,
}

/// The sending half of a connection's queue, bounded in messages and in bytes.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Queued>,
    switch: Arc<CloseSwitch>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The receiving half, drained by the connection's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    queue: mpsc::Receiver<Queued>,
    queued_bytes: Arc<AtomicUsize>,
}

impl OutboxReceiver {
    pub async fn recv(&mut self) -> Option<Queued> {
        let queued = self.queue.recv().await?;
        self.queued_bytes
            .fetch_sub(queued.text.len(), Ordering::Relaxed);
        Some(queued)
    }

    pub fn try_recv(&mut self) -> Option<Queued> {
        let queued = self.queue.try_recv().ok()?;
        self.queued_bytes
            .fetch_sub(queued.text.len(), Ordering::Relaxed);
        Some(queued)
    }
}

impl Outbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> (Self, OutboxReceiver, Arc<CloseSwitch>) {
        let (queue, receiver) = mpsc::channel(max_messages);
        let switch = Arc::new(CloseSwitch::default());
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let outbox = Self {
            queue,
            switch: switch.clone(),
            queued_bytes: queued_bytes.clone(),
            max_bytes,
        };
        let receiver = OutboxReceiver {
            queue: receiver,
            queued_bytes,
        };
        (outbox, receiver, switch)
    }

    /// Queues `text` without waiting. Returns false if it was not queued: the connection is
    /// already closing, or it was too slow and is now being closed with 1013.
    pub fn push(&self, text: Utf8Bytes) -> bool {
        self.push_queued(Queued {
            text,
            read_at: None,
        })
    }

    /// Queues a relayed message, read from its sender at `read_at`.
    pub fn push_relay(&self, text: Utf8Bytes, read_at: std::time::Instant) -> bool {
        self.push_queued(Queued {
            text,
            read_at: Some(read_at),
        })
    }

    fn push_queued(&self, queued: Queued) -> bool {
        let len = queued.text.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        // Every message counts, the first one too: a joiner that never reads holds at most
        // the budget, however large its `welcome` (the room checks that one fits first).
        let over_budget = before + len > self.max_bytes;
        let refused = if over_budget {
            true
        } else {
            match self.queue.try_send(queued) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        if refused {
            self.switch.close(CloseCode::OVERLOADED, TOO_SLOW);
        }
        false
    }

    /// Whether a message of `len` bytes could ever be queued here.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.max_bytes
    }

    pub fn switch(&self) -> &CloseSwitch {
        &self.switch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_with_1013_and_the_first_reason_wins() {
        let (outbox, mut receiver, switch) = Outbox::new(2, 1024);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!switch.is_closing());
        assert!(!outbox.push("c".into()));
        assert!(switch.is_closing());
        switch.close(CloseCode::POLICY, "later");
        assert_eq!(switch.reason().unwrap().0, CloseCode::OVERLOADED);
        assert_eq!(receiver.try_recv().unwrap().text, "a");
    }

    #[test]
    fn the_byte_budget_counts_every_message_the_first_too() {
        let (outbox, mut receiver, switch) = Outbox::new(100, 10);
        assert!(!outbox.fits(16));
        assert!(
            !outbox.push("0123456789abcdef".into()),
            "alone, it still exceeds the budget"
        );
        assert!(switch.is_closing());
        assert!(receiver.try_recv().is_none());

        let (outbox, mut receiver, switch) = Outbox::new(100, 10);
        for _ in 0..3 {
            assert!(outbox.push("abcde".into()));
            assert!(receiver.try_recv().is_some(), "draining frees the budget");
        }
        assert!(!switch.is_closing());
    }
}
