//! This instance's view of the rooms it has members in: every member of each (local or
//! not), kept current from the room's presence events, and the outboxes of the local ones.
//! Synchronous and in-process: a relay looks up its receiver here and, when the receiver is
//! local, never touches Redis.
//!
//! Ordering: every presence event carries its room's sequence number. A view applies events
//! in order and ignores those its snapshot already covers; until it has a snapshot it buffers
//! them. A local member is told of an event only if it is newer than what it was welcomed
//! with, so each member hears of every other exactly once, arrival before departure.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use indexmap::IndexMap;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::held::{Held, Path, Relay, Source, Verdict};
use super::wire::{Event, Layout, LeftReason, Record};
use crate::identity::PeerId;
use crate::protocol::{self, CloseCode, ErrorCode, PeerEntry, ProtocolError, RoomName};
use crate::server::operations::metrics::Metrics;
use crate::server::rooms::outbox::{Outbox, OutboxReceiver, Queued};
use crate::server::rooms::{ConnectionId, DeliverError, Parking};

/// Events buffered for a room waiting for its snapshot; past it the view is rebuilt.
const MAX_BUFFERED: usize = 65_536;

type FastHash = foldhash::fast::RandomState;

/// Where a member's messages go.
#[derive(Debug)]
enum Place {
    /// On this instance. `seen` is the sequence number its welcome covered.
    Here {
        connection: ConnectionId,
        outbox: Outbox,
        seen: u64,
        /// Its record without the sequence number, to re-announce it after a reconnect.
        tail: Arc<str>,
        /// Held for a resume (PROTOCOL §14): what reads its queue while its client is away.
        parked: Option<Box<OutboxReceiver>>,
        /// Resumed here from another instance: relays wait for that instance's handover
        /// and the other instances' markers (see [`Held`]).
        held: Option<Box<Held>>,
    },
    /// Was here; its connection closed and its departure is not confirmed yet.
    Departed,
    /// On another instance: the channel of its relays. `handed_over` when it resumed there
    /// from here, so relays still on their way here are sent on.
    There {
        channel: Arc<str>,
        handed_over: bool,
    },
}

#[derive(Debug)]
struct Slot {
    /// When it first joined; members are kept in this order.
    since: u64,
    /// The sequence number of its latest record this view saw (its `J` or `M` event): what
    /// tells a stale record from one a reloaded Redis brought back (see `stale_elsewhere`).
    seq: u64,
    /// The connection its record names, and whether the record names this instance.
    connection: u64,
    local: bool,
    entry: PeerEntry,
    joined: Utf8Bytes,
    place: Place,
    /// After Redis lost its data: a member of another instance kept until that instance
    /// re-announces it, or until this deadline (a lease) if it never does.
    presumed_until: Option<Instant>,
}

impl Slot {
    /// What a resync keeps of a member it knew: the slot moves to the new members, and the
    /// one left in the old ones (which still say who was here before) holds no place.
    fn carry_over(&mut self) -> Slot {
        Slot {
            place: std::mem::replace(&mut self.place, Place::Departed),
            entry: self.entry.clone(),
            joined: self.joined.clone(),
            ..*self
        }
    }
}

/// A local join in flight or accepted by Redis, waiting for its own `J` event (which is when
/// it gets its `welcome`, so the welcome is exactly the room before it).
#[derive(Debug)]
struct Joining {
    peer: PeerId,
    connection: ConnectionId,
    outbox: Outbox,
    ice_servers: Option<String>,
    tail: Arc<str>,
    /// Redis took the join: after a reconnect it is re-announced like a member.
    accepted: bool,
}

#[derive(Debug, Default)]
struct View {
    /// The sequence number applied so far; `None` until a snapshot.
    seq: Option<u64>,
    /// Presence events and relays that came while the view waited for its snapshot, in
    /// the order they came: a relay must not overtake the `peer-joined` of its sender.
    buffered: Vec<Buffered>,
    /// Oldest first.
    members: IndexMap<PeerId, Slot, FastHash>,
    joining: Vec<Joining>,
    joins_in_flight: usize,
    /// Relays from a sender this view does not list yet (after a resync, its instance may
    /// re-announce it a moment later): they wait for its `peer-joined`, so no receiver hears
    /// from a peer before it heard of it. Dropped after a lease if it never comes.
    early: Vec<EarlyRelay>,
    /// Whether this instance is subscribed to the room's channel.
    subscribed: bool,
    /// Being resynced on its own after its Redis Cluster shard failed over.
    resyncing: bool,
}

/// What waits, in order, for a view's snapshot.
#[derive(Debug)]
enum Buffered {
    /// A presence event's text.
    Event(String),
    /// A relay from another instance: its receiver and text, and whether it was sent on by
    /// the instance its receiver left.
    Relay {
        to: String,
        text: String,
        forwarded: bool,
    },
    /// A handover for a member that resumed here (see [`Held`]).
    Handover { peer: String, queued: String },
    /// An instance's marker that it sends a moved member's relays straight to it now.
    Switched { peer: String, instance: String },
}

/// A relay waiting for its sender's arrival: sender, receiver, text, when it came.
#[derive(Debug)]
struct EarlyRelay {
    from: String,
    to: String,
    text: String,
    came: Instant,
    forwarded: bool,
}

/// A local member as a re-announce sends it: peer, connection, first join time and the
/// sequence number of its latest record (unknown for a joiner whose own event never came),
/// record tail, and whether it is held for a resume.
pub type Announced = (String, u64, Option<(u64, u64)>, Arc<str>, bool);

/// What a view asks the link to publish to another instance's channel: a handover, or a
/// relay sent on (see [`super::wire::Payload`]).
pub type Handoff = (Arc<str>, String);

pub struct Views {
    rooms: DashMap<RoomName, View, FastHash>,
    instance: Arc<str>,
    metrics: Arc<Metrics>,
    handoffs: tokio::sync::mpsc::UnboundedSender<Handoff>,
    /// Presence events were missed (a gap in a room's numbering, or a buffer overflow).
    out_of_step: std::sync::atomic::AtomicBool,
    /// Whether Redis is a Redis Cluster (see [`Layout`]).
    sharded: std::sync::atomic::AtomicBool,
}

impl Views {
    pub fn new(
        instance: Arc<str>,
        metrics: Arc<Metrics>,
        handoffs: tokio::sync::mpsc::UnboundedSender<Handoff>,
    ) -> Self {
        Self {
            rooms: DashMap::with_hasher(FastHash::default()),
            instance,
            metrics,
            handoffs,
            out_of_step: std::sync::atomic::AtomicBool::new(false),
            sharded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records a local join before it goes to Redis. Returns whether the view needs a
    /// snapshot (it has none yet).
    pub fn begin_join(
        &self,
        room: &RoomName,
        peer: &PeerId,
        connection: ConnectionId,
        outbox: Outbox,
        ice_servers: Option<String>,
        tail: Arc<str>,
    ) -> bool {
        let mut view = self.rooms.entry(room.clone()).or_insert_with(|| {
            self.metrics.rooms.inc();
            View::default()
        });
        view.joins_in_flight += 1;
        view.joining.push(Joining {
            peer: peer.clone(),
            connection,
            outbox,
            ice_servers,
            tail,
            accepted: false,
        });
        view.seq.is_none()
    }

    pub fn is_subscribed(&self, room: &RoomName) -> bool {
        self.rooms.get(room).is_some_and(|view| view.subscribed)
    }

    pub fn mark_subscribed(&self, room: &RoomName) -> bool {
        match self.rooms.get_mut(room) {
            Some(mut view) => {
                view.subscribed = true;
                true
            }
            None => false,
        }
    }

    /// Ends a local join: `accepted` if Redis took it (the welcome follows with its event).
    pub fn end_join(&self, room: &RoomName, connection: ConnectionId, accepted: bool) {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return;
        };
        view.joins_in_flight -= 1;
        if let Some(index) = view.joining.iter().position(|j| j.connection == connection) {
            if accepted {
                view.joining[index].accepted = true;
            } else {
                view.joining.swap_remove(index);
            }
        }
    }

    /// Sets a view without one from a snapshot taken at `seq`, then applies what was
    /// buffered after it.
    pub fn init(&self, room: &RoomName, seq: u64, snapshot: &[String]) {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return;
        };
        // A view being resynced is left to the resync, which tells local members the
        // difference.
        if view.seq.is_some() || !is_idle_of_members(&view) {
            return;
        }
        view.members = self.members_from(room, snapshot, &mut IndexMap::default(), None);
        view.seq = Some(seq);
        // Another local join's snapshot may be handled first and list this one's too.
        self.welcome_listed_joiners(&mut view, seq);
        self.count_late(deliver_early(&mut view));
        self.apply_buffered(room, &mut view);
    }

    /// Applies one presence event from the room's channel.
    pub fn apply(&self, room: &str, text: &str) {
        let Ok(room) = RoomName::new(room) else {
            return;
        };
        let Some(mut view) = self.rooms.get_mut(&room) else {
            return;
        };
        let Some(event) = Event::parse(text) else {
            tracing::warn!("ignoring a malformed cluster event");
            return;
        };
        if !self.has_snapshot(&mut view, || Buffered::Event(text.to_owned())) {
            return;
        }
        match view.seq {
            Some(seq) if event.seq() > seq => {
                self.check_step(seq, event.seq());
                self.apply_event(&room, &mut view, event);
            }
            _ => {}
        }
    }

