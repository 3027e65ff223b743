//! The caller's identity, read once per connection from the verified leaf certificate.
//!
//! Runs after the handshake (and after the verifier accepted the chain); the result feeds
//! authorization (`allow` rules match SANs and CNs) and the identity headers sent upstream,
//! among them Envoy's `x-forwarded-client-cert` ([`Identity::xfcc`]).
//!
//! Distinguished names are printed the way Envoy prints them (OpenSSL's
//! `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`): most specific RDN first, OpenSSL short names
//! (`CN`, `OU`, `O`, `L`, `ST`, `C`, `DC`, `emailAddress`, ...), RFC 4514 escapes, and every
//! byte outside printable ASCII written as `\XX`, so the string is always a valid header value.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use der::asn1::{BmpString, Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::Certificate;

/// Why a leaf certificate's identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("client certificate is not valid X.509: {0}")]
    Parse(der::Error),
    #[error("client certificate has a malformed subjectAltName extension: {0}")]
    SubjectAltName(der::Error),
}

/// Who the client is, as stated by its verified leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// RFC 4514 / OpenSSL RFC 2253 form, ASCII only.
    pub subject: String,
    pub common_name: Option<String>,
    pub issuer: String,
    pub issuer_cn: Option<String>,
    /// Lowercase hex, no leading zeros (a single `0` for zero).
    pub serial: String,
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    /// Lowercase hex SHA-256 of the leaf DER.
    pub fingerprint: String,
    pub not_after: SystemTime,
}

