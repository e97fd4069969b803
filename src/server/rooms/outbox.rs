//! A connection's bounded outbound queue and the switch that closes the connection.
//!
//! Everything sent to a connection goes through its [`Outbox`]; its writer drains it. A full
//! queue means the receiver is too slow: rather than block the sender or buffer without
//! bound, the receiver is closed with 1013 (PROTOCOL §6).
//!
//! The queue is a `VecDeque` under a lock rather than a channel: tokio's bounded channel
//! allocates its first block of 32 slots with the channel, about 2 KiB per connection that
//! an idle peer never uses. Here an empty queue holds no allocation (it is released each
//! time the writer finds it empty), and the queue, its budget and the close switch share one
//! allocation. Pushers and the writer hold the lock for a push or a pop, never across a wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::outbound_budget::{Backlog, HEAVY_BACKLOG, OutboundBudget};
use crate::protocol::CloseCode;

/// The close reason of a receiver whose queue overflowed; its backlog is not flushed.
pub const TOO_SLOW: &str = "too slow to receive messages";
/// The close reason of a receiver cut at the server's outbound ceiling (the slowest first,
/// or the one a message did not fit for); its backlog is not flushed either.
pub const OVER_BUDGET: &str = "the server's outbound memory is full";

/// Whether a connection closed for `reason` goes without its backlog: a receiver closed for
/// being slow would not read it anyway, and one cut for memory must give it back.
pub fn drops_backlog(reason: &str) -> bool {
    reason == TOO_SLOW || reason == OVER_BUDGET
}

/// One queued message; a relay remembers when its sender's frame was read, for the
/// relay-time histogram.
#[derive(Debug)]
pub struct Queued {
    pub text: Utf8Bytes,
    pub read_at: Option<std::time::Instant>,
}

impl Queued {
    /// Whether a peer that resumes (PROTOCOL §14) still gets this: relays and errors, in
    /// order. Presence and ICE servers are not carried over: the resume's `welcome` tells
    /// the room as it is now.
    pub fn survives_resume(&self) -> bool {
        self.read_at.is_some() || self.text.as_str().starts_with(r#"{"type":"error""#)
    }

    /// The peer a relay is from, if this is a relay.
    pub fn relay_sender(&self) -> Option<&str> {
        self.read_at?;
        relay_sender(self.text.as_str())
    }
}

/// The sender of a relayed message: its text starts `{"type":"…","from":"<peer ID>"`
/// (PROTOCOL §2's output order), so it is read without parsing the rest.
pub fn relay_sender(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(r#","from":""#)?;
    rest.get(..64)
}

/// The sending half of a connection's queue, bounded in messages and in bytes.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The receiving half, drained by the connection's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A connection's queue and its close switch, shared by its outboxes and its writer.
#[derive(Debug)]
pub struct Shared {
    queue: Mutex<Queue>,
    /// How the connection ends, decided once; checking it is one atomic load.
    reason: OnceLock<(CloseCode, &'static str)>,
    max_messages: usize,
    max_bytes: usize,
    /// The server-wide ceiling every queued byte is charged to.
    budget: Arc<OutboundBudget>,
}

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Queued>,
    /// Bytes queued and not yet on the socket: the messages here and the batch the writer
    /// is sending; charged to the budget.
    bytes: usize,
    /// Listed with the budget as one of the slow (backlog past `HEAVY_BACKLOG`).
    listed: bool,
    /// A WebSocket ping is wanted (sent after the messages queued before it).
    ping: bool,
    /// The writer, while it waits for a message.
    waiter: Option<Waker>,
    /// The receiver is gone; nothing more is queued.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock, and a queue is valid at every step anyway.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the session to close with `code`. The first request wins; later ones are ignored.
    /// The writer is woken: it is what ends the session.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        if self.reason.set((code, reason)).is_ok() {
            wake_writer(self.lock());
        }
    }

    pub fn reason(&self) -> Option<(CloseCode, &'static str)> {
        self.reason.get().copied()
    }

    pub fn is_closing(&self) -> bool {
        self.reason.get().is_some()
    }
}

impl Backlog for Shared {
    fn backlog(&self) -> usize {
        self.lock().bytes
    }

