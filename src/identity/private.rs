//! Private keys: generation from the OS random source, private JWK and PKCS#8 PEM in and out.
//!
//! Shared by `rdv keygen`, `rdv fingerprint` (which reads private keys for their public half)
//! and the terminal peer. No files, no terminal: callers do the I/O.

use pkcs8::der::Decode as _;
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use rsa::{BoxedUint, Generate as _};
use serde_json::{Map, Value};

use super::b64;
use super::jwk::{EcCurve, JwkError, OkpCurve, PublicJwk};
use super::oid;

/// Which key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Ec(EcCurve),
    Ed25519,
    Rsa { bits: usize },
}

impl KeySpec {
    pub const RSA_BITS: [usize; 3] = [2048, 3072, 4096];
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Ec(curve) => write!(f, "EC {}", curve.name()),
            KeySpec::Ed25519 => f.write_str("OKP Ed25519"),
            KeySpec::Rsa { bits } => write!(f, "RSA {bits}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Jwk(#[from] JwkError),
    #[error("the key has no private member d; it is a public key")]
    NotPrivate,
    #[error("member {0} does not belong to this key's public members")]
    Mismatch(&'static str),
    #[error("member {member}: {problem}")]
    BadMember {
        member: &'static str,
        problem: String,
    },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("RSA key generation failed: {0}")]
    Rsa(String),
    #[error("{0}")]
    Pem(String),
    #[error("{0} private keys are not supported; give the public key instead")]
    Unsupported(String),
}

/// A private key of a kind a peer can register with.
pub enum PrivateKey {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::PrivateKey>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "PrivateKey({})", self.public().peer_id().short(12))
    }
}

/// Runs `$body` with `$key` bound to the curve's `SecretKey`, for code that is the same on
/// every NIST curve but has no common trait object.
macro_rules! with_ec {
    ($self:expr, $key:ident => $body:expr, $other:pat => $fallback:expr) => {
        match $self {
            PrivateKey::P256($key) => $body,
            PrivateKey::P384($key) => $body,
            PrivateKey::P521($key) => $body,
            $other => $fallback,
        }
    };
}

impl PrivateKey {
    /// A fresh key from the operating system's random source (no other randomness is used).
    pub fn generate(spec: KeySpec) -> Result<Self, KeyError> {
        let mut rng = getrandom::SysRng;
        let random = |e: getrandom::Error| KeyError::Random(e.to_string());
        Ok(match spec {
            KeySpec::Ec(EcCurve::P256) => {
                Self::P256(p256::SecretKey::try_generate_from_rng(&mut rng).map_err(random)?)
            }
            KeySpec::Ec(EcCurve::P384) => {
                Self::P384(p384::SecretKey::try_generate_from_rng(&mut rng).map_err(random)?)
            }
            KeySpec::Ec(EcCurve::P521) => {
                Self::P521(p521::SecretKey::try_generate_from_rng(&mut rng).map_err(random)?)
            }
            KeySpec::Ed25519 => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(random)?;
                Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            KeySpec::Rsa { bits } => Self::Rsa(Box::new(
                rsa::PrivateKey::new(&mut rng, bits).map_err(|e| KeyError::Rsa(e.to_string()))?,
            )),
        })
    }

    /// The public half, validated as any received key would be.
    pub fn public(&self) -> PublicJwk {
        let built = with_ec!(self, key => {
            let point = key.public_key().to_sec1_bytes();
            let (x, y) = point[1..].split_at((point.len() - 1) / 2);
            PublicJwk::from_ec_coordinates(self.curve().expect("an EC key"), x, y)
        }, other => match other {
            PrivateKey::Ed25519(key) => {
                PublicJwk::from_okp_key(OkpCurve::Ed25519, key.verifying_key().as_bytes())
            }
            PrivateKey::Rsa(key) => PublicJwk::from_rsa_components(
                &key.n().to_be_bytes_trimmed_vartime(),
                &key.e().to_be_bytes_trimmed_vartime(),
            ),
            _ => unreachable!(),
        });
        built.expect("a key this library holds has a valid public half")
    }

    fn curve(&self) -> Option<EcCurve> {
        match self {
            PrivateKey::P256(_) => Some(EcCurve::P256),
            PrivateKey::P384(_) => Some(EcCurve::P384),
            PrivateKey::P521(_) => Some(EcCurve::P521),
            _ => None,
        }
    }

