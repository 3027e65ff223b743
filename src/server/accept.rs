//! Accepting on a listener's sockets (one per core in per-core mode, sharing the listener's
//! `max_connections` permits), stopping after `drain_delay`, and the drain that follows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::{serve_connection, ListenerCtx};
use crate::shutdown::stopped;

/// Accept on one of a listener's sockets until the listener stops accepting (on the
/// runtime that then serves its connections), bounded by the listener's `permits`.
pub(super) async fn accept_loop(
    socket: std::net::TcpListener,
    ctx: Arc<ListenerCtx>,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
) {
    let listener = match TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = %ctx.label, error = %e, "cannot accept on this socket");
            return;
        }
    };
    // Set when the shutdown is seen: accepting goes on until then (`drain_delay`).
    let mut until: Option<tokio::time::Instant> = None;
    // Accept, then wait for one of the listener's permits: with several sockets (per-core),
    // the loop holding the permit must be the one holding the connection, or a connection
    // queued on another core's socket would wait for a permit that loop never takes. Each
    // loop holds at most one accepted connection while it waits.
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(listener = %ctx.label, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = time_to_stop(&mut shutdown, &mut until, &ctx, &ready) => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = time_to_stop(&mut shutdown, &mut until, &ctx, &ready) => break,
            },
        };
        let ctx = ctx.clone();
        let drain = ctx.drain.subscribe();
        tokio::spawn(async move {
            serve_connection(tcp, peer, &ctx, drain).await;
            drop(permit);
        });
    }
    ready.store(false, Ordering::Relaxed);
    drop(listener);
    let _ = ctx.drain.send(true);
}

/// Once every accept loop of a listener has stopped, wait for its connections to end
/// (at most `drain_timeout`): they hold its permits.
pub(super) async fn drain_listener(
    loops: Vec<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    max: usize,
    drain_timeout: Duration,
    label: Arc<str>,
) {
    for l in loops {
        let _ = l.await;
    }
    tracing::info!(listener = %label, "stopped accepting; draining");
    let drained = tokio::time::timeout(drain_timeout, permits.acquire_many(max as u32)).await;
    if drained.is_err() {
        tracing::warn!(listener = %label, "drain timeout: closing remaining connections");
    }
}

/// Resolves when the listener must stop accepting: `drain_delay` after the shutdown was
/// asked for. `/readyz` turns 503 as soon as it is; `until` keeps the deadline, so a
/// call dropped by `select!` and made again waits for the same instant.
async fn time_to_stop(
    shutdown: &mut watch::Receiver<bool>,
    until: &mut Option<tokio::time::Instant>,
    ctx: &ListenerCtx,
    ready: &AtomicBool,
) {
    let at = match *until {
        Some(at) => at,
        None => {
            stopped(shutdown).await;
            ready.store(false, Ordering::Relaxed);
            let delay = ctx.limits.drain_delay;
            if !delay.is_zero() {
                tracing::info!(listener = %ctx.label, delay = ?delay,
                    "shutting down: /readyz answers 503; still accepting for drain_delay");
            }
            *until.insert(tokio::time::Instant::now() + delay)
        }
    };
    tokio::time::sleep_until(at).await;
}
