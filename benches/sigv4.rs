//! SigV4 verification cost: a typical signed GET and a 64 KiB POST (body hashed), each
//! cold (signing key derived: a fresh verifier per run) and warm (key from the cache).
//! Run: `cargo bench --bench sigv4`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderValue};
use portcullis::auth::sigv4::{
    canonical, derive_signing_key, parse_amz_date, sign, Credential, CredentialSource, LookupError,
    SignedRequest, Verifier,
};
use portcullis::config::Sigv4Config;
use sha2::Digest;

const DATE: &str = "20261129T120000Z";

#[derive(Debug)]
struct One(Arc<Credential>);

impl CredentialSource for One {
    fn lookup(&self, _: &str, _: Option<&str>) -> Result<Arc<Credential>, LookupError> {
        Ok(self.0.clone())
    }
}

fn verifier() -> Verifier {
    let cred = Arc::new(Credential {
        access_key_id: Arc::from("AKIDBENCH"),
        secret_access_key: Arc::from("bench-secret"),
        principal: Arc::from("svc-bench"),
        attributes: Default::default(),
        session_token: None,
        principal_header: HeaderValue::from_static("svc-bench"),
        access_key_header: HeaderValue::from_static("AKIDBENCH"),
        attributes_header: None,
        session: None,
    });
    let config = Sigv4Config {
        regions: vec!["us-east-1".into()],
        services: vec!["execute-api".into()],
        credentials_file: Default::default(),
        max_skew: Duration::from_secs(300),
        max_presign_expiry: Duration::from_secs(3600),
        max_payload_buffer: 1 << 20,
        allow_unsigned_payload: false,
        sessions: false,
    };
    Verifier::new(&config, Arc::new(One(cred)))
}

/// Headers of a request signed like an SDK does (host, content-type, x-amz-date).
fn signed(method: &str, path: &str, query: &str, body: &[u8]) -> HeaderMap {
    let hv: [(&str, &str); 3] = [
        ("content-type", "application/json"),
        ("host", "api.example.test"),
        ("x-amz-date", DATE),
    ];
    let list: Vec<(&str, Vec<&[u8]>)> = hv.iter().map(|(n, v)| (*n, vec![v.as_bytes()])).collect();
    let payload = hex::encode(sha2::Sha256::digest(body));
    let creq = canonical::canonical_request(&canonical::RequestParts {
        method,
        path,
        query,
        presigned: false,
        omit_token: false,
        headers: &list,
        payload_hash: &payload,
    });
    let scope = "20261129/us-east-1/execute-api/aws4_request";
    let sts = canonical::string_to_sign(DATE, scope, &creq);
    let sig = sign(
        &derive_signing_key("bench-secret", "20261129", "us-east-1", "execute-api"),
        &sts,
    );
    let mut h = HeaderMap::new();
    for (n, v) in hv {
        h.insert(n, HeaderValue::from_static(v));
    }
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDBENCH/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
        ))
        .unwrap(),
    );
    h
}

fn bench(c: &mut Criterion) {
    let now = parse_amz_date(DATE).unwrap();
    let big = vec![b'x'; 64 * 1024];
    let cases: [(&str, &str, &str, &str, &[u8]); 2] = [
        ("get", "GET", "/orders/123/items", "limit=10&page=2", b""),
        ("post_64k", "POST", "/orders", "", &big),
    ];
    for (name, method, path, query, body) in cases {
        let headers = signed(method, path, query, body);
        let req = SignedRequest {
            method,
            path,
            query,
            headers: &headers,
            host: None,
            body,
        };
        let warm = verifier();
        assert!(warm.verify(&req, now).is_ok());
        c.bench_function(&format!("sigv4_verify_{name}_cached_key"), |b| {
            b.iter(|| black_box(warm.verify(black_box(&req), now).is_ok()))
        });
        c.bench_function(&format!("sigv4_verify_{name}_cold"), |b| {
            b.iter_batched(
                verifier,
                |v| black_box(v.verify(black_box(&req), now).is_ok()),
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
