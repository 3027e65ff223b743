//! The built-in `rolesanywhere` upstream: IAM Roles Anywhere's `CreateSession`
//! (`POST /sessions`), the HTTP face of `[issuer.sessions]` ([`crate::issuer::sessions`]).
//! The request signature authenticates the caller (route `auth = ["builtin"]`).
//!
//! In order ([`create`]): [`request`] reads both clients' forms → [`signature`] checks the
//! date, scope, serial and the signature with the leaf's key → [`mint`] resolves the ARNs
//! (404), verifies the chain against the trust anchor with the mTLS verifier, requires a
//! verified connection certificate (if any) to be the same leaf, applies the role's rules
//! and seals the session (201). A refusal is its AWS error type with `x-amzn-ErrorType`
//! and `{"message"}` ([`refusal`]). Every request writes one audit line
//! (`"type": "sessions_create"`) and counts `portcullis_issuer_sessions_total{result,reason}`.

pub mod mint;
pub mod refusal;
pub mod request;
pub mod signature;

use std::time::SystemTime;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use super::Call;
use crate::body::{self, ProxyBody};
use crate::error::{ErrorKind, GatewayError};
use crate::issuer::sessions::Sessions;
use crate::telemetry::metrics as m;
use refusal::{Code, Refusal};

/// The only path (the Go client signs `/sessions` whatever its endpoint's path).
pub const PATH: &str = "/sessions";
/// Bodies larger than this are refused (a CreateSession body is under 1 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// What the audit line says beyond the result.
#[derive(Default)]
struct Audit {
    anchor: Option<String>,
    profile: Option<String>,
    role: Option<String>,
    fingerprint: Option<String>,
    serial: Option<String>,
    subject: Option<String>,
    minted: Option<mint::Minted>,
}

pub async fn respond(
    req: Request<ProxyBody>,
    call: &Call<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let Some(sessions) = call.sessions else {
        return Err(GatewayError::new(
            ErrorKind::Internal,
            "the session issuer is not running",
        ));
    };
    if req.uri().path() != PATH {
        return Err(GatewayError::new(
            ErrorKind::NoRoute,
            "no such endpoint of the session issuer",
        ));
    }
    if req.method() != Method::POST {
        return Err(GatewayError::method_not_allowed(
            ["POST"],
            "this method is not allowed on this endpoint",
        ));
    }
    let mut audit = Audit::default();
    let result = create(req, call, sessions, &mut audit).await;
    let (res, reason) = match &result {
        Ok(_) => ("issued", "ok"),
        Err(e) => ("refused", e.reason),
    };
    metrics::counter!(m::ISSUER_SESSIONS_TOTAL, "result" => res, "reason" => reason).increment(1);
    let minted = audit.minted.take();
    sessions.audit(json!({
        "type": "sessions_create",
        "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "client": call.conn.peer.to_string(),
        "trust_anchor": audit.anchor,
        "profile": audit.profile,
        "role": audit.role,
        "certificate_fingerprint": audit.fingerprint,
        "serial": audit.serial,
        "subject": audit.subject,
        "access_key_id": minted.as_ref().map(|m| m.access_key_id.as_str()),
        "session": minted.as_ref().map(|m| m.session.as_str()),
        "duration": minted.as_ref().map(|m| m.duration),
        "expiration": minted.as_ref().map(|m| m.expiration.as_str()),
        "result": res,
        "reason": reason,
        "detail": result.as_ref().err().and_then(|e| e.detail.as_deref()),
    }));
    Ok(match result {
        Ok(()) => answer(
            StatusCode::CREATED,
            minted.map(|m| m.body.to_string()).unwrap_or_default(),
            None,
        ),
        Err(e) => {
            let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::FORBIDDEN);
            answer(
                status,
                json!({ "message": e.message }).to_string(),
                Some(e.code),
            )
        }
    })
}

/// One CreateSession: `Ok` with `audit.minted` set, or the refusal.
async fn create(
    req: Request<ProxyBody>,
    call: &Call<'_>,
    sessions: &Sessions,
    audit: &mut Audit,
) -> Result<(), Refusal> {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let query = parts.uri.query().unwrap_or("");
    let parsed = request::parse(&parts.headers, query, &body)?;
    let cfg = &sessions.cfg;
    let now = SystemTime::now();
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let expect = signature::Expect {
        method: "POST",
        path: parts.uri.path(),
        query,
        region: &cfg.region,
        max_skew_secs: cfg.max_skew.as_secs() as i64,
        now: now_secs,
    };
    signature::verify(&parsed, call.host, &parts.headers, &body, &expect)?;
    let resolved = mint::resolve(cfg, &parsed.arns)?;
    audit.anchor = Some(resolved.anchor.to_owned());
    audit.profile = Some(resolved.profile.name.clone());
    audit.role = Some(resolved.role.name.clone());
    let id = mint::verify_chain(call.anchors, resolved.anchor, &parsed, now)?;
    audit.fingerprint = Some(id.fingerprint.clone());
    audit.serial = Some(id.serial.clone());
    audit.subject = Some(id.subject.clone());
    if let Some(conn) = call.conn.identity() {
        if conn.fingerprint != id.fingerprint {
            return Err(Refusal::denied(
                "connection_certificate_mismatch",
                "The connection's client certificate is not the certificate in X-Amz-X509",
            ));
        }
    }
    let (duration, session) = mint::authorize(&resolved, &id, &parsed)?;
    audit.minted = Some(mint::mint(
        sessions, &resolved, &id, duration, session, now_secs,
    )?);
    Ok(())
}

/// The whole (de-chunked) body, at most [`MAX_BODY`].
async fn read_body(mut body: ProxyBody) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Refusal::invalid(
                "bad_body",
                "The request body could not be read",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > MAX_BODY {
            return Err(Refusal::invalid(
                "body_too_large",
                "The request body is too large",
            ));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

fn answer(status: StatusCode, body: String, code: Option<Code>) -> Response<ProxyBody> {
    let mut resp = Response::new(body::full(bytes::Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(code) = code {
        h.insert("x-amzn-errortype", HeaderValue::from_static(code.name()));
    }
    resp
}
