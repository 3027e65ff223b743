//! Typed configuration: what the rest of the gateway sees.
//!
//! The TOML file is read into the raw structs of [`file`] (serde, unknown keys collected
//! and reported), then the builder turns them into these typed values, checking every
//! cross-reference and resolving relative paths against the config file's folder: its
//! shared machinery is in [`build`], each section has its own file (`listener.rs`,
//! `route.rs`, [`jwt`], ...) and `assemble.rs` puts them together. Every problem found is
//! reported with the file, line and key it comes from ([`ConfigError`]).
//! Defaults are the named constants in [`defaults`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod assemble;
pub mod build;
pub mod cidr;
pub mod cluster;
pub mod crl_fetch;
pub mod defaults;
pub mod file;
pub mod issuer;
pub mod jwt;
mod listener;
mod load;
mod log;
pub(crate) mod reload;
mod route;
mod runtime;
pub mod sessions;
mod shape;
pub mod sigv4;
mod truststore;
pub mod units;
mod upstream;

#[cfg(test)]
mod tests;

pub use cidr::Cidr;
pub use cluster::ClusterConfig;
pub use crl_fetch::CrlFetchConfig;
pub use issuer::{Oauth2Config, Rate, RateLimit};
pub use jwt::{JwksSource, JwtAlg, JwtConfig};
pub use load::{line_of_key, load, load_all, parse, parse_all, ConfigError, ConfigProblem};
pub use reload::{IdentityCacheConfig, ReloadConfig};
pub use runtime::{RuntimeConfig, RuntimeMode};
pub use sessions::{ProfileConfig, RoleConfig, SessionsConfig, TrustAnchorConfig};
pub use sigv4::Sigv4Config;

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (absolute); relative paths were resolved against its folder.
    pub source: PathBuf,
    pub listeners: Vec<ListenerConfig>,
    pub truststore: TruststoreConfig,
    pub admin: Option<AdminConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    pub log: LogConfig,
    pub reload: ReloadConfig,
    pub identity_cache: IdentityCacheConfig,
    /// `[auth.jwt.NAME]` providers, by name order.
    pub jwt: Vec<JwtConfig>,
    /// `[auth.sigv4]`, when configured.
    pub sigv4: Option<Sigv4Config>,
    /// `[issuer.oauth2]`, when configured.
    pub oauth2: Option<Oauth2Config>,
    /// `[issuer.sessions]`, when configured.
    pub sessions: Option<SessionsConfig>,
    /// `[runtime]`: how connections are served across the cores.
    pub runtime: RuntimeConfig,
    /// `[cluster]`: the Redis a fleet shares, when configured.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Worker threads for the runtime: the largest `workers` of any listener, 0 = one per core.
    pub fn workers(&self) -> usize {
        self.listeners.iter().map(|l| l.workers).max().unwrap_or(0)
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_auth: ClientAuth,
    pub min_tls_version: TlsVersion,
    pub key_permissions: KeyPermissions,
    pub workers: usize,
    pub limits: ListenerLimits,
}

/// Connection and protocol limits of one listener.
#[derive(Debug, Clone)]
pub struct ListenerLimits {
    /// TLS handshake must complete within this.
    pub handshake_timeout: Duration,
    /// HTTP/1 request head must arrive within this (slowloris guard).
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// Max size of a request head (HTTP/1 buffer) in bytes.
    pub max_header_size: usize,
    /// Max concurrent connections on this listener; more wait in the accept queue.
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_header_list_size: u32,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain_timeout: Duration,
    /// On shutdown, new connections are still accepted this long after `/readyz` turned
    /// 503 (so load balancers stop sending first); then the drain.
    pub drain_delay: Duration,
    /// What the request check does with header names and paths that backends read in
    /// different ways; copied into each connection's `ConnInfo`.
    pub requests: RequestRules,
    /// Peers whose `X-Forwarded-For` is kept (the peer address appended); from any other
    /// peer it is replaced by the peer address. Matched once per connection, at accept.
    pub trusted_proxies: Vec<Cidr>,
}

/// A listener's rules for requests that mean one thing to the gateway and another to some
/// backends (`headers_with_underscores`, `path_parameters`). `Copy`: a connection takes
/// its own copy at accept, so a request reads it without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestRules {
    pub headers_with_underscores: UnderscoreHeaders,
    pub path_parameters: PathParameters,
}

