//! What one client may make the server do, counted frame by frame as its bytes arrive.
//!
//! tungstenite assembles fragments and answers pings on its own, so the session only sees
//! whole messages: a client sending endless empty continuation frames or pings, or a
//! fragmented message it never finishes, would never meet the session's rate limit or
//! timers. The transport feeds every byte it hands to tungstenite through an
//! [`InboundGuard`], which reads the frame headers (RFC 6455 §5.2) and
//!
//! - charges every frame to the connection's rate limit: a message's last frame gets the
//!   session's usual verdict (accept, or drop with `rate-limited`), every other frame
//!   (control frames, fragments before the last) is charged too, and a client that keeps
//!   sending over the limit is cut off;
//! - gives a fragmented message (or one large frame) a deadline to arrive whole;
//! - counts the bytes of unfinished messages against a server-wide budget.
//!
//! No I/O: the transport calls [`InboundGuard::observe`] with the bytes it read.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::admission::rate::{RateLimiter, Verdict};

/// Why a connection must be cut off; the transport turns it into an I/O error and the
/// session into a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abuse {
    /// Frames kept coming over the rate limit after a whole burst was refused.
    RateExceeded,
    /// A message did not arrive whole within the deadline.
    MessageTooSlow,
    /// Unfinished messages across the server hold more bytes than the budget allows.
    UnfinishedBudget,
}

impl fmt::Display for Abuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Abuse {}

impl Abuse {
    /// The close frame's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Abuse::RateExceeded => "rate limit exceeded",
            Abuse::MessageTooSlow => "message took too long to arrive",
            Abuse::UnfinishedBudget => "server holds too many unfinished messages",
        }
    }
}

/// Bytes of unfinished messages across the server, against a budget.
#[derive(Debug)]
pub struct UnfinishedBudget {
    held: AtomicUsize,
    limit: usize,
}

impl UnfinishedBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> bool {
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        before.saturating_add(bytes) <= self.limit
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Where the header parser is.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// Collecting a frame header: `have` of `need` bytes (`need` grows once the length
    /// field is known).
    Header { have: usize, need: usize },
    /// Skipping this many payload bytes.
    Payload { left: u64 },
}

/// One frame header, as far as the guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: u8,
    pub len: u64,
}

impl FrameHeader {
    fn is_control(self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Reads frame headers out of a client's byte stream; payloads are skipped, not copied.
#[derive(Debug)]
pub struct FrameReader {
    reading: Reading,
    header: [u8; 14],
}

impl Default for FrameReader {
    fn default() -> Self {
        Self {
            reading: Reading::Header { have: 0, need: 2 },
            header: [0; 14],
        }
    }
}

/// What the reader found in the bytes it was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEvent {
    /// A frame header is complete.
    Header(FrameHeader),
    /// `bytes` of the current frame's payload passed; `done` when it was the last of them.
    Payload { bytes: u64, done: bool },
}

impl FrameReader {
    /// Feeds `bytes`, calling `on_event` for each header and payload run; stops at the first
    /// `Err`.
    pub fn feed<E>(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut impl FnMut(FrameEvent) -> Result<(), E>,
    ) -> Result<(), E> {
        while !bytes.is_empty() {
            match &mut self.reading {
                Reading::Payload { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    let done = *left == 0;
                    if done {
                        self.reading = Reading::Header { have: 0, need: 2 };
                    }
                    on_event(FrameEvent::Payload { bytes: n, done })?;
                }
                Reading::Header { have, need } => {
                    let n = (*need - *have).min(bytes.len());
                    self.header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have < *need {
                        continue;
                    }
                    if *need == 2 {
                        // Length field size, plus the 4-byte mask if the client set it
                        // (it must; tungstenite refuses the frame otherwise).
                        let masked = self.header[1] & 0x80 != 0;
                        let extra = match self.header[1] & 0x7f {
                            126 => 2,
                            127 => 8,
                            _ => 0,
                        } + if masked { 4 } else { 0 };
                        if extra > 0 {
                            *need += extra;
                            continue;
                        }
                    }
                    let header = self.parsed();
                    self.reading = if header.len > 0 {
                        Reading::Payload { left: header.len }
                    } else {
                        Reading::Header { have: 0, need: 2 }
                    };
                    on_event(FrameEvent::Header(header))?;
                }
            }
        }
        Ok(())
    }

