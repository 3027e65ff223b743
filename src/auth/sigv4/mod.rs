//! The `sigv4` method: the request carries an AWS Signature Version 4 made with a secret
//! key that portcullis knows (see [`credentials`]).
//!
//! Runs in the authenticate phase, after the pipeline has buffered the body (up to
//! `max_payload_buffer`; larger signed bodies were refused with 413 before this). Both the
//! `Authorization: AWS4-HMAC-SHA256 ...` header form and the presigned-URL form
//! (`X-Amz-Algorithm`, ...) are accepted; a request mixing them is refused. Failures are
//! 403 with AWS's error code ([`Sigv4Error::code`]) and a fixed reason label
//! ([`Sigv4Error::reason`]) for logs and metrics; a mismatch never reveals the expected
//! signature.
//!
//! Hot path: the signing key (four HMACs) is cached per (access key, date, region,
//! service) — the credential scope — and checked against the current secret on every hit,
//! so a rotated key never verifies with a stale cache entry.

pub mod canonical;
pub mod credentials;
mod error;
mod parse;
mod session;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use self::canonical::{RequestParts, ALGORITHM};
pub use self::credentials::SessionIdentity;
pub use self::credentials::{Credential, CredentialSource, FileCredentials, LookupError};
pub use self::error::{SessionRefusal, Sigv4Error};
pub use self::parse::parse_amz_date;
use self::parse::{header_date, parse_auth};
use self::session::SessionCache;
pub use self::session::SessionContext;
use crate::config::Sigv4Config;
use crate::telemetry::metrics as m;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Presigned URLs may not live longer than this, whatever the config says (AWS's limit).
pub const MAX_PRESIGN_EXPIRY_LIMIT: Duration =
    crate::config::defaults::SIGV4_MAX_PRESIGN_EXPIRY_LIMIT;
/// Signing-key cache entries kept before the cache is cleared (keys change daily anyway).
const KEY_CACHE_MAX: usize = 4_096;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Which form the request was signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Header,
    Presigned,
}

/// What the verifier needs to see of a request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Path and query exactly as received (still percent-encoded by the client).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// The request's host: `Host`, or HTTP/2 `:authority`.
    pub host: Option<&'a HeaderValue>,
    /// The body, buffered by the pipeline.
    pub body: &'a [u8],
}

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub credential: Arc<Credential>,
    pub form: Form,
}

/// The sigv4 verifier of one configuration: settings, credential source, key cache.
#[derive(Debug)]
pub struct Verifier {
    regions: Vec<String>,
    services: Vec<String>,
    max_skew: u64,
    max_presign_expiry: u64,
    allow_unsigned_payload: bool,
    pub max_payload_buffer: u64,
    source: Arc<dyn CredentialSource>,
    /// `sessions = true`: an `ASIA…` id the source does not know is a session credential.
    sessions: bool,
    /// Opened session tokens by access key id (see [`session`]).
    session_cache: SessionCache,
    /// Credential scope "AKID/date/region/service" → (secret it was derived from, key).
    /// Read lock-free on every request; copied and swapped on a miss (once per key, scope
    /// and day), so the hot path never takes a lock.
    key_cache: ArcSwap<HashMap<String, CachedKey>>,
    /// Counters hit on every request, registered once: `counter!` looks its key up in the
    /// registry on each call (BENCHMARKS.md, round 2).
    verified_ok: metrics::Counter,
    key_hits: metrics::Counter,
    key_misses: metrics::Counter,
}

/// A cached signing key and the secret it was derived from.
type CachedKey = (Arc<str>, [u8; 32]);

/// A request ready for the signature comparison.
pub(crate) struct Built {
    pub form: Form,
    pub has_token: bool,
    pub credential: Arc<Credential>,
    /// Read by the conformance tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub canonical_request: Vec<u8>,
    pub string_to_sign: String,
    /// The signing key of the credential scope (cached per scope).
    pub signing_key: [u8; 32],
    pub signature: [u8; 32],
}

/// Whether the request carries SigV4 credentials of either form (used to pick an
/// `auth_any` alternative).
pub fn carries_sigv4(headers: &HeaderMap, query: Option<&str>) -> bool {
    has_auth_header(headers) || query.is_some_and(has_presign_params)
}

fn has_auth_header(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(ALGORITHM.as_bytes()))
}

fn has_presign_params(query: &str) -> bool {
    query.split('&').any(|p| {
        let k = p.split_once('=').map_or(p, |(k, _)| k);
        k.eq_ignore_ascii_case("X-Amz-Algorithm")
            || k.eq_ignore_ascii_case("X-Amz-Signature")
            || k.eq_ignore_ascii_case("X-Amz-Credential")
    })
}

