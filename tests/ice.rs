//! ICE servers in `welcome` (PROTOCOL §10): STUN as given, TURN with credentials minted per
//! peer in coturn's shared-secret scheme, refreshed before they expire.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Server, metric};
use serde_json::{Value, json};
use sha2::Digest as _;

/// HMAC-SHA1, computed here from the definition (RFC 2104) with sha1's plain hash, not with
/// rdv's code.
fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut key = key.to_vec();
    if key.len() > 64 {
        key = sha1::Sha1::digest(&key).to_vec();
    }
    key.resize(64, 0);
    let inner: Vec<u8> = key
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let inner = sha1::Sha1::digest(&inner);
    let outer: Vec<u8> = key
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.iter().copied())
        .collect();
    sha1::Sha1::digest(&outer).to_vec()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn check_turn_entry(entry: &Value, peer: &str, secret: &str, ttl: u64) {
    let username = entry["username"].as_str().unwrap();
    let (expiry, id) = username.split_once(':').unwrap();
    assert_eq!(id, peer);
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        expiry.abs_diff(now() + ttl) <= 5,
        "expiry {expiry} for a {ttl} s life"
    );
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(secret.as_bytes(), username.as_bytes()));
    assert_eq!(entry["credential"], expected.as_str());
}

#[tokio::test]
async fn without_ice_servers_the_welcome_is_unchanged() {
    let server = Server::start(&[]);
    let peer = server.peer("plain").await;
    let keys: Vec<&String> = peer.welcome.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["type", "peerId", "peers"]);
}

#[tokio::test]
async fn welcome_carries_stun_and_turn_with_minted_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "north-by-northwest\n").unwrap();
    let server = Server::start(&[
        "--ice-server",
        "stun:stun.example.com:3478",
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--ice-server",
        "turns:turn.example.com:5349?transport=tcp",
        "--turn-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let peer = server.peer("ice").await;
    let servers = &peer.welcome["iceServers"];
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.com:3478"]}));
    assert_eq!(
        servers[1]["urls"],
        json!([
            "turn:127.0.0.1:3478?transport=udp",
            "turns:turn.example.com:5349?transport=tcp"
        ])
    );
    check_turn_entry(&servers[1], &peer.id, "north-by-northwest", 3600);
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, "rdv_turn_credentials_issued_total"), 1.0);
}

#[tokio::test]
async fn fresh_credentials_arrive_before_the_old_ones_expire() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    let server = Server::start(&[
        "--ice-server",
        "turn:127.0.0.1:3478",
        "--turn-secret-file",
        secret_file.to_str().unwrap(),
        "--turn-ttl",
        "3s",
    ]);
    let mut peer = server.peer("refresh").await;
    let first = peer.welcome["iceServers"][0]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    // At 80 % of 3 s: within the bounded wait, and before the first credential expires.
    let update = peer.client.expect("ice-servers").await;
    let entry = &update["iceServers"][0];
    check_turn_entry(entry, &peer.id, "s3cret", 3);
    let expiry = |username: &str| username.split_once(':').unwrap().0.parse::<u64>().unwrap();
    let fresh = entry["username"].as_str().unwrap();
    assert!(expiry(fresh) >= expiry(&first), "{fresh} after {first}");
    assert!(
        now() <= expiry(&first),
        "the update came before the first one expired"
    );
}

#[test]
fn a_missing_or_empty_secret_or_a_bad_url_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |secret: &std::path::Path| {
        std::process::Command::new(common::rdv_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--ice-server", "turn:x"])
            .arg("--turn-secret-file")
            .arg(secret)
            .output()
            .unwrap()
    };
    let missing = serve(&dir.path().join("nope"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope: no such file"));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let output = serve(&empty);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is empty"));
    let bad_url = std::process::Command::new(common::rdv_binary())
        .args(["serve", "--ice-server", "http://x"])
        .output()
        .unwrap();
    assert_eq!(bad_url.status.code(), Some(2));
}
