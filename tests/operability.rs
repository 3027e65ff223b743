//! What operators hit first (issue 18, items 4–7, 9, 13, 14): `check` as the contract for
//! `run`, config type errors, reload's `restart_required`, key permissions under
//! Kubernetes, and what the gateway forwards (X-Forwarded-For, bearer tokens).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Spec, TestPki};

/// A Kubernetes Secret mounted with `fsGroup` gives the key mode 0440 (or 0640 with
/// `defaultMode: 0640`): strict accepts both; what lets others read it or the group
/// replace it is still refused.
#[tokio::test]
async fn strict_key_permissions_accept_a_group_readable_secret() {
    common::init();
    let pki = TestPki::new();
    let (dir, path) = common::write_config(&pki, &Spec::default());
    let key = dir.path().join("server.key");
    for mode in [0o440, 0o640, 0o400] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let config = portcullis::config::load(&path).unwrap();
        let running = portcullis::server::start(&config)
            .await
            .unwrap_or_else(|e| panic!("mode {mode:04o} must start under strict: {e}"));
        running.shutdown().await;
    }
    for mode in [0o444, 0o604, 0o660, 0o620] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let config = portcullis::config::load(&path).unwrap();
        let err = match portcullis::server::start(&config).await {
            Ok(_) => panic!("mode {mode:04o} must be refused under strict"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("server.key") && err.contains(&format!("{mode:04o}")),
            "{err}"
        );
    }
}

/// Item 13: a client-sent `X-Forwarded-For: 10.0.0.1` must not reach the backend as if the
/// gateway had added it; from a peer in `trusted_proxies` it is kept and the peer appended.
#[tokio::test]
async fn x_forwarded_for_is_kept_only_from_a_trusted_proxy() {
    use bytes::Bytes;
    use common::client::{self, Opts};
    use common::origin::Origin;
    use http_body_util::Full;

    let pki = TestPki::new();
    let origin = Origin::start().await;
    let alice = pki.client("alice");
    for (listener, expected) in [
        ("", "127.0.0.1"),
        ("trusted_proxies = [\"10.0.0.0/8\"]", "127.0.0.1"),
        (
            "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.0/8\"]",
            "10.0.0.1, 127.0.0.1",
        ),
    ] {
        let gw = common::start(
            &pki,
            Spec {
                listener,
                body: common::backend_route(origin.addr, ""),
                ..Spec::default()
            },
        )
        .await;
        let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
            .await
            .unwrap();
        let req = http::Request::get("/")
            .header("host", "localhost")
            .header("x-forwarded-for", "10.0.0.1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = conn.send(req).await.unwrap();
        assert_eq!(reply.status, 200, "{listener}");
        let seen = origin.last();
        let xff: Vec<_> = seen.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, [expected], "{listener}");
        gw.shutdown().await;
    }
}

#[test]
fn a_trusted_proxies_entry_that_is_not_a_network_is_a_config_error() {
    let pki = TestPki::new();
    let listener = "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\", \"proxy\"]";
    let (_dir, path) = config_with(&pki, listener, common::echo_route());
    let err = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(err.contains("listener[0].trusted_proxies[1]"), "{err}");
    assert!(err.contains("listener[0].trusted_proxies[2]"), "{err}");
}

/// Item 6: a missing truststore folder is named as missing, and no message repeats its
/// `truststore X:` prefix — from `run`'s start-up and from `check`.
#[tokio::test]
async fn a_missing_truststore_folder_is_called_missing_once() {
    common::init();
    let pki = TestPki::new();
    let (dir, path) = common::write_config(&pki, &Spec::default());
    let ts = dir.path().join("truststore");
    std::fs::remove_dir_all(&ts).unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let err = match portcullis::server::start(&config).await {
        Ok(_) => panic!("started without a truststore"),
        Err(e) => e.to_string(),
    };
    let prefix = format!("truststore {}", ts.display());
    assert_eq!(err, format!("{prefix}: the folder does not exist"));

    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the folder does not exist"), "{stderr}");
    assert_eq!(stderr.matches(&prefix).count(), 1, "{stderr}");

    // An empty folder: its roots/ is what is missing.
    std::fs::create_dir(&ts).unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let err = match portcullis::server::start(&config).await {
        Ok(_) => panic!("started without roots"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("has no roots/ folder"), "{err}");
    assert_eq!(err.matches(&prefix).count(), 1, "{err}");
}

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `portcullis SUBCOMMAND --config PATH`, the real binary.
fn portcullis(subcommand: &str, path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .args([subcommand, "--config", path.to_str().unwrap()])
        .output()
        .unwrap()
}

fn check(path: &std::path::Path) -> std::process::Output {
    portcullis("check", path)
}

/// A config with `listener` lines in `[[listener]]` and `body` (routes and the rest).
fn config_with(
    pki: &TestPki,
    listener: &str,
    body: String,
) -> (tempfile::TempDir, std::path::PathBuf) {
    common::write_config(
        pki,
        &Spec {
            listener,
            body,
            ..Spec::default()
        },
    )
}

/// Item 7: `restart_required` compares the file with what the process runs, so a change
/// the file watcher already reloaded is still listed by the next `POST /reload`.
#[tokio::test]
async fn restart_required_lists_what_still_runs_after_a_watched_reload() {
    let pki = TestPki::new();
    // The default [reload]: the file watcher is on.
    let gw = common::start(&pki, Spec::default()).await;
    let path = gw.dir.path().join("portcullis.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The metrics are process-wide: count from what other tests left.
    let success = ["result=\"success\""];
    let before = common::metric(&gw.metrics().await, "portcullis_reload_total", &success);
    let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new_admin = spare.local_addr().unwrap();
    drop(spare);
    let text = text
        .replacen(
            "key = \"server.key\"",
            "key = \"server.key\"\nidle_timeout = \"17s\"\nworkers = 3",
            1,
        )
        .replace(
            "[admin]\naddress = \"127.0.0.1:0\"",
            &format!("[admin]\naddress = \"{new_admin}\""),
        );
    std::fs::write(&path, text).unwrap();
    // The watcher (or its poller) reloads the change first.
    common::wait_for_metric(&gw, "portcullis_reload_total", &success, before + 1.0).await;
    let (status, body) = common::reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["restart_required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "listener[0].idle_timeout",
        "listener[0].workers",
        "admin.address",
    ] {
        assert!(listed.contains(&key), "{key} missing from {listed:?}");
    }
    assert_eq!(listed.len(), 3, "{listed:?}");
    gw.shutdown().await;
}

/// A `[auth.jwt.NAME]` provider at `url` and a route that uses it.
fn jwt_body(name: &str, url: &str) -> String {
    format!(
        "{}\n[auth.jwt.{name}]\nissuer = \"https://idp.test\"\njwks_url = \"{url}\"\naudiences = [\"client-1\"]\n\n[[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"echo\"\nauth = [\"mtls\", \"jwt:{name}\"]\n",
        common::echo_route()
    )
}

/// A URL on 127.0.0.1 where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/jwks.json")
}

fn line_of(path: &std::path::Path, starts: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.starts_with(starts))
        .unwrap_or_else(|| panic!("no line starting {starts}"))
        + 1
}

