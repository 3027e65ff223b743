//! End to end against the real gateway: its CreateSession (`builtin = "rolesanywhere"`)
//! verifies what `portcullis credentials` / `agent` signed, and boto3, holding the
//! credentials through its own chain, signs a request that a `["mtls", "sigv4"]` route with
//! `sessions = true` accepts.

use std::path::Path;

use crate::common::{self, Spec, TestGateway, TestPki, TrustLayout};
use crate::support::{boto3, command_args, process_profile, python, Agent};

/// The quick start's shape: CreateSession at the root, `/orders` for role `orders-*`, with
/// the listener requiring a client certificate (the commands present theirs).
fn body() -> String {
    r#"[[upstream]]
name = "rolesanywhere"
builtin = "rolesanywhere"

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "sessions"
path_prefix = "/sessions"
upstream = "rolesanywhere"
auth = ["builtin"]

[[route]]
name = "orders"
path_prefix = "/orders"
upstream = "echo"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "orders-*"

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true

[issuer.sessions]
keys = "session-keys"
state_dir = "state"
region = "us-east-1"
account = "000000000000"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["orders-reader"]

[[issuer.sessions.role]]
name = "orders-reader"
allow = [{ uri_san = "spiffe://test/client/worker-*" }]

[reload]
watch = false
poll_interval = "1h"
"#
    .into()
}

async fn start(pki: &TestPki) -> TestGateway {
    common::init();
    let spec = Spec {
        body: body(),
        layout: TrustLayout::default(),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(pki, &spec);
    portcullis::issuer::sessions::keys::generate(&dir.path().join("session-keys")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), pki.root_pem()).unwrap();
    let config = portcullis::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    TestGateway::from_parts(running, dir)
}

/// What a backend behind `/orders` saw (the echo's JSON), from boto3's answer.
fn seen_role(v: &serde_json::Value) -> String {
    assert_eq!(v["status"], 200, "{v}");
    let echo: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    echo["headers"]["x-client-role"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_gets_credentials_from_both_commands_and_signs_a_call_the_gateway_accepts() {
    let Some(python) = python() else { return };
    let pki = TestPki::new();
    let gw = start(&pki).await;
    let dir = gw.dir.path().to_owned();
    let url = format!("https://localhost:{}", gw.addr.port());
    let worker = pki.client("worker-1");
    let args = command_args(&dir, &url, &worker, "worker");
    let signed_call = |d: &Path| {
        [
            format!("{url}/orders/42?x=1"),
            d.join("ca.pem").to_str().unwrap().into(),
            d.join("worker.pem").to_str().unwrap().into(),
            d.join("worker.key").to_str().unwrap().into(),
        ]
    };

    // credential_process: boto3 runs `portcullis credentials` itself.
    let env = process_profile(&dir, &args);
    let call = signed_call(&dir);
    let (py, d) = (python.clone(), dir.clone());
    let v = tokio::task::spawn_blocking(move || boto3(&py, &d, "process", &env, &call))
        .await
        .unwrap();
    assert_eq!(v["method"], "custom-process", "{v}");
    assert!(v["access_key"].as_str().unwrap().starts_with("ASIA"), "{v}");
    assert_eq!(seen_role(&v), "orders-reader");

    // IMDSv2: boto3 finds `portcullis agent` through AWS_EC2_METADATA_SERVICE_ENDPOINT.
    let agent_args = args.clone();
    let agent = tokio::task::spawn_blocking(move || Agent::start(&agent_args))
        .await
        .unwrap();
    let env = [
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{}/", agent.addr),
        ),
        ("AWS_EC2_METADATA_V1_DISABLED", "true".into()),
    ];
    let call = signed_call(&dir);
    let (py, d) = (python.clone(), dir.clone());
    let v = tokio::task::spawn_blocking(move || boto3(&py, &d, "imds", &env, &call))
        .await
        .unwrap();
    assert_eq!(v["method"], "iam-role", "{v}");
    assert!(
        v["expiry_left"].as_f64().unwrap() >= 30.0 * 60.0,
        "botocore keeps the expiry: {v}"
    );
    assert_eq!(seen_role(&v), "orders-reader");

    // The gateway minted both sessions for the same certificate (its audit says so).
    let created = gw
        .access_log()
        .iter()
        .filter(|l| l["route"] == "sessions" && l["status"] == 201)
        .count();
    assert!(created >= 2, "{:?}", gw.access_log());
    drop(agent);
    gw.shutdown().await;
}
