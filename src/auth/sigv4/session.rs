//! Session credentials (`[auth.sigv4] sessions = true`): an `ASIA…` access key id that is
//! not in the credentials file, with the session token `[issuer.sessions]` sealed for it
//! in `X-Amz-Security-Token`.
//!
//! The token is opened with the issuer's sealing keys (the access key id must be the one
//! it was sealed for), which yields its claims and the re-derived secret; the normal SigV4
//! check then runs with that secret. Opening costs an AEAD decryption and a JSON parse, so
//! an opened token is cached per access key id (copied and swapped on a miss, read
//! lock-free, like the signing keys); a hit needs the same token and the sealing key that
//! opened it still in the folder.
//!
//! Checked on every request, hit or miss, because they change while a session lives: its
//! expiry, the operator's revocations ([`Sessions::is_revoked_by`]: one `ArcSwap` load, three
//! hash lookups) and the CRLs of its trust anchor in the truststore generation serving now
//! (one lookup by issuer and serial, [`crate::tls::Truststore::is_revoked_serial`]). A
//! trust anchor that is no longer configured refuses its sessions.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use super::credentials::{attributes_header, Credential, SessionIdentity};
use super::error::{SessionRefusal, Sigv4Error};
use crate::issuer::sessions::token::{self, SessionClaims};
use crate::issuer::sessions::{RevocationKeys, Sessions};
use crate::telemetry::metrics as m;
use crate::tls::Anchors;

/// Opened sessions kept before the cache is cleared (each entry is a live session).
const SESSION_CACHE_MAX: usize = 4_096;

/// What a session check needs besides the request: the running issuer and the trust
/// anchors of the truststore generation serving now.
#[derive(Clone, Copy)]
pub struct SessionContext<'a> {
    pub sessions: &'a Sessions,
    pub anchors: &'a Anchors,
}

/// A token opened once: what it said and the credential built from it.
struct Opened {
    token: Box<str>,
    /// The sealing key that opened it: a hit needs it still in the folder.
    kid: Box<str>,
    claims: SessionClaims,
    /// The revocation lookups' keys, built with the open (no allocation per request).
    revocation: RevocationKeys,
    credential: Arc<Credential>,
}

/// Opened session tokens by access key id.
pub(super) struct SessionCache {
    opened: ArcSwap<HashMap<Box<str>, Arc<Opened>>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.opened.load().len())
            .finish()
    }
}

impl SessionCache {
    pub(super) fn new() -> SessionCache {
        SessionCache {
            opened: ArcSwap::from_pointee(HashMap::new()),
            hits: metrics::counter!(m::SIGV4_SESSION_CACHE_HITS_TOTAL),
            misses: metrics::counter!(m::SIGV4_SESSION_CACHE_MISSES_TOTAL),
        }
    }

    /// The credential of session `akid` presenting `token` at `now`, or why not.
    pub(super) fn credential(
        &self,
        ctx: Option<SessionContext<'_>>,
        akid: &str,
        token: Option<&str>,
        now: i64,
    ) -> Result<Arc<Credential>, Sigv4Error> {
        let refuse = |r| Err(Sigv4Error::Session(r));
        let Some(token) = token else {
            return refuse(SessionRefusal::TokenMissing);
        };
        // `sessions = true` is refused by the config without `[issuer.sessions]`.
        let Some(ctx) = ctx else {
            return Err(Sigv4Error::UnknownKey);
        };
        let opened = self.open(ctx.sessions, akid, token)?;
        let c = &opened.claims;
        if c.exp <= now {
            return refuse(SessionRefusal::Expired);
        }
        if ctx.sessions.is_revoked_by(&opened.revocation) {
            return refuse(SessionRefusal::Revoked);
        }
        let Some(anchor) = ctx.anchors.get(&c.trust_anchor) else {
            return refuse(SessionRefusal::AnchorGone);
        };
        if anchor.truststore.is_revoked_serial(&c.issuer, &c.serial) {
            return refuse(SessionRefusal::CertificateRevoked);
        }
        Ok(opened.credential.clone())
    }

    /// The opened token, from the cache when it is the same token and its key is still here.
    fn open(
        &self,
        sessions: &Sessions,
        akid: &str,
        token: &str,
    ) -> Result<Arc<Opened>, Sigv4Error> {
        let keys = sessions.keys.current();
        if let Some(o) = self.opened.load().get(akid) {
            if *o.token == *token && keys.get(&o.kid).is_some() {
                self.hits.increment(1);
                return Ok(o.clone());
            }
        }
        self.misses.increment(1);
        let invalid = Sigv4Error::Session(SessionRefusal::TokenInvalid);
        let (claims, secret) = token::open(&keys, token, akid).map_err(|_| invalid)?;
        let kid = token.split('.').nth(1).unwrap_or_default();
        let credential = Arc::new(session_credential(sessions, &claims, secret)?);
        let opened = Arc::new(Opened {
            token: token.into(),
            kid: kid.into(),
            revocation: RevocationKeys::of(&claims),
            claims,
            credential,
        });
        self.opened.rcu(|cache| {
            let mut next = if cache.len() >= SESSION_CACHE_MAX {
                HashMap::new()
            } else {
                HashMap::clone(cache)
            };
            next.insert(akid.into(), opened.clone());
            next
        });
        Ok(opened)
    }
}

