//! `[issuer.oauth2]`: the built-in OAuth2 client-credentials token service (issuer URL,
//! signing-keys folder, client registry, state folder, token lifetime, rate limits), raw
//! struct → [`Oauth2Config`]; and the rules that tie it to the rest of the file: a
//! `builtin = "oauth2"` upstream needs the section, a route's `auth = ["builtin"]` needs an
//! issuer builtin behind it, and `[auth.jwt.NAME] local_issuer = true` needs the section.
//!
//! The client registry (`clients_file`) is not part of the config: it is hot-reloaded on
//! its own (see `issuer::oauth2::registry`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::build::{ix, k, Builder, KeyPath, Seg};
use super::units::parse_duration;
use super::{Builtin, UpstreamConfig, UpstreamTarget};

/// `token_lifetime` when not given.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest and longest `token_lifetime` (Cognito's bounds for access tokens).
pub const TOKEN_LIFETIME_MIN: Duration = Duration::from_secs(5 * 60);
pub const TOKEN_LIFETIME_MAX: Duration = Duration::from_secs(24 * 3600);
/// `rate_limit` defaults: per registered client, per TCP peer address, and the burst.
pub const RATE_PER_CLIENT: &str = "20/s";
pub const RATE_PER_ADDRESS: &str = "50/s";
pub const RATE_BURST: u32 = 40;

#[derive(Debug, Default, Deserialize)]
pub struct RawIssuer {
    pub oauth2: Option<RawOauth2>,
    pub sessions: Option<super::sessions::RawSessions>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawOauth2 {
    pub issuer: Option<String>,
    pub keys: Option<String>,
    pub clients_file: Option<String>,
    pub state_dir: Option<String>,
    pub token_lifetime: Option<String>,
    pub rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRateLimit {
    pub per_client: Option<String>,
    pub per_address: Option<String>,
    pub burst: Option<u32>,
}

/// The validated `[issuer.oauth2]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Oauth2Config {
    /// `iss` of every token and `issuer` of the metadata (https, no query or fragment).
    pub issuer: String,
    /// Folder of signing keys (PEM private keys), hot-reloaded.
    pub keys: PathBuf,
    /// The client registry (TOML), hot-reloaded.
    pub clients_file: PathBuf,
    /// Where revocations are persisted (created 0700 at start when missing).
    pub state_dir: PathBuf,
    /// Lifetime of a token unless its client sets a shorter one.
    pub token_lifetime: Duration,
    pub rate_limit: RateLimit,
}

/// Token-endpoint limits: a token bucket per registered client and per TCP peer address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_client: Rate,
    pub per_address: Rate,
    /// Requests a bucket holds when full (how many may come at once).
    pub burst: u32,
}

/// `N/s`, `N/m` or `N/h`: N requests per period, sustained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || format!("\"{s}\" is not a rate: use N/s, N/m or N/h, e.g. \"20/s\"");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(format!("\"{s}\": the count must be at least 1"));
        }
        Ok(Rate { count, per })
    }

    /// Time between two requests at the sustained rate.
    pub fn interval(self) -> Duration {
        self.per / self.count
    }
}

impl Builder {
    pub(super) fn issuer(&mut self, raw: Option<&RawIssuer>) -> Option<Oauth2Config> {
        let o = raw?.oauth2.as_ref()?;
        let p = vec![Seg::Key("issuer".into()), Seg::Key("oauth2".into())];
        let issuer = self
            .required(&p, "issuer", &o.issuer)
            .unwrap_or_default()
            .to_owned();
        if !issuer.is_empty() {
            if let Err(why) = check_issuer_url(&issuer) {
                self.err(k(&p, "issuer"), why);
            }
        }
        let keys = self.path(&p, "keys", &o.keys);
        let clients_file = self.path(&p, "clients_file", &o.clients_file);
        let state_dir = self.path(&p, "state_dir", &o.state_dir);
        let token_lifetime = self.lifetime(k(&p, "token_lifetime"), &o.token_lifetime);
        let rp = k(&p, "rate_limit");
        let r = o.rate_limit.as_ref();
        let rate_limit = RateLimit {
            per_client: self.rate(
                k(&rp, "per_client"),
                r.and_then(|r| r.per_client.as_deref()),
                RATE_PER_CLIENT,
            ),
            per_address: self.rate(
                k(&rp, "per_address"),
                r.and_then(|r| r.per_address.as_deref()),
                RATE_PER_ADDRESS,
            ),
            burst: match r.and_then(|r| r.burst) {
                Some(0) => {
                    self.err(k(&rp, "burst"), "must be at least 1");
                    RATE_BURST
                }
                Some(b) => b,
                None => RATE_BURST,
            },
        };
        Some(Oauth2Config {
            issuer,
            keys,
            clients_file,
            state_dir,
            token_lifetime,
            rate_limit,
        })
    }

