//! The keys tokens are signed and checked with, read from the text of a key file: one JWK,
//! a JWK Set, PEM keys, or a shared secret. Each key carries the algorithms it allows, which
//! come from its type (and its JWK `alg`, if it names one), never from a token: an `alg:
//! none` token or an HS256 token "signed" with a public key's bytes finds no key to check it.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::Value;

use crate::identity::{
    self, EcCurve, KeyKind, OkpCurve, PrivateKey, PrivateMembers, PublicJwk, base64url,
    base64url_decode,
};

/// Shortest HMAC secret accepted: RFC 7518 §3.2 asks for at least the hash's size.
pub const MIN_SECRET_BYTES: usize = 32;
/// Smallest RSA modulus accepted for tokens.
const MIN_RSA_BITS: usize = 2048;

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const HMAC_ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// A key tokens are checked with.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The JWK's `kid`: a token naming a `kid` is checked only with the keys that have it
    /// (or have none).
    pub kid: Option<String>,
    /// What the key allows, most usual first.
    pub algorithms: Vec<Algorithm>,
    /// Where it came from, for messages: "JWK Set member 2", "PEM block 1", "secret".
    pub label: String,
    pub(super) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (a secret above all).
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A key tokens are signed with.
pub struct SigningKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    /// The peer ID of an asymmetric key; `None` for a secret.
    pub peer_id: Option<identity::PeerId>,
    pub(super) key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Every key in a key file's text. One bad key fails the whole file: a server must not
/// start (or reload) with fewer keys than its operator meant.
pub fn parse_verifying_keys(text: &str) -> Result<Vec<VerifyingKey>, String> {
    if identity::looks_like_pem(text) {
        let blocks = identity::public_keys_from_pem(text);
        let single = blocks.len() == 1;
        return blocks
            .into_iter()
            .enumerate()
            .map(|(index, block)| {
                let label = if single {
                    "PEM key".to_owned()
                } else {
                    format!("PEM block {}", index + 1)
                };
                let key = block.map_err(|e| format!("{label}: {e}"))?;
                from_public(&key, None, None, label)
            })
            .collect();
    }
    match json_value(text)? {
        Some(Value::Object(object)) => match object.get("keys") {
            Some(Value::Array(keys)) if keys.is_empty() => Err("the JWK Set has no keys".into()),
            Some(Value::Array(keys)) => keys
                .iter()
                .enumerate()
                .map(|(index, jwk)| verifying_jwk(jwk, format!("JWK Set member {index}")))
                .collect(),
            Some(_) => Err("member keys of a JWK Set must be an array".into()),
            None => Ok(vec![verifying_jwk(&Value::Object(object), "JWK".into())?]),
        },
        Some(_) => Err("expected a JWK object or a JWK Set {\"keys\": [...]}".into()),
        None => Ok(vec![VerifyingKey {
            kid: None,
            algorithms: vec![Algorithm::HS256],
            label: "secret".into(),
            key: DecodingKey::from_secret(&secret(text)?).map_err(|e| e.to_string())?,
        }]),
    }
}

