//! `POST /issuer/oauth2/revoke` with `{"jti": "..."}` or `{"client_id": "..."}` (every
//! token of that client issued until now): the operator's lever after a breach. The
//! revocation is persisted in `state_dir` before the answer (200 `{"result":"revoked"}`);
//! 400 for a body that is neither, 404 without `[issuer.oauth2]`, 500 if it could not be
//! saved.

use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::reload::Reloader;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    jti: Option<String>,
    client_id: Option<String>,
}

pub async fn revoke(reloader: &Reloader, body: Incoming) -> (StatusCode, Value) {
    let Some(issuer) = reloader.shared().snapshot.load().issuer.clone() else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": "no [issuer.oauth2] is configured"}),
        );
    };
    let bad = |why: &str| (StatusCode::BAD_REQUEST, json!({ "error": why }));
    let Ok(bytes) = Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        return bad("the body could not be read");
    };
    let parsed = match serde_json::from_slice::<Body>(&bytes) {
        Ok(b) => b,
        Err(_) => return bad("expected {\"jti\": \"...\"} or {\"client_id\": \"...\"}"),
    };
    let (kind, saved) = match (parsed.jti, parsed.client_id) {
        (Some(j), None) if !j.is_empty() => ("jti", issuer.revoke_jti(j).await),
        (None, Some(c)) if !c.is_empty() => ("client_id", issuer.revoke_client(c).await),
        _ => return bad("give exactly one of \"jti\" and \"client_id\""),
    };
    match saved {
        Ok(()) => {
            tracing::info!(kind, "issuer.oauth2: revoked through the admin endpoint");
            (StatusCode::OK, json!({"result": "revoked", "kind": kind}))
        }
        Err(e) => {
            tracing::error!(error = %e, "issuer.oauth2: could not persist a revocation");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "the revocation could not be saved"}),
            )
        }
    }
}
