//! `rediss://`: gateways reaching a real `redis-server` over TLS only (`--port 0`, a free
//! `--tls-port`), with a PKI made here: a Redis CA that signs Redis's certificate
//! (127.0.0.1 and localhost) and the gateways' client certificate, and another CA that
//! signed neither. Revocations cross instances through the TLS Redis with the CA alone and
//! with a client certificate; a handshake that fails (certificate required, unknown CA,
//! hostname, a client certificate Redis refuses, an expired one) leaves
//! `portcullis_cluster_redis_up` at 0 with a log line naming the cause, and
//! the gateway serves on its local copy and limits; the system's trust store plays no part;
//! bad `cluster.tls` files are refused by `check` and a start, naming the key.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::pki::{self, Ca, Leaf, LeafSpec};
use crate::common::{self, TestPki};
use crate::fleet::{jti, refused_within, Fleet, Instance};
use crate::support;
use crate::{APPLIED, FALLBACK, NOTICE};

const UP: &str = "portcullis_cluster_redis_up";
const CA_ONLY: &str = "tls = { ca = \"redis-ca.pem\" }";
const WITH_CERT: &str = "tls = { ca = \"redis-ca.pem\", cert = \"gw.pem\", key = \"gw.key\" }";

/// The Redis side of the PKI.
struct RedisPki {
    ca: Ca,
    /// Signed neither Redis's certificate nor the gateways'.
    other: Ca,
    /// The gateways' client certificate for Redis, from `ca`.
    gw: Leaf,
}

impl RedisPki {
    fn new() -> RedisPki {
        let ca = Ca::root("redis test CA");
        let gw = ca.leaf(
            &LeafSpec {
                cn: "gateway".into(),
                ..LeafSpec::default()
            },
            "",
        );
        RedisPki {
            ca,
            other: Ca::root("another CA"),
            gw,
        }
    }

    /// `redis-ca.pem`, `other-ca.pem`, `gw.pem`, `gw.key` into the fleet's folder.
    fn write_gateway_files(&self, dir: &Path) {
        std::fs::write(dir.join("redis-ca.pem"), self.ca.pem()).unwrap();
        std::fs::write(dir.join("other-ca.pem"), self.other.pem()).unwrap();
        std::fs::write(dir.join("gw.pem"), &self.gw.chain_pem).unwrap();
        common::write_key(&dir.join("gw.key"), &self.gw.key_pem);
    }
}

