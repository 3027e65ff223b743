//! Validated tokens by SHA-256 of the token text, until the token expires.
//!
//! Keeps signature verification (15–40 µs) off the hot path for a client that reuses its
//! token: a hit costs one hash and one lookup in one of 32 shards (no global lock). Entries
//! carry the JWKS generation they were verified against, so a key set change (rotation,
//! removal of a compromised key) invalidates them. Only successes are cached. Per-request
//! checks (scopes, certificate binding) are done by the caller on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::token::Verified;

const SHARDS: usize = 32;

pub type TokenHash = [u8; 32];

#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<TokenHash, Entry>>>,
    per_shard: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    verified: Arc<Verified>,
    generation: u64,
    /// Seconds since the epoch after which the entry is no longer valid (exp + leeway).
    until: i64,
}

pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &TokenHash) -> &Mutex<HashMap<TokenHash, Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    pub fn get(&self, key: &TokenHash, generation: u64, now: i64) -> Option<Arc<Verified>> {
        // A poisoned shard only means another thread panicked mid-insert; the map is intact.
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let e = map.get(key)?;
        if e.generation == generation && now < e.until {
            return Some(e.verified.clone());
        }
        map.remove(key);
        None
    }

    pub fn insert(
        &self,
        key: TokenHash,
        verified: Arc<Verified>,
        generation: u64,
        until: i64,
        now: i64,
    ) {
        let mut map = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard {
            map.retain(|_, e| e.generation == generation && now < e.until);
            if map.len() >= self.per_shard {
                // Still full of live entries: drop an arbitrary one (bounded memory first).
                if let Some(k) = map.keys().next().copied() {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            key,
            Entry {
                verified,
                generation,
                until,
            },
        );
    }
}
