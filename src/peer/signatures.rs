//! Signed offers and answers for the terminal peer (PROTOCOL §12): what it sends is signed
//! with its key; what it receives is checked against the sender's announced key, and the
//! result is added to the message as one member, `signatureCheck`, so a script can read it.

use serde_json::{Value, json};

use super::room::RoomView;
use crate::identity::{
    PrivateKey, SeenSignatures, SignatureVerdict, sign_description, verify_description,
};

/// The member `rdv peer` adds to the offers and answers it prints (and that `--until` can
/// test): `{"result":"valid"|"missing"|"invalid","reason":…}`.
pub const MEMBER: &str = "signatureCheck";

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Adds a signature to `message` if it is an offer or answer with a `to`; whether it did.
pub fn sign_outgoing(message: &mut Value, key: &PrivateKey, me: &str) -> bool {
    matches!(sign_description(message, key, me, now_ms()), Ok(true))
}

/// The verdict on a received offer or answer; `None` for any other message.
pub fn check_incoming(
    message: &Value,
    room: &RoomView,
    seen: &mut SeenSignatures,
) -> Option<SignatureVerdict> {
    let kind = message.get("type")?.as_str()?;
    if !matches!(kind, "offer" | "answer") {
        return None;
    }
    let key = message
        .get("from")
        .and_then(Value::as_str)
        .and_then(|from| room.get(from))
        .and_then(|peer| peer.key.as_ref());
    let now = now_ms();
    let verdict = verify_description(message, key, room.me().as_str(), now);
    if verdict == SignatureVerdict::Valid && !seen.first_time(message, now) {
        return Some(SignatureVerdict::Invalid(
            crate::identity::SignatureInvalid::Replayed,
        ));
    }
    Some(verdict)
}

/// The `signatureCheck` member's value.
pub fn describe(verdict: SignatureVerdict) -> Value {
    match verdict {
        SignatureVerdict::Invalid(reason) => {
            json!({"result": verdict.as_str(), "reason": reason.as_str()})
        }
        _ => json!({"result": verdict.as_str()}),
    }
}

/// `raw` (a JSON object as the server sent it) with the `signatureCheck` member added last,
/// everything else byte for byte.
pub fn annotate(raw: &str, verdict: SignatureVerdict) -> String {
    let trimmed = raw.trim_end();
    let Some(body) = trimmed.strip_suffix('}') else {
        return raw.to_owned();
    };
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{body}{separator}\"{MEMBER}\":{}}}", describe(verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SignatureInvalid;

    #[test]
    fn the_check_is_added_and_nothing_else_changes() {
        let raw = r#"{"type":"offer","from":"ab","sdp":{"type":"offer","sdp":"v=0"}}"#;
        let annotated = annotate(raw, SignatureVerdict::Valid);
        assert_eq!(
            annotated,
            r#"{"type":"offer","from":"ab","sdp":{"type":"offer","sdp":"v=0"},"signatureCheck":{"result":"valid"}}"#
        );
        let value: Value = serde_json::from_str(&annotate(
            raw,
            SignatureVerdict::Invalid(SignatureInvalid::Stale),
        ))
        .unwrap();
        assert_eq!(value[MEMBER]["reason"], "stale");
        assert_eq!(
            annotate("{}", SignatureVerdict::Missing),
            r#"{"signatureCheck":{"result":"missing"}}"#
        );
    }
}
