//! One WebSocket connection: its read loop, its write loop, its timers and limits.
//!
//! Reader and writer run as two futures of one task; whichever ends, or a close request
//! from elsewhere (slow receiver, shutdown), ends the session. The session then leaves its
//! room, flushes what was queued, sends its close frame and lingers briefly so the client
//! reads the close code before the socket goes.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::OptionFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::deadlines::{Deadlines, Intervals};
use super::guard::Abuse;
use super::outgoing::SharedOutgoing;
use super::pending::Ticket;
use super::transport::SharedGuard;
use super::upgrade::Socket;
use crate::identity::{JwkError, PeerId, PrivateMembers, PublicJwk};
use crate::protocol::{
    self, CloseCode, ErrorCode, Inbound, ProtocolError, Register, Relay, RoomName,
};
use crate::server::ServerState;
use crate::server::admission::rate::Verdict;
use crate::server::config::ProofMode;
use crate::server::rooms::outbox::{Next, Outbox, OutboxReceiver, Queued};
use crate::server::rooms::{ConnectionId, DeliverError, JoinError, Member, Parking};
use crate::token::{Grant, TokenError};

/// How long the goodbye (queued messages, close frame, the client's reply) may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most queued messages written before one flush, so a busy queue still gets flushed.
const WRITE_BATCH: usize = 64;
/// Registers carrying a proof one connection may send (a genuine client retries after
/// `room-full` or `duplicate-peer`); past it the connection is closed (1008).
const MAX_PROOF_ATTEMPTS: u8 = 8;

/// What the route hands a session besides its socket.
pub struct Connection {
    /// The client's address (after trusted proxies), for the connection log.
    pub client: std::net::IpAddr,
    /// Counts the connection's frames as they arrive.
    pub guard: SharedGuard,
    /// Where its text frames wait for the socket (written by flushing the WebSocket).
    pub outgoing: SharedOutgoing,
    /// Its place under `--max-connections`, held until the socket is closed, goodbye and
    /// all: a connection being closed still holds a file descriptor, and the caps are what
    /// the open-file limit is sized by.
    pub slot: tokio::sync::OwnedSemaphorePermit,
    /// Its place under the per-client limits, held until the goodbye is over.
    pub client_slot: Option<crate::server::admission::access::ClientSlot>,
    /// What the upgrade's `Authorization: Bearer` token granted, already checked for this
    /// room (PROTOCOL §13); a register without a token of its own uses it.
    pub bearer: Option<Box<Grant>>,
}

