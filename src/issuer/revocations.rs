//! Revocations of an issuer, persisted in `state_dir`, shared in shape by every issuer
//! (each has its own file name, e.g. `oauth2-revocations.json`).
//!
//! Two kinds: one token id (`jti`), refused until the token would have expired anyway; and
//! a subject (a client id), whose every token issued at or before a time is refused. A
//! revocation is written durably before [`RevocationStore::revoke_id`] /
//! [`RevocationStore::revoke_subject`] return: the new state goes to a temporary file,
//! which is fsynced, renamed over the old one, and the folder fsynced, so a crash
//! (`kill -9` included) leaves either the old or the new file, never a torn one. Entries
//! whose tokens have all expired are dropped at each write and at load.
//!
//! Reads ([`RevocationStore::is_revoked`]) are lock-free: the state is an immutable map
//! behind `ArcSwap`, replaced whole by each write (writes are rare; reads are per request).
//!
//! With `[cluster]`, [`RevocationStore::join`] shares the store with the fleet (named by
//! its file, e.g. `oauth2-revocations`): each revocation made here is published after it is
//! persisted, and the revocations of other instances are merged in (and persisted) as they
//! arrive; Redis never removes an entry ([`crate::cluster`]). Every issuer's store gets
//! this the same way, so session revocations are shared like OAuth2 ones.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::keys::create_private_dir;
use crate::cluster::{self, Cluster, Entry, Publisher, Revocation, SharedStore};

/// The persisted state (also the file format, JSON).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Revoked {
    /// Token id → Unix time after which the entry may go (the token's `exp`).
    #[serde(default)]
    pub ids: HashMap<String, i64>,
    /// Subject → its revocation.
    #[serde(default)]
    pub subjects: HashMap<String, SubjectRevocation>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubjectRevocation {
    /// Tokens issued at or before this Unix time are refused.
    pub before: i64,
    /// Unix time after which every such token has expired and the entry may go.
    pub until: i64,
}

impl Revoked {
    fn pruned(mut self, now: i64) -> Revoked {
        self.ids.retain(|_, until| *until > now);
        self.subjects.retain(|_, r| r.until > now);
        self
    }
}

