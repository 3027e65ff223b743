//! Bearer-token validation cost: a full check (parse, signature, claims) of an ES256 and an
//! RS256 access token, and the cache hit that replaces it for a token seen before (hash +
//! lookup). Run: `cargo bench --bench jwt`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::auth::jwt::cache::{self, TokenCache};
use portcullis::auth::jwt::jwks::Keyset;
use portcullis::auth::jwt::token;
use portcullis::config::{JwksSource, JwtAlg, JwtConfig};
use serde_json::json;

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn config() -> JwtConfig {
    JwtConfig {
        name: "bench".into(),
        issuer: "https://idp.test".into(),
        jwks: JwksSource::File("jwks.json".into()),
        algorithms: vec![JwtAlg::RS256, JwtAlg::ES256],
        audiences: vec!["client-1".into()],
        token_use: Some("access".into()),
        leeway: Duration::from_secs(30),
        max_token_size: 8192,
        refresh: Duration::from_secs(600),
        forward_claims: vec![
            ("sub".into(), http::HeaderName::from_static("x-client-sub")),
            (
                "scope".into(),
                http::HeaderName::from_static("x-client-scope"),
            ),
        ],
        require_certificate_binding: false,
        forward_token: false,
        jwks_ca: None,
        kid_miss_refetch_interval: Duration::from_secs(30),
    }
}

/// (ES256 token, RS256 token, JWKS with both keys), Cognito-like claims.
fn material() -> (String, String, String) {
    let rng = SystemRandom::new();
    let claims = json!({
        "iss": "https://idp.test", "client_id": "client-1", "token_use": "access",
        "scope": "orders/read orders/write", "sub": "svc-1", "iat": now(), "exp": now() + 3600,
        "jti": "5f1c7a7e-8b0e-4d6c-9a53-3c1b2f5e9d10",
    })
    .to_string();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .unwrap();
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"ES256","kid":"e1","typ":"JWT"}"#),
        b64(&claims)
    );
    let es = format!("{input}.{}", b64(ec.sign(&rng, input.as_bytes()).unwrap()));
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"RS256","kid":"r1","typ":"JWT"}"#),
        b64(&claims)
    );
    let mut sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(
        &signature::RSA_PKCS1_SHA256,
        &rng,
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let rs = format!("{input}.{}", b64(sig));
    let p = ec.public_key().as_ref();
    let c = PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
    let jwks = json!({"keys": [
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])},
        {"kty": "RSA", "kid": "r1", "n": b64(&c.n), "e": b64(&c.e)},
    ]})
    .to_string();
    (es, rs, jwks)
}

fn validation(c: &mut Criterion) {
    let cfg = config();
    let (es, rs, jwks) = material();
    let keys = Keyset::parse(jwks.as_bytes(), &cfg.algorithms).unwrap();
    let now = now();
    for (name, tok) in [("es256", &es), ("rs256", &rs)] {
        c.bench_function(&format!("jwt/{name}/uncached"), |b| {
            b.iter(|| {
                let parsed = token::parse(black_box(tok), &cfg).unwrap();
                parsed.verify_signature(&keys).unwrap();
                black_box(parsed.check_claims(&cfg, now).unwrap())
            })
        });
        let cache = TokenCache::new(100_000);
        let parsed = token::parse(tok, &cfg).unwrap();
        let v = Arc::new(parsed.check_claims(&cfg, now).unwrap());
        cache.insert(cache::hash(tok), v.clone(), 1, v.valid_until, now);
        c.bench_function(&format!("jwt/{name}/cached"), |b| {
            b.iter(|| black_box(cache.get(&cache::hash(black_box(tok)), 1, now).unwrap()))
        });
    }
}

criterion_group!(benches, validation);
criterion_main!(benches);
