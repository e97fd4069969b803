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

/// A proxy started from a shipped recipe, killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Runs `program args…` (with `{dir}` in an argument replaced by a scratch directory
    /// holding `config` as `file_name`) and waits until `port` listens.
    fn start(program: &str, args: &[&str], file_name: &str, config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file_name), config).unwrap();
        let d = dir.path().display().to_string();
        let child = Command::new(program)
            .args(args.iter().map(|a| a.replace("{dir}", &d)))
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + common::WAIT;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{program} never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// `deploy/cluster/haproxy.cfg` as shipped, with every instance pointed at `upstream`.
    fn haproxy(upstream: SocketAddr) -> Self {
        let port = common::free_tcp_port();
        let mut config = std::fs::read_to_string(repo().join("deploy/cluster/haproxy.cfg"))
            .unwrap()
            .replace("bind :8080", &format!("bind 127.0.0.1:{port}"))
            .replace("log stdout format raw local0 notice", "");
        for n in 1..=3 {
            config = config.replace(&format!("rdv{n}:8080"), &upstream.to_string());
        }
        Self::start(
            "haproxy",
            &["-f", "{dir}/haproxy.cfg"],
            "haproxy.cfg",
            &config,
            port,
        )
    }

    /// `deploy/caddy/Caddyfile` as shipped, on plain HTTP at a free port, proxying to
    /// `upstream`.
    fn caddy(upstream: SocketAddr) -> Self {
        let port = common::free_tcp_port();
        let shipped = std::fs::read_to_string(repo().join("deploy/caddy/Caddyfile")).unwrap();
        assert!(shipped.contains("signal.example.com {"));
        let config = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n{}",
            shipped
                .replace(
                    "signal.example.com {",
                    &format!("http://127.0.0.1:{port} {{")
                )
                .replace("127.0.0.1:8080", &upstream.to_string())
        );
        Self::start(
            "caddy",
            &[
                "run",
                "--adapter",
                "caddyfile",
                "--config",
                "{dir}/Caddyfile",
            ],
            "Caddyfile",
            &config,
            port,
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `attempts` upgrades through the proxy at `front`, all from one client address,
/// each with a different address written in every forwarding header; returns how many were
/// admitted (the connections stay open until the end, so each counts against the limit).
async fn spoofed_upgrades_admitted(front: SocketAddr, attempts: u8) -> usize {
    let mut open = Vec::new();
    let mut admitted = 0;
    for n in 1..=attempts {
        let mut tcp = tcp_from("127.0.0.9", front).await;
        let request = format!(
            "GET /room/spoof/websocket HTTP/1.1\r\nHost: {front}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Forwarded: for=203.0.113.{n}\r\nX-Forwarded-For: 198.51.100.{n}\r\n\
             X-Real-IP: 192.0.2.{n}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        tokio::time::timeout(common::WAIT, tcp.read_exact(&mut head))
            .await
            .expect("an answer in time")
            .unwrap();
        let status = String::from_utf8_lossy(&head[9..12]).into_owned();
        assert!(matches!(status.as_str(), "101" | "429"), "{status}");
        admitted += usize::from(status == "101");
        open.push(tcp);
    }
    admitted
}

/// Behind each shipped recipe (nginx, Caddy, HAProxy), a client that writes its own
/// `Forwarded`, `X-Forwarded-For` and `X-Real-IP` gets no more connections than the per-IP
/// limit: the recipe replaces or removes them, and rdv reads only the one header it was told.
#[tokio::test]
#[ignore = "needs nginx, caddy and haproxy; cargo test -- --ignored runs it"]
async fn no_shipped_proxy_lets_a_client_choose_its_address() {
    use common::outside::{program, require};
    require(program("nginx", "-v", "apt-get install nginx-light"));
    require(program("caddy", "version", "apt-get install caddy"));
    require(program("haproxy", "-v", "apt-get install haproxy"));
    for recipe in ["nginx", "caddy", "haproxy"] {
        let server = Server::start(&[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--max-connections-per-ip",
            "2",
        ]);
        let (front, _proxy): (SocketAddr, Box<dyn std::any::Any>) = match recipe {
            "nginx" => {
                let nginx = Nginx::start(server.addr);
                (nginx.addr, Box::new(nginx))
            }
            "caddy" => {
                let caddy = Proxy::caddy(server.addr);
                (caddy.addr, Box::new(caddy))
            }
            _ => {
                let haproxy = Proxy::haproxy(server.addr);
                (haproxy.addr, Box::new(haproxy))
            }
        };
        assert_eq!(
            spoofed_upgrades_admitted(front, 6).await,
            2,
            "through {recipe}, the limit of 2 holds"
        );
    }
}
