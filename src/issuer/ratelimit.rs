//! A keyed rate limiter (GCRA, the token bucket as one timestamp per key): `burst`
//! requests at once, then one per `interval`. Used per client and per peer address on the
//! issuer endpoints.
//!
//! Keys live in 16 shards, each a small mutex-held map; a shard over its share of the
//! capacity first forgets keys whose bucket is full again (equivalent to never seen), then,
//! if still full, refuses to track new keys by letting them pass — memory stays bounded
//! and a flood of fresh addresses cannot evict the limits of the busy ones.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Rate;

const SHARDS: usize = 16;
/// Keys tracked at most, per limiter.
const CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
pub struct Limiter<K> {
    interval: u64,
    tolerance: u64,
    start: Instant,
    hasher: std::collections::hash_map::RandomState,
    /// Key → theoretical arrival time (ns since `start`).
    shards: Vec<Mutex<HashMap<K, u64>>>,
}

/// The GCRA's two numbers for `rate` and `burst`: the emission interval, and the
/// tolerance (how far ahead of now a key's arrival time may run: `burst - 1` intervals).
/// The fleet-wide limiter (`cluster::Cluster::limit`) takes the same.
pub fn gcra(rate: Rate, burst: u32) -> (Duration, Duration) {
    let interval = rate.interval().max(Duration::from_nanos(1));
    (interval, interval.saturating_mul(burst.max(1) - 1))
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate, burst: u32) -> Limiter<K> {
        let (interval, tolerance) = gcra(rate, burst);
        Limiter {
            interval: interval.as_nanos() as u64,
            tolerance: tolerance.as_nanos() as u64,
            start: Instant::now(),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// `Ok` if a request for `key` may pass now (and count it), else how long to wait.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.start.elapsed().as_nanos() as u64;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // Poisoning only means another request panicked mid-update; the map is intact.
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            return Err(Duration::from_nanos(tat - now - self.tolerance));
        }
        if !map.contains_key(key) && map.len() >= CAPACITY / SHARDS {
            map.retain(|_, t| *t > now);
            if map.len() >= CAPACITY / SHARDS {
                return Ok(());
            }
        }
        map.insert(key.clone(), tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_a_wait() {
        let l = Limiter::new(Rate::parse("1/m").unwrap(), 3);
        for _ in 0..3 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(l.check(&"b").is_ok(), "keys are independent");
    }
}
