//! A backend that records each message it reads whole (method, target, body), and a
//! gateway in front of it.

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

/// One message as the backend read it. `body` stays `None` until the body has arrived
/// whole, and for good if it never does (the gateway gave up on a malformed one).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub method: String,
    pub target: String,
    pub body: Option<Vec<u8>>,
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
    let pki = TestPki::new();
    let backend = Recorder::start().await;
    let spec = Spec {
        body: common::backend_route(backend.addr, ""),
        ..Spec::default()
    };
    let gw = common::start(&pki, spec).await;
    (pki, backend, gw)
}
