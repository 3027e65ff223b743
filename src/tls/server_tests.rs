//! Tests of [`server_config`]: key permissions, key/cert mismatch, and real handshakes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::{ListenerLimits, Revocation};
use crate::tls::test_pki::*;
use crate::tls::{ClientVerifier, Truststore};

/// The wall clock: handshakes verify at the real time, not at [`NOW_SECS`].
fn wall() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn live_leaf(cn: &str, serial: u64, parent: &Ca) -> Leaf {
    let mut p = leaf_params(cn, serial);
    p.not_before = at(wall()) - days(1);
    p.not_after = at(wall()) + days(30);
    sign_leaf(&p, parent)
}

fn listener(dir: &Path, client_auth: ClientAuth, perms: KeyPermissions) -> ListenerConfig {
    ListenerConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_auth,
        min_tls_version: TlsVersion::V1_2,
        key_permissions: perms,
        workers: 1,
        limits: ListenerLimits {
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            max_header_size: 16 * 1024,
            max_connections: 10,
            h2_max_concurrent_streams: 10,
            h2_max_header_list_size: 16 * 1024,
            drain_timeout: Duration::from_secs(1),
            drain_delay: Duration::ZERO,
            requests: Default::default(),
            trusted_proxies: Vec::new(),
        },
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: Ca,
    inter: Ca,
    listener: ListenerConfig,
    verifier: Arc<ClientVerifier>,
}

fn setup(mode: u32, perms: KeyPermissions, revoked: &[u64]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = root("Srv Root");
    let inter = intermediate("Srv Intermediate", 2, &root);
    let mut p = leaf_params("localhost", 50);
    p.not_before = at(wall()) - days(1);
    p.not_after = at(wall()) + days(30);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
    let server = sign_leaf(&p, &inter);
    std::fs::write(
        dir.path().join("server.pem"),
        format!("{}{}", server.pem, inter.pem),
    )
    .unwrap();
    let key_path = dir.path().join("server.key");
    std::fs::write(&key_path, server.key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();

    let store_dir = dir.path().join("truststore");
    let crl = crl(&inter, revoked, at(wall()) - days(1), days(30));
    write_store(&store_dir, &[&root], &[&inter], &[&crl]);
    let store = Arc::new(Truststore::load(&store_dir).unwrap());
    let settings = settings(&store_dir, Revocation::EndEntity);
    let verifier = Arc::new(ClientVerifier::new(store, &settings, ClientAuth::Required));
    let listener = listener(dir.path(), ClientAuth::Required, perms);
    Setup {
        _dir: dir,
        root,
        inter,
        listener,
        verifier,
    }
}

#[test]
fn group_readable_key_is_refused_under_strict_and_warned_under_warn() {
    let s = setup(0o644, KeyPermissions::Strict, &[]);
    let err = server_config(&s.listener, s.verifier.clone()).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyPermissions { mode: 0o644, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("server.key") && msg.contains("0644") && msg.contains("chmod 600"));

    let s = setup(0o644, KeyPermissions::Warn, &[]);
    assert!(server_config(&s.listener, s.verifier.clone()).is_ok());
    let s = setup(0o600, KeyPermissions::Strict, &[]);
    assert!(server_config(&s.listener, s.verifier.clone()).is_ok());
}

#[test]
fn mismatched_key_is_refused() {
    let s = setup(0o600, KeyPermissions::Strict, &[]);
    let other = leaf("other", 51, &s.inter);
    std::fs::write(&s.listener.key, other.key.serialize_pem()).unwrap();
    let err = server_config(&s.listener, s.verifier.clone()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"));
}

#[test]
fn tls13_only_and_alpn() {
    let mut s = setup(0o600, KeyPermissions::Strict, &[]);
    s.listener.min_tls_version = TlsVersion::V1_3;
    let cfg = server_config(&s.listener, s.verifier.clone()).unwrap();
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(cfg.session_storage.can_cache());
}

fn client_config(
    root: &Ca,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> Arc<rustls::ClientConfig> {
    client_config_with(crate::tls::provider(), root, chain, key)
}

fn client_config_with(
    provider: rustls::crypto::CryptoProvider,
    root: &Ca,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

/// One connection: the server echoes 4 bytes; returns what the client read and the suite
/// it negotiated (or the error).
async fn exchange(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> std::io::Result<(Vec<u8>, Option<rustls::CipherSuite>)> {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let srv = tokio::spawn(async move {
        let (sock, _) = tcp.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(sock).await {
            let mut buf = [0u8; 4];
            if tls.read_exact(&mut buf).await.is_ok() {
                let _ = tls.write_all(&buf).await;
                let _ = tls.shutdown().await;
            }
        }
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let sock = tokio::net::TcpStream::connect(addr).await?;
    let result = async {
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), sock)
            .await?;
        tls.write_all(b"ping").await?;
        let mut buf = vec![0u8; 4];
        tls.read_exact(&mut buf).await?;
        let suite = tls.get_ref().1.negotiated_cipher_suite().map(|c| c.suite());
        Ok((buf, suite))
    }
    .await;
    let _ = srv.await;
    result
}

#[tokio::test]
async fn handshake_accepts_a_valid_client_and_refuses_a_revoked_one() {
    let s = setup(0o600, KeyPermissions::Strict, &[66]);
    let server = server_config(&s.listener, s.verifier.clone()).unwrap();

    let good = live_leaf("good-client", 65, &s.inter);
    let client = client_config(
        &s.root,
        vec![good.der.clone(), s.inter.der.clone()],
        &good.key,
    );
    assert_eq!(exchange(server.clone(), client).await.unwrap().0, b"ping");

    // Revoked: with TLS 1.3 connect() may succeed; the alert shows on the first read.
    let bad = live_leaf("revoked-client", 66, &s.inter);
    let client = client_config(
        &s.root,
        vec![bad.der.clone(), s.inter.der.clone()],
        &bad.key,
    );
    let err = exchange(server, client).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("revoked") || err.to_string().contains("alert"),
        "{err}"
    );
}

/// The server picks the suite by its own order (AES-128-GCM first), yet still serves a
/// client that offers only another suite of the default set.
#[tokio::test]
async fn server_order_picks_aes128_and_keeps_the_other_suites() {
    let s = setup(0o600, KeyPermissions::Strict, &[]);
    let server = server_config(&s.listener, s.verifier.clone()).unwrap();
    assert!(server.ignore_client_order);
    let good = live_leaf("good-client", 65, &s.inter);
    let chain = vec![good.der.clone(), s.inter.der.clone()];

    let default_client = crate::tls::provider();
    assert_eq!(
        default_client.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        "the client side of this test must prefer another suite"
    );
    let client = client_config_with(default_client, &s.root, chain.clone(), &good.key);
    assert_eq!(
        exchange(server.clone(), client).await.unwrap(),
        (
            b"ping".to_vec(),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        )
    );

    let mut chacha_only = crate::tls::provider();
    chacha_only
        .cipher_suites
        .retain(|c| c.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    let client = client_config_with(chacha_only, &s.root, chain, &good.key);
    assert_eq!(
        exchange(server, client).await.unwrap(),
        (
            b"ping".to_vec(),
            Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        )
    );
}
