//! Running the server: its metrics, the memory it hands back after bursts, and the ICE
//! servers (with TURN credentials) it hands to peers. Leaves: they import nothing else of
//! the server.

pub(in crate::server) mod ice;
pub(in crate::server) mod memory;
pub(in crate::server) mod metrics;