/// The one key a token is signed with: a private JWK (or a JWK Set holding one key), a
/// private PEM key, or a secret. `algorithm` picks among the key's algorithms (RSA: RS256
/// unless told; a secret: HS256 unless told).
pub fn parse_signing_key(text: &str, algorithm: Option<&str>) -> Result<SigningKey, String> {
    let (private, kid, jwk_alg) = if identity::looks_like_pem(text) {
        (identity::keyfile::parse_private_key(text)?, None, None)
    } else {
        match json_value(text)? {
            Some(Value::Object(object)) => {
                let jwk = match object.get("keys") {
                    Some(Value::Array(keys)) if keys.len() == 1 => keys[0].clone(),
                    Some(Value::Array(keys)) => {
                        return Err(format!(
                            "the JWK Set has {} keys; give a file with the one to sign with",
                            keys.len()
                        ));
                    }
                    Some(_) => return Err("member keys of a JWK Set must be an array".into()),
                    None => Value::Object(object),
                };
                let kid = string_member(&jwk, "kid")?;
                let jwk_alg = string_member(&jwk, "alg")?;
                if jwk.get("kty").and_then(Value::as_str) == Some("oct") {
                    let bytes = oct_bytes(&jwk)?;
                    let allowed = allowed_algorithms(&HMAC_ALGORITHMS, jwk_alg.as_deref())?;
                    let algorithm = choose(&allowed, algorithm)?;
                    return Ok(SigningKey {
                        kid,
                        algorithm,
                        peer_id: None,
                        key: EncodingKey::from_secret(&bytes).map_err(|e| e.to_string())?,
                    });
                }
                let private = PrivateKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
                (private, kid, jwk_alg)
            }
            Some(_) => return Err("expected a private JWK, a private PEM key or a secret".into()),
            None => {
                let algorithm = choose(&HMAC_ALGORITHMS, algorithm)?;
                return Ok(SigningKey {
                    kid: None,
                    algorithm,
                    peer_id: None,
                    key: EncodingKey::from_secret(&secret(text)?).map_err(|e| e.to_string())?,
                });
            }
        }
    };
    let public = private.public();
    let allowed = allowed_algorithms(&algorithms_of(&public)?, jwk_alg.as_deref())?;
    let algorithm = choose(&allowed, algorithm)?;
    let der = private.signing_der();
    let key = match public.kind() {
        KeyKind::Ec(_) => EncodingKey::from_ec_der(&der),
        KeyKind::Okp(_) => EncodingKey::from_ed_der(&der),
        KeyKind::Rsa { .. } => EncodingKey::from_rsa_der(&der),
    };
    Ok(SigningKey {
        kid,
        algorithm,
        peer_id: Some(public.peer_id()),
        key,
    })
}

/// `Some` JSON value if the text is JSON (an object or an array), `None` if it is neither
/// JSON nor PEM and so is read as a secret. Text that starts like JSON but does not parse is
/// an error, never a secret: a broken JWK must not become an HMAC key.
fn json_value(text: &str) -> Result<Option<Value>, String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| format!("not valid JSON: {e}"))
}

/// A secret file's first line, which must be long enough for HMAC.
fn secret(text: &str) -> Result<Vec<u8>, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "a secret must be at least {MIN_SECRET_BYTES} bytes on the first line (this one \
             has {}); make one with: openssl rand -base64 48",
            line.len()
        ));
    }
    Ok(line.as_bytes().to_vec())
}

fn verifying_jwk(jwk: &Value, label: String) -> Result<VerifyingKey, String> {
    let in_context = |e: String| format!("{label}: {e}");
    let kid = string_member(jwk, "kid").map_err(in_context)?;
    let alg = string_member(jwk, "alg").map_err(in_context)?;
    if jwk.get("use").and_then(Value::as_str) == Some("enc") {
        return Err(in_context(
            "an encryption key (use: enc) cannot check signatures".into(),
        ));
    }
    if jwk.get("kty").and_then(Value::as_str) == Some("oct") {
        let bytes = oct_bytes(jwk).map_err(in_context)?;
        return Ok(VerifyingKey {
            kid,
            // HS256 unless the JWK names a longer hash.
            algorithms: match alg {
                None => vec![Algorithm::HS256],
                Some(alg) => {
                    allowed_algorithms(&HMAC_ALGORITHMS, Some(&alg)).map_err(in_context)?
                }
            },
            label,
            key: DecodingKey::from_secret(&bytes).map_err(|e| e.to_string())?,
        });
    }
    let public =
        PublicJwk::from_json(jwk, PrivateMembers::Ignore).map_err(|e| in_context(e.to_string()))?;
    from_public(&public, kid, alg.as_deref(), label)
}

