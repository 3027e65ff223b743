//! The file as written: serde structs that mirror the TOML. Everything is optional here
//! so that the builder ([`super::build`]) can report every missing or bad value at once,
//! with its line, instead of serde stopping at the first. Unknown keys are collected by
//! `serde_ignored`.

use serde::Deserialize;

pub use super::reload::{RawIdentityCache, RawReload};

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub listener: Vec<RawListener>,
    pub truststore: Option<RawTruststore>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub upstream: Vec<RawUpstream>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    pub log: Option<RawLog>,
    pub reload: Option<RawReload>,
    pub identity_cache: Option<RawIdentityCache>,
    pub auth: Option<RawAuth>,
    pub issuer: Option<super::issuer::RawIssuer>,
    pub runtime: Option<super::runtime::RawRuntime>,
    pub cluster: Option<super::cluster::RawCluster>,
}

/// `[auth.*]`: authentication providers that routes refer to by name.
#[derive(Debug, Default, Deserialize)]
pub struct RawAuth {
    #[serde(default)]
    pub jwt: std::collections::BTreeMap<String, super::jwt::RawJwt>,
    pub sigv4: Option<super::sigv4::RawSigv4>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawListener {
    pub address: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_auth: Option<String>,
    pub min_tls_version: Option<String>,
    pub key_permissions: Option<String>,
    pub workers: Option<usize>,
    pub handshake_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_header_size: Option<Size>,
    pub max_connections: Option<usize>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_max_header_list_size: Option<Size>,
    pub drain_timeout: Option<String>,
    pub drain_delay: Option<String>,
    pub headers_with_underscores: Option<String>,
    pub path_parameters: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTruststore {
    pub dir: Option<String>,
    pub revocation: Option<String>,
    pub unknown_revocation: Option<String>,
    pub expired_crl: Option<String>,
    pub max_chain_depth: Option<usize>,
    pub crl_fetch: Option<Vec<super::crl_fetch::RawCrlFetch>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawUpstream {
    pub name: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub builtin: Option<String>,
    pub connect_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_idle_per_endpoint: Option<usize>,
    pub idle_timeout: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<RawUpstreamTls>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub auth: Option<Vec<String>>,
    /// Alternatives: the one whose credentials the request carries is checked.
    pub auth_any: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub allow: Vec<RawAllow>,
    pub max_body_size: Option<Size>,
    pub scopes: Option<Vec<String>>,
    pub case_sensitive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAllow {
    pub uri_san: Option<String>,
    pub dns_san: Option<String>,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub role: Option<String>,
    pub principal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access_log: Option<String>,
}

/// A size: `"16KiB"` or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// The keys a table accepts, for "did you mean" hints; keyed by the table's path with
/// array indices removed (`""`, `"listener"`, `"route.allow"`, ...).
pub fn known_keys(table: &str) -> &'static [&'static str] {
    fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        introspect::fields::<T>()
    }
    match table {
        "" => of::<RawConfig>(),
        "listener" => of::<RawListener>(),
        "truststore" => of::<RawTruststore>(),
        "truststore.crl_fetch" => of::<super::crl_fetch::RawCrlFetch>(),
        "admin" => of::<RawAdmin>(),
        "upstream" => of::<RawUpstream>(),
        "upstream.tls" => of::<RawUpstreamTls>(),
        "route" => of::<RawRoute>(),
        "route.allow" => of::<RawAllow>(),
        "log" => of::<RawLog>(),
        "runtime" => of::<super::runtime::RawRuntime>(),
        "reload" => of::<RawReload>(),
        "identity_cache" => of::<RawIdentityCache>(),
        "auth" => of::<RawAuth>(),
        t if t.starts_with("auth.jwt.") => of::<super::jwt::RawJwt>(),
        "auth.sigv4" => of::<super::sigv4::RawSigv4>(),
        "issuer" => of::<super::issuer::RawIssuer>(),
        "issuer.oauth2" => of::<super::issuer::RawOauth2>(),
        "issuer.oauth2.rate_limit" => of::<super::issuer::RawRateLimit>(),
        "issuer.sessions" => of::<super::sessions::RawSessions>(),
        "issuer.sessions.trust_anchor" => of::<super::sessions::RawTrustAnchor>(),
        "issuer.sessions.profile" => of::<super::sessions::RawProfile>(),
        "issuer.sessions.role" => of::<super::sessions::RawRole>(),
        "issuer.sessions.role.allow" => of::<RawAllow>(),
        "cluster" => of::<super::cluster::RawCluster>(),
        "cluster.tls" => of::<super::cluster::RawClusterTls>(),
        _ => &[],
    }
}

/// Reads a struct's field names from its `Deserialize` impl, so the hint list can never
/// drift from the structs above.
mod introspect {
    use serde::de::{self, Deserialize, Visitor};

    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("introspection")
        }
    }
    impl std::error::Error for Done {}
    impl de::Error for Done {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Done
        }
    }

    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Fields<'_> {
        type Error = Done;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            *self.0 = fields;
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    pub fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        let mut out: &'static [&'static str] = &[];
        let _ = T::deserialize(Fields(&mut out));
        out
    }
}
