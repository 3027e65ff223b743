//! Upstreams: where a routed request is forwarded, over pooled connections.
//!
//! Runs last in the pipeline. Endpoints are picked round-robin, skipping one that recently
//! refused a connection (exponential back-off from 1 s to 10 s). HTTP/1.1 connections are
//! pooled per endpoint in lock-free bounded queues ([`idle`]: one per core in the per-core
//! runtime, one shared by every worker thread otherwise), and go back into it once their
//! response body has been read; HTTP/2 keeps one multiplexed connection per endpoint. A
//! request that fails on a pooled connection that turned out dead is retried once on a
//! fresh one only when hyper hands it back unsent (`TrySendError::take_message`): nothing
//! of it left, so nothing is kept "for replay". Failures: connect error 502 `upstream_unavailable`, no
//! response head within `request_timeout` 504 `upstream_timeout`.
//!
//! A client that goes away mid-exchange (an HTTP/2 reset, a closed connection) does not cost
//! the pooled HTTP/1.1 connection: the exchange finishes in the background ([`detach`]).
//!
//! An upstream is either such a pool ([`Target::Pool`]) or a built-in service answered in
//! process ([`Target::Builtin`], see [`crate::builtin`]); the forward phase calls one or
//! the other.

mod detach;
pub mod idle;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics::Counter;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::{ClientBodyWatch, ProxyBody};
use crate::builtin::Builtin;
use crate::config::{KeyPermissions, UpstreamConfig, UpstreamProtocol, UpstreamTarget};
use crate::telemetry::metrics as m;
use idle::IdlePool;

const BACKOFF_BASE_MS: u64 = 1_000;
const BACKOFF_MAX_MS: u64 = 10_000;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("request body larger than the route allows")]
    BodyTooLarge,
    #[error("upstream protocol error: {0}")]
    Protocol(#[source] hyper::Error),
    #[error("bad request for the upstream: {0}")]
    Request(String),
    /// The client's request body failed while it was streamed on (see
    /// [`ClientBodyWatch`]): not counted against the upstream.
    #[error("the client's request body failed: {0}")]
    ClientBody(#[source] hyper::Error),
}

/// Errors building an upstream from its config (TLS material).
#[derive(Debug, thiserror::Error)]
#[error("upstream {name:?}: {message}")]
pub struct UpstreamBuildError {
    pub name: String,
    pub message: String,
}

#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub target: Target,
}

/// What serves an upstream's requests.
#[derive(Debug)]
pub enum Target {
    /// Answered in process (`builtin = "..."`).
    Builtin(Builtin),
    /// Forwarded over pooled connections to the configured endpoints.
    Pool(Box<Pool>),
}

/// The endpoints of one upstream and their pooled connections.
pub struct Pool {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    protocol: UpstreamProtocol,
    tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    counters: Counters,
}

struct Counters {
    hits: Counter,
    misses: Counter,
    retries: Counter,
    err_connect: Counter,
    err_timeout: Counter,
    err_protocol: Counter,
}

struct Endpoint {
    /// `host:port` as configured.
    addr: String,
    host: String,
    /// Idle HTTP/1.1 connections; `None` when pooling is off (`max_idle_per_endpoint = 0`).
    idle: Option<Arc<IdlePool>>,
    h2: ArcSwapOption<http2::SendRequest<ProxyBody>>,
    down_until_ms: AtomicU64,
    failures: AtomicU32,
}

enum Conn {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

impl Upstream {
    pub fn echo(name: &str) -> Upstream {
        Upstream {
            name: Arc::from(name),
            target: Target::Builtin(Builtin::Echo),
        }
    }

