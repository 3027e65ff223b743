//! Revocation (RFC 7009 and the admin endpoint), introspection, registry changes, and the
//! persistence of revocations across a restart and a `kill -9` of the real binary.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use super::support::{self, call, claims, connect, post, until_unauthorized, DEFAULT_LIMITS};
use crate::common::{self, client, Opts, Spec, TestPki};

/// `POST path` with a JSON body to the admin listener: (status, JSON).
async fn admin_json(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    common::admin_post_body(addr, path, Bytes::from(body.to_string())).await
}

fn form(token: &str) -> String {
    format!("token={token}&token_type_hint=access_token")
}

#[tokio::test]
async fn revocations_take_effect_at_once_on_open_connections_and_survive_a_restart() {
    let s = support::start(DEFAULT_LIMITS).await;
    let basic = Some(("orders-svc", s.secrets.orders.as_str()));
    let a = support::orders_token(&s, Some(&s.other)).await;
    let mut conn = connect(&s, Some(&s.other)).await;
    assert_eq!(call(&mut conn, "/orders", &a).await.status, 200);

    // A cert-svc token: orders-svc may not revoke it (200, and it stays valid).
    let mut cert_conn = connect(&s, Some(&s.cert_client)).await;
    let r = post(
        &mut cert_conn,
        "/oauth2/token",
        "grant_type=client_credentials&client_id=cert-svc",
        None,
    )
    .await;
    let theirs = r.json()["access_token"].as_str().unwrap().to_owned();
    let mut anon = connect(&s, None).await;
    let r = post(&mut anon, "/oauth2/revoke", &form(&theirs), basic).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(call(&mut cert_conn, "/orders", &theirs).await.status, 200);

    // Introspection: active with the claims and cnf.
    let r = post(&mut anon, "/oauth2/introspect", &form(&theirs), basic).await;
    let i = r.json();
    assert_eq!(
        (i["active"].as_bool(), i["client_id"].as_str()),
        (Some(true), Some("cert-svc"))
    );
    assert_eq!(i["jti"], claims(&theirs)["jti"]);
    assert_eq!(i["cnf"], claims(&theirs)["cnf"]);
    for k in ["scope", "sub", "token_type", "exp", "iat", "iss"] {
        assert!(!i[k].is_null(), "{k} missing: {i}");
    }
    let r = post(&mut anon, "/oauth2/introspect", &form("not.a.token"), basic).await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = post(
        &mut anon,
        "/oauth2/introspect",
        &form(&theirs),
        Some(("orders-svc", "wrong")),
    )
    .await;
    assert_eq!(r.status, 401, "introspection needs an authenticated client");

    // RFC 7009: orders-svc revokes its own token; the open connection's next request fails.
    let r = post(&mut anon, "/oauth2/revoke", &form(&a), basic).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.is_empty());
    let r = call(&mut conn, "/orders", &a).await;
    support::assert_jwt_refused(&s.gw, &r, "jwt_revoked").await;
    let r = post(&mut anon, "/oauth2/introspect", &form(&a), basic).await;
    assert_eq!(r.json(), json!({"active": false}));
    let r = post(
        &mut anon,
        "/oauth2/revoke",
        "token_type_hint=access_token",
        basic,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // The admin endpoint: one jti, then every token of a client.
    let b = support::orders_token(&s, Some(&s.other)).await;
    assert_eq!(call(&mut conn, "/orders", &b).await.status, 200);
    let admin = s.gw.admin.unwrap();
    let (st, _) = admin_json(
        admin,
        "/issuer/oauth2/revoke",
        json!({"jti": claims(&b)["jti"]}),
    )
    .await;
    assert_eq!(st, 200);
    support::assert_jwt_refused(&s.gw, &call(&mut conn, "/orders", &b).await, "jwt_revoked").await;
    let (st, _) = admin_json(
        admin,
        "/issuer/oauth2/revoke",
        json!({"client_id": "cert-svc"}),
    )
    .await;
    assert_eq!(st, 200);
    support::assert_jwt_refused(
        &s.gw,
        &call(&mut cert_conn, "/orders", &theirs).await,
        "jwt_revoked",
    )
    .await;
    let (st, _) = admin_json(
        admin,
        "/issuer/oauth2/revoke",
        json!({"jti": "x", "client_id": "y"}),
    )
    .await;
    assert_eq!(st, 400);
    let m = s.gw.metrics().await;
    common::assert_metric_at_least(
        &m,
        "portcullis_issuer_revocations_total",
        &["kind=\"jti\""],
        2.0,
    );
    common::assert_metric_at_least(
        &m,
        "portcullis_issuer_revocations_total",
        &["kind=\"client\""],
        1.0,
    );

    // A token of a client disabled in the registry is refused within a second.
    let c = support::orders_token(&s, Some(&s.other)).await;
    assert_eq!(call(&mut conn, "/orders", &c).await.status, 200);
    let file = s.gw.dir.path().join("oauth-clients.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let disabled = text.replacen(
        "scopes = [\"orders/read\", \"orders/write\"]",
        "scopes = [\"orders/read\", \"orders/write\"]\ndisabled = true",
        1,
    );
    std::fs::write(&file, disabled).unwrap();
    let r = until_unauthorized(&mut conn, &c, Duration::from_secs(10))
        .await
        .expect("never refused");
    support::assert_jwt_refused(&s.gw, &r, "jwt_revoked").await;
    std::fs::write(&file, text).unwrap();
    let r = until_unauthorized(&mut conn, &a, Duration::from_secs(1)).await;
    assert!(
        r.is_some(),
        "a revoked token stays revoked when its client comes back"
    );

    // A restart: every revocation still holds; the state folder is private.
    let support::Setup {
        pki,
        mut gw,
        other,
        cert_client,
        config,
        ..
    } = s;
    gw.take_running().shutdown().await;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let gw = support::boot(&config, dir).await;
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&other))
        .await
        .unwrap();
    let mut cert_conn = client::connect(gw.addr, &pki, Opts::with(&cert_client))
        .await
        .unwrap();
    for t in [&a, &b] {
        assert_eq!(call(&mut conn, "/orders", t).await.status, 401);
    }
    assert_eq!(call(&mut cert_conn, "/orders", &theirs).await.status, 401);
    let cmeta = std::fs::metadata(gw.dir.path().join("state")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(cmeta.permissions().mode() & 0o777, 0o700);
    gw.shutdown().await;
}

