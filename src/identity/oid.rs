//! Object identifiers of the key algorithms and curves rdv reads from PEM.

use pkcs8::ObjectIdentifier;

use super::jwk::{EcCurve, OkpCurve};

pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
pub const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

impl EcCurve {
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [
            (P256, EcCurve::P256),
            (P384, EcCurve::P384),
            (P521, EcCurve::P521),
        ]
        .into_iter()
        .find_map(|(known, curve)| (known == oid).then_some(curve))
    }
}

impl OkpCurve {
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [
            (ED25519, OkpCurve::Ed25519),
            (X25519, OkpCurve::X25519),
            (ED448, OkpCurve::Ed448),
            (X448, OkpCurve::X448),
        ]
        .into_iter()
        .find_map(|(known, curve)| (known == oid).then_some(curve))
    }
}

/// A readable name for an algorithm OID in error messages.
pub fn name(oid: ObjectIdentifier) -> String {
    if let Some(curve) = OkpCurve::from_oid(oid) {
        return format!("OKP {}", curve.name());
    }
    format!("algorithm {oid}")
}
