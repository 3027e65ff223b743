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
/// The fleet-wide limiter (`cluster::Cluster::limit`) takes the same ([`Limiter::gcra`]).
fn gcra(rate: Rate, burst: u32) -> (Duration, Duration) {
    let interval = rate.interval().max(Duration::from_nanos(1));
    (interval, interval.saturating_mul(burst.max(1) - 1))
}

impl<K: Hash + Eq> Limiter<K> {
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

    /// The GCRA's interval and tolerance this limiter runs ([`gcra`]), for the fleet-wide
    /// limiter to run the same.
    pub fn gcra(&self) -> (Duration, Duration) {
        (
            Duration::from_nanos(self.interval),
            Duration::from_nanos(self.tolerance),
        )
    }

    /// `Ok` if a request for `key` may pass now (and count it), else how long to wait.
    /// `key` may be a borrowed form (`&str` for `String` keys): it is copied only when a
    /// key is tracked for the first time.
    pub fn check<Q>(&self, key: &Q) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.start.elapsed().as_nanos() as u64;
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        // Poisoning only means another request panicked mid-update; the map is intact.
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = map.get_mut(key) {
            let t = (*tat).max(now);
            if t - now > self.tolerance {
                return Err(Duration::from_nanos(t - now - self.tolerance));
            }
            *tat = t + self.interval;
            return Ok(());
        }
        if map.len() >= CAPACITY / SHARDS {
            map.retain(|_, t| *t > now);
            if map.len() >= CAPACITY / SHARDS {
                return Ok(());
            }
        }
        // A new key's bucket is full: it passes (a tolerance of 0 still lets one through).
        map.insert(key.to_owned(), now + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys_are_checked_by_str_and_report_their_gcra() {
        let rate = Rate::parse("2/s").unwrap();
        let l: Limiter<String> = Limiter::new(rate, 2);
        assert_eq!(l.gcra(), gcra(rate, 2));
        assert_eq!(l.gcra().0, Duration::from_millis(500));
        assert!(l.check("client-1").is_ok());
        assert!(l.check("client-1").is_ok());
        assert!(l.check("client-1").is_err(), "burst of 2 spent");
        assert!(l.check("client-2").is_ok());
    }

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
