//! Benchmark connections: small buffers (the generator shares the machine with the server),
//! optional spreading over several 127.x source addresses, and registration with
//! precomputed Ed25519 keys.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::identity::{KeySpec, PrivateKey};
use crate::protocol::{self, RoomName, ServerMessage};

pub type Ws = WebSocketStream<TcpStream>;

/// A peer identity made before the clock starts.
pub struct BenchKey {
    pub id: String,
    pub register: String,
}

impl BenchKey {
    pub fn new() -> Self {
        let key = PrivateKey::generate(KeySpec::Ed25519).expect("the OS random source works");
        let public = key.public();
        Self {
            id: public.peer_id().to_string(),
            register: protocol::register(&public.to_public_json(), None, None),
        }
    }
}

/// Where to connect, parsed once.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
    /// How many 127.0.0.x source addresses to spread connections over (1: let the OS pick).
    pub source_ips: u8,
}

impl Target {
    pub async fn parse(url: &str, source_ips: u8) -> Result<Self, String> {
        let rest = url.strip_prefix("ws://").ok_or_else(|| {
            format!("{url:?}: the benchmark speaks plain ws:// to a loopback server")
        })?;
        let host = rest.trim_end_matches('/').to_owned();
        let addr = tokio::net::lookup_host(&host)
            .await
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        Ok(Self {
            host,
            addr,
            source_ips: source_ips.max(1),
        })
    }

    /// Opens a WebSocket to `path` (connection number `n` picks the source address).
    pub async fn connect(&self, path: &str, n: usize) -> Result<Ws, String> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| e.to_string())?;
        if self.source_ips > 1 && self.addr.ip().is_loopback() && self.addr.is_ipv4() {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (n % self.source_ips as usize) as u8);
            // Let connect choose the port by the whole 4-tuple. A port picked at bind time
            // must be free on the source address for any destination: after a few runs, tens
            // of thousands of TIME_WAIT sockets made that search slow (joins fell to a few
            // hundred a second) and then fail.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            )
            .map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(|e| format!("bind {source}: {e}"))?;
        }
        let tcp = socket
            .connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        // Writes are batched and flushed by the scenarios; reads stay small.
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(64 * 1024);
        let url = format!("ws://{}{path}", self.host);
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| format!("upgrade {path}: {e}"))?;
        Ok(ws)
    }

    /// Connects to `room` and registers `key`; returns the socket once `welcome` arrived.
    pub async fn join(&self, room: &str, key: &BenchKey, n: usize) -> Result<Ws, String> {
        let room = RoomName::new(room).map_err(|e| format!("{room:?}: {e}"))?;
        let mut ws = self.connect(&room.path(), n).await?;
        ws.send(Message::text(key.register.clone()))
            .await
            .map_err(|e| e.to_string())?;
        wait_for_welcome(&mut ws).await?;
        Ok(ws)
    }
}

impl Target {
    /// Connects to the raw floor as `id` and waits for its `ready`: the connection is routable.
    pub async fn join_floor(&self, id: &str, n: usize) -> Result<Ws, String> {
        let mut ws = self.connect(&format!("/floor/{id}"), n).await?;
        wait_for_ready(&mut ws).await?;
        Ok(ws)
    }

    /// Joins the floor's presence room `room` as `key` (sending its `register` unparsed) and
    /// waits for `ready`: the writes of an rdv join, without its parsing and checks.
    pub async fn join_floor_room(
        &self,
        room: &str,
        key: &BenchKey,
        n: usize,
    ) -> Result<Ws, String> {
        let mut ws = self
            .connect(&format!("/floor/{room}/{}", key.id), n)
            .await?;
        ws.send(Message::text(key.register.clone()))
            .await
            .map_err(|e| e.to_string())?;
        wait_for_ready(&mut ws).await?;
        Ok(ws)
    }
}

/// Waits for the floor's `ready` (followed by the members, in a presence room).
async fn wait_for_ready(ws: &mut Ws) -> Result<(), String> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) if text.split('\n').next() == Some("ready") => Ok(()),
        other => Err(format!("the floor did not say ready: {other:?}")),
    }
}

/// Reads until `welcome` (anything else in between is skipped). A message that starts the way
/// rdv writes a `welcome` is taken unparsed: the generator shares the cores with the server,
/// and parsing a big room's member list would be its cost, not the server's. Anything else is
/// parsed, since another server may order the members differently.
pub async fn wait_for_welcome(ws: &mut Ws) -> Result<(), String> {
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message.map_err(|e| e.to_string())? else {
            continue;
        };
        if text.starts_with(r#"{"type":"welcome""#) {
            return Ok(());
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        match ServerMessage::parse(&value) {
            _ if value["type"] == "welcome" => return Ok(()),
            Some(ServerMessage::Error { code, .. }) => return Err(format!("server error: {code}")),
            _ => {}
        }
    }
    Err("the connection closed before welcome".into())
}
