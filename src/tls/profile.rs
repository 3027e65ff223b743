//! Certificate-profile checks that webpki does not make, run on a path webpki has already
//! built and verified (so only on a chain that would otherwise be accepted), and on CRLs
//! at truststore load.
//!
//! Each rule comes from RFC 5280 and was found missing by the x509-limbo suite
//! (`conformance/limbo-results.md`): the trust anchor is checked like any other CA (webpki
//! only takes its name, key and name constraints), key-identifier extensions must be
//! non-critical and present on CAs, subject/SAN criticality must agree, a leaf may not carry
//! CA-only extensions, name constraints must be well-formed, and a CRL must carry a
//! non-critical CRL number and come from a CA allowed to sign CRLs.

use der::asn1::ObjectIdentifier;
use der::Decode;
use rustls_pki_types::UnixTime;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::constraints::name::GeneralSubtrees;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, KeyUsage, NameConstraints,
    SubjectAltName,
};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const NAME_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.30");
const CERT_POLICIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32");
const POLICY_MAPPINGS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.33");
const POLICY_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.36");
const INHIBIT_ANY_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.54");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_INFO_ACCESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Extensions a trust anchor may mark critical (webpki applies the same rule to the rest
/// of the path).
const KNOWN_CRITICAL: &[ObjectIdentifier] = &[
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    EXT_KEY_USAGE,
    SUBJECT_ALT_NAME,
    NAME_CONSTRAINTS,
    CERT_POLICIES,
    POLICY_MAPPINGS,
    POLICY_CONSTRAINTS,
    INHIBIT_ANY_POLICY,
];

/// Where a certificate sits in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leaf,
    Intermediate,
    Root,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Leaf => "leaf",
            Role::Intermediate => "intermediate",
            Role::Root => "root",
        }
    }
}

/// Check every certificate of a webpki-verified path: leaf, intermediates (leaf's issuer
/// first) and the root's DER (when the truststore has it). `now` is the validation time
/// (webpki does not check the anchor's validity).
pub fn check_path(
    leaf: &[u8],
    intermediates: &[&[u8]],
    root: Option<&[u8]>,
    now: UnixTime,
) -> Result<(), String> {
    check_cert(leaf, Role::Leaf, now)?;
    for der in intermediates {
        check_cert(der, Role::Intermediate, now)?;
    }
    if let Some(der) = root {
        check_cert(der, Role::Root, now)?;
    }
    Ok(())
}

fn ext(exts: &[Extension], oid: ObjectIdentifier) -> Option<&Extension> {
    exts.iter().find(|e| e.extn_id == oid)
}

fn decode<'a, T: Decode<'a>>(e: &'a Extension, what: &str) -> Result<T, String> {
    T::from_der(e.extn_value.as_bytes()).map_err(|err| format!("malformed {what}: {err}"))
}

