//! `[cluster]`: the Redis that a fleet of gateways shares for revocations and the token
//! endpoint's rate limits. Optional; without it every instance keeps its own state.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::build::{k, Builder, KeyPath, Seg};
use super::defaults as d;
use super::resolve;

#[derive(Debug, Default, Deserialize)]
pub struct RawCluster {
    pub redis_url: Option<String>,
    pub key_prefix: Option<String>,
    pub tls: Option<RawClusterTls>,
    pub timeout: Option<String>,
}

/// `tls = { ca, cert, key }`: the upstream `tls` form (without `server_name`: the URL's
/// host is the name checked).
#[derive(Debug, Default, Deserialize)]
pub struct RawClusterTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `[cluster]`, validated.
#[derive(Clone, PartialEq)]
pub struct ClusterConfig {
    /// `redis://` or `rediss://` (host, port, database, credentials).
    pub redis_url: String,
    /// Put before every Redis key and channel name, so fleets can share one Redis.
    pub key_prefix: String,
    /// CA (and client certificate) for `rediss://`.
    pub tls: Option<ClusterTls>,
    /// Per Redis operation on the token endpoint; also how long a start waits for Redis.
    pub timeout: Duration,
}

/// The URL may carry a password: never print it.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis", &redacted(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTls {
    pub ca: PathBuf,
    /// Client certificate and key, for mTLS to Redis (both or neither).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The URL without its user and password (for logs).
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".to_owned(),
    }
}

