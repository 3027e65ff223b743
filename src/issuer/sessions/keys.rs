//! The sealing keys of `[issuer.sessions]`: a folder of 256-bit secret keys, one per
//! `*.key` file (standard base64 of 32 bytes), read into an immutable [`SealKeySet`] and
//! swapped whole when the folder changes (the same polling as the OAuth2 signing keys,
//! [`crate::issuer::watch`]; a folder that no longer yields a key keeps the last good set).
//!
//! - Loaded and watched by [`crate::issuer::keys::Keys`], like the OAuth2 signing keys.
//! - **Which key seals**: the one whose file name sorts last; `portcullis sessions keys
//!   rotate` names keys `key-YYYYMMDDTHHMMSSZ.key`, so every instance holding a copy of the
//!   folder seals with the same key, and opens what any other sealed.
//! - **kid**: 16 hex digits of SHA-256 over a label and the key, stable across copies and
//!   renames; it travels in clear in the session token.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::issuer::keys::{create_private_dir, load_folder, FolderKind, KeyFolder, Keys};

/// One 256-bit sealing key.
pub struct SealKey {
    pub kid: String,
    pub file: PathBuf,
    pub secret: [u8; 32],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("kid", &self.kid)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn kid_of(secret: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"portcullis session key id\0");
    h.update(secret);
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn read_key(file: &Path) -> Result<[u8; 32], String> {
    let text = crate::material::read_text_bounded(file, 4096).map_err(|e| e.to_string())?;
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| "not base64 text".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| "not a 256-bit key (32 bytes)".to_owned())
}

/// The keys of one folder: immutable, swapped whole.
#[derive(Debug)]
pub struct SealKeySet {
    /// Sorted by file name; the last one seals.
    keys: Vec<SealKey>,
    pub skipped: Vec<String>,
}

impl SealKeySet {
    pub fn load(dir: &Path) -> Result<SealKeySet, String> {
        let (keys, skipped) = load_folder(
            dir,
            &FolderKind {
                extension: "key",
                what: "sealing key",
                rotate: "portcullis sessions keys rotate",
                missing_hint: "add one with",
            },
            |file, _| {
                let secret = read_key(file)?;
                Ok(SealKey {
                    kid: kid_of(&secret),
                    file: file.to_owned(),
                    secret,
                })
            },
            |k: &SealKey| &k.kid,
        )?;
        Ok(SealKeySet { keys, skipped })
    }

    /// The key that seals new sessions.
    pub fn sealer(&self) -> &SealKey {
        // Non-empty: `load` refuses a folder without a key.
        &self.keys[self.keys.len() - 1]
    }

    pub fn get(&self, kid: &str) -> Option<&SealKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn all(&self) -> &[SealKey] {
        &self.keys
    }
}

impl KeyFolder for SealKeySet {
    fn load(dir: &Path) -> Result<Self, String> {
        SealKeySet::load(dir)
    }
    fn summary(&self) -> (usize, &str) {
        (self.keys.len(), &self.sealer().kid)
    }
}

/// The sealing keys of `[issuer.sessions]`, reloaded in the background.
pub type SealKeys = Keys<SealKeySet>;

/// `portcullis sessions keys rotate DIR`: write a new random 256-bit key (mode 0600) named
/// by the current UTC time, creating DIR (mode 0700) if missing. Returns the new file.
pub fn generate(dir: &Path) -> Result<PathBuf, String> {
    create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut secret = [0u8; 32];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| "no randomness available".to_owned())?;
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let mut path = dir.join(format!("key-{stamp}.key"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("key-{stamp}-{n}.key"));
        n += 1;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = format!("{}\n", STANDARD.encode(secret));
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn newest_key_seals_and_kids_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("k");
        let first = generate(&keys).unwrap();
        assert_eq!(
            std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let kid = SealKeySet::load(&keys).unwrap().sealer().kid.clone();
        std::fs::rename(&first, keys.join("key-20000101T000000Z.key")).unwrap();
        assert_eq!(SealKeySet::load(&keys).unwrap().sealer().kid, kid);
        generate(&keys).unwrap();
        let set = SealKeySet::load(&keys).unwrap();
        assert_eq!(set.all().len(), 2);
        assert_ne!(set.sealer().kid, kid);
        assert!(set.get(&kid).is_some());
    }

    #[test]
    fn a_folder_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.key"), "c2hvcnQ=\n").unwrap();
        let e = SealKeySet::load(dir.path()).unwrap_err();
        assert!(
            e.contains("no sealing key") && e.contains("not a 256-bit key"),
            "{e}"
        );
    }
}
