//! `portcullis sessions keys rotate` and `portcullis check` for `[issuer.sessions]`, as a
//! user runs them: keys written private, check's problems until the folder has a key,
//! exit 0 once it does, and the same keys folder for both issuers refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{Spec, TestPki};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BODY: &str = r#"
[[upstream]]
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
name = "api"
path_prefix = "/"
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
allow = [{ uri_san = "spiffe://example.test/*" }]
"#;

#[test]
fn keys_rotate_writes_private_keys_and_check_passes_once_the_folder_has_one() {
    let pki = TestPki::new();
    let spec = Spec {
        body: BODY.into(),
        ..Spec::default()
    };
    let (dir, path) = common::write_config(&pki, &spec);
    let p = path.to_str().unwrap();
    let out = portcullis(&["check", "--config", p]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("issuer.sessions.keys") && stderr.contains("sessions keys rotate"),
        "{stderr}"
    );

    let k = dir.path().join("session-keys");
    let out = portcullis(&["sessions", "keys", "rotate", k.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing secret on stdout");
    assert!(text(&out.stderr).contains("seals new sessions"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&k), 0o700);
    let files: Vec<_> = std::fs::read_dir(&k)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600);
    assert!(files[0].extension().is_some_and(|e| e == "key"));

    let out = portcullis(&["check", "--config", p]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!dir.path().join("state").exists(), "check changes nothing");

    // The OAuth2 issuer on the same folder: refused.
    let both = format!(
        "{}\n[issuer.oauth2]\nissuer = \"https://auth.example.test\"\nkeys = \"session-keys\"\nclients_file = \"c.toml\"\nstate_dir = \"state\"\n",
        std::fs::read_to_string(&path).unwrap()
    );
    std::fs::write(&path, both).unwrap();
    let out = portcullis(&["check", "--config", p]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("issuer.sessions.keys:") && stderr.contains("is also [issuer.oauth2] keys"),
        "{stderr}"
    );
}
