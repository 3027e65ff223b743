//! Where secret keys come from: the [`CredentialSource`] trait, and its first
//! implementation, a TOML credentials file that is reloaded when it changes.
//!
//! The trait takes the session token with the access key id so that short-lived session
//! credentials (issued by portcullis later, carried in `X-Amz-Security-Token`) can be
//! looked up through the same call: a source that does not issue sessions refuses a token.
//!
//! File format:
//! ```toml
//! [[credential]]
//! access_key_id = "AKIDEXAMPLE"
//! secret_access_key = "..."
//! principal = "svc-orders"
//! attributes = { team = "payments" }   # optional
//! session_token = "..."                # optional: requests must then carry exactly this
//! ```
//!
//! `session_token` serves clients whose credentials come with a token (copied from STS,
//! say) until portcullis issues its own session credentials.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::HeaderValue;
use serde::Deserialize;

use crate::material::{read_text_bounded, MAX_FILE_SIZE};
use crate::telemetry::metrics as m;

/// How often the credentials file is checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// A verified caller's credential: the secret and who it stands for.
#[derive(Debug)]
pub struct Credential {
    pub access_key_id: Arc<str>,
    pub secret_access_key: Arc<str>,
    pub principal: Arc<str>,
    pub attributes: BTreeMap<String, String>,
    /// The token requests with this key must carry, if any.
    pub session_token: Option<Arc<str>>,
    /// Forwarded header values, built once at load time.
    pub principal_header: HeaderValue,
    pub access_key_header: HeaderValue,
    /// `attributes` as a JSON object; `None` when there are none.
    pub attributes_header: Option<HeaderValue>,
    /// Set for a session credential of `[issuer.sessions]` (see [`super::session`]).
    pub session: Option<SessionIdentity>,
}

/// Who a session credential stands for, beyond its principal (`role/<role>/<session>`).
#[derive(Debug)]
pub struct SessionIdentity {
    pub role: Arc<str>,
    pub session: Arc<str>,
    /// Forwarded header values, built once per session.
    pub role_header: HeaderValue,
    pub session_header: HeaderValue,
    /// The leaf's CN value; `None` when it had none.
    pub source_identity_header: Option<HeaderValue>,
}

/// Why a lookup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// No credential has this access key id.
    UnknownKey,
    /// A session token was given but this source issues no sessions, or it is invalid.
    InvalidToken,
}

/// A source of credentials, asked once per signed request (must not block or do I/O).
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    fn lookup(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Arc<Credential>, LookupError>;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    credential: Vec<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    access_key_id: String,
    secret_access_key: String,
    principal: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    session_token: Option<String>,
}

/// The credentials of one file, swapped whole on reload.
#[derive(Debug)]
pub struct FileCredentials {
    path: PathBuf,
    keys: ArcSwap<HashMap<String, Arc<Credential>>>,
    stamp: std::sync::Mutex<Option<Stamp>>,
}

/// What tells that the file changed: modification time, size and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<SystemTime>, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some(Stamp(md.modified().ok(), md.len(), md.ino()))
}

impl FileCredentials {
    /// Read the file; an error names what is wrong with it.
    pub fn load(path: &Path) -> Result<FileCredentials, String> {
        let st = stamp(path);
        let keys = parse_file(path)?;
        Ok(FileCredentials {
            path: path.to_path_buf(),
            keys: ArcSwap::from_pointee(keys),
            stamp: std::sync::Mutex::new(st),
        })
    }

    /// No file (`[auth.sigv4] sessions = true` without `credentials_file`): no static
    /// credential, nothing to reload.
    pub fn empty() -> FileCredentials {
        FileCredentials {
            path: PathBuf::new(),
            keys: ArcSwap::from_pointee(HashMap::new()),
            stamp: std::sync::Mutex::new(None),
        }
    }

