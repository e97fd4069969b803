//! rdv — Rendezvous, a WebRTC signaling server and the terminal toolkit around it.
//!
//! The library holds everything; the `rdv` binary only parses the command line and maps
//! errors to exit codes. Dependencies point one way: [`identity`] and [`protocol`] know
//! nothing of sockets, files or terminals, and everything else builds on them.

pub mod cli;
pub mod generate;
pub mod identity;
pub mod protocol;
pub mod server;
