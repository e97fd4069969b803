//! Peer identity: JWK public keys and the peer ID derived from them (PROTOCOL §4).
//!
//! This module owns parsing and validating a JWK into a [`PublicJwk`] and computing its
//! [`PeerId`]. It does no I/O: the server, the terminal peer and the key utilities all call
//! into it, so there is exactly one implementation of the fingerprint.

mod b64;
mod buddies;
mod jwk;
pub mod keyfile;
mod oid;
mod peer_id;
mod pem;

pub use b64::{decode as base64url_decode, encode as base64url};
mod private;
mod proof;
mod signed;

pub use buddies::{Buddy, parse_buddies};
pub use jwk::{
    EcCurve, JwkError, KeyKind, MAX_ANNOUNCED_KEY, OkpCurve, PRIVATE_MEMBERS, PrivateMembers,
    PublicJwk, Scheme,
};
pub use peer_id::{PeerId, PeerIdError};
pub use pem::{looks_like_pem, public_key_from_der, public_keys_from_pem};
pub use private::{KeyError, KeySpec, PrivateKey};
pub use proof::{
    ProofAlg, ProofError, ProofForm, check_proof_form, proof_cost, proof_message, verify_proof,
};
pub use signed::{
    CONTEXT as SIGNED_DESCRIPTION_CONTEXT, Invalid as SignatureInvalid, MAX_SKEW_MS,
    SeenSignatures, Verdict as SignatureVerdict, sign_description, signed_bytes,
    verify_description,
};

/// Keys made by a browser's WebCrypto with the peer IDs it computed (`tests/data/README.md`
/// says where they came from); compiled in so the unit tests read nothing at run time.
#[cfg(test)]
pub(crate) mod test_vectors {
    pub const WEBCRYPTO_KEYS: &str = include_str!("../../tests/data/webcrypto-keys.json");
    pub const SIGNED_DESCRIPTIONS: &str = include_str!("../../tests/data/signed-descriptions.json");
}
