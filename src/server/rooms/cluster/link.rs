//! The instance's link to Redis: one command connection (scripts and pipelined publishes,
//! in order), the subscriptions (the instance's relay channels and the channels of the rooms
//! it has members in), the lease, the reaper, and reconnecting.
//!
//! On every (re)connect the instance renews its lease, subscribes, re-announces its members
//! (pipelined, applied room by room) and only then takes joins again: until then `/healthz`
//! says `degraded`. On a Redis Cluster a shard that fails over does not end the session:
//! only the rooms of its slots are resynced (see `failover`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::RedisError;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::backend::{self, Commands, Delivery, Incoming, Seeds, Subscriber};
use super::scripts::{self, Scripts};
use super::view::{Handoff, Kept, Views};
use super::wire::{self, Layout};
use crate::identity::PeerId;
use crate::protocol::{self, ErrorCode, RoomName};
use crate::server::operations::metrics::Metrics;
use crate::server::rooms::outbox::Outbox;

/// Longest any one Redis call may take before the link counts as broken.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
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
/// How often a failover watcher asks the cluster whether every shard answers again.
const FAILOVER_POLL: Duration = Duration::from_millis(250);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One room's ANNOUNCE in flight during a resync: the room and the script's reply.
type AnnounceReply<'a> = std::pin::Pin<
    Box<
        dyn Future<
                Output = (
                    &'a RoomName,
                    Result<(Vec<String>, u64, Vec<String>, u64), LinkError>,
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
    commands: Commands,
    /// Subscribing and unsubscribing, one at a time so they apply in the order decided.
    subscriptions: Arc<Mutex<Subscriber>>,
    pub layout: Layout,
}

pub struct Link {
    seeds: Seeds,
    pub instance: Arc<str>,
    /// How long an instance that stops renewing keeps its members (`--cluster-lease`).
    lease: Duration,
    views: Arc<Views>,
    metrics: Arc<Metrics>,
    connected: RwLock<Option<Connected>>,
    /// Relays to publish, each with the lease it was queued under (see `publish_queued`).
    publish_tx: mpsc::Sender<(u64, Outgoing)>,
    publish_rx: Arc<Mutex<mpsc::Receiver<(u64, Outgoing)>>>,
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
    /// When (ms after `born`) the last renewal was sent, answered or not.
    renewed_ms: std::sync::atomic::AtomicU64,
    /// Redis's epoch when last connected (see `wire::EPOCH_KEY`).
    epoch: std::sync::Mutex<Option<String>>,
    /// The highest generation Redis gave (see `wire::GENERATION_KEY`), 0 before the first.
    generation: std::sync::atomic::AtomicU64,
    /// Redis's generation went backwards: the next resync presumes, as after data loss.
    restored: std::sync::atomic::AtomicBool,
    /// When renewing last failed (the lease's Redis, or its shard, unreachable), if ever.
    /// Leases that ran out while nobody could renew say nothing about who is alive: this
    /// instance reaps nobody until a whole lease after its own renewals work again.
    renew_failed_at: std::sync::Mutex<Option<Instant>>,
    /// Becomes true once the first attempt to connect has ended, either way.
    first_attempt: tokio::sync::watch::Sender<bool>,
    /// The generation that gave this instance its current lease (see `scripts::REAP_ROOM`).
    incarnation: std::sync::atomic::AtomicU64,
    /// On a Redis Cluster: a node's connection closed, or a room's call failed; the
    /// failover watcher finds the rooms to resync. Rooms whose calls failed are in `suspects`.
    shard_trouble: Notify,
    /// The cluster nodes whose subscription connection closed since the watcher last looked.
    nodes_lost: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Until when reconciliation waits: a lease after a shard's trouble, while the rooms
    /// there are resynced by every instance (a record of this instance's may be one that
    /// another instance's re-announce is about to take over).
    repairs_held_until: std::sync::Mutex<Option<Instant>>,
    suspects: std::sync::Mutex<std::collections::HashSet<RoomName>>,
}

impl Link {
    pub fn new(
        seeds: Seeds,
        instance: Arc<str>,
        lease: Duration,
        views: Arc<Views>,
        handoffs: mpsc::UnboundedReceiver<Handoff>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        Self {
            seeds,
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
            renewed_ms: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            restored: std::sync::atomic::AtomicBool::new(false),
            renew_failed_at: std::sync::Mutex::new(None),
            incarnation: std::sync::atomic::AtomicU64::new(0),
            shard_trouble: Notify::new(),
            nodes_lost: std::sync::Mutex::default(),
            repairs_held_until: std::sync::Mutex::new(None),
            suspects: std::sync::Mutex::default(),
        }
    }

