//! CreateSession's signature, made the way the Go `aws_signing_helper` makes it: SigV4's
//! canonical request over the signed headers, a string to sign under the
//! `rolesanywhere` scope, and the leaf's own key signing it with SHA-256 (RSA PKCS#1
//! v1.5, or ECDSA P-256 as a DER `Ecdsa-Sig-Value`), hex encoded.
//!
//! This is the client's own code on purpose: the gateway's verifier
//! (`auth::sigv4::canonical`) is cross-checked against it only through the wire, so one
//! shared mistake cannot pass both sides.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use time::OffsetDateTime;

/// The service of the credential scope.
const SERVICE: &str = "rolesanywhere";

/// The leaf's private key, as the one kind of signer it is.
pub enum SigningKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SigningKey::Ecdsa(_) => "SigningKey(ECDSA P-256)",
            SigningKey::Rsa(_) => "SigningKey(RSA)",
        })
    }
}

impl SigningKey {
    /// A PEM private key: PKCS#8, SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".to_owned(),
            e => crate::material::pem_error(&e),
        })?;
        let ec = |der: &[u8]| {
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                .map(SigningKey::Ecdsa)
        };
        let unsupported = "unsupported key: use an ECDSA P-256 or an RSA key (CreateSession is signed with SHA-256)";
        match der {
            PrivateKeyDer::Sec1(k) => ec(k.secret_sec1_der()).map_err(|_| unsupported.to_owned()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map(SigningKey::Rsa)
                .map_err(|e| format!("RSA key: {e}")),
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                ec(der)
                    .or_else(|_| RsaKeyPair::from_pkcs8(der).map(SigningKey::Rsa))
                    .map_err(|_| unsupported.to_owned())
            }
            _ => Err(unsupported.to_owned()),
        }
    }

    /// The algorithm label of the Authorization header (the Go client's, by key type).
    pub fn algorithm(&self) -> &'static str {
        match self {
            SigningKey::Ecdsa(_) => "AWS4-X509-ECDSA-SHA256",
            SigningKey::Rsa(_) => "AWS4-X509-RSA-SHA256",
        }
    }

    /// The public key as a certificate's SubjectPublicKeyInfo bit string holds it (the
    /// uncompressed point, or the DER `RSAPublicKey`): to check the key fits the leaf.
    pub fn public_key(&self) -> &[u8] {
        match self {
            SigningKey::Ecdsa(k) => k.public_key().as_ref(),
            SigningKey::Rsa(k) => k.public_key().as_ref(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Ecdsa(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            SigningKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(sig)
            }
        }
    }
}

/// The certificates the request carries: the leaf, and the chain sent with it.
#[derive(Debug, Clone)]
pub struct CertHeaders {
    /// `X-Amz-X509`: standard base64 of the leaf DER.
    pub leaf: String,
    /// `X-Amz-X509-Chain`: the same per certificate, joined with `,`; `None` without a chain.
    pub chain: Option<String>,
    /// The leaf's serial number in decimal (the Credential's first part).
    pub serial: String,
}

impl CertHeaders {
    pub fn new(leaf: &[u8], chain: &[Vec<u8>], serial_der: &[u8]) -> CertHeaders {
        let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
        CertHeaders {
            leaf: b64(leaf),
            chain: (!chain.is_empty())
                .then(|| chain.iter().map(|c| b64(c)).collect::<Vec<_>>().join(",")),
            serial: decimal(serial_der),
        }
    }
}

/// One CreateSession request before signing.
pub struct Unsigned<'a> {
    /// The `Host` header: the URL's authority, port included when the URL has one.
    pub host: &'a str,
    /// The path as sent (already percent-encoded).
    pub path: &'a str,
    /// The query as sent: sorted `name=value` pairs, RFC 3986 encoded (see [`query`]).
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// The headers to add to the request: `X-Amz-Date`, `X-Amz-X509`, the chain when there is
/// one, and `Authorization`.
pub fn sign(
    req: &Unsigned,
    certs: &CertHeaders,
    key: &SigningKey,
    region: &str,
    now: OffsetDateTime,
) -> Result<Vec<(&'static str, String)>, String> {
    let amz_date = amz_date(now);
    let day = &amz_date[..8];
    let mut headers: Vec<(&'static str, String)> = vec![
        ("content-type", req.content_type.to_owned()),
        ("host", req.host.to_owned()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-x509", certs.leaf.clone()),
    ];
    if let Some(chain) = &certs.chain {
        headers.push(("x-amz-x509-chain", chain.clone()));
    }
    // Already in lowercase byte order: content-type < host < x-amz-date < x-amz-x509 < x-amz-x509-chain.
    let signed_headers = headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(n, v)| format!("{n}:{}\n", v.trim()))
        .collect();
    let canonical = format!(
        "POST\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.path,
        req.query,
        hex::encode(digest(&SHA256, req.body))
    );
    let scope = format!("{day}/{region}/{SERVICE}/aws4_request");
    let string_to_sign = format!(
        "{}\n{amz_date}\n{scope}\n{}",
        key.algorithm(),
        hex::encode(digest(&SHA256, canonical.as_bytes()))
    );
    let signature = hex::encode(key.sign(string_to_sign.as_bytes())?);
    let authorization = format!(
        "{} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        key.algorithm(),
        certs.serial
    );
    // `content-type` and `host` are set by the caller with the request itself.
    headers.drain(..2);
    headers.push(("authorization", authorization));
    Ok(headers)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date(t: OffsetDateTime) -> String {
    super::output::aws_time(t).replace(['-', ':'], "")
}

/// A query string of `pairs`, sorted by name, names and values RFC 3986 encoded (only
/// `A–Z a–z 0–9 - _ . ~` left as they are): the form SigV4 canonicalises to, so the query
/// sent and the one signed are the same string.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (uri_encode(n), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A DER INTEGER's content octets (big-endian two's complement) in decimal, as Go's
/// `big.Int.String()` and Python's `"%d"` print a serial number.
pub fn decimal(der: &[u8]) -> String {
    let negative = der.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = der.to_vec();
    if negative {
        // Two's complement: invert, add one.
        for b in magnitude.iter_mut() {
            *b = !*b;
        }
        for b in magnitude.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut rem = 0u16;
        for b in magnitude.iter_mut() {
            let cur = (rem << 8) | u16::from(*b);
            *b = (cur / 10) as u8; // cur < 2560, so the quotient fits a byte
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if negative {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_print_in_decimal_like_go_and_python() {
        assert_eq!(decimal(&[0x00]), "0");
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(decimal(&[0x00, 0xff]), "255");
        assert_eq!(decimal(&[0xff]), "-1");
        assert_eq!(decimal(&[0xff, 0x00]), "-256");
        // 2^64 + 1
        assert_eq!(
            decimal(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0x01]),
            "18446744073709551617"
        );
    }

    #[test]
    fn query_is_sorted_and_strictly_encoded() {
        assert_eq!(
            query(&[("roleArn", "arn:aws:iam::1:role/r"), ("a b", "~x+y")]),
            "a%20b=~x%2By&roleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr"
        );
    }

    #[test]
    fn amz_date_is_utc_basic_format() {
        let t = OffsetDateTime::from_unix_timestamp(1_796_103_367).unwrap();
        assert_eq!(amz_date(t), "20261201T053607Z");
    }
}
