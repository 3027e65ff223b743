//! The SigV4 verifier's parsers, over what a client controls: the `Authorization` header
//! (algorithm, `Credential` scope, `SignedHeaders`, `Signature`), the presigned query
//! (`X-Amz-*`), the dates, the path and query that go into the canonical request, header
//! values and the body. Random requests and mutations of correctly signed ones end in a
//! refusal or a verified request, never a panic; a changed signature or body never verifies.
//! The canonical-request helpers are also driven directly with arbitrary text.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis::auth::sigv4::canonical::{self, RequestParts};
use portcullis::auth::sigv4::{
    derive_signing_key, parse_amz_date, sign, Credential, CredentialSource, LookupError,
    SignedRequest, Verifier,
};
use portcullis::config::Sigv4Config;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use crate::support::{check, Entropy, Source, CASES};

const AKID: &str = "AKIDPROPERTY";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "session/token+with=odd&chars";
const REGION: &str = "eu-west-1";
const SERVICE: &str = "execute-api";
/// 2027-01-15T08:00:00Z, the time every request is signed and verified at.
const DATE: &str = "20270115T080000Z";

fn now() -> i64 {
    parse_amz_date(DATE).unwrap()
}

/// One key, usable with or without its session token (the token must then match).
#[derive(Debug)]
struct OneKey(Arc<Credential>);

impl CredentialSource for OneKey {
    fn lookup(&self, akid: &str, token: Option<&str>) -> Result<Arc<Credential>, LookupError> {
        if akid != AKID {
            return Err(LookupError::UnknownKey);
        }
        match token {
            None => Ok(self.0.clone()),
            Some(TOKEN) => Ok(self.0.clone()),
            Some(_) => Err(LookupError::InvalidToken),
        }
    }
}

fn verifier() -> Verifier {
    let credential = Arc::new(Credential {
        access_key_id: Arc::from(AKID),
        secret_access_key: Arc::from(SECRET),
        principal: Arc::from("props"),
        attributes: Default::default(),
        session_token: None,
        principal_header: HeaderValue::from_static("props"),
        access_key_header: HeaderValue::from_static(AKID),
        attributes_header: None,
        session: None,
    });
    let config = Sigv4Config {
        regions: vec![REGION.into(), "us-east-1".into()],
        services: vec![SERVICE.into()],
        credentials_file: None,
        max_skew: Duration::from_secs(300),
        max_presign_expiry: Duration::from_secs(3600),
        max_payload_buffer: 1 << 20,
        allow_unsigned_payload: false,
        sessions: false,
    };
    Verifier::new(&config, Arc::new(OneKey(credential)))
}

/// A request as the test holds it: everything owned, so that any part can be mutated.
#[derive(Debug, Clone, PartialEq)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    /// Verify at the signing time. Header lines that are no valid header drop out, as
    /// hyper would have refused them before the verifier.
    fn verify(&self, v: &Verifier) -> bool {
        let mut headers = HeaderMap::new();
        for (n, val) in &self.headers {
            if let (Ok(n), Ok(val)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(val),
            ) {
                headers.append(n, val);
            }
        }
        let req = SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            host: headers.get(http::header::HOST),
            body: &self.body,
        };
        v.verify(&req, now()).is_ok()
    }
}

fn scope() -> String {
    format!("{}/{REGION}/{SERVICE}/aws4_request", &DATE[..8])
}

fn signature(creq: &[u8]) -> String {
    let sts = canonical::string_to_sign(DATE, &scope(), creq);
    sign(
        &derive_signing_key(SECRET, &DATE[..8], REGION, SERVICE),
        &sts,
    )
}

