//! One connection after its handshake: HTTP until it ends, and why it ended.
//!
//! hyper serves HTTP/1.1 or HTTP/2 on the TLS stream, read through [`Watched`] (which sees
//! the HTTP/2 preface and the client's resets). This loop decides when the gateway ends
//! the connection:
//! - no HTTP/2 preface (ALPN `h2`, or no ALPN and no first bytes) within
//!   `header_read_timeout`: hard close, `preface_timeout`;
//! - no request for `idle_timeout`: graceful shutdown (HTTP/2 GOAWAY and PING; HTTP/1.1
//!   closes when idle), `idle_timeout`;
//! - its identity failed a re-check after a reload: graceful shutdown, `revoked`;
//! - the gateway drains: graceful shutdown, `drain`;
//! - more than 100 client stream resets within 10 s: GOAWAY and, 1 s later, a hard close,
//!   `rapid_reset`.
//!
//! A graceful shutdown the client does not complete — still open [`SHUTDOWN_GRACE`] after
//! it started with no request in flight, or `drain_timeout` after it with one — ends in a
//! hard close, `shutdown_unanswered`: hyper waits for the peer (the PING answer, the
//! preface) for ever. One whose HTTP has ended, in its lingering close ([`Watched`]) when
//! the client has not closed its side, is cut [`SHUTDOWN_GRACE`] after the shutdown began
//! and keeps its reason (`idle_timeout`, `drain`, `revoked`). A hard close drops hyper's
//! connection, which closes the socket. hyper's graceful shutdown sends GOAWAY `NO_ERROR`
//! even for resets: it has no way to send another code (`ENHANCE_YOUR_CALM` is h2's own,
//! for the limits h2 enforces itself).
//!
//! Every connection that reached HTTP is counted once, when it ends, in
//! `portcullis_connections_closed_total{listener,reason}` (the reasons of [`Close`]; a
//! client that closes first is `closed`, an I/O or protocol error `error`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::wire::Watched;
use super::ListenerCtx;
use crate::config::ListenerLimits;
use crate::identity::ConnInfo;
use crate::proxy::pipeline;
use crate::shutdown::stopped;
use crate::telemetry::metrics as m;

/// How long a graceful shutdown may stay unanswered with nothing in flight, and how long a
/// connection lives after GOAWAY for too many resets.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The shortest sleep of the loop, so a deadline met a millisecond late does not spin.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Why a connection ended: the `reason` label of `portcullis_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client closed it (or HTTP/1.1 `connection: close` ended it).
    Closed,
    /// An I/O or protocol error ended it.
    Error,
    /// Closed by the gateway after `idle_timeout`; the client completed the shutdown.
    IdleTimeout,
    /// Closed after its identity failed a re-check.
    Revoked,
    /// Closed by the gateway's drain.
    Drain,
    /// Hard close: no HTTP/2 preface within `header_read_timeout`.
    PrefaceTimeout,
    /// Hard close: the client did not complete a graceful shutdown.
    ShutdownUnanswered,
    /// GOAWAY, then a hard close: too many client stream resets.
    RapidReset,
}

impl Close {
    const ALL: [Close; 8] = [
        Close::Closed,
        Close::Error,
        Close::IdleTimeout,
        Close::Revoked,
        Close::Drain,
        Close::PrefaceTimeout,
        Close::ShutdownUnanswered,
        Close::RapidReset,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Close::Closed => "closed",
            Close::Error => "error",
            Close::IdleTimeout => "idle_timeout",
            Close::Revoked => "revoked",
            Close::Drain => "drain",
            Close::PrefaceTimeout => "preface_timeout",
            Close::ShutdownUnanswered => "shutdown_unanswered",
            Close::RapidReset => "rapid_reset",
        }
    }
}

/// The listener's `portcullis_connections_closed_total` handles, one per reason.
pub struct CloseCounters([metrics::Counter; Close::ALL.len()]);

impl CloseCounters {
    pub fn new(listener: &Arc<str>) -> CloseCounters {
        CloseCounters(Close::ALL.map(|c| {
            metrics::counter!(m::CONNECTIONS_CLOSED_TOTAL, "listener" => listener.clone(),
                "reason" => c.label())
        }))
    }

    fn count(&self, why: Close) {
        self.0[why as usize].increment(1);
    }
}

