//! rdv — Rendezvous, a WebRTC signaling server and the terminal toolkit around it.
//!
//! The library holds everything; the `rdv` binary only parses the command line and maps
//! errors to exit codes. Dependencies point one way:
//!
//! - leaves that know nothing of the rest: [`units`], [`exit`], [`color`], [`files`],
//!   [`fd_limit`];
//! - [`identity`] and [`protocol`]: the key and wire code, no sockets, files or terminals;
//! - [`server`], [`peer`], [`bench`] and [`commands`] build on those;
//! - [`cli`] defines the command line from every command's arguments; nothing imports it.

// One audited exception, `server::memory` (a call into the C library), is allowed there.
#![deny(unsafe_code)]

pub mod color;
pub mod exit;
pub mod fd_limit;
pub mod files;
pub mod units;

pub mod identity;
pub mod protocol;
pub mod token;

pub mod server;

pub mod bench;
pub mod commands;
pub mod peer;

pub mod cli;

#[doc(hidden)]
pub mod fuzzing;
