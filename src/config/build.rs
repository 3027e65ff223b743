//! TOML text → [`Config`]: every problem found, each with its file, line and key.
//!
//! Three passes over the text, each reporting what it can: the TOML syntax
//! (`toml_edit`, which also keeps every key's position for the line numbers), the shape
//! (serde into [`super::file`], unknown keys collected by `serde_ignored`), and the values
//! and cross-references (this module). A problem's key is a path such as
//! `route[1].allow[0].uri_san`; its line is found by walking that path in the document.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults as d;
use super::file::{self, RawConfig, Size};
use super::units::{parse_duration, parse_size};
use super::*;

// `[reload]` and `[identity_cache]` live in their own file but use this builder.
#[path = "reload.rs"]
pub(crate) mod reload;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// 1-based; `None` when the problem has no place in the file (it cannot be read).
    pub line: Option<usize>,
    /// Dotted key path, e.g. `listener[0].address`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file (never empty).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(ConfigError {
            problems: vec![ConfigProblem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }],
        }),
    }
}

/// Validate `text` as if read from `path` (relative paths in it resolve against its folder).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let fail = |offset: Option<usize>, message: String| ConfigError {
        problems: vec![ConfigProblem {
            file: path.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            key: String::new(),
            message,
        }],
    };

    let doc = toml_edit::Document::parse(text)
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;
    let de = toml::Deserializer::parse(text)
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;
    let mut unknown = Vec::new();
    let raw: RawConfig = serde_ignored::deserialize(de, |p| unknown.push(segments(&p)))
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;

    let mut b = Builder {
        base,
        issues: Vec::new(),
    };
    for path in unknown {
        b.unknown_key(path);
    }
    let config = b.config(raw, source);
    if b.issues.is_empty() {
        return Ok(config);
    }
    let problems = b
        .issues
        .into_iter()
        .map(|issue| ConfigProblem {
            file: path.to_path_buf(),
            line: locate(&doc, &issue.path).map(|o| line_of(text, o)),
            key: key_string(&issue.path),
            message: issue.message,
        })
        .collect();
    Err(ConfigError { problems })
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_owned()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) type KeyPath = Vec<Seg>;

fn segments(p: &serde_ignored::Path<'_>) -> KeyPath {
    use serde_ignored::Path as P;
    let mut out = match p {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => segments(parent),
    };
    match p {
        P::Seq { index, .. } => out.push(Seg::Index(*index)),
        P::Map { key, .. } => out.push(Seg::Key(key.clone())),
        _ => {}
    }
    out
}

