//! The token, revocation (RFC 7009) and introspection (RFC 7662) logic, over an already
//! parsed request ([`Caller`]); `builtin::oauth2` turns HTTP into a `Caller` and the
//! results back into HTTP.
//!
//! Client authentication (all three endpoints), in order:
//! 1. the per-address rate limit (before any work but reading the form);
//! 2. the client id: from Basic credentials (`client_secret_basic`) or the form
//!    (`client_secret_post` with `client_secret`, `tls_client_auth` without);
//! 3. the per-client rate limit, keyed by the claimed id (registered or not).
//!    Steps 1 and 3 are one call ([`Issuer::limit`]; with `[cluster]` one Redis round
//!    trip): the request is read first (no I/O), a request refused there spends only its
//!    address's budget, and a refusal by the address limit comes before any other answer;
//! 4. a client with a `certificate` entry must present a matching verified certificate on
//!    this connection, and if it also sends a secret, that must match too; any other client
//!    must send its secret. Every failure is the same `invalid_client` answer (the audit
//!    line and the metric say which it was), so no answer tells whether a client exists.
//!
//! Each token request writes one JSON audit line (never the secret or the token).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::registry::{self, Client, SecretHash};
use super::request::{invalid_client, invalid_request, Basic, Form, OAuthError};
use super::token::{self, Mint};
use super::Issuer;
use crate::identity::Identity;
use crate::issuer::revocations::now_secs;
use crate::telemetry::metrics as m;

/// One request to an issuer endpoint, as the HTTP face parsed it.
pub struct Caller<'a> {
    pub peer: SocketAddr,
    /// The connection's verified client certificate.
    pub identity: Option<&'a Identity>,
    /// `Authorization: Basic`: `None` without the header, `Some(Err)` when unusable.
    pub basic: Option<Result<Basic, OAuthError>>,
    pub form: Form,
}

/// The client a request claims to be, read from it (step 2), not yet verified.
struct Claim<'c> {
    id: &'c str,
    secret: Option<&'c str>,
    raw: Option<&'c str>,
    method: &'static str,
    basic: bool,
}

/// Which rate limit refused a request, and how long to wait.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limited {
    Address(std::time::Duration),
    Client(std::time::Duration),
}

impl Limited {
    fn error(self) -> OAuthError {
        match self {
            Limited::Address(wait) => rate_limited("per_address", wait),
            Limited::Client(wait) => rate_limited("per_client", wait),
        }
    }
}

/// A client that proved who it is, and how.
struct Authenticated {
    client: Arc<Client>,
    method: &'static str,
}

/// What the audit line of one token request says.
#[derive(Default)]
struct Audit<'a> {
    client_id: Option<String>,
    method: Option<&'static str>,
    requested: Option<&'a str>,
    granted: Option<String>,
    jti: Option<String>,
}

impl Caller<'_> {
    fn used_basic(&self) -> bool {
        self.basic.is_some()
    }

    /// SHA-256 of the verified client certificate.
    fn thumbprint(&self) -> Option<[u8; 32]> {
        self.identity
            .and_then(|id| hex::decode(&id.fingerprint).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
    }
}

impl Issuer {
    /// `POST /oauth2/token`: the 200 JSON body, or the error.
    pub async fn token(self: &Arc<Self>, caller: &Caller<'_>) -> Result<Value, OAuthError> {
        let mut audit = Audit::default();
        let result = self.token_inner(caller, &mut audit).await;
        let known = audit
            .client_id
            .as_deref()
            .filter(|id| self.clients.current().get(id).is_some())
            .map(str::to_owned);
        let (res, reason) = match &result {
            Ok(_) => ("issued", "ok"),
            Err(e) => ("refused", e.reason),
        };
        metrics::counter!(m::ISSUER_TOKENS_TOTAL,
            "client" => known.unwrap_or_else(|| "unknown".to_owned()), "result" => res, "reason" => reason)
        .increment(1);
        self.audit(json!({
            "type": "oauth2_token",
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "client": caller.peer.to_string(),
            "client_id": audit.client_id.map(|id| id.chars().take(registry::MAX_CLIENT_ID).collect::<String>()),
            "auth_method": audit.method,
            "certificate_fingerprint": caller.identity.map(|i| i.fingerprint.as_str()),
            "requested_scope": audit.requested.map(|s| s.chars().take(512).collect::<String>()),
            "granted_scope": audit.granted,
            "jti": audit.jti,
            "result": res,
            "reason": reason,
        }));
        result
    }

