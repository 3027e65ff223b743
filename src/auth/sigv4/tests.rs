//! The verifier against AWS's published SigV4 test suite (conformance/sigv4, vendored with
//! its licences from the workplace's shared/conformance): every case's canonical request and string to sign must match byte for
//! byte, and its signed request must verify at the suite's fixed time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

/// A session-aware stand-in: the suite signs with AKIDEXAMPLE, with and without a token.
#[derive(Debug)]
struct SuiteSource(Arc<Credential>);

impl CredentialSource for SuiteSource {
    fn lookup(&self, akid: &str, _token: Option<&str>) -> Result<Arc<Credential>, LookupError> {
        if akid == &*self.0.access_key_id {
            Ok(self.0.clone())
        } else {
            Err(LookupError::UnknownKey)
        }
    }
}

fn credential(akid: &str, secret: &str) -> Arc<Credential> {
    Arc::new(Credential {
        access_key_id: Arc::from(akid),
        secret_access_key: Arc::from(secret),
        principal: Arc::from("suite"),
        attributes: Default::default(),
        session_token: None,
        principal_header: HeaderValue::from_static("suite"),
        access_key_header: HeaderValue::from_str(akid).unwrap(),
        attributes_header: None,
        session: None,
    })
}

fn verifier(region: &str, service: &str, cred: Arc<Credential>) -> Verifier {
    let config = Sigv4Config {
        regions: vec![region.into()],
        services: vec![service.into()],
        credentials_file: Some(PathBuf::new()),
        max_skew: Duration::from_secs(300),
        max_presign_expiry: MAX_PRESIGN_EXPIRY_LIMIT,
        max_payload_buffer: 1 << 20,
        allow_unsigned_payload: false,
        sessions: false,
    };
    Verifier::new(&config, Arc::new(SuiteSource(cred)))
}

/// The key and scope every suite case signs with.
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_verifier() -> Verifier {
    verifier(
        "us-east-1",
        "service",
        credential("AKIDEXAMPLE", SUITE_SECRET),
    )
}

/// A raw HTTP/1.1 request as the suite writes it (folded header lines, raw UTF-8 paths).
struct Raw {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    /// What the verifier sees of this request (its host from the `Host` header).
    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            host: self.headers.get(http::header::HOST),
            body: &self.body,
        }
    }
}

fn parse_raw(text: &str) -> Raw {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, ""),
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap();
    let (method, rest) = first.split_once(' ').unwrap();
    let target = &rest[..rest.rfind(" HTTP/").unwrap()];
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            let last = pairs.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line);
        } else {
            let (n, v) = line.split_once(':').unwrap();
            // HTTP drops optional whitespace around a field value (RFC 9110 §5.5).
            pairs.push((n.to_owned(), v.trim_matches([' ', '\t']).to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    for (n, v) in pairs {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    Raw {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// The suite vendored in the project (`conformance/sigv4`, with its licences), else the
/// workplace's shared copy beside the checkout.
fn conformance_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vendored = manifest.join("conformance/sigv4");
    if vendored.is_dir() {
        return vendored;
    }
    manifest
        .ancestors()
        .map(|a| a.join("shared/conformance/sigv4"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "shared/conformance/sigv4 not found beside {}",
                manifest.display()
            )
        })
}

/// Check one signed request: canonical request, string to sign, and verification.
fn check_case(v: &Verifier, sreq: &str, creq: &str, sts: &str, now: i64) -> Result<(), String> {
    let raw = parse_raw(sreq);
    let req = raw.signed();
    let mut built = v
        .build(&req, None, now, false)
        .map_err(|e| format!("build: {e:?}"))?;
    if built.canonical_request != creq.as_bytes() && built.has_token {
        // A token appended to a presigned URL after signing (post-sts-header-after).
        built = v
            .build(&req, None, now, true)
            .map_err(|e| format!("build: {e:?}"))?;
    }
    let got = String::from_utf8_lossy(&built.canonical_request);
    if got != creq {
        return Err(format!(
            "canonical request differs:\n--- got\n{got}\n--- want\n{creq}"
        ));
    }
    if built.string_to_sign != sts {
        return Err(format!(
            "string to sign differs:\n{}\n---\n{sts}",
            built.string_to_sign
        ));
    }
    v.verify(&req, now)
        .map(|_| ())
        .map_err(|e| format!("verify: {e:?}"))
}

/// Verify a raw request (the suite's text form) at `now`.
fn verify_raw(v: &Verifier, text: &str, now: i64) -> Result<(), Sigv4Error> {
    v.verify(&parse_raw(text).signed(), now).map(|_| ())
}

/// Cases the non-S3 rules or this test's fixed time make inapplicable, with the reason.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "get-relative-relative-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-relative-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-slash-dot-slash-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-slash-pointless-dot-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-slash-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-slashes-unnormalized",
        "S3-only: signed without path normalisation",
    ),
    (
        "get-space-unnormalized",
        "S3-only: signed without path normalisation",
    ),
];

#[test]
fn aws_c_auth_suite() {
    let base = conformance_dir().join("aws-c-auth/aws-signing-test-suite/v4");
    let mut names: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let (mut passed, mut failures, mut skipped) = (0, Vec::new(), 0);
    for name in names {
        let dir = base.join(&name);
        let ctx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap())
                .unwrap();
        if let Some((_, why)) = NOT_APPLICABLE.iter().find(|(n, _)| *n == name) {
            assert_eq!(ctx["normalize"], false, "{name}");
            eprintln!("not applicable: {name}: {why}");
            skipped += 1;
            continue;
        }
        let cred = credential(
            ctx["credentials"]["access_key_id"].as_str().unwrap(),
            ctx["credentials"]["secret_access_key"].as_str().unwrap(),
        );
        let v = verifier(
            ctx["region"].as_str().unwrap(),
            ctx["service"].as_str().unwrap(),
            cred,
        );
        let ts = ctx["timestamp"].as_str().unwrap().replace(['-', ':'], "");
        let now = parse_amz_date(&ts).unwrap();
        for kind in ["header", "query"] {
            let f = |x: &str| dir.join(format!("{kind}-{x}.txt"));
            if !f("signed-request").exists() || !f("canonical-request").exists() {
                continue;
            }
            let rd = |x: &str| std::fs::read_to_string(f(x)).unwrap();
            match check_case(
                &v,
                &rd("signed-request"),
                &rd("canonical-request"),
                &rd("string-to-sign"),
                now,
            ) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{name} ({kind}): {e}")),
            }
        }
    }
    eprintln!(
        "aws-c-auth suite: {passed} passed, {} failed, {skipped} not applicable",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(passed >= 50, "only {passed} cases ran");
}

