//! The cluster's chaos run (issue 27): a real `redis-server`, three `rdv serve --cluster`
//! instances and a few hundred clients on loopback, for a bounded time. Clients join and
//! leave at random across instances, relay sequenced messages, some prove their keys, some
//! reset their sockets in the middle of a join, some drop their socket and resume their place
//! (PROTOCOL §14) on any instance. Each round injects a fault — an instance
//! SIGKILLed and replaced, an instance SIGSTOPped past its lease and resumed, Redis killed
//! and restarted from a snapshot or empty, a flood of silent upgrades against the
//! unregistered cap, and against a Redis Cluster (`RDV_TEST_REDIS=cluster`: six nodes, three
//! primaries) a primary SIGKILLed so that its replica takes over — then lets the cluster
//! settle and checks the invariants, printing them as numbers:
//!
//! - Redis's members of every room are exactly the live registered connections, and a
//!   `welcome` lists exactly them (ghosts and missing: 0);
//! - every live client's view of its room (its welcome, then each `peer-joined` and
//!   `peer-left`) is exactly the room; no `peer-joined` twice, no `peer-left` for someone it
//!   did not know, none for a peer still connected whose instance had no fault;
//! - no verified peer is replaced (no key is used twice here);
//! - a peer that drops and comes back within the grace resumes (`"resumed": true`) unless its
//!   instance was faulted, and nobody hears it leave;
//! - relays arrive in order per sender and receiver, never from a peer the receiver does not
//!   know (unless the sender's instance was faulted), and none vanishes outside a fault's
//!   window; in each settled period every member reaches every other.
//!
//! `cargo test --test chaos -- --ignored --nocapture`; `RDV_CHAOS_SECONDS` (default 60, and
//! at least one round of each fault), `RDV_CHAOS_CLIENTS` (default 150), `RDV_CHAOS_SEED`,
//! `RDV_CHAOS_FAULTS` (the faults to inject, e.g. `redis-restart-empty,kill-instance`; all
//! by default).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{Server, outside};
use futures_util::{SinkExt, StreamExt};
use rdv::identity::{KeySpec, PrivateKey, base64url};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: usize = 8;
/// The instances' lease: against a Redis Cluster longer than a failover (a node timeout of
/// 1 s, then an election), which holds up every instance's renewals (docs/cluster.md).
fn lease() -> Duration {
    if common::redis::cluster_requested() {
        Duration::from_secs(6)
    } else {
        Duration::from_secs(2)
    }
}
/// After a fault ends, relays lost in flight are still the fault's.
const FAULT_SHADOW: Duration = Duration::from_secs(3);
const CHAOS: Duration = Duration::from_secs(6);
const SETTLE_LIMIT: Duration = Duration::from_secs(25);

/// The faults, each run at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    KillInstance,
    PauseInstance,
    RedisRestartFromSnapshot,
    RedisRestartEmpty,
    UpgradeFlood,
    /// Redis Cluster only: a primary SIGKILLed; its replica takes over, and the old primary
    /// comes back as a replica.
    RedisPrimaryKill,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::KillInstance => "kill-instance",
            Self::PauseInstance => "pause-instance",
            Self::RedisRestartFromSnapshot => "redis-restart-from-snapshot",
            Self::RedisRestartEmpty => "redis-restart-empty",
            Self::UpgradeFlood => "upgrade-flood",
            Self::RedisPrimaryKill => "redis-primary-kill",
        }
    }
}

/// The faults `RDV_CHAOS_FAULTS` names, or all of them (a primary kill only against a
/// Redis Cluster).
fn chosen_faults() -> Vec<Fault> {
    let all: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|fault| *fault != Fault::RedisPrimaryKill || common::redis::cluster_requested())
        .collect();
    let Ok(names) = std::env::var("RDV_CHAOS_FAULTS") else {
        return all;
    };
    names
        .split(',')
        .map(|name| {
            *all.iter()
                .find(|fault| fault.name() == name.trim())
                .unwrap_or_else(|| panic!("RDV_CHAOS_FAULTS: no fault {name:?}"))
        })
        .collect()
}

const FAULTS: [Fault; 6] = [
    Fault::KillInstance,
    Fault::PauseInstance,
    Fault::RedisRestartFromSnapshot,
    Fault::RedisRestartEmpty,
    Fault::UpgradeFlood,
    Fault::RedisPrimaryKill,
];

/// A small deterministic generator, so a failing run can be replayed with its seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

