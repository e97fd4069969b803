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

#[derive(Debug)]
struct Entry {
    evict: CancellationToken,
    released: Arc<std::sync::atomic::AtomicBool>,
}

/// One unregistered connection's place. Dropping it, or [`Ticket::release`], gives the place
/// back; [`Ticket::evicted`] completes if the place was taken for a newer connection.
#[derive(Debug)]
pub struct Ticket {
    owner: Arc<PendingConnections>,
    evict: CancellationToken,
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

    /// A place for a new connection, evicting the oldest waiting one if the cap is full.
    pub fn admit(self: &Arc<Self>) -> Ticket {
        use std::sync::atomic::Ordering;
        let evict = CancellationToken::new();
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut queue = self.queue.lock().expect("never poisoned");
        while queue.live >= self.cap {
            let Some(oldest) = queue.entries.pop_front() else {
                break;
            };
            if !oldest.released.swap(true, Ordering::AcqRel) {
                queue.live -= 1;
                oldest.evict.cancel();
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
            evict: evict.clone(),
            released: released.clone(),
        });
        queue.live += 1;
        // Released entries in the middle are bounded: compact when they outnumber the live.
        if queue.entries.len() > 2 * self.cap + 64 {
            queue
                .entries
                .retain(|e| !e.released.load(Ordering::Acquire));
        }
        Ticket {
            owner: self.clone(),
            evict,
            released,
        }
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
        self.evict.cancelled().await;
    }

    #[cfg(test)]
    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
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
