//! Checking a token: its size and shape, a configured key that allows its algorithm, the
//! signature, the times, the audience and issuer, and the room. What it grants comes back
//! as a [`Grant`]; the peer binding is checked once the peer's key is known.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};

use super::claims::{Claims, MAX_PEERS_CLAIM, RoomGrant};
use super::keys::{VerifyingKey, names};
use crate::identity::PeerId;
use crate::protocol::{ErrorCode, truncate_chars};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, either way.
pub const LEEWAY_SECONDS: u64 = 60;
/// Longest token accepted. Real ones are a few hundred bytes (RSA-4096: under 1 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused; each maps to one error code (PROTOCOL §13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this server requires an access token with register")]
    Required,
    #[error("the access token is not valid: {0}")]
    Invalid(String),
    #[error("the access token has expired")]
    Expired,
    #[error("the access token does not grant this room (it grants {0})")]
    RoomForbidden(String),
    #[error("the access token was issued to another peer")]
    PeerMismatch,
}

impl TokenError {
    /// The `error` code it is reported with (PROTOCOL §5), also the label of the refusal
    /// counter.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Required => ErrorCode::TokenRequired,
            Self::Invalid(_) => ErrorCode::TokenInvalid,
            Self::Expired => ErrorCode::TokenExpired,
            Self::RoomForbidden(_) => ErrorCode::RoomForbidden,
            Self::PeerMismatch => ErrorCode::TokenPeerMismatch,
        }
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub rooms: RoomGrant,
    /// The peer ID the token was issued to (`sub`), if it is bound to one.
    pub peer: Option<String>,
    /// The room's size when the holder is the first to join it.
    pub max_peers: Option<u32>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

impl Grant {
    /// A token bound to a peer (`sub`) serves that peer only.
    pub fn check_peer(&self, id: &PeerId) -> Result<(), TokenError> {
        match &self.peer {
            Some(peer) if peer != id.as_str() => Err(TokenError::PeerMismatch),
            _ => Ok(()),
        }
    }
}

/// What a server checks besides the signature.
#[derive(Debug, Clone, Default)]
pub struct VerifierOptions {
    /// Required `aud` values (a token must name one of them); none: `aud` is not read.
    pub audience: Vec<String>,
    /// Required `iss` values; none: `iss` is not read.
    pub issuer: Vec<String>,
}

/// The keys in force and the checks to make.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    options: VerifierOptions,
}

impl Verifier {
    pub fn new(keys: Vec<VerifyingKey>, options: VerifierOptions) -> Self {
        Self { keys, options }
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Checks `token` for `room` (`None`: any room, for `rdv token --verify`). The cheap
    /// refusals (size, shape, a key for its algorithm) come before any signature check.
    pub fn verify(&self, token: &str, room: Option<&str>) -> Result<Grant, TokenError> {
        let invalid = |why: String| TokenError::Invalid(why);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "it is {} bytes; the limit is {MAX_TOKEN_BYTES}",
                token.len()
            )));
        }
        let header = decode_header(token)
            .map_err(|e| invalid(format!("not a signed JWT ({})", describe(e.kind()))))?;
        let candidates: Vec<&VerifyingKey> = self
            .keys
            .iter()
            .filter(|key| key.algorithms.contains(&header.alg))
            .filter(|key| match (&header.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            let kid = header
                .kid
                .as_deref()
                .map(|kid| format!(" and kid {:?}", truncate_chars(kid, 40)))
                .unwrap_or_default();
            let allowed: Vec<_> = self
                .keys
                .iter()
                .flat_map(|key| key.algorithms.iter().copied())
                .collect();
            return Err(invalid(format!(
                "no key of this server takes {:?}{kid} (they take {})",
                header.alg,
                names(&dedup(allowed))
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if self.options.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.options.audience);
            required.push("aud");
        }
        if !self.options.issuer.is_empty() {
            validation.set_issuer(&self.options.issuer);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        let mut last = None;
        for key in candidates {
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return grant(data.claims, room),
                // Another key (a rotation's old and new) may still match.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => last = Some(e),
                Err(e) => return Err(refusal(e.kind())),
            }
        }
        Err(refusal(last.expect("at least one candidate").kind()))
    }
}

/// A token's header and claims as written, *not verified*: for showing someone what a token
/// says next to the verdict (`rdv token --verify`), never for deciding anything.
pub fn unverified_parts(token: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, claims) = (parts.next()?, parts.next()?);
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&crate::identity::base64url_decode(part).ok()?).ok()
    };
    Some((decode(header)?, decode(claims)?))
}

