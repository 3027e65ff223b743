//! Refused clients learn why (issue 18, item 1): every refused handshake leaves the alert
//! rustls produced readable by the client, because the gateway shuts its write side and
//! drains the client's bytes before it closes (a close with unread data is a RST, which
//! made curl lose the alert most of the time).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{LeafSpec, TestPki};
use time::{Duration, OffsetDateTime};

/// The refused clients: (name, PEM files or none, the alert text curl/OpenSSL names).
struct Refused {
    name: &'static str,
    cert: Option<(PathBuf, PathBuf)>,
    alert: &'static str,
}

/// A PKI with a revoked and an expired client; the gateway trusting it; the client files
/// written next to its config.
async fn gateway_and_refused_clients() -> (common::TestGateway, Vec<Refused>) {
    let mut pki = TestPki::new();
    let revoked = pki.client("revoked");
    pki.revoke(&revoked);
    let expired = pki.leaf(LeafSpec {
        cn: "expired".into(),
        uris: vec!["spiffe://test/client/expired".into()],
        not_before: OffsetDateTime::now_utc() - Duration::days(30),
        not_after: OffsetDateTime::now_utc() - Duration::days(1),
        ..LeafSpec::default()
    });
    let gw = common::start(&pki, common::quiet()).await;
    let dir = gw.dir.path();
    std::fs::write(dir.join("root.pem"), pki.root_pem()).unwrap();
    let files = |leaf: &common::pki::Leaf| {
        let cert = dir.join(format!("{}.pem", leaf.name));
        let key = dir.join(format!("{}.key", leaf.name));
        std::fs::write(&cert, &leaf.chain_pem).unwrap();
        common::write_key(&key, &leaf.key_pem);
        Some((cert, key))
    };
    files(&pki.client("alice"));
    let clients = vec![
        Refused {
            name: "no certificate",
            cert: None,
            alert: "alert certificate required",
        },
        Refused {
            name: "expired",
            cert: files(&expired),
            alert: "alert certificate expired",
        },
        Refused {
            name: "revoked",
            cert: files(&revoked),
            alert: "alert certificate revoked",
        },
    ];
    (gw, clients)
}

