//! `portcullis quickstart`: a working gateway in one command.
//!
//! Creates (or reuses) a demo folder holding a dev PKI — root and intermediate CA, a server
//! certificate, clients `alice` and `ops`, and `mallory`, revoked — and a config from
//! `configs/quickstart.toml`; starts the gateway in front of the built-in `echo` upstream;
//! prints curl commands that show an accepted client, a client without a certificate, a
//! revoked client, the allow-list at work, and an OAuth2 client (`demo-client`, its secret
//! printed once when the folder is made) getting a token and calling a route with it. It
//! also serves CreateSession (`POST /sessions`, trust anchor, profile and role `demo`,
//! `demo`, `demo-reader`) for the demo certificates, with a sealing key in `session-keys/`.
//!
//! A folder made earlier is reused only while it still holds what the printed steps
//! promise (alice and ops valid, mallory revoked, nothing expired); otherwise quickstart
//! refuses and says what changed. Its CRLs are re-signed on reuse, so an old demo folder
//! never serves CRLs near their nextUpdate.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli;
use crate::config;
use crate::pki::{CertKind, DevPki, IssueOptions};

pub const DEFAULT_DIR: &str = "portcullis-demo";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

const CONFIG_TEMPLATE: &str = include_str!("../configs/quickstart.toml");

/// Demo clients: name, URI SAN, revoked?
const CLIENTS: [(&str, &str, bool); 3] = [
    ("alice", "spiffe://demo.test/client/alice", false),
    ("ops", "spiffe://demo.test/ops/ops1", false),
    ("mallory", "spiffe://demo.test/client/mallory", true),
];

/// The demo OAuth2 client.
const DEMO_CLIENT: &str = "demo-client";

