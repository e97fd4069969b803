//! The allow list of peer IDs (`--allow-list`): who may register on this server.

use std::collections::HashSet;
use std::path::Path;

use crate::identity::{PeerId, parse_buddies};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct AllowListError {
    path: String,
    problem: String,
}

/// Reads a buddy list file (see [`crate::identity::parse_buddies`]) as a set of peer IDs.
pub fn load(path: &Path) -> Result<HashSet<PeerId>, AllowListError> {
    let error = |problem: String| AllowListError {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let buddies = parse_buddies(&text).map_err(error)?;
    Ok(buddies.into_iter().map(|buddy| buddy.id).collect())
}
