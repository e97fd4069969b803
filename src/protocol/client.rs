//! The client's half of the wire contract: what a client sends to join (the room URL and the
//! `register` message) and the typed [`ServerMessage`] it reads back. `rdv peer`, `rdv bench`
//! and the tests all use these, so a protocol change is a one-place edit. No I/O.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ErrorCode, RoomName};

/// Characters escaped in a room name: everything that is not safe in one path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

impl RoomName {
    /// The request path of this room's WebSocket (PROTOCOL §1), percent-encoded.
    pub fn path(&self) -> String {
        format!(
            "/room/{}/websocket",
            utf8_percent_encode(self.as_str(), SEGMENT)
        )
    }
}

/// The WebSocket URL of a room. `base` is `ws://`, `wss://`, `http://` or `https://`; with no
/// room, `base` must already be a full `/room/NAME/websocket` URL.
pub fn room_url(base: &str, room: Option<&str>) -> Result<String, String> {
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        return Err(format!(
            "{base:?} is not a ws://, wss://, http:// or https:// URL"
        ));
    };
    if base.contains(char::is_whitespace) {
        return Err(format!(
            "{base:?} has a space in it: write it as %20 in a URL, or give the room as its own \
             argument (rdv peer ws://HOST \"my room\")"
        ));
    }
    match room {
        Some(room) => {
            let room = RoomName::new(room).map_err(|e| e.to_string())?;
            Ok(format!("{}{}", base.trim_end_matches('/'), room.path()))
        }
        None => {
            let path_start = base.find("://").map(|i| i + 3).unwrap_or(0);
            let path = base[path_start..]
                .find('/')
                .map(|i| &base[path_start + i..]);
            match path {
                Some(path) if path.starts_with("/room/") && path.ends_with("/websocket") => {
                    Ok(base)
                }
                _ => Err("give a ROOM, or a full ws://HOST/room/NAME/websocket URL".into()),
            }
        }
    }
}

/// A proof of possession to send with `register` (PROTOCOL §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof<'a> {
    /// The JWS algorithm name (`ES256`, `EdDSA`, …).
    pub alg: &'a str,
    /// The signature, base64url without padding.
    pub signature: &'a str,
}

/// The `register` message (PROTOCOL §2, §9, §13) for a public JWK, with a proof of
/// possession and an access token when given.
pub fn register(public_key: &Value, proof: Option<Proof<'_>>, token: Option<&str>) -> String {
    let mut message = json!({"type": "register", "publicKey": public_key});
    if let Some(proof) = proof {
        message["proof"] = json!({"alg": proof.alg, "signature": proof.signature});
    }
    if let Some(token) = token {
        message["token"] = json!(token);
    }
    message.to_string()
}

/// One peer as `welcome` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnnouncedPeer {
    pub id: String,
    #[serde(rename = "publicKey")]
    pub public_key: Option<Value>,
    pub verified: Option<bool>,
}

/// Everything a server sends (PROTOCOL §3, §5, §9), by its `type`. Peer IDs stay strings:
/// a client checks them against the keys itself instead of trusting the server's shape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    Welcome {
        #[serde(rename = "peerId")]
        peer_id: String,
        #[serde(default)]
        peers: Vec<AnnouncedPeer>,
    },
    PeerJoined {
        #[serde(rename = "peerId")]
        peer_id: String,
        #[serde(rename = "publicKey")]
        public_key: Option<Value>,
        verified: Option<bool>,
    },
    PeerLeft {
        #[serde(rename = "peerId")]
        peer_id: String,
    },
    Challenge {
        nonce: String,
    },
    Pong,
    Error {
        code: String,
        #[serde(default)]
        message: String,
    },
    Offer {
        from: Option<String>,
    },
    Answer {
        from: Option<String>,
    },
    IceCandidate {
        from: Option<String>,
    },
    /// A type this client does not know (a newer server), or a known type of the wrong shape.
    #[serde(other)]
    Other,
}

