//! What `portcullis check` says about `[issuer.oauth2]` beyond the config's own keys: the
//! problems that would stop a start (no usable signing key, a registry that does not
//! load, a `state_dir` that is not a folder), and warnings that do not (a listener with
//! `client_auth = "optional"` in front of routes that do not ask for a certificate, a keys
//! folder with no key newer than 90 days).

use std::time::SystemTime;

use crate::config::{AuthMethod, ClientAuth, Config};
use crate::issuer::keys::{KeySet, ROTATION_WARNING_AGE};

use super::registry::Registry;

pub fn problems(config: &Config) -> Vec<String> {
    let Some(o) = &config.oauth2 else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Err(e) = KeySet::load(&o.keys) {
        out.push(format!("issuer.oauth2.keys: {e}"));
    }
    match std::fs::read_to_string(&o.clients_file) {
        Ok(text) => {
            if let Err(e) = Registry::parse(&text) {
                out.push(format!(
                    "issuer.oauth2.clients_file {}: {e}",
                    o.clients_file.display()
                ));
            }
        }
        Err(e) => out.push(format!(
            "issuer.oauth2.clients_file {}: {e}",
            o.clients_file.display()
        )),
    }
    if o.state_dir.exists() && !o.state_dir.is_dir() {
        out.push(format!(
            "issuer.oauth2.state_dir {}: not a folder",
            o.state_dir.display()
        ));
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
