//! File writing rules of the dev PKI: private keys are created with mode 0600 and never
//! overwritten; every other file is written to `*.tmp` and renamed into place, so a gateway
//! watching the truststore never reads a half-written certificate or CRL.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;

/// Mode of every private key file.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of the `ca/` directory, which holds the CA keys.
pub(crate) const CA_DIR_MODE: u32 = 0o700;

/// Writes `contents` to `path` through `path.tmp` and a rename (atomic on one file system).
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = result {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(&tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))
}

/// Creates `path` with mode 0600 and writes `pem` to it; fails if the file exists.
///
/// The mode is set at creation (never by a chmod afterwards), so the key is never readable
/// by others, not even for an instant.
pub(crate) fn write_private_key(path: &Path, pem: &str) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEY_MODE)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => PkiError::KeyExists(path.to_path_buf()),
            _ => PkiError::io(path, e),
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io(path, e))
}

/// Creates a directory (and its parents) if missing.
pub(crate) fn create_dir(path: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(path).map_err(|e| PkiError::io(path, e))
}

/// Creates the directory that holds CA keys, readable by its owner only.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(CA_DIR_MODE)
        .create(path)
        .map_err(|e| PkiError::io(path, e))
}

/// Reads a whole UTF-8 file.
pub(crate) fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}
