//! Unit tests of the dev PKI: layout, key modes, chains checked with webpki for the right
//! usage, reopening, name rules, revocation through both CRLs, CRL refresh.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use der::{Decode, DecodePem};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use webpki::{CertRevocationList, KeyUsage, OwnedCertRevocationList, RevocationOptionsBuilder};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};

use super::*;

fn client() -> IssueOptions {
    IssueOptions::default()
}

fn server() -> IssueOptions {
    IssueOptions {
        kind: CertKind::Server,
        ..IssueOptions::default()
    }
}

fn new_pki() -> (tempfile::TempDir, DevPki) {
    let tmp = tempfile::tempdir().unwrap();
    let pki = DevPki::init(&tmp.path().join("pki")).unwrap();
    (tmp, pki)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn cert_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn crl(pki: &DevPki, file: &str) -> CertRevocationList<'static> {
    let der =
        CertificateRevocationListDer::from_pem_file(pki.truststore_dir().join("crls").join(file))
            .unwrap();
    OwnedCertRevocationList::from_der(&der).unwrap().into()
}

fn crl_number(pki: &DevPki, file: &str) -> Vec<u8> {
    let pem = std::fs::read(pki.truststore_dir().join("crls").join(file)).unwrap();
    let list: CertificateList = CertificateList::from_pem(&pem).unwrap();
    let ext = list
        .tbs_cert_list
        .crl_extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id == <CrlNumber as der::oid::AssociatedOid>::OID)
        .unwrap();
    CrlNumber::from_der(ext.extn_value.as_bytes())
        .unwrap()
        .0
        .as_bytes()
        .to_vec()
}

/// Verifies NAME's leaf against the PKI's root and intermediate, optionally with full-chain
/// revocation checking through both CRLs (what the gateway does).
fn verify(pki: &DevPki, name: &str, usage: KeyUsage, with_crls: bool) -> Result<(), webpki::Error> {
    let root = cert_der(&pki.root_cert());
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
    let intermediate = cert_der(&pki.truststore_dir().join("intermediates/intermediate.pem"));
    let leaf = cert_der(&pki.cert_paths(name).unwrap().leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let (crl_root, crl_int) = (crl(pki, "root.crl.pem"), crl(pki, "intermediate.crl.pem"));
    let crls = [&crl_root, &crl_int];
    let revocation = with_crls.then(|| RevocationOptionsBuilder::new(&crls).unwrap().build());
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[intermediate],
        UnixTime::now(),
        usage,
        revocation,
        None,
    )
    .map(|_| ())
}

#[test]
fn init_creates_layout_with_private_keys_0600() {
    let (_tmp, mut pki) = new_pki();
    let dir = pki.dir().to_path_buf();
    for file in [
        "ca/root.pem",
        "ca/root.key",
        "ca/intermediate.pem",
        "ca/intermediate.key",
        "truststore/roots/root.pem",
        "truststore/intermediates/intermediate.pem",
        "truststore/crls/root.crl.pem",
        "truststore/crls/intermediate.crl.pem",
        "index.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode(&dir.join("ca/root.key")), 0o600);
    assert_eq!(mode(&dir.join("ca/intermediate.key")), 0o600);
    assert_eq!(mode(&dir.join("ca")), 0o700);
    assert!(
        std::fs::read_to_string(dir.join("truststore/crls/root.crl.pem"))
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    assert_eq!(pki.root_cert(), dir.join("ca/root.pem"));
    assert_eq!(pki.truststore_dir(), dir.join("truststore"));

    let issued = pki.issue("alice", &client()).unwrap();
    assert_eq!(mode(&issued.key), 0o600);
    assert_eq!(issued.cert, dir.join("certs/alice.pem"));
    assert_eq!(issued.leaf, dir.join("certs/alice.leaf.pem"));
    assert_eq!(issued.serial.len(), 32);
    assert_eq!(pki.cert_paths("alice"), Some(issued.clone()));
    assert_eq!(pki.cert_paths("bob"), None);
    // NAME.pem is the leaf followed by the intermediate.
    let chain: Vec<_> = CertificateDer::pem_file_iter(&issued.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0], cert_der(&issued.leaf));
    assert_eq!(chain[1], cert_der(&dir.join("ca/intermediate.pem")));
    // No temporary file is left behind.
    let leftovers: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => out.extend(walk(&path)),
            false => out.push(path.display().to_string()),
        }
    }
    out
}

