//! The `jwt:NAME` method: an OAuth2 access token (`Authorization: Bearer`) issued by the
//! provider `[auth.jwt.NAME]`, validated against its JWKS, with the route's scopes.
//!
//! Per request: the token is hashed and looked up in the provider's cache; on a miss it is
//! parsed ([`token::parse`]), its signature verified against the current key set (an
//! unknown `kid` triggers one JWKS refetch, at most once per `kid_miss_refetch_interval`),
//! its claims checked, and the result cached until the token expires. Then, cached or not,
//! the per-request checks: RFC 8705 certificate binding against this connection's client
//! certificate, and the route's scopes. A refusal is 401 `invalid_token` (403
//! `insufficient_scope` for a missing scope) with a fixed reason.
//!
//! Key sets live behind `ArcSwap`: a background task refreshes a URL source every
//! `refresh` (conditional GET) or polls a file source every second, builds the new set
//! completely and swaps it in; a failed fetch or a bad document keeps the last good set.

pub mod cache;
pub mod jwks;
pub mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{header, HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Mutex};

use self::cache::TokenCache;
use self::jwks::Keyset;
pub use self::token::{Reject, Verified};
use crate::config::defaults as d;
use crate::config::{JwksSource, JwtConfig};
use crate::fetch::{Backoff, Fetched, Fetcher, Limits, Validators};
use crate::identity::ConnInfo;
use crate::issuer::oauth2::Issuer;
use crate::telemetry::metrics as m;

/// How often a `jwks_file` is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(1);

/// How often a `local_issuer` provider takes the issuer's current key set (a cheap digest
/// comparison; a token with an unknown kid takes it at once).
const LOCAL_POLL: Duration = Duration::from_millis(250);

/// The first retry after a failed scheduled JWKS fetch (doubling up to `refresh`).
const JWKS_FIRST_RETRY: Duration = Duration::from_secs(5);

const JWKS_LIMITS: Limits = Limits {
    accept: "application/json, application/jwk-set+json",
    timeout: d::JWKS_FETCH_TIMEOUT,
    max_size: d::JWKS_MAX_SIZE,
};

/// Every configured provider, by name.
#[derive(Debug, Default)]
pub struct Providers {
    map: HashMap<String, Arc<Provider>>,
    /// Headers any provider may set from claims: stripped from every incoming request.
    forward_headers: Vec<HeaderName>,
}

/// One provider: its config, current key set, token cache and fetch state.
#[derive(Debug)]
pub struct Provider {
    cfg: JwtConfig,
    keys: ArcSwap<Generation>,
    next_generation: AtomicU64,
    cache: TokenCache,
    fetcher: Option<Fetcher>,
    /// Held during a fetch (single flight); holds the last response's validators.
    fetch_state: Mutex<Validators>,
    /// Milliseconds since `started` of the last kid-miss refetch; 0 = none yet.
    last_kid_miss: AtomicU64,
    started: Instant,
    /// SHA-256 of the last document published, so an unchanged one keeps the cache.
    last_digest: std::sync::Mutex<Option<[u8; 32]>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
    /// `validations_total{result="accepted",reason="ok"}`, registered once: a labelled
    /// `counter!` per request builds a key and looks it up in the registry every time.
    accepted: metrics::Counter,
    /// `local_issuer`: this gateway's token service (keys and revocations).
    local: Option<Arc<Issuer>>,
}

#[derive(Debug)]
struct Generation {
    id: u64,
    set: Keyset,
}

#[derive(Debug, thiserror::Error)]
#[error("auth.jwt.{name}: {message}")]
pub struct JwtStartError {
    pub name: String,
    pub message: String,
}

