//! What `portcullis check` says about `[issuer.sessions]` beyond the config's own keys:
//! the problems that would stop a start (no usable sealing key, a trust anchor's truststore
//! that does not load, a `state_dir` that is not a folder).

use crate::config::Config;

use super::keys::SealKeySet;

/// Each trust anchor's truststore is checked by `server::check` (it owns the verifier);
/// here, what the issuer itself reads.
pub fn problems(config: &Config) -> Vec<(String, String)> {
    let Some(s) = &config.sessions else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Err(e) = SealKeySet::load(&s.keys) {
        out.push(("issuer.sessions.keys".to_owned(), e.to_string()));
    }
    if s.state_dir.exists() && !s.state_dir.is_dir() {
        out.push((
            "issuer.sessions.state_dir".to_owned(),
            format!("{}: not a folder", s.state_dir.display()),
        ));
    }
    out
}
