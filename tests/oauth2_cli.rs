//! `portcullis oauth ...` and `portcullis check` for `[issuer.oauth2]`, as a user runs them:
//! the secret alone on stdout, every other message on stderr, only hashes in the file,
//! comments kept, folders created private; check's problems and warnings.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use common::{Spec, TestPki};
use portcullis::issuer::oauth2::registry::Registry;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn client_add_and_rotate_print_the_secret_alone_on_stdout_and_write_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clients.toml");
    let f = file.to_str().unwrap();
    let out = portcullis(&[
        "oauth",
        "client",
        "add",
        f,
        "orders-svc",
        "--scope",
        "orders/read",
        "orders/write",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the secret on stdout: {stdout:?}"
    );
    let secret = stdout.trim_end_matches('\n');
    assert!(secret.len() >= 43, "≥ 256 bits");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)),
        "{secret}"
    );
    assert!(text(&out.stderr).contains("shown only this once"));
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        !saved.contains(secret),
        "the secret itself is never written"
    );
    let reg = Registry::parse(&saved).unwrap();
    let c = reg.get("orders-svc").unwrap();
    assert_eq!(c.scopes, ["orders/read", "orders/write"]);
    assert_eq!(c.secret.as_ref().unwrap().verify_fast(secret), Some(true));

    // With --uri-san a secret is generated too; a comment added by hand survives.
    std::fs::write(&file, format!("# keep me\n{saved}")).unwrap();
    let out = portcullis(&[
        "oauth",
        "client",
        "add",
        f,
        "billing",
        "--scope",
        "b",
        "--uri-san",
        "spiffe://t/billing",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.starts_with("# keep me\n"), "{saved}");
    assert!(Registry::parse(&saved)
        .unwrap()
        .get("billing")
        .unwrap()
        .certificate
        .is_some());

    let out = portcullis(&["oauth", "client", "add", f, "billing", "--scope", "b"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty() && text(&out.stderr).contains("exists already"));

    let out = portcullis(&["oauth", "client", "rotate-secret", f, "orders-svc"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new = text(&out.stdout);
    let new = new.trim_end_matches('\n');
    assert_ne!(new, secret);
    let reg = Registry::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let h = reg.get("orders-svc").unwrap().secret.clone().unwrap();
    assert_eq!(
        (h.verify_fast(new), h.verify_fast(secret)),
        (Some(true), Some(false))
    );
    let out = portcullis(&["oauth", "client", "rotate-secret", f, "nobody"]);
    assert!(!out.status.success() && out.stdout.is_empty());
}

#[test]
fn client_hash_turns_a_chosen_secret_into_an_argon2id_phc_string() {
    let mut child = Command::new(BIN)
        .args(["oauth", "client", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"operator chosen secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let phc = text(&out.stdout);
    let phc = phc.trim_end();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    let h = portcullis::issuer::oauth2::registry::SecretHash::parse(phc).unwrap();
    assert!(h.verify_slow("operator chosen secret") && !h.verify_slow("operator chosen secret\n"));
}

#[test]
fn keys_rotate_creates_a_private_folder_and_adds_keys_without_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("oauth-keys");
    let k = keys.to_str().unwrap();
    for _ in 0..2 {
        let out = portcullis(&["oauth", "keys", "rotate", k]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "messages go to stderr");
    }
    assert_eq!(
        std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&keys).unwrap().collect();
    assert_eq!(files.len(), 2);
    for f in files {
        let mode = f.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// The token route behind `client_auth = "optional"`: `check` explains it as a warning and
/// exits 0; a missing state_dir is fine; a missing keys folder is a problem.
#[test]
fn check_warns_about_optional_client_auth_and_reports_issuer_problems() {
    let pki = TestPki::new();
    let body = "[[upstream]]\nname = \"auth\"\nbuiltin = \"oauth2\"\n\n[[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n[[route]]\nname = \"token\"\npath_prefix = \"/oauth2\"\nupstream = \"auth\"\nauth = [\"builtin\"]\n\n[[route]]\nname = \"open\"\npath_prefix = \"/\"\nupstream = \"echo\"\nauth = [\"jwt:local\"]\n\n[auth.jwt.local]\nlocal_issuer = true\n\n[issuer.oauth2]\nissuer = \"https://auth.example.test\"\nkeys = \"oauth-keys\"\nclients_file = \"oauth-clients.toml\"\nstate_dir = \"state\"\n";
    let spec = Spec {
        listener: "client_auth = \"optional\"",
        body: body.into(),
        ..Spec::default()
    };
    let (dir, path) = common::write_config(&pki, &spec);
    let p = path.to_str().unwrap();
    let out = portcullis(&["check", "--config", p]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("issuer.oauth2.keys") && stderr.contains("oauth keys rotate"),
        "{stderr}"
    );
    assert!(stderr.contains("issuer.oauth2.clients_file"), "{stderr}");

    let f = dir.path().join("oauth-clients.toml");
    assert!(portcullis(&[
        "oauth",
        "client",
        "add",
        f.to_str().unwrap(),
        "a",
        "--scope",
        "s"
    ])
    .status
    .success());
    let k = dir.path().join("oauth-keys");
    assert!(
        portcullis(&["oauth", "keys", "rotate", k.to_str().unwrap()])
            .status
            .success()
    );
    let out = portcullis(&["check", "--config", p]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: listener[0] has client_auth = \"optional\""),
        "{stderr}"
    );
    assert!(stderr.contains("these routes do not: open"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "check changes nothing");
    assert!(!stderr.contains("90 days"), "{stderr}");

    // A folder whose newest key is older than 90 days: a warning, still exit 0.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(100 * 86_400);
    for f in std::fs::read_dir(&k).unwrap() {
        std::fs::File::options()
            .write(true)
            .open(f.unwrap().path())
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let out = portcullis(&["check", "--config", p]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: issuer.oauth2.keys: no key is newer than 90 days"),
        "{stderr}"
    );
}
