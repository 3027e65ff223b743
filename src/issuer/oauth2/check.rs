//! What `portcullis check` says about `[issuer.oauth2]` beyond the config's own keys: the
//! problems that would stop a start (no usable signing key, a registry that does not
//! load, a `state_dir` that is not a folder), and warnings that do not (a listener with
//! `client_auth = "optional"` in front of routes that do not ask for a certificate, a keys
//! folder with no key newer than 90 days).

use std::time::SystemTime;

use crate::config::{AuthMethod, ClientAuth, Config};
use crate::issuer::keys::{KeySet, ROTATION_WARNING_AGE};
use crate::issuer::revocations::RevocationStore;

use super::registry::Registry;

/// Each problem with the config key it comes from (`issuer.oauth2.keys`, …).
pub fn problems(config: &Config) -> Vec<(&'static str, String)> {
    let Some(o) = &config.oauth2 else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Err(e) = KeySet::load(&o.keys) {
        out.push(("issuer.oauth2.keys", e.to_string()));
    }
    let clients = std::fs::read_to_string(&o.clients_file)
        .map_err(|e| e.to_string())
        .and_then(|text| Registry::parse(&text).map(drop).map_err(|e| e.to_string()));
    if let Err(e) = clients {
        let file = o.clients_file.display();
        out.push(("issuer.oauth2.clients_file", format!("{file}: {e}")));
    }
    if o.state_dir.exists() && !o.state_dir.is_dir() {
        let dir = o.state_dir.display();
        out.push(("issuer.oauth2.state_dir", format!("{dir}: not a folder")));
    } else if let Err(e) = RevocationStore::check(&o.state_dir.join(super::REVOCATIONS_FILE)) {
        out.push(("issuer.oauth2.state_dir", e));
    }
    out
}

pub fn warnings(config: &Config) -> Vec<String> {
    let Some(o) = &config.oauth2 else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let open: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| {
            let needs_cert = if r.auth_any.is_empty() {
                r.auth.contains(&AuthMethod::Mtls)
            } else {
                r.auth_any.iter().all(|a| a.contains(&AuthMethod::Mtls))
            };
            !r.auth.contains(&AuthMethod::Builtin) && !needs_cert
        })
        .map(|r| r.name.as_str())
        .collect();
    for (i, l) in config.listeners.iter().enumerate() {
        if l.client_auth == ClientAuth::Optional {
            let mut w = format!(
                "listener[{i}] has client_auth = \"optional\": clients without a certificate can connect \
                 (what secret-only OAuth2 clients need for the token route); every route must then \
                 ask for a certificate itself with \"mtls\""
            );
            if !open.is_empty() {
                w.push_str(&format!("; these routes do not: {}", open.join(", ")));
            }
            out.push(w);
        }
    }
    if let Ok(set) = KeySet::load(&o.keys) {
        let now = SystemTime::now();
        let fresh = set.all().iter().any(|k| {
            now.duration_since(k.modified)
                .is_ok_and(|age| age < ROTATION_WARNING_AGE)
        });
        if !fresh {
            out.push(format!(
                "issuer.oauth2.keys: no key is newer than 90 days; add one with `portcullis oauth keys rotate {}` (keep the old ones until their tokens expired)",
                o.keys.display()
            ));
        }
    }
    out
}
