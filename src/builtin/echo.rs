//! The built-in `echo` upstream: answers with a JSON description of the request exactly as
//! a backend would have received it (method, path, every header — the verified identity
//! headers included — and the body's size). Used by the quick start and by tests; it runs
//! in-process, so it has no endpoint, pool or timeout.

use std::collections::BTreeMap;

use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;

use crate::body::{self, ProxyBody};
use crate::error::GatewayError;

pub async fn respond(req: Request<ProxyBody>) -> Result<Response<ProxyBody>, GatewayError> {
    let (parts, body) = req.into_parts();
    let received = body.collect().await.map_err(|e| {
        if body::is_length_limit(e.as_ref()) {
            GatewayError::body_too_large()
        } else {
            tracing::debug!(error = %e, "echo: could not read the request body");
            GatewayError::bad_body()
        }
    })?;
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": received.to_bytes().len(),
    });
    let mut resp = Response::new(body::full(format!("{json:#}\n")));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
