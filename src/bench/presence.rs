//! `rdv bench join`, `fanout` and `churn`: registrations, presence broadcasts, and whether
//! the server gives memory back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use super::client::{BenchKey, Target, Ws};
use super::stats::{Latencies, LatencySummary, own_cpu_time, process_cpu_time, rss_bytes};

#[derive(Debug, Clone, Serialize)]
pub struct MemorySample {
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub per_peer_bytes: f64,
}

fn memory(pid: Option<u32>, before: Option<u64>, peers: usize) -> Option<MemorySample> {
    let (before, after) = (before?, rss_bytes(pid?)?);
    Some(MemorySample {
        before_bytes: before,
        after_bytes: after,
        per_peer_bytes: (after as f64 - before as f64) / peers.max(1) as f64,
    })
}

/// Keeps joined sockets answering the server's pings until told to stop.
struct Holders {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Holders {
    fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    fn hold(&mut self, mut ws: Ws) {
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = ws.next() => if !matches!(message, Some(Ok(_))) { return },
                    _ = stop.changed() => break,
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }));
    }

    async fn release(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What a join run joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinWire {
    /// `rdv serve` (or any server speaking the protocol).
    Rdv,
    /// The raw floor, announcing nobody.
    Floor,
    /// The raw floor with its presence rooms (`--floor-presence`).
    FloorPresence,
}

impl JoinWire {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rdv => "rdv",
            Self::Floor => "floor",
            Self::FloorPresence => "floor-presence",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JoinReport {
    pub wire: JoinWire,
    pub peers: usize,
    pub rooms: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub joins_per_sec: f64,
    pub register_to_welcome: LatencySummary,
    pub failures: u64,
    /// Why the first failed join failed, so a run with failures says why.
    pub first_failure: Option<String>,
    pub memory: Option<MemorySample>,
    pub memory_after_hold: Option<MemorySample>,
    pub generator_cpu_s: f64,
    /// CPU time the server used while the peers joined (with --server-pid, on Linux).
    pub server_cpu_s: Option<f64>,
}

impl JoinReport {
    /// The server's CPU time per attempted join, in microseconds (with --server-pid).
    pub fn server_cpu_us_per_join(&self) -> Option<f64> {
        Some(self.server_cpu_s? * 1e6 / self.peers.max(1) as f64)
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct JoinOptions {
    #[arg(long, default_value_t = 1000)]
    pub peers: usize,
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Registrations in progress at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// The server's process ID, to sample its resident memory and the CPU time its joins took.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Keep the peers connected (answering pings) this long, then sample again.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Join the raw floor instead (connect, upgrade, wait for its `ready`): the least a
    /// join can cost on this stack and machine, to read rdv's joins/s against.
    #[arg(long)]
    pub floor: bool,
    /// With --floor: the floor keeps the rooms too, answers with the members and tells each
    /// member of every arrival and departure. The writes presence costs, without rdv's
    /// parsing and checks, to read rdv's joins/s in rooms of more than one against.
    #[arg(long, requires = "floor")]
    pub floor_presence: bool,
}

/// Joins `options.peers`; with `other`, every other one joins through that instance.
pub async fn join(
    target: &Target,
    other: Option<&Target>,
    options: &JoinOptions,
    progress: &indicatif::ProgressBar,
) -> Result<JoinReport, String> {
    let &JoinOptions {
        peers,
        rooms,
        concurrency,
        server_pid,
        hold,
        floor,
        floor_presence,
    } = options;
    let wire = match (floor, floor_presence) {
        (true, true) => JoinWire::FloorPresence,
        (true, false) => JoinWire::Floor,
        (false, _) => JoinWire::Rdv,
    };
    let keys: Vec<BenchKey> = (0..peers).map(|_| BenchKey::new()).collect();
    let before = server_pid.and_then(rss_bytes);
    let cpu_before = own_cpu_time();
    let server_cpu_before = server_pid.and_then(process_cpu_time);
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut attempts = Vec::with_capacity(peers);
    for (n, key) in keys.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let target = match other {
            Some(other) if n % 2 == 1 => other.clone(),
            _ => target.clone(),
        };
        let room = format!("join-{}", n % rooms.max(1));
        attempts.push(tokio::spawn(async move {
            let _permit = permit;
            let start = Instant::now();
            let joined = match wire {
                JoinWire::FloorPresence => target.join_floor_room(&room, &key, n).await,
                JoinWire::Floor => target.join_floor(&format!("j{n}"), n).await,
                JoinWire::Rdv => target.join(&room, &key, n).await,
            };
            joined.map(|ws| (ws, start.elapsed()))
        }));
    }
    let mut latencies = Latencies::default();
    let mut holders = Holders::new();
    let mut failures = 0;
    let mut first_failure = None;
    for attempt in attempts {
        match attempt.await.map_err(|e| e.to_string())? {
            Ok((ws, took)) => {
                latencies.record(took.as_nanos() as u64);
                holders.hold(ws);
                progress.inc(1);
            }
            Err(error) => {
                failures += 1;
                first_failure.get_or_insert(error);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_s = server_pid
        .and_then(process_cpu_time)
        .zip(server_cpu_before)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64());
    // Let the server settle its buffers before sampling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory_joined = memory(server_pid, before, peers);
    let memory_after_hold = if hold.is_zero() {
        None
    } else {
        tokio::time::sleep(hold).await;
        memory(server_pid, before, peers)
    };
    holders.release().await;
    Ok(JoinReport {
        wire,
        peers,
        rooms,
        concurrency,
        seconds,
        joins_per_sec: (peers as u64 - failures) as f64 / seconds,
        register_to_welcome: latencies.summary(),
        failures,
        first_failure,
        memory: memory_joined,
        memory_after_hold,
        generator_cpu_s: own_cpu_time().saturating_sub(cpu_before).as_secs_f64(),
        server_cpu_s,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub peers: usize,
    pub events_expected: u64,
    pub events_seen: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    /// From the last peer's register until every other peer saw it join.
    pub last_join_seen_by_all_ms: f64,
    pub memory: Option<MemorySample>,
    pub generator_cpu_s: f64,
}

pub async fn fanout(
    target: &Target,
    peers: usize,
    server_pid: Option<u32>,
    progress: &indicatif::ProgressBar,
) -> Result<FanoutReport, String> {
    let keys: Vec<BenchKey> = (0..peers).map(|_| BenchKey::new()).collect();
    let before = server_pid.and_then(rss_bytes);
    let cpu_before = own_cpu_time();
    let seen = Arc::new(AtomicU64::new(0));
    let (last_seen_tx, last_seen_rx) = watch::channel(0u64);
    let last_id = keys.last().map(|k| k.id.clone()).unwrap_or_default();
    let last_seen_tx = Arc::new(last_seen_tx);
    let (stop, _) = watch::channel(false);
    let mut readers = Vec::new();
    let started = Instant::now();
    let mut last_register = started;
    for (n, key) in keys.iter().enumerate() {
        if n + 1 == peers {
            last_register = Instant::now();
        }
        let mut ws = target.join("fanout", key, n).await?;
        progress.inc(1);
        let (seen, last_seen_tx, last_id) = (seen.clone(), last_seen_tx.clone(), last_id.clone());
        let mut stop = stop.subscribe();
        readers.push(tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = ws.next() => message,
                    _ = stop.changed() => break,
                };
                let Some(Ok(Message::Text(text))) = message else {
                    break;
                };
                if text.starts_with(r#"{"type":"peer-joined""#) {
                    seen.fetch_add(1, Ordering::Relaxed);
                    if text.contains(&last_id) {
                        last_seen_tx.send_modify(|count| *count += 1);
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }));
    }
    let expected = (peers as u64 * peers.saturating_sub(1) as u64) / 2;
    let everyone = peers.saturating_sub(1) as u64;
    let mut last_seen_rx = last_seen_rx;
    let deadline = Instant::now() + Duration::from_secs(60);
    let _ = tokio::time::timeout_at(
        deadline.into(),
        last_seen_rx.wait_for(|count| *count >= everyone),
    )
    .await;
    let last_join_seen_by_all = last_register.elapsed();
    while seen.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let memory = memory(server_pid, before, peers);
    let _ = stop.send(true);
    for reader in readers {
        let _ = reader.await;
    }
    let events_seen = seen.load(Ordering::Relaxed);
    Ok(FanoutReport {
        peers,
        events_expected: expected,
        events_seen,
        seconds,
        events_per_sec: events_seen as f64 / seconds,
        last_join_seen_by_all_ms: last_join_seen_by_all.as_secs_f64() * 1000.0,
        memory,
        generator_cpu_s: own_cpu_time().saturating_sub(cpu_before).as_secs_f64(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    pub seconds: f64,
    pub cycles: u64,
    pub cycles_per_sec: f64,
    pub failures: u64,
    /// Why the first failed cycle failed.
    pub first_failure: Option<String>,
    /// Before the first connection: includes one-time growth (runtime slabs, map capacity).
    pub rss_cold_bytes: Option<u64>,
    /// After the warm-up: the baseline a leak would grow from.
    pub rss_start_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// End RSS over the warm start (1.0 = everything given back).
    pub rss_ratio: Option<f64>,
    pub generator_cpu_s: f64,
}

#[allow(clippy::too_many_arguments)] // one flag each; a struct would only rename them
pub async fn churn(
    target: &Target,
    warmup: Duration,
    duration: Duration,
    rate: u32,
    concurrency: usize,
    server_pid: Option<u32>,
    progress: &indicatif::ProgressBar,
) -> Result<ChurnReport, String> {
    let rss_cold = server_pid.and_then(rss_bytes);
    let mut rss_start = None;
    let cpu_before = own_cpu_time();
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let cycles = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::OnceLock::new());
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut n = 0usize;
    while started.elapsed() < warmup + duration {
        ticker.tick().await;
        if rss_start.is_none() && started.elapsed() >= warmup {
            rss_start = server_pid.and_then(rss_bytes);
        }
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (target, cycles, failures) = (target.clone(), cycles.clone(), failures.clone());
        let first_failure = first_failure.clone();
        let key = BenchKey::new();
        n += 1;
        let room = format!("churn-{}", n % 16);
        tokio::spawn(async move {
            let _permit = permit;
            match target.join(&room, &key, n).await {
                Ok(mut ws) => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    let _ = first_failure.set(error);
                }
            }
        });
        progress.set_position(started.elapsed().as_secs());
    }
    // Wait for the cycles in flight, then give the server a moment to release them.
    let _ = limit.acquire_many(concurrency.max(1) as u32).await;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = server_pid.and_then(rss_bytes);
    let cycles = cycles.load(Ordering::Relaxed);
    Ok(ChurnReport {
        seconds,
        cycles,
        cycles_per_sec: cycles as f64 / seconds,
        failures: failures.load(Ordering::Relaxed),
        first_failure: first_failure.get().cloned(),
        rss_cold_bytes: rss_cold,
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_end,
        rss_ratio: rss_start.zip(rss_end).map(|(s, e)| e as f64 / s as f64),
        generator_cpu_s: own_cpu_time().saturating_sub(cpu_before).as_secs_f64(),
    })
}
