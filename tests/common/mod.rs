//! Test helpers: a real `rdv serve` on an ephemeral port and a small WebSocket client.
//! Every wait is bounded, so a bug fails a test instead of hanging the suite.

#![allow(dead_code)] // each test binary uses a different subset

pub mod coturn;
pub mod outside;
pub mod raw;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The binary under test: this build's, or `RDV_TEST_BINARY` to run the suite against
/// another build (to show that a new test fails on the build before the fix).
pub fn rdv_binary() -> String {
    std::env::var("RDV_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rdv").to_owned())
}

/// Starts `rdv ARGS` in `dir` with every stream piped and colour off.
pub fn spawn_rdv(dir: &std::path::Path, args: &[&str]) -> Child {
    Command::new(rdv_binary())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rdv")
}

/// Runs `rdv ARGS` in `dir` to the end, colour off: its exit code, stdout and stderr.
pub fn rdv_output(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(rdv_binary())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run rdv");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A loopback TCP port nothing listens on right now, for a server a test starts itself.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `rdv serve`, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_logging_to(args, env, Stdio::inherit())
    }

    /// Starts `rdv serve` with its log (stderr) going to `log`.
    pub fn start_logging_to(args: &[&str], env: &[(&str, &str)], log: Stdio) -> Self {
        let mut command = Command::new(rdv_binary());
        command.arg("serve");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .env(
                "RDV_LOG",
                std::env::var("RDV_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn rdv serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("rdv serve printed its address in time");
        let addr = rdv::server::parse_listening_line(&line)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, addr }
    }

    /// The URL of a room whose path segment the test writes itself, encoded or not.
    pub fn url_with_segment(&self, segment: &str) -> String {
        format!("ws://{}/room/{segment}/websocket", self.addr)
    }

    pub fn url(&self, room: &str) -> String {
        let room = rdv::protocol::RoomName::new(room).expect("a valid room name");
        format!("ws://{}{}", self.addr, room.path())
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn terminate(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Connects and registers a fresh peer in `room`.
    pub async fn peer(&self, room: &str) -> Peer {
        let mut client = Client::connect(&self.url(room)).await;
        let key = TestKey::new();
        let welcome = client.register(&key).await;
        Peer {
            client,
            id: key.peer_id(),
            key,
            welcome,
        }
    }

    /// A plain HTTP/1.1 GET: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path, &[]).await
    }

    /// Blocks (bounded) until `/metrics` shows `rdv_peers` = `count`: a way for tests that
    /// run other processes to know those have registered.
    pub fn wait_for_peers_blocking(&self, count: usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                if metric(&self.metrics().await, "rdv_peers") == count as f64 {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{count} peers never registered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn http_get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        // A reset (a draining server dropping a connection it had not read) keeps what
        // came before it, maybe nothing: status 0 below.
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP response in time");
    // A server that closed without answering reads as status 0.
    let status = response
        .get(9..12)
        .map_or(0, |status| status.parse().unwrap());
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Polls `check` until it returns `Some`, for at most [`WAIT`]; panics with `what` (and the
/// last `None`'s context) if it never does. For state reached asynchronously, like a metric.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for code outside a runtime: polls `check` for at most [`WAIT`].
pub fn eventually_blocking<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// Waits (bounded) until `/metrics` shows `series` satisfying `ok`; returns its value.
    pub async fn wait_for_metric(&self, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
        eventually(series, || async {
            let value = metric(&self.metrics().await, series);
            ok(value).then_some(value)
        })
        .await
    }
}

/// The next text message of any WebSocket as JSON (other frames skipped), within [`WAIT`].
pub async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("no error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// The value of one sample line of a Prometheus exposition, e.g.
/// `metric(&text, r#"rdv_errors_total{code="unknown-type"}"#)`.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{exposition}"))
        .trim()
        .parse()
        .unwrap()
}

/// An upgrade request from `source` with `headers`: the status code and the response head.
/// The connection is returned open, so it keeps counting against per-client limits.
pub async fn upgrade_from(
    server: &Server,
    source: &str,
    room: &str,
    headers: &[&str],
) -> (u16, String, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let source: IpAddr = source.parse().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut tcp = socket.connect(server.addr).await.unwrap();
    let mut request = format!(
        "GET /room/{room}/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    // A server may answer (or close) before reading a huge head whole.
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut head = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("an answer in time");
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, tcp)
}

/// An Ed25519 key pair made for one test, with its peer ID computed independently of rdv.
#[derive(Clone)]
pub struct TestKey {
    pub public_jwk: Value,
}

impl TestKey {
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed_text = format!(
            "{}-{}-{:?}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
        );
        let seed: [u8; 32] = Sha256::digest(seed_text.as_bytes()).into();
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let x = b64(signing.verifying_key().as_bytes());
        // Extra members as WebCrypto adds them: they must travel along untouched.
        let public_jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "ext": true, "key_ops": ["verify"]});
        Self { public_jwk }
    }

    /// PROTOCOL §4, computed here without rdv's code.
    pub fn peer_id(&self) -> String {
        let text = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            self.public_jwk["x"].as_str().unwrap()
        );
        hex(&Sha256::digest(text.as_bytes()))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A connected, registered peer.
pub struct Peer {
    pub client: Client,
    pub key: TestKey,
    pub id: String,
    pub welcome: Value,
}

/// What a client can receive.
#[derive(Debug)]
pub enum Received {
    Text(String),
    Binary,
    /// A close frame: code and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Gone,
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Ends the TCP connection without a close frame: a reset (`reset`), or a FIN — what
    /// a network change does to a client (PROTOCOL §14).
    pub fn drop_abruptly(self, reset: bool) {
        let mut ws = self.ws;
        let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
            panic!("the tests connect over plain TCP");
        };
        if reset {
            // Closing with a zero linger sends RST instead of FIN.
            socket2::SockRef::from(&*tcp)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            use std::os::fd::AsRawFd as _;
            nix::sys::socket::shutdown(tcp.as_raw_fd(), nix::sys::socket::Shutdown::Write).unwrap();
        }
        drop(ws);
    }

    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connected in time")
            .expect("WebSocket handshake");
        Self { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a text frame");
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// The next text, binary, close or end of connection (pings are answered and skipped).
    pub async fn recv(&mut self) -> Received {
        self.recv_within(WAIT)
            .await
            .expect("a message arrived in time")
    }

    pub async fn recv_within(&mut self, limit: Duration) -> Option<Received> {
        let next = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => return Received::Text(text.to_string()),
                    Some(Ok(Message::Binary(_))) => return Received::Binary,
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|CloseFrame { code, reason }| {
                                (u16::from(code), reason.to_string())
                            })
                            .unwrap_or((1005, String::new()));
                        return Received::Close(code, reason);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Received::Gone,
                }
            }
        };
        tokio::time::timeout(limit, next).await.ok()
    }

    /// The next message as JSON; panics on anything else.
    pub async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Received::Text(text) => serde_json::from_str(&text).expect("server sent JSON"),
            other => panic!("expected a JSON message, got {other:?}"),
        }
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv_json().await;
        assert_eq!(message["type"], kind, "unexpected message {message}");
        message
    }

    /// The next message, which must be an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let message = self.expect("error").await;
        assert_eq!(message["code"], code, "unexpected error {message}");
        assert!(
            message["message"].as_str().is_some_and(|m| !m.is_empty()),
            "errors carry a readable message: {message}"
        );
        message
    }

    /// Reads until the server closes; returns the close code (1006 if it just went away).
    /// Text messages before the close are skipped.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.recv().await {
                Received::Close(code, _) => return code,
                Received::Gone => return 1006,
                Received::Text(_) | Received::Binary => continue,
            }
        }
    }

    /// Proves the connection is still usable and everything sent before has been processed:
    /// sends `ping` and returns every message that arrived before the `pong`.
    pub async fn sync(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        let mut before = Vec::new();
        loop {
            let message = self.recv_json().await;
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }

    pub async fn register(&mut self, key: &TestKey) -> Value {
        self.send_text(&rdv::protocol::register(&key.public_jwk, None, None))
            .await;
        let welcome = self.expect("welcome").await;
        assert_eq!(welcome["peerId"], key.peer_id());
        welcome
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }
}

