//! The real Python client, `iam-rolesanywhere-session` (pinned in tests/requirements.txt,
//! installed by `scripts/test.sh`, found through `PORTCULLIS_TEST_PYTHON`), gets
//! credentials with an ECDSA leaf, an RSA leaf, and a leaf its CA signed with SHA-384
//! (which it labels `AWS4-X509-ECDSA-SHA384` while signing with SHA-256).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::support::{self, anchor_arn, open_token, profile_arn, role_arn};
use crate::common;

fn python() -> Option<String> {
    match std::env::var("PORTCULLIS_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            eprintln!("\n*** SKIPPED: iam-rolesanywhere-session — PORTCULLIS_TEST_PYTHON is not set; run scripts/test.sh ***\n");
            None
        }
    }
}

#[tokio::test]
async fn iam_rolesanywhere_session_gets_credentials_with_ecdsa_rsa_and_sha384_leaves() {
    let Some(python) = python() else { return };
    let s = support::start().await;
    let d = s.gw.dir.path();
    std::fs::write(d.join("ca.pem"), s.pki.root_pem()).unwrap();
    let mut cases = Vec::new();
    for (name, leaf) in [("ecdsa", &s.worker), ("rsa", &s.rsa), ("sha384", &s.sha384)] {
        let first = leaf.chain_pem.find("-----END CERTIFICATE-----").unwrap() + 25;
        std::fs::write(d.join(format!("{name}.pem")), &leaf.chain_pem[..first]).unwrap();
        std::fs::write(d.join(format!("{name}-chain.pem")), &leaf.chain_pem).unwrap();
        common::write_key(&d.join(format!("{name}.key")), &leaf.key_pem);
        let mut case = json!({
            "name": name,
            "cert": d.join(format!("{name}.pem")),
            "key": d.join(format!("{name}.key")),
            "trust_anchor": anchor_arn("fleet"),
            "profile": profile_arn("workers"),
            "role": role_arn("orders-reader"),
        });
        if leaf.chain_pem.len() > first + 5 {
            // The whole bundle, leaf included, as a user would pass it.
            case["chain"] = json!(d.join(format!("{name}-chain.pem")));
        }
        cases.push(case);
    }
    // The TLS client certificate of the signed calls (any verified client may carry a
    // session): the ECDSA worker's, with its chain.
    std::fs::write(d.join("tls-client.pem"), &s.worker.chain_pem).unwrap();
    let spec = json!({
        "endpoint": format!("localhost:{}", s.gw.addr.port()),
        "ca": d.join("ca.pem"),
        "tls_cert": d.join("tls-client.pem"),
        "tls_key": d.join("ecdsa.key"),
        "cases": cases,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sessions/clients.py");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&python)
            .arg(script)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("REQUESTS_CA_BUNDLE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
    assert!(
        out.status.success(),
        "clients.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = results
        .iter()
        .map(|r| r["algorithm"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "AWS4-X509-ECDSA-SHA256",
            "AWS4-X509-RSA-SHA256",
            "AWS4-X509-ECDSA-SHA384"
        ]
    );
    for (r, cn) in results.iter().zip(["worker-1", "worker-rsa", "worker-384"]) {
        let akid = r["access_key"].as_str().unwrap();
        let claims = open_token(&s, r["token"].as_str().unwrap(), akid);
        assert_eq!(
            (claims.role.as_str(), claims.source_identity.as_str()),
            ("orders-reader", cn)
        );
        assert_eq!(claims.exp - claims.iat, 3600);
        assert!(r["expiry"].as_str().unwrap().ends_with("+00:00"), "{r}");
        // botocore signs with them (header and presigned); the route allows `orders-*`.
        for how in ["signed", "presigned"] {
            let call = &r[how];
            assert_eq!(
                call["status"], 200,
                "{how} call with {cn}'s session: {call}"
            );
            let headers = &call["body"]["headers"];
            let one = |name: &str| headers[name][0].as_str().unwrap_or_default().to_owned();
            assert_eq!(one("x-client-role"), "orders-reader", "{how}: {headers}");
            assert_eq!(one("x-client-source-identity"), cn, "{how}: {headers}");
            assert_eq!(one("x-client-access-key-id"), akid, "{how}: {headers}");
            assert_eq!(
                one("x-client-principal"),
                format!("role/orders-reader/{}", claims.session)
            );
        }
    }
    common::assert_metric_at_least(
        &s.gw.metrics().await,
        "portcullis_issuer_sessions_total",
        &["result=\"issued\"", "reason=\"ok\""],
        3.0,
    );
}
