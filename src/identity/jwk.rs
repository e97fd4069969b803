//! Parsing and validating JWK public keys, and their canonical text (PROTOCOL §4).

use std::fmt;

use serde_json::{Map, Value};

use super::PeerId;
use super::b64::{self, Base64Problem};

/// JWK members that only a private key has. A `publicKey` carrying any of them would hand the
/// private key to everyone in the room.
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What to do when a JWK carries private members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateMembers {
    /// Refuse the key (the server, for anything it would broadcast).
    Refuse,
    /// Ignore them: the public half is what identifies a key pair (the key utilities).
    Ignore,
}

/// The curves and sizes a JWK may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ec(EcCurve),
    Okp(OkpCurve),
    Rsa { modulus_bits: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OkpCurve {
    Ed25519,
    X25519,
    Ed448,
    X448,
}

impl EcCurve {
    pub const ALL: [EcCurve; 3] = [EcCurve::P256, EcCurve::P384, EcCurve::P521];

    pub fn name(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }

    /// Bytes in one coordinate: the field size, which JWK requires at full width.
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl OkpCurve {
    pub const ALL: [OkpCurve; 4] = [
        OkpCurve::Ed25519,
        OkpCurve::X25519,
        OkpCurve::Ed448,
        OkpCurve::X448,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OkpCurve::Ed25519 => "Ed25519",
            OkpCurve::X25519 => "X25519",
            OkpCurve::Ed448 => "Ed448",
            OkpCurve::X448 => "X448",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            OkpCurve::Ed25519 | OkpCurve::X25519 => 32,
            OkpCurve::Ed448 => 57,
            OkpCurve::X448 => 56,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl KeyKind {
    pub fn kty(self) -> &'static str {
        match self {
            KeyKind::Ec(_) => "EC",
            KeyKind::Okp(_) => "OKP",
            KeyKind::Rsa { .. } => "RSA",
        }
    }

    pub fn crv(self) -> Option<&'static str> {
        match self {
            KeyKind::Ec(c) => Some(c.name()),
            KeyKind::Okp(c) => Some(c.name()),
            KeyKind::Rsa { .. } => None,
        }
    }

    /// Whether a peer may register with this kind of key. Only signing keys can identify a
    /// peer (and later prove possession); key-agreement curves are for fingerprinting only.
    pub fn can_register(self) -> bool {
        !matches!(
            self,
            KeyKind::Okp(OkpCurve::X25519 | OkpCurve::Ed448 | OkpCurve::X448)
        )
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Ec(c) => write!(f, "EC {}", c.name()),
            KeyKind::Okp(c) => write!(f, "OKP {}", c.name()),
            KeyKind::Rsa { modulus_bits } => write!(f, "RSA {modulus_bits}"),
        }
    }
}

/// Which text of a key is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// PROTOCOL §4: `JSON.stringify` of the essential members in protocol order.
    PeerId,
    /// RFC 7638 JWK thumbprint: required members in lexicographic order.
    Rfc7638,
}

