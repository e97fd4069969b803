//! The way in: the accept loop (plain or TLS) and the routing of HTTP requests to
//! `/healthz`, `/metrics` and room upgrades.

pub(in crate::server) mod http;
pub(in crate::server) mod listen;
