//! One client connection: TCP connect, TLS handshake (reporting whether it resumed), and an
//! HTTP/1.1 or HTTP/2 sender chosen by ALPN.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::report::classify;

/// How long a failed send waits for the connection task to report why it ended.
const DRIVER_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Where requests go.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    /// `host[:port]` for the Host header / `:authority`.
    pub authority: String,
    pub path_and_query: String,
    pub uri: http::Uri,
}

impl Target {
    /// Resolves `uri` (must be `https://`) once; `server_name` overrides the SNI/verified name.
    pub async fn from_uri(uri: &http::Uri, server_name: Option<&str>) -> Result<Target> {
        if uri.scheme_str() != Some("https") {
            bail!("{uri}: only https:// URLs are supported");
        }
        let host = uri.host().ok_or_else(|| anyhow!("{uri}: no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((bare, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host}: no address"))?;
        let name = server_name.unwrap_or(bare).to_string();
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| anyhow!("{name}: not a valid server name"))?;
        Ok(Target {
            addr,
            server_name,
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            path_and_query: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
            uri: uri.clone(),
        })
    }

    /// Origin form for HTTP/1.1, absolute form for HTTP/2 (hyper takes `:authority` from it).
    pub fn request_uri(&self, h2: bool) -> String {
        if h2 {
            format!("https://{}{}", self.authority, self.path_and_query)
        } else {
            self.path_and_query.clone()
        }
    }
}

enum Handle {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// Sends requests on one connection; owns the task that drives the connection, whose
/// error (e.g. the TLS alert of a refused client certificate, which TLS 1.3 delivers after
/// the handshake) is the real reason when a send fails with "connection closed".
pub struct Sender {
    handle: Handle,
    driver: JoinHandle<hyper::Result<()>>,
}

impl Sender {
    /// Sends one request; the error is classified.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        let r = match &mut self.handle {
            Handle::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Handle::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
        };
        match r {
            Ok(resp) => Ok(resp),
            Err(e) => Err(self.driver_error().await.unwrap_or_else(|| classify(&e))),
        }
    }

    /// The connection task's own error, if it ended with one (waits briefly for it).
    pub async fn driver_error(&mut self) -> Option<String> {
        match tokio::time::timeout(DRIVER_GRACE, &mut self.driver).await {
            Ok(Ok(Err(e))) => Some(classify(&e)),
            _ => None,
        }
    }

    /// True once the connection can take no more requests (closed by either side).
    pub fn is_closed(&self) -> bool {
        match &self.handle {
            Handle::H1(s) => s.is_closed(),
            Handle::H2(s) => s.is_closed(),
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self.handle, Handle::H2(_))
    }
}

pub struct Conn {
    pub sender: Sender,
    pub resumed: bool,
}

/// Connects and handshakes; the error is already classified (`connect:*`, `tls_alert:*`, …).
pub async fn connect(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    _h2_hint: bool,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(target.addr).await.map_err(|e| {
        format!(
            "connect:{}",
            crate::report::snake(&format!("{:?}", e.kind()))
        )
    })?;
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(tls)
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| classify(&e))?;
    let (_, session) = tls.get_ref();
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    let h2 = session.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let sender = if h2 {
        let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| classify(&e))?;
        Sender {
            handle: Handle::H2(tx),
            driver: tokio::spawn(conn),
        }
    } else {
        let (tx, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| classify(&e))?;
        Sender {
            handle: Handle::H1(tx),
            driver: tokio::spawn(conn),
        }
    };
    Ok(Conn { sender, resumed })
}