/// `portcullis run`, a revocation, `kill -9`, `portcullis run` again: still refused.
#[test]
fn a_revocation_survives_kill_9_of_the_binary() {
    common::init();
    let pki = TestPki::new();
    let spec = Spec {
        listener: "client_auth = \"optional\"",
        body: support::body(DEFAULT_LIMITS),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(&pki, &spec);
    portcullis::issuer::keys::generate(&dir.path().join("oauth-keys")).unwrap();
    let secrets = support::Secrets {
        orders: portcullis::issuer::oauth2::registry_edit::generate_secret().unwrap(),
        disabled: portcullis::issuer::oauth2::registry_edit::generate_secret().unwrap(),
    };
    std::fs::write(
        dir.path().join("oauth-clients.toml"),
        support::registry(&secrets, ""),
    )
    .unwrap();
    let leaf = pki.client("orders-svc");
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (mut first, addr) = spawn(&config);
    let token = rt.block_on(async {
        let mut c = client::connect(addr, &pki, Opts::with(&leaf))
            .await
            .unwrap();
        let r = post(
            &mut c,
            "/oauth2/token",
            "grant_type=client_credentials",
            Some(("orders-svc", &secrets.orders)),
        )
        .await;
        let token = r.json()["access_token"].as_str().unwrap().to_owned();
        assert_eq!(call(&mut c, "/orders", &token).await.status, 200);
        let r = post(
            &mut c,
            "/oauth2/revoke",
            &form(&token),
            Some(("orders-svc", &secrets.orders)),
        )
        .await;
        assert_eq!(r.status, 200);
        token
    });
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();

    let (mut second, addr) = spawn(&config);
    let status = rt.block_on(async {
        let mut c = client::connect(addr, &pki, Opts::with(&leaf))
            .await
            .unwrap();
        call(&mut c, "/orders", &token).await.status
    });
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(status, 401, "the revocation did not survive kill -9");
}

/// Start the binary; return it and the listener address it logged.
fn spawn(config: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = crate::common::spawn_binary(config);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            // stderr is a pipe: JSON lines by default (`[log] format`).
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message"] == "listening" {
                    let a = v["address"].as_str().unwrap();
                    return (child, a.parse().unwrap());
                }
                continue;
            }
            let line = strip_ansi(&line);
            if line.contains("listening") {
                if let Some(a) = line.split("address=").nth(1) {
                    let a = a.split_whitespace().next().unwrap().trim_matches('"');
                    return (child, a.parse().unwrap());
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the gateway did not start");
}

/// The log line without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
