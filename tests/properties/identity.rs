//! The identity header encoders (`format_name`, `Identity::xfcc`,
//! `Identity::uri_san_header`, `ForwardedIdentity`): whatever a certificate's subject or
//! SANs hold — `,;="\`, control bytes, non-ASCII — every header value is visible ASCII and
//! keeps its structure. The values are read back with parsers written here from the
//! grammars (Envoy's XFCC: `,` between elements, `;` between pairs, a value holding `,;="`
//! quoted with `"` written `\"`; RFC 4514 for the subject; `%XX` for SANs) and compared with
//! what was put into the certificate.
//!
//! The direct test builds the subject's DER and the SAN strings itself (10^5 cases); the
//! certificate test gets them through a real rcgen certificate and `Identity::from_leaf`
//! (10^4 cases: signing is the slow part).

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use portcullis::identity::{format_name, ForwardedIdentity, Identity};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};
use x509_cert::name::Name;

use crate::support::{check, Entropy, Source, CASES};

/// Attribute types used: OpenSSL's short name, or `None` for a type printed as its OID.
const TYPES: [(&str, Option<&str>); 7] = [
    ("2.5.4.3", Some("CN")),
    ("2.5.4.10", Some("O")),
    ("2.5.4.11", Some("OU")),
    ("2.5.4.6", Some("C")),
    ("0.9.2342.19200300.100.1.25", Some("DC")),
    ("1.2.840.113549.1.9.1", Some("emailAddress")),
    ("1.3.6.1.4.1.55555.7", None),
];

/// How an attribute value is encoded in the certificate.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Utf8,
    Printable,
    Ia5,
    /// T.61, read as Latin-1.
    Teletex,
    Bmp,
    /// Not a directory string: printed as `#` and the hex DER.
    Octets,
}

/// An attribute as generated: its type (index into [`TYPES`]), kind and text.
#[derive(Debug, Clone)]
struct Atv {
    ty: usize,
    kind: Kind,
    text: String,
}

/// An attribute value as a DN string means it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(Vec<u8>),
    /// `#` form: the value's whole DER.
    Der(Vec<u8>),
}

type Rdns = Vec<Vec<(String, Value)>>;

const PRINTABLE: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";

impl Atv {
    /// The value's tag, content bytes, and the text a DN string should carry (if any).
    fn encode(&self) -> (u8, Vec<u8>, Option<String>) {
        let chars = self.text.chars();
        let (tag, text): (u8, String) = match self.kind {
            Kind::Utf8 => (0x0c, self.text.clone()),
            Kind::Printable => (
                0x13,
                chars
                    .map(|c| char::from(PRINTABLE[c as usize % PRINTABLE.len()]))
                    .collect(),
            ),
            Kind::Ia5 => (0x16, chars.map(|c| char::from(c as u8 & 0x7f)).collect()),
            Kind::Teletex => (0x14, chars.map(|c| char::from(c as u32 as u8)).collect()),
            Kind::Bmp => (
                0x1e,
                chars
                    .map(|c| if (c as u32) < 0xffff { c } else { '\u{fffd}' })
                    .collect(),
            ),
            Kind::Octets => (0x04, self.text.clone()),
        };
        let content = match self.kind {
            Kind::Teletex => text.chars().map(|c| c as u32 as u8).collect(),
            Kind::Bmp => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            _ => text.as_bytes().to_vec(),
        };
        let printable = TYPES[self.ty].1.is_some() && !matches!(self.kind, Kind::Octets);
        (tag, content, printable.then_some(text))
    }