/// Runs one connection until it ends, then logs one line about it.
///
/// Everything the session keeps is set up here, before its future is built, and the future
/// uses it in place: an `async fn` would hold each argument twice (as argument and as the
/// local it moves into), bytes every idle connection carries for its whole life.
pub fn run(
    socket: Socket,
    room: RoomName,
    state: Arc<ServerState>,
    connection: Connection,
) -> impl Future<Output = ()> + Send {
    let Connection {
        client,
        guard,
        outgoing,
        slot,
        client_slot,
        bearer,
    } = connection;
    let (mut sink, mut stream) = socket.split();
    let started = Instant::now();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let (outbox, mut queue) = Outbox::with_budget(
        state.config.outbound_queue as usize,
        state.config.outbound_queue_bytes,
        state.outbound.clone(),
    );
    let nonce = match state.config.proof {
        ProofMode::Off => None,
        ProofMode::Optional | ProofMode::Required => Some(new_nonce()),
    };
    if let Some(nonce) = &nonce {
        outbox.push(protocol::challenge(nonce).into());
    }
    let shared = state.clone();
    let mut session = Session {
        nonce,
        guard,
        waiting: Some(state.pending.admit_session(&outbox)),
        state,
        room,
        outbox,
        connection: ConnectionId::next(),
        peer: None,
        received: 0,
        read_at: std::time::Instant::now(),
        client_closed: false,
        proof_attempts: 0,
        join_task: None,
        bearer,
    };
    // Listed so a shutdown closes it through its switch, like any other close.
    let entered = shared
        .open_sessions
        .enter(session.connection, &session.outbox);
    async move {
        shared.metrics.connections.inc();
        shared.metrics.connections_opened.inc();
        // A close requested from elsewhere (slow receiver, replaced, evicted, shutdown)
        // wakes the writer, which returns.
        tokio::select! {
            () = session.read_loop(&mut stream) => {}
            () = write_loop(&mut sink, &outgoing, &mut queue, &shared, &sent) => {}
        }
        drop(entered);

        // A join cut short by the session's end is waited for (it is bounded by the
        // registry's own timeouts); if it added this connection, it leaves again.
        if let Some(task) = session.join_task.take()
            && let Ok((Ok(()), joined)) = task.await
        {
            session.peer = Some(joined);
        }
        // Dropped without a goodbye: the peer keeps its place for a while (PROTOCOL §14),
        // with what was queued and not written. Otherwise it leaves now.
        let parking = match &session.peer {
            Some(peer) if session.may_resume(&queue) => {
                Box::pin(session.park(peer, &mut queue)).await
            }
            _ => None,
        };
        if let (Some(peer), None) = (&session.peer, &parking) {
            shared
                .registry
                .leave(&session.room, peer, session.connection)
                .await;
        }
        drop(session.waiting.take());
        let backlog = if session.client_closed {
            // tungstenite has answered the client's close; nothing may follow it.
            None
        } else {
            Some(&mut queue)
        };
        // Boxed, like the join: it runs once, and would otherwise size every session's future.
        Box::pin(say_goodbye(sink, stream, &outgoing, backlog, &shared)).await;
        drop(slot);
        shared.metrics.connections.dec();
        shared
            .metrics
            .connection_seconds
            .observe(started.elapsed().as_secs_f64());
        let (close_code, close_reason) = match queue.switch().reason() {
            Some((code, reason)) => (code.0, reason),
            None if parking.is_some() => (0, "connection lost; held for a resume"),
            None => (0, "closed by the client"),
        };
        // One line per connection. Never payloads or keys; the room, chosen by clients, is a
        // keyed hash unless --log-room-names (and then escaped by Debug formatting).
        let room_label = shared.room_label(&session.room);
        tracing::info!(
            target: "rdv::connection",
            duration_ms = started.elapsed().as_millis() as u64,
            client = %client,
            room = %room_label,
            peer = %session.peer.as_ref().map_or("-", |peer| peer.short(12)),
            close_code,
            close_reason,
            messages_in = session.received,
            messages_out = sent.load(std::sync::atomic::Ordering::Relaxed),
            "connection closed"
        );
        drop(client_slot);
        if let (Some(peer), Some(parking)) = (&session.peer, parking) {
            Box::pin(end_grace(
                &shared,
                &session.room,
                peer,
                session.connection,
                parking,
            ))
            .await;
        }
    }
}

/// Waits out a dropped peer's grace — it resumes, its queue overflows, or the server stops —
/// and then takes it out of the room unless it resumed (`leave` is a no-op then: another
/// connection holds the ID).
async fn end_grace(
    state: &ServerState,
    room: &RoomName,
    peer: &PeerId,
    connection: ConnectionId,
    parking: Outbox,
) {
    tokio::select! {
        () = tokio::time::sleep(state.config.resume_grace) => {}
        () = parking.closed() => {}
        () = state.stopping.cancelled() => {}
    }
    if state.registry.leave(room, peer, connection).await {
        state.metrics.grace_expiries.inc();
    }
}