/// One curl run: its exit code and stderr.
fn curl(dir: &Path, port: u16, cert: &Option<(PathBuf, PathBuf)>) -> (Option<i32>, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir)
        .args(["-sS", "--max-time", "10", "--cacert", "root.pem"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-o", "/dev/null"]);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    let out = cmd
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 20 curl runs per refused client (no certificate, expired, revoked): every one ends with
/// the alert named (exit 56, the receive error that carries it), none with a transport
/// error in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_the_alert_of_every_refused_handshake() {
    common::ensure_tool("curl", "curl");
    let (gw, clients) = gateway_and_refused_clients().await;
    let dir = gw.dir.path().to_owned();
    let port = gw.addr.port();
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for c in &clients {
            for run in 0..20 {
                let (code, stderr) = curl(&dir, port, &c.cert);
                if code != Some(56) || !stderr.contains(c.alert) {
                    failures.push(format!("{} run {run}: exit {code:?}: {stderr}", c.name));
                }
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} of 60 runs lost the alert:\n{}",
        failures.len(),
        failures.join("")
    );
    gw.shutdown().await;
}

/// `openssl s_client` gets the same alerts (it always did: it reads before it closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_still_reads_the_alert() {
    common::ensure_tool("openssl", "openssl");
    let (gw, clients) = gateway_and_refused_clients().await;
    let dir = gw.dir.path().to_owned();
    let addr = gw.addr.to_string();
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for c in &clients {
            let mut cmd = Command::new("openssl");
            cmd.current_dir(&dir)
                .args(["s_client", "-connect", &addr, "-CAfile", "root.pem"])
                .args(["-servername", "localhost", "-ign_eof"])
                .stdin(std::process::Stdio::null());
            if let Some((cert, key)) = &c.cert {
                cmd.arg("-cert").arg(cert).arg("-key").arg(key);
                cmd.arg("-cert_chain").arg(cert);
            }
            let out = cmd.output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            if !text.contains(c.alert) {
                failures.push(format!("{}: {text}", c.name));
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    gw.shutdown().await;
}

/// The real binary, its stderr read line by line into `lines`.
struct Gateway {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Gateway {
    fn run(config: &Path) -> Gateway {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Gateway { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The JSON lines so far; panics on a line that is not one.
    fn json(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
            .collect()
    }

    /// Wait (bounded, 30 s) for a line that `pred` accepts.
    fn wait_for(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(v) = self.json().into_iter().find(|v| pred(v)) {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no {what} line in:\n{}", self.lines().join("\n"));
    }

    /// The address of the line with `message`.
    fn address(&self, message: &str) -> std::net::SocketAddr {
        let v = self.wait_for(message, |v| v["message"] == message);
        v["address"].as_str().unwrap().parse().unwrap()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// The line with `message` and `reason` (bounded wait).
fn refusal(gw: &Gateway, message: &str, reason: &str) -> serde_json::Value {
    gw.wait_for(reason, |v| v["message"] == message && v["reason"] == reason)
}

/// Issue 18, items 2 and 3: with stderr a pipe the binary writes JSON lines without colour
/// codes; every refused handshake and refused request is one `info` line with peer,
/// subject, issuer, fingerprint, reason and detail; a flood of one reason is cut to
/// `LINES_PER_SECOND` lines a second, the rest counted in `portcullis_log_suppressed_total`
/// and announced by a "suppressed" line.
#[test]
fn refusals_are_logged_as_rate_limited_json_lines() {
    common::ensure_tool("curl", "curl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut tgw, _clients) = rt.block_on(gateway_and_refused_clients());
    // The in-process gateway only made the PKI and files: run the binary on the same config.
    rt.block_on(tgw.take_running().shutdown());
    let dir = tgw.dir.path().to_owned();
    let config = dir.join("portcullis.toml");
    let gw = Gateway::run(&config);
    let addr = gw.address("listening");
    let admin = gw.address("admin listener up");
    let port = addr.port();
    let expired = Some((dir.join("expired.pem"), dir.join("expired.key")));
    let (code, stderr) = curl(&dir, port, &expired);
    assert_eq!(code, Some(56), "{stderr}");

    let line = refusal(&gw, "TLS handshake refused", "expired");
    assert_eq!(line["level"], "INFO");
    assert!(
        line["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert_eq!(line["listener"], addr.to_string());
    assert!(
        line["subject"].as_str().unwrap().contains("CN=expired"),
        "{line}"
    );
    assert!(
        line["issuer"]
            .as_str()
            .unwrap()
            .contains("test intermediate CA"),
        "{line}"
    );
    assert_eq!(line["fingerprint"].as_str().unwrap().len(), 64, "{line}");
    assert!(!line["detail"].as_str().unwrap().is_empty(), "{line}");

    // A refused request (a path the gateway refuses, 400) by a client it knows.
    let out = Command::new("curl")
        .current_dir(&dir)
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "root.pem",
            "--path-as-is",
        ])
        .args(["--cert", "alice.pem", "--key", "alice.key"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://localhost:{port}/x/%2e%2e/admin"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");
    let line = gw.wait_for("request refused", |v| v["message"] == "request refused");
    assert!(
        line["subject"].as_str().unwrap().contains("CN=alice"),
        "{line}"
    );
    assert_eq!(line["fingerprint"].as_str().unwrap().len(), 64, "{line}");
    assert_eq!(line["status"], 400, "{line}");
    assert!(!line["reason"].as_str().unwrap().is_empty(), "{line}");

    // A flood of handshakes without a certificate: at most 10 lines per second of it.
    const FLOOD: usize = 40;
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..FLOOD / 4 {
                    curl(&dir, port, &None);
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs() + 1;
    let metrics = rt.block_on(common::admin_get(admin, "/metrics")).1;
    let suppressed = common::metric(
        &metrics,
        portcullis::telemetry::metrics::LOG_SUPPRESSED_TOTAL,
        &["reason=\"no_certificate\""],
    ) as usize;
    let logged = gw
        .json()
        .iter()
        .filter(|v| v["message"] == "TLS handshake refused" && v["reason"] == "no_certificate")
        .count();
    assert_eq!(
        logged + suppressed,
        FLOOD,
        "every refusal is logged or counted"
    );
    let limit = portcullis::telemetry::refusal_log::LINES_PER_SECOND as usize;
    assert!(
        logged <= limit * (elapsed as usize + 1),
        "{logged} lines in {elapsed} s"
    );
    if suppressed > 0 {
        // The next second's first refusal of that reason says how many were suppressed.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        curl(&dir, port, &None);
        let told = gw.wait_for("suppressed", |v| {
            v["reason"] == "no_certificate" && v["suppressed"].as_u64().is_some()
        });
        assert!(told["suppressed"].as_u64().unwrap() >= 1, "{told}");
    }
    let lines = gw.lines();
    gw.stop();
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "colour codes on a pipe:\n{}",
        lines.join("\n")
    );
}

/// `[log] format = "text"` writes text, and still no colour codes on a pipe.
#[test]
fn text_format_has_no_colour_codes_off_a_terminal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut tgw, _) = rt.block_on(gateway_and_refused_clients());
    rt.block_on(tgw.take_running().shutdown());
    let config = tgw.dir.path().join("portcullis.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[log]\n", "[log]\nformat = \"text\"\n", 1);
    std::fs::write(&config, text).unwrap();
    let gw = Gateway::run(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !gw.lines().iter().any(|l| l.contains("listening")) {
        assert!(std::time::Instant::now() < deadline, "{:?}", gw.lines());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let lines = gw.lines();
    gw.stop();
    let listening = lines.iter().find(|l| l.contains("listening")).unwrap();
    assert!(listening.contains(" INFO "), "{listening}");
    assert!(
        serde_json::from_str::<serde_json::Value>(listening).is_err(),
        "{listening}"
    );
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
}