    /// The generation that gave this instance its lease.
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Relaxed)
    }

    /// A call for `room` failed on a Redis Cluster: its shard may be failing over. The
    /// room is resynced once its slot is served again.
    pub fn room_in_trouble(&self, room: &RoomName) {
        self.hold_repairs();
        self.suspects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(room.clone());
        self.shard_trouble.notify_one();
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
        // Listed before the first join, so a reaper finds the room if this instance dies
        // the moment its join lands.
        let mut commands = connected.commands();
        self.list_rooms(&mut commands, "SADD", &[room.as_str()])
            .await?;
        let channels = connected.layout.room_channels(room, &self.instance);
        self.call(sink.subscribe(&channels)).await?;
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
        if self
            .publish_tx
            .try_send((self.incarnation(), relay))
            .is_err()
        {
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
                // Renewing stopped with the session (see `renew_failed_at`).
                *self
                    .renew_failed_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
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
        let backend::Connection {
            layout,
            mut commands,
            mut subscriber,
            incoming,
        } = self
            .call(backend::connect(&self.seeds, CALL_TIMEOUT))
            .await?;
        self.views.set_layout(layout);
        if let Some(channel) = layout.instance_channel(&self.instance) {
            self.call(subscriber.subscribe(&[channel])).await?;
        }

        let mut tasks = JoinSet::new();
        // Events are taken from the start: views buffer them until their new snapshot.
        let consuming = self.clone();
        tasks.spawn(async move { consuming.consume(incoming).await });

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
        let _ = self.renew(&mut commands, true).await?;
        let lost = previous.as_ref().is_some_and(|previous| *previous != epoch);
        let restored = self.restored.swap(false, Ordering::Relaxed);
        let presume_until = Instant::now() + self.lease;
        let kept = if lost {
            Kept::Nothing { presume_until }
        } else if restored {
            Kept::Older { presume_until }
        } else {
            Kept::All
        };
        if lost {
            tracing::warn!("cluster: Redis lost its data; every instance re-announces its members");
        } else if restored {
            tracing::warn!(
                "cluster: Redis came back with older data; every instance re-announces its members"
            );
        }
        // Leases in older data are stale: an instance that renews in time is alive, so
        // nobody is reaped until every live one has had a lease to renew.
        let reap_after = kept.presume_until().unwrap_or_else(Instant::now);
        // The lease is renewed on its own schedule from here on, never behind the per-room
        // round trips of a resync, however many rooms there are.
        let renewing = self.clone();
        let mut renew_commands = commands.clone();
        tasks.spawn(async move { renewing.keep_renewing(&mut renew_commands, layout).await });
        for warning in super::redis_warnings(&mut commands).await {
            tracing::warn!("cluster: {warning}");
        }
        self.views.reset_for_resync();
        let rooms = self.views.rooms();
        self.subscribe_rooms(&mut subscriber, layout, &rooms)
            .await?;
        // Unless Redis lost everything, its sequence numbers are those the views saw (older
        // ones, if it reloaded a snapshot, which a renewal may not have told yet).
        self.announce(&mut commands, layout, &rooms, kept).await?;
        self.prune(&mut commands, layout).await?;
        self.metrics.cluster.resyncs.inc();

        let publisher = self.clone();
        let mut publishing = commands.clone();
        tasks.spawn(async move {
            let queue = publisher.publish_rx.clone();
            let mut queue = queue.lock().await;
            publisher
                .publish_queued(&mut queue, &mut publishing, layout)
                .await
        });
        let connected = Connected {
            commands: commands.clone(),
            subscriptions: Arc::new(Mutex::new(subscriber)),
            layout,
        };
        if layout == Layout::Sharded {
            let watching = self.clone();
            let connected = connected.clone();
            tasks.spawn(async move { watching.watch_failovers(connected).await });
        }
        let deferred = {
            let mut deferred = self.lock_deferred();
            self.set_connected(Some(connected.clone()));
            std::mem::take(&mut *deferred)
        };
        // Only now: what the views handed off during the resync (handovers, markers) goes
        // through the publish queue, which takes nothing before the link is connected.
        let handing = self.clone();
        tasks.spawn(async move { handing.hand_off().await });
        for (room, peer, connection) in deferred {
            tracing::debug!(
                peer = %peer.short(8),
                connection,
                "cluster: deferred leave"
            );
            self.leave(&mut commands, layout, &room, &peer, connection)
                .await?;
        }
        self.first_attempt.send_replace(true);
        tracing::info!(instance = %self.instance, rooms = rooms.len(), ?layout, "cluster: connected to Redis and in sync");

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
                    if Instant::now() < reap_after || self.renewed_too_recently() {
                        continue;
                    }
                    let reaped = self.reap(&mut commands, layout).await;
                    self.chore_done(layout, "reap", reaped)?;
                }
                _ = sweep.tick() => {
                    let swept = self.sweep(&connected).await;
                    self.chore_done(layout, "sweep", swept)?;
                }
                _ = reconcile.tick() => {
                    if layout == Layout::Single && self.views.take_out_of_step() {
                        return Err(LinkError::OutOfStep);
                    }
                    // After older data, a record of this instance's may be one its member
                    // already left for another instance, whose re-announce takes it over:
                    // nothing is repaired until every instance has had a lease to do so.
                    if Instant::now() < reap_after || self.repairs_held() {
                        continue;
                    }
                    let reconciled = self.reconcile(&mut commands, layout).await;
                    self.chore_done(layout, "reconcile", reconciled)?;
                }
            }
        }
    }

    /// What a periodic chore's failure means: on one Redis, the link is broken (the session
    /// ends and everything resyncs); on a Redis Cluster, a shard is failing over (its rooms'
    /// failures already went to the failover watcher, and the lease shard's are retried at
    /// the next tick), so the session goes on.
    fn chore_done(
        &self,
        layout: Layout,
        chore: &'static str,
        result: Result<(), LinkError>,
    ) -> Result<(), LinkError> {
        match result {
            Err(error) if layout == Layout::Sharded && !matches!(error, LinkError::Restored) => {
                tracing::warn!(%error, chore, "cluster: a periodic task failed; retrying at its next tick");
                Ok(())
            }
            other => other,
        }
    }

    /// Subscribes to the channels of `rooms`: many per command on one Redis (a resync of
    /// thousands of rooms costs a few round trips), one room per command on a Redis
    /// Cluster (a command's channels must share a slot).
    async fn subscribe_rooms(
        &self,
        subscriber: &mut Subscriber,
        layout: Layout,
        rooms: &[RoomName],
    ) -> Result<(), LinkError> {
        let per_command = match layout {
            Layout::Single => RESYNC_SUBSCRIBE_CHUNK,
            Layout::Sharded => 1,
        };
        for chunk in rooms.chunks(per_command) {
            let channels: Vec<String> = chunk
                .iter()
                .flat_map(|room| layout.room_channels(room, &self.instance))
                .collect();
            self.call(subscriber.subscribe(&channels)).await?;
            for room in chunk {
                self.views.mark_subscribed(room);
            }
        }
        Ok(())
    }

    /// Renews the lease every quarter of it until it is lost (or Redis is found to have come
    /// back with older data), in a task of its own. On a Redis Cluster a renewal that fails
    /// (the shard of the leases failing over) is retried at the next tick: the instance
    /// counts itself out of the cluster once its lease runs out (`connected`), and a lease
    /// found gone when the shard is back ends the session.
    async fn keep_renewing(&self, commands: &mut Commands, layout: Layout) -> LinkError {
        let mut renew = tokio::time::interval(self.lease / 4);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.reset();
        let mut failing_since = None;
        loop {
            renew.tick().await;
            match self.renew(commands, false).await {
                Ok(_) if self.restored.load(Ordering::Relaxed) => return LinkError::Restored,
                Ok(true) => failing_since = None,
                Ok(false) => return LinkError::LeaseLost,
                // A failover of the lease shard passes; a whole cluster gone for a lease is
                // reconnected from the seeds, as one Redis is.
                Err(error)
                    if layout == Layout::Sharded
                        && failing_since.get_or_insert_with(Instant::now).elapsed()
                            < self.lease =>
                {
                    tracing::warn!(%error, "cluster: could not renew the lease; retrying");
                }
                Err(error) => return error,
            }
        }
    }

    /// Extends the lease; false if Redis had none for this instance. An instance that
    /// never held one (no renewal has answered yet, whatever failed before) takes it: that
    /// is counted `acquired`, not `lost`. A generation lower than one seen before means
    /// Redis came back with older data: the next resync presumes (see `restored`). Only a
    /// new session (`acquiring`) acts on a new lease: a renewal that finds the lease lost
    /// ends its session without relaying another thing under it.
    async fn renew(&self, commands: &mut Commands, acquiring: bool) -> Result<bool, LinkError> {
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
            Ok((1 | 2, _)) => "ok",
            Ok(_) if first => "acquired",
            Ok(_) => "lost",
            Err(_) => "failed",
        };
        self.metrics.cluster.renewed(outcome);
        // A renewal that failed, one that came after this instance's own lease may have run
        // out (a stalled Redis, a shard failing over), one Redis found run out (it reloaded
        // an older lease), or one long after the last (renewals were held up), means others
        // could not renew either: reaping waits (see `renew_failed_at`).
        let last_ms = self.lease_until_ms.load(Ordering::Relaxed);
        let previous_ms = self.renewed_ms.swap(sent_ms, Ordering::Relaxed);
        let held_up = !first && sent_ms.saturating_sub(previous_ms) > lease_ms / 2;
        let late = !first && self.born.elapsed().as_millis() as u64 >= last_ms;
        if result.is_err() || late || held_up || matches!(result, Ok((2, _))) {
            *self
                .renew_failed_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
        let (known, generation) = result?;
        let kept = known != 0;
        if !kept {
            // A new lease: what this instance announces from now on belongs to it.
            self.incarnation.store(generation, Ordering::Relaxed);
        }
        if kept || acquiring {
            self.lease_until_ms
                .store(sent_ms + lease_ms, Ordering::Relaxed);
        }
        let seen = self.generation.swap(generation, Ordering::Relaxed);
        if generation <= seen {
            self.restored.store(true, Ordering::Relaxed);
        }
        Ok(kept)
    }

    fn lost_nodes(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.nodes_lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds reconciliation for a lease from now (see `repairs_held_until`).
    fn hold_repairs(&self) {
        *self
            .repairs_held_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + self.lease);
    }

    fn repairs_held(&self) -> bool {
        !self.lost_nodes().is_empty()
            || self
                .repairs_held_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some_and(|until| Instant::now() < until)
    }

    /// Whether renewing failed less than a lease ago (see `renew_failed_at`).
    fn renewed_too_recently(&self) -> bool {
        self.renew_failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|failed| failed.elapsed() < self.lease)
    }

    /// Makes Redis agree with what this instance holds, room by room, and brings each view
    /// to Redis's state.
    async fn announce(
        &self,
        commands: &mut Commands,
        layout: Layout,
        rooms: &[RoomName],
        kept: Kept,
    ) -> Result<(), LinkError> {
        let same_numbering = kept.same_numbering();
        let mut invocations = Vec::with_capacity(rooms.len());
        for room in rooms {
            let members = self.views.local_members(room);
            let mut invocation = Scripts::get(layout).announce.prepare_invoke();
            for key in wire::room_keys(room) {
                invocation.key(key);
            }
            invocation
                .arg(wire::room_channel(room))
                .arg(&*self.instance)
                .arg(if same_numbering { "1" } else { "" })
                .arg(self.incarnation())
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
            let (conflicts, seq, snapshot, floor) = reply?;
            tracing::debug!(room = %room, ?conflicts, floor, "cluster: announced");
            self.views
                .resync(room, seq, &snapshot, &conflicts, kept, floor);
        }
        Ok(())
    }

    /// Makes the rooms Redis lists for this instance (for reapers) the rooms it has views
    /// of: rooms listed that it no longer has anyone in lose whatever Redis still holds
    /// for it there, and are unlisted; rooms it has are listed again (after data loss).
    async fn prune(&self, commands: &mut Commands, layout: Layout) -> Result<(), LinkError> {
        let listed: Vec<String> = self
            .call(
                redis::cmd("SMEMBERS")
                    .arg(wire::rooms_key(&self.instance))
                    .query_async(commands),
            )
            .await?;
        let rooms = self.views.rooms();
        let have: std::collections::HashSet<&str> = rooms.iter().map(RoomName::as_str).collect();
        for name in listed.iter().filter(|name| !have.contains(name.as_str())) {
            let Ok(room) = RoomName::new(name) else {
                continue;
            };
            let reaped = self
                .reap_room(commands, layout, &room, &self.instance, None, "left")
                .await;
            if self.tolerated(layout, &room, reaped)?.is_some() {
                self.list_rooms(commands, "SREM", &[name.as_str()]).await?;
            }
        }
        if !rooms.is_empty() {
            let have: Vec<&str> = have.into_iter().collect();
            self.list_rooms(commands, "SADD", &have).await?;
        }
        Ok(())
    }

    /// Adds rooms to (`SADD`) or removes them from (`SREM`) this instance's room set.
    async fn list_rooms(
        &self,
        commands: &mut Commands,
        command: &str,
        rooms: &[&str],
    ) -> Result<(), LinkError> {
        let _: u64 = self
            .call(
                redis::cmd(command)
                    .arg(wire::rooms_key(&self.instance))
                    .arg(rooms)
                    .query_async(commands),
            )
            .await?;
        Ok(())
    }

    /// What a room's failed call means: on one Redis, the link is broken (the session
    /// ends); on a Redis Cluster, that room's shard may be failing over, and the room is
    /// resynced once it is served again (`None`), while the rest go on.
    fn tolerated<T>(
        &self,
        layout: Layout,
        room: &RoomName,
        result: Result<T, LinkError>,
    ) -> Result<Option<T>, LinkError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) if layout == Layout::Sharded => {
                tracing::debug!(%error, room = %room, "cluster: a room's call failed");
                self.room_in_trouble(room);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Removes `instance`'s members of `room` (see `scripts::REAP_ROOM`); how many.
    async fn reap_room(
        &self,
        commands: &mut Commands,
        layout: Layout,
        room: &RoomName,
        instance: &str,
        below: Option<u64>,
        reason: &str,
    ) -> Result<u64, LinkError> {
        let mut invocation = Scripts::get(layout).reap_room.prepare_invoke();
        for key in wire::room_keys(room) {
            invocation.key(key);
        }
        invocation
            .arg(wire::room_channel(room))
            .arg(instance)
            .arg(below.map(|below| below.to_string()).unwrap_or_default())
            .arg(reason);
        self.call(invocation.invoke_async(commands)).await
    }

    /// Reaps instances whose lease ended, room by room, and members the views place on
    /// instances that hold no lease (a join that landed after its instance was reaped).
    async fn reap(&self, commands: &mut Commands, layout: Layout) -> Result<(), LinkError> {
        let seen = self.generation.load(Ordering::Relaxed);
        let reply: redis::Value = self
            .call(
                scripts::REAP
                    .key(wire::INSTANCES_KEY)
                    .key(wire::GENERATION_KEY)
                    .key(wire::REAPING_KEY)
                    .key(wire::REAP_CLOCK_KEY)
                    .arg(seen)
                    .arg(&*self.instance)
                    .arg(self.lease.as_millis() as u64)
                    .invoke_async(commands),
            )
            .await?;
        let Ok((generation, live, pending)) =
            redis::from_redis_value::<(u64, Vec<String>, Vec<(String, u64, Vec<String>)>)>(
                reply.clone(),
            )
        else {
            match redis::from_redis_value::<(i64,)>(reply) {
                Ok((-2,)) => {
                    // Held up with everyone's renewals: nobody is reaped for a lease.
                    *self
                        .renew_failed_at
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                    return Ok(());
                }
                // Redis was away a while: reaping holds for a lease (see `scripts::REAP`).
                Ok((-3,)) => return Ok(()),
                _ => {}
            }
            // `{-1}`: Redis came back with older data; nobody is reaped on its leases.
            self.restored.store(true, Ordering::Relaxed);
            return Err(LinkError::Restored);
        };
        let mut removed = 0;
        for (instance, below, rooms) in pending {
            let mut done = true;
            for name in rooms {
                let Ok(room) = RoomName::new(&name) else {
                    continue;
                };
                let reaped = self
                    .reap_room(commands, layout, &room, &instance, Some(below), "lost")
                    .await;
                match self.tolerated(layout, &room, reaped)? {
                    Some(count) => removed += count,
                    None => done = false,
                }
            }
            if done {
                let _: u8 = self
                    .call(
                        scripts::REAPED
                            .key(wire::REAPING_KEY)
                            .arg(&instance)
                            .arg(below)
                            .invoke_async(commands),
                    )
                    .await?;
            }
        }
        let live: std::collections::HashSet<String> = live.into_iter().collect();
        for (room, instance) in self.views.members_without_lease(&live) {
            let reaped = self
                .reap_room(commands, layout, &room, &instance, Some(generation), "lost")
                .await;
            removed += self.tolerated(layout, &room, reaped)?.unwrap_or(0);
        }
        if removed > 0 {
            tracing::warn!(
                removed,
                "cluster: removed the members of an instance whose lease ended"
            );
        }
        Ok(())
    }

    /// Removes the members Redis lists for this instance that it does not hold: whatever
    /// slipped past a session's own leave (a join whose outcome came too late, a leave that
    /// failed) is repaired within one lease. Each removal is an ordinary leave (`peer-left`
    /// once), and the script removes a member only if that same connection still holds it,
    /// so a peer that came back on a new connection meanwhile is left alone.
    async fn reconcile(&self, commands: &mut Commands, layout: Layout) -> Result<(), LinkError> {
        let mut repaired = 0u64;
        for room in self.views.rooms() {
            let listed: Result<Vec<(String, String)>, LinkError> = self
                .call(
                    redis::cmd("HGETALL")
                        .arg(wire::members_key(&room))
                        .query_async(commands),
                )
                .await;
            let Some(listed) = self.tolerated(layout, &room, listed)? else {
                continue;
            };
            for (peer, record) in listed {
                let Some(record) = wire::Record::parse(&record) else {
                    continue;
                };
                let Ok(peer) = peer.parse::<PeerId>() else {
                    continue;
                };
                if record.instance != &*self.instance
                    || self.views.holds(&room, &peer, record.connection)
                {
                    continue;
                }
                tracing::debug!(
                    peer = %peer.short(8),
                    connection = record.connection,
                    "cluster: reconcile removes"
                );
                let removed = self
                    .leave(commands, layout, &room, &peer, record.connection)
                    .await;
                repaired += u64::from(self.tolerated(layout, &room, removed)?.unwrap_or(false));
            }
        }
        self.prune(commands, layout).await?;
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
        commands: &mut Commands,
        layout: Layout,
        room: &RoomName,
        peer: &PeerId,
        connection: u64,
    ) -> Result<bool, LinkError> {
        let mut invocation = Scripts::get(layout).leave.prepare_invoke();
        for key in wire::room_keys(room) {
            invocation.key(key);
        }
        let removed: u8 = self
            .call(
                invocation
                    .arg(wire::room_channel(room))
                    .arg(peer.as_str())
                    .arg(&*self.instance)
                    .arg(connection)
                    .invoke_async(commands),
            )
            .await?;
        Ok(removed == 1)
    }

    /// Leaves the channels of rooms with nobody here any more, and unlists them for
    /// reapers once Redis holds nothing of this instance's there. Under the subscriptions'
    /// lock, so a join to the same room waits until the room is gone here.
    async fn sweep(&self, connected: &Connected) -> Result<(), LinkError> {
        let layout = connected.layout;
        for room in self.views.idle_rooms() {
            let mut sink = connected.subscriptions.lock().await;
            if self.views.remove_if_idle(&room) {
                let channels = layout.room_channels(&room, &self.instance);
                let mut commands = connected.commands();
                let reaped = self
                    .reap_room(&mut commands, layout, &room, &self.instance, None, "left")
                    .await;
                if self.tolerated(layout, &room, reaped)?.is_some() {
                    self.list_rooms(&mut commands, "SREM", &[room.as_str()])
                        .await?;
                }
                let left = self.call(sink.unsubscribe(&channels)).await;
                self.tolerated(layout, &room, left)?;
            }
        }
        Ok(())
    }

    /// Removes this instance's members from the cluster at once (graceful shutdown) and
    /// stops the link.
    pub async fn shutdown(&self) {
        if let Some(mut connected) = self.connected() {
            self.set_connected(None);
            let layout = connected.layout;
            let mut removed = 0;
            let mut failed = None;
            for room in self.views.rooms() {
                match self
                    .reap_room(
                        &mut connected.commands,
                        layout,
                        &room,
                        &self.instance,
                        None,
                        "left",
                    )
                    .await
                {
                    Ok(count) => removed += count,
                    Err(error) => failed = Some(error),
                }
            }
            let unlisted: Result<(), LinkError> = self
                .call(
                    redis::pipe()
                        .zrem(wire::INSTANCES_KEY, &*self.instance)
                        .ignore()
                        .del(wire::rooms_key(&self.instance))
                        .ignore()
                        .query_async(&mut connected.commands),
                )
                .await;
            match failed.or(unlisted.err()) {
                None => tracing::info!(removed, "cluster: this instance's members left"),
                Some(error) => {
                    tracing::warn!(%error, "cluster: could not remove all of this instance's members; the rest go when its lease ends")
                }
            }
        }
        self.closing.cancel();
    }
}

