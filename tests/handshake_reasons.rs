//! The reason a refused handshake is counted under (issue 14, item 8): the verifier's own
//! reason reaches `portcullis_tls_handshakes_total{reason}`, a weak RSA key and an
//! oversized certificate have their own, and the client still gets a sensible alert.

mod common;

use std::sync::Arc;

use common::{client, Opts, Spec, TestPki};
use portcullis::telemetry::metrics::{TLS_CLIENT_CERT_VERIFICATIONS_TOTAL, TLS_HANDSHAKES_TOTAL};
use rcgen::{
    CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// Connect as `opts` and send one GET: the error the client saw (TLS 1.3 alerts arrive on
/// the first read, so the request carries them).
async fn refused(gw: &common::TestGateway, pki: &TestPki, opts: Opts<'_>) -> String {
    match client::get(gw.addr, pki, opts, "/").await {
        Err(e) => e,
        Ok(r) => panic!("expected a refused handshake, got HTTP {}", r.status),
    }
}

/// The handshake counter of this gateway's listener with `result="rejected"` and `reason`
/// reaches 1 (the server counts after it sent the alert, so wait, bounded).
async fn counted(gw: &common::TestGateway, reason: &str) {
    let listener = format!("listener=\"{}\"", gw.addr);
    let reason = format!("reason=\"{reason}\"");
    let labels = [listener.as_str(), "result=\"rejected\"", reason.as_str()];
    common::wait_for_metric(gw, TLS_HANDSHAKES_TOTAL, &labels, 1.0).await;
}

/// A client leaf under the test intermediate for `key`, with `tweak` applied to its
/// parameters; the chain PEM (leaf, intermediate).
fn leaf_pem(
    pki: &TestPki,
    key: &impl PublicKeyData,
    tweak: impl FnOnce(&mut CertificateParams),
) -> String {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "odd client");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = OffsetDateTime::now_utc() - Duration::minutes(5);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(30);
    tweak(&mut p);
    let cert = p.signed_by(key, &pki.inter.issuer).unwrap();
    cert.pem() + &pki.inter.pem()
}

#[tokio::test]
async fn a_chain_over_max_chain_depth_is_chain_too_long() {
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            truststore: "max_chain_depth = 0",
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let err = refused(&gw, &pki, Opts::with(&alice)).await;
    assert!(err.contains("CertificateUnknown"), "alert: {err}");
    counted(&gw, "chain_too_long").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_ca_certificate_as_the_client_certificate_is_ca_as_leaf() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let ca_leaf = pki.leaf(common::LeafSpec {
        cn: "sub CA".into(),
        is_ca: true,
        ..common::LeafSpec::default()
    });
    let err = refused(&gw, &pki, Opts::with(&ca_leaf)).await;
    assert!(err.contains("CertificateUnknown"), "alert: {err}");
    counted(&gw, "ca_as_leaf").await;
    // A reason that a certificate error names keeps its own alert.
    let stranger = TestPki::named("stranger").client("stranger");
    let err = refused(&gw, &pki, Opts::with(&stranger)).await;
    assert!(err.contains("UnknownCA"), "alert: {err}");
    counted(&gw, "unknown_issuer").await;
    gw.shutdown().await;
}

/// A client key that signs nothing: the gateway refuses the certificate before it would
/// check a signature. aws-lc-rs will not load (or make) an RSA key under 2048 bits.
#[derive(Debug)]
struct NoSigner;

impl rustls::sign::SigningKey for NoSigner {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&rustls::SignatureScheme::RSA_PSS_SHA256)
            .then(|| Box::new(NoSigner) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::RSA
    }
}

impl rustls::sign::Signer for NoSigner {
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        Ok(vec![0; 128])
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        rustls::SignatureScheme::RSA_PSS_SHA256
    }
}

/// Always presents one chain with [`NoSigner`].
#[derive(Debug)]
struct Present(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The public half of a fresh 1024-bit RSA key, from openssl (scripts/test.sh installs it).
fn rsa_1024_public_key() -> rcgen::SubjectPublicKeyInfo {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("weak.key");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is needed by this test (scripts/test.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
        out.stdout
    };
    let key = key.to_str().unwrap();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        key,
    ]);
    let public = run(&["pkey", "-in", key, "-pubout"]);
    rcgen::SubjectPublicKeyInfo::from_pem(std::str::from_utf8(&public).unwrap()).unwrap()
}

/// Present `chain_pem` with [`NoSigner`] and send one GET: the error the client saw.
async fn presenting(gw: &common::TestGateway, pki: &TestPki, chain_pem: &str) -> String {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let mut cfg = client::tls_config(pki, &Opts::anonymous());
    let key = rustls::sign::CertifiedKey::new(chain, Arc::new(NoSigner));
    cfg.client_auth_cert_resolver = Arc::new(Present(Arc::new(key)));
    match client::connect_with(gw.addr, cfg, false).await {
        Ok(mut conn) => conn.get("/").await.expect_err("the client must be refused"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn an_rsa_key_under_2048_bits_is_weak_key() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let chain_pem = leaf_pem(&pki, &rsa_1024_public_key(), |_| {});
    let err = presenting(&gw, &pki, &chain_pem).await;
    assert!(err.contains("CertificateUnknown"), "alert: {err}");
    counted(&gw, "weak_key").await;
    common::wait_for_metric(
        &gw,
        TLS_CLIENT_CERT_VERIFICATIONS_TOTAL,
        &["result=\"rejected\"", "reason=\"weak_key\""],
        1.0,
    )
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_certificate_over_the_message_limit_is_certificate_too_large() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    // rustls takes handshake messages up to 64 KiB: a 70 KB extension makes the client's
    // Certificate message larger. (Sent by hand: rustls's client would not load a
    // certificate that large as its own.)
    let mut blob = vec![0x04, 0x83];
    blob.extend_from_slice(&70_000u32.to_be_bytes()[1..]);
    blob.resize(blob.len() + 70_000, 0xab);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let chain_pem = leaf_pem(&pki, &key, |p| {
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 55555, 1],
            blob,
        )];
    });
    // The client sees its connection reset: it is still sending when the gateway refuses.
    presenting(&gw, &pki, &chain_pem).await;
    counted(&gw, "certificate_too_large").await;
    gw.shutdown().await;
}
