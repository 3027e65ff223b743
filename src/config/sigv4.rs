//! `[auth]` and `[auth.sigv4]`: raw structs, typed config and their builder, kept apart
//! from the shared config files so that each auth scheme adds one file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::build::{k, Builder, KeyPath, Seg};
use super::defaults as d;
use super::file::Size;

/// A string or a list of strings (`region = "us-east-1"` or `region = ["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSigv4 {
    pub region: Option<OneOrMany>,
    pub service: Option<OneOrMany>,
    pub credentials_file: Option<String>,
    pub max_skew: Option<String>,
    pub max_presign_expiry: Option<String>,
    pub max_payload_buffer: Option<Size>,
    pub allow_unsigned_payload: Option<bool>,
    pub sessions: Option<bool>,
}

/// `[auth.sigv4]`, validated.
#[derive(Debug, Clone)]
pub struct Sigv4Config {
    /// Credential-scope regions accepted (at least one).
    pub regions: Vec<String>,
    /// Credential-scope services accepted (at least one).
    pub services: Vec<String>,
    /// TOML `[[credential]]` file, hot-reloaded; optional with `sessions`.
    pub credentials_file: Option<PathBuf>,
    /// Max difference between the request date and the gateway clock.
    pub max_skew: Duration,
    /// Max `X-Amz-Expires` of a presigned URL (at most 7 days).
    pub max_presign_expiry: Duration,
    /// Bodies are hashed up to this size; larger signed bodies are refused (413).
    pub max_payload_buffer: u64,
    /// Accept `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    pub allow_unsigned_payload: bool,
    /// Also accept session credentials issued by `[issuer.sessions]`.
    pub sessions: bool,
}

impl Builder {
    pub(super) fn sigv4(&mut self, raw: &RawSigv4) -> Sigv4Config {
        let p: KeyPath = vec![Seg::Key("auth".into()), Seg::Key("sigv4".into())];
        let regions = self.one_or_many(&p, "region", &raw.region);
        let services = self.one_or_many(&p, "service", &raw.service);
        let sessions = raw.sessions.unwrap_or(false);
        let credentials_file = if sessions && raw.credentials_file.is_none() {
            None
        } else {
            Some(self.path(&p, "credentials_file", &raw.credentials_file))
        };
        let max_skew = self.duration(k(&p, "max_skew"), &raw.max_skew, d::SIGV4_MAX_SKEW);
        let mut max_presign_expiry = self.duration(
            k(&p, "max_presign_expiry"),
            &raw.max_presign_expiry,
            d::SIGV4_MAX_PRESIGN_EXPIRY,
        );
        if max_presign_expiry > d::SIGV4_MAX_PRESIGN_EXPIRY_LIMIT {
            self.err(
                k(&p, "max_presign_expiry"),
                "must be at most 7d (AWS's limit for presigned URLs)",
            );
            max_presign_expiry = d::SIGV4_MAX_PRESIGN_EXPIRY;
        }
        let max_payload_buffer = self.size(
            k(&p, "max_payload_buffer"),
            &raw.max_payload_buffer,
            d::SIGV4_MAX_PAYLOAD_BUFFER,
            0,
        );
        Sigv4Config {
            regions,
            services,
            credentials_file,
            max_skew,
            max_presign_expiry,
            max_payload_buffer,
            allow_unsigned_payload: raw
                .allow_unsigned_payload
                .unwrap_or(d::SIGV4_ALLOW_UNSIGNED_PAYLOAD),
            sessions,
        }
    }

    fn one_or_many(&mut self, p: &[Seg], key: &str, v: &Option<OneOrMany>) -> Vec<String> {
        let list = match v {
            None => {
                self.err(k(p, key), format!("missing required key `{key}`"));
                return Vec::new();
            }
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(l)) => l.clone(),
        };
        if list.is_empty() || list.iter().any(|s| s.trim().is_empty() || s.contains('/')) {
            self.err(
                k(p, key),
                "must be a non-empty name or list of names, without `/`",
            );
        }
        list
    }
}

/// Names of route auth methods that no single request can satisfy together: a bearer
/// token and a SigV4 signature both travel in `Authorization`.
pub fn conflicting_auth(names: &[String]) -> bool {
    names.iter().any(|n| n.starts_with("jwt:")) && names.iter().any(|n| n == "sigv4")
}
