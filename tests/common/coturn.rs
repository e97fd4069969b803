//! coturn's `turnserver` started on loopback for a test, and a TURN client to try it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub const SECRET: &str = "coturn-test-secret";

/// coturn on a free loopback UDP port, relaying on loopback (which it refuses by default).
pub struct Coturn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Fails (or, outside CI, skips) a test when coturn's `turnserver` is not installed.
pub fn require() {
    super::outside::require(super::outside::program(
        "turnserver",
        "--version",
        "apt-get install coturn",
    ));
}

impl Coturn {
    /// Starts coturn; a port taken between choosing it and coturn binding it (other tests
    /// start servers too) gets a second and third try on fresh ports.
    pub fn start() -> Self {
        for _ in 0..3 {
            if let Some(coturn) = Self::try_start() {
                return coturn;
            }
        }
        panic!("coturn did not answer STUN on three fresh ports");
    }

    fn try_start() -> Option<Self> {
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
        let mut coturn = Self {
            child,
            port,
            _dir: dir,
        };
        // Ready once it answers a STUN Binding request; bounded, then it counts as failed.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ready = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while tokio::time::Instant::now() < deadline {
                if binding(coturn.addr()).await.is_ok() {
                    return true;
                }
                if coturn.child.try_wait().ok().flatten().is_some() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        ready.then_some(coturn)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn turn_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// `rdv serve` handing out this TURN server (`--ice-server`) with credentials it mints
    /// from the shared secret (`--turn-secret-file`, in the directory returned with it),
    /// plus `extra` flags.
    pub fn rdv_serving(&self, extra: &[&str]) -> (super::Server, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("turn-secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let turn_url = self.turn_url();
        let mut args = vec![
            "--ice-server",
            &turn_url,
            "--turn-secret-file",
            secret.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (super::Server::start(&args), dir)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn client(
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

pub async fn binding(server: SocketAddr) -> Result<SocketAddr, String> {
    let client = client(Some(server), None, "", "").await;
    let result = tokio::time::timeout(Duration::from_millis(500), client.send_binding_request())
        .await
        .map_err(|_| "timeout".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let _ = client.close().await;
    result
}