impl Verifier {
    pub fn new(config: &Sigv4Config, source: Arc<dyn CredentialSource>) -> Verifier {
        Verifier {
            regions: config.regions.clone(),
            services: config.services.clone(),
            max_skew: config.max_skew.as_secs(),
            max_presign_expiry: config.max_presign_expiry.as_secs(),
            allow_unsigned_payload: config.allow_unsigned_payload,
            max_payload_buffer: config.max_payload_buffer,
            source,
            sessions: config.sessions,
            session_cache: SessionCache::new(),
            key_cache: ArcSwap::from_pointee(HashMap::new()),
            verified_ok: metrics::counter!(m::SIGV4_VERIFICATIONS_TOTAL, "result" => "accepted", "reason" => "ok"),
            key_hits: metrics::counter!(m::SIGV4_KEY_CACHE_HITS_TOTAL),
            key_misses: metrics::counter!(m::SIGV4_KEY_CACHE_MISSES_TOTAL),
        }
    }

    /// Verify `req` at `now` (seconds since the Unix epoch), counting the outcome.
    pub fn verify(&self, req: &SignedRequest<'_>, now: i64) -> Result<Verified, Sigv4Error> {
        self.verify_sessions(req, None, now)
    }

    /// [`Verifier::verify`], with what session credentials are checked against (`None`:
    /// no `[issuer.sessions]` runs, so no session credential verifies).
    pub fn verify_sessions(
        &self,
        req: &SignedRequest<'_>,
        sessions: Option<SessionContext<'_>>,
        now: i64,
    ) -> Result<Verified, Sigv4Error> {
        let r = self.check(req, sessions, now);
        match &r {
            Ok(_) => self.verified_ok.increment(1),
            Err(e) => metrics::counter!(m::SIGV4_VERIFICATIONS_TOTAL, "result" => "rejected", "reason" => e.reason())
                .increment(1),
        }
        r
    }

    fn check(
        &self,
        req: &SignedRequest<'_>,
        sessions: Option<SessionContext<'_>>,
        now: i64,
    ) -> Result<Verified, Sigv4Error> {
        let b = self.build(req, sessions, now, false)?;
        if self.signature_matches(&b) {
            return Ok(Verified {
                credential: b.credential,
                form: b.form,
            });
        }
        // AWS accepts a presigned URL whose X-Amz-Security-Token was appended after signing
        // (the suite's post-sts-header-after); only then is the second canonical form built.
        if b.form == Form::Presigned && b.has_token {
            let b = self.build(req, sessions, now, true)?;
            if self.signature_matches(&b) {
                return Ok(Verified {
                    credential: b.credential,
                    form: b.form,
                });
            }
        }
        Err(Sigv4Error::SignatureMismatch)
    }

    fn signature_matches(&self, b: &Built) -> bool {
        let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(&b.signing_key) else {
            return false;
        };
        mac.update(b.string_to_sign.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&b.signature).is_ok()
    }

    /// Everything up to the signature comparison: the checks, the credential, the
    /// canonical request and the string to sign.
    /// With `omit_token`, a presigned URL's X-Amz-Security-Token is left out of the
    /// canonical query.
    pub(crate) fn build(
        &self,
        req: &SignedRequest<'_>,
        sessions: Option<SessionContext<'_>>,
        now: i64,
        omit_token: bool,
    ) -> Result<Built, Sigv4Error> {
        let auth = parse_auth(req)?;
        // Credential scope.
        let mut parts = auth.credential.splitn(5, '/');
        let (Some(akid), Some(sdate), Some(region), Some(service), Some(term)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Sigv4Error::Malformed("sigv4_bad_credential"));
        };
        if akid.is_empty() || term != "aws4_request" || sdate.len() != 8 {
            return Err(Sigv4Error::Malformed("sigv4_bad_credential"));
        }
        if !self.regions.iter().any(|r| r == region) || !self.services.iter().any(|s| s == service)
        {
            return Err(Sigv4Error::BadScope);
        }

        // Date and time window.
        let (amz_date, t) = match auth.form {
            Form::Presigned => {
                let d = auth
                    .date
                    .as_deref()
                    .ok_or(Sigv4Error::Malformed("sigv4_incomplete"))?;
                let t = parse_amz_date(d).ok_or(Sigv4Error::BadDate)?;
                (Cow::Borrowed(d), t)
            }
            Form::Header => header_date(req.headers)?,
        };
        if !amz_date.starts_with(sdate) {
            return Err(Sigv4Error::BadDate);
        }
        let skew = self.max_skew as i64;
        match auth.form {
            Form::Header => {
                if (now - t).abs() > skew {
                    return Err(Sigv4Error::Expired);
                }
            }
            Form::Presigned => {
                let exp: u64 = auth
                    .expires
                    .as_deref()
                    .and_then(|e| e.parse().ok())
                    .ok_or(Sigv4Error::Malformed("sigv4_bad_expires"))?;
                if exp > self.max_presign_expiry {
                    return Err(Sigv4Error::ExpiryTooLong);
                }
                if now < t - skew || now > t + exp as i64 {
                    return Err(Sigv4Error::Expired);
                }
            }
        }