/// A header-form request signed over `headers` (lowercase names) plus host and x-amz-date.
fn header_form(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Req {
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    all.push(("host".into(), "api.test".into()));
    all.push(("x-amz-date".into(), DATE.into()));
    all.sort();
    let signed: Vec<(&str, Vec<&[u8]>)> = all
        .iter()
        .filter(|(n, _)| n != "x-amz-security-token")
        .map(|(n, v)| (n.as_str(), vec![v.as_bytes()]))
        .collect();
    let payload = hex::encode(Sha256::digest(body));
    let creq = canonical::canonical_request(&RequestParts {
        method,
        path,
        query,
        presigned: false,
        omit_token: false,
        headers: &signed,
        payload_hash: &payload,
    });
    let names: Vec<&str> = signed.iter().map(|(n, _)| *n).collect();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/{}, SignedHeaders={}, Signature={}",
        scope(),
        names.join(";"),
        signature(&creq)
    );
    let mut headers: Vec<(String, Vec<u8>)> =
        all.into_iter().map(|(n, v)| (n, v.into_bytes())).collect();
    headers.push(("authorization".into(), auth.into_bytes()));
    Req {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: body.to_vec(),
    }
}

/// A presigned GET: `extra` query parameters (already encoded) plus the `X-Amz-*` ones.
fn presigned(path: &str, extra: &str, token: bool) -> Req {
    let mut cred = String::new();
    canonical::uri_encode(format!("{AKID}/{}", scope()).as_bytes(), false, &mut cred);
    let mut query = format!(
        "{extra}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}&X-Amz-Date={DATE}&X-Amz-Expires=600&X-Amz-SignedHeaders=host"
    );
    if token {
        query.push_str("&X-Amz-Security-Token=");
        canonical::uri_encode(TOKEN.as_bytes(), false, &mut query);
    }
    let hosts: Vec<&[u8]> = vec![b"api.test"];
    let creq = canonical::canonical_request(&RequestParts {
        method: "GET",
        path,
        query: &query,
        presigned: true,
        omit_token: false,
        headers: &[("host", hosts)],
        payload_hash: canonical::EMPTY_SHA256,
    });
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature(&creq));
    Req {
        method: "GET".into(),
        path: path.into(),
        query,
        headers: vec![("host".into(), b"api.test".to_vec())],
        body: vec![],
    }
}

/// Correctly signed requests of both forms.
fn valid_requests() -> Vec<Req> {
    vec![
        header_form("GET", "/orders/1", "b=2&a=1&a=0", &[], b""),
        header_form(
            "POST",
            "/a%20b/./c//d/",
            "x=%7E&y",
            &[
                ("content-type", "application/json"),
                (
                    "x-amz-content-sha256",
                    &hex::encode(Sha256::digest(b"{\"k\":1}")),
                ),
            ],
            b"{\"k\":1}",
        ),
        header_form(
            "PUT",
            "/",
            "",
            &[
                ("x-amz-security-token", TOKEN),
                ("x-amz-meta-k", "  a   b "),
            ],
            b"body",
        ),
        presigned("/file.txt", "", false),
        presigned("/dir/%E2%82%AC", "list-type=2&prefix=a%2Fb&", true),
    ]
}

#[test]
fn sigv4_mutated_requests_never_panic_and_changed_signatures_never_verify() {
    let v = verifier();
    let requests = valid_requests();
    for r in &requests {
        assert!(
            r.verify(&v),
            "a correctly signed request is refused: {r:#?}"
        );
    }
    check("sigv4_mutated_requests", CASES, Entropy(64), |bytes| {
        let mut src = Source::new(&bytes);
        let original = &requests[src.below(requests.len())];
        let mut r = original.clone();
        let presigned = r.query.contains("X-Amz-Signature=");
        let mode = src.below(6);
        match mode {
            // Byte edits of the Authorization header or the presigned query: either parser.
            0 if presigned => mutate_string(&mut src, &mut r.query),
            0 => {
                let auth = r
                    .headers
                    .iter_mut()
                    .find(|(n, _)| n == "authorization")
                    .unwrap();
                src.mutate(&mut auth.1);
            }
            1 => mutate_string(&mut src, &mut r.path),
            2 => mutate_string(&mut src, &mut r.query),
            3 => {
                let i = src.below(r.headers.len());
                src.mutate(&mut r.headers[i].1);
            }
            // The signature: one bit of its 32 bytes flipped, written back in lowercase hex.
            4 => flip_signature_bit(&mut src, &mut r),
            // The body: signed through its hash, in both forms.
            _ => src.mutate(&mut r.body),
        }
        let verified = r.verify(&v);
        if mode >= 4 && r != *original {
            prop_assert!(!verified, "a changed request verified: {:#?}", r);
        }
        Ok(())
    });
}

