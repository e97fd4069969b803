//! The instance's link to Redis: one command connection (scripts and pipelined publishes,
//! in order), one subscriber connection (the instance's relay channel and the channels of
//! the rooms it has members in), the lease, the reaper, and reconnecting.
//!
//! On every (re)connect the instance renews its lease, subscribes, re-announces its members
//! (pipelined, applied room by room) and only then takes joins again: until then `/healthz` says `degraded`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::scripts;
use super::view::{Handoff, Views};
use super::wire;
use crate::identity::PeerId;
use crate::protocol::{self, ErrorCode, RoomName};
use crate::server::operations::metrics::Metrics;
use crate::server::rooms::outbox::Outbox;

/// Longest any one Redis call may take before the link counts as broken.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Relays queued for other instances before a sender is told `unavailable`.
const PUBLISH_QUEUE: usize = 65_536;
/// Most bytes of relays waiting to be published; past it a relay to another instance gets
/// `unavailable`, like one past the queue's count.
const PUBLISH_QUEUE_BYTES: usize = 64 << 20;
/// Most relays in one pipelined round trip.
const PUBLISH_BATCH: usize = 512;
/// Most bytes in one pipelined round trip.
const PUBLISH_BATCH_BYTES: usize = 4 << 20;
/// Most bytes in one published message: far below Redis's default pub/sub output-buffer
/// limits (8 MiB soft, 32 MiB hard), past which Redis would drop the receiving instance.
const PUBLISH_MESSAGE_BYTES: usize = 1 << 20;
/// Rooms subscribed per SUBSCRIBE, and ANNOUNCE scripts in flight, during a resync.
const RESYNC_SUBSCRIBE_CHUNK: usize = 512;
const RESYNC_IN_FLIGHT: usize = 64;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One room's ANNOUNCE in flight during a resync: the room and the script's reply.
type AnnounceReply<'a> = std::pin::Pin<
    Box<
        dyn Future<
                Output = (
                    &'a RoomName,
                    Result<(Vec<String>, u64, Vec<String>), LinkError>,
                ),
            > + Send
            + 'a,
    >,
>;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("Redis did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("Redis had no lease for this instance (it restarted, or the lease ran out)")]
    LeaseLost,
    #[error("Redis came back with older data (a reloaded snapshot, or a lagging replica)")]
    Restored,
    #[error("presence events were missed; every room is resynced")]
    OutOfStep,
    #[error("the connection to Redis closed")]
    Closed,
}

/// A leave to run once connected: room, peer, connection.
pub type DeferredLeave = (RoomName, PeerId, u64);

/// A relay waiting to be published.
pub struct Outgoing {
    /// The receiver's instance channel.
    pub channel: Arc<str>,
    pub payload: String,
    /// Told `unavailable` if no instance listens on `channel` when it is published, rather
    /// than the relay vanishing silently. (The receiver is read back from the payload then.)
    /// `None` for what a view hands to another instance (a resumed member's handover, a
    /// relay sent on), which travels alone in its message and bounces to nobody.
    pub sender: Option<Outbox>,
}

/// What the instance needs while it is connected.
#[derive(Clone)]
pub struct Connected {
    commands: MultiplexedConnection,
    /// Subscribing and unsubscribing, one at a time so they apply in the order decided.
    subscriptions: Arc<Mutex<PubSubSink>>,
}

