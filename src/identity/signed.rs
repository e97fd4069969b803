//! Signed offers and answers (PROTOCOL §12): a sender signs each description with the key
//! whose hash is its peer ID, so a receiver that knows that key can tell whether the SDP —
//! and the DTLS fingerprint in it — is the sender's, meant for it, and recent, whatever the
//! signaling server did on the way.
//!
//! The signed bytes are lines joined with `\n`, the free-form SDP last, so that any
//! implementation builds them with string concatenation and no canonical JSON:
//!
//! ```text
//! rdv-signed-description/1
//! <sender peer ID>
//! <receiver peer ID>
//! <description type: offer or answer>
//! <timestamp: milliseconds since the Unix epoch, decimal>
//! <the SDP text, as is>
//! ```
//!
//! The algorithms are those of proof of possession (§9). Time is a parameter: this module
//! reads no clock.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::b64::{decode as base64url_decode, encode as base64url};
use super::jwk::PublicJwk;
use super::private::PrivateKey;
use super::proof::{ProofError, check_proof_form};

/// The first line of the signed bytes: what they are, and the layout's version.
pub const CONTEXT: &str = "rdv-signed-description/1";

/// How far a signature's timestamp may be from the receiver's clock, either way: room for
/// clocks that disagree, not for replaying a description much later.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// The bytes a signature covers.
pub fn signed_bytes(from: &str, to: &str, kind: &str, timestamp_ms: u64, sdp: &str) -> Vec<u8> {
    format!("{CONTEXT}\n{from}\n{to}\n{kind}\n{timestamp_ms}\n{sdp}").into_bytes()
}

/// The description of an `offer` or `answer` message: its type and SDP text, if the message
/// is one and carries them as `{"sdp":{"type","sdp"}}` with the same type.
fn description(message: &Value) -> Option<(&str, &str)> {
    let kind = message.get("type")?.as_str()?;
    if !matches!(kind, "offer" | "answer") {
        return None;
    }
    let sdp = message.get("sdp")?;
    let inner_kind = sdp.get("type")?.as_str()?;
    let text = sdp.get("sdp")?.as_str()?;
    (inner_kind == kind).then_some((kind, text))
}

/// Adds a `signature` member to an outgoing `offer` or `answer` for `to` (its `to` member),
/// signed by `key` as peer `from`. Returns whether the message was one to sign.
pub fn sign_description(
    message: &mut Value,
    key: &PrivateKey,
    from: &str,
    now_ms: u64,
) -> Result<bool, ProofError> {
    let Some(to) = message.get("to").and_then(Value::as_str) else {
        return Ok(false);
    };
    let Some((kind, sdp)) = description(message) else {
        return Ok(false);
    };
    let alg = key.proof_alg();
    let bytes = signed_bytes(from, to, kind, now_ms, sdp);
    let signature = key.sign_message(alg, &bytes)?;
    message["signature"] = json!({
        "alg": alg.name(),
        "ts": now_ms,
        "sig": base64url(&signature),
    });
    Ok(true)
}

/// What a receiver concludes about a description's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by the sender's key, for this receiver, recently.
    Valid,
    /// No `signature` member.
    Missing,
    Invalid(Invalid),
}

/// Why a signature does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// `signature` is not `{"alg","ts","sig"}` with a number and base64url, or the message
    /// has no `{"sdp":{"type","sdp"}}` of its own type.
    Malformed,
    /// The receiver does not know the sender's key (it never announced it).
    UnknownSender,
    /// `alg` is not one of §9's, or does not fit the sender's key.
    WrongAlgorithm,
    /// The timestamp is more than [`MAX_SKEW_MS`] from the receiver's clock.
    Stale,
    /// The signature does not verify: the SDP or the type was changed, it was signed for
    /// another receiver, or not by this sender's key.
    BadSignature,
    /// The same signature was seen before (see [`SeenSignatures`]).
    Replayed,
}

impl Invalid {
    /// The reason as the clients report it (`rdv peer`'s `signatureCheck.reason`, rdv.js).
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::UnknownSender => "unknown-sender",
            Invalid::WrongAlgorithm => "wrong-algorithm",
            Invalid::Stale => "stale",
            Invalid::BadSignature => "bad-signature",
            Invalid::Replayed => "replayed",
        }
    }
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Missing => "missing",
            Verdict::Invalid(_) => "invalid",
        }
    }
}