        // Signed headers: lowercase, sorted, unique; host and every x-amz-* among them.
        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        if signed
            .iter()
            .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
            || signed.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(Sigv4Error::Malformed("sigv4_bad_signed_headers"));
        }
        if !signed.contains(&"host") {
            return Err(Sigv4Error::UnsignedHeader);
        }
        for name in req.headers.keys() {
            let n = name.as_str();
            if n.starts_with("x-amz-")
                && *name != SECURITY_TOKEN
                && signed.binary_search(&n).is_err()
            {
                return Err(Sigv4Error::UnsignedHeader);
            }
        }
        if auth.form == Form::Header
            && req.headers.get(AMZ_DATE).is_none()
            && !signed.contains(&"date")
        {
            return Err(Sigv4Error::UnsignedHeader);
        }
        let headers = canonical::signed_values(&signed, req.host, req.headers)
            .ok_or(Sigv4Error::SignedHeaderMissing)?;

        // Payload.
        let body_digest;
        let body_hash = if req.body.is_empty() {
            canonical::EMPTY_SHA256
        } else {
            body_digest = canonical::hex32(&Sha256::digest(req.body).into());
            std::str::from_utf8(&body_digest).unwrap_or_default()
        };
        let payload_hash = match req
            .headers
            .get(AMZ_CONTENT_SHA256)
            .map(HeaderValue::as_bytes)
        {
            Some(v) if v == UNSIGNED_PAYLOAD.as_bytes() => {
                if !self.allow_unsigned_payload {
                    return Err(Sigv4Error::UnsignedPayload);
                }
                UNSIGNED_PAYLOAD
            }
            Some(v) if !v.eq_ignore_ascii_case(body_hash.as_bytes()) => {
                return Err(Sigv4Error::PayloadHashMismatch)
            }
            _ => body_hash,
        };

        let mut signature = [0u8; 32];
        hex::decode_to_slice(auth.signature.as_bytes(), &mut signature)
            .map_err(|_| Sigv4Error::Malformed("sigv4_bad_signature_format"))?;

        // Credentials.
        // Borrowed: a session token is ~560 bytes on every request. A header value that
        // is not UTF-8 (never a token portcullis issued) is compared in its lossy form.
        let token: Option<Cow<'_, str>> = match auth.form {
            Form::Presigned => auth.token.as_deref().map(Cow::Borrowed),
            Form::Header => {
                req.headers
                    .get(SECURITY_TOKEN)
                    .map(|v| match std::str::from_utf8(v.as_bytes()) {
                        Ok(s) => Cow::Borrowed(s),
                        Err(_) => String::from_utf8_lossy(v.as_bytes()),
                    })
            }
        };
        let credential = match self.source.lookup(akid, token.as_deref()) {
            Ok(c) => c,
            // A static `ASIA…` key in the file stays a static credential.
            Err(LookupError::UnknownKey) if self.sessions && akid.starts_with("ASIA") => {
                if auth.form == Form::Header
                    && token.is_some()
                    && signed.binary_search(&SECURITY_TOKEN.as_str()).is_err()
                {
                    return Err(Sigv4Error::Session(SessionRefusal::TokenNotSigned));
                }
                self.session_cache
                    .credential(sessions, akid, token.as_deref(), now)?
            }
            Err(LookupError::UnknownKey) => return Err(Sigv4Error::UnknownKey),
            Err(LookupError::InvalidToken) => return Err(Sigv4Error::InvalidToken),
        };

        let creq = canonical::canonical_request(&RequestParts {
            method: req.method,
            path: req.path,
            query: req.query,
            presigned: auth.form == Form::Presigned,
            omit_token,
            headers: &headers,
            payload_hash,
        });
        let scope = &auth.credential[akid.len() + 1..];
        let string_to_sign = canonical::string_to_sign(&amz_date, scope, &creq);
        // "AKID/date/region/service": the signing-key cache key.
        let scope_key = &auth.credential[..auth.credential.len() - "/aws4_request".len()];
        let signing_key = self.signing_key(scope_key, &credential.secret_access_key);
        Ok(Built {
            has_token: token.is_some(),
            form: auth.form,
            credential,
            canonical_request: creq,
            string_to_sign,
            signing_key,
            signature,
        })
    }

    /// The signing key of a scope, from the cache when the secret is unchanged.
    fn signing_key(&self, scope_key: &str, secret: &Arc<str>) -> [u8; 32] {
        if let Some((s, k)) = self.key_cache.load().get(scope_key) {
            if s == secret {
                self.key_hits.increment(1);
                return *k;
            }
        }
        self.key_misses.increment(1);
        let mut it = scope_key.splitn(4, '/').skip(1);
        let (date, region, service) = (
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
        );
        let key = derive_signing_key(secret, date, region, service);
        self.key_cache.rcu(|cache| {
            let mut next = if cache.len() >= KEY_CACHE_MAX {
                HashMap::new()
            } else {
                HashMap::clone(cache)
            };
            next.insert(scope_key.to_owned(), (secret.clone(), key));
            next
        });
        key
    }
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: new_from_slice cannot fail here.
        let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }
    let mut k = Vec::with_capacity(4 + secret.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret.as_bytes());
    let k = hmac(&k, date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Hex HMAC-SHA256 of a string to sign with a signing key (for signers and tests).
pub fn sign(key: &[u8; 32], string_to_sign: &str) -> String {
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests;
