//! The built-in `oauth2` upstream: the HTTP face of `[issuer.oauth2]`
//! ([`crate::issuer::oauth2`]). It authenticates its callers itself (route
//! `auth = ["builtin"]`, or `["mtls", "builtin"]` to require a client certificate).
//!
//! | method, path | what |
//! |---|---|
//! | `POST /oauth2/token` | client credentials grant → `{"access_token","token_type","expires_in","scope"}` |
//! | `POST /oauth2/revoke` | RFC 7009: the caller's own token; 200 for any well-formed request |
//! | `POST /oauth2/introspect` | RFC 7662: `{"active": false}` for anything not currently valid |
//! | `GET /.well-known/jwks.json` | every signing key |
//! | `GET /.well-known/oauth-authorization-server`, `/.well-known/openid-configuration` | RFC 8414 metadata |
//!
//! Endpoint answers are OAuth2 protocol responses (JSON `error` per RFC 6749 §5.2, with
//! `Cache-Control: no-store` and `Pragma: no-cache`); an unknown path or method is a
//! gateway error (404 / 405) like any other.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::Call;
use crate::body::{self, ProxyBody};
use crate::error::{ErrorKind, GatewayError};
use crate::issuer::oauth2::endpoints::Caller;
use crate::issuer::oauth2::request::{basic, invalid_request, Form, OAuthError};
use crate::issuer::oauth2::Issuer;

/// Form bodies larger than this are refused (a token request is a few hundred bytes).
const MAX_FORM: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Revoke,
    Introspect,
    Jwks,
    Metadata,
}

pub async fn respond(
    req: Request<ProxyBody>,
    call: &Call<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let Some(issuer) = call.issuer else {
        return Err(GatewayError::new(
            ErrorKind::Internal,
            "the token service is not running",
        ));
    };
    let (endpoint, method) = match req.uri().path() {
        "/oauth2/token" => (Endpoint::Token, Method::POST),
        "/oauth2/revoke" => (Endpoint::Revoke, Method::POST),
        "/oauth2/introspect" => (Endpoint::Introspect, Method::POST),
        "/.well-known/jwks.json" => (Endpoint::Jwks, Method::GET),
        "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
            (Endpoint::Metadata, Method::GET)
        }
        _ => {
            return Err(GatewayError::new(
                ErrorKind::NoRoute,
                "no such endpoint of the token service",
            ))
        }
    };
    if req.method() != method && !(method == Method::GET && req.method() == Method::HEAD) {
        let allow: &[&str] = if method == Method::GET {
            &["GET", "HEAD"]
        } else {
            &["POST"]
        };
        return Err(GatewayError::method_not_allowed(
            allow.iter().copied(),
            "this method is not allowed on this endpoint",
        ));
    }
    match endpoint {
        Endpoint::Jwks => Ok(json(StatusCode::OK, issuer.jwks(), "public, max-age=60")),
        Endpoint::Metadata => Ok(json(
            StatusCode::OK,
            issuer.metadata().to_string(),
            "public, max-age=60",
        )),
        Endpoint::Token | Endpoint::Revoke | Endpoint::Introspect => {
            let answer = match caller(req, call).await {
                Ok(c) => run(issuer, endpoint, &c).await,
                Err(e) => Err(e),
            };
            Ok(match answer {
                Ok(Some(body)) => json(StatusCode::OK, body, "no-store"),
                Ok(None) => json(StatusCode::OK, String::new(), "no-store"),
                Err(e) => oauth_error(&e),
            })
        }
    }
}

async fn run(
    issuer: &Arc<Issuer>,
    endpoint: Endpoint,
    caller: &Caller<'_>,
) -> Result<Option<String>, OAuthError> {
    match endpoint {
        Endpoint::Token => issuer.token(caller).await.map(|v| Some(v.to_string())),
        Endpoint::Revoke => issuer.revoke(caller).await.map(|()| None),
        Endpoint::Introspect => issuer.introspect(caller).await.map(|v| Some(v.to_string())),
        Endpoint::Jwks | Endpoint::Metadata => Ok(None),
    }
}

/// The request's form and credentials, with the connection's peer and certificate.
async fn caller<'a>(req: Request<ProxyBody>, call: &Call<'a>) -> Result<Caller<'a>, OAuthError> {
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !Form::is_form_type(content_type) {
        return Err(invalid_request(
            "bad_content_type",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let unreadable = || invalid_request("bad_form", "the request body could not be read");
        let Ok(data) = frame.map_err(|_| unreadable())?.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > MAX_FORM {
            return Err(invalid_request(
                "form_too_large",
                "the request body is too large",
            ));
        }
        bytes.extend_from_slice(&data);
    }
    let form = Form::parse(&bytes)?;
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    Ok(Caller {
        peer: call.conn.peer,
        identity: call.conn.identity(),
        basic: basic(auth).transpose(),
        form,
    })
}

fn json(
    status: StatusCode,
    body: impl Into<bytes::Bytes>,
    cache: &'static str,
) -> Response<ProxyBody> {
    let body: bytes::Bytes = body.into();
    let empty = body.is_empty();
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !empty {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if cache == "no-store" {
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}

fn oauth_error(e: &OAuthError) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json(status, e.body(), "no-store");
    let h = resp.headers_mut();
    if e.basic_challenge {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\", error=\"invalid_client\""),
        );
    }
    if let Some(secs) = e.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
