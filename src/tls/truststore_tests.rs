//! Tests of [`Truststore::load`]: layout, bad files, CRL signatures, duplicate CRLs.

use super::*;
use crate::tls::test_pki::*;

#[test]
fn loads_roots_intermediates_and_crls_and_reports_them() {
    let root = root("Store Root");
    let inter = intermediate("Store Intermediate", 2, &root);
    let crl = fresh_crl(&inter, &[5, 6]);
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[&inter], &[]);
    std::fs::create_dir_all(dir.path().join("crls")).unwrap();
    std::fs::write(dir.path().join("crls/inter.pem"), crl_pem(&crl)).unwrap();
    let store = Truststore::load(dir.path()).unwrap();
    assert_eq!(store.anchors().len(), 1);
    assert_eq!(store.intermediates().len(), 1);
    assert_eq!(store.cas().len(), 2);
    assert_eq!(store.cas()[0].subject, "O=Portcullis Test,CN=Store Root");
    assert!(store.cas()[0].root && !store.cas()[1].root);
    assert_eq!(store.cas()[0].fingerprint.len(), 64);
    assert_eq!(store.crls().len(), 1);
    assert_eq!(
        store.crls()[0].issuer,
        "O=Portcullis Test,CN=Store Intermediate"
    );
    assert_eq!(store.crls()[0].revoked, 2);
    assert!(store.crls()[0].signature_checked);
    assert_eq!(store.root_subjects().len(), 1);
}

#[test]
fn junk_pem_is_an_error_naming_the_file_and_backups_are_ignored() {
    let root = root("Junk Root");
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[], &[]);
    let roots = dir.path().join("roots");
    std::fs::write(roots.join("ca0.pem~"), "garbage").unwrap();
    std::fs::write(roots.join("new.tmp"), "garbage").unwrap();
    std::fs::write(roots.join(".ca0.pem.swp"), "garbage").unwrap();
    std::fs::write(roots.join("README"), "garbage").unwrap();
    assert!(Truststore::load(dir.path()).is_ok());

    std::fs::write(roots.join("x.pem"), "this is not a certificate\n").unwrap();
    let err = Truststore::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("x.pem"), "{err}");
    assert!(err.contains("no CERTIFICATE PEM block"), "{err}");

    std::fs::remove_file(roots.join("x.pem")).unwrap();
    std::fs::write(roots.join("x.der"), b"\x30\x03\x02\x01\x01").unwrap();
    let err = Truststore::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("x.der") && err.contains("not valid X.509"),
        "{err}"
    );
}

#[test]
fn missing_subfolders_are_empty_but_roots_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let err = Truststore::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, TruststoreError::NoRootsFolder { .. }),
        "{err}"
    );
    std::fs::create_dir(dir.path().join("roots")).unwrap();
    let err = Truststore::load(dir.path()).unwrap_err();
    assert!(matches!(err, TruststoreError::NoRoots { .. }), "{err}");
    let root = root("Only Root");
    write_store(dir.path(), &[&root], &[], &[]);
    let store = Truststore::load(dir.path()).unwrap();
    assert!(store.intermediates().is_empty() && store.crls().is_empty());
}

#[test]
fn crl_with_a_bad_signature_is_rejected() {
    let root = root("Sig Root");
    // Same subject, different key: the CRL claims to be from "Sig Root" but isn't.
    let impostor = super::super::test_pki::root("Sig Root");
    let forged = fresh_crl(&impostor, &[]);
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[], &[&forged]);
    let err = Truststore::load(dir.path()).unwrap_err();
    assert!(matches!(err, TruststoreError::CrlSignature { .. }), "{err}");
    assert!(err.to_string().contains("crl0.crl"));

    // A flipped bit in the signature of a genuine CRL.
    let mut bytes = fresh_crl(&root, &[]).as_ref().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[], &[&bytes.into()]);
    let err = Truststore::load(dir.path()).unwrap_err();
    assert!(matches!(err, TruststoreError::CrlSignature { .. }), "{err}");
}

#[test]
fn duplicate_crls_keep_the_newest() {
    let root = root("Dup Root");
    let older = crl(&root, &[1], at(NOW_SECS) - days(20), days(30));
    let newer = crl(&root, &[1, 2, 3], at(NOW_SECS) - days(2), days(30));
    let dir = tempfile::tempdir().unwrap();
    // crl0 = newer, crl1 = older: load order must not matter.
    write_store(dir.path(), &[&root], &[], &[&newer, &older]);
    let store = Truststore::load(dir.path()).unwrap();
    assert_eq!(store.crls().len(), 1);
    assert_eq!(store.crls()[0].revoked, 3);
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[], &[&older, &newer]);
    let store = Truststore::load(dir.path()).unwrap();
    assert_eq!(store.crls()[0].revoked, 3);
    assert_eq!(store.revocation_lists().len(), 1);
}

#[test]
fn junk_crl_is_an_error_naming_the_file() {
    let root = root("Crl Junk Root");
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[], &[]);
    std::fs::create_dir_all(dir.path().join("crls")).unwrap();
    std::fs::write(dir.path().join("crls/bad.crl"), b"nope").unwrap();
    let err = Truststore::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.crl") && err.contains("CRL"), "{err}");
}

#[test]
fn a_store_is_refused_only_when_no_root_is_valid() {
    let valid = root("Valid Root");
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&valid], &[], &[]);
    let store = Truststore::load(dir.path()).unwrap();
    let at_secs = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
    // test_pki roots are valid from NOW - 365 days to NOW + 3650 days.
    assert!(store.check_roots_valid(at_secs(NOW_SECS)).is_ok());
    let err = store
        .check_roots_valid(at_secs(NOW_SECS + 4000 * 86_400))
        .unwrap_err();
    assert!(matches!(err, TruststoreError::NoValidRoot { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ca0.pem") && text.contains("Valid Root") && text.contains("expired at"),
        "{text}"
    );
    let early = store.check_roots_valid(at_secs(NOW_SECS - 400 * 86_400));
    assert!(early
        .unwrap_err()
        .to_string()
        .contains("is not valid before"));
}

#[test]
fn revoked_serials_are_found_by_issuer_and_serial_in_any_hex_form() {
    let root = root("Serial Root");
    let inter = intermediate("Serial Intermediate", 2, &root);
    let older = crl(&inter, &[7], at(NOW_SECS) - days(20), days(30));
    let newer = crl(&inter, &[5, 255, 0x1234], at(NOW_SECS) - days(2), days(30));
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[&inter], &[&older, &newer]);
    let store = Truststore::load(dir.path()).unwrap();
    let issuer = "O=Portcullis Test,CN=Serial Intermediate";
    for serial in ["5", "05", "ff", "FF", "00ff", "1234", "001234"] {
        assert!(store.is_revoked_serial(issuer, serial), "{serial}");
    }
    // Not on the CRL in use (7 is only on the older one), or another issuer's serial.
    for serial in ["6", "7", "0", "", "12345"] {
        assert!(!store.is_revoked_serial(issuer, serial), "{serial}");
    }
    assert!(!store.is_revoked_serial("O=Portcullis Test,CN=Serial Root", "5"));
    assert!(!store.is_revoked_serial("CN=Serial Intermediate", "5"));
    // A store without CRLs revokes nothing.
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path(), &[&root], &[&inter], &[]);
    let store = Truststore::load(dir.path()).unwrap();
    assert!(!store.is_revoked_serial(issuer, "5"));
}
