//! Proof of possession (PROTOCOL §9): a signature by the private key over
//! `rdv-register:` followed by the server's nonce, checked against the registering key.
//!
//! Signatures are in the JOSE/WebCrypto forms: ECDSA as raw r‖s (not DER), EdDSA over
//! Ed25519, RSASSA-PKCS1-v1_5 and RSASSA-PSS (salt = hash length) with SHA-256.

use rsa::sha2::Sha256;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};

use super::jwk::{EcCurve, KeyKind, OkpCurve, PublicJwk, RSA_MODULUS_BITS};
use super::private::PrivateKey;

/// What is signed: `rdv-register:` and the nonce, as UTF-8.
pub fn proof_message(nonce: &str) -> Vec<u8> {
    format!("rdv-register:{nonce}").into_bytes()
}

/// The signature algorithms a proof may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofAlg {
    Es256,
    Es384,
    Es512,
    EdDsa,
    Rs256,
    Ps256,
}

impl ProofAlg {
    pub const ALL: [ProofAlg; 6] = [
        ProofAlg::Es256,
        ProofAlg::Es384,
        ProofAlg::Es512,
        ProofAlg::EdDsa,
        ProofAlg::Rs256,
        ProofAlg::Ps256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProofAlg::Es256 => "ES256",
            ProofAlg::Es384 => "ES384",
            ProofAlg::Es512 => "ES512",
            ProofAlg::EdDsa => "EdDSA",
            ProofAlg::Rs256 => "RS256",
            ProofAlg::Ps256 => "PS256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// Whether this algorithm can be used with a key of `kind`.
    pub fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (ProofAlg::Es256, KeyKind::Ec(EcCurve::P256))
                | (ProofAlg::Es384, KeyKind::Ec(EcCurve::P384))
                | (ProofAlg::Es512, KeyKind::Ec(EcCurve::P521))
                | (ProofAlg::EdDsa, KeyKind::Okp(OkpCurve::Ed25519))
                | (ProofAlg::Rs256 | ProofAlg::Ps256, KeyKind::Rsa { .. })
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof alg {0:?} is not one of ES256, ES384, ES512, EdDSA, RS256, PS256")]
    UnknownAlg(String),
    #[error("proof alg {alg} does not fit a {kind} key")]
    WrongAlg { alg: &'static str, kind: KeyKind },
    #[error("a {alg} signature by this key is {expected} bytes, not {got}")]
    SignatureLength {
        alg: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("the signature is not valid for this key and nonce")]
    BadSignature,
}

/// A proof whose cheap checks passed: its algorithm is known and fits the key, and its
/// signature has the exact length that algorithm gives for this key. Only [`Self::verify`]
/// costs a signature check, so a server charges its budget for that alone.
#[derive(Debug)]
pub struct ProofForm<'a> {
    key: &'a PublicJwk,
    alg: ProofAlg,
    signature: &'a [u8],
}

/// Checks everything about a proof that costs nothing: the algorithm's name, its fit with
/// the key, and the signature's length (`signature` already base64url-decoded).
pub fn check_proof_form<'a>(
    key: &'a PublicJwk,
    alg: &str,
    signature: &'a [u8],
) -> Result<ProofForm<'a>, ProofError> {
    let alg = ProofAlg::from_name(alg).ok_or_else(|| ProofError::UnknownAlg(alg.to_owned()))?;
    if !alg.fits(key.kind()) {
        return Err(ProofError::WrongAlg {
            alg: alg.name(),
            kind: key.kind(),
        });
    }
    // ECDSA as raw r‖s, two field elements; RSA signatures are exactly the modulus's length
    // (RFC 8017 §8.1.2, §8.2.2).
    let expected = match key.kind() {
        KeyKind::Ec(EcCurve::P256) | KeyKind::Okp(_) => 64,
        KeyKind::Ec(EcCurve::P384) => 96,
        KeyKind::Ec(EcCurve::P521) => 132,
        KeyKind::Rsa { modulus_bits } => modulus_bits.div_ceil(8),
    };
    if signature.len() != expected {
        return Err(ProofError::SignatureLength {
            alg: alg.name(),
            expected,
            got: signature.len(),
        });
    }
    Ok(ProofForm {
        key,
        alg,
        signature,
    })
}

