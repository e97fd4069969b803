//! Making a token (`rdv token`): the claims rdv reads, signed with the library.

use std::time::Duration;

use serde::Serialize;

use super::claims::RoomGrant;
use super::keys::SigningKey;

/// What a token says.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub rooms: Vec<String>,
    /// The peer ID it is bound to (`sub`).
    pub peer: Option<String>,
    pub ttl: Duration,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub max_peers: Option<u32>,
}

impl MintRequest {
    /// A token for `rooms`, valid for `ttl`, bound to no peer and carrying no other claim.
    pub fn new(rooms: Vec<String>, ttl: Duration) -> Self {
        Self {
            rooms,
            peer: None,
            ttl,
            audience: None,
            issuer: None,
            max_peers: None,
        }
    }
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    room: RoomGrant,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_peers: Option<u32>,
    iat: u64,
    exp: u64,
}

/// A signed token issued at `now` (seconds since the epoch).
pub fn mint(key: &SigningKey, request: &MintRequest, now: u64) -> Result<String, String> {
    if request.rooms.is_empty() {
        return Err("a token needs at least one room".into());
    }
    let room = match request.rooms.as_slice() {
        [one] => RoomGrant::One(one.clone()),
        many => RoomGrant::Many(many.to_vec()),
    };
    let claims = MintedClaims {
        room,
        sub: request.peer.as_deref(),
        aud: request.audience.as_deref(),
        iss: request.issuer.as_deref(),
        max_peers: request.max_peers,
        iat: now,
        exp: now.saturating_add(request.ttl.as_secs().max(1)),
    };
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key.key).map_err(|e| format!("cannot sign: {e}"))
}
