//! Tokens minted by PyJWT (with `cryptography`), an implementation independent of ours.
//! `scripts/test.sh` installs them in a venv and exports `PORTCULLIS_TEST_PYTHON`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::support::JwksServer;
use super::{assert_refused, body, call, CLIENT_ID, ISSUER};
use crate::common::{self, Spec, TestPki};

/// Run `mint.py`: PyJWT makes the keys, the JWKS and one token per case.
fn mint() -> Option<Value> {
    let Ok(python) = std::env::var("PORTCULLIS_TEST_PYTHON") else {
        eprintln!("\n*** SKIPPED: PyJWT tokens — PORTCULLIS_TEST_PYTHON is not set; run scripts/test.sh ***\n");
        return None;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jwt/mint.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let spec = json!({"issuer": ISSUER, "client_id": CLIENT_ID});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mint.py failed");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn pyjwt_tokens_are_checked_like_any_issuer_s() {
    let Some(minted) = mint() else { return };
    let server = JwksServer::start(minted["jwks"].to_string()).await;
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            body: body(
                "pyjwt",
                &format!("jwks_url = \"{}\"", server.url()),
                "kid_miss_refetch_interval = \"1ms\"",
            ),
            ..Spec::default()
        },
    )
    .await;
    let leaf = pki.client("a");
    let t = |name: &str| minted["tokens"][name].as_str().unwrap().to_owned();
    for ok in ["rs256", "es256"] {
        let r = call(&gw, &pki, &leaf, "/orders", Some(&t(ok)), &[]).await;
        assert_eq!(r.status, 200, "{ok}: {:?}", r.body);
        assert_eq!(r.json()["headers"]["x-client-sub"], json!(["py-svc"]));
    }
    let cases = [
        ("expired", "jwt_expired", 401),
        ("not_yet_valid", "jwt_not_yet_valid", 401),
        ("wrong_issuer", "jwt_wrong_issuer", 401),
        ("wrong_client_id", "jwt_wrong_client_id", 401),
        ("id_token", "jwt_wrong_token_use", 401),
        ("missing_scope", "jwt_insufficient_scope", 403),
        ("alg_none", "jwt_alg_none", 401),
        ("hs256_pubkey", "jwt_alg_hmac", 401),
        ("tampered", "jwt_bad_signature", 401),
        ("oversize", "jwt_too_large", 401),
        ("unknown_kid", "jwt_unknown_kid", 401),
    ];
    for (name, reason, status) in cases {
        let path = if status == 403 { "/admin" } else { "/orders" };
        let r = call(&gw, &pki, &leaf, path, Some(&t(name)), &[]).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {:?}", r.body);
        assert_refused(&gw, &r, status, reason).await;
    }
    // The issuer rotates in a new key: the token PyJWT signed with it now passes.
    server.publish(minted["rotated"].to_string());
    let r = call(&gw, &pki, &leaf, "/orders", Some(&t("unknown_kid")), &[]).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    gw.shutdown().await;
}
