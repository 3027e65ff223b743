//! Bearer-token routes end to end: a real gateway, a real JWKS server on 127.0.0.1, tokens
//! signed by aws-lc-rs here and by PyJWT (an independent implementation) in `pyjwt.rs`.

#[path = "../common/mod.rs"]
mod common;
mod pyjwt;
mod support;
mod trailers;

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::client::{self, Reply};
use common::pki::Leaf;
use common::{Opts, Spec, TestPki};
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{b64, jwks, JwksServer, Signer};

pub const ISSUER: &str = "https://idp.test/pool";
pub const CLIENT_ID: &str = "client-1";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Cognito-style access-token claims, with `extra` merged over them (`null` removes one).
pub fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "scope": "orders/read orders/write",
        "sub": "svc-1",
        "iat": now(),
        "exp": now() + 300,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A gateway whose routes use the JWT provider and extra lines described by `body`.
async fn start_with(pki: &TestPki, body: String) -> common::TestGateway {
    common::start(
        pki,
        Spec {
            body,
            ..Spec::default()
        },
    )
    .await
}

/// A provider `name` plus routes: `/` (mtls + jwt, scope orders/read), `/admin` (scope
/// orders/admin) and `/open` (mtls only), all to the echo upstream.
pub fn body(name: &str, jwks_line: &str, extra: &str) -> String {
    format!(
        r#"[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "api"
path_prefix = "/"
upstream = "echo"
auth = ["mtls", "jwt:{name}"]
scopes = ["orders/read"]

[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "echo"
auth = ["mtls", "jwt:{name}"]
scopes = ["orders/read", "orders/admin"]

[[route]]
name = "open"
path_prefix = "/open"
upstream = "echo"

[auth.jwt.{name}]
issuer = "{ISSUER}"
{jwks_line}
algorithms = ["RS256", "ES256", "EdDSA"]
audiences = ["{CLIENT_ID}"]
token_use = "access"
refresh = "1h"
forward_claims = {{ sub = "x-client-sub", client_id = "x-client-id", scope = "x-client-scope", tenant = "x-tenant" }}
{extra}
"#
    )
}

pub async fn call(
    gw: &common::TestGateway,
    pki: &TestPki,
    leaf: &Leaf,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut b = http::Request::get(format!("https://localhost{path}")).header("host", "localhost");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut conn = client::connect(gw.addr, pki, Opts::with(leaf))
        .await
        .unwrap();
    conn.send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

/// Assert a refusal: status, the RFC 6750 challenge, and the reason in the metrics.
pub async fn assert_refused(gw: &common::TestGateway, r: &Reply, status: u16, reason: &str) {
    assert_eq!(r.status.as_u16(), status, "{reason}: {:?}", r.body);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    match reason {
        "jwt_missing" => assert!(!challenge.contains("error="), "{challenge}"),
        "jwt_insufficient_scope" => assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"orders/read orders/admin\""),
            "{challenge}"
        ),
        _ => assert!(challenge.contains("error=\"invalid_token\""), "{challenge}"),
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portcullis_auth_jwt_validations_total")
                && l.contains(&format!("reason=\"{reason}\""))),
        "no metric for {reason}"
    );
}