    async fn token_inner<'a>(
        self: &Arc<Self>,
        caller: &'a Caller<'_>,
        audit: &mut Audit<'a>,
    ) -> Result<Value, OAuthError> {
        let read = self.token_request(caller);
        let limited = self.limit(caller.peer.ip(), claimed(&read)).await;
        if let Err(l @ Limited::Address(_)) = limited {
            return Err(l.error());
        }
        audit.client_id = self.claimed_id(caller).map(str::to_owned);
        audit.requested = caller.form.get("scope").ok().flatten();
        limited.map_err(Limited::error)?;
        let (scope, claim) = read?;
        let auth = self.authenticate(caller, claim).await?;
        audit.method = Some(auth.method);
        self.issue(caller, audit, &auth, scope)
    }

    /// What a token request asks for, read before the limits: the scope it names and the
    /// client it claims to be (the form's errors in the order of the checks).
    fn token_request<'c>(
        &self,
        caller: &'c Caller<'_>,
    ) -> Result<(Option<&'c str>, Claim<'c>), OAuthError> {
        let scope = caller.form.get("scope")?;
        match caller.form.get("grant_type")? {
            None => {
                return Err(invalid_request(
                    "missing_grant_type",
                    "grant_type is required",
                ))
            }
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "unsupported_grant_type",
                    "only client_credentials is supported",
                ))
            }
        }
        Ok((scope, self.claim(caller)?))
    }

    /// A token for `auth`'s client, with `scope` (what it asked for) checked.
    fn issue<'a>(
        &self,
        caller: &Caller<'_>,
        audit: &mut Audit<'a>,
        auth: &Authenticated,
        scope: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let client = &auth.client;
        if client.disabled {
            return Err(OAuthError::new(
                "unauthorized_client",
                "client_disabled",
                "this client may not obtain tokens",
            ));
        }
        let mut granted: Vec<&str> = Vec::new();
        match scope {
            None => granted.extend(client.scopes.iter().map(String::as_str)),
            Some(s) => {
                for want in s.split_whitespace() {
                    if !client.scopes.iter().any(|c| c == want) {
                        return Err(OAuthError::new(
                            "invalid_scope",
                            "scope_not_allowed",
                            "a requested scope is not allowed for this client",
                        ));
                    }
                    if !granted.contains(&want) {
                        granted.push(want);
                    }
                }
            }
        }
        let scope = granted.join(" ");
        let lifetime = client
            .token_lifetime
            .unwrap_or(self.cfg.token_lifetime)
            .min(self.cfg.token_lifetime);
        let iat = now_secs();
        let keys = self.keys.current();
        let minted = token::mint(
            &keys,
            &Mint {
                issuer: &self.cfg.issuer,
                client_id: &client.id,
                scope: &scope,
                iat,
                exp: iat + lifetime.as_secs() as i64,
                cnf: caller.thumbprint(),
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, "oauth2: could not sign a token");
            OAuthError::new(
                "server_error",
                "signing_failed",
                "the token could not be issued",
            )
        })?;
        audit.jti = Some(minted.jti);
        audit.granted = Some(scope.clone());
        Ok(json!({
            "access_token": minted.token,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "scope": scope,
        }))
    }

    /// `POST /oauth2/revoke` (RFC 7009): revoke the caller's own token; a well-formed
    /// request succeeds whatever the token is (another client's token stays valid).
    pub async fn revoke(self: &Arc<Self>, caller: &Caller<'_>) -> Result<(), OAuthError> {
        let auth = self.limited_authenticate(caller).await?;
        let token = self.token_param(caller)?;
        let read = token::read(&self.keys.current(), &self.cfg.issuer, token);
        let Some(claims) = read else {
            return Ok(());
        };
        if claims.client_id != auth.client.id || claims.exp <= now_secs() {
            return Ok(());
        }
        let me = self.clone();
        super::blocking(move || me.revocations.revoke_id(&claims.jti, claims.exp))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "oauth2: could not persist a revocation");
                OAuthError::new(
                    "server_error",
                    "revocation_not_saved",
                    "the revocation could not be saved",
                )
            })?;
        metrics::counter!(m::ISSUER_REVOCATIONS_TOTAL, "kind" => "jti").increment(1);
        Ok(())
    }

    /// `POST /oauth2/introspect` (RFC 7662): `{"active": false}` exactly for anything not
    /// currently valid.
    pub async fn introspect(self: &Arc<Self>, caller: &Caller<'_>) -> Result<Value, OAuthError> {
        self.limited_authenticate(caller).await?;
        let token = self.token_param(caller)?;
        let inactive = json!({"active": false});
        let keys = self.keys.current();
        let Some(c) = token::read(&keys, &self.cfg.issuer, token) else {
            return Ok(inactive);
        };
        if c.exp <= now_secs() || !self.token_is_live(Some(&c.client_id), Some(&c.jti), c.iat) {
            return Ok(inactive);
        }
        let mut out = json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "token_type": "Bearer",
            "token_use": c.token_use,
            "exp": c.exp,
            "iat": c.iat,
            "iss": c.iss,
            "jti": c.jti,
        });
        if let Some(cnf) = c.cnf {
            out["cnf"] = cnf;
        }
        Ok(out)
    }

    /// `token` (required) and `token_type_hint` (optional, known values only).
    fn token_param<'c>(&self, caller: &'c Caller<'_>) -> Result<&'c str, OAuthError> {
        match caller.form.get("token_type_hint")? {
            None | Some("access_token") | Some("refresh_token") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_token_type",
                    "unsupported_token_type",
                    "token_type_hint must be access_token or refresh_token",
                ))
            }
        }
        caller
            .form
            .get("token")?
            .ok_or_else(|| invalid_request("missing_token", "token is required"))
    }

    /// Steps 1 to 4 for the revocation and introspection endpoints.
    async fn limited_authenticate(&self, caller: &Caller<'_>) -> Result<Authenticated, OAuthError> {
        let claim = self.claim(caller);
        let id = claim.as_ref().ok().map(|c| c.id);
        self.limit(caller.peer.ip(), id)
            .await
            .map_err(Limited::error)?;
        self.authenticate(caller, claim?).await
    }

    /// The client id the request names (Basic first, else the form), unverified.
    fn claimed_id<'c>(&self, caller: &'c Caller<'_>) -> Option<&'c str> {
        match &caller.basic {
            Some(Ok(b)) => Some(b.client_id.as_str()),
            Some(Err(_)) => None,
            None => caller.form.get("client_id").ok().flatten(),
        }
    }

    /// Step 2: the client id and secret the request gives, and how.
    fn claim<'c>(&self, caller: &'c Caller<'_>) -> Result<Claim<'c>, OAuthError> {
        let basic = caller.used_basic();
        let form_id = caller.form.get("client_id")?;
        let form_secret = caller.form.get("client_secret")?;
        let (id, secret, raw, method) = match &caller.basic {
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(b)) => {
                if form_secret.is_some() || form_id.is_some_and(|f| f != b.client_id) {
                    return Err(invalid_request(
                        "multiple_client_auth",
                        "use one client authentication method",
                    ));
                }
                let raw = b.raw_secret.as_deref();
                (
                    b.client_id.as_str(),
                    Some(b.secret.as_str()),
                    raw,
                    "client_secret_basic",
                )
            }
            None => match (form_id, form_secret) {
                (None, _) => return Err(invalid_client("missing_client_id", false)),
                (Some(id), Some(s)) => (id, Some(s), None, "client_secret_post"),
                (Some(id), None) => (id, None, None, "tls_client_auth"),
            },
        };
        // No registered id is longer (registry::check_client_id); refusing longer ones
        // here also bounds the limiter's memory.
        if id.len() > registry::MAX_CLIENT_ID {
            return Err(invalid_client("unknown_client", basic));
        }
        Ok(Claim {
            id,
            secret,
            raw,
            method,
            basic,
        })
    }

    /// Step 4, once the limits passed. The per-client limit took the id claimed,
    /// registered or not: a limit that only registered ids hit would tell which ids exist.
    async fn authenticate(
        &self,
        caller: &Caller<'_>,
        claim: Claim<'_>,
    ) -> Result<Authenticated, OAuthError> {
        let Claim {
            id,
            secret,
            raw,
            method,
            basic,
        } = claim;
        let known = self.clients.current().get(id).cloned();
        let Some(client) = known else {
            // Same work as a wrong secret, so timing does not tell either.
            if let Some(s) = secret {
                let _ = SecretHash::Sha256([0; 32]).verify_fast(s);
            }
            return Err(invalid_client("unknown_client", basic));
        };
        if client.certificate.is_some() {
            if caller.identity.is_none() {
                return Err(invalid_client("certificate_required", basic));
            }
            if !client.certificate_matches(caller.identity) {
                return Err(invalid_client("certificate_mismatch", basic));
            }
        }
        match (secret, &client.secret) {
            (None, _) if client.certificate.is_some() => {}
            (None, _) => return Err(invalid_client("missing_secret", basic)),
            (Some(_), None) => return Err(invalid_client("wrong_secret", basic)),
            (Some(s), Some(hash)) => {
                if !self.verify_secret(hash, s, raw).await {
                    return Err(invalid_client("wrong_secret", basic));
                }
            }
        }
        let method = if secret.is_none() {
            "tls_client_auth"
        } else {
            method
        };
        Ok(Authenticated { client, method })
    }

    /// A fast hash inline; argon2 on the blocking pool, at most a few at a time, so a flood
    /// of guesses waits here instead of taking the async worker threads.
    async fn verify_secret(&self, hash: &SecretHash, secret: &str, raw: Option<&str>) -> bool {
        let candidates: Vec<String> = std::iter::once(secret)
            .chain(raw)
            .map(str::to_owned)
            .collect();
        if let Some(ok) = hash.verify_fast(secret) {
            return ok || raw.is_some_and(|r| hash.verify_fast(r) == Some(true));
        }
        let Ok(_permit) = self.argon2.clone().acquire_owned().await else {
            return false;
        };
        let hash = hash.clone();
        tokio::task::spawn_blocking(move || candidates.iter().any(|c| hash.verify_slow(c)))
            .await
            .unwrap_or(false)
    }
}

fn rate_limited(limit: &'static str, wait: std::time::Duration) -> OAuthError {
    metrics::counter!(m::ISSUER_RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    OAuthError {
        retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
        ..OAuthError::new(
            "temporarily_unavailable",
            "rate_limited",
            "too many requests; retry later",
        )
    }
}

/// base64url SHA-256 of a certificate, as in `cnf.x5t#S256` (for tests and tools).
pub fn x5t_s256(leaf_der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(leaf_der))
}

/// The client id of a request read whole, for the per-client limit.
fn claimed<'c>(read: &Result<(Option<&str>, Claim<'c>), OAuthError>) -> Option<&'c str> {
    read.as_ref().ok().map(|(_, c)| c.id)
}