    fn unlist(&self) {
        self.lock().listed = false;
    }

    /// Closed with 1013 and its queued messages given back now (the batch being written
    /// goes back when the connection ends).
    fn cut_for_budget(&self) {
        let mut queue = self.lock();
        let dropped: usize = queue.messages.iter().map(|m| m.text.len()).sum();
        queue.messages = VecDeque::new();
        queue.bytes -= dropped;
        queue.listed = false;
        drop(queue);
        self.budget.release(dropped);
        self.close(CloseCode::OVERLOADED, OVER_BUDGET);
    }
}

/// What the writer is to do next.
#[derive(Debug)]
pub enum Next {
    Message(Queued),
    Ping,
    /// The connection is closing: stop writing (the goodbye takes over).
    Close,
}

impl OutboxReceiver {
    /// The next message (or ping), waiting for one if none is queued.
    pub async fn recv(&mut self) -> Next {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        if self.shared.is_closing() {
            return Poll::Ready(Next::Close);
        }
        let mut queue = self.shared.lock();
        if let Some(queued) = queue.pop() {
            return Poll::Ready(Next::Message(queued));
        }
        if std::mem::take(&mut queue.ping) {
            return Poll::Ready(Next::Ping);
        }
        // Idle from here on, maybe for hours: hold no buffer while waiting.
        queue.messages = VecDeque::new();
        queue.wait(cx);
        Poll::Pending
    }

    pub fn try_recv(&mut self) -> Option<Queued> {
        self.shared.lock().pop()
    }

    /// The socket has taken `bytes` of what was received from this queue: they no longer
    /// count against either budget.
    pub fn written(&self, bytes: usize) {
        let mut queue = self.shared.lock();
        let bytes = bytes.min(queue.bytes);
        queue.bytes -= bytes;
        drop(queue);
        self.shared.budget.release(bytes);
    }