    /// A `builtin = "oauth2"` upstream serves `[issuer.oauth2]`: without it, nothing to serve.
    pub(super) fn check_issuer_builtins(
        &mut self,
        upstreams: &[UpstreamConfig],
        oauth2: Option<&Oauth2Config>,
    ) {
        if oauth2.is_some() {
            return;
        }
        for (i, u) in upstreams.iter().enumerate() {
            if u.target == UpstreamTarget::Builtin(Builtin::Oauth2) {
                self.err(
                    k(&ix(&[Seg::Key("upstream".into())], i), "builtin"),
                    "\"oauth2\" needs an [issuer.oauth2] section",
                );
            }
        }
    }

    /// A token lifetime within 5m..24h (also used for a client's `token_lifetime`).
    fn lifetime(&mut self, path: KeyPath, v: &Option<String>) -> Duration {
        let Some(s) = v else { return TOKEN_LIFETIME };
        match check_lifetime(s) {
            Ok(d) => d,
            Err(why) => {
                self.err(path, why);
                TOKEN_LIFETIME
            }
        }
    }

    fn rate(&mut self, path: KeyPath, v: Option<&str>, default: &str) -> Rate {
        let fallback = Rate {
            count: 1,
            per: Duration::from_secs(1),
        };
        match Rate::parse(v.unwrap_or(default)) {
            Ok(r) => r,
            Err(why) => {
                self.err(path, why);
                Rate::parse(default).unwrap_or(fallback)
            }
        }
    }
}

/// A lifetime text within [`TOKEN_LIFETIME_MIN`]..[`TOKEN_LIFETIME_MAX`].
pub fn check_lifetime(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < TOKEN_LIFETIME_MIN || d > TOKEN_LIFETIME_MAX {
        return Err(format!("\"{s}\" is outside 5m..24h"));
    }
    Ok(d)
}

