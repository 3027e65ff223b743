//! Polling a file or folder for changes: what the issuer's hot-reloaded pieces (keys
//! folder, client registry) share. A poll compares a fingerprint of the metadata (size,
//! modification time, inode of the file or of each folder entry), so an unchanged file is
//! never read again.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

/// A hash of the metadata of `path` (a file, or a folder and its entries); `None` when it
/// cannot be read.
pub fn fingerprint(path: &Path) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let meta = std::fs::metadata(path).ok()?;
    hash_meta(&meta, &mut h);
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name(), e.metadata().ok()?)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, meta) in entries {
            name.hash(&mut h);
            hash_meta(&meta, &mut h);
        }
    }
    Some(h.finish())
}

fn hash_meta(meta: &std::fs::Metadata, h: &mut impl Hasher) {
    (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(h);
}

/// Every `period`, compute `probe`; call `changed` (both on the blocking pool: they read
/// files) when its value
/// differs from the last one, starting from `loaded` (the fingerprint taken before the
/// version in use was read, so a change made before the first poll is not missed). Ends
/// when `shutdown` turns true.
pub async fn poll_changes(
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    loaded: Option<u64>,
    probe: impl Fn() -> Option<u64> + Send + Sync + Clone + 'static,
    changed: impl Fn() + Send + Sync + Clone + 'static,
) {
    let mut last = loaded;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let p = probe.clone();
        let now = tokio::task::spawn_blocking(p).await.ok().flatten();
        if now.is_some() && now != last {
            last = now;
            let _ = tokio::task::spawn_blocking(changed.clone()).await;
        }
    }
}
