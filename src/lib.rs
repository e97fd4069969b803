//! rdv — Rendezvous, a WebRTC signaling server and the terminal toolkit around it.
//!
//! The library holds everything; the `rdv` binary only parses the command line and maps
//! errors to exit codes. Dependencies point one way: [`identity`] and [`protocol`] know
//! nothing of sockets, files or terminals; [`server`] and the key commands build on them;
//! [`cli`] ties the commands together.

#![forbid(unsafe_code)]

pub mod identity;
pub mod protocol;

pub mod server;

pub mod bench;

pub mod files;
pub mod fingerprint_cmd;
pub mod keyfile;
pub mod keygen;
pub mod peer;

pub mod cli;
pub mod generate;
