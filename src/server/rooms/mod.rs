//! The room registry: who is in which room, and delivery to them.
//!
//! [`RoomRegistry`] is the only shared state of the server and its one seam. Joining and
//! leaving are async and may fail, because in a cluster (`crate::server::rooms::cluster`) they go through
//! Redis; delivery is synchronous and never waits, because it is the hot path and a peer on
//! this instance is always reached in-process. [`LocalRegistry`] keeps rooms in this process.
//!
//! Presence is consistent: `welcome` and `peer-joined`/`peer-left` are queued while the room
//! is locked, so every member learns about every other exactly once and never hears of a
//! departure before the arrival.

pub(in crate::server) mod cluster;
pub(in crate::server) mod outbound_budget;
pub(in crate::server) mod outbox;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use indexmap::IndexMap;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::identity::PeerId;
use crate::protocol::{self, CloseCode, ErrorCode, PeerEntry, ProtocolError, RoomName};
use crate::server::operations::metrics::Metrics;
use crate::server::rooms::outbox::Outbox;

/// Identifies one WebSocket connection, so a stale `leave` cannot remove a newer
/// connection that registered the same peer ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

impl ConnectionId {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Unique within this process; a cluster pairs it with the instance's ID.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A registered peer as the registry holds it.
#[derive(Debug)]
pub struct Member {
    pub id: PeerId,
    pub connection: ConnectionId,
    pub outbox: Outbox,
    /// The `publicKey` JSON as the room sees it (the canonical key, PROTOCOL §3).
    pub public_key: Arc<str>,
    /// Proof of possession: `None` when the server does not ask for it.
    pub verified: Option<bool>,
    /// The `iceServers` array for this peer's `welcome`, when the server hands them out.
    pub ice_servers: Option<String>,
    /// The room's size if this join opens it (an access token's `max_peers`, PROTOCOL
    /// §13); the server's own limit still applies.
    pub room_cap: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("that peer ID is already connected to this room")]
    DuplicatePeer,
    /// The cluster's shared state (Redis) cannot be reached, so membership cannot be checked.
    #[error("the cluster is unavailable; retry later")]
    Unavailable,
    #[error("the room is full")]
    RoomFull,
    /// The room's `welcome` is larger than the joiner's outbound byte budget.
    #[error("the room is too large to welcome a peer within --outbound-queue-bytes")]
    WelcomeTooLarge,
    /// The ID is held for a resume by a peer that proved possession, and this register
    /// did not (PROTOCOL §14).
    #[error(
        "that peer ID is held for a resume by a peer that proved its key; register with a \
         proof to resume"
    )]
    HeldForResume,
}

/// The queue of a peer held for a resume: relays to it wait here until it comes back.
#[derive(Debug)]
pub struct Parking {
    pub outbox: Outbox,
    pub receiver: outbox::OutboxReceiver,
}

impl Parking {
    /// Moves what the dropped connection had queued and not written into this queue, in
    /// order. Called under the room's lock, so nothing sent meanwhile lands in between.
    fn carry_over(&self, dropped: &mut outbox::OutboxReceiver) {
        while let Some(queued) = dropped.try_recv() {
            self.outbox.push_again(queued);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    #[error("no such peer is registered in this room")]
    UnknownPeer,
    /// The receiver is on another instance and the cluster cannot be reached.
    #[error("the peer is on another instance and the cluster is unavailable")]
    Unavailable,
}

/// Whether the registry can take joins: what `/healthz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Local connections and relays go on, but joins are refused (the cluster is unreachable).
    Degraded,
}

/// Join and leave (async, may fail), deliver (sync, never waits).
pub trait RoomRegistry: Send + Sync + 'static {
    /// Adds `member` to `room`: queues `welcome` (every other member, oldest first) for it
    /// and `peer-joined` for every other member. A verified member whose ID is present on
    /// another connection replaces it (PROTOCOL §9): the old connection gets `replaced` and
    /// is closed, the room hears `peer-left` then `peer-joined`.
    fn join<'a>(
        &'a self,
        room: &'a RoomName,
        member: Member,
    ) -> BoxFuture<'a, Result<(), JoinError>>;

    /// Removes `peer` if `connection` still holds it, and queues `peer-left` for the rest.
    /// Returns whether it was removed.
    fn leave<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
    ) -> BoxFuture<'a, bool>;

    /// Queues a relay for `to`; `read_at` is when the sender's frame was read. A relay
    /// that leaves this process and is then dropped is reported to `sender` (a cluster).
    fn deliver(
        &self,
        room: &RoomName,
        to: &str,
        text: Utf8Bytes,
        read_at: std::time::Instant,
        sender: &Outbox,
    ) -> Result<(), DeliverError>;

    /// Keeps `peer`'s place after its connection dropped without a goodbye (PROTOCOL §14):
    /// the room sees nothing, what `dropped` had not written and every relay from now on
    /// queue in `parking`, and a `join` of the same ID resumes it. Returns false if
    /// `connection` no longer holds it (or the registry cannot hold peers): the caller then
    /// leaves as usual. The caller ends the grace with `leave`.
    fn park<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &'a mut outbox::OutboxReceiver,
    ) -> BoxFuture<'a, bool> {
        let _ = (room, peer, connection, parking, dropped);
        Box::pin(std::future::ready(false))
    }

    fn health(&self) -> Health {
        Health::Ok
    }

    /// Called once when the server starts draining: a cluster removes this instance's
    /// members at once rather than after its lease.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Gives back the room table's spare capacity after a burst (see `memory`).
    fn compact(&self) {}
}

