//! The OAuth2 client-credentials token service of `[issuer.oauth2]` (Cognito's role, with
//! certificate-bound, revocable tokens).
//!
//! [`Issuer`] holds the running state: signing keys ([`crate::issuer::keys`]), the client
//! registry ([`registry`]), the revocations ([`crate::issuer::revocations`], file
//! `oauth2-revocations.json` in `state_dir`) and the rate limiters. The endpoint logic is in
//! [`endpoints`] (token, revoke, introspect), independent of HTTP; `builtin::oauth2` is the
//! HTTP face. `auth::jwt` with `local_issuer` asks [`Issuer::token_is_live`] on every
//! request (lock-free: two `ArcSwap` loads and two hash lookups).

pub mod check;
pub mod endpoints;
pub mod registry;
pub mod registry_edit;
pub mod request;
pub mod token;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};

use super::keys::Keys;
use super::ratelimit::Limiter;
use super::revocations::{now_secs, RevocationStore};
use crate::cluster::{Bucket, Cluster};
use crate::config::issuer::TOKEN_LIFETIME_MAX;
use crate::config::Oauth2Config;
use crate::telemetry::metrics as m;
use endpoints::Limited;

/// The revocations file of this issuer in `state_dir`.
pub const REVOCATIONS_FILE: &str = "oauth2-revocations.json";

/// Where audit lines go (the access-log sink, wired by the server).
pub type AuditSink = Box<dyn Fn(String) + Send + Sync>;

pub struct Issuer {
    pub cfg: Oauth2Config,
    pub keys: Arc<Keys>,
    pub clients: Arc<registry::Clients>,
    pub revocations: RevocationStore,
    per_client: Limiter<String>,
    per_address: Limiter<IpAddr>,
    /// `[cluster]`: the fleet-wide limits (the local ones answer when Redis does not).
    fleet: OnceLock<Arc<Cluster>>,
    /// Bounds argon2 verifications in flight on the blocking pool.
    argon2: Arc<Semaphore>,
    audit: OnceLock<AuditSink>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("issuer.oauth2: {0}")]
pub struct IssuerStartError(pub String);

