//! The CreateSession tests' setup: a gateway with `[issuer.sessions]` (two trust anchors,
//! two profiles, two roles), a PKI made here (ECDSA and RSA leaves, a P-384 CA that signs
//! with SHA-384, a revoked and an expired leaf), and an independent CreateSession signer:
//! its own canonical request and string to sign (not the gateway's code), sent over a raw
//! TLS connection so the Go client's chunked body can be reproduced byte for byte.

use std::fs;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SigningKey,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::pki::{Ca, Leaf, LeafSpec};
use crate::common::{self, Spec, TestGateway, TestPki, TrustLayout};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "000000000000";

pub fn anchor_arn(name: &str) -> String {
    format!("arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:trust-anchor/{name}")
}
pub fn profile_arn(name: &str) -> String {
    format!("arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:profile/{name}")
}
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

pub struct Setup {
    pub pki: TestPki,
    pub gw: TestGateway,
    /// ECDSA P-256 leaf, `spiffe://test/client/worker-1`.
    pub worker: Leaf,
    /// RSA 2048 leaf, `spiffe://test/client/worker-rsa`.
    pub rsa: Leaf,
    /// Leaf of the P-384 CA (so signed with ecdsa-with-SHA384), `worker-384`.
    pub sha384: Leaf,
    pub revoked: Leaf,
    pub expired: Leaf,
    /// Valid, but not allowed for `orders-reader`.
    pub intruder: Leaf,
    /// From the PKI of the `other` trust anchor.
    pub foreign: Leaf,
}

pub fn body() -> String {
    r#"[[upstream]]
name = "rolesanywhere"
builtin = "rolesanywhere"

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "signed"
path_prefix = "/signed"
upstream = "echo"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "orders-*"

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true

[[route]]
name = "sessions"
path_prefix = "/sessions"
upstream = "rolesanywhere"
auth = ["builtin"]

[issuer.sessions]
keys = "session-keys"
state_dir = "state"
region = "us-east-1"
account = "000000000000"
max_skew = "5m"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "fleet-truststore"

[[issuer.sessions.trust_anchor]]
name = "other"
truststore = "other-truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["orders-reader"]
max_duration = "2h"

[[issuer.sessions.profile]]
name = "named"
roles = ["orders-reader", "admin"]
accept_role_session_name = true

[[issuer.sessions.role]]
name = "orders-reader"
allow = [{ uri_san = "spiffe://test/client/worker-*" }]
attributes = { team = "orders" }

[[issuer.sessions.role]]
name = "admin"
allow = [{ uri_san = "spiffe://test/client/admin" }]
"#
    .into()
}

fn worker_spec(name: &str) -> LeafSpec {
    LeafSpec {
        cn: name.into(),
        uris: vec![format!("spiffe://test/client/{name}")],
        ..LeafSpec::default()
    }
}

/// A CA whose key is P-384: what it signs carries ecdsa-with-SHA384.
fn p384_root(cn: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    let serial = SerialNumber::from(0x384u64);
    p.serial_number = Some(serial.clone());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    Ca {
        issuer: CertifiedIssuer::self_signed(p, key).unwrap(),
        serial,
        revoked: vec![],
    }
}

/// A client leaf with an RSA 2048 key, issued by `ca`, sent with `chain_tail`.
fn rsa_leaf(ca: &Ca, name: &str, chain_tail: &str) -> Leaf {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    let uri = format!("spiffe://test/client/{name}");
    p.subject_alt_names = vec![SanType::URI(uri.as_str().try_into().unwrap())];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    let serial = SerialNumber::from(0x5a5a_0001_u64);
    p.serial_number = Some(serial.clone());
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        name: name.into(),
        chain_pem: format!("{}{chain_tail}", cert.pem()),
        key_pem: key.serialize_pem(),
        serial,
    }
}

