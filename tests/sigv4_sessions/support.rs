//! The session tests' setup: a gateway with `[issuer.sessions]` (a trust anchor `fleet` with
//! its own PKI, two roles) and `[auth.sigv4] sessions = true`, a real backend, and sessions
//! minted through the library (CreateSession lands elsewhere): claims read from a real leaf
//! of the fleet PKI, sealed with the keys folder the gateway's own `keys rotate` code made.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis::identity::Identity;
use portcullis::issuer::sessions::keys::{generate, SealKeySet};
use portcullis::issuer::sessions::token::{new_access_key_id, seal, SessionClaims};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::common::client::Reply;
use crate::common::origin::Origin;
use crate::common::pki::{Leaf, LeafSpec};
use crate::common::sigv4::{amz_now, Signer};
use crate::common::{self, Spec, TestGateway, TestPki, TrustLayout};

/// A static key in the credentials file that looks like a session key: it stays static.
pub const STATIC_ASIA: &str = "ASIASTATICKEY0000001";
pub const STATIC_SECRET: &str = "static-asia-secret";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The gateway's config body: `/orders` (role `orders-*`), `/billing` (role `billing-*`),
/// `/echo` (the built-in echo, any role), all `["mtls", "sigv4"]`; `keys` is the sealing
/// keys folder (relative to the config, or absolute to share one).
pub fn body(backend: std::net::SocketAddr, keys: &str) -> String {
    format!(
        r#"[[upstream]]
name = "backend"
endpoints = ["{backend}"]

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "orders"
path_prefix = "/orders"
upstream = "backend"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "orders-*"

[[route]]
name = "billing"
path_prefix = "/billing"
upstream = "backend"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "billing-*"

[[route]]
name = "echo"
path_prefix = "/echo"
upstream = "echo"
auth = ["mtls", "sigv4"]

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true
credentials_file = "credentials.toml"

[issuer.sessions]
keys = "{keys}"
state_dir = "state"
region = "us-east-1"
account = "000000000000"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "fleet-truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["orders-reader", "billing-reader"]

[[issuer.sessions.role]]
name = "orders-reader"
allow = [{{ uri_san = "spiffe://example.test/workers/*" }}]
attributes = {{ team = "orders", tier = "gold" }}

[[issuer.sessions.role]]
name = "billing-reader"
allow = [{{ uri_san = "spiffe://example.test/workers/*" }}]

[reload]
watch = false
poll_interval = "1h"
"#
    )
}

pub struct Setup {
    /// The connection's PKI (`[truststore]`).
    pub pki: TestPki,
    /// The trust anchor's PKI: the certificates sessions are opened with.
    pub fleet: TestPki,
    pub origin: Origin,
    pub gw: TestGateway,
    /// The connection's client certificate (not a fleet certificate).
    pub client: Leaf,
}

/// Write a gateway's folder: config, credentials file, the fleet truststore and (unless
/// `keys` is absolute) a fresh sealing-keys folder. Returns (folder, config path).
pub fn write(
    pki: &TestPki,
    fleet: &TestPki,
    backend: std::net::SocketAddr,
    keys: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let spec = Spec {
        body: body(backend, keys),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(pki, &spec);
    common::write_key(
        &dir.path().join("credentials.toml"),
        &format!("[[credential]]\naccess_key_id = \"{STATIC_ASIA}\"\nsecret_access_key = \"{STATIC_SECRET}\"\nprincipal = \"svc-static\"\n"),
    );
    fleet.write_truststore(
        &dir.path().join("fleet-truststore"),
        &TrustLayout::default(),
    );
    if !Path::new(keys).is_absolute() {
        generate(&dir.path().join(keys)).unwrap();
    }
    (dir, config)
}

pub async fn start() -> Setup {
    common::init();
    let pki = TestPki::new();
    let fleet = TestPki::named("fleet");
    let origin = Origin::start().await;
    let (dir, config) = write(&pki, &fleet, origin.addr, "session-keys");
    let gw = start_from(dir, &config).await;
    let client = pki.client("conn-client");
    Setup {
        pki,
        fleet,
        origin,
        gw,
        client,
    }
}

pub async fn start_from(dir: tempfile::TempDir, config: &Path) -> TestGateway {
    let config = portcullis::config::load(config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    TestGateway::from_parts(running, dir)
}

/// A fleet workload certificate: CN `cn`, URI SAN `spiffe://example.test/workers/<cn>`.
pub fn worker(fleet: &TestPki, cn: &str) -> Leaf {
    fleet.leaf(LeafSpec {
        cn: cn.into(),
        uris: vec![format!("spiffe://example.test/workers/{cn}")],
        ..LeafSpec::default()
    })
}

/// Session credentials as CreateSession hands them out.
#[derive(Clone, Debug)]
pub struct Minted {
    pub akid: String,
    pub secret: String,
    pub token: String,
    pub claims: SessionClaims,
}

/// Seal a session of `role` opened with `leaf`, living `[iat, exp)` relative to now.
pub fn mint(keys: &Path, leaf: &Leaf, role: &str, iat: i64, exp: i64) -> Minted {
    let der = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let id = Identity::from_leaf(&der).unwrap();
    let akid = new_access_key_id().unwrap();
    let claims = SessionClaims {
        access_key_id: akid.clone(),
        role: role.into(),
        profile: "workers".into(),
        trust_anchor: "fleet".into(),
        session: id.serial.clone(),
        source_identity: id.common_name.clone().unwrap_or_default(),
        cert_sha256: id.fingerprint.clone(),
        issuer: id.issuer.clone(),
        serial: id.serial.clone(),
        uri_sans: id.uri_sans.clone(),
        iat: now() + iat,
        exp: now() + exp,
    };
    let (token, secret) = seal(&SealKeySet::load(keys).unwrap(), &claims).unwrap();
    Minted {
        akid,
        secret,
        token,
        claims,
    }
}

/// A fresh one-hour session of `role` for `leaf`, sealed with `s`'s keys.
pub fn session(s: &Setup, leaf: &Leaf, role: &str) -> Minted {
    mint(&s.gw.dir.path().join("session-keys"), leaf, role, 0, 3600)
}

/// `GET path`, header form, the token signed (as botocore does).
pub fn get(m: &Minted, path: &str) -> http::Request<Full<Bytes>> {
    signer(m).sign("GET", path, &[("x-amz-security-token", &m.token)], b"")
}

pub fn signer(m: &Minted) -> Signer<'_> {
    Signer {
        akid: &m.akid,
        secret: &m.secret,
        region: "us-east-1",
        date: amz_now(0),
    }
}

/// The reason the access log gave the last request.
pub fn last_reason(gw: &TestGateway) -> String {
    let log = gw.access_log();
    log.last().unwrap()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A 403 with AWS code `code`, and the access log's reason `reason`, metric counted.
pub async fn assert_refused(gw: &TestGateway, r: &Reply, code: &str, reason: &str) {
    assert_eq!(
        crate::common::sigv4::aws_code(r),
        code,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    common::wait_for_metric(
        gw,
        "portcullis_auth_sigv4_verifications_total",
        &["result=\"rejected\"", &format!("reason=\"{reason}\"")],
        1.0,
    )
    .await;
    // The access-log line is written when the response body ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while last_reason(gw) != reason && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last_reason(gw), reason);
}
