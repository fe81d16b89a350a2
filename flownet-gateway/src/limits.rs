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
/// The map is bounded: past [`MAX_BUCKETS`] clients, new ones share one overflow
/// bucket until idle ones are pruned; and pruning (a scan) runs only when the map has
/// grown since the last one, not on every check.
#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, TokenBucket>,
    overflow: Option<TokenBucket>,
    prune_above: usize,
}

impl<K> Default for RateLimiter<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                overflow: None,
                prune_above: PRUNE_ABOVE,
            }),
        }
    }
}

/// Buckets kept before idle ones are first pruned.
const PRUNE_ABOVE: usize = 10_000;
/// Most buckets kept at all.
pub const MAX_BUCKETS: usize = 50_000;

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
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = &mut *guard;
        if b.map.len() > b.prune_above {
            let full_after = Duration::from_secs_f64(capacity / per_second);
            b.map
                .retain(|_, bucket| now.duration_since(bucket.last()) < full_after);
            // The next scan waits until the map has doubled again.
            b.prune_above = (b.map.len() * 2).max(PRUNE_ABOVE);
        }
        let bucket = if let Some(bucket) = b.map.get_mut(key) {
            bucket
        } else if b.map.len() < MAX_BUCKETS {
            b.map
                .entry(key.clone())
                .or_insert_with(|| TokenBucket::full(capacity, now))
        } else {
            b.overflow
                .get_or_insert_with(|| TokenBucket::full(capacity, now))
        };
        bucket
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

/// How many of something each key holds open (event streams per client), each at
/// most `max`; a key holding none takes no room.
#[derive(Debug)]
pub struct OpenCounts<K> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K> Default for OpenCounts<K> {
    fn default() -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> OpenCounts<K> {
    /// Opens one for `key` unless it holds `max` already.
    pub fn try_open(&self, key: &K, max: usize) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(key);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Closes one that `key` opened.
    pub fn close(&self, key: &K) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(key);
            }
        }
    }

    pub fn open(&self, key: &K) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn open_counts_cap_each_key() {
        let c = OpenCounts::default();
        assert!(c.try_open(&1, 2) && c.try_open(&1, 2));
        assert!(!c.try_open(&1, 2));
        assert!(c.try_open(&2, 2));
        c.close(&1);
        assert!(c.try_open(&1, 2));
        assert!(!c.try_open(&3, 0));
        assert_eq!(c.open(&3), 0);
    }

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
    fn the_map_is_bounded_and_new_clients_past_it_share_a_bucket() {
        let limiter = RateLimiter::default();
        let rate = Rate::new(1, 1);
        let t0 = Instant::now();
        for k in 0..MAX_BUCKETS + 10 {
            let _ = limiter.check_at(&k, rate, t0);
        }
        let len = limiter.buckets.lock().unwrap().map.len();
        assert!(len <= MAX_BUCKETS, "{len}");
        // Two newcomers past the bound share the overflow bucket: the second waits.
        assert!(limiter.check_at(&(MAX_BUCKETS + 100), rate, t0).is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!("120/20".parse::<Rate>().unwrap(), Rate::new(120, 20));
        assert_eq!("30".parse::<Rate>().unwrap(), Rate::new(30, 30));
        assert!("x/1".parse::<Rate>().is_err());
    }
}
