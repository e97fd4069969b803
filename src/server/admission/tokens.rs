//! Access tokens at the door (PROTOCOL §13): the keys in force, swapped whole on SIGHUP, and
//! the check each register (or an upgrade's `Authorization: Bearer`) goes through.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::protocol::ErrorCode;
use crate::token::{Grant, TokenError, Verifier, VerifierOptions, parse_verifying_keys};

/// The `error` code a refusal is reported with.
pub fn error_code(error: &TokenError) -> ErrorCode {
    match error {
        TokenError::Required => ErrorCode::TokenRequired,
        TokenError::Invalid(_) => ErrorCode::TokenInvalid,
        TokenError::Expired => ErrorCode::TokenExpired,
        TokenError::RoomForbidden(_) => ErrorCode::RoomForbidden,
        TokenError::PeerMismatch => ErrorCode::TokenPeerMismatch,
    }
}

/// Reads every `--auth-key` file into one verifier; an error names the file.
pub fn load(files: &[PathBuf], options: VerifierOptions) -> Result<Verifier, String> {
    let mut keys = Vec::new();
    for path in files {
        keys.extend(read_keys(path)?);
    }
    Ok(Verifier::new(keys, options))
}

fn read_keys(path: &Path) -> Result<Vec<crate::token::VerifyingKey>, String> {
    let problem = |why: &dyn std::fmt::Display| format!("--auth-key {}: {why}", path.display());
    let text = crate::files::read_text(path).map_err(|e| problem(&e))?;
    parse_verifying_keys(&text).map_err(|e| problem(&e))
}

/// The token check of a server started with `--auth-key`.
pub struct TokenGate {
    verifier: RwLock<Arc<Verifier>>,
}

impl TokenGate {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier: RwLock::new(Arc::new(verifier)),
        }
    }

    /// Checks `token` for `room`. A signature check costs a few microseconds to a
    /// millisecond (RSA-4096); the caller charges it to the server's check budget first.
    pub fn check(&self, token: &str, room: &str) -> Result<Grant, TokenError> {
        let verifier = self.verifier.read().expect("never poisoned").clone();
        verifier.verify(token, Some(room))
    }

    /// Puts a freshly loaded set of keys in force; tokens are checked with it from the next
    /// register on. Returns how many keys it holds.
    pub fn replace(&self, verifier: Verifier) -> usize {
        let count = verifier.keys().len();
        *self.verifier.write().expect("never poisoned") = Arc::new(verifier);
        count
    }
}