pub struct Link {
    client: Client,
    pub instance: Arc<str>,
    /// How long an instance that stops renewing keeps its members (`--cluster-lease`).
    lease: Duration,
    views: Arc<Views>,
    metrics: Arc<Metrics>,
    connected: RwLock<Option<Connected>>,
    publish_tx: mpsc::Sender<Outgoing>,
    publish_rx: Arc<Mutex<mpsc::Receiver<Outgoing>>>,
    /// What views hand to other instances (see `view::Handoff`), published in order.
    handoffs: Arc<Mutex<mpsc::UnboundedReceiver<Handoff>>>,
    /// Leaves that came while the link was down or resyncing, run once it is connected: a
    /// room already re-announced in this resync would otherwise keep the member. Also what
    /// makes "connected" and "deferred" one decision (see `connected_or_defer`).
    deferred_leaves: std::sync::Mutex<Vec<DeferredLeave>>,
    /// Bytes of relays in the publish queue.
    publish_bytes: std::sync::atomic::AtomicUsize,
    /// Relays queued so far, and (watched) relays published or dropped so far: a leave
    /// waits for the relays queued before it, so none arrives after its `peer-left`.
    enqueued: std::sync::atomic::AtomicU64,
    published: tokio::sync::watch::Sender<u64>,
    closing: CancellationToken,
    /// When the link was made: `lease_until_ms` counts from here.
    born: Instant,
    /// Until when (ms after `born`) the lease written at the last renewal runs.
    lease_until_ms: std::sync::atomic::AtomicU64,
    /// Redis's epoch when last connected (see `wire::EPOCH_KEY`).
    epoch: std::sync::Mutex<Option<String>>,
    /// The highest generation Redis gave (see `wire::GENERATION_KEY`), 0 before the first.
    generation: std::sync::atomic::AtomicU64,
    /// Redis's generation went backwards: the next resync presumes, as after data loss.
    restored: std::sync::atomic::AtomicBool,
    /// Becomes true once the first attempt to connect has ended, either way.
    first_attempt: tokio::sync::watch::Sender<bool>,
}