#[derive(Default)]
struct Counts {
    joins: AtomicU64,
    proven_joins: AtomicU64,
    clean_leaves: AtomicU64,
    resets: AtomicU64,
    resets_mid_join: AtomicU64,
    closed_by_server: AtomicU64,
    join_refusals: AtomicU64,
    relays_sent: AtomicU64,
    relays_received: AtomicU64,
    relays_refused: AtomicU64,
    relays_lost_in_faults: AtomicU64,
    settled_relays: AtomicU64,
    silent_upgrades: AtomicU64,
    roams: AtomicU64,
    resumes: AtomicU64,
    resumes_lost_in_faults: AtomicU64,
    relays_lost_with_a_socket: AtomicU64,
    // Violations: each must stay 0.
    resumes_lost_calm: AtomicU64,
    relays_lost_calm: AtomicU64,
    relays_reordered: AtomicU64,
    relays_from_unknown: AtomicU64,
    joined_twice: AtomicU64,
    left_unknown: AtomicU64,
    false_departures: AtomicU64,
    verified_replaced: AtomicU64,
}

/// A client that is in a room right now, as the harness knows it.
#[derive(Clone)]
struct Live {
    room: usize,
    slot: usize,
    /// What it believes the room is (everyone else).
    presence: Arc<Mutex<HashSet<String>>>,
}

struct Instance {
    server: Server,
    paused: bool,
}

