//! `[issuer.sessions]`: the Roles Anywhere-compatible session issuer (sealing-keys folder,
//! state folder, region and account of the ARNs, trust anchors, profiles and roles), raw
//! structs → [`SessionsConfig`]; and the rules that tie it to the rest of the file: a
//! `builtin = "rolesanywhere"` upstream and `[auth.sigv4] sessions = true` need the
//! section, and the two issuers never share a keys folder.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::build::{ix, k, Builder, Seg};
use super::defaults as d;
use super::file::RawAllow;
use super::{AllowRule, Builtin, Oauth2Config, TruststoreConfig, UpstreamConfig, UpstreamTarget};

/// `durationSeconds` bounds (Roles Anywhere's) and default.
pub const SESSION_DURATION_MIN: Duration = Duration::from_secs(900);
pub const SESSION_DURATION_MAX: Duration = Duration::from_secs(43200);
pub const SESSION_DURATION_DEFAULT: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Deserialize)]
pub struct RawSessions {
    pub keys: Option<String>,
    pub state_dir: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub max_skew: Option<String>,
    #[serde(default)]
    pub trust_anchor: Vec<RawTrustAnchor>,
    #[serde(default)]
    pub profile: Vec<RawProfile>,
    #[serde(default)]
    pub role: Vec<RawRole>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTrustAnchor {
    pub name: Option<String>,
    pub truststore: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawProfile {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    pub max_duration: Option<String>,
    pub accept_role_session_name: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRole {
    pub name: Option<String>,
    #[serde(default)]
    pub allow: Vec<RawAllow>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The validated `[issuer.sessions]`.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Folder of 256-bit sealing keys, hot-reloaded; the newest seals.
    pub keys: PathBuf,
    /// Where session revocations are persisted.
    pub state_dir: PathBuf,
    pub region: String,
    /// 12 digits.
    pub account: String,
    /// Max difference between `X-Amz-Date` of a CreateSession and the gateway clock.
    pub max_skew: Duration,
    pub trust_anchors: Vec<TrustAnchorConfig>,
    pub profiles: Vec<ProfileConfig>,
    pub roles: Vec<RoleConfig>,
}

#[derive(Debug, Clone)]
pub struct TrustAnchorConfig {
    pub name: String,
    /// A truststore folder, verified with the `[truststore]` settings (revocation, depth).
    pub truststore: TruststoreConfig,
}

#[derive(Debug, Clone)]
pub struct ProfileConfig {
    pub name: String,
    pub roles: Vec<String>,
    /// Longest `durationSeconds` accepted (at most 12 h).
    pub max_duration: Duration,
    pub accept_role_session_name: bool,
}

#[derive(Debug, Clone)]
pub struct RoleConfig {
    pub name: String,
    /// Which certificates may assume the role (certificate fields only).
    pub allow: Vec<AllowRule>,
    pub attributes: BTreeMap<String, String>,
}

impl SessionsConfig {
    pub fn trust_anchor_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:rolesanywhere:{}:{}:trust-anchor/{name}",
            self.region, self.account
        )
    }

    pub fn profile_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:rolesanywhere:{}:{}:profile/{name}",
            self.region, self.account
        )
    }

    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.account)
    }
}

/// A name usable as the last segment of an ARN.
fn check_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'=' | b'@')
        })
}

