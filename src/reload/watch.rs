//! Noticing changed files: a watcher (inotify via `notify`) with a short debounce, and a
//! poller that compares a fingerprint of the file contents every `poll_interval` — the
//! fallback for filesystems that miss events (network mounts, some container volumes).
//!
//! Both only ever call [`Reloader::reload_if_changed`], so an event on an unrelated file in
//! a watched folder, or a burst of events, costs one fingerprint and no reload. The poller
//! also refreshes the expiry gauges and repeats expiry warnings once an hour.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{hygiene, Reloader, Trigger};
use crate::config::Config;
use crate::material::MAX_FILE_SIZE;
use crate::shutdown::stopped;

/// How often the poller repeats an expiry warning.
const WARN_EVERY: Duration = Duration::from_secs(3600);

/// Start the watcher and poller; they stop on shutdown.
pub fn spawn(reloader: Arc<Reloader>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(reloader, shutdown))
}

async fn run(reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) {
    let config = reloader.config().await;
    let settings = config.reload.clone();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let relevant = Arc::new(RwLock::new(relevant_paths(&config)));
    let mut watcher = if settings.watch {
        start_watcher(tx, relevant.clone())
    } else {
        None
    };
    let mut watched = BTreeSet::new();
    if let Some(w) = watcher.as_mut() {
        rewatch(w, &mut watched, &config);
    }
    let mut poll = tokio::time::interval(settings.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    let mut last_warning = Instant::now();
    let crls = reloader.crl_store().clone();
    loop {
        let trigger = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = crls.changed() => {
                // A fetched CRL is already checked: build the generation that uses it.
                let _ = reloader.refresh_trust(Trigger::CrlFetch).await;
                continue;
            }
            Some(()) = rx.recv() => {
                // Editors and `kubectl` write in bursts: wait, then take them as one.
                tokio::time::sleep(settings.debounce).await;
                while rx.try_recv().is_ok() {}
                Trigger::Watch
            }
            _ = poll.tick() => Trigger::Poll,
        };
        if let Some(Ok(_)) = reloader.reload_if_changed(trigger).await {
            let config = reloader.config().await;
            if let Ok(mut r) = relevant.write() {
                *r = relevant_paths(&config);
            }
            if let Some(w) = watcher.as_mut() {
                rewatch(w, &mut watched, &config);
            }
        }
        if trigger == Trigger::Poll {
            let warn = last_warning.elapsed() >= WARN_EVERY;
            if warn {
                last_warning = Instant::now();
            }
            let trust = reloader.shared().trust.load_full();
            hygiene(&trust.truststore, settings.expiry_warning, warn);
        }
    }
}

fn start_watcher(
    tx: mpsc::Sender<()>,
    relevant: Arc<RwLock<Vec<PathBuf>>>,
) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let hit = match relevant.read() {
            Ok(r) => event
                .paths
                .iter()
                .any(|p| r.iter().any(|want| p.starts_with(want))),
            Err(_) => true,
        };
        if hit {
            // A full channel means a reload check is already pending.
            let _ = tx.try_send(());
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; polling only");
            None
        }
    }
}

/// Watch the folders that hold what `config` names (folders, so that files replaced by
/// rename are seen too).
fn rewatch(
    w: &mut notify::RecommendedWatcher,
    watched: &mut BTreeSet<(PathBuf, bool)>,
    config: &Config,
) {
    let mut want = BTreeSet::new();
    want.insert((config.truststore.dir.clone(), true));
    for file in std::iter::once(&config.source)
        .chain(config.listeners.iter().flat_map(|l| [&l.cert, &l.key]))
    {
        if let Some(parent) = file.parent() {
            want.insert((parent.to_path_buf(), false));
        }
    }
    for gone in watched.difference(&want) {
        let _ = w.unwatch(&gone.0);
    }
    for (dir, recursive) in want.difference(watched) {
        let mode = if *recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        if let Err(e) = w.watch(dir, mode) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; polling covers it");
        }
    }
    *watched = want;
}

/// Paths whose changes matter: the truststore folder, the config file, the listeners'
/// certificates and keys.
fn relevant_paths(config: &Config) -> Vec<PathBuf> {
    let mut out = vec![config.truststore.dir.clone(), config.source.clone()];
    for l in &config.listeners {
        out.push(l.cert.clone());
        out.push(l.key.clone());
    }
    out
}

/// SHA-256 over the names and contents of every file a reload reads. Blocking.
pub fn fingerprint(config: &Config) -> [u8; 32] {
    let mut files = vec![config.source.clone()];
    for l in &config.listeners {
        files.push(l.cert.clone());
        files.push(l.key.clone());
    }
    let mut tree = Vec::new();
    collect(&config.truststore.dir, &mut tree, 0);
    tree.sort();
    files.extend(tree);
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.as_os_str().as_encoded_bytes());
        h.update([0]);
        hash_file(&mut h, f);
    }
    h.finalize().into()
}

/// Hash one file's length and contents, read in small pieces (never whole). A file over
/// [`MAX_FILE_SIZE`], which the reload will refuse unread, is hashed by length and
/// modification time only: the poller runs this every `poll_interval`.
fn hash_file(h: &mut Sha256, f: &Path) {
    let unreadable = |h: &mut Sha256, e: std::io::Error| {
        h.update(format!("unreadable: {}", e.kind()).as_bytes());
    };
    let file = match File::open(f) {
        Ok(file) => file,
        Err(e) => return unreadable(h, e),
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(e) => return unreadable(h, e),
    };
    h.update(meta.len().to_be_bytes());
    if meta.len() > MAX_FILE_SIZE {
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        h.update(modified.unwrap_or_default().as_nanos().to_be_bytes());
        return;
    }
    let mut reader = file.take(MAX_FILE_SIZE + 1);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return unreadable(h, e),
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out, depth + 1);
        } else {
            out.push(p);
        }
    }
}
