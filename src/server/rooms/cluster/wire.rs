//! What instances write to Redis and publish to each other: member records, presence events
//! and relays. Pure text, no I/O.
//!
//! Fields are separated by tabs. That is safe without escaping: room names hold no control
//! characters (PROTOCOL §1), peer IDs are hex, instance IDs are hex, and JSON text never
//! holds a raw tab. The Lua scripts in `scripts` read and write the same layout.

use crate::protocol::RoomName;

/// How the keys and channels are spread: one Redis (or Valkey) primary, or a Redis Cluster
/// whose slots several primaries share. Keys are the same in both (every key of a room
/// shares its hash tag, so each script touches one slot); the channels differ, because
/// sharded pub/sub delivers only within a slot's shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Plain pub/sub: a room's presence channel, and one relay channel per instance.
    Single,
    /// Sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`): a room's presence channel and one relay
    /// channel per instance with members in the room, all in the room's slot, so a relay
    /// and its sender's `peer-joined` come from the same shard, in order.
    Sharded,
}

impl Layout {
    /// The command the scripts and the publisher send events and relays with.
    pub fn publish_command(self) -> &'static str {
        match self {
            Layout::Single => "PUBLISH",
            Layout::Sharded => "SPUBLISH",
        }
    }

    /// Where relays in `room` for the peers of `instance` are published.
    pub fn relay_channel(self, room: &RoomName, instance: &str) -> String {
        match self {
            Layout::Single => format!("rdv:c:{instance}"),
            Layout::Sharded => format!("{}c:{instance}", room_prefix(room)),
        }
    }

    /// The channel an instance listens on for all its relays, on one Redis (subscribed
    /// with the connection); on a Redis Cluster there is one per room instead.
    pub fn instance_channel(self, instance: &str) -> Option<String> {
        match self {
            Layout::Single => Some(format!("rdv:c:{instance}")),
            Layout::Sharded => None,
        }
    }

    /// The channels an instance with members in `room` listens on for it (its relay channel
    /// of a single Redis is subscribed once, with the connection).
    pub fn room_channels(self, room: &RoomName, instance: &str) -> Vec<String> {
        match self {
            Layout::Single => vec![room_channel(room)],
            Layout::Sharded => vec![room_channel(room), self.relay_channel(room, instance)],
        }
    }
}

/// The start of every key and channel of a room: `rdv:{TAG}:`, where the tag is the room
/// name with `%` and `}` escaped, so it never ends early (Redis Cluster hashes only what is
/// between the first `{` and the next `}`) and never is empty. All of a room's keys share
/// it: Redis Cluster keeps them in one slot, which each script needs.
fn room_prefix(room: &RoomName) -> String {
    let name = room.as_str();
    let mut out = String::with_capacity(name.len() + 8);
    out.push_str("rdv:{");
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.push_str("}:");
    out
}

/// The room a presence channel belongs to, or `None` for any other channel.
pub fn presence_channel_room(channel: &str) -> Option<String> {
    unescape_tag(channel.strip_prefix("rdv:{")?.strip_suffix("}:r")?)
}

/// The room a channel of a room belongs to: its presence channel, or a relay channel of a
/// Redis Cluster (`rdv:{ROOM}:c:INSTANCE`).
pub fn channel_room(channel: &str) -> Option<String> {
    let rest = channel.strip_prefix("rdv:{")?;
    let (tag, kind) = rest.split_once('}')?;
    (kind == ":r" || kind.starts_with(":c:")).then_some(())?;
    unescape_tag(tag)
}