fn check_cert(der: &[u8], role: Role, now: UnixTime) -> Result<(), String> {
    let r = role.name();
    let cert = Certificate::from_der(der).map_err(|e| format!("{r}: not valid X.509: {e}"))?;
    let tbs = cert.tbs_certificate();
    let exts: &[Extension] = tbs.extensions().map_or(&[], |e| e.as_slice());
    let fail = |what: &str| Err(format!("{r}: {what}"));

    // Key identifiers: never critical (RFC 5280 4.2.1.1, 4.2.1.2).
    if ext(exts, AUTHORITY_KEY_ID).is_some_and(|e| e.critical) {
        return fail("authorityKeyIdentifier is marked critical");
    }
    if ext(exts, SUBJECT_KEY_ID).is_some_and(|e| e.critical) {
        return fail("subjectKeyIdentifier is marked critical");
    }
    if let Some(e) = ext(exts, AUTHORITY_INFO_ACCESS) {
        if e.critical {
            return fail("authorityInfoAccess is marked critical");
        }
        decode::<AuthorityInfoAccessSyntax>(e, "authorityInfoAccess")
            .map_err(|m| format!("{r}: {m}"))?;
    }

    // Subject and SAN (RFC 5280 4.2.1.6): an empty subject needs a critical SAN, a
    // non-empty one a non-critical SAN.
    let san = ext(exts, SUBJECT_ALT_NAME);
    match (tbs.subject().is_empty(), san) {
        (true, None) => return fail("empty subject and no subjectAltName"),
        (true, Some(e)) if !e.critical => {
            return fail("empty subject with a non-critical subjectAltName")
        }
        (false, Some(e)) if e.critical => {
            return fail("subjectAltName is critical although the subject is not empty")
        }
        _ => {}
    }

    let bc = match ext(exts, BASIC_CONSTRAINTS) {
        Some(e) => Some((
            e.critical,
            decode::<BasicConstraints>(e, "basicConstraints")?,
        )),
        None => None,
    };
    let ku = match ext(exts, KEY_USAGE) {
        Some(e) => Some(decode::<KeyUsage>(e, "keyUsage")?),
        None => None,
    };
    let nc = match ext(exts, NAME_CONSTRAINTS) {
        Some(e) => Some(decode::<NameConstraints>(e, "nameConstraints")?),
        None => None,
    };
    let is_ca = bc.as_ref().is_some_and(|(_, bc)| bc.ca);

    match role {
        Role::Leaf => {
            if !is_ca && ku.as_ref().is_some_and(|k| k.key_cert_sign()) {
                return fail("keyCertSign in keyUsage of a non-CA certificate");
            }
            if !is_ca && nc.is_some() {
                return fail("nameConstraints in an end-entity certificate");
            }
            if let Some(e) = san {
                let san = decode::<SubjectAltName>(e, "subjectAltName")?;
                for name in &san.0 {
                    if let GeneralName::DnsName(d) = name {
                        if !valid_dns_san(d.as_str()) {
                            return fail(&format!(
                                "invalid dNSName {:?} in subjectAltName",
                                d.as_str()
                            ));
                        }
                    }
                }
            }
        }
        Role::Intermediate | Role::Root => {
            match &bc {
                None => return fail("CA certificate without basicConstraints"),
                Some((false, _)) => return fail("basicConstraints of a CA is not critical"),
                Some((true, bc)) if !bc.ca => return fail("basicConstraints does not assert CA"),
                _ => {}
            }
            if ku.as_ref().is_some_and(|k| !k.key_cert_sign()) {
                return fail("CA certificate without keyCertSign in keyUsage");
            }
            if ext(exts, SUBJECT_KEY_ID).is_none() {
                return fail("CA certificate without subjectKeyIdentifier");
            }
            if tbs.subject().is_empty() {
                return fail("CA certificate with an empty subject");
            }
            if let Some(nc) = &nc {
                check_name_constraints(nc).map_err(|m| format!("{r}: {m}"))?;
            }
        }
    }

    if role == Role::Root {
        // webpki keeps only name, key and name constraints of an anchor: check the rest.
        for e in exts {
            if e.critical && !KNOWN_CRITICAL.contains(&e.extn_id) {
                return fail(&format!("unknown critical extension {}", e.extn_id));
            }
        }
        let validity = tbs.validity();
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        if now.as_secs() > secs(validity.not_after.to_system_time()) {
            return fail("trust anchor has expired");
        }
        if now.as_secs() < secs(validity.not_before.to_system_time()) {
            return fail("trust anchor is not yet valid");
        }
        let self_issued = tbs.subject() == tbs.issuer();
        if let Some(e) = ext(exts, AUTHORITY_KEY_ID).filter(|_| self_issued) {
            let aki = decode::<AuthorityKeyIdentifier>(e, "authorityKeyIdentifier")?;
            let ski = ext(exts, SUBJECT_KEY_ID).map(|e| e.extn_value.as_bytes());
            let ski = ski.and_then(|b| der::asn1::OctetString::from_der(b).ok());
            if aki.authority_cert_issuer.is_some() || aki.authority_cert_serial_number.is_some() {
                return fail("self-signed root's authorityKeyIdentifier names an issuer/serial");
            }
            match (&aki.key_identifier, &ski) {
                (Some(k), Some(s)) if k == s => {}
                _ => return fail("self-signed root's authorityKeyIdentifier does not match its subjectKeyIdentifier"),
            }
        }
    }

    // RSA moduli are a whole number of bytes (CA/B Forum, and every sane key generator).
    let spki = tbs.subject_public_key_info();
    if spki.algorithm.oid == RSA_ENCRYPTION {
        if let Some(bits) = spki
            .subject_public_key
            .as_bytes()
            .and_then(rsa_modulus_bits)
        {
            if bits % 8 != 0 {
                return fail(&format!(
                    "RSA modulus of {bits} bits is not a multiple of 8"
                ));
            }
        }
    }
    Ok(())
}

