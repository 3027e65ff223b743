//! Authentication: did the caller prove who it is, by every method the route requires?
//!
//! Runs after routing, before authorization. Each scheme lives in its own file (or folder)
//! and answers the same question for one request; a route lists the schemes that must all
//! pass, or (`auth_any`) alternatives of which the one matching the credentials the request
//! carries is checked. A failure is 401 `unauthenticated` with a reason that names the
//! missing proof; 403 for a bearer token without a scope the route requires (RFC 6750 §3.1);
//! a SigV4 failure is 403 with AWS's error code.

pub mod jwt;
pub mod mtls;
pub mod sigv4;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use crate::config::AuthMethod;
use crate::error::{ErrorKind, GatewayError};
use crate::identity::ConnInfo;

/// Why a request could not be authenticated. The `reason` is a fixed label for logs and
/// metrics; `message` is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthError {
    pub reason: &'static str,
    pub message: &'static str,
    /// `WWW-Authenticate` value to send (bearer schemes).
    pub challenge: Option<HeaderValue>,
    /// 403 rather than 401: the caller is known but lacks a right (a scope).
    pub forbidden: bool,
    /// The AWS error code the response carries (SigV4 failures).
    pub aws_code: Option<&'static str>,
}

impl AuthError {
    pub fn into_gateway_error(self) -> GatewayError {
        if let Some(code) = self.aws_code {
            return GatewayError::aws(ErrorKind::SignatureRejected, code, self.message);
        }
        let kind = if self.forbidden {
            ErrorKind::Forbidden
        } else {
            ErrorKind::Unauthenticated
        };
        let mut e = GatewayError::new(kind, self.message);
        e.challenge = self.challenge;
        e
    }
}

impl From<sigv4::Sigv4Error> for AuthError {
    fn from(e: sigv4::Sigv4Error) -> Self {
        AuthError {
            reason: e.reason(),
            message: e.message(),
            aws_code: Some(e.code()),
            ..AuthError::default()
        }
    }
}

/// What one request brings to authentication besides its connection.
pub struct AuthRequest<'a> {
    pub conn: &'a ConnInfo,
    pub headers: &'a HeaderMap,
    /// Scopes the route requires of a bearer token.
    pub scopes: &'a [String],
    pub providers: &'a jwt::Providers,
    /// The verifier and the request as it must be checked, when the route uses sigv4.
    pub sigv4: Option<(&'a sigv4::Verifier, sigv4::SignedRequest<'a>)>,
    /// What session credentials are checked against, when `[issuer.sessions]` runs.
    pub sessions: Option<sigv4::SessionContext<'a>>,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// What the methods proved, for authorization, forwarded headers and the access log.
#[derive(Debug, Default, Clone)]
pub struct Authenticated {
    pub token: Option<Arc<jwt::Verified>>,
    pub sigv4: Option<sigv4::Verified>,
    /// A `jwt:` method whose provider keeps the token (`forward_token = false`, the
    /// default) proved this request: its `Authorization` header is not forwarded.
    pub strip_bearer: bool,
}

/// Check every method the route requires.
pub async fn authenticate(
    methods: &[AuthMethod],
    req: &AuthRequest<'_>,
) -> Result<Authenticated, AuthError> {
    let mut out = Authenticated::default();
    for method in methods {
        match method {
            AuthMethod::Mtls => mtls::authenticate(req.conn)?,
            // The route's issuer builtin authenticates its callers itself.
            AuthMethod::Builtin => {}
            AuthMethod::Jwt(name) => {
                let Some(p) = req.providers.get(name) else {
                    return Err(AuthError {
                        reason: "jwt_provider_unavailable",
                        message: "the token provider of this route is not available",
                        ..AuthError::default()
                    });
                };
                let v = p
                    .authenticate(req.headers, req.conn, req.scopes)
                    .await
                    .map_err(|r| bearer_error(r, req.scopes))?;
                out.token = Some(v);
                out.strip_bearer |= !p.forwards_token();
            }
            AuthMethod::Sigv4 => {
                let Some((verifier, signed)) = &req.sigv4 else {
                    return Err(AuthError {
                        reason: "sigv4_not_configured",
                        message: "this route requires a SigV4 signature",
                        aws_code: Some("MissingAuthenticationToken"),
                        ..AuthError::default()
                    });
                };
                out.sigv4 = Some(verifier.verify_sessions(signed, req.sessions, req.now)?);
            }
        }
    }
    Ok(out)
}

