//! Tests of [`ClientVerifier::verify_chain`] over real chains built at run time.

use std::sync::Arc;

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa};
use rustls_pki_types::CertificateDer;

use super::*;
use crate::config::{ClientAuth, Policy, Revocation, TruststoreConfig};
use crate::tls::test_pki::*;
use crate::tls::truststore::Truststore;

struct Pki {
    root: Ca,
    inter: Ca,
    leaf: Leaf,
}

fn pki() -> Pki {
    let root = root("Test Root");
    let inter = intermediate("Test Intermediate", 2, &root);
    let leaf = leaf("client", 100, &inter);
    Pki { root, inter, leaf }
}

fn verifier(
    roots: &[&Ca],
    intermediates: &[&Ca],
    crls: &[&rustls_pki_types::CertificateRevocationListDer<'_>],
    tweak: impl FnOnce(&mut TruststoreConfig),
) -> ClientVerifier {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), roots, intermediates, crls);
    let mut s = settings(dir.path(), Revocation::EndEntity);
    s.unknown_revocation = Policy::Allow;
    tweak(&mut s);
    let store = Arc::new(Truststore::load(dir.path()).unwrap());
    ClientVerifier::new(store, &s, ClientAuth::Required)
}

fn reason(r: Result<VerifiedChain, Rejection>) -> &'static str {
    match r {
        Ok(_) => "accepted",
        Err(e) => e.reason.label(),
    }
}

#[test]
fn valid_leaf_sent_with_intermediate_is_accepted() {
    let p = pki();
    let v = verifier(&[&p.root], &[], &[], |_| {});
    let chain = v
        .verify_chain(&p.leaf.der, std::slice::from_ref(&p.inter.der), now())
        .unwrap();
    assert_eq!(chain.intermediates, vec![p.inter.der.clone()]);
    assert_eq!(chain.leaf, p.leaf.der);
}

#[test]
fn intermediate_from_the_store_is_used_for_path_building() {
    let p = pki();
    let v = verifier(&[&p.root], &[&p.inter], &[], |_| {});
    assert_eq!(reason(v.verify_chain(&p.leaf.der, &[], now())), "accepted");
    // Without it, the leaf alone has no path.
    let v = verifier(&[&p.root], &[], &[], |_| {});
    assert_eq!(
        reason(v.verify_chain(&p.leaf.der, &[], now())),
        "unknown_issuer"
    );
}

#[test]
fn unknown_ca_is_unknown_issuer() {
    let p = pki();
    let other = root("Other Root");
    let v = verifier(&[&other], &[], &[], |_| {});
    let err = v
        .verify_chain(&p.leaf.der, std::slice::from_ref(&p.inter.der), now())
        .unwrap_err();
    assert_eq!(err.reason, RejectReason::UnknownIssuer);
    assert!(matches!(err.tls_error, CertificateError::UnknownIssuer));
}

#[test]
fn expired_and_not_yet_valid() {
    let p = pki();
    let v = verifier(&[&p.root], &[&p.inter], &[], |_| {});

    let mut params = leaf_params("old", 101);
    params.not_before = at(NOW_SECS) - days(400);
    params.not_after = at(1_767_225_600); // 2026-01-01T00:00:00Z
    let old = sign_leaf(&params, &p.inter);
    let err = v.verify_chain(&old.der, &[], now()).unwrap_err();
    assert_eq!(err.reason, RejectReason::Expired);
    assert_eq!(err.detail, "certificate expired at 2026-01-01T00:00:00Z");
    assert!(matches!(
        err.tls_error,
        CertificateError::ExpiredContext { .. }
    ));

    let mut params = leaf_params("future", 102);
    params.not_before = at(NOW_SECS) + days(10);
    let future = sign_leaf(&params, &p.inter);
    assert_eq!(
        reason(v.verify_chain(&future.der, &[], now())),
        "not_yet_valid"
    );
}

#[test]
fn revoked_leaf_via_intermediate_crl() {
    let p = pki();
    let crl = fresh_crl(&p.inter, &[100]);
    let v = verifier(&[&p.root], &[&p.inter], &[&crl], |_| {});
    let err = v.verify_chain(&p.leaf.der, &[], now()).unwrap_err();
    assert_eq!(err.reason, RejectReason::Revoked);
    assert!(matches!(err.tls_error, CertificateError::Revoked));
    // Another leaf of the same intermediate is fine.
    let good = leaf("good", 103, &p.inter);
    assert_eq!(reason(v.verify_chain(&good.der, &[], now())), "accepted");
}

#[test]
fn revoked_intermediate_depends_on_depth() {
    let p = pki();
    let root_crl = fresh_crl(&p.root, &[2]);
    let inter_crl = fresh_crl(&p.inter, &[]);
    let full = verifier(&[&p.root], &[&p.inter], &[&root_crl, &inter_crl], |s| {
        s.revocation = Revocation::FullChain
    });
    assert_eq!(
        reason(full.verify_chain(&p.leaf.der, &[], now())),
        "revoked"
    );
    let ee = verifier(&[&p.root], &[&p.inter], &[&root_crl, &inter_crl], |s| {
        s.revocation = Revocation::EndEntity
    });
    assert_eq!(reason(ee.verify_chain(&p.leaf.der, &[], now())), "accepted");
}