fn unescape_tag(tag: &str) -> Option<String> {
    if tag.contains('}') {
        return None;
    }
    let mut out = String::with_capacity(tag.len());
    let mut rest = tag;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3)? {
            "%25" => out.push('%'),
            "%7D" => out.push('}'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The keys every room script takes, in this order (`scripts` names them `M`, `S`, `CAP`,
/// `P`, `I`): members, sequence, size, parked members and incarnations.
pub fn room_keys(room: &RoomName) -> [String; 6] {
    let prefix = room_prefix(room);
    ["m", "s", "cap", "p", "i", "e"].map(|suffix| format!("{prefix}{suffix}"))
}

/// Redis key of a room's members: a hash from peer ID to [`Record`].
pub fn members_key(room: &RoomName) -> String {
    format!("{}m", room_prefix(room))
}

/// Channel of a room's presence events.
pub fn room_channel(room: &RoomName) -> String {
    format!("{}r", room_prefix(room))
}

/// What is not a room's lives under one hash tag of its own, in one slot, so the scripts
/// that renew leases and reap read it atomically.
///
/// A random value set once: when it changes, Redis lost its data (a restart without
/// persistence) and every instance is re-announcing its members.
pub const EPOCH_KEY: &str = "rdv:{rdv}:epoch";

/// A counter every renewal and reap advances: if it goes backwards, Redis came back with
/// older data (a snapshot or AOF reloaded after a restart, a failover to a lagging replica),
/// which the epoch cannot tell, since the snapshot holds the old epoch too. The generation
/// that gave an instance its lease is also its incarnation (see `scripts::REAP_ROOM`).
pub const GENERATION_KEY: &str = "rdv:{rdv}:generation";

/// Sorted set of live instances, scored by when their lease ends (ms, Redis clock).
pub const INSTANCES_KEY: &str = "rdv:{rdv}:instances";

/// Hash of instances being reaped: `instance \t generation` → the key of the rooms it had.
pub const REAPING_KEY: &str = "rdv:{rdv}:reaping";
/// When a reap was last asked for, and until when reaping holds (see `scripts::REAP`).
pub const REAP_CLOCK_KEY: &str = "rdv:{rdv}:reap-clock";

/// Redis key of the rooms an instance has (or had) members in: a set, for reaping it.
pub fn rooms_key(instance: &str) -> String {
    format!("rdv:{{rdv}}:rooms:{instance}")
}

/// A member as Redis holds it:
/// `seq \t since \t instance \t connection \t verified \t publicKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The sequence number of its (latest) announcement in the room.
    pub seq: u64,
    /// When it first joined (ms, Redis's clock): `welcome` lists members in this order, which
    /// a re-announce keeps.
    pub since: u64,
    pub instance: &'a str,
    pub connection: u64,
    pub verified: Option<bool>,
    /// The canonical key the room sees (PROTOCOL §3), as JSON text.
    pub public_key: &'a str,
}

impl<'a> Record<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut fields = text.splitn(6, '\t');
        let seq = fields.next()?.parse().ok()?;
        let since = fields.next()?.parse().ok()?;
        let instance = fields.next()?;
        let connection = fields.next()?.parse().ok()?;
        let verified = match fields.next()? {
            "1" => Some(true),
            "0" => Some(false),
            "-" => None,
            _ => return None,
        };
        let public_key = fields.next()?;
        Some(Self {
            seq,
            since,
            instance,
            connection,
            verified,
            public_key,
        })
    }
}

/// A record without its sequence number and join time, which the scripts prepend.
pub fn record_tail(
    instance: &str,
    connection: u64,
    verified: Option<bool>,
    public_key: &str,
) -> String {
    let verified = match verified {
        Some(true) => "1",
        Some(false) => "0",
        None => "-",
    };
    format!("{instance}\t{connection}\t{verified}\t{public_key}")
}

/// Why a member left, as its `L` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftReason {
    /// Its connection closed.
    Left,
    /// A verified connection took its ID (PROTOCOL §9).
    Replaced,
    /// Its instance's lease ran out.
    Lost,
}

/// One presence event on a room channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// `J \t seq \t peer \t record`
    Joined { peer: &'a str, record: Record<'a> },
    /// `L \t seq \t peer \t reason \t instance \t connection`
    Left {
        seq: u64,
        peer: &'a str,
        reason: LeftReason,
        instance: &'a str,
        connection: u64,
    },
    /// `M \t seq \t peer \t old instance \t old connection \t record`: a member held for a
    /// resume came back on the connection `record` names. Not presence: nobody is told.
    Moved {
        peer: &'a str,
        from_instance: &'a str,
        from_connection: u64,
        record: Record<'a>,
    },
}

