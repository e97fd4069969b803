//! What the terminal peer knows about its room: who is there, whether the server told the
//! truth about each peer's ID, and which peers are buddies.

use indexmap::IndexMap;
use serde_json::Value;

use super::render::short_id;
use super::setup::Buddies;
use crate::identity::{PeerId, PrivateMembers, PublicJwk};
use crate::protocol::ServerMessage;

/// A peer announced by the server.
#[derive(Debug, Clone)]
pub struct KnownPeer {
    /// The announced ID is the fingerprint of the announced key.
    pub verified: bool,
    /// That key, when it is (what signed descriptions are checked against, PROTOCOL §12).
    pub key: Option<PublicJwk>,
}

/// A lie (or a bug) caught in what the server announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

#[derive(Debug)]
pub struct RoomView {
    me: PeerId,
    peers: IndexMap<String, KnownPeer>,
    buddies: Option<Buddies>,
}

impl RoomView {
    pub fn new(me: PeerId, buddies: Option<Buddies>) -> Self {
        Self {
            me,
            peers: IndexMap::new(),
            buddies,
        }
    }

    /// Forgets the room (a reconnect gets a fresh `welcome`).
    pub fn reset(&mut self) {
        self.peers.clear();
    }

    /// Updates the view from a server message; returns every mismatch it reveals.
    pub fn observe(&mut self, message: &ServerMessage) -> Vec<Mismatch> {
        let mut mismatches = Vec::new();
        match message {
            ServerMessage::Welcome { peer_id, peers } => {
                if peer_id != self.me.as_str() {
                    mismatches.push(Mismatch(format!(
                        "the server says this peer is {peer_id} but its key's ID is {}",
                        self.me
                    )));
                }
                self.peers.clear();
                for peer in peers {
                    self.announce(&peer.id, peer.public_key.as_ref(), &mut mismatches);
                }
            }
            ServerMessage::PeerJoined {
                peer_id,
                public_key,
                ..
            } => self.announce(peer_id, public_key.as_ref(), &mut mismatches),
            ServerMessage::PeerLeft { peer_id } => {
                self.peers.shift_remove(peer_id);
            }
            _ => {}
        }
        mismatches
    }

    fn announce(&mut self, id: &str, key: Option<&Value>, mismatches: &mut Vec<Mismatch>) {
        let mut known_key = None;
        let verified = match key.map(|k| PublicJwk::from_json(k, PrivateMembers::Refuse)) {
            Some(Ok(key)) if key.peer_id().as_str() == id => {
                known_key = Some(key);
                true
            }
            Some(Ok(key)) => {
                mismatches.push(Mismatch(format!(
                    "the server announced peer {id} with a key whose ID is {}",
                    key.peer_id()
                )));
                false
            }
            Some(Err(e)) => {
                mismatches.push(Mismatch(format!(
                    "the server announced peer {id} with an unusable key: {e}"
                )));
                false
            }
            None => {
                mismatches.push(Mismatch(format!(
                    "the server announced peer {id} without a key"
                )));
                false
            }
        };
        self.peers.insert(
            id.to_owned(),
            KnownPeer {
                verified,
                key: known_key,
            },
        );
    }

    pub fn count(&self) -> usize {
        self.peers.len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.peers.keys().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<&KnownPeer> {
        self.peers.get(id)
    }

    /// This peer's own ID.
    pub fn me(&self) -> &PeerId {
        &self.me
    }

    pub fn is_buddy(&self, id: &str) -> bool {
        self.buddies.as_ref().is_some_and(|b| b.contains_key(id))
    }

    /// `01234567 (alice)`, `01234567 (unknown)` with a buddy list, or the short ID alone.
    pub fn name(&self, id: &str) -> String {
        if id == self.me.as_str() {
            return format!("{} (you)", short_id(id));
        }
        match &self.buddies {
            Some(buddies) => match buddies.get(id) {
                Some(Some(name)) => format!("{} ({name})", short_id(id)),
                Some(None) => format!("{} (buddy)", short_id(id)),
                None => format!("{} (unknown)", short_id(id)),
            },
            None => short_id(id).to_owned(),
        }
    }

    /// The full ID of the one present peer whose ID starts with `prefix`.
    pub fn resolve(&self, prefix: &str) -> Result<String, String> {
        let matches: Vec<&String> = self
            .peers
            .keys()
            .filter(|id| id.starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no peer in the room matches {prefix:?}")),
            many => Err(format!(
                "{prefix:?} matches {} peers; type more of the ID",
                many.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeySpec, PrivateKey};
    use serde_json::json;

    #[test]
    fn catches_a_server_that_lies_about_ids() {
        let me = PrivateKey::generate(KeySpec::Ed25519).unwrap().public();
        let other = PrivateKey::generate(KeySpec::Ed25519).unwrap().public();
        let mut view = RoomView::new(me.peer_id(), None);
        let honest = json!({"type": "welcome", "peerId": me.peer_id().as_str(),
            "peers": [{"id": other.peer_id().as_str(), "publicKey": other.to_public_json()}]});
        assert!(
            view.observe(&ServerMessage::parse(&honest).unwrap())
                .is_empty()
        );
        assert!(view.get(other.peer_id().as_str()).unwrap().verified);

        let liar = json!({"type": "peer-joined", "peerId": "f".repeat(64), "publicKey": other.to_public_json()});
        assert_eq!(view.observe(&ServerMessage::parse(&liar).unwrap()).len(), 1);
        assert!(!view.get(&"f".repeat(64)).unwrap().verified);
        let wrong_me = json!({"type": "welcome", "peerId": other.peer_id().as_str(), "peers": []});
        assert_eq!(
            view.observe(&ServerMessage::parse(&wrong_me).unwrap())
                .len(),
            1
        );
    }

    #[test]
    fn prefixes_resolve_only_when_unique() {
        let me = PrivateKey::generate(KeySpec::Ed25519)
            .unwrap()
            .public()
            .peer_id();
        let mut view = RoomView::new(me, None);
        for id in ["ab12", "ab34", "cd56"] {
            view.peers.insert(
                id.repeat(16),
                KnownPeer {
                    verified: true,
                    key: None,
                },
            );
        }
        assert_eq!(view.resolve("c").unwrap(), "cd56".repeat(16));
        assert!(view.resolve("ab").unwrap_err().contains("2 peers"));
        assert!(view.resolve("zz").is_err());
    }
}