fn from_public(
    public: &PublicJwk,
    kid: Option<String>,
    alg: Option<&str>,
    label: String,
) -> Result<VerifyingKey, String> {
    let in_context = |e: String| format!("{label}: {e}");
    let algorithms =
        allowed_algorithms(&algorithms_of(public).map_err(in_context)?, alg).map_err(in_context)?;
    let key = if let Some((_, x, y)) = public.ec_point() {
        DecodingKey::from_ec_components(&base64url(&x), &base64url(&y))
    } else if let Some((_, x)) = public.okp_key() {
        DecodingKey::from_ed_components(&base64url(&x))
    } else {
        let (n, e) = public.rsa_components().expect("EC, OKP or RSA");
        Ok(DecodingKey::from_rsa_raw_components(&n, &e))
    }
    .map_err(|e| in_context(e.to_string()))?;
    Ok(VerifyingKey {
        kid,
        algorithms,
        label,
        key,
    })
}

/// The algorithms a key of this type can check or make, most usual first.
fn algorithms_of(public: &PublicJwk) -> Result<Vec<Algorithm>, String> {
    match public.kind() {
        KeyKind::Ec(EcCurve::P256) => Ok(vec![Algorithm::ES256]),
        KeyKind::Ec(EcCurve::P384) => Ok(vec![Algorithm::ES384]),
        KeyKind::Ec(EcCurve::P521) => Err(
            "P-521 keys cannot be used for tokens (ES512 is not supported); use P-256, \
                 P-384, Ed25519 or RSA"
                .into(),
        ),
        KeyKind::Okp(OkpCurve::Ed25519) => Ok(vec![Algorithm::EdDSA]),
        kind @ KeyKind::Okp(_) => Err(format!(
            "{kind} keys cannot sign tokens; use P-256, P-384, Ed25519 or RSA"
        )),
        KeyKind::Rsa { modulus_bits } if modulus_bits < MIN_RSA_BITS => Err(format!(
            "an RSA key for tokens needs at least {MIN_RSA_BITS} bits (this one has \
             {modulus_bits})"
        )),
        KeyKind::Rsa { .. } => Ok(RSA_ALGORITHMS.to_vec()),
    }
}

/// Narrows `possible` to the JWK's own `alg`, if it names one.
fn allowed_algorithms(possible: &[Algorithm], alg: Option<&str>) -> Result<Vec<Algorithm>, String> {
    let Some(alg) = alg else {
        return Ok(possible.to_vec());
    };
    match alg.parse::<Algorithm>() {
        Ok(named) if possible.contains(&named) => Ok(vec![named]),
        _ => Err(format!(
            "alg {:?} does not fit this key (it allows {})",
            crate::protocol::truncate_chars(alg, 20),
            names(possible)
        )),
    }
}

/// `requested` if the key allows it, else the key's first algorithm.
fn choose(allowed: &[Algorithm], requested: Option<&str>) -> Result<Algorithm, String> {
    match requested {
        None => Ok(allowed[0]),
        Some(name) => match name.parse::<Algorithm>() {
            Ok(algorithm) if allowed.contains(&algorithm) => Ok(algorithm),
            _ => Err(format!(
                "--alg {name}: this key signs with {}",
                names(allowed)
            )),
        },
    }
}

pub(super) fn names(algorithms: &[Algorithm]) -> String {
    algorithms
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn string_member(jwk: &Value, name: &str) -> Result<Option<String>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("member {name} must be a string")),
    }
}

