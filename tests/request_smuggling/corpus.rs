//! What the llhttp and HTTP Garden tables share: a backend that records each message it
//! reads whole (method, target, body), a gateway in front of it, and one runner per kind of
//! table. A case is a name that cites its source, the bytes the client sends, and what must
//! come of them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::common::{self, Spec, TestPki};
use super::{exchange, KEPT_OPEN};

/// One message as the backend read it. `body` stays `None` until the body has arrived
/// whole, and for good if it never does (the gateway gave up on a malformed one).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub method: String,
    pub target: String,
    pub body: Option<Vec<u8>>,
    /// The `x-case` header, by which a runner knows a message that arrived late.
    pub case: Option<String>,
}

/// A backend (hyper's HTTP/1.1 server, a parser of its own) that records every message,
/// its head as soon as it arrives, and answers 200 once the body is read.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                let svc = service_fn(move |req| record(req, log.clone()));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        Recorder { addr, seen, task }
    }

    /// The messages recorded so far, from the `from`-th on.
    pub fn since(&self, from: usize) -> Vec<Message> {
        self.seen.lock().unwrap()[from..].to_vec()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    req: hyper::Request<Incoming>,
    seen: Arc<Mutex<Vec<Message>>>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let at = {
        let mut seen = seen.lock().unwrap();
        seen.push(Message {
            method: req.method().to_string(),
            target: req.uri().to_string(),
            body: None,
            case: req
                .headers()
                .get("x-case")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        });
        seen.len() - 1
    };
    if let Ok(body) = req.into_body().collect().await {
        seen.lock().unwrap()[at].body = Some(body.to_bytes().to_vec());
    }
    Ok(hyper::Response::new(Full::new(Bytes::new())))
}

/// A gateway whose one route sends everything to a [`Recorder`].
pub async fn setup() -> (TestPki, Recorder, common::TestGateway) {
    setup_with("").await
}

/// [`setup`], with extra `[[listener]]` lines.
pub async fn setup_with(listener: &str) -> (TestPki, Recorder, common::TestGateway) {
    let pki = TestPki::new();
    let backend = Recorder::start().await;
    let spec = Spec {
        listener,
        body: common::backend_route(backend.addr, ""),
        ..Spec::default()
    };
    let gw = common::start(&pki, spec).await;
    (pki, backend, gw)
}

/// A message the backend must read: method, target, body.
pub type Want = (&'static str, &'static str, &'static str);

/// Refused: exactly one answer with this status, then the close, and nothing reaches the
/// backend.
pub async fn refused(cases: &[(&str, Vec<u8>, u16)]) {
    let (pki, backend, gw) = setup().await;
    let mut failed = Vec::new();
    for (what, wire, status) in cases {
        let from = backend.count();
        let a = exchange(&gw, &pki, wire).await;
        let seen = backend.since(from);
        if a.statuses != [*status] || !seen.is_empty() || a.text.ends_with(KEPT_OPEN) {
            failed.push(format!("{what}: want {status}, nothing at the backend; got {:?}, the backend read {seen:?}: {}", a.statuses, a.text));
        }
    }
    gw.shutdown().await;
    // Nor later.
    if backend.count() > 0 {
        failed.push(format!("the backend read {:?}", backend.since(0)));
    }
    all_passed(&failed, cases.len());
}

/// Framed one way: the backend reads exactly these messages (method, target, whole body),
/// and the client gets these final statuses (a `100 Continue` aside), then the close.
pub async fn framed(cases: &[(&str, String, Vec<Want>, Vec<u16>)]) {
    let (pki, backend, gw) = setup().await;
    let mut failed = Vec::new();
    for (what, wire, want, statuses) in cases {
        let from = backend.count();
        let a = exchange(&gw, &pki, wire.as_bytes()).await;
        let finals: Vec<u16> = a.statuses.iter().copied().filter(|s| *s != 100).collect();
        let want: Vec<Message> = want
            .iter()
            .map(|(method, target, body)| Message {
                method: (*method).into(),
                target: (*target).into(),
                body: Some(body.as_bytes().to_vec()),
                case: None,
            })
            .collect();
        let seen = backend.since(from);
        if seen != want || &finals != statuses || a.text.ends_with(KEPT_OPEN) {
            failed.push(format!("{what}: want {want:?} and {statuses:?}; the backend read {seen:?}, the client got {finals:?}: {}", a.text));
        }
    }
    gw.shutdown().await;
    all_passed(&failed, cases.len());
}

/// A malformed chunked body followed by a request to `/smuggled`: the head may have reached
/// the backend (it goes before the body), but never a whole body, never `/smuggled`, never
/// more than that one message; the client gets a 400 at most, then the close. The head can
/// reach the backend after the client's 400, so each case's request carries `x-case` and
/// the backend's record is read once the gateway has stopped.
pub async fn malformed_body(cases: &[(&str, String)]) {
    let (pki, backend, gw) = setup().await;
    let mut failed = Vec::new();
    for (i, (what, wire)) in cases.iter().enumerate() {
        assert!(
            wire.contains("/smuggled"),
            "{what}: the case needs its tail"
        );
        let (line, rest) = wire.split_at(wire.find('\n').map_or(0, |n| n + 1));
        let a = exchange(&gw, &pki, format!("{line}x-case: {i}\r\n{rest}").as_bytes()).await;
        let refusal = a.statuses.is_empty() || a.statuses == [400];
        if !refusal || a.text.contains("/smuggled") || a.text.ends_with(KEPT_OPEN) {
            failed.push(format!(
                "{what}: the client got {:?}: {}",
                a.statuses, a.text
            ));
        }
    }
    gw.shutdown().await;
    let seen = backend.since(0);
    for (i, (what, _)) in cases.iter().enumerate() {
        let case = i.to_string();
        let mine: Vec<_> = seen
            .iter()
            .filter(|m| m.case.as_ref() == Some(&case))
            .collect();
        if mine.len() > 1 || mine.iter().any(|m| m.body.is_some()) {
            failed.push(format!("{what}: the backend read {mine:?}"));
        }
    }
    if seen
        .iter()
        .any(|m| m.case.is_none() || m.target == "/smuggled")
    {
        failed.push(format!(
            "a request after a body reached the backend: {seen:?}"
        ));
    }
    all_passed(&failed, cases.len());
}

/// Every case is run before the verdict, so one failure does not hide the others.
fn all_passed(failed: &[String], of: usize) {
    assert!(
        failed.is_empty(),
        "{} of {of} cases:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