struct Harness {
    redis: Mutex<RedisServer>,
    redis_url: String,
    instances: Mutex<Vec<Instance>>,
    /// Clients stop joining and leaving while the cluster settles and is checked.
    settling: AtomicBool,
    /// Bumped for every settled round: each live client then relays once to every other.
    settled_round: AtomicU64,
    live: Mutex<HashMap<String, Live>>,
    /// Peers announced gone while the harness still had them live and undisturbed.
    suspects: Mutex<Vec<String>>,
    /// Peers whose instance was killed or paused while they were connected.
    disturbed: Mutex<HashSet<String>>,
    /// Relays the server refused (sender, receiver, sequence), and when each relay was sent.
    refused: Mutex<HashSet<(String, String, u64)>>,
    sent_at: Mutex<HashMap<(String, String, u64), Instant>>,
    /// Relays the server accepted, then reported dropped (`unavailable` naming the
    /// receiver): how many per (sender, receiver). They arrive after later frames, so a gap
    /// found outside a fault is judged at the end against them.
    dropped_later: Mutex<HashMap<(String, String), u64>>,
    /// Gaps outside a fault's window: (sender, receiver, sequence, sent at).
    calm_gaps: Mutex<Vec<(String, String, u64, Instant)>>,
    /// Faults as (start, end); relays sent inside one (or its shadow) may be lost.
    faults: Mutex<Vec<(Instant, Option<Instant>)>>,
    /// When each peer dropped its socket to resume: what the server had written to it then
    /// is lost with it (PROTOCOL §14).
    roamed: Mutex<HashMap<String, Vec<Instant>>>,
    counts: Counts,
    deadline: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Harness {
    fn instance_args(&self) -> Vec<String> {
        [
            "--cluster",
            &self.redis_url,
            "--cluster-lease",
            &format!("{}s", lease().as_secs()),
            "--proof",
            "optional",
            "--max-unregistered",
            "32",
            "--rate-limit",
            "1000",
            "--rate-burst",
            "1000",
            // Short, so that peers reset for good are gone before the round settles.
            "--resume-grace",
            "2s",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn start_instance(&self) -> Instance {
        let args = self.instance_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Instance {
            server: Server::start(&args),
            paused: false,
        }
    }

    /// A room URL on a running instance, and that instance's slot.
    fn pick_instance(&self, rng: &mut Rng, room: usize) -> Option<(usize, String)> {
        let instances = lock(&self.instances);
        let running: Vec<usize> = (0..instances.len())
            .filter(|&slot| !instances[slot].paused)
            .collect();
        let slot = *running.get(rng.below(running.len().max(1)))?;
        Some((slot, instances[slot].server.url(&format!("chaos-{room}"))))
    }

    fn in_fault(&self, at: Instant) -> bool {
        lock(&self.faults).iter().any(|(start, end)| {
            let end = end.map_or(at + FAULT_SHADOW, |end| end + FAULT_SHADOW);
            *start <= at && at <= end
        })
    }

    /// Whether a relay to `to` sent at `at` went out with a socket `to` dropped to resume.
    fn lost_with_a_socket(&self, to: &str, at: Instant) -> bool {
        lock(&self.roamed).get(to).is_some_and(|drops| {
            drops.iter().any(|dropped| {
                at <= *dropped + Duration::from_millis(500)
                    && *dropped <= at + Duration::from_secs(1)
            })
        })
    }

    fn disturb_slot(&self, slot: usize) {
        let live = lock(&self.live);
        let mut disturbed = lock(&self.disturbed);
        for (id, client) in live.iter() {
            if client.slot == slot {
                disturbed.insert(id.clone());
            }
        }
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One client slot: clients one after another until the run ends.
async fn client_slot(harness: Arc<Harness>, mut rng: Rng) {
    while Instant::now() < harness.deadline {
        if harness.settling.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let room = rng.below(ROOMS);
        let Some((slot, url)) = harness.pick_instance(&mut rng, room) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Bounded by its own waits; the run aborts it at the end.
        client(&harness, &mut rng, room, slot, &url).await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Drops the TCP connection with a reset (SO_LINGER 0), no close frame.
fn reset(ws: Ws) {
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        let _ = socket2_linger_zero(tcp);
    }
    drop(ws);
}

fn socket2_linger_zero(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    #[allow(deprecated)]
    tcp.set_linger(Some(Duration::ZERO))
}

async fn next_message(ws: &mut Ws, limit: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(limit, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The peer IDs a `welcome` lists.
fn listed_in(welcome: &Value) -> HashSet<String> {
    welcome["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| p["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Connects to `url` and registers `key` (with a proof if `prove`); the socket and the
/// `welcome`, or `None` if it was refused or cut (`mid_join` resets it after the register).
async fn register(url: &str, key: &PrivateKey, prove: bool, mid_join: bool) -> Option<(Ws, Value)> {
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(url),
    )
    .await
    else {
        return None;
    };
    let challenge = next_message(&mut ws, Duration::from_secs(3)).await?;
    let mut register = json!({"type": "register", "publicKey": key.public().to_public_json()});
    if prove {
        let nonce = challenge["nonce"].as_str().unwrap_or_default();
        let signature = key.sign_proof(key.proof_alg(), nonce).unwrap();
        register["proof"] =
            json!({"alg": key.proof_alg().name(), "signature": base64url(&signature)});
    }
    ws.send(Message::text(register.to_string())).await.ok()?;
    if mid_join {
        reset(ws);
        return None;
    }
    let welcome = next_message(&mut ws, Duration::from_secs(5)).await?;
    (welcome["type"] == "welcome").then_some((ws, welcome))
}

/// One client's life: connect, register, relay, roam, leave (or be left).
async fn client(harness: &Harness, rng: &mut Rng, room: usize, slot: usize, url: &str) {
    let counts = &harness.counts;
    let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
    let id = key.public().peer_id().to_string();
    let prove = rng.chance(30);
    if rng.chance(5) {
        // Gone in the middle of its join.
        count(&counts.resets_mid_join);
        register(url, &key, prove, true).await;
        return;
    }
    let Some((mut ws, welcome)) = register(url, &key, prove, false).await else {
        count(&counts.join_refusals);
        return;
    };
    count(&counts.joins);
    if prove {
        count(&counts.proven_joins);
    }
    let presence = Arc::new(Mutex::new(listed_in(&welcome)));
    lock(&harness.live).insert(
        id.clone(),
        Live {
            room,
            slot,
            presence: presence.clone(),
        },
    );
    let mut sequences = Sequences::default();
    loop {
        let ended = converse(harness, rng, &id, prove, &presence, &mut ws, &mut sequences).await;
        match ended {
            Ending::Roam => {
                // Its place stays: it is still live for the harness while it comes back.
                count(&counts.roams);
                lock(&harness.roamed)
                    .entry(id.clone())
                    .or_default()
                    .push(Instant::now());
                reset(ws);
                tokio::time::sleep(rng.millis(50, 800)).await;
                let dropped = Instant::now();
                let back = match harness.pick_instance(rng, room) {
                    Some((slot, url)) => register(&url, &key, prove, false)
                        .await
                        .map(|back| (slot, back)),
                    None => None,
                };
                let Some((slot, (back, welcome))) = back else {
                    lock(&harness.live).remove(&id);
                    count(&counts.resets);
                    return;
                };
                let disturbed = lock(&harness.disturbed).contains(&id);
                if welcome["resumed"] == true {
                    count(&counts.resumes);
                } else if disturbed || harness.in_fault(dropped) {
                    // Its place was lost to the fault: the room heard it leave and come
                    // back, as it should.
                    count(&counts.resumes_lost_in_faults);
                    lock(&harness.disturbed).insert(id.clone());
                } else {
                    count(&counts.resumes_lost_calm);
                    println!(
                        "{} came back within the grace and was not resumed",
                        &id[..8]
                    );
                }
                *lock(&presence) = listed_in(&welcome);
                if let Some(live) = lock(&harness.live).get_mut(&id) {
                    live.slot = slot;
                }
                ws = back;
            }
            ended => {
                lock(&harness.live).remove(&id);
                match ended {
                    Ending::Leave => {
                        count(&counts.clean_leaves);
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    }
                    Ending::Reset => {
                        count(&counts.resets);
                        reset(ws);
                    }
                    _ => count(&counts.closed_by_server),
                }
                return;
            }
        }
    }
}

/// The relay numbering a client keeps across its resumes: the next one it sends to each
/// peer, and the last it saw from each.
#[derive(Default)]
struct Sequences {
    sent: HashMap<String, u64>,
    seen: HashMap<String, u64>,
}

enum Ending {
    Leave,
    Reset,
    /// Drops the socket and comes back with the same key (PROTOCOL §14).
    Roam,
    Closed,
}

/// Reads, checks and relays until the client decides to go or the server ends it.
async fn converse(
    harness: &Harness,
    rng: &mut Rng,
    id: &str,
    verified: bool,
    presence: &Mutex<HashSet<String>>,
    ws: &mut Ws,
    sequences: &mut Sequences,
) -> Ending {
    let counts = &harness.counts;
    let lifetime = Instant::now() + rng.millis(1000, 6000);
    let Sequences {
        sent: sent_seq,
        seen: seen_seq,
    } = sequences;
    // The relay whose fate (refused or not) the next pong settles.
    let mut pending: Option<(String, u64)> = None;
    let mut round = harness.settled_round.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ending::Closed,
                    Some(Ok(_)) => continue,
                };
                let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                let from = message["from"].as_str().or(message["peerId"].as_str()).unwrap_or("").to_owned();
                match message["type"].as_str().unwrap_or("") {
                    "peer-joined" => {
                        let fresh = lock(presence).insert(from);
                        if !fresh {
                            count(&counts.joined_twice);
                        }
                    }
                    "peer-left" => {
                        if !lock(presence).remove(&from) {
                            count(&counts.left_unknown);
                        } else if lock(&harness.live).contains_key(&from)
                            && !lock(&harness.disturbed).contains(&from)
                        {
                            // Maybe closed by the server a moment before it noticed itself:
                            // it counts only if it is still connected once the round settles.
                            lock(&harness.suspects).push(from);
                        }
                    }
                    "ice-candidate" => {
                        count(&counts.relays_received);
                        if !lock(presence).contains(&from) {
                            if !lock(&harness.disturbed).contains(&from) {
                                count(&counts.relays_from_unknown);
                                let n = message["candidate"]["n"].as_u64().unwrap_or(0);
                                let sent = lock(&harness.sent_at).get(&(from.clone(), id.to_owned(), n)).copied();
                                eprintln!(
                                    "relay {n} from {} to {}, who does not know it, sent {:?} ago",
                                    &from[..8],
                                    &id[..8],
                                    sent.map(|at| at.elapsed())
                                );
                            }
                            continue;
                        }
                        let n = message["candidate"]["n"].as_u64().unwrap_or(0);
                        let last = seen_seq.get(&from).copied().unwrap_or(0);
                        if n <= last {
                            count(&counts.relays_reordered);
                            if std::env::var("RDV_CHAOS_DEBUG").is_ok() {
                                let key = (from.clone(), id.to_owned(), n);
                                let disturbed = lock(&harness.disturbed);
                                eprintln!(
                                    "DEBUG reorder {n} after {last} from {} to {} refused={} sent {:?} ago, disturbed: sender {} receiver {}",
                                    &from[..8],
                                    &id[..8],
                                    lock(&harness.refused).contains(&key),
                                    lock(&harness.sent_at).get(&key).map(|at| at.elapsed()),
                                    disturbed.contains(&from),
                                    disturbed.contains(id)
                                );
                                let roamed = lock(&harness.roamed);
                                let ago = |peer: &str| roamed.get(peer).map(|drops| drops.iter().map(|at| at.elapsed()).collect::<Vec<_>>());
                                eprintln!("DEBUG   sockets dropped: sender {:?} receiver {:?} ago", ago(&from), ago(id));
                            }
                            continue;
                        }
                        if message["candidate"]["settled"] == true {
                            count(&counts.settled_relays);
                        }
                        for missing in last + 1..n {
                            let key = (from.clone(), id.to_owned(), missing);
                            if lock(&harness.refused).contains(&key) {
                                continue;
                            }
                            let sent = lock(&harness.sent_at).get(&key).copied();
                            match sent {
                                Some(at) if harness.lost_with_a_socket(id, at) => {
                                    count(&counts.relays_lost_with_a_socket);
                                }
                                Some(at) if !harness.in_fault(at) => {
                                    lock(&harness.calm_gaps).push((from.clone(), id.to_owned(), missing, at));
                                }
                                _ => count(&counts.relays_lost_in_faults),
                            }
                        }
                        seen_seq.insert(from, n);
                    }
                    "pong" => pending = None,
                    "error" => {
                        let code = message["code"].as_str().unwrap_or("");
                        if code == "replaced" && verified {
                            count(&counts.verified_replaced);
                            println!("{} (verified) was replaced", &id[..8]);
                        }
                        if let Some(to) = message["to"].as_str() {
                            // A relay accepted earlier, dropped on its way.
                            count(&counts.relays_refused);
                            *lock(&harness.dropped_later).entry((id.to_owned(), to.to_owned())).or_default() += 1;
                        } else if matches!(code, "unknown-peer" | "unavailable")
                            && let Some((to, n)) = pending.take()
                        {
                            count(&counts.relays_refused);
                            lock(&harness.refused).insert((id.to_owned(), to, n));
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let settling = harness.settling.load(Ordering::Relaxed);
                let now_round = harness.settled_round.load(Ordering::Relaxed);
                if now_round != round {
                    // A settled round: one relay to every member this client knows.
                    round = now_round;
                    let everyone: Vec<String> = lock(presence).iter().cloned().collect();
                    for to in everyone {
                        if send_relay(harness, ws, id, &to, sent_seq, true).await.is_none() {
                            return Ending::Closed;
                        }
                    }
                    continue;
                }
                if settling {
                    continue;
                }
                if Instant::now() >= lifetime {
                    return match rng.below(10) {
                        0..7 => Ending::Leave,
                        7 => Ending::Reset,
                        _ => Ending::Roam,
                    };
                }
                if pending.is_none() {
                    let everyone: Vec<String> = lock(presence).iter().cloned().collect();
                    if everyone.is_empty() {
                        continue;
                    }
                    let to = everyone[rng.below(everyone.len())].clone();
                    let Some(n) = send_relay(harness, ws, id, &to, sent_seq, false).await else {
                        return Ending::Closed;
                    };
                    if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
                        return Ending::Closed;
                    }
                    pending = Some((to, n));
                }
            }
        }
    }
}

async fn send_relay(
    harness: &Harness,
    ws: &mut Ws,
    id: &str,
    to: &str,
    sent_seq: &mut HashMap<String, u64>,
    settled: bool,
) -> Option<u64> {
    let n = sent_seq.entry(to.to_owned()).or_insert(0);
    *n += 1;
    let n = *n;
    lock(&harness.sent_at).insert((id.to_owned(), to.to_owned(), n), Instant::now());
    let relay =
        json!({"type": "ice-candidate", "to": to, "candidate": {"n": n, "settled": settled}});
    ws.send(Message::text(relay.to_string())).await.ok()?;
    count(&harness.counts.relays_sent);
    Some(n)
}

/// Opens silent upgrades against one instance for a while: each evicts the oldest
/// unregistered connection there (some of them mid-join).
async fn upgrade_flood(harness: &Harness, url: String, until: Instant) {
    let mut held = std::collections::VecDeque::new();
    while Instant::now() < until {
        if let Ok(Ok((ws, _))) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_tungstenite::connect_async(&url),
        )
        .await
        {
            count(&harness.counts.silent_upgrades);
            held.push_back(ws);
            if held.len() > 40 {
                held.pop_front();
            }
        }
    }
}

async fn inject(harness: &Arc<Harness>, fault: Fault, rng: &mut Rng) {
    let started = Instant::now();
    lock(&harness.faults).push((started, None));
    let slot = rng.below(3);
    println!(
        "fault: {fault:?} (instance {slot}, {})",
        lock(&harness.instances)[slot].server.addr
    );
    match fault {
        Fault::KillInstance => {
            harness.disturb_slot(slot);
            {
                let instances = lock(&harness.instances);
                nix::sys::signal::kill(
                    instances[slot].server.pid(),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let fresh = harness.start_instance();
            lock(&harness.instances)[slot] = fresh;
        }
        Fault::PauseInstance => {
            harness.disturb_slot(slot);
            let pid = {
                let mut instances = lock(&harness.instances);
                instances[slot].paused = true;
                instances[slot].server.pid()
            };
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
            tokio::time::sleep(lease() + Duration::from_secs(1)).await;
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
            lock(&harness.instances)[slot].paused = false;
        }
        Fault::RedisRestartFromSnapshot | Fault::RedisRestartEmpty => {
            {
                let redis = lock(&harness.redis);
                if fault == Fault::RedisRestartFromSnapshot {
                    redis.command(&["SAVE"]);
                }
            }
            // Some renewals and joins after the snapshot, then the crash.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut redis = lock(&harness.redis);
            redis.kill();
            if fault == Fault::RedisRestartFromSnapshot {
                redis.restart();
            } else {
                redis.restart_empty();
            }
        }
        Fault::RedisPrimaryKill => {
            let room = format!("rdv:{{chaos-{}}}:m", rng.below(ROOMS));
            let killed = lock(&harness.redis).kill_primary_of(&room);
            // The replica takes over after the node timeout; the old primary rejoins later.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let mut redis = lock(&harness.redis);
            redis.restart_node(killed);
            redis.wait_until_served();
        }
        Fault::UpgradeFlood => {
            let url = {
                let instances = lock(&harness.instances);
                instances[slot].server.url("chaos-0")
            };
            let until = Instant::now() + Duration::from_secs(3);
            let floods: Vec<_> = (0..4)
                .map(|_| {
                    let harness = harness.clone();
                    let url = url.clone();
                    tokio::spawn(async move { upgrade_flood(&harness, url, until).await })
                })
                .collect();
            for flood in floods {
                let _ = flood.await;
            }
        }
    }
    // The fault lasts until every instance is back in sync with Redis: until then a relay
    // published for an instance that has not resubscribed is lost (docs/cluster-design.md).
    let addrs: Vec<std::net::SocketAddr> = lock(&harness.instances)
        .iter()
        .map(|instance| instance.server.addr)
        .collect();
    let back = Instant::now() + Duration::from_secs(20);
    for addr in addrs {
        while Instant::now() < back {
            let (_, metrics) = common::http_get(addr, "/metrics", &[]).await;
            if metrics
                .lines()
                .any(|line| line == "rdv_cluster_connected 1")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if let Some(last) = lock(&harness.faults).last_mut() {
        last.1 = Some(Instant::now());
    }
}

/// What the settled cluster looks like against what the clients hold; `None` when every
/// check passes, else the first difference.
async fn check_settled(harness: &Harness) -> Option<String> {
    let live: Vec<(String, Live)> = lock(&harness.live)
        .iter()
        .map(|(id, client)| (id.clone(), client.clone()))
        .collect();
    for room in 0..ROOMS {
        let expected: HashSet<String> = live
            .iter()
            .filter(|(_, client)| client.room == room)
            .map(|(id, _)| id.clone())
            .collect();
        let listed = lock(&harness.redis).command(&["HKEYS", &format!("rdv:{{chaos-{room}}}:m")]);
        let in_redis: HashSet<String> = listed
            .lines()
            .filter(|line| line.len() == 64)
            .map(str::to_owned)
            .collect();
        if in_redis != expected {
            let ghosts = in_redis.difference(&expected).count();
            let missing = expected.difference(&in_redis).count();
            return Some(format!(
                "room {room}: Redis has {ghosts} ghosts and misses {missing}"
            ));
        }
        for (id, client) in live.iter().filter(|(_, client)| client.room == room) {
            let mut others = expected.clone();
            others.remove(id);
            let seen = lock(&client.presence).clone();
            if seen != others {
                return Some(format!(
                    "room {room}: a client sees {} peers that are gone and misses {}",
                    seen.difference(&others).count(),
                    others.difference(&seen).count()
                ));
            }
        }
    }
    None
}

/// A probe's welcome on every instance lists exactly the live members of a room.
async fn check_welcomes(harness: &Harness) -> Option<String> {
    let room = 0;
    let urls: Vec<String> = lock(&harness.instances)
        .iter()
        .map(|instance| instance.server.url(&format!("chaos-{room}")))
        .collect();
    for url in urls {
        let expected: HashSet<String> = lock(&harness.live)
            .iter()
            .filter(|(_, client)| client.room == room)
            .map(|(id, _)| id.clone())
            .collect();
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            return Some("a probe could not connect".into());
        };
        let _ = next_message(&mut ws, Duration::from_secs(3)).await;
        let key = common::TestKey::new();
        ws.send(Message::text(rdv::protocol::register(
            &key.public_jwk,
            None,
            None,
        )))
        .await
        .ok()?;
        let welcome = next_message(&mut ws, Duration::from_secs(5)).await;
        let listed = welcome.as_ref().map(listed_in).unwrap_or_default();
        let _ = ws.close(None).await;
        if listed != expected {
            for ghost in listed.difference(&expected).take(3) {
                let record = lock(&harness.redis).command(&[
                    "HGET",
                    &format!("rdv:{{chaos-{room}}}:m"),
                    ghost,
                ]);
                eprintln!(
                    "a welcome from {url} lists {}, not live; Redis: {:?}",
                    &ghost[..8],
                    record.lines().nth(1)
                );
            }
            return Some(format!(
                "a welcome listed {} ghosts and missed {}",
                listed.difference(&expected).count(),
                expected.difference(&listed).count()
            ));
        }
    }
    None
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (apt install redis-server); the chaos run, about a minute"]
async fn chaos_run_keeps_every_invariant() {
    outside::require(outside::program(
        "redis-server",
        "--version",
        "apt install redis-server",
    ));
    let seconds = setting("RDV_CHAOS_SECONDS", 60);
    let clients = setting("RDV_CHAOS_CLIENTS", 150) as usize;
    let seed = setting("RDV_CHAOS_SEED", {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_nanos() as u64 | 1
    });
    println!("chaos: {seconds} s, {clients} clients, seed {seed} (RDV_CHAOS_SEED to replay)");
    let mut rng = Rng(seed);
    let redis = RedisServer::start();
    let started = Instant::now();
    let harness = Arc::new(Harness {
        redis_url: redis.url(),
        redis: Mutex::new(redis),
        instances: Mutex::new(Vec::new()),
        settling: AtomicBool::new(false),
        settled_round: AtomicU64::new(0),
        live: Mutex::default(),
        disturbed: Mutex::default(),
        suspects: Mutex::default(),
        refused: Mutex::default(),
        sent_at: Mutex::default(),
        dropped_later: Mutex::default(),
        calm_gaps: Mutex::default(),
        faults: Mutex::default(),
        roamed: Mutex::default(),
        counts: Counts::default(),
        // The clients stop at the deadline; the rounds past it only settle and check.
        deadline: started + Duration::from_secs(seconds.max(1)) + Duration::from_secs(600),
    });
    for _ in 0..3 {
        let instance = harness.start_instance();
        lock(&harness.instances).push(instance);
    }
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let harness = harness.clone();
            let rng = Rng(seed.wrapping_add(n as u64 * 0x9e37_79b9).max(1));
            tokio::spawn(client_slot(harness, rng))
        })
        .collect();

    let faults = chosen_faults();
    let mut order = faults.clone();
    let mut faults_injected: HashMap<Fault, u64> = HashMap::new();
    let mut rounds = 0u64;
    let mut failures = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) || rounds < faults.len() as u64 {
        if order.is_empty() {
            order = faults.clone();
        }
        let fault = order.swap_remove(rng.below(order.len()));
        harness.settling.store(false, Ordering::Relaxed);
        let chaos_until = Instant::now() + CHAOS;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        inject(&harness, fault, &mut rng).await;
        *faults_injected.entry(fault).or_default() += 1;
        tokio::time::sleep(chaos_until.saturating_duration_since(Instant::now())).await;
        // Settle: no joins or leaves; every check must come to hold.
        harness.settling.store(true, Ordering::Relaxed);
        tokio::time::sleep(lease() + Duration::from_secs(1)).await;
        let settle_deadline = Instant::now() + SETTLE_LIMIT;
        let settle_started = Instant::now();
        let last = loop {
            let mut problem = check_settled(&harness).await;
            if problem.is_none() {
                problem = check_welcomes(&harness).await;
            }
            if problem.is_none() || Instant::now() > settle_deadline {
                break problem;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let settled_in = settle_started.elapsed();
        // Announced gone, yet still connected now that all is calm: a false departure.
        let suspects = std::mem::take(&mut *lock(&harness.suspects));
        for suspect in suspects {
            if lock(&harness.live).contains_key(&suspect)
                && !lock(&harness.disturbed).contains(&suspect)
            {
                count(&harness.counts.false_departures);
                println!(
                    "{} was announced gone and is still connected",
                    &suspect[..8]
                );
            }
        }
        // Every member reaches every other, now that all is calm.
        let before = harness.counts.settled_relays.load(Ordering::Relaxed);
        let expected: u64 = {
            let live = lock(&harness.live);
            (0..ROOMS)
                .map(|room| {
                    let n = live.values().filter(|c| c.room == room).count() as u64;
                    n * n.saturating_sub(1)
                })
                .sum()
        };
        harness.settled_round.fetch_add(1, Ordering::Relaxed);
        let relay_deadline = Instant::now() + Duration::from_secs(10);
        while harness.counts.settled_relays.load(Ordering::Relaxed) < before + expected
            && Instant::now() < relay_deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delivered = harness.counts.settled_relays.load(Ordering::Relaxed) - before;
        rounds += 1;
        let live = lock(&harness.live).len();
        println!(
            "round {rounds} at {:>4} s: {fault:?}; {live} live; settled: {} (checked after \
             {} ms more); settled relays {delivered}/{expected}",
            started.elapsed().as_secs(),
            last.as_deref().unwrap_or("ok"),
            settled_in.as_millis(),
        );
        if let Some(problem) = last {
            failures.push(format!("round {rounds} ({fault:?}): {problem}"));
        }
        if delivered < expected {
            failures.push(format!(
                "round {rounds} ({fault:?}): {delivered} of {expected} settled relays arrived"
            ));
        }
    }
    harness.settling.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }

    let c = &harness.counts;
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    {
        let mut dropped_later = lock(&harness.dropped_later);
        for (from, to, n, at) in lock(&harness.calm_gaps).drain(..) {
            match dropped_later.get_mut(&(from.clone(), to.clone())) {
                Some(reported) if *reported > 0 => *reported -= 1,
                _ => {
                    count(&c.relays_lost_calm);
                    let roamed = lock(&harness.roamed);
                    let drops = |peer: &str| {
                        roamed.get(peer).map(|drops| {
                            drops
                                .iter()
                                .map(|dropped| dropped.duration_since(started))
                                .collect::<Vec<_>>()
                        })
                    };
                    println!(
                        "relay {n} from {} to {} lost, sent at {:?} of the run; sockets \
                         dropped to resume at: sender {:?}, receiver {:?}",
                        &from[..8],
                        &to[..8],
                        at.duration_since(started),
                        drops(&from),
                        drops(&to)
                    );
                }
            }
        }
    }
    println!(
        "chaos: {rounds} rounds in {} s",
        started.elapsed().as_secs()
    );
    println!("faults injected: {faults_injected:?}");
    println!(
        "joins {} ({} with a proof), clean leaves {}, resets {}, resets mid-join {}, closed by \
         the server {}, joins refused {}, silent upgrades {}",
        read(&c.joins),
        read(&c.proven_joins),
        read(&c.clean_leaves),
        read(&c.resets),
        read(&c.resets_mid_join),
        read(&c.closed_by_server),
        read(&c.join_refusals),
        read(&c.silent_upgrades),
    );
    println!(
        "relays sent {}, received {}, refused {}, lost in a fault's window {}, lost with a \
         socket dropped to resume {}",
        read(&c.relays_sent),
        read(&c.relays_received),
        read(&c.relays_refused),
        read(&c.relays_lost_in_faults),
        read(&c.relays_lost_with_a_socket),
    );
    println!(
        "sockets dropped to resume {}, resumed {}, not resumed in a fault {}",
        read(&c.roams),
        read(&c.resumes),
        read(&c.resumes_lost_in_faults),
    );
    let violations = [
        ("relays lost outside faults", read(&c.relays_lost_calm)),
        ("relays out of order", read(&c.relays_reordered)),
        ("relays from an unknown peer", read(&c.relays_from_unknown)),
        ("peer-joined twice", read(&c.joined_twice)),
        ("peer-left for an unknown peer", read(&c.left_unknown)),
        (
            "peer-left for a peer still there",
            read(&c.false_departures),
        ),
        ("verified peers replaced", read(&c.verified_replaced)),
        (
            "peers back within the grace and not resumed",
            read(&c.resumes_lost_calm),
        ),
        (
            "settled rounds with ghosts, missing or lost relays",
            failures.len() as u64,
        ),
    ];
    for (what, n) in violations {
        println!("{what}: {n}");
    }
    for failure in &failures {
        println!("  {failure}");
    }
    assert!(
        violations.iter().all(|(_, n)| *n == 0),
        "the chaos run broke an invariant (seed {seed})"
    );
    assert!(read(&c.joins) > 0 && read(&c.relays_received) > 0);
}