impl Issuer {
    /// Load keys, registry and revocations (creating `state_dir`); no task started.
    pub fn load(cfg: &Oauth2Config) -> Result<Issuer, IssuerStartError> {
        let keys = Keys::load(&cfg.keys, "oauth2").map_err(IssuerStartError)?;
        let clients = registry::Clients::load(&cfg.clients_file).map_err(IssuerStartError)?;
        let revocations =
            RevocationStore::open(&cfg.state_dir, REVOCATIONS_FILE).map_err(IssuerStartError)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Issuer {
            cfg: cfg.clone(),
            keys: Arc::new(keys),
            clients: Arc::new(clients),
            revocations,
            per_client: Limiter::new(cfg.rate_limit.per_client, cfg.rate_limit.burst),
            per_address: Limiter::new(cfg.rate_limit.per_address, cfg.rate_limit.burst),
            argon2: Arc::new(Semaphore::new(cores.div_ceil(2))),
            fleet: OnceLock::new(),
            audit: OnceLock::new(),
        })
    }

    /// [`Issuer::load`], then start the keys and registry watchers (ending on `shutdown`).
    pub fn start(
        cfg: &Oauth2Config,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Issuer>, IssuerStartError> {
        let issuer = Arc::new(Issuer::load(cfg)?);
        tokio::spawn(issuer.keys.clone().watch(shutdown.clone()));
        tokio::spawn(issuer.clients.clone().watch(shutdown));
        Ok(issuer)
    }

    /// Share revocations and token-endpoint limits with the fleet (once, before the
    /// cluster starts).
    pub fn join(&self, cluster: &Arc<Cluster>) {
        self.revocations.join(cluster);
        let _ = self.fleet.set(cluster.clone());
    }

    /// One request against the per-address limit and, with `client` (the id it claims),
    /// the per-client one after it: the fleet's in one Redis call when Redis answers within
    /// `[cluster] timeout`, else (and without `[cluster]`) this instance's, in the same
    /// order (a request refused by its address spends nothing of its client's budget).
    async fn limit(&self, ip: IpAddr, client: Option<&str>) -> Result<(), Limited> {
        if let Some(cluster) = self.fleet.get() {
            // The same GCRA numbers as the local limiters, computed once when they were made.
            let bucket = |kind, key, (interval, tolerance)| Bucket {
                kind,
                key,
                interval,
                tolerance,
            };
            let shown = ip.to_string();
            let address = bucket("address", shown.as_str(), self.per_address.gcra());
            let answer = match client {
                Some(id) => {
                    let client = bucket("client", id, self.per_client.gcra());
                    cluster.limit(&[address, client]).await
                }
                None => cluster.limit(&[address]).await,
            };
            if let Some(answer) = answer {
                return answer.map_err(|(i, wait)| match i {
                    0 => Limited::Address(wait),
                    _ => Limited::Client(wait),
                });
            }
        }
        self.per_address.check(&ip).map_err(Limited::Address)?;
        match client {
            Some(id) => self.per_client.check(id).map_err(Limited::Client),
            None => Ok(()),
        }
    }

    /// Send audit lines to `sink` (once; later calls are ignored).
    pub fn set_audit_sink(&self, sink: AuditSink) {
        let _ = self.audit.set(sink);
    }

    fn audit(&self, line: serde_json::Value) {
        match self.audit.get() {
            Some(sink) => sink(line.to_string()),
            None => tracing::info!(target: "portcullis::audit", "{line}"),
        }
    }

    /// The JWKS document of every signing key.
    pub fn jwks(&self) -> Bytes {
        self.keys.current().jwks.clone()
    }

    /// Whether a token of ours (signature and claims already checked by the caller) may
    /// still be used: its client is registered and enabled, and neither the token nor its
    /// client was revoked. Lock-free; called per request by `jwt:` routes with `local_issuer`.
    pub fn token_is_live(&self, client_id: Option<&str>, jti: Option<&str>, iat: i64) -> bool {
        let Some(id) = client_id else { return false };
        let live_client = self.clients.current().get(id).is_some_and(|c| !c.disabled);
        live_client && !self.revocations.is_revoked(jti, Some(id), iat)
    }

    /// The operator's lever (admin `POST /issuer/oauth2/revoke`): revoke one token id, kept
    /// until the longest lifetime a token can have has passed.
    pub async fn revoke_jti(self: &Arc<Self>, jti: String) -> std::io::Result<()> {
        let until = now_secs() + TOKEN_LIFETIME_MAX.as_secs() as i64 + 60;
        let me = self.clone();
        blocking(move || me.revocations.revoke_id(&jti, until)).await?;
        metrics::counter!(m::ISSUER_REVOCATIONS_TOTAL, "kind" => "jti").increment(1);
        Ok(())
    }

    /// Revoke every token of `client_id` issued until now (including this second).
    pub async fn revoke_client(self: &Arc<Self>, client_id: String) -> std::io::Result<()> {
        let now = now_secs();
        let until = now + TOKEN_LIFETIME_MAX.as_secs() as i64 + 60;
        let me = self.clone();
        blocking(move || me.revocations.revoke_subject(&client_id, now, until)).await?;
        metrics::counter!(m::ISSUER_REVOCATIONS_TOTAL, "kind" => "client").increment(1);
        Ok(())
    }

    /// The RFC 8414 metadata document (also served as `openid-configuration`).
    pub fn metadata(&self) -> serde_json::Value {
        let base = self.cfg.issuer.trim_end_matches('/');
        serde_json::json!({
            "issuer": self.cfg.issuer,
            "token_endpoint": format!("{base}/oauth2/token"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "revocation_endpoint": format!("{base}/oauth2/revoke"),
            "introspection_endpoint": format!("{base}/oauth2/introspect"),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "tls_client_auth"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "tls_client_auth"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "tls_client_auth"],
            "tls_client_certificate_bound_access_tokens": true,
            "scopes_supported": self.clients.current().all_scopes(),
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            "subject_types_supported": ["public"],
        })
    }
}

/// Run blocking file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}