impl Connected {
    pub fn commands(&self) -> Commands {
        self.commands.clone()
    }
}

impl Link {
    /// Publishes what the views hand to other instances, through the publish queue (so
    /// after the relays queued before it). Lost if the link is down: the other instance
    /// then stops waiting after `held::HANDOVER_WAIT`.
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

impl Link {
    /// Hands presence events and relays from the subscriptions to the views.
    async fn consume(&self, mut incoming: Incoming) -> LinkError {
        while let Some(delivery) = incoming.next().await {
            let (channel, payload) = match delivery {
                Delivery::Message { channel, payload } => (channel, payload),
                Delivery::NodeLost { address } => {
                    self.lost_nodes().insert(address);
                    self.shard_trouble.notify_one();
                    continue;
                }
                Delivery::Unsubscribed { channel } => {
                    // Not by a sweep (which drops the view first): the node stopped serving
                    // the room's slot, and the room must be subscribed where it went.
                    if let Some(room) =
                        wire::channel_room(&channel).and_then(|room| RoomName::new(&room).ok())
                        && self.views.has_room(&room)
                    {
                        self.room_in_trouble(&room);
                    }
                    continue;
                }
            };
            if self.views.take_out_of_step() {
                if !matches!(incoming, Incoming::Sharded(_)) {
                    return LinkError::OutOfStep;
                }
                // On a Redis Cluster a gap is a room's shard's doing: the rooms are
                // resynced one by one, without ending the session.
                for room in self.views.rooms() {
                    self.room_in_trouble(&room);
                }
            }
            self.metrics.cluster.received.inc();
            let Ok(payload) = std::str::from_utf8(&payload) else {
                continue;
            };
            if let Some(room) = wire::presence_channel_room(&channel) {
                self.views.apply(&room, payload);
                continue;
            }
            match wire::Payload::parse(payload) {
                Some(wire::Payload::Relays(relays)) => {
                    for (room, to, text) in wire::relays(relays) {
                        self.views.relay_in(room, to, text, false);
                    }
                }
                Some(wire::Payload::Forwarded(relays)) => {
                    for (room, to, text) in wire::relays(relays) {
                        self.views.relay_in(room, to, text, true);
                    }
                }
                Some(wire::Payload::Handover { room, peer, queued }) => {
                    self.views.handover_in(room, peer, queued);
                }
                Some(wire::Payload::Switched {
                    room,
                    peer,
                    instance,
                }) => self.views.switched_in(room, peer, instance),
                None => tracing::warn!("ignoring a malformed cluster message"),
            }
        }
        LinkError::Closed
    }

