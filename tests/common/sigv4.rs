//! A minimal SigV4 signer (header and presigned forms) for the gateway-side checks of the
//! SigV4 tests; botocore is the independent signer they also drive.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis::auth::sigv4::{canonical, derive_signing_key, sign};

use super::client::Reply;

pub const AKID: &str = "AKIDORDERS";
pub const SECRET: &str = "orders-secret-key-for-tests-only";

pub fn amz_now(offset: i64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + offset;
    let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A minimal signer (header form), for the gateway-side checks; botocore is the
/// independent signer below.
pub struct Signer<'a> {
    pub akid: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub date: String,
}

impl Signer<'_> {
    pub fn new() -> Self {
        Signer {
            akid: AKID,
            secret: SECRET,
            region: "us-east-1",
            date: amz_now(0),
        }
    }

    /// Sign `method path?query` with `headers` (lowercase names) and `body`.
    pub fn sign(
        &self,
        method: &str,
        pq: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::Request<Full<Bytes>> {
        let (path, query) = pq.split_once('?').unwrap_or((pq, ""));
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        all.push(("host".into(), "localhost".into()));
        all.push(("x-amz-date".into(), self.date.clone()));
        all.sort();
        let signed: Vec<(&str, Vec<&[u8]>)> = all
            .iter()
            .map(|(n, v)| (n.as_str(), vec![v.as_bytes()]))
            .collect();
        let payload = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
        let creq = canonical::canonical_request(&canonical::RequestParts {
            method,
            path,
            query,
            presigned: false,
            omit_token: false,
            headers: &signed,
            payload_hash: &payload,
        });
        let scope = format!(
            "{}/{}/execute-api/aws4_request",
            &self.date[..8],
            self.region
        );
        let sts = canonical::string_to_sign(&self.date, &scope, &creq);
        let key = derive_signing_key(self.secret, &self.date[..8], self.region, "execute-api");
        let sig = sign(&key, &sts);
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{pq}"));
        for (n, v) in &all {
            b = b.header(n.as_str(), v.as_str());
        }
        b.header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
                self.akid,
                names.join(";")
            ),
        )
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
    }

    /// A presigned GET URL path and query, valid `expires` seconds.
    pub fn presign(&self, path: &str, expires: u64) -> String {
        self.presign_token(path, expires, None)
    }

    /// [`Signer::presign`] with `X-Amz-Security-Token` among the signed parameters.
    pub fn presign_token(&self, path: &str, expires: u64, token: Option<&str>) -> String {
        let scope = format!(
            "{}/{}/execute-api/aws4_request",
            &self.date[..8],
            self.region
        );
        let mut cred = String::new();
        canonical::uri_encode(
            format!("{}/{scope}", self.akid).as_bytes(),
            false,
            &mut cred,
        );
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}&X-Amz-Date={}&X-Amz-Expires={expires}{}&X-Amz-SignedHeaders=host",
            self.date,
            token.map_or(String::new(), |t| {
                let mut enc = String::new();
                canonical::uri_encode(t.as_bytes(), false, &mut enc);
                format!("&X-Amz-Security-Token={enc}")
            })
        );
        let hosts: Vec<&[u8]> = vec![b"localhost"];
        let creq = canonical::canonical_request(&canonical::RequestParts {
            method: "GET",
            path,
            query: &query,
            presigned: true,
            omit_token: false,
            headers: &[("host", hosts)],
            payload_hash: canonical::EMPTY_SHA256,
        });
        let sts = canonical::string_to_sign(&self.date, &scope, &creq);
        let key = derive_signing_key(self.secret, &self.date[..8], self.region, "execute-api");
        format!("{path}?{query}&X-Amz-Signature={}", sign(&key, &sts))
    }
}

pub fn aws_code(r: &Reply) -> String {
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.headers["x-portcullis-error"], "signature_rejected");
    let code = r.json()["__type"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["x-amzn-errortype"], code.as_str());
    code
}
