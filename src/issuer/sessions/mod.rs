//! `[issuer.sessions]`: Roles Anywhere-compatible session credentials.
//!
//! - [`keys`]: the sealing-keys folder (hot-reloaded, the newest seals);
//! - [`token`]: access key ids, derived secrets, sealed session tokens;
//! - [`Sessions`]: the running issuer (keys, revocations in `state_dir`), held in
//!   `state::Snapshot`; `builtin::rolesanywhere` (CreateSession) and `auth::sigv4` (with
//!   `sessions = true`) read it.

pub mod check;
pub mod keys;
pub mod token;

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::oauth2::AuditSink;
use super::revocations::{now_secs, RevocationStore};
use crate::config::SessionsConfig;
use crate::telemetry::metrics as m;
use keys::SealKeys;
use token::SessionClaims;

/// The revocations file of this issuer in `state_dir` (beside `oauth2-revocations.json`).
pub const REVOCATIONS_FILE: &str = "sessions-revocations.json";

/// The longest a session can live (`max_duration` is at most 12 h), plus a minute of skew:
/// how long a revocation must be kept to outlive every session it covers.
pub const SESSION_LIFETIME_MAX_SECS: i64 = 12 * 3600 + 60;

/// The revocation subject of every session of a role.
pub fn role_subject(role: &str) -> String {
    format!("role:{role}")
}

/// The revocation subject of every session opened with a certificate (hex SHA-256 of its
/// DER, lower case).
pub fn certificate_subject(sha256_hex: &str) -> String {
    format!("cert:{}", sha256_hex.to_ascii_lowercase())
}

/// What a session can be revoked by, built once when its token is opened so the per-request
/// check only looks up.
#[derive(Debug, Clone)]
pub struct RevocationKeys {
    access_key_id: String,
    role: String,
    certificate: String,
    issued_at: i64,
}

impl RevocationKeys {
    pub fn of(c: &SessionClaims) -> RevocationKeys {
        RevocationKeys {
            access_key_id: c.access_key_id.clone(),
            role: role_subject(&c.role),
            certificate: certificate_subject(&c.cert_sha256),
            issued_at: c.iat,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("issuer.sessions: {0}")]
pub struct SessionsStartError(pub String);

/// The running session issuer.
pub struct Sessions {
    pub cfg: SessionsConfig,
    pub keys: Arc<SealKeys>,
    pub revocations: RevocationStore,
    audit: OnceLock<AuditSink>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Load the sealing keys and the revocations (creating `state_dir`); no task started.
    pub fn load(cfg: &SessionsConfig) -> Result<Sessions, SessionsStartError> {
        let keys = SealKeys::load(&cfg.keys, "sessions").map_err(SessionsStartError)?;
        let revocations =
            RevocationStore::open(&cfg.state_dir, REVOCATIONS_FILE).map_err(SessionsStartError)?;
        Ok(Sessions {
            cfg: cfg.clone(),
            keys: Arc::new(keys),
            revocations,
            audit: OnceLock::new(),
        })
    }

    /// [`Sessions::load`], then start the keys watcher (ending on `shutdown`).
    pub fn start(
        cfg: &SessionsConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Sessions>, SessionsStartError> {
        let sessions = Arc::new(Sessions::load(cfg)?);
        tokio::spawn(sessions.keys.clone().watch(shutdown));
        Ok(sessions)
    }

    /// Send audit lines to `sink` (once; later calls are ignored).
    pub fn set_audit_sink(&self, sink: AuditSink) {
        let _ = self.audit.set(sink);
    }

    /// Write one audit line (the access-log sink, or the `portcullis::audit` target).
    pub fn audit(&self, line: serde_json::Value) {
        match self.audit.get() {
            Some(sink) => sink(line.to_string()),
            None => tracing::info!(target: "portcullis::audit", "{line}"),
        }
    }

    /// Whether an opened session was revoked by the operator: its access key id, or its
    /// role or certificate for sessions issued until the revocation. The anchor's CRLs are
    /// checked by the caller. Per request, use [`Sessions::is_revoked_by`] with the keys
    /// built once per opened session.
    pub fn is_revoked(&self, c: &SessionClaims) -> bool {
        self.is_revoked_by(&RevocationKeys::of(c))
    }

    /// Lock-free: one `ArcSwap` load, three hash lookups, no allocation.
    pub fn is_revoked_by(&self, k: &RevocationKeys) -> bool {
        self.revocations.is_revoked_any(
            Some(&k.access_key_id),
            &[&k.role, &k.certificate],
            k.issued_at,
        )
    }

    /// Revoke one session by its access key id (admin `POST /issuer/sessions/revoke`).
    pub async fn revoke_access_key_id(self: &Arc<Self>, id: String) -> std::io::Result<()> {
        let until = now_secs() + SESSION_LIFETIME_MAX_SECS;
        let me = self.clone();
        blocking(move || me.revocations.revoke_id(&id, until)).await?;
        metrics::counter!(m::ISSUER_REVOCATIONS_TOTAL, "kind" => "access_key_id").increment(1);
        Ok(())
    }

    /// Revoke every session of `role` issued until now (this second included).
    pub async fn revoke_role(self: &Arc<Self>, role: String) -> std::io::Result<()> {
        self.revoke_subject(role_subject(&role), "role").await
    }

    /// Revoke every session opened with the certificate of this SHA-256 until now.
    pub async fn revoke_certificate(self: &Arc<Self>, sha256_hex: String) -> std::io::Result<()> {
        self.revoke_subject(certificate_subject(&sha256_hex), "certificate")
            .await
    }

    async fn revoke_subject(
        self: &Arc<Self>,
        subject: String,
        kind: &'static str,
    ) -> std::io::Result<()> {
        let now = now_secs();
        let until = now + SESSION_LIFETIME_MAX_SECS;
        let me = self.clone();
        blocking(move || me.revocations.revoke_subject(&subject, now, until)).await?;
        metrics::counter!(m::ISSUER_REVOCATIONS_TOTAL, "kind" => kind).increment(1);
        Ok(())
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