    /// On a Redis Cluster: after a node's connection closed or a room's call failed, waits
    /// until every shard with rooms here answers again (the cluster connection re-reads the
    /// topology and subscribes the rooms' channels on their new primaries meanwhile), then
    /// resyncs only the rooms whose slots changed primary, whose shard did not answer, or
    /// whose calls failed. If a node closed and came back before any of that could be seen,
    /// every room is checked: a room in sync hears nothing of it.
    async fn watch_failovers(self: Arc<Self>, connected: Connected) -> LinkError {
        let mut commands = connected.commands();
        let mut owners = backend::slot_owners(&mut commands)
            .await
            .unwrap_or_default();
        loop {
            self.shard_trouble.notified().await;
            self.hold_repairs();
            let mut silent_owners = std::collections::HashSet::new();
            let now_owners = loop {
                tokio::time::sleep(FAILOVER_POLL).await;
                let Ok(now_owners) = backend::slot_owners(&mut commands).await else {
                    continue;
                };
                // One probe per primary with rooms here, through the cluster connection: a
                // failed one also makes it re-read the topology.
                let mut probes: std::collections::HashMap<String, RoomName> = Default::default();
                for room in self.views.rooms() {
                    let owner = owner_of(&now_owners, &room);
                    probes.entry(owner.id).or_insert(room);
                }
                let mut silent = false;
                for (owner, room) in probes {
                    let answered: Result<u8, LinkError> = self
                        .call(
                            redis::cmd("EXISTS")
                                .arg(wire::members_key(&room))
                                .query_async(&mut commands),
                        )
                        .await;
                    if answered.is_err() {
                        silent_owners.insert(owner);
                        silent = true;
                    }
                }
                if !silent {
                    break now_owners;
                }
            };
            let suspects = std::mem::take(
                &mut *self
                    .suspects
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let lost = std::mem::take(&mut *self.lost_nodes());
            let rooms = self.views.rooms();
            let affected: Vec<RoomName> = rooms
                .iter()
                .filter(|room| {
                    let before = owner_of(&owners, room);
                    let after = owner_of(&now_owners, room);
                    before.id != after.id
                        || silent_owners.contains(&before.id)
                        || silent_owners.contains(&after.id)
                        || lost.contains(&before.address)
                        || lost.contains(&after.address)
                        || suspects.contains(*room)
                })
                .cloned()
                .collect();
            connected
                .subscriptions
                .lock()
                .await
                .set_owners(now_owners.clone());
            owners = now_owners;
            if !affected.is_empty() {
                tracing::warn!(
                    rooms = affected.len(),
                    "cluster: a Redis Cluster shard failed over or lost its connection; resyncing its rooms"
                );
            }
            for room in affected {
                self.resync_room(&connected, &room).await;
            }
            self.hold_repairs();
        }
    }

    /// Resyncs one room while the rest of the instance goes on: joins to it are refused
    /// until it is done (it is on a shard that was just failing), its channels are
    /// subscribed again and its members re-announced, presumed as after older data (a
    /// promoted replica may have missed the last writes), so nobody hears a flap.
    async fn resync_room(&self, connected: &Connected, room: &RoomName) {
        if !self.views.begin_room_resync(room) {
            return;
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        while self.views.joins_in_flight(room) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let layout = connected.layout;
        let channels = layout.room_channels(room, &self.instance);
        let subscribed = {
            let mut sink = connected.subscriptions.lock().await;
            self.call(sink.subscribe(&channels)).await
        };
        let mut commands = connected.commands();
        let resynced = match subscribed {
            Ok(()) => {
                let kept = Kept::Older {
                    presume_until: Instant::now() + self.lease,
                };
                self.announce(&mut commands, layout, std::slice::from_ref(room), kept)
                    .await
            }
            Err(error) => Err(error),
        };
        match resynced {
            Ok(()) => {
                self.metrics.cluster.room_resyncs.inc();
            }
            Err(error) => {
                tracing::debug!(%error, room = %room, "cluster: a room's resync failed; retrying");
                self.room_in_trouble(room);
            }
        }
    }
}

/// The primary serving `room`'s slot (empty if no range covers it).
fn owner_of(owners: &[backend::SlotOwner], room: &RoomName) -> backend::SlotOwner {
    let slot = backend::slot(&wire::members_key(room));
    owners
        .iter()
        .find(|owner| (owner.first..=owner.last).contains(&slot))
        .cloned()
        .unwrap_or(backend::SlotOwner {
            first: slot,
            last: slot,
            id: String::new(),
            address: String::new(),
        })
}

impl Link {
    /// Publishes queued relays in order, as many per round trip as are waiting (bounded in
    /// count and bytes): one pipeline per channel, all at once, each in order.
    async fn publish_queued(
        &self,
        queue: &mut mpsc::Receiver<(u64, Outgoing)>,
        commands: &mut Commands,
        layout: Layout,
    ) -> LinkError {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let Some(first) = queue.recv().await else {
                return LinkError::Closed;
            };
            let mut bytes = first.1.payload.len();
            batch.push(first);
            while batch.len() < PUBLISH_BATCH && bytes < PUBLISH_BATCH_BYTES {
                let Ok(next) = queue.try_recv() else { break };
                bytes += next.1.payload.len();
                batch.push(next);
            }
            let count = batch.len() as u64;
            // Counted as done however this ends, the task aborted with its session included:
            // leaves wait for this count.
            let _done = BatchDone {
                link: self,
                count,
                bytes,
            };
            // Queued before a stall this instance's lease may not have survived (or under a
            // lease since lost): its members may have been reaped and have joined again
            // elsewhere, and what they sent from there must not be overtaken by this.
            let lease = self.connected().map(|_| self.incarnation());
            let mut by_channel: indexmap::IndexMap<Arc<str>, Vec<Outgoing>> =
                indexmap::IndexMap::new();
            for (queued_under, relay) in batch.drain(..) {
                if lease != Some(queued_under) {
                    tracing::debug!("cluster: a relay queued under a lease since lapsed");
                    self.bounce(&relay.payload, std::iter::once(relay.sender));
                    continue;
                }
                // Order matters only within a channel (one receiving instance, in one room on
                // a Redis Cluster), and a channel's relays keep theirs in its pipeline.
                by_channel
                    .entry(relay.channel.clone())
                    .or_default()
                    .push(relay);
            }
            let sends = by_channel.into_iter().map(|(channel, relays)| {
                let mut commands = commands.clone();
                async move {
                    let (pipe, published, senders) = publish_pipeline(&channel, relays, layout);
                    let sent = tokio::time::timeout(
                        CALL_TIMEOUT,
                        pipe.query_async::<Vec<u64>>(&mut commands),
                    )
                    .await;
                    (sent, published, senders)
                }
            });
            for (sent, published, senders) in futures_util::future::join_all(sends).await {
                let mut senders = senders.into_iter();
                let listeners = match sent {
                    Ok(Ok(listeners)) => listeners,
                    failed if layout == Layout::Sharded => {
                        // That shard may be failing over: its senders are told, the rest go on.
                        tracing::debug!(ok = failed.is_ok(), "cluster: a publish failed");
                        if let Some(room) = published.first().and_then(|(p, _)| payload_room(p))
                            && let Ok(room) = RoomName::new(room)
                        {
                            self.room_in_trouble(&room);
                        }
                        vec![0; published.len()]
                    }
                    Ok(Err(error)) => return LinkError::Redis(error),
                    Err(_) => return LinkError::Timeout,
                };
                for (listeners, (payload, carried)) in listeners.into_iter().zip(&published) {
                    let told = senders.by_ref().take(*carried);
                    if listeners == 0 {
                        self.bounce(payload, told);
                    } else {
                        self.metrics.cluster.published.inc_by(*carried as u64);
                        told.for_each(drop);
                    }
                }
            }
        }
    }
}

/// One channel's relays as a pipeline: consecutive plain relays travel as one message, up
/// to a size (fewer commands for Redis, fewer messages for the receiver to parse); what
/// views hand over travels alone. Also each message's payload and how many relays it
/// carries, and every relay's sender in order: those nobody heard are told.
fn publish_pipeline(
    channel: &str,
    relays: Vec<Outgoing>,
    layout: Layout,
) -> (redis::Pipeline, Vec<(String, usize)>, Vec<Option<Outbox>>) {
    let mut pipe = redis::pipe();
    let mut published: Vec<(String, usize)> = Vec::new();
    let mut senders: Vec<Option<Outbox>> = Vec::with_capacity(relays.len());
    let mut drained = relays.into_iter().peekable();
    while let Some(relay) = drained.next() {
        let mut payload = relay.payload;
        let plain = relay.sender.is_some();
        senders.push(relay.sender);
        let mut carried = 1;
        while let Some(more) = drained.next_if(|next| {
            plain
                && next.sender.is_some()
                && payload.len() + next.payload.len() <= PUBLISH_MESSAGE_BYTES
        }) {
            payload.push_str(&more.payload);
            senders.push(more.sender);
            carried += 1;
        }
        pipe.cmd(layout.publish_command())
            .arg(channel)
            .arg(&payload);
        published.push((payload, carried));
    }
    (pipe, published, senders)
}

/// The room a published message is about (its first relay's).
fn payload_room(payload: &str) -> Option<&str> {
    match wire::Payload::parse(payload)? {
        wire::Payload::Relays(relays) | wire::Payload::Forwarded(relays) => {
            wire::relays(relays).next().map(|(room, _, _)| room)
        }
        wire::Payload::Handover { room, .. } | wire::Payload::Switched { room, .. } => Some(room),
    }
}

impl Link {
    /// Tells the senders of relays that no instance heard (the receiver's instance is
    /// between two Redis connections, or gone), or that waited past this instance's lease,
    /// that they were dropped.
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