/// `headers_with_underscores`: a header name with `_` is read as its `-` twin by CGI, WSGI
/// and PHP backends (`x_client_subject` becomes `HTTP_X_CLIENT_SUBJECT`). Whatever the
/// setting, such an alias of a header the gateway sets is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnderscoreHeaders {
    /// Removed before forwarding (NGINX's default, `underscores_in_headers off`).
    #[default]
    Drop,
    /// The request is refused with 400.
    Reject,
    /// Forwarded (identity-header aliases are still removed).
    Allow,
}

/// `path_parameters`: a path segment with `;` (`/admin;x`, `/..;/admin`: Tomcat and Spring
/// drop the parameter) or an encoded `%` (`%25`: decoded twice by some frameworks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathParameters {
    /// Refused with 400.
    #[default]
    Reject,
    /// Forwarded as they are (and routed as they are: only for backends that give `;` and
    /// `%25` no meaning of their own).
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Optional,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPermissions {
    Strict,
    Warn,
}

#[derive(Debug, Clone)]
pub struct TruststoreConfig {
    /// Folder with `roots/`, `intermediates/`, `crls/`.
    pub dir: PathBuf,
    pub revocation: Revocation,
    pub unknown_revocation: Policy,
    pub expired_crl: Policy,
    /// Max intermediates between leaf and root.
    pub max_chain_depth: usize,
    /// CRLs fetched from URLs in the background (`[[truststore.crl_fetch]]`).
    pub crl_fetch: Vec<CrlFetchConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Off,
    EndEntity,
    FullChain,
}

/// `deny` or `allow`, for a situation the verifier cannot decide on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Deny,
    Allow,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub address: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub target: UpstreamTarget,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    /// Pooled connections idle longer than this are closed.
    pub idle_timeout: Duration,
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTls>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `host:port` strings, resolved at connect time.
    Endpoints(Vec<String>),
    Builtin(Builtin),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Answers with a JSON description of the request it received, identity headers included.
    Echo,
    /// The OAuth2 token service of `[issuer.oauth2]` (token, revoke, introspect, JWKS, metadata).
    Oauth2,
    /// Roles Anywhere-compatible CreateSession (`POST /sessions`) of `[issuer.sessions]`.
    Rolesanywhere,
}

impl Builtin {
    /// Whether this builtin is an issuer's HTTP face (it authenticates its callers itself).
    pub fn is_issuer(self) -> bool {
        match self {
            Builtin::Echo => false,
            Builtin::Oauth2 | Builtin::Rolesanywhere => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c, or h2 over TLS).
    Http2,
}

#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// CA bundle (PEM) that the upstream's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate chain and key presented to the upstream (mTLS), if any.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name checked against the upstream's certificate and sent as SNI; default: the endpoint host.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Lowercased: exact host, `*.suffix`, or `*`.
    pub host: String,
    pub path_prefix: String,
    /// Uppercase method names; empty = any method.
    pub methods: Vec<String>,
    pub upstream: String,
    pub auth: Vec<AuthMethod>,
    /// `auth_any` alternatives; empty when the route uses `auth`.
    pub auth_any: Vec<Vec<AuthMethod>>,
    pub allow: Vec<AllowRule>,
    pub max_body_size: u64,
    /// Scopes a bearer token must carry on this route (all of them).
    pub scopes: Vec<String>,
    /// `false` (the default): `path_prefix` matches whatever the ASCII case of the path, as
    /// Express and IIS match.
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A verified client certificate.
    Mtls,
    /// A JWT access token validated by the named `[auth.jwt.NAME]` provider.
    Jwt(String),
    /// An AWS Signature Version 4 (`[auth.sigv4]`).
    Sigv4,
    /// The route's issuer builtin authenticates its callers itself (`auth = ["builtin"]`).
    Builtin,
}

/// One `[[route.allow]]` entry: every field given must match (glob, `*` any run of characters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowRule {
    pub uri_san: Option<String>,
    pub dns_san: Option<String>,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// The principal name of a SigV4 credential.
    pub principal: Option<String>,
    /// The role of a SigV4 session credential (`[[issuer.sessions.role]]`).
    pub role: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `tracing` filter for the diagnostic log (stderr), e.g. "info" or "portcullis=debug".
    pub level: String,
    /// How diagnostic lines are written: JSON or text (default: text on a terminal).
    pub format: LogFormat,
    /// Where JSON access-log lines go: stdout (`"-"`), a file, or nowhere.
    pub access_log: AccessLog,
}

/// `[log] format`: one JSON object per line, or text for people. `Auto` (the default) is
/// text when stderr is a terminal and JSON otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    File(PathBuf),
    Off,
}

/// Resolve `p` against `base` (the config file's folder) unless it is absolute.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
