//! The TCP stream under each WebSocket, reading ahead without a per-connection buffer.
//!
//! tungstenite reads at most its read-buffer size per call, and that buffer is allocated for
//! the life of the connection. Kept small (1 KiB) for idle peers, it costs one `recv` per
//! relayed message on a busy one. Here each `recv` goes into a per-thread scratch buffer
//! instead; what tungstenite cannot take yet is kept in an exact-size allocation that is
//! freed as soon as it is consumed. An idle connection holds no read buffer of its own, a busy
//! one reads many messages per system call.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::guard::InboundGuard;
use super::outgoing::SharedOutgoing;

/// A connection's guard, shared by its transport (which feeds it every byte read) and its
/// session (which collects message verdicts); both live in one task, so the lock is never
/// contended.
pub type SharedGuard = Arc<Mutex<InboundGuard>>;

/// The most one `recv` reads.
const READ_AHEAD: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_AHEAD].into_boxed_slice());
}

/// The connection under the WebSocket: plain TCP, or TLS terminated here.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

pub struct Transport {
    tcp: Stream,
    /// Frames waiting for the socket, the session's and tungstenite's in the order sent;
    /// `None` for the benchmark's floor, which writes through tungstenite alone.
    outgoing: Option<SharedOutgoing>,
    /// Read from the socket, not yet taken by the reader. Empty (unallocated) when idle.
    pending: Bytes,
    /// Sees every byte handed to tungstenite; `None` for the benchmark's floor.
    guard: Option<SharedGuard>,
}

impl Transport {
    /// `already_read`: bytes that arrived before the stream changed hands.
    pub fn new(
        tcp: Stream,
        already_read: Bytes,
        guard: Option<SharedGuard>,
        outgoing: Option<SharedOutgoing>,
    ) -> Self {
        // Copied: even empty, a slice of hyper's read buffer keeps all of that buffer alive
        // for as long as it is held.
        Self {
            tcp,
            outgoing,
            pending: Bytes::copy_from_slice(&already_read),
            guard,
        }
    }

    /// The stream itself, to drain what the client still sends after the WebSocket ended.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.tcp
    }

    fn take_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        if self.pending.is_empty() {
            // Free the allocation now, not when the next read replaces it.
            self.pending = Bytes::new();
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(this.read_ahead(cx, buf))?;
        if let Some(guard) = &this.guard {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                guard
                    .lock()
                    .expect("the guard's lock is never poisoned")
                    .observe(fresh, std::time::Instant::now())
                    .map_err(io::Error::other)?;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Transport {
    fn read_ahead(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self;
        if !this.pending.is_empty() {
            this.take_pending(buf);
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let mut ahead = ReadBuf::new(scratch);
            ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut ahead))?;
            let read = ahead.filled();
            let n = read.len().min(buf.remaining());
            buf.put_slice(&read[..n]);
            if read.len() > n {
                this.pending = Bytes::copy_from_slice(&read[n..]);
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Bytes of tungstenite's own frames (pongs, close) held for a client that does not read;
/// past this, tungstenite keeps them itself, under its own limit.
const CONTROL_BACKLOG: usize = 64 * 1024;

/// With an outgoing queue, everything written is queued behind the session's frames and goes
/// out on flush, so that frames from both never interleave.
impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(outgoing) = &this.outgoing else {
            return Pin::new(&mut this.tcp).poll_write(cx, buf);
        };
        let mut outgoing = outgoing.lock();
        if outgoing.queued_bytes() > CONTROL_BACKLOG {
            ready!(outgoing.poll_drain(cx, Pin::new(&mut this.tcp)))?;
        }
        outgoing.push_raw(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_outgoing(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl Transport {
    /// Writes every queued frame, if this transport queues them.
    fn poll_write_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.outgoing {
            Some(outgoing) => outgoing.lock().poll_drain(cx, Pin::new(&mut self.tcp)),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn pair(already_read: &'static [u8]) -> (Transport, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (
            Transport::new(
                Stream::Plain(server),
                Bytes::from_static(already_read),
                None,
                None,
            ),
            client,
        )
    }

    #[tokio::test]
    async fn small_reads_get_every_byte_in_order_and_idle_holds_nothing() {
        let (mut transport, mut client) = pair(b"early:").await;
        let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client
        });
        let mut received = Vec::new();
        let mut chunk = [0u8; 1000];
        while received.len() < 6 + 40_000 {
            let n = transport.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the stream ended early");
            received.extend_from_slice(&chunk[..n]);
        }
        let _client = writer.await.unwrap();
        assert_eq!(&received[..6], b"early:");
        let expected: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(&received[6..], &expected[..]);
        assert!(transport.pending.is_empty());
    }

    #[tokio::test]
    async fn a_large_read_goes_straight_to_the_socket_and_eof_is_zero() {
        let (mut transport, mut client) = pair(b"").await;
        client.write_all(b"hello").await.unwrap();
        drop(client);
        let mut big = vec![0u8; READ_AHEAD * 2];
        let mut got = Vec::new();
        loop {
            let n = transport.read(&mut big).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&big[..n]);
        }
        assert_eq!(got, b"hello");
    }

    #[tokio::test]
    async fn control_frames_for_a_client_that_does_not_read_stop_at_the_backlog() {
        let (mut transport, client) = pair(b"").await;
        let outgoing = SharedOutgoing::default();
        transport.outgoing = Some(outgoing.clone());
        // The client never reads: once the socket buffers fill, writes must stop being
        // accepted instead of queueing without bound.
        let pong = [0x8a, 0x7d]
            .iter()
            .copied()
            .chain([b'x'; 125])
            .collect::<Vec<u8>>();
        let mut accepted = 0usize;
        let refused = std::future::poll_fn(|cx| {
            for _ in 0..1_000_000 {
                match Pin::new(&mut transport).poll_write(cx, &pong) {
                    Poll::Ready(Ok(n)) => accepted += n,
                    Poll::Ready(Err(e)) => panic!("{e}"),
                    Poll::Pending => return Poll::Ready(true),
                }
            }
            Poll::Ready(false)
        })
        .await;
        assert!(refused, "wrote {accepted} bytes and never waited");
        assert!(outgoing.lock().queued_bytes() <= CONTROL_BACKLOG + pong.len());
        drop(client);
    }
}