/// The credential a session stands for: principal `role/<role>/<session>`, the role's
/// attributes, and the header values sent to the backend, built once per session.
fn session_credential(
    sessions: &Sessions,
    c: &SessionClaims,
    secret: String,
) -> Result<Credential, Sigv4Error> {
    let Some(role) = sessions.cfg.roles.iter().find(|r| r.name == c.role) else {
        return Err(Sigv4Error::Session(SessionRefusal::RoleGone));
    };
    // Sealed by this issuer, so the names are header-safe; a value that is not (or role
    // attributes that are not printable ASCII) refuses the session rather than drop a header.
    let invalid = Sigv4Error::Session(SessionRefusal::TokenInvalid);
    let header = |v: &str| HeaderValue::from_str(v).map_err(|_| invalid);
    let principal = format!("role/{}/{}", c.role, c.session);
    let attributes_header = attributes_header(&role.attributes).map_err(|e| {
        tracing::warn!(role = %role.name, error = %e, "issuer.sessions: role attributes cannot be forwarded; refusing its sessions");
        Sigv4Error::Session(SessionRefusal::RoleGone)
    })?;
    Ok(Credential {
        access_key_header: header(&c.access_key_id)?,
        principal_header: header(&principal)?,
        access_key_id: Arc::from(c.access_key_id.as_str()),
        secret_access_key: Arc::from(secret),
        principal: Arc::from(principal),
        attributes: role.attributes.clone(),
        session_token: None,
        attributes_header,
        session: Some(SessionIdentity {
            role_header: header(&c.role)?,
            session_header: header(&c.session)?,
            source_identity_header: match c.source_identity.as_str() {
                "" => None,
                s => Some(header(s)?),
            },
            role: Arc::from(c.role.as_str()),
            session: Arc::from(c.session.as_str()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RoleConfig, SessionsConfig};
    use crate::issuer::sessions::keys::{generate, SealKeySet};

    fn sessions(dir: &std::path::Path) -> Sessions {
        generate(&dir.join("keys")).unwrap();
        Sessions::load(&SessionsConfig {
            keys: dir.join("keys"),
            state_dir: dir.join("state"),
            region: "us-east-1".into(),
            account: "000000000000".into(),
            max_skew: std::time::Duration::from_secs(300),
            trust_anchors: vec![],
            profiles: vec![],
            roles: vec![RoleConfig {
                name: "reader".into(),
                allow: vec![],
                attributes: [("bad".to_owned(), "\u{1}".to_owned())].into(),
            }],
        })
        .unwrap()
    }

    fn claims(role: &str, exp: i64) -> SessionClaims {
        SessionClaims {
            access_key_id: token::new_access_key_id().unwrap(),
            role: role.into(),
            profile: "p".into(),
            trust_anchor: "gone".into(),
            session: "s".into(),
            source_identity: String::new(),
            cert_sha256: "00".repeat(32),
            issuer: "CN=x".into(),
            serial: "1".into(),
            uri_sans: vec![],
            iat: 1,
            exp,
        }
    }

    /// The refusals the gateway tests cannot reach without changing the config under a
    /// running session: its role or trust anchor gone, role attributes unfit for a header.
    #[test]
    fn a_session_whose_role_or_anchor_is_gone_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = sessions(dir.path());
        let keys = SealKeySet::load(&dir.path().join("keys")).unwrap();
        let anchors = Anchors::new();
        let ctx = Some(SessionContext {
            sessions: &s,
            anchors: &anchors,
        });
        let cache = SessionCache::new();
        let refused = |c: &SessionClaims, now| {
            let (token, _) = token::seal(&keys, c).unwrap();
            cache
                .credential(ctx, &c.access_key_id, Some(&token), now)
                .unwrap_err()
        };
        let gone = claims("removed", 100);
        assert_eq!(
            refused(&gone, 50),
            Sigv4Error::Session(SessionRefusal::RoleGone)
        );
        // Role attributes with a control character: refused, not sent without them.
        assert_eq!(
            refused(&claims("reader", 100), 50),
            Sigv4Error::Session(SessionRefusal::RoleGone)
        );
        let (token, _) = token::seal(&keys, &gone).unwrap();
        assert_eq!(
            cache
                .credential(None, &gone.access_key_id, Some(&token), 50)
                .err(),
            Some(Sigv4Error::UnknownKey)
        );
        assert_eq!(
            cache.credential(ctx, &gone.access_key_id, None, 50).err(),
            Some(Sigv4Error::Session(SessionRefusal::TokenMissing))
        );
    }

    #[test]
    fn the_anchor_is_looked_up_on_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sessions(dir.path());
        s.cfg.roles[0].attributes.clear();
        let keys = SealKeySet::load(&dir.path().join("keys")).unwrap();
        let anchors = Anchors::new();
        let ctx = Some(SessionContext {
            sessions: &s,
            anchors: &anchors,
        });
        let cache = SessionCache::new();
        let c = claims("reader", 100);
        let (token, _) = token::seal(&keys, &c).unwrap();
        for _ in 0..2 {
            assert_eq!(
                cache
                    .credential(ctx, &c.access_key_id, Some(&token), 50)
                    .err(),
                Some(Sigv4Error::Session(SessionRefusal::AnchorGone))
            );
        }
        assert_eq!(
            cache
                .credential(ctx, &c.access_key_id, Some(&token), 100)
                .err(),
            Some(Sigv4Error::Session(SessionRefusal::Expired))
        );
    }
}
