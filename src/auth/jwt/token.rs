//! One compact JWS access token: parsed, its signature verified, its claims checked.
//!
//! The header is parsed here rather than by a JWT library so that every rule is ours and
//! visible: `alg` must be one the provider allows (never `none`, never HMAC — a JWKS key is
//! public, so an HMAC "signature" keyed with it proves nothing), `crit` is refused in every
//! form (portcullis implements no JWS extension, and registered names may not be listed),
//! and `jku` / `x5u` / `x5c` / `jwk` are ignored: keys come from the configured JWKS only.
//! Header and claim names must be unique (RFC 7519 §4: a duplicate makes the token invalid).
//! Every refusal is a [`Reject`] with a fixed reason used in logs and metrics.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::jwks::Keyset;
use crate::config::{JwtAlg, JwtConfig};

/// Why a token was refused. [`Reject::reason`] is the log/metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    MissingToken,
    NotBearer,
    TooLarge,
    Malformed,
    BadBase64,
    BadJson,
    DuplicateName,
    AlgNone,
    AlgHmac,
    AlgNotAllowed,
    CritEmpty,
    CritRegistered,
    CritUnsupported,
    UnknownKid,
    KeyAlgMismatch,
    BadSignature,
    MissingExp,
    BadTimeClaim,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
    WrongClientId,
    WrongTokenUse,
    BadCnf,
    CertificateMismatch,
    UnboundToken,
    InsufficientScope,
    /// `local_issuer`: the token or its client was revoked, or the client is disabled or gone.
    Revoked,
}

impl Reject {
    pub fn reason(self) -> &'static str {
        match self {
            Reject::MissingToken => "jwt_missing",
            Reject::NotBearer => "jwt_not_bearer",
            Reject::TooLarge => "jwt_too_large",
            Reject::Malformed => "jwt_malformed",
            Reject::BadBase64 => "jwt_bad_base64",
            Reject::BadJson => "jwt_bad_json",
            Reject::DuplicateName => "jwt_duplicate_name",
            Reject::AlgNone => "jwt_alg_none",
            Reject::AlgHmac => "jwt_alg_hmac",
            Reject::AlgNotAllowed => "jwt_alg_not_allowed",
            Reject::CritEmpty => "jwt_crit_empty",
            Reject::CritRegistered => "jwt_crit_registered",
            Reject::CritUnsupported => "jwt_crit_unsupported",
            Reject::UnknownKid => "jwt_unknown_kid",
            Reject::KeyAlgMismatch => "jwt_key_alg_mismatch",
            Reject::BadSignature => "jwt_bad_signature",
            Reject::MissingExp => "jwt_missing_exp",
            Reject::BadTimeClaim => "jwt_bad_time_claim",
            Reject::Expired => "jwt_expired",
            Reject::NotYetValid => "jwt_not_yet_valid",
            Reject::IssuedInFuture => "jwt_issued_in_future",
            Reject::WrongIssuer => "jwt_wrong_issuer",
            Reject::WrongAudience => "jwt_wrong_audience",
            Reject::WrongClientId => "jwt_wrong_client_id",
            Reject::WrongTokenUse => "jwt_wrong_token_use",
            Reject::BadCnf => "jwt_bad_cnf",
            Reject::CertificateMismatch => "jwt_certificate_mismatch",
            Reject::UnboundToken => "jwt_unbound_token",
            Reject::InsufficientScope => "jwt_insufficient_scope",
            Reject::Revoked => "jwt_revoked",
        }
    }

    /// Short text for `error_description` (fixed, safe to show).
    pub fn message(self) -> &'static str {
        match self {
            Reject::MissingToken => "a bearer token is required",
            Reject::NotBearer => "the Authorization header is not a Bearer token",
            Reject::TooLarge => "the token is too large",
            Reject::Malformed => "the token is not a compact JWS",
            Reject::BadBase64 => "the token is not valid base64url",
            Reject::BadJson => "the token header or claims are not a JSON object",
            Reject::DuplicateName => "the token repeats a header or claim name",
            Reject::AlgNone => "unsigned tokens are not accepted",
            Reject::AlgHmac => "HMAC-signed tokens are not accepted",
            Reject::AlgNotAllowed => "the token's algorithm is not accepted",
            Reject::CritEmpty | Reject::CritRegistered | Reject::CritUnsupported => {
                "the token's crit header cannot be honoured"
            }
            Reject::UnknownKid => "the token's signing key is unknown",
            Reject::KeyAlgMismatch => "the signing key does not allow the token's algorithm",
            Reject::BadSignature => "the token signature is invalid",
            Reject::MissingExp => "the token has no expiry",
            Reject::BadTimeClaim => "a time claim of the token is not a number",
            Reject::Expired => "the token has expired",
            Reject::NotYetValid => "the token is not valid yet",
            Reject::IssuedInFuture => "the token was issued in the future",
            Reject::WrongIssuer => "the token was issued by another issuer",
            Reject::WrongAudience => "the token is meant for another audience",
            Reject::WrongClientId => "the token was issued to another client",
            Reject::WrongTokenUse => "the token is not an access token",
            Reject::BadCnf => "the token's confirmation claim is malformed",
            Reject::CertificateMismatch => "the token is bound to another certificate",
            Reject::UnboundToken => "the token must be bound to the client certificate",
            Reject::InsufficientScope => "the token lacks a scope this route requires",
            Reject::Revoked => "the token has been revoked",
        }
    }
}

