//! Error codes (PROTOCOL §5) and close codes (§8): one table used by server, client and tests.

use serde::Serialize;

/// WebSocket close codes (PROTOCOL §8): the ones the server sends, and the ones a client
/// reports or retries on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const INVALID_DATA: CloseCode = CloseCode(1007);
    pub const POLICY: CloseCode = CloseCode(1008);
    /// A close frame without a code (RFC 6455 §7.1.5); never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const OVERLOADED: CloseCode = CloseCode(1013);

    /// Every code the server itself may close with.
    pub const SENT_BY_SERVER: [CloseCode; 8] = [
        Self::NORMAL,
        Self::GOING_AWAY,
        Self::PROTOCOL_ERROR,
        Self::INVALID_DATA,
        Self::POLICY,
        Self::TOO_BIG,
        Self::INTERNAL,
        Self::OVERLOADED,
    ];
}

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $message:literal, $closes:expr;)+) => {
        /// Every `code` an `error` message can carry (PROTOCOL §5).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire `code`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// A default human message, used when nothing more specific is known.
            pub fn default_message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message),+ }
            }

            /// The close code if this error ends the connection at once.
            pub fn closes(self) -> Option<CloseCode> {
                match self { $(ErrorCode::$variant => $closes),+ }
            }

            pub fn from_wire(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)+ _ => None }
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid-json", "the frame is not a JSON object", None;
    InvalidMessage => "invalid-message", "the message is missing a member or has one of the wrong type", None;
    UnknownType => "unknown-type", "the message type is not one the server knows", None;
    BinaryUnsupported => "binary-unsupported", "binary frames are not supported; send JSON text", None;
    NotRegistered => "not-registered", "register before relaying messages", None;
    AlreadyRegistered => "already-registered", "this connection has already registered", None;
    InvalidKey => "invalid-key", "the public key is not a supported JWK", None;
    PrivateKey => "private-key", "the publicKey holds private members, which must never be shared", None;
    DuplicatePeer => "duplicate-peer", "that peer ID is already connected to this room", None;
    UnknownPeer => "unknown-peer", "no such peer is registered in this room", None;
    RoomFull => "room-full", "the room is full", None;
    RateLimited => "rate-limited", "too many messages; this one was dropped", None;
    Forbidden => "forbidden", "this peer ID is not allowed on this server", Some(CloseCode::POLICY);
    ProofRequired => "proof-required", "this server requires a proof of possession with register", None;
    ProofInvalid => "proof-invalid", "the proof of possession is not valid", None;
    Replaced => "replaced", "the same peer registered again on another connection", Some(CloseCode::NORMAL);
    Unavailable => "unavailable", "the cluster is unavailable; retry later", None;
    TokenRequired => "token-required", "this server requires an access token with register", Some(CloseCode::POLICY);
    TokenInvalid => "token-invalid", "the access token is not valid", Some(CloseCode::POLICY);
    TokenExpired => "token-expired", "the access token has expired", Some(CloseCode::POLICY);
    RoomForbidden => "room-forbidden", "the access token does not grant this room", Some(CloseCode::POLICY);
    TokenPeerMismatch => "token-peer-mismatch", "the access token was issued to another peer", Some(CloseCode::POLICY);
}

/// An error to report to the client: its code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ErrorCode> for ProtocolError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }
}

/// The `error` frame, members in the order PROTOCOL §5 shows.
#[derive(Serialize)]
pub(super) struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub message: &'a str,
    /// The receiver of a relay dropped after it was accepted (PROTOCOL §11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_wire("nope"), None);
    }
}
