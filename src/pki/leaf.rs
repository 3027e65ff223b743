//! Leaf certificates: checking what the caller asked for (name, SANs, validity) and
//! building the certificate the intermediate signs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::ca::{random_serial, Ca, BACKDATE};
use super::{CertKind, IssueOptions, PkiError};

/// Longest accepted name: the X.509 upper bound of a common name (RFC 5280 ub-common-name).
const MAX_NAME_LEN: usize = 64;
/// DNS SAN of a server leaf issued without any DNS name or IP.
const DEFAULT_SERVER_DNS: &str = "localhost";
/// IP SANs of a server leaf issued without any DNS name or IP.
const DEFAULT_SERVER_IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// A freshly generated leaf, as PEM.
pub(crate) struct NewLeaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: SerialNumber,
    pub not_after: OffsetDateTime,
}

/// Accepts `[A-Za-z0-9._-]{1,64}` not starting with `.` (the name becomes a file name and
/// the subject CN).
pub(crate) fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    match ok {
        true => Ok(()),
        false => Err(PkiError::InvalidName(name.to_owned())),
    }
}

/// Builds and signs the leaf NAME with the intermediate.
pub(crate) fn generate(
    name: &str,
    opts: &IssueOptions,
    intermediate: &Ca,
    now: OffsetDateTime,
) -> Result<NewLeaf, PkiError> {
    let not_after = not_after(opts, intermediate, now)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.subject_alt_names = subject_alt_names(opts)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match opts.kind {
        CertKind::Client => ExtendedKeyUsagePurpose::ClientAuth,
        CertKind::Server => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    let serial = random_serial()?;
    params.serial_number = Some(serial.clone());

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &intermediate.issuer)?;
    Ok(NewLeaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial,
        not_after,
    })
}

/// now + valid_for, refusing zero and anything past the intermediate's own notAfter.
fn not_after(
    opts: &IssueOptions,
    intermediate: &Ca,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, PkiError> {
    if opts.valid_for.is_zero() {
        return Err(PkiError::InvalidValidity("valid_for is zero".to_owned()));
    }
    let end = time::Duration::try_from(opts.valid_for)
        .ok()
        .and_then(|d| now.checked_add(d))
        .filter(|end| *end <= intermediate.not_after);
    end.ok_or_else(|| {
        PkiError::InvalidValidity(format!(
            "{} days would outlive the intermediate CA (valid until {})",
            opts.valid_for.as_secs() / 86_400,
            super::index::format_time(intermediate.not_after),
        ))
    })
}

/// URI, DNS and IP SANs; a server leaf without DNS names or IPs gets the loopback ones.
fn subject_alt_names(opts: &IssueOptions) -> Result<Vec<SanType>, PkiError> {
    let mut sans = Vec::new();
    for uri in &opts.spiffe {
        if !is_absolute_uri(uri) {
            return Err(PkiError::InvalidUri(uri.clone()));
        }
        let ia5 = uri
            .as_str()
            .try_into()
            .map_err(|_| PkiError::InvalidUri(uri.clone()))?;
        sans.push(SanType::URI(ia5));
    }
    let (dns, ips): (Vec<&str>, Vec<IpAddr>) =
        match (opts.kind, opts.dns.is_empty() && opts.ips.is_empty()) {
            (CertKind::Server, true) => (vec![DEFAULT_SERVER_DNS], DEFAULT_SERVER_IPS.to_vec()),
            _ => (
                opts.dns.iter().map(String::as_str).collect(),
                opts.ips.clone(),
            ),
        };
    for name in dns {
        if !is_dns_name(name) {
            return Err(PkiError::InvalidDnsName(name.to_owned()));
        }
        let ia5 = name
            .try_into()
            .map_err(|_| PkiError::InvalidDnsName(name.to_owned()))?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.into_iter().map(SanType::IpAddress));
    Ok(sans)
}

/// `scheme ":" rest` with an RFC 3986 scheme and a non-empty rest of printable ASCII.
fn is_absolute_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic())
}

/// Letters, digits, `-`, `_`, `.` and a leading `*.` wildcard; no empty label.
fn is_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}
