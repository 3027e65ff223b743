//! Running a gateway: build every piece from the config, bind the listeners, accept and
//! handshake connections, serve HTTP on them, and drain on shutdown.
//!
//! Per connection: accept (bounded by `max_connections`) → TLS handshake within
//! `handshake_timeout` (the client chain is verified by `tls::ClientVerifier`) → identity
//! extracted once → HTTP/1.1 or HTTP/2 served by hyper, each request through
//! [`crate::proxy::pipeline::handle`], until the connection ends ([`connection`]: idle,
//! drain, revocation, and the hard closes of silent or abusive HTTP/2 clients watched by
//! [`wire`]). A resumed TLS session skips the verifier inside rustls, so the restored chain
//! is verified again here before the connection is used.
//!
//! Each connection takes the TLS acceptor and verifier of the truststore generation current
//! when it is accepted ([`crate::state::TrustState`]); a reload swaps them for the next.
//!
//! Where it runs is [`runtime`]'s: in per-core mode each listener has one socket and one
//! accept loop per core, all sharing the listener's `max_connections`.

mod accept;
mod check;
mod connection;
mod refusal;
pub mod runtime;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::HandshakeKind;
use rustls_pki_types::UnixTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::access_log::AccessLogger;
use crate::auth::sigv4::FileCredentials;
use crate::config::{Config, ListenerLimits, RuntimeMode};
use crate::identity::{ConnInfo, ForwardedIdentity};
use crate::reload::{self, crl_fetch::CrlStore, Reloader};
use crate::state::{build_snapshot, build_trust, Fixed, Shared};
use crate::telemetry::{self, metrics as m};
use crate::tls::{self, CachingVerifier, IdentifyError, Truststore};

use accept::{accept_loop, drain_listener};
use connection::{serve, CloseCounters};
use runtime::Cores;

pub use crate::state::StartError;
pub use check::{check_remote, validate, validate_all, Finding};

/// A started gateway. Dropping it does not stop it: call [`Running::shutdown`].
pub struct Running {
    /// Bound addresses, in config order (useful when the config asked for port 0).
    pub listeners: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// Reloads this gateway (what SIGHUP and `POST /reload` call).
    pub reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The admin listener outlives the drain (`/readyz` answers 503 until the end): it is
    /// stopped by its own signal once every other task has ended.
    admin_task: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// The per-core runtimes (per-core mode), stopped after everything else.
    cores: Option<Cores>,
}

struct ListenerCtx {
    label: Arc<str>,
    /// Index into the generation's acceptors.
    index: usize,
    limits: ListenerLimits,
    http: HttpBuilders,
    shared: Arc<Shared>,
    metrics: ConnMetrics,
    /// Set once this listener stops accepting: its connections then drain. Later than the
    /// gateway's shutdown by the listener's `drain_delay`.
    drain: watch::Sender<bool>,
    /// `portcullis_listener_core_connections_active{listener,core}` of the core this
    /// context's accept loop runs on (per-core mode only).
    core_active: Option<metrics::Gauge>,
}

/// The listener's per-connection metrics, registered once: `counter!` looks its key up in
/// the registry on every call, which was ~1 % of a resumed connection's CPU.
struct ConnMetrics {
    connections: metrics::Counter,
    active: metrics::Gauge,
    accepted: metrics::Counter,
    closed: CloseCounters,
}

impl ConnMetrics {
    fn new(label: &Arc<str>) -> ConnMetrics {
        // Refusals are present at 0 from the start (every reason), not first seen when one
        // happens.
        for (result, reason) in tls::handshake_refusal_labels() {
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "listener" => label.clone(),
                "result" => result, "reason" => reason)
            .increment(0);
        }
        ConnMetrics {
            connections: metrics::counter!(m::LISTENER_CONNECTIONS_TOTAL, "listener" => label.clone()),
            active: metrics::gauge!(m::LISTENER_CONNECTIONS_ACTIVE, "listener" => label.clone()),
            accepted: metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "listener" => label.clone(),
                "result" => "accepted", "reason" => "ok"),
            closed: CloseCounters::new(label),
        }
    }
}