/// Checks a received `offer` or `answer` (as the server forwards it, with `from`) against
/// its sender's key, for `receiver` (this peer's ID) at `now_ms`. Replays are the caller's
/// to track ([`SeenSignatures`]).
pub fn verify_description(
    message: &Value,
    sender_key: Option<&PublicJwk>,
    receiver: &str,
    now_ms: u64,
) -> Verdict {
    let Some(signature) = message.get("signature") else {
        return Verdict::Missing;
    };
    let fields = (
        message.get("from").and_then(Value::as_str),
        description(message),
        signature.get("alg").and_then(Value::as_str),
        signature.get("ts").and_then(Value::as_u64),
        signature
            .get("sig")
            .and_then(Value::as_str)
            .and_then(|sig| base64url_decode(sig).ok()),
    );
    let (Some(from), Some((kind, sdp)), Some(alg), Some(ts), Some(sig)) = fields else {
        return Verdict::Invalid(Invalid::Malformed);
    };
    let Some(key) = sender_key else {
        return Verdict::Invalid(Invalid::UnknownSender);
    };
    if now_ms.abs_diff(ts) > MAX_SKEW_MS {
        return Verdict::Invalid(Invalid::Stale);
    }
    let form = match check_proof_form(key, alg, &sig) {
        Ok(form) => form,
        Err(ProofError::SignatureLength { .. }) => return Verdict::Invalid(Invalid::BadSignature),
        Err(_) => return Verdict::Invalid(Invalid::WrongAlgorithm),
    };
    match form.verify_message(&signed_bytes(from, receiver, kind, ts, sdp)) {
        Ok(()) => Verdict::Valid,
        Err(_) => Verdict::Invalid(Invalid::BadSignature),
    }
}

/// The valid signatures seen within the skew window, so that a description replayed while
/// its timestamp is still fresh is refused too. Bounded by what arrives in one window.
#[derive(Debug, Default)]
pub struct SeenSignatures {
    /// The signature's bytes (base64url) and its timestamp.
    seen: HashMap<String, u64>,
}

impl SeenSignatures {
    /// Records a valid signature; false if it was seen before.
    pub fn first_time(&mut self, message: &Value, now_ms: u64) -> bool {
        let Some(signature) = message.get("signature") else {
            return true;
        };
        let (Some(sig), Some(ts)) = (
            signature.get("sig").and_then(Value::as_str),
            signature.get("ts").and_then(Value::as_u64),
        ) else {
            return true;
        };
        self.seen
            .retain(|_, seen_ts| now_ms.abs_diff(*seen_ts) <= MAX_SKEW_MS);
        self.seen.insert(sig.to_owned(), ts).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EcCurve, KeySpec, PrivateMembers};

    const NOW: u64 = 1_764_800_000_000;

    fn offer(to: &str) -> Value {
        json!({
            "type": "offer",
            "to": to,
            "sdp": {"type": "offer", "sdp": "v=0\r\na=fingerprint:sha-256 AB:CD\r\n"},
        })
    }

    /// The message as the receiver gets it: `to` removed, `from` set by the server.
    fn forwarded(mut message: Value, from: &str) -> Value {
        let object = message.as_object_mut().unwrap();
        object.remove("to");
        object.insert("from".into(), from.into());
        message
    }

    fn every_kind() -> Vec<PrivateKey> {
        vec![
            PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap(),
            PrivateKey::generate(KeySpec::Ec(EcCurve::P384)).unwrap(),
            PrivateKey::generate(KeySpec::Ec(EcCurve::P521)).unwrap(),
            PrivateKey::generate(KeySpec::Ed25519).unwrap(),
            PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap(),
        ]
    }

    #[test]
    fn a_signed_description_verifies_for_its_receiver_and_nothing_else() {
        let bob = "b".repeat(64);
        for key in every_kind() {
            let alice = key.public().peer_id().to_string();
            let public = key.public();
            let mut message = offer(&bob);
            assert!(sign_description(&mut message, &key, &alice, NOW).unwrap());
            let received = forwarded(message.clone(), &alice);
            assert_eq!(
                verify_description(&received, Some(&public), &bob, NOW + 1000),
                Verdict::Valid,
                "{:?}",
                public.kind()
            );
            let bad = Verdict::Invalid(Invalid::BadSignature);
            // Another receiver, another claimed sender, one byte of SDP, the type.
            let carol = "c".repeat(64);
            assert_eq!(
                verify_description(&received, Some(&public), &carol, NOW),
                bad
            );
            let relabelled = forwarded(message.clone(), &carol);
            assert_eq!(
                verify_description(&relabelled, Some(&public), &bob, NOW),
                bad
            );
            let mut altered = received.clone();
            altered["sdp"]["sdp"] = "v=0\r\na=fingerprint:sha-256 AB:CE\r\n".into();
            assert_eq!(verify_description(&altered, Some(&public), &bob, NOW), bad);
            let mut retyped = received.clone();
            retyped["type"] = "answer".into();
            retyped["sdp"]["type"] = "answer".into();
            assert_eq!(verify_description(&retyped, Some(&public), &bob, NOW), bad);
            // Too old, or from the future, beyond the window.
            let later = NOW + MAX_SKEW_MS + 1;
            assert_eq!(
                verify_description(&received, Some(&public), &bob, later),
                Verdict::Invalid(Invalid::Stale)
            );
            // Someone else's key.
            let other = PrivateKey::generate(KeySpec::Ed25519).unwrap().public();
            assert_ne!(
                verify_description(&received, Some(&other), &bob, NOW),
                Verdict::Valid
            );
        }
    }