async fn say_goodbye(
    mut sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    outgoing: &SharedOutgoing,
    backlog: Option<&mut OutboxReceiver>,
    state: &ServerState,
) {
    let closed_for = backlog.as_ref().and_then(|queue| queue.switch().reason());
    let goodbye = async {
        match backlog.and_then(|queue| Some((queue.switch().reason()?, queue))) {
            Some(((code, reason), queue)) => {
                state.metrics.closed(code);
                if !crate::server::rooms::outbox::drops_backlog(reason) {
                    let mut frames = outgoing.lock();
                    while let Some(queued) = queue.try_recv() {
                        state.metrics.bytes_sent.inc_by(queued.text.len() as u64);
                        frames.push_text(queued.text.into());
                    }
                }
                let frame = CloseFrame {
                    code: code.0.into(),
                    reason: reason.into(),
                };
                sink.send(Message::Close(Some(frame))).await
            }
            // The client closed, or vanished: flush the automatic close reply, if any.
            None => sink.flush().await,
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
    let Ok(mut socket) = sink.reunite(stream) else {
        return;
    };
    // Whatever tungstenite wrote last is still in the outgoing queue: as a server it writes
    // its reply to the client's close frame and then reports the connection closed without
    // flushing. Write it, then end our side (FIN, after TLS's close_notify): the server closes
    // the TCP connection first (RFC 6455 §7.1.1), so a client waiting for that is not kept
    // waiting for the grace to end.
    let transport = socket.get_mut();
    let _ = tokio::time::timeout(CLOSE_GRACE, tokio::io::AsyncWriteExt::shutdown(transport)).await;
    // Until the client hangs up (or the grace ends), read and discard what it still sends, as
    // raw bytes: after a read error tungstenite reads no further, and closing a socket with
    // unread input sends a reset, which can destroy the close frame before the client reads
    // it (a 1009 arrives as "connection reset").
    let stream = transport.stream_mut();
    // An idle upgrade evicted to make room has sent nothing and will most likely answer
    // nothing: lingering for it would keep its place (and descriptor) taken for the whole
    // grace, so a flood of idle upgrades could lock out new clients. Only what it has
    // already sent is read, so the socket closes with FIN, not a reset.
    let linger = match closed_for {
        Some((_, super::pending::EVICTED)) => Duration::ZERO,
        _ => CLOSE_GRACE,
    };
    let _ = tokio::time::timeout(linger, async {
        use tokio::io::AsyncReadExt as _;
        // On the heap, and only now: an array here would be part of every session's future,
        // 4 KiB held by each idle connection for its whole life. Read into spare capacity,
        // so it is never zeroed.
        let mut discard = Vec::with_capacity(4096);
        while let Ok(1..) = stream.read_buf(&mut discard).await {
            discard.clear();
        }
    })
    .await;
}

/// Writes queued messages and pings until the connection closes. A plain function returning
/// its future, like `read_loop`: an `async fn` would store each argument twice.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn write_loop<'a>(
    sink: &'a mut SplitSink<Socket, Message>,
    outgoing: &'a SharedOutgoing,
    queue: &'a mut OutboxReceiver,
    state: &'a ServerState,
    sent: &'a std::sync::atomic::AtomicU64,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        loop {
            // Taken apart before any await, so no message is held across one.
            let batch = match queue.recv().await {
                Next::Close => return,
                Next::Ping => None,
                Next::Message(first) => Some(queue_batch(first, queue, outgoing)),
            };
            let Some(batch) = batch else {
                if sink.feed(Message::Ping(Default::default())).await.is_err()
                    || !flush_unless_closing(sink, queue).await
                {
                    return;
                }
                continue;
            };
            sent.fetch_add(batch.messages, std::sync::atomic::Ordering::Relaxed);
            state.metrics.bytes_sent.inc_by(batch.bytes as u64);
            if !flush_unless_closing(sink, queue).await {
                return;
            }
            // Counted against the budgets until the socket has taken them: a receiver that
            // does not read holds its batch here, not only its queue.
            queue.written(batch.bytes);
            if let Some(read) = batch.oldest_read {
                state
                    .metrics
                    .relay_seconds
                    .observe(read.elapsed().as_secs_f64());
            }
        }
    }
}

/// What one batch put in the outgoing queue.
struct Batch {
    messages: u64,
    bytes: usize,
    /// The oldest relay of the batch, timed once it is flushed: one observation per batch
    /// keeps the histogram's lock off the per-message path under load.
    oldest_read: Option<std::time::Instant>,
}

