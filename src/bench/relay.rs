//! `rdv bench relay`: pairs of peers relaying ~1 KiB offers and answers with a fixed number
//! in flight; delivered messages per second, one-way latency, and every loss or reordering.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::client::{BenchKey, Target, Ws};
use super::stats::{Latencies, LatencySummary, now_ns, own_cpu_time};

/// Which wire the pairs speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// PROTOCOL.md JSON through `/room/{room}/websocket`.
    Rdv,
    /// `TARGET|payload` through the raw floor's `/floor/{id}`.
    Floor,
}

#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub pairs: usize,
    pub one_room: bool,
    pub in_flight: usize,
    pub payload_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub wire: Wire,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    pub wire: Wire,
    pub pairs: usize,
    pub in_flight: usize,
    pub payload_bytes: usize,
    pub duration_s: f64,
    pub delivered: u64,
    pub msgs_per_sec: f64,
    pub latency: LatencySummary,
    /// Messages sent but never delivered, counted after a bounded drain.
    pub lost: u64,
    /// Deliveries out of sequence order.
    pub out_of_order: u64,
    /// `error` messages the server sent (rate limits, unknown peers…).
    pub errors: u64,
    /// The same errors by code, e.g. `{"rate-limited": 80}`.
    pub error_codes: std::collections::BTreeMap<String, u64>,
    pub generator_cpu_s: f64,
}

/// One side's tally.
#[derive(Default)]
struct Tally {
    latencies: Latencies,
    delivered: u64,
    /// Offers sent (callers only; set from their sequence numbers).
    sent: u64,
    received_total: u64,
    out_of_order: u64,
    errors: u64,
    error_codes: std::collections::BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    sdp: Option<Probe>,
    #[serde(borrow)]
    code: Option<&'a str>,
}

/// What a received frame was, when it is not a probe.
#[derive(Debug, PartialEq, Eq)]
enum NotAProbe {
    /// A server `error`, with its code.
    Error(String),
    /// Anything else (presence events).
    Other,
}

#[derive(Deserialize)]
struct Probe {
    seq: u64,
    ts: u64,
}

struct Codec {
    wire: Wire,
    /// Every message sent is padded to exactly this many bytes, on both wires, so the floor
    /// and rdv move the same bytes per message.
    size: usize,
}

impl Codec {
    fn new(wire: Wire, size: usize) -> Self {
        Self { wire, size }
    }

    fn encode(&self, kind: &str, to: &str, seq: u64, ts: u64) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.size.max(160));
        let end = match self.wire {
            Wire::Rdv => {
                let _ = write!(
                    out,
                    r#"{{"type":"{kind}","to":"{to}","sdp":{{"seq":{seq},"ts":{ts},"pad":""#
                );
                r#""}}"#
            }
            Wire::Floor => {
                let _ = write!(out, "{to}|{seq}|{ts}|");
                ""
            }
        };
        let pad = self.size.saturating_sub(out.len() + end.len()).max(1);
        out.extend(std::iter::repeat_n('x', pad));
        out.push_str(end);
        out
    }

    /// (seq, ts) of a relayed message, or what else the frame was.
    fn decode(&self, text: &str) -> Result<(u64, u64), NotAProbe> {
        match self.wire {
            Wire::Rdv => {
                // The generator reads its own messages, whose layout it knows: find the probe
                // without scanning the padding through a JSON parser (the generator shares
                // the CPU with the server it measures). Anything else takes the slow path.
                if let Some(probe) = fast_probe(text) {
                    return Ok(probe);
                }
                let incoming: Incoming<'_> =
                    serde_json::from_str(text).map_err(|_| NotAProbe::Other)?;
                match (incoming.kind, incoming.sdp) {
                    ("offer" | "answer", Some(probe)) => Ok((probe.seq, probe.ts)),
                    ("error", _) => Err(NotAProbe::Error(incoming.code.unwrap_or("?").to_owned())),
                    _ => Err(NotAProbe::Other),
                }
            }
            Wire::Floor => {
                let mut parts = text.splitn(4, '|').skip(1);
                let seq = parts
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or(NotAProbe::Other)?;
                let ts = parts
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or(NotAProbe::Other)?;
                Ok((seq, ts))
            }
        }
    }
}