/// Write the PKIs, keys and config; start the gateway.
pub async fn start() -> Setup {
    common::init();
    let mut pki = TestPki::named("fleet");
    let other = TestPki::named("other");
    let p384 = p384_root("fleet sha384 CA");
    let worker = pki.leaf(worker_spec("worker-1"));
    let rsa = rsa_leaf(&pki.inter, "worker-rsa", &pki.inter.pem());
    let sha384 = p384.leaf(&worker_spec("worker-384"), "");
    let revoked = pki.leaf(worker_spec("worker-revoked"));
    pki.revoke(&revoked);
    let expired = pki.leaf(LeafSpec {
        not_before: OffsetDateTime::now_utc() - time::Duration::days(3),
        not_after: OffsetDateTime::now_utc() - time::Duration::days(1),
        ..worker_spec("worker-expired")
    });
    let intruder = pki.leaf(worker_spec("intruder"));
    let foreign = other.leaf(worker_spec("worker-2"));
    let spec = Spec {
        listener: "client_auth = \"optional\"",
        body: body(),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(&pki, &spec);
    let d = dir.path();
    pki.write_truststore(&d.join("fleet-truststore"), &TrustLayout::default());
    let next = OffsetDateTime::now_utc() + time::Duration::days(7);
    fs::write(d.join("fleet-truststore/roots/p384.pem"), p384.pem()).unwrap();
    fs::write(
        d.join("fleet-truststore/crls/p384.crl.pem"),
        p384.crl_pem(next),
    )
    .unwrap();
    other.write_truststore(&d.join("other-truststore"), &TrustLayout::default());
    portcullis::issuer::sessions::keys::generate(&d.join("session-keys")).unwrap();
    let cfg = portcullis::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&cfg)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    Setup {
        gw: TestGateway::from_parts(running, dir),
        pki,
        worker,
        rsa,
        sha384,
        revoked,
        expired,
        intruder,
        foreign,
    }
}

/// Where the ARNs travel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The Python client: all in an `application/x-amz-json-1.0` body.
    Body,
    /// The Go client: ARNs in the query, `application/json`, chunked when asked.
    Query { chunked: bool },
}

/// One CreateSession to sign; [`Req::new`] is a valid one for `orders-reader`/`workers`.
pub struct Req<'a> {
    pub leaf: &'a Leaf,
    pub form: Form,
    pub anchor: String,
    pub profile: String,
    pub role: String,
    /// Extra JSON members of the body, e.g. `,"durationSeconds":900`.
    pub body_extra: String,
    /// A query string sent in addition (the Python form with query ARNs too).
    pub extra_query: Option<String>,
    pub algorithm: Option<String>,
    pub serial: Option<String>,
    pub time: OffsetDateTime,
    pub corrupt_signature: bool,
    /// The TLS client certificate of the connection.
    pub tls_cert: Option<&'a Leaf>,
}

impl<'a> Req<'a> {
    pub fn new(leaf: &'a Leaf) -> Req<'a> {
        Req {
            leaf,
            form: Form::Body,
            anchor: anchor_arn("fleet"),
            profile: profile_arn("workers"),
            role: role_arn("orders-reader"),
            body_extra: r#","durationSeconds":3600"#.into(),
            extra_query: None,
            algorithm: None,
            serial: None,
            time: OffsetDateTime::now_utc(),
            corrupt_signature: false,
            tls_cert: None,
        }
    }
}

/// RFC 3986 unreserved encoding (what both clients put in the query).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn decimal(serial: &SerialNumber) -> String {
    decimal_of(&serial.to_bytes())
}

/// A big-endian unsigned integer in decimal (long division by 10).
fn decimal_of(bytes: &[u8]) -> String {
    let mut n: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let v = rem << 8 | u32::from(*b);
            *b = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(char::from(b'0' + rem as u8));
    }
    if digits.is_empty() {
        digits.push('0');
    }
    digits.iter().rev().collect()
}

/// The decimal serial of a DER certificate.
fn serial_of(der: &CertificateDer<'_>) -> String {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
    decimal_of(cert.tbs_certificate().serial_number().as_bytes())
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub error_type: Option<String>,
    pub body: Value,
}

/// Sign `r` as the AWS clients do, send it to the gateway of `s`, read the answer.
pub async fn create_session(s: &Setup, r: &Req<'_>) -> Answer {
    create_session_at(s.gw.addr, &s.pki.root_pem(), r).await
}

/// [`create_session`] to the gateway at `addr`, whose server certificate `root_pem` issued.
pub async fn create_session_at(addr: SocketAddr, root_pem: &str, r: &Req<'_>) -> Answer {
    let s = sign(r, &format!("localhost:{}", addr.port()));
    let chunked = r.form == (Form::Query { chunked: true });
    post_h1(
        addr, root_pem, r.tls_cert, &s.target, &s.headers, &s.body, chunked,
    )
    .await
}

