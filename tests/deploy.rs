//! The recipes in `deploy/` are real: the systemd unit passes `systemd-analyze verify`, and
//! Debian's nginx with the shipped locations in front of `rdv serve` carries a room and hands
//! rdv the client's address.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Server;
use futures_util::SinkExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
#[ignore = "needs systemd-analyze; cargo test -- --ignored runs it"]
fn the_systemd_unit_verifies() {
    common::outside::require(common::outside::program(
        "systemd-analyze",
        "--version",
        "apt-get install systemd",
    ));
    let dir = tempfile::tempdir().unwrap();
    // The unit names the installed binary; point it at this build.
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/rdv.service"))
        .unwrap()
        .replace("/usr/local/bin/rdv", &common::rdv_binary());
    let path = dir.path().join("rdv.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Debian's nginx on a free loopback port, with `deploy/nginx/rdv-locations.conf` proxying
/// to `upstream`. Killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_tcp_port();
        let d = dir.path().display();
        let locations = repo().join("deploy/nginx/rdv-locations.conf");
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             upstream rdv {{ server {upstream}; }}\n  \
             server {{ listen 127.0.0.1:{port}; include {}; }}\n}}\n",
            locations.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + common::WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tcp_from(source: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn join_from(source: &str, nginx: &Nginx, room: &str) -> (Ws, common::TestKey) {
    let tcp = tcp_from(source, nginx.addr).await;
    let url = format!("ws://{}/room/{room}/websocket", nginx.addr);
    let (mut ws, _) = tokio::time::timeout(common::WAIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("in time")
        .expect("an upgrade through nginx");
    let key = common::TestKey::new();
    ws.send(Message::text(rdv::protocol::register(
        &key.public_jwk,
        None,
    )))
    .await
    .unwrap();
    let welcome = common::next_json(&mut ws).await;
    assert_eq!(welcome["peerId"], key.peer_id());
    (ws, key)
}

#[tokio::test]
#[ignore = "needs nginx; cargo test -- --ignored runs it"]
async fn nginx_in_front_carries_a_room_and_the_clients_address() {
    common::outside::require(common::outside::program(
        "nginx",
        "-v",
        "apt-get install nginx-light",
    ));
    let server = Server::start(&[
        "--trusted-proxy",
        "127.0.0.1/32",
        "--max-connections-per-ip",
        "1",
    ]);
    let nginx = Nginx::start(server.addr);
    let (mut alice, _) = join_from("127.0.0.7", &nginx, "proxied").await;
    let (mut bob, bob_key) = join_from("127.0.0.8", &nginx, "proxied").await;
    assert_eq!(common::next_json(&mut alice).await["type"], "peer-joined");
    alice
        .send(Message::text(
            json!({"type": "offer", "to": bob_key.peer_id(), "sdp": {"n": 1}}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(common::next_json(&mut bob).await["type"], "offer");

    // rdv sees 127.0.0.7 (from X-Forwarded-For), not nginx's 127.0.0.1: a second connection
    // from .7 is over the limit of one, while .7 and .8 each had theirs.
    let mut again = tcp_from("127.0.0.7", nginx.addr).await;
    again
        .write_all(
            b"GET /room/proxied/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(common::WAIT, again.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(&head[9..12], b"429", "{}", String::from_utf8_lossy(&head));
    let metrics = server.metrics().await;
    assert_eq!(
        common::metric(&metrics, r#"rdv_upgrades_rejected_total{reason="per-ip"}"#),
        1.0
    );
}