    /// The attribute's DER, and what a DN string must say of it.
    fn der_and_meaning(&self) -> (Vec<u8>, (String, Value)) {
        let (tag, content, text) = self.encode();
        let value = tlv(tag, &content);
        let oid = ObjectIdentifier::new_unwrap(TYPES[self.ty].0);
        let oid_der = oid.to_der().unwrap();
        let name = TYPES[self.ty].1.map_or(oid.to_string(), str::to_owned);
        let meaning = match text {
            Some(t) => Value::Text(t.into_bytes()),
            None => Value::Der(value.clone()),
        };
        (tlv(0x30, &[oid_der, value].concat()), (name, meaning))
    }
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A Name's DER (RDNs in the order given, each SET in DER order) and the RDNs a DN
/// string must show: most specific (last) first.
fn name_der(rdns: &[Vec<Atv>]) -> (Vec<u8>, Rdns) {
    let mut body = Vec::new();
    let mut want = Vec::new();
    for rdn in rdns {
        let mut atvs: Vec<(Vec<u8>, (String, Value))> =
            rdn.iter().map(Atv::der_and_meaning).collect();
        atvs.sort_by(|a, b| a.0.cmp(&b.0));
        atvs.dedup_by(|a, b| a.0 == b.0);
        body.extend(tlv(
            0x31,
            &atvs.iter().flat_map(|a| a.0.clone()).collect::<Vec<_>>(),
        ));
        want.push(atvs.into_iter().map(|a| a.1).collect());
    }
    want.reverse();
    (tlv(0x30, &body), want)
}

const KINDS: [Kind; 9] = [
    Kind::Utf8,
    Kind::Utf8,
    Kind::Utf8,
    Kind::Utf8,
    Kind::Printable,
    Kind::Ia5,
    Kind::Teletex,
    Kind::Bmp,
    Kind::Octets,
];

impl Atv {
    fn read(src: &mut Source, kinds: &[Kind]) -> Atv {
        Atv {
            ty: src.below(TYPES.len()),
            kind: src.pick(kinds),
            text: src.hostile_string(12),
        }
    }
}

/// Up to `max` SANs of up to 16 characters.
fn read_sans(src: &mut Source, max: usize) -> Vec<String> {
    (0..src.below(max + 1))
        .map(|_| src.hostile_string(16))
        .collect()
}

#[derive(Debug)]
struct Input {
    rdns: Vec<Vec<Atv>>,
    uris: Vec<String>,
    dns: Vec<String>,
    fingerprint: [u8; 32],
}

impl Input {
    /// 0 to 4 RDNs of 1 to 3 attributes each, 0 to 3 URI and DNS SANs.
    fn read(bytes: &[u8]) -> Input {
        let mut src = Source::new(bytes);
        let rdns = (0..src.below(5))
            .map(|_| {
                (0..=src.below(3))
                    .map(|_| Atv::read(&mut src, &KINDS))
                    .collect()
            })
            .collect();
        let uris = read_sans(&mut src, 3);
        let dns = read_sans(&mut src, 3);
        let mut fingerprint = [0; 32];
        fingerprint.fill_with(|| src.byte());
        Input {
            rdns,
            uris,
            dns,
            fingerprint,
        }
    }
}

#[test]
fn identity_headers_keep_their_structure() {
    check(
        "identity_headers_keep_their_structure",
        CASES,
        Entropy(600),
        |bytes| {
            let input = Input::read(&bytes);
            let (der, want) = name_der(&input.rdns);
            let name = Name::from_der(&der).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let id = Identity {
                subject: format_name(&name),
                common_name: None,
                issuer: String::new(),
                issuer_cn: None,
                serial: "1".into(),
                uri_sans: input.uris.clone(),
                dns_sans: input.dns.clone(),
                ip_sans: vec![],
                fingerprint: hex::encode(input.fingerprint),
                not_after: std::time::UNIX_EPOCH,
            };
            check_headers(&id, &want).map_err(|e| TestCaseError::fail(format!("{e}\n{input:#?}")))
        },
    );
}

/// Every identity header of `id` is visible ASCII and reads back as `id` says, with the
/// subject meaning `want`.
fn check_headers(id: &Identity, want: &Rdns) -> Result<(), TestCaseError> {
    let f = ForwardedIdentity::new(id.clone())
        .map_err(|e| TestCaseError::fail(format!("not a header value: {e}")))?;
    for v in [
        Some(&f.xfcc),
        Some(&f.subject),
        f.uri_san.as_ref(),
        Some(&f.fingerprint),
    ]
    .into_iter()
    .flatten()
    {
        prop_assert!(
            v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)),
            "not visible ASCII: {v:?}"
        );
    }
    prop_assert_eq!(f.subject.as_bytes(), id.subject.as_bytes());
    prop_assert_eq!(
        &parse_dn(&id.subject)?,
        want,
        "x-client-subject {}",
        id.subject
    );

    // x-client-uri-san: one URI per comma.
    match &f.uri_san {
        None => prop_assert!(id.uri_sans.is_empty()),
        Some(v) => {
            let parts: Vec<&str> = v.to_str().unwrap().split(',').collect();
            prop_assert_eq!(parts.len(), id.uri_sans.len(), "x-client-uri-san {:?}", v);
            for (got, sent) in parts.iter().zip(&id.uri_sans) {
                check_san(got, sent)?;
            }
        }
    }

    // x-forwarded-client-cert: exactly one element, its pairs in order.
    let xfcc = f.xfcc.to_str().unwrap();
    let elements = parse_xfcc(xfcc).map_err(|e| TestCaseError::fail(format!("{e}: {xfcc}")))?;
    prop_assert_eq!(elements.len(), 1, "{}", xfcc);
    let pairs = &elements[0];
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let uris = id.uri_sans.len().max(1);
    let mut want_keys = vec!["Hash", "Subject"];
    want_keys.extend(std::iter::repeat_n("URI", uris));
    want_keys.extend(std::iter::repeat_n("DNS", id.dns_sans.len()));
    prop_assert_eq!(keys, want_keys, "{}", xfcc);
    prop_assert_eq!(&pairs[0].1, &id.fingerprint);
    prop_assert_eq!(&parse_dn(&pairs[1].1)?, want, "Subject in {}", xfcc);
    let mut values = pairs[2..].iter().map(|(_, v)| v);
    if id.uri_sans.is_empty() {
        prop_assert_eq!(values.next().map(String::as_str), Some(""));
    }
    for (got, sent) in values.zip(id.uri_sans.iter().chain(&id.dns_sans)) {
        check_san(got, sent)?;
    }
    Ok(())
}

