//! `POST /reload` (reload now; 200 with the new generation, 422 with the reasons and the
//! generation still serving) and `GET /truststore` (the active truststore as JSON).

use std::time::SystemTime;

use http::StatusCode;
use serde_json::{json, Value};

use crate::reload::{Reloader, Trigger};
use crate::state::TrustState;
use crate::tls::CrlSource;

pub async fn reload(reloader: &Reloader) -> (StatusCode, Value) {
    match reloader.reload(Trigger::Api).await {
        Ok(r) => (
            StatusCode::OK,
            json!({
                "result": "success",
                "generation": r.generation,
                "restart_required": r.restart_required,
            }),
        ),
        Err(f) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "result": "failure",
                "generation": f.generation,
                "reasons": f.reasons,
            }),
        ),
    }
}

pub fn truststore(trust: &TrustState) -> Value {
    let ts = &trust.truststore;
    let cas: Vec<Value> = ts
        .cas()
        .iter()
        .map(|c| {
            json!({
                "subject": c.subject,
                "fingerprint": c.fingerprint,
                "not_after": rfc3339(c.not_after),
                "kind": if c.root { "root" } else { "intermediate" },
                "file": c.file.file_name().map(|f| f.to_string_lossy()),
            })
        })
        .collect();
    let crls: Vec<Value> = ts
        .crls()
        .iter()
        .map(|c| {
            json!({
                "issuer": c.issuer,
                "this_update": rfc3339(c.this_update),
                "next_update": c.next_update.map(rfc3339),
                "revoked": c.revoked,
                "signature_checked": c.signature_checked,
                "file": match &c.source {
                    CrlSource::File(f) => f.file_name().map(|f| f.to_string_lossy().into_owned()),
                    CrlSource::Url(_) => None,
                },
                "url": match &c.source {
                    CrlSource::Url(u) => Some(u.as_str()),
                    CrlSource::File(_) => None,
                },
            })
        })
        .collect();
    json!({
        "generation": trust.generation,
        "loaded_at": rfc3339(trust.loaded_at),
        "cas": cas,
        "crls": crls,
    })
}

fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| dt.unix_timestamp().to_string())
}