/// One HTTP builder per ALPN outcome, all with the listener's settings.
///
/// A client that negotiated `h2` or `http/1.1` gets that protocol directly. Only a client
/// without ALPN gets the sniffing builder, which reads the first bytes to tell an HTTP/2
/// preface (prior knowledge) from HTTP/1.1. Sniffing costs 8 KiB per idle HTTP/1.1
/// connection: hyper's read buffer starts at 8 KiB, holds the replayed sniffed bytes, and
/// doubles to 16 KiB on the next read (BENCHMARKS.md, round 3).
struct HttpBuilders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    sniff: auto::Builder<TokioExecutor>,
}

impl HttpBuilders {
    fn new(limits: &ListenerLimits) -> HttpBuilders {
        HttpBuilders {
            h1: http_builder(limits).http1_only(),
            h2: http_builder(limits).http2_only(),
            sniff: http_builder(limits),
        }
    }

    fn for_alpn(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.h2,
            Some(b"http/1.1") => &self.h1,
            _ => &self.sniff,
        }
    }
}

/// Build everything the config describes and start serving. Nothing is bound until every
/// piece has been built, so a bad certificate never leaves a half-started gateway.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    telemetry::prometheus();
    tls::register_verification_counters();
    let per_core = config.runtime.mode == RuntimeMode::PerCore;
    let cores = per_core.then(|| runtime::worker_threads(config));
    if let Some(n) = cores {
        // Before any pool is built: one idle lane per core (`upstream::idle`).
        crate::upstream::idle::reserve_lanes(n);
    }
    let fixed = Fixed::new(config)?;
    let crls = Arc::new(CrlStore::default());
    if !config.truststore.crl_fetch.is_empty() {
        // Fetch once before the first generation, so fetched CRLs apply from the start; a
        // failed fetch does not stop the start (`unknown_revocation` decides until one works).
        let checker =
            Truststore::load(&config.truststore.dir).map_err(|source| StartError::Truststore {
                dir: config.truststore.dir.display().to_string(),
                source,
            })?;
        crls.fetch_all(&config.truststore.crl_fetch, Arc::new(checker))
            .await;
    }
    let fetched = crls.for_config(&config.truststore.crl_fetch);
    let trust = build_trust(config, 1, &fixed, &fetched)?;
    reload::hygiene(&trust.truststore, config.reload.expiry_warning, true);
    let (shutdown, _) = watch::channel(false);
    let mut snapshot = build_snapshot(config)?;
    let access_log = AccessLogger::start(&config.log.access_log).map_err(StartError::AccessLog)?;
    let cluster = crate::state::cluster(config)?;
    let fleet = cluster.as_ref();
    snapshot.issuer = crate::state::start_issuer(config, &access_log, shutdown.subscribe(), fleet)?;
    snapshot.sessions =
        crate::state::start_sessions(config, &access_log, shutdown.subscribe(), fleet)?;
    if let Some(c) = &cluster {
        // Before any listener (and `/readyz`) is up: the fleet's revocations first.
        c.start(shutdown.subscribe()).await;
    }
    snapshot.jwt = Arc::new(
        crate::auth::jwt::Providers::start(
            &config.jwt,
            snapshot.issuer.as_ref(),
            shutdown.subscribe(),
        )
        .await
        .map_err(StartError::Jwt)?,
    );
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snapshot),
        trust: ArcSwap::from_pointee(trust),
        access_log,
    });
    metrics::gauge!(m::TRUSTSTORE_GENERATION).set(1.0);
    let reloader = Arc::new(Reloader::new(
        shared.clone(),
        fixed,
        crls,
        config.clone(),
        1,
        shutdown.subscribe(),
    ));

    let mut tasks = Vec::new();
    if let Some(creds) = &shared.snapshot.load().sigv4_credentials {
        tasks.push(tokio::spawn(FileCredentials::watch(
            Arc::downgrade(creds),
            shutdown.subscribe(),
        )));
    }
    let mut bound = Vec::new();
    let mut listeners = Vec::new();
    for (index, l) in config.listeners.iter().enumerate() {
        let address = l.address;
        let sockets = runtime::bind(address, cores.unwrap_or(1))
            .map_err(|source| StartError::Bind { address, source })?;
        let local = sockets
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or(address);
        // Label metrics and logs with the bound address: port 0 configs would collide.
        let label: Arc<str> = Arc::from(local.to_string());
        bound.push(local);
        listeners.push((sockets, label, index, l.limits.clone()));
    }
    let ready = Arc::new(AtomicBool::new(true));
    let mut admin_task = None;
    let admin = match &config.admin {
        Some(a) => {
            let listener =
                TcpListener::bind(a.address)
                    .await
                    .map_err(|source| StartError::Bind {
                        address: a.address,
                        source,
                    })?;
            let addr = listener.local_addr().unwrap_or(a.address);
            tracing::info!(address = %addr, "admin listener up");
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(crate::admin::serve(
                listener,
                ready.clone(),
                reloader.clone(),
                stopped,
            ));
            admin_task = Some((stop, task));
            Some(addr)
        }
        None => None,
    };
    let cores = match cores {
        Some(n) => Some(Cores::start(n).map_err(StartError::Runtime)?),
        None => None,
    };
    for (sockets, label, index, limits) in listeners {
        tracing::info!(address = %label, sockets = sockets.len(),
            runtime = config.runtime.mode.as_str(), "listening");
        let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let permits = Arc::new(Semaphore::new(max));
        let mut loops = Vec::with_capacity(sockets.len());
        for (core, socket) in sockets.into_iter().enumerate() {
            let core_active = cores.is_some().then(|| {
                metrics::gauge!(m::LISTENER_CORE_CONNECTIONS_ACTIVE,
                    "listener" => label.clone(), "core" => core.to_string())
            });
            let ctx = ListenerCtx {
                metrics: ConnMetrics::new(&label),
                label: label.clone(),
                index,
                http: HttpBuilders::new(&limits),
                limits: limits.clone(),
                shared: shared.clone(),
                drain: watch::channel(false).0,
                core_active,
            };
            let accepting = accept_loop(
                socket,
                Arc::new(ctx),
                permits.clone(),
                shutdown.subscribe(),
                ready.clone(),
            );
            loops.push(match &cores {
                Some(c) => c.handles()[core % c.handles().len()].spawn(accepting),
                None => tokio::spawn(accepting),
            });
        }
        tasks.push(tokio::spawn(drain_listener(
            loops,
            permits,
            max,
            limits.drain_timeout,
            label,
        )));
    }
    tasks.push(reload::watch::spawn(reloader.clone(), shutdown.subscribe()));
    Ok(Running {
        listeners: bound,
        admin,
        reloader,
        shutdown,
        tasks,
        admin_task,
        cores,
    })
}