/// The smallest and largest RSA modulus accepted, in bits.
pub const RSA_MODULUS_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// Why a JWK is not an acceptable public key. Messages name the member at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("the key is not a JSON object")]
    NotAnObject,
    #[error("the key has no kty member")]
    MissingKty,
    #[error("key type {0:?} is not supported (use EC, OKP or RSA)")]
    UnsupportedKty(String),
    #[error("{kty} key is missing member {member}")]
    MissingMember {
        kty: &'static str,
        member: &'static str,
    },
    #[error("member {0} is not a string")]
    NotAString(&'static str),
    #[error("{kty} curve {crv:?} is not supported")]
    UnsupportedCurve { kty: &'static str, crv: String },
    #[error("member {0} has '=' padding, but JWK uses base64url without padding")]
    Padding(&'static str),
    #[error("member {0} is not valid base64url")]
    NotBase64(&'static str),
    #[error("member {member} is {actual} bytes, but {crv} needs {expected}")]
    WrongLength {
        member: &'static str,
        crv: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("the point (x, y) is not on curve {0}")]
    NotOnCurve(&'static str),
    #[error("member x is not a valid Ed25519 public key")]
    InvalidEd25519,
    #[error("member x is a small-order Ed25519 point, which any signature can match")]
    WeakEd25519,
    #[error("member x is not the canonical encoding of its Ed25519 point")]
    NonCanonicalEd25519,
    #[error("the RSA modulus n is even, so it is not a product of two primes")]
    RsaEvenModulus,
    #[error("member n has a leading zero byte, which JWK forbids")]
    RsaLeadingZero,
    #[error("the RSA modulus is {0} bits, outside the accepted 2048..=8192")]
    RsaModulusSize(usize),
    #[error("member e is not an accepted RSA public exponent (odd, from 3 to 2^32-1)")]
    RsaExponent,
    #[error("the key is not JSON: {0}")]
    NotJson(String),
    #[error("the key has member {0:?} more than once; parsers disagree on which one counts")]
    DuplicateMember(String),
    #[error("the key holds private member(s) {}, which must never be shared", .0.join(", "))]
    PrivateMembers(Vec<&'static str>),
}

/// Optional members a room sees besides the essential ones, each with its longest length in
/// bytes.
const ANNOUNCED_EXTRAS: [(&str, usize); 3] = [("kid", 64), ("alg", 16), ("use", 8)];

/// The longest announced key, in bytes: an RSA-8192 key (1366 characters of `n`, at most 6
/// of `e`, 30 of framing) with every extra at its limit (9 bytes of framing each).
pub const MAX_ANNOUNCED_KEY: usize = 1366 + 6 + 30 + (9 + 64) + (9 + 16) + (9 + 8);

/// A validated JWK public key: only the members that identify it, as base64url text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    kind: KeyKind,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    Ec { x: String, y: String },
    Okp { x: String },
    Rsa { n: String, e: String },
}

impl PublicJwk {
    /// Validates a JWK given as a JSON value.
    pub fn from_json(value: &Value, private: PrivateMembers) -> Result<Self, JwkError> {
        let object = value.as_object().ok_or(JwkError::NotAnObject)?;
        Self::from_object(object, private)
    }

    /// The key as a room sees it (in `welcome` and `peer-joined`): the essential members in
    /// canonical order, plus `kid`, `alg` and `use` when the sender gave them as short plain
    /// strings (no control characters, quotes or backslashes, so they need no escaping).
    /// Nothing else the sender wrote travels, so what a joiner is sent per peer is bounded
    /// (at most [`MAX_ANNOUNCED_KEY`] bytes).
    pub fn announced_text(&self, original: &Value) -> String {
        let mut text = self.canonical_text();
        text.pop(); // the closing brace
        for (member, limit) in ANNOUNCED_EXTRAS {
            if let Some(Value::String(value)) = original.get(member)
                && value.len() <= limit
                && !value
                    .chars()
                    .any(|c| c.is_control() || c == '"' || c == '\\')
            {
                text.push_str(&format!(",\"{member}\":\"{value}\""));
            }
        }
        text.push('}');
        text
    }

    /// Validates a JWK given as JSON text, refusing a member that appears twice anywhere in
    /// it: `serde_json` keeps the last one, a first-wins parser in a browser would see
    /// another key than the one the ID was computed from.
    pub fn from_text(text: &str, private: PrivateMembers) -> Result<Self, JwkError> {
        Self::from_text_announced(text, private).map(|(key, _)| key)
    }

    /// [`Self::from_text`], with the key's [`Self::announced_text`].
    pub fn from_text_announced(
        text: &str,
        private: PrivateMembers,
    ) -> Result<(Self, String), JwkError> {
        let value = strict_json::parse(text)?;
        let key = Self::from_json(&value, private)?;
        let announced = key.announced_text(&value);
        Ok((key, announced))
    }

    pub fn from_object(
        object: &Map<String, Value>,
        private: PrivateMembers,
    ) -> Result<Self, JwkError> {
        if private == PrivateMembers::Refuse {
            let found: Vec<&'static str> = PRIVATE_MEMBERS
                .into_iter()
                .filter(|m| object.contains_key(*m))
                .collect();
            if !found.is_empty() {
                return Err(JwkError::PrivateMembers(found));
            }
        }
        let kty = match object.get("kty") {
            None => return Err(JwkError::MissingKty),
            Some(Value::String(kty)) => kty.as_str(),
            Some(_) => return Err(JwkError::NotAString("kty")),
        };
        match kty {
            "EC" => parse_ec(object),
            "OKP" => parse_okp(object),
            "RSA" => parse_rsa(object),
            other => Err(JwkError::UnsupportedKty(other.to_owned())),
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The exact text hashed into the peer ID: JavaScript's `JSON.stringify` of the essential
    /// members in the order PROTOCOL §4 gives. Every value is validated base64url or a fixed
    /// name, so no JSON escaping can occur and plain formatting matches `JSON.stringify`.
    pub fn canonical_text(&self) -> String {
        match (&self.material, self.kind) {
            (Material::Ec { x, y }, KeyKind::Ec(curve)) => format!(
                r#"{{"kty":"EC","crv":"{}","x":"{x}","y":"{y}"}}"#,
                curve.name()
            ),
            (Material::Okp { x }, KeyKind::Okp(curve)) => {
                format!(r#"{{"kty":"OKP","crv":"{}","x":"{x}"}}"#, curve.name())
            }
            (Material::Rsa { n, e }, KeyKind::Rsa { .. }) => {
                format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"}}"#)
            }
            _ => unreachable!("material always matches its kind"),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        PeerId::of_canonical_text(&self.canonical_text())
    }

    /// The RFC 7638 thumbprint input: the same required members, but sorted by name. It is
    /// *not* the peer ID's text, so the two digests never coincide.
    pub fn rfc7638_text(&self) -> String {
        match (&self.material, self.kind) {
            (Material::Ec { x, y }, KeyKind::Ec(curve)) => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{x}","y":"{y}"}}"#,
                curve.name()
            ),
            (Material::Okp { x }, KeyKind::Okp(curve)) => {
                format!(r#"{{"crv":"{}","kty":"OKP","x":"{x}"}}"#, curve.name())
            }
            (Material::Rsa { n, e }, KeyKind::Rsa { .. }) => {
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)
            }
            _ => unreachable!("material always matches its kind"),
        }
    }

    /// The text hashed under `scheme`.
    pub fn hashed_text(&self, scheme: Scheme) -> String {
        match scheme {
            Scheme::PeerId => self.canonical_text(),
            Scheme::Rfc7638 => self.rfc7638_text(),
        }
    }

    /// SHA-256 of [`Self::hashed_text`].
    pub fn digest(&self, scheme: Scheme) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(self.hashed_text(scheme).as_bytes()).into()
    }

    /// The essential members as a JSON object in canonical order, for re-publishing a public
    /// key without anything else it carried.
    pub fn to_public_json(&self) -> Value {
        serde_json::from_str(&self.canonical_text()).expect("canonical text is JSON")
    }

    /// The decoded member bytes, for code that needs the key itself (signature checks, PEM).
    pub fn ec_point(&self) -> Option<(EcCurve, Vec<u8>, Vec<u8>)> {
        match (&self.material, self.kind) {
            (Material::Ec { x, y }, KeyKind::Ec(curve)) => Some((
                curve,
                b64::decode(x).expect("validated"),
                b64::decode(y).expect("validated"),
            )),
            _ => None,
        }
    }

    pub fn okp_key(&self) -> Option<(OkpCurve, Vec<u8>)> {
        match (&self.material, self.kind) {
            (Material::Okp { x }, KeyKind::Okp(curve)) => {
                Some((curve, b64::decode(x).expect("validated")))
            }
            _ => None,
        }
    }

    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match &self.material {
            Material::Rsa { n, e } => Some((
                b64::decode(n).expect("validated"),
                b64::decode(e).expect("validated"),
            )),
            _ => None,
        }
    }

    /// Builds a key from raw EC coordinates (key generation and PEM import).
    pub fn from_ec_coordinates(curve: EcCurve, x: &[u8], y: &[u8]) -> Result<Self, JwkError> {
        let mut object = Map::new();
        object.insert("kty".into(), "EC".into());
        object.insert("crv".into(), curve.name().into());
        object.insert("x".into(), b64::encode(x).into());
        object.insert("y".into(), b64::encode(y).into());
        parse_ec(&object)
    }

    pub fn from_okp_key(curve: OkpCurve, x: &[u8]) -> Result<Self, JwkError> {
        let mut object = Map::new();
        object.insert("kty".into(), "OKP".into());
        object.insert("crv".into(), curve.name().into());
        object.insert("x".into(), b64::encode(x).into());
        parse_okp(&object)
    }

    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Self, JwkError> {
        let mut object = Map::new();
        object.insert("kty".into(), "RSA".into());
        object.insert("n".into(), b64::encode(n).into());
        object.insert("e".into(), b64::encode(e).into());
        parse_rsa(&object)
    }
}

fn string_member<'a>(
    object: &'a Map<String, Value>,
    kty: &'static str,
    member: &'static str,
) -> Result<&'a str, JwkError> {
    match object.get(member) {
        None => Err(JwkError::MissingMember { kty, member }),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(JwkError::NotAString(member)),
    }
}

fn bytes_member(
    object: &Map<String, Value>,
    kty: &'static str,
    member: &'static str,
) -> Result<(String, Vec<u8>), JwkError> {
    let text = string_member(object, kty, member)?;
    let bytes = b64::decode(text).map_err(|problem| match problem {
        Base64Problem::Padding => JwkError::Padding(member),
        Base64Problem::Invalid => JwkError::NotBase64(member),
    })?;
    Ok((text.to_owned(), bytes))
}

fn expect_len(
    member: &'static str,
    crv: &'static str,
    expected: usize,
    bytes: &[u8],
) -> Result<(), JwkError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(JwkError::WrongLength {
            member,
            crv,
            expected,
            actual: bytes.len(),
        })
    }
}

fn parse_ec(object: &Map<String, Value>) -> Result<PublicJwk, JwkError> {
    let crv = string_member(object, "EC", "crv")?;
    let curve = EcCurve::from_name(crv).ok_or_else(|| JwkError::UnsupportedCurve {
        kty: "EC",
        crv: crv.to_owned(),
    })?;
    let (x, x_bytes) = bytes_member(object, "EC", "x")?;
    let (y, y_bytes) = bytes_member(object, "EC", "y")?;
    let len = curve.coordinate_len();
    expect_len("x", curve.name(), len, &x_bytes)?;
    expect_len("y", curve.name(), len, &y_bytes)?;
    if !is_on_curve(curve, &x_bytes, &y_bytes) {
        return Err(JwkError::NotOnCurve(curve.name()));
    }
    Ok(PublicJwk {
        kind: KeyKind::Ec(curve),
        material: Material::Ec { x, y },
    })
}

fn is_on_curve(curve: EcCurve, x: &[u8], y: &[u8]) -> bool {
    let mut sec1 = Vec::with_capacity(1 + x.len() + y.len());
    sec1.push(0x04); // uncompressed point
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    match curve {
        EcCurve::P256 => p256::PublicKey::from_sec1_bytes(&sec1).is_ok(),
        EcCurve::P384 => p384::PublicKey::from_sec1_bytes(&sec1).is_ok(),
        EcCurve::P521 => p521::PublicKey::from_sec1_bytes(&sec1).is_ok(),
    }
}

/// Whether an Ed25519 point's encoding is the only one for its point: `y` (the low 255 bits)
/// below p = 2^255 - 19. Decompression reduces `y` mod p, so y = p + k names the point y = k;
/// a set sign bit with x = 0 is the other non-canonical case, and those two points (y = ±1)
/// are of small order, refused before this. Comparing bytes spares re-encoding the point,
/// a field inversion per registration.
fn is_canonical_y(encoded: &[u8; 32]) -> bool {
    let top = encoded[31] & 0x7f;
    let at_least_p = top == 0x7f && encoded[1..31].iter().all(|&b| b == 0xff) && encoded[0] >= 0xed;
    !at_least_p
}

fn parse_okp(object: &Map<String, Value>) -> Result<PublicJwk, JwkError> {
    let crv = string_member(object, "OKP", "crv")?;
    let curve = OkpCurve::from_name(crv).ok_or_else(|| JwkError::UnsupportedCurve {
        kty: "OKP",
        crv: crv.to_owned(),
    })?;
    let (x, x_bytes) = bytes_member(object, "OKP", "x")?;
    expect_len("x", curve.name(), curve.key_len(), &x_bytes)?;
    if curve == OkpCurve::Ed25519 {
        let bytes: [u8; 32] = x_bytes.as_slice().try_into().expect("length checked");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| JwkError::InvalidEd25519)?;
        // The identity and the other small-order points verify forged signatures; a
        // non-canonical encoding (y not reduced) gives one point two IDs.
        if key.is_weak() {
            return Err(JwkError::WeakEd25519);
        }
        if !is_canonical_y(&bytes) {
            return Err(JwkError::NonCanonicalEd25519);
        }
    }
    Ok(PublicJwk {
        kind: KeyKind::Okp(curve),
        material: Material::Okp { x },
    })
}

