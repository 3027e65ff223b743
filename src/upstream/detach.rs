//! An HTTP/1.1 exchange the client gave up on, finished in the background so its pooled
//! connection survives.
//!
//! hyper's HTTP/1 client closes a connection whose response future, or response body, is
//! dropped before the end: it cannot tell what is still on the wire. When a client resets
//! an HTTP/2 stream (or closes its connection), hyper drops that request's future and with
//! it ours, so every reset used to cost the upstream connection it was using, and the next
//! request a new one. [`InFlight`] (until the response head) and [`DrainOnDrop`] (the
//! response body) hand what is left of the exchange to a spawned task instead: it waits for
//! the head until the request's `request_timeout` deadline, reads the body to its end (at
//! most [`DRAIN_LIMIT`] bytes, within `request_timeout`), and the connection goes back to
//! the pool. Only a drop before the end spawns; an exchange that completes costs one box.
//!
//! [`DrainOnDrop`] also checks the connection back in when the body has been read to its
//! end (or at once when the response has none): no task waits for that.
//!
//! HTTP/2 upstreams need none of this: when hyper's handles for a stream are dropped, h2
//! resets just that stream (RST_STREAM `CANCEL`) and the connection stays up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, TrySendError};
use tokio::time::Instant;

use super::idle::IdlePool;
use crate::body::ProxyBody;

/// The most response body read in the background after the client went away; a longer one
/// is cut, and its connection closed, rather than downloaded for nobody.
pub const DRAIN_LIMIT: usize = 1 << 20;

type Pending = Pin<
    Box<dyn Future<Output = Result<Response<Incoming>, TrySendError<Request<ProxyBody>>>> + Send>,
>;

/// What an HTTP/1.1 exchange gives back: the response and its connection, or the error and
/// the request when it was never sent.
pub type Sent = Result<
    (Response<Incoming>, http1::SendRequest<ProxyBody>),
    (hyper::Error, Option<Request<ProxyBody>>),
>;

/// A request sent on an HTTP/1.1 connection, until its response head arrives.
pub struct InFlight<'a> {
    /// Both until the head arrived or the exchange failed.
    exchange: Option<(Pending, http1::SendRequest<ProxyBody>)>,
    /// Where the connection goes back to; `None` when pooling is off.
    idle: Option<&'a Arc<IdlePool>>,
    deadline: Instant,
    request_timeout: Duration,
}

impl<'a> InFlight<'a> {
    /// Send `req` on `tx` (hyper queues it at once). The head is awaited until `deadline`.
    pub fn send(
        mut tx: http1::SendRequest<ProxyBody>,
        req: Request<ProxyBody>,
        idle: Option<&'a Arc<IdlePool>>,
        deadline: Instant,
        request_timeout: Duration,
    ) -> InFlight<'a> {
        // Boxed so that it can move into a task if this is dropped: a pinned future cannot.
        let pending: Pending = Box::pin(tx.try_send_request(req));
        InFlight {
            exchange: Some((pending, tx)),
            idle,
            deadline,
            request_timeout,
        }
    }
}

impl Future for InFlight<'_> {
    type Output = Sent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Sent> {
        // `None` only once this returned Ready, after which it is not polled again.
        let Some((mut pending, tx)) = self.exchange.take() else {
            return Poll::Pending;
        };
        match pending.as_mut().poll(cx) {
            Poll::Pending => {
                self.exchange = Some((pending, tx));
                Poll::Pending
            }
            Poll::Ready(Ok(resp)) => Poll::Ready(Ok((resp, tx))),
            Poll::Ready(Err(mut e)) => {
                let unsent = e.take_message();
                Poll::Ready(Err((e.into_error(), unsent)))
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let (Some((pending, tx)), Some(idle)) = (self.exchange.take(), self.idle) else {
            return;
        };
        // Dropped by its own timeout: the connection is not worth waiting for any longer.
        if self.deadline <= Instant::now() {
            return;
        }
        // Outside a runtime (it is shutting down) there is nothing to finish it on.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let idle = Arc::clone(idle);
        let (deadline, request_timeout) = (self.deadline, self.request_timeout);
        runtime.spawn(async move {
            let Ok(Ok(resp)) = tokio::time::timeout_at(deadline, pending).await else {
                return;
            };
            let drained = drain(resp.into_body(), request_timeout).await;
            tracing::debug!(
                drained,
                "finished an upstream exchange the client gave up on"
            );
            if drained {
                idle.check_in(tx);
            }
        });
    }
}

/// An HTTP/1.1 response body that checks its connection back in at its end and, dropped
/// before its end, is read to the end in the background (the connection then goes back).
pub struct DrainOnDrop {
    /// `None` only while being dropped.
    body: Option<Incoming>,
    done: bool,
    /// The connection and where it goes back to, until it has.
    back: Option<(http1::SendRequest<ProxyBody>, Arc<IdlePool>)>,
    request_timeout: Duration,
}

impl DrainOnDrop {
    pub fn new(
        body: Incoming,
        back: Option<(http1::SendRequest<ProxyBody>, Arc<IdlePool>)>,
        request_timeout: Duration,
    ) -> DrainOnDrop {
        let mut d = DrainOnDrop {
            body: Some(body),
            done: false,
            back,
            request_timeout,
        };
        if d.body.as_ref().is_some_and(Body::is_end_stream) {
            d.check_in();
        }
        d
    }

    fn check_in(&mut self) {
        if let Some((tx, idle)) = self.back.take() {
            idle.check_in(tx);
        }
    }
}

impl Body for DrainOnDrop {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.done = true;
                self.check_in();
            }
            // A broken body: its connection is not given back.
            Poll::Ready(Some(Err(_))) => {
                self.done = true;
                self.back = None;
            }
            // The last frame: hyper's server may not poll again after `is_end_stream`.
            Poll::Ready(Some(Ok(_))) if body.is_end_stream() => self.check_in(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if self.done || body.is_end_stream() {
            self.check_in();
            return;
        }
        let back = self.back.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let within = self.request_timeout;
            runtime.spawn(async move {
                if drain(body, within).await {
                    if let Some((tx, idle)) = back {
                        idle.check_in(tx);
                    }
                }
            });
        }
    }
}

/// Read `body` to its end within `within` and [`DRAIN_LIMIT`] bytes; whether it ended.
async fn drain(mut body: Incoming, within: Duration) -> bool {
    let read = async {
        let mut left = DRAIN_LIMIT;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                let Some(rest) = left.checked_sub(data.len()) else {
                    return false;
                };
                left = rest;
            }
        }
        true
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}
