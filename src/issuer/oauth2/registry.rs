//! The client registry (`clients_file`): one `[[client]]` per machine client, parsed into
//! an immutable [`Registry`] and swapped whole when the file changes (polled every 250 ms,
//! so a change applies within 1 s). A file that does not parse or validate keeps the
//! previous registry; the problem is logged with its line and counted
//! (`portcullis_issuer_registry_reloads_total{result="failure"}`).
//!
//! Secrets are never stored: `secret_hash` is `sha256:` + 64 hex digits for a generated
//! 256-bit secret (a fast hash is enough for a random secret of that size; compared in
//! constant time), or an argon2id PHC string (`$argon2id$...`) for an operator-chosen one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::super::watch::{fingerprint, poll_changes};
use crate::config::issuer::check_lifetime;
use crate::config::AllowRule;
use crate::identity::Identity;
use crate::policy::AllowList;
use crate::telemetry::metrics as m;

const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    client: Vec<RawClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    secret_hash: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    token_lifetime: Option<String>,
    certificate: Option<RawCertificate>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    uri_san: Option<String>,
    dns_san: Option<String>,
    subject_cn: Option<String>,
    issuer_cn: Option<String>,
}

/// How a client's secret is checked.
#[derive(Debug, Clone)]
pub enum SecretHash {
    /// SHA-256 of a generated secret.
    Sha256([u8; 32]),
    /// An argon2id PHC string (verified on the blocking pool).
    Argon2(String),
}

impl SecretHash {
    pub fn parse(s: &str) -> Result<SecretHash, String> {
        if let Some(h) = s.strip_prefix("sha256:") {
            let bytes = hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            return bytes
                .map(SecretHash::Sha256)
                .ok_or_else(|| "`sha256:` must be followed by 64 hex digits".to_owned());
        }
        if s.starts_with("$argon2id$") {
            argon2::password_hash::phc::PasswordHash::new(s)
                .map_err(|e| format!("not an argon2id PHC string: {e}"))?;
            return Ok(SecretHash::Argon2(s.to_owned()));
        }
        Err("must be `sha256:<hex>` (portcullis oauth client add) or an argon2id PHC string (portcullis oauth client hash); never the secret itself".into())
    }

    /// Constant-time check of a fast hash; `None` when argon2 is needed (blocking).
    pub fn verify_fast(&self, secret: &str) -> Option<bool> {
        match self {
            SecretHash::Sha256(want) => {
                let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                Some(aws_lc_rs::constant_time::verify_slices_are_equal(&got, want).is_ok())
            }
            SecretHash::Argon2(_) => None,
        }
    }

