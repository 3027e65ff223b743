//! `[auth.jwt.NAME]`: a JWT access-token provider (an OAuth2 authorization server such as
//! Amazon Cognito, Keycloak or Auth0) whose tokens routes accept with `auth = ["jwt:NAME"]`.
//!
//! Raw serde struct, typed struct and the builder code that turns one into the other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::build::{k, Builder, KeyPath, Seg};
use super::defaults as d;
use super::file::{RawAuth, Size};
use super::resolve;
use super::units::parse_duration;

#[derive(Debug, Default, Deserialize)]
pub struct RawJwt {
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub token_use: Option<String>,
    pub leeway: Option<String>,
    pub max_token_size: Option<Size>,
    pub refresh: Option<String>,
    pub forward_claims: Option<BTreeMap<String, String>>,
    pub require_certificate_binding: Option<bool>,
    pub forward_token: Option<bool>,
    pub jwks_ca: Option<String>,
    pub kid_miss_refetch_interval: Option<String>,
    /// Use `[issuer.oauth2]` directly: its keys and revocations, no JWKS fetch.
    pub local_issuer: Option<bool>,
}

impl JwtConfig {
    /// The key its key set comes from (`auth.jwt.NAME.jwks_url`, `.jwks_file` or
    /// `.local_issuer`), where a problem with the key set is reported.
    pub fn source_key(&self) -> String {
        let source = match self.jwks {
            JwksSource::Url(_) => "jwks_url",
            JwksSource::File(_) => "jwks_file",
            JwksSource::Local => "local_issuer",
        };
        format!("auth.jwt.{}.{source}", self.name)
    }
}

/// One validated provider.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub name: String,
    /// Exact `iss` value tokens must carry.
    pub issuer: String,
    pub jwks: JwksSource,
    /// Signature algorithms accepted (never `none` or HMAC).
    pub algorithms: Vec<JwtAlg>,
    /// `aud` (or `client_id` when the token has no `aud`) must be one of these.
    pub audiences: Vec<String>,
    pub token_use: Option<String>,
    pub leeway: Duration,
    pub max_token_size: usize,
    /// Background JWKS refresh period (URL) or poll period (file).
    pub refresh: Duration,
    /// Claim name → request header set from it.
    pub forward_claims: Vec<(String, HeaderName)>,
    pub require_certificate_binding: bool,
    /// Send the client's `Authorization: Bearer` on to the backend (default: removed, so
    /// a backend cannot replay the client's token; Envoy's `forward` defaults to false).
    pub forward_token: bool,
    /// CA bundle for an https `jwks_url`.
    pub jwks_ca: Option<PathBuf>,
    pub kid_miss_refetch_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
    /// `local_issuer = true`: the keys and revocations of this gateway's `[issuer.oauth2]`.
    Local,
}

