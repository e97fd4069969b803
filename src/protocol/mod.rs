//! The wire contract (PROTOCOL §2–§5, §8): message types in and out, error codes and close
//! codes. No I/O: the server and the terminal peer both build on these types, and the tests
//! use the same tables.

mod codes;
mod inbound;
mod outbound;
mod room;
mod scan;

pub use codes::{CloseCode, ErrorCode, ProtocolError};
pub use inbound::{Inbound, Register, Relay, RelayKind, parse_inbound, truncate_chars};
pub use outbound::{PeerEntry, challenge, error_frame, peer_joined, peer_left, pong, welcome};
pub use room::{RoomName, RoomNameError};