/// Item 5: a type error names its key, what it takes and what it found, at its line; and
/// every type error of the file is reported, with the builder's problems beside them.
#[test]
fn check_names_every_type_error_by_key() {
    let pki = TestPki::new();
    let listener = "idle_timeout = 60\nmax_connections = \"many\"\nclient_auth = \"sometimes\"";
    let (dir, path) = config_with(&pki, listener, common::echo_route());
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[admin]\naddress = \"127.0.0.1:0\"",
        "[admin]\naddress = 9901",
    ) + "\n[reload]\nwatch = \"yes\"\n";
    std::fs::write(&path, text).unwrap();
    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    for (starts, expected) in [
        (
            "idle_timeout",
            "listener[0].idle_timeout: expected a duration like \"30s\", found the integer 60",
        ),
        (
            "max_connections",
            "listener[0].max_connections: expected a whole number, found the string \"many\"",
        ),
        (
            "address = 9901",
            "admin.address: expected a string, found the integer 9901",
        ),
        (
            "watch",
            "reload.watch: expected true or false, found the string \"yes\"",
        ),
        (
            "client_auth",
            "listener[0].client_auth: \"sometimes\" is not one of",
        ),
    ] {
        let line = line_of(&path, starts);
        assert!(
            stderr.contains(&format!("{file}:{line}: {expected}")),
            "{expected}\n{stderr}"
        );
    }
    assert!(stderr.contains("5 problem(s) found"), "{stderr}");
    // `run` refuses the same file with the same words.
    let run = portcullis("run", &path);
    assert!(!run.status.success());
    let run_err = String::from_utf8_lossy(&run.stderr);
    assert!(
        run_err.contains(
            "listener[0].idle_timeout: expected a duration like \"30s\", found the integer 60"
        ),
        "{run_err}"
    );
    drop(dir);
}

/// Item 4: `check` reports in one run the config errors and every problem of the material
/// — both missing files of a listener, a broken truststore, a JWKS URL that cannot be
/// fetched (with its provider, URL and line) — and fails; `run` refuses the same start
/// and names the URL and line too.
#[test]
fn check_reports_config_and_material_problems_together() {
    let pki = TestPki::new();
    let url = dead_url();
    let (dir, path) = config_with(&pki, "idle_timeout = 60", jwt_body("idp", &url));
    std::fs::remove_file(dir.path().join("server.pem")).unwrap();
    std::fs::remove_file(dir.path().join("server.key")).unwrap();
    std::fs::write(
        dir.path().join("truststore/roots/junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    let expect = [
        (
            line_of(&path, "idle_timeout"),
            "listener[0].idle_timeout: expected a duration",
        ),
        (line_of(&path, "cert ="), "listener[0].cert: "),
        (line_of(&path, "key ="), "listener[0].key: "),
        (line_of(&path, "dir ="), "truststore.dir: "),
        (
            line_of(&path, "jwks_url"),
            "auth.jwt.idp.jwks_url: first JWKS fetch failed: ",
        ),
    ];
    for (line, start) in expect {
        assert!(
            stderr.contains(&format!("{file}:{line}: {start}")),
            "{start}\n{stderr}"
        );
    }
    assert!(stderr.contains(&format!("(from {url})")), "{stderr}");
    assert!(
        stderr.contains("server.pem") && stderr.contains("server.key"),
        "{stderr}"
    );
    assert!(stderr.contains("junk.pem"), "{stderr}");
    assert!(stderr.contains("5 problem(s) found"), "{stderr}");

    // Only the JWKS left broken: check still fails on it, and so does run, at its line.
    let (dir, path) = config_with(&pki, "", jwt_body("idp", &url));
    let out = check(&path);
    assert!(!out.status.success(), "check passed what run refuses");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 problem(s) found"), "{stderr}");
    let run = portcullis("run", &path);
    assert!(!run.status.success());
    let run_err = String::from_utf8_lossy(&run.stderr);
    let line = line_of(&path, "jwks_url");
    assert!(
        run_err.contains(&format!(
            "{}:{line}: auth.jwt.idp: first JWKS fetch failed: ",
            path.display()
        )) && run_err.contains(&format!("(from {url})")),
        "{run_err}"
    );
    drop(dir);
}