impl ProofForm<'_> {
    /// What checking this proof costs, in units of one ECDSA P-256 / Ed25519 / 2048-bit RSA
    /// check with e = 65537. RSA grows with the square of the modulus size, and with the
    /// exponent's square-and-multiply steps: e = 2^32-1 takes 62 steps to 65537's 17.
    pub fn cost(&self) -> u32 {
        proof_cost(self.key)
    }

    /// Whether the signature is the key's over the proof message for `nonce`.
    pub fn verify(&self, nonce: &str) -> Result<(), ProofError> {
        self.verify_message(&proof_message(nonce))
    }

    /// Whether the signature is the key's over `message` (any signed bytes: a proof's, or a
    /// signed description's, PROTOCOL §12).
    pub fn verify_message(&self, message: &[u8]) -> Result<(), ProofError> {
        let (key, signature) = (self.key, self.signature);
        let valid = match self.alg {
            ProofAlg::Es256 | ProofAlg::Es384 | ProofAlg::Es512 => {
                verify_ecdsa(key, message, signature)
            }
            ProofAlg::EdDsa => verify_ed25519(key, message, signature),
            ProofAlg::Rs256 | ProofAlg::Ps256 => verify_rsa(self.alg, key, message, signature),
        };
        if valid {
            Ok(())
        } else {
            Err(ProofError::BadSignature)
        }
    }

    /// Whether the check is slow enough (RSA) to be run off a runtime worker that serves
    /// other connections.
    pub fn is_slow(&self) -> bool {
        matches!(self.key.kind(), KeyKind::Rsa { .. })
    }
}

/// What checking one proof for `key` costs (see [`ProofForm::cost`]).
pub fn proof_cost(key: &PublicJwk) -> u32 {
    match key.kind() {
        KeyKind::Ec(EcCurve::P256) | KeyKind::Okp(_) => 1,
        KeyKind::Ec(EcCurve::P384) => 2,
        KeyKind::Ec(EcCurve::P521) => 4,
        KeyKind::Rsa { modulus_bits } => {
            let units = modulus_bits.div_ceil(2048) as u32;
            let exponent_steps = key.rsa_components().map_or(1, |(_, e)| {
                let e = e.iter().fold(0u64, |e, byte| e << 8 | u64::from(*byte));
                // Squarings and multiplications of left-to-right exponentiation.
                (63 - e.leading_zeros()) + e.count_ones().saturating_sub(1)
            });
            units * units * exponent_steps.div_ceil(F4_STEPS).max(1)
        }
    }
}

/// Square-and-multiply steps of e = 65537 (16 squarings, one multiplication).
const F4_STEPS: u32 = 17;

/// Checks `signature` (already base64url-decoded) over the proof message for `nonce`: the
/// form, then the signature.
pub fn verify_proof(
    key: &PublicJwk,
    alg: &str,
    nonce: &str,
    signature: &[u8],
) -> Result<(), ProofError> {
    check_proof_form(key, alg, signature)?.verify(nonce)
}

fn verify_ecdsa(key: &PublicJwk, message: &[u8], signature: &[u8]) -> bool {
    let Some((curve, x, y)) = key.ec_point() else {
        return false;
    };
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    macro_rules! verify {
        ($curve:ident) => {{
            let (Ok(verifying), Ok(signature)) = (
                $curve::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                $curve::ecdsa::Signature::from_slice(signature),
            ) else {
                return false;
            };
            verifying.verify(message, &signature).is_ok()
        }};
    }
    match curve {
        EcCurve::P256 => verify!(p256),
        EcCurve::P384 => verify!(p384),
        EcCurve::P521 => verify!(p521),
    }
}

fn verify_ed25519(key: &PublicJwk, message: &[u8], signature: &[u8]) -> bool {
    let Some((OkpCurve::Ed25519, x)) = key.okp_key() else {
        return false;
    };
    let (Ok(x), Ok(signature)) = (
        <[u8; 32]>::try_from(x.as_slice()),
        ed25519_dalek::Signature::from_slice(signature),
    ) else {
        return false;
    };
    ed25519_dalek::VerifyingKey::from_bytes(&x)
        .is_ok_and(|verifying| verifying.verify_strict(message, &signature).is_ok())
}

