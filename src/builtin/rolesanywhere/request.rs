//! Reading a CreateSession request: the union of what the two AWS clients send.
//!
//! - Python `iam-rolesanywhere-session`: the three ARNs, `durationSeconds` (and
//!   `roleSessionName`) in a JSON body, `Content-Type: application/x-amz-json-1.0`.
//! - Go `aws_signing_helper`: the ARNs in the query string (percent-encoded), only
//!   `durationSeconds` / `roleSessionName` in an `application/json` body (maybe chunked;
//!   hyper has de-chunked it before this runs).
//!
//! An ARN given both ways must be the same both ways (`arn_mismatch`). The Authorization
//! header, `X-Amz-Date`, `X-Amz-X509` and `X-Amz-X509-Chain` are read here and checked in
//! [`super::signature`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use super::refusal::Refusal;
use crate::auth::sigv4::canonical::percent_decode;
use crate::auth::sigv4::parse_amz_date;

/// At most this many certificates in `X-Amz-X509-Chain` (the verifier bounds path
/// building further).
const MAX_CHAIN: usize = 16;

/// The key type the Authorization label announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ecdsa,
}

/// The three ARNs of a request, as sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Arns {
    pub trust_anchor: String,
    pub profile: String,
    pub role: String,
}

/// The parsed `Authorization: AWS4-X509-… Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug)]
pub struct Authorization<'a> {
    /// The label as sent (it is part of the string to sign).
    pub algorithm: &'a str,
    pub key_type: KeyType,
    /// The leaf serial in decimal.
    pub serial: &'a str,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: Vec<u8>,
}

/// Everything a CreateSession carries.
#[derive(Debug)]
pub struct CreateSession<'a> {
    pub auth: Authorization<'a>,
    pub amz_date: &'a str,
    /// `amz_date` as Unix seconds.
    pub time: i64,
    pub leaf: CertificateDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
    pub arns: Arns,
    pub duration: Option<u64>,
    pub role_session_name: Option<String>,
}

/// Read the request head and its (de-chunked) body.
pub fn parse<'a>(
    headers: &'a HeaderMap,
    query: &str,
    body: &[u8],
) -> Result<CreateSession<'a>, Refusal> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        content_type.as_deref(),
        Some("application/json" | "application/x-amz-json-1.0" | "application/x-amz-json-1.1")
    ) {
        return Err(Refusal::invalid(
            "bad_content_type",
            "Content-Type must be application/json or application/x-amz-json-1.0",
        ));
    }
    let (arns, duration, role_session_name) = read_parameters(query, body)?;
    let auth = parse_authorization(headers)?;
    let amz_date =
        header_str(headers, "x-amz-date").ok_or_else(|| Refusal::signature("missing_date"))?;
    let time = parse_amz_date(amz_date).ok_or_else(|| Refusal::signature("bad_date"))?;
    let leaf = header_str(headers, "x-amz-x509")
        .ok_or_else(|| Refusal::signature("missing_x509"))
        .and_then(|v| der(v).ok_or_else(|| Refusal::signature("bad_x509")))?;
    let chain = match header_str(headers, "x-amz-x509-chain") {
        None => Vec::new(),
        Some(v) => {
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            if parts.len() > MAX_CHAIN {
                return Err(Refusal::signature("bad_x509_chain"));
            }
            let mut chain = Vec::with_capacity(parts.len());
            for p in parts {
                let c = der(p).ok_or_else(|| Refusal::signature("bad_x509_chain"))?;
                // The Python client sends whatever bundle it was given, leaf included.
                if c != leaf {
                    chain.push(c);
                }
            }
            chain
        }
    };
    Ok(CreateSession {
        auth,
        amz_date,
        time,
        leaf,
        chain,
        arns,
        duration,
        role_session_name,
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn der(b64: &str) -> Option<CertificateDer<'static>> {
    let bytes = STANDARD.decode(b64.trim()).ok()?;
    (!bytes.is_empty()).then(|| CertificateDer::from(bytes))
}

/// The ARNs (query and/or body), `durationSeconds` and `roleSessionName`.
fn read_parameters(
    query: &str,
    body: &[u8],
) -> Result<(Arns, Option<u64>, Option<String>), Refusal> {
    let bad_body = || Refusal::invalid("bad_body", "The request body must be a JSON object");
    let json: serde_json::Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => m,
            _ => return Err(bad_body()),
        }
    };
    let text = |key: &str| -> Result<Option<String>, Refusal> {
        match json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_body()),
        }
    };
    let mut from_query = [None, None, None];
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let slot = match k {
            "trustAnchorArn" => 0,
            "profileArn" => 1,
            "roleArn" => 2,
            _ => continue,
        };
        let v = String::from_utf8(percent_decode(v))
            .map_err(|_| Refusal::invalid("bad_arn", "An ARN in the query string is not UTF-8"))?;
        if from_query[slot].replace(v).is_some() {
            return Err(Refusal::invalid(
                "arn_mismatch",
                "An ARN is given more than once",
            ));
        }
    }
    let mut arns = [String::new(), String::new(), String::new()];
    for (i, key) in ["trustAnchorArn", "profileArn", "roleArn"]
        .iter()
        .enumerate()
    {
        let in_body = text(key)?;
        arns[i] = match (from_query[i].take(), in_body) {
            (Some(q), Some(b)) if q != b => {
                return Err(Refusal::invalid(
                    "arn_mismatch",
                    "An ARN in the query string differs from the one in the body",
                ))
            }
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => {
                return Err(Refusal::invalid(
                    "missing_arn",
                    "trustAnchorArn, profileArn and roleArn are required",
                ))
            }
        };
    }
    let [trust_anchor, profile, role] = arns;
    let duration = match json.get("durationSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            Refusal::invalid(
                "bad_duration",
                "durationSeconds must be an integer within 900..43200",
            )
        })?),
    };
    let role_session_name = text("roleSessionName")?;
    Ok((
        Arns {
            trust_anchor,
            profile,
            role,
        },
        duration,
        role_session_name,
    ))
}