/// The JWS algorithms portcullis verifies (all asymmetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwtAlg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlg {
    pub const ALL: [JwtAlg; 9] = [
        JwtAlg::RS256,
        JwtAlg::RS384,
        JwtAlg::RS512,
        JwtAlg::PS256,
        JwtAlg::PS384,
        JwtAlg::PS512,
        JwtAlg::ES256,
        JwtAlg::ES384,
        JwtAlg::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::RS256 => "RS256",
            JwtAlg::RS384 => "RS384",
            JwtAlg::RS512 => "RS512",
            JwtAlg::PS256 => "PS256",
            JwtAlg::PS384 => "PS384",
            JwtAlg::PS512 => "PS512",
            JwtAlg::ES256 => "ES256",
            JwtAlg::ES384 => "ES384",
            JwtAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<JwtAlg> {
        JwtAlg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Headers a claim must not set: the certificate identity headers, the forwarding headers,
/// and those that frame or route the request.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "authorization",
    "x-forwarded-client-cert",
    "x-client-subject",
    "x-client-uri-san",
    "x-client-fingerprint",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "cookie",
];

impl Builder {
    /// `local_issuer` is the `issuer` of `[issuer.oauth2]`, when that section exists.
    pub(super) fn jwt_providers(
        &mut self,
        raw: Option<&RawAuth>,
        local_issuer: Option<&str>,
    ) -> Vec<JwtConfig> {
        let Some(raw) = raw else { return Vec::new() };
        raw.jwt
            .iter()
            .map(|(name, j)| {
                let p = vec![
                    Seg::Key("auth".into()),
                    Seg::Key("jwt".into()),
                    Seg::Key(name.clone()),
                ];
                self.jwt(&p, name, j, local_issuer)
            })
            .collect()
    }

    fn jwt(
        &mut self,
        p: &KeyPath,
        name: &str,
        j: &RawJwt,
        local_issuer: Option<&str>,
    ) -> JwtConfig {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.err(
                p.clone(),
                format!("\"{name}\" is not a provider name (letters, digits, - and _)"),
            );
        }
        let local = j.local_issuer == Some(true);
        if local {
            return self.local_jwt(p, name, j, local_issuer);
        }
        let issuer = self
            .required(p, "issuer", &j.issuer)
            .unwrap_or_default()
            .to_owned();
        let jwks = match (&j.jwks_url, &j.jwks_file) {
            (Some(_), Some(_)) => {
                self.err(
                    k(p, "jwks_file"),
                    "give `jwks_url` or `jwks_file`, not both",
                );
                JwksSource::File(PathBuf::new())
            }
            (None, None) => {
                self.err(p.clone(), "needs `jwks_url` or `jwks_file`");
                JwksSource::File(PathBuf::new())
            }
            (Some(url), None) => {
                if let Err(why) = check_jwks_url(url, j.jwks_ca.is_some()) {
                    self.err(k(p, "jwks_url"), why);
                }
                JwksSource::Url(url.clone())
            }
            (None, Some(f)) => JwksSource::File(resolve(&self.base, f)),
        };
        if j.jwks_ca.is_some() && j.jwks_file.is_some() {
            self.err(
                k(p, "jwks_ca"),
                "`jwks_ca` only applies to an https `jwks_url`",
            );
        }
        self.jwt_common(p, name, j, issuer, jwks)
    }

    /// `local_issuer = true`: keys from `[issuer.oauth2]`, `issuer` defaults to its issuer,
    /// `audiences` optional, the JWKS keys refused.
    fn local_jwt(
        &mut self,
        p: &KeyPath,
        name: &str,
        j: &RawJwt,
        local_issuer: Option<&str>,
    ) -> JwtConfig {
        let Some(own) = local_issuer else {
            self.err(
                k(p, "local_issuer"),
                "needs an [issuer.oauth2] section (this gateway's token service)",
            );
            return self.jwt_common(p, name, j, String::new(), JwksSource::Local);
        };
        for (key, given) in [
            ("jwks_url", j.jwks_url.is_some()),
            ("jwks_file", j.jwks_file.is_some()),
            ("jwks_ca", j.jwks_ca.is_some()),
        ] {
            if given {
                self.err(
                    k(p, key),
                    "is refused with local_issuer: the keys come from [issuer.oauth2] directly",
                );
            }
        }
        if let Some(i) = j.issuer.as_deref().filter(|i| *i != own) {
            self.err(
                k(p, "issuer"),
                format!("\"{i}\" differs from [issuer.oauth2] issuer \"{own}\"; leave it out"),
            );
        }
        self.jwt_common(p, name, j, own.to_owned(), JwksSource::Local)
    }

    /// The keys that mean the same for every kind of provider.
    fn jwt_common(
        &mut self,
        p: &KeyPath,
        name: &str,
        j: &RawJwt,
        issuer: String,
        jwks: JwksSource,
    ) -> JwtConfig {
        let mut algorithms = Vec::new();
        let names = j
            .algorithms
            .clone()
            .unwrap_or_else(|| d::JWT_ALGORITHMS.iter().map(|s| s.to_string()).collect());
        if names.is_empty() {
            self.err(k(p, "algorithms"), "must list at least one algorithm");
        }
        for (i, a) in names.iter().enumerate() {
            match JwtAlg::parse(a) {
                Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                Some(_) => {}
                None => {
                    let why = if a.eq_ignore_ascii_case("none") || a.starts_with("HS") {
                        "is never accepted: tokens must be signed with a key from the JWKS"
                    } else {
                        "is not a supported algorithm"
                    };
                    let all: Vec<&str> = JwtAlg::ALL.iter().map(|a| a.as_str()).collect();
                    self.err(
                        super::build::ix(&k(p, "algorithms"), i),
                        format!("\"{a}\" {why} (supported: {})", all.join(", ")),
                    );
                }
            }
        }
        let audiences = j.audiences.clone().unwrap_or_default();
        let optional = jwks == JwksSource::Local && j.audiences.is_none();
        if !optional && (audiences.is_empty() || audiences.iter().any(String::is_empty)) {
            self.err(
                k(p, "audiences"),
                "list the accepted audiences / client ids, e.g. [\"my-client-id\"]",
            );
        }
        if j.token_use.as_deref() == Some("") {
            self.err(
                k(p, "token_use"),
                "must not be empty; leave it out to accept any",
            );
        }
        let leeway = match &j.leeway {
            None => d::JWT_LEEWAY,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.err(k(p, "leeway"), e);
                d::JWT_LEEWAY
            }),
        };
        if leeway > d::JWT_MAX_LEEWAY {
            self.err(k(p, "leeway"), "must be at most 5m");
        }
        let max_token_size = self.size(
            k(p, "max_token_size"),
            &j.max_token_size,
            d::JWT_MAX_TOKEN_SIZE,
            256,
        ) as usize;
        let mut forward_claims = Vec::new();
        for (claim, header) in j.forward_claims.iter().flatten() {
            let kp = k(&k(p, "forward_claims"), claim);
            let lower = header.to_ascii_lowercase();
            match HeaderName::from_bytes(lower.as_bytes()) {
                Ok(h) if !RESERVED_HEADERS.contains(&h.as_str()) => {
                    forward_claims.push((claim.clone(), h))
                }
                Ok(_) => self.err(kp, format!("\"{header}\" cannot carry a claim")),
                Err(_) => self.err(kp, format!("\"{header}\" is not a header name")),
            }
        }
        JwtConfig {
            name: name.to_owned(),
            issuer,
            jwks,
            algorithms,
            audiences,
            token_use: j.token_use.clone(),
            leeway,
            max_token_size,
            refresh: self.duration(k(p, "refresh"), &j.refresh, d::JWT_REFRESH),
            forward_claims,
            require_certificate_binding: j.require_certificate_binding.unwrap_or(false),
            forward_token: j.forward_token.unwrap_or(false),
            jwks_ca: j.jwks_ca.as_deref().map(|c| resolve(&self.base, c)),
            kid_miss_refetch_interval: self.duration(
                k(p, "kid_miss_refetch_interval"),
                &j.kid_miss_refetch_interval,
                d::JWT_KID_MISS_REFETCH_INTERVAL,
            ),
        }
    }
}

