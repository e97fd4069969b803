//! One ceiling for the bytes queued to all connections together (`--max-outbound-bytes`).
//!
//! Each connection's queue is bounded on its own (`--outbound-queue-bytes`), but ten
//! thousand stalled receivers at 1 MiB each would be 10 GiB. Every byte queued anywhere is
//! charged here from the moment it is queued until the socket has taken it. At the ceiling,
//! the connections with the largest backlogs — the slowest receivers — are cut first (1013,
//! their backlog dropped); a message that still does not fit closes the connection it was
//! meant for.
//!
//! Only connections whose backlog passed [`HEAVY_BACKLOG`] are candidates, listed once when
//! they pass it: a server whose receivers keep up never touches the list, and the relay path
//! costs one atomic add per message and one subtraction per written batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

use prometheus_client::metrics::counter::Counter;

/// A connection's queue as the budget sees it (the outbox implements it), so the budget
/// knows nothing of queues and the dependency points one way.
pub trait Backlog: Send + Sync {
    /// Bytes queued and not yet written.
    fn backlog(&self) -> usize;
    /// No longer listed with the budget (it was dropped from the list).
    fn unlist(&self);
    /// Cut at the ceiling: closed, its queued bytes given back.
    fn cut_for_budget(&self);
}

/// A backlog from which a connection counts among the slow, to be cut first at the ceiling.
/// Signaling messages are a few KiB; a receiver that keeps up never holds this much.
pub const HEAVY_BACKLOG: usize = 32 * 1024;

#[derive(Debug)]
pub struct OutboundBudget {
    limit: usize,
    used: AtomicUsize,
    /// Connections that passed `HEAVY_BACKLOG` since they were last looked at.
    heavy: Mutex<Vec<Weak<dyn Backlog>>>,
    /// Connections cut to stay under the ceiling.
    cuts: Counter,
}

impl OutboundBudget {
    pub fn new(limit: usize, cuts: Counter) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            heavy: Mutex::default(),
            cuts,
        }
    }

    /// No ceiling: for queues made outside a server (tests, tools).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, Counter::default())
    }

    /// Bytes queued across the server now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit under the ceiling.
    pub fn try_charge(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) <= self.limit {
            return true;
        }
        self.release(bytes);
        false
    }

    pub fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Lists a connection whose backlog just passed `HEAVY_BACKLOG`. The caller holds no
    /// queue's lock: this lock is always taken before a queue's, never after.
    pub fn list_heavy(&self, connection: Weak<dyn Backlog>) {
        self.lock_heavy().push(connection);
    }

    /// Cuts the slowest connections, largest backlog first, until `bytes` can be charged;
    /// false (nothing charged) if no connection with a backlog is left to cut.
    pub fn make_room(&self, bytes: usize) -> bool {
        let mut heavy = self.lock_heavy();
        loop {
            if self.try_charge(bytes) {
                return true;
            }
            heavy.retain(|connection| connection.strong_count() > 0);
            let slowest = heavy
                .iter()
                .enumerate()
                .filter_map(|(at, connection)| Some((at, connection.upgrade()?.backlog())))
                .max_by_key(|&(_, backlog)| backlog);
            let Some((at, backlog)) = slowest else {
                return false;
            };
            let Some(connection) = heavy.swap_remove(at).upgrade() else {
                continue;
            };
            if backlog == 0 {
                // Drained since it was listed, and so is every other one: nothing to cut.
                connection.unlist();
                heavy
                    .iter()
                    .filter_map(Weak::upgrade)
                    .for_each(|c| c.unlist());
                heavy.clear();
                return false;
            }
            connection.cut_for_budget();
            self.cuts.inc();
        }
    }

    fn lock_heavy(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn Backlog>>> {
        self.heavy.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
