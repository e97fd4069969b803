//! `rdv serve --tls-cert --tls-key`: wss:// and https:// on one port, certificates made here
//! (rcgen), start-up errors that name the file, and SIGHUP reloading the pair without
//! dropping a connection.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, Server, TestKey, metric};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for localhost, written as `NAME.pem` and `NAME.key`.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
}

fn make_pair(dir: &Path, name: &str) -> Pair {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Pair {
        cert,
        key,
        cert_pem: made.cert.pem(),
    }
}

fn start_tls(pair: &Pair, extra: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        pair.cert.to_str().unwrap(),
        "--tls-key",
        pair.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A client that trusts only `trusted`.
fn client_config(trusted: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trusted.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn wss(server: &Server, room: &str, trusted: &str) -> Result<Wss, String> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let url = format!(
        "wss://localhost:{}/room/{room}/websocket",
        server.addr.port()
    );
    let connector = tokio_tungstenite::Connector::Rustls(client_config(trusted));
    tokio::time::timeout(
        common::WAIT,
        tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)),
    )
    .await
    .expect("in time")
    .map(|(ws, _)| ws)
    .map_err(|e| e.to_string())
}

async fn register(ws: &mut Wss) -> (TestKey, Value) {
    let key = TestKey::new();
    ws.send(Message::text(rdv::protocol::register(
        &key.public_jwk,
        None,
        None,
    )))
    .await
    .unwrap();
    let welcome = common::next_json(ws).await;
    assert_eq!(welcome["type"], "welcome");
    (key, welcome)
}

