//! Revoking sessions: the admin endpoint (by access key id, role, certificate) and the
//! trust anchor's CRL, each seen on an already-open connection at its next request; their
//! persistence across a restart and a `kill -9` of the binary; two processes sharing the
//! sealing keys (not the state) accept the same credentials.

use bytes::Bytes;
use serde_json::{json, Value};

use super::support::{self, assert_refused, get, session, worker, Minted};
use crate::common::client::{self, Conn, Opts};
use crate::common::origin::Origin;
use crate::common::{self, TestGateway, TestPki, TrustLayout};

async fn revoke(gw: &TestGateway, body: Value) -> (u16, Value) {
    common::admin_post_body(
        gw.admin.unwrap(),
        "/issuer/sessions/revoke",
        Bytes::from(body.to_string()),
    )
    .await
}

async fn status(conn: &mut Conn, m: &Minted) -> u16 {
    conn.send(get(m, "/orders/1"))
        .await
        .unwrap()
        .status
        .as_u16()
}

#[tokio::test]
async fn revocations_refuse_open_connections_at_their_next_request_and_survive_a_restart() {
    let mut s = support::start().await;
    let (l1, l2, l3, l4) = (
        worker(&s.fleet, "w1"),
        worker(&s.fleet, "w2"),
        worker(&s.fleet, "w3"),
        worker(&s.fleet, "w4"),
    );
    let by_id = session(&s, &l1, "orders-reader");
    let by_cert = session(&s, &l2, "orders-reader");
    let by_role = session(&s, &l1, "billing-reader");
    let by_crl = session(&s, &l3, "orders-reader");
    let keep = session(&s, &l4, "orders-reader");
    let mut conn = client::connect(s.gw.addr, &s.pki, Opts::with(&s.client))
        .await
        .unwrap();
    for m in [&by_id, &by_cert, &by_crl, &keep] {
        assert_eq!(status(&mut conn, m).await, 200);
    }
    let r = conn.send(get(&by_role, "/billing/1")).await.unwrap();
    assert_eq!(r.status, 200);

    // Bad bodies: 400, nothing revoked.
    for bad in [
        json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
        json!({"access_key_id": "ASIA123"}),
        json!({"certificate_sha256": "abc"}),
        json!({"certificate_sha256": "zz".repeat(32)}),
        json!({"role": "no-such-role"}),
        json!({"role": "orders-reader", "access_key_id": by_id.akid}),
        json!({"session": "x"}),
        json!({}),
    ] {
        let (code, body) = revoke(&s.gw, bad.clone()).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    assert_eq!(status(&mut conn, &by_id).await, 200);

    // By access key id: that session only, from the next request on the open connection.
    let (code, body) = revoke(&s.gw, json!({"access_key_id": by_id.akid})).await;
    assert_eq!(
        (code, &body["kind"]),
        (200, &json!("access_key_id")),
        "{body}"
    );
    let r = conn.send(get(&by_id, "/orders/1")).await.unwrap();
    assert_refused(&s.gw, &r, "InvalidClientTokenId", "sigv4_session_revoked").await;
    assert_eq!(status(&mut conn, &keep).await, 200);

    // By role: every billing-reader session issued until now.
    let (code, _) = revoke(&s.gw, json!({"role": "billing-reader"})).await;
    assert_eq!(code, 200);
    let r = conn.send(get(&by_role, "/billing/1")).await.unwrap();
    assert_refused(&s.gw, &r, "InvalidClientTokenId", "sigv4_session_revoked").await;

    // By certificate (upper-case hex is the same certificate).
    let sha = by_cert.claims.cert_sha256.to_ascii_uppercase();
    let (code, _) = revoke(&s.gw, json!({ "certificate_sha256": sha })).await;
    assert_eq!(code, 200);
    let r = conn.send(get(&by_cert, "/orders/1")).await.unwrap();
    assert_refused(&s.gw, &r, "InvalidClientTokenId", "sigv4_session_revoked").await;
    assert_eq!(status(&mut conn, &keep).await, 200);

    // By the trust anchor's CRL: the leaf revoked, the truststore reloaded.
    s.fleet.revoke(&l3);
    s.fleet.write_truststore(
        &s.gw.dir.path().join("fleet-truststore"),
        &TrustLayout::default(),
    );
    let (code, body) = common::reload(&s.gw).await;
    assert_eq!(code, 200, "{body}");
    let r = conn.send(get(&by_crl, "/orders/1")).await.unwrap();
    assert_refused(
        &s.gw,
        &r,
        "InvalidClientTokenId",
        "sigv4_session_certificate_revoked",
    )
    .await;
    assert_eq!(status(&mut conn, &keep).await, 200);

    // A restart: every revocation holds, the others still pass.
    let support::Setup {
        pki,
        mut gw,
        client: conn_client,
        origin,
        ..
    } = s;
    gw.take_running().shutdown().await;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let config = dir.path().join("portcullis.toml");
    let gw = support::start_from(dir, &config).await;
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&conn_client))
        .await
        .unwrap();
    for m in [&by_id, &by_cert, &by_crl] {
        assert_eq!(status(&mut conn, m).await, 403);
    }
    let r = conn.send(get(&by_role, "/billing/1")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(status(&mut conn, &keep).await, 200);
    // A session of a revoked role issued after the revocation passes.
    let fresh = support::mint(
        &gw.dir.path().join("session-keys"),
        &l1,
        "billing-reader",
        2,
        3600,
    );
    let r = conn.send(get(&fresh, "/billing/1")).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    drop(origin);
    gw.shutdown().await;
}

