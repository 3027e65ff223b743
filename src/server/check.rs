//! `portcullis check`'s view of a start: everything [`super::start`] would build or load,
//! without binding, each problem with the config key it comes from — every one found,
//! not only the first of each kind (a missing certificate does not hide a missing key
//! or a bad truststore).
//!
//! [`validate_all`] reads the files (truststore, listener certificates and keys, upstream
//! TLS material, routes, the SigV4 credentials, the access log, `[issuer.oauth2]`'s keys,
//! clients and state); [`check_remote`] does the network part a start does: the first
//! fetch of every `jwks_url`, which fails a start when it fails.

use std::sync::Arc;

use crate::auth::sigv4::FileCredentials;
use crate::config::{AccessLog, Config};
use crate::tls::{self, ClientVerifier, Truststore};
use crate::upstream::Upstream;

/// One thing `check` found, at the key of the config it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// E.g. `listener[0].key`, `truststore.dir`, `auth.jwt.idp.jwks_url`.
    pub key: String,
    pub message: String,
    /// A warning does not stop a start; an error does.
    pub warning: bool,
}

impl Finding {
    fn error(key: impl Into<String>, message: impl ToString) -> Finding {
        Finding {
            key: key.into(),
            message: message.to_string(),
            warning: false,
        }
    }

    fn warning(key: impl Into<String>, message: impl ToString) -> Finding {
        Finding {
            warning: true,
            ..Finding::error(key, message)
        }
    }
}

/// The errors of [`validate_all`] as `key: message` lines.
pub fn validate(config: &Config) -> Vec<String> {
    validate_all(config)
        .into_iter()
        .filter(|f| !f.warning)
        .map(|f| format!("{}: {}", f.key, f.message))
        .collect()
}

/// Everything `start` would read from disk, without binding or fetching.
pub fn validate_all(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let truststore = match Truststore::load(&config.truststore.dir) {
        Ok(t) => {
            if let Err(e) = t.check_roots_valid(std::time::SystemTime::now()) {
                out.push(Finding::error("truststore.dir", e));
            }
            Some(Arc::new(t))
        }
        Err(e) => {
            out.push(Finding::error("truststore.dir", e));
            None
        }
    };
    for (i, l) in config.listeners.iter().enumerate() {
        let material = tls::check_listener(l);
        let clean = material.is_empty();
        for (key, e) in material {
            out.push(Finding::error(format!("listener[{i}].{key}"), e));
        }
        // What is left for rustls to refuse, once the files are good.
        if let (true, Some(ts)) = (clean, &truststore) {
            let verifier = Arc::new(ClientVerifier::new(
                ts.clone(),
                &config.truststore,
                l.client_auth,
            ));
            if let Err(e) = tls::server_config(l, verifier) {
                out.push(Finding::error(format!("listener[{i}]"), e));
            }
        }
    }
    let mut snapshot_parts_ok = true;
    if let Some(f) = config
        .sigv4
        .as_ref()
        .and_then(|s| s.credentials_file.as_ref())
    {
        if let Err(e) = FileCredentials::load(f) {
            out.push(Finding::error("auth.sigv4.credentials_file", e));
            snapshot_parts_ok = false;
        }
    }
    for (i, u) in config.upstreams.iter().enumerate() {
        if let Err(e) = Upstream::from_config(u) {
            out.push(Finding::error(format!("upstream[{i}]"), e.message));
            snapshot_parts_ok = false;
        }
    }
    // The routes, once their upstreams build (else each would repeat an upstream's error).
    if snapshot_parts_ok {
        match crate::state::build_snapshot(config) {
            Ok(_) => {}
            Err(crate::state::StartError::Routes(e)) => out.push(Finding::error("route", e)),
            Err(e) => out.push(Finding::error("", e)),
        }
    }
    if let Err(e) = access_log_writable(&config.log.access_log) {
        out.push(Finding::error("log.access_log", e));
    }
    for j in &config.jwt {
        if let Err(e) = crate::auth::jwt::check(j) {
            out.push(Finding::error(j.source_key(), e));
        }
    }
    for (key, e) in crate::issuer::oauth2::check::problems(config) {
        out.push(Finding::error(key, e));
    }
    // These name their own keys.
    for (key, e) in crate::issuer::sessions::check::problems(config) {
        out.push(Finding::error(key, e));
    }
    for (i, t) in config
        .sessions
        .iter()
        .flat_map(|s| s.trust_anchors.iter())
        .enumerate()
    {
        let key = format!("issuer.sessions.trust_anchor[{i}].truststore");
        match Truststore::load(&t.truststore.dir) {
            Ok(ts) => {
                if let Err(e) = ts.check_roots_valid(std::time::SystemTime::now()) {
                    out.push(Finding::error(key, e));
                }
            }
            Err(e) => out.push(Finding::error(key, e)),
        }
    }
    // `[cluster]`'s TLS files (Redis itself is not asked: `check` runs anywhere).
    if let Some(Err(e)) = config.cluster.as_ref().map(crate::cluster::Cluster::new) {
        let (key, why) = e.split_once(": ").unwrap_or(("cluster", e.as_str()));
        out.push(Finding::error(key, why));
    }
    for w in crate::issuer::oauth2::check::warnings(config) {
        out.push(Finding::warning("", w));
    }
    out
}

/// What a start fetches before it serves: the first key set of every `jwks_url`
/// provider. A start fails when one cannot be had, so each failure is an error, with the
/// provider's name and the URL.
pub async fn check_remote(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for j in &config.jwt {
        if let Err(e) = crate::auth::jwt::check_first_fetch(j).await {
            out.push(Finding::error(j.source_key(), e));
        }
    }
    out
}

/// Whether the access log can be opened for appending as a start will, without creating
/// it: an existing file must open for append, a new one needs its folder.
fn access_log_writable(target: &AccessLog) -> Result<(), String> {
    let AccessLog::File(path) = target else {
        return Ok(());
    };
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(format!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}