    fn parsed(&self) -> FrameHeader {
        let h = &self.header;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        FrameHeader {
            fin: h[0] & 0x80 != 0,
            opcode: h[0] & 0x0f,
            len,
        }
    }
}

/// Limits for one connection's inbound frames.
#[derive(Debug, Clone)]
pub struct GuardLimits {
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// How long a message may take from its first frame to its last.
    pub message_deadline: Duration,
    pub unfinished: Arc<UnfinishedBudget>,
}

/// One connection's guard (see the module docs).
#[derive(Debug)]
pub struct InboundGuard {
    reader: FrameReader,
    state: GuardState,
}

#[derive(Debug, Clone, Copy)]
struct Unfinished {
    /// When it must have arrived whole (its first frame's arrival plus the deadline).
    due: Instant,
    /// Its payload bytes read so far.
    read: usize,
    /// How many of those are charged to the server-wide budget. Charged only when a
    /// message is still unfinished at the end of a read, so the common case — a message
    /// that arrives in one read — never touches the shared counter.
    charged: usize,
}

#[derive(Debug)]
struct GuardState {
    limiter: RateLimiter,
    deadline: Duration,
    budget: Arc<UnfinishedBudget>,
    /// A data message that has begun and not fully arrived.
    unfinished: Option<Unfinished>,
    /// The frame whose payload is arriving: a control frame (not part of any message), and
    /// whether it is a message's last frame.
    in_control: bool,
    in_last: bool,
    /// Verdicts for whole data messages, in arrival order, for the session to collect.
    verdicts: VecDeque<Verdict>,
}

impl InboundGuard {
    pub fn new(limits: GuardLimits, now: Instant) -> Self {
        Self {
            reader: FrameReader::default(),
            state: GuardState {
                limiter: RateLimiter::new(limits.rate_per_second, limits.rate_burst, now),
                deadline: limits.message_deadline,
                budget: limits.unfinished,
                unfinished: None,
                in_control: false,
                in_last: false,
                verdicts: VecDeque::new(),
            },
        }
    }

    /// Accounts for bytes read from the client at `now`. After an `Err` the connection is
    /// done for, and its unfinished bytes are given back at once.
    pub fn observe(&mut self, bytes: &[u8], now: Instant) -> Result<(), Abuse> {
        let verdict = self.account(bytes, now);
        if verdict.is_err() {
            self.state.finish();
        }
        verdict
    }

    fn account(&mut self, bytes: &[u8], now: Instant) -> Result<(), Abuse> {
        let state = &mut self.state;
        self.reader
            .feed(bytes, &mut |event| state.on_event(event, now))?;
        let Some(unfinished) = &mut self.state.unfinished else {
            return Ok(());
        };
        // Still unfinished, and overdue: even a client that only sends pings in between is
        // cut off.
        if now > unfinished.due {
            return Err(Abuse::MessageTooSlow);
        }
        let uncharged = unfinished.read - unfinished.charged;
        if uncharged > 0 {
            unfinished.charged = unfinished.read;
            if !self.state.budget.take(uncharged) {
                return Err(Abuse::UnfinishedBudget);
            }
        }
        Ok(())
    }

    /// The verdict for the next whole data message the session receives.
    pub fn next_verdict(&mut self) -> Verdict {
        self.state.verdicts.pop_front().unwrap_or(Verdict::Accept)
    }
}

impl GuardState {
    fn on_event(&mut self, event: FrameEvent, now: Instant) -> Result<(), Abuse> {
        match event {
            FrameEvent::Header(header) if header.is_control() => {
                self.in_control = true;
                match self.limiter.check(now) {
                    Verdict::Close => Err(Abuse::RateExceeded),
                    Verdict::Accept | Verdict::Drop => Ok(()),
                }
            }
            FrameEvent::Header(header) => {
                self.in_control = false;
                self.in_last = header.fin;
                if self.unfinished.is_none() {
                    self.unfinished = Some(Unfinished {
                        due: now + self.deadline,
                        read: 0,
                        charged: 0,
                    });
                }
                let verdict = self.limiter.check(now);
                if header.fin {
                    // The message's own verdict, collected by the session when tungstenite
                    // hands the message over.
                    self.verdicts.push_back(verdict);
                    if header.len == 0 {
                        self.finish();
                    }
                    Ok(())
                } else if verdict == Verdict::Close {
                    Err(Abuse::RateExceeded)
                } else {
                    Ok(())
                }
            }
            FrameEvent::Payload { .. } if self.in_control => Ok(()),
            FrameEvent::Payload { bytes, done } => {
                let Some(unfinished) = &mut self.unfinished else {
                    return Ok(());
                };
                if now > unfinished.due {
                    return Err(Abuse::MessageTooSlow);
                }
                unfinished.read += bytes as usize;
                if done && self.in_last {
                    self.finish();
                }
                Ok(())
            }
        }
    }

    /// The current message has arrived whole: its bytes leave the budget.
    fn finish(&mut self) {
        if let Some(unfinished) = self.unfinished.take()
            && unfinished.charged > 0
        {
            self.budget.give_back(unfinished.charged);
        }
        self.in_last = false;
    }
}

impl Drop for GuardState {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame (the mask is zero, so the payload reads as written).
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(payload);
        out
    }

