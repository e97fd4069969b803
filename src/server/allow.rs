//! The allow list of peer IDs (`--allow-list`): who may register on this server.

use std::collections::HashSet;
use std::path::Path;

use crate::identity::PeerId;

#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {source}")]
    BadLine {
        path: String,
        line: usize,
        source: crate::identity::PeerIdError,
    },
    #[error("{path}: {message}")]
    BadJson { path: String, message: String },
}

/// Reads a file of peer IDs, one per line with `#` comments, or a JSON buddy list
/// (`[{"id": …}, …]`, as `rdv fingerprint --buddy-list` writes).
pub fn load(path: &Path) -> Result<HashSet<PeerId>, AllowListError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AllowListError::Read {
        path: shown.clone(),
        source,
    })?;
    if text.trim_start().starts_with('[') {
        return parse_buddy_list(&text).map_err(|message| AllowListError::BadJson {
            path: shown,
            message,
        });
    }
    let mut ids = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let id = line.parse().map_err(|source| AllowListError::BadLine {
            path: shown.clone(),
            line: index + 1,
            source,
        })?;
        ids.insert(id);
    }
    Ok(ids)
}

fn parse_buddy_list(text: &str) -> Result<HashSet<PeerId>, String> {
    #[derive(serde::Deserialize)]
    struct Buddy {
        id: String,
    }
    let buddies: Vec<Buddy> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON buddy list: {e}"))?;
    buddies
        .into_iter()
        .enumerate()
        .map(|(index, buddy)| buddy.id.parse().map_err(|e| format!("entry {index}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_buddy_lists_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("rdv-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = dir.join("ids.txt");
        let id = "ab".repeat(32);
        std::fs::write(&lines, format!("# team\n{id}  # alice\n\n")).unwrap();
        assert_eq!(load(&lines).unwrap().len(), 1);
        let json = dir.join("buddies.json");
        std::fs::write(&json, format!(r#"[{{"id":"{id}","name":"alice"}}]"#)).unwrap();
        assert!(load(&json).unwrap().contains(id.as_str()));
        std::fs::write(&lines, "nope\n").unwrap();
        let error = load(&lines).unwrap_err().to_string();
        assert!(error.contains("ids.txt: line 1:"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
