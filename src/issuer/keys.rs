//! An issuer's signing keys: a folder of PEM private keys, read into an immutable
//! [`KeySet`] and swapped whole when the folder changes (checked every second; a folder
//! that no longer yields a usable key keeps the last good set).
//!
//! - Every `*.pem` file holds one private key (PKCS#8, SEC1 or PKCS#1): EC P-256 keys sign
//!   ES256, RSA keys (2048 bits or more) sign RS256. Other files are ignored.
//! - **Which key signs**: the one whose file name sorts last. `portcullis oauth keys rotate`
//!   names keys `key-YYYYMMDDTHHMMSSZ.pem` (UTC), so the newest sorts last, and every
//!   instance holding a copy of the folder picks the same key.
//! - **kid**: the RFC 7638 JWK thumbprint of the public key (base64url SHA-256 of the
//!   canonical JWK), so it is stable across copies, restarts and file renames.
//! - Every key of the folder is published in the JWKS: a retired key must stay in the
//!   folder until the last token it signed has expired (`keys rotate` never deletes).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::watch::{fingerprint, poll_changes};
use crate::telemetry::metrics as m;

/// How often the folder is looked at.
/// The PEM label of a PKCS#8 private key (named once, so no source line reads as a key).
const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

const POLL: Duration = Duration::from_secs(1);

/// A key older than this is a reason for `check` to suggest a rotation.
pub const ROTATION_WARNING_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

enum Kind {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// One private key of the folder, ready to sign.
pub struct SigningKey {
    pub kid: String,
    pub alg: &'static str,
    pub file: PathBuf,
    pub modified: SystemTime,
    kind: Kind,
    /// The public JWK published for it.
    jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_pem(file: &Path, modified: SystemTime) -> Result<SigningKey, String> {
        let der = PrivateKeyDer::from_pem_file(file).map_err(|e| format!("{e}"))?;
        let kind = match &der {
            PrivateKeyDer::Pkcs8(k) => EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                k.secret_pkcs8_der(),
            )
            .map(Kind::Ec)
            .or_else(|_| RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map(Kind::Rsa))
            .map_err(|_| "not an EC P-256 or RSA private key".to_owned())?,
            PrivateKeyDer::Sec1(k) => EcdsaKeyPair::from_private_key_der(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                k.secret_sec1_der(),
            )
            .map(Kind::Ec)
            .map_err(|_| "not an EC P-256 private key".to_owned())?,
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map(Kind::Rsa)
                .map_err(|_| "not an RSA private key".to_owned())?,
            _ => return Err("unsupported private key format".into()),
        };
        let (alg, thumb_input, jwk) = match &kind {
            Kind::Ec(k) => {
                let p = k.public_key().as_ref();
                let (x, y) = (
                    URL_SAFE_NO_PAD.encode(&p[1..33]),
                    URL_SAFE_NO_PAD.encode(&p[33..65]),
                );
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256"});
                ("ES256", canonical, jwk)
            }
            Kind::Rsa(k) => {
                if k.public_modulus_len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                let (n, e) = (URL_SAFE_NO_PAD.encode(&c.n), URL_SAFE_NO_PAD.encode(&c.e));
                let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                let jwk =
                    serde_json::json!({"kty": "RSA", "n": n, "e": e, "use": "sig", "alg": "RS256"});
                ("RS256", canonical, jwk)
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumb_input.as_bytes()));
        let mut jwk = jwk;
        jwk["kid"] = serde_json::Value::String(kid.clone());
        Ok(SigningKey {
            kid,
            alg,
            file: file.to_path_buf(),
            modified,
            kind,
            jwk,
        })
    }

    /// The JWS signature over `input` (ES256: fixed-width r‖s; RS256: PKCS#1 v1.5).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match &self.kind {
            Kind::Ec(k) => k
                .sign(&rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "signing failed".to_owned()),
            Kind::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, input, &mut out)
                    .map_err(|_| "signing failed".to_owned())?;
                Ok(out)
            }
        }
    }

    /// Whether `signature` over `input` was made by this key with `alg`.
    pub fn verify(&self, alg: &str, input: &[u8], signature: &[u8]) -> bool {
        if alg != self.alg {
            return false;
        }
        match &self.kind {
            Kind::Ec(k) => UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, k.public_key())
                .verify(input, signature)
                .is_ok(),
            Kind::Rsa(k) => {
                UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, k.public_key())
                    .verify(input, signature)
                    .is_ok()
            }
        }
    }
}