/// Mutate the bytes of `s`, keeping it text (lossy UTF-8) as the request line is.
fn mutate_string(src: &mut Source, s: &mut String) {
    let mut b = std::mem::take(s).into_bytes();
    src.mutate(&mut b);
    *s = String::from_utf8_lossy(&b).into_owned();
}

fn flip_signature_bit(src: &mut Source, r: &mut Req) {
    if r.query.contains("X-Amz-Signature=") {
        r.query = flip_hex_after(src, &r.query, "X-Amz-Signature=");
    } else {
        let auth = r
            .headers
            .iter_mut()
            .find(|(n, _)| n == "authorization")
            .unwrap();
        let text = String::from_utf8(std::mem::take(&mut auth.1)).unwrap();
        auth.1 = flip_hex_after(src, &text, "Signature=").into_bytes();
    }
}

/// `text` with one bit flipped in the 64 hex digits after the last `prefix`.
fn flip_hex_after(src: &mut Source, text: &str, prefix: &str) -> String {
    let at = text.rfind(prefix).unwrap() + prefix.len();
    let mut sig = hex::decode(&text[at..at + 64]).unwrap();
    let i = src.below(sig.len());
    sig[i] ^= 1 << (src.byte() % 8);
    format!("{}{}{}", &text[..at], hex::encode(sig), &text[at + 64..])
}

/// Draws request parts, each plausible or (one time in `odds`) hostile: a request is
/// drawn at one level of chaos, so that some get through every check up to the signature.
struct Gen<'s, 'a> {
    src: &'s mut Source<'a>,
    odds: usize,
}

impl Gen<'_, '_> {
    fn odd(&mut self) -> bool {
        self.src.below(self.odds) == 0
    }

    /// The first of `pieces` (the right one); at odds, another one or something hostile.
    fn piece(&mut self, pieces: &[&str]) -> String {
        if !self.odd() {
            return pieces[0].to_owned();
        }
        match self.src.below(3) {
            0 => self.src.hostile_string(10),
            _ => self.src.pick(pieces).to_owned(),
        }
    }

    /// 64 random hex digits, or something close to it.
    fn signature(&mut self) -> String {
        let sig: String = (0..32)
            .map(|_| format!("{:02x}", self.src.byte()))
            .collect();
        if !self.odd() {
            return sig;
        }
        match self.src.below(4) {
            0 => sig.to_uppercase(),
            1 => sig[..self.src.below(64)].to_owned(),
            2 => format!("{sig}{}", self.src.hostile_string(3)),
            _ => self.src.hostile_string(70),
        }
    }

    /// A credential scope, its parts and their number plausible or not.
    fn credential(&mut self) -> String {
        let parts = [
            self.piece(&[AKID, "AKIDOTHER", ""]),
            self.piece(&[&DATE[..8], "20270116", "2027011"]),
            self.piece(&[REGION, "us-east-1", "", "EU-WEST-1"]),
            self.piece(&[SERVICE, "s3"]),
            self.piece(&["aws4_request", "aws4_request/", "AWS4_REQUEST"]),
            self.piece(&["x", ""]),
        ];
        let n = if self.odd() {
            self.src.below(parts.len() + 1)
        } else {
            5
        };
        let sep = if self.odd() {
            self.piece(&["//", "%2F", ""])
        } else {
            "/".into()
        };
        parts[..n].join(&sep)
    }

    /// The names of `present` (sorted, host always), or at odds a changed list.
    fn signed_headers(&mut self, present: &[&str]) -> String {
        let mut names: Vec<&str> = present
            .iter()
            .copied()
            .filter(|n| *n != "x-amz-security-token")
            .collect();
        names.push("host");
        names.sort_unstable();
        names.dedup();
        if self.odd() {
            match self.src.below(4) {
                0 => names.retain(|n| *n != "host"),
                1 => names.push(self.src.pick(&["HOST", "", "a", "date"])),
                2 => names.reverse(),
                _ => {
                    let i = self.src.below(names.len());
                    names.remove(i);
                }
            }
        }
        names.join(";")
    }

