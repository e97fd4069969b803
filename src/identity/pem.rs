//! Reading public keys out of PEM text: SPKI (`PUBLIC KEY`), PKCS#1 (`RSA PUBLIC KEY`) and
//! every private form [`PrivateKey::from_pem`] reads, for its public half.

use pkcs8::der::Decode as _;
use pkcs8::der::asn1::UintRef;

use super::jwk::{EcCurve, OkpCurve, PublicJwk};
use super::oid;
use super::private::{KeyError, PrivateKey};

/// Whether `text` looks like PEM rather than JSON.
pub fn looks_like_pem(text: &str) -> bool {
    text.trim_start().starts_with("-----BEGIN ")
}

/// Every PEM block of `text`, each decoded to a public key or an error.
pub fn public_keys_from_pem(text: &str) -> Vec<Result<PublicJwk, KeyError>> {
    pem_blocks(text)
        .into_iter()
        .map(|block| {
            let (label, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
                .map_err(|e| KeyError::Pem(format!("not valid PEM: {e}")))?;
            public_key_from_der(label, &der)
        })
        .collect()
}

/// Decodes one DER document named by its PEM label.
pub fn public_key_from_der(label: &str, der: &[u8]) -> Result<PublicJwk, KeyError> {
    match label {
        "PUBLIC KEY" => public_key_from_spki(der),
        "RSA PUBLIC KEY" => rsa_from_pkcs1(der),
        _ => PrivateKey::from_pem(label, der).map(|key| key.public()),
    }
}

/// Splits text into its `-----BEGIN …-----` … `-----END …-----` blocks.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from_start = &rest[start..];
        let Some(end_marker) = from_start.find("-----END ") else {
            blocks.push(from_start);
            break;
        };
        let after_end = &from_start[end_marker + "-----END ".len()..];
        let close = after_end.find("-----").map_or(after_end.len(), |i| i + 5);
        let block_len = end_marker + "-----END ".len() + close;
        blocks.push(&from_start[..block_len]);
        rest = &from_start[block_len..];
    }
    blocks
}

fn public_key_from_spki(der: &[u8]) -> Result<PublicJwk, KeyError> {
    let bad = |e: &dyn std::fmt::Display| KeyError::Pem(format!("PUBLIC KEY: {e}"));
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(&e))?;
    let algorithm = spki.algorithm.oid;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad(&"the key bit string is not whole bytes"))?;
    if algorithm == oid::EC_PUBLIC_KEY {
        let curve_oid = spki.algorithm.parameters_oid().map_err(|e| bad(&e))?;
        let curve = EcCurve::from_oid(curve_oid)
            .ok_or_else(|| KeyError::Unsupported(format!("EC curve {curve_oid}")))?;
        // Compressed points are decompressed by the curve implementation.
        let not_on_curve = |_| KeyError::Pem("PUBLIC KEY: the EC point is not on its curve".into());
        let point = match curve {
            EcCurve::P256 => p256::PublicKey::from_sec1_bytes(key_bytes)
                .map_err(not_on_curve)?
                .to_sec1_bytes(),
            EcCurve::P384 => p384::PublicKey::from_sec1_bytes(key_bytes)
                .map_err(not_on_curve)?
                .to_sec1_bytes(),
            EcCurve::P521 => p521::PublicKey::from_sec1_bytes(key_bytes)
                .map_err(not_on_curve)?
                .to_sec1_bytes(),
        };
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        Ok(PublicJwk::from_ec_coordinates(curve, x, y)?)
    } else if let Some(curve) = OkpCurve::from_oid(algorithm) {
        Ok(PublicJwk::from_okp_key(curve, key_bytes)?)
    } else if algorithm == oid::RSA_ENCRYPTION || algorithm == oid::RSASSA_PSS {
        rsa_from_pkcs1(key_bytes)
    } else {
        Err(KeyError::Unsupported(oid::name(algorithm)))
    }
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<PublicJwk, KeyError> {
    let key = rsa::pkcs1::RsaPublicKey::<UintRef<'_>>::from_der(der)
        .map_err(|e| KeyError::Pem(format!("RSA PUBLIC KEY: {e}")))?;
    // DER integers carry no leading zeros beyond the sign byte, which UintRef strips.
    Ok(PublicJwk::from_rsa_components(
        key.modulus.as_bytes(),
        key.public_exponent.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeySpec;

    #[test]
    fn public_and_private_pem_give_the_same_id() {
        for spec in [
            KeySpec::Ec(EcCurve::P256),
            KeySpec::Ec(EcCurve::P521),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            let key = PrivateKey::generate(spec).unwrap();
            let id = key.public().peer_id();
            let both = format!("{}\n{}", key.public_pem(), key.to_pkcs8_pem());
            let keys = public_keys_from_pem(&both);
            assert_eq!(keys.len(), 2, "{spec}");
            for parsed in keys {
                assert_eq!(parsed.unwrap().peer_id(), id, "{spec}");
            }
        }
    }

    #[test]
    fn damaged_pem_is_an_error_not_a_panic() {
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap().public_pem();
        let damaged = key.replacen('A', "*", 1);
        assert!(public_keys_from_pem(&damaged)[0].is_err());
        let truncated = &key[..key.len() / 2];
        assert!(public_keys_from_pem(truncated)[0].is_err());
        let other = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(public_keys_from_pem(other)[0].is_err());
    }
}
