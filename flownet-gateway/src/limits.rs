//! Rate limits: a token bucket per client IP and per API key; and [`RecentSet`], a
//! bounded memory of recent events (outputs a node failed to deliver).

use flownet_core::rate::TokenBucket;
use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A rate: `per_minute` requests on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N` (N per minute, burst N) or `N/B` (N per minute, burst B); 0 disables.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {s:?}: expected PER_MINUTE or PER_MINUTE/BURST");
        let (rate, burst) = s.split_once('/').unwrap_or((s, s));
        Ok(Self {
            per_minute: rate.trim().parse().map_err(|_| bad())?,
            burst: burst.trim().parse().map_err(|_| bad())?,
        })
    }
}

/// Token buckets keyed by client. Idle buckets are full and carry no information, so
/// they are dropped when the map grows.
#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

/// Buckets kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Takes one token from `key`'s bucket. `Err(seconds)` says when the next token
    /// comes when there is none. A zero rate never limits.
    pub fn check(&self, key: &K, rate: Rate) -> Result<(), u64> {
        self.check_at(key, rate, Instant::now())
    }

    fn check_at(&self, key: &K, rate: Rate, now: Instant) -> Result<(), u64> {
        if rate.per_minute == 0 {
            return Ok(());
        }
        let per_second = f64::from(rate.per_minute) / 60.0;
        let capacity = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let full_after = Duration::from_secs_f64(capacity / per_second);
            buckets.retain(|_, b| now.duration_since(b.last()) < full_after);
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::full(capacity, now))
            .take(capacity, per_second, now)
            .map_err(|wait| wait.ceil().max(1.0) as u64)
    }
}

/// Keys seen in the last `ttl`, at most `cap` of them (the oldest go first): a bounded
/// memory of recent failures, so a repeated request is answered without repeating
/// the work that failed.
#[derive(Debug)]
pub struct RecentSet<K> {
    seen: Mutex<HashMap<K, Instant>>,
    cap: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone> RecentSet<K> {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            cap: cap.max(1),
            ttl,
        }
    }

    /// Remembers `key` from now.
    pub fn insert(&self, key: K) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= self.cap {
            seen.retain(|_, at| now.duration_since(*at) < self.ttl);
        }
        if seen.len() >= self.cap
            && let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(key, now);
    }

    /// Whether `key` was inserted less than `ttl` ago.
    pub fn contains(&self, key: &K) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn recent_sets_are_bounded_and_forget() {
        let set = RecentSet::new(3, Duration::from_secs(60));
        for k in 0..10 {
            set.insert(k);
        }
        assert_eq!(set.len(), 3);
        assert!(set.contains(&9) && !set.contains(&0));
        let brief = RecentSet::new(3, Duration::ZERO);
        brief.insert(1);
        assert!(!brief.contains(&1));
    }

    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_refill_at_the_rate() {
        let limiter = RateLimiter::default();
        let rate = Rate::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check_at(&"a", rate, t0).unwrap();
        }
        assert_eq!(limiter.check_at(&"a", rate, t0), Err(1));
        // Another client has its own bucket.
        limiter.check_at(&"b", rate, t0).unwrap();
        // One token a second comes back.
        limiter
            .check_at(&"a", rate, t0 + Duration::from_millis(1001))
            .unwrap();
        assert!(
            limiter
                .check_at(&"a", rate, t0 + Duration::from_millis(1002))
                .is_err()
        );
        assert!(limiter.check_at(&"c", Rate::new(0, 0), t0).is_ok());
    }

    #[test]
    fn rates_parse() {
        assert_eq!("120/20".parse::<Rate>().unwrap(), Rate::new(120, 20));
        assert_eq!("30".parse::<Rate>().unwrap(), Rate::new(30, 30));
        assert!("x/1".parse::<Rate>().is_err());
    }
}
