//! Routing: which route serves this request?
//!
//! Runs first in the pipeline, on the normalised path. Like a virtual host, the most
//! specific host pattern that matches wins (exact, then the longest `*.suffix`, then `*`);
//! within it, the longest path prefix that matches on a segment boundary (`/orders` matches
//! `/orders` and `/orders/1`, not `/ordersx`). A path that matches only with another method
//! is 405 `method_not_allowed`; no match is 404 `no_route`.

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
    MethodNotAllowed,
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
        let mut method_mismatch = false;
        for route in &group.routes {
            if !prefix_matches(&route.path_prefix, path) {
                continue;
            }
            match &route.methods {
                Some(ms) if !ms.contains(method) => method_mismatch = true,
                _ => return RouteMatch::Found(route),
            }
        }
        if method_mismatch {
            RouteMatch::MethodNotAllowed
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

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
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
        }
    }

    fn router(routes: &[RouteConfig]) -> Router {
        let up = Arc::new(Upstream::echo("u"));
        Router::new(routes, |_| Some(up.clone())).unwrap()
    }

    fn found(r: &Router, host: &str, path: &str, method: &str) -> Option<String> {
        match r.find(host, path, &Method::from_bytes(method.as_bytes()).unwrap()) {
            RouteMatch::Found(route) => Some(route.name.to_string()),
            RouteMatch::MethodNotAllowed => Some("405".into()),
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
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(routing_host("API.Example.test:8443"), "api.example.test");
        assert_eq!(routing_host("example.test."), "example.test");
        assert_eq!(routing_host("[::1]:8443"), "[::1]");
        assert_eq!(routing_host("127.0.0.1"), "127.0.0.1");
    }
}