/// The keys of one folder: immutable, swapped whole.
#[derive(Debug)]
pub struct KeySet {
    /// Sorted by file name; the last one signs.
    keys: Vec<SigningKey>,
    /// The JWKS document (every key), built once.
    pub jwks: Bytes,
    /// Files that held no usable key, with why (for the log and `check`).
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Read every `*.pem` of `dir`. Fails when none yields a key.
    pub fn load(dir: &Path) -> Result<KeySet, String> {
        let (keys, skipped) = load_folder(
            dir,
            &FolderKind {
                extension: "pem",
                what: "signing key",
                rotate: "portcullis oauth keys rotate",
                missing_hint: "create it with",
            },
            SigningKey::from_pem,
            |k: &SigningKey| &k.kid,
        )?;
        let jwks = serde_json::json!({"keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()});
        Ok(KeySet {
            keys,
            jwks: Bytes::from(jwks.to_string()),
            skipped,
        })
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &SigningKey {
        // Non-empty: `load` refuses a folder without a key.
        &self.keys[self.keys.len() - 1]
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }
}

/// What a keys folder reads into: a whole set, swapped at once ([`KeySet`] for the OAuth2
/// signing keys, the session issuer's sealing keys).
/// How [`load_folder`] names a kind of key folder in its messages.
pub struct FolderKind {
    /// The key files' extension (`pem`, `key`).
    pub extension: &'static str,
    /// `signing key`, `sealing key`.
    pub what: &'static str,
    /// The command that adds one, given the folder.
    pub rotate: &'static str,
    /// What to do when the folder cannot be read (`create it with`, `add one with`).
    pub missing_hint: &'static str,
}

/// Read every `*.<extension>` file of `dir` in file-name order with `read` (given the
/// path and its modification time), skipping (with a reason) what does not parse and a
/// key whose id another file already holds. Fails, saying why, when none yields a key.
pub fn load_folder<K>(
    dir: &Path,
    kind: &FolderKind,
    read: impl Fn(&Path, SystemTime) -> Result<K, String>,
    kid: impl Fn(&K) -> &str,
) -> Result<(Vec<K>, Vec<String>), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "{}: {e} ({} `{} {}`)",
            dir.display(),
            kind.missing_hint,
            kind.rotate,
            dir.display()
        )
    })?;
    let mut files: Vec<(PathBuf, SystemTime)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == kind.extension))
        .filter_map(|p| {
            // Followed through symlinks: a Kubernetes Secret mounts each file as one.
            let meta = std::fs::metadata(&p).ok()?;
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            meta.is_file().then_some((p, modified))
        })
        .collect();
    files.sort();
    let mut keys: Vec<K> = Vec::new();
    let mut skipped = Vec::new();
    for (file, modified) in files {
        match read(&file, modified) {
            Ok(k) if keys.iter().any(|o| kid(o) == kid(&k)) => {
                skipped.push(format!("{}: the same key as another file", file.display()))
            }
            Ok(k) => keys.push(k),
            Err(e) => skipped.push(format!("{}: {e}", file.display())),
        }
    }
    if keys.is_empty() {
        let mut why = format!(
            "{}: no {} (add one with `{} {}`)",
            dir.display(),
            kind.what,
            kind.rotate,
            dir.display()
        );
        if !skipped.is_empty() {
            why.push_str(&format!("; skipped: {}", skipped.join("; ")));
        }
        return Err(why);
    }
    Ok((keys, skipped))
}

pub trait KeyFolder: Sized + Send + Sync + 'static {
    /// Read the folder; fails when it yields no usable key.
    fn load(dir: &Path) -> Result<Self, String>;
    /// How many keys, and the id of the one in use (for the log).
    fn summary(&self) -> (usize, &str);
}

impl KeyFolder for KeySet {
    fn load(dir: &Path) -> Result<Self, String> {
        KeySet::load(dir)
    }
    fn summary(&self) -> (usize, &str) {
        (self.keys.len(), &self.signer().kid)
    }
}

/// The current key set of a folder, reloaded in the background.
#[derive(Debug)]
pub struct Keys<S = KeySet> {
    dir: PathBuf,
    current: ArcSwap<S>,
    /// Which issuer, for the metric label (`oauth2`, `sessions`).
    issuer: &'static str,
    /// The folder's fingerprint just before the first set was read.
    loaded: Option<u64>,
}

