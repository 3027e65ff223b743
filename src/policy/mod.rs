//! Authorization: may this (already authenticated) caller use this route?
//!
//! Runs after authentication, before forwarding. A route without `[[route.allow]]` entries
//! admits every authenticated caller; a route with entries admits a caller that matches at
//! least one entry, where an entry matches when every field it sets matches. A refusal is
//! 403 `forbidden`. The policy looks only at the [`Identity`], never at how it was proven.

use crate::config::AllowRule;
use crate::identity::Identity;

/// The compiled allow-list of one route.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    uri_san: Option<Glob>,
    dns_san: Option<Glob>,
    subject_cn: Option<Glob>,
    issuer_cn: Option<Glob>,
    principal: Option<Glob>,
    role: Option<Glob>,
}

/// A pattern where `*` matches any run of characters (including none) and everything else
/// matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    parts: Vec<String>,
    case_insensitive: bool,
}

impl AllowList {
    pub fn new(rules: &[AllowRule]) -> Self {
        let rules = rules
            .iter()
            .map(|r| Rule {
                uri_san: r.uri_san.as_deref().map(|p| Glob::new(p, false)),
                // DNS names compare case-insensitively (RFC 4343).
                dns_san: r.dns_san.as_deref().map(|p| Glob::new(p, true)),
                subject_cn: r.subject_cn.as_deref().map(|p| Glob::new(p, false)),
                issuer_cn: r.issuer_cn.as_deref().map(|p| Glob::new(p, false)),
                principal: r.principal.as_deref().map(|p| Glob::new(p, false)),
                role: r.role.as_deref().map(|p| Glob::new(p, false)),
            })
            .collect();
        AllowList { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the caller may pass. Without entries everyone may; with entries, an entry
    /// with certificate fields never matches a caller without a certificate identity, and
    /// one with `principal` never matches a caller without a principal (SigV4).
    pub fn allows(&self, identity: Option<&Identity>) -> bool {
        self.allows_with(identity, None, None)
    }

    /// [`Self::allows`] with the principal name a request-level method (SigV4) proved and,
    /// for a session credential, its role (an entry with `role` never matches without one).
    pub fn allows_with(
        &self,
        identity: Option<&Identity>,
        principal: Option<&str>,
        role: Option<&str>,
    ) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| {
            let principal_ok = r
                .principal
                .as_ref()
                .is_none_or(|g| principal.is_some_and(|p| g.matches(p)));
            let cert_ok = if r.has_cert_fields() {
                identity.is_some_and(|id| r.matches(id))
            } else {
                true
            };
            let role_ok = r
                .role
                .as_ref()
                .is_none_or(|g| role.is_some_and(|x| g.matches(x)));
            principal_ok && role_ok && cert_ok
        })
    }
}

impl Rule {
    fn has_cert_fields(&self) -> bool {
        self.uri_san.is_some()
            || self.dns_san.is_some()
            || self.subject_cn.is_some()
            || self.issuer_cn.is_some()
    }

    fn matches(&self, id: &Identity) -> bool {
        fn any(g: &Option<Glob>, values: &[String]) -> bool {
            g.as_ref()
                .is_none_or(|g| values.iter().any(|v| g.matches(v)))
        }
        fn opt(g: &Option<Glob>, value: Option<&str>) -> bool {
            g.as_ref()
                .is_none_or(|g| value.is_some_and(|v| g.matches(v)))
        }
        any(&self.uri_san, &id.uri_sans)
            && any(&self.dns_san, &id.dns_sans)
            && opt(&self.subject_cn, id.common_name.as_deref())
            && opt(&self.issuer_cn, id.issuer_cn.as_deref())
    }
}

impl Glob {
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let pattern = if case_insensitive {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        Glob {
            parts: pattern.split('*').map(str::to_owned).collect(),
            case_insensitive,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        if self.case_insensitive && value.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.matches_exact(&value.to_ascii_lowercase());
        }
        self.matches_exact(value)
    }