impl Link {
    pub fn new(
        client: Client,
        instance: Arc<str>,
        lease: Duration,
        views: Arc<Views>,
        handoffs: mpsc::UnboundedReceiver<Handoff>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        Self {
            client,
            instance,
            lease,
            views,
            metrics,
            connected: RwLock::new(None),
            publish_tx,
            publish_rx: Arc::new(Mutex::new(publish_rx)),
            handoffs: Arc::new(Mutex::new(handoffs)),
            deferred_leaves: std::sync::Mutex::default(),
            publish_bytes: std::sync::atomic::AtomicUsize::new(0),
            enqueued: std::sync::atomic::AtomicU64::new(0),
            published: tokio::sync::watch::Sender::new(0),
            closing: CancellationToken::new(),
            first_attempt: tokio::sync::watch::Sender::new(false),
            epoch: std::sync::Mutex::new(None),
            born: Instant::now(),
            lease_until_ms: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            restored: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Waits until the first attempt to reach Redis has succeeded or failed, so a server
    /// that can reach Redis takes joins from its first connection.
    pub async fn first_attempt(&self) {
        let mut attempted = self.first_attempt.subscribe();
        let _ = tokio::time::timeout(CALL_TIMEOUT * 2, attempted.wait_for(|done| *done)).await;
    }

    /// The connection, while the link is up and this instance's lease is still its own:
    /// past the lease written at the last renewal (a stall, a SIGSTOP, a clock jump), the
    /// other instances may have reaped its members, so it relays and joins nothing until the
    /// next renewal says otherwise.
    pub fn connected(&self) -> Option<Connected> {
        let lease_until = self.lease_until_ms.load(Ordering::Relaxed);
        if self.born.elapsed().as_millis() as u64 >= lease_until {
            return None;
        }
        self.connected
            .read()
            .expect("the link's lock is never poisoned")
            .clone()
    }

    /// The connection, if the link is up; otherwise the leave is kept for when it is.
    pub fn connected_or_defer(&self, leave: DeferredLeave) -> Option<Connected> {
        let mut deferred = self.lock_deferred();
        let connected = self.connected();
        if connected.is_none() {
            deferred.push(leave);
        }
        connected
    }

    fn lock_deferred(&self) -> std::sync::MutexGuard<'_, Vec<DeferredLeave>> {
        self.deferred_leaves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_connected(&self, connected: Option<Connected>) {
        self.metrics
            .cluster
            .connected
            .set(i64::from(connected.is_some()));
        *self
            .connected
            .write()
            .expect("the link's lock is never poisoned") = connected;
    }

    /// The lease written to Redis is shorter than `--cluster-lease`, and renewed four times
    /// as often, so a dead instance's members are announced gone within `--cluster-lease`
    /// (its lease ends within 2/3 of it, and some instance reaps within another 1/6).
    fn lease_written(&self) -> Duration {
        self.lease * 2 / 3
    }

    /// Times one Redis call, and bounds it.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, LinkError> {
        let started = Instant::now();
        let result = tokio::time::timeout(CALL_TIMEOUT, call).await;
        self.metrics
            .cluster
            .round_trip_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(result.map_err(|_| LinkError::Timeout)??)
    }

    /// Subscribes to `room`'s channel unless this instance already is.
    pub async fn ensure_subscribed(
        &self,
        connected: &Connected,
        room: &RoomName,
    ) -> Result<(), LinkError> {
        if self.views.is_subscribed(room) {
            return Ok(());
        }
        let mut sink = connected.subscriptions.lock().await;
        if self.views.is_subscribed(room) {
            return Ok(());
        }
        self.call(sink.subscribe(wire::room_channel(room))).await?;
        self.views.mark_subscribed(room);
        Ok(())
    }

    /// Queues a relay for the instance whose relay channel is `channel`; false if the queue
    /// is full or the link down.
    pub fn publish(&self, relay: Outgoing) -> bool {
        if self.connected().is_none() {
            return false;
        }
        let len = relay.payload.len();
        if self.publish_bytes.fetch_add(len, Ordering::Relaxed) + len > PUBLISH_QUEUE_BYTES {
            self.publish_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if self.publish_tx.try_send(relay).is_err() {
            self.publish_bytes.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        self.enqueued.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Waits (at most a call's timeout) until every relay queued so far has been published,
    /// so that what follows (a leave's `peer-left`) reaches Redis after them.
    pub async fn relays_published(&self) {
        let target = self.enqueued.load(Ordering::Relaxed);
        let mut published = self.published.subscribe();
        let _ = tokio::time::timeout(CALL_TIMEOUT, published.wait_for(|n| *n >= target)).await;
    }

    /// Connects, and reconnects with back-off, until [`Link::shutdown`].
    pub async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                result = self.session() => result,
                () = self.closing.cancelled() => Ok(()),
            };
            let synced = self
                .connected
                .read()
                .expect("the link's lock is never poisoned")
                .is_some();
            self.set_connected(None);
            self.first_attempt.send_replace(true);
            if self.closing.is_cancelled() {
                return;
            }
            if let Err(error) = result {
                tracing::warn!(%error, retry_in = ?backoff, "cluster: lost Redis; local peers are still served, joins are refused");
            }
            // A connection that got in sync, or lasted, resets the back-off (Redis was fine:
            // a restart or a resync for missed events is no reason to wait longer each
            // time); jitter keeps a restarted Redis from being hit by every instance at the
            // same instant.
            if synced || started.elapsed() > BACKOFF_MAX * 2 {
                backoff = BACKOFF_FIRST;
            }
            let jitter = backoff.mul_f64(f64::from(random_percent()) / 200.0);
            tokio::select! {
                () = tokio::time::sleep(backoff + jitter) => {}
                () = self.closing.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection to Redis, from connecting to losing it.
    async fn session(self: &Arc<Self>) -> Result<(), LinkError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let mut commands = self
            .call(
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        let pubsub = self.call(self.client.get_async_pubsub()).await?;
        let (mut sink, stream) = pubsub.split();
        self.call(sink.subscribe(wire::instance_channel(&self.instance)))
            .await?;

        let mut tasks = JoinSet::new();
        // Events are taken from the start: views buffer them until their new snapshot.
        let views = self.views.clone();
        let metrics = self.metrics.clone();
        tasks.spawn(async move { consume(stream, &views, &metrics).await });

        let epoch: String = self
            .call(
                scripts::EPOCH
                    .key(wire::EPOCH_KEY)
                    .arg(super::new_instance_id())
                    .invoke_async(&mut commands),
            )
            .await?;
        let previous = self
            .epoch
            .lock()
            .expect("the epoch's lock is never poisoned")
            .replace(epoch.clone());
        // A new instance has no lease yet: its first renewal takes one, which is no loss.
        let _ = self.renew(&mut commands).await?;
        let lost = previous.as_ref().is_some_and(|previous| *previous != epoch);
        let restored = self.restored.swap(false, Ordering::Relaxed);
        let presume = (lost || restored).then(|| Instant::now() + self.lease);
        if lost {
            tracing::warn!("cluster: Redis lost its data; every instance re-announces its members");
        } else if restored {
            tracing::warn!(
                "cluster: Redis came back with older data; every instance re-announces its members"
            );
        }
        // Leases in older data are stale: an instance that renews in time is alive, so
        // nobody is reaped until every live one has had a lease to renew.
        let reap_after = presume.unwrap_or_else(Instant::now);
        // The lease is renewed on its own schedule from here on, never behind the per-room
        // round trips of a resync, however many rooms there are.
        let renewing = self.clone();
        let mut renew_commands = commands.clone();
        tasks.spawn(async move { renewing.keep_renewing(&mut renew_commands).await });
        for warning in super::redis_warnings(&mut commands).await {
            tracing::warn!("cluster: {warning}");
        }
        self.views.reset_for_resync();
        let rooms = self.views.rooms();
        // Many channels per SUBSCRIBE (it waits for every confirmation): a resync of
        // thousands of rooms costs a few round trips, not one per room.
        for chunk in rooms.chunks(RESYNC_SUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(wire::room_channel).collect();
            self.call(sink.subscribe(&channels)).await?;
            for room in chunk {
                self.views.mark_subscribed(room);
            }
        }
        // Unless Redis lost everything, its sequence numbers are those the views saw (older
        // ones, if it reloaded a snapshot, which a renewal may not have told yet).
        self.announce(&mut commands, &rooms, presume, !lost).await?;
        self.metrics.cluster.resyncs.inc();

        let publisher = self.clone();
        let mut publishing = commands.clone();
        tasks.spawn(async move {
            let queue = publisher.publish_rx.clone();
            let mut queue = queue.lock().await;
            publisher.publish_queued(&mut queue, &mut publishing).await
        });
        let handing = self.clone();
        tasks.spawn(async move { handing.hand_off().await });
        let connected = Connected {
            commands: commands.clone(),
            subscriptions: Arc::new(Mutex::new(sink)),
        };
        let deferred = {
            let mut deferred = self.lock_deferred();
            self.set_connected(Some(connected.clone()));
            std::mem::take(&mut *deferred)
        };
        for (room, peer, connection) in deferred {
            self.leave(&mut commands, &room, &peer, connection).await?;
        }
        self.first_attempt.send_replace(true);
        tracing::info!(instance = %self.instance, rooms = rooms.len(), "cluster: connected to Redis and in sync");

        let mut reap = tokio::time::interval(self.lease / 6);
        let mut sweep = tokio::time::interval(self.lease);
        let mut reconcile = tokio::time::interval(self.lease);
        for timer in [&mut reap, &mut sweep, &mut reconcile] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.reset();
        }
        loop {
            tokio::select! {
                ended = tasks.join_next() => {
                    return Err(match ended {
                        Some(Ok(error)) => error,
                        _ => LinkError::Closed,
                    });
                }
                _ = reap.tick() => {
                    self.views.expire_presumed(Instant::now(), self.lease);
                    if Instant::now() < reap_after {
                        continue;
                    }
                    let seen = self.generation.load(Ordering::Relaxed);
                    let removed: i64 = self.call(
                        scripts::REAP.key(wire::INSTANCES_KEY).key(wire::GENERATION_KEY)
                            .arg("").arg("lost").arg(seen)
                            .invoke_async(&mut commands),
                    ).await?;
                    if removed < 0 {
                        self.restored.store(true, Ordering::Relaxed);
                        return Err(LinkError::Restored);
                    }
                    if removed > 0 {
                        tracing::warn!(removed, "cluster: removed the members of an instance whose lease ended");
                    }
                }
                _ = sweep.tick() => self.sweep(&connected).await?,
                _ = reconcile.tick() => {
                    if self.views.take_out_of_step() {
                        return Err(LinkError::OutOfStep);
                    }
                    self.reconcile(&mut commands).await?;
                }
            }
        }
    }

    /// Renews the lease every quarter of it until it is lost (or Redis is found to have come
    /// back with older data), in a task of its own.
    async fn keep_renewing(&self, commands: &mut MultiplexedConnection) -> LinkError {
        let mut renew = tokio::time::interval(self.lease / 4);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.reset();
        loop {
            renew.tick().await;
            match self.renew(commands).await {
                Ok(_) if self.restored.load(Ordering::Relaxed) => return LinkError::Restored,
                Ok(true) => {}
                Ok(false) => return LinkError::LeaseLost,
                Err(error) => return error,
            }
        }
    }

    /// Extends the lease; false if Redis had none for this instance. An instance that
    /// never held one (no renewal has answered yet, whatever failed before) takes it: that
    /// is counted `acquired`, not `lost`. A generation lower than one seen before means
    /// Redis came back with older data: the next resync presumes (see `restored`).
    async fn renew(&self, commands: &mut MultiplexedConnection) -> Result<bool, LinkError> {
        let first = self.lease_until_ms.load(Ordering::Relaxed) == 0;
        let lease_ms = self.lease_written().as_millis() as u64;
        // The lease runs from when the renewal was sent, not from when its answer came.
        let sent_ms = self.born.elapsed().as_millis() as u64;
        let result: Result<(u8, u64), LinkError> = self
            .call(
                scripts::RENEW
                    .key(wire::INSTANCES_KEY)
                    .key(wire::GENERATION_KEY)
                    .arg(&*self.instance)
                    .arg(lease_ms)
                    .invoke_async(commands),
            )
            .await;
        let outcome = match &result {
            Ok((1, _)) => "ok",
            Ok(_) if first => "acquired",
            Ok(_) => "lost",
            Err(_) => "failed",
        };
        self.metrics.cluster.renewed(outcome);
        let (known, generation) = result?;
        self.lease_until_ms
            .store(sent_ms + lease_ms, Ordering::Relaxed);
        let seen = self.generation.swap(generation, Ordering::Relaxed);
        if generation <= seen {
            self.restored.store(true, Ordering::Relaxed);
        }
        Ok(known == 1)
    }

    /// Makes Redis agree with what this instance holds, room by room, and brings each view
    /// to Redis's state.
    async fn announce(
        &self,
        commands: &mut MultiplexedConnection,
        rooms: &[RoomName],
        presume: Option<Instant>,
        same_numbering: bool,
    ) -> Result<(), LinkError> {
        let mut kept = Vec::with_capacity(rooms.len());
        let mut invocations = Vec::with_capacity(rooms.len());
        for room in rooms {
            let members = self.views.local_members(room);
            if !members.is_empty() {
                kept.push(room.as_str().to_owned());
            }
            let mut invocation = scripts::ANNOUNCE.prepare_invoke();
            invocation
                .key(wire::members_key(room))
                .key(wire::sequence_key(room))
                .key(wire::INSTANCES_KEY)
                .arg(room.as_str())
                .arg(&*self.instance)
                .arg(if same_numbering { "1" } else { "" })
                .arg(members.len());
            for (peer, connection, known, tail, parked) in &members {
                let (since, seq) = match known {
                    Some((since, seq)) => (since.to_string(), *seq),
                    None => (String::new(), 0),
                };
                invocation
                    .arg(peer)
                    .arg(*connection)
                    .arg(since)
                    .arg(&**tail)
                    .arg(seq)
                    .arg(if *parked { "1" } else { "" });
            }
            if same_numbering {
                for (peer, seq) in self.views.stale_elsewhere(room) {
                    invocation.arg(peer).arg(seq);
                }
            }
            invocations.push((room, invocation));
        }
        // Pipelined: the multiplexed connection sends the next scripts without waiting for
        // the replies, which come back (and are applied) in order, room by room.
        let mut in_flight = futures_util::stream::FuturesOrdered::new();
        let mut waiting = invocations.iter();
        loop {
            while in_flight.len() < RESYNC_IN_FLIGHT {
                let Some((room, invocation)) = waiting.next() else {
                    break;
                };
                let mut commands = commands.clone();
                let announced: AnnounceReply<'_> = Box::pin(async move {
                    let reply = self.call(invocation.invoke_async(&mut commands)).await;
                    (*room, reply)
                });
                in_flight.push_back(announced);
            }
            let Some((room, reply)) = in_flight.next().await else {
                break;
            };
            let (conflicts, seq, snapshot) = reply?;
            self.views.resync(room, seq, &snapshot, &conflicts, presume);
        }
        let mut invocation = scripts::PRUNE.prepare_invoke();
        invocation
            .key(wire::instance_key(&self.instance))
            .arg(&*self.instance);
        for room in &kept {
            invocation.arg(room);
        }
        let _: u8 = self.call(invocation.invoke_async(commands)).await?;
        Ok(())
    }

    /// Removes the members Redis lists for this instance that it does not hold: whatever
    /// slipped past a session's own leave (a join whose outcome came too late, a leave that
    /// failed) is repaired within one lease. Each removal is an ordinary leave (`peer-left`
    /// once), and the script removes a member only if that same connection still holds it,
    /// so a peer that came back on a new connection meanwhile is left alone.
    async fn reconcile(&self, commands: &mut MultiplexedConnection) -> Result<(), LinkError> {
        let listed: Vec<(String, String)> = self
            .call(
                redis::cmd("HGETALL")
                    .arg(wire::instance_key(&self.instance))
                    .query_async(commands),
            )
            .await?;
        let mut repaired = 0u64;
        for (field, connection) in listed {
            let Some((room, peer)) = field.rsplit_once('\t') else {
                continue;
            };
            let (Ok(room), Ok(peer), Ok(connection)) = (
                RoomName::new(room),
                peer.parse::<PeerId>(),
                connection.parse::<u64>(),
            ) else {
                continue;
            };
            if self.views.holds(&room, &peer, connection) {
                continue;
            }
            let removed = self.leave(commands, &room, &peer, connection).await?;
            repaired += u64::from(removed);
        }
        if repaired > 0 {
            self.metrics.cluster.repairs.inc_by(repaired);
            tracing::warn!(
                repaired,
                "cluster: removed members Redis listed for this instance that it did not hold"
            );
        }
        Ok(())
    }

    /// Removes `peer` from `room` if `connection` of this instance still holds it (then the
    /// room hears `peer-left` once); whether it did.
    pub async fn leave(
        &self,
        commands: &mut MultiplexedConnection,
        room: &RoomName,
        peer: &PeerId,
        connection: u64,
    ) -> Result<bool, LinkError> {
        let removed: u8 = self
            .call(
                scripts::LEAVE
                    .key(wire::members_key(room))
                    .arg(room.as_str())
                    .arg(peer.as_str())
                    .arg(&*self.instance)
                    .arg(connection)
                    .invoke_async(commands),
            )
            .await?;
        Ok(removed == 1)
    }

    /// Leaves the channels of rooms with nobody here any more.
    async fn sweep(&self, connected: &Connected) -> Result<(), LinkError> {
        for room in self.views.idle_rooms() {
            let mut sink = connected.subscriptions.lock().await;
            if self.views.remove_if_idle(&room) {
                self.call(sink.unsubscribe(wire::room_channel(&room)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Removes this instance's members from the cluster at once (graceful shutdown) and
    /// stops the link.
    pub async fn shutdown(&self) {
        if let Some(mut connected) = self.connected() {
            self.set_connected(None);
            let result: Result<u64, LinkError> = self
                .call(
                    scripts::REAP
                        .key(wire::INSTANCES_KEY)
                        .key(wire::GENERATION_KEY)
                        .arg(&*self.instance)
                        .arg("left")
                        .arg("")
                        .invoke_async(&mut connected.commands),
                )
                .await;
            match result {
                Ok(removed) => tracing::info!(removed, "cluster: this instance's members left"),
                Err(error) => {
                    tracing::warn!(%error, "cluster: could not remove this instance's members; they go when its lease ends")
                }
            }
        }
        self.closing.cancel();
    }
}

impl Connected {
    pub fn commands(&self) -> MultiplexedConnection {
        self.commands.clone()
    }
}

impl Link {
    /// Publishes what the views hand to other instances, through the publish queue (so
    /// after the relays queued before it). Lost if the link is down: the other instance
    /// then stops waiting after `view::HANDOVER_WAIT`.
    async fn hand_off(&self) -> LinkError {
        let handoffs = self.handoffs.clone();
        let mut handoffs = handoffs.lock().await;
        while let Some((channel, payload)) = handoffs.recv().await {
            if !self.publish(Outgoing {
                channel,
                payload,
                sender: None,
            }) {
                tracing::debug!("cluster: a handover could not be queued");
            }
        }
        LinkError::Closed
    }
}

/// Hands presence events and relays from the subscription to the views.
async fn consume(
    mut stream: redis::aio::PubSubStream,
    views: &Views,
    metrics: &Metrics,
) -> LinkError {
    while let Some(message) = stream.next().await {
        if views.take_out_of_step() {
            return LinkError::OutOfStep;
        }
        metrics.cluster.received.inc();
        let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
            continue;
        };
        if let Some(room) = message
            .get_channel_name()
            .strip_prefix(wire::ROOM_CHANNEL_PREFIX)
        {
            views.apply(room, payload);
        } else {
            match wire::Payload::parse(payload) {
                Some(wire::Payload::Relays(relays)) => {
                    for (room, to, text) in wire::relays(relays) {
                        views.relay_in(room, to, text, false);
                    }
                }
                Some(wire::Payload::Forwarded(relays)) => {
                    for (room, to, text) in wire::relays(relays) {
                        views.relay_in(room, to, text, true);
                    }
                }
                Some(wire::Payload::Handover { room, peer, queued }) => {
                    views.handover_in(room, peer, queued);
                }
                None => tracing::warn!("ignoring a malformed cluster message"),
            }
        }
    }
    LinkError::Closed
}

impl Link {
    /// Publishes queued relays in order, as many per round trip as are waiting (bounded in
    /// count and bytes).
    async fn publish_queued(
        &self,
        queue: &mut mpsc::Receiver<Outgoing>,
        commands: &mut MultiplexedConnection,
    ) -> LinkError {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let Some(first) = queue.recv().await else {
                return LinkError::Closed;
            };
            let mut bytes = first.payload.len();
            batch.push(first);
            while batch.len() < PUBLISH_BATCH && bytes < PUBLISH_BATCH_BYTES {
                let Ok(next) = queue.try_recv() else { break };
                bytes += next.payload.len();
                batch.push(next);
            }
            // Consecutive relays for one instance travel as one message, up to a size:
            // fewer commands for Redis, fewer messages for the receiver to parse, and the
            // order is kept.
            let count = batch.len() as u64;
            // Counted as done however this ends, the task aborted with its session included:
            // leaves wait for this count.
            let _done = BatchDone {
                link: self,
                count,
                bytes,
            };
            let mut pipe = redis::pipe();
            // Each PUBLISH's payload and how many relays it carries, and every relay's sender
            // in order: those nobody heard are told.
            let mut published: Vec<(String, usize)> = Vec::new();
            let mut senders: Vec<Option<Outbox>> = Vec::with_capacity(batch.len());
            let mut drained = batch.drain(..).peekable();
            while let Some(relay) = drained.next() {
                let mut payload = relay.payload;
                let plain = relay.sender.is_some();
                senders.push(relay.sender);
                let mut carried = 1;
                while let Some(more) = drained.next_if(|next| {
                    plain
                        && next.sender.is_some()
                        && next.channel == relay.channel
                        && payload.len() + next.payload.len() <= PUBLISH_MESSAGE_BYTES
                }) {
                    payload.push_str(&more.payload);
                    senders.push(more.sender);
                    carried += 1;
                }
                pipe.cmd("PUBLISH").arg(&*relay.channel).arg(&payload);
                published.push((payload, carried));
            }
            let sent =
                tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<Vec<u64>>(commands)).await;
            match sent {
                Ok(Ok(listeners)) => {
                    self.metrics.cluster.published.inc_by(count);
                    let mut senders = senders.into_iter();
                    for (listeners, (payload, carried)) in listeners.into_iter().zip(&published) {
                        let told = senders.by_ref().take(*carried);
                        if listeners == 0 {
                            self.bounce(payload, told);
                        } else {
                            told.for_each(drop);
                        }
                    }
                }
                Ok(Err(error)) => return LinkError::Redis(error),
                Err(_) => return LinkError::Timeout,
            }
        }
    }
}

impl Link {
    /// Tells the senders of relays that no instance heard (the receiver's instance is
    /// between two Redis connections, or gone) that they were dropped.
    fn bounce(&self, payload: &str, mut senders: impl Iterator<Item = Option<Outbox>>) {
        let Some(Some(first)) = senders.next() else {
            return;
        };
        let senders = std::iter::once(first).chain(senders.flatten());
        for (sender, (_, to, _)) in senders.zip(wire::relays(payload)) {
            self.metrics.cluster.unheard.inc();
            self.metrics.error(ErrorCode::Unavailable);
            sender.push(protocol::relay_dropped(to).into());
        }
    }
}

/// A batch taken from the publish queue: once it is sent or lost (the session ended, its
/// task aborted), its relays no longer wait, and no longer count against the queue's bytes.
struct BatchDone<'a> {
    link: &'a Link,
    count: u64,
    bytes: usize,
}

impl Drop for BatchDone<'_> {
    fn drop(&mut self) {
        self.link
            .publish_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
        self.link
            .published
            .send_modify(|published| *published += self.count);
    }
}

fn random_percent() -> u8 {
    let mut byte = [0u8; 1];
    // Jitter only; a failed read means none.
    let _ = getrandom::fill(&mut byte);
    byte[0] % 101
}
