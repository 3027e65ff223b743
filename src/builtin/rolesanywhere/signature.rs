//! The CreateSession signature: SigV4's canonical request (built by
//! [`crate::auth::sigv4::canonical`], the verifier's own code) signed with the key of the
//! leaf in `X-Amz-X509` instead of an HMAC key.
//!
//! String to sign: `<label>\n<X-Amz-Date>\n<date>/<region>/rolesanywhere/aws4_request\n
//! hex(sha256(canonical request))`. Both AWS clients sign it with SHA-256 (RSA PKCS#1 v1.5,
//! or ECDSA with a DER `Ecdsa-Sig-Value`), whatever hash the label names: the Python client
//! labels by the hash its CA used. So SHA-256 is verified for every label.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::ObjectIdentifier;
use der::Decode;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::refusal::Refusal;
use super::request::{CreateSession, KeyType};
use crate::auth::sigv4::canonical::{self, RequestParts};

/// The service name of the credential scope.
pub const SERVICE: &str = "rolesanywhere";

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// What the request is checked against.
pub struct Expect<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub region: &'a str,
    pub max_skew_secs: i64,
    pub now: i64,
}

/// Check the date, the scope, the signed headers, the serial and the signature. `host` is
/// the request's host as the check phase read it ([`crate::builtin::Call::host`]): the signed
/// `host` is compared with it as the `sigv4` method does ([`canonical::signed_values`]).
pub fn verify(
    req: &CreateSession<'_>,
    host: Option<&HeaderValue>,
    headers: &HeaderMap,
    body: &[u8],
    expect: &Expect<'_>,
) -> Result<(), Refusal> {
    let auth = &req.auth;
    if auth.date != &req.amz_date[..8] {
        return Err(Refusal::signature("bad_date"));
    }
    if (expect.now - req.time).abs() > expect.max_skew_secs {
        return Err(Refusal::signature("stale_date"));
    }
    if auth.region != expect.region || auth.service != SERVICE {
        return Err(Refusal::signature("bad_scope"));
    }
    let mut required = vec!["host", "x-amz-date", "x-amz-x509"];
    if headers.contains_key("x-amz-x509-chain") {
        required.push("x-amz-x509-chain");
    }
    if required.iter().any(|h| !auth.signed_headers.contains(h)) {
        return Err(Refusal::signature("header_not_signed"));
    }
    let signed = canonical::signed_values(&auth.signed_headers, host, headers)
        .ok_or_else(|| Refusal::signature("signed_header_missing"))?;

    let cert =
        Certificate::from_der(req.leaf.as_ref()).map_err(|_| Refusal::signature("bad_x509"))?;
    let tbs = cert.tbs_certificate();
    if !serial_matches(auth.serial, tbs.serial_number().as_bytes()) {
        return Err(Refusal::signature("serial_mismatch"));
    }

    let payload = canonical::hex32(&Sha256::digest(body).into());
    let payload = std::str::from_utf8(&payload).unwrap_or_default();
    let creq = canonical::canonical_request(&RequestParts {
        method: expect.method,
        path: expect.path,
        query: expect.query,
        presigned: false,
        omit_token: false,
        headers: &signed,
        payload_hash: payload,
    });
    let sts = canonical::string_to_sign_as(auth.algorithm, req.amz_date, auth.scope, &creq);

    let spki = tbs.subject_public_key_info();
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Refusal::signature("unsupported_key"))?;
    let (kind, alg): (KeyType, &'static dyn VerificationAlgorithm) =
        if spki.algorithm.oid == RSA_ENCRYPTION {
            (KeyType::Rsa, &sig::RSA_PKCS1_2048_8192_SHA256)
        } else if spki.algorithm.oid == EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let alg: &'static dyn VerificationAlgorithm = match curve {
                Some(c) if c == P256 => &sig::ECDSA_P256_SHA256_ASN1,
                Some(c) if c == P384 => &sig::ECDSA_P384_SHA256_ASN1,
                Some(c) if c == P521 => &sig::ECDSA_P521_SHA256_ASN1,
                _ => return Err(Refusal::signature("unsupported_key")),
            };
            (KeyType::Ecdsa, alg)
        } else {
            return Err(Refusal::signature("unsupported_key"));
        };
    if kind != auth.key_type {
        return Err(Refusal::signature("algorithm_key_mismatch"));
    }
    UnparsedPublicKey::new(alg, key)
        .verify(sts.as_bytes(), &auth.signature)
        .map_err(|_| Refusal::signature("signature_mismatch"))
}

/// Whether a decimal serial (as in `Credential=`) is the certificate's big-endian serial.
pub fn serial_matches(decimal: &str, serial: &[u8]) -> bool {
    // 20 octets (RFC 5280's maximum) have at most 49 decimal digits.
    if decimal.is_empty() || decimal.len() > 60 || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut out: Vec<u8> = Vec::with_capacity(24);
    for d in decimal.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let trim = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|&x| x == 0).collect() };
    trim(&out) == trim(serial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials_compare_with_der_serials() {
        assert!(serial_matches("1", &[1]));
        assert!(serial_matches("256", &[0x01, 0x00]));
        assert!(serial_matches("255", &[0x00, 0xff]));
        // 123456789012345678901234567890 = 0x018EE90FF6C373E0EE4E3F0AD2
        let big = hex::decode("018EE90FF6C373E0EE4E3F0AD2").unwrap();
        assert!(serial_matches("123456789012345678901234567890", &big));
        assert!(!serial_matches("123456789012345678901234567891", &big));
        assert!(!serial_matches("0x1", &[1]));
        assert!(!serial_matches("", &[]));
    }
}
