//! What `/metrics` and the binary say about themselves: every family has HELP and TYPE
//! (and `promtool check metrics` passes where promtool is installed), the counters of
//! later events are there at 0 from the start, the build info and process metrics, one
//! result vocabulary; `--version` and `completions`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use common::{client, Opts, TestPki};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// family → (has HELP, TYPE).
type Families = BTreeMap<String, (bool, Option<String>)>;

/// The families, and every sample's metric name.
fn families(text: &str) -> (Families, BTreeSet<String>) {
    let mut fam = Families::new();
    let mut samples = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().unwrap();
            let help = rest[name.len()..].trim();
            assert!(!help.is_empty(), "empty HELP: {line}");
            fam.entry(name.to_owned()).or_default().0 = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap();
            fam.entry(name.to_owned()).or_default().1 = it.next().map(str::to_owned);
        } else if !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            samples.insert(name.to_owned());
        }
    }
    (fam, samples)
}

/// The family a sample belongs to (histograms' `_bucket`/`_sum`/`_count`).
fn family_of<'a>(sample: &'a str, fam: &Families) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if fam.contains_key(base) {
                return base;
            }
        }
    }
    sample
}

#[tokio::test]
async fn every_family_has_help_and_type_and_later_counters_start_at_zero() {
    let pki = TestPki::new();
    let gw = common::start(&pki, common::quiet()).await;
    // One request, so the request families exist too.
    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(c.get("/").await.unwrap().status, 200);
    let text = gw.metrics().await;

    let (fam, samples) = families(&text);
    for s in &samples {
        let f = family_of(s, &fam);
        let (help, kind) = fam.get(f).cloned().unwrap_or_default();
        assert!(help, "{f} has no # HELP line in\n{text}");
        assert!(kind.is_some(), "{f} has no # TYPE line in\n{text}");
    }

    // Build info and the standard process metrics.
    let build = text
        .lines()
        .find(|l| l.starts_with("portcullis_build_info{"))
        .unwrap_or_else(|| panic!("no portcullis_build_info in\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{build}"
    );
    assert!(build.contains("revision=\""), "{build}");
    assert!(build.ends_with(" 1"), "{build}");
    assert_eq!(
        fam["process_cpu_seconds_total"].1.as_deref(),
        Some("counter")
    );
    assert!(common::metric(&text, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(common::metric(&text, "process_open_fds", &[]) >= 3.0);

    // Nothing has failed yet, and the failure series are already there at 0.
    for (name, labels) in [
        (
            "portcullis_reload_total",
            &["kind=\"api\"", "result=\"failure\""][..],
        ),
        (
            "portcullis_reload_total",
            &["kind=\"watch\"", "result=\"success\""][..],
        ),
        (
            "portcullis_tls_handshakes_total",
            &["result=\"rejected\"", "reason=\"no_certificate\""][..],
        ),
        (
            "portcullis_tls_handshakes_total",
            &["result=\"rejected\"", "reason=\"revoked\""][..],
        ),
        (
            "portcullis_tls_handshakes_total",
            &["result=\"failed\"", "reason=\"timeout\""][..],
        ),
        (
            "portcullis_tls_client_cert_verifications_total",
            &["result=\"rejected\"", "reason=\"expired\""][..],
        ),
        (
            "portcullis_auth_sigv4_credential_reloads_total",
            &["result=\"failure\""][..],
        ),
        (
            "portcullis_revoked_connections_total",
            &["reason=\"revoked\""][..],
        ),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)));
        assert!(
            line.is_some(),
            "{name}{labels:?} is not present at start in\n{text}"
        );
    }

    // One vocabulary: no result label outside it.
    for line in text.lines().filter(|l| l.contains("result=\"")) {
        let result = line
            .split("result=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let allowed: &[&str] =
            if line.starts_with("portcullis_reload_total") || line.contains("_reloads_total") {
                &["success", "failure"]
            } else if line.starts_with("portcullis_tls_handshakes_total") {
                &["accepted", "rejected", "failed"]
            } else if line.contains("_verifications_total") || line.contains("_validations_total") {
                &["accepted", "rejected"]
            } else {
                continue;
            };
        assert!(
            allowed.contains(&result),
            "{line}: result not in {allowed:?}"
        );
    }

    // promtool, where it is installed (scripts/test.sh installs Debian's `prometheus`).
    if Command::new("promtool").arg("--version").output().is_ok() {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}\nin\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool not installed: checked HELP/TYPE by parsing only");
    }
    gw.shutdown().await;
}

#[test]
fn version_names_the_revision_and_profile() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!(
            "portcullis {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
    assert!(
        v.contains(", debug build)") || v.contains(", release build)"),
        "{v}"
    );
    let revision = v
        .split("(revision ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(
        revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{v}"
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef portcullis"),
        ("fish", "complete -c portcullis"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        assert!(
            script.contains("quickstart"),
            "{shell}: subcommands missing"
        );
    }
    // bash itself loads the script and registers the completion.
    if let Ok(bash) = Command::new("bash")
        .args([
            "-c",
            "eval \"$(\"$0\" completions bash)\" && complete -p portcullis",
            BIN,
        ])
        .output()
    {
        assert!(
            bash.status.success(),
            "{}",
            String::from_utf8_lossy(&bash.stderr)
        );
        assert!(String::from_utf8_lossy(&bash.stdout).contains("portcullis"));
    }
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