    /// The argon2id check (slow by design: call it off the async threads).
    pub fn verify_slow(&self, secret: &str) -> bool {
        use argon2::password_hash::PasswordVerifier;
        match self {
            SecretHash::Sha256(_) => self.verify_fast(secret).unwrap_or(false),
            SecretHash::Argon2(phc) => argon2::password_hash::phc::PasswordHash::new(phc)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// One registered client.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    pub secret: Option<SecretHash>,
    pub scopes: Vec<String>,
    pub token_lifetime: Option<Duration>,
    /// RFC 8705 `tls_client_auth`: the certificate it must present.
    pub certificate: Option<AllowList>,
    pub disabled: bool,
}

impl Client {
    pub fn certificate_matches(&self, identity: Option<&Identity>) -> bool {
        match &self.certificate {
            Some(rule) => identity.is_some_and(|id| rule.allows(Some(id))),
            None => true,
        }
    }
}

/// Every client of one version of the file.
#[derive(Debug, Default)]
pub struct Registry {
    pub clients: HashMap<String, Arc<Client>>,
}

impl Registry {
    /// Parse and validate the file's text; the error names the line or the client.
    pub fn parse(text: &str) -> Result<Registry, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut clients = HashMap::new();
        for (i, c) in raw.client.into_iter().enumerate() {
            let at = format!("client[{i}] ({})", c.client_id);
            let client = build(c).map_err(|e| format!("{at}: {e}"))?;
            if clients.contains_key(&client.id) {
                return Err(format!("{at}: another client has the same client_id"));
            }
            clients.insert(client.id.clone(), Arc::new(client));
        }
        Ok(Registry { clients })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// Every scope some client may ask for (for the metadata document).
    pub fn all_scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .clients
            .values()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The longest client id.
pub const MAX_CLIENT_ID: usize = 128;

/// A client id the token endpoint can take in Basic credentials and forms.
pub fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_CLIENT_ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-/@".contains(&b))
    {
        return Err(format!(
            "\"{id}\" is not a client id (1-128 of A-Z a-z 0-9 . _ ~ - / @)"
        ));
    }
    Ok(())
}

fn build(c: RawClient) -> Result<Client, String> {
    check_client_id(&c.client_id)?;
    let secret = c
        .secret_hash
        .as_deref()
        .map(SecretHash::parse)
        .transpose()
        .map_err(|e| format!("secret_hash {e}"))?;
    if c.scopes.is_empty() {
        return Err("`scopes` must list what the client may ask for".into());
    }
    for s in &c.scopes {
        if s.is_empty() || s.contains([' ', '"', '\\']) {
            return Err(format!("\"{s}\" is not a scope"));
        }
    }
    let token_lifetime = c
        .token_lifetime
        .as_deref()
        .map(check_lifetime)
        .transpose()
        .map_err(|e| format!("token_lifetime {e}"))?;
    let certificate = match c.certificate {
        None => None,
        Some(r) => {
            let rule = AllowRule {
                uri_san: r.uri_san,
                dns_san: r.dns_san,
                subject_cn: r.subject_cn,
                issuer_cn: r.issuer_cn,
                principal: None,
                role: None,
            };
            if rule == AllowRule::default() {
                return Err("`certificate` needs uri_san, dns_san, subject_cn or issuer_cn".into());
            }
            Some(AllowList::new(&[rule]))
        }
    };
    if secret.is_none() && certificate.is_none() {
        return Err("needs `secret_hash` or `certificate` to authenticate with".into());
    }
    Ok(Client {
        id: c.client_id,
        secret,
        scopes: c.scopes,
        token_lifetime,
        certificate,
        disabled: c.disabled,
    })
}

/// The current registry of a file, reloaded in the background.
#[derive(Debug)]
pub struct Clients {
    path: PathBuf,
    current: ArcSwap<Registry>,
    /// The file's fingerprint just before the first registry was read.
    loaded: Option<u64>,
}

impl Clients {
    /// The first load must succeed (a gateway does not start on a broken registry).
    pub fn load(path: &Path) -> Result<Clients, String> {
        let loaded = fingerprint(path);
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let reg = Registry::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(clients = reg.clients.len(), "oauth2 client registry loaded");
        Ok(Clients {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(reg),
            loaded,
        })
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<Registry>> {
        self.current.load()
    }

    /// Reload on change, until `shutdown`; a bad file keeps the previous registry.
    pub async fn watch(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let path = self.path.clone();
        let me = self.clone();
        poll_changes(
            POLL,
            shutdown,
            self.loaded,
            move || fingerprint(&path),
            move || {
                let this = &me;
                let parsed = std::fs::read_to_string(&this.path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Registry::parse(&t));
                let result = match parsed {
                    Ok(reg) => {
                        tracing::info!(
                            clients = reg.clients.len(),
                            "oauth2 client registry reloaded"
                        );
                        this.current.store(Arc::new(reg));
                        "success"
                    }
                    Err(e) => {
                        tracing::error!(file = %this.path.display(), error = %e,
                        "oauth2 client registry refused; the previous one stays in use");
                        "failure"
                    }
                };
                metrics::counter!(m::ISSUER_REGISTRY_RELOADS_TOTAL, "result" => result)
                    .increment(1);
            },
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_parse_and_bad_entries_name_their_line_or_client() {
        let h = format!("sha256:{}", hex::encode(Sha256::digest(b"s3cret")));
        let reg = Registry::parse(&format!(
            "[[client]]\nclient_id = \"a\"\nsecret_hash = \"{h}\"\nscopes = [\"x/read\"]\ntoken_lifetime = \"15m\"\n\n[[client]]\nclient_id = \"b\"\nscopes = [\"y\"]\ncertificate = {{ uri_san = \"spiffe://t/b\" }}\n"
        ))
        .unwrap();
        let a = reg.get("a").unwrap();
        assert_eq!(a.secret.as_ref().unwrap().verify_fast("s3cret"), Some(true));
        assert_eq!(a.secret.as_ref().unwrap().verify_fast("s3cre"), Some(false));
        assert_eq!(a.token_lifetime, Some(Duration::from_secs(900)));
        assert!(reg.get("b").unwrap().certificate.is_some());
        let e = Registry::parse(
            "[[client]]\nclient_id = \"a\"\nsecret_hash = \"plain\"\nscopes = [\"x\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("client[0] (a): secret_hash must be"), "{e}");
        let e = Registry::parse("[[client]]\nclient_id = \"a\"\nscopes = [\"x\"]\nsecrt = 1\n")
            .unwrap_err();
        assert!(e.contains("line 4") && e.contains("secrt"), "{e}");
        let e = Registry::parse("[[client]]\nclient_id = \"a\"\nscopes = [\"x\"]\n").unwrap_err();
        assert!(e.contains("needs `secret_hash` or `certificate`"), "{e}");
    }
}
