//! The admin listener (plain HTTP, loopback by default): `/metrics` (Prometheus text),
//! `/healthz` (the process is up), `/readyz` (listeners are accepting; 503 while draining),
//! `POST /reload` and `GET /truststore` ([`reload`]), `POST /issuer/oauth2/revoke` and
//! `POST /issuer/sessions/revoke` ([`issuer`]).
//!
//! What `/readyz` waits for: this listener is bound at the end of `server::start`, after
//! every piece was built, the first JWKS fetches were tried and, with `[cluster]`, the
//! fleet's revocations were read from Redis (or `[cluster] timeout` passed without Redis:
//! then the instance is ready on its local revocations, `portcullis_cluster_redis_up` 0).
//! So its first 200 means a request here is checked against every revocation the fleet had.

mod issuer;
mod reload;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::reload::Reloader;
use crate::shutdown::stopped;
use crate::telemetry;

pub async fn serve(
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    reloader: Arc<Reloader>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let ready = ready.clone();
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ready = ready.clone();
                let reloader = reloader.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&Method::POST, "/reload") => {
                            let (status, body) = reload::reload(&reloader).await;
                            json(status, &body)
                        }
                        (&Method::POST, "/issuer/oauth2/revoke") => {
                            let (status, body) = issuer::revoke(&reloader, req.into_body()).await;
                            json(status, &body)
                        }
                        (&Method::POST, "/issuer/sessions/revoke") => {
                            let (status, body) =
                                issuer::revoke_sessions(&reloader, req.into_body()).await;
                            json(status, &body)
                        }
                        (&Method::GET, "/truststore") => {
                            let trust = reloader.shared().trust.load();
                            json(StatusCode::OK, &reload::truststore(&trust))
                        }
                        (method, path) => match allowed(path) {
                            Some(allow) if *method != allow => wrong_method(allow),
                            _ => respond(&req, &ready),
                        },
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// The one method each admin endpoint takes; `None` for a path that is not one.
fn allowed(path: &str) -> Option<Method> {
    match path {
        "/reload" | "/issuer/oauth2/revoke" | "/issuer/sessions/revoke" => Some(Method::POST),
        "/truststore" | "/metrics" | "/healthz" | "/readyz" => Some(Method::GET),
        _ => None,
    }
}

/// 405 for a known endpoint asked with another method, with `Allow` naming the one it takes.
fn wrong_method(allow: Method) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "method not allowed: use {allow}\n"
    ))));
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(v) = HeaderValue::from_str(allow.as_str()) {
        headers.insert(header::ALLOW, v);
    }
    resp
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn respond(req: &Request<Incoming>, ready: &AtomicBool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            telemetry::render(),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&Method::GET, "/readyz") => {
            if ready.load(Ordering::Relaxed) {
                (StatusCode::OK, "text/plain", "ready\n".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "draining\n".to_owned(),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