/// RFC 8414 §2: https, a host, no query or fragment.
fn check_issuer_url(url: &str) -> Result<(), String> {
    if url.contains('#') || url.contains('?') {
        return Err(format!("\"{url}\" must not have a query or fragment"));
    }
    let uri: http::Uri = url.parse().map_err(|_| format!("\"{url}\" is not a URL"))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none_or(str::is_empty) {
        return Err(format!(
            "\"{url}\" must be an https URL, e.g. \"https://auth.example.test\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{parse, AuthMethod, Builtin, Config, ConfigError, UpstreamTarget};

    const BASE: &str = r#"
[[listener]]
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key"
client_auth = "optional"

[truststore]
dir = "truststore"

[[upstream]]
name = "auth"
builtin = "oauth2"

[[upstream]]
name = "echo"
builtin = "echo"
"#;

    const ISSUER: &str = "[issuer.oauth2]\nissuer = \"https://auth.example.test\"\nkeys = \"oauth-keys\"\nclients_file = \"oauth-clients.toml\"\nstate_dir = \"state\"\n";

    fn load(extra: &str) -> Result<Config, ConfigError> {
        parse(
            &format!("{BASE}\n{extra}"),
            Path::new("/etc/portcullis/gw.toml"),
        )
    }

    fn messages(extra: &str) -> String {
        load(extra).unwrap_err().to_string()
    }

    const ROUTES: &str = "[[route]]\nname = \"auth\"\npath_prefix = \"/oauth2\"\nupstream = \"auth\"\nauth = [\"builtin\"]\n\n[[route]]\nname = \"api\"\nupstream = \"echo\"\nauth = [\"mtls\", \"jwt:local\"]\n\n[auth.jwt.local]\nlocal_issuer = true\n";

    #[test]
    fn issuer_builtin_routes_and_local_provider_build_with_defaults() {
        let c = load(&format!("{ROUTES}\n{ISSUER}")).unwrap();
        let o = c.oauth2.as_ref().unwrap();
        assert_eq!(o.issuer, "https://auth.example.test");
        assert_eq!(o.keys, Path::new("/etc/portcullis/oauth-keys"));
        assert_eq!(o.state_dir, Path::new("/etc/portcullis/state"));
        assert_eq!(o.token_lifetime, Duration::from_secs(3600));
        assert_eq!(o.rate_limit.burst, 40);
        assert_eq!(
            o.rate_limit.per_client.interval(),
            Duration::from_millis(50)
        );
        assert_eq!(
            c.upstreams[0].target,
            UpstreamTarget::Builtin(Builtin::Oauth2)
        );
        assert_eq!(c.routes[0].auth, vec![AuthMethod::Builtin]);
        let j = &c.jwt[0];
        assert_eq!(j.issuer, "https://auth.example.test");
        assert_eq!(j.jwks, crate::config::JwksSource::Local);
        assert!(j.audiences.is_empty());
    }

    #[test]
    fn bad_issuer_keys_are_reported_with_their_key() {
        let m = messages(&format!(
            "{ROUTES}\n[issuer.oauth2]\nissuer = \"http://auth.example.test/?x=1\"\nkeys = \"k\"\ntoken_lifetime = \"2m\"\nrate_limit = {{ per_client = \"fast\", burst = 0 }}\nstatedir = \"s\"\n"
        ));
        assert!(
            m.contains(
                "issuer.oauth2.issuer: \"http://auth.example.test/?x=1\" must not have a query"
            ),
            "{m}"
        );
        assert!(
            m.contains("issuer.oauth2.clients_file: missing required key `clients_file`"),
            "{m}"
        );
        assert!(
            m.contains("issuer.oauth2.token_lifetime: \"2m\" is outside 5m..24h"),
            "{m}"
        );
        assert!(
            m.contains("issuer.oauth2.rate_limit.per_client: \"fast\" is not a rate"),
            "{m}"
        );
        assert!(
            m.contains("issuer.oauth2.rate_limit.burst: must be at least 1"),
            "{m}"
        );
        assert!(
            m.contains("unknown key `statedir`; did you mean `state_dir`?"),
            "{m}"
        );
        assert!(m.contains("gw.toml:"), "line numbers: {m}");
    }

    #[test]
    fn builtin_auth_and_local_issuer_need_the_issuer() {
        let m = messages(
            "[[route]]\nname = \"a\"\nupstream = \"echo\"\nauth = [\"builtin\"]\n\n[[route]]\nname = \"b\"\npath_prefix = \"/b\"\nupstream = \"auth\"\nauth = [\"builtin\", \"jwt:local\"]\n\n[auth.jwt.local]\nlocal_issuer = true\njwks_url = \"http://127.0.0.1:1/jwks\"\njwks_ca = \"ca.pem\"\n",
        );
        assert!(m.contains("route[0].auth: \"builtin\" is allowed only when the route's upstream is an issuer builtin"), "{m}");
        assert!(
            m.contains("route[1].auth: \"builtin\" goes alone or with \"mtls\""),
            "{m}"
        );
        assert!(
            m.contains("upstream[0].builtin: \"oauth2\" needs an [issuer.oauth2] section"),
            "{m}"
        );
        assert!(
            m.contains("auth.jwt.local.local_issuer: needs an [issuer.oauth2] section"),
            "{m}"
        );
        let m = messages(&format!(
            "{ISSUER}\n[[route]]\nname = \"a\"\nupstream = \"auth\"\n\n[auth.jwt.local]\nlocal_issuer = true\nissuer = \"https://other.test\"\njwks_url = \"http://127.0.0.1:1/jwks\"\njwks_ca = \"ca.pem\"\n"
        ));
        assert!(
            m.contains("auth.jwt.local.issuer: \"https://other.test\" differs"),
            "{m}"
        );
        assert!(
            m.contains("auth.jwt.local.jwks_url: is refused with local_issuer"),
            "{m}"
        );
        assert!(
            m.contains("auth.jwt.local.jwks_ca: is refused with local_issuer"),
            "{m}"
        );
    }
}
