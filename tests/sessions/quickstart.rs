//! The quick start's config serves CreateSession: `check` passes it (exit 0), and alice's
//! demo certificate gets credentials for the demo trust anchor, profile and role; ops's,
//! outside the role's `allow`, is refused.

use rcgen::SerialNumber;

use super::support::{create_session_at, Form, Req};
use crate::common::pki::Leaf;

fn demo_leaf(dir: &std::path::Path, name: &str) -> Leaf {
    let certs = dir.join("pki/certs");
    Leaf {
        name: name.into(),
        chain_pem: std::fs::read_to_string(certs.join(format!("{name}.pem"))).unwrap(),
        key_pem: std::fs::read_to_string(certs.join(format!("{name}.key"))).unwrap(),
        // The signer reads the serial from the certificate.
        serial: SerialNumber::from(0u64),
    }
}

#[tokio::test]
async fn the_quickstart_config_serves_create_session_for_the_demo_pki() {
    crate::common::init();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let any = "127.0.0.1:0".parse().unwrap();
    portcullis::quickstart::prepare_oauth(&demo).unwrap();
    let path = portcullis::quickstart::prepare(&demo, any, any).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cfg = portcullis::config::load(&path).unwrap();
    cfg.log.access_log = portcullis::config::AccessLog::Off;
    let running = portcullis::server::start(&cfg).await.unwrap();
    let addr = running.listeners[0];
    let root = std::fs::read_to_string(demo.join("pki/ca/root.pem")).unwrap();
    let arn = |kind: &str, name: &str| {
        format!("arn:aws:rolesanywhere:us-east-1:000000000000:{kind}/{name}")
    };
    let (alice, ops) = (demo_leaf(&demo, "alice"), demo_leaf(&demo, "ops"));
    let mut r = Req::new(&alice);
    r.form = Form::Query { chunked: true };
    r.anchor = arn("trust-anchor", "demo");
    r.profile = arn("profile", "demo");
    r.role = "arn:aws:iam::000000000000:role/demo-reader".into();
    r.tls_cert = Some(&alice);
    let a = create_session_at(addr, &root, &r).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["credentialSet"][0]["sourceIdentity"], "alice");
    r.leaf = &ops;
    r.tls_cert = Some(&ops);
    let a = create_session_at(addr, &root, &r).await;
    assert_eq!(
        (a.status, a.error_type.as_deref()),
        (403, Some("AccessDeniedException"))
    );
    running.shutdown().await;
}
