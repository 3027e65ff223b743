//! A real HTTPS client (tokio-rustls + hyper) that can present a client certificate,
//! pick TLS versions and negotiate HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::pki::{Leaf, TestPki};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tls {
    Any,
    V12,
    V13,
}

#[derive(Clone, Copy)]
pub struct Opts<'a> {
    pub cert: Option<&'a Leaf>,
    pub tls: Tls,
    pub h2: bool,
}

impl<'a> Opts<'a> {
    pub fn with(cert: &'a Leaf) -> Self {
        Opts {
            cert: Some(cert),
            tls: Tls::Any,
            h2: false,
        }
    }

    pub fn anonymous() -> Self {
        Opts {
            cert: None,
            tls: Tls::Any,
            h2: false,
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub fn tls_config(pki: &TestPki, opts: &Opts) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match opts.tls {
        Tls::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Tls::V12 => &[&rustls::version::TLS12],
        Tls::V13 => &[&rustls::version::TLS13],
    };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.root_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match opts.cert {
        Some(leaf) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = if opts.h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    cfg
}

/// A bare TLS connection as `who` offering `alpn` (none: the gateway sniffs the protocol),
/// for tests that write raw bytes.
pub async fn raw_tls(
    addr: SocketAddr,
    pki: &TestPki,
    who: &Leaf,
    alpn: Option<&[u8]>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut cfg = tls_config(pki, &Opts::with(who));
    cfg.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// One connection, ready to send requests on.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub async fn connect(addr: SocketAddr, pki: &TestPki, opts: Opts<'_>) -> Result<Conn, String> {
    connect_with(addr, tls_config(pki, &opts), opts.h2).await
}

/// One connection with a given TLS config (e.g. without ALPN), speaking HTTP/2 or HTTP/1.1.
pub async fn connect_with(
    addr: SocketAddr,
    cfg: rustls::ClientConfig,
    h2: bool,
) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let io = TokioIo::new(tls);
    if h2 {
        let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Conn::H2(tx))
    } else {
        let (tx, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Conn::H1(tx))
    }
}

/// An HTTP/1.1 and an HTTP/2 connection as `who`, each with one request answered 200.
pub async fn connect_both(addr: SocketAddr, pki: &TestPki, who: &Leaf) -> (Conn, Conn) {
    let mut h1 = connect(addr, pki, Opts::with(who)).await.unwrap();
    let h2_opts = Opts {
        h2: true,
        ..Opts::with(who)
    };
    let mut h2 = connect(addr, pki, h2_opts).await.unwrap();
    assert_eq!(h1.get("/").await.unwrap().status, 200);
    assert_eq!(h2.get("/").await.unwrap().status, 200);
    (h1, h2)
}

impl Conn {
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let resp = match self {
            Conn::H1(tx) => {
                // Origin form on HTTP/1.1, as real clients send it.
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                *req.uri_mut() = pq.parse().unwrap();
                tx.ready().await.map_err(|e| e.to_string())?;
                tx.send_request(req).await
            }
            Conn::H2(tx) => tx.send_request(req).await,
        }
        .map_err(|e| format!("request: {e:?}"))?;
        let status = resp.status();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
            version,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.send(request("GET", path)).await
    }
}

/// A request with a Host header (HTTP/1.1) / authority (HTTP/2) of `localhost`.
pub fn request(method: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Connect, send one GET, return the reply (or the first error, handshake included).
pub async fn get(
    addr: SocketAddr,
    pki: &TestPki,
    opts: Opts<'_>,
    path: &str,
) -> Result<Reply, String> {
    let mut conn = connect(addr, pki, opts).await?;
    conn.get(path).await
}