impl Identity {
    pub fn from_leaf(der: &CertificateDer<'_>) -> Result<Identity, IdentityError> {
        let cert = Certificate::from_der(der.as_ref()).map_err(IdentityError::Parse)?;
        let tbs = cert.tbs_certificate();
        let (mut uri_sans, mut dns_sans, mut ip_sans) = (Vec::new(), Vec::new(), Vec::new());
        if let Some((_critical, san)) = tbs
            .get_extension::<SubjectAltName>()
            .map_err(IdentityError::SubjectAltName)?
        {
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(uri) => {
                        uri_sans.push(uri.as_str().to_owned())
                    }
                    GeneralName::DnsName(dns) => dns_sans.push(dns.as_str().to_owned()),
                    GeneralName::IpAddress(ip) => {
                        if let Some(ip) = ip_from_bytes(ip.as_bytes()) {
                            ip_sans.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(Identity {
            subject: format_name(tbs.subject()),
            common_name: common_name(tbs.subject()),
            issuer: format_name(tbs.issuer()),
            issuer_cn: common_name(tbs.issuer()),
            serial: serial_hex(tbs.serial_number().as_bytes()),
            uri_sans,
            dns_sans,
            ip_sans,
            fingerprint: hex::encode(Sha256::digest(der.as_ref())),
            not_after: tbs.validity().not_after.to_system_time(),
        })
    }

    /// One element of Envoy's `x-forwarded-client-cert` header:
    /// `Hash=<sha256>;Subject="<subject>";URI=<uri>...;DNS=<dns>...`.
    ///
    /// Like Envoy, `Subject` is always quoted, there is one `URI=` pair per URI SAN (an empty
    /// `URI=` when there is none) and one `DNS=` pair per DNS SAN, in certificate order.
    /// Unlike Envoy (which pastes values raw, see the TODO in its `conn_manager_utility.cc`)
    /// we follow Envoy's documented rule: a value containing `,` `;` `=` or `"` is quoted
    /// with `"` written `\"`, and `\"` is the only escape inside quotes. Inside the quoted
    /// subject, `\"` and `\\` (RFC 4514 escapes) are rewritten to the equivalent `\22` and
    /// `\5C`, so no parser can mistake them for the closing quote. In SANs, control and
    /// non-ASCII bytes and `\` are written `%XX` (`push_san`): a SAN never holds a
    /// backslash a parser could read as an escape.
    pub fn xfcc(&self) -> String {
        let mut out = String::with_capacity(160 + self.subject.len());
        out.push_str("Hash=");
        out.push_str(&self.fingerprint);
        out.push_str(";Subject=\"");
        out.push_str(&self.subject.replace("\\\\", "\\5C").replace("\\\"", "\\22"));
        out.push('"');
        if self.uri_sans.is_empty() {
            out.push_str(";URI=");
        }
        for uri in &self.uri_sans {
            out.push_str(";URI=");
            push_xfcc_value(&mut out, uri);
        }
        for dns in &self.dns_sans {
            out.push_str(";DNS=");
            push_xfcc_value(&mut out, dns);
        }
        out
    }

    /// `x-client-uri-san`: every URI SAN, comma-separated, each written by `push_san` with
    /// `,` as `%2C` too, so splitting the value on `,` gives the URIs back. `None` without a
    /// URI SAN.
    pub fn uri_san_header(&self) -> Option<String> {
        if self.uri_sans.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, uri) in self.uri_sans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_san(&mut out, uri, &[',']);
        }
        Some(out)
    }
}

fn push_xfcc_value(out: &mut String, value: &str) {
    if !value.contains([',', ';', '=', '"']) {
        return push_san(out, value, &[]);
    }
    out.push('"');
    for (i, part) in value.split('"').enumerate() {
        if i > 0 {
            out.push_str("\\\"");
        }
        push_san(out, part, &[]);
    }
    out.push('"');
}

/// A SAN as written into an identity header: control and non-ASCII bytes, `\` and every
/// character of `also` as `%XX` (of its UTF-8 bytes), so the value is visible ASCII. A URI
/// means the same percent-encoded (RFC 3987 §3.1); a DNS name cannot hold these at all.
fn push_san(out: &mut String, value: &str, also: &[char]) {
    for c in value.chars() {
        if c.is_ascii_control() || !c.is_ascii() || c == '\\' || also.contains(&c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Lowercase hex of a DER INTEGER's content bytes, without leading zeros (the form of
/// [`Identity::serial`], and of the serials a truststore finds in its CRLs).
pub fn serial_hex(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn common_name(name: &Name) -> Option<String> {
    // The most specific CN, as OpenSSL's X509_NAME_get_index_by_NID(-1) users usually want
    // the last one; certificates rarely carry more than one.
    name.iter()
        .filter(|atv| atv.oid == OID_CN)
        .filter_map(attribute_text)
        .last()
}

/// RFC 4514 string of `name`, matching OpenSSL's `XN_FLAG_RFC2253` output.
pub fn format_name(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_atv(&mut out, atv);
        }
    }
    out
}

fn push_atv(out: &mut String, atv: &AttributeTypeAndValue) {
    let key = short_name(&atv.oid);
    match (key, attribute_text(atv)) {
        (Some(key), Some(text)) => {
            out.push_str(key);
            out.push('=');
            escape_value(out, &text);
        }
        (key, _) => {
            // Unknown type or string kind: OID (or name) then `#` and the hex DER, as OpenSSL.
            match key {
                Some(key) => out.push_str(key),
                None => out.push_str(&atv.oid.to_string()),
            }
            out.push_str("=#");
            if let Ok(der) = atv.value.to_der() {
                out.push_str(&hex::encode_upper(der));
            }
        }
    }
}

/// RFC 4514 escaping, with every non-printable or non-ASCII byte as `\XX`.
fn escape_value(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

/// The attribute's value as text, for the directory string kinds.
fn attribute_text(atv: &AttributeTypeAndValue) -> Option<String> {
    let v = &atv.value;
    match v.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(v)
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::PrintableString => PrintableStringRef::try_from(v)
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::Ia5String => Ia5StringRef::try_from(v)
            .ok()
            .map(|s| s.as_str().to_owned()),
        // T.61: treated as Latin-1, like OpenSSL (the der crate's TeletexStringRef takes
        // ASCII only, so the raw bytes are read).
        Tag::TeletexString => Some(v.value().iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => BmpString::from_der(&v.to_der().ok()?)
            .ok()
            .map(|s| s.to_string()),
        _ => None,
    }
}

/// OpenSSL's short names for the attribute types seen in practice.
fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    SHORT_NAMES.iter().find(|(o, _)| o == oid).map(|(_, n)| *n)
}

const fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(s)
}

const OID_CN: ObjectIdentifier = oid("2.5.4.3");

const SHORT_NAMES: [(ObjectIdentifier, &str); 19] = [
    (OID_CN, "CN"),
    (oid("2.5.4.6"), "C"),
    (oid("2.5.4.7"), "L"),
    (oid("2.5.4.8"), "ST"),
    (oid("2.5.4.10"), "O"),
    (oid("2.5.4.11"), "OU"),
    (oid("2.5.4.9"), "street"),
    (oid("0.9.2342.19200300.100.1.25"), "DC"),
    (oid("0.9.2342.19200300.100.1.1"), "UID"),
    (oid("2.5.4.4"), "SN"),
    (oid("2.5.4.42"), "GN"),
    (oid("2.5.4.12"), "title"),
    (oid("2.5.4.5"), "serialNumber"),
    (oid("2.5.4.17"), "postalCode"),
    (oid("2.5.4.15"), "businessCategory"),
    (oid("2.5.4.43"), "initials"),
    (oid("2.5.4.46"), "dnQualifier"),
    (oid("2.5.4.44"), "generationQualifier"),
    (oid("1.2.840.113549.1.9.1"), "emailAddress"),
];

#[cfg(test)]
mod tests {
    use rcgen::{DnType, DnValue, SanType};

    use super::*;
    use crate::tls::test_pki::*;

    #[test]
    fn extracts_subject_sans_serial_fingerprint_and_builds_xfcc() {
        let root = root("Id Root");
        let mut p = leaf_params("ignored", 0x00ab_cdef);
        p.distinguished_name = rcgen::DistinguishedName::new();
        // Conventional order, least specific first in DER: printed most specific first.
        p.distinguished_name.push(DnType::CountryName, "DE");
        p.distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "pay\"ments");
        p.distinguished_name
            .push(DnType::CommonName, "billing-client");
        p.subject_alt_names = vec![
            SanType::URI("spiffe://acme/billing".try_into().unwrap()),
            SanType::URI("urn:x;y=z".try_into().unwrap()),
            SanType::DnsName("billing.acme.internal".try_into().unwrap()),
            SanType::IpAddress("10.1.2.3".parse().unwrap()),
        ];
        let leaf = sign_leaf(&p, &root);
        let id = Identity::from_leaf(&leaf.der).unwrap();
        assert_eq!(
            id.subject,
            r#"CN=billing-client,OU=pay\"ments,O=Acme\, Inc.,C=DE"#
        );
        assert_eq!(id.common_name.as_deref(), Some("billing-client"));
        assert_eq!(id.issuer, "O=Portcullis Test,CN=Id Root");
        assert_eq!(id.issuer_cn.as_deref(), Some("Id Root"));
        assert_eq!(id.serial, "abcdef");
        assert_eq!(id.uri_sans, vec!["spiffe://acme/billing", "urn:x;y=z"]);
        assert_eq!(id.dns_sans, vec!["billing.acme.internal"]);
        assert_eq!(id.ip_sans, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            id.fingerprint,
            hex::encode(Sha256::digest(leaf.der.as_ref()))
        );
        assert_eq!(
            id.xfcc(),
            format!(
                "Hash={};Subject=\"CN=billing-client,OU=pay\\22ments,O=Acme\\, Inc.,C=DE\";\
                 URI=spiffe://acme/billing;URI=\"urn:x;y=z\";DNS=billing.acme.internal",
                id.fingerprint
            )
        );
        assert!(http::HeaderValue::from_str(&id.xfcc()).is_ok());
    }

    #[test]
    fn non_ascii_subject_is_escaped_and_header_safe() {
        let root = root("Utf Root");
        let mut p = leaf_params("x", 1);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(
            DnType::OrganizationName,
            DnValue::Utf8String("Müller".into()),
        );
        p.distinguished_name.push(DnType::CommonName, " #lead\u{7}");
        p.subject_alt_names = vec![];
        let leaf = sign_leaf(&p, &root);
        let id = Identity::from_leaf(&leaf.der).unwrap();
        assert_eq!(id.subject, r"CN=\ #lead\07,O=M\C3\BCller");
        assert!(id.subject.is_ascii());
        assert!(http::HeaderValue::from_str(&id.subject).is_ok());
        // No URI SAN: Envoy still writes an empty URI pair.
        assert!(
            id.xfcc().ends_with(r#"O=M\C3\BCller";URI="#),
            "{}",
            id.xfcc()
        );
    }

    /// Found by the property tests (tests/properties/identity.rs): a SAN ending in `\` was
    /// written `"...\\"`, whose last `\"` Envoy's grammar reads as an escaped quote, and a URI
    /// SAN holding `,` read as two URIs in `x-client-uri-san`.
    #[test]
    fn san_separators_and_backslashes_are_percent_encoded() {
        let id = Identity {
            subject: "CN=x".into(),
            common_name: None,
            issuer: String::new(),
            issuer_cn: None,
            serial: "1".into(),
            uri_sans: vec!["urn:a\\".into(), "spiffe://t/a,spiffe://t/admin".into()],
            dns_sans: vec!["q\"\\;".into()],
            ip_sans: vec![],
            fingerprint: "ab".into(),
            not_after: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            id.xfcc(),
            r#"Hash=ab;Subject="CN=x";URI=urn:a%5C;URI="spiffe://t/a,spiffe://t/admin";DNS="q\"%5C;""#
        );
        assert_eq!(
            id.uri_san_header().as_deref(),
            Some("urn:a%5C,spiffe://t/a%2Cspiffe://t/admin")
        );
    }

    /// Also found by them: a T.61 value with a byte above 0x7F was printed as `#` and hex
    /// (the der crate's TeletexStringRef takes ASCII only) instead of Latin-1 text.
    #[test]
    fn teletex_is_read_as_latin1() {
        // SEQUENCE { SET { SEQUENCE { 2.5.4.3, T61String "M\xFCller" } } }
        let der = [
            0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x14, 0x06, b'M',
            0xfc, b'l', b'l', b'e', b'r',
        ];
        let name = Name::from_der(&der).unwrap();
        assert_eq!(format_name(&name), r"CN=M\C3\BCller");
    }

    #[test]
    fn serial_formatting() {
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x0f, 0xff]), "fff");
    }

    #[test]
    fn garbage_is_an_error() {
        let der = CertificateDer::from(vec![0x30, 0x00]);
        assert!(matches!(
            Identity::from_leaf(&der),
            Err(IdentityError::Parse(_))
        ));
    }
}