    fn date(&mut self) -> String {
        if !self.odd() {
            return self
                .src
                .pick(&[DATE, DATE, "Fri, 15 Jan 2027 08:00:00 GMT"])
                .into();
        }
        match self.src.below(3) {
            0 => {
                // Digits where digits go, now and then something else.
                let mut d: Vec<u8> = DATE.bytes().collect();
                for _ in 0..=self.src.below(3) {
                    let i = self.src.below(d.len());
                    d[i] = self.src.pick(b"0123456789TZ9");
                }
                let keep = d.len() - self.src.below(2);
                String::from_utf8_lossy(&d[..keep]).into_owned()
            }
            1 => self.piece(&[
                "Fri, 15 Jan 2027 08:00:00 +0100",
                "Mon, 30 Feb 2027 08:00:00 GMT",
                "20270115T080000",
                "99991231T235959Z",
                "00000101T000000Z",
            ]),
            _ => self.src.hostile_string(20),
        }
    }

    /// `name=value`, or now and then a name alone.
    fn pair(&mut self, name: String, value: String) -> String {
        if self.odd() {
            name
        } else {
            format!("{name}={value}")
        }
    }

    fn authorization(&mut self, present: &[&str]) -> Vec<u8> {
        let mut fields = vec![
            ("Credential", self.credential()),
            ("SignedHeaders", self.signed_headers(present)),
            ("Signature", self.signature()),
        ];
        if self.odd() {
            let i = self.src.below(fields.len());
            fields.remove(i);
        }
        if self.odd() {
            let last = fields.len() - 1;
            fields.swap(0, last);
        }
        let mut fields: Vec<String> = fields
            .into_iter()
            .map(|(n, v)| {
                let n = self.piece(&[n]);
                self.pair(n, v)
            })
            .collect();
        if self.odd() {
            let junk = self.src.hostile_string(8);
            fields.push(junk);
        }
        let algorithm = self.piece(&["AWS4-HMAC-SHA256"]);
        let sep = if self.odd() {
            self.piece(&["", ",", "  "])
        } else {
            " ".into()
        };
        let join = if self.odd() {
            self.piece(&[",", ",,", " ,", ",\t"])
        } else {
            ", ".into()
        };
        format!("{algorithm}{sep}{}", fields.join(&join)).into_bytes()
    }

    fn presigned_query(&mut self, present: &[&str]) -> Vec<String> {
        let mut cred = String::new();
        let c = self.credential();
        canonical::uri_encode(c.as_bytes(), self.odd(), &mut cred);
        let mut params = vec![
            ("X-Amz-Algorithm", self.piece(&["AWS4-HMAC-SHA256"])),
            ("X-Amz-Credential", cred),
            (
                "X-Amz-Date",
                if self.odd() { self.date() } else { DATE.into() },
            ),
            (
                "X-Amz-Expires",
                self.piece(&["600", "0", "3601", "-1", "18446744073709551616"]),
            ),
            ("X-Amz-SignedHeaders", self.signed_headers(present)),
            ("X-Amz-Signature", self.signature()),
        ];
        if self.src.below(2) == 0 {
            params.push((
                "X-Amz-Security-Token",
                self.piece(&[
                    "session%2Ftoken%2Bwith%3Dodd%26chars",
                    "other",
                    "%FF%FE",
                    "%",
                ]),
            ));
        }
        if self.odd() {
            let i = self.src.below(params.len());
            params.remove(i);
        }
        if self.odd() {
            let i = self.src.below(params.len());
            params.push(params[i].clone());
        }
        params
            .into_iter()
            .map(|(n, v)| {
                let n = self.piece(&[n]);
                self.pair(n, v)
            })
            .collect()
    }

