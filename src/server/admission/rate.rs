//! Per-connection message rate limit: a token bucket (PROTOCOL §6, `rate-limited`).

use std::time::Instant;

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Over the rate: drop it and say `rate-limited`.
    Drop,
    /// Over the rate for a whole burst in a row: the sender is not backing off; close (1008).
    Close,
}

/// The tokens of a token bucket and when they were last counted. The rate and capacity are
/// passed in, so the many buckets of one limit (one per client) do not each store them.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            last: now,
        }
    }

    /// Adds what `per_second` earned since the last call, up to `capacity`; the tokens now.
    pub fn refill(&mut self, now: Instant, per_second: f64, capacity: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.tokens
    }

    /// Refills, then takes `cost` tokens if they are there.
    pub fn try_take(&mut self, cost: f64, now: Instant, per_second: f64, capacity: f64) -> bool {
        if self.refill(now, per_second, capacity) >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    bucket: TokenBucket,
    dropped_in_a_row: u32,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            bucket: TokenBucket::full(f64::from(burst), now),
            dropped_in_a_row: 0,
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.try_take(1.0, now, self.per_second, self.burst) {
            self.dropped_in_a_row = 0;
            return Verdict::Accept;
        }
        self.dropped_in_a_row += 1;
        if f64::from(self.dropped_in_a_row) > self.burst {
            Verdict::Close
        } else {
            Verdict::Drop
        }
    }
}

/// A server-wide budget for expensive work (checking proofs of possession), in units per
/// second with a burst of one second's worth; unlike [`RateLimiter`] it never closes
/// anything, it only says whether the work may be done now.
#[derive(Debug)]
pub struct CostBudget {
    per_second: f64,
    bucket: std::sync::Mutex<TokenBucket>,
}

impl CostBudget {
    pub fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second);
        Self {
            per_second,
            bucket: std::sync::Mutex::new(TokenBucket::full(per_second, now)),
        }
    }

    /// Takes `cost` units if they are there.
    pub fn try_take(&self, cost: u32, now: Instant) -> bool {
        self.bucket.lock().expect("never poisoned").try_take(
            f64::from(cost),
            now,
            self.per_second,
            self.per_second,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_rate_then_closes_a_persistent_flood() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 3, start);
        for _ in 0..3 {
            assert_eq!(limiter.check(start), Verdict::Accept);
        }
        assert_eq!(limiter.check(start), Verdict::Drop);
        // 100 ms at 10/s refills one token.
        assert_eq!(
            limiter.check(start + Duration::from_millis(100)),
            Verdict::Accept
        );
        let later = start + Duration::from_millis(100);
        for _ in 0..3 {
            assert_eq!(limiter.check(later), Verdict::Drop);
        }
        assert_eq!(limiter.check(later), Verdict::Close);
    }

    #[test]
    fn the_cost_budget_refills_at_its_rate() {
        let start = Instant::now();
        let budget = CostBudget::new(100, start);
        assert!(budget.try_take(60, start));
        assert!(!budget.try_take(60, start));
        assert!(budget.try_take(40, start));
        assert!(!budget.try_take(1, start));
        assert!(budget.try_take(50, start + Duration::from_millis(500)));
        assert!(
            !budget.try_take(200, start + Duration::from_secs(60)),
            "never above a second's worth"
        );
    }
}