#[test]
fn botocore_suite() {
    let base = conformance_dir().join("botocore/aws4_testsuite");
    let v = suite_verifier();
    let now = parse_amz_date("20150830T123600Z").unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().into_string().unwrap())
        })
        .collect();
    names.sort();
    let (mut passed, mut failures, mut defects) = (0, Vec::new(), Vec::new());
    for name in names {
        let dir = base.join(&name);
        // post-sts-token keeps its two cases one folder deeper.
        let mut files: Vec<PathBuf> = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else {
                files.push(p);
            }
        }
        let mut stems: Vec<PathBuf> = files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "sreq"))
            .map(|p| p.with_extension(""))
            .collect();
        stems.sort();
        for stem in stems {
            let rd = |x: &str| std::fs::read_to_string(stem.with_extension(x)).unwrap();
            let mut sreq = rd("sreq");
            let authz = rd("authz");
            let line = sreq
                .lines()
                .find(|l| l.starts_with("Authorization:"))
                .unwrap()
                .to_owned();
            if line.trim_start_matches("Authorization:").trim() != authz.trim() {
                // The vector's .sreq carries another case's signature: verify its .authz.
                eprintln!(
                    "vector defect: {name}: .sreq signature differs from .authz; using .authz"
                );
                defects.push(name.clone());
                sreq = sreq.replace(&line, &format!("Authorization: {}", authz.trim()));
            }
            match check_case(&v, &sreq, &rd("creq"), &rd("sts"), now) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{}: {e}", stem.display())),
            }
        }
    }
    eprintln!("botocore suite: {passed} passed, {} failed", failures.len());
    assert_eq!(defects, ["get-vanilla-with-session-token"]);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(passed >= 26, "only {passed} cases ran");
}

