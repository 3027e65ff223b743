//! The request lifecycle, top to bottom. Each phase is a function in its own module that
//! either passes the request on or ends it with a [`GatewayError`]:
//!
//! 1. **check** — framing, host and path: both `content-length` and `transfer-encoding`
//!    still present → 400 (hyper's HTTP/1 parser already frames such a request by
//!    transfer-encoding alone, drops content-length and closes the connection after it, per
//!    RFC 9112 §6.3; this catches any other way in); the host is checked ([`host`]: missing
//!    on HTTP/1.1, repeated, malformed, or an HTTP/2 `:authority` that differs from `Host`
//!    → 400); the path is normalised ([`path`], by the listener's `path_parameters`), a
//!    path that cannot be → 400.
//! 2. **route** ([`crate::route`]) — host + normalised path + method → 404 / 405.
//! 3. **authenticate** ([`crate::auth`]) — every method the route lists (for `auth_any`,
//!    of the alternative whose credentials the request carries) → 401; 403 for a bearer
//!    token without a scope the route requires; SigV4 → 403 with an AWS error code. Only
//!    for a SigV4 alternative is the body buffered first (up to `max_payload_buffer`, else
//!    413): the signature covers its hash. All other routes stream.
//! 4. **authorize** ([`crate::policy`]) — the route's allow-list → 403.
//! 5. **forward** ([`headers`], [`crate::upstream`]) — forged identity headers removed and
//!    header names with `_` handled by the listener's `headers_with_underscores` (`reject`
//!    → 400), a `jwt:` bearer token removed (unless its provider has `forward_token`),
//!    identity headers set, body streamed with the route's size limit (413); a
//!    pooled connection → 502 / 504, or a builtin ([`crate::builtin`]) answers in process.
//! 6. **respond** — hop-by-hop headers removed, body streamed back.
//! 7. **log** — metrics at response head; the access-log line when the body ends.
//!
//! The connection's verified identity was computed once at handshake ([`ConnInfo`]); before
//! the phases, [`recheck`] refuses the request (403, and closes the connection) if a
//! truststore reload since then no longer trusts it.

use std::convert::Infallible;
use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{header, Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};

use super::{headers, host, path, recheck};
use crate::access_log::{AccessRecord, LoggedBody};
use crate::auth;
use crate::body::{self, ProxyBody};
use crate::builtin;
use crate::error::{ErrorKind, GatewayError};
use crate::http1::{self, HeadError};
use crate::identity::ConnInfo;
use crate::route::{routing_host, RouteMatch};
use crate::state::{Shared, Snapshot, TrustState};
use crate::upstream::{Target, UpstreamError};

/// The log and metric reason of a request whose body failed to arrive whole.
const BAD_BODY_REASON: &str = "bad_request_body";

/// The hyper service body: handle one request on one connection.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let snapshot = shared.snapshot.load_full();
    let mut rec = AccessRecord::new(conn.clone(), req.method().clone(), req.uri().path());
    let version = req.version();
    let trust = shared.trust.load_full();
    let checked = recheck::recheck(&trust, &conn);
    let result = match checked {
        Ok(()) => process(&snapshot, &trust, &conn, req, &mut rec).await,
        Err(refused) => {
            rec.reason = refused.reason;
            Err(refused.error)
        }
    };
    let resp = match result {
        Ok(resp) => {
            rec.reason = "allowed";
            resp
        }
        Err(e) => {
            if rec.reason.is_empty() {
                rec.reason = e.kind.as_str();
            }
            log_refusal(&conn, &rec, &e);
            let mut resp = e.to_response().map(body::full);
            // HTTP/2 has no `connection` header: the serve loop sends GOAWAY instead.
            if version < http::Version::HTTP_2
                && conn
                    .trust
                    .refused
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                resp.headers_mut()
                    .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            resp
        }
    };
    rec.status = resp.status().as_u16();
    conn.metrics.record(
        rec.route.as_ref(),
        rec.status,
        rec.start.elapsed().as_secs_f64(),
    );
    Ok(resp.map(|b| LoggedBody::new(b, rec, shared.access_log.clone())))
}

/// A request's trailers lose what its headers lose: the identity names, what the gateway
/// sets, what a JWT provider forwards from claims, and the fields kept out of trailers.
impl body::TrailerFilter for Snapshot {
    fn strip(&self, trailers: &mut http::HeaderMap) {
        headers::strip_request_trailers(trailers);
        self.jwt.strip_forwarded(trailers);
    }
}

/// The refusal line of a refused request (rate-limited per reason): who, where, why.
fn log_refusal(conn: &ConnInfo, rec: &AccessRecord, e: &GatewayError) {
    if !e.kind.is_refusal() {
        tracing::debug!(peer = %conn.peer, error = %e, "request failed");
        return;
    }
    if !crate::telemetry::refusal_log::allow(rec.reason) {
        return;
    }
    let id = conn.identity.as_ref().map(|f| &f.id);
    tracing::info!(
        peer = %conn.peer,
        listener = %conn.listener,
        subject = id.map_or("", |i| i.subject.as_str()),
        issuer = id.map_or("", |i| i.issuer.as_str()),
        fingerprint = id.map_or("", |i| i.fingerprint.as_str()),
        reason = rec.reason,
        status = e.kind.status().as_u16(),
        path = %rec.path,
        detail = %e.message,
        "request refused"
    );
}

