//! Strict base64url decoding for JWK members.
//!
//! JWK members are base64url without padding (RFC 7515 §2). Accepting padding or stray bits
//! would let one key be written several ways, and so carry several peer IDs; we refuse them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a member's text is not canonical base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base64Problem {
    Padding,
    Invalid,
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base64Problem> {
    if text.ends_with('=') {
        return Err(Base64Problem::Padding);
    }
    // The default engine rejects non-zero trailing bits, so every byte string has exactly
    // one accepted spelling.
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Base64Problem::Invalid)
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_padding_and_non_canonical_bits() {
        assert_eq!(decode("AQ=="), Err(Base64Problem::Padding));
        assert_eq!(decode("AR"), Err(Base64Problem::Invalid)); // stray low bits
        assert_eq!(decode("A+8"), Err(Base64Problem::Invalid)); // standard alphabet
        assert_eq!(decode("AQ"), Ok(vec![1]));
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
