//! The WebSocket layer seen from raw TCP, where a client library would hide it: the
//! handshake's answers, and how large messages are framed.

mod common;

use std::time::Duration;

use common::{Server, TestKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
/// The server's write buffer, and so its largest frame (`rdv::server::WRITE_BUFFER`).
const WRITE_BUFFER: usize = 8 * 1024;

/// A WebSocket client speaking frames by hand.
struct RawClient {
    tcp: TcpStream,
    /// Bytes read past the handshake or past the last frame.
    buffered: Vec<u8>,
}

/// One frame as received: FIN bit, opcode, payload.
struct RawFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl RawClient {
    async fn connect(server: &Server, room: &str) -> Self {
        Self::connect_sending_early(server, room, None).await
    }

    /// Connects; with `early`, that text frame goes out in the same write as the request,
    /// before the server has answered (the server then reads it along with the request).
    async fn connect_sending_early(server: &Server, room: &str, early: Option<&str>) -> Self {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut request = format!(
            "GET /room/{room}/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        )
        .into_bytes();
        if let Some(text) = early {
            request.extend_from_slice(&masked_text_frame(text));
        }
        tcp.write_all(&request).await.unwrap();
        let mut buffered = Vec::new();
        let head_end = loop {
            if let Some(at) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
                .await
                .expect("handshake answer in time")
                .unwrap();
            assert!(n > 0, "the server closed during the handshake");
            buffered.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buffered[..head_end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455 §1.3's example key and its answer.
        let accept = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-accept")
                    .then(|| value.trim())
            })
            .unwrap_or_default();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "{head}");
        buffered.drain(..head_end);
        Self { tcp, buffered }
    }

    async fn send_text(&mut self, text: &str) {
        self.tcp.write_all(&masked_text_frame(text)).await.unwrap();
    }

    async fn fill(&mut self, want: usize) {
        while self.buffered.len() < want {
            let mut chunk = [0u8; 16 * 1024];
            let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
                .await
                .expect("a frame in time")
                .unwrap();
            assert!(n > 0, "the server closed the connection");
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    async fn frame(&mut self) -> RawFrame {
        self.fill(2).await;
        let (fin, opcode) = (self.buffered[0] & 0x80 != 0, self.buffered[0] & 0x0f);
        assert_eq!(self.buffered[1] & 0x80, 0, "server frames are not masked");
        let (len, header) = match self.buffered[1] & 0x7f {
            126 => {
                self.fill(4).await;
                (
                    u16::from_be_bytes([self.buffered[2], self.buffered[3]]) as usize,
                    4,
                )
            }
            127 => {
                self.fill(10).await;
                let bytes: [u8; 8] = self.buffered[2..10].try_into().unwrap();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(header + len).await;
        let payload = self.buffered[header..header + len].to_vec();
        self.buffered.drain(..header + len);
        RawFrame {
            fin,
            opcode,
            payload,
        }
    }

    /// The next data message as its frames (pings skipped).
    async fn message_frames(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            if frame.opcode == 0x9 {
                continue;
            }
            let fin = frame.fin;
            frames.push(frame);
            if fin {
                return frames;
            }
        }
    }

    async fn message(&mut self) -> (Value, Vec<RawFrame>) {
        let frames = self.message_frames().await;
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        (
            serde_json::from_slice(&whole).expect("a JSON message"),
            frames,
        )
    }
}

/// One masked text frame (RFC 6455 §5.3: clients must mask).
fn masked_text_frame(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let payload = text.as_bytes();
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_frame_sent_along_with_the_upgrade_request_is_not_lost() {
    let server = Server::start(&[]);
    let key = TestKey::new();
    let register = json!({"type": "register", "publicKey": key.public_jwk}).to_string();
    let mut client = RawClient::connect_sending_early(&server, "early", Some(&register)).await;
    let (welcome, _) = client.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["peerId"], key.peer_id().as_str());
}

#[tokio::test]
async fn a_large_relayed_message_arrives_in_fragments_that_reassemble_exactly() {
    let server = Server::start(&[]);
    let sender = server.peer("frames").await;
    let mut receiver = RawClient::connect(&server, "frames").await;
    let key = TestKey::new();
    receiver
        .send_text(&json!({"type": "register", "publicKey": key.public_jwk}).to_string())
        .await;
    let (welcome, frames) = receiver.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(frames.len(), 1, "a small message is one frame");

    // Multi-byte characters all through, so fragment edges fall inside some of them.
    let sdp: String = "v=0 é😀 ".repeat(3000);
    let mut sender = sender;
    sender
        .client
        .send(json!({"type": "offer", "to": key.peer_id(), "sdp": sdp}))
        .await;
    let (offer, frames) = receiver.message().await;
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["from"], sender.id.as_str());
    assert_eq!(offer["sdp"].as_str(), Some(sdp.as_str()));

    assert!(frames.len() > 1, "{} bytes went as one frame", sdp.len());
    assert_eq!(frames[0].opcode, 0x1, "the first fragment is a text frame");
    for (n, frame) in frames.iter().enumerate() {
        assert!(frame.payload.len() <= WRITE_BUFFER);
        assert_eq!(frame.fin, n == frames.len() - 1);
        if n > 0 {
            assert_eq!(frame.opcode, 0x0, "later fragments are continuations");
        }
        assert!(
            std::str::from_utf8(&frame.payload).is_ok(),
            "fragment {n} splits a character"
        );
    }
}

#[tokio::test]
async fn a_welcome_to_a_big_room_is_fragmented_and_lists_everyone() {
    let server = Server::start(&[]);
    let mut members = Vec::new();
    // About 150 bytes per entry: enough peers for a welcome over the write buffer.
    for _ in 0..80 {
        members.push(server.peer("crowd").await);
    }
    let mut late = RawClient::connect(&server, "crowd").await;
    let key = TestKey::new();
    late.send_text(&json!({"type": "register", "publicKey": key.public_jwk}).to_string())
        .await;
    let (welcome, frames) = late.message().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["peerId"], key.peer_id().as_str());
    let listed: Vec<&str> = welcome["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = members.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(listed, expected, "everyone, oldest first");
    assert!(frames.len() > 1);
    assert!(frames.iter().all(|f| f.payload.len() <= WRITE_BUFFER));
}

#[tokio::test]
async fn handshake_mistakes_get_a_400_with_the_reason() {
    let server = Server::start(&[]);
    let base = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let without = |skip: &str| -> Vec<&str> {
        base.iter()
            .copied()
            .filter(|h| !h.starts_with(skip))
            .collect()
    };
    for (skip, reason) in [
        (
            "Connection",
            "the Connection header does not include 'upgrade'\n",
        ),
        (
            "Sec-WebSocket-Version",
            "only WebSocket version 13 is supported\n",
        ),
        (
            "Sec-WebSocket-Key",
            "the Sec-WebSocket-Key header is missing\n",
        ),
    ] {
        let (status, body) =
            common::http_get(server.addr, "/room/r/websocket", &without(skip)).await;
        assert_eq!((status, body.as_str()), (400, reason), "without {skip}");
    }
}
