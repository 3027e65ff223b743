//! The command line as a user runs it: `check`, `pki`, `quickstart` driven with curl.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ensure_tool, Spec, TestPki};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn check_accepts_a_good_config_and_names_the_line_of_a_typo() {
    let pki = TestPki::new();
    let (dir, path) = common::write_config(&pki, &Spec::default());
    let ok = portcullis(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK"));

    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "key = \"server.key\"",
        "key = \"server.key\"\nclient_auht = \"required\"",
        1,
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("client_auht"))
        .unwrap()
        + 1;
    let bad = dir.path().join("typo.toml");
    std::fs::write(&bad, text).unwrap();
    let out = portcullis(&["check", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("typo.toml:{line}")), "{stderr}");
    assert!(stderr.contains("client_auht"), "{stderr}");
}

#[test]
fn check_reports_bad_material() {
    let pki = TestPki::new();
    let (dir, path) = common::write_config(&pki, &Spec::default());
    std::fs::write(
        dir.path().join("truststore/roots/junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = portcullis(&["check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("junk.pem"), "{stderr}");
}

#[test]
fn pki_commands_manage_a_dev_pki() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.to_str().unwrap();
    assert!(portcullis(&["pki", "init", p]).status.success());
    assert!(
        !portcullis(&["pki", "init", p]).status.success(),
        "init twice is refused"
    );
    let out = portcullis(&[
        "pki",
        "issue",
        p,
        "billing",
        "--spiffe",
        "spiffe://example.test/client/billing",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(portcullis(&[
        "pki",
        "issue",
        p,
        "api",
        "--server",
        "--dns",
        "api.example.test"
    ])
    .status
    .success());
    assert!(
        !portcullis(&["pki", "issue", p, "billing"]).status.success(),
        "duplicate name"
    );
    for key in [
        "ca/root.key",
        "ca/intermediate.key",
        "certs/billing.key",
        "certs/api.key",
    ] {
        let mode = std::fs::metadata(pki.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    assert!(portcullis(&["pki", "revoke", p, "billing"])
        .status
        .success());
    assert!(!portcullis(&["pki", "revoke", p, "nobody"]).status.success());
    assert!(portcullis(&["pki", "crl", p]).status.success());
}

/// The quick start, exactly as a user runs it: start it, copy its curl commands, run them.
#[test]
fn quickstart_curl_commands_work() {
    ensure_tool("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let mut child = Command::new(BIN)
        .args(quickstart_args(&demo))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut commands = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.starts_with("Manage the demo PKI") {
            break;
        }
        if line.starts_with("curl ") {
            commands.push(line);
        }
    }
    let run = |cmd: &str| Command::new("sh").args(["-c", cmd]).output().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(commands.len(), 9, "{commands:?}");
        let alice = run(&commands[0]);
        let out = String::from_utf8_lossy(&alice.stdout);
        assert!(
            alice.status.success(),
            "{}",
            String::from_utf8_lossy(&alice.stderr)
        );
        assert!(
            out.contains("x-forwarded-client-cert")
                && out.contains("spiffe://demo.test/client/alice"),
            "{out}"
        );
        let h2 = run(&commands[1]);
        assert_eq!(
            String::from_utf8_lossy(&h2.stdout).trim(),
            "2",
            "the HTTP/2 step: {}",
            String::from_utf8_lossy(&h2.stderr)
        );
        assert!(
            !run(&commands[2]).status.success(),
            "no certificate: handshake refused"
        );
        assert!(!run(&commands[3]).status.success(), "revoked: refused");
        let denied = String::from_utf8_lossy(&run(&commands[4]).stdout).into_owned();
        assert!(denied.contains("\"forbidden\""), "{denied}");
        let ops = String::from_utf8_lossy(&run(&commands[5]).stdout).into_owned();
        assert!(ops.contains("spiffe://demo.test/ops/ops1"), "{ops}");
        let metrics = String::from_utf8_lossy(&run(&commands[6]).stdout).into_owned();
        assert!(
            metrics.contains("portcullis_tls_handshakes_total"),
            "{metrics}"
        );
        // The demo OAuth2 client: a token, then a route called with it.
        let token = String::from_utf8_lossy(&run(&commands[7]).stdout).into_owned();
        assert!(
            token.contains("\"access_token\"") && token.contains("\"token_type\":\"Bearer\""),
            "{token}"
        );
        let called = String::from_utf8_lossy(&run(&commands[8]).stdout).into_owned();
        assert!(
            called.contains("\"x-client-id\"") && called.contains("demo-client"),
            "{called}"
        );
    });
    // SIGTERM: the gateway drains and exits 0.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(Path::new(&demo.join("portcullis.toml")).exists());
    // A fresh demo's CRLs are far from their nextUpdate: no hygiene warning at start.
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(!log.contains("nextUpdate"), "{log}");
}

#[test]
fn quickstart_refuses_a_demo_folder_that_no_longer_matches_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let pki = demo.join("pki");
    // The folder quickstart makes, then alice revoked by hand.
    let made = portcullis::quickstart::prepare(
        &demo,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    assert!(made.is_ok(), "{made:?}");
    let crl = pki.join("truststore/crls/intermediate.crl.pem");
    let before = std::fs::read(&crl).unwrap();
    // Reused while it matches: the CRLs are re-signed (fresh nextUpdate).
    assert!(portcullis::quickstart::prepare(
        &demo,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap()
    )
    .is_ok());
    assert_ne!(
        std::fs::read(&crl).unwrap(),
        before,
        "CRLs re-signed on reuse"
    );
    let revoke = portcullis(&["pki", "revoke", pki.to_str().unwrap(), "alice"]);
    assert!(revoke.status.success());
    let out = Command::new(BIN)
        .args(quickstart_args(&demo))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a changed demo folder must not be reused silently"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("alice is revoked") && stderr.contains("rm -r"),
        "{stderr}"
    );
}

#[test]
fn two_dev_pkis_have_distinct_ca_names() {
    let dir = tempfile::tempdir().unwrap();
    let subject = |name: &str| {
        let d = dir.path().join(name);
        assert!(portcullis(&["pki", "init", d.to_str().unwrap()])
            .status
            .success());
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(d.join("ca/root.pem"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    ensure_tool("openssl", "openssl");
    let (a, b) = (subject("a"), subject("b"));
    assert!(a.contains("portcullis dev root CA "), "{a}");
    assert_ne!(a, b, "two demo PKIs must not look alike");
}

/// `quickstart` on `demo`, both listeners on free ports.
fn quickstart_args(demo: &Path) -> [&str; 7] {
    [
        "quickstart",
        "--dir",
        demo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}
