//! A connection's timed duties, served by one timer: the register deadline, the keepalive
//! check, the server's pings and fresh TURN credentials. A timer each would cost every idle
//! connection a timer entry apiece; here the session sleeps until the earliest and asks
//! what is due.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Deadlines {
    /// Cleared once the connection registers.
    register_by: Option<Instant>,
    /// Silence longer than this closes the connection (two ping intervals).
    idle_limit: Duration,
    ping_every: Duration,
    next_ping: Instant,
    refresh_every: Option<Duration>,
    /// Armed at registration: credentials are counted from the `welcome` that carried them.
    next_refresh: Option<Instant>,
}

/// What a wake-up found due, besides closing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chores {
    pub ping: bool,
    pub refresh: bool,
}

impl Deadlines {
    pub fn new(
        now: Instant,
        register_timeout: Duration,
        ping_every: Duration,
        refresh_every: Option<Duration>,
    ) -> Self {
        Self {
            register_by: Some(now + register_timeout),
            idle_limit: ping_every * 2,
            ping_every,
            next_ping: now + ping_every,
            refresh_every,
            next_refresh: None,
        }
    }

    pub fn registered(&mut self, now: Instant) {
        self.register_by = None;
        self.next_refresh = self.refresh_every.map(|every| now + every);
    }

    /// When to wake next, given when the client was last heard from.
    pub fn next(&self, last_seen: Instant) -> Instant {
        [
            Some(last_seen + self.idle_limit),
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
    pub fn fire(&mut self, now: Instant, last_seen: Instant) -> Result<Chores, &'static str> {
        if self.register_by.is_some_and(|by| now >= by) {
            return Err("register timeout");
        }
        if now >= last_seen + self.idle_limit {
            return Err("keepalive timeout");
        }
        let mut chores = Chores::default();
        if now >= self.next_ping {
            chores.ping = true;
            self.next_ping = now + self.ping_every;
        }
        if let (Some(at), Some(every)) = (self.next_refresh, self.refresh_every)
            && now >= at
        {
            chores.refresh = true;
            self.next_refresh = Some(now + every);
        }
        Ok(chores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn unregistered_connections_meet_the_register_deadline_first() {
        let start = Instant::now();
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S, None);
        assert_eq!(deadlines.next(start), start + 5 * S);
        assert_eq!(deadlines.fire(start + 4 * S, start), Ok(Chores::default()));
        assert_eq!(
            deadlines.fire(start + 5 * S, start),
            Err("register timeout")
        );
    }

    #[test]
    fn registered_connections_are_pinged_and_closed_after_two_silent_intervals() {
        let start = Instant::now();
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S, None);
        deadlines.registered(start + S);
        assert_eq!(deadlines.next(start), start + 30 * S, "the first ping");
        let chores = deadlines.fire(start + 30 * S, start).unwrap();
        assert!(chores.ping && !chores.refresh);
        assert_eq!(
            deadlines.next(start),
            start + 60 * S,
            "silence, then the second ping"
        );
        // Heard from at 50 s: the keepalive check moves to 110 s, pings stay every 30 s.
        let heard = start + 50 * S;
        assert!(deadlines.fire(start + 60 * S, heard).unwrap().ping);
        assert_eq!(deadlines.next(heard), start + 90 * S);
        assert!(deadlines.fire(start + 90 * S, heard).unwrap().ping);
        assert_eq!(deadlines.next(heard), start + 110 * S);
        assert_eq!(
            deadlines.fire(start + 110 * S, heard),
            Err("keepalive timeout")
        );
    }

    #[test]
    fn credentials_are_refreshed_from_registration_on() {
        let start = Instant::now();
        let mut deadlines = Deadlines::new(start, 5 * S, 30 * S, Some(20 * S));
        assert_eq!(deadlines.fire(start + 4 * S, start), Ok(Chores::default()));
        deadlines.registered(start + 4 * S);
        assert_eq!(deadlines.next(start + 4 * S), start + 24 * S);
        let chores = deadlines.fire(start + 24 * S, start + 4 * S).unwrap();
        assert!(chores.refresh && !chores.ping);
        assert_eq!(
            deadlines.next(start + 24 * S),
            start + 30 * S,
            "then the ping"
        );
    }
}