fn parse_rsa(object: &Map<String, Value>) -> Result<PublicJwk, JwkError> {
    let (n, n_bytes) = bytes_member(object, "RSA", "n")?;
    let (e, e_bytes) = bytes_member(object, "RSA", "e")?;
    if n_bytes.first() == Some(&0) {
        return Err(JwkError::RsaLeadingZero);
    }
    let modulus_bits = bit_length(&n_bytes);
    if !RSA_MODULUS_BITS.contains(&modulus_bits) {
        return Err(JwkError::RsaModulusSize(modulus_bits));
    }
    if n_bytes.last().is_some_and(|last| last & 1 == 0) {
        return Err(JwkError::RsaEvenModulus);
    }
    // Odd, at least 3, at most 2^32-1: every real key uses 65537 (or 3); a huge exponent
    // only makes each verification the server runs slower.
    let exponent_ok = !e_bytes.is_empty()
        && e_bytes.len() <= 4
        && e_bytes[0] != 0
        && e_bytes[e_bytes.len() - 1] & 1 == 1
        && bit_length(&e_bytes) > 1;
    if !exponent_ok {
        return Err(JwkError::RsaExponent);
    }
    Ok(PublicJwk {
        kind: KeyKind::Rsa { modulus_bits },
        material: Material::Rsa { n, e },
    })
}