    #[test]
    fn missing_malformed_and_unknown_are_told_apart() {
        let bob = "b".repeat(64);
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let alice = key.public().peer_id().to_string();
        let unsigned = forwarded(offer(&bob), &alice);
        assert_eq!(
            verify_description(&unsigned, Some(&key.public()), &bob, NOW),
            Verdict::Missing
        );
        let mut message = offer(&bob);
        sign_description(&mut message, &key, &alice, NOW).unwrap();
        let received = forwarded(message, &alice);
        assert_eq!(
            verify_description(&received, None, &bob, NOW),
            Verdict::Invalid(Invalid::UnknownSender)
        );
        let mut no_sdp = received.clone();
        no_sdp["sdp"] = json!("v=0");
        assert_eq!(
            verify_description(&no_sdp, Some(&key.public()), &bob, NOW),
            Verdict::Invalid(Invalid::Malformed)
        );
        let mut wrong_alg = received.clone();
        wrong_alg["signature"]["alg"] = "ES256".into();
        assert_eq!(
            verify_description(&wrong_alg, Some(&key.public()), &bob, NOW),
            Verdict::Invalid(Invalid::WrongAlgorithm)
        );
        // Candidates and other messages are not signed.
        let mut candidate = json!({"type": "ice-candidate", "to": bob, "candidate": {}});
        assert!(!sign_description(&mut candidate, &key, &alice, NOW).unwrap());
    }

    #[test]
    fn a_signature_is_accepted_once() {
        let bob = "b".repeat(64);
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let alice = key.public().peer_id().to_string();
        let mut message = offer(&bob);
        sign_description(&mut message, &key, &alice, NOW).unwrap();
        let mut seen = SeenSignatures::default();
        assert!(seen.first_time(&message, NOW));
        assert!(!seen.first_time(&message, NOW + 10));
        // Past the window it is forgotten (and would be refused as stale anyway).
        assert!(seen.first_time(&message, NOW + 2 * MAX_SKEW_MS + 1));
    }

    /// The vectors of PROTOCOL §12, kept in tests/data/: Ed25519 signatures are
    /// deterministic, so the signature itself is checked; the others verify.
    #[test]
    fn the_protocol_vectors_hold() {
        let vectors: Value =
            serde_json::from_str(crate::identity::test_vectors::SIGNED_DESCRIPTIONS).unwrap();
        for vector in vectors["vectors"].as_array().unwrap() {
            let public =
                PublicJwk::from_json(&vector["publicKey"], PrivateMembers::Ignore).unwrap();
            let input = &vector["input"];
            let bytes = signed_bytes(
                input["from"].as_str().unwrap(),
                input["to"].as_str().unwrap(),
                input["type"].as_str().unwrap(),
                input["ts"].as_u64().unwrap(),
                input["sdp"].as_str().unwrap(),
            );
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                vector["signedBytes"].as_str().unwrap()
            );
            assert_eq!(
                public.peer_id().as_str(),
                input["from"].as_str().unwrap(),
                "the sender is the key's peer ID"
            );
            let message = &vector["message"];
            assert_eq!(
                verify_description(
                    message,
                    Some(&public),
                    input["to"].as_str().unwrap(),
                    input["ts"].as_u64().unwrap()
                ),
                Verdict::Valid,
                "{}",
                vector["name"]
            );
            if let Some(private) = vector.get("privateKey") {
                let key = PrivateKey::from_jwk(private).unwrap();
                let mut fresh = json!({
                    "type": input["type"],
                    "to": input["to"],
                    "sdp": {"type": input["type"], "sdp": input["sdp"]},
                });
                sign_description(
                    &mut fresh,
                    &key,
                    input["from"].as_str().unwrap(),
                    input["ts"].as_u64().unwrap(),
                )
                .unwrap();
                assert_eq!(fresh["signature"], message["signature"]);
            }
        }
    }
}