/// The claims rdv adds to the library's checks.
fn grant(claims: Claims, room: Option<&str>) -> Result<Grant, TokenError> {
    let now = super::now_seconds();
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
        return Err(TokenError::Invalid(
            "it was issued in the future (iat)".into(),
        ));
    }
    let rooms = claims
        .room
        .ok_or_else(|| TokenError::Invalid("it has no room claim".into()))?;
    if rooms.is_empty() {
        return Err(TokenError::Invalid("its room claim is empty".into()));
    }
    if let Some(room) = room
        && !rooms.allows(room)
    {
        return Err(TokenError::RoomForbidden(rooms.to_string()));
    }
    let max_peers = match claims.max_peers {
        None => None,
        Some(n @ 1..=MAX_PEERS_CLAIM) => Some(n as u32),
        Some(n) => {
            return Err(TokenError::Invalid(format!(
                "max_peers {n} is not between 1 and {MAX_PEERS_CLAIM}"
            )));
        }
    };
    Ok(Grant {
        rooms,
        peer: claims.sub,
        max_peers,
        expires_at: claims.exp,
    })
}

fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        other => TokenError::Invalid(describe(other)),
    }
}

/// The library's error, in words for the client.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the signature does not match this server's keys".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "it is for another audience (aud)".into(),
        ErrorKind::InvalidIssuer => "it is from another issuer (iss)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("its {claim} claim has the wrong type"),
        ErrorKind::Json(e) => format!("a member has the wrong type ({e})"),
        ErrorKind::Base64(_) => "a part is not base64url".into(),
        ErrorKind::Utf8(_) => "a part is not UTF-8".into(),
        ErrorKind::InvalidToken => "it is not three dot-separated parts".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "its algorithm is not one this server takes".into()
        }
        other => format!("{other:?}"),
    }
}