    /// Reload if the file changed; a bad new file is logged and counted, and the old
    /// credentials keep serving. Returns whether new credentials were published.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        {
            let Ok(mut last) = self.stamp.lock() else {
                return false;
            };
            if *last == now {
                return false;
            }
            *last = now;
        }
        match parse_file(&self.path) {
            Ok(keys) => {
                let n = keys.len();
                self.keys.store(Arc::new(keys));
                metrics::counter!(m::SIGV4_CREDENTIAL_RELOADS_TOTAL, "result" => "success")
                    .increment(1);
                tracing::info!(path = %self.path.display(), credentials = n, "sigv4 credentials reloaded");
                true
            }
            Err(e) => {
                metrics::counter!(m::SIGV4_CREDENTIAL_RELOADS_TOTAL, "result" => "failure")
                    .increment(1);
                tracing::error!(path = %self.path.display(), error = %e, "sigv4 credentials not reloaded; keeping the previous ones");
                false
            }
        }
    }

    /// Poll the file until `this` is dropped or `stop` resolves.
    pub async fn watch(this: Weak<FileCredentials>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RELOAD_POLL) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
            let Some(creds) = this.upgrade() else { return };
            creds.reload_if_changed();
        }
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CredentialSource for FileCredentials {
    fn lookup(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Arc<Credential>, LookupError> {
        let cred = self
            .keys
            .load()
            .get(access_key_id)
            .cloned()
            .ok_or(LookupError::UnknownKey)?;
        // A key without a token is used without one; a key with one needs exactly it.
        match (&cred.session_token, session_token) {
            (None, None) => Ok(cred),
            (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => {
                Ok(cred)
            }
            _ => Err(LookupError::InvalidToken),
        }
    }
}

fn parse_file(path: &Path) -> Result<HashMap<String, Arc<Credential>>, String> {
    let text =
        read_text_bounded(path, MAX_FILE_SIZE).map_err(|e| format!("{}: {e}", path.display()))?;
    warn_if_readable_by_others(path);
    let raw: RawFile =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    let mut keys = HashMap::new();
    for (i, c) in raw.credential.into_iter().enumerate() {
        let at = |what: &str| format!("{}: credential[{i}]: {what}", path.display());
        if c.access_key_id.is_empty() || !c.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(at("access_key_id must be non-empty letters and digits"));
        }
        if c.secret_access_key.is_empty() {
            return Err(at("secret_access_key must not be empty"));
        }
        let principal_header = HeaderValue::from_str(&c.principal)
            .ok()
            .filter(|_| !c.principal.is_empty())
            .ok_or_else(|| at("principal must be non-empty printable ASCII"))?;
        if c.attributes
            .iter()
            .any(|(k, v)| !is_printable(k) || !is_printable(v))
        {
            return Err(at("attributes must be printable ASCII"));
        }
        let attributes_header = attributes_header(&c.attributes).map_err(|e| at(&e))?;
        let cred = Credential {
            access_key_header: HeaderValue::from_str(&c.access_key_id)
                .map_err(|_| at("bad access_key_id"))?,
            access_key_id: Arc::from(c.access_key_id.as_str()),
            secret_access_key: Arc::from(c.secret_access_key.as_str()),
            principal: Arc::from(c.principal.as_str()),
            attributes: c.attributes,
            session_token: c.session_token.as_deref().map(Arc::from),
            principal_header,
            attributes_header,
            session: None,
        };
        if keys
            .insert(c.access_key_id.clone(), Arc::new(cred))
            .is_some()
        {
            return Err(at(&format!(
                "access_key_id {} appears twice",
                c.access_key_id
            )));
        }
    }
    Ok(keys)
}

/// `x-client-attributes`: the attributes as a JSON object; `None` when there are none.
pub fn attributes_header(
    attributes: &BTreeMap<String, String>,
) -> Result<Option<HeaderValue>, String> {
    if attributes.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(attributes).map_err(|e| e.to_string())?;
    HeaderValue::from_str(&json)
        .map(Some)
        .map_err(|_| "attributes must be printable ASCII".to_owned())
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Secret keys deserve the care of private keys: say so when others can read the file.
fn warn_if_readable_by_others(path: &Path) {
    if let Some(mode) = readable_by_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the sigv4 credentials file holds secret keys and is readable by others; chmod 600 it"
        );
    }
}

/// The file's permission bits when its group or others may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("creds.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn group_or_world_readable_files_are_flagged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "");
        let chmod = |m| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        chmod(0o600);
        assert_eq!(readable_by_others(&p), None);
        chmod(0o400);
        assert_eq!(readable_by_others(&p), None);
        chmod(0o640);
        assert_eq!(readable_by_others(&p), Some(0o640));
        chmod(0o604);
        assert_eq!(readable_by_others(&p), Some(0o604));
        chmod(0o644);
        assert_eq!(readable_by_others(&p), Some(0o644));
        assert_eq!(readable_by_others(&dir.path().join("missing")), None);
    }

    #[test]
    fn loads_looks_up_and_refuses_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[[credential]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"s\"\nprincipal = \"svc-a\"\nattributes = { team = \"pay\" }\n",
        );
        let c = FileCredentials::load(&p).unwrap();
        let k = c.lookup("AKID1", None).unwrap();
        assert_eq!(&*k.principal, "svc-a");
        assert_eq!(k.attributes_header.as_ref().unwrap(), "{\"team\":\"pay\"}");
        assert_eq!(
            c.lookup("AKID2", None).unwrap_err(),
            LookupError::UnknownKey
        );
        assert_eq!(
            c.lookup("AKID1", Some("t")).unwrap_err(),
            LookupError::InvalidToken
        );
    }

    #[test]
    fn a_key_with_a_session_token_needs_exactly_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[[credential]]\naccess_key_id = \"AKS\"\nsecret_access_key = \"s\"\nprincipal = \"p\"\nsession_token = \"tok\"\n",
        );
        let c = FileCredentials::load(&p).unwrap();
        assert!(c.lookup("AKS", Some("tok")).is_ok());
        assert_eq!(
            c.lookup("AKS", Some("tol")).unwrap_err(),
            LookupError::InvalidToken
        );
        assert_eq!(
            c.lookup("AKS", None).unwrap_err(),
            LookupError::InvalidToken
        );
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"abc"));
    }

    #[test]
    fn bad_files_are_refused_and_keep_the_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "[[credential]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\nprincipal = \"p\"\n",
        );
        let c = FileCredentials::load(&p).unwrap();
        std::fs::write(
            &p,
            "[[credential]]\naccess_key_id = \"A\"\nsecret = \"x\"\n",
        )
        .unwrap();
        assert!(!c.reload_if_changed());
        assert!(c.lookup("A", None).is_ok());
        std::fs::write(&p, "[[credential]]\naccess_key_id = \"B\"\nsecret_access_key = \"s2\"\nprincipal = \"q\"\n").unwrap();
        assert!(c.reload_if_changed());
        assert!(c.lookup("A", None).is_err());
        assert!(c.lookup("B", None).is_ok());
        let dup =
            "[[credential]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\nprincipal = \"p\"\n";
        assert!(parse_file(&write(dir.path(), &format!("{dup}{dup}")))
            .unwrap_err()
            .contains("twice"));
    }
}