/// A TCP proxy to a server whose connections can all be cut at once with a reset, as a lost
/// network looks to both ends; it keeps accepting new ones.
pub struct CutProxy {
    pub addr: SocketAddr,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = connections.clone();
        let listener = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    continue;
                };
                // Dropped with a zero linger, each side sees a reset, not a goodbye.
                for socket in [&client, &upstream] {
                    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                }
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
                held.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            connections,
            listener,
        }
    }

    /// Resets every connection open now.
    pub fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.listener.abort();
    }
}

/// A finished `rdv peer` run (see [`finish`]).
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn messages(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|_| panic!("not NDJSON: {line:?}"))
            })
            .collect()
    }
}

/// Starts `rdv peer` in script mode with `stdin` piped (kept open until `finish`).
pub fn spawn_peer(dir: &std::path::Path, args: &[&str]) -> Child {
    let mut all = vec!["peer"];
    all.extend_from_slice(args);
    spawn_rdv(dir, &all)
}

/// Writes `stdin` (then closes it; unless the test took it already) and waits, bounded,
/// for the peer to exit.
pub fn finish(mut child: Child, stdin: &str) -> Finished {
    use std::io::Write as _;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let deadline = std::time::Instant::now() + WAIT * 2;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("rdv peer did not exit: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    Finished {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

pub fn run_peer(dir: &std::path::Path, args: &[&str], stdin: &str) -> Finished {
    finish(spawn_peer(dir, args), stdin)
}

/// A key file in `dir` and its peer ID.
pub fn key(dir: &std::path::Path, name: &str) -> String {
    let output = Command::new(rdv_binary())
        .args(["keygen", "--type", "okp", "-o", name, "--force"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stderr)
        .unwrap()
        .trim()
        .trim_start_matches("peer ID ")
        .to_owned()
}