/// `(seq, ts)` of a relayed offer or answer as this generator writes it (after the server's
/// rewrite: `{"type":"offer","from":"…","sdp":{"seq":N,"ts":T,…`).
fn fast_probe(text: &str) -> Option<(u64, u64)> {
    if !(text.starts_with(r#"{"type":"offer""#) || text.starts_with(r#"{"type":"answer""#)) {
        return None;
    }
    let rest = &text[text.find(r#""sdp":{"seq":"#)? + 13..];
    let (seq, rest) = rest.split_once(',')?;
    let ts = rest.strip_prefix(r#""ts":"#)?.split_once(',')?.0;
    Some((seq.parse().ok()?, ts.parse().ok()?))
}

/// Runs the pairs; with `other`, each pair's second peer connects to that instance.
pub async fn run(
    target: &Target,
    other: Option<&Target>,
    options: &RelayOptions,
) -> Result<RelayReport, String> {
    let second = other.unwrap_or(target);
    let codec = std::sync::Arc::new(Codec::new(options.wire, options.payload_bytes));
    // Connect and register every pair before the clock starts.
    let mut pairs = Vec::with_capacity(options.pairs);
    for pair in 0..options.pairs {
        let (a, b) = (BenchKey::new(), BenchKey::new());
        let (a_id, b_id, ws_a, ws_b) = match options.wire {
            Wire::Rdv => {
                let room = if options.one_room {
                    "bench".to_owned()
                } else {
                    format!("bench-{pair}")
                };
                let ws_a = target.join(&room, &a, pair * 2).await?;
                let ws_b = second.join(&room, &b, pair * 2 + 1).await?;
                (a.id, b.id, ws_a, ws_b)
            }
            Wire::Floor => {
                let (a_id, b_id) = (format!("a{pair}"), format!("b{pair}"));
                let ws_a = target.join_floor(&a_id, pair * 2).await?;
                let ws_b = second.join_floor(&b_id, pair * 2 + 1).await?;
                (a_id, b_id, ws_a, ws_b)
            }
        };
        pairs.push((a_id, b_id, ws_a, ws_b));
    }
    let cpu_before = own_cpu_time();
    let clock = Clock::start(options.warmup, options.duration);
    let mut tasks = Vec::new();
    for (a_id, b_id, ws_a, ws_b) in pairs {
        let codec_a = codec.clone();
        let codec_b = codec.clone();
        let in_flight = options.in_flight;
        let (clock_a, clock_b) = (clock.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            caller(ws_a, &b_id, &codec_a, in_flight, clock_a).await
        }));
        tasks.push(tokio::spawn(async move {
            callee(ws_b, &a_id, &codec_b, clock_b).await
        }));
    }
    let mut total = Tally::default();
    let (mut offers_sent, mut offers_received, mut answers_received) = (0, 0, 0);
    for (index, task) in tasks.into_iter().enumerate() {
        let tally = task.await.map_err(|e| e.to_string())?;
        if index % 2 == 0 {
            offers_sent += tally.sent;
            answers_received += tally.received_total;
        } else {
            offers_received += tally.received_total;
        }
        total.latencies.merge(&tally.latencies);
        total.delivered += tally.delivered;
        total.out_of_order += tally.out_of_order;
        total.errors += tally.errors;
        for (code, count) in tally.error_codes {
            *total.error_codes.entry(code).or_default() += count;
        }
    }
    let generator_cpu = own_cpu_time().saturating_sub(cpu_before);
    let duration = options.duration.as_secs_f64();
    Ok(RelayReport {
        wire: options.wire,
        pairs: options.pairs,
        in_flight: options.in_flight,
        payload_bytes: options.payload_bytes,
        duration_s: duration,
        delivered: total.delivered,
        msgs_per_sec: total.delivered as f64 / duration,
        latency: total.latencies.summary(),
        // Every offer is answered, so after the drain both counts must equal what was sent.
        lost: (offers_sent - offers_received.min(offers_sent))
            + (offers_received - answers_received.min(offers_received)),
        out_of_order: total.out_of_order,
        errors: total.errors,
        error_codes: total.error_codes,
        generator_cpu_s: generator_cpu.as_secs_f64(),
    })
}

/// How long to wait for in-flight messages after the clock stops.
const DRAIN: Duration = Duration::from_secs(10);

/// The sequence number of the caller's last message: "all answers are in, stop". Waiting
/// for it, not for a quiet moment, keeps a slow machine from looking like message loss.
const DONE: u64 = u64::MAX;

/// What one side does with each relayed message it receives.
trait Side {
    /// Called per received probe; returns the message to send back, if any.
    fn reply(&mut self, seq: u64, now: Instant) -> Option<String>;
    /// Whether the side has everything it waits for.
    fn finished(&self, tally: &Tally) -> bool;
}

/// After the clock stops in a run where the server refused messages, how long a side waits
/// for more before it stops: refused messages are never answered, so waiting out the whole
/// drain would only make `--duration 3s` take 13 s, and the run has failed anyway.
const REFUSED_DRAIN: Duration = Duration::from_millis(300);

/// The run's time line: timestamps count from `base`, deliveries count from `measure_from`,
/// and no offer is sent from `stop_at` on. `refused` is set by any side that saw a server
/// `error`.
#[derive(Debug, Clone)]
struct Clock {
    base: Instant,
    measure_from: Instant,
    stop_at: Instant,
    refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Clock {
    fn start(warmup: Duration, duration: Duration) -> Self {
        let base = Instant::now();
        let measure_from = base + warmup;
        Self {
            base,
            measure_from,
            stop_at: measure_from + duration,
            refused: Default::default(),
        }
    }

    /// The next frame, or `None` once this side should stop waiting: the connection ended,
    /// the drain is over, or — after the stop, in a run with refusals — a quiet
    /// `REFUSED_DRAIN`. The flag can be set by another side at any time, so a quiet wait
    /// after the stop is taken in `REFUSED_DRAIN` steps.
    async fn next_frame(&self, ws: &mut Ws, drain_until: Instant) -> Option<Message> {
        loop {
            let now = Instant::now();
            let until = if now < self.stop_at {
                self.stop_at
            } else {
                drain_until.min(now + REFUSED_DRAIN)
            };
            match tokio::time::timeout_at(until.into(), ws.next()).await {
                Ok(Some(Ok(message))) => return Some(message),
                Ok(_) => return None,
                Err(_quiet) => {
                    let refused = self.refused.load(std::sync::atomic::Ordering::Relaxed);
                    let now = Instant::now();
                    if now >= drain_until || (now >= self.stop_at && refused) {
                        return None;
                    }
                }
            }
        }
    }

    /// The timestamp a message carries.
    fn stamp(&self) -> u64 {
        now_ns(self.base)
    }

    fn is_measuring(&self, now: Instant) -> bool {
        now >= self.measure_from && now < self.stop_at
    }
}

/// Reads relayed messages, answering a whole batch of ready ones before one flush; stops when
/// `side` is finished, the caller's DONE arrives, or nothing arrives before the drain ends.
async fn serve_side(
    ws: &mut Ws,
    codec: &Codec,
    side: &mut impl Side,
    tally: &mut Tally,
    clock: &Clock,
) {
    use futures_util::FutureExt as _;
    let drain_until = clock.stop_at + DRAIN;
    let mut expected = 0;
    while !side.finished(tally) {
        let Some(first) = clock.next_frame(ws, drain_until).await else {
            return;
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            if let Message::Text(text) = message {
                match codec.decode(&text) {
                    Ok((DONE, _)) => return,
                    Ok((seq, ts)) => {
                        tally.received_total += 1;
                        tally.out_of_order += u64::from(seq != expected);
                        expected = seq + 1;
                        let now = Instant::now();
                        if clock.is_measuring(now) {
                            tally.delivered += 1;
                            tally.latencies.record(clock.stamp().saturating_sub(ts));
                        }
                        if let Some(reply) = side.reply(seq, now)
                            && ws.feed(Message::text(reply)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(NotAProbe::Error(code)) => {
                        tally.errors += 1;
                        *tally.error_codes.entry(code).or_default() += 1;
                        clock
                            .refused
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(NotAProbe::Other) => {}
                }
            }
            next = match ws.next().now_or_never() {
                Some(Some(Ok(message))) => Some(message),
                _ => None,
            };
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

struct Caller<'a> {
    codec: &'a Codec,
    to: &'a str,
    clock: Clock,
    next_seq: u64,
}

impl Side for Caller<'_> {
    fn reply(&mut self, _seq: u64, now: Instant) -> Option<String> {
        (now < self.clock.stop_at).then(|| {
            self.next_seq += 1;
            self.codec
                .encode("offer", self.to, self.next_seq - 1, self.clock.stamp())
        })
    }

    fn finished(&self, tally: &Tally) -> bool {
        // Every offer sent has been answered.
        tally.received_total >= self.next_seq
    }
}

struct Callee<'a> {
    codec: &'a Codec,
    to: &'a str,
    clock: Clock,
}

impl Side for Callee<'_> {
    fn reply(&mut self, seq: u64, _now: Instant) -> Option<String> {
        Some(
            self.codec
                .encode("answer", self.to, seq, self.clock.stamp()),
        )
    }

    fn finished(&self, _tally: &Tally) -> bool {
        false // runs until the caller's DONE
    }
}

/// Sends offers, keeping `in_flight` unanswered; stops sending at the clock's stop, then drains.
async fn caller(mut ws: Ws, to: &str, codec: &Codec, in_flight: usize, clock: Clock) -> Tally {
    let mut tally = Tally::default();
    let mut side = Caller {
        codec,
        to,
        clock: clock.clone(),
        next_seq: 0,
    };
    for _ in 0..in_flight {
        let text = codec.encode("offer", to, side.next_seq, clock.stamp());
        if ws.feed(Message::text(text)).await.is_err() {
            return tally;
        }
        side.next_seq += 1;
    }
    if ws.flush().await.is_err() {
        return tally;
    }
    serve_side(&mut ws, codec, &mut side, &mut tally, &clock).await;
    tally.sent = side.next_seq;
    let _ = ws
        .send(Message::text(codec.encode("offer", to, DONE, 0)))
        .await;
    let _ = ws.close(None).await;
    tally
}

/// Answers every offer with the same sequence number.
async fn callee(mut ws: Ws, to: &str, codec: &Codec, clock: Clock) -> Tally {
    let mut tally = Tally::default();
    let mut side = Callee {
        codec,
        to,
        clock: clock.clone(),
    };
    serve_side(&mut ws, codec, &mut side, &mut tally, &clock).await;
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_probe_reads_what_the_codec_writes() {
        let codec = Codec::new(Wire::Rdv, 100);
        let sent = codec.encode("offer", "bob", 42, 123456);
        assert_eq!(sent.len(), 100);
        assert!(serde_json::from_str::<serde_json::Value>(&sent).is_ok());
        // What the receiver gets: to removed, from added after type.
        let relayed = sent.replacen(r#""to":"bob","#, r#""from":"alice","#, 1);
        assert_eq!(fast_probe(&relayed), Some((42, 123456)));
        assert_eq!(codec.decode(&relayed), Ok((42, 123456)));
        assert_eq!(fast_probe(r#"{"type":"peer-joined"}"#), None);
        assert_eq!(
            codec.decode(r#"{"type":"error","code":"x"}"#),
            Err(NotAProbe::Error("x".into()))
        );
        let floor = Codec::new(Wire::Floor, 100);
        let sent = floor.encode("offer", "b1", 7, 99);
        assert_eq!(sent.len(), 100);
        assert_eq!(floor.decode(&sent.replacen("b1", "a1", 1)), Ok((7, 99)));
    }
}