/// JSON parsing that refuses duplicate object members at any depth.
mod strict_json {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use super::JwkError;

    pub fn parse(text: &str) -> Result<Value, JwkError> {
        match serde_json::from_str::<Strict>(text) {
            Ok(Strict(value)) => Ok(value),
            Err(error) => {
                let message = error.to_string();
                match message.strip_prefix(DUPLICATE) {
                    Some(rest) => Err(JwkError::DuplicateMember(
                        rest.split(" at line")
                            .next()
                            .unwrap_or(rest)
                            .trim_matches('"')
                            .to_owned(),
                    )),
                    None => Err(JwkError::NotJson(message)),
                }
            }
        }
    }

    const DUPLICATE: &str = "duplicate member ";

    struct Strict(Value);

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(StrictVisitor).map(Strict)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if object.contains_key(&key) {
                    return Err(de::Error::custom(format!("{DUPLICATE}{key:?}")));
                }
                let Strict(value) = map.next_value()?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
}

/// Bits in a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        super::b64::encode(bytes)
    }

    #[test]
    fn hostile_keys_are_refused() {
        let refuse = |jwk: Value| PublicJwk::from_json(&jwk, PrivateMembers::Refuse).unwrap_err();
        // An even RSA modulus of a legal size.
        let mut n = vec![0xc5; 256];
        n[255] = 0x10;
        assert_eq!(
            refuse(json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"})),
            JwkError::RsaEvenModulus
        );
        n[255] = 0x11;
        assert!(
            PublicJwk::from_json(
                &json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"}),
                PrivateMembers::Refuse
            )
            .is_ok()
        );
        // Exponents: 2^64-1 and 2^33-1 are too large, 2^32-1 and 3 are fine, even is refused.
        for (e, ok) in [
            (vec![0xff; 8], false),
            (vec![0x01, 0xff, 0xff, 0xff, 0xff], false),
            (vec![0xff; 4], true),
            (vec![3], true),
            (vec![1, 0, 0], false),
            (vec![1], false),
        ] {
            let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)});
            let result = PublicJwk::from_json(&jwk, PrivateMembers::Refuse);
            assert_eq!(result.is_ok(), ok, "e = {e:?}: {result:?}");
            if !ok {
                assert_eq!(result.unwrap_err(), JwkError::RsaExponent);
            }
        }
        // Ed25519: the identity point, another small-order point, and the identity encoded
        // with an unreduced y (y = p + 1).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        let mut unreduced = [0xffu8; 32];
        unreduced[0] = 0xee;
        unreduced[31] = 0x7f;
        for (bytes, expected) in [
            (identity, JwkError::WeakEd25519),
            (order_two, JwkError::WeakEd25519),
            (unreduced, JwkError::WeakEd25519),
        ] {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&bytes)});
            assert_eq!(refuse(jwk), expected, "{bytes:?}");
        }
        // Non-canonical encodings of points of large order: y = p + k for small k encodes
        // the same point as y = k.
        let mut found = 0;
        for k in 2..19u8 {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + k;
            bytes[31] = 0x7f;
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if key.is_weak() {
                continue;
            }
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&bytes)});
            assert_eq!(refuse(jwk), JwkError::NonCanonicalEd25519, "y = p + {k}");
            found += 1;
        }
        assert!(found > 0, "some y = p + k is a point of large order");
    }

    #[test]
    fn the_byte_check_agrees_with_re_encoding_the_point() {
        let mut candidates: Vec<[u8; 32]> = Vec::new();
        // Around p = 2^255 - 19, with and without the sign bit.
        for low in 0xe0..=0xffu8 {
            for sign in [0u8, 0x80] {
                let mut bytes = [0xffu8; 32];
                bytes[0] = low;
                bytes[31] = 0x7f | sign;
                candidates.push(bytes);
            }
        }
        // And a pseudo-random spread (a fixed xorshift, so failures reproduce).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
            candidates.push(bytes);
        }
        let mut checked = 0;
        for bytes in candidates {
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if key.is_weak() {
                continue;
            }
            let re_encoded = key.to_edwards().compress().to_bytes() == bytes;
            assert_eq!(is_canonical_y(&bytes), re_encoded, "{bytes:?}");
            checked += 1;
        }
        assert!(checked > 500, "only {checked} points checked");
    }

    #[test]
    fn a_room_sees_the_canonical_key_and_short_extras_only() {
        let text = r#"{"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","crv":"Ed25519","kty":"OKP",
            "ext":true,"key_ops":["verify"],"alg":"EdDSA","kid":"Åsa's key","junk":"y"}"#;
        let (key, announced) =
            PublicJwk::from_text_announced(text, PrivateMembers::Refuse).unwrap();
        assert_eq!(
            announced,
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"Åsa's key","alg":"EdDSA"}"#
        );
        let value: Value = serde_json::from_str(&announced).unwrap();
        assert_eq!(
            PublicJwk::from_json(&value, PrivateMembers::Refuse).unwrap(),
            key
        );
        // Long extras, and ones that would need escaping, are dropped.
        for kid in ["k".repeat(65), "a\"b".into(), "a\\b".into(), "a\nb".into()] {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": kid});
            let (_, announced) =
                PublicJwk::from_text_announced(&jwk.to_string(), PrivateMembers::Refuse).unwrap();
            assert!(!announced.contains("kid"), "{kid:?}");
        }
        // The biggest key, every extra at its limit, is exactly the documented bound.
        let mut n = vec![0xc5u8; 1024];
        n[1023] |= 1;
        let rsa = json!({"kty": "RSA", "n": b64(&n), "e": b64(&[0xff; 4]), "kid": "k".repeat(64),
            "alg": "a".repeat(16), "use": "u".repeat(8)});
        let (_, announced) =
            PublicJwk::from_text_announced(&rsa.to_string(), PrivateMembers::Refuse).unwrap();
        assert!(announced.len() <= MAX_ANNOUNCED_KEY, "{}", announced.len());
        assert!(
            announced.len() + 10 > MAX_ANNOUNCED_KEY,
            "the bound is tight"
        );
    }

    #[test]
    fn a_member_twice_anywhere_in_a_key_is_refused() {
        let good =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert!(PublicJwk::from_text(good, PrivateMembers::Refuse).is_ok());
        let twice = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert_eq!(
            PublicJwk::from_text(twice, PrivateMembers::Refuse).unwrap_err(),
            JwkError::DuplicateMember("x".into())
        );
        let nested = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","ext":{"a":1,"a":2}}"#;
        assert_eq!(
            PublicJwk::from_text(nested, PrivateMembers::Refuse).unwrap_err(),
            JwkError::DuplicateMember("a".into())
        );
        assert!(matches!(
            PublicJwk::from_text("{", PrivateMembers::Refuse),
            Err(JwkError::NotJson(_))
        ));
    }

    fn vectors() -> Vec<Value> {
        serde_json::from_str(crate::identity::test_vectors::WEBCRYPTO_KEYS)
            .expect("vectors are JSON")
    }

    #[test]
    fn every_webcrypto_vector_gets_the_browsers_peer_id() {
        let vectors = vectors();
        assert!(vectors.len() >= 8, "expected the full vector set");
        for vector in vectors {
            let name = vector["name"].as_str().unwrap();
            let expected = vector["fingerprint"].as_str().unwrap();
            let public = PublicJwk::from_json(&vector["jwk"], PrivateMembers::Refuse)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(public.peer_id().as_str(), expected, "{name}");
            // The private JWK identifies the same peer once its private half is ignored,
            // and is refused where it would be broadcast.
            let private = PublicJwk::from_json(&vector["privateJwk"], PrivateMembers::Ignore)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(private.peer_id().as_str(), expected, "{name} (private)");
            assert!(matches!(
                PublicJwk::from_json(&vector["privateJwk"], PrivateMembers::Refuse),
                Err(JwkError::PrivateMembers(_))
            ));
        }
    }

    #[test]
    fn canonical_text_is_javascript_json_stringify_order() {
        let key = &vectors()[0]["jwk"];
        let public = PublicJwk::from_json(key, PrivateMembers::Refuse).unwrap();
        let essential = json!({"kty": "EC", "crv": key["crv"], "x": key["x"], "y": key["y"]});
        // serde_json without preserve_order sorts keys, so build the expected text by hand.
        let expected = format!(
            r#"{{"kty":"EC","crv":{},"x":{},"y":{}}}"#,
            essential["crv"], essential["x"], essential["y"]
        );
        assert_eq!(public.canonical_text(), expected);
    }

    #[test]
    fn rfc7517_example_ec_key() {
        // RFC 7517 appendix A.1; expected ID from the issue's published vectors.
        let key = json!({"kty":"EC","crv":"P-256",
            "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"});
        let id = PublicJwk::from_json(&key, PrivateMembers::Refuse)
            .unwrap()
            .peer_id();
        assert_eq!(
            id.as_str(),
            "a352193f3ae0e84514da6fcd22635e7363855ad6e684dc0bc33b22b2ae736401"
        );
    }

    fn ec_key_with(member: &str, value: Value) -> Value {
        let mut key = vectors()[0]["jwk"].clone();
        key[member] = value;
        key
    }

    fn error_of(key: &Value) -> JwkError {
        PublicJwk::from_json(key, PrivateMembers::Refuse).unwrap_err()
    }

    #[test]
    fn names_what_is_wrong() {
        let base = vectors()[0]["jwk"].clone();
        let mut missing_y = base.clone();
        missing_y.as_object_mut().unwrap().remove("y");
        assert_eq!(
            error_of(&missing_y).to_string(),
            "EC key is missing member y"
        );
        assert_eq!(error_of(&json!([])), JwkError::NotAnObject);
        assert_eq!(error_of(&json!({})), JwkError::MissingKty);
        assert_eq!(
            error_of(&json!({"kty":"oct"})),
            JwkError::UnsupportedKty("oct".into())
        );
        assert!(matches!(
            error_of(&ec_key_with("crv", json!("P-192"))),
            JwkError::UnsupportedCurve { .. }
        ));
        assert_eq!(
            error_of(&ec_key_with("x", json!(5))),
            JwkError::NotAString("x")
        );
        let padded = format!("{}=", base["x"].as_str().unwrap());
        assert_eq!(
            error_of(&ec_key_with("x", json!(padded))),
            JwkError::Padding("x")
        );
        assert_eq!(
            error_of(&ec_key_with("x", json!("not base64!"))),
            JwkError::NotBase64("x")
        );
        // A short coordinate (leading zero byte stripped) is the wrong width.
        assert!(matches!(
            error_of(&ec_key_with("x", json!(b64::encode(&[1u8; 31])))),
            JwkError::WrongLength {
                member: "x",
                expected: 32,
                actual: 31,
                ..
            }
        ));
        assert_eq!(
            error_of(&ec_key_with("y", json!(b64::encode(&[1u8; 32])))),
            JwkError::NotOnCurve("P-256")
        );
        let with_d = ec_key_with("d", json!("AAAA"));
        assert_eq!(
            error_of(&with_d).to_string(),
            "the key holds private member(s) d, which must never be shared"
        );
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfcs_rsa_example() {
        // RFC 7638 §3.1.
        let key = json!({"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let public = PublicJwk::from_json(&key, PrivateMembers::Refuse).unwrap();
        assert_eq!(
            b64::encode(&public.digest(Scheme::Rfc7638)),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(
            public.peer_id().as_str(),
            "cf11c70a7e8d51ea8dc5838a58657c93252480f3aec2920817cfc58f469a208a"
        );
        assert_eq!(
            PeerId::from_digest(&public.digest(Scheme::PeerId)),
            public.peer_id()
        );
    }

    #[test]
    fn rsa_rules() {
        let modulus = |bits: usize| {
            let mut n = vec![0xffu8; bits / 8];
            n[0] = 0x80;
            b64::encode(&n)
        };
        let key = |n: String, e: &[u8]| json!({"kty":"RSA","n":n,"e":b64::encode(e)});
        let ok = PublicJwk::from_json(&key(modulus(2048), &[1, 0, 1]), PrivateMembers::Refuse);
        assert_eq!(ok.unwrap().kind(), KeyKind::Rsa { modulus_bits: 2048 });
        assert_eq!(
            error_of(&key(modulus(1024), &[1, 0, 1])),
            JwkError::RsaModulusSize(1024)
        );
        assert_eq!(
            error_of(&key(modulus(8200), &[1, 0, 1])),
            JwkError::RsaModulusSize(8200)
        );
        let mut with_zero = vec![0u8];
        with_zero.extend(b64::decode(&modulus(2048)).unwrap());
        assert_eq!(
            error_of(&key(b64::encode(&with_zero), &[1, 0, 1])),
            JwkError::RsaLeadingZero
        );
        for bad_e in [&[][..], &[1], &[2], &[0, 3], &[1, 0, 0, 0, 0, 0, 0, 0, 1]] {
            assert_eq!(
                error_of(&key(modulus(2048), bad_e)),
                JwkError::RsaExponent,
                "{bad_e:?}"
            );
        }
    }

    #[test]
    fn okp_curves() {
        let x = b64::encode(&[9u8; 32]);
        let x25519 = json!({"kty":"OKP","crv":"X25519","x":x});
        let key = PublicJwk::from_json(&x25519, PrivateMembers::Refuse).unwrap();
        assert!(!key.kind().can_register());
        let ed448 = json!({"kty":"OKP","crv":"Ed448","x":b64::encode(&[1u8; 56])});
        assert!(matches!(error_of(&ed448), JwkError::WrongLength { .. }));
        // RFC 8037 A.2 Ed25519 public key.
        let ed =
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let id = PublicJwk::from_json(&ed, PrivateMembers::Refuse)
            .unwrap()
            .peer_id();
        assert_eq!(
            id.as_str(),
            "20aab9665358bc73da7fc6ab0c064cc7487d8cc311c4596851adcce62db1f1e1"
        );
    }
}