    /// A request with a random signature, in either form (or, now and then, both).
    fn request(&mut self) -> Req {
        let method = self.piece(&["GET", "POST", "PUT"]);
        let path = match self.src.below(3) {
            0 => "/".into(),
            1 => format!("/{}", self.src.hostile_string(24)),
            _ => self.src.hostile_string(24),
        };
        let mut query: Vec<String> = (0..self.src.below(3))
            .map(|_| {
                let n = self.piece(&["a", "b", "%41", ""]);
                let v = self.src.hostile_string(6);
                self.pair(n, v)
            })
            .collect();
        let form = self.src.below(8);
        let (header_form, presigned) = (form < 4 || form == 7, form >= 4);
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for name in [
            "host",
            "x-amz-date",
            "date",
            "x-amz-content-sha256",
            "x-amz-security-token",
            "x-amz-meta-k",
            "content-type",
        ] {
            let wanted = match name {
                "host" => !self.odd(),
                "x-amz-date" => header_form && !self.odd(),
                _ => self.src.below(3) == 0,
            };
            if !wanted {
                continue;
            }
            let value = match name {
                "host" => self.piece(&["api.test", "API.TEST:443", ""]),
                "content-type" => self.piece(&["text/plain", " a  b ", ""]),
                "x-amz-date" | "date" => self.date(),
                "x-amz-content-sha256" => self.piece(&[
                    canonical::EMPTY_SHA256,
                    "UNSIGNED-PAYLOAD",
                    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                ]),
                "x-amz-security-token" => self.piece(&[TOKEN, "other"]),
                _ => self.piece(&[" a  b ", "", "x"]),
            };
            headers.push((name.into(), value.into_bytes()));
        }
        let present: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
        let present: Vec<&str> = present.iter().map(String::as_str).collect();
        if header_form {
            let auth = self.authorization(&present);
            headers.push(("authorization".into(), auth));
        }
        if presigned {
            query.extend(self.presigned_query(&present));
        }
        let join = if self.odd() { "&&" } else { "&" };
        Req {
            method,
            path,
            query: query.join(join),
            headers,
            body: self.src.bytes(16),
        }
    }
}

#[test]
fn sigv4_arbitrary_requests_are_refused_never_panic() {
    let v = verifier();
    check("sigv4_arbitrary_requests", CASES, Entropy(768), |bytes| {
        let mut src = Source::new(&bytes);
        let odds = src.pick(&[usize::MAX, 64, 16, 4, 2]);
        let r = Gen {
            src: &mut src,
            odds,
        }
        .request();
        // A random signature verifies with probability 2^-256.
        prop_assert!(
            !r.verify(&v),
            "a request with a random signature verified: {:#?}",
            r
        );
        Ok(())
    });
}

#[test]
fn sigv4_canonical_helpers_never_panic() {
    check("sigv4_canonical_helpers", CASES, Entropy(160), |bytes| {
        let mut src = Source::new(&bytes);
        let text = match src.below(3) {
            0 => src.hostile_string(40),
            1 => String::from_utf8_lossy(&src.bytes(40)).into_owned(),
            _ => Gen {
                src: &mut src,
                odds: 2,
            }
            .date(),
        };
        let mut out = Vec::new();
        canonical::push_canonical_uri(&text, &mut out);
        prop_assert!(
            out.starts_with(b"/") && out.is_ascii(),
            "canonical URI {:?}",
            out
        );
        out.clear();
        canonical::push_canonical_query(&text, src.below(2) == 0, src.below(2) == 0, &mut out);
        prop_assert!(out.is_ascii(), "canonical query {:?}", out);
        out.clear();
        canonical::push_trimmed(text.as_bytes(), &mut out);
        prop_assert!(
            !out.starts_with(b" ") && !out.ends_with(b" ") && !out.windows(2).any(|w| w == b"  ")
        );
        // Encoding is undone by decoding.
        let mut enc = String::new();
        canonical::uri_encode(text.as_bytes(), src.below(2) == 0, &mut enc);
        prop_assert_eq!(canonical::percent_decode(&enc), text.as_bytes());
        // A date that parses is the date it names.
        if let Some(t) = parse_amz_date(&text) {
            let d = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
            let back = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            );
            prop_assert_eq!(back, text);
        }
        Ok(())
    });
}
