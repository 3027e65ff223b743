//! A real backend on 127.0.0.1:0 (HTTP/1.1 and h2c) that records what it received.
//!
//! Paths: `/slow?ms=N` answers after N ms (default 5 s); `/status/NNN` answers NNN; `/body` echoes the request
//! body; `/sink…` (any path that starts so) reads the whole request body first, then
//! answers 200 with its length; `/trailers` answers with a `grpc-status` trailer; anything
//! else answers 200 with a JSON object of the request's method, path and headers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub version: http::Version,
    pub headers: HeaderMap,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = {
            let seen = seen.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| handle(req, seen.clone()));
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            })
        };
        Origin {
            addr,
            seen,
            connections,
            task,
        }
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).map_err(|n| match n {}).boxed()
}

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: req.version(),
        headers: req.headers().clone(),
    });
    if path == "/slow" {
        let ms = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::new(full("slow")));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return Ok(r);
    }
    if path == "/body" {
        let body = req.into_body().boxed();
        return Ok(Response::new(body));
    }
    if path.starts_with("/sink") {
        let answer = match req.into_body().collect().await {
            Ok(body) => format!("{} bytes", body.to_bytes().len()),
            Err(e) => format!("body failed: {e}"),
        };
        return Ok(Response::new(full(answer)));
    }
    if path == "/trailers" {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, hyper::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"payload"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = StreamBody::new(futures_stream(frames)).boxed();
        return Ok(Response::new(body));
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
    }
    let json =
        serde_json::json!({ "method": req.method().as_str(), "path": path, "headers": headers });
    Ok(Response::new(full(json.to_string())))
}

/// A stream over a fixed list of frames, without pulling in the futures crate.
fn futures_stream(
    frames: Vec<Result<Frame<Bytes>, hyper::Error>>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, hyper::Error>> {
    struct Iter(std::vec::IntoIter<Result<Frame<Bytes>, hyper::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Frame<Bytes>, hyper::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(frames.into_iter())
}

/// A backend that keeps the raw bytes of the first request it reads (until the end of a
/// chunked body, or 2 s) and answers 200.
pub async fn raw_once() -> (SocketAddr, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n0\r\n") {
                    if text[end + 5..].contains("\r\n") && text.ends_with("\r\n\r\n") {
                        break;
                    }
                }
            }
        })
        .await;
        let _ = tcp
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
        let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
    });
    (addr, rx)
}
