//! TURN credentials minted by `rdv serve` against a real coturn (`turnserver`, started here
//! on loopback with `use-auth-secret`): `rdv peer --ice-check` gets an allocation, an expired
//! or forged credential is refused, and refreshed credentials work.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use serde_json::Value;

const SECRET: &str = "coturn-test-secret";

/// coturn on a free loopback UDP port, relaying on loopback (which it refuses by default).
struct Coturn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A relay range of its own, derived from the listening port.
        let min = 40_000 + (port % 2_000) * 10;
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args([
                "--min-port",
                &min.to_string(),
                "--max-port",
                &(min + 9).to_string(),
            ])
            .args(["--use-auth-secret", "--static-auth-secret", SECRET])
            .args(["--realm", "rdv.test", "--allow-loopback-peers"])
            .arg("--log-file")
            .arg(dir.path().join("turn.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnserver");
        let coturn = Self {
            child,
            port,
            _dir: dir,
        };
        // Ready once it answers a STUN Binding request.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(common::eventually("coturn answers STUN", || async {
            binding(coturn.addr()).await.ok()
        }));
        coturn
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn turn_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(
    stun: Option<SocketAddr>,
    turn: Option<SocketAddr>,
    user: &str,
    pass: &str,
) -> turn::client::Client {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = turn::client::ClientConfig {
        stun_serv_addr: stun.map(|a| a.to_string()).unwrap_or_default(),
        turn_serv_addr: turn.map(|a| a.to_string()).unwrap_or_default(),
        username: user.to_owned(),
        password: pass.to_owned(),
        realm: String::new(),
        software: "rdv-test".to_owned(),
        rto_in_ms: 0,
        conn: Arc::new(socket),
        vnet: None,
    };
    let client = turn::client::Client::new(config).await.unwrap();
    client.listen().await.unwrap();
    client
}

async fn binding(server: SocketAddr) -> Result<SocketAddr, String> {
    let client = client(Some(server), None, "", "").await;
    let result = tokio::time::timeout(Duration::from_millis(500), client.send_binding_request())
        .await
        .map_err(|_| "timeout".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let _ = client.close().await;
    result
}

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

fn serve_with(coturn: &Coturn, ttl: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let server = Server::start(&[
        "--ice-server",
        &coturn.turn_url(),
        "--turn-secret-file",
        secret.to_str().unwrap(),
        "--turn-ttl",
        ttl,
    ]);
    (server, dir)
}

fn require_coturn() {
    common::outside::require(common::outside::program(
        "turnserver",
        "--version",
        "apt-get install coturn",
    ));
}

#[test]
#[ignore = "needs coturn; cargo test -- --ignored runs it"]
fn the_terminal_peer_gets_an_allocation_with_the_minted_credential() {
    require_coturn();
    let coturn = Coturn::start();
    let (server, _dir) = serve_with(&coturn, "1h");
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
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["ok"], true, "{checks:?}");
    let relayed: SocketAddr = checks[0]["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(relayed.ip().to_string(), "127.0.0.1");
    assert!(stderr.contains("allocation granted"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs coturn; cargo test -- --ignored runs it"]
async fn expired_and_forged_credentials_are_refused_fresh_ones_work() {
    require_coturn();
    let coturn = tokio::task::spawn_blocking(Coturn::start).await.unwrap();
    let (server, _dir) = serve_with(&coturn, "3s");
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
