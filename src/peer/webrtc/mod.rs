//! `rdv peer --webrtc`: real peer connections from the terminal, so a terminal and a
//! browser tab (or another terminal) can meet in a room and see whether, and how, they
//! connect. `engine` runs them (str0m); without the `webrtc` cargo feature, `engine_off`
//! stands in and `--webrtc` says how to get it.

// Without the engine nothing makes a report: its types stay, unused.
#[cfg_attr(not(feature = "webrtc"), allow(dead_code))]
mod report;

#[cfg(feature = "webrtc")]
mod engine;
#[cfg(not(feature = "webrtc"))]
#[path = "engine_off.rs"]
mod engine;

pub use self::engine::{Wake, WebRtc, wait_any};
pub use self::report::Happening;
