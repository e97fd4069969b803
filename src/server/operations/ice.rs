//! ICE servers handed to peers in `welcome` (PROTOCOL §10): STUN URLs as they are, TURN URLs
//! with time-limited credentials in coturn's shared-secret scheme (the "TURN REST API",
//! draft-uberti-behave-turn-rest): username `EXPIRY:PEER_ID`, password
//! base64(HMAC-SHA1(secret, username)). No I/O but reading the secret file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};

use crate::identity::PeerId;

/// One `--ice-server` URL, checked: `stun:`, `turn:` or `turns:`, a host, and for TURN an
/// optional `?transport=udp|tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceUrl {
    url: String,
    turn: bool,
}

impl IceUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text.split_once(':').ok_or_else(|| {
            format!("{text:?} is not a STUN or TURN URL (stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp])")
        })?;
        let turn = match scheme {
            "stun" | "stuns" => false,
            "turn" | "turns" => true,
            _ => {
                return Err(format!(
                    "{text:?}: the scheme must be stun:, stuns:, turn: or turns:"
                ));
            }
        };
        let (host, query) = match rest.split_once('?') {
            Some((host, query)) => (host, Some(query)),
            None => (rest, None),
        };
        if host.is_empty() || host.starts_with("//") || host.contains(['/', ' ', '@']) {
            return Err(format!(
                "{text:?}: expected HOST or HOST:PORT after the scheme"
            ));
        }
        match query {
            None => {}
            Some("transport=udp" | "transport=tcp") if turn => {}
            Some(_) if turn => {
                return Err(format!(
                    "{text:?}: the only query is ?transport=udp or ?transport=tcp"
                ));
            }
            Some(_) => return Err(format!("{text:?}: a STUN URL takes no query")),
        }
        Ok(Self {
            url: text.to_owned(),
            turn,
        })
    }

    pub fn is_turn(&self) -> bool {
        self.turn
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

/// The TURN username and password for `peer`, valid until `expiry` (seconds since the Unix
/// epoch): coturn's `use-auth-secret` scheme.
pub fn turn_credential(secret: &[u8], expiry: u64, peer: &str) -> (String, String) {
    let username = format!("{expiry}:{peer}");
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Why the TURN secret could not be read; never includes the secret.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SecretError {
    path: String,
    problem: String,
}

/// The shared secret (coturn's `static-auth-secret`): the file's first line, trimmed.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let error = |problem: String| SecretError {
        path: path.display().to_string(),
        problem,
    };
    let line = crate::files::read_first_line(path).map_err(error)?;
    match line.as_deref().map(str::trim) {
        Some(secret) if !secret.is_empty() => Ok(secret.as_bytes().to_vec()),
        _ => Err(error(
            "is empty; it must hold coturn's static-auth-secret".into(),
        )),
    }
}

/// What the server hands out: the URLs, the secret (reloadable) and the credentials' life.
#[derive(Debug)]
pub struct IceServers {
    stun: Vec<IceUrl>,
    turn: Vec<IceUrl>,
    secret: RwLock<Option<Arc<Vec<u8>>>>,
    secret_path: Option<PathBuf>,
    ttl: Duration,
}

impl IceServers {
    /// `None` without any `--ice-server`: nothing changes on the wire.
    pub fn new(
        urls: &[IceUrl],
        secret_path: Option<&Path>,
        ttl: Duration,
    ) -> Result<Option<Self>, SecretError> {
        if urls.is_empty() {
            return Ok(None);
        }
        let secret = secret_path.map(read_secret).transpose()?.map(Arc::new);
        Ok(Some(Self {
            stun: urls.iter().filter(|u| !u.is_turn()).cloned().collect(),
            turn: urls.iter().filter(|u| u.is_turn()).cloned().collect(),
            secret: RwLock::new(secret),
            secret_path: secret_path.map(Path::to_owned),
            ttl,
        }))
    }

    /// Rereads the secret file (SIGHUP); on failure the secret in force stays.
    pub fn reload_secret(&self) -> Option<Result<(), SecretError>> {
        let path = self.secret_path.as_ref()?;
        Some(read_secret(path).map(|secret| {
            *self.secret.write().expect("never poisoned") = Some(Arc::new(secret));
        }))
    }

    /// When a peer should get fresh credentials: at 80 % of their life.
    pub fn refresh_after(&self) -> Option<Duration> {
        (!self.turn.is_empty() && self.has_secret()).then(|| self.ttl.mul_f64(0.8))
    }

    fn has_secret(&self) -> bool {
        self.secret.read().expect("never poisoned").is_some()
    }

    /// The `iceServers` array for `peer`, as `RTCPeerConnection` takes it, serialized.
    /// Whether it carries TURN credentials is returned too, for the metric.
    pub fn for_peer(&self, peer: &PeerId, now: SystemTime) -> (String, bool) {
        let mut servers = Vec::new();
        if !self.stun.is_empty() {
            let urls: Vec<&str> = self.stun.iter().map(IceUrl::as_str).collect();
            servers.push(serde_json::json!({ "urls": urls }));
        }
        let secret = self.secret.read().expect("never poisoned").clone();
        let mut minted = false;
        if !self.turn.is_empty() {
            let urls: Vec<&str> = self.turn.iter().map(IceUrl::as_str).collect();
            match secret {
                Some(secret) => {
                    let expiry = now
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .saturating_add(self.ttl)
                        .as_secs();
                    let (username, credential) = turn_credential(&secret, expiry, peer.as_str());
                    minted = true;
                    servers.push(serde_json::json!({
                        "urls": urls, "username": username, "credential": credential
                    }));
                }
                // A TURN server without a secret: its own static credentials, if any, are
                // the client's business.
                None => servers.push(serde_json::json!({ "urls": urls })),
            }
        }
        (serde_json::Value::Array(servers).to_string(), minted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for good in [
            "stun:stun.example.com",
            "stun:stun.example.com:3478",
            "turn:turn.example.com:3478?transport=udp",
            "turns:turn.example.com:5349?transport=tcp",
            "turn:[2001:db8::1]:3478",
        ] {
            assert!(IceUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://x",
            "stun:",
            "turn://x",
            "stun:x?transport=udp",
            "turn:x?transport=sctp",
            "turn:user@x",
        ] {
            assert!(IceUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// RFC 2202 test case 2 ("Jefe"), and the scheme's username format.
    #[test]
    fn credentials_are_hmac_sha1_in_base64() {
        let (username, password) = turn_credential(b"Jefe", 1700000000, "ab12");
        assert_eq!(username, "1700000000:ab12");
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(password.len(), 28, "20 bytes of base64 with padding");
        // A fixed vector computed independently (Python: base64.b64encode(hmac.new(secret,
        // username.encode(), hashlib.sha1).digest())).
        let peer = "7e27e9dc".repeat(8);
        let (username, password) = turn_credential(b"rdv-test-secret", 1700000000, &peer);
        assert_eq!(username, format!("1700000000:{peer}"));
        assert_eq!(password, "D0PpYqSgOfqZtcGa+HJdPTAObkU=");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
