//! `[reload]` (how the gateway notices changed files) and `[identity_cache]` (the
//! verified-identity cache): raw structs, typed structs and their builder; the typed
//! structs are re-exported from `config`.

use std::time::Duration;

use serde::Deserialize;

use super::build::{k, Builder, Seg};
use super::defaults as d;

#[derive(Debug, Default, Deserialize)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub debounce: Option<String>,
    pub poll_interval: Option<String>,
    pub expiry_warning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawIdentityCache {
    pub capacity: Option<u64>,
    pub ttl: Option<String>,
}

/// When a reload happens besides `POST /reload` and SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadConfig {
    /// Watch the config file, the truststore folder and the listeners' certificate files.
    pub watch: bool,
    /// Quiet time after the last file event before reloading (editors write in bursts).
    pub debounce: Duration,
    /// Every this often, the files are compared with what was last loaded (fallback for
    /// filesystems that miss events, e.g. some network and container mounts).
    pub poll_interval: Duration,
    /// Warn in the log when a CA expires, or a CRL's nextUpdate passes, within this window.
    pub expiry_warning: Duration,
}

/// Verified-identity cache bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityCacheConfig {
    /// Max entries (distinct client chains); 0 turns the cache off.
    pub capacity: u64,
    /// Longest life of one entry (it also ends at the chain's notAfter and CRL nextUpdate).
    pub ttl: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: d::RELOAD_WATCH,
            debounce: d::RELOAD_DEBOUNCE,
            poll_interval: d::RELOAD_POLL_INTERVAL,
            expiry_warning: d::EXPIRY_WARNING,
        }
    }
}

impl Default for IdentityCacheConfig {
    fn default() -> Self {
        IdentityCacheConfig {
            capacity: d::IDENTITY_CACHE_CAPACITY,
            ttl: d::IDENTITY_CACHE_TTL,
        }
    }
}

impl Builder {
    pub(super) fn reload(&mut self, r: Option<&RawReload>) -> ReloadConfig {
        let Some(r) = r else {
            return ReloadConfig::default();
        };
        let p = [Seg::Key("reload".into())];
        let debounce = self.duration(k(&p, "debounce"), &r.debounce, d::RELOAD_DEBOUNCE);
        if debounce > d::RELOAD_DEBOUNCE_MAX {
            self.err(
                k(&p, "debounce"),
                format!(
                    "must be at most {} (a longer wait delays revocation)",
                    humantime::format_duration(d::RELOAD_DEBOUNCE_MAX)
                ),
            );
        }
        ReloadConfig {
            watch: r.watch.unwrap_or(d::RELOAD_WATCH),
            debounce: debounce.min(d::RELOAD_DEBOUNCE_MAX),
            poll_interval: self.duration(
                k(&p, "poll_interval"),
                &r.poll_interval,
                d::RELOAD_POLL_INTERVAL,
            ),
            expiry_warning: self.duration(
                k(&p, "expiry_warning"),
                &r.expiry_warning,
                d::EXPIRY_WARNING,
            ),
        }
    }

    pub(super) fn identity_cache(&mut self, c: Option<&RawIdentityCache>) -> IdentityCacheConfig {
        let Some(c) = c else {
            return IdentityCacheConfig::default();
        };
        let p = [Seg::Key("identity_cache".into())];
        let capacity = c.capacity.unwrap_or(d::IDENTITY_CACHE_CAPACITY);
        if capacity > d::IDENTITY_CACHE_CAPACITY_MAX {
            self.err(
                k(&p, "capacity"),
                format!("must be at most {} entries", d::IDENTITY_CACHE_CAPACITY_MAX),
            );
        }
        IdentityCacheConfig {
            capacity: capacity.min(d::IDENTITY_CACHE_CAPACITY_MAX),
            ttl: self.duration(k(&p, "ttl"), &c.ttl, d::IDENTITY_CACHE_TTL),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{parse, IdentityCacheConfig, ReloadConfig};

    const BASE: &str = "[[listener]]\naddress = \"127.0.0.1:8443\"\ncert = \"s.pem\"\nkey = \"s.key\"\n\n[truststore]\ndir = \"ts\"\n\n[[upstream]]\nname = \"u\"\nbuiltin = \"echo\"\n\n[[route]]\nname = \"r\"\nupstream = \"u\"\n";

    fn with(extra: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        parse(&format!("{BASE}\n{extra}"), Path::new("/etc/p/gw.toml"))
    }

    #[test]
    fn defaults_when_absent() {
        let c = with("").unwrap();
        assert_eq!(c.reload, ReloadConfig::default());
        assert!(c.reload.watch);
        assert_eq!(c.reload.debounce, Duration::from_millis(200));
        assert_eq!(c.identity_cache, IdentityCacheConfig::default());
        assert_eq!(c.identity_cache.capacity, 100_000);
    }

    #[test]
    fn values_are_read() {
        let c = with("[reload]\nwatch = false\ndebounce = \"50ms\"\npoll_interval = \"1m\"\nexpiry_warning = \"30d\"\n\n[identity_cache]\ncapacity = 0\nttl = \"10s\"\n").unwrap();
        assert!(!c.reload.watch);
        assert_eq!(c.reload.debounce, Duration::from_millis(50));
        assert_eq!(c.reload.poll_interval, Duration::from_secs(60));
        assert_eq!(c.reload.expiry_warning, Duration::from_secs(30 * 86400));
        assert_eq!(c.identity_cache.capacity, 0);
        assert_eq!(c.identity_cache.ttl, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = with("[reload]\ndebounce = \"1h\"\npoll_interval = \"0s\"\nwatchh = true\n\n[identity_cache]\nttl = \"soon\"\n")
            .unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "reload.debounce",
            "reload.poll_interval",
            "reload.watchh",
            "identity_cache.ttl",
        ] {
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        assert!(e.to_string().contains("did you mean `watch`"), "{e}");
    }
}