#[test]
fn tampering_time_and_scope_are_refused() {
    let base = conformance_dir().join("aws-c-auth/aws-signing-test-suite/v4/get-vanilla");
    let v = suite_verifier();
    let now = parse_amz_date("20150830T123600Z").unwrap();
    let sreq = std::fs::read_to_string(base.join("header-signed-request.txt")).unwrap();
    let run = |text: &str, now: i64| verify_raw(&v, text, now);
    assert_eq!(run(&sreq, now), Ok(()));
    // Cached signing key gives the same answer.
    assert_eq!(run(&sreq, now), Ok(()));
    assert_eq!(
        run(&sreq.replace("GET / ", "GET /x "), now),
        Err(Sigv4Error::SignatureMismatch)
    );
    assert_eq!(
        run(&sreq.replace("Signature=5fa", "Signature=6fa"), now),
        Err(Sigv4Error::SignatureMismatch)
    );
    assert_eq!(run(&sreq, now + 301), Err(Sigv4Error::Expired));
    assert_eq!(run(&sreq, now - 301), Err(Sigv4Error::Expired));
    assert_eq!(
        run(&sreq.replace("us-east-1", "eu-west-1"), now),
        Err(Sigv4Error::BadScope)
    );
    assert_eq!(
        run(&sreq.replace("AKIDEXAMPLE", "AKIDOTHER"), now),
        Err(Sigv4Error::UnknownKey)
    );
    assert_eq!(
        run(&sreq.replace("20150830/", "20150831/"), now),
        Err(Sigv4Error::BadDate)
    );
    assert_eq!(
        run(&sreq.replace(", Signature=", ", Sig="), now),
        Err(Sigv4Error::Malformed("sigv4_bad_authorization"))
    );
    assert_eq!(
        run(
            &sreq.replace("GET / ", "GET /?X-Amz-Algorithm=AWS4-HMAC-SHA256 "),
            now
        ),
        Err(Sigv4Error::MixedForms)
    );
    assert_eq!(
        run(
            &sreq.replace("X-Amz-Date", "X-Amz-Meta: 1\nX-Amz-Date"),
            now
        ),
        Err(Sigv4Error::UnsignedHeader)
    );
    assert_eq!(
        run("GET / HTTP/1.1\nHost:example.amazonaws.com\n\n", now),
        Err(Sigv4Error::Missing)
    );
    // A signed header the request does not carry.
    assert_eq!(
        run(
            &sreq.replace(
                "SignedHeaders=host;x-amz-date",
                "SignedHeaders=host;x-amz-bogus;x-amz-date"
            ),
            now
        ),
        Err(Sigv4Error::SignedHeaderMissing)
    );
    // Presigned: expiry honoured.
    let q = std::fs::read_to_string(base.join("query-signed-request.txt")).unwrap();
    assert_eq!(run(&q, now + 3600), Ok(()));
    assert_eq!(run(&q, now + 3601), Err(Sigv4Error::Expired));
    assert_eq!(
        run(
            &q.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
            now
        ),
        Err(Sigv4Error::ExpiryTooLong)
    );
}

/// The header form may carry its time in `Date` as an HTTP-date (RFC 7231 IMF-fixdate), as
/// the original 2011 AWS suite did: the canonical request keeps the header's text, the
/// string to sign uses the same instant in ISO 8601 basic. The expected signature is
/// computed here by hand (aws-lc HMAC), not with the verifier's code.
#[test]
fn http_date_header_signs_and_is_time_checked() {
    use aws_lc_rs::{digest, hmac};
    let secret = SUITE_SECRET;
    let date = "Sun, 30 Aug 2015 12:36:00 GMT";
    let creq = format!(
        "GET\n/\n\ndate:{date}\nhost:example.amazonaws.com\n\ndate;host\n{}",
        hex::encode(digest::digest(&digest::SHA256, b""))
    );
    let scope = "20150830/us-east-1/service/aws4_request";
    let sts = format!(
        "AWS4-HMAC-SHA256\n20150830T123600Z\n{scope}\n{}",
        hex::encode(digest::digest(&digest::SHA256, creq.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in ["20150830", "us-east-1", "service", "aws4_request", &sts] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    let signature = hex::encode(key);
    let v = suite_verifier();
    let now = parse_amz_date("20150830T123600Z").unwrap();
    let run = |date: &str, now: i64| {
        let text = format!(
            "GET / HTTP/1.1\nHost:example.amazonaws.com\nDate:{date}\nAuthorization:AWS4-HMAC-SHA256 \
             Credential=AKIDEXAMPLE/{scope}, SignedHeaders=date;host, Signature={signature}\n\n"
        );
        verify_raw(&v, &text, now)
    };
    assert_eq!(run(date, now), Ok(()));
    // The Date header is the request time: skew is checked against it.
    assert_eq!(run(date, now + 301), Err(Sigv4Error::Expired));
    // It is signed: another second is another signature.
    assert_eq!(
        run("Sun, 30 Aug 2015 12:36:01 GMT", now),
        Err(Sigv4Error::SignatureMismatch)
    );
    assert_eq!(run("yesterday", now), Err(Sigv4Error::BadDate));
}