/// A SAN as read from a header: percent-decoded it is the SAN percent-decoded (the
/// encoder writes control and non-ASCII bytes, `\` and `,` as `%XX`), and a SAN without
/// any of those (nor `%`) comes back unchanged.
fn check_san(got: &str, sent: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        percent_decode(got),
        percent_decode(sent),
        "{:?} for {:?}",
        got,
        sent
    );
    let plain = sent
        .chars()
        .all(|c| (' '..'\u{7f}').contains(&c) && !matches!(c, '\\' | ',' | '%'));
    if plain {
        prop_assert_eq!(got, sent);
    }
    Ok(())
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b.get(i..i + 3) {
            Some([b'%', h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Envoy's XFCC grammar: elements split on `,`, pairs on `;`, `key=value`, a value either
/// bare (no `,;="`) or quoted, where `\"` is a quote and every other character is itself.
fn parse_xfcc(s: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c @ (',' | ';' | '"')) => return Err(format!("{c:?} in a key")),
                Some(c) => key.push(c),
                None => return Err(format!("key {key:?} without a value")),
            }
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
            if !matches!(chars.peek(), None | Some(',' | ';')) {
                return Err("text after a closing quote".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' | ';' => break,
                    '=' | '"' => return Err(format!("{c:?} in a bare value")),
                    _ => value.push(c),
                }
                chars.next();
            }
        }
        pairs.push((key, value));
        match chars.next() {
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut pairs)),
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
}

/// RFC 4514: RDNs split on `,`, attributes on `+`, `type=value`; in a value `\` escapes a
/// special character or starts a hex pair, and `"+,;<>\` never stand unescaped; a value
/// starting with `#` is the hex of its DER.
fn parse_dn(s: &str) -> Result<Rdns, TestCaseError> {
    let fail = |m: &str| TestCaseError::fail(format!("{m} in DN {s:?}"));
    let b = s.as_bytes();
    let mut rdns: Rdns = Vec::new();
    if b.is_empty() {
        return Ok(rdns);
    }
    let mut rdn = Vec::new();
    let mut i = 0;
    loop {
        let eq = b[i..]
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| fail("no ="))?;
        let ty = &s[i..i + eq];
        if ty.is_empty() || !ty.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.') {
            return Err(fail("bad attribute type"));
        }
        i += eq + 1;
        let value = if b.get(i) == Some(&b'#') {
            i += 1;
            let end = b[i..]
                .iter()
                .position(|&c| c == b',' || c == b'+')
                .map_or(b.len(), |p| i + p);
            let v = hex::decode(&s[i..end]).map_err(|_| fail("bad hex value"))?;
            i = end;
            Value::Der(v)
        } else {
            let mut v = Vec::new();
            while i < b.len() && b[i] != b',' && b[i] != b'+' {
                match b[i] {
                    b'\\' => {
                        let next = *b.get(i + 1).ok_or_else(|| fail("trailing \\"))?;
                        if b"\"+,;<>\\# =".contains(&next) {
                            v.push(next);
                            i += 2;
                        } else {
                            let pair = s.get(i + 1..i + 3).ok_or_else(|| fail("short escape"))?;
                            if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
                                return Err(fail("bad escape"));
                            }
                            v.push(u8::from_str_radix(pair, 16).map_err(|_| fail("hex"))?);
                            i += 3;
                        }
                    }
                    b'"' | b';' | b'<' | b'>' => return Err(fail("unescaped special")),
                    c => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            Value::Text(v)
        };
        rdn.push((ty.to_owned(), value));
        match b.get(i) {
            None => {
                rdns.push(rdn);
                return Ok(rdns);
            }
            Some(b',') => rdns.push(std::mem::take(&mut rdn)),
            Some(_) => {} // '+'
        }
        i += 1;
    }
}

