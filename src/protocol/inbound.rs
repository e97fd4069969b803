//! Client → server messages (PROTOCOL §2), parsed only as far as routing needs.
//!
//! A relayed message is split into its members as raw JSON slices: `type` and `to` are read,
//! everything else is copied through byte for byte. An SDP is never turned into a
//! `serde_json::Value` only to be written back.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{ErrorCode, MAX_NESTING, ProtocolError, scan};
use crate::identity::PeerId;

/// The three relayed types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayKind {
    Offer,
    Answer,
    IceCandidate,
}

impl RelayKind {
    pub const ALL: [RelayKind; 3] = [RelayKind::Offer, RelayKind::Answer, RelayKind::IceCandidate];

    pub fn as_str(self) -> &'static str {
        match self {
            RelayKind::Offer => "offer",
            RelayKind::Answer => "answer",
            RelayKind::IceCandidate => "ice-candidate",
        }
    }
}

/// A parsed client message.
#[derive(Debug)]
pub enum Inbound<'a> {
    Register(Register<'a>),
    Relay(Relay<'a>),
    Ping,
}

/// `register`: the key exactly as sent, so it is forwarded unchanged, the optional proof of
/// possession (PROTOCOL §9), left raw for the server to check, and the optional access token
/// (§13).
#[derive(Debug)]
pub struct Register<'a> {
    pub public_key: &'a str,
    pub proof: Option<&'a str>,
    pub token: Option<Cow<'a, str>>,
}

/// `offer` / `answer` / `ice-candidate`, with its members kept in their original order.
#[derive(Debug)]
pub struct Relay<'a> {
    pub kind: RelayKind,
    pub to: Cow<'a, str>,
    members: MemberList<'a>,
}

impl Relay<'_> {
    /// The message as the receiver gets it: `type`, then `from`, then every other member the
    /// sender wrote in its order, without `to` and without any `from` the sender made up.
    ///
    /// Sized exactly: a `String` whose length is its capacity becomes shared bytes without
    /// a second allocation for the reference count.
    pub fn forward_text(&self, from: &PeerId) -> String {
        let forwarded = || {
            self.members
                .iter()
                .filter(|(key, _)| !matches!(key.as_ref(), "type" | "to" | "from"))
        };
        let head = [
            r#"{"type":""#,
            self.kind.as_str(),
            r#"","from":""#,
            from.as_str(),
            "\"",
        ];
        let length = head.iter().map(|part| part.len()).sum::<usize>()
            + forwarded()
                .map(|(key, value)| 2 + json_string_len(key) + value.len())
                .sum::<usize>()
            + 1;
        let mut out = String::with_capacity(length);
        head.iter().for_each(|part| out.push_str(part));
        for (key, value) in forwarded() {
            out.push(',');
            push_json_string(&mut out, key);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
        debug_assert_eq!(out.len(), length);
        out
    }
}

/// Keys are almost always plain; only those that are not need escaping.
fn is_plain(text: &str) -> bool {
    text.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
}

fn json_string_len(text: &str) -> usize {
    if is_plain(text) {
        text.len() + 2
    } else {
        serde_json::to_string(text)
            .expect("a string serializes")
            .len()
    }
}

fn push_json_string(out: &mut String, text: &str) {
    if is_plain(text) {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).expect("a string serializes"));
    }
}

/// Parses one text frame.
pub fn parse_inbound(text: &str) -> Result<Inbound<'_>, ProtocolError> {
    let members: MemberList<'_> = match scan::object_members(text) {
        Some(members) => members,
        // Anything the fast scanner is unsure about, serde_json decides (and words the error).
        None => {
            if nesting_exceeds(text, MAX_NESTING) {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidMessage,
                    format!(
                        "the message nests arrays and objects deeper than {MAX_NESTING} levels"
                    ),
                ));
            }
            let Members(members) = serde_json::from_str(text)
                .map_err(|_| ProtocolError::from(ErrorCode::InvalidJson))?;
            members
                .into_iter()
                .map(|(name, value)| (name, value.get()))
                .collect()
        }
    };

    let kind = unique_member(&members, "type")?
        .ok_or_else(|| ProtocolError::new(ErrorCode::InvalidMessage, "the message has no type"))?;
    let kind = raw_string(kind).ok_or_else(|| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            "the message type is not a string",
        )
    })?;
    let relay_kind = match kind.as_ref() {
        "register" => {
            let key = unique_member(&members, "publicKey")?.ok_or_else(|| {
                ProtocolError::new(ErrorCode::InvalidMessage, "register needs a publicKey")
            })?;
            if !key.starts_with('{') {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidMessage,
                    "publicKey must be a JWK object",
                ));
            }
            let proof = unique_member(&members, "proof")?;
            let token = unique_member(&members, "token")?
                .map(|token| {
                    raw_string(token).ok_or_else(|| {
                        ProtocolError::new(ErrorCode::InvalidMessage, "token must be a string")
                    })
                })
                .transpose()?;
            return Ok(Inbound::Register(Register {
                public_key: key,
                proof,
                token,
            }));
        }
        "ping" => return Ok(Inbound::Ping),
        "offer" => RelayKind::Offer,
        "answer" => RelayKind::Answer,
        "ice-candidate" => RelayKind::IceCandidate,
        other => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                format!("unknown message type {:?}", truncate_chars(other, 40)),
            ));
        }
    };
    let to = unique_member(&members, "to")?
        .ok_or_else(|| ProtocolError::new(ErrorCode::InvalidMessage, "the message has no to"))?;
    let to = raw_string(to).ok_or_else(|| {
        ProtocolError::new(ErrorCode::InvalidMessage, "to must be a peer ID string")
    })?;
    Ok(Inbound::Relay(Relay {
        kind: relay_kind,
        to,
        members,
    }))
}

