//! Routing: which route serves this request?
//!
//! Runs first in the pipeline, on the normalised path and the checked host. Like a virtual
//! host, the most specific host pattern that matches wins (exact, then the longest
//! `*.suffix`, then `*`); within it, the longest path prefix that matches on a segment
//! boundary (`/orders` matches `/orders` and `/orders/1`, not `/ordersx`). A path that
//! matches only with another method is 405 `method_not_allowed`; no match is 404
//! `no_route`.
//!
//! A prefix is matched as a decoding backend reads the path: a percent-escape left in the
//! normalised path (`%3A`, `%C3%A9`) matches the byte it encodes, and unless the route sets
//! `case_sensitive = true`, ASCII letters match in either case (`/ADMIN` meets `/admin`'s
//! allow-list, as Express and IIS would serve it `/admin`).

use std::sync::Arc;

use http::Method;

use crate::config::{AuthMethod, RouteConfig};
use crate::policy::AllowList;
use crate::upstream::Upstream;

/// A route ready to serve: its upstream resolved, its allow-list compiled.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub path_prefix: String,
    /// `None` = any method.
    pub methods: Option<Vec<Method>>,
    pub upstream: Arc<Upstream>,
    /// The alternatives: one list from `auth`, or the `auth_any` lists.
    pub auth: Vec<Vec<AuthMethod>>,
    pub allow: AllowList,
    pub max_body_size: u64,
    /// Scopes a bearer token must carry (checked by the `jwt` method).
    pub scopes: Vec<String>,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.test` stored as `.example.test`.
    Suffix(String),
    Any,
}

#[derive(Debug)]
struct HostGroup {
    pattern: HostPattern,
    /// Sorted by descending prefix length.
    routes: Vec<Arc<Route>>,
}

/// All routes, grouped by host pattern from most to least specific.
#[derive(Debug, Default)]
pub struct Router {
    groups: Vec<HostGroup>,
}

pub enum RouteMatch<'a> {
    Found(&'a Arc<Route>),
    /// The path matches only routes for other methods: theirs, in route order (`Allow`).
    MethodNotAllowed(Vec<&'a Method>),
    NotFound,
}

impl Router {
    /// `upstream_of` resolves a route's upstream name (checked by the config loader).
    pub fn new(
        routes: &[RouteConfig],
        mut upstream_of: impl FnMut(&str) -> Option<Arc<Upstream>>,
    ) -> Result<Router, String> {
        let mut groups: Vec<HostGroup> = Vec::new();
        for rc in routes {
            let upstream = upstream_of(&rc.upstream).ok_or_else(|| {
                format!("route {:?}: unknown upstream {:?}", rc.name, rc.upstream)
            })?;
            let methods = if rc.methods.is_empty() {
                None
            } else {
                let parsed = rc
                    .methods
                    .iter()
                    .map(|m| Method::from_bytes(m.as_bytes()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("route {:?}: invalid method", rc.name))?;
                Some(parsed)
            };
            let route = Arc::new(Route {
                name: Arc::from(rc.name.as_str()),
                path_prefix: rc.path_prefix.clone(),
                methods,
                upstream,
                auth: if rc.auth_any.is_empty() {
                    vec![rc.auth.clone()]
                } else {
                    rc.auth_any.clone()
                },
                allow: AllowList::new(&rc.allow),
                max_body_size: rc.max_body_size,
                scopes: rc.scopes.clone(),
                case_sensitive: rc.case_sensitive,
            });
            let pattern = HostPattern::parse(&rc.host);
            match groups.iter_mut().find(|g| g.pattern == pattern) {
                Some(g) => g.routes.push(route),
                None => groups.push(HostGroup {
                    pattern,
                    routes: vec![route],
                }),
            }
        }
        for g in &mut groups {
            g.routes
                .sort_by_key(|r| std::cmp::Reverse(r.path_prefix.len()));
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.pattern.specificity()));
        Ok(Router { groups })
    }

    /// `host` is lowercased, without port; `path` is normalised.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> RouteMatch<'_> {
        let Some(group) = self.groups.iter().find(|g| g.pattern.matches(host)) else {
            return RouteMatch::NotFound;
        };
        let mut allowed: Vec<&Method> = Vec::new();
        for route in &group.routes {
            if !prefix_matches(&route.path_prefix, path, route.case_sensitive) {
                continue;
            }
            match &route.methods {
                // Only a refused request pays for collecting the other routes' methods.
                Some(ms) if !ms.contains(method) => allowed.extend(ms),
                _ => return RouteMatch::Found(route),
            }
        }
        if !allowed.is_empty() {
            RouteMatch::MethodNotAllowed(allowed)
        } else {
            RouteMatch::NotFound
        }
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.groups.iter().flat_map(|g| g.routes.iter())
    }
}

impl HostPattern {
    fn parse(host: &str) -> HostPattern {
        let host = host.to_ascii_lowercase();
        if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix('*') {
            HostPattern::Suffix(suffix.to_owned())
        } else {
            HostPattern::Exact(host)
        }
    }

    fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Suffix(s) => s.len(),
            HostPattern::Any => 0,
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            // `*.example.test` matches `a.example.test`, not `example.test`.
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            HostPattern::Any => true,
        }
    }
}

/// Whether normalised `path` lies under `prefix` (no `%`, by the config check). An escape
/// in the path stands for its byte: the path's `%3A` matches the prefix's `:`. Without
/// `case_sensitive`, ASCII letters match in either case.
fn prefix_matches(prefix: &str, path: &str, case_sensitive: bool) -> bool {
    let (prefix, path) = (prefix.as_bytes(), path.as_bytes());
    let mut j = 0;
    for &want in prefix {
        let (got, width) = match path.get(j) {
            None => return false,
            Some(b'%') => match (path.get(j + 1), path.get(j + 2)) {
                (Some(&h), Some(&l)) => {
                    match (char::from(h).to_digit(16), char::from(l).to_digit(16)) {
                        // Two hex digits: at most 0xFF.
                        (Some(h), Some(l)) => ((h << 4 | l) as u8, 3),
                        _ => (b'%', 1),
                    }
                }
                _ => (b'%', 1),
            },
            Some(&b) => (b, 1),
        };
        let same = if case_sensitive {
            got == want
        } else {
            got.eq_ignore_ascii_case(&want)
        };
        if !same {
            return false;
        }
        j += width;
    }
    prefix.last() == Some(&b'/') || j == path.len() || path[j] == b'/'
}

/// The request's host for routing: lowercased, without port or trailing dot.
pub fn routing_host(raw: &str) -> String {
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMethod;

    fn rc(name: &str, host: &str, prefix: &str, methods: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host: host.into(),
            path_prefix: prefix.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            upstream: "u".into(),
            auth: vec![AuthMethod::Mtls],
            auth_any: vec![],
            allow: vec![],
            max_body_size: 1024,
            scopes: vec![],
            case_sensitive: false,
        }
    }

    fn router(routes: &[RouteConfig]) -> Router {
        let up = Arc::new(Upstream::echo("u"));
        Router::new(routes, |_| Some(up.clone())).unwrap()
    }

    fn found(r: &Router, host: &str, path: &str, method: &str) -> Option<String> {
        match r.find(host, path, &Method::from_bytes(method.as_bytes()).unwrap()) {
            RouteMatch::Found(route) => Some(route.name.to_string()),
            RouteMatch::MethodNotAllowed(_) => Some("405".into()),
            RouteMatch::NotFound => None,
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundary() {
        let r = router(&[
            rc("root", "*", "/", &[]),
            rc("orders", "*", "/orders", &[]),
            rc("v2", "*", "/orders/v2/", &[]),
        ]);
        assert_eq!(found(&r, "a", "/orders", "GET").as_deref(), Some("orders"));
        assert_eq!(
            found(&r, "a", "/orders/1", "GET").as_deref(),
            Some("orders")
        );
        assert_eq!(found(&r, "a", "/ordersx", "GET").as_deref(), Some("root"));
        assert_eq!(found(&r, "a", "/orders/v2/x", "GET").as_deref(), Some("v2"));
        assert_eq!(
            found(&r, "a", "/orders/v2", "GET").as_deref(),
            Some("orders")
        );
    }

    #[test]
    fn most_specific_host_group_wins_without_fallback() {
        let r = router(&[
            rc("any", "*", "/", &[]),
            rc("wild", "*.example.test", "/", &[]),
            rc("exact", "api.example.test", "/api", &[]),
        ]);
        assert_eq!(
            found(&r, "api.example.test", "/api/x", "GET").as_deref(),
            Some("exact")
        );
        assert_eq!(found(&r, "api.example.test", "/other", "GET"), None);
        assert_eq!(
            found(&r, "b.example.test", "/x", "GET").as_deref(),
            Some("wild")
        );
        assert_eq!(
            found(&r, "example.test", "/x", "GET").as_deref(),
            Some("any")
        );
    }

    #[test]
    fn methods_and_405() {
        let r = router(&[rc("ro", "*", "/data", &["GET", "HEAD"])]);
        assert_eq!(found(&r, "h", "/data", "GET").as_deref(), Some("ro"));
        assert_eq!(found(&r, "h", "/data", "POST").as_deref(), Some("405"));
        assert_eq!(found(&r, "h", "/nothing", "POST"), None);
        let RouteMatch::MethodNotAllowed(allowed) = r.find("h", "/data", &Method::POST) else {
            panic!("POST /data: expected 405");
        };
        assert_eq!(allowed, [&Method::GET, &Method::HEAD]);
    }

    #[test]
    fn prefixes_match_in_any_case_unless_case_sensitive() {
        let mut exact = rc("exact", "*", "/Files", &[]);
        exact.case_sensitive = true;
        let r = router(&[
            rc("root", "*", "/", &[]),
            rc("admin", "*", "/admin", &[]),
            exact,
        ]);
        for p in ["/admin", "/ADMIN", "/Admin/x", "/aDmIn/"] {
            assert_eq!(found(&r, "a", p, "GET").as_deref(), Some("admin"), "{p}");
        }
        assert_eq!(found(&r, "a", "/adminx", "GET").as_deref(), Some("root"));
        assert_eq!(found(&r, "a", "/Files/1", "GET").as_deref(), Some("exact"));
        assert_eq!(found(&r, "a", "/files/1", "GET").as_deref(), Some("root"));
    }

    /// An escape left in a normalised path matches the byte it encodes, as a decoding
    /// backend reads it.
    #[test]
    fn escapes_match_the_bytes_they_encode() {
        let r = router(&[
            rc("root", "*", "/", &[]),
            rc("batch", "*", "/v1/items:batch", &[]),
            rc("cafe", "*", "/caf\u{e9}", &[]),
        ]);
        for (path, want) in [
            ("/v1/items%3Abatch", "batch"),
            ("/v1/items:batch/x", "batch"),
            ("/CAF%C3%A9/x", "cafe"),
            ("/v1/items%3Abatc", "root"),
            ("/v1/items%3", "root"),
        ] {
            assert_eq!(found(&r, "a", path, "GET").as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(routing_host("API.Example.test:8443"), "api.example.test");
        assert_eq!(routing_host("example.test."), "example.test");
        assert_eq!(routing_host("[::1]:8443"), "[::1]");
        assert_eq!(routing_host("127.0.0.1"), "127.0.0.1");
    }
}
