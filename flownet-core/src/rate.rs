//! The token bucket behind every rate limit (the gateway's per client and per API
//! key, the sponsor's per account and per client). Time is an argument: the bucket
//! reads no clock.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Instant,
};

/// The key a client's address is limited by: an IPv4 address as it is (an IPv4-mapped
/// IPv6 one as IPv4), an IPv6 address by its /64, the smallest block one subscriber
/// usually gets, so rotating through one's own block does not evade a limit.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

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

#[cfg(test)]
mod client_key_tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), v4);
        assert_eq!(client_key(v4), v4);
    }
}