pub fn metric(metrics: &str, name: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn thumbprint(leaf: &Leaf) -> String {
    let der = CertificateDer::from_pem_slice(leaf.chain_pem.as_bytes()).unwrap();
    b64(Sha256::digest(der.as_ref()))
}

#[tokio::test]
async fn valid_tokens_pass_and_claims_are_forwarded_never_forged() {
    let (rsa, ec, ed) = (Signer::rsa("r1"), Signer::ec("e1"), Signer::ed("d1"));
    let server = JwksServer::start(jwks(&[&rsa, &ec, &ed])).await;
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            body: body("fwd", &format!("jwks_url = \"{}\"", server.url()), ""),
            ..Spec::default()
        },
    )
    .await;
    let leaf = pki.client("a");
    let forged = [("x-client-sub", "admin"), ("x-tenant", "evil")];
    for signer in [&rsa, &ec, &ed] {
        let token = signer.sign(&claims(json!({"tenant": "t-7"})));
        let r = call(&gw, &pki, &leaf, "/orders", Some(&token), &forged).await;
        assert_eq!(r.status, 200, "{}: {:?}", signer.alg(), r.body);
        let h = &r.json()["headers"];
        assert_eq!(h["x-client-sub"], json!(["svc-1"]));
        assert_eq!(h["x-client-id"], json!([CLIENT_ID]));
        assert_eq!(h["x-client-scope"], json!(["orders/read orders/write"]));
        assert_eq!(h["x-tenant"], json!(["t-7"]));
        // Cached now: the same token again is still checked per request and passes.
        let again = call(&gw, &pki, &leaf, "/orders", Some(&token), &[]).await;
        assert_eq!(again.status, 200);
    }
    // A route without a token method still drops the claim headers a client sends.
    let r = call(&gw, &pki, &leaf, "/open", None, &forged).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-tenant").is_none());
    assert!(r.json()["headers"].get("x-client-sub").is_none());

    let m = gw.metrics().await;
    assert!(
        metric(
            &m,
            "portcullis_auth_jwt_cache_hits_total",
            &["provider=\"fwd\""]
        ) >= 3
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_auth_jwt_cache_misses_total",
            &["provider=\"fwd\""]
        ),
        3
    );
    // The access log names the token's client, subject and scopes.
    let mut found = false;
    for _ in 0..100 {
        found = gw.access_log().iter().any(|l| {
            l["client_id"] == CLIENT_ID
                && l["sub"] == "svc-1"
                && l["scopes"] == "orders/read orders/write"
        });
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(found, "{:?}", gw.access_log());
    gw.shutdown().await;
}