/// One issuer's revocations: the file and the state read from it.
#[derive(Debug)]
pub struct RevocationStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The file name without `.json`: the store's name in the fleet.
    name: String,
    path: PathBuf,
    current: ArcSwap<Revoked>,
    /// Serialises writers (read-modify-write of the file); readers never take it.
    write: Mutex<()>,
    /// Set by [`RevocationStore::join`] with `[cluster]`.
    fleet: OnceLock<Publisher>,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl RevocationStore {
    /// Whether the file at `path` would open (a missing one is empty): what `check` says.
    pub fn check(path: &Path) -> Result<(), String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Revoked>(&bytes)
                .map(drop)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Open `state_dir/file_name`, creating `state_dir` (mode 0700) when missing. A file
    /// that exists but cannot be read is an error: revocations must never be lost quietly.
    pub fn open(state_dir: &Path, file_name: &str) -> Result<RevocationStore, String> {
        create_private_dir(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let path = state_dir.join(file_name);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Revoked>(&bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .pruned(now_secs()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Revoked::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(RevocationStore {
            inner: Arc::new(Inner {
                name: file_name.trim_end_matches(".json").to_owned(),
                path,
                current: ArcSwap::from_pointee(state),
                write: Mutex::new(()),
                fleet: OnceLock::new(),
            }),
        })
    }

    /// Share this store with the fleet (once; before the cluster starts).
    pub fn join(&self, cluster: &Arc<Cluster>) {
        if self.inner.fleet.get().is_none() {
            let _ = self.inner.fleet.set(cluster.register(self.inner.clone()));
        }
    }

    /// Whether a token with this id, subject and issue time is revoked.
    pub fn is_revoked(&self, id: Option<&str>, subject: Option<&str>, issued_at: i64) -> bool {
        self.is_revoked_any(id, subject.as_slice(), issued_at)
    }

    /// [`RevocationStore::is_revoked`] for a credential with several subjects (a session: its
    /// role and its certificate), with one load of the current state.
    pub fn is_revoked_any(&self, id: Option<&str>, subjects: &[&str], issued_at: i64) -> bool {
        let state = self.inner.current.load();
        id.is_some_and(|id| state.ids.contains_key(id))
            || subjects.iter().any(|s| {
                state
                    .subjects
                    .get(*s)
                    .is_some_and(|r| issued_at <= r.before)
            })
    }

    /// Revoke one token id until `until` (its expiry). Blocking (file I/O).
    pub fn revoke_id(&self, id: &str, until: i64) -> std::io::Result<()> {
        self.inner.update(|s| {
            let e = s.ids.entry(id.to_owned()).or_insert(until);
            *e = (*e).max(until);
        })?;
        self.publish(Revocation::Id(id.to_owned()), until);
        Ok(())
    }

    /// Revoke every token of `subject` issued at or before `before`; the entry is kept
    /// until `until` (`before` + the longest lifetime a token can have). Blocking.
    pub fn revoke_subject(&self, subject: &str, before: i64, until: i64) -> std::io::Result<()> {
        self.inner.update(|s| {
            merge_subject(s, subject, SubjectRevocation { before, until });
        })?;
        let what = Revocation::Subject {
            subject: subject.to_owned(),
            before,
        };
        self.publish(what, until);
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Revoked> {
        self.inner.current.load_full()
    }

    fn publish(&self, what: Revocation, until: i64) {
        if let Some(p) = self.inner.fleet.get() {
            p.publish(Entry { what, until });
        }
    }
}

impl Inner {
    fn update(&self, change: impl FnOnce(&mut Revoked)) -> std::io::Result<()> {
        // A poisoned lock only means a writer panicked; the file is whole either way.
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Revoked::clone(&self.current.load()).pruned(now_secs());
        change(&mut next);
        persist(&self.path, &next)?;
        self.current.store(Arc::new(next));
        Ok(())
    }
}

/// Keep the later `before` and `until` of a subject's revocations: merging never shortens one.
/// Whether it revokes more than before.
fn merge_subject(s: &mut Revoked, subject: &str, r: SubjectRevocation) -> bool {
    match s.subjects.get_mut(subject) {
        None => {
            s.subjects.insert(subject.to_owned(), r);
            true
        }
        Some(e) => {
            let more = r.before > e.before;
            e.before = e.before.max(r.before);
            e.until = e.until.max(r.until);
            more
        }
    }
}

impl SharedStore for Inner {
    fn name(&self) -> &str {
        &self.name
    }

    fn entries(&self) -> Vec<Entry> {
        let s = self.current.load();
        let ids = s.ids.iter().map(|(id, until)| Entry {
            what: Revocation::Id(id.clone()),
            until: *until,
        });
        let subjects = s.subjects.iter().map(|(subject, r)| Entry {
            what: Revocation::Subject {
                subject: subject.clone(),
                before: r.before,
            },
            until: r.until,
        });
        ids.chain(subjects).collect()
    }

    /// Merge (never remove), apply, then persist when anything changed. A failed write
    /// still applies the entries in memory: a revocation is never dropped for a disk error.
    fn apply(&self, entries: Vec<cluster::Entry>) -> std::io::Result<usize> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Revoked::clone(&self.current.load()).pruned(now_secs());
        let before = next.clone();
        let mut new = 0;
        for e in entries {
            match e.what {
                Revocation::Id(id) => {
                    let slot = next.ids.entry(id).or_insert_with(|| {
                        new += 1;
                        e.until
                    });
                    *slot = (*slot).max(e.until);
                }
                Revocation::Subject { subject, before } => {
                    let r = SubjectRevocation {
                        before,
                        until: e.until,
                    };
                    new += usize::from(merge_subject(&mut next, &subject, r));
                }
            }
        }
        if next == before {
            return Ok(0);
        }
        // Refused from now on, then written: the fleet's copy is in Redis meanwhile.
        let next = Arc::new(next);
        self.current.store(next.clone());
        persist(&self.path, &next).map(|()| new)
    }
}

/// Write `state` to `path` durably: temp file, fsync, rename, fsync of the folder.
fn persist(path: &Path, state: &Revoked) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_survive_reopening_and_expired_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let now = now_secs();
        let s = RevocationStore::open(&state, "oauth2-revocations.json").unwrap();
        s.revoke_id("j1", now + 60).unwrap();
        s.revoke_id("old", now - 1).unwrap();
        s.revoke_subject("c1", now, now + 60).unwrap();
        assert!(s.is_revoked(Some("j1"), None, now));
        assert!(s.is_revoked(Some("x"), Some("c1"), now));
        assert!(!s.is_revoked(Some("x"), Some("c1"), now + 1));
        let again = RevocationStore::open(&state, "oauth2-revocations.json").unwrap();
        assert!(again.is_revoked(Some("j1"), None, now));
        assert!(again.is_revoked(None, Some("c1"), now - 5));
        assert!(
            !again.snapshot().ids.contains_key("old"),
            "expired entry dropped"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Another issuer's file in the same folder is independent.
        let other = RevocationStore::open(&state, "sessions-revocations.json").unwrap();
        assert!(!other.is_revoked(Some("j1"), None, now));
    }

    #[test]
    fn a_corrupt_file_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.json"), "{not json").unwrap();
        assert!(RevocationStore::open(dir.path(), "r.json").is_err());
    }
}