impl ServerMessage {
    /// Reads a server's text frame; `None` when it is not a JSON object with a `type`.
    pub fn parse(value: &Value) -> Option<Self> {
        value.get("type")?.as_str()?;
        Some(Self::deserialize(value).unwrap_or(Self::Other))
    }

    /// The sender of a relayed message.
    pub fn from(&self) -> Option<&str> {
        match self {
            Self::Offer { from } | Self::Answer { from } | Self::IceCandidate { from } => {
                from.as_deref()
            }
            _ => None,
        }
    }

    /// The code of an `error`, when the server sent one this client knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Error { code, .. } => ErrorCode::from_wire(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_urls() {
        assert_eq!(
            room_url("ws://h:1", Some("lobby")).unwrap(),
            "ws://h:1/room/lobby/websocket"
        );
        assert_eq!(
            room_url("https://h/", Some("a b/c")).unwrap(),
            "wss://h/room/a%20b%2Fc/websocket"
        );
        assert_eq!(
            room_url("ws://h/room/x/websocket", None).unwrap(),
            "ws://h/room/x/websocket"
        );
        assert!(room_url("ws://h", None).is_err());
        assert!(room_url("ftp://h", Some("x")).is_err());
        assert!(room_url("ws://h", Some("")).is_err());
        let too_long = room_url("ws://h", Some(&"é".repeat(65))).unwrap_err();
        assert!(too_long.contains("130 bytes"), "{too_long}");
    }

    #[test]
    fn paths_round_trip_through_the_servers_parser() {
        for name in ["lobby", "a b", "a/b", "café", "100%", "?#"] {
            let room = RoomName::new(name).unwrap();
            let path = room.path();
            let segment = path
                .strip_prefix("/room/")
                .and_then(|p| p.strip_suffix("/websocket"))
                .unwrap();
            assert_eq!(RoomName::from_path_segment(segment).unwrap(), room);
        }
    }

    #[test]
    fn register_messages() {
        let key = json!({"kty": "OKP", "crv": "Ed25519", "x": "abc"});
        let plain: Value = serde_json::from_str(&register(&key, None, None)).unwrap();
        assert_eq!(plain, json!({"type": "register", "publicKey": key}));
        let proof = Proof {
            alg: "EdDSA",
            signature: "c2ln",
        };
        let proved: Value =
            serde_json::from_str(&register(&key, Some(proof), Some("a.b.c"))).unwrap();
        assert_eq!(
            proved["proof"],
            json!({"alg": "EdDSA", "signature": "c2ln"})
        );
        assert_eq!(proved["token"], "a.b.c");
    }

    #[test]
    fn server_messages_by_type() {
        let parse = |v: Value| ServerMessage::parse(&v);
        assert_eq!(
            parse(
                json!({"type": "welcome", "peerId": "a", "peers": [{"id": "b", "publicKey": {}}]})
            ),
            Some(ServerMessage::Welcome {
                peer_id: "a".into(),
                peers: vec![AnnouncedPeer {
                    id: "b".into(),
                    public_key: Some(json!({})),
                    verified: None
                }]
            })
        );
        let error =
            parse(json!({"type": "error", "code": "unknown-peer", "message": "m"})).unwrap();
        assert_eq!(error.error_code(), Some(ErrorCode::UnknownPeer));
        assert_eq!(
            parse(json!({"type": "offer", "from": "x", "sdp": {}}))
                .unwrap()
                .from(),
            Some("x")
        );
        assert_eq!(
            parse(json!({"type": "something-new"})),
            Some(ServerMessage::Other)
        );
        assert_eq!(
            parse(json!({"type": "peer-left"})),
            Some(ServerMessage::Other)
        );
        assert_eq!(parse(json!({"no": "type"})), None);
        assert_eq!(parse(json!([1])), None);
    }
}
