//! Connections that have not registered yet — a request head still arriving, or a WebSocket
//! waiting for `register` — have their own cap, separate from `--max-connections`, so that
//! clients who never register cannot take registered peers' places.
//!
//! When the cap is full, a new connection still gets in: the *oldest* unregistered one is
//! closed to make room. A legitimate client registers within milliseconds of connecting, so
//! it is evicted only if a whole cap's worth of connections arrives during its own handshake,
//! while a flood of idle connections only ever evicts itself; `/healthz` and new peers keep
//! working however many idle sockets an attacker opens.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use crate::protocol::CloseCode;
use crate::server::rooms::outbox::Outbox;

#[derive(Debug)]
pub struct PendingConnections {
    cap: usize,
    /// Counts connections closed to make room.
    evictions: Counter,
    /// Oldest first. A ticket that was released leaves a cancelled-and-released entry
    /// behind, skipped (and dropped) when it reaches the front.
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// Entries still waiting (not released); `entries` may hold released ones too.
    live: usize,
}

impl Queue {
    fn drop_released(&mut self) {
        use std::sync::atomic::Ordering;
        self.entries.retain(|e| !e.released.load(Ordering::Acquire));
    }
}

#[derive(Debug)]
struct Entry {
    evict: Evict,
    released: Arc<std::sync::atomic::AtomicBool>,
}

/// How an entry is evicted: a connection still in its HTTP handshake watches a token; a
/// WebSocket session is closed through its outbox's switch, like any other close, so it
/// needs no future of its own waiting for it.
#[derive(Debug)]
enum Evict {
    Token(CancellationToken),
    Close(Outbox),
}

/// The close reason of an unregistered connection evicted to make room.
pub const EVICTED: &str = "too many unregistered connections";

impl Evict {
    fn fire(&self) {
        match self {
            Self::Token(token) => token.cancel(),
            Self::Close(outbox) => outbox.switch().close(CloseCode::OVERLOADED, EVICTED),
        }
    }
}

/// One unregistered connection's place. Dropping it, or [`Ticket::release`], gives the place
/// back; [`Ticket::evicted`] completes if the place was taken for a newer connection.
#[derive(Debug)]
pub struct Ticket {
    owner: Arc<PendingConnections>,
    /// Cancelled on eviction; `None` for a session, which is closed instead.
    evict: Option<CancellationToken>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl PendingConnections {
    pub fn new(cap: usize, evictions: Counter) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            evictions,
            queue: Mutex::new(Queue::default()),
        })
    }

    /// A place for a connection still in its HTTP handshake, which watches
    /// [`Ticket::evicted`].
    pub fn admit(self: &Arc<Self>) -> Ticket {
        let token = CancellationToken::new();
        self.enter(Evict::Token(token.clone()), Some(token))
    }

    /// A WebSocket session: evicting it closes it through `outbox`'s switch.
    pub fn admit_session(self: &Arc<Self>, outbox: &Outbox) -> Ticket {
        self.enter(Evict::Close(outbox.clone()), None)
    }

    /// A place for a new connection, evicting the oldest waiting one if the cap is full.
    fn enter(self: &Arc<Self>, evict: Evict, token: Option<CancellationToken>) -> Ticket {
        use std::sync::atomic::Ordering;
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut queue = self.queue.lock().expect("never poisoned");
        while queue.live >= self.cap {
            let Some(oldest) = queue.entries.pop_front() else {
                break;
            };
            if !oldest.released.swap(true, Ordering::AcqRel) {
                queue.live -= 1;
                oldest.evict.fire();
                self.evictions.inc();
            }
        }
        // Released entries at the front are garbage now.
        while queue
            .entries
            .front()
            .is_some_and(|e| e.released.load(Ordering::Acquire))
        {
            queue.entries.pop_front();
        }
        queue.entries.push_back(Entry {
            evict,
            released: released.clone(),
        });
        queue.live += 1;
        // Released entries in the middle are bounded: compact when they outnumber the live.
        if queue.entries.len() > 2 * self.cap + 64 {
            queue.drop_released();
        }
        Ticket {
            owner: self.clone(),
            evict: token,
            released,
        }
    }

    /// Drops the entries of connections that have registered or gone, and the queue's
    /// spare capacity, after a burst (see `memory`).
    pub fn compact(&self) {
        let mut queue = self.queue.lock().expect("never poisoned");
        queue.drop_released();
        queue.entries.shrink_to_fit();
    }

    /// Connections waiting now.
    pub fn waiting(&self) -> usize {
        self.queue.lock().expect("never poisoned").live
    }
}

