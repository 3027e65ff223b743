//! The setup of these tests: the stand-in endpoint, a running agent, a raw HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::pki::Leaf;
use crate::common::TestPki;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const ANCHOR: &str = "arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/fleet";
pub const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:000000000000:profile/workers";
pub const ROLE: &str = "arn:aws:iam::000000000000:role/orders-reader";

pub fn python() -> Option<String> {
    let p = std::env::var("PORTCULLIS_TEST_PYTHON").ok();
    if p.is_none() {
        eprintln!("\n!!! SKIPPED: PORTCULLIS_TEST_PYTHON is unset (run scripts/test.sh, which makes the venv) !!!\n");
    }
    p
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rolesanywhere_client")
        .join(name)
}

/// A leaf with an RSA-2048 key, issued by the test intermediate (the common PKI's are ECDSA).
pub fn rsa_leaf(pki: &TestPki, cn: &str) -> Leaf {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let serial = rcgen::SerialNumber::from_slice(&[0x42, 0x01, 0x02, 0x03, 0x04, 0x05]);
    p.serial_number = Some(serial.clone());
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = p.signed_by(&key, &pki.inter.issuer).unwrap();
    Leaf {
        name: cn.into(),
        chain_pem: format!("{}{}", cert.pem(), pki.inter.pem()),
        key_pem: key.serialize_pem(),
        serial,
    }
}

/// The stand-in endpoint, killed on drop.
pub struct Endpoint {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub port: u16,
    pub pki: TestPki,
}

impl Endpoint {
    pub fn start(python: &str) -> Endpoint {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.pem"), &pki.server.chain_pem).unwrap();
        crate::common::write_key(&dir.path().join("server.key"), &pki.server.key_pem);
        std::fs::write(dir.path().join("ca.pem"), pki.root_pem()).unwrap();
        let child = Command::new(python)
            .arg(script("endpoint.py"))
            .arg(dir.path())
            .spawn()
            .unwrap();
        let port_file = dir.path().join("port");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_file.exists() {
            assert!(Instant::now() < deadline, "the test endpoint did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Endpoint {
            dir,
            child,
            port,
            pki,
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// One JSON object per request seen.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Write `leaf` as NAME.pem / NAME.key; the common options of both commands.
    pub fn args(&self, leaf: &Leaf, name: &str) -> Vec<String> {
        command_args(self.dir.path(), &self.url(), leaf, name)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The common options of both commands for `leaf` (written to DIR/NAME.pem and NAME.key),
/// with DIR/ca.pem as `--ca`.
pub fn command_args(dir: &Path, url: &str, leaf: &Leaf, name: &str) -> Vec<String> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &leaf.chain_pem).unwrap();
    if !key.exists() {
        crate::common::write_key(&key, &leaf.key_pem);
    }
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    vec![
        "--endpoint".into(),
        url.into(),
        "--cert".into(),
        p(&cert),
        "--key".into(),
        p(&key),
        "--ca".into(),
        p(&dir.join("ca.pem")),
        "--trust-anchor".into(),
        ANCHOR.into(),
        "--profile".into(),
        PROFILE.into(),
        "--role".into(),
        ROLE.into(),
    ]
}

/// `boto3_chain.py MODE [ARGS]` with `env` on top of an environment that holds no other
/// credentials (config and credentials files in `dir` that do not exist, unless `env` names
/// AWS_CONFIG_FILE); its one JSON line.
pub fn boto3(
    python: &str,
    dir: &Path,
    mode: &str,
    env: &[(&str, String)],
    args: &[String],
) -> serde_json::Value {
    let out = Command::new(python)
        .arg(script("boto3_chain.py"))
        .arg(mode)
        .args(args)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-creds"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(text(&out.stdout).trim()).unwrap()
}

/// An AWS config file DIR/aws-config with a profile `portcullis` whose credential_process
/// is `portcullis credentials ARGS`; the environment that points boto3 at it alone.
pub fn process_profile(dir: &Path, args: &[String]) -> [(&'static str, String); 2] {
    let config = dir.join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile portcullis]\nregion = us-east-1\ncredential_process = {BIN} credentials {}\n",
            args.join(" ")
        ),
    )
    .unwrap();
    [
        ("AWS_CONFIG_FILE", config.to_str().unwrap().to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

pub fn credentials(args: &[String]) -> Output {
    Command::new(BIN)
        .arg("credentials")
        .args(args)
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Seconds from now to an `…Z` time.
pub fn seconds_left(t: &str) -> i64 {
    assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    (t - time::OffsetDateTime::now_utc()).whole_seconds()
}

/// A running agent: its address, and its stderr as it comes.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Agent {
    pub fn start(args: &[String]) -> Agent {
        let mut child = Command::new(BIN)
            .arg("agent")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(rest) = line
                    .split("AWS_EC2_METADATA_SERVICE_ENDPOINT=http://")
                    .nth(1)
                {
                    let _ = tx.send(rest.split('/').next().unwrap().to_owned());
                }
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the agent did not listen: {}", stderr.lock().unwrap()));
        Agent {
            child,
            addr: addr.parse().unwrap(),
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn wait_stderr(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Http {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 request on a fresh connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Http {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "PUT" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    Http {
        status: head[9..12].parse().unwrap(),
        head: head.to_ascii_lowercase(),
        body: body.into(),
    }
}
