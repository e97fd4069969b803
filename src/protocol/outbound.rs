//! Server → client messages (PROTOCOL §3), serialized once so broadcasts can share the bytes.
//!
//! Peer IDs are hex and public keys are raw JSON kept from the register frame, so these are
//! assembled as text without a JSON tree.

use super::codes::ErrorFrame;
use super::{ErrorCode, ProtocolError};
use crate::identity::PeerId;

/// One entry of `welcome.peers`, serialized when the peer registers and reused for every
/// later welcome in its room.
#[derive(Debug, Clone)]
pub struct PeerEntry(Box<str>);

impl PeerEntry {
    /// `verified` is `None` without proof of possession, so the entry stays exactly as the
    /// original protocol has it.
    pub fn new(id: &PeerId, public_key_json: &str, verified: Option<bool>) -> Self {
        Self(
            format!(
                r#"{{"id":"{id}","publicKey":{public_key_json}{}}}"#,
                verified_member(verified)
            )
            .into_boxed_str(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the peer proved possession of its key (PROTOCOL §9).
    pub fn is_verified(&self) -> bool {
        self.0.ends_with(r#","verified":true}"#)
    }
}

/// `ice_servers` is the serialized `iceServers` array (PROTOCOL §10), present only when the
/// server hands out ICE servers, so without them the message stays as the original protocol
/// has it.
/// `resumed` marks the welcome of a peer that took its place back within the grace
/// (PROTOCOL §14); a fresh join's welcome has no such member.
pub fn welcome<'a>(
    peer_id: &PeerId,
    peers: impl IntoIterator<Item = &'a PeerEntry>,
    ice_servers: Option<&str>,
    resumed: bool,
) -> String {
    let mut out = format!(r#"{{"type":"welcome","peerId":"{peer_id}","peers":["#);
    for (index, entry) in peers.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(entry.as_str());
    }
    out.push(']');
    if let Some(ice_servers) = ice_servers {
        out.push_str(r#","iceServers":"#);
        out.push_str(ice_servers);
    }
    if resumed {
        out.push_str(r#","resumed":true"#);
    }
    out.push('}');
    out
}

/// PROTOCOL §10: fresh ICE servers (new TURN credentials) before the old ones expire.
pub fn ice_servers(ice_servers: &str) -> String {
    format!(r#"{{"type":"ice-servers","iceServers":{ice_servers}}}"#)
}

pub fn peer_joined(peer_id: &PeerId, public_key_json: &str, verified: Option<bool>) -> String {
    format!(
        r#"{{"type":"peer-joined","peerId":"{peer_id}","publicKey":{public_key_json}{}}}"#,
        verified_member(verified)
    )
}

fn verified_member(verified: Option<bool>) -> &'static str {
    match verified {
        None => "",
        Some(true) => r#","verified":true"#,
        Some(false) => r#","verified":false"#,
    }
}

/// PROTOCOL §9: sent right after the upgrade when proof of possession is on.
pub fn challenge(nonce: &str) -> String {
    format!(r#"{{"type":"challenge","nonce":"{nonce}"}}"#)
}

pub fn peer_left(peer_id: &PeerId) -> String {
    format!(r#"{{"type":"peer-left","peerId":"{peer_id}"}}"#)
}

pub fn pong() -> &'static str {
    r#"{"type":"pong"}"#
}

pub fn error_frame(error: &ProtocolError) -> String {
    serde_json::to_string(&ErrorFrame {
        kind: "error",
        code: error.code.as_str(),
        message: &error.message,
        to: None,
    })
    .expect("an error frame serializes")
}

/// `unavailable` for a relay to `to` that was accepted but could not reach the receiver's
/// instance (PROTOCOL §11): it names the receiver, since it arrives after later frames.
pub fn relay_dropped(to: &str) -> String {
    serde_json::to_string(&ErrorFrame {
        kind: "error",
        code: ErrorCode::Unavailable.as_str(),
        message: "the peer's instance was not listening to the cluster (it is reconnecting to \
                  Redis, or gone); the message was dropped",
        to: Some(to),
    })
    .expect("an error frame serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;
    use serde_json::{Value, json};

    fn id(c: char) -> PeerId {
        c.to_string().repeat(64).parse().unwrap()
    }

    #[test]
    fn messages_are_valid_json_of_the_documented_shape() {
        let key = r#"{"kty":"OKP","crv":"Ed25519","x":"abc"}"#;
        let entries = [
            PeerEntry::new(&id('b'), key, None),
            PeerEntry::new(&id('c'), key, Some(true)),
        ];
        let welcome: Value =
            serde_json::from_str(&welcome(&id('a'), &entries, None, false)).unwrap();
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["peerId"], id('a').as_str());
        assert_eq!(welcome["peers"][1]["id"], id('c').as_str());
        assert_eq!(welcome["peers"][0]["publicKey"]["crv"], "Ed25519");
        let empty: Value =
            serde_json::from_str(&super::welcome(&id('a'), &[], None, true)).unwrap();
        assert_eq!(empty["peers"], json!([]));
        assert_eq!(empty["resumed"], true);
        assert!(
            welcome.get("resumed").is_none(),
            "a fresh join's welcome has no resumed"
        );
        assert!(entries[1].is_verified() && !entries[0].is_verified());

        assert!(welcome["peers"][0].get("verified").is_none());
        assert!(welcome.get("iceServers").is_none());
        let with_ice: Value = serde_json::from_str(&super::welcome(
            &id('a'),
            &[],
            Some(r#"[{"urls":["stun:s"]}]"#),
            false,
        ))
        .unwrap();
        assert_eq!(with_ice["iceServers"][0]["urls"][0], "stun:s");
        assert_eq!(welcome["peers"][1]["verified"], true);
        let joined: Value = serde_json::from_str(&peer_joined(&id('b'), key, None)).unwrap();
        assert_eq!(joined["publicKey"]["x"], "abc");
        assert!(joined.get("verified").is_none());
        let joined: Value = serde_json::from_str(&peer_joined(&id('b'), key, Some(false))).unwrap();
        assert_eq!(joined["verified"], false);
        let left: Value = serde_json::from_str(&peer_left(&id('b'))).unwrap();
        assert_eq!(left, json!({"type":"peer-left","peerId":id('b').as_str()}));
    }

    #[test]
    fn error_frames_escape_their_message() {
        let error = ProtocolError::new(ErrorCode::UnknownType, "unknown message type \"x\"");
        assert_eq!(
            error_frame(&error),
            r#"{"type":"error","code":"unknown-type","message":"unknown message type \"x\""}"#
        );
    }
}
