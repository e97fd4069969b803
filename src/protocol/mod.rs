//! The wire contract (PROTOCOL §2–§5, §8): message types in and out, error codes and close
//! codes. No I/O: the server (inbound parsing, outbound builders) and the clients — the
//! terminal peer, the benchmark and the tests ([`client`]: room URL, `register`, typed server
//! messages) — build on these types and share one table of codes.

mod client;
mod codes;
mod inbound;
mod outbound;
mod room;
mod scan;

pub use client::{AnnouncedPeer, Proof, ServerMessage, register, room_url};
pub use codes::{CloseCode, ErrorCode, ProtocolError};
pub use inbound::{Inbound, Register, Relay, RelayKind, parse_inbound, truncate_chars};
pub use outbound::{
    PeerEntry, challenge, error_frame, ice_servers, peer_joined, peer_left, pong, relay_dropped,
    welcome,
};
pub use room::{RoomName, RoomNameError};

/// How deeply arrays and objects may nest in a message (the message object itself is level
/// 1). Relayed messages go to other peers' parsers, some of which recurse and crash on
/// deep input; 64 is far beyond any SDP or candidate object. `inbound` refuses deeper input,
/// and `scan` hands it to serde_json.
pub const MAX_NESTING: usize = 64;

/// The fast scanner, for the differential fuzz target only.
#[doc(hidden)]
pub fn scan_members_for_fuzzing(text: &str) -> Option<Vec<(std::borrow::Cow<'_, str>, &str)>> {
    scan::object_members(text)
}
