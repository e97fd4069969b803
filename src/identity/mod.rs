//! Peer identity: JWK public keys and the peer ID derived from them (PROTOCOL §4).
//!
//! This module owns parsing and validating a JWK into a [`PublicJwk`] and computing its
//! [`PeerId`]. It does no I/O: the server, the terminal peer and the key utilities all call
//! into it, so there is exactly one implementation of the fingerprint.

mod b64;
mod jwk;
mod peer_id;

pub use jwk::{JwkError, KeyKind, PRIVATE_MEMBERS, PrivateMembers, PublicJwk};
pub use peer_id::{PeerId, PeerIdError};
