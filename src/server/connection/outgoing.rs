//! Frames on their way to the socket, held without a per-connection write buffer.
//!
//! tungstenite formats every frame into a write buffer that keeps the capacity of the
//! largest burst it ever held: after a `welcome` to a room of 100, 16 KiB per peer for the
//! life of the connection. Text frames the session sends go here instead: a frame header
//! beside the message's shared bytes (one allocation for all of a fan-out's recipients),
//! written with one vectored write per batch. What tungstenite writes itself (pings, pongs,
//! close frames) is copied in behind them, so the wire keeps the order they were sent in.
//! The queue is released once the socket has taken everything: an idle connection holds
//! nothing here.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Most slices handed to one vectored write.
const MAX_SLICES: usize = 64;

/// A connection's outgoing frames, shared by its writer and its transport (one task, so
/// the lock is never contended).
#[derive(Debug, Clone, Default)]
pub struct SharedOutgoing(Arc<Mutex<Outgoing>>);

impl SharedOutgoing {
    pub fn lock(&self) -> MutexGuard<'_, Outgoing> {
        // No code panics while holding it, and the queue is consistent between calls.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
pub struct Outgoing {
    segments: VecDeque<Segment>,
    /// Bytes of the front segment already written.
    written: usize,
    /// Bytes queued and not written yet.
    bytes: usize,
}

#[derive(Debug)]
struct Segment {
    /// The frame header (a server's frames are never masked: at most 10 bytes).
    header: [u8; 10],
    header_len: u8,
    body: Bytes,
}

impl Segment {
    fn len(&self) -> usize {
        usize::from(self.header_len) + self.body.len()
    }
}

impl Outgoing {
    /// Queues `text` (valid UTF-8) as one final text frame; its bytes are shared, not copied.
    pub fn push_text(&mut self, text: Bytes) {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        let mut bytes = [0u8; 10];
        let mut cursor = io::Cursor::new(&mut bytes[..]);
        header
            .format(text.len() as u64, &mut cursor)
            .expect("an unmasked header fits in 10 bytes");
        let header_len = cursor.position() as u8;
        self.push(Segment {
            header: bytes,
            header_len,
            body: text,
        });
    }

    /// Queues bytes already framed (tungstenite's own control frames).
    pub fn push_raw(&mut self, framed: &[u8]) {
        if !framed.is_empty() {
            self.push(Segment {
                header: [0; 10],
                header_len: 0,
                body: Bytes::copy_from_slice(framed),
            });
        }
    }

    fn push(&mut self, segment: Segment) {
        self.bytes += segment.len();
        self.segments.push_back(segment);
    }

    /// Bytes queued and not written yet.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Writes until everything queued is on `socket`, then releases the queue's memory.
    pub fn poll_drain<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut socket: Pin<&mut W>,
    ) -> Poll<io::Result<()>> {
        while !self.segments.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.fill(&mut slices);
            let n = ready!(socket.as_mut().poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        self.segments = VecDeque::new();
        Poll::Ready(Ok(()))
    }

    /// The unwritten bytes, in order, as slices; returns how many were filled.
    fn fill<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut count = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            // Only the front segment can be partly written.
            let skip = if index == 0 { self.written } else { 0 };
            let header_len = usize::from(segment.header_len);
            let header = &segment.header[skip.min(header_len)..header_len];
            let body = &segment.body[skip.saturating_sub(header_len)..];
            for part in [header, body] {
                if part.is_empty() {
                    continue;
                }
                if count == MAX_SLICES {
                    return count;
                }
                slices[count] = IoSlice::new(part);
                count += 1;
            }
        }
        count
    }

    fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let front = self.segments.front().expect("written bytes were queued");
            let left = front.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.segments.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// A writer that takes at most `limit` bytes per call, and sometimes none (`Pending`).
    struct Trickle {
        taken: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.calls += 1;
            if this.calls.is_multiple_of(3) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(this.limit);
            this.taken.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What tungstenite itself would put on the wire for the same frames.
    fn expected(texts: &[String], control: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let frame = Frame::message(Bytes::from(text.clone()), OpCode::Data(Data::Text), true);
            frame.format(&mut wire).unwrap();
            if i % 7 == 0 {
                wire.extend_from_slice(control);
            }
        }
        wire
    }

    #[tokio::test]
    async fn partial_writes_keep_every_byte_in_order_and_drained_holds_nothing() {
        // Sizes on each side of the 7-bit and 16-bit length forms, and more frames than
        // one vectored write takes.
        let sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
        let texts: Vec<String> = (0..40)
            .map(|i| "x".repeat(sizes[i % sizes.len()]) + &i.to_string())
            .collect();
        let control = [0x89, 0x00]; // a ping
        for limit in [7, 1000, usize::MAX] {
            let mut outgoing = Outgoing::default();
            for (i, text) in texts.iter().enumerate() {
                outgoing.push_text(Bytes::from(text.clone()));
                if i % 7 == 0 {
                    outgoing.push_raw(&control);
                }
            }
            let total = outgoing.queued_bytes();
            let mut socket = Trickle {
                taken: Vec::new(),
                limit,
                calls: 0,
            };
            std::future::poll_fn(|cx| outgoing.poll_drain(cx, Pin::new(&mut socket)))
                .await
                .unwrap();
            assert_eq!(socket.taken.len(), total);
            assert!(socket.taken == expected(&texts, &control), "limit {limit}");
            assert_eq!(outgoing.queued_bytes(), 0);
            assert_eq!(outgoing.segments.capacity(), 0);
        }
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_is_an_error_not_a_loop() {
        let mut outgoing = Outgoing::default();
        outgoing.push_text(Bytes::from_static(b"hello"));
        let mut socket = Trickle {
            taken: Vec::new(),
            limit: 0,
            calls: 0,
        };
        let result =
            std::future::poll_fn(|cx| outgoing.poll_drain(cx, Pin::new(&mut socket))).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WriteZero);
    }
}
