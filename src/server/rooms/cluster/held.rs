//! The relays of a member that resumed here from another instance (PROTOCOL §14), held so
//! that it gets each sender's relays in the order sent.
//!
//! Until an instance sees the member move, it sends the member's relays to the instance the
//! member left, which queues them (and hands the queue over) or, once the member has gone,
//! sends them on. After the move it sends them here directly, and those could overtake the
//! older ones still going the long way. So relays wait here until the long way is known to be
//! empty: what came straight from an instance waits until that instance's *switched* marker
//! comes back through the old instance (the marker follows every relay it sent there), and
//! everything waits for the handover. The old instance's own relays follow its handover on
//! the same channel and need no marker.
//!
//! Past [`HANDOVER_WAIT`] (the old instance is gone or stalled) everything goes; what still
//! comes the long way from a sender whose later relay went ahead is dropped then, never
//! delivered out of order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::server::rooms::outbox::relay_sender;

/// How long a resumed member's relays may be held back, from its move; past it (or if the
/// old instance is gone) they go without the handover.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(2);
/// How long after the move a member that stopped waiting still has late relays told apart:
/// a stalled instance comes back within a lease or is reaped.
const REMEMBERED: Duration = Duration::from_secs(60);
/// Most relays held back for one resumed member; past it they go at once.
const MAX_HELD: usize = 4096;

/// The instance a relay came straight from: `None` for this one, else that instance's relay
/// channel for the room (what a view names remote members' places by).
pub type Source = Option<Arc<str>>;

/// Which way a relay for a resumed member came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Through the instance the member left: its handover, or sent on by it after that.
    Old,
    /// Straight from its sender's instance.
    Straight(Source),
}

/// A relay with when it was read, as an outbox takes it.
pub type Relay = (Utf8Bytes, Instant);

/// What becomes of a relay for a resumed member.
#[derive(Debug)]
pub enum Verdict {
    /// Held here until what it waits for comes.
    Held,
    /// Goes to the member now.
    Go(Relay),
    /// Came the long way after a later relay of its sender went ahead: dropped.
    Late,
}

#[derive(Debug)]
pub struct Held {
    relays: Vec<(Utf8Bytes, Instant, Path)>,
    since: Instant,
    handed_over: bool,
    /// Instances that may still have relays for the member on the long way: those that had
    /// members in the room when it moved, but the old instance.
    unswitched: Vec<Source>,
    /// Once the wait is given up: the senders whose relays went ahead of what may still come
    /// the long way.
    went_ahead: Option<Vec<Box<str>>>,
}

impl Held {
    pub fn new(unswitched: Vec<Source>, now: Instant) -> Self {
        Self {
            relays: Vec::new(),
            since: now,
            handed_over: false,
            unswitched,
            went_ahead: None,
        }
    }

    /// Still waiting, and for too long: time to [`give_up`](Self::give_up).
    pub fn overdue(&self, now: Instant) -> bool {
        self.went_ahead.is_none() && now.duration_since(self.since) >= HANDOVER_WAIT
    }

    /// Long past the wait: nothing late is expected any more.
    pub fn forgettable(&self, now: Instant) -> bool {
        self.went_ahead.is_some() && now.duration_since(self.since) >= REMEMBERED
    }

    pub fn hold(&mut self, relay: Relay, path: Path) -> Verdict {
        if self.went_ahead.is_some() {
            return self.after_giving_up(relay, &path);
        }
        if self.waits(&path) {
            self.relays.push((relay.0, relay.1, path));
            Verdict::Held
        } else {
            Verdict::Go(relay)
        }
    }

    /// Past [`MAX_HELD`]: time to [`give_up`](Self::give_up).
    pub fn is_full(&self) -> bool {
        self.relays.len() >= MAX_HELD
    }

    /// The handover came with what the old instance had queued: that, then the relays here
    /// that no longer wait, in order; and how many of the queued ones came too late.
    pub fn handed_over(&mut self, queued: Vec<Relay>) -> (Vec<Relay>, usize) {
        let (mut ready, late) = self.drop_late(queued);
        self.handed_over = true;
        ready.extend(self.ready());
        (ready, late)
    }

    /// `source`'s marker came through the old instance: the relays that no longer wait.
    pub fn switched(&mut self, source: &Source) -> Vec<Relay> {
        self.unswitched.retain(|waiting| waiting != source);
        self.ready()
    }

    /// Stops waiting: everything held goes, in order, and its senders are remembered.
    pub fn give_up(&mut self) -> Vec<Relay> {
        let held = std::mem::take(&mut self.relays);
        let mut went_ahead = Vec::new();
        for (text, _, _) in &held {
            note_sender(&mut went_ahead, text);
        }
        self.went_ahead = Some(went_ahead);
        held.into_iter().map(|(text, at, _)| (text, at)).collect()
    }

    /// Nothing is left to wait for or to tell apart.
    pub fn is_done(&self) -> bool {
        self.handed_over && self.unswitched.is_empty()
    }

    fn waits(&self, path: &Path) -> bool {
        !self.handed_over || self.unswitched_source(path)
    }

    fn unswitched_source(&self, path: &Path) -> bool {
        matches!(path, Path::Straight(source) if self.unswitched.contains(source))
    }

    fn ready(&mut self) -> Vec<Relay> {
        let (waiting, ready): (Vec<_>, Vec<_>) = std::mem::take(&mut self.relays)
            .into_iter()
            .partition(|(_, _, path)| self.waits(path));
        self.relays = waiting;
        ready.into_iter().map(|(text, at, _)| (text, at)).collect()
    }