impl Builder {
    pub(super) fn sessions(
        &mut self,
        raw: Option<&RawSessions>,
        truststore: &TruststoreConfig,
    ) -> Option<SessionsConfig> {
        let s = raw?;
        let p = vec![Seg::Key("issuer".into()), Seg::Key("sessions".into())];
        let keys = self.path(&p, "keys", &s.keys);
        let state_dir = self.path(&p, "state_dir", &s.state_dir);
        let region = self
            .required(&p, "region", &s.region)
            .unwrap_or_default()
            .to_owned();
        if !region.is_empty()
            && !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.err(
                k(&p, "region"),
                format!("\"{region}\" is not a region name, e.g. \"us-east-1\""),
            );
        }
        let account = self
            .required(&p, "account", &s.account)
            .unwrap_or_default()
            .to_owned();
        if !account.is_empty()
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            self.err(k(&p, "account"), format!("\"{account}\" must be 12 digits"));
        }
        let max_skew = self.duration(k(&p, "max_skew"), &s.max_skew, d::SIGV4_MAX_SKEW);

        let tp = k(&p, "trust_anchor");
        if s.trust_anchor.is_empty() {
            self.err(
                tp.clone(),
                "at least one [[issuer.sessions.trust_anchor]] is required",
            );
        }
        let mut trust_anchors = Vec::new();
        for (i, t) in s.trust_anchor.iter().enumerate() {
            let at = ix(&tp, i);
            let name = self.arn_name(&at, &t.name);
            let dir = self.path(&at, "truststore", &t.truststore);
            trust_anchors.push(TrustAnchorConfig {
                name,
                truststore: TruststoreConfig {
                    dir,
                    crl_fetch: Vec::new(),
                    ..truststore.clone()
                },
            });
        }
        self.unique(&tp, trust_anchors.iter().map(|t| t.name.as_str()));

        let rp = k(&p, "role");
        let mut roles = Vec::new();
        for (i, r) in s.role.iter().enumerate() {
            let at = ix(&rp, i);
            let name = self.arn_name(&at, &r.name);
            let allow = self.allow_rules(&k(&at, "allow"), &r.allow);
            for (j, a) in allow.iter().enumerate() {
                if a.principal.is_some() || a.role.is_some() {
                    self.err(
                        ix(&k(&at, "allow"), j),
                        "a role's allow names certificates: use uri_san, dns_san, subject_cn or issuer_cn",
                    );
                }
            }
            roles.push(RoleConfig {
                name,
                allow,
                attributes: r.attributes.clone(),
            });
        }
        self.unique(&rp, roles.iter().map(|r| r.name.as_str()));

        let pp = k(&p, "profile");
        let mut profiles = Vec::new();
        for (i, pr) in s.profile.iter().enumerate() {
            let at = ix(&pp, i);
            let name = self.arn_name(&at, &pr.name);
            let list = pr.roles.clone().unwrap_or_default();
            if list.is_empty() {
                self.err(
                    k(&at, "roles"),
                    "must name at least one [[issuer.sessions.role]]",
                );
            }
            for (j, role) in list.iter().enumerate() {
                if !roles.iter().any(|r| &r.name == role) {
                    self.err(
                        ix(&k(&at, "roles"), j),
                        format!("\"{role}\" is not an [[issuer.sessions.role]]"),
                    );
                }
            }
            let mut max_duration = self.duration(
                k(&at, "max_duration"),
                &pr.max_duration,
                SESSION_DURATION_MAX,
            );
            if max_duration < SESSION_DURATION_MIN || max_duration > SESSION_DURATION_MAX {
                self.err(k(&at, "max_duration"), "must be within 15m..12h");
                max_duration = SESSION_DURATION_MAX;
            }
            profiles.push(ProfileConfig {
                name,
                roles: list,
                max_duration,
                accept_role_session_name: pr.accept_role_session_name.unwrap_or(false),
            });
        }
        self.unique(&pp, profiles.iter().map(|p| p.name.as_str()));

        Some(SessionsConfig {
            keys,
            state_dir,
            region,
            account,
            max_skew,
            trust_anchors,
            profiles,
            roles,
        })
    }

    fn arn_name(&mut self, at: &[Seg], v: &Option<String>) -> String {
        let name = self.required(at, "name", v).unwrap_or_default().to_owned();
        if !name.is_empty() && !check_name(&name) {
            self.err(
                k(at, "name"),
                format!(
                    "\"{name}\" is not a name for an ARN (letters, digits and -_.+=@, at most 64)"
                ),
            );
        }
        name
    }

    fn unique<'a>(&mut self, table: &[Seg], names: impl Iterator<Item = &'a str>) {
        let mut seen = HashSet::new();
        for (i, n) in names.enumerate() {
            if !n.is_empty() && !seen.insert(n) {
                self.err(
                    k(&ix(table, i), "name"),
                    format!("another entry is already named `{n}`"),
                );
            }
        }
    }

    /// A `builtin = "rolesanywhere"` upstream, or `[auth.sigv4] sessions = true`, needs
    /// `[issuer.sessions]`; the two issuers never share a keys folder (an OAuth2 signing
    /// key is not a sealing key, and a rotation of one must not touch the other).
    pub(super) fn check_sessions(
        &mut self,
        upstreams: &[UpstreamConfig],
        sessions: Option<&SessionsConfig>,
        oauth2: Option<&Oauth2Config>,
        sigv4_sessions: bool,
    ) {
        if let (Some(s), Some(o)) = (sessions, oauth2) {
            if !s.keys.as_os_str().is_empty() && same_folder(&s.keys, &o.keys) {
                self.err(
                    vec![
                        Seg::Key("issuer".into()),
                        Seg::Key("sessions".into()),
                        Seg::Key("keys".into()),
                    ],
                    format!(
                        "{} is also [issuer.oauth2] keys: give each issuer its own folder",
                        s.keys.display()
                    ),
                );
            }
        }
        if sessions.is_some() {
            return;
        }
        if sigv4_sessions {
            self.err(
                vec![
                    Seg::Key("auth".into()),
                    Seg::Key("sigv4".into()),
                    Seg::Key("sessions".into()),
                ],
                "needs an [issuer.sessions] section",
            );
        }
        for (i, u) in upstreams.iter().enumerate() {
            if u.target == UpstreamTarget::Builtin(Builtin::Rolesanywhere) {
                self.err(
                    k(&ix(&[Seg::Key("upstream".into())], i), "builtin"),
                    "\"rolesanywhere\" needs an [issuer.sessions] section",
                );
            }
        }
    }
}