impl<'a> Event<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let (kind, rest) = text.split_once('\t')?;
        let (seq, rest) = rest.split_once('\t')?;
        let seq: u64 = seq.parse().ok()?;
        let (peer, rest) = rest.split_once('\t')?;
        match kind {
            "J" => {
                let record = Record::parse(rest)?;
                (record.seq == seq).then_some(Event::Joined { peer, record })
            }
            "L" => {
                let mut fields = rest.splitn(3, '\t');
                let reason = match fields.next()? {
                    "left" => LeftReason::Left,
                    "replaced" => LeftReason::Replaced,
                    "lost" => LeftReason::Lost,
                    _ => return None,
                };
                let instance = fields.next()?;
                let connection = fields.next()?.parse().ok()?;
                Some(Event::Left {
                    seq,
                    peer,
                    reason,
                    instance,
                    connection,
                })
            }
            "M" => {
                let (from_instance, rest) = rest.split_once('\t')?;
                let (from_connection, rest) = rest.split_once('\t')?;
                let record = Record::parse(rest)?;
                (record.seq == seq).then_some(Event::Moved {
                    peer,
                    from_instance,
                    from_connection: from_connection.parse().ok()?,
                    record,
                })
            }
            _ => None,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Event::Joined { record, .. } | Event::Moved { record, .. } => record.seq,
            Event::Left { seq, .. } => *seq,
        }
    }
}

/// A relay for a peer on another instance, framed so that several can share one published
/// message: `LENGTH:room \t to \t text`, LENGTH counting the bytes after the colon (a relayed
/// text may hold raw newlines, so no separator character is safe). `from` is already stamped.
pub fn relay(room: &RoomName, to: &str, text: &str) -> String {
    let body = room.as_str().len() + to.len() + text.len() + 2;
    let mut out = String::with_capacity(body + 8);
    out.push_str(itoa::Buffer::new().format(body));
    out.push(':');
    out.push_str(room.as_str());
    out.push('\t');
    out.push_str(to);
    out.push('\t');
    out.push_str(text);
    out
}

/// The relays of one published message: several [`relay`]s one after another. Stops at the
/// first malformed one.
pub fn relays(mut payload: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    std::iter::from_fn(move || {
        let (relay, rest) = split_first(payload)?;
        payload = rest;
        Some(relay)
    })
}

/// What an instance channel carries besides plain relays, told apart by a first byte that
/// no relay's length starts with.
pub enum Payload<'a> {
    /// Relays from their senders' instances.
    Relays(&'a str),
    /// A moved member's handover from the instance that held it: the room and peer, then
    /// what was queued for it there, in order (see [`handover`]).
    Handover {
        room: &'a str,
        peer: &'a str,
        queued: &'a str,
    },
    /// Relays that reached the instance a member had just left, sent on once: they are
    /// never forwarded again.
    Forwarded(&'a str),
    /// An instance's marker, sent to the instance a member left and on from there to where
    /// it resumed, that it sends the member's relays straight there now (see `held`).
    Switched {
        room: &'a str,
        peer: &'a str,
        instance: &'a str,
    },
}

impl<'a> Payload<'a> {
    pub fn parse(payload: &'a str) -> Option<Self> {
        if let Some(rest) = payload.strip_prefix('H') {
            let (header, queued) = split_first(rest)?;
            let (room, peer, _) = header;
            Some(Payload::Handover { room, peer, queued })
        } else if let Some(rest) = payload.strip_prefix('F') {
            Some(Payload::Forwarded(rest))
        } else if let Some(rest) = payload.strip_prefix('S') {
            let ((room, peer, instance), _) = split_first(rest)?;
            Some(Payload::Switched {
                room,
                peer,
                instance,
            })
        } else {
            Some(Payload::Relays(payload))
        }
    }
}

/// The first framed relay of `payload` and what follows it.
fn split_first(payload: &str) -> Option<((&str, &str, &str), &str)> {
    let (length, rest) = payload.split_once(':')?;
    let length: usize = length.parse().ok()?;
    let body = rest.get(..length)?;
    let (room, body_rest) = body.split_once('\t')?;
    let (to, text) = body_rest.split_once('\t')?;
    Some(((room, to, text), &rest[length..]))
}

/// A handover: an empty relay naming the room and peer, then each queued text as a relay
/// to that peer. Sent even when nothing was queued: its arrival ends the new instance's wait.
pub fn handover<'t>(room: &RoomName, peer: &str, queued: impl Iterator<Item = &'t str>) -> String {
    let mut out = String::from("H");
    out.push_str(&relay(room, peer, ""));
    for text in queued {
        out.push_str(&relay(room, peer, text));
    }
    out
}