/// Moves `first` and up to `WRITE_BATCH - 1` more queued messages into `outgoing`.
fn queue_batch(first: Queued, queue: &mut OutboxReceiver, outgoing: &SharedOutgoing) -> Batch {
    let mut batch = Batch {
        messages: 1,
        bytes: first.text.len(),
        oldest_read: first.read_at,
    };
    let mut frames = outgoing.lock();
    frames.push_text(first.text.into());
    for _ in 1..WRITE_BATCH {
        let Some(queued) = queue.try_recv() else {
            break;
        };
        batch.bytes += queued.text.len();
        batch.messages += 1;
        batch.oldest_read = match (batch.oldest_read, queued.read_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        frames.push_text(queued.text.into());
    }
    batch
}

/// Flushes; false if that failed or the connection started closing first (a client that
/// does not read would otherwise hold the writer here until the keepalive gave up).
async fn flush_unless_closing(
    sink: &mut SplitSink<Socket, Message>,
    queue: &mut OutboxReceiver,
) -> bool {
    std::future::poll_fn(|cx| {
        if queue.poll_closing(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        sink.poll_flush_unpin(cx).map(|flushed| flushed.is_ok())
    })
    .await
}

struct Session {
    /// The challenge sent to this connection, when proof of possession is on.
    nonce: Option<String>,
    state: Arc<ServerState>,
    room: RoomName,
    outbox: Outbox,
    connection: ConnectionId,
    /// Counts this connection's frames as they arrive (rate limit, message deadline).
    guard: SharedGuard,
    /// Set once `register` succeeds.
    peer: Option<PeerId>,
    /// This connection's place among the unregistered, given back on `register`.
    waiting: Option<Ticket>,
    /// Whole messages received, for the connection log.
    received: u64,
    /// When the message being handled was read, for the relay-time histogram.
    read_at: std::time::Instant,
    /// The client sent its close frame (or its stream ended): the session writes no more.
    client_closed: bool,
    /// Registers with a proof so far, bounded by `MAX_PROOF_ATTEMPTS`.
    proof_attempts: u8,
    /// A join still on its way (its own task), if the session ends before it returns.
    join_task: Option<tokio::task::JoinHandle<(Result<(), JoinError>, PeerId)>>,
    /// The upgrade's bearer grant, until the peer registers.
    bearer: Option<Box<Grant>>,
}

impl Session {
    /// Reads until the client leaves, a timer fires, or the connection is asked to close.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    fn read_loop<'a>(
        &'a mut self,
        stream: &'a mut SplitStream<Socket>,
    ) -> impl Future<Output = ()> + Send + 'a {
        async move {
            let mut deadlines = Deadlines::new(
                Instant::now(),
                self.state.config.register_timeout,
                self.state.config.ping_interval,
            );
            // Frames only stamp `last_seen`; the one timer is re-armed when it fires, not per
            // frame, which keeps the timer wheel off the relay path.
            let mut last_seen = Instant::now();
            let timer = sleep_until(deadlines.next(last_seen, self.intervals()));
            tokio::pin!(timer);
            loop {
                // Scoped so that nothing from the frame outlives it, not even the member: the
                // join below is awaited with only its boxed future held, which keeps this
                // loop's future small. Reading waits for the join: what the client sends next
                // must find it registered. Boxed: a join happens once, and its future would
                // otherwise be part of every connection's for its whole life.
                let join = {
                    // Eviction (too many unregistered connections) closes the session's switch.
                    let frame = tokio::select! {
                        frame = stream.next() => frame,
                        () = &mut timer => {
                            let intervals = self.intervals();
                            match deadlines.fire(Instant::now(), last_seen, intervals) {
                                Err(reason) => return self.close(CloseCode::POLICY, reason),
                                Ok(chores) => {
                                    if chores.ping {
                                        self.outbox.request_ping();
                                    }
                                    if chores.refresh {
                                        self.refresh_ice_servers();
                                    }
                                }
                            }
                            timer.as_mut().reset(deadlines.next(last_seen, intervals));
                            continue;
                        }
                    };
                    // Any frame, pongs included, is a sign of life.
                    last_seen = Instant::now();
                    let message = match frame {
                        None => {
                            self.client_closed = true;
                            return;
                        }
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            if let Some((code, reason)) = close_for(&error) {
                                self.close(code, reason);
                            }
                            return;
                        }
                    };
                    match message {
                        Message::Text(text) => {
                            self.received += 1;
                            self.read_at = last_seen.into_std();
                            self.state.metrics.bytes_received.inc_by(text.len() as u64);
                            if self.admit() {
                                self.handle_text(&text)
                                    .map(|member| Box::pin(self.join(member)))
                            } else {
                                None
                            }
                        }
                        Message::Binary(bytes) => {
                            self.received += 1;
                            self.state.metrics.bytes_received.inc_by(bytes.len() as u64);
                            if self.admit() {
                                self.send_error(ErrorCode::BinaryUnsupported.into());
                            }
                            None
                        }
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
                        Message::Close(_) => {
                            self.client_closed = true;
                            return;
                        }
                    }
                };
                // Taken whole, so no borrow of the session outlives the join.
                let joined = OptionFuture::from(join).await.is_some();
                if joined && self.peer.is_some() {
                    let intervals = self.intervals();
                    deadlines.registered(Instant::now(), intervals);
                    timer.as_mut().reset(deadlines.next(last_seen, intervals));
                }
                if self.outbox.switch().is_closing() {
                    return;
                }
            }
        }
    }

    /// Whether this registered connection ended without a goodbye from the client — a
    /// reset, a FIN without a close frame, a failed write, a keepalive timeout — so its peer
    /// may come back. A close frame, a refusal, a slow or abusive client, a replacement and
    /// a shutdown all leave at once.
    fn may_resume(&self, queue: &OutboxReceiver) -> bool {
        !self.state.config.resume_grace.is_zero()
            && !self.client_closed
            && !self.state.is_draining()
            && matches!(
                queue.switch().reason(),
                None | Some((_, super::deadlines::KEEPALIVE_TIMEOUT))
            )
    }

    /// Hands the peer's place to the registry for the grace, with a queue of its own that
    /// starts with what this connection had not written; the queue's sender if it worked.
    async fn park(&self, peer: &PeerId, queue: &mut OutboxReceiver) -> Option<Outbox> {
        let config = &self.state.config;
        let (outbox, receiver) = Outbox::with_budget(
            config.outbound_queue as usize,
            config.outbound_queue_bytes,
            self.state.outbound.clone(),
        );
        let parking = Parking {
            outbox: outbox.clone(),
            receiver,
        };
        self.state
            .registry
            .park(&self.room, peer, self.connection, parking, queue)
            .await
            .then_some(outbox)
    }

    fn intervals(&self) -> Intervals {
        Intervals {
            ping_every: self.state.config.ping_interval,
            // Fresh TURN credentials at 80 % of their life, counted from registration.
            refresh_every: self.state.ice.as_ref().and_then(|ice| ice.refresh_after()),
        }
    }

    /// Applies the rate limit to one incoming message (its verdict was reached when its last
    /// frame arrived); false if it must be dropped.
    fn admit(&mut self) -> bool {
        let verdict = self
            .guard
            .lock()
            .expect("the guard's lock is never poisoned")
            .next_verdict();
        match verdict {
            Verdict::Accept => true,
            Verdict::Drop => {
                self.send_error(ErrorCode::RateLimited.into());
                false
            }
            Verdict::Close => {
                self.send_error(ErrorCode::RateLimited.into());
                self.close(CloseCode::POLICY, "rate limit exceeded");
                false
            }
        }
    }

    /// Handles one text message; a valid `register` comes back as the member to join.
    fn handle_text(&mut self, text: &str) -> Option<Member> {
        match protocol::parse_inbound(text) {
            Err(error) => self.send_error(error),
            Ok(Inbound::Ping) => {
                self.outbox.push(Utf8Bytes::from_static(protocol::pong()));
            }
            Ok(Inbound::Register(register)) => match self.register(register) {
                Ok(member) => return Some(member),
                Err(error) => self.send_error(error),
            },
            Ok(Inbound::Relay(relay)) => {
                if let Err(error) = self.relay(relay) {
                    self.send_error(error);
                }
            }
        }
        None
    }

    /// Checks a `register` and builds the member it asks to be.
    fn register(&mut self, register: Register<'_>) -> Result<Member, ProtocolError> {
        if self.peer.is_some() {
            return Err(ErrorCode::AlreadyRegistered.into());
        }
        let raw = register.public_key;
        let (key, announced) = PublicJwk::from_text_announced(raw, PrivateMembers::Refuse)
            .map_err(|e| match e {
                JwkError::NotJson(_) => ProtocolError::from(ErrorCode::InvalidJson),
                JwkError::PrivateMembers(_) => {
                    ProtocolError::new(ErrorCode::PrivateKey, e.to_string())
                }
                _ => ProtocolError::new(ErrorCode::InvalidKey, e.to_string()),
            })?;
        if !key.kind().can_register() {
            return Err(ProtocolError::new(
                ErrorCode::InvalidKey,
                format!(
                    "{} is a key-agreement key; register with EC, Ed25519 or RSA",
                    key.kind()
                ),
            ));
        }
        let id = key.peer_id();
        if !self.state.is_allowed(&id) {
            return Err(ErrorCode::Forbidden.into());
        }
        let room_cap = self.check_token(register.token.as_deref(), &id)?;
        let verified = self.check_proof(&key, register.proof)?;
        let ice_servers = self.ice_servers_for(&id);
        Ok(Member {
            id,
            connection: self.connection,
            outbox: self.outbox.clone(),
            public_key: announced.into(),
            verified,
            ice_servers,
            room_cap,
        })
    }

    /// PROTOCOL §13. With `--auth-key`, the register's `token` — or, without one, the
    /// upgrade's bearer token — must grant this room, and this peer if it names one. Returns
    /// the room size the token sets for a room its holder opens.
    fn check_token(
        &mut self,
        token: Option<&str>,
        id: &PeerId,
    ) -> Result<Option<u32>, ProtocolError> {
        let Some(gate) = &self.state.tokens else {
            return Ok(None);
        };
        let (checked, via) = match (token, &self.bearer) {
            (Some(token), _) => {
                let Some(checked) = gate.check(&self.state.proof_budget, token, self.room.as_str())
                else {
                    self.close(CloseCode::OVERLOADED, "too many signatures to check");
                    return Err(ProtocolError::new(
                        ErrorCode::Unavailable,
                        "the server is checking too many tokens; retry later",
                    ));
                };
                let checked =
                    checked.and_then(|grant| grant.check_peer(id).map(|()| grant.max_peers));
                (checked, "register")
            }
            (None, Some(grant)) => (grant.check_peer(id).map(|()| grant.max_peers), "header"),
            (None, None) => (Err(TokenError::Required), "register"),
        };
        self.state
            .metrics
            .token_checked(via, checked.as_ref().err().map(TokenError::code));
        checked.map_err(|error| ProtocolError::new(error.code(), error.to_string()))
    }

    async fn join(&mut self, member: Member) {
        let id = member.id.clone();
        let registry = self.state.registry.clone();
        let room = self.room.clone();
        let joiner = id.clone();
        let mut join = Box::pin(async move { (registry.join(&room, member).await, joiner) });
        // A join that cannot finish at once (the cluster's, a Redis round trip) goes on in a
        // task of its own: if this session ends meanwhile (evicted, a failed write), its
        // outcome still arrives, and a member that was added is then removed (see `run`),
        // instead of being dropped half way and left behind in Redis.
        let outcome = match std::future::poll_fn(|cx| Poll::Ready(join.as_mut().poll(cx))).await {
            Poll::Ready((outcome, _)) => outcome,
            Poll::Pending => {
                let task = self.join_task.insert(tokio::spawn(join));
                let outcome = task.await;
                self.join_task = None;
                outcome.map_or(Err(JoinError::Unavailable), |(outcome, _)| outcome)
            }
        };
        let error = match outcome {
            Ok(()) => {
                // Debug formatting escapes whatever a client chose to put in its room's name.
                tracing::debug!(room = ?self.room.as_str(), peer = %id.short(12), "registered");
                self.peer = Some(id);
                self.waiting = None;
                self.bearer = None;
                // The challenge is answered once; nothing reads it again.
                self.nonce = None;
                return;
            }
            Err(JoinError::DuplicatePeer) => ErrorCode::DuplicatePeer.into(),
            Err(JoinError::RoomFull) => ErrorCode::RoomFull.into(),
            Err(error @ JoinError::WelcomeTooLarge) => {
                ProtocolError::new(ErrorCode::RoomFull, error.to_string())
            }
            Err(error @ JoinError::HeldForResume) => {
                ProtocolError::new(ErrorCode::DuplicatePeer, error.to_string())
            }
            Err(JoinError::Unavailable) => {
                self.send_error(ErrorCode::Unavailable.into());
                return self.close(CloseCode::OVERLOADED, "cluster unavailable");
            }
        };
        self.send_error(error);
    }

    /// PROTOCOL §9. `None` when proof is off (any `proof` member is ignored, as the original
    /// protocol would); otherwise whether the peer proved possession of its key.
    ///
    /// Everything cheap is checked first (shape, encoding, algorithm, fit, length), and only
    /// a real signature check is charged to the server-wide budget: proofs that cost nothing
    /// to refuse cannot drain what genuine ones need.
    fn check_proof(
        &mut self,
        key: &PublicJwk,
        proof: Option<&str>,
    ) -> Result<Option<bool>, ProtocolError> {
        let Some(nonce) = &self.nonce else {
            return Ok(None);
        };
        let Some(proof) = proof else {
            return match self.state.config.proof {
                ProofMode::Required => Err(ErrorCode::ProofRequired.into()),
                _ => Ok(Some(false)),
            };
        };
        let invalid = |message: String| ProtocolError::new(ErrorCode::ProofInvalid, message);
        self.proof_attempts = self.proof_attempts.saturating_add(1);
        if self.proof_attempts > MAX_PROOF_ATTEMPTS {
            self.close(CloseCode::POLICY, "too many proof attempts");
            return Err(invalid(format!(
                "more than {MAX_PROOF_ATTEMPTS} proofs on one connection"
            )));
        }
        #[derive(serde::Deserialize)]
        struct Proof {
            alg: String,
            signature: String,
        }
        let proof: Proof = serde_json::from_str(proof)
            .map_err(|_| invalid("proof must be {\"alg\": …, \"signature\": …}".into()))?;
        let signature = crate::identity::base64url_decode(&proof.signature)
            .map_err(|_| invalid("the proof signature is not base64url without padding".into()))?;
        let form = crate::identity::check_proof_form(key, &proof.alg, &signature)
            .map_err(|e| invalid(e.to_string()))?;
        if !self
            .state
            .proof_budget
            .try_take(form.cost(), std::time::Instant::now())
        {
            self.close(
                CloseCode::OVERLOADED,
                "too many proofs to check; retry later",
            );
            return Err(invalid(
                "the server is checking too many proofs; retry later".into(),
            ));
        }
        let checked = if form.is_slow() {
            off_the_worker(|| form.verify(nonce))
        } else {
            form.verify(nonce)
        };
        checked.map_err(|e| {
            // A well-formed proof that does not verify cost a signature check: one per
            // connection, so each guess costs the client a new connection and challenge.
            self.close(CloseCode::POLICY, "proof of possession failed");
            invalid(e.to_string())
        })?;
        Ok(Some(true))
    }

    fn relay(&mut self, relay: Relay<'_>) -> Result<(), ProtocolError> {
        let from = self
            .peer
            .as_ref()
            .ok_or_else(|| ProtocolError::from(ErrorCode::NotRegistered))?;
        if relay.to == from.as_str() {
            return Err(ProtocolError::new(
                ErrorCode::UnknownPeer,
                "a peer cannot send to itself",
            ));
        }
        let text = relay.forward_text(from);
        self.state
            .registry
            .deliver(
                &self.room,
                &relay.to,
                text.into(),
                self.read_at,
                &self.outbox,
            )
            .map_err(|error| match error {
                DeliverError::UnknownPeer => ProtocolError::new(
                    ErrorCode::UnknownPeer,
                    format!(
                        "no peer {} is registered in this room",
                        protocol::truncate_chars(&relay.to, 16)
                    ),
                ),
                DeliverError::Unavailable => ProtocolError::new(
                    ErrorCode::Unavailable,
                    "the peer is on another instance and the cluster is unavailable; \
                     the message was dropped",
                ),
            })?;
        self.state.metrics.relayed(relay.kind);
        Ok(())
    }

    /// The `iceServers` array for `peer` (PROTOCOL §10), minting TURN credentials.
    fn ice_servers_for(&self, peer: &PeerId) -> Option<String> {
        let ice = self.state.ice.as_ref()?;
        let (servers, minted) = ice.for_peer(peer, std::time::SystemTime::now());
        if minted {
            self.state.metrics.turn_credentials.inc();
        }
        Some(servers)
    }

    /// Sends fresh ICE servers before the credentials in use expire.
    fn refresh_ice_servers(&self) {
        if let Some(peer) = &self.peer
            && let Some(servers) = self.ice_servers_for(peer)
        {
            self.outbox.push(protocol::ice_servers(&servers).into());
        }
    }

    fn send_error(&self, error: ProtocolError) {
        self.state.metrics.error(error.code);
        self.outbox.push(protocol::error_frame(&error).into());
        if let Some(code) = error.code.closes() {
            self.close(code, error.code.as_str());
        }
    }

    fn close(&self, code: CloseCode, reason: &'static str) {
        self.outbox.switch().close(code, reason);
    }
}