/// A `transfer-encoding` other than `chunked` alone ([`http1::coding_refusal`]), with its
/// access-log reason. hyper decodes the chunked framing and refuses a coding list that does
/// not end in it, but it passes `gzip, chunked` (or `chunked, chunked`) through with only
/// the chunked layer removed. HTTP/2 has no transfer codings (h2 refuses the header).
fn transfer_coding_refusal(headers: &http::HeaderMap) -> Option<(&'static str, GatewayError)> {
    let e = http1::coding_refusal(headers)?;
    let kind = match e {
        HeadError::UnsupportedCoding => ErrorKind::NotImplemented,
        _ => ErrorKind::BadRequest,
    };
    Some((e.reason(), GatewayError::new(kind, e.to_string())))
}

async fn process(
    snapshot: &Arc<Snapshot>,
    trust: &TrustState,
    conn: &ConnInfo,
    req: Request<Incoming>,
    rec: &mut AccessRecord,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (mut parts, incoming) = req.into_parts();
    // A body that fails to arrive whole is the client's fault (400 `bad_request_body`),
    // whatever the upstream side then reports. Watched only when there is a body.
    let watch = (!incoming.is_end_stream()).then(body::ClientBodyWatch::default);
    let trailers = watch
        .is_some()
        .then(|| snapshot.clone() as Arc<dyn body::TrailerFilter>);
    let incoming = body::ClientBody::new(incoming, watch.clone(), trailers);

    // 1. check
    if parts.headers.contains_key(header::CONTENT_LENGTH)
        && parts.headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(GatewayError::new(
            ErrorKind::BadRequest,
            "a request must not carry both content-length and transfer-encoding",
        ));
    }
    // Only a request with a body can carry a transfer coding (a GET without one skips the
    // lookup).
    if let Some((reason, e)) = watch
        .is_some()
        .then(|| transfer_coding_refusal(&parts.headers))
        .flatten()
    {
        rec.reason = reason;
        return Err(e);
    }
    let host_value =
        host::request_host(parts.version, &parts.uri, &parts.headers).map_err(|e| {
            rec.reason = "bad_host";
            GatewayError::new(ErrorKind::BadRequest, e.message())
        })?;
    let path =
        path::normalize_with(parts.uri.path(), conn.requests.path_parameters).map_err(|e| {
            rec.reason = e.reason();
            GatewayError::new(ErrorKind::BadRequest, e.to_string())
        })?;
    rec.path.clone_from(&path);

    // 2. route
    let host = host_value
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(routing_host)
        .unwrap_or_default();
    let route = match snapshot.router.find(&host, &path, &parts.method) {
        RouteMatch::Found(r) => r,
        RouteMatch::MethodNotAllowed(allowed) => {
            return Err(GatewayError::method_not_allowed(
                allowed.iter().map(|m| m.as_str()),
                "this method is not allowed on this path",
            ))
        }
        RouteMatch::NotFound => {
            return Err(GatewayError::new(
                ErrorKind::NoRoute,
                "no route for this host and path",
            ))
        }
    };
    rec.route = Some(route.name.clone());

    // 3. authenticate
    let methods = auth::select(&route.auth, &parts.headers, parts.uri.query()).map_err(|e| {
        rec.reason = e.reason;
        e.into_gateway_error()
    })?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (buffered, incoming) = match (&snapshot.sigv4, auth::needs_body(methods)) {
        (Some(v), true) => {
            let limit = v.max_payload_buffer.min(route.max_body_size);
            if declared.is_some_and(|n| n > limit) {
                rec.reason = "sigv4_payload_too_large";
                return Err(GatewayError::body_too_large());
            }
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            match Limited::new(incoming, limit).collect().await {
                Ok(c) => (Some(c.to_bytes()), None),
                Err(e) if body::is_length_limit(&*e) => {
                    rec.reason = "sigv4_payload_too_large";
                    return Err(GatewayError::body_too_large());
                }
                Err(_) => {
                    rec.reason = BAD_BODY_REASON;
                    return Err(GatewayError::bad_body());
                }
            }
        }
        _ => (None, Some(incoming)),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let sigv4_req = snapshot.sigv4.as_deref().map(|v| {
        (
            v,
            auth::sigv4::SignedRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                host: host_value.as_ref(),
                body: buffered.as_deref().unwrap_or(&[]),
            },
        )
    });
    let proved = auth::authenticate(
        methods,
        &auth::AuthRequest {
            conn,
            headers: &parts.headers,
            scopes: &route.scopes,
            providers: &snapshot.jwt,
            sigv4: sigv4_req,
            sessions: snapshot
                .sessions
                .as_deref()
                .map(|sessions| auth::sigv4::SessionContext {
                    sessions,
                    anchors: &trust.anchors,
                }),
            now,
        },
    )
    .await
    .map_err(|e| {
        rec.reason = e.reason;
        e.into_gateway_error()
    })?;
    rec.token.clone_from(&proved.token);
    let sigv4_cred = proved.sigv4.map(|v| v.credential);
    if let Some(c) = &sigv4_cred {
        rec.auth = Some("sigv4");
        rec.principal = Some(c.principal.clone());
        rec.access_key_id = Some(c.access_key_id.clone());
        if let Some(session) = &c.session {
            rec.role = Some(session.role.clone());
            rec.session = Some(session.session.clone());
        }
    }

    // 4. authorize
    let principal = sigv4_cred.as_ref().map(|c| &*c.principal);
    let role = sigv4_cred
        .as_ref()
        .and_then(|c| c.session.as_ref())
        .map(|s| &*s.role);
    if !route.allow.allows_with(conn.identity(), principal, role) {
        rec.reason = "not_in_allow_list";
        return Err(GatewayError::new(
            ErrorKind::Forbidden,
            "this client is not allowed on this route",
        ));
    }

    // 5. forward
    if declared.is_some_and(|n| n > route.max_body_size) {
        return Err(GatewayError::body_too_large());
    }
    let pq = match parts.uri.query() {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
        None => PathAndQuery::try_from(path),
    }
    .map_err(|_| GatewayError::new(ErrorKind::BadRequest, "invalid request target"))?;
    parts.uri = Uri::from(pq);
    headers::rewrite_request(&mut parts.headers, conn, host_value.as_ref()).map_err(|_| {
        rec.reason = "underscore_header";
        GatewayError::new(
            ErrorKind::BadRequest,
            "a header name contains '_' (headers_with_underscores = \"reject\")",
        )
    })?;
    snapshot.jwt.strip_forwarded(&mut parts.headers);
    // The client's bearer token stays here unless its provider says `forward_token`: a
    // backend that saw it could replay it. (A SigV4 `Authorization` is never stripped.)
    if proved.strip_bearer {
        parts.headers.remove(header::AUTHORIZATION);
    }
    if let Some(token) = &proved.token {
        for (name, value) in &token.forward {
            parts.headers.insert(name.clone(), value.clone());
        }
    }
    if let Some(c) = &sigv4_cred {
        headers::set_sigv4_identity(&mut parts.headers, c);
    }
    // A builtin gets the checked host itself (CreateSession verifies a signature over it);
    // a pooled backend only as `Host`.
    let builtin_host = match &route.upstream.target {
        Target::Builtin(_) => host_value.clone(),
        Target::Pool(_) => None,
    };
    if let Some(h) = host_value {
        parts.headers.insert(header::HOST, h);
    }
    let limit = usize::try_from(route.max_body_size).unwrap_or(usize::MAX);
    let body = match (buffered, incoming) {
        (Some(bytes), _) => body::full(bytes),
        (None, Some(incoming)) => Limited::new(incoming, limit).boxed(),
        (None, None) => body::empty(),
    };
    rec.upstream = Some(route.upstream.name.clone());
    if let Some(w) = &watch {
        parts.extensions.insert(w.clone());
    }
    let req = Request::from_parts(parts, body);
    let served = match &route.upstream.target {
        Target::Builtin(b) => {
            let call = builtin::Call {
                conn,
                host: builtin_host.as_ref(),
                issuer: snapshot.issuer.as_ref(),
                sessions: snapshot.sessions.as_ref(),
                anchors: &trust.anchors,
            };
            b.serve(req, &call).await
        }
        Target::Pool(pool) => pool.forward(req).await.map_err(upstream_error),
    };
    let mut resp = served.map_err(|e| match &watch {
        Some(w) if w.failed() => {
            rec.reason = BAD_BODY_REASON;
            GatewayError::bad_body()
        }
        _ => e,
    })?;

    // 6. respond
    headers::rewrite_response(resp.headers_mut());
    Ok(resp)
}

fn upstream_error(e: UpstreamError) -> GatewayError {
    tracing::debug!(error = %e, "upstream request failed");
    match e {
        UpstreamError::Connect { .. } | UpstreamError::Protocol(_) => GatewayError::new(
            ErrorKind::UpstreamUnavailable,
            "the upstream service is unavailable",
        ),
        UpstreamError::Timeout(_) => GatewayError::new(
            ErrorKind::UpstreamTimeout,
            "the upstream service did not answer in time",
        ),
        UpstreamError::BodyTooLarge => GatewayError::body_too_large(),
        UpstreamError::ClientBody(_) => GatewayError::bad_body(),
        UpstreamError::Request(_) => {
            GatewayError::new(ErrorKind::BadRequest, "the request cannot be forwarded")
        }
    }
}
