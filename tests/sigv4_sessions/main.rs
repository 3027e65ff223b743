//! Session credentials of `[issuer.sessions]` used through SigV4 (`[auth.sigv4] sessions =
//! true`) against the running gateway: identity headers at a real backend, policy by role,
//! every refusal with its AWS code and reason, revocations (admin endpoint and the trust
//! anchor's CRL) on an already-open connection, their persistence across a restart and a
//! `kill -9`, two processes sharing the sealing keys, and real botocore as the signer.

#[path = "../common/mod.rs"]
mod common;
mod python;
mod revocation;
mod support;

use common::client::{self, Opts};
use support::{assert_refused, get, mint, session, signer, worker, STATIC_ASIA, STATIC_SECRET};

#[tokio::test]
async fn session_credentials_reach_the_backend_with_their_identity_and_policy_by_role() {
    let s = support::start().await;
    let leaf = worker(&s.fleet, "worker-1");
    let m = session(&s, &leaf, "orders-reader");
    let mut conn = client::connect(s.gw.addr, &s.pki, Opts::with(&s.client))
        .await
        .unwrap();

    // Header form, the token signed; forged identity headers are dropped on the way.
    let mut req = get(&m, "/orders/42");
    for h in [
        "x-client-role",
        "x-client-session",
        "x-client-source-identity",
    ] {
        req.headers_mut().insert(h, "forged".parse().unwrap());
    }
    let r = conn.send(req).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = s.origin.last().headers;
    let h = |n: &str| seen.get(n).map(|v| v.to_str().unwrap().to_owned());
    let serial = &m.claims.serial;
    assert_eq!(h("x-client-role").as_deref(), Some("orders-reader"));
    assert_eq!(h("x-client-session").as_deref(), Some(serial.as_str()));
    assert_eq!(h("x-client-source-identity").as_deref(), Some("worker-1"));
    assert_eq!(
        h("x-client-principal"),
        Some(format!("role/orders-reader/{serial}"))
    );
    assert_eq!(h("x-client-access-key-id"), Some(m.akid.clone()));
    assert_eq!(
        h("x-client-attributes").as_deref(),
        Some(r#"{"team":"orders","tier":"gold"}"#)
    );
    // The connection's certificate is still the TLS identity the backend sees.
    assert!(h("x-client-subject").unwrap().contains("CN=conn-client"));
    assert!(seen.get_all("x-client-role").iter().count() == 1);

    // Presigned, the token among the signed query parameters.
    let url = signer(&m).presign_token("/orders/presigned", 300, Some(&m.token));
    let r = conn.get(&url).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.origin.last().headers["x-client-role"], "orders-reader");

    // Policy by role: orders-reader may not use /billing; billing-reader may.
    let r = conn.send(get(&m, "/billing/1")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(support::last_reason(&s.gw), "not_in_allow_list");
    let b = session(&s, &leaf, "billing-reader");
    let r = conn.send(get(&b, "/billing/1")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.origin.last().headers["x-client-role"], "billing-reader");
    assert!(s.origin.last().headers.get("x-client-attributes").is_none());
    let r = conn.send(get(&b, "/orders/1")).await.unwrap();
    assert_eq!(r.status, 403);

    // The access log names the role and the session.
    let line =
        s.gw.access_log()
            .into_iter()
            .find(|l| l["path"] == "/orders/42")
            .unwrap();
    assert_eq!(line["role"], "orders-reader");
    assert_eq!(line["session"], serial.as_str());
    assert_eq!(line["principal"], format!("role/orders-reader/{serial}"));
    assert_eq!(line["access_key_id"], m.akid.as_str());

    // The token was opened once for the requests of one access key id.
    common::wait_for_metric(
        &s.gw,
        "portcullis_auth_sigv4_session_cache_hits_total",
        &[],
        1.0,
    )
    .await;

    // A static `ASIA…` key of the credentials file stays a static credential.
    let st = common::sigv4::Signer {
        akid: STATIC_ASIA,
        secret: STATIC_SECRET,
        region: "us-east-1",
        date: common::sigv4::amz_now(0),
    };
    let r = conn
        .send(st.sign("GET", "/echo/x", &[], b""))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-client-principal"][0], "svc-static");
    s.gw.shutdown().await;
}

#[tokio::test]
async fn refusals_speak_aws_and_name_their_reason() {
    let s = support::start().await;
    let leaf = worker(&s.fleet, "worker-2");
    let keys = s.gw.dir.path().join("session-keys");
    let m = session(&s, &leaf, "orders-reader");
    let mut conn = client::connect(s.gw.addr, &s.pki, Opts::with(&s.client))
        .await
        .unwrap();

    // Tampered token: one character of the sealed part changed.
    let mut t = m.token.clone().into_bytes();
    let i = t.len() - 10;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    let tampered = support::Minted {
        token: String::from_utf8(t).unwrap(),
        ..m.clone()
    };
    let r = conn.send(get(&tampered, "/orders/1")).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_token_invalid",
    )
    .await;

    // Another session's token under this access key id (and its secret).
    let other = session(&s, &leaf, "orders-reader");
    let swapped = support::Minted {
        token: other.token.clone(),
        ..m.clone()
    };
    let r = conn.send(get(&swapped, "/orders/1")).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_token_invalid",
    )
    .await;

    // A token sealed by a keys folder this gateway does not hold.
    let foreign = tempfile::tempdir().unwrap();
    portcullis::issuer::sessions::keys::generate(foreign.path()).unwrap();
    let f = mint(foreign.path(), &leaf, "orders-reader", 0, 3600);
    let r = conn.send(get(&f, "/orders/1")).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_token_invalid",
    )
    .await;

    // Expired session.
    let old = mint(&keys, &leaf, "orders-reader", -7200, -60);
    let r = conn.send(get(&old, "/orders/1")).await.unwrap();
    assert_refused(&s.gw, &r, "ExpiredToken", "sigv4_session_expired").await;

    // No token at all, and a token sent but not signed.
    let r = conn
        .send(signer(&m).sign("GET", "/orders/1", &[], b""))
        .await
        .unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_token_missing",
    )
    .await;
    let mut req = signer(&m).sign("GET", "/orders/1", &[], b"");
    req.headers_mut()
        .insert("x-amz-security-token", m.token.parse().unwrap());
    let r = conn.send(req).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "IncompleteSignature",
        "sigv4_session_token_not_signed",
    )
    .await;

    // An ASIA id that no session has and the file does not hold, presigned without token.
    let url = signer(&m).presign("/orders/1", 300);
    let r = conn.get(&url).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_token_missing",
    )
    .await;

    // The right token with a wrong secret: the signature is what fails.
    let wrong = support::Minted {
        secret: "not-the-derived-secret".into(),
        ..m.clone()
    };
    let r = conn.send(get(&wrong, "/orders/1")).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "SignatureDoesNotMatch",
        "sigv4_signature_mismatch",
    )
    .await;

    // The original still passes on the same connection.
    let r = conn.send(get(&m, "/orders/1")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.gw.shutdown().await;
}