impl Running {
    /// `/readyz` turns 503 at once; each listener keeps accepting for its `drain_delay`, then
    /// stops and lets in-flight requests finish (its `drain_timeout`). Returns when every
    /// connection has ended or the drain time ran out; the admin listener stops last.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.wait().await;
    }

    /// A handle that starts the shutdown from elsewhere (a signal handler).
    pub fn shutdown_trigger(&self) -> impl Fn() + Send + Sync + 'static {
        let tx = self.shutdown.clone();
        move || {
            let _ = tx.send(true);
        }
    }

    /// Wait until the gateway has stopped (after a trigger).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some((stop, task)) = self.admin_task {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(cores) = self.cores {
            cores.stop().await;
        }
    }
}

fn http_builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_size.max(8192))
        // Free the 8 KiB read and write buffers while a keep-alive connection waits
        // (our hyper patch, patches/README.md; BENCHMARKS.md, issue 17 step 4).
        .idle_buffer_release(true)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_size);
    b
}

/// One connection: the TLS handshake and identity, then HTTP until it closes.
///
/// The spawned task keeps this future for the connection's whole life, so it only holds
/// the two phases' boxes, each sized to its own phase; the handshake's box is freed before
/// serving starts. Unboxed, this future was 9 KiB per connection, idle or not: the larger of
/// the two phases plus what the compiler could not overlap (BENCHMARKS.md, round 3). Both
/// boxes are made by plain functions, because a future moved into `Box::pin` inside an
/// `async fn` still takes its size in the caller's state.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ListenerCtx,
    shutdown: watch::Receiver<bool>,
) {
    ctx.metrics.connections.increment(1);
    ctx.metrics.active.increment(1.0);
    if let Some(g) = &ctx.core_active {
        g.increment(1.0);
    }
    let _active = scopeguard(|| {
        ctx.metrics.active.decrement(1.0);
        if let Some(g) = &ctx.core_active {
            g.decrement(1.0);
        }
    });
    let Some((tls, conn_info)) = accept(tcp, peer, ctx).await else {
        return;
    };
    serve(tls, conn_info, ctx, shutdown).await;
}