#[derive(Debug)]
struct Slot {
    connection: ConnectionId,
    outbox: Outbox,
    /// This peer's `welcome.peers` entry, serialized once at join.
    entry: PeerEntry,
    /// Set while the peer is held for a resume: what reads its queue meanwhile.
    parked: Option<Box<outbox::OutboxReceiver>>,
}

/// Peer IDs and room names are hashed on every relay; foldhash is several times faster
/// than SipHash on them. Room names are chosen by clients, so the seed is random per
/// process, which is what keeps colliding names from being precomputed.
type FastHash = foldhash::fast::RandomState;

#[derive(Debug, Default)]
struct Room {
    /// Insertion order is join order, which `welcome` reports oldest first.
    members: IndexMap<PeerId, Slot, FastHash>,
    /// Set by the join that opened the room, from its token's `max_peers`; lasts until the
    /// room is empty.
    cap: Option<u32>,
}

impl Room {
    fn queue_for_all(&self, except: Option<&PeerId>, text: &Utf8Bytes) {
        for (id, slot) in &self.members {
            if Some(id) != except {
                slot.outbox.push(text.clone());
            }
        }
    }
}

/// Rooms of this process, sharded by room name so unrelated rooms rarely share a lock.
/// Locks are held only to look up and queue (`try_send`, which never waits).
pub struct LocalRegistry {
    rooms: DashMap<RoomName, Room, FastHash>,
    max_peers_per_room: usize,
    metrics: Arc<Metrics>,
}

impl LocalRegistry {
    pub fn new(max_peers_per_room: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: DashMap::with_hasher(FastHash::default()),
            max_peers_per_room,
            metrics,
        }
    }
}

impl LocalRegistry {
    /// Evicts `id`'s current connection for a verified reconnect, with the room locked.
    fn replace(&self, room: &mut Room, id: &PeerId) {
        let Some(old) = room.members.shift_remove(id) else {
            return;
        };
        let error = ProtocolError::from(ErrorCode::Replaced);
        self.metrics.error(error.code);
        old.outbox.push(protocol::error_frame(&error).into());
        old.outbox.switch().close(CloseCode::NORMAL, "replaced");
        self.metrics.peers.dec();
        room.queue_for_all(None, &protocol::peer_left(id).into());
    }
}

impl RoomRegistry for LocalRegistry {
    fn join<'a>(
        &'a self,
        room: &'a RoomName,
        member: Member,
    ) -> BoxFuture<'a, Result<(), JoinError>> {
        Box::pin(std::future::ready(self.join_now(room, member)))
    }

    fn leave<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
    ) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(self.leave_now(room, peer, connection)))
    }

    fn park<'a>(
        &'a self,
        room: &'a RoomName,
        peer: &'a PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &'a mut outbox::OutboxReceiver,
    ) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(
            self.park_now(room, peer, connection, parking, dropped),
        ))
    }

    fn deliver(
        &self,
        room: &RoomName,
        to: &str,
        text: Utf8Bytes,
        read_at: std::time::Instant,
        _sender: &Outbox,
    ) -> Result<(), DeliverError> {
        let room = self.rooms.get(room).ok_or(DeliverError::UnknownPeer)?;
        let slot = room.members.get(to).ok_or(DeliverError::UnknownPeer)?;
        // Queueing never waits, so doing it under the read lock costs less than cloning the
        // handle out. A full queue closes the receiver; the sender is not blamed for it.
        slot.outbox.push_relay(text, read_at);
        Ok(())
    }

    fn compact(&self) {
        self.rooms.shrink_to_fit();
    }
}