/// An instance's marker that it sends `peer`'s relays straight to where it resumed (see
/// [`Payload::Switched`]): framed as a relay whose text is the instance.
pub fn switched(room: &RoomName, peer: &str, instance: &str) -> String {
    format!("S{}", relay(room, peer, instance))
}

/// Relays sent on from the instance their receiver left (see [`Payload::Forwarded`]).
pub fn forwarded(room: &RoomName, to: &str, text: &str) -> String {
    format!("F{}", relay(room, to, text))
}

pub use crate::server::rooms::outbox::relay_sender;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relays_sender_is_read_from_its_head() {
        let id = "ab".repeat(32);
        let text = format!(r#"{{"type":"offer","from":"{id}","sdp":{{"from":"x"}}}}"#);
        assert_eq!(relay_sender(&text), Some(id.as_str()));
        assert_eq!(relay_sender(r#"{"type":"offer"}"#), None);
    }

    #[test]
    fn records_and_events_read_back_what_is_written() {
        let key = r#"{"crv":"P-256","kty":"EC","x":"a\tb","y":"c"}"#;
        let text = format!("7\t1000\t{}", record_tail("ab12", 42, Some(true), key));
        let record = Record::parse(&text).unwrap();
        assert_eq!(
            record,
            Record {
                seq: 7,
                since: 1000,
                instance: "ab12",
                connection: 42,
                verified: Some(true),
                public_key: key
            }
        );
        let joined = format!("J\t7\tpeer\t{text}");
        assert_eq!(
            Event::parse(&joined),
            Some(Event::Joined {
                peer: "peer",
                record
            })
        );
        assert_eq!(
            Event::parse("L\t9\tpeer\treplaced\tab12\t42"),
            Some(Event::Left {
                seq: 9,
                peer: "peer",
                reason: LeftReason::Replaced,
                instance: "ab12",
                connection: 42
            })
        );
        // A joined event whose record disagrees about the sequence is not trusted.
        assert_eq!(Event::parse(&format!("J\t8\tpeer\t{text}")), None);
        assert_eq!(Event::parse("L\t9\tpeer\tgone\tab12\t42"), None);
        let room = RoomName::new("a room").unwrap();
        let mut batch = relay(&room, "to", "{\"a\":\"\\t\"}");
        batch.push_str(&relay(&room, "other", "{\"b\":\n\t1}"));
        assert_eq!(
            relays(&batch).collect::<Vec<_>>(),
            [
                ("a room", "to", "{\"a\":\"\\t\"}"),
                ("a room", "other", "{\"b\":\n\t1}")
            ]
        );
        assert_eq!(relays("12:short").count(), 0);
        let moved = format!("M\t7\tpeer\tcd34\t5\t{text}");
        assert_eq!(
            Event::parse(&moved),
            Some(Event::Moved {
                peer: "peer",
                from_instance: "cd34",
                from_connection: 5,
                record: Record::parse(&text).unwrap(),
            })
        );
        // Channel names give their room back, whatever it holds.
        let odd = RoomName::new("a}b%7D{c").unwrap();
        assert_eq!(
            presence_channel_room(&room_channel(&odd)).as_deref(),
            Some(odd.as_str())
        );
        assert_eq!(
            channel_room(&Layout::Sharded.relay_channel(&odd, "ab12")).as_deref(),
            Some(odd.as_str())
        );
        assert_eq!(
            presence_channel_room(&Layout::Single.relay_channel(&odd, "ab12")),
            None
        );
        let handed = handover(&room, "p", ["{\"x\":1}", "{\"y\":\n2}"].into_iter());
        let Some(Payload::Handover {
            room: r,
            peer,
            queued,
        }) = Payload::parse(&handed)
        else {
            panic!("not a handover: {handed}");
        };
        assert_eq!((r, peer), ("a room", "p"));
        assert_eq!(
            relays(queued).map(|(_, _, text)| text).collect::<Vec<_>>(),
            ["{\"x\":1}", "{\"y\":\n2}"]
        );
        assert!(matches!(
            Payload::parse(&forwarded(&room, "p", "{}")),
            Some(Payload::Forwarded(rest)) if relays(rest).count() == 1
        ));
    }
}
