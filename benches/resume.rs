//! What a resume costs (PROTOCOL §14): `cargo bench --bench resume`. Starts this build's
//! `rdv serve` on loopback and prints, with no thresholds:
//!
//! - memory: the server's resident memory with N idle peers connected, with the same N held
//!   for a resume after their connections were reset, and after they all left, so the bytes
//!   per peer connected and per peer in grace read side by side;
//! - time: from a dropped peer's new TCP connection to its first queued relay (a resume),
//!   next to a fresh join's time from TCP connection to its `welcome`, medians of rounds;
//!   then the same across two `--cluster` instances sharing a `redis-server` (dropped on one,
//!   back on the other, the sender on the first), if `redis-server` is installed.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use rdv::identity::{KeySpec, PrivateKey};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PEERS: usize = 2000;
const ROUNDS: usize = 200;

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Resident memory of process `pid`, from /proc (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn start(extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdv"))
        .args(["serve", "--listen", "127.0.0.1:0", "--resume-grace", "120s"])
        .args(["--max-connections", "20000", "--max-peers-per-room", "5000"])
        .args(extra)
        .env("RDV_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rdv serve");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = rdv::server::parse_listening_line(&line).expect("a listening line");
    (child, addr)
}

async fn connect(addr: SocketAddr, room: &str) -> Socket {
    let url = format!("ws://{addr}/room/{room}/websocket");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        match ws.next().await.expect("open").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            _ => continue,
        }
    }
}

async fn register(ws: &mut Socket, key: &Value) -> Value {
    ws.send(Message::text(rdv::protocol::register(key, None, None)))
        .await
        .unwrap();
    next_json(ws).await
}

/// Ends a connection with a reset: what a lost network looks like to the server.
fn reset(mut ws: Socket) {
    if let MaybeTlsStream::Plain(tcp) = ws.get_mut() {
        let _ = socket2::SockRef::from(&*tcp).set_linger(Some(Duration::ZERO));
    }
    drop(ws);
}

async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn settle(addr: SocketAddr, name: &str, want: f64) {
    for _ in 0..600 {
        if metric(addr, name).await == want {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached {want}");
}

fn keys(n: usize) -> Vec<Value> {
    (0..n)
        .map(|_| {
            PrivateKey::generate(KeySpec::Ed25519)
                .unwrap()
                .public()
                .to_public_json()
        })
        .collect()
}

async fn memory(addr: SocketAddr, pid: u32) {
    let rss = || rss_bytes(pid).expect("the server's RSS") as f64;
    let before = rss();
    let keys = keys(PEERS);
    let mut sockets = Vec::with_capacity(PEERS);
    for (n, key) in keys.iter().enumerate() {
        let mut ws = connect(addr, &format!("m{}", n % 200)).await;
        register(&mut ws, key).await;
        sockets.push(ws);
    }
    settle(addr, "rdv_peers", PEERS as f64).await;
    let connected = rss();
    for ws in sockets {
        reset(ws);
    }
    settle(addr, "rdv_peers_in_grace", PEERS as f64).await;
    settle(addr, "rdv_connections", 0.0).await;
    let parked = rss();
    println!(
        "memory, {PEERS} peers: connected {:.0} B/peer, held for a resume {:.0} B/peer \
         (server RSS {:.1} MiB before, {:.1} connected, {:.1} all in grace)",
        (connected - before) / PEERS as f64,
        (parked - before) / PEERS as f64,
        before / 1048576.0,
        connected / 1048576.0,
        parked / 1048576.0
    );
}

/// Joins and resumes timed, the relay's sender on `sender_at`; a peer joins on `first`,
/// drops, and comes back on `back` (fresh joins are timed on `back` too).
async fn timing(label: &str, sender_at: SocketAddr, first: SocketAddr, back: SocketAddr) {
    let addr = back;
    let mut fresh = Vec::with_capacity(ROUNDS);
    let mut resumed = Vec::with_capacity(ROUNDS);
    let keys = keys(ROUNDS + 1);
    let mut sender = connect(sender_at, "t").await;
    register(&mut sender, &keys[ROUNDS]).await;
    for key in &keys[..ROUNDS] {
        let id = rdv::identity::PublicJwk::from_json(key, rdv::identity::PrivateMembers::Refuse)
            .unwrap()
            .peer_id()
            .to_string();
        // A fresh join: TCP connection to welcome.
        let started = Instant::now();
        let mut ws = connect(addr, "t").await;
        register(&mut ws, key).await;
        fresh.push(started.elapsed().as_secs_f64() * 1e6);
        let _ = next_json(&mut sender).await; // its peer-joined
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        let _ = next_json(&mut sender).await; // its peer-left
        let mut ws = connect(first, "t").await;
        register(&mut ws, key).await;
        let _ = next_json(&mut sender).await; // its peer-joined
        reset(ws);
        settle(first, "rdv_peers_in_grace", 1.0).await;
        let offer = json!({"type": "offer", "to": id, "sdp": {"type": "offer", "sdp": "v=0"}});
        sender.send(Message::text(offer.to_string())).await.unwrap();
        // The resume: TCP connection to the first queued relay.
        let started = Instant::now();
        let mut ws = connect(addr, "t").await;
        let welcome = register(&mut ws, key).await;
        assert_eq!(welcome["resumed"], true);
        let relay = next_json(&mut ws).await;
        assert_eq!(relay["type"], "offer");
        resumed.push(started.elapsed().as_secs_f64() * 1e6);
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        let _ = next_json(&mut sender).await; // its peer-left
    }
    sender.close(None).await.unwrap();
    while sender.next().await.is_some() {}
    for addr in [sender_at, first, back] {
        settle(addr, "rdv_peers", 0.0).await;
    }
    let (fresh, resumed) = (median(&mut fresh), median(&mut resumed));
    println!(
        "time, {label}, median of {ROUNDS}: fresh join (TCP to welcome) {fresh:.0} µs, resume \
         (TCP to the first queued relay) {resumed:.0} µs, ratio {:.2}",
        resumed / fresh
    );
}

/// A `redis-server` on a free loopback port, or `None` if it is not installed.
fn start_redis() -> Option<(Server, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Server(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((redis, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The server, killed however the run ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn main() {
    let (child, addr) = start(&[]);
    let server = Server(child);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        timing("one instance", addr, addr, addr).await;
        memory(addr, server.0.id()).await;
    });
    drop(server);
    let Some((redis, port)) = start_redis() else {
        println!("time across two cluster instances: skipped (no redis-server)");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let [(one, one_addr), (two, two_addr)] = [(); 2].map(|()| {
        let (child, addr) = start(&["--cluster", &url]);
        (Server(child), addr)
    });
    runtime.block_on(async {
        for addr in [one_addr, two_addr] {
            settle(addr, "rdv_cluster_connected", 1.0).await;
        }
        timing("one instance of a cluster", one_addr, one_addr, one_addr).await;
        timing(
            "across two cluster instances (dropped on one, back on the other)",
            one_addr,
            one_addr,
            two_addr,
        )
        .await;
    });
    drop((one, two, redis));
}