fn key_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Byte offset of the deepest part of `path` present in the document: the key itself, or
/// the table that should have held it.
fn locate(doc: &toml_edit::Document<&str>, path: &[Seg]) -> Option<usize> {
    use toml_edit::{Item, Value};
    enum Node<'a> {
        Table(&'a toml_edit::Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    let mut best = None;
    let mut cur = Node::Table(doc.as_table());
    for seg in path {
        let next = match (&cur, seg) {
            (Node::Table(t), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Item(item), Seg::Key(k)) => item
                .as_table_like()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => {
                a.get(*i).map(|t| (t.span(), Node::Table(t)))
            }
            (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
            | (Node::Value(Value::Array(a)), Seg::Index(i)) => {
                a.get(*i).map(|v| (v.span(), Node::Value(v)))
            }
            _ => None,
        };
        let Some((span, node)) = next else { break };
        if let Some(span) = span {
            best = Some(span.start);
        }
        cur = node;
    }
    best
}

/// Closest known key, for "did you mean" (edit distance at most 2, or a prefix).
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(dist, k)| *dist <= 2 || (word.len() >= 3 && k.starts_with(word)))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Issue {
    path: KeyPath,
    message: String,
}

pub(super) struct Builder {
    pub(super) base: PathBuf,
    issues: Vec<Issue>,
}

/// `path` extended by a key.
pub(super) fn k(path: &[Seg], key: &str) -> KeyPath {
    let mut p = path.to_vec();
    p.push(Seg::Key(key.to_owned()));
    p
}

/// `path` extended by an index.
pub(super) fn ix(path: &[Seg], i: usize) -> KeyPath {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

impl Builder {
    pub(super) fn err(&mut self, path: KeyPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    fn unknown_key(&mut self, path: KeyPath) {
        let Some(Seg::Key(name)) = path.last().cloned() else {
            return;
        };
        let table: Vec<&str> = path[..path.len() - 1]
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect();
        let known = file::known_keys(&table.join("."));
        let mut msg = format!("unknown key `{name}`");
        if let Some(s) = suggest(&name, known) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        } else if !known.is_empty() {
            msg.push_str(&format!("; expected one of: {}", known.join(", ")));
        }
        self.err(path, msg);
    }

    pub(super) fn required<'a>(
        &mut self,
        path: &[Seg],
        key: &str,
        v: &'a Option<String>,
    ) -> Option<&'a str> {
        match v.as_deref() {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.err(k(path, key), "must not be empty");
                None
            }
            None => {
                self.err(k(path, key), format!("missing required key `{key}`"));
                None
            }
        }
    }

    pub(super) fn path(&mut self, path: &[Seg], key: &str, v: &Option<String>) -> PathBuf {
        self.required(path, key, v)
            .map(|s| resolve(&self.base, s))
            .unwrap_or_default()
    }

    fn choice<T: Copy>(
        &mut self,
        path: KeyPath,
        v: &Option<String>,
        default: &str,
        options: &[(&str, T)],
    ) -> T {
        let given = v.as_deref().unwrap_or(default);
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == given) {
            return *t;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(
            path,
            format!("\"{given}\" is not one of {}", names.join(", ")),
        );
        options
            .iter()
            .find(|(n, _)| *n == default)
            .map_or(options[0].1, |(_, t)| *t)
    }

    pub(super) fn duration(
        &mut self,
        path: KeyPath,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(s) {
            Ok(dur) if dur.is_zero() => {
                self.err(path, "must be greater than zero");
                default
            }
            Ok(dur) => dur,
            Err(e) => {
                self.err(path, e);
                default
            }
        }
    }

    pub(super) fn size(&mut self, path: KeyPath, v: &Option<Size>, default: u64, min: u64) -> u64 {
        let n = match v {
            None => return default,
            Some(Size::Bytes(n)) => *n,
            Some(Size::Text(s)) => match parse_size(s) {
                Ok(n) => n,
                Err(e) => {
                    self.err(path, e);
                    return default;
                }
            },
        };
        if n < min {
            self.err(path, format!("must be at least {min} bytes"));
            return default;
        }
        n
    }

    fn socket_addr(&mut self, path: &[Seg], v: &Option<String>) -> SocketAddr {
        let unspecified = SocketAddr::from(([127, 0, 0, 1], 0));
        let Some(s) = self.required(path, "address", v) else {
            return unspecified;
        };
        s.parse().unwrap_or_else(|_| {
            self.err(
                k(path, "address"),
                format!("\"{s}\" is not an IP address and port, e.g. \"127.0.0.1:8443\" or \"[::]:8443\""),
            );
            unspecified
        })
    }

    fn config(&mut self, raw: RawConfig, source: PathBuf) -> Config {
        if raw.listener.is_empty() {
            self.err(vec![], "at least one [[listener]] is required");
        }
        let listeners: Vec<ListenerConfig> = raw
            .listener
            .iter()
            .enumerate()
            .map(|(i, l)| self.listener(&ix(&[Seg::Key("listener".into())], i), l))
            .collect();
        let mut seen = HashSet::new();
        for (i, l) in listeners.iter().enumerate() {
            if l.address.port() != 0 && !seen.insert(l.address) {
                self.err(
                    k(&ix(&[Seg::Key("listener".into())], i), "address"),
                    format!("{} is used by another listener", l.address),
                );
            }
        }

        let truststore = match &raw.truststore {
            Some(t) => self.truststore(t),
            None => {
                self.err(vec![], "the [truststore] section is required");
                self.truststore(&Default::default())
            }
        };
        let admin = raw.admin.as_ref().map(|a| AdminConfig {
            address: self.socket_addr(&[Seg::Key("admin".into())], &a.address),
        });
        if let Some(a) = &admin {
            if a.address.port() != 0 && listeners.iter().any(|l| l.address == a.address) {
                self.err(
                    vec![Seg::Key("admin".into()), Seg::Key("address".into())],
                    format!("{} is also a listener's address", a.address),
                );
            }
        }

        if raw.upstream.is_empty() {
            self.err(vec![], "at least one [[upstream]] is required");
        }
        let upstreams: Vec<UpstreamConfig> = raw
            .upstream
            .iter()
            .enumerate()
            .map(|(i, u)| self.upstream(&ix(&[Seg::Key("upstream".into())], i), u))
            .collect();
        let mut names = HashSet::new();
        for (i, u) in upstreams.iter().enumerate() {
            if !u.name.is_empty() && !names.insert(u.name.clone()) {
                self.err(
                    k(&ix(&[Seg::Key("upstream".into())], i), "name"),
                    format!("another upstream is already named `{}`", u.name),
                );
            }
        }

        if raw.route.is_empty() {
            self.err(vec![], "at least one [[route]] is required");
        }
        let jwt = self.jwt_providers(raw.auth.as_ref());
        let routes: Vec<RouteConfig> = raw
            .route
            .iter()
            .enumerate()
            .map(|(i, r)| self.route(&ix(&[Seg::Key("route".into())], i), r, &upstreams, &jwt))
            .collect();
        self.check_route_overlaps(&routes);

        let log = self.log(raw.log.as_ref().unwrap_or(&Default::default()));
        let reload = self.reload(raw.reload.as_ref());
        let identity_cache = self.identity_cache(raw.identity_cache.as_ref());
        let sigv4 = raw
            .auth
            .as_ref()
            .and_then(|a| a.sigv4.as_ref())
            .map(|s| self.sigv4(s));
        if sigv4.is_none() {
            for (i, r) in routes.iter().enumerate() {
                if r.auth
                    .iter()
                    .chain(r.auth_any.iter().flatten())
                    .any(|a| *a == AuthMethod::Sigv4)
                {
                    self.err(
                        ix(&[Seg::Key("route".into())], i),
                        "this route uses \"sigv4\" but there is no [auth.sigv4] section",
                    );
                }
            }
        }
        Config {
            source,
            listeners,
            truststore,
            admin,
            upstreams,
            routes,
            log,
            reload,
            identity_cache,
            jwt,
            sigv4,
        }
    }

    fn listener(&mut self, p: &[Seg], l: &file::RawListener) -> ListenerConfig {
        let address = self.socket_addr(p, &l.address);
        let cert = self.path(p, "cert", &l.cert);
        let key = self.path(p, "key", &l.key);
        let client_auth = self.choice(
            k(p, "client_auth"),
            &l.client_auth,
            d::CLIENT_AUTH,
            &[
                ("required", ClientAuth::Required),
                ("optional", ClientAuth::Optional),
                ("none", ClientAuth::None),
            ],
        );
        let min_tls_version = self.choice(
            k(p, "min_tls_version"),
            &l.min_tls_version,
            d::MIN_TLS_VERSION,
            &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        );
        let key_permissions = self.choice(
            k(p, "key_permissions"),
            &l.key_permissions,
            d::KEY_PERMISSIONS,
            &[
                ("strict", KeyPermissions::Strict),
                ("warn", KeyPermissions::Warn),
            ],
        );
        let max_connections = l.max_connections.unwrap_or(d::MAX_CONNECTIONS);
        if max_connections == 0 {
            self.err(k(p, "max_connections"), "must be at least 1");
        }
        let h2_max_concurrent_streams = l
            .h2_max_concurrent_streams
            .unwrap_or(d::H2_MAX_CONCURRENT_STREAMS);
        if h2_max_concurrent_streams == 0 {
            self.err(k(p, "h2_max_concurrent_streams"), "must be at least 1");
        }
        let h2_max_header_list_size = self.size(
            k(p, "h2_max_header_list_size"),
            &l.h2_max_header_list_size,
            d::H2_MAX_HEADER_LIST_SIZE,
            1024,
        );
        let h2_max_header_list_size = u32::try_from(h2_max_header_list_size).unwrap_or_else(|_| {
            self.err(k(p, "h2_max_header_list_size"), "must be below 4GiB");
            d::H2_MAX_HEADER_LIST_SIZE as u32
        });
        ListenerConfig {
            address,
            cert,
            key,
            client_auth,
            min_tls_version,
            key_permissions,
            workers: l.workers.unwrap_or(d::WORKERS),
            limits: ListenerLimits {
                handshake_timeout: self.duration(
                    k(p, "handshake_timeout"),
                    &l.handshake_timeout,
                    d::HANDSHAKE_TIMEOUT,
                ),
                header_read_timeout: self.duration(
                    k(p, "header_read_timeout"),
                    &l.header_read_timeout,
                    d::HEADER_READ_TIMEOUT,
                ),
                idle_timeout: self.duration(k(p, "idle_timeout"), &l.idle_timeout, d::IDLE_TIMEOUT),
                max_header_size: self.size(
                    k(p, "max_header_size"),
                    &l.max_header_size,
                    d::MAX_HEADER_SIZE,
                    d::MIN_HEADER_SIZE,
                ) as usize,
                max_connections: max_connections.max(1),
                h2_max_concurrent_streams: h2_max_concurrent_streams.max(1),
                h2_max_header_list_size,
                drain_timeout: self.duration(
                    k(p, "drain_timeout"),
                    &l.drain_timeout,
                    d::DRAIN_TIMEOUT,
                ),
            },
        }
    }

    fn truststore(&mut self, t: &file::RawTruststore) -> TruststoreConfig {
        let p = [Seg::Key("truststore".into())];
        let policy = [("deny", Policy::Deny), ("allow", Policy::Allow)];
        let max_chain_depth = t.max_chain_depth.unwrap_or(d::MAX_CHAIN_DEPTH);
        if max_chain_depth > d::MAX_CHAIN_DEPTH_LIMIT {
            self.err(
                k(&p, "max_chain_depth"),
                format!(
                    "must be at most {} (webpki's limit)",
                    d::MAX_CHAIN_DEPTH_LIMIT
                ),
            );
        }
        TruststoreConfig {
            dir: self.path(&p, "dir", &t.dir),
            revocation: self.choice(
                k(&p, "revocation"),
                &t.revocation,
                d::REVOCATION,
                &[
                    ("off", Revocation::Off),
                    ("end-entity", Revocation::EndEntity),
                    ("full-chain", Revocation::FullChain),
                ],
            ),
            unknown_revocation: self.choice(
                k(&p, "unknown_revocation"),
                &t.unknown_revocation,
                d::UNKNOWN_REVOCATION,
                &policy,
            ),
            expired_crl: self.choice(
                k(&p, "expired_crl"),
                &t.expired_crl,
                d::EXPIRED_CRL,
                &policy,
            ),
            max_chain_depth: max_chain_depth.min(d::MAX_CHAIN_DEPTH_LIMIT),
            crl_fetch: self.crl_fetch(t.crl_fetch.as_deref().unwrap_or_default()),
        }
    }

    fn upstream(&mut self, p: &[Seg], u: &file::RawUpstream) -> UpstreamConfig {
        let name = self
            .required(p, "name", &u.name)
            .unwrap_or_default()
            .to_owned();
        let target = match (&u.endpoints, &u.builtin) {
            (Some(_), Some(_)) => {
                self.err(
                    k(p, "builtin"),
                    "give either `endpoints` or `builtin`, not both",
                );
                UpstreamTarget::Endpoints(Vec::new())
            }
            (None, None) => {
                self.err(
                    p.to_vec(),
                    "needs `endpoints = [\"host:port\", ...]` or `builtin = \"echo\"`",
                );
                UpstreamTarget::Endpoints(Vec::new())
            }
            (None, Some(b)) => {
                if b != "echo" {
                    self.err(
                        k(p, "builtin"),
                        format!("\"{b}\" is not a built-in upstream; the one there is is \"echo\""),
                    );
                }
                UpstreamTarget::Builtin(Builtin::Echo)
            }
            (Some(eps), None) => {
                if eps.is_empty() {
                    self.err(k(p, "endpoints"), "must list at least one \"host:port\"");
                }
                for (i, ep) in eps.iter().enumerate() {
                    if let Err(why) = check_endpoint(ep) {
                        self.err(ix(&k(p, "endpoints"), i), why);
                    }
                }
                UpstreamTarget::Endpoints(eps.clone())
            }
        };
        let tls = u.tls.as_ref().map(|t| {
            let tp = k(p, "tls");
            if matches!(target, UpstreamTarget::Builtin(_)) {
                self.err(tp.clone(), "a built-in upstream has no TLS");
            }
            if t.cert.is_some() != t.key.is_some() {
                self.err(
                    tp.clone(),
                    "`cert` and `key` go together: give both for mTLS to the upstream, or neither",
                );
            }
            UpstreamTls {
                ca: self.path(&tp, "ca", &t.ca),
                cert: t.cert.as_deref().map(|c| resolve(&self.base, c)),
                key: t.key.as_deref().map(|c| resolve(&self.base, c)),
                server_name: t.server_name.clone(),
            }
        });
        UpstreamConfig {
            name,
            target,
            connect_timeout: self.duration(
                k(p, "connect_timeout"),
                &u.connect_timeout,
                d::CONNECT_TIMEOUT,
            ),
            request_timeout: self.duration(
                k(p, "request_timeout"),
                &u.request_timeout,
                d::REQUEST_TIMEOUT,
            ),
            max_idle_per_endpoint: u.max_idle_per_endpoint.unwrap_or(d::MAX_IDLE_PER_ENDPOINT),
            idle_timeout: self.duration(
                k(p, "idle_timeout"),
                &u.idle_timeout,
                d::UPSTREAM_IDLE_TIMEOUT,
            ),
            protocol: self.choice(
                k(p, "protocol"),
                &u.protocol,
                d::PROTOCOL,
                &[
                    ("http1", UpstreamProtocol::Http1),
                    ("http2", UpstreamProtocol::Http2),
                ],
            ),
            tls,
        }
    }

    fn route(
        &mut self,
        p: &[Seg],
        r: &file::RawRoute,
        upstreams: &[UpstreamConfig],
        jwt: &[JwtConfig],
    ) -> RouteConfig {
        let name = self
            .required(p, "name", &r.name)
            .unwrap_or_default()
            .to_owned();
        let host = r
            .host
            .as_deref()
            .unwrap_or(d::ROUTE_HOST)
            .to_ascii_lowercase();
        if let Err(why) = check_host_pattern(&host) {
            self.err(k(p, "host"), why);
        }
        let path_prefix = r
            .path_prefix
            .clone()
            .unwrap_or_else(|| d::ROUTE_PATH_PREFIX.into());
        if let Err(why) = check_path_prefix(&path_prefix) {
            self.err(k(p, "path_prefix"), why);
        }
        let mut methods = Vec::new();
        for (i, m) in r.methods.iter().flatten().enumerate() {
            let m = m.to_ascii_uppercase();
            if http::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
                self.err(
                    ix(&k(p, "methods"), i),
                    format!("\"{m}\" is not an HTTP method"),
                );
            } else if !methods.contains(&m) {
                methods.push(m);
            }
        }
        if r.methods.as_ref().is_some_and(Vec::is_empty) {
            self.err(
                k(p, "methods"),
                "an empty list allows no method; leave `methods` out to allow any",
            );
        }
        let upstream = self
            .required(p, "upstream", &r.upstream)
            .unwrap_or_default()
            .to_owned();
        if !upstream.is_empty() && !upstreams.iter().any(|u| u.name == upstream) {
            let defined: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            self.err(
                k(p, "upstream"),
                format!(
                    "no [[upstream]] is named `{upstream}` (defined: {})",
                    defined.join(", ")
                ),
            );
        }
        let mut auth_any = Vec::new();
        let auth = match (&r.auth, &r.auth_any) {
            (Some(_), Some(_)) => {
                self.err(
                    k(p, "auth_any"),
                    "give either `auth` or `auth_any`, not both",
                );
                Vec::new()
            }
            (None, Some(alts)) => {
                if alts.is_empty() {
                    self.err(k(p, "auth_any"), "must list at least one alternative");
                }
                for (i, names) in alts.iter().enumerate() {
                    auth_any.push(self.auth_methods(ix(&k(p, "auth_any"), i), names, jwt));
                }
                Vec::new()
            }
            (auth, None) => {
                let names = auth.clone().unwrap_or_else(|| vec![d::ROUTE_AUTH.into()]);
                self.auth_methods(k(p, "auth"), &names, jwt)
            }
        };
        let scopes = r.scopes.clone().unwrap_or_default();
        if !scopes.is_empty()
            && !auth
                .iter()
                .chain(auth_any.iter().flatten())
                .any(|a| matches!(a, AuthMethod::Jwt(_)))
        {
            self.err(
                k(p, "scopes"),
                "scopes are checked against a bearer token: add a \"jwt:NAME\" method to `auth`",
            );
        }
        for (i, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(' ') || s.contains('"') || s.contains('\\') {
                self.err(
                    ix(&k(p, "scopes"), i),
                    format!("\"{s}\" is not a scope (no spaces, quotes or backslashes)"),
                );
            }
        }
        let mut allow = Vec::new();
        for (i, a) in r.allow.iter().enumerate() {
            let rule = AllowRule {
                uri_san: a.uri_san.clone(),
                dns_san: a.dns_san.clone(),
                subject_cn: a.subject_cn.clone(),
                issuer_cn: a.issuer_cn.clone(),
                principal: a.principal.clone(),
            };
            if rule == AllowRule::default() {
                self.err(
                    ix(&k(p, "allow"), i),
                    "an entry with no field would allow everyone; give uri_san, dns_san, subject_cn, issuer_cn or principal",
                );
            }
            allow.push(rule);
        }
        RouteConfig {
            name,
            host,
            path_prefix,
            methods,
            upstream,
            auth,
            auth_any,
            allow,
            max_body_size: self.size(k(p, "max_body_size"), &r.max_body_size, d::MAX_BODY_SIZE, 0),
            scopes,
        }
    }

    /// One list of auth method names (a route's `auth`, or one `auth_any` alternative).
    fn auth_methods(
        &mut self,
        path: KeyPath,
        names: &[String],
        jwt: &[JwtConfig],
    ) -> Vec<AuthMethod> {
        if names.is_empty() {
            self.err(
                path.clone(),
                "must name at least one method, e.g. [\"mtls\"]",
            );
        }
        if super::sigv4::conflicting_auth(names) {
            self.err(
                path.clone(),
                "a request cannot carry both a bearer token and a SigV4 signature; use auth_any = [[..., \"jwt:NAME\"], [..., \"sigv4\"]] for either-or",
            );
        }
        let mut auth = Vec::new();
        for (i, a) in names.iter().enumerate() {
            match a.as_str() {
                "mtls" => auth.push(AuthMethod::Mtls),
                "sigv4" => auth.push(AuthMethod::Sigv4),
                other => match other.strip_prefix("jwt:") {
                    Some(name) if jwt.iter().any(|j| j.name == name) => {
                        auth.push(AuthMethod::Jwt(name.to_owned()))
                    }
                    Some(name) => self.err(
                        ix(&path, i),
                        format!("no [auth.jwt.{name}] section defines the provider \"{other}\" names"),
                    ),
                    None => self.err(
                        ix(&path, i),
                        format!("unknown auth method \"{other}\" (supported: \"mtls\", \"jwt:NAME\", \"sigv4\")"),
                    ),
                },
            }
        }
        auth
    }

    /// Two routes with the same name, or the same host, prefix and methods (the second could
    /// never be chosen), are mistakes worth stopping for.
    fn check_route_overlaps(&mut self, routes: &[RouteConfig]) {
        for (i, r) in routes.iter().enumerate() {
            let p = ix(&[Seg::Key("route".into())], i);
            for earlier in &routes[..i] {
                if !r.name.is_empty() && r.name == earlier.name {
                    self.err(
                        k(&p, "name"),
                        format!("another route is already named `{}`", r.name),
                    );
                } else if r.host == earlier.host
                    && r.path_prefix == earlier.path_prefix
                    && sorted(&r.methods) == sorted(&earlier.methods)
                {
                    self.err(
                        k(&p, "path_prefix"),
                        format!(
                            "route `{}` matches the same host, path prefix and methods as route `{}`, so it would never be used",
                            r.name, earlier.name
                        ),
                    );
                }
            }
        }
    }

    fn log(&mut self, l: &file::RawLog) -> LogConfig {
        let p = [Seg::Key("log".into())];
        let level = l.level.clone().unwrap_or_else(|| d::LOG_LEVEL.into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            self.err(
                k(&p, "level"),
                format!(
                    "\"{level}\" is not a log filter ({e}); e.g. \"info\" or \"portcullis=debug\""
                ),
            );
        }
        let access_log = match l.access_log.as_deref().unwrap_or(d::ACCESS_LOG) {
            "-" | "stdout" => AccessLog::Stdout,
            "off" => AccessLog::Off,
            "" => {
                self.err(
                    k(&p, "access_log"),
                    "must be \"-\" (stdout), \"off\" or a file path",
                );
                AccessLog::Off
            }
            path => AccessLog::File(resolve(&self.base, path)),
        };
        LogConfig { level, access_log }
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

fn check_endpoint(ep: &str) -> Result<(), String> {
    let bad = || {
        format!("\"{ep}\" is not \"host:port\" (e.g. \"127.0.0.1:8080\" or \"orders.internal:80\")")
    };
    let auth: http::uri::Authority = ep.parse().map_err(|_| bad())?;
    if auth.as_str().contains('@') || auth.host().is_empty() {
        return Err(bad());
    }
    match auth.port_u16() {
        Some(0) | None => Err(bad()),
        Some(_) => Ok(()),
    }
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host == "*" {
        return Ok(());
    }
    let ok = !name.is_empty()
        && !name.contains('*')
        && !name.contains(':')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{host}\" is not a host pattern: use an exact name (no port), \"*.example.test\" or \"*\""
        ))
    }
}

/// A prefix must be a normalised absolute path, since it is matched against normalised paths.
fn check_path_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err(format!("\"{prefix}\" must start with \"/\""));
    }
    if prefix.contains("//")
        || prefix.split('/').any(|s| s == "." || s == "..")
        || prefix.contains(['%', '?', '#'])
        || prefix.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(format!(
            "\"{prefix}\" is not a normalised path (no \"//\", \".\" or \"..\" segments, percent-escapes, \"?\", \"#\" or spaces)"
        ));
    }
    Ok(())
}