    pub fn from_config(cfg: &UpstreamConfig) -> Result<Upstream, UpstreamBuildError> {
        let endpoints = match &cfg.target {
            UpstreamTarget::Builtin(b) => {
                return Ok(Upstream {
                    name: Arc::from(cfg.name.as_str()),
                    target: Target::Builtin(Builtin::from_config(*b)),
                })
            }
            UpstreamTarget::Endpoints(eps) => eps,
        };
        let tls = match &cfg.tls {
            Some(t) => Some(build_tls(cfg, t)?),
            None => None,
        };
        let label = cfg.name.clone();
        let err = |kind: &'static str| metrics::counter!(m::UPSTREAM_ERRORS_TOTAL, "upstream" => label.clone(), "kind" => kind);
        let counters = Counters {
            hits: metrics::counter!(m::UPSTREAM_POOL_HITS_TOTAL, "upstream" => label.clone()),
            misses: metrics::counter!(m::UPSTREAM_POOL_MISSES_TOTAL, "upstream" => label.clone()),
            retries: metrics::counter!(m::UPSTREAM_RETRIES_TOTAL, "upstream" => label.clone()),
            err_connect: err("connect"),
            err_timeout: err("timeout"),
            err_protocol: err("protocol"),
        };
        let endpoints = endpoints
            .iter()
            .map(|addr| Endpoint {
                host: addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                addr: addr.clone(),
                idle: (cfg.max_idle_per_endpoint > 0)
                    .then(|| Arc::new(IdlePool::new(cfg.max_idle_per_endpoint))),
                h2: ArcSwapOption::empty(),
                down_until_ms: AtomicU64::new(0),
                failures: AtomicU32::new(0),
            })
            .collect();
        Ok(Upstream {
            name: Arc::from(cfg.name.as_str()),
            target: Target::Pool(Box::new(Pool {
                endpoints,
                next: AtomicUsize::new(0),
                protocol: cfg.protocol,
                tls,
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.request_timeout,
                idle_timeout: cfg.idle_timeout,
                counters,
            })),
        })
    }
}

impl Pool {
    /// Forward `req`, whose URI is in origin form (path and query) and whose `Host` header
    /// (if any) is the one the client sent.
    pub async fn forward(
        &self,
        req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let (resp, conn, ep) =
            match tokio::time::timeout_at(deadline, self.send(req, deadline)).await {
                Ok(r) => r,
                Err(_) => {
                    self.counters.err_timeout.increment(1);
                    Err(UpstreamError::Timeout(self.request_timeout))
                }
            }?;
        Ok(match conn {
            // The connection goes back to the pool when the body has been read.
            Conn::H1(tx) => {
                let back = ep.idle.as_ref().map(|idle| (tx, Arc::clone(idle)));
                resp.map(|b: Incoming| {
                    detach::DrainOnDrop::new(b, back, self.request_timeout)
                        .map_err(Into::into)
                        .boxed()
                })
            }
            Conn::H2(_) => resp.map(|b: Incoming| b.map_err(Into::into).boxed()),
        })
    }

    /// The response head and the connection it came on.
    async fn send(
        &self,
        req: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Conn, &Endpoint), UpstreamError> {
        let ep = self.pick();
        let client_body = req.extensions().get::<ClientBodyWatch>().cloned();
        // A failure of the client's body is the client's: no protocol error counted.
        let fail = |err: hyper::Error| match &client_body {
            Some(w) if w.failed() => UpstreamError::ClientBody(err),
            _ => self.classify(err),
        };
        let (conn, reused) = self.checkout(ep).await?;
        let req = self.prepare(req, ep)?;
        match self.exchange(ep, conn, req, deadline).await {
            Ok((resp, conn)) => Ok((resp, conn, ep)),
            // A pooled connection the backend closed just as we reused it: hyper gives the
            // request back when none of it was written, and only then is it sent again.
            Err((err, Some(again))) if reused => {
                self.counters.retries.increment(1);
                tracing::debug!(endpoint = %ep.addr, error = %err, "pooled connection was dead; retrying once");
                let conn = Box::pin(self.connect(ep)).await?;
                match self.exchange(ep, conn, again, deadline).await {
                    Ok((resp, conn)) => Ok((resp, conn, ep)),
                    Err((err, _)) => Err(fail(err)),
                }
            }
            Err((err, _)) => Err(fail(err)),
        }
    }