/// RFC 6750 §3: no `error` for a missing token, `insufficient_scope` (403) with the
/// required scopes, `invalid_token` for everything else.
fn bearer_error(r: jwt::Reject, scopes: &[String]) -> AuthError {
    let challenge = match r {
        jwt::Reject::MissingToken => "Bearer realm=\"portcullis\"".to_owned(),
        jwt::Reject::InsufficientScope => format!(
            "Bearer realm=\"portcullis\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
            r.message(),
            scopes.join(" ")
        ),
        _ => format!(
            "Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"{}\"",
            r.message()
        ),
    };
    AuthError {
        reason: r.reason(),
        message: r.message(),
        challenge: HeaderValue::from_str(&challenge).ok(),
        forbidden: r == jwt::Reject::InsufficientScope,
        aws_code: None,
    }
}

/// A kind of credential a request can carry in its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    Sigv4,
    Bearer,
}

/// The request-borne credential a method checks (`None`: it looks at the connection).
fn carried_by(method: &AuthMethod) -> Option<Carried> {
    match method {
        AuthMethod::Mtls | AuthMethod::Builtin => None,
        AuthMethod::Jwt(_) => Some(Carried::Bearer),
        AuthMethod::Sigv4 => Some(Carried::Sigv4),
    }
}

/// The credentials a request carries: a SigV4 signature (header or presigned), a bearer
/// token. Returns (sigv4, bearer).
pub fn carried(headers: &HeaderMap, query: Option<&str>) -> (bool, bool) {
    let sigv4 = sigv4::carries_sigv4(headers, query);
    let bearer = headers.get(http::header::AUTHORIZATION).is_some_and(|v| {
        v.as_bytes().len() > 7 && v.as_bytes()[..7].eq_ignore_ascii_case(b"bearer ")
    });
    (sigv4, bearer)
}

/// Pick the `auth_any` alternative whose credentials the request carries: the one whose
/// request-borne methods are exactly what the request carries, else the first that checks
/// something it carries, else the first (which then fails naming what is missing). A
/// request carrying both a signature and a bearer token is refused.
pub fn select<'a>(
    alternatives: &'a [Vec<AuthMethod>],
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<&'a [AuthMethod], AuthError> {
    let (sigv4, bearer) = carried(headers, query);
    if sigv4 && bearer {
        return Err(AuthError {
            reason: "ambiguous_credentials",
            message: "a request must carry either a bearer token or a SigV4 signature, not both",
            ..AuthError::default()
        });
    }
    let wants = |alt: &[AuthMethod]| alt.iter().any(|m| carried_by(m) == Some(Carried::Sigv4));
    let first = alternatives.first().map(Vec::as_slice).unwrap_or(&[]);
    if alternatives.len() <= 1 {
        return Ok(first);
    }
    let exact = alternatives
        .iter()
        .find(|a| wants(a) == sigv4 && (bearer == has_bearer_method(a)));
    let partial = alternatives
        .iter()
        .find(|a| (sigv4 && wants(a)) || (bearer && has_bearer_method(a)));
    Ok(exact.or(partial).map(Vec::as_slice).unwrap_or(first))
}

/// Whether an alternative checks a bearer token (JWT methods, when present).
fn has_bearer_method(alt: &[AuthMethod]) -> bool {
    alt.iter().any(|m| match carried_by(m) {
        Some(Carried::Bearer) => true,
        Some(Carried::Sigv4) | None => false,
    })
}

/// Whether any method of these alternatives needs the request body (SigV4 hashes it).
pub fn needs_body(methods: &[AuthMethod]) -> bool {
    methods.contains(&AuthMethod::Sigv4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn picks_the_alternative_by_carried_credentials() {
        let alts = vec![
            vec![AuthMethod::Mtls],
            vec![AuthMethod::Mtls, AuthMethod::Sigv4],
        ];
        let sig = headers("AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request");
        assert_eq!(select(&alts, &sig, None).unwrap(), &alts[1][..]);
        assert_eq!(
            select(&alts, &HeaderMap::new(), None).unwrap(),
            &alts[0][..]
        );
        assert_eq!(
            select(
                &alts,
                &HeaderMap::new(),
                Some("X-Amz-Algorithm=AWS4-HMAC-SHA256")
            )
            .unwrap(),
            &alts[1][..]
        );
        let both = select(&alts, &headers("Bearer x"), Some("X-Amz-Signature=00"));
        assert_eq!(both.unwrap_err().reason, "ambiguous_credentials");
    }
}
