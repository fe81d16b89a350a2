//! The token bucket behind every rate limit (the gateway's per client and per API
//! key, the sponsor's per account and per client). Time is an argument: the bucket
//! reads no clock.

use std::time::Instant;

/// A bucket of tokens: each request takes one; tokens come back at a steady rate up
/// to the bucket's capacity, so a burst passes at once and a steady flow at the rate.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens at `now`.
    pub fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            at: now,
        }
    }

    /// When the bucket was last taken from.
    pub fn last(&self) -> Instant {
        self.at
    }

    /// Takes one token at `now`, after refilling `per_second` tokens a second (at most
    /// to `capacity`) since the last take. `Err(seconds)` says how long until a token
    /// is back when there is none. A `now` before the last take counts as the same
    /// instant.
    pub fn take(&mut self, capacity: f64, per_second: f64, now: Instant) -> Result<(), f64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(2.0, t0);
        assert!(b.take(2.0, 1.0, t0).is_ok());
        assert!(b.take(2.0, 1.0, t0).is_ok());
        let wait = b.take(2.0, 1.0, t0).unwrap_err();
        assert!((wait - 1.0).abs() < 1e-9);
        assert!(b.take(2.0, 1.0, t0 + Duration::from_secs(1)).is_ok());
        // A long pause refills to the capacity, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.take(2.0, 1.0, later).is_ok());
        assert!(b.take(2.0, 1.0, later).is_ok());
        assert!(b.take(2.0, 1.0, later).is_err());
    }
}