/// The same folder, also through `..`, symlinks or a trailing `/`.
fn same_folder(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => {
            let norm = |p: &std::path::Path| p.components().collect::<PathBuf>();
            norm(a) == norm(b)
        }
    }
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
revocation = "end-entity"

[[upstream]]
name = "rolesanywhere"
builtin = "rolesanywhere"

[[upstream]]
name = "echo"
builtin = "echo"

[[route]]
name = "sessions"
path_prefix = "/sessions"
upstream = "rolesanywhere"
auth = ["builtin"]

[[route]]
name = "api"
path_prefix = "/api"
upstream = "echo"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "orders-*"
"#;

    const SESSIONS: &str = r#"
[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true

[issuer.sessions]
keys = "session-keys"
state_dir = "state"
region = "us-east-1"
account = "000000000000"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "fleet-truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["orders-reader"]
max_duration = "2h"

[[issuer.sessions.role]]
name = "orders-reader"
allow = [{ uri_san = "spiffe://example.test/workers/*" }]
attributes = { team = "orders" }
"#;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        parse(
            &format!("{BASE}\n{extra}"),
            Path::new("/etc/portcullis/gw.toml"),
        )
    }

    fn messages(extra: &str) -> String {
        load(extra).unwrap_err().to_string()
    }

    #[test]
    fn sessions_section_builds_with_defaults_and_arns() {
        let c = load(SESSIONS).unwrap();
        let s = c.sessions.as_ref().unwrap();
        assert_eq!(s.keys, Path::new("/etc/portcullis/session-keys"));
        assert_eq!(s.max_skew, Duration::from_secs(300));
        let t = &s.trust_anchors[0];
        assert_eq!(
            t.truststore.dir,
            Path::new("/etc/portcullis/fleet-truststore")
        );
        assert_eq!(t.truststore.revocation, c.truststore.revocation);
        assert_eq!(s.profiles[0].max_duration, Duration::from_secs(7200));
        assert!(!s.profiles[0].accept_role_session_name);
        assert_eq!(s.roles[0].attributes["team"], "orders");
        assert_eq!(
            s.roles[0].allow[0].uri_san.as_deref(),
            Some("spiffe://example.test/workers/*")
        );
        assert_eq!(
            s.trust_anchor_arn("fleet"),
            "arn:aws:rolesanywhere:us-east-1:000000000000:trust-anchor/fleet"
        );
        assert_eq!(
            s.profile_arn("workers"),
            "arn:aws:rolesanywhere:us-east-1:000000000000:profile/workers"
        );
        assert_eq!(
            s.role_arn("orders-reader"),
            "arn:aws:iam::000000000000:role/orders-reader"
        );
        let sig = c.sigv4.as_ref().unwrap();
        assert!(sig.sessions && sig.credentials_file.is_none());
        assert_eq!(
            c.upstreams[0].target,
            UpstreamTarget::Builtin(Builtin::Rolesanywhere)
        );
        assert_eq!(c.routes[0].auth, vec![AuthMethod::Builtin]);
        assert_eq!(c.routes[1].allow[0].role.as_deref(), Some("orders-*"));
    }

    #[test]
    fn bad_sessions_keys_are_reported_with_their_key() {
        let m = messages(
            "[issuer.sessions]\nkeys = \"k\"\nregion = \"US East\"\naccount = \"123\"\nstatedir = \"s\"\n[[issuer.sessions.profile]]\nname = \"p\"\nroles = [\"nope\"]\nmax_duration = \"13h\"\n[[issuer.sessions.role]]\nname = \"r/x\"\nallow = [{ principal = \"a\" }]\n[[issuer.sessions.role]]\nname = \"dup\"\n[[issuer.sessions.role]]\nname = \"dup\"\n",
        );
        for want in [
            "issuer.sessions.state_dir: missing required key `state_dir`",
            "issuer.sessions.region: \"US East\" is not a region name",
            "issuer.sessions.account: \"123\" must be 12 digits",
            "issuer.sessions.trust_anchor: at least one",
            "issuer.sessions.profile[0].roles[0]: \"nope\" is not an [[issuer.sessions.role]]",
            "issuer.sessions.profile[0].max_duration: must be within 15m..12h",
            "issuer.sessions.role[0].name: \"r/x\" is not a name for an ARN",
            "issuer.sessions.role[0].allow[0]: a role's allow names certificates",
            "issuer.sessions.role[2].name: another entry is already named `dup`",
            "unknown key `statedir`; did you mean `state_dir`?",
        ] {
            assert!(m.contains(want), "{want}\n{m}");
        }
    }

    #[test]
    fn builtin_and_sigv4_sessions_need_the_section_and_a_folder_of_their_own() {
        let m =
            messages("[auth.sigv4]\nregion = \"us-east-1\"\nservice = \"s\"\nsessions = true\n");
        assert!(
            m.contains("auth.sigv4.sessions: needs an [issuer.sessions] section"),
            "{m}"
        );
        assert!(
            m.contains("upstream[0].builtin: \"rolesanywhere\" needs an [issuer.sessions] section"),
            "{m}"
        );
        let m = messages(&format!(
            "{SESSIONS}\n[issuer.oauth2]\nissuer = \"https://auth.example.test\"\nkeys = \"./session-keys/\"\nclients_file = \"c.toml\"\nstate_dir = \"state\"\n"
        ));
        assert!(
            m.contains(
                "issuer.sessions.keys: /etc/portcullis/session-keys is also [issuer.oauth2] keys"
            ),
            "{m}"
        );
        // Without sessions, credentials_file stays required.
        let m = messages("[auth.sigv4]\nregion = \"us-east-1\"\nservice = \"s\"\n");
        assert!(
            m.contains("auth.sigv4.credentials_file: missing required key"),
            "{m}"
        );
    }
}
