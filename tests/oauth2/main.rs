//! The OAuth2 token service end to end: a real gateway on 127.0.0.1 with `[issuer.oauth2]`,
//! a PKI made at run time, a Rust TLS client here and real Python clients (authlib,
//! requests-oauthlib, PyJWT) in `python.rs`.

#[path = "../common/mod.rs"]
mod common;
mod python;
mod revocation;
mod support;

use std::time::Duration;

use serde_json::json;
use support::{audit_lines, call, claims, connect, header, post, DEFAULT_LIMITS, ISSUER};

/// (case, connection certificate, form, Basic credentials, status, error, audit reason).
type Refusal<'a> = (
    &'a str,
    Option<&'a common::pki::Leaf>,
    String,
    Option<(&'a str, &'a str)>,
    u16,
    &'a str,
    &'a str,
);

/// Every way to get a token, what it holds, and every refusal with its error code, its
/// audit reason and its metric.
#[tokio::test]
async fn token_endpoint_issues_bound_cognito_style_tokens_and_refuses_with_codes() {
    let s = support::start(DEFAULT_LIMITS).await;
    let form = "grant_type=client_credentials&scope=orders%2Fread";

    // client_secret_basic over a connection without a certificate.
    let mut anon = connect(&s, None).await;
    let r = post(
        &mut anon,
        "/oauth2/token",
        form,
        Some(("orders-svc", &s.secrets.orders)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let body = r.json();
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(900))
    );
    assert_eq!(body["scope"], "orders/read");
    let t = body["access_token"].as_str().unwrap();
    let c = claims(t);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some("orders-svc"), Some("orders-svc"))
    );
    assert_eq!(
        (c["token_use"].as_str(), c["version"].as_i64()),
        (Some("access"), Some(2))
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert_eq!(c["auth_time"], c["iat"]);
    assert!(c.get("aud").is_none() && c.get("cnf").is_none(), "{c}");
    assert_eq!(c["jti"].as_str().unwrap().len(), 36);
    assert_eq!(header(t)["alg"], "ES256");

    // client_secret_post, no scope asked: all of the client's; over a certificate
    // connection: bound to that certificate.
    let mut with_cert = connect(&s, Some(&s.other)).await;
    let r = post(
        &mut with_cert,
        "/oauth2/token",
        &format!(
            "grant_type=client_credentials&client_id=orders-svc&client_secret={}",
            s.secrets.orders
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["scope"], "orders/read orders/write");
    let bound = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(bound["cnf"]["x5t#S256"].as_str().unwrap().len(), 43);

    // tls_client_auth: the registered certificate and the form's client_id, no secret.
    let mut cert = connect(&s, Some(&s.cert_client)).await;
    let r = post(
        &mut cert,
        "/oauth2/token",
        "grant_type=client_credentials&client_id=cert-svc",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(claims(r.json()["access_token"].as_str().unwrap())["cnf"]["x5t#S256"].is_string());

    // An operator-chosen secret, hashed with argon2id.
    let r = post(
        &mut anon,
        "/oauth2/token",
        form,
        Some(("argon-svc", support::ARGON_SECRET)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Refusals: (connection, form, basic) → status, error, audit reason.
    let wrong = "not-the-secret";
    // 2-byte characters, longer than any client id: the audit line cuts it, never mid-character.
    let long_id = format!("a{}", "é".repeat(100));
    let cases: Vec<Refusal> = vec![
        (
            "wrong secret",
            None,
            form.into(),
            Some(("orders-svc", wrong)),
            401,
            "invalid_client",
            "wrong_secret",
        ),
        (
            "unknown client",
            None,
            form.into(),
            Some(("nobody", wrong)),
            401,
            "invalid_client",
            "unknown_client",
        ),
        (
            "wrong secret, post",
            None,
            format!("{form}&client_id=orders-svc&client_secret={wrong}"),
            None,
            400,
            "invalid_client",
            "wrong_secret",
        ),
        (
            "disabled client",
            None,
            form.into(),
            Some(("disabled-svc", &s.secrets.disabled)),
            400,
            "unauthorized_client",
            "client_disabled",
        ),
        (
            "scope not allowed",
            None,
            "grant_type=client_credentials&scope=orders%2Fadmin".into(),
            Some(("orders-svc", &s.secrets.orders)),
            400,
            "invalid_scope",
            "scope_not_allowed",
        ),
        (
            "unsupported grant",
            None,
            "grant_type=password&username=a&password=b".into(),
            Some(("orders-svc", &s.secrets.orders)),
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
        ),
        (
            "missing grant_type",
            None,
            "scope=orders%2Fread".into(),
            Some(("orders-svc", &s.secrets.orders)),
            400,
            "invalid_request",
            "missing_grant_type",
        ),
        (
            "certificate client without it",
            None,
            "grant_type=client_credentials&client_id=cert-svc".into(),
            None,
            400,
            "invalid_client",
            "certificate_required",
        ),
        (
            "certificate client with another's",
            Some(&s.other),
            "grant_type=client_credentials&client_id=cert-svc".into(),
            None,
            400,
            "invalid_client",
            "certificate_mismatch",
        ),
        (
            "argon2 client, wrong secret",
            None,
            form.into(),
            Some(("argon-svc", wrong)),
            401,
            "invalid_client",
            "wrong_secret",
        ),
        (
            "a long non-ASCII client id",
            None,
            form.into(),
            Some((&long_id, wrong)),
            401,
            "invalid_client",
            "unknown_client",
        ),
    ];
    let mut bodies = Vec::new();
    for (name, leaf, form, basic, status, error, _) in &cases {
        let mut c = connect(&s, *leaf).await;
        let r = post(&mut c, "/oauth2/token", form, *basic).await;
        assert_eq!(r.status.as_u16(), *status, "{name}: {:?}", r.body);
        assert_eq!(r.json()["error"], *error, "{name}");
        assert_eq!(r.headers["cache-control"], "no-store", "{name}");
        assert_eq!(
            r.headers.contains_key("www-authenticate"),
            *status == 401,
            "{name}"
        );
        if *status == 401 {
            assert!(
                r.headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic"),
                "{name}"
            );
        }
        bodies.push(r.body.clone());
    }
    // A wrong secret and an unknown client get byte-identical answers.
    assert_eq!(bodies[0], bodies[1]);

    let audit = audit_lines(&s.gw, 4 + cases.len()).await;
    assert_eq!(audit.len(), 4 + cases.len(), "{audit:?}");
    assert_eq!(audit[0]["result"], "issued");
    assert_eq!(audit[0]["auth_method"], "client_secret_basic");
    assert_eq!(audit[1]["auth_method"], "client_secret_post");
    assert_eq!(audit[2]["auth_method"], "tls_client_auth");
    assert!(audit[2]["certificate_fingerprint"].is_string());
    assert_eq!(audit[0]["granted_scope"], "orders/read");
    assert_eq!(audit[0]["jti"], c["jti"]);
    for (line, (name, .., reason)) in audit[4..].iter().zip(&cases) {
        assert_eq!(
            (line["result"].as_str(), line["reason"].as_str()),
            (Some("refused"), Some(*reason)),
            "{name}"
        );
    }
    let text = std::fs::read_to_string(s.gw.dir.path().join("access.log")).unwrap();
    assert!(
        !text.contains(&s.secrets.orders) && !text.contains(t),
        "no secret or token in the log"
    );
    let metrics = s.gw.metrics().await;
    common::assert_metric_at_least(
        &metrics,
        "portcullis_issuer_tokens_total",
        &[
            "client=\"orders-svc\"",
            "result=\"issued\"",
            "reason=\"ok\"",
        ],
        2.0,
    );
    common::assert_metric_at_least(
        &metrics,
        "portcullis_issuer_tokens_total",
        &["client=\"unknown\"", "reason=\"unknown_client\""],
        1.0,
    );
    common::assert_metric_at_least(
        &metrics,
        "portcullis_issuer_tokens_total",
        &["client=\"cert-svc\"", "reason=\"certificate_mismatch\""],
        1.0,
    );
    s.gw.shutdown().await;
}

/// A token bound to a certificate is usable with it, refused with another client's; the
/// claims reach the backend.
#[tokio::test]
async fn a_bound_token_works_with_its_certificate_only() {
    let s = support::start(DEFAULT_LIMITS).await;
    let token = support::orders_token(&s, Some(&s.other)).await;
    let mut own = connect(&s, Some(&s.other)).await;
    let r = call(&mut own, "/orders", &token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["headers"]["x-client-id"], json!(["orders-svc"]));
    assert_eq!(
        r.json()["headers"]["x-client-scope"],
        json!(["orders/read"])
    );
    let mut theirs = connect(&s, Some(&s.cert_client)).await;
    let r = call(&mut theirs, "/orders", &token).await;
    support::assert_jwt_refused(&s.gw, &r, "jwt_certificate_mismatch").await;
    s.gw.shutdown().await;
}

/// The metadata documents and the JWKS.
#[tokio::test]
async fn metadata_and_jwks_are_served() {
    let s = support::start(DEFAULT_LIMITS).await;
    let mut c = connect(&s, None).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = c.get(path).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        let m = r.json();
        assert_eq!(m["issuer"], ISSUER);
        assert_eq!(m["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/oauth2/revoke"));
        assert_eq!(
            m["introspection_endpoint"],
            format!("{ISSUER}/oauth2/introspect")
        );
        assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("tls_client_auth")));
        assert_eq!(m["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            m["scopes_supported"],
            json!(["orders/read", "orders/write"])
        );
    }
    let jwks = c.get("/.well-known/jwks.json").await.unwrap().json();
    let token = support::orders_token(&s, None).await;
    assert_eq!(jwks["keys"][0]["kid"], header(&token)["kid"]);
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    let r = c
        .send(common::client::request("GET", "/oauth2/token"))
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    s.gw.shutdown().await;
}

/// The (N+1)th request of a burst gets 429 with Retry-After, counted by limit.
#[tokio::test]
async fn past_the_burst_the_token_endpoint_answers_429_with_retry_after() {
    let s = support::start("{ per_client = \"1000/s\", per_address = \"1/m\", burst = 3 }").await;
    let mut c = connect(&s, None).await;
    let form = "grant_type=client_credentials";
    for i in 0..3 {
        let r = post(
            &mut c,
            "/oauth2/token",
            form,
            Some(("orders-svc", &s.secrets.orders)),
        )
        .await;
        assert_eq!(r.status, 200, "request {i}: {:?}", r.body);
    }
    let r = post(
        &mut c,
        "/oauth2/token",
        form,
        Some(("orders-svc", &s.secrets.orders)),
    )
    .await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let audit = audit_lines(&s.gw, 4).await;
    assert_eq!(audit[3]["reason"], "rate_limited");
    common::assert_metric_at_least(
        &s.gw.metrics().await,
        "portcullis_issuer_rate_limited_total",
        &["limit=\"per_address\""],
        1.0,
    );
    s.gw.shutdown().await;
}

/// A new key in the folder: old tokens keep working, new ones carry the new kid.
#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let s = support::start(DEFAULT_LIMITS).await;
    let old = support::orders_token(&s, Some(&s.other)).await;
    let old_kid = header(&old)["kid"].clone();
    // Key files are named by the second: make sure the new one sorts after.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    portcullis::issuer::keys::generate(&s.gw.dir.path().join("oauth-keys")).unwrap();
    let new = support::token_when(&s, |t| header(t)["kid"] != old_kid).await;
    assert_ne!(header(&new)["kid"], old_kid, "the new key never signed");
    let mut c = connect(&s, Some(&s.other)).await;
    for t in [&old, &new] {
        let r = call(&mut c, "/orders", t).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let jwks = c.get("/.well-known/jwks.json").await.unwrap().json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    // An RSA key whose name sorts last signs RS256 tokens, accepted on the route too.
    {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use base64::Engine;
        let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<Pkcs8V1Der>::as_der(&k).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let label = "PRIVATE KEY";
        let pem = format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n");
        std::fs::write(
            s.gw.dir.path().join("oauth-keys/key-99991231T235959Z.pem"),
            pem,
        )
        .unwrap();
    }
    let rsa = support::token_when(&s, |t| header(t)["alg"] == "RS256").await;
    assert_eq!(header(&rsa)["alg"], "RS256");
    for t in [&old, &new, &rsa] {
        assert_eq!(call(&mut c, "/orders", t).await.status, 200);
    }
    s.gw.shutdown().await;
}

/// The registry reloads: a new client works without a restart; a broken file keeps the
/// previous registry and is reported.
#[tokio::test]
async fn the_registry_hot_reloads_and_a_broken_file_keeps_the_previous_one() {
    let s = support::start(DEFAULT_LIMITS).await;
    let file = s.gw.dir.path().join("oauth-clients.toml");
    let secret = portcullis::issuer::oauth2::registry_edit::add_client(
        &file,
        "new-svc",
        &["orders/read".into()],
        None,
    )
    .unwrap();
    let mut c = connect(&s, None).await;
    let form = "grant_type=client_credentials";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = post(&mut c, "/oauth2/token", form, Some(("new-svc", &secret))).await;
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new client was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(
        &file,
        "[[client]]\nclient_id = \"x\"\nsecret_hash = \"plaintext!\"\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::metric(
        &s.gw.metrics().await,
        "portcullis_issuer_registry_reloads_total",
        &["result=\"failure\""],
    ) < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken file was never reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post(&mut c, "/oauth2/token", form, Some(("new-svc", &secret))).await;
    assert_eq!(
        r.status, 200,
        "the previous registry keeps serving: {:?}",
        r.body
    );
    s.gw.shutdown().await;
}

/// The per-client limit applies to the id claimed, registered or not, so a 429 does not
/// tell which ids exist.
#[tokio::test]
async fn the_per_client_limit_counts_registered_and_unknown_ids_alike() {
    // The burst is shared by both limits: the per-address one refills every microsecond, so
    // it never answers first (at 1000/s, two requests within 1 ms were refused per address).
    let s =
        support::start("{ per_client = \"1/m\", per_address = \"1000000/s\", burst = 2 }").await;
    let mut c = connect(&s, None).await;
    let form = "grant_type=client_credentials";
    for (id, secret, first) in [
        ("orders-svc", s.secrets.orders.as_str(), 200),
        ("nobody", "x", 401),
    ] {
        for _ in 0..2 {
            let r = post(&mut c, "/oauth2/token", form, Some((id, secret))).await;
            assert_eq!(r.status, first, "{id}: {:?}", r.body);
        }
        let r = post(&mut c, "/oauth2/token", form, Some((id, secret))).await;
        assert_eq!(r.status, 429, "{id}: {:?}", r.body);
        assert!(r.headers.contains_key("retry-after"));
    }
    common::assert_metric_at_least(
        &s.gw.metrics().await,
        "portcullis_issuer_rate_limited_total",
        &["limit=\"per_client\""],
        2.0,
    );
    s.gw.shutdown().await;
}