/// A `redis-server` listening on TLS only; killed when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Redis's certificate (`server`, from `pki.ca`) on a free port; `auth_clients`:
    /// `--tls-auth-clients yes` (a client certificate from `pki.ca` required) or `no`.
    fn start(pki: &RedisPki, server: &LeafSpec, auth_clients: bool) -> TlsRedis {
        common::ensure_tool("redis-server", "redis-server");
        let dir = tempfile::tempdir().unwrap();
        let cert = pki.ca.leaf(server, "");
        std::fs::write(dir.path().join("redis.pem"), &cert.chain_pem).unwrap();
        common::write_key(&dir.path().join("redis.key"), &cert.key_pem);
        std::fs::write(dir.path().join("ca.pem"), pki.ca.pem()).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = |name: &str| dir.path().join(name);
        let log = std::fs::File::create(file("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(file("redis.pem"))
            .arg("--tls-key-file")
            .arg(file("redis.key"))
            .arg("--tls-ca-cert-file")
            .arg(file("ca.pem"))
            .args([
                "--tls-auth-clients",
                if auth_clients { "yes" } else { "no" },
            ])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let mut r = TlsRedis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("redis-server exited ({status}): {}", r.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on {port}: {}", r.log());
    }

    fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis on TLS only with `server`'s certificate (and `auth_clients`), and a fleet
/// sharing it at 127.0.0.1 with `tls`, its folder holding the Redis PKI's files.
fn setup(
    server: &LeafSpec,
    auth_clients: bool,
    tls: &str,
    limits: &str,
) -> (RedisPki, TlsRedis, Fleet) {
    let pki = RedisPki::new();
    let redis = TlsRedis::start(&pki, server, auth_clients);
    let f = Fleet::at(limits, &redis.url("127.0.0.1"), tls);
    pki.write_gateway_files(f.dir.path());
    (pki, redis, f)
}

/// Instance `name` of `f` with its config edited by `edit` and `env` set.
fn start_edited(
    f: &Fleet,
    name: &str,
    edit: impl Fn(String) -> String,
    env: &[(&str, &Path)],
) -> Instance {
    let config = f.config(name);
    let text = edit(std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    let mut cmd = common::binary_command(&config);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_os_str())));
    Instance::watch(cmd.spawn().unwrap())
}

/// `i` logged a failed handshake naming `cause` (`TLS unknown CA`, ...) and reports Redis
/// down.
async fn down_naming(i: &Instance, cause: &str) {
    assert!(
        i.wait_for_log(cause).await,
        "no log line names {cause:?}: {:?}",
        i.log_lines()
    );
    assert_eq!(common::metric(&i.metrics().await, UP, &[]), 0.0);
}

/// A revocation on A is refused by B (on an open connection) through the TLS Redis; both
/// report Redis up.
async fn revocation_crosses(f: &Fleet, a: &Instance, b: &Instance) {
    for i in [a, b] {
        assert!(
            i.wait_redis_up(true, NOTICE).await,
            "{UP} stayed 0 over rediss://"
        );
    }
    let token = f.issued(a).await;
    let mut on_b = f.connect(b).await;
    assert_eq!(
        support::call(&mut on_b, "/orders", &token).await.status,
        200
    );
    a.revoke_jti(&jti(&token)).await;
    assert!(
        refused_within(&mut on_b, &token, NOTICE).await,
        "B never applied A's revocation through the TLS Redis"
    );
    let n = b
        .wait_metric(APPLIED, &["source=\"published\""], 1.0, NOTICE)
        .await;
    assert!(n >= 1.0, "{APPLIED}{{source=published}} is {n} on B");
    assert_eq!(common::metric(&b.metrics().await, UP, &[]), 1.0);
}

#[tokio::test]
async fn rediss_with_the_ca_only_shares_revocations() {
    let (_pki, _redis, f) = setup(&pki::server_spec(), false, CA_ONLY, support::DEFAULT_LIMITS);
    let (a, b) = (f.start("a"), f.start("b"));
    assert!(a.log_position("cluster: connected").is_some());
    revocation_crosses(&f, &a, &b).await;
}

#[tokio::test]
async fn rediss_with_a_client_certificate_to_a_redis_requiring_one_shares_revocations() {
    let (_pki, _redis, f) = setup(
        &pki::server_spec(),
        true,
        WITH_CERT,
        support::DEFAULT_LIMITS,
    );
    let (a, b) = (f.start("a"), f.start("b"));
    revocation_crosses(&f, &a, &b).await;
}

#[tokio::test]
async fn without_a_client_certificate_redis_requiring_one_is_down_and_limits_are_local() {
    let burst = 3;
    let limits = format!("{{ per_client = \"1/m\", per_address = \"100000/s\", burst = {burst} }}");
    let (_pki, _redis, f) = setup(&pki::server_spec(), true, CA_ONLY, &limits);
    let a = f.start("a");
    down_naming(&a, "TLS certificate required").await;
    assert!(a.log_position("Redis not reachable").is_some());
    assert_eq!(common::admin_get(a.admin, "/readyz").await.0, 200);
    assert_eq!(common::metric(&a.metrics().await, UP, &[]), 0.0);
    // The token endpoint answers from the local limiter, with the same numbers.
    let mut conn = f.connect(&a).await;
    let mut statuses = Vec::new();
    for _ in 0..=burst {
        statuses.push(f.token(&mut conn).await.0);
    }
    assert_eq!(statuses, [vec![200; burst], vec![429]].concat());
    let text = a.metrics().await;
    assert!(common::metric(&text, FALLBACK, &["what=\"rate_limit\""]) >= 1.0);
    assert_eq!(common::metric(&text, UP, &[]), 0.0);
}

#[tokio::test]
async fn a_ca_that_did_not_sign_redis_certificate_reads_nothing_from_it() {
    let (_pki, _redis, f) = setup(&pki::server_spec(), false, CA_ONLY, support::DEFAULT_LIMITS);
    let a = f.start("a");
    assert!(a.wait_redis_up(true, NOTICE).await);
    let token = f.issued(&a).await;
    a.revoke_jti(&jti(&token)).await;
    // B trusts another CA for Redis; Redis's real CA is in B's "system" store
    // (SSL_CERT_FILE), which must play no part.
    let system = f.dir.path().join("redis-ca.pem");
    let b = start_edited(
        &f,
        "b",
        |t| t.replace("ca = \"redis-ca.pem\"", "ca = \"other-ca.pem\""),
        &[("SSL_CERT_FILE", &system)],
    );
    down_naming(&b, "TLS unknown CA").await;
    assert_eq!(common::admin_get(b.admin, "/readyz").await.0, 200);
    let text = b.metrics().await;
    assert_eq!(common::metric(&text, UP, &[]), 0.0);
    assert_eq!(
        common::metric(&text, APPLIED, &["source=\"full_read\""]),
        0.0
    );
    let mut on_b = f.connect(&b).await;
    let r = support::call(&mut on_b, "/orders", &token).await;
    assert_eq!(
        r.status, 200,
        "B read a revocation from an unverified Redis"
    );
}

#[tokio::test]
async fn the_name_checked_is_the_url_host() {
    // Redis's certificate names localhost only, not 127.0.0.1.
    let server = LeafSpec {
        ips: vec![],
        ..pki::server_spec()
    };
    let (_pki, _redis, f) = setup(&server, false, CA_ONLY, support::DEFAULT_LIMITS);
    let by_ip = f.start("a");
    down_naming(&by_ip, "TLS hostname").await;
    let by_name = start_edited(
        &f,
        "b",
        |t| t.replace("rediss://127.0.0.1:", "rediss://localhost:"),
        &[],
    );
    assert!(
        by_name.wait_redis_up(true, NOTICE).await,
        "rediss://localhost did not connect to a certificate for localhost"
    );
}

#[tokio::test]
async fn a_client_certificate_redis_does_not_trust_is_named_in_the_log() {
    let (pki, _redis, f) = setup(
        &pki::server_spec(),
        true,
        WITH_CERT,
        support::DEFAULT_LIMITS,
    );
    // The gateway's certificate from a CA Redis does not know.
    let stranger = pki.other.leaf(&LeafSpec::default(), "");
    std::fs::write(f.dir.path().join("gw.pem"), &stranger.chain_pem).unwrap();
    std::fs::remove_file(f.dir.path().join("gw.key")).unwrap();
    common::write_key(&f.dir.path().join("gw.key"), &stranger.key_pem);
    let a = f.start("a");
    down_naming(&a, "TLS client certificate refused").await;
}

#[tokio::test]
async fn an_expired_redis_certificate_is_named_in_the_log() {
    let now = time::OffsetDateTime::now_utc();
    let server = LeafSpec {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
        ..pki::server_spec()
    };
    let (_pki, _redis, f) = setup(&server, false, CA_ONLY, support::DEFAULT_LIMITS);
    let a = f.start("a");
    down_naming(&a, "TLS expired").await;
}

#[tokio::test]
async fn the_system_trust_store_plays_no_part_when_ca_is_given() {
    let (_pki, _redis, f) = setup(&pki::server_spec(), false, CA_ONLY, support::DEFAULT_LIMITS);
    // A system store that cannot be read (SSL_CERT_FILE names no file) must not matter.
    let missing = f.dir.path().join("no-such-bundle.pem");
    let a = start_edited(&f, "a", |t| t, &[("SSL_CERT_FILE", &missing)]);
    assert!(
        a.wait_redis_up(true, NOTICE).await,
        "an unreadable system store broke rediss:// with cluster.tls.ca given"
    );
}

/// `portcullis check` on `config` written to `dir/check.toml`.
fn check(dir: &Path, config: &str) -> (bool, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, config).unwrap();
    crate::fleet::check(&path)
}