    fn matches_exact(&self, value: &str) -> bool {
        // parts = literal pieces between stars: first must prefix, last must suffix, the
        // middle ones must appear in order. Greedy leftmost matching is correct for `*`-only globs.
        let (first, rest) = match self.parts.split_first() {
            Some(p) => p,
            None => return value.is_empty(),
        };
        let Some(mut remaining) = value.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        for piece in middle {
            match remaining.find(piece.as_str()) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(uri: &[&str], dns: &[&str], cn: Option<&str>, issuer_cn: Option<&str>) -> Identity {
        Identity {
            subject: String::new(),
            common_name: cn.map(str::to_owned),
            issuer: String::new(),
            issuer_cn: issuer_cn.map(str::to_owned),
            serial: "01".into(),
            uri_sans: uri.iter().map(|s| s.to_string()).collect(),
            dns_sans: dns.iter().map(|s| s.to_string()).collect(),
            ip_sans: vec![],
            fingerprint: String::new(),
            not_after: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn glob_matching() {
        let g = Glob::new("spiffe://example.test/client/*", false);
        assert!(g.matches("spiffe://example.test/client/a"));
        assert!(g.matches("spiffe://example.test/client/"));
        assert!(!g.matches("spiffe://example.test/clientx"));
        assert!(!g.matches("spiffe://other.test/client/a"));
        let g = Glob::new("*.svc.*.test", false);
        assert!(g.matches("a.svc.b.test"));
        assert!(!g.matches("a.svc.b.tes"));
        assert!(Glob::new("exact", false).matches("exact"));
        assert!(!Glob::new("exact", false).matches("exactly"));
        assert!(Glob::new("*", false).matches(""));
        assert!(Glob::new("a*a", false).matches("aa"));
        assert!(!Glob::new("a*a", false).matches("a"));
        assert!(Glob::new("*.EXAMPLE.test", true).matches("Host.example.TEST"));
    }

    #[test]
    fn a_role_entry_needs_a_session_role_and_combines_with_certificate_fields() {
        let list = AllowList::new(&[AllowRule {
            role: Some("orders-*".into()),
            uri_san: Some("spiffe://t/gw/*".into()),
            ..Default::default()
        }]);
        let gw = identity(&["spiffe://t/gw/a"], &[], None, None);
        assert!(list.allows_with(
            Some(&gw),
            Some("role/orders-reader/s"),
            Some("orders-reader")
        ));
        assert!(
            !list.allows_with(Some(&gw), Some("svc"), None),
            "a static key has no role"
        );
        assert!(!list.allows_with(Some(&gw), None, Some("billing")));
        assert!(
            !list.allows_with(None, None, Some("orders-reader")),
            "no certificate"
        );
    }

    #[test]
    fn entries_are_or_fields_are_and() {
        let list = AllowList::new(&[
            AllowRule {
                uri_san: Some("spiffe://t/ops/*".into()),
                issuer_cn: Some("ops CA".into()),
                ..Default::default()
            },
            AllowRule {
                subject_cn: Some("break-glass".into()),
                ..Default::default()
            },
        ]);
        let ops = identity(&["spiffe://t/ops/a"], &[], Some("a"), Some("ops CA"));
        let ops_wrong_ca = identity(&["spiffe://t/ops/a"], &[], Some("a"), Some("dev CA"));
        let glass = identity(&[], &[], Some("break-glass"), None);
        let other = identity(
            &["spiffe://t/client/a"],
            &["a.test"],
            Some("a"),
            Some("ops CA"),
        );
        assert!(list.allows(Some(&ops)));
        assert!(!list.allows(Some(&ops_wrong_ca)));
        assert!(list.allows(Some(&glass)));
        assert!(!list.allows(Some(&other)));
        assert!(!list.allows(None));
        assert!(AllowList::default().allows(None));
    }
}