/// Without `[issuer.sessions]` the endpoint is not there.
#[tokio::test]
async fn the_endpoint_is_404_without_the_issuer() {
    let pki = TestPki::new();
    let gw = common::start(&pki, common::quiet()).await;
    let (code, body) = revoke(&gw, json!({"role": "orders-reader"})).await;
    assert_eq!(code, 404, "{body}");
    gw.shutdown().await;
}

/// Two `portcullis run` processes with their own folders and state, one sealing-keys
/// folder: both accept the same session. A revocation on one survives its `kill -9`.
#[test]
fn two_processes_share_the_keys_and_a_revocation_survives_kill_9() {
    common::init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pki = TestPki::new();
    let fleet = TestPki::named("fleet");
    let origin = rt.block_on(Origin::start());
    let (a_dir, a_config) = support::write(&pki, &fleet, origin.addr, "session-keys");
    let keys = a_dir.path().join("session-keys");
    let (b_dir, b_config) = support::write(&pki, &fleet, origin.addr, keys.to_str().unwrap());
    let conn_client = pki.client("conn-client");
    let leaf = worker(&fleet, "w1");
    let m = support::mint(&keys, &leaf, "orders-reader", 0, 3600);
    let keep = support::mint(&keys, &leaf, "orders-reader", 0, 3600);

    let mut a = common::process::spawn_gateway(&a_config);
    let mut b = common::process::spawn_gateway(&b_config);
    let call = |addr, m: &Minted| {
        rt.block_on(async {
            let mut conn = client::connect(addr, &pki, Opts::with(&conn_client))
                .await
                .unwrap();
            status(&mut conn, m).await
        })
    };
    assert_eq!(call(a.addr, &m), 200, "instance A refused the session");
    assert_eq!(call(b.addr, &m), 200, "instance B refused A's session");

    let (code, body) = rt.block_on(common::admin_post_body(
        a.admin.unwrap(),
        "/issuer/sessions/revoke",
        Bytes::from(json!({"access_key_id": m.akid}).to_string()),
    ));
    assert_eq!(code, 200, "{body}");
    assert_eq!(call(a.addr, &m), 403);
    a.child.kill().unwrap(); // SIGKILL
    let _ = a.child.wait();

    let mut again = common::process::spawn_gateway(&a_config);
    let after = call(again.addr, &m);
    let kept = call(again.addr, &keep);
    for p in [&mut again.child, &mut b.child] {
        let _ = p.kill();
        let _ = p.wait();
    }
    assert_eq!(after, 403, "the revocation did not survive kill -9");
    assert_eq!(kept, 200);
    drop((a_dir, b_dir));
}
