//! A test PKI generated at run time (ECDSA P-256): roots, intermediates, leaves, CRLs, and
//! truststore folders on disk.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::config::{Policy, Revocation, TruststoreConfig};

/// 2026-06-01T00:00:00Z: "now" in every test.
pub const NOW_SECS: u64 = 1_780_272_000;

pub fn now() -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW_SECS))
}

pub fn at(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key: KeyPair,
}

fn key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn ca_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "Portcullis Test");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(NOW_SECS) - days(365);
    p.not_after = at(NOW_SECS) + days(3650);
    p.serial_number = Some(SerialNumber::from(serial));
    p.use_authority_key_identifier_extension = true;
    p
}

pub fn root(cn: &str) -> Ca {
    let k = key();
    let p = ca_params(cn, 1);
    let cert = p.self_signed(&k).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(p, k),
    }
}

pub fn intermediate(cn: &str, serial: u64, parent: &Ca) -> Ca {
    let k = key();
    let p = ca_params(cn, serial);
    let cert = p.signed_by(&k, &parent.issuer).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(p, k),
    }
}

/// Leaf parameters: a client cert with clientAuth EKU, valid around [`NOW_SECS`].
pub fn leaf_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = at(NOW_SECS) - days(30);
    p.not_after = at(NOW_SECS) + days(60);
    p.serial_number = Some(SerialNumber::from(serial));
    p.subject_alt_names = vec![SanType::URI(
        format!("spiffe://test/{cn}").try_into().unwrap(),
    )];
    p
}

pub fn sign_leaf(p: &CertificateParams, parent: &Ca) -> Leaf {
    let k = key();
    let cert = p.signed_by(&k, &parent.issuer).unwrap();
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key: k,
    }
}

pub fn leaf(cn: &str, serial: u64, parent: &Ca) -> Leaf {
    sign_leaf(&leaf_params(cn, serial), parent)
}

/// A CRL by `ca` revoking `serials`, issued at `this_update`, valid for `valid` more.
pub fn crl(
    ca: &Ca,
    serials: &[u64],
    this_update: OffsetDateTime,
    valid: Duration,
) -> CertificateRevocationListDer<'static> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update: this_update + valid,
        crl_number: SerialNumber::from(this_update.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: this_update - days(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.issuer).unwrap().der().clone()
}

/// A fresh CRL (issued 10 days before now, valid 30 days).
pub fn fresh_crl(ca: &Ca, serials: &[u64]) -> CertificateRevocationListDer<'static> {
    crl(ca, serials, at(NOW_SECS) - days(10), days(30))
}

pub fn crl_pem(der: &CertificateRevocationListDer<'_>) -> String {
    pem_block("X509 CRL", der.as_ref())
}

pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64_free::encode;
    let b64 = encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Write a truststore folder: `roots/`, `intermediates/`, `crls/` (omitted when empty).
pub fn write_store(
    dir: &Path,
    roots: &[&Ca],
    intermediates: &[&Ca],
    crls: &[&CertificateRevocationListDer<'_>],
) {
    for (sub, cas) in [("roots", roots), ("intermediates", intermediates)] {
        if cas.is_empty() {
            continue;
        }
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for (i, ca) in cas.iter().enumerate() {
            std::fs::write(dir.join(sub).join(format!("ca{i}.pem")), &ca.pem).unwrap();
        }
    }
    if !crls.is_empty() {
        std::fs::create_dir_all(dir.join("crls")).unwrap();
        for (i, c) in crls.iter().enumerate() {
            std::fs::write(dir.join("crls").join(format!("crl{i}.crl")), c.as_ref()).unwrap();
        }
    }
}

pub fn settings(dir: &Path, revocation: Revocation) -> TruststoreConfig {
    TruststoreConfig {
        dir: dir.to_path_buf(),
        revocation,
        unknown_revocation: Policy::Deny,
        expired_crl: Policy::Deny,
        max_chain_depth: 4,
        crl_fetch: Vec::new(),
    }
}

/// Tiny base64 encoder so the tests need no extra crate.
mod base64_free {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
