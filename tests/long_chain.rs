//! A hostile client cannot make the gateway burn CPU on path building: a real rustls
//! client presents a long chain of small ECDSA certificates (under rustls's 64 KiB
//! handshake-message limit, so the verifier does run) and is refused as `chain_too_long`.

mod common;

use common::pki::{Ca, LeafSpec};
use common::{client, Opts, Spec, TestPki};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

/// An unconstrained CA signed by `parent`, with a short name to keep certificates small.
fn sub_ca(i: usize, parent: &Ca) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, format!("i{i}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(30);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    Ca {
        issuer: CertifiedIssuer::signed_by(p, key, &parent.issuer).unwrap(),
        serial: rcgen::SerialNumber::from(i as u64 + 1000),
        revoked: vec![],
    }
}

/// The verifier counts its refusals by reason (the handshake counter carries the same reason,
/// see tests/handshake_reasons.rs).
async fn refused_as_chain_too_long(gw: &common::TestGateway) -> bool {
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        if metrics.lines().any(|l| {
            l.starts_with(portcullis::telemetry::metrics::TLS_CLIENT_CERT_VERIFICATIONS_TOTAL)
                && l.contains("result=\"rejected\"")
                && l.contains("reason=\"chain_too_long\"")
        }) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn long_chain_from_a_real_client_is_refused() {
    let pki = TestPki::new();
    // No CRLs for this chain's CAs: revocation off, so only path building is exercised.
    let gw = common::start(
        &pki,
        Spec {
            truststore: "revocation = \"off\"",
            ..Spec::default()
        },
    )
    .await;

    // root → i1 → … → i100 → leaf, every link valid.
    let mut cas: Vec<Ca> = Vec::new();
    for i in 1..=100 {
        let ca = sub_ca(i, cas.last().unwrap_or(&pki.root));
        cas.push(ca);
    }
    let tail: String = cas.iter().rev().map(Ca::pem).collect();
    let leaf = cas.last().unwrap().leaf(&LeafSpec::default(), &tail);

    let ders: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ders.len(), 101);
    let size: usize = ders.iter().map(|d| d.len() + 3).sum();
    assert!(
        size < 60 * 1024,
        "chain must fit one handshake message: {size} bytes"
    );

    let reply = client::get(gw.addr, &pki, Opts::with(&leaf), "/").await;
    assert!(
        reply.is_err(),
        "a 100-intermediate chain must be refused: {reply:?}"
    );
    assert!(refused_as_chain_too_long(&gw).await);

    // The same kind of chain within the cap but beyond max_chain_depth (4) is refused too,
    // by the depth bound during path building.
    let short = &cas[..8];
    let tail: String = short.iter().rev().map(Ca::pem).collect();
    let leaf = short.last().unwrap().leaf(&LeafSpec::default(), &tail);
    let reply = client::get(gw.addr, &pki, Opts::with(&leaf), "/").await;
    assert!(
        reply.is_err(),
        "an 8-intermediate chain must be refused: {reply:?}"
    );

    // And a good client still gets in afterwards.
    let alice = pki.client("alice");
    let reply = client::get(gw.addr, &pki, Opts::with(&alice), "/")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    gw.shutdown().await;
}