type Accepted = (tokio_rustls::server::TlsStream<TcpStream>, Arc<ConnInfo>);

/// The TLS handshake under the listener's timeout, and the caller's identity; `None` (after
/// counting why) when the connection is refused.
fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ListenerCtx,
) -> Pin<Box<dyn Future<Output = Option<Accepted>> + Send + '_>> {
    Box::pin(async move {
        let _ = tcp.set_nodelay(true);
        // The generation current at accept: its acceptor, and its verifier for the identity.
        let trust = ctx.shared.trust.load_full();
        let acceptor = trust.acceptors.get(ctx.index)?;
        let (handshake, refused) = tls::refused::capture(tokio::time::timeout(
            ctx.limits.handshake_timeout,
            acceptor.accept(tcp).into_fallible(),
        ))
        .await;
        let tls = match handshake {
            Ok(Ok(s)) => s,
            Ok(Err((e, tcp))) => {
                let (result, reason) = handshake_failure(&e);
                count_handshake(&ctx.label, result, reason);
                if result == "rejected" {
                    refusal::log(peer, &ctx.label, reason, refused.as_ref(), &e);
                } else {
                    tracing::debug!(%peer, reason, error = %e, "TLS handshake failed");
                }
                refusal::close(tcp).await;
                return None;
            }
            Err(_) => {
                count_handshake(&ctx.label, "failed", "timeout");
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        };
        let identity = match client_identity(tls.get_ref().1, &trust.verifier) {
            Ok(id) => id,
            Err(reason) => {
                count_handshake(&ctx.label, "rejected", reason);
                let error = "the client no longer verifies (resumed session, or its identity)";
                let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                let cert = leaf.map(|l| tls::refused::RefusedCert::from_leaf(l, ""));
                refusal::log(peer, &ctx.label, reason, cert.as_ref(), &error);
                refusal::close_tls(tls).await;
                return None;
            }
        };
        ctx.metrics.accepted.increment(1);

        let mut conn_info = ConnInfo::new(peer, ctx.label.clone(), identity);
        conn_info.requests = ctx.limits.requests;
        conn_info.trusted_proxy = ctx
            .limits
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        if let Some(chain) = tls.get_ref().1.peer_certificates() {
            conn_info.trust.chain = chain.to_vec();
        }
        conn_info
            .trust
            .generation
            .store(trust.generation, Ordering::Release);
        let conn_info = Arc::new(conn_info);
        conn_info.activity.touch();
        Some((tls, conn_info))
    })
}

/// The verified identity of the peer, if it sent a certificate: from the identity cache
/// (the handshake's verifier just filled it). After a resumed handshake the restored chain
/// is verified again against the current generation and clock (cache first): a client
/// revoked since its full handshake is refused here, before any request.
fn client_identity(
    conn: &rustls::ServerConnection,
    verifier: &CachingVerifier,
) -> Result<Option<ForwardedIdentity>, &'static str> {
    let Some((leaf, intermediates)) = conn.peer_certificates().and_then(|c| c.split_first()) else {
        return Ok(None);
    };
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let now = UnixTime::now();
    let found = if resumed {
        verifier.identify(leaf, intermediates, now)
    } else {
        verifier.identify_after_handshake(leaf, intermediates, now)
    };
    match found {
        Ok(cached) => Ok(Some(cached.forwarded.clone())),
        Err(IdentifyError::Rejected(r)) => {
            if resumed {
                tracing::info!(reason = r.reason.label(), detail = %r.detail,
                    "resumed session refused: the client no longer verifies");
            }
            Err(r.reason.label())
        }
        Err(IdentifyError::BadIdentity) => Err("bad_identity"),
    }
}

fn count_handshake(listener: &str, result: &'static str, reason: &'static str) {
    metrics::counter!(
        m::TLS_HANDSHAKES_TOTAL,
        "listener" => listener.to_owned(),
        "result" => result,
        "reason" => reason
    )
    .increment(1);
}

/// `(result, reason)` labels for a failed handshake: [`tls::handshake_failure`] for a
/// rustls error, `io` for anything else (the client went away).
fn handshake_failure(e: &std::io::Error) -> (&'static str, &'static str) {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(err) => tls::handshake_failure(err),
        None => ("failed", "io"),
    }
}

/// Run `f` when the returned guard is dropped.
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