impl LocalRegistry {
    fn join_now(&self, room_name: &RoomName, member: Member) -> Result<(), JoinError> {
        let mut created = false;
        let mut room = self.rooms.entry(room_name.clone()).or_insert_with(|| {
            created = true;
            Room::default()
        });
        if room
            .members
            .get(&member.id)
            .is_some_and(|slot| slot.parked.is_some())
        {
            return self.resume(&mut room, member);
        }
        // Neither refusal can happen in a room just created, so no empty room is left behind.
        if room.members.contains_key(&member.id) {
            if member.verified != Some(true) {
                return Err(JoinError::DuplicatePeer);
            }
            self.replace(&mut room, &member.id);
        }
        if room.members.is_empty() {
            room.cap = member.room_cap;
        }
        let cap = room.cap.map_or(self.max_peers_per_room, |cap| {
            (cap as usize).min(self.max_peers_per_room)
        });
        if room.members.len() >= cap {
            return Err(JoinError::RoomFull);
        }
        let welcome = protocol::welcome(
            &member.id,
            room.members.values().map(|s| &s.entry),
            member.ice_servers.as_deref(),
            false,
        );
        if !member.outbox.fits(welcome.len()) {
            // Only possible with an absurdly small budget in a room just created: do not
            // leave it behind empty.
            if created {
                drop(room);
                self.rooms
                    .remove_if(room_name, |_, room| room.members.is_empty());
            }
            return Err(JoinError::WelcomeTooLarge);
        }
        member.outbox.push(welcome.into());
        let joined: Utf8Bytes =
            protocol::peer_joined(&member.id, &member.public_key, member.verified).into();
        room.queue_for_all(None, &joined);
        let entry = PeerEntry::new(&member.id, &member.public_key, member.verified);
        room.members.insert(
            member.id,
            Slot {
                connection: member.connection,
                outbox: member.outbox,
                entry,
                parked: None,
            },
        );
        if created {
            self.metrics.rooms.inc();
        }
        self.metrics.peers.inc();
        Ok(())
    }

    /// A register of an ID held for a resume takes its place back: a `welcome` marked as a
    /// resume (the room as it is now), then the relays queued meanwhile, in order; the rest
    /// of the room sees nothing. A verified holder is resumed only by a verified register.
    fn resume(&self, room: &mut Room, member: Member) -> Result<(), JoinError> {
        let slot = room.members.get(&member.id).expect("checked by the caller");
        if slot.entry.is_verified() && member.verified != Some(true) {
            return Err(JoinError::HeldForResume);
        }
        let welcome = protocol::welcome(
            &member.id,
            room.members
                .iter()
                .filter(|(id, _)| **id != member.id)
                .map(|(_, s)| &s.entry),
            member.ice_servers.as_deref(),
            true,
        );
        if !member.outbox.fits(welcome.len()) {
            return Err(JoinError::WelcomeTooLarge);
        }
        let slot = room.members.get_mut(&member.id).expect("checked above");
        let mut parked = slot.parked.take().expect("checked by the caller");
        member.outbox.push(welcome.into());
        // Under the room's lock: no relay to this peer can come between. A relay from a
        // peer that has left since is dropped: the welcome does not list it.
        while let Some(queued) = parked.try_recv() {
            if queued.survives_resume()
                && queued
                    .relay_sender()
                    .is_none_or(|from| room.members.contains_key(from))
            {
                member.outbox.push_again(queued);
            }
        }
        let slot = room.members.get_mut(&member.id).expect("checked above");
        slot.connection = member.connection;
        slot.outbox = member.outbox;
        self.metrics.resumes.inc();
        self.metrics.peers_in_grace.dec();
        Ok(())
    }

