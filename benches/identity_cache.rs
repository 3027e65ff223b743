//! Client-chain verification for a depth-3 ECDSA P-256 chain (leaf → intermediate → root)
//! with a 10,000-entry CRL: cold (path building + CRL lookups, what every handshake paid
//! without the cache) versus a verified-identity cache hit (SHA-256 over the chain + one
//! lookup). Results go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::config::{ClientAuth, IdentityCacheConfig, Policy, Revocation, TruststoreConfig};
use portcullis::tls::{CachingVerifier, ClientVerifier, IdentityCache, Truststore};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;

fn ca(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(365);
    p
}

fn crl(issuer: &Issuer<'_, KeyPair>, revoked: u64) -> String {
    let now = OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: (0..revoked)
            .map(|i| RevokedCertParams {
                serial_number: SerialNumber::from(1_000_000 + i),
                revocation_time: now - time::Duration::hours(2),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .pem()
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let root_key = KeyPair::generate_for(alg).unwrap();
    let root_cert = ca("Bench Root", 1).self_signed(&root_key).unwrap();
    let root = Issuer::new(ca("Bench Root", 1), root_key);
    let inter_key = KeyPair::generate_for(alg).unwrap();
    let inter_cert = ca("Bench Intermediate", 2)
        .signed_by(&inter_key, &root)
        .unwrap();
    let inter = Issuer::new(ca("Bench Intermediate", 2), inter_key);
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.distinguished_name
        .push(DnType::CommonName, "bench client");
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    lp.serial_number = Some(SerialNumber::from(7u64));
    lp.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    lp.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let leaf = lp.signed_by(&leaf_key, &inter).unwrap();

    let dir = tempfile::tempdir().unwrap();
    for sub in ["roots", "crls"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::write(dir.path().join("roots/root.pem"), root_cert.pem()).unwrap();
    std::fs::write(dir.path().join("crls/root.crl.pem"), crl(&root, 0)).unwrap();
    std::fs::write(dir.path().join("crls/inter.crl.pem"), crl(&inter, 10_000)).unwrap();
    let settings = TruststoreConfig {
        dir: dir.path().to_path_buf(),
        revocation: Revocation::FullChain,
        unknown_revocation: Policy::Deny,
        expired_crl: Policy::Deny,
        max_chain_depth: 4,
        crl_fetch: Vec::new(),
    };
    let store = Arc::new(Truststore::load(dir.path()).unwrap());
    let inner = Arc::new(ClientVerifier::new(store, &settings, ClientAuth::Required));
    let cache = Arc::new(IdentityCache::new(&IdentityCacheConfig {
        capacity: 1000,
        ttl: Duration::from_secs(300),
    }));
    let caching = CachingVerifier::new(inner.clone(), 1, cache);
    let leaf_der = leaf.der().clone();
    let chain: Vec<CertificateDer<'static>> = vec![inter_cert.der().clone()];

    let mut g = c.benchmark_group("client_chain_depth3_crl10k");
    g.bench_function("cold", |b| {
        b.iter(|| {
            inner
                .verify_chain(&leaf_der, &chain, UnixTime::now())
                .unwrap()
        })
    });
    caching
        .identify(&leaf_der, &chain, UnixTime::now())
        .unwrap();
    g.bench_function("cached", |b| {
        b.iter(|| {
            caching
                .identify(&leaf_der, &chain, UnixTime::now())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
