//! A connection's timed duties, served by one timer: the register deadline, the keepalive
//! check, the server's pings and fresh TURN credentials. A timer each would cost every idle
//! connection a timer entry apiece; here the session sleeps until the earliest and asks
//! what is due.

use std::time::Duration;

use tokio::time::Instant;

/// The close reason of a connection that showed no sign of life for two ping intervals:
/// its peer may come back (PROTOCOL §14).
pub const KEEPALIVE_TIMEOUT: &str = "keepalive timeout";

/// When each connection's duties fall due; only the instants, since the intervals are the
/// same for every connection (see [`Intervals`]).
#[derive(Debug)]
pub struct Deadlines {
    /// Cleared once the connection registers.
    register_by: Option<Instant>,
    next_ping: Instant,
    /// Armed at registration: credentials are counted from the `welcome` that carried them.
    next_refresh: Option<Instant>,
}

/// How often the duties recur. Passed in rather than kept: the server's configuration has
/// them, and a copy in each connection's state would be carried by every idle peer.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub ping_every: Duration,
    /// Fresh TURN credentials, when the server hands out any.
    pub refresh_every: Option<Duration>,
}

impl Intervals {
    /// Silence longer than this closes the connection (two ping intervals).
    fn idle_limit(&self) -> Duration {
        self.ping_every * 2
    }
}

/// What a wake-up found due, besides closing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chores {
    pub ping: bool,
    pub refresh: bool,
}

impl Deadlines {
    pub fn new(now: Instant, register_timeout: Duration, ping_every: Duration) -> Self {
        Self {
            register_by: Some(now + register_timeout),
            next_ping: now + ping_every,
            next_refresh: None,
        }
    }

    pub fn registered(&mut self, now: Instant, intervals: Intervals) {
        self.register_by = None;
        self.next_refresh = intervals.refresh_every.map(|every| now + every);
    }

    /// When to wake next, given when the client was last heard from.
    pub fn next(&self, last_seen: Instant, intervals: Intervals) -> Instant {
        [
            Some(last_seen + intervals.idle_limit()),
            Some(self.next_ping),
            self.register_by,
            self.next_refresh,
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the keepalive check is always scheduled")
    }

    /// What is due at `now`: the close reason if the connection must go, else its chores
    /// (each rescheduled from now).
    pub fn fire(
        &mut self,
        now: Instant,
        last_seen: Instant,
        intervals: Intervals,
    ) -> Result<Chores, &'static str> {
        if self.register_by.is_some_and(|by| now >= by) {
            return Err("register timeout");
        }
        if now >= last_seen + intervals.idle_limit() {
            return Err(KEEPALIVE_TIMEOUT);
        }
        let mut chores = Chores::default();
        if now >= self.next_ping {
            chores.ping = true;
            self.next_ping = now + intervals.ping_every;
        }
        if let Some(at) = self.next_refresh
            && now >= at
        {
            // Credentials that stopped being handed out (the secret was removed) are not
            // refreshed any more.
            self.next_refresh = intervals.refresh_every.map(|every| now + every);
            chores.refresh = self.next_refresh.is_some();
        }
        Ok(chores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn every(ping: Duration, refresh: Option<Duration>) -> Intervals {
        Intervals {
            ping_every: ping,
            refresh_every: refresh,
        }
    }

    #[test]
    fn unregistered_connections_meet_the_register_deadline_first() {
        let start = Instant::now();
        let plain = every(30 * S, None);
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S);
        assert_eq!(deadlines.next(start, plain), start + 5 * S);
        assert_eq!(
            deadlines.fire(start + 4 * S, start, plain),
            Ok(Chores::default())
        );
        assert_eq!(
            deadlines.fire(start + 5 * S, start, plain),
            Err("register timeout")
        );
    }

    #[test]
    fn registered_connections_are_pinged_and_closed_after_two_silent_intervals() {
        let start = Instant::now();
        let plain = every(30 * S, None);
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S);
        deadlines.registered(start + S, plain);
        assert_eq!(
            deadlines.next(start, plain),
            start + 30 * S,
            "the first ping"
        );
        let chores = deadlines.fire(start + 30 * S, start, plain).unwrap();
        assert!(chores.ping && !chores.refresh);
        assert_eq!(
            deadlines.next(start, plain),
            start + 60 * S,
            "silence, then the second ping"
        );
        // Heard from at 50 s: the keepalive check moves to 110 s, pings stay every 30 s.
        let heard = start + 50 * S;
        assert!(deadlines.fire(start + 60 * S, heard, plain).unwrap().ping);
        assert_eq!(deadlines.next(heard, plain), start + 90 * S);
        assert!(deadlines.fire(start + 90 * S, heard, plain).unwrap().ping);
        assert_eq!(deadlines.next(heard, plain), start + 110 * S);
        assert_eq!(
            deadlines.fire(start + 110 * S, heard, plain),
            Err("keepalive timeout")
        );
    }

    #[test]
    fn credentials_are_refreshed_from_registration_on() {
        let start = Instant::now();
        let turn = every(30 * S, Some(20 * S));
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S);
        assert_eq!(
            deadlines.fire(start + 4 * S, start, turn),
            Ok(Chores::default())
        );
        deadlines.registered(start + 4 * S, turn);
        assert_eq!(deadlines.next(start + 4 * S, turn), start + 24 * S);
        let chores = deadlines.fire(start + 24 * S, start + 4 * S, turn).unwrap();
        assert!(chores.refresh && !chores.ping);
        assert_eq!(
            deadlines.next(start + 24 * S, turn),
            start + 30 * S,
            "then the ping"
        );
    }

    #[test]
    fn credentials_no_longer_handed_out_are_not_refreshed() {
        let start = Instant::now();
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S);
        deadlines.registered(start, every(30 * S, Some(20 * S)));
        // The TURN secret was removed before the refresh fell due.
        let removed = every(30 * S, None);
        let chores = deadlines.fire(start + 20 * S, start, removed).unwrap();
        assert!(!chores.refresh);
        assert_eq!(deadlines.next(start + 20 * S, removed), start + 30 * S);
    }
}