/// RFC 5280 4.2.1.10: at least one subtree list, none empty, and dNSName constraints in
/// preferred name syntax (no leading period, no wildcard).
fn check_name_constraints(nc: &NameConstraints) -> Result<(), String> {
    let lists: [&Option<GeneralSubtrees>; 2] = [&nc.permitted_subtrees, &nc.excluded_subtrees];
    if lists
        .iter()
        .all(|l| l.as_ref().is_none_or(|v| v.is_empty()))
    {
        return Err("nameConstraints with neither permitted nor excluded subtrees".to_owned());
    }
    for list in lists.into_iter().flatten() {
        if list.is_empty() {
            return Err("nameConstraints with an empty subtree list".to_owned());
        }
        for sub in list {
            if let GeneralName::DnsName(d) = &sub.base {
                let d = d.as_str();
                if d.starts_with('.') || d.contains('*') {
                    return Err(format!("invalid dNSName constraint {d:?}"));
                }
            }
        }
    }
    Ok(())
}

/// A dNSName SAN: LDH labels, optionally a leading `*` label (RFC 5280 4.2.1.6, RFC 6125).
fn valid_dns_san(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Bits of an RSA subject key, from a SubjectPublicKeyInfo (`None` for any other key type).
pub fn rsa_key_bits(spki_der: &[u8]) -> Option<usize> {
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return None;
    }
    rsa_modulus_bits(spki.subject_public_key.as_bytes()?)
}

/// Bit length of an RSAPublicKey's modulus.
fn rsa_modulus_bits(key: &[u8]) -> Option<usize> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        _exponent: der::asn1::UintRef<'a>,
    }
    let k = RsaPublicKey::from_der(key).ok()?;
    let bytes = k.modulus.as_bytes();
    let first = *bytes.first()?;
    Some(bytes.len() * 8 - first.leading_zeros() as usize)
}

/// RFC 5280 5.2.3 and 4.2.1.3: a CRL carries a non-critical CRL number, and its issuer (when
/// it has a keyUsage extension) asserts cRLSign.
pub fn check_crl(crl: &CertificateList, issuer: Option<&Certificate>) -> Result<(), String> {
    let exts: &[Extension] = crl.tbs_cert_list.crl_extensions.as_deref().unwrap_or(&[]);
    match ext(exts, CRL_NUMBER) {
        None => return Err("CRL has no CRL number extension".to_owned()),
        Some(e) if e.critical => return Err("CRL number extension is marked critical".to_owned()),
        Some(_) => {}
    }
    if let Some(issuer) = issuer {
        let iexts: &[Extension] = issuer
            .tbs_certificate()
            .extensions()
            .map_or(&[], |e| e.as_slice());
        if let Some(e) = ext(iexts, KEY_USAGE) {
            let ku = decode::<KeyUsage>(e, "keyUsage of the CRL issuer")?;
            if !ku.crl_sign() {
                return Err("CRL issuer's keyUsage does not allow cRLSign".to_owned());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(critical_unknown: bool, days_left: i64) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "root");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days_left);
        if critical_unknown {
            let mut e =
                rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
            e.set_criticality(true);
            p.custom_extensions.push(e);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn trust_anchor_is_checked_like_a_ca() {
        let now = UnixTime::now();
        check_cert(&ca(false, 30), Role::Root, now).unwrap();
        let e = check_cert(&ca(true, 30), Role::Root, now).unwrap_err();
        assert!(e.contains("unknown critical extension"), "{e}");
        let e = check_cert(&ca(false, -1), Role::Root, now).unwrap_err();
        assert!(e.contains("expired"), "{e}");
    }

    #[test]
    fn rsa_key_bits_of_an_spki() {
        use rcgen::PublicKeyData;
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        assert_eq!(rsa_key_bits(&rsa.subject_public_key_info()), Some(2048));
        let ec = rcgen::KeyPair::generate().unwrap();
        assert_eq!(rsa_key_bits(&ec.subject_public_key_info()), None);
        assert_eq!(rsa_key_bits(b"not DER"), None);
    }

    #[test]
    fn dns_san_syntax() {
        assert!(valid_dns_san("api.example.test"));
        assert!(valid_dns_san("*.example.test"));
        assert!(valid_dns_san("localhost"));
        assert!(!valid_dns_san("foo_bar.example.test"));
        assert!(!valid_dns_san("a..b"));
        assert!(!valid_dns_san("-a.b"));
        assert!(!valid_dns_san("*"));
    }
}