/// A token whose header and claims parsed; its signature is not verified yet.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub alg: JwtAlg,
    pub kid: Option<String>,
    claims: BTreeMap<String, Value>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

/// What a valid token says, kept in the cache until it expires.
#[derive(Debug, Clone)]
pub struct Verified {
    /// First whole second (since the epoch) at which the token is expired, leeway
    /// included: `ceil(exp + leeway)`. The cache keeps the result until then.
    pub valid_until: i64,
    pub sub: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    /// RFC 8705 `cnf.x5t#S256`: SHA-256 of the client certificate the token is bound to.
    pub cnf_x5t: Option<[u8; 32]>,
    /// Request headers to set from claims (`forward_claims`).
    pub forward: Vec<(HeaderName, HeaderValue)>,
    /// `jti` and `iat`, for the revocation check of a `local_issuer` provider.
    pub jti: Option<String>,
    pub iat: Option<i64>,
}

/// Names registered for the JWS header (RFC 7515 §4.1, RFC 7516 §4.1): `crit` must not list them.
const REGISTERED: [&str; 15] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "iv",
];

/// Split, decode and parse; check the header. No key is touched yet.
pub fn parse<'a>(token: &'a str, cfg: &JwtConfig) -> Result<Parsed<'a>, Reject> {
    if token.len() > cfg.max_token_size {
        return Err(Reject::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed);
    };
    if h.is_empty() || p.is_empty() {
        return Err(Reject::Malformed);
    }
    let header = unique_object(&decode(h)?)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(Reject::AlgNotAllowed),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(Reject::AlgNone);
    }
    if alg.starts_with("HS") {
        return Err(Reject::AlgHmac);
    }
    let alg = JwtAlg::parse(alg)
        .filter(|a| cfg.algorithms.contains(a))
        .ok_or(Reject::AlgNotAllowed)?;
    if let Some(crit) = header.get("crit") {
        let names = crit.as_array().ok_or(Reject::CritEmpty)?;
        if names.is_empty() {
            return Err(Reject::CritEmpty);
        }
        if names
            .iter()
            .any(|n| n.as_str().is_none_or(|n| REGISTERED.contains(&n)))
        {
            return Err(Reject::CritRegistered);
        }
        // No JWS extension is implemented, so any extension named as critical is refused.
        return Err(Reject::CritUnsupported);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Reject::BadJson),
    };
    let claims = unique_object(&decode(p)?)?;
    let signature = decode(s)?;
    Ok(Parsed {
        alg,
        kid,
        claims,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
    })
}