#[test]
fn missing_crl_under_full_chain_follows_unknown_revocation_policy() {
    let p = pki();
    let inter_crl = fresh_crl(&p.inter, &[]);
    // No CRL for the root, which issued the intermediate.
    let deny = verifier(&[&p.root], &[&p.inter], &[&inter_crl], |s| {
        s.revocation = Revocation::FullChain;
        s.unknown_revocation = Policy::Deny;
    });
    assert_eq!(
        reason(deny.verify_chain(&p.leaf.der, &[], now())),
        "unknown_revocation_status"
    );
    let allow = verifier(&[&p.root], &[&p.inter], &[&inter_crl], |s| {
        s.revocation = Revocation::FullChain;
        s.unknown_revocation = Policy::Allow;
    });
    assert_eq!(
        reason(allow.verify_chain(&p.leaf.der, &[], now())),
        "accepted"
    );
    // No CRL at all, deny: still decided (webpki needs at least one CRL).
    let none = verifier(&[&p.root], &[&p.inter], &[], |s| {
        s.unknown_revocation = Policy::Deny;
    });
    assert_eq!(
        reason(none.verify_chain(&p.leaf.der, &[], now())),
        "unknown_revocation_status"
    );
}

#[test]
fn expired_crl_follows_policy() {
    let p = pki();
    let stale = crl(&p.inter, &[], at(NOW_SECS) - days(40), days(30));
    let deny = verifier(&[&p.root], &[&p.inter], &[&stale], |s| {
        s.expired_crl = Policy::Deny
    });
    let err = deny.verify_chain(&p.leaf.der, &[], now()).unwrap_err();
    assert_eq!(err.reason, RejectReason::ExpiredCrl);
    let allow = verifier(&[&p.root], &[&p.inter], &[&stale], |s| {
        s.expired_crl = Policy::Allow
    });
    assert_eq!(
        reason(allow.verify_chain(&p.leaf.der, &[], now())),
        "accepted"
    );
}

#[test]
fn eku_rules() {
    let p = pki();
    let v = verifier(&[&p.root], &[&p.inter], &[], |_| {});
    let mut params = leaf_params("server-only", 110);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = sign_leaf(&params, &p.inter);
    let err = v.verify_chain(&server_only.der, &[], now()).unwrap_err();
    assert_eq!(err.reason, RejectReason::BadEku);
    assert!(matches!(err.tls_error, CertificateError::InvalidPurpose));

    let mut params = leaf_params("no-eku", 111);
    params.extended_key_usages = vec![];
    let no_eku = sign_leaf(&params, &p.inter);
    assert_eq!(reason(v.verify_chain(&no_eku.der, &[], now())), "accepted");
}

#[test]
fn ca_certificate_as_leaf_is_refused() {
    let p = pki();
    let v = verifier(&[&p.root], &[], &[], |_| {});
    let mut params = leaf_params("sneaky-ca", 120);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_leaf = sign_leaf(&params, &p.inter);
    let err = v
        .verify_chain(&ca_leaf.der, std::slice::from_ref(&p.inter.der), now())
        .unwrap_err();
    assert_eq!(err.reason, RejectReason::CaAsLeaf);
    // The intermediate itself presented as a client certificate.
    assert_eq!(
        reason(v.verify_chain(&p.inter.der, &[], now())),
        "ca_as_leaf"
    );
}

#[test]
fn chain_longer_than_max_depth_is_refused() {
    let root = root("Deep Root");
    let i1 = intermediate("I1", 11, &root);
    let i2 = intermediate("I2", 12, &i1);
    let i3 = intermediate("I3", 13, &i2);
    let leaf = leaf("deep", 130, &i3);
    let sent: Vec<CertificateDer<'static>> = vec![i3.der.clone(), i2.der.clone(), i1.der.clone()];
    let v = verifier(&[&root], &[], &[], |s| s.max_chain_depth = 2);
    let err = v.verify_chain(&leaf.der, &sent, now()).unwrap_err();
    assert_eq!(err.reason, RejectReason::ChainTooLong);
    let v = verifier(&[&root], &[], &[], |s| s.max_chain_depth = 3);
    assert_eq!(reason(v.verify_chain(&leaf.der, &sent, now())), "accepted");
}

#[test]
fn trait_policy_methods_follow_client_auth() {
    let p = pki();
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&p.root], &[], &[]);
    let store = Arc::new(Truststore::load(dir.path()).unwrap());
    let s = settings(dir.path(), Revocation::Off);
    let req = ClientVerifier::new(store.clone(), &s, ClientAuth::Required);
    assert!(req.offer_client_auth() && req.client_auth_mandatory());
    assert!(!req.requires_raw_public_keys());
    assert_eq!(req.root_hint_subjects().len(), 1);
    // The hint goes on the wire as a whole DER Name (OpenSSL clients reject anything else).
    let root = <x509_cert::Certificate as der::Decode>::from_der(p.root.der.as_ref()).unwrap();
    let subject = der::Encode::to_der(root.tbs_certificate().subject()).unwrap();
    assert_eq!(req.root_hint_subjects()[0].as_ref(), subject.as_slice());
    let opt = ClientVerifier::new(store.clone(), &s, ClientAuth::Optional);
    assert!(opt.offer_client_auth() && !opt.client_auth_mandatory());
    let none = ClientVerifier::new(store, &s, ClientAuth::None);
    assert!(!none.offer_client_auth() && !none.client_auth_mandatory());
}