/// HTTP on an accepted connection until it ends (see the module docs). The hyper connection
/// is built here, outside the async block, so the block does not also hold the TLS stream
/// it was built from.
pub(super) fn serve<'a>(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    conn_info: Arc<ConnInfo>,
    ctx: &'a ListenerCtx,
    mut shutdown: watch::Receiver<bool>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    let peer = conn_info.peer;
    let svc = {
        let shared = ctx.shared.clone();
        let conn_info = conn_info.clone();
        // Boxed: hyper's HTTP/1.1 dispatcher keeps a slot the size of the service future for
        // the whole life of the connection, idle or not. A box costs one allocation per
        // request and saves ~4 KiB per idle connection (BENCHMARKS.md, round 3).
        service_fn(move |req| Box::pin(pipeline::handle(shared.clone(), conn_info.clone(), req)))
    };
    let alpn = tls.get_ref().1.alpn_protocol();
    let http = ctx.http.for_alpn(alpn);
    let may_be_h2 = alpn != Some(b"http/1.1");
    let io = Watched::new(tls, conn_info.clone(), may_be_h2);
    // In its own box: pinned inside the async block, it would take its size twice there
    // (the captured value and the pinned local it moves into).
    let mut conn = Box::pin(http.serve_connection(TokioIo::new(io), svc));
    Box::pin(async move {
        let mut timers = Timers::new(&ctx.limits);
        let end = loop {
            let wake = timers.next_wake(&conn_info);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = &res {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break timers.ended(res.is_err());
                }
                _ = stopped(&mut shutdown), if timers.open() => {
                    conn.as_mut().graceful_shutdown();
                    timers.close(Close::Drain);
                }
                // The identity failed a re-check after a reload (HTTP/2 GOAWAY, HTTP/1.1
                // close after the refusal is written), or the client reset too many streams.
                _ = conn_info.trust.close.notified(), if timers.open() => {
                    let why = if conn_info.wire.rapid_reset() {
                        tracing::info!(%peer, "too many stream resets from the client; closing");
                        Close::RapidReset
                    } else {
                        Close::Revoked
                    };
                    conn.as_mut().graceful_shutdown();
                    timers.close(why);
                }
                _ = tokio::time::sleep_until(wake) => match timers.on_wake(&conn_info) {
                    Wake::Nothing => {}
                    Wake::Idle => {
                        tracing::debug!(%peer, "closing idle connection");
                        conn.as_mut().graceful_shutdown();
                    }
                    Wake::HardClose(why) => {
                        tracing::debug!(%peer, reason = why.label(), "closing the connection");
                        break why;
                    }
                },
            }
        };
        // Dropping hyper's connection closes the socket (a hard close when it had not ended).
        drop(conn);
        ctx.metrics.closed.count(end);
    })
}

/// What the loop's timer found.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Nothing,
    /// Idle too long: start a graceful shutdown.
    Idle,
    HardClose(Close),
}

/// The connection's deadlines, and why (and since when) it is closing. Kept in the
/// connection's future for its whole life, so it borrows the limits instead of copying them.
struct Timers<'a> {
    limits: &'a ListenerLimits,
    started: Instant,
    closing: Option<(Close, Instant)>,
}

impl<'a> Timers<'a> {
    fn new(limits: &'a ListenerLimits) -> Timers<'a> {
        Timers {
            limits,
            started: Instant::now(),
            closing: None,
        }
    }

    fn open(&self) -> bool {
        self.closing.is_none()
    }

    fn close(&mut self, why: Close) {
        self.closing = Some((why, Instant::now()));
    }

    /// When a connection still waiting for its first bytes is cut.
    fn preface_deadline(&self, conn: &ConnInfo) -> Option<Instant> {
        (!conn.wire.decided()).then(|| self.started + self.limits.header_read_timeout)
    }

    /// How long nothing has been in flight since the graceful shutdown began at `since`.
    fn quiet(conn: &ConnInfo, since: Instant, now: Instant) -> Duration {
        conn.activity
            .idle_for()
            .min(now.saturating_duration_since(since))
    }

    fn next_wake(&self, conn: &ConnInfo) -> Instant {
        let now = Instant::now();
        let next = match self.closing {
            None => {
                now + self
                    .limits
                    .idle_timeout
                    .saturating_sub(conn.activity.idle_for())
            }
            Some((Close::RapidReset, since)) => since + SHUTDOWN_GRACE,
            Some((_, since)) => {
                let grace = SHUTDOWN_GRACE.saturating_sub(Self::quiet(conn, since, now));
                (now + grace).min(since + self.limits.drain_timeout)
            }
        };
        let next = match self.preface_deadline(conn) {
            Some(p) => next.min(p),
            None => next,
        };
        next.max(now + MIN_TICK)
    }

    fn on_wake(&mut self, conn: &ConnInfo) -> Wake {
        let now = Instant::now();
        if self.preface_deadline(conn).is_some_and(|p| now >= p) {
            return Wake::HardClose(Close::PrefaceTimeout);
        }
        match self.closing {
            None if conn.activity.idle_for() >= self.limits.idle_timeout => {
                self.close(Close::IdleTimeout);
                Wake::Idle
            }
            None => Wake::Nothing,
            Some((Close::RapidReset, since)) if now >= since + SHUTDOWN_GRACE => {
                Wake::HardClose(Close::RapidReset)
            }
            Some((Close::RapidReset, _)) => Wake::Nothing,
            // hyper finished and the close lingers (FIN sent, the client has not closed
            // yet): the shutdown was answered; end it with its own reason.
            Some((why, since)) if conn.wire.lingering() && now >= since + SHUTDOWN_GRACE => {
                Wake::HardClose(why)
            }
            Some((_, since))
                if Self::quiet(conn, since, now) >= SHUTDOWN_GRACE
                    || now >= since + self.limits.drain_timeout =>
            {
                Wake::HardClose(Close::ShutdownUnanswered)
            }
            Some(_) => Wake::Nothing,
        }
    }

    /// Why a connection that hyper ended, ended.
    fn ended(&self, error: bool) -> Close {
        match self.closing {
            Some((why, _)) => why,
            None if error => Close::Error,
            None => Close::Closed,
        }
    }
}
