//! A WebSocket client speaking frames by hand over raw TCP, for what a client library would
//! hide: the handshake's answers, fragmentation, and protocol violations.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Server;

const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket client speaking frames by hand.
pub struct RawClient {
    pub tcp: TcpStream,
    /// Bytes read past the handshake or past the last frame.
    pub buffered: Vec<u8>,
}

/// One frame as received: FIN bit, opcode, payload.
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawClient {
    pub async fn connect(server: &Server, room: &str) -> Self {
        Self::connect_sending_early(server, room, None).await
    }

    /// Connects; with `early`, that text frame goes out in the same write as the request,
    /// before the server has answered (the server then reads it along with the request).
    pub async fn connect_sending_early(server: &Server, room: &str, early: Option<&str>) -> Self {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        Self::upgrade(tcp, room, early).await
    }

    /// Upgrades a TCP connection the caller made (with socket options of its own).
    pub async fn over(tcp: TcpStream, room: &str) -> Self {
        Self::upgrade(tcp, room, None).await
    }

    async fn upgrade(mut tcp: TcpStream, room: &str, early: Option<&str>) -> Self {
        let mut request = format!(
            "GET /room/{room}/websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            tcp.peer_addr().unwrap()
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

    pub async fn send_text(&mut self, text: &str) {
        self.tcp.write_all(&masked_text_frame(text)).await.unwrap();
    }

    pub async fn fill(&mut self, want: usize) {
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

    pub async fn frame(&mut self) -> RawFrame {
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
    pub async fn message_frames(&mut self) -> Vec<RawFrame> {
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

    pub async fn message(&mut self) -> (Value, Vec<RawFrame>) {
        let frames = self.message_frames().await;
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        (
            serde_json::from_slice(&whole).expect("a JSON message"),
            frames,
        )
    }
}

/// One masked text frame (RFC 6455 §5.3: clients must mask).
pub fn masked_text_frame(text: &str) -> Vec<u8> {
    masked_frame(true, 0x1, text.as_bytes())
}

/// Any masked frame: FIN bit, opcode, payload.
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![u8::from(fin) << 7 | opcode];
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

impl RawClient {
    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Reads frames (pings and data skipped) until the server's close frame: its code and
    /// reason. Panics if the connection ends without one, or is reset.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            let frame = self.frame().await;
            if frame.opcode == 0x8 {
                assert!(frame.payload.len() >= 2, "a close frame with a code");
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                let reason = String::from_utf8_lossy(&frame.payload[2..]).into_owned();
                return (code, reason);
            }
        }
    }
}