    fn after_giving_up(&mut self, relay: Relay, path: &Path) -> Verdict {
        if *path == Path::Old {
            let (mut ready, late) = self.drop_late(vec![relay]);
            return match ready.pop() {
                Some(relay) if late == 0 => Verdict::Go(relay),
                _ => Verdict::Late,
            };
        }
        // Older relays of its sender may still be on the long way.
        if !self.handed_over || self.unswitched_source(path) {
            let went_ahead = self.went_ahead.get_or_insert_with(Vec::new);
            note_sender(went_ahead, &relay.0);
        }
        Verdict::Go(relay)
    }

    /// Splits relays that came the long way into those that may go and a count of the late.
    fn drop_late(&self, relays: Vec<Relay>) -> (Vec<Relay>, usize) {
        let Some(went_ahead) = &self.went_ahead else {
            return (relays, 0);
        };
        let total = relays.len();
        let ready: Vec<Relay> = relays
            .into_iter()
            .filter(|(text, _)| {
                relay_sender(text.as_str())
                    .is_none_or(|sender| !went_ahead.iter().any(|s| &**s == sender))
            })
            .collect();
        let late = total - ready.len();
        (ready, late)
    }
}

fn note_sender(went_ahead: &mut Vec<Box<str>>, text: &Utf8Bytes) {
    if let Some(sender) = relay_sender(text.as_str())
        && !went_ahead.iter().any(|s| &**s == sender)
    {
        went_ahead.push(sender.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(from: char, n: usize) -> Relay {
        let from = from.to_string().repeat(64);
        let text = format!(r#"{{"type":"offer","from":"{from}","n":{n}}}"#);
        (Utf8Bytes::from(text), Instant::now())
    }

    fn names(relays: Vec<Relay>) -> Vec<String> {
        relays
            .into_iter()
            .map(|(text, _)| {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                format!("{}{}", &value["from"].as_str().unwrap()[..1], value["n"])
            })
            .collect()
    }

    fn went(verdict: Verdict) -> Vec<String> {
        match verdict {
            Verdict::Go(relay) => names(vec![relay]),
            Verdict::Held => vec!["held".into()],
            Verdict::Late => vec!["late".into()],
        }
    }

    #[test]
    fn everything_waits_for_the_handover_and_each_instance_for_its_marker() {
        let x: Source = Some("rdv:c:x".into());
        let y: Source = Some("rdv:c:y".into());
        let mut held = Held::new(vec![x.clone(), None], Instant::now());
        assert_eq!(
            went(held.hold(relay('x', 2), Path::Straight(x.clone()))),
            ["held"]
        );
        assert_eq!(
            went(held.hold(relay('h', 1), Path::Straight(None))),
            ["held"]
        );
        assert_eq!(went(held.hold(relay('y', 1), Path::Straight(y))), ["held"]);
        // The handover lets go what it brings, then what no marker holds: the instance
        // that joined the room after the move.
        let (ready, late) = held.handed_over(vec![relay('o', 1)]);
        assert_eq!(
            (names(ready), late),
            (vec!["o1".to_owned(), "y1".to_owned()], 0)
        );
        // x's older relay, sent on by the old instance, goes before x's held one.
        assert_eq!(went(held.hold(relay('x', 1), Path::Old)), ["x1"]);
        assert_eq!(names(held.switched(&x)), ["x2"]);
        assert!(!held.is_done());
        assert_eq!(
            went(held.hold(relay('x', 3), Path::Straight(x.clone()))),
            ["x3"]
        );
        assert_eq!(names(held.switched(&None)), ["h1"]);
        assert!(held.is_done());
    }

    #[test]
    fn given_up_everything_goes_and_what_comes_late_is_dropped_not_reordered() {
        let start = Instant::now();
        let x: Source = Some("rdv:c:x".into());
        let mut held = Held::new(vec![x.clone()], start);
        assert!(!held.overdue(start));
        assert!(held.overdue(start + HANDOVER_WAIT));
        assert_eq!(
            went(held.hold(relay('x', 2), Path::Straight(x.clone()))),
            ["held"]
        );
        assert_eq!(names(held.give_up()), ["x2"]);
        assert!(!held.overdue(start + HANDOVER_WAIT));
        // Straight relays go at once now; the old instance's late ones from x are dropped,
        // from anyone else they still go.
        assert_eq!(went(held.hold(relay('z', 5), Path::Straight(None))), ["z5"]);
        let (ready, late) = held.handed_over(vec![relay('x', 1), relay('w', 1), relay('z', 4)]);
        assert_eq!((names(ready), late), (vec!["w1".to_owned()], 2));
        assert_eq!(went(held.hold(relay('x', 1), Path::Old)), ["late"]);
        assert!(!held.forgettable(start + HANDOVER_WAIT));
        assert!(held.forgettable(start + REMEMBERED));
    }

    #[test]
    fn a_full_hold_keeps_its_order() {
        let mut held = Held::new(vec![None], Instant::now());
        for n in 0..MAX_HELD {
            assert!(matches!(
                held.hold(relay('a', n), Path::Straight(None)),
                Verdict::Held
            ));
        }
        assert!(held.is_full());
        let all = names(held.give_up());
        assert_eq!(all.len(), MAX_HELD);
        assert_eq!(
            (all[0].as_str(), all[MAX_HELD - 1].as_str()),
            ("a0", "a4095")
        );
    }
}