/// Runs a slow computation (an RSA signature check, up to milliseconds) without stalling
/// the runtime worker: on the multi-threaded runtime the worker's other connections move to
/// another thread meanwhile. This connection waits for the result either way.
fn off_the_worker<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// 32 bytes from the OS random source, base64url: unguessable and never reused.
fn new_nonce() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    crate::identity::base64url(&bytes)
}

/// The close frame a read error earns (RFC 6455 §7.4.1), if the connection can still carry
/// one: 1009 for a message over the limit, 1002 for a broken frame, 1007 for text that is
/// not UTF-8, and the guard's verdicts for abuse.
fn close_for(error: &tungstenite::Error) -> Option<(CloseCode, &'static str)> {
    use tungstenite::error::{CapacityError, Error};
    match error {
        Error::Capacity(CapacityError::MessageTooLong { .. }) => {
            Some((CloseCode::TOO_BIG, "message too big"))
        }
        Error::Capacity(_) => Some((CloseCode::TOO_BIG, "frame too big")),
        // The connection ended without a close frame (a FIN): nobody is left to tell.
        Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some((CloseCode::PROTOCOL_ERROR, "protocol error")),
        Error::Utf8(_) => Some((CloseCode::INVALID_DATA, "text is not UTF-8")),
        Error::Io(io) => {
            let abuse = io.get_ref()?.downcast_ref::<Abuse>()?;
            let code = match abuse {
                Abuse::UnfinishedBudget => CloseCode::OVERLOADED,
                Abuse::RateExceeded | Abuse::MessageTooSlow => CloseCode::POLICY,
            };
            Some((code, abuse.reason()))
        }
        _ => None,
    }
}
