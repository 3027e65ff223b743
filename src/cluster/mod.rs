//! `[cluster]`: what a fleet of gateways shares through Redis (floor 0: uses `material`,
//! `config`, `shutdown` and `telemetry`; `issuer` registers its revocation stores here,
//! `state` and `server` start it). A `rediss://` connection is made by [`tls`].
//!
//! - **Revocations.** Each store registered with [`Cluster::register`] (one per issuer,
//!   named by its file, e.g. `oauth2-revocations`) has a sorted set
//!   `<key_prefix>revocations:<store>` in Redis: members are [`Entry`] texts, scores the
//!   Unix time after which the credentials they cover have all expired (the key itself
//!   expires with its latest member). A revocation made here is written to `state_dir`
//!   first (by the store), then added to the set and published on
//!   `<key_prefix>revocations` by one script; every instance applies what the others
//!   publish as it arrives. At start, and after every lost connection, an instance
//!   subscribes, pushes its own entries (those made while Redis was away), then reads every
//!   set whole before it counts as connected. Redis only adds: an entry is merged into the
//!   local state (latest expiry, latest `before`), never removes one; anything that does not
//!   parse as a revocation is refused with a log line ([`entry`]).
//! - **Limits.** [`Cluster::limit`] runs the token endpoint's GCRA in one Lua script
//!   ([`limit`]), with Redis's clock, so every instance spends one budget; a request's
//!   address and client buckets go in one call. It answers `None` (the caller uses its
//!   local limiters, counted) when Redis is down, fails or takes longer than `timeout`.
//!
//! The request path never waits on Redis: verification reads the stores' local memory.
//! The connection is kept by one task ([`sync`]): reconnect with backoff, a ping every
//! second, `portcullis_cluster_redis_up`.

pub mod entry;
pub mod limit;
mod sync;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use crate::config::ClusterConfig;
use crate::telemetry::metrics as m;
pub use entry::{Entry, Revocation};
pub use limit::Bucket;

/// A revocation store that the fleet shares (implemented by `issuer::revocations`).
pub trait SharedStore: Send + Sync + 'static {
    /// The store's name in Redis keys and messages (its file name without `.json`).
    fn name(&self) -> &str;
    /// Every entry held now (pushed to Redis at each (re)connect).
    fn entries(&self) -> Vec<Entry>;
    /// Merge entries from Redis (never removing any) and persist them; how many revoked
    /// something not revoked before. Blocking (file I/O).
    fn apply(&self, entries: Vec<Entry>) -> std::io::Result<usize>;
}

/// Where the connection task is, for the start to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Connected and subscribed; pushing and reading the sets.
    Reading,
    /// The sets were read: the local state holds the fleet's.
    Synced,
    /// The first connection failed: the start goes on with the local copy.
    Failed,
}

/// A revocation made here, on its way to Redis.
struct Outgoing {
    store: Arc<str>,
    entry: Entry,
}

/// The running fleet link of one gateway.
pub struct Cluster {
    cfg: ClusterConfig,
    /// The URL's settings; what connects to a `redis://` Redis.
    client: redis::Client,
    /// What connects to a `rediss://` Redis instead ([`tls`]).
    tls: Option<tls::Tls>,
    /// Set while Redis is connected and synced; what the limiter and writers use.
    conn: ArcSwapOption<MultiplexedConnection>,
    stores: Mutex<Vec<Arc<dyn SharedStore>>>,
    tx: mpsc::UnboundedSender<Outgoing>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
    phase: watch::Sender<Phase>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// A store's handle for publishing its new revocations.
#[derive(Clone)]
pub struct Publisher {
    store: Arc<str>,
    cluster: Arc<Cluster>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("store", &self.store)
            .finish()
    }
}

impl Publisher {
    /// Send a revocation (already in `state_dir`) to the fleet; never waits. With Redis
    /// down it stays local until the next connection pushes it (counted as a fallback).
    pub fn publish(&self, entry: Entry) {
        if !self.cluster.is_up() {
            metrics::counter!(m::CLUSTER_FALLBACK_TOTAL, "what" => "revocation").increment(1);
        }
        let _ = self.cluster.tx.send(Outgoing {
            store: self.store.clone(),
            entry,
        });
    }
}

