//! Fetching a document over HTTP(S) in the background: one GET on a fresh connection,
//! conditional on the last `ETag` / `Last-Modified`, bounded in time and size. Used for
//! JWKS documents (https with the provider's `jwks_ca` bundle only; plain http only to
//! 127.0.0.1) and CRLs (plain http, like the CRL distribution points of RFC 5280: the CRL's
//! own signature is what makes it trustworthy). Redirects are not followed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::material::{client_builder, read_certs};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad URL: {0}")]
    Url(String),
    #[error("CA bundle: {0}")]
    Ca(String),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the server answered {0}")]
    Status(StatusCode),
    #[error("timed out")]
    Timeout,
}

/// Validators of the last good response, sent back as conditions.
#[derive(Debug, Default, Clone)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

pub enum Fetched {
    Updated(Bytes, Validators),
    NotModified,
}

/// What one kind of document may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The `Accept` header sent.
    pub accept: &'static str,
    /// For the whole exchange: connect, request, body.
    pub timeout: Duration,
    /// A larger body is refused.
    pub max_size: usize,
}

/// Everything needed to fetch one URL, built once.
#[derive(Clone)]
pub struct Fetcher {
    uri: Uri,
    tls: Option<TlsConnector>,
    limits: Limits,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("uri", &self.uri).finish()
    }
}

impl Fetcher {
    /// `ca` is the bundle trusted for https; without one only http URLs are accepted.
    pub fn new(
        url: &str,
        ca: Option<&std::path::Path>,
        limits: Limits,
    ) -> Result<Fetcher, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.into()))?;
        let tls = match uri.scheme_str() {
            Some("https") => {
                let ca = ca.ok_or_else(|| FetchError::Ca("required for https".into()))?;
                // A bundle without a certificate would trust nothing: every fetch would
                // fail on the server's certificate, far from the cause. Refused here.
                let roots = read_certs(ca).map_err(|e| FetchError::Ca(e.to_string()))?;
                let config = client_builder(roots)
                    .map_err(|e| FetchError::Ca(e.to_string()))?
                    .with_no_client_auth();
                Some(TlsConnector::from(Arc::new(config)))
            }
            Some("http") => None,
            _ => return Err(FetchError::Url(url.into())),
        };
        Ok(Fetcher { uri, tls, limits })
    }

    pub async fn fetch(&self, prev: &Validators) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.limits.timeout, self.fetch_inner(prev))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    async fn fetch_inner(&self, prev: &Validators) -> Result<Fetched, FetchError> {
        let host = self.uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(FetchError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.uri.authority().map_or(host, |a| a.as_str());
        let mut req = Request::get(path)
            .header(header::HOST, authority)
            .header(header::ACCEPT, self.limits.accept);
        if let Some(e) = &prev.etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        if let Some(m) = &prev.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, m);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let resp = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|_| FetchError::Url(host.into()))?;
                let stream = tls.connect(name, tcp).await.map_err(FetchError::Tls)?;
                send(TokioIo::new(stream), req).await?
            }
            None => send(TokioIo::new(tcp), req).await?,
        };
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let validators = Validators {
            etag: resp.headers().get(header::ETAG).cloned(),
            last_modified: resp.headers().get(header::LAST_MODIFIED).cloned(),
        };
        let body = Limited::new(resp.into_body(), self.limits.max_size)
            .collect()
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?
            .to_bytes();
        Ok(Fetched::Updated(body, validators))
    }
}

/// When to fetch next: `period` after a success; after a failure `first`, doubling with
/// each further failure up to `period` (a document that failed is retried soon, a source
/// that stays down is not hammered).
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    period: Duration,
    retry: Duration,
}

impl Backoff {
    pub fn new(first: Duration, period: Duration) -> Backoff {
        let first = first.min(period);
        Backoff {
            first,
            period,
            retry: first,
        }
    }

    /// The delay before the next fetch, after one that succeeded (`ok`) or not.
    pub fn next(&mut self, ok: bool) -> Duration {
        if ok {
            self.retry = self.first;
            return self.period;
        }
        let d = self.retry;
        self.retry = (self.retry * 2).min(self.period);
        d
    }
}

async fn send<I>(
    io: I,
    req: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx.send_request(req)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Backoff;

    #[test]
    fn backoff_doubles_to_the_period_and_resets_on_success() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(10));
        assert_eq!(b.next(true), s(10));
        let fails: Vec<_> = (0..6).map(|_| b.next(false)).collect();
        assert_eq!(fails, [s(1), s(2), s(4), s(8), s(10), s(10)]);
        assert_eq!(b.next(true), s(10));
        assert_eq!(b.next(false), s(1));
        // A period shorter than the first retry: never slower than the period.
        let mut b = Backoff::new(s(5), s(2));
        assert_eq!(b.next(false), s(2));
        assert_eq!(b.next(false), s(2));
    }
}