fn verify_rsa(alg: ProofAlg, key: &PublicJwk, message: &[u8], signature: &[u8]) -> bool {
    let Some((n, e)) = key.rsa_components() else {
        return false;
    };
    let Ok(public) = rsa::PublicKey::new_with_size_limits(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
        RSA_MODULUS_BITS,
    ) else {
        return false;
    };
    match alg {
        ProofAlg::Rs256 => rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|signature| {
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
                .verify(message, &signature)
                .is_ok()
        }),
        _ => rsa::pss::Signature::try_from(signature).is_ok_and(|signature| {
            rsa::pss::VerifyingKey::<Sha256>::new(public)
                .verify(message, &signature)
                .is_ok()
        }),
    }
}

impl PrivateKey {
    /// The algorithm this key proves with: the one its kind allows (PS256 for RSA).
    pub fn proof_alg(&self) -> ProofAlg {
        match self {
            PrivateKey::P256(_) => ProofAlg::Es256,
            PrivateKey::P384(_) => ProofAlg::Es384,
            PrivateKey::P521(_) => ProofAlg::Es512,
            PrivateKey::Ed25519(_) => ProofAlg::EdDsa,
            PrivateKey::Rsa(_) => ProofAlg::Ps256,
        }
    }

    /// Signs the proof message for `nonce` with `alg` (which must fit this key).
    pub fn sign_proof(&self, alg: ProofAlg, nonce: &str) -> Result<Vec<u8>, ProofError> {
        self.sign_message(alg, &proof_message(nonce))
    }

