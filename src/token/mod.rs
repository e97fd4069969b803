//! Access tokens (PROTOCOL §13): JWTs an app's backend mints so that its users may join a
//! room, optionally bound to one peer's key.
//!
//! The JWT format, the signature algorithms and the standard claim checks (`exp`, `nbf`,
//! `aud`, `iss`) are the `jsonwebtoken` crate's. What is rdv's own: which algorithms a key
//! allows (decided by the key, never by a token's header), the room grant, the binding to a
//! peer ID, and the error each refusal maps to. No sockets and no files: callers read them.

mod claims;
mod keys;
mod mint;
mod verify;

pub use claims::{MAX_PEERS_CLAIM, RoomGrant};
pub use keys::{SigningKey, VerifyingKey, parse_signing_key, parse_verifying_keys};
pub use mint::{MintRequest, mint};
pub use verify::{
    Grant, LEEWAY_SECONDS, MAX_TOKEN_BYTES, TokenError, Verifier, VerifierOptions, unverified_parts,
};

/// Seconds since the Unix epoch, the unit of every JWT time claim.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
