//! One CreateSession exchange over HTTPS: a fresh connection (the client certificate is
//! presented in the handshake too, as a gateway listener asks for it), one HTTP/1.1 POST,
//! a bounded answer, all within a time limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest CreateSession answer read (a real one is about 2 KiB).
const MAX_RESPONSE: usize = 64 * 1024;
/// The whole exchange: connect, handshake, request, answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Where CreateSession goes, and how to reach it.
pub struct Endpoint {
    /// `host[:port]` as in the URL: the `Host` header, signed.
    pub authority: String,
    host: String,
    port: u16,
    /// The URL's path without a trailing `/`, then `/sessions`.
    pub path: String,
    tls: TlsConnector,
}

/// What the server answered.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Endpoint {
    /// `url` is a base URL (`https://gateway:8443`); `roots` the trust anchors for the
    /// server certificate; `client` the certificate chain and key shown in the handshake.
    pub fn new(
        url: &str,
        roots: rustls::RootCertStore,
        client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    ) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("--endpoint {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "--endpoint {url:?}: give an https:// base URL (CreateSession travels with a client certificate)"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("--endpoint {url:?}: a base URL has no query"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--endpoint {url:?}: no host"))?;
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let path = format!("{}/sessions", uri.path().trim_end_matches('/'));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(client.0, client.1)
            .map_err(|e| format!("client certificate and key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Endpoint {
            authority: authority.as_str().to_owned(),
            host,
            port,
            path,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// POST `body` to `path?query` with `headers`.
    pub async fn post(
        &self,
        query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Answer, String> {
        tokio::time::timeout(TIMEOUT, self.post_inner(query, headers, body))
            .await
            .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
    }

    async fn post_inner(
        &self,
        query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect to {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| format!("{:?} is not a valid server name", self.host))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", self.authority))?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let target = if query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{query}", self.path)
        };
        let mut req = Request::post(target)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_LENGTH, body.len())
            .header(
                header::USER_AGENT,
                concat!("portcullis/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = tx
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