    /// Signs `message` with `alg` (which must fit this key), in the JOSE/WebCrypto form.
    pub fn sign_message(&self, alg: ProofAlg, message: &[u8]) -> Result<Vec<u8>, ProofError> {
        let kind = self.public().kind();
        if !alg.fits(kind) {
            return Err(ProofError::WrongAlg {
                alg: alg.name(),
                kind,
            });
        }
        Ok(match self {
            PrivateKey::P256(key) => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::SigningKey::from(key).sign(message);
                signature.to_bytes().to_vec()
            }
            PrivateKey::P384(key) => {
                let signature: p384::ecdsa::Signature =
                    p384::ecdsa::SigningKey::from(key).sign(message);
                signature.to_bytes().to_vec()
            }
            PrivateKey::P521(key) => {
                let signature: p521::ecdsa::Signature =
                    p521::ecdsa::SigningKey::from(key).sign(message);
                signature.to_bytes().to_vec()
            }
            PrivateKey::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            PrivateKey::Rsa(key) if alg == ProofAlg::Rs256 => {
                rsa::pkcs1v15::SigningKey::<Sha256>::new((**key).clone())
                    .sign(message)
                    .to_vec()
            }
            PrivateKey::Rsa(key) => rsa::pss::SigningKey::<Sha256>::new((**key).clone())
                .sign_with_rng(&mut rsa::rand_core::UnwrapErr(getrandom::SysRng), message)
                .to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeySpec;

    fn keys() -> Vec<(PrivateKey, Vec<ProofAlg>)> {
        vec![
            (
                PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap(),
                vec![ProofAlg::Es256],
            ),
            (
                PrivateKey::generate(KeySpec::Ec(EcCurve::P384)).unwrap(),
                vec![ProofAlg::Es384],
            ),
            (
                PrivateKey::generate(KeySpec::Ec(EcCurve::P521)).unwrap(),
                vec![ProofAlg::Es512],
            ),
            (
                PrivateKey::generate(KeySpec::Ed25519).unwrap(),
                vec![ProofAlg::EdDsa],
            ),
            (
                PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap(),
                vec![ProofAlg::Rs256, ProofAlg::Ps256],
            ),
        ]
    }

    #[test]
    fn every_algorithm_accepts_a_good_signature_and_refuses_a_bad_one() {
        for (key, algs) in keys() {
            let public = key.public();
            for alg in algs {
                let signature = key.sign_proof(alg, "nonce-1").unwrap();
                assert_eq!(
                    verify_proof(&public, alg.name(), "nonce-1", &signature),
                    Ok(()),
                    "{alg:?}"
                );
                // Another nonce.
                assert_eq!(
                    verify_proof(&public, alg.name(), "nonce-2", &signature),
                    Err(ProofError::BadSignature),
                    "{alg:?}"
                );
                // A flipped bit.
                let mut tampered = signature.clone();
                tampered[5] ^= 1;
                assert_eq!(
                    verify_proof(&public, alg.name(), "nonce-1", &tampered),
                    Err(ProofError::BadSignature),
                    "{alg:?}"
                );
                // Wrong length: refused before any signature check.
                assert!(matches!(
                    check_proof_form(&public, alg.name(), &signature[1..]),
                    Err(ProofError::SignatureLength { .. })
                ));
                // Another key's signature.
                let other = PrivateKey::generate(KeySpec::Ed25519).unwrap();
                if alg == ProofAlg::EdDsa {
                    let foreign = other.sign_proof(alg, "nonce-1").unwrap();
                    assert!(verify_proof(&public, alg.name(), "nonce-1", &foreign).is_err());
                }
            }
            // An alg that does not fit the key.
            let wrong = if key.proof_alg() == ProofAlg::EdDsa {
                ProofAlg::Es256
            } else {
                ProofAlg::EdDsa
            };
            assert!(matches!(
                verify_proof(&public, wrong.name(), "nonce-1", &[0; 64]),
                Err(ProofError::WrongAlg { .. })
            ));
        }
        let key = PrivateKey::generate(KeySpec::Rsa { bits: 2048 }).unwrap();
        let signature = key.sign_proof(ProofAlg::Ps256, "n").unwrap();
        assert_eq!(signature.len(), 256);
        let public = key.public();
        let form = check_proof_form(&public, "PS256", &signature).unwrap();
        assert!(form.is_slow());
        assert_eq!(form.verify("n"), Ok(()));
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap().public();
        assert!(matches!(
            verify_proof(&key, "HS256", "n", &[]),
            Err(ProofError::UnknownAlg(_))
        ));
    }

    #[test]
    fn rsa_proofs_cost_by_modulus_and_exponent() {
        let rsa = |bits: u32, e: &[u8]| {
            let n = vec![0xc5u8; bits as usize / 8];
            let jwk = serde_json::json!({
                "kty": "RSA", "n": crate::identity::base64url(&n),
                "e": crate::identity::base64url(e),
            });
            PublicJwk::from_json(&jwk, super::super::jwk::PrivateMembers::Refuse).unwrap()
        };
        let f4 = [1, 0, 1];
        let largest = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(proof_cost(&rsa(2048, &f4)), 1);
        assert_eq!(proof_cost(&rsa(2048, &[3])), 1);
        assert_eq!(proof_cost(&rsa(4096, &f4)), 4);
        assert_eq!(proof_cost(&rsa(8192, &f4)), 16);
        // 62 square-and-multiply steps to 65537's 17: four times the units.
        assert_eq!(proof_cost(&rsa(2048, &largest)), 4);
        assert_eq!(proof_cost(&rsa(8192, &largest)), 64);
    }

    /// Decision (PROTOCOL §9): ECDSA signatures are accepted with either s or n - s, as
    /// WebCrypto verifies them and as browsers sign them (they do not normalise to low S).
    /// Malleability gains an attacker nothing: the signed nonce is fresh per connection.
    #[test]
    fn high_s_ecdsa_signatures_are_accepted_like_webcrypto() {
        // The P-256 group order, big-endian.
        const N: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
        for nonce in ["a", "b", "c", "d"] {
            let signature = key.sign_proof(ProofAlg::Es256, nonce).unwrap();
            let (r, s) = signature.split_at(32);
            // n - s, big-endian subtraction.
            let mut flipped = [0u8; 32];
            let mut borrow = 0i16;
            for i in (0..32).rev() {
                let mut digit = i16::from(N[i]) - i16::from(s[i]) - borrow;
                borrow = i16::from(digit < 0);
                if digit < 0 {
                    digit += 256;
                }
                flipped[i] = digit as u8;
            }
            let other = [r, &flipped[..]].concat();
            assert_ne!(other, signature);
            for variant in [&signature, &other] {
                assert_eq!(
                    verify_proof(&key.public(), "ES256", nonce, variant),
                    Ok(()),
                    "both s and n - s verify"
                );
            }
        }
    }

    #[test]
    fn ecdsa_signatures_are_raw_r_and_s_as_webcrypto_makes_them() {
        let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P256)).unwrap();
        assert_eq!(key.sign_proof(ProofAlg::Es256, "n").unwrap().len(), 64);
        let key = PrivateKey::generate(KeySpec::Ec(EcCurve::P521)).unwrap();
        assert_eq!(key.sign_proof(ProofAlg::Es512, "n").unwrap().len(), 132);
    }
}