    /// Ready once the connection is closing; otherwise the writer is woken when it does
    /// (for waits other than `recv`, such as a flush to a client that does not read).
    pub fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.shared.lock();
        if self.shared.is_closing() {
            return Poll::Ready(());
        }
        queue.wait(cx);
        Poll::Pending
    }

    pub fn switch(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        queue.messages = VecDeque::new();
        let bytes = std::mem::take(&mut queue.bytes);
        // Whoever waits on `Outbox::closed` learns that nothing more will be read.
        let waiter = queue.waiter.take();
        drop(queue);
        self.shared.budget.release(bytes);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

/// Wakes the writer, if it waits, once the lock is released.
fn wake_writer(mut queue: MutexGuard<'_, Queue>) {
    let waiter = queue.waiter.take();
    drop(queue);
    if let Some(waiter) = waiter {
        waiter.wake();
    }
}

impl Queue {
    /// Records the writer's waker, for a push, a ping request or a close to wake.
    fn wait(&mut self, cx: &Context<'_>) {
        match &self.waiter {
            Some(waiter) if waiter.will_wake(cx.waker()) => {}
            _ => self.waiter = Some(cx.waker().clone()),
        }
    }

    /// The next message; its bytes still count until the writer reports them written.
    fn pop(&mut self) -> Option<Queued> {
        self.messages.pop_front()
    }
}

impl Outbox {
    /// A queue under no server-wide ceiling.
    pub fn new(max_messages: usize, max_bytes: usize) -> (Self, OutboxReceiver) {
        Self::with_budget(
            max_messages,
            max_bytes,
            Arc::new(OutboundBudget::unlimited()),
        )
    }

    /// A queue whose bytes are also charged to the server's `budget`.
    pub fn with_budget(
        max_messages: usize,
        max_bytes: usize,
        budget: Arc<OutboundBudget>,
    ) -> (Self, OutboxReceiver) {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            reason: OnceLock::new(),
            max_messages,
            max_bytes,
            budget,
        });
        let receiver = OutboxReceiver {
            shared: shared.clone(),
        };
        (Self { shared }, receiver)
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

    /// Queues a message taken from another queue (a resume's carried-over relays), as it was.
    pub fn push_again(&self, queued: Queued) -> bool {
        self.push_queued(queued)
    }

    /// Completes once the connection is closing (its queue overflowed, or it was cut for
    /// memory) or its receiver is gone: what a peer held for a resume waits on.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut queue = self.shared.lock();
            if queue.closed || self.shared.is_closing() {
                return Poll::Ready(());
            }
            queue.wait(cx);
            Poll::Pending
        })
        .await;
    }

    fn push_queued(&self, queued: Queued) -> bool {
        let shared = &*self.shared;
        let mut queue = shared.lock();
        if queue.closed {
            return false;
        }
        let len = queued.text.len();
        // Every message counts, the first one too: a joiner that never reads holds at most
        // the budget, however large its `welcome` (the room checks that one fits first).
        if queue.bytes + len > shared.max_bytes || queue.messages.len() >= shared.max_messages {
            drop(queue);
            shared.close(CloseCode::OVERLOADED, TOO_SLOW);
            return false;
        }
        if !shared.budget.try_charge(len) {
            // At the ceiling: the slowest go first, maybe this one. The lock is let go, as
            // the budget locks the queues it looks at.
            drop(queue);
            if !shared.budget.make_room(len) {
                shared.close(CloseCode::OVERLOADED, OVER_BUDGET);
                return false;
            }
            queue = shared.lock();
            if queue.closed || shared.is_closing() {
                drop(queue);
                shared.budget.release(len);
                return false;
            }
        }
        queue.messages.push_back(queued);
        queue.bytes += len;
        let newly_heavy = !queue.listed && queue.bytes >= HEAVY_BACKLOG;
        queue.listed |= newly_heavy;
        wake_writer(queue);
        if newly_heavy {
            let listed: std::sync::Weak<dyn Backlog> = Arc::downgrade(&self.shared) as _;
            shared.budget.list_heavy(listed);
        }
        true
    }

    /// Asks the writer for a WebSocket ping, after what is queued now.
    pub fn request_ping(&self) {
        let mut queue = self.shared.lock();
        if !queue.closed {
            queue.ping = true;
            wake_writer(queue);
        }
    }

    /// Whether the connection's writer is gone: nothing sent here will ever be read.
    pub fn is_gone(&self) -> bool {
        self.shared.lock().closed
    }

    /// Whether a message of `len` bytes could ever be queued here.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.shared.max_bytes
    }

    /// The connection's close switch.
    pub fn switch(&self) -> &Shared {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_with_1013_and_the_first_reason_wins() {
        let (outbox, mut receiver) = Outbox::new(2, 1024);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.switch().is_closing());
        assert!(!outbox.push("c".into()));
        assert!(outbox.switch().is_closing());
        outbox.switch().close(CloseCode::POLICY, "later");
        assert_eq!(receiver.switch().reason().unwrap().0, CloseCode::OVERLOADED);
        assert_eq!(receiver.try_recv().unwrap().text, "a");
    }

    #[test]
    fn the_byte_budget_counts_every_message_the_first_too() {
        let (outbox, mut receiver) = Outbox::new(100, 10);
        assert!(!outbox.fits(16));
        assert!(
            !outbox.push("0123456789abcdef".into()),
            "alone, it still exceeds the budget"
        );
        assert!(outbox.switch().is_closing());
        assert!(receiver.try_recv().is_none());

        let (outbox, mut receiver) = Outbox::new(100, 10);
        for _ in 0..3 {
            assert!(outbox.push("abcde".into()));
            assert!(receiver.try_recv().is_some());
            receiver.written(5);
        }
        assert!(!outbox.switch().is_closing());
        assert!(outbox.push("abcde".into()));
        assert!(outbox.push("abcde".into()));
        assert!(receiver.try_recv().is_some());
        assert!(
            !outbox.push("a".into()),
            "a message taken but not yet written still counts"
        );
    }

    #[test]
    fn at_the_server_ceiling_the_largest_backlog_is_cut_first() {
        use super::super::outbound_budget::OutboundBudget;
        let budget = Arc::new(OutboundBudget::new(
            3 * HEAVY_BACKLOG,
            prometheus_client::metrics::counter::Counter::default(),
        ));
        let queue =
            |budget: &Arc<OutboundBudget>| Outbox::with_budget(100, 1 << 20, budget.clone());
        let chunk = |n: usize| Utf8Bytes::from("x".repeat(n));
        let (slowest, _slowest_rx) = queue(&budget);
        let (slow, _slow_rx) = queue(&budget);
        let (fast, mut fast_rx) = queue(&budget);
        assert!(slowest.push(chunk(HEAVY_BACKLOG + 100)));
        assert!(slow.push(chunk(HEAVY_BACKLOG)));
        assert!(fast.push(chunk(1000)));
        assert_eq!(budget.used(), 2 * HEAVY_BACKLOG + 1100);
        // The fast receiver's next message does not fit: the slowest is cut for it.
        assert!(fast.push(chunk(HEAVY_BACKLOG)));
        assert_eq!(
            slowest.switch().reason(),
            Some((CloseCode::OVERLOADED, OVER_BUDGET))
        );
        assert!(!slow.switch().is_closing());
        assert_eq!(budget.used(), 2 * HEAVY_BACKLOG + 1000);
        // What is written is given back.
        while fast_rx.try_recv().is_some() {}
        fast_rx.written(HEAVY_BACKLOG + 1000);
        assert_eq!(budget.used(), HEAVY_BACKLOG);
        // With nobody slow left to cut, a message that cannot fit closes its receiver.
        let (other, _other_rx) = queue(&budget);
        assert!(!other.push(chunk(3 * HEAVY_BACKLOG + 1)));
        assert!(slow.switch().is_closing(), "the slow one went first");
        assert_eq!(
            other.switch().reason(),
            Some((CloseCode::OVERLOADED, OVER_BUDGET))
        );
        drop(_slow_rx);
        drop(_slowest_rx);
        assert_eq!(budget.used(), 0, "every byte is given back");
    }

    #[tokio::test]
    async fn the_writer_wakes_in_order_and_an_idle_queue_holds_no_buffer() {
        let (outbox, mut receiver) = Outbox::new(100, 1 << 20);
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..200 {
                match receiver.recv().await {
                    Next::Message(queued) => got.push(queued.text.to_string()),
                    Next::Ping => got.push("ping".to_owned()),
                    Next::Close => panic!("nothing closed it"),
                }
            }
            let idle = std::future::poll_fn(|cx| Poll::Ready(receiver.poll_recv(cx))).await;
            assert!(idle.is_pending());
            assert_eq!(receiver.shared.lock().messages.capacity(), 0);
            got
        });
        for round in 0..20 {
            for i in 0..9 {
                assert!(outbox.push(format!("{}", round * 9 + i).into()));
            }
            outbox.request_ping();
            tokio::task::yield_now().await;
        }
        let got = writer.await.unwrap();
        let expected: Vec<String> = (0..20)
            .flat_map(|round| {
                (0..9)
                    .map(move |i| (round * 9 + i).to_string())
                    .chain(["ping".to_owned()])
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_close_wakes_the_writer_whatever_it_waits_for() {
        let (outbox, mut receiver) = Outbox::new(4, 1024);
        let closer = outbox.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            closer.switch().close(CloseCode::NORMAL, "replaced");
        });
        assert!(matches!(receiver.recv().await, Next::Close));
        // Queued messages do not hide the close from the writer.
        let (outbox, mut receiver) = Outbox::new(4, 1024);
        assert!(outbox.push("a".into()));
        let closer = outbox.clone();
        let waiting = tokio::spawn(async move {
            std::future::poll_fn(|cx| receiver.poll_closing(cx)).await;
            receiver
        });
        tokio::task::yield_now().await;
        closer.switch().close(CloseCode::NORMAL, "replaced");
        let mut receiver = waiting.await.unwrap();
        assert!(matches!(receiver.recv().await, Next::Close));
        assert_eq!(
            receiver.try_recv().unwrap().text,
            "a",
            "the backlog stays for the goodbye"
        );
    }

    #[test]
    fn nothing_is_queued_once_the_receiver_is_gone() {
        let (outbox, receiver) = Outbox::new(4, 1024);
        drop(receiver);
        assert!(!outbox.push("late".into()));
        assert!(
            !outbox.switch().is_closing(),
            "a gone receiver is not a slow one"
        );
    }
}