fn oct_bytes(jwk: &Value) -> Result<Vec<u8>, String> {
    let k = jwk
        .get("k")
        .and_then(Value::as_str)
        .ok_or("an oct JWK needs its secret in member k")?;
    let bytes = base64url_decode(k).map_err(|_| "member k is not base64url without padding")?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "an oct key must be at least {MIN_SECRET_BYTES} bytes (this one has {})",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeySpec;

    #[test]
    fn each_key_type_allows_its_own_algorithms() {
        let algs = |spec| {
            let private = PrivateKey::generate(spec).unwrap();
            let from_jwk = parse_verifying_keys(&private.public().to_public_json().to_string())
                .unwrap()
                .remove(0)
                .algorithms;
            let from_pem = parse_verifying_keys(&private.public_pem())
                .unwrap()
                .remove(0);
            assert_eq!(from_pem.algorithms, from_jwk);
            from_jwk
        };
        assert_eq!(algs(KeySpec::Ec(EcCurve::P256)), [Algorithm::ES256]);
        assert_eq!(algs(KeySpec::Ec(EcCurve::P384)), [Algorithm::ES384]);
        assert_eq!(algs(KeySpec::Ed25519), [Algorithm::EdDSA]);
        assert_eq!(algs(KeySpec::Rsa { bits: 2048 }), RSA_ALGORITHMS);
        let p521 = PrivateKey::generate(KeySpec::Ec(EcCurve::P521)).unwrap();
        let error = parse_verifying_keys(&p521.public_pem()).unwrap_err();
        assert!(error.contains("P-521"), "{error}");
    }

    #[test]
    fn a_jwk_alg_narrows_and_must_fit() {
        let private = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let mut jwk = private.public().to_public_json();
        jwk["alg"] = "EdDSA".into();
        jwk["kid"] = "k1".into();
        let key = parse_verifying_keys(&jwk.to_string()).unwrap().remove(0);
        assert_eq!(
            (key.algorithms, key.kid.as_deref()),
            (vec![Algorithm::EdDSA], Some("k1"))
        );
        jwk["alg"] = "HS256".into();
        let error = parse_verifying_keys(&jwk.to_string()).unwrap_err();
        assert!(error.contains("does not fit"), "{error}");
    }

    #[test]
    fn secrets_are_long_enough_and_broken_json_is_never_one() {
        let secret = "s".repeat(40);
        let key = parse_verifying_keys(&format!("{secret}\n"))
            .unwrap()
            .remove(0);
        assert_eq!(key.algorithms, [Algorithm::HS256]);
        assert!(
            parse_verifying_keys("short")
                .unwrap_err()
                .contains("at least 32")
        );
        assert!(
            parse_verifying_keys("{\"kty\": ")
                .unwrap_err()
                .contains("not valid JSON")
        );
        let oct = serde_json::json!({"kty": "oct", "k": base64url(&[7u8; 32])});
        let key = parse_verifying_keys(&oct.to_string()).unwrap().remove(0);
        assert_eq!(key.algorithms, [Algorithm::HS256]);
        let short = serde_json::json!({"kty": "oct", "k": base64url(&[7u8; 16])});
        assert!(parse_verifying_keys(&short.to_string()).is_err());
        assert!(parse_verifying_keys(r#"{"keys": []}"#).is_err());
    }

    #[test]
    fn one_bad_key_in_a_set_names_its_place() {
        let good = PrivateKey::generate(KeySpec::Ed25519)
            .unwrap()
            .public()
            .to_public_json();
        let set = serde_json::json!({"keys": [good, {"kty": "EC", "crv": "P-256"}]});
        let error = parse_verifying_keys(&set.to_string()).unwrap_err();
        assert!(error.starts_with("JWK Set member 1:"), "{error}");
    }

    #[test]
    fn signing_keys_come_from_private_jwk_pem_or_secret() {
        let private = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
        let key = parse_signing_key(&private.to_pkcs8_pem(), None).unwrap();
        assert_eq!(key.algorithm, Algorithm::RS256);
        let key = parse_signing_key(&private.to_jwk().to_string(), Some("PS256")).unwrap();
        assert_eq!(key.algorithm, Algorithm::PS256);
        assert_eq!(
            key.kid.as_deref(),
            Some(private.public().peer_id().as_str())
        );
        let error = parse_signing_key(&private.to_jwk().to_string(), Some("ES256")).unwrap_err();
        assert!(error.contains("RS256"), "{error}");
        let error =
            parse_signing_key(&private.public().to_public_json().to_string(), None).unwrap_err();
        assert!(error.contains("public key"), "{error}");
        let key = parse_signing_key(&"x".repeat(32), Some("HS512")).unwrap();
        assert_eq!(key.algorithm, Algorithm::HS512);
    }
}