pub fn run(dir: &Path, listen: SocketAddr, admin: SocketAddr) -> ExitCode {
    let secret = match prepare_oauth(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_path = match prepare(dir, listen, admin) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quickstart: the generated config is invalid:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    cli::init_logging(&config.log);
    cli::serve(&config, |running| {
        let gw = running.listeners.first().copied().unwrap_or(listen);
        print_instructions(dir, &config_path, gw, running.admin, secret.as_deref());
    })
}

/// Create the PKI (unless `dir` already holds one) and write `dir/portcullis.toml`.
/// Returns the config path.
pub fn prepare(dir: &Path, listen: SocketAddr, admin: SocketAddr) -> Result<PathBuf, String> {
    let pki_dir = dir.join("pki");
    let mut pki = if pki_dir.join("index.toml").exists() {
        let mut pki = DevPki::open(&pki_dir).map_err(|e| e.to_string())?;
        let changed = changes(&pki);
        if !changed.is_empty() {
            return Err(format!(
                "{} was changed since quickstart made it ({}), so the steps it prints would                  not hold; remove it (rm -r {}) or pass --dir with a new folder",
                dir.display(),
                changed.join("; "),
                dir.display()
            ));
        }
        pki.refresh_crls().map_err(|e| e.to_string())?;
        pki
    } else {
        DevPki::init(&pki_dir).map_err(|e| e.to_string())?
    };
    if pki.cert_paths("server").is_none() {
        let opts = IssueOptions {
            kind: CertKind::Server,
            dns: vec!["localhost".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..IssueOptions::default()
        };
        pki.issue("server", &opts).map_err(|e| e.to_string())?;
    }
    for (name, uri, revoked) in CLIENTS {
        if pki.cert_paths(name).is_none() {
            let opts = IssueOptions {
                spiffe: vec![uri.to_owned()],
                ..IssueOptions::default()
            };
            pki.issue(name, &opts).map_err(|e| e.to_string())?;
            if revoked {
                pki.revoke(name).map_err(|e| e.to_string())?;
            }
        }
    }
    prepare_session_keys(dir)?;
    let mut doc: toml_edit::DocumentMut = CONFIG_TEMPLATE
        .parse()
        .map_err(|e| format!("configs/quickstart.toml: {e}"))?;
    doc["listener"][0]["address"] = toml_edit::value(listen.to_string());
    doc["admin"]["address"] = toml_edit::value(admin.to_string());
    let config_path = dir.join("portcullis.toml");
    std::fs::write(&config_path, doc.to_string())
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    Ok(config_path)
}

/// How a reused demo PKI differs from what the printed steps promise.
fn changes(pki: &DevPki) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    let expected = CLIENTS
        .iter()
        .map(|(name, _, revoked)| (*name, *revoked))
        .chain([("server", false)]);
    for (name, want_revoked) in expected {
        let Some(st) = pki.status(name, now) else {
            continue; // missing ones are issued now
        };
        if st.revoked != want_revoked {
            let is = if st.revoked { "revoked" } else { "not revoked" };
            out.push(format!("{name} is {is}"));
        }
        if st.expired {
            out.push(format!("{name}'s certificate has expired"));
        }
    }
    out
}

/// The demo client and a signing key, unless the folder has them. Returns the new
/// client's secret (there is no other copy: only its hash is written).
pub fn prepare_oauth(dir: &Path) -> Result<Option<String>, String> {
    use crate::issuer::{keys, oauth2::registry_edit};
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_dir = dir.join("oauth-keys");
    if keys::KeySet::load(&key_dir).is_err() {
        keys::generate(&key_dir)?;
    }
    let clients = dir.join("oauth-clients.toml");
    if clients.exists() {
        return Ok(None);
    }
    registry_edit::add_client(&clients, DEMO_CLIENT, &["orders/read".into()], None).map(Some)
}

/// A sealing key for `[issuer.sessions]`, unless the folder has one.
fn prepare_session_keys(dir: &Path) -> Result<(), String> {
    use crate::issuer::sessions::keys;
    let key_dir = dir.join("session-keys");
    if keys::SealKeySet::load(&key_dir).is_err() {
        keys::generate(&key_dir)?;
    }
    Ok(())
}

fn print_instructions(
    dir: &Path,
    config: &Path,
    gw: SocketAddr,
    admin: Option<SocketAddr>,
    secret: Option<&str>,
) {
    let d = dir.display();
    let url = format!("https://{gw}");
    let ca = format!("--cacert {d}/pki/ca/root.pem");
    let client =
        |name: &str| format!("--cert {d}/pki/certs/{name}.pem --key {d}/pki/certs/{name}.key");
    println!();
    println!(
        "portcullis is running on {url} (config: {})",
        config.display()
    );
    println!("Try it from another terminal:");
    println!();
    println!("# 1. alice has a valid client certificate: 200, and the echo shows the identity it received");
    println!("curl -sS {ca} {} {url}/hello", client("alice"));
    println!("# 2. the same over HTTP/2 (ALPN h2): prints 2");
    println!(
        "curl -sS --http2 {ca} {} -o /dev/null -w '%{{http_version}}\\n' {url}/hello",
        client("alice")
    );
    println!("# 3. no client certificate: the TLS handshake is refused");
    println!("curl -sS {ca} {url}/hello");
    println!("# 4. mallory's certificate is revoked (CRL): refused");
    println!("curl -sS {ca} {} {url}/hello", client("mallory"));
    println!("# 5. /admin allows only spiffe://demo.test/ops/*: alice gets 403, ops gets 200");
    println!("curl -sS {ca} {} {url}/admin", client("alice"));
    println!("curl -sS {ca} {} {url}/admin", client("ops"));
    if let Some(admin) = admin {
        println!("# 6. metrics");
        println!("curl -sS http://{admin}/metrics");
    }
    match secret {
        Some(secret) => {
            let token = format!(
                "curl -sS {ca} {} -u {DEMO_CLIENT}:{secret} -d grant_type=client_credentials {url}/oauth2/token",
                client("alice")
            );
            println!("# 7. OAuth2: {DEMO_CLIENT} gets an access token (its secret is shown only now), bound to alice's certificate");
            println!("{token}");
            println!("# 8. ... and calls a route that wants a token with scope orders/read");
            println!(
                "curl -sS {ca} {} -H \"Authorization: Bearer $({token} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\" {url}/orders/1",
                client("alice")
            );
        }
        None => println!(
            "# OAuth2: {DEMO_CLIENT}'s secret was shown when {d} was made; print a new one with \
             `portcullis oauth client rotate-secret {d}/oauth-clients.toml {DEMO_CLIENT}`"
        ),
    }
    println!(
        "# Roles Anywhere: POST {url}/sessions (CreateSession) gives alice's certificate temporary \
         credentials for trust anchor arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/demo, \
         profile arn:aws:rolesanywhere:us-east-1:000000000000:profile/demo and role \
         arn:aws:iam::000000000000:role/demo-reader (present the certificate at TLS too)"
    );
    println!();
    println!("Manage the demo PKI with `portcullis pki issue|revoke {d}/pki ...`. Ctrl-C stops the gateway.");
    println!();
}