impl Parsed<'_> {
    /// Verify the signature with the key the token names; `UnknownKid` lets the caller
    /// refetch the set and try again.
    pub fn verify_signature(&self, keys: &Keyset) -> Result<(), Reject> {
        let key = match &self.kid {
            Some(kid) => keys.get(kid),
            None => keys.only_key(),
        }
        .ok_or(Reject::UnknownKid)?;
        let verifier = key.verifier(self.alg).ok_or(Reject::KeyAlgMismatch)?;
        verifier
            .verify_sig(self.signing_input, &self.signature)
            .map_err(|_| Reject::BadSignature)
    }

    /// Check the claims at time `now` (seconds since the epoch). Scopes and certificate
    /// binding are per request and checked by the caller.
    pub fn check_claims(self, cfg: &JwtConfig, now: i64) -> Result<Verified, Reject> {
        let c = &self.claims;
        let leeway = cfg.leeway.as_secs() as f64;
        let now = now as f64;
        let exp = match c.get("exp") {
            None => return Err(Reject::MissingExp),
            Some(v) => v.as_f64().ok_or(Reject::BadTimeClaim)?,
        };
        if exp <= now - leeway {
            return Err(Reject::Expired);
        }
        if let Some(v) = c.get("nbf") {
            if v.as_f64().ok_or(Reject::BadTimeClaim)? > now + leeway {
                return Err(Reject::NotYetValid);
            }
        }
        if let Some(v) = c.get("iat") {
            if v.as_f64().ok_or(Reject::BadTimeClaim)? > now + leeway {
                return Err(Reject::IssuedInFuture);
            }
        }
        if c.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
            return Err(Reject::WrongIssuer);
        }
        let client_id = c.get("client_id").and_then(Value::as_str);
        match c.get("aud") {
            Some(Value::String(a)) if cfg.audiences.contains(a) => {}
            Some(Value::Array(list))
                if list.iter().any(|a| {
                    a.as_str()
                        .is_some_and(|a| cfg.audiences.iter().any(|x| x == a))
                }) => {}
            // Only a `local_issuer` provider may leave `audiences` out: any registered
            // client's token is then accepted (the registry is checked per request).
            _ if cfg.audiences.is_empty() => {}
            Some(_) => return Err(Reject::WrongAudience),
            None => {
                if !client_id.is_some_and(|id| cfg.audiences.iter().any(|x| x == id)) {
                    return Err(Reject::WrongClientId);
                }
            }
        }
        if let Some(want) = &cfg.token_use {
            if c.get("token_use").and_then(Value::as_str) != Some(want.as_str()) {
                return Err(Reject::WrongTokenUse);
            }
        }
        let cnf_x5t = match c.get("cnf") {
            None => None,
            Some(cnf) => match cnf.get("x5t#S256") {
                None => None,
                Some(Value::String(t)) => Some(
                    URL_SAFE_NO_PAD
                        .decode(t)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or(Reject::BadCnf)?,
                ),
                Some(_) => return Err(Reject::BadCnf),
            },
        };
        let forward = cfg
            .forward_claims
            .iter()
            .filter_map(|(claim, header)| {
                let text = claim_text(c.get(claim)?)?;
                Some((header.clone(), HeaderValue::from_str(&text).ok()?))
            })
            .collect();
        Ok(Verified {
            valid_until: (exp + leeway).ceil() as i64,
            sub: c.get("sub").and_then(Value::as_str).map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            scopes: scopes_of(c),
            cnf_x5t,
            forward,
            jti: c.get("jti").and_then(Value::as_str).map(str::to_owned),
            iat: c.get("iat").and_then(Value::as_f64).map(|t| t as i64),
        })
    }
}

/// `scope` (space-separated string, RFC 8693) or `scp` (array, or string).
fn scopes_of(c: &BTreeMap<String, Value>) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    match (c.get("scope"), c.get("scp")) {
        (Some(Value::String(s)), _) => words(s),
        (_, Some(Value::Array(a))) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        (_, Some(Value::String(s))) => words(s),
        _ => Vec::new(),
    }
}

fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => {
            let items: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
            Some(items?.join(" "))
        }
        _ => None,
    }
}

fn decode(part: &str) -> Result<Vec<u8>, Reject> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Reject::BadBase64)
}

const DUPLICATE: &str = "duplicate name";

/// A JSON object whose member names are unique (serde_json would keep the last silently).
fn unique_object(bytes: &[u8]) -> Result<BTreeMap<String, Value>, Reject> {
    struct Unique(BTreeMap<String, Value>);
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                if out.insert(k, v).is_some() {
                    return Err(de::Error::custom(DUPLICATE));
                }
            }
            Ok(Unique(out))
        }
    }
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(u) => Ok(u.0),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(Reject::DuplicateName),
        Err(_) => Err(Reject::BadJson),
    }
}