impl Builder {
    pub(super) fn cluster(&mut self, raw: Option<&RawCluster>) -> Option<ClusterConfig> {
        let c = raw?;
        let p: KeyPath = vec![Seg::Key("cluster".into())];
        let redis_url = self
            .required(&p, "redis_url", &c.redis_url)
            .unwrap_or_default()
            .to_owned();
        let secure = redis_url.starts_with("rediss://");
        if !redis_url.is_empty() {
            if let Err(why) = check_url(&redis_url) {
                self.err(k(&p, "redis_url"), why);
            }
        }
        let key_prefix = c
            .key_prefix
            .clone()
            .unwrap_or_else(|| d::CLUSTER_KEY_PREFIX.to_owned());
        if key_prefix.is_empty()
            || key_prefix.len() > 64
            || key_prefix
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            self.err(
                k(&p, "key_prefix"),
                "must be 1 to 64 characters without spaces, e.g. \"portcullis:\"",
            );
        }
        let tls = match (&c.tls, secure) {
            (None, true) => {
                self.err(
                    k(&p, "tls"),
                    "a rediss:// URL needs `tls = { ca = \"redis-ca.pem\" }` (and cert/key for mTLS)",
                );
                None
            }
            (Some(_), false) if !redis_url.is_empty() => {
                self.err(
                    k(&p, "tls"),
                    "`tls` needs a rediss:// URL (redis:// is plain TCP)",
                );
                None
            }
            (None, _) | (Some(_), false) => None,
            (Some(t), true) => {
                let tp = k(&p, "tls");
                if t.cert.is_some() != t.key.is_some() {
                    self.err(
                        tp.clone(),
                        "`cert` and `key` go together: give both for mTLS to Redis, or neither",
                    );
                }
                Some(ClusterTls {
                    ca: self.path(&tp, "ca", &t.ca),
                    cert: t.cert.as_deref().map(|f| resolve(&self.base, f)),
                    key: t.key.as_deref().map(|f| resolve(&self.base, f)),
                })
            }
        };
        let mut timeout = self.duration(k(&p, "timeout"), &c.timeout, d::CLUSTER_TIMEOUT);
        if timeout > d::CLUSTER_TIMEOUT_MAX {
            self.err(
                k(&p, "timeout"),
                "must be at most 5s: the token endpoint waits this long for Redis",
            );
            timeout = d::CLUSTER_TIMEOUT;
        }
        Some(ClusterConfig {
            redis_url,
            key_prefix,
            tls,
            timeout,
        })
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let shown = redacted(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "\"{shown}\" is not a URL: use redis://host:port/db or rediss://host:port/db"
        ));
    };
    if scheme != "redis" && scheme != "rediss" {
        return Err(format!(
            "\"{scheme}://\" is not supported: use redis:// or rediss://"
        ));
    }
    if rest.contains('#') {
        return Err(format!(
            "\"{shown}\": a #fragment (such as #insecure) is not supported: Redis's certificate is always verified against cluster.tls.ca"
        ));
    }
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("\"{shown}\" has no host"));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("\"{shown}\": {e}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse as parse_at, Config, ConfigError, ConfigProblem};

    const BASE: &str = "[[listener]]\naddress = \"127.0.0.1:8443\"\ncert = \"s.pem\"\nkey = \"s.key\"\n\n[truststore]\ndir = \"t\"\n\n[[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n[[route]]\nname = \"r\"\nupstream = \"echo\"\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_at(text, Path::new("/etc/portcullis/gw.toml"))
    }

    fn problems(text: &str) -> Vec<ConfigProblem> {
        parse(text).err().map(|e| e.problems).unwrap_or_default()
    }

    fn with(section: &str) -> String {
        format!("{BASE}\n[cluster]\n{section}\n")
    }

    #[test]
    fn a_cluster_section_gets_its_defaults() {
        let c = parse(&with("redis_url = \"redis://127.0.0.1:6379/0\""))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.key_prefix, "portcullis:");
        assert_eq!(c.timeout, std::time::Duration::from_millis(200));
        assert!(c.tls.is_none());
        let c = parse(&with(
            "redis_url = \"rediss://:pw@redis.internal:6380\"\ntls = { ca = \"ca.pem\", cert = \"gw.pem\", key = \"gw.key\" }",
        ))
        .unwrap()
        .cluster
        .unwrap();
        let tls = c.tls.as_ref().unwrap();
        assert_eq!(tls.ca, std::path::Path::new("/etc/portcullis/ca.pem"));
        assert!(
            !format!("{c:?}").contains("pw"),
            "the password is not printed"
        );
    }

    #[test]
    fn bad_cluster_values_are_refused_naming_the_key() {
        for (section, key, words) in [
            (
                "key_prefix = \"x\"",
                "cluster.redis_url",
                "missing required key",
            ),
            (
                "redis_url = \"http://127.0.0.1:6379\"",
                "cluster.redis_url",
                "redis:// or rediss://",
            ),
            (
                "redis_url = \"redis://\"",
                "cluster.redis_url",
                "has no host",
            ),
            (
                "redis_url = \"rediss://r:6380\"",
                "cluster.tls",
                "needs `tls",
            ),
            (
                "redis_url = \"redis://r\"\ntls = { ca = \"ca.pem\" }",
                "cluster.tls",
                "needs a rediss://",
            ),
            (
                "redis_url = \"rediss://r:6380/#insecure\"\ntls = { ca = \"ca.pem\" }",
                "cluster.redis_url",
                "always verified",
            ),
            (
                "redis_url = \"rediss://r\"\ntls = { ca = \"ca.pem\", cert = \"c.pem\" }",
                "cluster.tls",
                "go together",
            ),
            (
                "redis_url = \"rediss://r\"\ntls = { cert = \"c.pem\", key = \"k\" }",
                "cluster.tls.ca",
                "missing required key",
            ),
            (
                "redis_url = \"redis://r\"\ntimeout = \"10s\"",
                "cluster.timeout",
                "at most 5s",
            ),
            (
                "redis_url = \"redis://r\"\ntimeout = \"soon\"",
                "cluster.timeout",
                "",
            ),
            (
                "redis_url = \"redis://r\"\nkey_prefix = \"a b\"",
                "cluster.key_prefix",
                "without spaces",
            ),
            (
                "redis_url = \"redis://r\"\ntls_ca = \"x\"",
                "cluster.tls_ca",
                "unknown key",
            ),
            (
                "redis_url = \"rediss://r\"\ntls = { ca = \"c\", server_name = \"r\" }",
                "cluster.tls.server_name",
                "unknown key",
            ),
        ] {
            let text = with(section);
            let ps = problems(&text);
            assert!(
                ps.iter().any(|p| p.key == key && p.message.contains(words)),
                "{section}: {ps:?}"
            );
        }
    }
}