impl Ticket {
    /// The connection registered (or is otherwise no longer waiting): give the place back.
    pub fn release(&self) {
        use std::sync::atomic::Ordering;
        if !self.released.swap(true, Ordering::AcqRel) {
            self.owner.queue.lock().expect("never poisoned").live -= 1;
        }
    }

    /// Completes when this connection was evicted for a newer one.
    pub async fn evicted(&self) {
        match &self.evict {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }

    #[cfg(test)]
    pub fn is_evicted(&self) -> bool {
        self.evict
            .as_ref()
            .is_some_and(|token| token.is_cancelled())
    }
}

/// Completes when `ticket`'s connection was evicted; never without a ticket (a connection
/// that is not counted, or one that has registered).
pub async fn evicted(ticket: Option<&Ticket>) {
    match ticket {
        Some(ticket) => ticket.evicted().await,
        None => std::future::pending().await,
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let pending = PendingConnections::new(3, Counter::default());
        let a = pending.admit();
        let b = pending.admit();
        let c = pending.admit();
        assert_eq!(pending.waiting(), 3);
        let d = pending.admit();
        assert!(a.is_evicted() && !b.is_evicted() && !c.is_evicted() && !d.is_evicted());
        assert_eq!(pending.waiting(), 3);
        // A registered connection leaves; the next newcomer evicts nobody.
        c.release();
        let e = pending.admit();
        assert!(!b.is_evicted() && !e.is_evicted());
        // Dropping gives places back too, and released entries are never evicted.
        drop(b);
        drop(d);
        assert_eq!(pending.waiting(), 1);
        let f = pending.admit();
        let g = pending.admit();
        assert!(!e.is_evicted() && !f.is_evicted() && !g.is_evicted());
        let _h = pending.admit();
        assert!(e.is_evicted(), "the oldest still waiting");
        assert!(!c.is_evicted(), "a released ticket is not evicted");
    }

    #[test]
    fn an_evicted_session_is_closed_through_its_switch() {
        let pending = PendingConnections::new(1, Counter::default());
        let (outbox, _receiver) = Outbox::new(4, 1024);
        let session = pending.admit_session(&outbox);
        let _newer = pending.admit();
        assert_eq!(
            outbox.switch().reason(),
            Some((CloseCode::OVERLOADED, EVICTED))
        );
        drop(session);
        assert_eq!(
            pending.waiting(),
            1,
            "an evicted ticket gives its place back once"
        );
    }

    #[test]
    fn compacting_keeps_only_those_still_waiting() {
        let pending = PendingConnections::new(1000, Counter::default());
        let waiting = pending.admit();
        let gone: Vec<_> = (0..500).map(|_| pending.admit()).collect();
        for ticket in &gone {
            ticket.release();
        }
        pending.compact();
        let queue = pending.queue.lock().unwrap();
        assert_eq!(queue.entries.len(), 1);
        assert!(queue.entries.capacity() < 500);
        drop(queue);
        assert_eq!(pending.waiting(), 1);
        assert!(!waiting.is_evicted());
    }

    #[test]
    fn many_released_entries_do_not_pile_up() {
        let pending = PendingConnections::new(4, Counter::default());
        let keep = pending.admit();
        for _ in 0..10_000 {
            let ticket = pending.admit();
            ticket.release();
        }
        let len = pending.queue.lock().unwrap().entries.len();
        assert!(len <= 2 * 4 + 64 + 1, "{len}");
        assert!(!keep.is_evicted());
    }
}
