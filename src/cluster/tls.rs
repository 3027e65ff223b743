//! `rediss://`: the TLS of the Redis connection, as an upstream's `tls` works. The client
//! config is built once, when `[cluster]` is read (so `portcullis check` and a start refuse
//! bad files naming the key), with the gateway's own crypto provider:
//! - Redis's certificate is verified against `cluster.tls.ca` only: never the system's roots
//!   (nor `SSL_CERT_FILE` / `SSL_CERT_DIR`), and there is no way to turn verification off
//!   (the URL's `#insecure` is refused by `config::cluster`);
//! - the name checked (and sent as SNI when it is a DNS name) is the URL's host: an IP
//!   address must be in the certificate's IP SANs, a name in its DNS SANs;
//! - with `cert` and `key`, that certificate is sent when Redis asks for one.
//!
//! The handshake is made here (TCP, then rustls) and the stream handed to the redis crate,
//! so its own TLS (which reads the system store on every connection) is never used.
//! [`describe`] names why a handshake failed, for the log line.

use std::path::Path;
use std::sync::Arc;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, ConnectionAddr, RedisResult};
use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Cluster;
use crate::config::cluster::ClusterTls;
use crate::material::{
    client_builder, key_mode_too_open, read_certs, read_private_key, ClientBuildError,
};

/// How this gateway reaches a `rediss://` Redis.
pub(super) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
    host: String,
    port: u16,
}

impl Tls {
    /// From `cluster.tls` and the URL's address; errors start with the key at fault.
    pub(super) fn new(t: &ClusterTls, addr: &ConnectionAddr) -> Result<Tls, String> {
        let ConnectionAddr::TcpTls { host, port, .. } = addr else {
            return Err("cluster.tls: needs a rediss:// URL".to_owned());
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|_| format!("cluster.redis_url: {host:?} is not a host name TLS can check"))?;
        let builder = client_builder(certs("ca", &t.ca)?).map_err(|e| match e {
            ClientBuildError::Root(e) => format!("cluster.tls.ca: {}: {e}", t.ca.display()),
            ClientBuildError::Versions(e) => format!("cluster.tls: {e}"),
        })?;
        let config = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certs("cert", cert)?, private_key(key)?)
                .map_err(|e| {
                    format!(
                        "cluster.tls.key: {}: does not go with the certificate in cluster.tls.cert ({e})",
                        key.display()
                    )
                })?,
            // `config::cluster` refuses one without the other.
            _ => builder.with_no_client_auth(),
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
            host: host.clone(),
            port: *port,
        })
    }

    async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        self.connector.connect(self.name.clone(), tcp).await
    }
}

impl Cluster {
    /// A connection for commands (the handshake bounded by `config`'s connection timeout).
    pub(super) async fn commands(
        &self,
        config: &AsyncConnectionConfig,
        connect_timeout: std::time::Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let Some(tls) = &self.tls else {
            return self
                .client
                .get_multiplexed_async_connection_with_config(config)
                .await;
        };
        let stream = tokio::time::timeout(connect_timeout, tls.connect())
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let info = self.client.get_connection_info().redis_settings();
        let (conn, driver) =
            MultiplexedConnection::new_with_config(info, stream, config.clone()).await?;
        // Ends when the last handle of `conn` is dropped, or the connection fails.
        tokio::spawn(driver);
        Ok(conn)
    }

    /// A connection for the subscription.
    pub(super) async fn pubsub(&self) -> RedisResult<PubSub> {
        let Some(tls) = &self.tls else {
            return self.client.get_async_pubsub().await;
        };
        let stream = tls.connect().await?;
        PubSub::new(self.client.get_connection_info().redis_settings(), stream).await
    }
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs(path).map_err(|e| format!("cluster.tls.{key}: {}: {e}", path.display()))
}

/// The client key, refused when other users could read it or its group replace it, as a
/// listener's or an upstream's key is (`key_permissions = "strict"`).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let at = |why: String| format!("cluster.tls.key: {}: {why}", path.display());
    if let Some(mode) = key_mode_too_open(path).map_err(|e| at(e.to_string()))? {
        return Err(at(format!(
            "private key is open to other users or writable by its group (mode {mode:04o}); \
             fix with `chmod 600` (0440 or 0640 for a group-readable key)"
        )));
    }
    read_private_key(path).map_err(|e| at(e.to_string()))
}

/// An error of a connection attempt in words: with a failed TLS handshake, its cause first
/// (`TLS unknown CA: ...`, `TLS certificate required: ...`, `TLS hostname: ...`).
pub(super) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    match rustls_error(e).map(cause) {
        Some(cause) => format!("TLS {cause}: {e}"),
        None => e.to_string(),
    }
}

/// The rustls error somewhere in `e`'s chain: inside an `io::Error` as tokio-rustls makes
/// them, inside the `Arc` that a `RedisError` gives as its source. Neither of those two
/// passes its inner error on as `source()`, so each is opened here.
fn rustls_error<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    loop {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        e = if let Some(shared) = e.downcast_ref::<Shared>() {
            &**shared
        } else if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner
        } else {
            e.source()?
        };
    }
}

fn cause(e: &rustls::Error) -> &'static str {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "unknown CA: Redis's certificate is not signed by cluster.tls.ca"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "hostname: Redis's certificate is not valid for the host of cluster.redis_url"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                "expired: Redis's certificate is outside its validity period"
            }
            _ => "bad certificate: Redis's certificate was refused",
        },
        E::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure => {
                "certificate required: Redis asks for a client certificate (cluster.tls.cert and cluster.tls.key)"
            }
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied => {
                "client certificate refused: Redis does not accept cluster.tls.cert"
            }
            _ => "alert: Redis ended the handshake",
        },
        _ => "handshake failed",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::ClusterConfig;

    #[test]
    fn a_rustls_error_inside_a_redis_error_is_named() {
        let wrap = |e: rustls::Error| {
            redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        for (e, words) in [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "TLS unknown CA: ",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "TLS hostname: ",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "TLS certificate required: ",
            ),
        ] {
            let text = describe(&wrap(e));
            assert!(text.starts_with(words), "{text}");
        }
        let plain =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!describe(&plain).contains("TLS"), "{}", describe(&plain));
    }

    #[test]
    fn rediss_without_tls_is_refused_even_from_a_config_built_in_code() {
        let cfg = ClusterConfig {
            redis_url: "rediss://127.0.0.1:1/0".into(),
            key_prefix: "p:".into(),
            tls: None,
            timeout: Duration::from_millis(200),
        };
        let e = Cluster::new(&cfg).unwrap_err();
        assert!(e.starts_with("cluster.tls: "), "{e}");
    }
}
