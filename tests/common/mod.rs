//! Shared helpers for the integration tests: a PKI made at run time, a real origin, a real
//! TLS client, and a gateway started from a TOML config written to a temporary folder.
#![allow(dead_code)]

pub mod client;
pub mod origin;
pub mod pki;
pub mod process;
pub mod sigv4;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis::server::{self, Running};

#[allow(unused_imports)]
pub use client::{Opts, Tls};
#[allow(unused_imports)]
pub use pki::{LeafSpec, TestPki, TrustLayout};

/// curl and openssl are outside clients the tests drive for real; `scripts/test.sh` installs
/// them, and this installs one too when the tests are run some other way on a Debian machine.
pub fn ensure_tool(tool: &str, package: &str) {
    if std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
    {
        return;
    }
    let _ = std::process::Command::new("apt-get")
        .args(["install", "-y", "-q", package])
        .status();
    assert!(
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok(),
        "{tool} is needed by this test and could not be installed (apt-get install {package})"
    );
}

/// `portcullis run --config <config>` as a child process: its stderr piped (JSON log lines,
/// as stderr is not a terminal), `RUST_LOG` unset.
pub fn spawn_binary(config: &Path) -> std::process::Child {
    binary_command(config).spawn().unwrap()
}

/// The command [`spawn_binary`] runs, for a caller that adds to it (environment).
pub fn binary_command(config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Install the one crypto provider the gateway and the tests use (idempotent).
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    portcullis::telemetry::init_logging("warn");
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    running: Option<Running>,
}

/// What goes into the config besides the listener and truststore basics.
pub struct Spec<'a> {
    /// Extra `key = value` lines for `[[listener]]`.
    pub listener: &'a str,
    /// Extra lines for `[truststore]`.
    pub truststore: &'a str,
    /// `[[upstream]]` and `[[route]]` tables (and anything else).
    pub body: String,
    pub layout: TrustLayout,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            listener: "",
            truststore: "",
            body: echo_route(),
            layout: TrustLayout::default(),
        }
    }
}

/// Echo route, no watcher and a poller too slow to matter: only POST /reload reloads.
pub fn quiet() -> Spec<'static> {
    Spec {
        body: format!(
            "{}\n[reload]\nwatch = false\npoll_interval = \"1h\"\n",
            echo_route()
        ),
        ..Spec::default()
    }
}

/// `POST /reload` on the admin listener: (status, JSON body).
pub async fn reload(gw: &TestGateway) -> (u16, serde_json::Value) {
    admin_post(gw.admin.unwrap(), "/reload").await
}

/// One route `/` to the built-in echo.
pub fn echo_route() -> String {
    "[[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"echo\"\n".into()
}

/// One upstream `backend` at `addr` and a route `/` to it.
pub fn backend_route(addr: SocketAddr, upstream_extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"backend\"\nendpoints = [\"{addr}\"]\n{upstream_extra}\n\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"backend\"\n"
    )
}

pub fn write_key(path: &Path, pem: &str) {
    let mut f = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(pem.as_bytes()).unwrap();
}

/// Write the PKI and config to a fresh folder; return (folder, config path).
pub fn write_config(pki: &TestPki, spec: &Spec) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("server.pem"), &pki.server.chain_pem).unwrap();
    write_key(&dir.path().join("server.key"), &pki.server.key_pem);
    pki.write_truststore(&dir.path().join("truststore"), &spec.layout);
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server.key\"\n{}\n\n[truststore]\ndir = \"truststore\"\n{}\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = \"access.log\"\n\n{}",
        spec.listener, spec.truststore, spec.body
    );
    let path = dir.path().join("portcullis.toml");
    fs::write(&path, config).unwrap();
    (dir, path)
}

pub async fn start(pki: &TestPki, spec: Spec<'_>) -> TestGateway {
    init();
    let (dir, path) = write_config(pki, &spec);
    let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let running = server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    TestGateway {
        addr: running.listeners[0],
        admin: running.admin,
        dir,
        running: Some(running),
    }
}

impl TestGateway {
    /// Wrap a gateway started by the test itself from a config in `dir`.
    pub fn from_parts(running: Running, dir: tempfile::TempDir) -> TestGateway {
        TestGateway {
            addr: running.listeners[0],
            admin: running.admin,
            dir,
            running: Some(running),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    pub fn take_running(&mut self) -> Running {
        self.running.take().unwrap()
    }

    /// The access-log lines written so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn metrics(&self) -> String {
        admin_get(self.admin.unwrap(), "/metrics").await.1
    }
}

/// A plain-HTTP GET to the admin listener: (status, body).
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "admin")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A plain-HTTP POST to the admin listener: (status, JSON body).
pub async fn admin_post(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    admin_post_body(addr, path, bytes::Bytes::new()).await
}

/// A plain-HTTP POST with `body` to the admin listener: (status, JSON body).
pub async fn admin_post_body(
    addr: SocketAddr,
    path: &str,
    body: bytes::Bytes,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(body))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Sum of every sample of `name` whose labels contain all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            rest.starts_with(' ') || rest.starts_with('{')
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Assert that [`metric`] of `name` with `labels` is at least `min`; on failure the message
/// shows the value and the whole exposition.
#[track_caller]
pub fn assert_metric_at_least(text: &str, name: &str, labels: &[&str], min: f64) {
    let got = metric(text, name, labels);
    assert!(
        got >= min,
        "{name}{labels:?} is {got}, expected at least {min}\n{text}"
    );
}

/// Wait (bounded, 5 s) until [`metric`] of `name` with `labels` on `gw` reaches `min`; the
/// value. Counters that a connection's end raises may trail what the client saw.
pub async fn wait_for_metric(gw: &TestGateway, name: &str, labels: &[&str], min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = gw.metrics().await;
        let got = metric(&text, name, labels);
        if got >= min || Instant::now() > deadline {
            assert!(
                got >= min,
                "{name}{labels:?} is {got}, expected at least {min}\n{text}"
            );
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Send GETs on `conn` until one is refused with 403 (bounded); the time that took.
pub async fn until_refused(
    conn: &mut client::Conn,
    limit: Duration,
) -> Option<(Duration, client::Reply)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        match conn.get("/").await {
            Ok(r) if r.status == 403 => return Some((start.elapsed(), r)),
            Ok(r) => assert_eq!(r.status, 200, "unexpected reply before the cut-off"),
            Err(e) => panic!("the connection failed instead of being refused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// `GET /truststore` on the admin listener, parsed (asserts 200).
pub async fn truststore_json(gw: &TestGateway) -> serde_json::Value {
    let (status, body) = admin_get(gw.admin.unwrap(), "/truststore").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The access-log lines of `kind` (their `"type"`, e.g. an issuer's audit lines) written so
/// far; waits up to 10 s for at least `n`.
pub async fn audit_lines(gw: &TestGateway, kind: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<serde_json::Value> = gw
            .access_log()
            .into_iter()
            .filter(|l| l["type"] == kind)
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