/// GET over https with `trusted` as the only root: (status, body).
async fn https_get(server: &Server, path: &str, trusted: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(trusted));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "ALPN http/1.1");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(common::WAIT, tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn peers_relay_over_wss_and_http_endpoints_are_https() {
    let dir = tempfile::tempdir().unwrap();
    let pair = make_pair(dir.path(), "server");
    let server = start_tls(&pair, &[]);
    let mut alice = wss(&server, "secure", &pair.cert_pem).await.unwrap();
    let (_, _) = register(&mut alice).await;
    let mut bob = wss(&server, "secure", &pair.cert_pem).await.unwrap();
    let (bob_key, _) = register(&mut bob).await;
    let joined = common::next_json(&mut alice).await;
    assert_eq!(joined["type"], "peer-joined");
    alice
        .send(Message::text(
            json!({"type": "offer", "to": bob_key.peer_id(), "sdp": {"n": 1}}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(common::next_json(&mut bob).await["type"], "offer");

    let (status, body) = https_get(&server, "/healthz", &pair.cert_pem).await;
    assert_eq!((status, body.trim()), (200, r#"{"status":"ok"}"#));
    let (status, _) = https_get(&server, "/metrics", &pair.cert_pem).await;
    assert_eq!(status, 200);
    // Plain WebSocket on a TLS port is a failed handshake, counted.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(common::WAIT, plain.read(&mut buf)).await;
    let (_, metrics) = https_get(&server, "/metrics", &pair.cert_pem).await;
    assert!(metric(&metrics, "rdv_tls_handshake_failures_total") >= 1.0);
}

#[test]
fn the_terminal_peer_joins_over_wss_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pair = make_pair(dir.path(), "server");
    let server = start_tls(&pair, &[]);
    let url = format!("wss://localhost:{}", server.addr.port());
    let output = std::process::Command::new(common::rdv_binary())
        .args([
            "peer",
            &url,
            "lobby",
            "--wait-peers",
            "0",
            "--timeout",
            "10s",
        ])
        .args(["--ca", pair.cert.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let untrusted = std::process::Command::new(common::rdv_binary())
        .args([
            "peer",
            &url,
            "lobby",
            "--wait-peers",
            "0",
            "--timeout",
            "10s",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        untrusted.status.code(),
        Some(3),
        "an unknown CA cannot connect"
    );
}

#[test]
fn a_missing_or_mismatched_pair_is_a_start_up_error_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_pair(dir.path(), "first");
    let second = make_pair(dir.path(), "second");
    let serve = |cert: &Path, key: &Path| {
        std::process::Command::new(common::rdv_binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args([
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let mismatched = serve(&first.cert, &second.key);
    assert_eq!(mismatched.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&mismatched.stderr);
    assert!(
        stderr.contains("first.pem")
            && stderr.contains("second.key")
            && stderr.contains("do not belong together"),
        "{stderr}"
    );
    let missing = serve(&dir.path().join("nope.pem"), &first.key);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("nope.pem: no such file"), "{stderr}");
    // A key where the certificate should be.
    let swapped = serve(&first.key, &first.key);
    assert_eq!(swapped.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&swapped.stderr).contains("first.key"));
    // --tls-cert alone is refused like half a pair from any other source (tests/config.rs).
    let alone = std::process::Command::new(common::rdv_binary())
        .args(["serve", "--tls-cert", first.cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("but --tls-key is not"));
}

/// SIGHUP swaps in a new certificate for new handshakes; connections made before keep
/// relaying. A pair that does not load keeps the old one in force.
#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_pair(dir.path(), "live");
    let server = start_tls(&old, &[]);
    let mut alice = wss(&server, "reload", &old.cert_pem).await.unwrap();
    register(&mut alice).await;
    let mut bob = wss(&server, "reload", &old.cert_pem).await.unwrap();
    let (bob_key, _) = register(&mut bob).await;
    common::next_json(&mut alice).await; // peer-joined

    // Rotate: the new pair is written over the same files, then SIGHUP.
    let new = make_pair(dir.path(), "next");
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let fresh = loop {
        match wss(&server, "reload", &new.cert_pem).await {
            Ok(ws) => break ws,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the new certificate was never served: {e}"),
        }
    };
    drop(fresh);
    assert!(
        wss(&server, "reload", &old.cert_pem).await.is_err(),
        "new handshakes no longer present the old certificate"
    );
    // The connections made before the reload still relay.
    alice
        .send(Message::text(
            json!({"type": "offer", "to": bob_key.peer_id(), "sdp": {}}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(common::next_json(&mut bob).await["type"], "offer");

    // A broken file mid-rotation: the reload fails and the pair in force stays.
    std::fs::write(&old.cert, "not a certificate").unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    let metrics = common::eventually("the failed reload is counted", || async {
        let (_, metrics) = https_get(&server, "/metrics", &new.cert_pem).await;
        let failed = metric(&metrics, r#"rdv_reloads_total{what="tls",result="failed"}"#);
        (failed >= 1.0).then_some(metrics)
    })
    .await;
    assert_eq!(
        metric(&metrics, r#"rdv_reloads_total{what="tls",result="ok"}"#),
        1.0
    );
    assert!(wss(&server, "reload", &new.cert_pem).await.is_ok());
}

/// SIGHUP reloads the allow list too.
#[tokio::test]
async fn sighup_reloads_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::new();
    let list = dir.path().join("allow.txt");
    std::fs::write(&list, "# nobody yet\n").unwrap();
    let server = Server::start(&["--allow-list", list.to_str().unwrap()]);
    let mut refused = Client::connect(&server.url("a")).await;
    refused
        .send_text(&rdv::protocol::register(&key.public_jwk, None, None))
        .await;
    refused.expect_error("forbidden").await;
    std::fs::write(&list, format!("{}\n", key.peer_id())).unwrap();
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    server
        .wait_for_metric(r#"rdv_reloads_total{what="allow-list",result="ok"}"#, |n| {
            n >= 1.0
        })
        .await;
    let mut allowed = Client::connect(&server.url("a")).await;
    allowed.register(&key).await;
}

/// An outside TLS stack (Python's ssl, i.e. OpenSSL) speaks wss:// to rdv: handshake with
/// the CA, upgrade, register, welcome.
#[test]
#[ignore = "needs python3; cargo test -- --ignored runs it"]
fn an_openssl_client_registers_over_wss() {
    common::outside::require(common::outside::program(
        "python3",
        "--version",
        "apt-get install python3",
    ));
    let dir = tempfile::tempdir().unwrap();
    let pair = make_pair(dir.path(), "server");
    let server = start_tls(&pair, &[]);
    let key = TestKey::new();
    let register = rdv::protocol::register(&key.public_jwk, None, None);
    let script = r#"
import json, os, socket, ssl, struct, sys
port, ca, register = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
context = ssl.create_default_context(cafile=ca)
context.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1", tls.selected_alpn_protocol()
        tls.sendall(b"GET /room/py/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        mask = os.urandom(4)
        frame = bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(register)) + mask
        frame += bytes(b ^ mask[i % 4] for i, b in enumerate(register))
        tls.sendall(frame)
        first = tls.recv(2)
        length = first[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", tls.recv(2))[0]
        body = b""
        while len(body) < length:
            body += tls.recv(length - len(body))
        print(json.loads(body)["peerId"])
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(&pair.cert)
        .arg(&register)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        key.peer_id()
    );
}
