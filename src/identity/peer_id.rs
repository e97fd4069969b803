//! The peer ID newtype: 64 lowercase hex digits of a SHA-256 digest.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A peer's identity in a room: lowercase hex SHA-256 of its key's canonical text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Box<str>);

impl PeerId {
    /// Length in characters of every peer ID.
    pub const LEN: usize = 64;

    /// The peer ID of a canonical key text (see [`crate::identity::PublicJwk::canonical_text`]).
    pub fn of_canonical_text(text: &str) -> Self {
        Self::from_digest(&Sha256::digest(text.as_bytes()))
    }

    pub fn from_digest(digest: &[u8]) -> Self {
        // By table, not `write!("{:02x}")`: formatting cost ~8k instructions per ID, a
        // twentieth of a whole registration.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let hex: String = digest
            .iter()
            .flat_map(|byte| {
                [
                    DIGITS[usize::from(byte >> 4)],
                    DIGITS[usize::from(byte & 0xf)],
                ]
            })
            .map(char::from)
            .collect();
        Self(hex.into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `len` characters, for display where the full ID is too long.
    pub fn short(&self, len: usize) -> &str {
        &self.0[..len.min(Self::LEN)]
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a peer ID is 64 lowercase hex digits, not {0:?}")]
pub struct PeerIdError(pub String);

impl FromStr for PeerId {
    type Err = PeerIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let well_formed = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(Self(text.into()))
        } else {
            Err(PeerIdError(text.to_owned()))
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short(12))
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_lowercase_hex_of_the_right_length() {
        let good = "0".repeat(64);
        assert!(good.parse::<PeerId>().is_ok());
        assert!("0".repeat(63).parse::<PeerId>().is_err());
        assert!("A".repeat(64).parse::<PeerId>().is_err());
        assert!("g".repeat(64).parse::<PeerId>().is_err());
    }

    #[test]
    fn hashes_text_to_lowercase_hex() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            PeerId::of_canonical_text("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