#[test]
fn bad_cluster_tls_is_refused_by_check_and_start_naming_the_key() {
    let pki = RedisPki::new();
    let stranger = Ca::root("stranger").leaf(&LeafSpec::default(), "");
    let gw = TestPki::new();
    let spec = common::Spec {
        body: format!(
            "{}\n[cluster]\nredis_url = \"rediss://127.0.0.1:1/0\"\n{CA_ONLY}\n",
            common::echo_route()
        ),
        ..common::Spec::default()
    };
    let (dir, config) = common::write_config(&gw, &spec);
    let d = dir.path();
    pki.write_gateway_files(d);
    std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(d.join("cut.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    common::write_key(&d.join("garbage.key"), "not a key\n");
    common::write_key(&d.join("stranger.key"), &stranger.key_pem);
    // The gateway's own key, readable by every user: refused like a listener's key.
    let open_key = d.join("open.key");
    std::fs::copy(d.join("gw.key"), &open_key).unwrap();
    std::fs::set_permissions(
        &open_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let base = std::fs::read_to_string(&config).unwrap();
    let good = check(d, &base);
    assert!(good.0, "the good config is refused: {}", good.1);

    for (from, to, key, words) in [
        (
            CA_ONLY,
            "tls = { ca = \"redis-ca.pem\", cert = \"gw.pem\" }",
            "cluster.tls",
            "go together",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"garbage.pem\" }",
            "cluster.tls.ca",
            "no CERTIFICATE PEM block",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"cut.pem\" }",
            "cluster.tls.ca",
            "bad PEM",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"redis-ca.pem\", cert = \"garbage.pem\", key = \"gw.key\" }",
            "cluster.tls.cert",
            "no CERTIFICATE PEM block",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"redis-ca.pem\", cert = \"gw.pem\", key = \"garbage.key\" }",
            "cluster.tls.key",
            "no usable private key",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"redis-ca.pem\", cert = \"gw.pem\", key = \"stranger.key\" }",
            "cluster.tls.key",
            "does not go with the certificate",
        ),
        (
            CA_ONLY,
            "tls = { ca = \"redis-ca.pem\", cert = \"gw.pem\", key = \"open.key\" }",
            "cluster.tls.key",
            "open to other users",
        ),
        (
            "rediss://127.0.0.1:1/0",
            "redis://127.0.0.1:1/0",
            "cluster.tls",
            "needs a rediss:// URL",
        ),
        (
            "rediss://127.0.0.1:1/0",
            "rediss://127.0.0.1:1/0#insecure",
            "cluster.redis_url",
            "always verified",
        ),
        (CA_ONLY, "", "cluster.tls", "needs `tls"),
    ] {
        let text = base.replace(from, to);
        assert_ne!(text, base, "{from} is not in the config");
        let (ok, out) = check(d, &text);
        assert!(!ok, "check accepted {to:?}: {out}");
        assert!(
            out.contains(key) && out.contains(words),
            "{to:?}: wants {key} and {words:?}: {out}"
        );
    }

    // A start refuses it too, before it listens, naming the key.
    let text = base.replace(CA_ONLY, "tls = { ca = \"garbage.pem\" }");
    std::fs::write(&config, text).unwrap();
    let out = common::binary_command(&config)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start went on: {log}");
    assert!(
        log.contains("cluster.tls.ca") && log.contains("no CERTIFICATE PEM block"),
        "{log}"
    );
}
