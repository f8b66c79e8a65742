//! Token buckets by key (a client address, a username): at most `burst` at once, refilled at `per_minute`. What
//! the public edges use so one address or one name cannot spend a shared budget (sign-in hashing, refused calls)
//! for everyone. In memory, per process: a limit per replica, which is what protects that replica.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before idle ones are dropped; an attacker rotating keys cannot grow the map past this.
const MAX_KEYS: usize = 65_536;

#[derive(Debug)]
pub struct Throttle<K> {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// `burst` calls at once, then `per_minute` a minute. A burst of 0 refuses everything.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self { burst: f64::from(burst), per_sec: f64::from(per_minute) / 60.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            // Drop the buckets that are full again (idle keys); if none is, the newest key is refused rather
            // than let the map grow.
            buckets.retain(|_, b| self.refilled(b, now) < self.burst);
            if buckets.len() >= MAX_KEYS {
                return Err(self.wait_for(0.0));
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        let tokens = self.refilled(bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, at: now };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(self.wait_for(tokens))
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst)
    }

    fn wait_for(&self, tokens: f64) -> Duration {
        if self.per_sec <= 0.0 {
            return Duration::from_secs(60);
        }
        Duration::from_secs_f64(((1.0 - tokens) / self.per_sec).max(0.0))
    }
}

/// Whole seconds to tell a client to wait (`Retry-After`), at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_other_keys_are_untouched() {
        let t = Throttle::new(3, 60);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(t.take_at(&"a", start).is_ok());
        }
        let wait = t.take_at(&"a", start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(t.take_at(&"b", start).is_ok(), "another key has its own bucket");
        assert!(t.take_at(&"a", start + Duration::from_millis(1_001)).is_ok(), "one a second comes back");
        assert!(t.take_at(&"a", start + Duration::from_millis(1_002)).is_err());
    }

    #[test]
    fn rotating_keys_cannot_grow_the_map_past_its_cap() {
        let t = Throttle::new(1, 1);
        let now = Instant::now();
        for k in 0..MAX_KEYS + 10 {
            let _ = t.take_at(&k, now);
        }
        assert!(t.buckets.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2_100)), 3);
    }
}