    /// Send on `conn`; on failure, the request comes back when it was never sent. An
    /// HTTP/1.1 exchange dropped half-way finishes in the background ([`detach::InFlight`]).
    async fn exchange(
        &self,
        ep: &Endpoint,
        conn: Conn,
        req: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Conn), (hyper::Error, Option<Request<ProxyBody>>)> {
        match conn {
            Conn::H1(tx) => {
                let idle = ep.idle.as_ref();
                detach::InFlight::send(tx, req, idle, deadline, self.request_timeout)
                    .await
                    .map(|(resp, tx)| (resp, Conn::H1(tx)))
            }
            Conn::H2(mut tx) => match tx.try_send_request(req).await {
                Ok(resp) => Ok((resp, Conn::H2(tx))),
                Err(mut e) => {
                    let unsent = e.take_message();
                    Err((e.into_error(), unsent))
                }
            },
        }
    }

    fn classify(&self, err: hyper::Error) -> UpstreamError {
        if let Some(src) = std::error::Error::source(&err) {
            if crate::body::is_length_limit(src) {
                return UpstreamError::BodyTooLarge;
            }
        }
        self.counters.err_protocol.increment(1);
        UpstreamError::Protocol(err)
    }

    /// Round-robin over endpoints not in back-off; if all are, the next one anyway. A skip
    /// takes its own turn from the shared counter, so the healthy endpoints still share the
    /// load evenly (skipping to "the one after" would give it double).
    fn pick(&self) -> &Endpoint {
        let n = self.endpoints.len();
        let now = now_ms();
        let mut first = None;
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let ep = &self.endpoints[i];
            if ep.down_until_ms.load(Ordering::Relaxed) <= now {
                return ep;
            }
            first.get_or_insert(ep);
        }
        first.unwrap_or(&self.endpoints[0])
    }