    fn apply_buffered(&self, room: &RoomName, view: &mut View) {
        let buffered = std::mem::take(&mut view.buffered);
        for waiting in buffered {
            match waiting {
                Buffered::Event(text) => {
                    if let Some(event) = Event::parse(&text)
                        && let Some(seq) = view.seq
                        && event.seq() > seq
                    {
                        self.check_step(seq, event.seq());
                        self.apply_event(room, view, event);
                    }
                }
                Buffered::Relay {
                    to,
                    text,
                    forwarded,
                } => self.relay_to(room, view, &to, &text, forwarded),
                Buffered::Handover { peer, queued } => {
                    self.count_late(hand_over(view, &peer, &queued));
                }
                Buffered::Switched { peer, instance } => {
                    self.switched_to(room, view, &peer, &instance)
                }
            }
        }
    }

    /// A room's events are numbered without gaps: one missing means this view no longer
    /// matches Redis, and the link resyncs every room (see `out_of_step`).
    fn check_step(&self, applied: u64, next: u64) {
        if next > applied + 1 {
            self.lose_step();
        }
    }

    fn lose_step(&self) {
        if !self
            .out_of_step
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("cluster: presence events were missed; resyncing every room");
        }
    }

    /// Whether events were missed since the last resync; clears it. The link then resyncs.
    pub fn take_out_of_step(&self) -> bool {
        self.out_of_step
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn apply_event(&self, room: &RoomName, view: &mut View, event: Event<'_>) {
        let seq = event.seq();
        view.seq = Some(seq);
        match event {
            Event::Joined { peer, record } => {
                let Ok(peer) = peer.parse::<PeerId>() else {
                    return;
                };
                if let Some(slot) = view.members.get_mut(&peer)
                    && slot.presumed_until.is_some()
                {
                    if slot.connection == record.connection && !slot.local {
                        // Re-announced as it was: nobody here saw it go.
                        slot.presumed_until = None;
                        return;
                    }
                    // Back on another connection: the old one is gone.
                    view.members.shift_remove(&peer);
                    trace_left(room, peer.as_str(), "presumed, back on another connection");
                    tell_local(view, seq, &protocol::peer_left(&peer).into());
                }
                let mut slot = self.slot(&peer, &record, Place::Departed);
                tell_local(view, seq, &slot.joined);
                slot.place = self.place_for(room, view, &peer, &record, seq);
                // A re-announced member is older than the newest: it keeps its place.
                let position = match view.members.last() {
                    Some((_, last)) if last.since > record.since => view
                        .members
                        .values()
                        .position(|slot| slot.since > record.since),
                    _ => None,
                };
                let (index, _) = view.members.insert_full(peer, slot);
                if let Some(position) = position {
                    view.members.move_index(index, position);
                }
                self.count_late(deliver_early(view));
            }
            Event::Left {
                peer,
                reason,
                instance,
                connection,
                ..
            } => {
                let Ok(peer) = peer.parse::<PeerId>() else {
                    return;
                };
                let Some(slot) = view.members.shift_remove(&peer) else {
                    return;
                };
                trace_left(room, peer.as_str(), (reason, instance));
                if instance == &*self.instance {
                    self.evict(&slot.place, connection, reason);
                }
                tell_local(view, seq, &protocol::peer_left(&peer).into());
            }
            Event::Moved {
                peer,
                from_instance,
                from_connection,
                record,
            } => self.apply_move(room, view, peer, from_instance, from_connection, &record),
        }
    }

    /// A member held for a resume came back on another connection (PROTOCOL §14), maybe on
    /// another instance: its place changes and nobody hears of it. The instance that held
    /// it hands what it queued to the one it resumed on, which holds the member's newer
    /// relays until then; on one instance the queue simply moves to the new connection.
    fn apply_move(
        &self,
        room: &RoomName,
        view: &mut View,
        peer: &str,
        from_instance: &str,
        from_connection: u64,
        record: &Record<'_>,
    ) {
        let seq = record.seq;
        let Ok(peer) = peer.parse::<PeerId>() else {
            return;
        };
        let Some(slot) = view.members.get_mut(&peer) else {
            return;
        };
        let mut old = std::mem::replace(&mut slot.place, Place::Departed);
        slot.seq = seq;
        // Presumed after Redis lost data, and now placed by an instance that holds it (a
        // resume, or a re-announce taking over an older record): nobody saw it go.
        slot.presumed_until = None;
        let ours = self.is_ours(record);
        if ours
            && matches!(&old, Place::Here { connection, .. } if connection.get() == record.connection)
        {
            // Already here on that connection: a re-announce took over a stale record of it
            // that Redis reloaded.
            slot.place = old;
            return;
        }
        slot.connection = record.connection;
        slot.local = ours;
        slot.entry = PeerEntry::new(&peer, record.public_key, record.verified);
        slot.joined = protocol::peer_joined(&peer, record.public_key, record.verified).into();
        let from_here = from_instance == &*self.instance;
        if !from_here && from_instance != record.instance {
            // What this instance sent the member's old instance goes before this marker:
            // the new one holds what comes straight from here until it has the marker back.
            let old: Arc<str> = self.layout().relay_channel(room, from_instance).into();
            let marker = super::wire::switched(room, peer.as_str(), &self.instance);
            let _ = self.handoffs.send((old, marker));
        }
        let mut queued: Vec<Queued> = Vec::new();
        // It had resumed here from elsewhere and its wait for that handover is not over: the
        // wait goes on with it.
        let mut still_held: Option<Box<Held>> = None;
        if from_here
            && matches!(&old, Place::Here { connection, .. } if connection.get() == from_connection)
        {
            let reason = match &mut old {
                Place::Here {
                    parked: Some(parked),
                    held,
                    ..
                } => {
                    queued.extend(
                        std::iter::from_fn(|| parked.try_recv()).filter(Queued::survives_resume),
                    );
                    still_held = held.take();
                    LeftReason::Left
                }
                // A live connection whose record a re-announce took over (Redis reloaded
                // older data that still named it): replaced, as by a verified register.
                _ => LeftReason::Replaced,
            };
            self.evict(&old, from_connection, reason);
        }
        let place = if !ours {
            let channel: Arc<str> = self.layout().relay_channel(room, record.instance).into();
            if from_here {
                // What waited here goes after the queue; what the instance it resumed here
                // from still hands over is lost (it finds the member gone).
                let held: Vec<Relay> = still_held
                    .map(|mut held| held.give_up())
                    .unwrap_or_default();
                let handover = super::wire::handover(
                    room,
                    peer.as_str(),
                    queued
                        .iter()
                        .map(|queued| queued.text.as_str())
                        .chain(held.iter().map(|(text, _)| text.as_str())),
                );
                let _ = self.handoffs.send((channel.clone(), handover));
            }
            Place::There {
                channel,
                handed_over: from_here,
            }
        } else if let Some(index) = view
            .joining
            .iter()
            .position(|j| j.connection.get() == record.connection && j.peer == peer)
        {
            let joining = view.joining.swap_remove(index);
            let mut place = self.welcome(view, joining, seq, true);
            if let Place::Here { outbox, held, .. } = &mut place {
                self.metrics.resumes.inc();
                if from_here {
                    for queued in queued {
                        if queued
                            .relay_sender()
                            .is_none_or(|from| view.members.contains_key(from))
                        {
                            outbox.push_again(queued);
                        } else {
                            trace_dropped("from a sender gone since", peer.as_str(), &queued.text);
                        }
                    }
                    *held = still_held;
                } else {
                    let old = self.layout().relay_channel(room, from_instance);
                    let unswitched = senders_elsewhere(view, &peer, &old);
                    *held = Some(Box::new(Held::new(unswitched, Instant::now())));
                }
            }
            place
        } else {
            Place::Departed
        };
        if let Some(slot) = view.members.get_mut(&peer) {
            slot.place = place;
        }
    }

    /// Announces as gone the presumed members whose instance never re-announced them.
    pub fn expire_presumed(&self, now: Instant, lease: std::time::Duration) {
        for mut view in self.rooms.iter_mut() {
            // A sender that never arrived within a lease is not coming.
            view.early.retain(|early| {
                let waiting = now.duration_since(early.came) < lease;
                if !waiting {
                    self.metrics.cluster.relay_dropped("sender-never-seen");
                }
                waiting
            });
            let overdue: Vec<PeerId> = view
                .members
                .iter()
                .filter(|(_, slot)| {
                    matches!(&slot.place, Place::Here { held: Some(held), .. }
                        if held.overdue(now))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for peer in overdue {
                give_up(&mut view, peer.as_str());
            }
            // Long past the wait, late relays are no longer told apart.
            for slot in view.members.values_mut() {
                if let Place::Here { held, .. } = &mut slot.place
                    && held.as_ref().is_some_and(|held| held.forgettable(now))
                {
                    *held = None;
                }
            }
            let expired: Vec<PeerId> = view
                .members
                .iter()
                .filter(|(_, slot)| slot.presumed_until.is_some_and(|until| until <= now))
                .map(|(id, _)| id.clone())
                .collect();
            for peer in expired {
                tracing::debug!(
                    room = %view.key(),
                    peer = %peer.short(8),
                    "cluster: a member presumed after Redis lost data was never re-announced"
                );
                view.members.shift_remove(&peer);
                tell_local(&view, u64::MAX, &protocol::peer_left(&peer).into());
            }
        }
    }

    /// Where a member a `J` event announces lives; a local joiner gets its welcome here, with
    /// the room as it was just before it.
    fn place_for(
        &self,
        room: &RoomName,
        view: &mut View,
        peer: &PeerId,
        record: &Record<'_>,
        seq: u64,
    ) -> Place {
        if !self.is_ours(record) {
            return self.remote(room, record);
        }
        let Some(index) = view
            .joining
            .iter()
            .position(|j| j.connection.get() == record.connection && &j.peer == peer)
        else {
            return Place::Departed;
        };
        let joining = view.joining.swap_remove(index);
        self.welcome(view, joining, seq, false)
    }

    fn welcome(&self, view: &View, joining: Joining, seen: u64, resumed: bool) -> Place {
        let welcome = protocol::welcome(
            &joining.peer,
            view.members
                .iter()
                .filter(|(id, _)| **id != joining.peer)
                .map(|(_, slot)| &slot.entry),
            joining.ice_servers.as_deref(),
            resumed,
        );
        if !joining.outbox.fits(welcome.len()) {
            let error = ProtocolError::new(
                ErrorCode::RoomFull,
                "the room is too large to welcome a peer within --outbound-queue-bytes",
            );
            joining.outbox.push(protocol::error_frame(&error).into());
            joining
                .outbox
                .switch()
                .close(CloseCode::POLICY, "welcome too large");
            return Place::Departed;
        }
        joining.outbox.push(welcome.into());
        self.metrics.peers.inc();
        Place::Here {
            connection: joining.connection,
            outbox: joining.outbox,
            seen,
            tail: joining.tail,
            parked: None,
            held: None,
        }
    }

    /// A local member Redis no longer lists: replaced by a verified connection elsewhere, or
    /// dropped with this instance's lease.
    fn evict(&self, place: &Place, connection: u64, reason: LeftReason) {
        let Place::Here {
            connection: here,
            outbox,
            parked,
            ..
        } = place
        else {
            return;
        };
        if here.get() != connection {
            return;
        }
        self.metrics.peers.dec();
        if parked.is_some() {
            self.metrics.peers_in_grace.dec();
        }
        match reason {
            LeftReason::Left => {}
            LeftReason::Replaced => {
                let error = ProtocolError::from(ErrorCode::Replaced);
                self.metrics.error(error.code);
                outbox.push(protocol::error_frame(&error).into());
                outbox.switch().close(CloseCode::NORMAL, "replaced");
            }
            LeftReason::Lost => {
                outbox
                    .switch()
                    .close(CloseCode::OVERLOADED, "cluster lease lost; reconnect");
            }
        }
    }

    /// A local member's connection closed: stop delivering to it, and count it gone.
    pub fn detach(&self, room: &RoomName, peer: &PeerId, connection: ConnectionId) {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(slot) = view.members.get_mut(peer)
            && matches!(&slot.place, Place::Here { connection: c, .. } if *c == connection)
        {
            if let Place::Here {
                parked: Some(_), ..
            } = std::mem::replace(&mut slot.place, Place::Departed)
            {
                self.metrics.peers_in_grace.dec();
            }
            self.metrics.peers.dec();
        }
        if let Some(index) = view.joining.iter().position(|j| j.connection == connection) {
            view.joining.swap_remove(index);
        }
    }

    /// Whether `connection` holds `peer` in `room` here: a member whose connection is still
    /// open, or a join in flight. What Redis lists for this instance beyond that is a leak.
    pub fn holds(&self, room: &RoomName, peer: &PeerId, connection: u64) -> bool {
        let Some(view) = self.rooms.get(room) else {
            return false;
        };
        let member = view.members.get(peer).is_some_and(|slot| {
            matches!(&slot.place, Place::Here { connection: c, outbox, .. }
                if c.get() == connection && !outbox.is_gone())
        });
        member
            || view
                .joining
                .iter()
                .any(|j| j.connection.get() == connection && &j.peer == peer)
    }

    /// Routes a relay: queued here if the receiver is local, else handed to `publish` for
    /// the receiver's instance channel (false: it could not be queued). `publish` runs with
    /// the view locked, so a relay routed before a move is queued before the markers the
    /// move sends (see [`Held`]).
    pub fn route(
        &self,
        room: &RoomName,
        to: &str,
        text: Utf8Bytes,
        read_at: std::time::Instant,
        publish: impl FnOnce(&Arc<str>, Utf8Bytes) -> bool,
    ) -> Result<(), DeliverError> {
        let remote = |channel: &Arc<str>, text| {
            if publish(channel, text) {
                Ok(())
            } else {
                Err(DeliverError::Unavailable)
            }
        };
        {
            let view = self.rooms.get(room).ok_or(DeliverError::UnknownPeer)?;
            let slot = view.members.get(to).ok_or(DeliverError::UnknownPeer)?;
            match &slot.place {
                // Resumed here, waiting for its handover: taken below, with the view locked
                // for writing (rare, and only for a moment).
                Place::Here { held: Some(_), .. } => {}
                Place::Here { outbox, .. } => {
                    outbox.push_relay(text, read_at);
                    return Ok(());
                }
                // In flight to a peer that is leaving: dropped, as a relay to a local peer
                // that leaves before reading it is.
                Place::Departed => {
                    trace_dropped("to a departing member", to, text.as_str());
                    return Ok(());
                }
                Place::There { channel, .. } => return remote(channel, text),
            }
        }
        let mut view = self.rooms.get_mut(room).ok_or(DeliverError::UnknownPeer)?;
        let slot = view.members.get(to).ok_or(DeliverError::UnknownPeer)?;
        if let Place::There { channel, .. } = &slot.place {
            // It moved on meanwhile.
            return remote(channel, text);
        }
        let path = path_of(&view, &text, false);
        if !hold_or_push(&mut view, to, text, read_at, path) {
            self.count_late(1);
        }
        Ok(())
    }

    /// Holds `peer`'s place while its client is away (PROTOCOL §14): relays and what
    /// `dropped` had not written queue in `parking`. False if `connection` no longer holds
    /// it here.
    pub fn park(
        &self,
        room: &RoomName,
        peer: &PeerId,
        connection: ConnectionId,
        parking: Parking,
        dropped: &mut OutboxReceiver,
    ) -> bool {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(Place::Here {
            connection: here,
            outbox,
            parked,
            ..
        }) = view.members.get_mut(peer).map(|slot| &mut slot.place)
        else {
            return false;
        };
        if *here != connection || parked.is_some() {
            return false;
        }
        // A resume here still waiting for its handover (see [`Held`]) keeps waiting: what it
        // holds goes to the parking queue when its turn comes, and what comes late is still
        // told apart.
        parking.carry_over(dropped);
        *outbox = parking.outbox;
        *parked = Some(Box::new(parking.receiver));
        self.metrics.peers_in_grace.inc();
        true
    }

    /// The connection holding `peer` here for a resume, if it is parked: a resume on this
    /// instance does not depend on Redis's mark.
    pub fn parked_connection(&self, room: &RoomName, peer: &PeerId) -> Option<u64> {
        let view = self.rooms.get(room)?;
        match &view.members.get(peer)?.place {
            Place::Here {
                connection,
                parked: Some(_),
                ..
            } => Some(connection.get()),
            _ => None,
        }
    }

    /// The handover for a member that resumed here (see [`Held`]).
    pub fn handover_in(&self, room: &str, peer: &str, queued: &str) {
        let Some(mut view) = RoomName::new(room)
            .ok()
            .and_then(|room| self.rooms.get_mut(&room))
        else {
            return;
        };
        let waiting = || Buffered::Handover {
            peer: peer.to_owned(),
            queued: queued.to_owned(),
        };
        if !self.has_snapshot(&mut view, waiting) {
            return;
        }
        let late = hand_over(&mut view, peer, queued);
        self.count_late(late);
    }

    /// Relays that came the long way to a resumed member after later ones of their senders
    /// went ahead (see [`Held`]): dropped rather than delivered out of order.
    fn count_late(&self, late: usize) {
        for _ in 0..late {
            self.metrics.cluster.relay_dropped("late");
        }
    }

    /// An instance's marker that it now sends `peer`'s relays straight to where it resumed
    /// (see [`Held`]): sent on from the instance the member left, taken where it resumed.
    pub fn switched_in(&self, room: &str, peer: &str, instance: &str) {
        let Some((room, mut view)) = RoomName::new(room)
            .ok()
            .and_then(|room| Some((room.clone(), self.rooms.get_mut(&room)?)))
        else {
            return;
        };
        let waiting = || Buffered::Switched {
            peer: peer.to_owned(),
            instance: instance.to_owned(),
        };
        if !self.has_snapshot(&mut view, waiting) {
            return;
        }
        self.switched_to(&room, &mut view, peer, instance);
    }

    fn switched_to(&self, room: &RoomName, view: &mut View, peer: &str, instance: &str) {
        match view.members.get(peer).map(|slot| &slot.place) {
            Some(Place::There {
                channel,
                handed_over: true,
            }) => {
                let marker = super::wire::switched(room, peer, instance);
                let _ = self.handoffs.send((channel.clone(), marker));
            }
            Some(Place::Here { held: Some(_), .. }) => {
                let source = (instance != &*self.instance)
                    .then(|| Arc::from(self.layout().relay_channel(room, instance)));
                switched(view, peer, &source);
            }
            _ => {}
        }
    }

    /// A relay from another instance for a peer here; `forwarded` if the instance its
    /// receiver left sent it on.
    pub fn relay_in(&self, room: &str, to: &str, text: &str, forwarded: bool) {
        let Some((room, mut view)) = RoomName::new(room)
            .ok()
            .and_then(|room| Some((room.clone(), self.rooms.get_mut(&room)?)))
        else {
            self.metrics.cluster.relay_dropped("receiver-gone");
            return;
        };
        // Its sender's `peer-joined`, or its receiver's own arrival (a room's first local
        // joiner), may be among the events waiting for the snapshot: it waits behind them,
        // and goes to its receiver if that is a local member by then.
        let waiting = || Buffered::Relay {
            to: to.to_owned(),
            text: text.to_owned(),
            forwarded,
        };
        if !self.has_snapshot(&mut view, waiting) {
            return;
        }
        self.relay_to(&room, &mut view, to, text, forwarded);
    }

    /// Whether `view` has its snapshot; if not, `waiting` waits for it behind the events
    /// buffered so far (past the bound, the view is out of step and will be rebuilt).
    fn has_snapshot(&self, view: &mut View, waiting: impl FnOnce() -> Buffered) -> bool {
        if view.seq.is_some() {
            return true;
        }
        if view.buffered.len() < MAX_BUFFERED {
            view.buffered.push(waiting());
        } else {
            self.lose_step();
        }
        false
    }

    /// Delivers a relay from another instance, or sends it on once if its receiver just
    /// resumed elsewhere (it was on its way here when the member moved).
    fn relay_to(&self, room: &RoomName, view: &mut View, to: &str, text: &str, forwarded: bool) {
        if !forwarded
            && let Some(Place::There {
                channel,
                handed_over: true,
            }) = view.members.get(to).map(|slot| &slot.place)
        {
            let payload = super::wire::forwarded(room, to, text);
            let _ = self.handoffs.send((channel.clone(), payload));
            return;
        }
        if let Err(reason) = deliver_in(view, to, text, forwarded) {
            trace_dropped(reason, to, text);
            self.metrics.cluster.relay_dropped(reason);
        }
    }

    /// Before a resync on a new Redis connection: forget sequence numbers (Redis may have
    /// lost them) and subscriptions, buffer events until each room's new snapshot, and drop
    /// views nobody here needs.
    pub fn reset_for_resync(&self) {
        self.out_of_step
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.rooms.retain(|_, view| {
            view.seq = None;
            // The new snapshot covers the events; relays (and handovers, markers) still go
            // to their receivers.
            view.buffered
                .retain(|waiting| !matches!(waiting, Buffered::Event(_)));
            view.subscribed = false;
            view.resyncing = false;
            let keep = !is_idle(view);
            if !keep {
                self.metrics.rooms.dec();
            }
            keep
        });
    }

    pub fn has_room(&self, room: &RoomName) -> bool {
        self.rooms.contains_key(room)
    }

    /// Every room this instance has a view of.
    pub fn rooms(&self) -> Vec<RoomName> {
        self.rooms.iter().map(|view| view.key().clone()).collect()
    }

    /// The local members of `room` (welcomed or accepted) as a re-announce lists them.
    pub fn local_members(&self, room: &RoomName) -> Vec<Announced> {
        let Some(view) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut members: Vec<Announced> = view
            .members
            .iter()
            .filter_map(|(id, slot)| match &slot.place {
                Place::Here {
                    connection,
                    tail,
                    parked,
                    ..
                } => Some((
                    id.as_str().to_owned(),
                    connection.get(),
                    Some((slot.since, slot.seq)),
                    tail.clone(),
                    parked.is_some(),
                )),
                _ => None,
            })
            .collect();
        members.extend(view.joining.iter().filter(|j| j.accepted).map(|j| {
            (
                j.peer.as_str().to_owned(),
                j.connection.get(),
                None,
                j.tail.clone(),
                false,
            )
        }));
        members
    }

    /// The members of `room` this view places on other instances, with the sequence number of
    /// their latest record: after Redis reloaded older data, a record of this instance's for
    /// one of them is stale (the member moved on since), and is left to its holder's
    /// re-announce rather than announced gone.
    pub fn stale_elsewhere(&self, room: &RoomName) -> Vec<(String, u64)> {
        let Some(view) = self.rooms.get(room) else {
            return Vec::new();
        };
        view.members
            .iter()
            .filter(|(_, slot)| matches!(slot.place, Place::There { .. }))
            .map(|(id, slot)| (id.as_str().to_owned(), slot.seq))
            .collect()
    }

    /// Brings a view to Redis's state after a reconnect: local members hear of whoever came
    /// or went meanwhile, accepted joiners get their welcome, members whose ID another
    /// connection took are replaced.
    ///
    /// Unless Redis kept everything, members of other instances missing from the snapshot
    /// are presumed for a while, since their instances are re-announcing them too, so a
    /// Redis restart does not make every room flap. Records numbered above `floor` were
    /// written since Redis (re)started (see `scripts::ANNOUNCE`).
    pub fn resync(
        &self,
        room: &RoomName,
        seq: u64,
        snapshot: &[String],
        conflicts: &[String],
        kept: Kept,
        floor: u64,
    ) {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return;
        };
        let view = &mut *view;
        let mut old = std::mem::take(&mut view.members);
        // A local member whose ID another connection holds now is replaced: the room hears
        // it leave before the new holder joins.
        let mut replaced = Vec::new();
        for peer in conflicts {
            // Held for a resume, and resumed elsewhere while this instance was away: it
            // moved, nobody left.
            if let Some(slot) = old.get_mut(peer.as_str())
                && let Place::Here {
                    parked: Some(_),
                    connection,
                    ..
                } = &slot.place
            {
                let connection = connection.get();
                self.evict(&slot.place, connection, LeftReason::Left);
                slot.place = Place::Departed;
                continue;
            }
            if let Some((_, id, slot)) = old.shift_remove_full(peer.as_str()) {
                if let Place::Here { connection, .. } = &slot.place {
                    self.evict(&slot.place, connection.get(), LeftReason::Replaced);
                }
                trace_left(room, id.as_str(), "replaced at a resync");
                replaced.push(protocol::peer_left(&id).into());
            }
        }
        let mut members = self.members_from(
            room,
            snapshot,
            &mut old,
            kept.same_numbering().then_some(floor),
        );
        if let Some(until) = kept.presume_until() {
            for (id, slot) in &mut old {
                if !members.contains_key(id) && matches!(slot.place, Place::There { .. }) {
                    let presumed = Slot {
                        local: false,
                        presumed_until: Some(until),
                        ..slot.carry_over()
                    };
                    members.insert(id.clone(), presumed);
                }
            }
        }
        members.sort_by(|_, a, _, b| a.since.cmp(&b.since));
        // Those who were here before and are still in the room learn the difference.
        for id in old.keys().filter(|id| !members.contains_key(*id)) {
            trace_left(room, id.as_str(), "not in the snapshot of a resync");
        }
        let left: Vec<Utf8Bytes> = replaced
            .into_iter()
            .chain(
                old.keys()
                    .filter(|id| !members.contains_key(*id))
                    .map(|id| protocol::peer_left(id).into()),
            )
            .collect();
        for (id, slot) in &members {
            if let Place::Here { outbox, .. } = &slot.place {
                for text in &left {
                    outbox.push(text.clone());
                }
                for (other, other_slot) in &members {
                    if other != id && !old.contains_key(other) {
                        outbox.push(other_slot.joined.clone());
                    }
                }
            }
        }
        // A local member Redis does not list (its record went with a lease this instance
        // lost) cannot be reached by anyone: close it so its client reconnects.
        for slot in old.values() {
            if let Place::Here { connection, .. } = &slot.place {
                self.evict(&slot.place, connection.get(), LeftReason::Lost);
            }
        }
        view.members = std::mem::take(&mut members);
        view.resyncing = false;
        // Those here are now up to date with the snapshot, whatever Redis numbered before.
        for slot in view.members.values_mut() {
            if let Place::Here { seen, .. } = &mut slot.place {
                *seen = seq;
            }
        }
        // Joiners whose event the snapshot covers get their welcome from it.
        self.welcome_listed_joiners(view, seq);
        view.seq = Some(seq);
        // Relays that waited for a sender the snapshot lists now go, before what came after.
        self.count_late(deliver_early(view));
        self.apply_buffered(room, view);
    }

    /// Welcomes the local joiners a snapshot taken at `seq` lists: Redis took them, and their
    /// own `J` event, covered by the snapshot, will be skipped.
    fn welcome_listed_joiners(&self, view: &mut View, seq: u64) {
        let (listed, waiting) = std::mem::take(&mut view.joining)
            .into_iter()
            .partition::<Vec<Joining>, _>(|joining| {
                view.members
                    .get(&joining.peer)
                    .is_some_and(|slot| slot.local && slot.connection == joining.connection.get())
            });
        view.joining = waiting;
        for joining in listed {
            let peer = joining.peer.clone();
            let place = self.welcome(view, joining, seq, false);
            if let Some(slot) = view.members.get_mut(&peer) {
                slot.place = place;
            }
        }
    }

    /// Members from a snapshot (`HGETALL`: peer, record, …), oldest first. Local ones keep
    /// their outbox from `old`, which loses them.
    fn members_from(
        &self,
        room: &RoomName,
        snapshot: &[String],
        old: &mut IndexMap<PeerId, Slot, FastHash>,
        older_than: Option<u64>,
    ) -> IndexMap<PeerId, Slot, FastHash> {
        let mut parsed: Vec<(PeerId, Record<'_>)> = snapshot
            .chunks_exact(2)
            .filter_map(|pair| Some((pair[0].parse().ok()?, Record::parse(&pair[1])?)))
            .collect();
        parsed.sort_by_key(|(_, record)| (record.since, record.seq));
        let mut members = IndexMap::with_capacity_and_hasher(parsed.len(), FastHash::default());
        for (peer, record) in parsed {
            // A record older than the view's own (Redis reloaded older data, numbered as the
            // view saw it, up to `older_than`): the member moved on since, and the view keeps
            // where to. The re-announce of the instance it is on takes the record over, or,
            // if it is gone, the reconciliation of the record's instance removes it a lease
            // later. Rebuilt from the record, the view would forget that it is stale, and
            // its next re-announce would announce the member gone.
            if older_than.is_some_and(|floor| record.seq <= floor)
                && let Some(slot) = old.get_mut(&peer)
                && matches!(slot.place, Place::There { .. })
                && slot.seq > record.seq
            {
                members.insert(peer, slot.carry_over());
                continue;
            }
            let place = if !self.is_ours(&record) {
                self.remote(room, &record)
            } else {
                match old.get_mut(&peer) {
                    Some(slot)
                        if matches!(&slot.place,
                            Place::Here { connection, .. } if connection.get() == record.connection) =>
                    {
                        std::mem::replace(&mut slot.place, Place::Departed)
                    }
                    _ => Place::Departed,
                }
            };
            let slot = self.slot(&peer, &record, place);
            members.insert(peer, slot);
        }
        members
    }

    /// A member of another instance is reached through that instance's relay channel,
    /// named once here rather than for every relay.
    fn remote(&self, room: &RoomName, record: &Record<'_>) -> Place {
        Place::There {
            channel: self.layout().relay_channel(room, record.instance).into(),
            handed_over: false,
        }
    }

    fn layout(&self) -> Layout {
        if self.sharded.load(std::sync::atomic::Ordering::Relaxed) {
            Layout::Sharded
        } else {
            Layout::Single
        }
    }

    /// How the Redis of the current connection lays channels out (views rebuilt from its
    /// snapshots name the channels that way).
    pub fn set_layout(&self, layout: Layout) {
        self.sharded.store(
            layout == Layout::Sharded,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Starts resyncing one room on its own (its shard failed over): its events wait for
    /// the new snapshot, and joins to it are refused until then. False if there is no view.
    pub fn begin_room_resync(&self, room: &RoomName) -> bool {
        let Some(mut view) = self.rooms.get_mut(room) else {
            return false;
        };
        view.seq = None;
        view.buffered
            .retain(|waiting| !matches!(waiting, Buffered::Event(_)));
        view.resyncing = true;
        true
    }

    /// Whether `room` is being resynced on its own (see [`Views::begin_room_resync`]).
    pub fn is_resyncing(&self, room: &RoomName) -> bool {
        self.rooms.get(room).is_some_and(|view| view.resyncing)
    }

    pub fn joins_in_flight(&self, room: &RoomName) -> usize {
        self.rooms.get(room).map_or(0, |view| view.joins_in_flight)
    }

    /// Rooms with members this view places on an instance that holds no lease (`live` are
    /// those that do), and those instances: a reaper removes them there. Members kept
    /// presumed after data loss are left to their own deadline.
    pub fn members_without_lease(
        &self,
        live: &std::collections::HashSet<String>,
    ) -> Vec<(RoomName, String)> {
        let mut found = std::collections::HashSet::new();
        for view in self.rooms.iter() {
            for slot in view.members.values() {
                if let Place::There { channel, .. } = &slot.place
                    && slot.presumed_until.is_none()
                    // Every relay channel ends with its instance's ID.
                    && let Some(instance) = channel.rsplit(':').next()
                    && !live.contains(instance)
                {
                    found.insert((view.key().clone(), instance.to_owned()));
                }
            }
        }
        found.into_iter().collect()
    }

    fn is_ours(&self, record: &Record<'_>) -> bool {
        record.instance == &*self.instance
    }

    /// A member as its record describes it, reached at `place`.
    fn slot(&self, peer: &PeerId, record: &Record<'_>, place: Place) -> Slot {
        Slot {
            since: record.since,
            seq: record.seq,
            connection: record.connection,
            local: self.is_ours(record),
            entry: PeerEntry::new(peer, record.public_key, record.verified),
            joined: protocol::peer_joined(peer, record.public_key, record.verified).into(),
            place,
            presumed_until: None,
        }
    }

    /// Views nobody here needs any more: no local member, no join in flight; their channels
    /// can be left.
    pub fn idle_rooms(&self) -> Vec<RoomName> {
        self.rooms
            .iter()
            .filter(|view| is_idle(view.value()))
            .map(|view| view.key().clone())
            .collect()
    }

    /// Removes `room`'s view if it is still idle; returns whether it did.
    pub fn remove_if_idle(&self, room: &RoomName) -> bool {
        let removed = self
            .rooms
            .remove_if(room, |_, view| is_idle(view))
            .is_some();
        if removed {
            self.metrics.rooms.dec();
        }
        removed
    }
}

/// Queues `text` for the local members whose welcome is older than `seq` (`u64::MAX`: all).
fn tell_local(view: &View, seq: u64, text: &Utf8Bytes) {
    for slot in view.members.values() {
        if let Place::Here { outbox, seen, .. } = &slot.place
            && *seen < seq
        {
            outbox.push(text.clone());
        }
    }
}

/// A relay from another instance to `to`: queued for it if it is a local member, held back
/// if this view does not list its sender yet. Else why it was dropped (a metric's label).
fn deliver_in(view: &mut View, to: &str, text: &str, forwarded: bool) -> Result<(), &'static str> {
    if !matches!(
        view.members.get(to).map(|slot| &slot.place),
        Some(Place::Here { .. })
    ) {
        return Err("receiver-gone");
    }
    match super::wire::relay_sender(text) {
        Some(from) if !view.members.contains_key(from) => {
            if view.early.len() >= MAX_BUFFERED {
                return Err("overflow");
            }
            view.early.push(EarlyRelay {
                from: from.to_owned(),
                to: to.to_owned(),
                text: text.to_owned(),
                came: Instant::now(),
                forwarded,
            });
        }
        _ => {
            let path = path_of(view, text, forwarded);
            let text = Utf8Bytes::from(text.to_owned());
            if !hold_or_push(view, to, text, Instant::now(), path) {
                return Err("late");
            }
        }
    }
    Ok(())
}

/// Which way a relay came (see [`Held`]): sent on by the instance its receiver left, or
/// straight from its sender's instance as this view places the sender.
fn path_of(view: &View, text: &str, forwarded: bool) -> Path {
    if forwarded {
        return Path::Old;
    }
    let sender = super::wire::relay_sender(text).and_then(|from| view.members.get(from));
    match sender.map(|slot| &slot.place) {
        Some(Place::There { channel, .. }) => Path::Straight(Some(channel.clone())),
        _ => Path::Straight(None),
    }
}

/// The instances that may have relays for `moved` on their way through the instance it left
/// (relay channel `old`): every other instance with members in the room, this one included.
fn senders_elsewhere(view: &View, moved: &PeerId, old: &str) -> Vec<Source> {
    let mut sources: Vec<Source> = Vec::new();
    for (id, slot) in &view.members {
        let source = match &slot.place {
            Place::Here { .. } if id != moved => None,
            Place::There { channel, .. } if &**channel != old => Some(channel.clone()),
            _ => continue,
        };
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    sources
}

/// Queues a relay for a local member, unless it must wait behind others (see [`Held`]).
/// False if it came too late to be delivered in order.
#[must_use]
fn hold_or_push(view: &mut View, to: &str, text: Utf8Bytes, read_at: Instant, path: Path) -> bool {
    let Some(Place::Here { outbox, held, .. }) =
        view.members.get_mut(to).map(|slot| &mut slot.place)
    else {
        trace_dropped("to a member no longer here", to, text.as_str());
        return true;
    };
    let Some(waiting) = held else {
        outbox.push_relay(text, read_at);
        return true;
    };
    match waiting.hold((text, read_at), path) {
        Verdict::Go((text, read_at)) => {
            outbox.push_relay(text, read_at);
        }
        Verdict::Late => {
            trace_dropped("late", to, "");
            return false;
        }
        Verdict::Held if waiting.is_full() => give_up(view, to),
        Verdict::Held => {}
    }
    true
}

/// The handover for a member that resumed here: what the instance it left had queued
/// (`queued`, framed relays), then what was held here and no longer waits, in order. Returns
/// how many queued relays came too late to be delivered in order.
#[must_use]
fn hand_over(view: &mut View, peer: &str, queued: &str) -> usize {
    let now = Instant::now();
    let queued: Vec<Relay> = super::wire::relays(queued)
        .map(|(_, _, text)| (Utf8Bytes::from(text.to_owned()), now))
        .collect();
    let (ready, late) = match view.members.get_mut(peer).map(|slot| &mut slot.place) {
        Some(Place::Here {
            held: Some(held), ..
        }) => held.handed_over(queued),
        // Not waiting (parked again, or long past the wait): what was queued still goes.
        _ => (queued, 0),
    };
    push_ready(view, peer, ready);
    late
}

/// `source`'s marker came back through the old instance: its held relays go.
fn switched(view: &mut View, peer: &str, source: &Source) {
    let Some(Place::Here {
        held: Some(held), ..
    }) = view.members.get_mut(peer).map(|slot| &mut slot.place)
    else {
        return;
    };
    let ready = held.switched(source);
    push_ready(view, peer, ready);
}

/// Stops a resumed member's wait for its handover or markers: everything held goes.
fn give_up(view: &mut View, peer: &str) {
    let relays = match view.members.get_mut(peer).map(|slot| &mut slot.place) {
        Some(Place::Here {
            held: Some(held), ..
        }) => held.give_up(),
        _ => return,
    };
    push_ready(view, peer, relays);
}

/// Queues relays that waited for a resumed member, in order, and ends the wait once nothing
/// is left to wait for. A relay whose sender has left the room since is dropped: the
/// member's welcome did not list it, or it heard it leave.
fn push_ready(view: &mut View, peer: &str, relays: Vec<Relay>) {
    let still_here = |text: &str| {
        super::wire::relay_sender(text).is_none_or(|from| view.members.contains_key(from))
    };
    let relays: Vec<Relay> = relays
        .into_iter()
        .filter(|(text, _)| {
            let keep = still_here(text.as_str());
            if !keep {
                trace_dropped("from a sender gone since", peer, text.as_str());
            }
            keep
        })
        .collect();
    let Some(Place::Here { outbox, held, .. }) =
        view.members.get_mut(peer).map(|slot| &mut slot.place)
    else {
        for (text, _) in &relays {
            trace_dropped("that waited for a member gone since", peer, text.as_str());
        }
        return;
    };
    for (text, read_at) in relays {
        if text.as_str().starts_with(r#"{"type":"error""#) {
            outbox.push(text);
        } else {
            outbox.push_relay(text, read_at);
        }
    }
    if held.as_ref().is_some_and(|held| held.is_done()) {
        *held = None;
    }
}

/// What Redis kept of what the views last saw: it decides what a resync's snapshot is worth.
#[derive(Debug, Clone, Copy)]
pub enum Kept {
    /// All of it: the snapshot is at least as new as anything a view saw.
    All,
    /// Older data (a reloaded snapshot, a replica promoted before it had the last writes):
    /// its numbering is the one the views saw, so a record older than a view's is stale.
    /// Members missing from it are presumed until then.
    Older { presume_until: Instant },
    /// Nothing: the numbering starts over. Members missing are presumed until then.
    Nothing { presume_until: Instant },
}

impl Kept {
    pub fn presume_until(self) -> Option<Instant> {
        match self {
            Self::All => None,
            Self::Older { presume_until } | Self::Nothing { presume_until } => Some(presume_until),
        }
    }

    /// Whether Redis numbers records as the views saw them, so that sequence numbers compare.
    pub fn same_numbering(self) -> bool {
        !matches!(self, Self::Nothing { .. })
    }
}

/// Why a view told its local members that `peer` left: a debug line, for fault tests.
fn trace_left(room: &RoomName, peer: &str, why: impl std::fmt::Debug) {
    tracing::debug!(
        room = %room,
        peer = peer.get(..8).unwrap_or(peer),
        why = ?why,
        "cluster: a member left the view"
    );
}

/// Says at debug level which relay a view dropped and why: what an operator chasing a lost
/// message needs (peer IDs cut short).
fn trace_dropped(why: &str, to: &str, text: &str) {
    let from = super::wire::relay_sender(text).unwrap_or("");
    tracing::debug!(
        why,
        to = to.get(..8).unwrap_or(to),
        from = from.get(..8).unwrap_or(from),
        "cluster: dropped a relay"
    );
}

/// Hands the relays whose sender the view now lists (its `J` event, or a snapshot) to their
/// receivers, in order; the others keep waiting.
#[must_use]
fn deliver_early(view: &mut View) -> usize {
    if view.early.is_empty() {
        return 0;
    }
    let early = std::mem::take(&mut view.early);
    let (ready, waiting): (Vec<EarlyRelay>, Vec<EarlyRelay>) = early
        .into_iter()
        .partition(|early| view.members.contains_key(early.from.as_str()));
    view.early = waiting;
    let mut late = 0;
    for early in ready {
        let path = path_of(view, &early.text, early.forwarded);
        let text = Utf8Bytes::from(early.text);
        late += usize::from(!hold_or_push(view, &early.to, text, Instant::now(), path));
    }
    late
}

fn is_idle(view: &View) -> bool {
    view.joins_in_flight == 0 && view.joining.is_empty() && is_idle_of_members(view)
}

/// No member of the view is on this instance.
fn is_idle_of_members(view: &View) -> bool {
    !view
        .members
        .values()
        .any(|slot| matches!(slot.place, Place::Here { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::rooms::outbox::OutboxReceiver;

    const KEY: &str = r#"{"kty":"test"}"#;

    fn peer(c: char) -> PeerId {
        c.to_string().repeat(64).parse().unwrap()
    }

    fn views(instance: &str) -> Views {
        views_handing_off(instance).0
    }

    fn views_handing_off(instance: &str) -> (Views, tokio::sync::mpsc::UnboundedReceiver<Handoff>) {
        let (handoffs, handed) = tokio::sync::mpsc::unbounded_channel();
        let views = Views::new(instance.into(), Arc::new(Metrics::new()), handoffs);
        (views, handed)
    }

    fn record(seq: u64, instance: &str, connection: u64) -> String {
        format!(
            "{seq}\t{seq}\t{}",
            super::super::wire::record_tail(instance, connection, None, KEY)
        )
    }

    fn joined(seq: u64, who: char, instance: &str, connection: u64) -> String {
        format!(
            "J\t{seq}\t{}\t{}",
            peer(who),
            record(seq, instance, connection)
        )
    }

    fn left(seq: u64, who: char, instance: &str, connection: u64) -> String {
        format!("L\t{seq}\t{}\tleft\t{instance}\t{connection}", peer(who))
    }

    /// Routes a relay as the registry does: the channel it went to if it was published.
    fn route_to(
        views: &Views,
        room: &RoomName,
        to: &str,
        text: Utf8Bytes,
    ) -> Result<Option<String>, DeliverError> {
        let mut published = None;
        views
            .route(room, to, text, Instant::now(), |channel, _| {
                published = Some(channel.to_string());
                true
            })
            .map(|()| published)
    }

    fn drain(receiver: &mut OutboxReceiver) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv())
            .map(|queued| {
                let text = queued.text.to_string();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                let who = value["peerId"]
                    .as_str()
                    .map_or("", |id| &id[..1])
                    .to_owned();
                let peers: Vec<String> = value["peers"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|p| p["id"].as_str().unwrap()[..1].to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "{} {who} {}",
                    value["type"].as_str().unwrap(),
                    peers.join("")
                )
                .trim_end()
                .to_owned()
            })
            .collect()
    }

    /// A local join: recorded, then welcomed when its own `J` event arrives.
    fn join_here(views: &Views, room: &RoomName, who: char) -> (ConnectionId, OutboxReceiver) {
        let (outbox, receiver) = Outbox::new(64, 1 << 20);
        let connection = ConnectionId::next();
        views.begin_join(room, &peer(who), connection, outbox, None, "tail".into());
        (connection, receiver)
    }

    /// The first member of an empty room, local and welcomed (sequence number 1).
    fn first_here(views: &Views, room: &RoomName, who: char) -> (ConnectionId, OutboxReceiver) {
        let (connection, receiver) = join_here(views, room, who);
        views.init(room, 0, &[]);
        views.end_join(room, connection, true);
        views.apply(room.as_str(), &joined(1, who, "me", connection.get()));
        (connection, receiver)
    }

    #[test]
    fn events_before_the_snapshot_wait_and_the_covered_ones_are_dropped() {
        let views = views("me");
        let room = RoomName::new("r").unwrap();
        let (connection, mut rx) = join_here(&views, &room, 'c');
        // Arrive before the join's snapshot: 1 and 2 are in it, 3 is the join, 4 after.
        views.apply("r", &joined(1, 'a', "there", 1));
        views.apply("r", &joined(2, 'b', "there", 2));
        views.apply("r", &joined(3, 'c', "me", connection.get()));
        views.apply("r", &left(4, 'a', "there", 1));
        let snapshot = [
            peer('b').to_string(),
            record(2, "there", 2),
            peer('a').to_string(),
            record(1, "there", 1),
        ];
        views.init(&room, 2, &snapshot);
        views.end_join(&room, connection, true);
        assert_eq!(drain(&mut rx), ["welcome c ab", "peer-left a"]);
        // Old or repeated events change nothing.
        views.apply("r", &joined(2, 'b', "there", 2));
        views.apply("r", &left(4, 'a', "there", 1));
        assert!(drain(&mut rx).is_empty());
    }

    #[test]
    fn every_local_member_hears_of_every_other_once_in_order() {
        let views = views("me");
        let room = RoomName::new("r").unwrap();
        let (_, mut a_rx) = first_here(&views, &room, 'a');
        let (b_conn, mut b_rx) = join_here(&views, &room, 'b');
        views.end_join(&room, b_conn, true);
        views.apply("r", &joined(2, 'd', "there", 9));
        views.apply("r", &joined(3, 'b', "me", b_conn.get()));
        views.apply("r", &left(4, 'd', "there", 9));
        assert_eq!(
            drain(&mut a_rx),
            ["welcome a", "peer-joined d", "peer-joined b", "peer-left d"]
        );
        assert_eq!(drain(&mut b_rx), ["welcome b ad", "peer-left d"]);
        // A relay finds a local receiver here, and a remote one's instance.
        let offer = || Utf8Bytes::from_static(r#"{"type":"offer"}"#);
        assert!(matches!(
            route_to(&views, &room, peer('b').as_str(), offer()),
            Ok(None)
        ));
        assert_eq!(drain(&mut b_rx), ["offer"]);
        views.apply("r", &joined(5, 'e', "there", 10));
        assert!(matches!(
            route_to(&views, &room, peer('e').as_str(), offer()),
            Ok(Some(channel)) if channel == "rdv:c:there"
        ));
        assert!(matches!(
            route_to(&views, &room, peer('d').as_str(), offer()),
            Err(DeliverError::UnknownPeer)
        ));
    }

    #[test]
    fn older_data_does_not_undo_a_move_the_view_saw() {
        let views = views("me");
        let room = RoomName::new("r").unwrap();
        let (a_conn, mut a_rx) = first_here(&views, &room, 'a');
        views.apply("r", &joined(2, 'c', "there", 5));
        // c resumed on another instance after Redis saved the snapshot it reloads.
        let c_moved = format!(
            "M\t3\t{}\tthere\t5\t3\t2\t{}",
            peer('c'),
            super::super::wire::record_tail("other", 6, None, KEY)
        );
        views.apply("r", &c_moved);
        assert_eq!(drain(&mut a_rx), ["welcome a", "peer-joined c"]);
        let offer = || Utf8Bytes::from_static(r#"{"type":"offer"}"#);
        let stale = [
            peer('a').to_string(),
            record(1, "me", a_conn.get()),
            peer('c').to_string(),
            record(2, "there", 5),
        ];
        // However often the room is resynced on that older data (a shard's failover comes
        // after the reconnect), c stays where it went, and its record stays known as stale.
        for _ in 0..2 {
            views.reset_for_resync();
            let kept = Kept::Older {
                presume_until: Instant::now() + std::time::Duration::from_secs(60),
            };
            views.resync(&room, 2, &stale, &[], kept, 2);
            assert!(drain(&mut a_rx).is_empty());
            assert_eq!(views.stale_elsewhere(&room), [(peer('c').to_string(), 3)]);
            assert!(matches!(
                route_to(&views, &room, peer('c').as_str(), offer()),
                Ok(Some(channel)) if channel == "rdv:c:other"
            ));
        }
        // A record numbered above the floor was written since Redis restarted, after what
        // the view saw however it is numbered: it is the truth.
        views.reset_for_resync();
        let kept = Kept::Older {
            presume_until: Instant::now() + std::time::Duration::from_secs(60),
        };
        views.resync(&room, 2, &stale, &[], kept, 1);
        assert!(drain(&mut a_rx).is_empty());
        assert!(matches!(
            route_to(&views, &room, peer('c').as_str(), offer()),
            Ok(Some(channel)) if channel == "rdv:c:there"
        ));
        assert_eq!(views.stale_elsewhere(&room), [(peer('c').to_string(), 2)]);
        // After data loss the numbering starts over: the snapshot is all there is.
        views.apply("r", &c_moved);
        views.reset_for_resync();
        let kept = Kept::Nothing {
            presume_until: Instant::now() + std::time::Duration::from_secs(60),
        };
        views.resync(&room, 2, &stale, &[], kept, 2);
        assert!(matches!(
            route_to(&views, &room, peer('c').as_str(), offer()),
            Ok(Some(channel)) if channel == "rdv:c:there"
        ));
    }

    #[test]
    fn a_resync_tells_the_difference_and_keeps_presumed_members_quietly() {
        let views = views("me");
        let room = RoomName::new("r").unwrap();
        let (a_conn, mut a_rx) = first_here(&views, &room, 'a');
        views.apply("r", &joined(2, 'd', "there", 1));
        views.apply("r", &joined(3, 'e', "there", 2));
        views.apply("r", &joined(4, 'c', "there", 5));
        drain(&mut a_rx);

        // Redis lost its data: after re-announcing, it knows a and a newcomer f; d, e and c
        // are presumed until their instance re-announces them.
        views.reset_for_resync();
        let until = Instant::now() + std::time::Duration::from_secs(60);
        let snapshot = [
            peer('a').to_string(),
            record(1, "me", a_conn.get()),
            peer('f').to_string(),
            record(2, "other", 3),
        ];
        views.resync(
            &room,
            2,
            &snapshot,
            &[],
            Kept::Nothing {
                presume_until: until,
            },
            0,
        );
        assert_eq!(drain(&mut a_rx), ["peer-joined f"]);
        // d comes back as it was, c moved (it resumed on another instance): nobody hears
        // anything. e never does: it leaves at the deadline.
        views.apply("r", &joined(3, 'd', "there", 1));
        let c_moved = format!(
            "M\t4\t{}\tthere\t5\t4\t4\t{}",
            peer('c'),
            super::super::wire::record_tail("other", 6, None, KEY)
        );
        views.apply("r", &c_moved);
        assert!(drain(&mut a_rx).is_empty());
        views.expire_presumed(until, std::time::Duration::from_secs(10));
        assert_eq!(drain(&mut a_rx), ["peer-left e"]);

        // Without data loss, the snapshot is the truth: who is missing left.
        views.reset_for_resync();
        let snapshot = [peer('a').to_string(), record(1, "me", a_conn.get())];
        views.resync(&room, 9, &snapshot, &[], Kept::All, 0);
        let mut heard = drain(&mut a_rx);
        heard.sort();
        assert_eq!(heard, ["peer-left c", "peer-left d", "peer-left f"]);
        views.apply("r", &left(10, 'a', "me", a_conn.get()));
        assert!(views.idle_rooms().contains(&room));
    }

    /// Two joins on this instance to a room it had no view of: the second's reply (its
    /// snapshot lists the first) may be handled first. The first still gets its welcome,
    /// from the snapshot, and relays to it are not dropped meanwhile.
    #[test]
    fn a_joiner_listed_in_a_later_joiners_snapshot_is_welcomed_from_it() {
        let views = views("me");
        let room = RoomName::new("r").unwrap();
        let (a_conn, mut a_rx) = join_here(&views, &room, 'a');
        let (b_conn, mut b_rx) = join_here(&views, &room, 'b');
        views.apply("r", &joined(1, 'd', "there", 7));
        views.apply("r", &joined(2, 'a', "me", a_conn.get()));
        views.apply("r", &joined(3, 'b', "me", b_conn.get()));
        let snapshot = [
            peer('d').to_string(),
            record(1, "there", 7),
            peer('a').to_string(),
            record(2, "me", a_conn.get()),
        ];
        views.init(&room, 2, &snapshot);
        views.end_join(&room, b_conn, true);
        views.init(&room, 1, &snapshot[..2]);
        views.end_join(&room, a_conn, true);
        assert_eq!(drain(&mut a_rx), ["welcome a d", "peer-joined b"]);
        assert_eq!(drain(&mut b_rx), ["welcome b da"]);
        let offer = format!(r#"{{"type":"offer","from":"{}"}}"#, peer('d'));
        views.relay_in("r", peer('a').as_str(), &offer, false);
        assert_eq!(drain(&mut a_rx), ["offer"]);
    }

    /// p joined on instance "me" and its connection dropped there (parked); d is a member on
    /// "b", which has a view of the room, and p is about to resume there: `moved` is the
    /// event Redis publishes then.
    struct Resume {
        old: Views,
        old_handoffs: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
        new: Views,
        new_handoffs: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
        room: RoomName,
        p_conn: ConnectionId,
        new_p: ConnectionId,
        new_p_rx: OutboxReceiver,
        d_rx: OutboxReceiver,
        moved: String,
    }

    impl Resume {
        fn new() -> Self {
            let (old, old_handoffs) = views_handing_off("me");
            let (new, new_handoffs) = views_handing_off("b");
            let room = RoomName::new("r").unwrap();
            let (p_conn, mut p_rx) = first_here(&old, &room, 'e');
            old.apply("r", &joined(2, 'd', "b", 7));
            drain(&mut p_rx);
            let (d_conn, mut d_rx) = join_here(&new, &room, 'd');
            new.init(
                &room,
                1,
                &[peer('e').to_string(), record(1, "me", p_conn.get())],
            );
            new.end_join(&room, d_conn, true);
            new.apply("r", &joined(2, 'd', "b", d_conn.get()));
            assert_eq!(drain(&mut d_rx), ["welcome d e"]);
            let (parking, parked_rx) = Outbox::new(64, 1 << 20);
            let parking = Parking {
                outbox: parking,
                receiver: parked_rx,
            };
            assert!(old.park(&room, &peer('e'), p_conn, parking, &mut p_rx));
            assert_eq!(old.parked_connection(&room, &peer('e')), Some(p_conn.get()));
            let (new_p, new_p_rx) = join_here(&new, &room, 'e');
            new.end_join(&room, new_p, true);
            let moved = format!(
                "M\t3\t{}\tme\t{}\t3\t1\t{}",
                peer('e'),
                p_conn.get(),
                super::super::wire::record_tail("b", new_p.get(), None, KEY)
            );
            Resume {
                old,
                old_handoffs,
                new,
                new_handoffs,
                room,
                p_conn,
                new_p,
                new_p_rx,
                d_rx,
                moved,
            }
        }

        /// d's offer number `n`.
        fn offer(n: u8) -> Utf8Bytes {
            Utf8Bytes::from(format!(
                r#"{{"type":"offer","from":"{}","n":{n}}}"#,
                peer('d')
            ))
        }

        /// d sends `n`: where it went, `None` if it was queued on "b".
        fn d_sends(&self, n: u8) -> Option<String> {
            route_to(&self.new, &self.room, peer('e').as_str(), Self::offer(n)).unwrap()
        }

        /// What p got on "b".
        fn p_got(&mut self) -> Vec<String> {
            std::iter::from_fn(|| self.new_p_rx.try_recv())
                .map(|queued| queued.text.to_string())
                .collect()
        }

        /// d's 1 reaches "me", which stalls; p resumes on "b", where d's 2 waits for the
        /// handover until the wait runs out.
        fn resume_while_the_old_instance_stalls(&mut self) {
            assert_eq!(self.d_sends(1).as_deref(), Some("rdv:c:me"));
            let one = Self::offer(1);
            self.old.relay_in("r", peer('e').as_str(), &one, false);
            self.new.apply("r", &self.moved);
            drain(&mut self.new_p_rx);
            assert_eq!(self.d_sends(2), None);
            let lease = std::time::Duration::from_secs(6);
            self.new.expire_presumed(Instant::now(), lease);
            assert!(self.p_got().is_empty(), "still waiting");
            let waited = Instant::now() + super::super::held::HANDOVER_WAIT;
            self.new.expire_presumed(waited, lease);
            assert_eq!(self.p_got(), Self::offers(&[2]));
        }

        fn offers(numbers: &[u8]) -> Vec<String> {
            numbers
                .iter()
                .map(|&n| Self::offer(n).to_string())
                .collect()
        }
    }

    /// Hands what one instance handed off (a handover, relays sent on, a marker) to another.
    fn hand_to(views: &Views, handoff: &str) {
        match super::super::wire::Payload::parse(handoff) {
            Some(super::super::wire::Payload::Handover { room, peer, queued }) => {
                views.handover_in(room, peer, queued);
            }
            Some(super::super::wire::Payload::Forwarded(relays)) => {
                for (room, to, text) in super::super::wire::relays(relays) {
                    views.relay_in(room, to, text, true);
                }
            }
            Some(super::super::wire::Payload::Switched {
                room,
                peer,
                instance,
            }) => views.switched_in(room, peer, instance),
            _ => panic!("not a handoff: {handoff}"),
        }
    }

    /// A peer parked on one instance resumes on another: the instance it left hands over
    /// what it queued and sends on what still reaches it, and the new one holds what comes
    /// straight until the instance that sent it says (through the old one) that nothing of
    /// it is left on the way. One sender's relays arrive in the order sent, and nobody hears
    /// any presence.
    #[test]
    fn a_resume_on_another_instance_keeps_each_senders_relays_in_order() {
        let mut r = Resume::new();
        // d sends 1 and 2 to where p was; 1 arrives there before p moves, 2 after.
        assert_eq!(r.d_sends(1).as_deref(), Some("rdv:c:me"));
        assert_eq!(r.d_sends(2).as_deref(), Some("rdv:c:me"));
        r.old
            .relay_in("r", peer('e').as_str(), &Resume::offer(1), false);

        // Redis moves p's record to "b". "me" applies it first: it hands 1 over, and sends
        // 2 on when it comes.
        r.old.apply("r", &r.moved);
        r.old
            .relay_in("r", peer('e').as_str(), &Resume::offer(2), false);
        r.new.apply("r", &r.moved);
        assert_eq!(drain(&mut r.new_p_rx), ["welcome e d"]);
        // "b" marks the switch on the way through "me"; d's 3 now goes straight, and waits.
        let (channel, marker) = r.new_handoffs.try_recv().unwrap();
        assert_eq!((&*channel, marker.as_bytes()[0]), ("rdv:c:me", b'S'));
        assert_eq!(r.d_sends(3), None);
        assert!(r.p_got().is_empty());

        // The handover, then 2 sent on: 1 and 2 go, 3 still waits for the marker.
        for _ in 0..2 {
            let (channel, handoff) = r.old_handoffs.try_recv().unwrap();
            assert_eq!(&*channel, "rdv:c:b");
            hand_to(&r.new, &handoff);
        }
        assert_eq!(r.p_got(), Resume::offers(&[1, 2]));
        // The marker comes through "me", which sends it on: 3 goes last.
        hand_to(&r.old, &marker);
        let (channel, marker) = r.old_handoffs.try_recv().unwrap();
        assert_eq!(&*channel, "rdv:c:b");
        hand_to(&r.new, &marker);
        assert_eq!(r.p_got(), Resume::offers(&[3]));
        // Nothing waits any more.
        assert_eq!(r.d_sends(4), None);
        assert_eq!(r.p_got(), Resume::offers(&[4]));

        // Nobody heard any presence; "me" holds p no more.
        assert!(drain(&mut r.d_rx).is_empty());
        assert!(r.old.idle_rooms().contains(&r.room));
        assert!(!r.old.holds(&r.room, &peer('e'), r.p_conn.get()));
        assert!(r.new.holds(&r.room, &peer('e'), r.new_p.get()));
    }

    /// The instance p left stalls past the wait: what waited goes, and what it hands over
    /// late of a sender whose later relays went ahead is dropped, not delivered out of order.
    #[test]
    fn a_stalled_old_instance_loses_its_late_relays_rather_than_reorder_them() {
        let mut r = Resume::new();
        r.resume_while_the_old_instance_stalls();
        // "me" wakes up and hands 1 over: too late.
        r.old.apply("r", &r.moved);
        let (_, handover) = r.old_handoffs.try_recv().unwrap();
        hand_to(&r.new, &handover);
        assert!(r.p_got().is_empty());
        assert_eq!(r.d_sends(3), None);
        assert_eq!(r.p_got(), Resume::offers(&[3]));
    }

    /// The same, when p drops again where it resumed and resumes there once more before the
    /// stalled instance hands over: what comes late is still dropped, not queued for it.
    #[test]
    fn a_member_that_drops_again_is_still_spared_late_relays() {
        let mut r = Resume::new();
        r.resume_while_the_old_instance_stalls();

        // p drops on "b" and is parked there, and resumes there once more.
        let (outbox, receiver) = Outbox::new(64, 1 << 20);
        let parking = Parking { outbox, receiver };
        assert!(
            r.new
                .park(&r.room, &peer('e'), r.new_p, parking, &mut r.new_p_rx)
        );
        let (again, mut again_rx) = join_here(&r.new, &r.room, 'e');
        r.new.end_join(&r.room, again, true);
        let moved_again = format!(
            "M\t4\t{}\tb\t{}\t4\t1\t{}",
            peer('e'),
            r.new_p.get(),
            super::super::wire::record_tail("b", again.get(), None, KEY)
        );
        r.new.apply("r", &moved_again);
        // Only now does "me" wake up and hand 1 over. d sends 3: p gets 3, and never 1.
        r.old.apply("r", &r.moved);
        let (_, handover) = r.old_handoffs.try_recv().unwrap();
        hand_to(&r.new, &handover);
        assert_eq!(r.d_sends(3), None);
        let got: Vec<String> = std::iter::from_fn(|| again_rx.try_recv())
            .map(|queued| queued.text.to_string())
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains(r#""type":"welcome""#), "{got:?}");
        assert_eq!(got[1], Resume::offer(3).to_string());
    }
}