    /// The private JWK: the public members, the private ones, and `kid` set to the peer ID.
    pub fn to_jwk(&self) -> Value {
        let public = self.public();
        let mut jwk = match public.to_public_json() {
            Value::Object(map) => map,
            _ => unreachable!("a JWK is an object"),
        };
        let mut put = |name: &str, bytes: &[u8]| {
            jwk.insert(name.to_owned(), Value::String(b64::encode(bytes)));
        };
        with_ec!(self, key => put("d", &key.to_bytes()), other => match other {
            PrivateKey::Ed25519(key) => put("d", key.as_bytes()),
            PrivateKey::Rsa(key) => {
                let uint = |n: &BoxedUint| n.to_be_bytes_trimmed_vartime();
                put("d", &uint(key.d()));
                put("p", &uint(&key.primes()[0]));
                put("q", &uint(&key.primes()[1]));
                if let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) {
                    put("dp", &uint(dp));
                    put("dq", &uint(dq));
                    put("qi", &uint(&qi));
                }
            }
            _ => unreachable!(),
        });
        jwk.insert("kid".into(), Value::String(public.peer_id().to_string()));
        Value::Object(jwk)
    }

    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`), as `openssl pkey` reads it.
    pub fn to_pkcs8_pem(&self) -> String {
        let pem = with_ec!(self, key => key.to_pkcs8_pem(LineEnding::LF), other => match other {
            PrivateKey::Ed25519(key) => return ed25519_pkcs8_v1_pem(key),
            PrivateKey::Rsa(key) => key.to_pkcs8_pem(LineEnding::LF),
            _ => unreachable!(),
        });
        pem.expect("encoding a valid key cannot fail").to_string()
    }

    /// The DER a signer of this key type is built from: PKCS#8 for EC and Ed25519, PKCS#1
    /// (`RSAPrivateKey`) for RSA — the forms the JWT library takes (`token::keys`).
    pub fn signing_der(&self) -> zeroize::Zeroizing<Vec<u8>> {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let der: Vec<u8> = with_ec!(self, key => key.to_pkcs8_der().expect("a valid key encodes").as_bytes().to_vec(), other => match other {
            PrivateKey::Ed25519(key) => return ed25519_pkcs8_v1_der(key),
            PrivateKey::Rsa(key) => key.to_pkcs1_der().expect("a valid key encodes").as_bytes().to_vec(),
            _ => unreachable!(),
        });
        zeroize::Zeroizing::new(der)
    }

    /// SPKI PEM of the public half (`BEGIN PUBLIC KEY`).
    pub fn public_pem(&self) -> String {
        let pem = with_ec!(self, key => key.public_key().to_public_key_pem(LineEnding::LF), other => match other {
            PrivateKey::Ed25519(key) => key.verifying_key().to_public_key_pem(LineEnding::LF),
            PrivateKey::Rsa(key) => key.to_public_key().to_public_key_pem(LineEnding::LF),
            _ => unreachable!(),
        });
        pem.expect("encoding a valid key cannot fail")
    }

    /// Reads a private JWK, checking that its private part matches its public members.
    pub fn from_jwk(value: &Value) -> Result<Self, KeyError> {
        let object = value.as_object().ok_or(JwkError::NotAnObject)?;
        let public = PublicJwk::from_object(object, super::PrivateMembers::Ignore)?;
        if !object.contains_key("d") {
            return Err(KeyError::NotPrivate);
        }
        let key = if let Some((curve, _, _)) = public.ec_point() {
            let d = private_member(object, "d", Some(curve.coordinate_len()))?;
            let invalid = |_| KeyError::BadMember {
                member: "d",
                problem: "not a valid private scalar for the curve".into(),
            };
            match curve {
                EcCurve::P256 => Self::P256(p256::SecretKey::from_slice(&d).map_err(invalid)?),
                EcCurve::P384 => Self::P384(p384::SecretKey::from_slice(&d).map_err(invalid)?),
                EcCurve::P521 => Self::P521(p521::SecretKey::from_slice(&d).map_err(invalid)?),
            }
        } else if let Some((curve, _)) = public.okp_key() {
            if curve != OkpCurve::Ed25519 {
                return Err(KeyError::Unsupported(format!("OKP {}", curve.name())));
            }
            let d = private_member(object, "d", Some(32))?;
            let seed: [u8; 32] = d.as_slice().try_into().expect("length checked");
            Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
        } else {
            let (n, e) = public.rsa_components().expect("the remaining kind is RSA");
            let number = |name| {
                private_member(object, name, None).map(|b| BoxedUint::from_be_slice_vartime(&b))
            };
            let key = rsa::PrivateKey::from_components(
                BoxedUint::from_be_slice_vartime(&n),
                BoxedUint::from_be_slice_vartime(&e),
                number("d")?,
                vec![number("p")?, number("q")?],
            )
            .map_err(|e| KeyError::BadMember {
                member: "d",
                problem: format!("the RSA private members are inconsistent: {e}"),
            })?;
            Self::Rsa(Box::new(key))
        };
        if key.public() != public {
            return Err(KeyError::Mismatch("d"));
        }
        Ok(key)
    }

    /// Decodes one PEM document: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
    /// SEC1 (`EC PRIVATE KEY`).
    pub fn from_pem(label: &str, der: &[u8]) -> Result<Self, KeyError> {
        let pem_error = |e: &dyn std::fmt::Display| KeyError::Pem(format!("{label}: {e}"));
        match label {
            "PRIVATE KEY" => {
                let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|e| pem_error(&e))?;
                let algorithm = info.algorithm.oid;
                if algorithm == oid::EC_PUBLIC_KEY {
                    let curve = info.algorithm.parameters_oid().map_err(|e| pem_error(&e))?;
                    Self::ec_from_pkcs8(curve, der)
                } else if algorithm == oid::ED25519 {
                    ed25519_dalek::SigningKey::from_pkcs8_der(der)
                        .map(Self::Ed25519)
                        .map_err(|e| pem_error(&e))
                } else if algorithm == oid::RSA_ENCRYPTION {
                    rsa::PrivateKey::from_pkcs8_der(der)
                        .map(|k| Self::Rsa(Box::new(k)))
                        .map_err(|e| pem_error(&e))
                } else {
                    Err(KeyError::Unsupported(oid::name(algorithm)))
                }
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey as _;
                rsa::PrivateKey::from_pkcs1_der(der)
                    .map(|k| Self::Rsa(Box::new(k)))
                    .map_err(|e| pem_error(&e))
            }
            "EC PRIVATE KEY" => {
                let sec1 = sec1::EcPrivateKey::from_der(der).map_err(|e| pem_error(&e))?;
                let curve = sec1
                    .parameters
                    .and_then(|p| p.named_curve())
                    .ok_or_else(|| pem_error(&"the key does not name its curve"))?;
                Ok(match EcCurve::from_oid(curve) {
                    Some(EcCurve::P256) => {
                        Self::P256(p256::SecretKey::from_sec1_der(der).map_err(|e| pem_error(&e))?)
                    }
                    Some(EcCurve::P384) => {
                        Self::P384(p384::SecretKey::from_sec1_der(der).map_err(|e| pem_error(&e))?)
                    }
                    Some(EcCurve::P521) => {
                        Self::P521(p521::SecretKey::from_sec1_der(der).map_err(|e| pem_error(&e))?)
                    }
                    None => return Err(KeyError::Unsupported(format!("EC curve {curve}"))),
                })
            }
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Pem(
                "encrypted private keys are not supported; decrypt with `openssl pkey` first"
                    .into(),
            )),
            other => Err(KeyError::Pem(format!(
                "a {other:?} PEM block is not a private key"
            ))),
        }
    }

    fn ec_from_pkcs8(curve: pkcs8::ObjectIdentifier, der: &[u8]) -> Result<Self, KeyError> {
        let error = |e: pkcs8::Error| KeyError::Pem(format!("PRIVATE KEY: {e}"));
        Ok(match EcCurve::from_oid(curve) {
            Some(EcCurve::P256) => Self::P256(p256::SecretKey::from_pkcs8_der(der).map_err(error)?),
            Some(EcCurve::P384) => Self::P384(p384::SecretKey::from_pkcs8_der(der).map_err(error)?),
            Some(EcCurve::P521) => Self::P521(p521::SecretKey::from_pkcs8_der(der).map_err(error)?),
            None => return Err(KeyError::Unsupported(format!("EC curve {curve}"))),
        })
    }
}

/// PKCS#8 v1 for Ed25519 (RFC 8410 §7), as OpenSSL writes it. ed25519-dalek writes v2 with
/// the public key attached, which OpenSSL 3.0 refuses to read.
fn ed25519_pkcs8_v1_pem(key: &ed25519_dalek::SigningKey) -> String {
    let der = ed25519_pkcs8_v1_der(key);
    pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der)
        .expect("PEM encoding cannot fail")
}

/// The PKCS#8 v1 DER of an Ed25519 key (RFC 8410: the seed only).
fn ed25519_pkcs8_v1_der(key: &ed25519_dalek::SigningKey) -> zeroize::Zeroizing<Vec<u8>> {
    use pkcs8::der::Encode as _;
    // CurvePrivateKey ::= OCTET STRING, itself inside the PrivateKeyInfo's OCTET STRING.
    let mut curve_private_key = [0u8; 34];
    curve_private_key[0] = 0x04;
    curve_private_key[1] = 32;
    curve_private_key[2..].copy_from_slice(key.as_bytes());
    let algorithm = pkcs8::AlgorithmIdentifierRef {
        oid: oid::ED25519,
        parameters: None,
    };
    let octets = pkcs8::der::asn1::OctetStringRef::new(&curve_private_key).expect("34 bytes fit");
    let der = pkcs8::PrivateKeyInfoRef::new(algorithm, octets)
        .to_der()
        .expect("a fixed-size structure encodes");
    zeroize::Zeroize::zeroize(&mut curve_private_key);
    zeroize::Zeroizing::new(der)
}

fn private_member(
    object: &Map<String, Value>,
    member: &'static str,
    expected_len: Option<usize>,
) -> Result<Vec<u8>, KeyError> {
    let text = match object.get(member) {
        Some(Value::String(text)) => text,
        Some(_) => return Err(JwkError::NotAString(member).into()),
        None => {
            return Err(KeyError::BadMember {
                member,
                problem: "missing".into(),
            });
        }
    };
    let bytes = b64::decode(text).map_err(|_| KeyError::BadMember {
        member,
        problem: "not base64url without padding".into(),
    })?;
    if let Some(expected) = expected_len
        && bytes.len() != expected
    {
        return Err(KeyError::BadMember {
            member,
            problem: format!("{} bytes, expected {expected}", bytes.len()),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_fast_spec() -> Vec<KeySpec> {
        vec![
            KeySpec::Ec(EcCurve::P256),
            KeySpec::Ec(EcCurve::P384),
            KeySpec::Ec(EcCurve::P521),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ]
    }

    #[test]
    fn generated_keys_round_trip_through_jwk_and_pem() {
        for spec in every_fast_spec() {
            let key = PrivateKey::generate(spec).unwrap();
            let id = key.public().peer_id();
            let jwk = key.to_jwk();
            assert_eq!(jwk["kid"], id.as_str(), "{spec}");
            let again = PrivateKey::from_jwk(&jwk).unwrap();
            assert_eq!(again.public().peer_id(), id, "{spec} via JWK");
            let pem = key.to_pkcs8_pem();
            let (label, der) = pem_rfc7468_decode(&pem);
            let from_pem = PrivateKey::from_pem(&label, &der).unwrap();
            assert_eq!(from_pem.public().peer_id(), id, "{spec} via PEM");
            assert_eq!(
                from_pem.to_jwk(),
                jwk,
                "{spec}: PEM and JWK hold the same key"
            );
        }
    }

    fn pem_rfc7468_decode(pem: &str) -> (String, Vec<u8>) {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap();
        (label.to_owned(), der)
    }

    #[test]
    fn a_private_jwk_whose_d_does_not_match_is_refused() {
        let a = PrivateKey::generate(KeySpec::Ec(EcCurve::P256))
            .unwrap()
            .to_jwk();
        let b = PrivateKey::generate(KeySpec::Ec(EcCurve::P256))
            .unwrap()
            .to_jwk();
        let mut mixed = a.clone();
        mixed["d"] = b["d"].clone();
        assert!(matches!(
            PrivateKey::from_jwk(&mixed),
            Err(KeyError::Mismatch("d"))
        ));
        let mut public = a;
        public.as_object_mut().unwrap().remove("d");
        assert!(matches!(
            PrivateKey::from_jwk(&public),
            Err(KeyError::NotPrivate)
        ));
    }

    #[test]
    fn webcrypto_private_keys_load() {
        let vectors: Value =
            serde_json::from_str(crate::identity::test_vectors::WEBCRYPTO_KEYS).unwrap();
        for vector in vectors.as_array().unwrap() {
            let key = PrivateKey::from_jwk(&vector["privateJwk"])
                .unwrap_or_else(|e| panic!("{}: {e}", vector["name"]));
            assert_eq!(key.public().peer_id().as_str(), vector["fingerprint"]);
        }
    }
}