#[tokio::test]
async fn each_bad_token_is_refused_with_its_reason() {
    let (rsa, ec) = (Signer::rsa("r1"), Signer::ec("e1"));
    let attacker = Signer::rsa("r1");
    let server = JwksServer::start(jwks(&[&rsa, &ec])).await;
    let pki = TestPki::new();
    let gw = start_with(
        &pki,
        body(
            "bad",
            &format!("jwks_url = \"{}\"", server.url()),
            "max_token_size = \"2KiB\"",
        ),
    )
    .await;
    let leaf = pki.client("a");
    let good = rsa.sign(&claims(json!({})));
    let (h, p, s) = {
        let v: Vec<&str> = good.split('.').collect();
        (v[0].to_owned(), v[1].to_owned(), v[2].to_owned())
    };
    let tampered = format!(
        "{h}.{}.{s}",
        b64(claims(json!({"scope": "orders/read orders/admin"})).to_string())
    );
    let hs256 = {
        // The classic key confusion: HMAC keyed with the issuer's public key.
        let header = b64(r#"{"alg":"HS256","kid":"r1","typ":"JWT"}"#);
        let input = format!("{header}.{p}");
        let key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            rsa.jwk()["n"].as_str().unwrap().as_bytes(),
        );
        format!(
            "{input}.{}",
            b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()))
        )
    };
    let claims_text = claims(json!({})).to_string();
    let dup_claims = format!(
        "{},\"sub\":\"admin\"}}",
        &claims_text[..claims_text.len() - 1]
    );
    let cases: Vec<(&str, String, &str, u16)> = vec![
        ("missing", String::new(), "jwt_missing", 401),
        ("expired", rsa.sign(&claims(json!({"exp": now() - 31}))), "jwt_expired", 401),
        ("exp as text", rsa.sign(&claims(json!({"exp": (now() + 300).to_string()}))), "jwt_bad_time_claim", 401),
        ("no exp", rsa.sign(&claims(json!({"exp": null}))), "jwt_missing_exp", 401),
        ("not yet valid", rsa.sign(&claims(json!({"nbf": now() + 600}))), "jwt_not_yet_valid", 401),
        ("wrong issuer", rsa.sign(&claims(json!({"iss": "https://evil.test"}))), "jwt_wrong_issuer", 401),
        ("wrong client", ec.sign(&claims(json!({"client_id": "other"}))), "jwt_wrong_client_id", 401),
        ("wrong aud", ec.sign(&claims(json!({"aud": "other"}))), "jwt_wrong_audience", 401),
        ("id token", rsa.sign(&claims(json!({"token_use": "id", "aud": CLIENT_ID}))), "jwt_wrong_token_use", 401),
        ("missing scope", rsa.sign(&claims(json!({"scope": "orders/read"}))), "jwt_insufficient_scope", 403),
        ("alg none", format!("{}.{p}.", b64(r#"{"alg":"none","typ":"JWT"}"#)), "jwt_alg_none", 401),
        ("hs256 with public key", hs256, "jwt_alg_hmac", 401),
        ("tampered", tampered, "jwt_bad_signature", 401),
        ("other key same kid", attacker.sign(&claims(json!({}))), "jwt_bad_signature", 401),
        ("oversize", rsa.sign(&claims(json!({"pad": "x".repeat(3000)}))), "jwt_too_large", 401),
        ("bad base64", format!("{h}.{p}!.{s}"), "jwt_bad_base64", 401),
        ("bad json", rsa.sign_raw(r#"{"alg":"RS256","kid":"r1"}"#, "{not json"), "jwt_bad_json", 401),
        ("duplicate claim", rsa.sign_raw(r#"{"alg":"RS256","kid":"r1"}"#, &dup_claims), "jwt_duplicate_name", 401),
        ("crit", rsa.sign_raw(r#"{"alg":"RS256","kid":"r1","crit":["b64"],"b64":true}"#, &claims_text), "jwt_crit_unsupported", 401),
        ("crit empty", rsa.sign_raw(r#"{"alg":"RS256","kid":"r1","crit":[]}"#, &claims_text), "jwt_crit_empty", 401),
        ("crit registered", rsa.sign_raw(r#"{"alg":"RS256","kid":"r1","crit":["alg"]}"#, &claims_text), "jwt_crit_registered", 401),
        ("alg not allowed", rsa.sign_raw(r#"{"alg":"PS256","kid":"r1"}"#, &claims_text), "jwt_alg_not_allowed", 401),
        ("key for another alg", rsa.sign_raw(r#"{"alg":"ES256","kid":"r1"}"#, &claims_text), "jwt_key_alg_mismatch", 401),
        ("unknown kid", Signer::ec("nobody").sign(&claims(json!({}))), "jwt_unknown_kid", 401),
        (
            "embedded jwk is not trusted",
            attacker.sign_raw(
                &json!({"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk(), "jku": server.url()}).to_string(),
                &claims_text,
            ),
            "jwt_unknown_kid",
            401,
        ),
        (
            "bound to another certificate",
            rsa.sign(&claims(json!({"cnf": {"x5t#S256": thumbprint(&pki.client("b"))}}))),
            "jwt_certificate_mismatch",
            401,
        ),
    ];
    for (what, token, reason, status) in &cases {
        let token = (!token.is_empty()).then_some(token.as_str());
        let path = if *reason == "jwt_insufficient_scope" {
            "/admin"
        } else {
            "/orders"
        };
        let r = call(&gw, &pki, &leaf, path, token, &[]).await;
        assert_eq!(r.status.as_u16(), *status, "{what}: {:?}", r.body);
        assert_refused(&gw, &r, *status, reason).await;
        assert_eq!(
            r.json()["error"],
            if *status == 403 {
                "forbidden"
            } else {
                "unauthenticated"
            }
        );
    }
    // The good token still passes, and a wrong scheme is not a bearer token.
    assert_eq!(
        call(&gw, &pki, &leaf, "/orders", Some(&good), &[])
            .await
            .status,
        200
    );
    let basic = call(
        &gw,
        &pki,
        &leaf,
        "/orders",
        None,
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_refused(&gw, &basic, 401, "jwt_not_bearer").await;
    let bearer = format!("Bearer {good}");
    let two = call(
        &gw,
        &pki,
        &leaf,
        "/orders",
        Some(&good),
        &[("authorization", &bearer)],
    )
    .await;
    assert_refused(&gw, &two, 401, "jwt_malformed").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn certificate_bound_token_works_only_on_its_certificate() {
    let rsa = Signer::rsa("r1");
    let server = JwksServer::start(jwks(&[&rsa])).await;
    let pki = TestPki::new();
    let gw = start_with(
        &pki,
        body(
            "bound",
            &format!("jwks_url = \"{}\"", server.url()),
            "require_certificate_binding = true",
        ),
    )
    .await;
    let (a, b) = (pki.client("a"), pki.client("b"));
    let token = rsa.sign(&claims(json!({"cnf": {"x5t#S256": thumbprint(&a)}})));
    // Twice on its own certificate (the second from the cache), then stolen: refused
    // although the validation result is cached.
    for _ in 0..2 {
        assert_eq!(
            call(&gw, &pki, &a, "/orders", Some(&token), &[])
                .await
                .status,
            200
        );
    }
    let stolen = call(&gw, &pki, &b, "/orders", Some(&token), &[]).await;
    assert_refused(&gw, &stolen, 401, "jwt_certificate_mismatch").await;
    let unbound = rsa.sign(&claims(json!({})));
    let r = call(&gw, &pki, &a, "/orders", Some(&unbound), &[]).await;
    assert_refused(&gw, &r, 401, "jwt_unbound_token").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn rotated_key_works_without_restart_and_issuer_outage_keeps_known_keys() {
    let (old, new) = (Signer::ec("old"), Signer::ec("new"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let pki = TestPki::new();
    let gw = start_with(
        &pki,
        body(
            "rot",
            &format!("jwks_url = \"{}\"", server.url()),
            "kid_miss_refetch_interval = \"1ms\"",
        ),
    )
    .await;
    let leaf = pki.client("a");
    let fresh = call(
        &gw,
        &pki,
        &leaf,
        "/",
        Some(&new.sign(&claims(json!({})))),
        &[],
    )
    .await;
    assert_refused(&gw, &fresh, 401, "jwt_unknown_kid").await;
    let before = server.count();
    // The issuer rotates: the unknown kid triggers a refetch and is then accepted.
    server.publish(jwks(&[&old, &new]));
    let r = call(
        &gw,
        &pki,
        &leaf,
        "/",
        Some(&new.sign(&claims(json!({})))),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(server.count(), before + 1);

    // The issuer goes down: new tokens signed by known keys keep working, unknown kids fail.
    server.set_up(false);
    let unknown = Signer::ec("later").sign(&claims(json!({})));
    let r = call(&gw, &pki, &leaf, "/", Some(&unknown), &[]).await;
    assert_refused(&gw, &r, 401, "jwt_unknown_kid").await;
    let m = gw.metrics().await;
    assert!(
        metric(
            &m,
            "portcullis_auth_jwks_fetches_total",
            &["provider=\"rot\"", "result=\"failed\""]
        ) >= 1
    );
    for signer in [&old, &new] {
        let t = signer.sign(&claims(json!({"sub": "after-outage"})));
        assert_eq!(call(&gw, &pki, &leaf, "/", Some(&t), &[]).await.status, 200);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() {
    let rsa = Signer::rsa("r1");
    let server = JwksServer::start(jwks(&[&rsa])).await;
    let pki = TestPki::new();
    let gw = start_with(
        &pki,
        body(
            "flood",
            &format!("jwks_url = \"{}\"", server.url()),
            "kid_miss_refetch_interval = \"1h\"",
        ),
    )
    .await;
    let leaf = pki.client("a");
    let before = server.count();
    let bogus = Signer::ec("x");
    let tokens = (0..40)
        .map(|i| {
            let header = json!({"alg": "ES256", "kid": format!("bogus-{i}")});
            bogus.sign_raw(&header.to_string(), &claims(json!({})).to_string())
        })
        .collect();
    let results = send_all(&gw, &pki, &leaf, tokens).await;
    assert!(results.iter().all(|s| *s == 401));
    assert!(
        server.count() - before <= 1,
        "{} fetches",
        server.count() - before
    );
    // The known key is unaffected.
    let ok = rsa.sign(&claims(json!({})));
    assert_eq!(
        call(&gw, &pki, &leaf, "/", Some(&ok), &[]).await.status,
        200
    );
    gw.shutdown().await;
}

/// Send every token concurrently, each on its own connection; return the statuses.
async fn send_all(
    gw: &common::TestGateway,
    pki: &TestPki,
    leaf: &Leaf,
    tokens: Vec<String>,
) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        let cfg = std::sync::Arc::new(client::tls_config(pki, &Opts::with(leaf)));
        let addr = gw.addr;
        set.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(
                    rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                    tcp,
                )
                .await
                .unwrap();
            let (mut tx, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = http::Request::get("/")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            tx.send_request(req).await.unwrap().status().as_u16()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test]
async fn jwks_file_is_hot_reloaded() {
    let (a, b) = (Signer::ed("a"), Signer::rsa("b"));
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&a])).unwrap();
    let gw = common::start(
        &pki,
        Spec {
            body: body("file", &format!("jwks_file = \"{}\"", path.display()), ""),
            ..Spec::default()
        },
    )
    .await;
    let leaf = pki.client("a");
    let tb = b.sign(&claims(json!({})));
    assert_eq!(
        call(
            &gw,
            &pki,
            &leaf,
            "/",
            Some(&a.sign(&claims(json!({})))),
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(&gw, &pki, &leaf, "/", Some(&tb), &[]).await.status,
        401
    );
    // A broken file is refused and the last good set keeps serving.
    std::fs::write(&path, "{\"keys\": [").unwrap();
    let mut refused = false;
    for _ in 0..100 {
        let m = gw.metrics().await;
        refused = metric(
            &m,
            "portcullis_auth_jwks_fetches_total",
            &["provider=\"file\"", "result=\"invalid\""],
        ) > 0;
        if refused {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the broken file was not noticed");
    assert_eq!(
        call(
            &gw,
            &pki,
            &leaf,
            "/",
            Some(&a.sign(&claims(json!({})))),
            &[]
        )
        .await
        .status,
        200
    );
    std::fs::write(&path, jwks(&[&a, &b])).unwrap();
    let mut status = 0;
    for _ in 0..100 {
        status = call(&gw, &pki, &leaf, "/", Some(&tb), &[])
            .await
            .status
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the new key was not picked up");
    gw.shutdown().await;
}

#[tokio::test]
async fn start_fails_clearly_when_the_first_jwks_fetch_fails() {
    let server = JwksServer::start(String::new()).await;
    server.set_up(false);
    let pki = TestPki::new();
    let (_dir, path) = common::write_config(
        &pki,
        &Spec {
            body: body("down", &format!("jwks_url = \"{}\"", server.url()), ""),
            ..Spec::default()
        },
    );
    let config = portcullis::config::load(&path).unwrap();
    let err = match portcullis::server::start(&config).await {
        Ok(_) => panic!("started without a JWKS"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("auth.jwt.down: first JWKS fetch failed"),
        "{err}"
    );
}

#[tokio::test]
async fn https_jwks_is_fetched_with_the_configured_ca_only() {
    let ec = Signer::ec("e1");
    let pki = TestPki::new();
    let server =
        JwksServer::start_tls(jwks(&[&ec]), &pki.server.chain_pem, &pki.server.key_pem).await;
    let dir = tempfile::tempdir().unwrap();
    let (good_ca, other_ca) = (
        dir.path().join("issuer-ca.pem"),
        dir.path().join("other-ca.pem"),
    );
    std::fs::write(&good_ca, pki.root_pem()).unwrap();
    std::fs::write(&other_ca, TestPki::named("other").root_pem()).unwrap();
    let jwks_line = |ca: &std::path::Path| {
        format!(
            "jwks_url = \"{}\"\njwks_ca = \"{}\"",
            server.https_url(),
            ca.display()
        )
    };
    let gw = common::start(
        &pki,
        Spec {
            body: body("tls", &jwks_line(&good_ca), ""),
            ..Spec::default()
        },
    )
    .await;
    let token = ec.sign(&claims(json!({})));
    let r = call(&gw, &pki, &pki.client("a"), "/", Some(&token), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;

    // An issuer certificate that does not chain to jwks_ca: no keys, no start.
    let (_d, path) = common::write_config(
        &pki,
        &Spec {
            body: body("tls-other", &jwks_line(&other_ca), ""),
            ..Spec::default()
        },
    );
    let config = portcullis::config::load(&path).unwrap();
    let err = match portcullis::server::start(&config).await {
        Ok(_) => panic!("started with an untrusted JWKS server"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("first JWKS fetch failed: TLS"), "{err}");

    // A jwks_ca without a certificate (empty, or a key by mistake) trusts nothing: refused
    // by name at start and by `check`, not later as a TLS failure against the server.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &pki.server.key_pem).unwrap();
    for ca in [&empty, &key] {
        let (_d, path) = common::write_config(
            &pki,
            &Spec {
                body: body("tls-empty", &jwks_line(ca), ""),
                ..Spec::default()
            },
        );
        let config = portcullis::config::load(&path).unwrap();
        let err = match portcullis::server::start(&config).await {
            Ok(_) => panic!("started with a CA bundle holding no certificate"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("auth.jwt.tls-empty")
                && err.contains("CA bundle: no CERTIFICATE PEM block found"),
            "{err}"
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("no CERTIFICATE PEM block found"), "{text}");
    }
}

#[tokio::test]
async fn background_refresh_is_conditional_and_picks_up_new_keys() {
    let (old, new) = (Signer::rsa("old"), Signer::ec("new"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let pki = TestPki::new();
    let gw = start_with(
        &pki,
        body(
            "refresh",
            &format!("jwks_url = \"{}\"", server.url()),
            "kid_miss_refetch_interval = \"1h\"\nrefresh = \"50ms\"",
        )
        .replace("refresh = \"1h\"\n", ""),
    )
    .await;
    let leaf = pki.client("a");
    // Spend the kid-miss refetch: from now on only the schedule can bring new keys.
    let token = new.sign(&claims(json!({})));
    let r = call(&gw, &pki, &leaf, "/", Some(&token), &[]).await;
    assert_refused(&gw, &r, 401, "jwt_unknown_kid").await;
    for _ in 0..200 {
        if server
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        server
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "no conditional refresh"
    );
    server.publish(jwks(&[&old, &new]));
    let mut status = 0;
    for _ in 0..200 {
        status = call(&gw, &pki, &leaf, "/", Some(&token), &[])
            .await
            .status
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, 200,
        "the scheduled refresh did not bring the new key"
    );
    gw.shutdown().await;
}

/// Issue 18, item 14: the backend never sees the client's bearer token unless the provider
/// says `forward_token = true` (a backend that saw it could replay it elsewhere).
#[tokio::test]
async fn the_bearer_token_is_removed_before_forwarding_unless_forward_token() {
    let ec = Signer::ec("e1");
    let server = JwksServer::start(jwks(&[&ec])).await;
    let pki = TestPki::new();
    let leaf = pki.client("a");
    let token = ec.sign(&claims(json!({})));
    for (extra, forwarded) in [("", false), ("forward_token = true", true)] {
        let gw = start_with(
            &pki,
            body("idp", &format!("jwks_url = \"{}\"", server.url()), extra),
        )
        .await;
        let r = call(&gw, &pki, &leaf, "/orders", Some(&token), &[]).await;
        assert_eq!(r.status, 200, "{extra}: {:?}", r.body);
        let seen = r.json()["headers"].get("authorization").cloned();
        if forwarded {
            assert_eq!(seen, Some(json!([format!("Bearer {token}")])), "{extra}");
        } else {
            assert_eq!(seen, None, "the token reached the backend");
            // The claims still arrive in their headers.
            assert_eq!(r.json()["headers"]["x-client-sub"], json!(["svc-1"]));
        }
        gw.shutdown().await;
    }
}
