//! TURN credentials minted by `rdv serve` against a real coturn (`turnserver`, started here
//! on loopback with `use-auth-secret`): `rdv peer --ice-check` gets an allocation, an expired
//! or forged credential is refused, and refreshed credentials work.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;
use common::coturn::{Coturn, client};
use serde_json::Value;

/// A TURN Allocate with these credentials: the relayed address, or why not.
async fn allocate(
    server: SocketAddr,
    username: &str,
    credential: &str,
) -> Result<SocketAddr, String> {
    use webrtc_util::Conn as _;
    let client = client(None, Some(server), username, credential).await;
    let result = match tokio::time::timeout(common::WAIT, client.allocate()).await {
        Err(_) => Err("no answer".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(relay)) => {
            let address = relay.local_addr().map_err(|e| e.to_string());
            let _ = relay.close().await;
            address
        }
    };
    let _ = client.close().await;
    result
}

fn serve_with(coturn: &Coturn, ttl: &str, extra: &[&str]) -> (Server, tempfile::TempDir) {
    let mut args = vec!["--turn-ttl", ttl];
    args.extend_from_slice(extra);
    coturn.rdv_serving(&args)
}

#[test]
#[ignore = "needs coturn; cargo test -- --ignored runs it"]
fn the_terminal_peer_gets_an_allocation_with_the_minted_credential() {
    common::coturn::require();
    let coturn = Coturn::start();
    // A TLS URL as well, which the check lists as skipped (it tries plain UDP only).
    let (server, _dir) = serve_with(
        &coturn,
        "1h",
        &["--ice-server", "turns:127.0.0.1:5349?transport=tcp"],
    );
    let output = Command::new(common::rdv_binary())
        .args([
            "peer",
            &format!("ws://{}", server.addr),
            "check",
            "--ice-check",
        ])
        .args(["--timeout", "20s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let checks: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|m: &Value| m["type"] == "ice-check")
        .collect();
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(checks[0]["ok"], true, "{checks:?}");
    assert_eq!(checks[1]["skipped"], true, "{checks:?}");
    let relayed: SocketAddr = checks[0]["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");
    assert!(stderr.contains("allocation granted"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs coturn; cargo test -- --ignored runs it"]
async fn expired_and_forged_credentials_are_refused_fresh_ones_work() {
    common::coturn::require();
    let coturn = tokio::task::spawn_blocking(Coturn::start).await.unwrap();
    let (server, _dir) = serve_with(&coturn, "3s", &[]);
    let mut peer = server.peer("turn").await;
    let entry = &peer.welcome["iceServers"][0];
    let (username, credential) = (
        entry["username"].as_str().unwrap().to_owned(),
        entry["credential"].as_str().unwrap().to_owned(),
    );
    assert!(
        allocate(coturn.addr(), &username, &credential)
            .await
            .is_ok()
    );

    // Forged: the right format, the wrong secret.
    let forged = {
        use base64::Engine as _;
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"not-the-secret").unwrap();
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    assert!(
        allocate(coturn.addr(), &username, &forged).await.is_err(),
        "forged"
    );

    // The refresh (at 80 % of 3 s) brings credentials that work.
    let update = peer.client.expect("ice-servers").await;
    let fresh = &update["iceServers"][0];
    let fresh_user = fresh["username"].as_str().unwrap();
    assert!(
        allocate(
            coturn.addr(),
            fresh_user,
            fresh["credential"].as_str().unwrap()
        )
        .await
        .is_ok()
    );

    // Once its expiry has passed, the first credential is refused.
    let expiry: u64 = username.split_once(':').unwrap().0.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tokio::time::sleep(Duration::from_secs(expiry.saturating_sub(now) + 2)).await;
    assert!(
        allocate(coturn.addr(), &username, &credential)
            .await
            .is_err(),
        "expired"
    );
}
