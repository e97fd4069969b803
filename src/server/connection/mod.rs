//! One WebSocket connection, from the handshake to the goodbye: the upgrade, the unregistered
//! cap it waits under, the session, its transport and per-frame guard, its writer and its
//! deadlines.

pub(in crate::server) mod deadlines;
pub(in crate::server) mod guard;
pub(in crate::server) mod open_sessions;
pub(in crate::server) mod outgoing;
pub(in crate::server) mod pending;
pub(in crate::server) mod session;
pub(in crate::server) mod transport;
pub(in crate::server) mod upgrade;