    fn guard(
        rate: u32,
        burst: u32,
        budget: usize,
        now: Instant,
    ) -> (InboundGuard, Arc<UnfinishedBudget>) {
        let unfinished = UnfinishedBudget::new(budget);
        let limits = GuardLimits {
            rate_per_second: rate,
            rate_burst: burst,
            message_deadline: Duration::from_secs(5),
            unfinished: unfinished.clone(),
        };
        (InboundGuard::new(limits, now), unfinished)
    }

    #[test]
    fn headers_are_read_across_any_split() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, b"hello"));
        stream.extend(frame(false, 1, &[b'x'; 300]));
        stream.extend(frame(true, 9, b"ping"));
        stream.extend(frame(true, 0, &[b'y'; 70_000]));
        for chunk in [1, 2, 3, 7, 100, 5000, stream.len()] {
            let mut reader = FrameReader::default();
            let mut headers = Vec::new();
            let mut payload = 0;
            for piece in stream.chunks(chunk) {
                reader
                    .feed::<()>(piece, &mut |event| {
                        match event {
                            FrameEvent::Header(h) => headers.push(h),
                            FrameEvent::Payload { bytes, .. } => payload += bytes,
                        }
                        Ok(())
                    })
                    .unwrap();
            }
            let seen: Vec<(bool, u8, u64)> =
                headers.iter().map(|h| (h.fin, h.opcode, h.len)).collect();
            assert_eq!(
                seen,
                [
                    (true, 1, 5),
                    (false, 1, 300),
                    (true, 9, 4),
                    (true, 0, 70_000)
                ],
                "chunks of {chunk}"
            );
            assert_eq!(payload, 5 + 300 + 4 + 70_000);
        }
    }

    #[test]
    fn every_frame_counts_against_the_rate_and_a_flood_is_cut_off() {
        let now = Instant::now();
        let (mut guard, _) = guard(10, 5, 1 << 20, now);
        // Five empty continuation-style frames of an unfinished message use the burst …
        for _ in 0..5 {
            guard.observe(&frame(false, 1, b""), now).unwrap();
        }
        // … the next five are over the rate but tolerated, then the connection is cut off.
        let mut cut = None;
        for n in 0..20 {
            if let Err(abuse) = guard.observe(&frame(true, 9, b""), now) {
                cut = Some((n, abuse));
                break;
            }
        }
        assert_eq!(cut, Some((5, Abuse::RateExceeded)));
    }

    #[test]
    fn whole_messages_get_their_verdicts_in_order() {
        let now = Instant::now();
        let (mut guard, budget) = guard(10, 2, 1 << 20, now);
        let mut bytes = frame(true, 1, b"a");
        bytes.extend(frame(true, 1, b"b"));
        bytes.extend(frame(true, 1, b"c"));
        guard.observe(&bytes, now).unwrap();
        assert_eq!(guard.next_verdict(), Verdict::Accept);
        assert_eq!(guard.next_verdict(), Verdict::Accept);
        assert_eq!(guard.next_verdict(), Verdict::Drop);
        assert_eq!(budget.held(), 0, "a message read whole is never charged");
    }

    #[test]
    fn an_unfinished_message_has_a_deadline_and_a_budget() {
        let start = Instant::now();
        let (mut guard, budget) = guard(1000, 1000, 1000, start);
        guard.observe(&frame(false, 1, &[1; 600]), start).unwrap();
        assert_eq!(budget.held(), 600);
        // Pings keep coming, the message does not: cut off once the deadline passes.
        let later = start + Duration::from_secs(4);
        guard.observe(&frame(true, 9, b""), later).unwrap();
        let overdue = start + Duration::from_secs(6);
        assert_eq!(
            guard.observe(&frame(true, 9, b""), overdue),
            Err(Abuse::MessageTooSlow)
        );
        drop(guard);
        assert_eq!(budget.held(), 0, "a closed connection gives its bytes back");

        // Two connections' unfinished messages together exceed the budget.
        let (mut first, budget) = self::guard(1000, 1000, 1000, start);
        let limits = GuardLimits {
            rate_per_second: 1000,
            rate_burst: 1000,
            message_deadline: Duration::from_secs(5),
            unfinished: budget.clone(),
        };
        let mut second = InboundGuard::new(limits, start);
        first.observe(&frame(false, 1, &[1; 600]), start).unwrap();
        assert_eq!(
            second.observe(&frame(false, 1, &[1; 600]), start),
            Err(Abuse::UnfinishedBudget)
        );
        // Finishing gives the bytes back.
        first.observe(&frame(true, 0, b"end"), start).unwrap();
        drop(second);
        assert_eq!(budget.held(), 0);
        assert_eq!(first.next_verdict(), Verdict::Accept);
    }
}