/// A subject as rcgen can write it, and SANs as IA5 strings hold them (ASCII).
#[derive(Debug)]
struct CertInput {
    subject: Vec<Atv>,
    uris: Vec<String>,
    dns: Vec<String>,
}

impl CertInput {
    fn read(bytes: &[u8]) -> CertInput {
        let mut src = Source::new(bytes);
        let kinds = [
            Kind::Utf8,
            Kind::Utf8,
            Kind::Utf8,
            Kind::Printable,
            Kind::Bmp,
        ];
        let subject = (0..src.below(5))
            .map(|_| Atv::read(&mut src, &kinds))
            .collect();
        let ascii = |sans: Vec<String>| -> Vec<String> {
            sans.into_iter()
                .map(|s| {
                    s.chars()
                        .map(|c| if c.is_ascii() { c } else { '~' })
                        .collect()
                })
                .collect()
        };
        let uris = ascii(read_sans(&mut src, 3));
        let dns = ascii(read_sans(&mut src, 2));
        CertInput { subject, uris, dns }
    }
}

fn dn_type(ty: usize) -> DnType {
    match TYPES[ty].0 {
        "2.5.4.3" => DnType::CommonName,
        "2.5.4.10" => DnType::OrganizationName,
        "2.5.4.11" => DnType::OrganizationalUnitName,
        "2.5.4.6" => DnType::CountryName,
        oid => DnType::CustomDnType(oid.split('.').map(|n| n.parse().unwrap()).collect()),
    }
}

/// `atv` as rcgen writes it, and the same attribute as UTF8String text (which a DN string
/// prints alike, and which is how rcgen writes a type it has no string kind for). A
/// PrintableString with `?` is written as UTF8String too: yasna, rcgen's DER writer,
/// refuses `?` although X.680 allows it.
fn for_rcgen(atv: &Atv) -> (DnValue, Atv) {
    let text = atv.encode().2;
    let value = match (&text, atv.kind) {
        (Some(t), Kind::Printable) if !t.contains('?') => {
            DnValue::PrintableString(t.clone().try_into().unwrap())
        }
        (Some(t), Kind::Bmp) => DnValue::BmpString(t.as_str().try_into().unwrap()),
        (Some(t), _) => DnValue::Utf8String(t.clone()),
        (None, _) => DnValue::Utf8String(atv.text.clone()),
    };
    let utf8 = Atv {
        ty: atv.ty,
        kind: Kind::Utf8,
        text: text.unwrap_or_else(|| atv.text.clone()),
    };
    (value, utf8)
}

#[test]
fn identity_headers_from_real_certificates() {
    let issuer_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca, issuer_key);
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let name = "identity_headers_from_real_certificates";
    check(name, 10_000, Entropy(400), |bytes| {
        let input = CertInput::read(&bytes);
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        // rcgen keeps one value per type, each its own RDN, in order of first insertion.
        let mut rdns: Vec<Vec<Atv>> = Vec::new();
        for atv in &input.subject {
            let (value, want) = for_rcgen(atv);
            p.distinguished_name.push(dn_type(atv.ty), value);
            match rdns.iter_mut().find(|rdn| rdn[0].ty == atv.ty) {
                Some(rdn) => rdn[0] = want,
                None => rdns.push(vec![want]),
            }
        }
        let (_, want) = name_der(&rdns);
        let uris = input
            .uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().unwrap()));
        let dns = input
            .dns
            .iter()
            .map(|d| SanType::DnsName(d.as_str().try_into().unwrap()));
        p.subject_alt_names = uris.chain(dns).collect();
        let cert = p.signed_by(&leaf_key, &issuer).unwrap();
        let id = Identity::from_leaf(cert.der()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&id.uri_sans, &input.uris);
        prop_assert_eq!(&id.dns_sans, &input.dns);
        check_headers(&id, &want)
    });
}
