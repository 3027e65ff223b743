//! `[[route]]`: host, path prefix and methods matched, the upstream, the auth methods and
//! allow rules, raw struct → [`RouteConfig`]; and the check that no two routes overlap.

use super::build::{ix, k, Builder, KeyPath, Seg};
use super::defaults as d;
use super::file;
use super::{AllowRule, AuthMethod, JwtConfig, RouteConfig, UpstreamConfig, UpstreamTarget};

impl Builder {
    pub(super) fn route(
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
        let issuer_builtin = upstreams.iter().any(|u| {
            u.name == upstream && matches!(u.target, UpstreamTarget::Builtin(b) if b.is_issuer())
        });
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
                    auth_any.push(self.auth_methods(
                        ix(&k(p, "auth_any"), i),
                        names,
                        jwt,
                        issuer_builtin,
                    ));
                }
                Vec::new()
            }
            (auth, None) => {
                let names = auth.clone().unwrap_or_else(|| vec![d::ROUTE_AUTH.into()]);
                self.auth_methods(k(p, "auth"), &names, jwt, issuer_builtin)
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
        let allow = self.allow_rules(&k(p, "allow"), &r.allow);
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
            case_sensitive: r.case_sensitive.unwrap_or(d::ROUTE_CASE_SENSITIVE),
        }
    }

    /// One list of auth method names (a route's `auth`, or one `auth_any` alternative).
    fn auth_methods(
        &mut self,
        path: KeyPath,
        names: &[String],
        jwt: &[JwtConfig],
        issuer_builtin: bool,
    ) -> Vec<AuthMethod> {
        if names.iter().any(|n| n == "builtin") {
            if !issuer_builtin {
                self.err(
                    path.clone(),
                    "\"builtin\" is allowed only when the route's upstream is an issuer builtin (builtin = \"oauth2\" or \"rolesanywhere\")",
                );
            } else if names.iter().any(|n| n != "builtin" && n != "mtls") {
                self.err(
                    path.clone(),
                    "\"builtin\" goes alone or with \"mtls\": [\"builtin\"] or [\"mtls\", \"builtin\"]",
                );
            }
        }
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
                "builtin" => auth.push(AuthMethod::Builtin),
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
                        format!("unknown auth method \"{other}\" (supported: \"mtls\", \"jwt:NAME\", \"sigv4\", \"builtin\")"),
                    ),
                },
            }
        }
        auth
    }

    /// Two routes with the same name, or the same host, prefix and methods (the second could
    /// never be chosen), are mistakes worth stopping for. Prefixes that differ only in ASCII
    /// case are the same prefix when either route matches case-insensitively: `/Admin`
    /// (case-sensitive, open) beside `/admin` (any case, allow-listed) would leave which
    /// allow-list `/Admin` meets to the order of the file.
    pub(super) fn check_route_overlaps(&mut self, routes: &[RouteConfig]) {
        for (i, r) in routes.iter().enumerate() {
            let p = ix(&[Seg::Key("route".into())], i);
            for earlier in &routes[..i] {
                if !r.name.is_empty() && r.name == earlier.name {
                    self.err(
                        k(&p, "name"),
                        format!("another route is already named `{}`", r.name),
                    );
                } else if r.host == earlier.host
                    && same_prefix(r, earlier)
                    && sorted(&r.methods) == sorted(&earlier.methods)
                {
                    let how = if r.path_prefix == earlier.path_prefix {
                        ""
                    } else {
                        " (prefixes that differ only in case match the same paths unless both routes set case_sensitive = true)"
                    };
                    self.err(
                        k(&p, "path_prefix"),
                        format!(
                            "route `{}` matches the same host, path prefix and methods as route `{}`, so it would never be used{how}",
                            r.name, earlier.name
                        ),
                    );
                }
            }
        }
    }
}

/// Whether two routes' prefixes match the same paths.
fn same_prefix(a: &RouteConfig, b: &RouteConfig) -> bool {
    if a.case_sensitive && b.case_sensitive {
        a.path_prefix == b.path_prefix
    } else {
        a.path_prefix.eq_ignore_ascii_case(&b.path_prefix)
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
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

impl Builder {
    /// `[[route.allow]]`-shaped entries (also a session role's `allow`).
    pub(super) fn allow_rules(
        &mut self,
        p: &[Seg],
        raw: &[super::file::RawAllow],
    ) -> Vec<AllowRule> {
        let mut allow = Vec::new();
        for (i, a) in raw.iter().enumerate() {
            let rule = AllowRule {
                uri_san: a.uri_san.clone(),
                dns_san: a.dns_san.clone(),
                subject_cn: a.subject_cn.clone(),
                issuer_cn: a.issuer_cn.clone(),
                principal: a.principal.clone(),
                role: a.role.clone(),
            };
            if rule == AllowRule::default() {
                self.err(
                    ix(p, i),
                    "an entry with no field would allow everyone; give uri_san, dns_san, subject_cn, issuer_cn, principal or role",
                );
            }
            allow.push(rule);
        }
        allow
    }
}