/// `POST target` over HTTP/1.1 wire bytes written here (`target` in origin or absolute
/// form), with `headers` as given and `body` (chunked in two parts, or with a length).
pub async fn post_h1(
    addr: SocketAddr,
    root_pem: &str,
    cert: Option<&Leaf>,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
    chunked: bool,
) -> Answer {
    let mut head = format!("POST {target} HTTP/1.1\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("user-agent: test-signer\r\nconnection: close\r\n");
    let mut wire = head.into_bytes();
    if chunked {
        wire.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        let (a, b) = body.as_bytes().split_at(body.len() / 2);
        for part in [a, b] {
            wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        wire.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        wire.extend_from_slice(body.as_bytes());
    }
    exchange(addr, root_pem, cert, &wire).await
}

/// A CreateSession signed as the AWS clients sign it, ready for any wire.
pub struct Signed {
    /// `/sessions`, with the query when there is one.
    pub target: String,
    /// The signed headers (`host` among them) and `authorization`, in sending order.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Sign `r` for the host `host` (the value of the signed `host` header).
pub fn sign(r: &Req<'_>, host: &str) -> Signed {
    use base64::Engine;
    let b64 = |d: &CertificateDer<'_>| base64::engine::general_purpose::STANDARD.encode(d);
    let certs = ders(&r.leaf.chain_pem);
    let x509 = b64(&certs[0]);
    let chain: Vec<String> = certs[1..].iter().map(b64).collect();
    let key = KeyPair::from_pem(&r.leaf.key_pem).unwrap();
    let is_rsa = key.algorithm() == &rcgen::PKCS_RSA_SHA256;
    let t = r.time;
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let date = &amz_date[..8];
    let (query, body, content_type) = match r.form {
        Form::Body => (
            r.extra_query.clone().unwrap_or_default(),
            format!(
                r#"{{"profileArn":"{}","roleArn":"{}","trustAnchorArn":"{}"{}}}"#,
                r.profile, r.role, r.anchor, r.body_extra
            ),
            "application/x-amz-json-1.0",
        ),
        Form::Query { .. } => (
            format!(
                "profileArn={}&roleArn={}&trustAnchorArn={}",
                enc(&r.profile),
                enc(&r.role),
                enc(&r.anchor)
            ),
            format!("{{{}}}", r.body_extra.trim_start_matches(',')),
            "application/json",
        ),
    };
    let mut signed: Vec<(&'static str, String)> = vec![
        ("content-type", content_type.into()),
        ("host", host.to_owned()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-x509", x509.clone()),
    ];
    if !chain.is_empty() {
        signed.push(("x-amz-x509-chain", chain.join(",")));
    }
    let names: Vec<&str> = signed.iter().map(|(n, _)| *n).collect();
    let names = names.join(";");
    let mut canonical = format!("POST\n/sessions\n{query}\n");
    for (n, v) in &signed {
        canonical.push_str(&format!("{n}:{v}\n"));
    }
    canonical.push_str(&format!("\n{names}\n{}", hex_sha256(body.as_bytes())));
    let algorithm = r.algorithm.clone().unwrap_or_else(|| {
        if is_rsa {
            "AWS4-X509-RSA-SHA256"
        } else {
            "AWS4-X509-ECDSA-SHA256"
        }
        .into()
    });
    let scope = format!("{date}/{REGION}/rolesanywhere/aws4_request");
    let sts = format!(
        "{algorithm}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let mut sig = key.sign(sts.as_bytes()).unwrap();
    if r.corrupt_signature {
        let n = sig.len() - 3;
        sig[n] ^= 0x55;
    }
    let serial = r.serial.clone().unwrap_or_else(|| serial_of(&certs[0]));
    signed.push((
        "authorization",
        format!(
            "{algorithm} Credential={serial}/{scope}, SignedHeaders={names}, Signature={}",
            hex::encode(sig)
        ),
    ));
    let target = if query.is_empty() {
        "/sessions".to_owned()
    } else {
        format!("/sessions?{query}")
    };
    Signed {
        target,
        headers: signed,
        body,
    }
}

/// Write `wire` on a fresh TLS connection (with `cert` if given); parse the answer.
async fn exchange(addr: SocketAddr, root_pem: &str, cert: Option<&Leaf>, wire: &[u8]) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ders(root_pem).remove(0)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match cert {
        Some(c) => builder
            .with_client_auth_cert(
                ders(&c.chain_pem),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // The gateway may answer (and close) before it read a refused body to its end.
    let _ = tls.write_all(wire).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let error_type = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("x-amzn-errortype")
            .then(|| v.trim().to_owned())
    });
    Answer {
        status,
        error_type,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// The `sessions_create` audit lines written so far (waits up to 10 s for at least `n`).
pub async fn audit_lines(gw: &TestGateway, n: usize) -> Vec<Value> {
    common::audit_lines(gw, "sessions_create", n).await
}

/// Open a returned session token with the gateway's keys folder.
pub fn open_token(
    s: &Setup,
    token: &str,
    akid: &str,
) -> portcullis::issuer::sessions::token::SessionClaims {
    let keys =
        portcullis::issuer::sessions::keys::SealKeySet::load(&s.gw.dir.path().join("session-keys"))
            .unwrap();
    portcullis::issuer::sessions::token::open(&keys, token, akid)
        .unwrap()
        .0
}