/// `AWS4-X509-{RSA|ECDSA}-SHA{256|384|512} Credential=…, SignedHeaders=…, Signature=…`.
fn parse_authorization(headers: &HeaderMap) -> Result<Authorization<'_>, Refusal> {
    let value = header_str(headers, "authorization")
        .ok_or_else(|| Refusal::signature("missing_authorization"))?;
    let (algorithm, rest) = value
        .split_once(' ')
        .ok_or_else(|| Refusal::signature("malformed_authorization"))?;
    let key_type = match algorithm {
        "AWS4-X509-RSA-SHA256" | "AWS4-X509-RSA-SHA384" | "AWS4-X509-RSA-SHA512" => KeyType::Rsa,
        "AWS4-X509-ECDSA-SHA256" | "AWS4-X509-ECDSA-SHA384" | "AWS4-X509-ECDSA-SHA512" => {
            KeyType::Ecdsa
        }
        "AWS4-X509-MLDSA" => {
            return Err(Refusal::invalid(
                "unsupported_algorithm_mldsa",
                "AWS4-X509-MLDSA is not supported: sign with an RSA or ECDSA key",
            ))
        }
        _ => {
            return Err(Refusal::invalid(
                "unsupported_algorithm",
                "The signing algorithm must be AWS4-X509-RSA-SHA256 or AWS4-X509-ECDSA-SHA256",
            ))
        }
    };
    let malformed = || Refusal::signature("malformed_authorization");
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').ok_or_else(malformed)?;
        let slot = match k {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(malformed()),
        };
        if slot.replace(v).is_some() {
            return Err(malformed());
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed());
    };
    let (serial, scope) = credential.split_once('/').ok_or_else(malformed)?;
    let mut parts = scope.split('/');
    let (Some(date), Some(region), Some(service), Some(term), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed());
    };
    if term != "aws4_request" {
        return Err(Refusal::signature("bad_scope"));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(malformed());
    }
    let signature = hex::decode(signature).map_err(|_| malformed())?;
    Ok(Authorization {
        algorithm,
        key_type,
        serial,
        scope,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/fleet";
    const P: &str = "arn:aws:rolesanywhere:us-east-1:000000000000:profile/workers";
    const R: &str = "arn:aws:iam::000000000000:role/reader";

    fn body(extra: &str) -> Vec<u8> {
        format!(r#"{{"trustAnchorArn":"{A}","profileArn":"{P}","roleArn":"{R}"{extra}}}"#)
            .into_bytes()
    }

    fn enc(s: &str) -> String {
        s.replace(':', "%3A").replace('/', "%2F")
    }

    #[test]
    fn arns_come_from_the_body_or_the_query_and_must_agree() {
        let (arns, d, n) = read_parameters("", &body(r#","durationSeconds":900"#)).unwrap();
        assert_eq!((arns.role.as_str(), d, n), (R, Some(900), None));
        let q = format!(
            "profileArn={}&roleArn={}&trustAnchorArn={}",
            enc(P),
            enc(R),
            enc(A)
        );
        let (arns, d, _) = read_parameters(&q, br#"{"durationSeconds":3600}"#).unwrap();
        assert_eq!((arns.trust_anchor.as_str(), d), (A, Some(3600)));
        // Both, the same: fine; different: refused.
        assert!(read_parameters(&q, &body("")).is_ok());
        let other = q.replace("workers", "others");
        let e = read_parameters(&other, &body("")).unwrap_err();
        assert_eq!(e.reason, "arn_mismatch");
        let e = read_parameters("", br#"{"roleArn":"x"}"#).unwrap_err();
        assert_eq!(e.reason, "missing_arn");
        let e = read_parameters("", b"[1]").unwrap_err();
        assert_eq!(e.reason, "bad_body");
        let e = read_parameters("", &body(r#","durationSeconds":"1h""#)).unwrap_err();
        assert_eq!(e.reason, "bad_duration");
    }

    fn auth(v: &str) -> Result<(), &'static str> {
        let mut h = HeaderMap::new();
        h.insert("authorization", v.parse().unwrap());
        parse_authorization(&h).map(|_| ()).map_err(|e| e.reason)
    }

    #[test]
    fn authorization_labels_and_fields() {
        let ok = "Credential=12/20261201/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date;x-amz-x509, Signature=3046";
        for alg in ["RSA-SHA256", "ECDSA-SHA384", "ECDSA-SHA512"] {
            assert_eq!(auth(&format!("AWS4-X509-{alg} {ok}")), Ok(()));
        }
        assert_eq!(
            auth(&format!("AWS4-X509-MLDSA {ok}")),
            Err("unsupported_algorithm_mldsa")
        );
        assert_eq!(
            auth(&format!("AWS4-HMAC-SHA256 {ok}")),
            Err("unsupported_algorithm")
        );
        assert_eq!(
            auth("AWS4-X509-RSA-SHA256 Credential=1/2/3/aws4_request, SignedHeaders=host, Signature=00"),
            Err("malformed_authorization")
        );
        assert_eq!(
            auth("AWS4-X509-RSA-SHA256 Credential=1/d/r/s/x, SignedHeaders=host, Signature=00"),
            Err("bad_scope")
        );
        assert_eq!(
            auth("AWS4-X509-RSA-SHA256 Credential=1/d/r/s/aws4_request, SignedHeaders=Host, Signature=00"),
            Err("malformed_authorization")
        );
    }
}
