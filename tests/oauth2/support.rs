//! The OAuth2 tests' setup: a gateway with `[issuer.oauth2]` (keys made by the gateway's
//! own `keys rotate` code, a registry of four clients), its token route and a
//! `["mtls", "jwt:local"]` route; and a small client for the token endpoints.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use portcullis::issuer::oauth2::registry_edit::{argon2_hash, fast_hash, generate_secret};
use serde_json::Value;

use crate::common::client::{self, Conn, Reply};
use crate::common::pki::Leaf;
use crate::common::{self, Opts, Spec, TestGateway, TestPki};

pub const ISSUER: &str = "https://auth.example.test";
pub const ARGON_SECRET: &str = "correct horse battery staple";

/// The secrets of the registered clients (shown once by the CLI; kept here by the test).
pub struct Secrets {
    pub orders: String,
    pub disabled: String,
}

pub struct Setup {
    pub pki: TestPki,
    pub gw: TestGateway,
    pub secrets: Secrets,
    /// The client certificate registered for `cert-svc` (tls_client_auth).
    pub cert_client: Leaf,
    /// Another valid client certificate of the same PKI.
    pub other: Leaf,
    pub config: PathBuf,
}

/// The gateway's body: token routes, a protected echo route, the local provider, the issuer.
pub fn body(rate_limit: &str) -> String {
    format!(
        r#"[[upstream]]
name = "auth"
builtin = "oauth2"

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "token"
path_prefix = "/oauth2"
upstream = "auth"
auth = ["builtin"]

[[route]]
name = "wellknown"
path_prefix = "/.well-known"
upstream = "auth"
auth = ["builtin"]

[[route]]
name = "api"
path_prefix = "/"
upstream = "echo"
auth = ["mtls", "jwt:local"]
scopes = ["orders/read"]

[auth.jwt.local]
local_issuer = true
token_use = "access"
forward_claims = {{ sub = "x-client-sub", client_id = "x-client-id", scope = "x-client-scope" }}

[issuer.oauth2]
issuer = "{ISSUER}"
keys = "oauth-keys"
clients_file = "oauth-clients.toml"
state_dir = "state"
token_lifetime = "15m"
rate_limit = {rate_limit}
"#
    )
}

pub fn registry(secrets: &Secrets, extra: &str) -> String {
    format!(
        r#"# machine clients of the tests
[[client]]
client_id = "orders-svc"
secret_hash = "{}"
scopes = ["orders/read", "orders/write"]

[[client]]
client_id = "disabled-svc"
secret_hash = "{}"
scopes = ["orders/read"]
disabled = true

[[client]]
client_id = "cert-svc"
scopes = ["orders/read"]
certificate = {{ uri_san = "spiffe://test/client/cert-svc" }}

[[client]]
client_id = "argon-svc"
secret_hash = "{}"
scopes = ["orders/read"]
{extra}"#,
        fast_hash(&secrets.orders),
        fast_hash(&secrets.disabled),
        argon2_hash(ARGON_SECRET).unwrap(),
    )
}

/// Write the PKI, config, keys and registry; start the gateway.
pub async fn start(rate_limit: &str) -> Setup {
    common::init();
    let pki = TestPki::new();
    let spec = Spec {
        listener: "client_auth = \"optional\"",
        body: body(rate_limit),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(&pki, &spec);
    let secrets = write_issuer_files(dir.path());
    let gw = boot(&config, dir).await;
    Setup {
        cert_client: pki.client("cert-svc"),
        other: pki.client("orders-svc"),
        pki,
        gw,
        secrets,
        config,
    }
}

/// The issuer's signing keys and client registry in `dir`; the clients' secrets.
pub fn write_issuer_files(dir: &Path) -> Secrets {
    portcullis::issuer::keys::generate(&dir.join("oauth-keys")).unwrap();
    let secrets = Secrets {
        orders: generate_secret().unwrap(),
        disabled: generate_secret().unwrap(),
    };
    fs::write(dir.join("oauth-clients.toml"), registry(&secrets, "")).unwrap();
    secrets
}

/// Start a gateway from the config in `dir` (also after a restart).
pub async fn boot(config: &Path, dir: tempfile::TempDir) -> TestGateway {
    let cfg = portcullis::config::load(config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&cfg)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    TestGateway::from_parts(running, dir)
}

pub const DEFAULT_LIMITS: &str =
    "{ per_client = \"1000/s\", per_address = \"1000/s\", burst = 1000 }";

/// A POST with a form body (and Basic credentials) to `path`.
pub async fn post(conn: &mut Conn, path: &str, form: &str, basic: Option<(&str, &str)>) -> Reply {
    let mut b = http::Request::post(format!("https://localhost{path}"))
        .header("host", "localhost")
        .header(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        );
    if let Some((id, secret)) = basic {
        b = b.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    conn.send(b.body(Full::new(Bytes::from(form.to_owned()))).unwrap())
        .await
        .unwrap()
}

/// A connection to the gateway, with a client certificate or without.
pub async fn connect(s: &Setup, cert: Option<&Leaf>) -> Conn {
    let opts = match cert {
        Some(c) => Opts::with(c),
        None => Opts::anonymous(),
    };
    client::connect(s.gw.addr, &s.pki, opts).await.unwrap()
}

/// A token for `orders-svc` (client_secret_basic), over a connection with `cert` if given.
pub async fn orders_token(s: &Setup, cert: Option<&Leaf>) -> String {
    let mut c = connect(s, cert).await;
    let r = post(
        &mut c,
        "/oauth2/token",
        "grant_type=client_credentials&scope=orders%2Fread",
        Some(("orders-svc", &s.secrets.orders)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// Tokens for `orders-svc` (bound to `other`) until one satisfies `want` (the gateway
/// picks up a key change within a second or so); the last one after 10 s.
pub async fn token_when(s: &Setup, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = orders_token(s, Some(&s.other)).await;
        if want(&t) || Instant::now() > deadline {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `path` with a bearer token on an open connection.
pub async fn call(conn: &mut Conn, path: &str, token: &str) -> Reply {
    let req = http::Request::get(format!("https://localhost{path}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    conn.send(req).await.unwrap()
}

/// The audit lines written so far (waits up to 10 s for at least `n`).
pub async fn audit_lines(gw: &TestGateway, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<Value> = gw
            .access_log()
            .into_iter()
            .filter(|l| l["type"] == "oauth2_token")
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The claims of a JWT (no verification: for looking at what was issued).
pub fn claims(token: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = |i: usize| token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part(1)).unwrap()).unwrap()
}

pub fn header(token: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Send requests on `conn` until one is refused with 401 (bounded by `limit`).
pub async fn until_unauthorized(conn: &mut Conn, token: &str, limit: Duration) -> Option<Reply> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let r = call(conn, "/orders", token).await;
        if r.status == 401 {
            return Some(r);
        }
        assert_eq!(
            r.status, 200,
            "unexpected reply before the cut-off: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Assert a refusal on a jwt route: 401, `invalid_token`, and the metric reason.
pub async fn assert_jwt_refused(gw: &TestGateway, r: &Reply, reason: &str) {
    assert_eq!(r.status, 401, "{reason}: {:?}", r.body);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    common::assert_metric_at_least(
        &gw.metrics().await,
        "portcullis_auth_jwt_validations_total",
        &["provider=\"local\"", &format!("reason=\"{reason}\"")],
        1.0,
    );
}