impl Providers {
    /// Load every provider's first key set (start-up fails if one cannot be had) and start
    /// the refresh tasks, which end when `shutdown` turns true.
    pub async fn start(
        configs: &[JwtConfig],
        issuer: Option<&Arc<Issuer>>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Providers, JwtStartError> {
        let mut out = Providers::default();
        for cfg in configs {
            let local = match (&cfg.jwks, issuer) {
                (JwksSource::Local, Some(i)) => Some(i.clone()),
                (JwksSource::Local, None) => {
                    return Err(JwtStartError {
                        name: cfg.name.clone(),
                        message: "local_issuer needs a running [issuer.oauth2]".into(),
                    })
                }
                _ => None,
            };
            let p = Arc::new(Provider::load(cfg.clone(), local).await?);
            for (_, h) in &cfg.forward_claims {
                if !out.forward_headers.contains(h) {
                    out.forward_headers.push(h.clone());
                }
            }
            tokio::spawn(p.clone().refresh_loop(shutdown.clone()));
            out.map.insert(cfg.name.clone(), p);
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.map.get(name)
    }

    /// Remove every header a provider could set from claims, so a client cannot forge one:
    /// also a name that reads as one once `_` is read as `-` (only a listener with
    /// `headers_with_underscores = "allow"` lets such a name through to here).
    pub fn strip_forwarded(&self, headers: &mut HeaderMap) {
        if self.forward_headers.is_empty() {
            return;
        }
        for h in &self.forward_headers {
            headers.remove(h);
        }
        let aliases: Vec<HeaderName> = headers
            .keys()
            .filter(|n| {
                n.as_str().contains('_')
                    && self
                        .forward_headers
                        .iter()
                        .any(|f| crate::identity::reads_as(n.as_str(), f.as_str(), false))
            })
            .cloned()
            .collect();
        for a in aliases {
            headers.remove(a);
        }
    }
}

/// What `portcullis check` can verify without the network: the CA bundle of a URL source
/// loads, a file source parses into at least one usable key.
pub fn check(cfg: &JwtConfig) -> Result<(), String> {
    match &cfg.jwks {
        JwksSource::Url(url) => Fetcher::new(url, cfg.jwks_ca.as_deref(), JWKS_LIMITS)
            .map(drop)
            .map_err(|e| e.to_string()),
        JwksSource::File(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
            Keyset::parse(&bytes, &cfg.algorithms)
                .map(drop)
                .map_err(|e| format!("jwks_file {}: {e}", path.display()))
        }
        // The issuer's keys are checked with `[issuer.oauth2]`.
        JwksSource::Local => Ok(()),
    }
}

/// What a start does first for a `jwks_url` provider, for `portcullis check`: fetch the
/// key set once and parse it. Other sources, and a URL whose fetcher cannot be built
/// (reported by [`check`]), pass.
pub async fn check_first_fetch(cfg: &JwtConfig) -> Result<(), String> {
    let JwksSource::Url(url) = &cfg.jwks else {
        return Ok(());
    };
    let Ok(fetcher) = Fetcher::new(url, cfg.jwks_ca.as_deref(), JWKS_LIMITS) else {
        return Ok(());
    };
    first_fetch(&fetcher, cfg).await.map(drop)
}

/// The first fetch of a URL source: the document, its key set and validators. The
/// message names the URL.
async fn first_fetch(
    f: &Fetcher,
    cfg: &JwtConfig,
) -> Result<(Vec<u8>, Keyset, Validators), String> {
    let url = match &cfg.jwks {
        JwksSource::Url(url) => url.as_str(),
        JwksSource::File(_) | JwksSource::Local => "",
    };
    match f.fetch(&Validators::default()).await {
        Ok(Fetched::Updated(body, v)) => {
            let set = Keyset::parse(&body, &cfg.algorithms)
                .map_err(|e| format!("JWKS from {url}: {e}"))?;
            Ok((body.to_vec(), set, v))
        }
        Ok(Fetched::NotModified) => Err(format!("first JWKS fetch: 304 (from {url})")),
        Err(e) => Err(format!("first JWKS fetch failed: {e} (from {url})")),
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Provider {
    /// `forward_token`: whether the backend gets the client's bearer token.
    pub fn forwards_token(&self) -> bool {
        self.cfg.forward_token
    }

    async fn load(cfg: JwtConfig, local: Option<Arc<Issuer>>) -> Result<Provider, JwtStartError> {
        let fail = |message: String| JwtStartError {
            name: cfg.name.clone(),
            message,
        };
        let fetcher = match &cfg.jwks {
            JwksSource::Url(url) => Some(
                Fetcher::new(url, cfg.jwks_ca.as_deref(), JWKS_LIMITS)
                    .map_err(|e| fail(e.to_string()))?,
            ),
            JwksSource::File(_) | JwksSource::Local => None,
        };
        let (bytes, set, validators) = match (&fetcher, &cfg.jwks) {
            (None, JwksSource::Local) => {
                let bytes = local.as_ref().map(|i| i.jwks()).unwrap_or_default();
                let set = Keyset::parse(&bytes, &cfg.algorithms)
                    .map_err(|e| fail(format!("the issuer's keys: {e}")))?;
                (bytes.to_vec(), set, Validators::default())
            }
            (Some(f), _) => first_fetch(f, &cfg).await.map_err(fail)?,
            (None, JwksSource::File(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| fail(format!("jwks_file {}: {e}", path.display())))?;
                let set = Keyset::parse(&bytes, &cfg.algorithms)
                    .map_err(|e| fail(format!("jwks_file {}: {e}", path.display())))?;
                (bytes, set, Validators::default())
            }
            (None, JwksSource::Url(_)) => return Err(fail("no fetcher".into())),
        };
        tracing::info!(provider = %cfg.name, keys = set.len(), skipped = set.skipped, "JWKS loaded");
        Ok(Provider {
            keys: ArcSwap::from_pointee(Generation { id: 1, set }),
            next_generation: AtomicU64::new(2),
            cache: TokenCache::new(d::JWT_CACHE_CAPACITY),
            fetcher,
            fetch_state: Mutex::new(validators),
            last_kid_miss: AtomicU64::new(0),
            started: Instant::now(),
            last_digest: std::sync::Mutex::new(Some(Sha256::digest(&bytes).into())),
            hits: metrics::counter!(m::AUTH_JWT_CACHE_HITS_TOTAL, "provider" => cfg.name.clone()),
            misses: metrics::counter!(m::AUTH_JWT_CACHE_MISSES_TOTAL, "provider" => cfg.name.clone()),
            accepted: metrics::counter!(m::AUTH_JWT_VALIDATIONS_TOTAL, "provider" => cfg.name.clone(), "result" => "accepted", "reason" => "ok"),
            local,
            cfg,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Swap in a new key set, unless the document is the one already published (an issuer
    /// without ETag support), which would needlessly empty the token cache.
    fn publish(&self, bytes: &[u8], set: Keyset) -> &'static str {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        {
            // Held only here, off the request path.
            let mut last = self.last_digest.lock().unwrap_or_else(|e| e.into_inner());
            if *last == Some(digest) {
                return "not_modified";
            }
            *last = Some(digest);
        }
        let id = self.next_generation.fetch_add(1, Ordering::Relaxed);
        tracing::info!(provider = %self.cfg.name, keys = set.len(), skipped = set.skipped, "JWKS updated");
        self.keys.store(Arc::new(Generation { id, set }));
        "updated"
    }

    /// One conditional fetch; a failure keeps the current set. `why` labels the metric; the
    /// result label is returned.
    async fn refetch(&self, why: &'static str) -> &'static str {
        let Some(fetcher) = &self.fetcher else {
            return "not_modified";
        };
        let mut validators = self.fetch_state.lock().await;
        let result = match fetcher.fetch(&validators).await {
            Ok(Fetched::NotModified) => "not_modified",
            Ok(Fetched::Updated(body, v)) => match Keyset::parse(&body, &self.cfg.algorithms) {
                Ok(set) => {
                    *validators = v;
                    self.publish(&body, set)
                }
                Err(e) => {
                    tracing::warn!(provider = %self.cfg.name, error = %e, "JWKS refused; keeping the last good set");
                    "invalid"
                }
            },
            Err(e) => {
                tracing::warn!(provider = %self.cfg.name, error = %e, "JWKS fetch failed; keeping the last good set");
                "failed"
            }
        };
        metrics::counter!(m::AUTH_JWKS_FETCHES_TOTAL, "provider" => self.cfg.name.clone(), "trigger" => why, "result" => result)
            .increment(1);
        result
    }

    /// After an unknown `kid`: refetch now unless one was done within the interval. Waits
    /// for a fetch in flight either way, so the caller sees its result.
    async fn refetch_for_unknown_kid(&self) {
        if self.local.is_some() {
            self.take_local_keys();
            return;
        }
        if self.fetcher.is_none() {
            return;
        }
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_kid_miss.load(Ordering::Acquire);
        let interval = self.cfg.kid_miss_refetch_interval.as_millis() as u64;
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if due
            && self
                .last_kid_miss
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.refetch("kid_miss").await;
        } else {
            drop(self.fetch_state.lock().await);
        }
    }

    /// `local_issuer`: publish the issuer's current key set if it changed.
    fn take_local_keys(&self) {
        let Some(issuer) = &self.local else { return };
        let bytes = issuer.jwks();
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        // Held only here, off the request path: an unchanged set is not parsed again.
        if *self.last_digest.lock().unwrap_or_else(|e| e.into_inner()) == Some(digest) {
            return;
        }
        match Keyset::parse(&bytes, &self.cfg.algorithms) {
            Ok(set) => {
                self.publish(&bytes, set);
            }
            Err(e) => {
                tracing::warn!(provider = %self.cfg.name, error = %e, "issuer keys unusable; keeping the last good set")
            }
        }
    }

    async fn refresh_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (period, path) = match &self.cfg.jwks {
            JwksSource::Url(_) => (self.cfg.refresh, None),
            JwksSource::File(p) => (FILE_POLL, Some(p.clone())),
            JwksSource::Local => loop {
                tokio::select! {
                    _ = tokio::time::sleep(LOCAL_POLL) => {}
                    _ = shutdown.changed() => return,
                }
                if *shutdown.borrow() {
                    return;
                }
                self.take_local_keys();
            },
        };
        let mut last_digest = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| Sha256::digest(&b));
        // A failed or refused scheduled fetch is retried soon rather than a whole `refresh`
        // later, so a key rotation during an issuer outage is picked up when it ends.
        let mut backoff = Backoff::new(JWKS_FIRST_RETRY, period);
        let mut delay = period;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let Some(path) = &path else {
                let result = self.refetch("schedule").await;
                delay = backoff.next(!matches!(result, "failed" | "invalid"));
                continue;
            };
            let Ok(bytes) = tokio::fs::read(path).await else {
                continue;
            };
            let digest = Sha256::digest(&bytes);
            if last_digest == Some(digest) {
                continue;
            }
            last_digest = Some(digest);
            let result = match Keyset::parse(&bytes, &self.cfg.algorithms) {
                Ok(set) => self.publish(&bytes, set),
                Err(e) => {
                    tracing::warn!(provider = %self.cfg.name, error = %e, "jwks_file refused; keeping the last good set");
                    "invalid"
                }
            };
            metrics::counter!(m::AUTH_JWKS_FETCHES_TOTAL, "provider" => self.cfg.name.clone(), "trigger" => "file", "result" => result)
                .increment(1);
        }
    }

    /// Validate the request's bearer token for a route that requires `scopes`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
        scopes: &[String],
    ) -> Result<Arc<Verified>, Reject> {
        let result = self.check(headers, conn, scopes).await;
        match &result {
            Ok(_) => self.accepted.increment(1),
            Err(r) => metrics::counter!(m::AUTH_JWT_VALIDATIONS_TOTAL, "provider" => self.cfg.name.clone(), "result" => "rejected", "reason" => r.reason())
                .increment(1),
        }
        result
    }

    async fn check(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
        scopes: &[String],
    ) -> Result<Arc<Verified>, Reject> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(Reject::MissingToken)?;
        if values.next().is_some() {
            return Err(Reject::Malformed);
        }
        if value.len() > self.cfg.max_token_size + 7 {
            return Err(Reject::TooLarge);
        }
        let text = value.to_str().map_err(|_| Reject::NotBearer)?;
        let token = match text.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(Reject::NotBearer),
        };
        let now = now_secs();
        let key = cache::hash(token);
        let generation = self.keys.load().id;
        let verified = match self.cache.get(&key, generation, now) {
            Some(v) => {
                self.hits.increment(1);
                v
            }
            None => {
                self.misses.increment(1);
                let parsed = token::parse(token, &self.cfg)?;
                let mut keys = self.keys.load_full();
                match parsed.verify_signature(&keys.set) {
                    Err(Reject::UnknownKid) => {
                        // Boxed: the JWKS fetch (TLS client) is rare and large; inline it
                        // would size every request's future (BENCHMARKS.md, round 2).
                        Box::pin(self.refetch_for_unknown_kid()).await;
                        keys = self.keys.load_full();
                        parsed.verify_signature(&keys.set)?;
                    }
                    other => other?,
                }
                let v = Arc::new(parsed.check_claims(&self.cfg, now)?);
                self.cache
                    .insert(key, v.clone(), keys.id, v.valid_until, now);
                v
            }
        };
        // Per request, cached or not: revocations and the registry (a `local_issuer`; the
        // cache must never hide a revocation), the connection's certificate, the scopes.
        if let Some(issuer) = &self.local {
            let iat = verified.iat.unwrap_or(i64::MIN);
            if !issuer.token_is_live(verified.client_id.as_deref(), verified.jti.as_deref(), iat) {
                return Err(Reject::Revoked);
            }
        }
        match &verified.cnf_x5t {
            Some(want) => {
                let have = conn
                    .identity()
                    .and_then(|id| hex::decode(&id.fingerprint).ok());
                if have.as_deref() != Some(want.as_slice()) {
                    return Err(Reject::CertificateMismatch);
                }
            }
            None if self.cfg.require_certificate_binding => return Err(Reject::UnboundToken),
            None => {}
        }
        if !scopes.iter().all(|s| verified.scopes.contains(s)) {
            return Err(Reject::InsufficientScope);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests;