/// https anywhere (with a CA bundle); plain http only to a loopback address (tests).
fn check_jwks_url(url: &str, has_ca: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("\"{url}\" is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if has_ca => Ok(()),
        Some("https") => Err(format!(
            "\"{url}\": set `jwks_ca` to the CA bundle that signs the issuer's certificate (e.g. the system bundle)"
        )),
        Some("http") if host == "127.0.0.1" || host == "[::1]" => Ok(()),
        Some("http") => Err(format!(
            "\"{url}\": plain http is allowed only to 127.0.0.1 (tests); use https"
        )),
        _ => Err(format!("\"{url}\" must be an https URL")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, AuthMethod, Config, ConfigError};

    const BASE: &str = r#"
[[listener]]
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key"

[truststore]
dir = "truststore"

[[upstream]]
name = "orders"
endpoints = ["127.0.0.1:18080"]
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

    const ROUTE: &str = "[[route]]\nname = \"r\"\nupstream = \"orders\"\nauth = [\"mtls\", \"jwt:idp\"]\nscopes = [\"orders/read\"]\n";

    #[test]
    fn provider_and_route_build_with_defaults() {
        let c = load(&format!(
            "{ROUTE}\n[auth.jwt.idp]\nissuer = \"https://idp.test\"\njwks_file = \"jwks.json\"\naudiences = [\"client-1\"]\nforward_claims = {{ sub = \"X-Client-Sub\" }}\n"
        ))
        .unwrap();
        let j = &c.jwt[0];
        assert_eq!(j.name, "idp");
        assert_eq!(
            j.jwks,
            super::JwksSource::File("/etc/portcullis/jwks.json".into())
        );
        assert_eq!(
            j.algorithms,
            vec![super::JwtAlg::RS256, super::JwtAlg::ES256]
        );
        assert_eq!(j.leeway, super::d::JWT_LEEWAY);
        assert_eq!(j.max_token_size, 8192);
        assert_eq!(j.forward_claims[0].1.as_str(), "x-client-sub");
        assert_eq!(
            c.routes[0].auth,
            vec![AuthMethod::Mtls, AuthMethod::Jwt("idp".into())]
        );
        assert_eq!(c.routes[0].scopes, vec!["orders/read".to_string()]);
    }

    #[test]
    fn bad_providers_and_references_are_reported() {
        let m = messages(&format!(
            "{ROUTE}\n[auth.jwt.other]\nissuer = \"i\"\njwks_url = \"http://idp.example:80/jwks\"\nalgorithms = [\"HS256\", \"none\"]\naudiences = []\nleeway = \"1h\"\nissuerr = \"x\"\n"
        ));
        assert!(m.contains("no [auth.jwt.idp] section"), "{m}");
        assert!(m.contains("plain http is allowed only to 127.0.0.1"), "{m}");
        assert!(m.contains("\"HS256\" is never accepted"), "{m}");
        assert!(m.contains("\"none\" is never accepted"), "{m}");
        assert!(m.contains("auth.jwt.other.audiences"), "{m}");
        assert!(
            m.contains("auth.jwt.other.leeway: must be at most 5m"),
            "{m}"
        );
        assert!(
            m.contains("unknown key `issuerr`; did you mean `issuer`?"),
            "{m}"
        );
    }

    #[test]
    fn scopes_need_a_jwt_method_and_https_needs_a_ca() {
        let m = messages(
            "[[route]]\nname = \"r\"\nupstream = \"orders\"\nscopes = [\"a\"]\n[auth.jwt.idp]\nissuer = \"i\"\njwks_url = \"https://idp.test/jwks\"\naudiences = [\"c\"]\n",
        );
        assert!(
            m.contains("route[0].scopes: scopes are checked against a bearer token"),
            "{m}"
        );
        assert!(m.contains("set `jwks_ca`"), "{m}");
    }
}