/// Whether `text` nests `[` / `{` deeper than `limit`, not counting brackets inside strings.
/// Only run on frames the fast scanner declined (which it does past the same depth).
fn nesting_exceeds(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Finds a member that routing depends on. Two of them would make the route ambiguous, and
/// different JSON parsers pick different ones, so a duplicate is refused rather than guessed.
fn unique_member<'a>(
    members: &[(Cow<'a, str>, &'a str)],
    name: &str,
) -> Result<Option<&'a str>, ProtocolError> {
    let mut found = members.iter().filter(|(key, _)| key == name);
    let first = found.next().map(|(_, value)| *value);
    if found.next().is_some() {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("the message has more than one {name}"),
        ));
    }
    Ok(first)
}

/// The value of a raw JSON string (`None` if `text` is some other JSON value).
fn raw_string(text: &str) -> Option<Cow<'_, str>> {
    if !text.starts_with('"') {
        return None;
    }
    // Already validated as a JSON string: without escapes, it is the text between the quotes.
    if !text.contains('\\') {
        return Some(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// At most the first `max` characters of `text`, for quoting client input in messages.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Members in order, values as raw JSON text.
type MemberList<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// A JSON object as its members in order, values left as raw JSON (the general parser).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name, borrowed from the frame unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_for_relayed_messages() {
        let nested = |levels: usize| {
            // The message object is level 1; `sdp` and what it holds are the rest.
            let inner = levels - 1;
            format!(
                r#"{{"type":"offer","to":"b","sdp":{}1{}}}"#,
                "[".repeat(inner),
                "]".repeat(inner)
            )
        };
        assert!(parse_inbound(&nested(MAX_NESTING)).is_ok());
        for levels in [MAX_NESTING + 1, 200, 10_000] {
            let Err(error) = parse_inbound(&nested(levels)) else {
                panic!("{levels} levels accepted");
            };
            assert_eq!(error.code, ErrorCode::InvalidMessage, "{levels}");
        }
        // Brackets inside strings do not count.
        let text = format!(
            r#"{{"type":"offer","to":"b","sdp":"{}\"["}}"#,
            "[".repeat(500)
        );
        assert!(parse_inbound(&text).is_ok());
        assert!(!nesting_exceeds(&text, 2));
    }

    fn sender() -> PeerId {
        "a".repeat(64).parse().unwrap()
    }

    fn code_of(text: &str) -> ErrorCode {
        parse_inbound(text).unwrap_err().code
    }

    #[test]
    fn relay_rewrites_to_into_from_and_keeps_everything_else_in_order() {
        let text = r#"{"sdp":{"type":"offer","sdp":"v=0\r\n"},"from":"forged","to":"bob","type":"offer","x-extra":[1, 2]}"#;
        let Inbound::Relay(relay) = parse_inbound(text).unwrap() else {
            panic!("expected a relay")
        };
        assert_eq!(relay.kind, RelayKind::Offer);
        assert_eq!(relay.to, "bob");
        let expected = format!(
            r#"{{"type":"offer","from":"{}","sdp":{{"type":"offer","sdp":"v=0\r\n"}},"x-extra":[1, 2]}}"#,
            sender()
        );
        assert_eq!(relay.forward_text(&sender()), expected);
    }

    #[test]
    fn escaped_member_names_and_types_are_understood() {
        let text = r#"{"type":"ice-c\u0061ndidate","t\u006f":"bob","qu\"ote":1}"#;
        let Inbound::Relay(relay) = parse_inbound(text).unwrap() else {
            panic!("expected a relay")
        };
        assert_eq!(relay.kind, RelayKind::IceCandidate);
        assert_eq!(relay.to, "bob");
        assert!(relay.forward_text(&sender()).ends_with(r#","qu\"ote":1}"#));

        let escaped_value = r#"{"type":"offer","to":"b\u006fb"}"#;
        let Inbound::Relay(relay) = parse_inbound(escaped_value).unwrap() else {
            panic!("expected a relay")
        };
        assert_eq!(relay.to, "bob");
    }

    #[test]
    fn register_keeps_the_key_text_exactly() {
        let text = r#"{"type":"register","publicKey":{ "kty" : "EC" }}"#;
        let Inbound::Register(register) = parse_inbound(text).unwrap() else {
            panic!("expected register")
        };
        assert_eq!(register.public_key, r#"{ "kty" : "EC" }"#);
    }

    #[test]
    fn malformed_messages_get_the_right_code() {
        assert_eq!(code_of("not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(code_of(r#""offer""#), ErrorCode::InvalidJson);
        assert_eq!(code_of(r#"{"type":"offer""#), ErrorCode::InvalidJson);
        assert_eq!(code_of("{}"), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#"{"type":7}"#), ErrorCode::InvalidMessage);
        assert_eq!(code_of(r#"{"type":"offer"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code_of(r#"{"type":"offer","to":5}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"type":"offer","to":"a","to":"b"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code_of(r#"{"type":"register"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code_of(r#"{"type":"register","publicKey":"k"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code_of(r#"{"type":"hello"}"#), ErrorCode::UnknownType);
        assert!(matches!(
            parse_inbound(r#"{"type":"ping"}"#),
            Ok(Inbound::Ping)
        ));
    }
}