    /// Set the URI form and version the connection's protocol needs.
    fn prepare(
        &self,
        mut req: Request<ProxyBody>,
        ep: &Endpoint,
    ) -> Result<Request<ProxyBody>, UpstreamError> {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match self.protocol {
            UpstreamProtocol::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                *req.uri_mut() = Uri::from(pq);
                // A body of no known length goes chunked. hyper's client would send it so
                // for most methods, but for GET and HEAD it assumes there is none and sends
                // the head alone: a client's chunked GET body (or an HTTP/2 one without
                // content-length) would be dropped. hyper keeps a transfer-encoding it is
                // given (`transfer-encoding` itself came off with the hop-by-hop headers).
                let body = req.body();
                if !body.is_end_stream()
                    && body.size_hint().exact().is_none()
                    && !req.headers().contains_key(header::CONTENT_LENGTH)
                {
                    req.headers_mut().insert(
                        header::TRANSFER_ENCODING,
                        HeaderValue::from_static("chunked"),
                    );
                }
                if !req.headers().contains_key(header::HOST) {
                    let host = HeaderValue::from_str(&ep.addr).map_err(|_| {
                        UpstreamError::Request("endpoint is not a valid host".into())
                    })?;
                    req.headers_mut().insert(header::HOST, host);
                }
            }
            UpstreamProtocol::Http2 => {
                *req.version_mut() = Version::HTTP_2;
                let authority = match req.headers_mut().remove(header::HOST) {
                    Some(h) => Authority::try_from(h.as_bytes()),
                    None => Authority::try_from(ep.addr.as_str()),
                }
                .map_err(|_| UpstreamError::Request("invalid host for HTTP/2".into()))?;
                let scheme = if self.tls.is_some() {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                };
                *req.uri_mut() = Uri::builder()
                    .scheme(scheme)
                    .authority(authority)
                    .path_and_query(pq)
                    .build()
                    .map_err(|e| UpstreamError::Request(e.to_string()))?;
            }
        }
        Ok(req)
    }

    /// A ready pooled connection (`true`) or a new one (`false`).
    async fn checkout(&self, ep: &Endpoint) -> Result<(Conn, bool), UpstreamError> {
        match self.protocol {
            UpstreamProtocol::Http1 => {
                if let Some(idle) = &ep.idle {
                    if let Some(tx) = idle.check_out(self.idle_timeout).await {
                        self.counters.hits.increment(1);
                        return Ok((Conn::H1(tx), true));
                    }
                }
            }
            UpstreamProtocol::Http2 => {
                if let Some(tx) = ep.h2.load().as_deref() {
                    if !tx.is_closed() {
                        self.counters.hits.increment(1);
                        return Ok((Conn::H2(tx.clone()), true));
                    }
                }
            }
        }
        self.counters.misses.increment(1);
        // Boxed: a new connection (TCP connect + TLS client handshake) is a multi-KiB state
        // machine on the rare pool-miss path. Inline it would size every request's future,
        // and hyper keeps one such slot per open client connection (BENCHMARKS.md, round 2).
        Ok((Box::pin(self.connect(ep)).await?, false))
    }

    async fn connect(&self, ep: &Endpoint) -> Result<Conn, UpstreamError> {
        let connect_err = |source: std::io::Error| {
            self.counters.err_connect.increment(1);
            let failures = ep.failures.fetch_add(1, Ordering::Relaxed).min(8);
            let backoff = (BACKOFF_BASE_MS << failures).min(BACKOFF_MAX_MS);
            ep.down_until_ms
                .store(now_ms() + backoff, Ordering::Relaxed);
            UpstreamError::Connect {
                endpoint: ep.addr.clone(),
                source,
            }
        };
        let tcp =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&ep.addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(connect_err(e)),
                Err(_) => return Err(connect_err(std::io::ErrorKind::TimedOut.into())),
            };
        let _ = tcp.set_nodelay(true);
        ep.failures.store(0, Ordering::Relaxed);
        ep.down_until_ms.store(0, Ordering::Relaxed);
        match &self.tls {
            None => self.handshake(ep, TokioIo::new(tcp)).await,
            Some((connector, name)) => {
                let name = match name {
                    Some(n) => n.clone(),
                    None => ServerName::try_from(ep.host.clone())
                        .map_err(|_| connect_err(std::io::ErrorKind::InvalidInput.into()))?,
                };
                let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
                    .map_err(connect_err)?;
                self.handshake(ep, TokioIo::new(tls)).await
            }
        }
    }

    async fn handshake<IO>(&self, ep: &Endpoint, io: IO) -> Result<Conn, UpstreamError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        match self.protocol {
            UpstreamProtocol::Http1 => {
                let (tx, conn) = http1::handshake(io).await.map_err(|e| self.classify(e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "upstream connection ended");
                    }
                });
                Ok(Conn::H1(tx))
            }
            UpstreamProtocol::Http2 => {
                let (tx, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| self.classify(e))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "upstream connection ended");
                    }
                });
                ep.h2.store(Some(Arc::new(tx.clone())));
                Ok(Conn::H2(tx))
            }
        }
    }
}

/// Milliseconds since the first call: a cheap monotonic clock for back-off deadlines.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn build_tls(
    cfg: &UpstreamConfig,
    t: &crate::config::UpstreamTls,
) -> Result<(TlsConnector, Option<ServerName<'static>>), UpstreamBuildError> {
    let fail = |message: String| UpstreamBuildError {
        name: cfg.name.clone(),
        message,
    };
    use crate::material::{client_builder, ClientBuildError};
    let ca = crate::tls::load_certs(&t.ca).map_err(|e| fail(e.to_string()))?;
    let builder = client_builder(ca).map_err(|e| {
        fail(match e {
            ClientBuildError::Root(e) => format!("tls.ca {}: {e}", t.ca.display()),
            ClientBuildError::Versions(e) => e.to_string(),
        })
    })?;
    let mut config = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            let chain = crate::tls::load_certs(cert).map_err(|e| fail(e.to_string()))?;
            let key = crate::tls::load_key(key, KeyPermissions::Strict)
                .map_err(|e| fail(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail(format!("tls.cert/tls.key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match cfg.protocol {
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
    };
    let name = match &t.server_name {
        Some(n) => Some(
            ServerName::try_from(n.clone())
                .map_err(|_| fail(format!("tls.server_name {n:?} is not a valid name")))?,
        ),
        None => None,
    };
    Ok((TlsConnector::from(Arc::new(config)), name))
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.addr).collect::<Vec<_>>(),
            )
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}
