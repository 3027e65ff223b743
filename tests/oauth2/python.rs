//! Tokens from this gateway in the hands of other implementations: authlib and
//! requests-oauthlib fetch them and call a route, PyJWT verifies one against the served
//! JWKS, and a second gateway's remote `jwt:` provider verifies one through the JWKS URL.
//! `scripts/test.sh` installs the Python clients in a venv and exports
//! `PORTCULLIS_TEST_PYTHON`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::support::{self, call, post, DEFAULT_LIMITS, ISSUER};
use crate::common::{self, client, Opts, Spec};

fn python() -> Option<String> {
    match std::env::var("PORTCULLIS_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            eprintln!("\n*** SKIPPED: authlib / requests-oauthlib / PyJWT — PORTCULLIS_TEST_PYTHON is not set; run scripts/test.sh ***\n");
            None
        }
    }
}

#[tokio::test]
async fn authlib_requests_oauthlib_and_pyjwt_use_the_token_service() {
    let Some(python) = python() else { return };
    let s = support::start(DEFAULT_LIMITS).await;
    let d = s.gw.dir.path();
    std::fs::write(d.join("ca.pem"), s.pki.root_pem()).unwrap();
    std::fs::write(d.join("client.pem"), &s.other.chain_pem).unwrap();
    common::write_key(&d.join("client.key"), &s.other.key_pem);
    let base = format!("https://localhost:{}", s.gw.addr.port());
    let spec = json!({
        "token_url": format!("{base}/oauth2/token"),
        "api_url": format!("{base}/orders"),
        "jwks_url": format!("{base}/.well-known/jwks.json"),
        "issuer": ISSUER,
        "ca": d.join("ca.pem"),
        "cert": d.join("client.pem"),
        "key": d.join("client.key"),
        "client_id": "orders-svc",
        "client_secret": s.secrets.orders,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth2/clients.py");
    let ca = d.join("ca.pem");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&python)
            .arg(script)
            // requests lets these override a session's `verify`: trust only the test CA.
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env_remove("CURL_CA_BUNDLE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "clients.py failed");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    for flow in ["authlib_basic", "authlib_post", "requests_oauthlib"] {
        let api = &seen[flow]["api"];
        assert_eq!(api["status"], 200, "{flow}: {seen}");
        assert_eq!(
            api["headers"]["x-client-id"],
            json!(["orders-svc"]),
            "{flow}"
        );
        assert_eq!(
            api["headers"]["x-client-scope"],
            json!(["orders/read"]),
            "{flow}"
        );
        let c = support::claims(seen[flow]["token"].as_str().unwrap());
        assert!(
            c["cnf"]["x5t#S256"].is_string(),
            "{flow}: bound to the client certificate"
        );
    }
    let v = &seen["pyjwt"];
    assert_eq!(v["claims"]["client_id"], "orders-svc");
    assert_eq!(v["claims"]["token_use"], "access");
    assert_eq!(v["tampered_accepted"], false);
    let audit = support::audit_lines(&s.gw, 3).await;
    let methods: Vec<&str> = audit
        .iter()
        .filter_map(|l| l["auth_method"].as_str())
        .collect();
    assert_eq!(
        methods,
        [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_basic"
        ]
    );
    s.gw.shutdown().await;
}

/// Another gateway with a remote `jwt:` provider on this one's JWKS URL verifies its tokens
/// (and, as the README says, cannot see its revocations).
#[tokio::test]
async fn a_remote_jwt_provider_verifies_tokens_through_the_jwks_url() {
    let s = support::start(DEFAULT_LIMITS).await;
    let ca = s.gw.dir.path().join("ca.pem");
    std::fs::write(&ca, s.pki.root_pem()).unwrap();
    let body = format!(
        r#"[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "api"
path_prefix = "/"
upstream = "echo"
auth = ["mtls", "jwt:remote"]

[auth.jwt.remote]
issuer = "{ISSUER}"
jwks_url = "https://localhost:{}/.well-known/jwks.json"
jwks_ca = "{}"
algorithms = ["ES256"]
audiences = ["orders-svc"]
token_use = "access"
"#,
        s.gw.addr.port(),
        ca.display()
    );
    let remote = common::start(
        &s.pki,
        Spec {
            body,
            ..Spec::default()
        },
    )
    .await;
    let token = support::orders_token(&s, Some(&s.other)).await;
    let mut c = client::connect(remote.addr, &s.pki, Opts::with(&s.other))
        .await
        .unwrap();
    assert_eq!(call(&mut c, "/orders", &token).await.status, 200);
    let mut anon = support::connect(&s, None).await;
    let r = post(
        &mut anon,
        "/oauth2/revoke",
        &format!("token={token}"),
        Some(("orders-svc", &s.secrets.orders)),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut local = support::connect(&s, Some(&s.other)).await;
    assert_eq!(
        call(&mut local, "/orders", &token).await.status,
        401,
        "refused where the issuer is"
    );
    assert_eq!(
        call(&mut c, "/orders", &token).await.status,
        200,
        "a remote provider cannot see revocations"
    );
    remote.shutdown().await;
    s.gw.shutdown().await;
}
