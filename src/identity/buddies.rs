//! Buddy lists: the peer IDs someone trusts, as text.
//!
//! Two forms are read: a JSON buddy list `[{"id": …, "name": …, "publicKey": …}, …]` (what
//! `rdv fingerprint --buddy-list` writes), or plain text with one peer ID per line, an
//! optional name after it, and `#` comments.

use super::PeerId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buddy {
    pub id: PeerId,
    pub name: Option<String>,
}

/// Parses a buddy list. Errors name the line (text) or the entry (JSON) at fault.
pub fn parse_buddies(text: &str) -> Result<Vec<Buddy>, String> {
    let start = text.trim_start();
    let looks_like_a_key = start.starts_with("-----BEGIN")
        || (start.starts_with('{')
            && serde_json::from_str::<serde_json::Value>(text)
                .is_ok_and(|v| v.get("kty").is_some() || v.get("keys").is_some()));
    if looks_like_a_key {
        return Err(
            "this looks like a key, not a buddy list (make one from keys with \
             `rdv fingerprint --buddy-list KEY…`)"
                .into(),
        );
    }
    if start.starts_with('[') {
        parse_json(text)
    } else {
        parse_lines(text)
    }
}

fn parse_json(text: &str) -> Result<Vec<Buddy>, String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
        name: Option<String>,
    }
    let entries: Vec<Entry> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON buddy list: {e}"))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let id = entry
                .id
                .parse()
                .map_err(|e| format!("entry {index}: {e}"))?;
            Ok(Buddy {
                id,
                name: entry.name,
            })
        })
        .collect()
}

fn parse_lines(text: &str) -> Result<Vec<Buddy>, String> {
    let mut buddies = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (id, name) = match line.split_once(char::is_whitespace) {
            Some((id, name)) => (id, Some(name.trim().to_owned())),
            None => (line, None),
        };
        let id = id.parse().map_err(|e| format!("line {}: {e}", index + 1))?;
        buddies.push(Buddy { id, name });
    }
    Ok(buddies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_and_names_the_bad_line() {
        let id = "ab".repeat(32);
        let text = format!("# team\n{id}  alice # lead\n\n");
        let buddies = parse_buddies(&text).unwrap();
        assert_eq!(buddies[0].name.as_deref(), Some("alice"));
        let json = format!(r#"[{{"id":"{id}","name":"alice","publicKey":{{}}}}]"#);
        assert_eq!(parse_buddies(&json).unwrap()[0].id.as_str(), id);
        assert!(
            parse_buddies("\n\nnope\n")
                .unwrap_err()
                .starts_with("line 3:")
        );
        assert!(
            parse_buddies(r#"[{"id":"x"}]"#)
                .unwrap_err()
                .starts_with("entry 0:")
        );
    }
}
