//! A JWT provider's `forward_claims` headers cannot be forged in a request's trailers.

use std::time::Duration;

use serde_json::json;

use crate::common::origin;
use crate::common::{self, client, Spec, TestPki};
use crate::support::{jwks, JwksServer, Signer};
use crate::{claims, CLIENT_ID, ISSUER};

#[tokio::test]
async fn forwarded_claim_headers_are_not_taken_from_trailers() {
    let signer = Signer::ec("e1");
    let server = JwksServer::start(jwks(&[&signer])).await;
    let (backend, raw) = origin::raw_once().await;
    let pki = TestPki::new();
    let body = format!(
        r#"[[upstream]]
name = "raw"
endpoints = ["{backend}"]

[[route]]
name = "api"
path_prefix = "/"
upstream = "raw"
auth = ["mtls", "jwt:tr"]

[auth.jwt.tr]
issuer = "{ISSUER}"
jwks_url = "{}"
algorithms = ["ES256"]
audiences = ["{CLIENT_ID}"]
token_use = "access"
forward_claims = {{ sub = "x-client-sub", tenant = "x-tenant" }}
"#,
        server.url()
    );
    let gw = common::start(
        &pki,
        Spec {
            body,
            ..Spec::default()
        },
    )
    .await;
    let token = signer.sign(&claims(json!({"tenant": "t-7"})));

    // HTTP/2: data, then trailers naming the provider's claim headers.
    let tls = client::raw_tls(gw.addr, &pki, &pki.client("a"), Some(b"h2")).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::post("https://localhost/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("te", "trailers")
        .header("trailer", "x-tenant, x-client-sub, x-checksum")
        .body(())
        .unwrap();
    let mut send = send.ready().await.unwrap();
    let (resp, mut stream) = send.send_request(req, false).unwrap();
    stream
        .send_data(bytes::Bytes::from_static(b"hello"), false)
        .unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-tenant", "evil".parse().unwrap());
    trailers.insert("x_tenant", "evil2".parse().unwrap());
    trailers.insert("x-client-sub", "admin".parse().unwrap());
    trailers.insert("x-checksum", "1".parse().unwrap());
    stream.send_trailers(trailers).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = tokio::time::timeout(Duration::from_secs(10), raw)
        .await
        .unwrap()
        .unwrap();
    let lower = seen.to_ascii_lowercase();
    assert!(
        lower.contains("x-tenant: t-7"),
        "the claim is forwarded: {seen}"
    );
    assert!(
        lower.contains("x-checksum: 1"),
        "the trailers were forwarded: {seen}"
    );
    for forged in ["evil", "admin"] {
        assert!(
            !seen.contains(forged),
            "{forged} reached the backend: {seen}"
        );
    }
    driver.abort();
    gw.shutdown().await;
}