impl Cluster {
    /// The client for `[cluster]` (reads the TLS files); nothing connects yet. Errors start
    /// with the key at fault (`cluster.tls.ca: ...`).
    pub fn new(cfg: &ClusterConfig) -> Result<Arc<Cluster>, String> {
        let client = redis::Client::open(cfg.redis_url.as_str())
            .map_err(|e| format!("cluster.redis_url: {e}"))?;
        // The crate's own TLS (the system's roots) is never used: `rediss://` needs `tls`
        // (`config::cluster` says so too; this holds for a config built in code).
        let tls = match (&cfg.tls, client.get_connection_info().addr()) {
            (Some(t), addr) => Some(tls::Tls::new(t, addr)?),
            (None, redis::ConnectionAddr::TcpTls { .. }) => {
                return Err("cluster.tls: a rediss:// URL needs `tls = { ca = ... }`".to_owned())
            }
            (None, _) => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        for what in ["rate_limit", "revocation"] {
            metrics::counter!(m::CLUSTER_FALLBACK_TOTAL, "what" => what).increment(0);
        }
        for source in ["published", "full_read"] {
            metrics::counter!(m::CLUSTER_REVOCATIONS_APPLIED_TOTAL, "source" => source)
                .increment(0);
        }
        metrics::gauge!(m::CLUSTER_REDIS_UP).set(0.0);
        Ok(Arc::new(Cluster {
            cfg: cfg.clone(),
            client,
            tls,
            conn: ArcSwapOption::empty(),
            stores: Mutex::new(Vec::new()),
            tx,
            rx: Mutex::new(Some(rx)),
            phase: watch::channel(Phase::Connecting).0,
        }))
    }

    /// Share `store` with the fleet (before [`Cluster::start`]).
    pub fn register(self: &Arc<Self>, store: Arc<dyn SharedStore>) -> Publisher {
        let name: Arc<str> = Arc::from(store.name());
        self.lock_stores().push(store);
        Publisher {
            store: name,
            cluster: self.clone(),
        }
    }

    /// Start the connection task (until `shutdown`) and wait until the fleet's revocations
    /// are read, or, when Redis cannot be reached within `timeout`, go on with the local
    /// copy (`portcullis_cluster_redis_up` 0; the task keeps trying). Once connected, the
    /// read is waited for (bounded by 30 s, for a very large set).
    pub async fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(rx) = rx else { return };
        let mut first = self.phase.subscribe();
        tokio::spawn(sync::run(self.clone(), rx, shutdown));
        let connected = tokio::time::timeout(
            self.cfg.timeout,
            first.wait_for(|p| *p != Phase::Connecting),
        )
        .await;
        let reading = matches!(connected, Ok(Ok(p)) if *p == Phase::Reading);
        let mut phase = self.phase.subscribe();
        if reading {
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                phase.wait_for(|p| *p != Phase::Reading),
            )
            .await;
        }
        let state = *self.phase.borrow();
        match state {
            Phase::Synced => tracing::info!(
                redis = %crate::config::cluster::redacted(&self.cfg.redis_url),
                "cluster: connected; the fleet's revocations are applied"),
            _ => tracing::warn!(
                redis = %crate::config::cluster::redacted(&self.cfg.redis_url),
                "cluster: Redis not reachable; starting on the local revocations (retrying in the background)"),
        }
    }

    /// Whether Redis is connected and synced now.
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    /// One request against the fleet-wide GCRAs of `buckets`, checked in order in one
    /// round trip ([`limit`]): `Some(Ok)` passes every one, `Some(Err((i, wait)))` is over
    /// the limit of `buckets[i]`, `None` when Redis did not answer within `timeout`
    /// (counted; the caller asks its local limiters).
    pub async fn limit(&self, buckets: &[Bucket<'_>]) -> Option<Result<(), limit::Refused>> {
        let answer = match self.conn.load_full() {
            Some(conn) => {
                let conn = MultiplexedConnection::clone(&conn);
                let call = limit::check(conn, &self.cfg.key_prefix, buckets);
                match tokio::time::timeout(self.cfg.timeout, call).await {
                    Ok(Ok(r)) => Some(r),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "cluster: rate-limit script failed");
                        None
                    }
                    Err(_) => None,
                }
            }
            None => None,
        };
        if answer.is_none() {
            metrics::counter!(m::CLUSTER_FALLBACK_TOTAL, "what" => "rate_limit").increment(1);
        }
        answer
    }

    fn lock_stores(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn SharedStore>>> {
        // Poisoning only means a registration panicked; the list is intact.
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stores(&self) -> Vec<Arc<dyn SharedStore>> {
        self.lock_stores().clone()
    }

    fn set_key(&self, store: &str) -> String {
        format!("{}revocations:{store}", self.cfg.key_prefix)
    }

    fn channel(&self) -> String {
        format!("{}revocations", self.cfg.key_prefix)
    }
}
