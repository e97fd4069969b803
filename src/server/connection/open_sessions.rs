//! Every open session's outbox, so that a shutdown can close them all.
//!
//! A child cancellation token per session cost each one an allocation and a place in the
//! parent's list; one shared token, polled by every session on every wake, would put a
//! single lock under all of them. Here a session is entered once and removed once, and the
//! shutdown walks the list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::protocol::CloseCode;
use crate::server::rooms::ConnectionId;
use crate::server::rooms::outbox::Outbox;

#[derive(Debug, Default)]
pub struct OpenSessions {
    closing: AtomicBool,
    outboxes: Mutex<HashMap<ConnectionId, Outbox, foldhash::fast::RandomState>>,
}

/// A session's place in the list, given back when dropped.
#[derive(Debug)]
pub struct Entered {
    list: Arc<OpenSessions>,
    connection: ConnectionId,
}

impl OpenSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnectionId, Outbox, foldhash::fast::RandomState>> {
        // Only inserts, removals and a walk happen under it; none can panic halfway.
        self.outboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists a session; it is closed at once if the shutdown has begun.
    pub fn enter(self: &Arc<Self>, connection: ConnectionId, outbox: &Outbox) -> Entered {
        self.lock().insert(connection, outbox.clone());
        // Either the shutdown's walk finds it, or the flag (set before the walk) is seen here.
        if self.closing.load(Ordering::SeqCst) {
            outbox.switch().close(CloseCode::GOING_AWAY, SHUTTING_DOWN);
        }
        Entered {
            list: self.clone(),
            connection,
        }
    }

    /// Gives back the list's spare capacity after a burst (see `memory`).
    pub fn compact(&self) {
        self.lock().shrink_to_fit();
    }

    /// Closes every session, and every one entered from now on, with 1001.
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for outbox in self.lock().values() {
            outbox.switch().close(CloseCode::GOING_AWAY, SHUTTING_DOWN);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

const SHUTTING_DOWN: &str = "server shutting down";

impl Drop for Entered {
    fn drop(&mut self) {
        self.list.lock().remove(&self.connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_closes_those_open_and_those_that_come_later_and_leavers_are_gone() {
        let list = Arc::new(OpenSessions::default());
        let (early, _early_rx) = Outbox::new(4, 1024);
        let (left, _left_rx) = Outbox::new(4, 1024);
        let _early_entry = list.enter(ConnectionId::next(), &early);
        drop(list.enter(ConnectionId::next(), &left));
        assert_eq!(list.len(), 1);
        list.close_all();
        assert_eq!(
            early.switch().reason(),
            Some((CloseCode::GOING_AWAY, SHUTTING_DOWN))
        );
        assert!(
            !left.switch().is_closing(),
            "a session that had left is not touched"
        );
        let (late, _late_rx) = Outbox::new(4, 1024);
        let _late_entry = list.enter(ConnectionId::next(), &late);
        assert!(late.switch().is_closing());
    }
}
