//! The claims rdv reads besides the standard ones: `room` (which rooms), `sub` (which peer)
//! and `max_peers` (the room's size when the holder opens it).

use serde::{Deserialize, Serialize};

/// The largest `max_peers` a token may carry; the server's own `--max-peers-per-room` caps
/// it further.
pub const MAX_PEERS_CLAIM: u64 = 1_000_000;

/// The `room` claim: one entry or several. An entry that ends in `*` grants every room whose
/// name starts with what precedes it (`*` alone: every room); any other entry is one exact
/// room name. A `*` anywhere else is an ordinary character.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RoomGrant {
    One(String),
    Many(Vec<String>),
}

impl RoomGrant {
    pub fn entries(&self) -> &[String] {
        match self {
            Self::One(entry) => std::slice::from_ref(entry),
            Self::Many(entries) => entries,
        }
    }

    /// Whether the grant covers `room` (the decoded name, as the server sees it).
    pub fn allows(&self, room: &str) -> bool {
        self.entries()
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => room.starts_with(prefix),
                None => entry == room,
            })
    }

    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

impl std::fmt::Display for RoomGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self
            .entries()
            .iter()
            .take(4)
            .map(|entry| format!("{:?}", crate::protocol::truncate_chars(entry, 40)))
            .collect();
        f.write_str(&shown.join(", "))?;
        if self.entries().len() > 4 {
            write!(f, " and {} more", self.entries().len() - 4)?;
        }
        Ok(())
    }
}

/// Every claim rdv reads; the rest of a token's claims are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    pub room: Option<RoomGrant>,
    pub sub: Option<String>,
    pub max_peers: Option<u64>,
    pub exp: u64,
    pub iat: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_trailing_star_prefixes() {
        let grant = |text: &str| serde_json::from_str::<RoomGrant>(text).unwrap();
        let exact = grant(r#""lobby""#);
        assert!(exact.allows("lobby"));
        assert!(!exact.allows("lobby2") && !exact.allows("lobb") && !exact.allows("Lobby"));
        let prefix = grant(r#""game-*""#);
        assert!(prefix.allows("game-") && prefix.allows("game-42") && prefix.allows("game-*"));
        assert!(!prefix.allows("game") && !prefix.allows("xgame-1"));
        let every = grant(r#""*""#);
        assert!(every.allows("anything") && every.allows("*"));
        // A star elsewhere is literal.
        let inner = grant(r#""a*b""#);
        assert!(inner.allows("a*b") && !inner.allows("axb"));
        let many = grant(r#"["lobby", "team-*"]"#);
        assert!(many.allows("lobby") && many.allows("team-red") && !many.allows("other"));
        assert!(grant("[]").is_empty() && !grant("[]").allows(""));
        assert!(serde_json::from_str::<RoomGrant>("42").is_err());
        assert!(serde_json::from_str::<RoomGrant>(r#"["a", 1]"#).is_err());
    }
}
