//! The fleet tests' setup: a real `redis-server` (Debian's package) on a free port with a
//! temporary folder, killed when dropped; gateway processes (the real binary) sharing one
//! folder of PKI, signing keys and client registry, each with its own `state_dir`, access
//! log and config, all with `[cluster]` pointing at that Redis.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::client::{self, Conn};
use crate::common::pki::Leaf;
use crate::common::{self, Opts, Spec, TestPki};
use crate::support::{self, Secrets};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        common::ensure_tool("redis-server", "redis-server");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    /// Start (again) on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.connection().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut c = redis::Client::open(self.url())?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One gateway process; killed when dropped.
pub struct Instance {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    /// Start the binary with `config` and wait until it listens (bounded, 30 s).
    pub fn spawn(config: &std::path::Path) -> Instance {
        Instance::watch(crate::common::spawn_binary(config))
    }

    /// Wait until `child` (the binary) listens (bounded, 30 s).
    pub fn watch(mut child: Child) -> Instance {
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let addr = |message: &str| -> Option<SocketAddr> {
                log.lock().unwrap().iter().find_map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).ok()?;
                    (v["message"] == message).then(|| v["address"].as_str()?.parse().ok())?
                })
            };
            if let (Some(addr), Some(admin)) = (addr("listening"), addr("admin listener up")) {
                return Instance {
                    child,
                    addr,
                    admin,
                    log,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gateway did not start: {:?}", log.lock().unwrap());
    }

    /// The index of the first log line containing `needle`.
    pub fn log_position(&self, needle: &str) -> Option<usize> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .position(|l| l.contains(needle))
    }

    /// Every log line so far (for assertion messages).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Wait (bounded, 10 s) for a log line containing `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_position(needle).is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn metrics(&self) -> String {
        common::admin_get(self.admin, "/metrics").await.1
    }

    /// Wait (bounded, `limit`) until `name{labels}` is at least `min`; the last value.
    pub async fn wait_metric(&self, name: &str, labels: &[&str], min: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let got = common::metric(&self.metrics().await, name, labels);
            if got >= min || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait (bounded) until `portcullis_cluster_redis_up` is `up`.
    pub async fn wait_redis_up(&self, up: bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let want = if up { 1.0 } else { 0.0 };
        while Instant::now() < deadline {
            let text = self.metrics().await;
            if text.contains("portcullis_cluster_redis_up")
                && common::metric(&text, "portcullis_cluster_redis_up", &[]) == want
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn revoke_jti(&self, jti: &str) {
        let body = serde_json::json!({ "jti": jti }).to_string();
        let (status, reply) =
            common::admin_post_body(self.admin, "/issuer/oauth2/revoke", body.into()).await;
        assert_eq!(status, 200, "{reply}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared folder: PKI, server certificate, truststore, signing keys and registry.
pub struct Fleet {
    pub pki: TestPki,
    /// The client certificate every connection presents (tokens are bound to it).
    leaf: Leaf,
    pub secrets: Secrets,
    pub dir: tempfile::TempDir,
    template: String,
}

impl Fleet {
    /// Write the shared folder for an OAuth2 issuer with `rate_limit`, sharing `redis`.
    pub fn new(rate_limit: &str, redis: &Redis) -> Fleet {
        Fleet::with(rate_limit, redis, "")
    }

    /// [`Fleet::new`] with `extra` config (tables) appended.
    pub fn with(rate_limit: &str, redis: &Redis, extra: &str) -> Fleet {
        Fleet::at(rate_limit, &redis.url(), extra)
    }

    /// [`Fleet::with`] for the Redis at `url`.
    pub fn at(rate_limit: &str, url: &str, extra: &str) -> Fleet {
        common::init();
        let pki = TestPki::new();
        let spec = Spec {
            listener: "client_auth = \"optional\"",
            body: format!(
                "{}\n[cluster]\nredis_url = \"{}\"\nkey_prefix = \"portcullis:\"\ntimeout = \"200ms\"\n{extra}",
                support::body(rate_limit),
                url
            ),
            ..Spec::default()
        };
        let (dir, config) = common::write_config(&pki, &spec);
        let secrets = support::write_issuer_files(dir.path());
        let template = std::fs::read_to_string(config).unwrap();
        Fleet {
            leaf: pki.client("orders-svc"),
            pki,
            secrets,
            dir,
            template,
        }
    }

    /// The config of instance `name`: its own `state_dir` and access log.
    pub fn config(&self, name: &str) -> PathBuf {
        let text = self
            .template
            .replace(
                "state_dir = \"state\"",
                &format!("state_dir = \"state-{name}\""),
            )
            .replace("access.log", &format!("access-{name}.log"));
        let path = self.dir.path().join(format!("portcullis-{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn start(&self, name: &str) -> Instance {
        Instance::spawn(&self.config(name))
    }

    pub async fn connect(&self, i: &Instance) -> Conn {
        client::connect(i.addr, &self.pki, Opts::with(&self.leaf))
            .await
            .unwrap()
    }

    /// A token for `orders-svc` from instance `i`: (status, access token or error body).
    pub async fn token(&self, conn: &mut Conn) -> (u16, String) {
        let r = support::post(
            conn,
            "/oauth2/token",
            "grant_type=client_credentials&scope=orders%2Fread",
            Some(("orders-svc", &self.secrets.orders)),
        )
        .await;
        let status = r.status.as_u16();
        let body = match status {
            200 => r.json()["access_token"].as_str().unwrap().to_owned(),
            _ => String::from_utf8_lossy(&r.body).into_owned(),
        };
        (status, body)
    }

    /// A token from `i` that must be issued.
    pub async fn issued(&self, i: &Instance) -> String {
        let mut c = self.connect(i).await;
        let (status, token) = self.token(&mut c).await;
        assert_eq!(status, 200, "{token}");
        token
    }
}

/// GET /orders with `token` on an open connection until it is refused with 401, within
/// `limit`; whether it was.
pub async fn refused_within(conn: &mut Conn, token: &str, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        let r = support::call(conn, "/orders", token).await;
        if r.status == 401 {
            return true;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The score (expiry) of a token's revocation in Redis's OAuth2 set, if it is there.
pub fn redis_score(redis: &Redis, token: &str) -> Option<f64> {
    let mut r = redis.connection().unwrap();
    redis::cmd("ZSCORE")
        .arg("portcullis:revocations:oauth2-revocations")
        .arg(format!("{{\"id\":\"{}\"}}", jti(token)))
        .query(&mut r)
        .unwrap()
}

pub fn jti(token: &str) -> String {
    support::claims(token)["jti"].as_str().unwrap().to_owned()
}

/// `portcullis check --config <config>`: (whether it passed, stdout and stderr).
pub fn check(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