impl<S: KeyFolder> Keys<S> {
    pub fn load(dir: &Path, issuer: &'static str) -> Result<Keys<S>, String> {
        let loaded = fingerprint(dir);
        let set = S::load(dir)?;
        let (keys, current) = set.summary();
        tracing::info!(issuer, keys, current, "keys loaded");
        Ok(Keys {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(set),
            issuer,
            loaded,
        })
    }

    /// A set made in memory, never reloaded (tests).
    pub fn fixed(set: S, issuer: &'static str) -> Keys<S> {
        Keys {
            dir: PathBuf::new(),
            current: ArcSwap::from_pointee(set),
            issuer,
            loaded: None,
        }
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<S>> {
        self.current.load()
    }

    /// Reload when the folder changes, until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let dir = self.dir.clone();
        let me = self.clone();
        poll_changes(POLL, shutdown, self.loaded, move || fingerprint(&dir), move || {
            let this = &me;
            let result = match S::load(&this.dir) {
                Ok(set) => {
                    let (keys, current) = set.summary();
                    tracing::info!(issuer = this.issuer, keys, current, "keys reloaded");
                    this.current.store(Arc::new(set));
                    "success"
                }
                Err(e) => {
                    tracing::warn!(issuer = this.issuer, error = %e, "keys refused; keeping the last good set");
                    "failure"
                }
            };
            metrics::counter!(m::ISSUER_KEY_RELOADS_TOTAL, "issuer" => this.issuer, "result" => result)
                .increment(1);
        })
        .await;
    }
}

/// `portcullis oauth keys rotate DIR`: write a new EC P-256 key (mode 0600) named by the
/// current UTC time, creating DIR (mode 0700) if missing. Returns the new file.
pub fn generate(dir: &Path) -> Result<PathBuf, String> {
    create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "key generation failed".to_owned())?;
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let mut path = dir.join(format!("key-{stamp}.pem"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("key-{stamp}-{n}.pem"));
        n += 1;
    }
    let b64 = STANDARD.encode(pkcs8.as_ref());
    let mut pem = format!("-----BEGIN {PKCS8_PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {PKCS8_PEM_LABEL}-----\n"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Create `dir` (and parents) with mode 0700 when missing; an existing folder is left as is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_file_signs_every_key_is_published_and_kids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = generate(&keys).unwrap();
        let set = KeySet::load(&keys).unwrap();
        let old_kid = set.signer().kid.clone();
        std::fs::rename(&first, keys.join("key-20000101T000000Z.pem")).unwrap();
        assert_eq!(
            KeySet::load(&keys).unwrap().signer().kid,
            old_kid,
            "kid survives a rename"
        );
        generate(&keys).unwrap();
        let set = KeySet::load(&keys).unwrap();
        assert_eq!(set.all().len(), 2);
        assert_ne!(set.signer().kid, old_kid);
        assert_eq!(set.signer().alg, "ES256");
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        let s = set.signer().sign(b"abc").unwrap();
        assert!(set.signer().verify("ES256", b"abc", &s));
        assert!(!set.get(&old_kid).unwrap().verify("ES256", b"abc", &s));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn an_rsa_key_signs_rs256_and_verifies() {
        use aws_lc_rs::encoding::AsDer;
        let dir = tempfile::tempdir().unwrap();
        let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).unwrap();
        let pem = format!(
            "-----BEGIN {PKCS8_PEM_LABEL}-----\n{}\n-----END {PKCS8_PEM_LABEL}-----\n",
            STANDARD.encode(der.as_ref())
        );
        std::fs::write(dir.path().join("rsa.pem"), pem).unwrap();
        let set = KeySet::load(dir.path()).unwrap();
        let key = set.signer();
        assert_eq!(key.alg, "RS256");
        let s = key.sign(b"abc").unwrap();
        assert!(key.verify("RS256", b"abc", &s) && !key.verify("ES256", b"abc", &s));
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str());
    }

    #[test]
    fn a_key_mounted_as_a_symlink_is_read() {
        // The layout of a Kubernetes Secret volume: `name -> ..data/name`.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..data");
        let first = generate(&data).unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let name = first.file_name().unwrap();
        std::os::unix::fs::symlink(&first, keys.join(name)).unwrap();
        let set = KeySet::load(&keys).unwrap();
        assert_eq!(set.all().len(), 1);
    }

    #[test]
    fn an_empty_or_broken_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
        let e = KeySet::load(dir.path()).unwrap_err();
        assert!(
            e.contains("no signing key") && e.contains("junk.pem"),
            "{e}"
        );
    }
}
