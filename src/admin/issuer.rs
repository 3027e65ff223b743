//! The operator's levers after a breach, each persisted in its issuer's `state_dir` before
//! the answer (200 `{"result":"revoked","kind":…}`); 400 for a body that is none of the
//! shapes below, 404 without the issuer, 500 if it could not be saved.
//!
//! - `POST /issuer/oauth2/revoke` with `{"jti": "..."}` or `{"client_id": "..."}` (every
//!   token of that client issued until now);
//! - `POST /issuer/sessions/revoke` with `{"access_key_id": "ASIA…"}` (one session),
//!   `{"role": "..."}` or `{"certificate_sha256": "<64 hex>"}` (every session of that role,
//!   or opened with that certificate, issued until now). SigV4 checks revocations on every
//!   request, so open connections are refused from their next request on.

use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::issuer::sessions::token::is_session_key_id;
use crate::reload::Reloader;

/// Admin request bodies are small JSON objects.
const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    jti: Option<String>,
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsBody {
    access_key_id: Option<String>,
    role: Option<String>,
    certificate_sha256: Option<String>,
}

type Answer = (StatusCode, Value);

fn bad(why: &str) -> Answer {
    (StatusCode::BAD_REQUEST, json!({ "error": why }))
}

async fn read_body(body: Incoming) -> Result<Bytes, Answer> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| bad("the body could not be read"))
}

/// The answer once the revocation of `kind` was (or was not) saved, logged either way.
fn saved(issuer: &'static str, kind: &'static str, r: std::io::Result<()>) -> Answer {
    match r {
        Ok(()) => {
            tracing::info!(issuer, kind, "revoked through the admin endpoint");
            (StatusCode::OK, json!({"result": "revoked", "kind": kind}))
        }
        Err(e) => {
            tracing::error!(issuer, error = %e, "could not persist a revocation");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "the revocation could not be saved"}),
            )
        }
    }
}

pub async fn revoke(reloader: &Reloader, body: Incoming) -> Answer {
    let Some(issuer) = reloader.shared().snapshot.load().issuer.clone() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "no [issuer.oauth2] is configured"}),
        );
    };
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(a) => return a,
    };
    let parsed = match serde_json::from_slice::<Body>(&bytes) {
        Ok(b) => b,
        Err(_) => return bad("expected {\"jti\": \"...\"} or {\"client_id\": \"...\"}"),
    };
    let (kind, r) = match (parsed.jti, parsed.client_id) {
        (Some(j), None) if !j.is_empty() => ("jti", issuer.revoke_jti(j).await),
        (None, Some(c)) if !c.is_empty() => ("client_id", issuer.revoke_client(c).await),
        _ => return bad("give exactly one of \"jti\" and \"client_id\""),
    };
    saved("issuer.oauth2", kind, r)
}

pub async fn revoke_sessions(reloader: &Reloader, body: Incoming) -> Answer {
    let Some(sessions) = reloader.shared().snapshot.load().sessions.clone() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "no [issuer.sessions] is configured"}),
        );
    };
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(a) => return a,
    };
    let Ok(parsed) = serde_json::from_slice::<SessionsBody>(&bytes) else {
        return bad("expected {\"access_key_id\": \"ASIA...\"}, {\"role\": \"...\"} or {\"certificate_sha256\": \"<64 hex digits>\"}");
    };
    let (kind, value, r) = match (parsed.access_key_id, parsed.role, parsed.certificate_sha256) {
        (Some(id), None, None) => {
            if !is_session_key_id(&id) {
                return bad("access_key_id must be ASIA followed by 16 base32 characters");
            }
            let r = sessions.revoke_access_key_id(id.clone()).await;
            ("access_key_id", id, r)
        }
        (None, Some(role), None) => {
            if !sessions.cfg.roles.iter().any(|r| r.name == role) {
                return bad("no [[issuer.sessions.role]] has this name");
            }
            let r = sessions.revoke_role(role.clone()).await;
            ("role", role, r)
        }
        (None, None, Some(sha)) => {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("certificate_sha256 must be 64 hex digits (SHA-256 of the leaf DER)");
            }
            let sha = sha.to_ascii_lowercase();
            let r = sessions.revoke_certificate(sha.clone()).await;
            ("certificate_sha256", sha, r)
        }
        _ => {
            return bad(
                "give exactly one of \"access_key_id\", \"role\" and \"certificate_sha256\"",
            )
        }
    };
    if r.is_ok() {
        sessions.audit(json!({
            "type": "sessions_revoke",
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "via": "admin",
            "kind": kind,
            "value": value,
        }));
    }
    saved("issuer.sessions", kind, r)
}
