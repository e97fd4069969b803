//! Who may come in, and how fast: TLS certificates, origins and client addresses behind
//! proxies, the allow list, access tokens, and rate limits.

pub(in crate::server) mod access;
pub(in crate::server) mod allow;
pub(in crate::server) mod rate;
pub(in crate::server) mod tls;
pub(in crate::server) mod tokens;