fn dedup(mut algorithms: Vec<jsonwebtoken::Algorithm>) -> Vec<jsonwebtoken::Algorithm> {
    let mut seen = Vec::new();
    algorithms.retain(|a| {
        let new = !seen.contains(a);
        seen.push(*a);
        new
    });
    algorithms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{EcCurve, KeySpec, PrivateKey, base64url};
    use crate::token::{MintRequest, mint, parse_signing_key, parse_verifying_keys};
    use std::time::Duration;

    fn request(room: &str) -> MintRequest {
        MintRequest::new(vec![room.into()], Duration::from_secs(600))
    }

    fn pair(spec: KeySpec) -> (super::super::SigningKey, Verifier) {
        let private = PrivateKey::generate(spec).unwrap();
        let signing = parse_signing_key(&private.to_pkcs8_pem(), None).unwrap();
        let keys = parse_verifying_keys(&private.public_pem()).unwrap();
        (signing, Verifier::new(keys, VerifierOptions::default()))
    }

    /// A token with these claims, signed by `key`, not going through `mint`.
    fn signed(key: &super::super::SigningKey, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&jsonwebtoken::Header::new(key.algorithm), &claims, &key.key).unwrap()
    }

    #[test]
    fn every_key_type_round_trips() {
        for spec in [
            KeySpec::Ec(EcCurve::P256),
            KeySpec::Ec(EcCurve::P384),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            let (key, verifier) = pair(spec);
            let token = mint(&key, &request("lobby"), super::super::now_seconds()).unwrap();
            let grant = verifier.verify(&token, Some("lobby")).unwrap();
            assert_eq!(grant.rooms, RoomGrant::One("lobby".into()), "{spec}");
            assert_eq!(
                verifier.verify(&token, Some("other")),
                Err(TokenError::RoomForbidden("\"lobby\"".into()))
            );
        }
    }

    #[test]
    fn times_are_checked_with_a_minute_of_leeway() {
        let (key, verifier) = pair(KeySpec::Ed25519);
        let now = super::super::now_seconds();
        let with = |claims: serde_json::Value| verifier.verify(&signed(&key, claims), None);
        assert_eq!(
            with(serde_json::json!({"room": "a", "exp": now - 120})),
            Err(TokenError::Expired)
        );
        assert!(with(serde_json::json!({"room": "a", "exp": now - 30})).is_ok());
        let early = with(serde_json::json!({"room": "a", "exp": now + 600, "nbf": now + 120}));
        assert!(
            matches!(early, Err(TokenError::Invalid(ref why)) if why.contains("nbf")),
            "{early:?}"
        );
        let future = with(serde_json::json!({"room": "a", "exp": now + 600, "iat": now + 120}));
        assert!(
            matches!(future, Err(TokenError::Invalid(ref why)) if why.contains("iat")),
            "{future:?}"
        );
        let no_exp = with(serde_json::json!({"room": "a"}));
        assert!(
            matches!(no_exp, Err(TokenError::Invalid(ref why)) if why.contains("exp")),
            "{no_exp:?}"
        );
        let no_room = with(serde_json::json!({"exp": now + 60}));
        assert!(
            matches!(no_room, Err(TokenError::Invalid(ref why)) if why.contains("room")),
            "{no_room:?}"
        );
    }

    #[test]
    fn the_algorithm_comes_from_the_key_not_the_token() {
        let private = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
        let verifier = Verifier::new(
            parse_verifying_keys(&private.public_pem()).unwrap(),
            VerifierOptions::default(),
        );
        let now = super::super::now_seconds();
        let claims = serde_json::json!({"room": "a", "exp": now + 600});
        // HS256 "signed" with the public key's bytes, the classic confusion attack.
        let confused = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(private.public_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let refused = verifier.verify(&confused, None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("HS256")),
            "{refused:?}"
        );
        // alg: none, with no signature at all.
        let none = format!(
            "{}.{}.",
            base64url(br#"{"alg":"none","typ":"JWT"}"#),
            base64url(claims.to_string().as_bytes())
        );
        assert!(matches!(
            verifier.verify(&none, None),
            Err(TokenError::Invalid(_))
        ));
        // A token signed by another key of the same type.
        let (other, _) = pair(KeySpec::Rsa { bits: 2048 });
        let forged = signed(&other, claims);
        let refused = verifier.verify(&forged, None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("signature")),
            "{refused:?}"
        );
    }

    #[test]
    fn malformed_and_oversized_tokens_are_invalid() {
        let (key, verifier) = pair(KeySpec::Ec(EcCurve::P256));
        let token = mint(&key, &request("a"), super::super::now_seconds()).unwrap();
        for broken in [
            &token[..token.len() / 2],
            "",
            "a.b",
            "not a token",
            &format!("{token}x"),
        ] {
            assert!(
                matches!(verifier.verify(broken, None), Err(TokenError::Invalid(_))),
                "{broken}"
            );
        }
        let huge = "a".repeat(1 << 20);
        let refused = verifier.verify(&huge, None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("limit")),
            "{refused:?}"
        );
    }

    #[test]
    fn audience_issuer_peer_and_room_size() {
        let private = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let signing = parse_signing_key(&private.to_pkcs8_pem(), None).unwrap();
        let verifier = Verifier::new(
            parse_verifying_keys(&private.public_pem()).unwrap(),
            VerifierOptions {
                audience: vec!["rdv".into()],
                issuer: vec!["https://app.example".into()],
            },
        );
        let now = super::super::now_seconds();
        let peer = private.public().peer_id();
        let mut good = request("team-*");
        good.audience = Some("rdv".into());
        good.issuer = Some("https://app.example".into());
        good.peer = Some(peer.to_string());
        good.max_peers = Some(4);
        let grant = verifier
            .verify(&mint(&signing, &good, now).unwrap(), Some("team-red"))
            .unwrap();
        assert_eq!(
            (grant.max_peers, grant.check_peer(&peer)),
            (Some(4), Ok(()))
        );
        let stranger = PrivateKey::generate(KeySpec::Ed25519)
            .unwrap()
            .public()
            .peer_id();
        assert_eq!(grant.check_peer(&stranger), Err(TokenError::PeerMismatch));
        let mut other_aud = good.clone();
        other_aud.audience = Some("elsewhere".into());
        let refused = verifier.verify(&mint(&signing, &other_aud, now).unwrap(), None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("aud")),
            "{refused:?}"
        );
        let mut no_iss = good.clone();
        no_iss.issuer = None;
        let refused = verifier.verify(&mint(&signing, &no_iss, now).unwrap(), None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("iss")),
            "{refused:?}"
        );
        let zero = signed(
            &signing,
            serde_json::json!({"room": "a", "exp": now + 60, "aud": "rdv",
            "iss": "https://app.example", "max_peers": 0}),
        );
        assert!(matches!(
            verifier.verify(&zero, None),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_kid_picks_its_key_and_rotation_tries_each() {
        let old = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
        let new = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
        let set = serde_json::json!({"keys": [old.public().to_public_json(), new.public().to_public_json()]});
        let verifier = Verifier::new(
            parse_verifying_keys(&set.to_string()).unwrap(),
            VerifierOptions::default(),
        );
        let now = super::super::now_seconds();
        for private in [&old, &new] {
            // Without a kid in the keys, every ES256 key is tried.
            let mut key = parse_signing_key(&private.to_pkcs8_pem(), None).unwrap();
            assert!(
                verifier
                    .verify(&mint(&key, &request("a"), now).unwrap(), None)
                    .is_ok()
            );
            key.kid = Some("nobody".into());
            assert!(
                verifier
                    .verify(&mint(&key, &request("a"), now).unwrap(), None)
                    .is_ok()
            );
        }
        // With kids, a token naming one is checked with that key only.
        let with_kids = serde_json::json!({"keys": [old.to_jwk(), new.to_jwk()]});
        let verifier = Verifier::new(
            parse_verifying_keys(&with_kids.to_string()).unwrap(),
            VerifierOptions::default(),
        );
        let mut key = parse_signing_key(&old.to_jwk().to_string(), None).unwrap();
        assert!(
            verifier
                .verify(&mint(&key, &request("a"), now).unwrap(), None)
                .is_ok()
        );
        key.kid = Some(new.public().peer_id().to_string());
        let refused = verifier.verify(&mint(&key, &request("a"), now).unwrap(), None);
        assert!(
            matches!(refused, Err(TokenError::Invalid(ref why)) if why.contains("signature")),
            "{refused:?}"
        );
    }
}
