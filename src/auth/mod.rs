//! Authentication: did the caller prove who it is, by every method the route requires?
//!
//! Runs after routing, before authorization. Each scheme lives in its own file (or folder)
//! and answers the same question for one request; a route lists the schemes that must all
//! pass. A failure is 401 `unauthenticated` with a reason that names the missing proof
//! (403 for a bearer token without a scope the route requires, RFC 6750 §3.1).

pub mod jwt;
pub mod mtls;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use crate::config::AuthMethod;
use crate::proxy::conn::ConnInfo;
use crate::proxy::error::{ErrorKind, GatewayError};

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
}

impl AuthError {
    pub fn into_gateway_error(self) -> GatewayError {
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

/// What the methods proved, for authorization, forwarded headers and the access log.
#[derive(Debug, Default, Clone)]
pub struct Authenticated {
    pub token: Option<Arc<jwt::Verified>>,
}

/// Check every method the route requires.
pub async fn authenticate(
    methods: &[AuthMethod],
    scopes: &[String],
    conn: &ConnInfo,
    headers: &HeaderMap,
    providers: &jwt::Providers,
) -> Result<Authenticated, AuthError> {
    let mut out = Authenticated::default();
    for method in methods {
        match method {
            AuthMethod::Mtls => mtls::authenticate(conn)?,
            AuthMethod::Jwt(name) => {
                let Some(p) = providers.get(name) else {
                    return Err(AuthError {
                        reason: "jwt_provider_unavailable",
                        message: "the token provider of this route is not available",
                        ..AuthError::default()
                    });
                };
                let v = p
                    .authenticate(headers, conn, scopes)
                    .await
                    .map_err(|r| bearer_error(r, scopes))?;
                out.token = Some(v);
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
    }
}