#[test]
fn init_refuses_an_existing_pki_and_a_non_empty_dir_but_takes_an_empty_one() {
    let (tmp, pki) = new_pki();
    let err = DevPki::init(pki.dir()).unwrap_err();
    assert!(matches!(err, PkiError::AlreadyInitialized(_)), "{err}");

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "hi").unwrap();
    let err = DevPki::init(&other).unwrap_err();
    assert!(matches!(err, PkiError::DirNotEmpty(_)), "{err}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    DevPki::init(&empty).unwrap();
}

#[test]
fn open_refuses_a_dir_without_pki_and_a_key_that_does_not_match() {
    let tmp = tempfile::tempdir().unwrap();
    let err = DevPki::open(tmp.path()).unwrap_err();
    assert!(matches!(err, PkiError::NotInitialized(_)), "{err}");

    let pki = DevPki::init(&tmp.path().join("pki")).unwrap();
    let ca = pki.dir().join("ca");
    let root_key = std::fs::read(ca.join("root.key")).unwrap();
    std::fs::write(ca.join("intermediate.key"), root_key).unwrap();
    let err = DevPki::open(pki.dir()).unwrap_err();
    assert!(matches!(err, PkiError::CaMaterial { .. }), "{err}");
}

#[test]
fn client_and_server_leaves_verify_for_their_usage_only() {
    let (_tmp, mut pki) = new_pki();
    pki.issue("client-1", &client()).unwrap();
    pki.issue("server-1", &server()).unwrap();

    verify(&pki, "client-1", KeyUsage::client_auth(), true).unwrap();
    verify(&pki, "server-1", KeyUsage::server_auth(), true).unwrap();
    let err = verify(&pki, "client-1", KeyUsage::server_auth(), false).unwrap_err();
    assert!(
        matches!(err, webpki::Error::RequiredEkuNotFoundContext(_)),
        "{err:?}"
    );
    let err = verify(&pki, "server-1", KeyUsage::client_auth(), false).unwrap_err();
    assert!(
        matches!(err, webpki::Error::RequiredEkuNotFoundContext(_)),
        "{err:?}"
    );

    // A server leaf without names defaults to localhost, 127.0.0.1 and ::1.
    let leaf = cert_der(&pki.cert_paths("server-1").unwrap().leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    for name in ["localhost", "127.0.0.1", "::1"] {
        let name = ServerName::try_from(name).unwrap();
        ee.verify_is_valid_for_subject_name(&name).unwrap();
    }
}

#[test]
fn sans_are_written_and_checked() {
    let (_tmp, mut pki) = new_pki();
    let opts = IssueOptions {
        kind: CertKind::Server,
        spiffe: vec!["spiffe://example.org/ns/default/sa/api".to_owned()],
        dns: vec!["api.internal".to_owned()],
        ips: vec![IpAddr::from([10, 0, 0, 1])],
        ..IssueOptions::default()
    };
    pki.issue("api", &opts).unwrap();
    let leaf = cert_der(&pki.cert_paths("api").unwrap().leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    for name in ["api.internal", "10.0.0.1"] {
        ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap())
            .unwrap();
    }
    assert!(ee
        .verify_is_valid_for_subject_name(&ServerName::try_from("localhost").unwrap())
        .is_err());
    let text = String::from_utf8_lossy(&leaf).into_owned();
    assert!(text.contains("spiffe://example.org/ns/default/sa/api"));

    for bad in [
        "no-scheme",
        "spiffe:",
        "1x://a",
        "spiffe://a b",
        "spiffe://é",
    ] {
        let opts = IssueOptions {
            spiffe: vec![bad.to_owned()],
            ..client()
        };
        let err = pki.issue("bad-uri", &opts).unwrap_err();
        assert!(matches!(err, PkiError::InvalidUri(_)), "{bad}: {err}");
    }
    for bad in ["", "a..b", "exa mple.org", "ünï.org"] {
        let opts = IssueOptions {
            dns: vec![bad.to_owned()],
            ..client()
        };
        let err = pki.issue("bad-dns", &opts).unwrap_err();
        assert!(matches!(err, PkiError::InvalidDnsName(_)), "{bad:?}: {err}");
    }
    // Nothing was recorded or written for the refused requests.
    assert_eq!(pki.cert_paths("bad-uri"), None);
    assert!(!pki.dir().join("certs/bad-dns.key").exists());
}

#[test]
fn validity_must_be_positive_and_within_the_intermediate() {
    let (_tmp, mut pki) = new_pki();
    for valid_for in [
        Duration::ZERO,
        Duration::from_secs(20 * 365 * 86_400),
        Duration::MAX,
    ] {
        let opts = IssueOptions {
            valid_for,
            ..client()
        };
        let err = pki.issue("x", &opts).unwrap_err();
        assert!(matches!(err, PkiError::InvalidValidity(_)), "{err}");
    }
}

#[test]
fn leaf_issued_after_open_chains_to_the_stored_intermediate() {
    let (_tmp, pki) = new_pki();
    let dir = pki.dir().to_path_buf();
    drop(pki);
    let mut pki = DevPki::open(&dir).unwrap();
    pki.issue("late", &client()).unwrap();
    verify(&pki, "late", KeyUsage::client_auth(), true).unwrap();

    // Issuer DN and AKI of the leaf are the stored intermediate's subject DN and SKI.
    let int_der = cert_der(&dir.join("ca/intermediate.pem"));
    let int = x509_cert::Certificate::from_der(&int_der).unwrap();
    let leaf_der = cert_der(&pki.cert_paths("late").unwrap().leaf);
    let leaf = x509_cert::Certificate::from_der(&leaf_der).unwrap();
    assert_eq!(
        leaf.tbs_certificate().issuer(),
        int.tbs_certificate().subject()
    );
    let (_, ski) = int
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    let (_, aki) = leaf
        .tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()
        .unwrap()
        .unwrap();
    assert_eq!(aki.key_identifier.unwrap(), ski.0);
}

#[test]
fn names_are_checked_and_never_reused() {
    let (_tmp, mut pki) = new_pki();
    pki.issue("svc_a-1.prod", &client()).unwrap();
    let err = pki.issue("svc_a-1.prod", &server()).unwrap_err();
    assert!(matches!(err, PkiError::DuplicateName(_)), "{err}");
    pki.revoke("svc_a-1.prod").unwrap();
    let err = pki.issue("svc_a-1.prod", &client()).unwrap_err();
    assert!(matches!(err, PkiError::DuplicateName(_)), "{err}");

    let too_long = "a".repeat(65);
    for bad in [
        "",
        "a/b",
        "../x",
        ".hidden",
        "a b",
        "é",
        "x\n",
        too_long.as_str(),
    ] {
        let err = pki.issue(bad, &client()).unwrap_err();
        assert!(matches!(err, PkiError::InvalidName(_)), "{bad:?}: {err}");
    }
    // The index survives a reopen with the same entries.
    let pki = DevPki::open(pki.dir()).unwrap();
    assert!(pki.cert_paths("svc_a-1.prod").is_some());
}

#[test]
fn revoked_leaf_fails_full_chain_check_while_others_pass() {
    let (_tmp, mut pki) = new_pki();
    let mallory = pki.issue("mallory", &client()).unwrap();
    pki.issue("alice", &client()).unwrap();
    pki.revoke("mallory").unwrap();

    let serial = hex::decode(&mallory.serial).unwrap();
    let crl_int = crl(&pki, "intermediate.crl.pem");
    assert!(crl_int.find_serial(&serial).unwrap().is_some());
    let err = verify(&pki, "mallory", KeyUsage::client_auth(), true).unwrap_err();
    assert_eq!(err, webpki::Error::CertRevoked);
    verify(&pki, "alice", KeyUsage::client_auth(), true).unwrap();

    let err = pki.revoke("mallory").unwrap_err();
    assert!(matches!(err, PkiError::AlreadyRevoked(_)), "{err}");
    let err = pki.revoke("nobody").unwrap_err();
    assert!(matches!(err, PkiError::UnknownName(_)), "{err}");

    // CRLs are rebuilt from index.toml: a refresh after reopening keeps the revocation.
    let mut pki = DevPki::open(pki.dir()).unwrap();
    pki.refresh_crls().unwrap();
    let err = verify(&pki, "mallory", KeyUsage::client_auth(), true).unwrap_err();
    assert_eq!(err, webpki::Error::CertRevoked);
    verify(&pki, "alice", KeyUsage::client_auth(), true).unwrap();
}

#[test]
fn refresh_crls_bumps_both_crl_numbers() {
    let (_tmp, mut pki) = new_pki();
    assert_eq!(crl_number(&pki, "root.crl.pem"), [1]);
    assert_eq!(crl_number(&pki, "intermediate.crl.pem"), [1]);
    pki.issue("a", &client()).unwrap();
    pki.revoke("a").unwrap();
    assert_eq!(crl_number(&pki, "root.crl.pem"), [1]);
    assert_eq!(crl_number(&pki, "intermediate.crl.pem"), [2]);
    let mut pki = DevPki::open(pki.dir()).unwrap();
    pki.refresh_crls().unwrap();
    assert_eq!(crl_number(&pki, "root.crl.pem"), [2]);
    assert_eq!(crl_number(&pki, "intermediate.crl.pem"), [3]);
}
