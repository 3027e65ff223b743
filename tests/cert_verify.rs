//! `portcullis cert verify` on the dev PKI (the quick start's): an accepted, a revoked and an
//! expired client, bad input, text and JSON output, exit codes.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `pki init` + alice (valid, SPIFFE ID) + mallory (revoked), as `quickstart` makes them.
fn dev_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pki");
    for args in [
        vec!["pki", "init", s(&p)],
        vec![
            "pki",
            "issue",
            s(&p),
            "alice",
            "--spiffe",
            "spiffe://demo.test/alice",
        ],
        vec!["pki", "issue", s(&p), "mallory"],
        vec!["pki", "revoke", s(&p), "mallory"],
    ] {
        let out = portcullis(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    dir
}

fn verify(dir: &Path, name: &str, extra: &[&str]) -> Output {
    let p = dir.join("pki");
    let ts = p.join("truststore");
    let cert = p.join(format!("certs/{name}.pem"));
    let mut args = vec!["cert", "verify", "--truststore", s(&ts), s(&cert)];
    args.extend_from_slice(extra);
    Command::new(BIN).args(&args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn accepted_client_shows_path_crls_and_identity() {
    let dir = dev_pki();
    let out = verify(dir.path(), "alice", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decision: ACCEPTED"), "{text}");
    assert!(text.contains("[0] end entity CN=alice"), "{text}");
    assert!(
        text.contains("trust anchor CN=portcullis dev root CA"),
        "{text}"
    );
    assert!(text.contains("extended key usage clientAuth"), "{text}");
    assert!(
        text.contains("uri_san     spiffe://demo.test/alice"),
        "{text}"
    );
    assert!(text.contains("not listed (current"), "{text}");

    let v = json(&verify(dir.path(), "alice", &["--json"]));
    assert_eq!(v["decision"], "accepted");
    assert_eq!(v["identity"]["subject"], "CN=alice");
    assert_eq!(v["identity"]["uri_sans"][0], "spiffe://demo.test/alice");
    assert_eq!(
        v["identity"]["fingerprint_sha256"].as_str().unwrap().len(),
        64
    );
    let path = v["path"].as_array().unwrap();
    assert_eq!(path.len(), 3, "leaf, intermediate, root: {v}");
    assert_eq!(path[0]["validity"], "valid");
    assert_eq!(path[1]["role"], "CA");
    assert_eq!(path[2]["role"], "trust anchor");
    // Both CRLs (intermediate's for the leaf, root's for the intermediate) were consulted.
    assert_eq!(v["crls"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn revoked_client_names_the_crl_and_date() {
    let dir = dev_pki();
    let out = verify(dir.path(), "mallory", &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decision: REFUSED"), "{text}");
    assert!(
        text.contains("reason:   revoked (CN=mallory revoked on "),
        "{text}"
    );
    assert!(text.contains("intermediate.crl.pem"), "{text}");

    let out = verify(dir.path(), "mallory", &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["decision"], "refused");
    assert_eq!(v["reason"], "revoked");
    let crl = v["crls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["revoked"] == true)
        .unwrap();
    assert_eq!(crl["for"], "CN=mallory");
    assert!(crl["revoked_on"].is_string());
}

#[test]
fn expired_client_at_a_later_time() {
    let dir = dev_pki();
    let out = verify(
        dir.path(),
        "alice",
        &["--at", "2100-01-01T00:00:00Z", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json(&out);
    assert_eq!(v["reason"], "expired");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("certificate expired at "),
        "{v}"
    );
    assert_eq!(v["path"][0]["validity"], "expired");
    assert_eq!(v["at"], "2100-01-01T00:00:00Z");
}

#[test]
fn bad_input_exits_2() {
    let dir = dev_pki();
    let out = verify(dir.path(), "alice", &["--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let ts = dir.path().join("pki/truststore");
    let out = portcullis(&["cert", "verify", "--truststore", s(&ts), s(&junk), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(json(&out)["decision"], "error");

    let out = portcullis(&[
        "cert",
        "verify",
        "--truststore",
        s(&dir.path().join("nope")),
        s(&junk),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn settings_come_from_config() {
    let dir = dev_pki();
    // revocation off: the revoked client is accepted, which shows the config was used.
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        "[[listener]]\naddress = \"127.0.0.1:0\"\ncert = \"x.pem\"\nkey = \"x.key\"\n\
         [truststore]\ndir = \"pki/truststore\"\nrevocation = \"off\"\n\
         [[upstream]]\nname = \"u\"\nbuiltin = \"echo\"\n[[route]]\nname = \"r\"\nupstream = \"u\"\n",
    )
    .unwrap();
    let out = verify(dir.path(), "mallory", &["--config", s(&cfg), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json(&out)["settings"]["revocation"], "off");
}
