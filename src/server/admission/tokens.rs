//! Access tokens at the door (PROTOCOL §13): the keys in force, swapped whole on SIGHUP, and
//! the check each register (or an upgrade's `Authorization: Bearer`) goes through.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::rate::CostBudget;
use crate::token::{Grant, TokenError, Verifier, VerifierOptions, parse_verifying_keys};

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

    /// Checks `token` for `room`, charged like a proof to the server's signature-check
    /// `budget` (a check costs microseconds to a millisecond, RSA-4096), so a flood of tokens
    /// cannot take the CPU either. `None`: the budget is spent, nothing was checked.
    pub fn check(
        &self,
        budget: &CostBudget,
        token: &str,
        room: &str,
    ) -> Option<Result<Grant, TokenError>> {
        if !budget.try_take(1, std::time::Instant::now()) {
            return None;
        }
        let verifier = self.verifier.read().expect("never poisoned").clone();
        Some(verifier.verify(token, Some(room)))
    }

    /// Puts a freshly loaded set of keys in force; tokens are checked with it from the next
    /// register on. Returns how many keys it holds.
    pub fn replace(&self, verifier: Verifier) -> usize {
        let count = verifier.keys().len();
        *self.verifier.write().expect("never poisoned") = Arc::new(verifier);
        count
    }
}
