//! The listener's rustls `ServerConfig`: server certificate and key, protocol versions,
//! ALPN, client authentication and session resumption.
//!
//! Built once per listener and per truststore generation, then swapped in whole; a failed
//! build ([`TlsError`]) keeps the previous config. [`load_certs`] and [`load_key`] are shared
//! with the upstream TLS client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use der::Decode;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::Certificate;

use super::verifier::system_rfc3339;
use crate::config::{ClientAuth, KeyPermissions, ListenerConfig, TlsVersion};
use crate::material::{key_mode_too_open, read_certs, read_private_key, PemFileError, ReadError};

/// Stateful resumption cache size per listener (rustls's default of 256 is far too small
/// for a gateway with thousands of machine clients).
pub const SESSION_CACHE_SIZE: usize = 20_000;

/// Why a server TLS config could not be built. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("{file}: {what}")]
    BadPem { file: PathBuf, what: String },
    #[error(
        "{file}: private key is open to other users or writable by its group (mode {mode:04o}); \
         fix with `chmod 600 {file}` (0440 or 0640 for a group-readable key, as a Kubernetes \
         Secret with fsGroup mounts it) or set key_permissions = \"warn\""
    )]
    KeyPermissions { file: PathBuf, mode: u32 },
    #[error("private key {key} does not match the certificate {cert}: {what}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        what: String,
    },
    /// Clients would refuse it: the leaf is expired or not yet valid.
    #[error("{file}: the certificate {what}; clients would refuse it")]
    CertValidity { file: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// A certificate or key file that could not be loaded: the file, then why.
    fn file(path: &Path, e: PemFileError) -> TlsError {
        let file = path.to_path_buf();
        match e {
            PemFileError::Read(source) => TlsError::Read { file, source },
            other => TlsError::BadPem {
                file,
                what: other.to_string(),
            },
        }
    }
}

/// Read a PEM certificate chain, leaf first ([`read_certs`]).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certs(path).map_err(|e| TlsError::file(path, e))
}

/// Read a PEM private key (PKCS#8, SEC1 or PKCS#1), checking the file's permissions first.
pub fn load_key(
    path: &Path,
    permissions: KeyPermissions,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_key_mode(path, permissions)?;
    read_private_key(path).map_err(|e| TlsError::file(path, e))
}

fn check_key_mode(path: &Path, permissions: KeyPermissions) -> Result<(), TlsError> {
    let mode = key_mode_too_open(path).map_err(|e| TlsError::Read {
        file: path.to_path_buf(),
        source: ReadError::Io(e),
    })?;
    let Some(mode) = mode else {
        return Ok(());
    };
    match permissions {
        KeyPermissions::Strict => Err(TlsError::KeyPermissions {
            file: path.to_path_buf(),
            mode,
        }),
        KeyPermissions::Warn => {
            tracing::warn!(file = %path.display(), mode = format!("{mode:04o}"),
                "private key is open to other users or writable by its group; fix with chmod 600");
            Ok(())
        }
    }
}

/// Build the `ServerConfig` of one listener.
///
/// Session resumption (stateful cache of [`SESSION_CACHE_SIZE`] and TLS 1.3 tickets) is on.
/// rustls restores a resumed client's chain without re-validating it, so a client revoked
/// since its first handshake would resume and be accepted; that is safe here only because
/// the proxy re-verifies `peer_certificates()` with [`crate::tls::ClientVerifier::verify_chain`] after
/// every resumed handshake, against the current truststore.
pub fn server_config(
    listener: &ListenerConfig,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&listener.cert)?;
    let key = load_key(&listener.key, listener.key_permissions)?;
    let provider = Arc::new(super::server_provider());
    let certified = certify(listener, &provider, certs, key).map_err(|(_, e)| e)?;

    let versions: &[&rustls::SupportedProtocolVersion] = match listener.min_tls_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider).with_protocol_versions(versions)?;
    let builder = match listener.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required | ClientAuth::Optional => builder.with_client_cert_verifier(verifier),
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// Every problem of a listener's certificate and key, each with the key of the listener
/// it comes from (`cert` or `key`): both files are read even when the first fails, which
/// [`server_config`] does not (it stops at the first). What `portcullis check` reports.
pub fn check_listener(listener: &ListenerConfig) -> Vec<(&'static str, TlsError)> {
    let certs = load_certs(&listener.cert);
    let key = load_key(&listener.key, listener.key_permissions);
    match (certs, key) {
        (Ok(certs), Ok(key)) => {
            let provider = super::server_provider();
            certify(listener, &provider, certs, key)
                .err()
                .into_iter()
                .collect()
        }
        (certs, key) => certs
            .err()
            .map(|e| ("cert", e))
            .into_iter()
            .chain(key.err().map(|e| ("key", e)))
            .collect(),
    }
}

/// The chain and key as rustls serves them, refused when the key is unusable, the leaf is
/// outside its validity period, or the key is not the leaf's; the error names the listener
/// key at fault.
fn certify(
    listener: &ListenerConfig,
    provider: &rustls::crypto::CryptoProvider,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, (&'static str, TlsError)> {
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        let what = format!("unsupported private key: {e}");
        (
            "key",
            TlsError::BadPem {
                file: listener.key.clone(),
                what,
            },
        )
    })?;
    // `load_certs` never returns an empty chain; the leaf comes first.
    if let Some(leaf) = certs.first() {
        check_validity(&listener.cert, leaf, SystemTime::now()).map_err(|e| ("cert", e))?;
    }
    let certified = CertifiedKey::new(certs, signing_key);
    // Compares the leaf's public key with the key's. aws-lc-rs keys always know their
    // public key, so `Unknown` (the provider cannot tell) is refused too: a pair that
    // cannot be checked is not served.
    certified.keys_match().map_err(|e| {
        let mismatch = TlsError::KeyMismatch {
            cert: listener.cert.clone(),
            key: listener.key.clone(),
            what: e.to_string(),
        };
        ("key", mismatch)
    })?;
    Ok(certified)
}

/// Refuse a server certificate (the chain's leaf) that is expired or not yet valid at
/// `now`. Only the leaf: a chain may carry an expired cross-signature for old clients.
fn check_validity(file: &Path, leaf: &CertificateDer<'_>, now: SystemTime) -> Result<(), TlsError> {
    let invalid = |what: String| TlsError::CertValidity {
        file: file.to_path_buf(),
        what,
    };
    let cert = Certificate::from_der(leaf.as_ref())
        .map_err(|e| invalid(format!("is not valid X.509: {e}")))?;
    let validity = cert.tbs_certificate().validity();
    let (not_before, not_after) = (
        validity.not_before.to_system_time(),
        validity.not_after.to_system_time(),
    );
    if now > not_after {
        return Err(invalid(format!("expired at {}", system_rfc3339(not_after))));
    }
    if now < not_before {
        let from = system_rfc3339(not_before);
        return Err(invalid(format!("is not valid before {from}")));
    }
    Ok(())
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