    fn park_now(
        &self,
        room_name: &RoomName,
        peer: &PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &mut outbox::OutboxReceiver,
    ) -> bool {
        let Some(mut room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        match room.members.get_mut(peer) {
            Some(slot) if slot.connection == connection && slot.parked.is_none() => {
                parking.carry_over(dropped);
                slot.outbox = parking.outbox;
                slot.parked = Some(Box::new(parking.receiver));
                self.metrics.peers_in_grace.inc();
                true
            }
            _ => false,
        }
    }

    fn leave_now(&self, room_name: &RoomName, peer: &PeerId, connection: ConnectionId) -> bool {
        let Some(mut room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        match room.members.get(peer) {
            Some(slot) if slot.connection == connection => {}
            _ => return false,
        }
        if let Some(slot) = room.members.shift_remove(peer)
            && slot.parked.is_some()
        {
            self.metrics.peers_in_grace.dec();
        }
        self.metrics.peers.dec();
        room.queue_for_all(None, &protocol::peer_left(peer).into());
        let now_empty = room.members.is_empty();
        drop(room);
        // Re-checked under the shard lock: a peer may have joined since.
        if now_empty
            && self
                .rooms
                .remove_if(room_name, |_, room| room.members.is_empty())
                .is_some()
        {
            self.metrics.rooms.dec();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::rooms::outbox::OutboxReceiver;

    fn peer(c: char) -> PeerId {
        c.to_string().repeat(64).parse().unwrap()
    }

    fn member(id: PeerId) -> (Member, OutboxReceiver) {
        let (outbox, receiver) = Outbox::new(16, 1 << 20);
        let member = Member {
            id,
            connection: ConnectionId::next(),
            outbox,
            public_key: r#"{"kty":"test"}"#.into(),
            ice_servers: None,
            verified: None,
            room_cap: None,
        };
        (member, receiver)
    }

    fn drain(receiver: &mut OutboxReceiver) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv())
            .map(|queued| queued.text.to_string())
            .collect()
    }

    #[test]
    fn presence_is_queued_in_order_and_rooms_are_removed_when_empty() {
        let metrics = Arc::new(Metrics::new());
        let registry = LocalRegistry::new(2, metrics.clone());
        let room = RoomName::new("r").unwrap();
        let (a, mut a_rx) = member(peer('a'));
        let a_conn = a.connection;
        registry.join_now(&room, a).unwrap();
        let (b, mut b_rx) = member(peer('b'));
        registry.join_now(&room, b).unwrap();
        let (c, _) = member(peer('c'));
        assert_eq!(registry.join_now(&room, c), Err(JoinError::RoomFull));
        let (a_again, _) = member(peer('a'));
        assert_eq!(
            registry.join_now(&room, a_again),
            Err(JoinError::DuplicatePeer)
        );

        let a_saw = drain(&mut a_rx);
        assert!(a_saw[0].starts_with(r#"{"type":"welcome""#));
        assert!(a_saw[1].starts_with(r#"{"type":"peer-joined","peerId":"bbbb"#));
        let b_saw = drain(&mut b_rx);
        assert!(b_saw[0].contains(r#""peers":[{"id":"aaaa"#));

        assert!(!registry.leave_now(&room, &peer('a'), ConnectionId::next()));
        assert!(registry.leave_now(&room, &peer('a'), a_conn));
        assert_eq!(drain(&mut b_rx).len(), 1);
        assert_eq!(
            registry.deliver(
                &room,
                peer('a').as_str(),
                "x".into(),
                std::time::Instant::now(),
                &Outbox::new(1, 64).0,
            ),
            Err(DeliverError::UnknownPeer)
        );
        assert_eq!(metrics.rooms.get(), 1);
    }

    #[test]
    fn the_joiner_that_opens_a_room_sets_its_size_until_it_empties() {
        let registry = LocalRegistry::new(3, Arc::new(Metrics::new()));
        let room = RoomName::new("r").unwrap();
        let (mut a, _a_rx) = member(peer('a'));
        a.room_cap = Some(2);
        let a_conn = a.connection;
        registry.join_now(&room, a).unwrap();
        // A later joiner's own cap changes nothing: the opener's stands.
        let (mut b, _b_rx) = member(peer('b'));
        b.room_cap = Some(10);
        registry.join_now(&room, b).unwrap();
        let (c, _) = member(peer('c'));
        assert_eq!(registry.join_now(&room, c), Err(JoinError::RoomFull));
        assert!(registry.leave_now(&room, &peer('a'), a_conn));
        let (c, _c_rx) = member(peer('c'));
        registry.join_now(&room, c).unwrap();
        // Emptied and opened again without a cap: the server's limit (3) applies.
        let fresh = RoomName::new("s").unwrap();
        let (mut d, _d_rx) = member(peer('d'));
        d.room_cap = Some(50);
        registry.join_now(&fresh, d).unwrap();
        let mut receivers = Vec::new();
        for id in ['e', '1'] {
            let (m, rx) = member(peer(id));
            registry.join_now(&fresh, m).unwrap();
            receivers.push(rx);
        }
        let (g, _) = member(peer('2'));
        assert_eq!(
            registry.join_now(&fresh, g),
            Err(JoinError::RoomFull),
            "capped by the server"
        );
    }
}
