//! Body types shared by the pipeline: one boxed body type in both directions, so bodies
//! stream end to end without buffering; and [`ClientBody`], the client's request body
//! watched for failure, so that a malformed body is blamed on the client.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A streaming body of either direction.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Whether `err` (or anything in its source chain) is the body-size limit being hit.
pub fn is_length_limit(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether the client's request body failed: malformed chunked framing (`+5`, `0x5`, a size
/// over 64 bits, a bare LF), a reset stream, a connection cut mid-body. The pipeline keeps
/// one and the upstream pool finds a clone in the request's extensions, so the failure is
/// the client's (400) even where the body's error does not travel with what the upstream
/// side reports: an HTTP/2 upstream only sees its stream reset.
#[derive(Debug, Clone, Default)]
pub struct ClientBodyWatch(Arc<AtomicBool>);

impl ClientBodyWatch {
    pub fn failed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Removes the trailer fields of a client's request that the backend must not take from
/// the client (the pipeline's rules: identity names, what the gateway sets).
pub trait TrailerFilter: Send + Sync {
    fn strip(&self, trailers: &mut http::HeaderMap);
}

/// The client's request body as the pipeline forwards it: data passes through unchanged,
/// trailers through `trailers` (none: a request without a body), and an error marks the
/// [`ClientBodyWatch`] (if any: a request without a body has none).
pub struct ClientBody<B> {
    inner: B,
    watch: Option<ClientBodyWatch>,
    trailers: Option<Arc<dyn TrailerFilter>>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for ClientBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("inner", &self.inner)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl<B> ClientBody<B> {
    pub fn new(
        inner: B,
        watch: Option<ClientBodyWatch>,
        trailers: Option<Arc<dyn TrailerFilter>>,
    ) -> Self {
        ClientBody {
            inner,
            watch,
            trailers,
        }
    }
}

impl<B: Body + Unpin> Body for ClientBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &mut polled {
            Poll::Ready(Some(Err(_))) => {
                if let Some(w) = &self.watch {
                    w.0.store(true, Ordering::Release);
                }
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(t), Some(filter)) = (frame.trailers_mut(), &self.trailers) {
                    filter.strip(t);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
