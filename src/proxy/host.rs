//! Phase 1 (check), the request's host: which one it names, and whether it is a host at all.
//!
//! RFC 9112 §3.2: an HTTP/1.1 request without `Host`, with more than one, or with one that
//! is not a valid host is refused with 400. The same holds here for HTTP/2, where the
//! host usually comes as `:authority`; a `Host` header beside it must name the same host
//! (RFC 9113 §8.3.1). HTTP/1.0 may omit `Host` (the request then matches only `host = "*"`
//! routes, and the upstream's address is sent as `Host`).
//!
//! The grammar is RFC 3986's `host [ ":" port ]`, narrowed to what a DNS name or an address
//! can be: a name of letters, digits, `-`, `.`, `_` and `~` (RFC 3986's unreserved
//! characters: no sub-delims such as `,` or `;`, no percent-escapes), which covers every
//! IPv4 address; or an IPv6 address in brackets (no zone, no IPvFuture). The port, when
//! given, is 1 to 5 digits up to 65535. So `a, b`, `a:443:1`, `a/x`, `a\x` and `a@x`, which
//! some backends read as another host than the gateway routed, never get past this phase.
//! Every refusal is 400 `bad_request`, logged with the reason `bad_host`.

use std::net::Ipv6Addr;

use http::{header, HeaderMap, HeaderValue, Uri, Version};

/// The port a host without one means: the gateway only speaks HTTPS.
const DEFAULT_PORT: u16 = 443;

/// Why a request's host was refused (all 400 `bad_request`, reason `bad_host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// HTTP/1.1 or HTTP/2 with neither `Host` nor an authority.
    Missing,
    /// More than one `Host` header.
    Repeated,
    /// Not `host [":" port]` in the grammar above.
    Invalid,
    /// An authority (`:authority`, or an absolute-form target) and `Host` that differ.
    Mismatch,
}

impl HostError {
    /// The fixed text of the 400 response.
    pub fn message(self) -> &'static str {
        match self {
            HostError::Missing => "the request has no Host header",
            HostError::Repeated => "the request has more than one Host header",
            HostError::Invalid => "the Host header is not a valid host[:port]",
            HostError::Mismatch => "the request's :authority and Host header name different hosts",
        }
    }
}

/// A host as the grammar reads it: the name (an IPv6 address keeps its brackets) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    pub name: &'a str,
    pub port: Option<u16>,
}

impl Host<'_> {
    /// Whether two hosts name the same origin: names equal but for ASCII case and a
    /// trailing dot, ports equal once a missing one is read as 443.
    fn same_as(&self, other: &Host<'_>) -> bool {
        self.name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(other.name.trim_end_matches('.'))
            && self.port.unwrap_or(DEFAULT_PORT) == other.port.unwrap_or(DEFAULT_PORT)
    }
}

/// Parse `host [":" port]` (see the module doc); `None` when `raw` is not one.
pub fn parse(raw: &[u8]) -> Option<Host<'_>> {
    let raw = std::str::from_utf8(raw).ok()?;
    let (name, port) = if raw.starts_with('[') {
        let end = raw.find(']')?;
        raw[1..end].parse::<Ipv6Addr>().ok()?;
        raw.split_at(end + 1)
    } else {
        let (name, port) = raw.split_at(raw.find(':').unwrap_or(raw.len()));
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return None;
        }
        (name, port)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    Some(Host { name, port })
}

/// RFC 3986 `unreserved`: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The host a request names, checked: the authority of its target when it has one
/// (HTTP/2 `:authority`, or an HTTP/1.1 absolute-form target, RFC 9112 §3.2.2), else its
/// `Host` header; `None` only for an HTTP/1.0 request without either.
pub fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, HostError> {
    let mut all = headers.get_all(header::HOST).iter();
    let host_header = all.next();
    if all.next().is_some() {
        return Err(HostError::Repeated);
    }
    let from_header = match host_header {
        Some(h) => Some(parse(h.as_bytes()).ok_or(HostError::Invalid)?),
        None => None,
    };
    let Some(authority) = uri.authority() else {
        return match host_header {
            Some(h) => Ok(Some(h.clone())),
            None if version <= Version::HTTP_10 => Ok(None),
            None => Err(HostError::Missing),
        };
    };
    // `http::uri::Authority` admits userinfo (`a@b`) and an empty port: the grammar does not.
    let from_target = parse(authority.as_str().as_bytes()).ok_or(HostError::Invalid)?;
    match from_header {
        Some(h) if version >= Version::HTTP_2 && !h.same_as(&from_target) => {
            return Err(HostError::Mismatch)
        }
        // HTTP/1.1 with an absolute-form target still needs a (valid) Host, whose value
        // the target's authority then overrides (RFC 9112 §3.2, §3.2.2).
        None if version == Version::HTTP_11 => return Err(HostError::Missing),
        _ => {}
    }
    HeaderValue::from_str(authority.as_str())
        .map(Some)
        .map_err(|_| HostError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Option<(String, Option<u16>)> {
        parse(raw.as_bytes()).map(|h| (h.name.to_owned(), h.port))
    }

    #[test]
    fn accepts_names_addresses_and_ports() {
        assert_eq!(ok("api.test"), Some(("api.test".into(), None)));
        assert_eq!(ok("API.Test:8443"), Some(("API.Test".into(), Some(8443))));
        assert_eq!(ok("10.0.0.1:65535"), Some(("10.0.0.1".into(), Some(65535))));
        assert_eq!(ok("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(
            ok("[2001:db8::1]:443"),
            Some(("[2001:db8::1]".into(), Some(443)))
        );
        assert_eq!(
            ok("under_score.test."),
            Some(("under_score.test.".into(), None))
        );
    }

    #[test]
    fn refuses_what_a_backend_could_read_as_another_host() {
        for raw in [
            "localhost, admin.test",
            "admin.test, localhost",
            "admin.test,localhost",
            "admin.test:443:1",
            "admin.test/x",
            "admin.test\\x",
            "admin.test@x",
            "user@admin.test",
            "admin.test:",
            "admin.test:65536",
            "admin.test:123456",
            "admin.test:+1",
            ":443",
            "",
            " admin.test",
            "admin.test ",
            "adm%69n.test",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[fe80::1%eth0]",
            "[v1.x]",
            "[1.2.3.4]",
            "::1",
            "caf\u{e9}.test",
        ] {
            assert_eq!(ok(raw), None, "{raw:?}");
        }
    }

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Result<Option<String>, HostError> {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        request_host(version, &uri.parse().unwrap(), &h)
            .map(|v| v.map(|v| v.to_str().unwrap().to_owned()))
    }

    #[test]
    fn host_rules_by_version() {
        use Version as V;
        assert_eq!(req(V::HTTP_11, "/", &["a.test"]), Ok(Some("a.test".into())));
        assert_eq!(req(V::HTTP_11, "/", &[]), Err(HostError::Missing));
        assert_eq!(req(V::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(req(V::HTTP_10, "/", &["a,b"]), Err(HostError::Invalid));
        assert_eq!(req(V::HTTP_11, "/", &["a", "a"]), Err(HostError::Repeated));
        // Absolute form: the target wins, but Host must be there and valid.
        assert_eq!(
            req(V::HTTP_11, "https://a.test/x", &["b.test"]),
            Ok(Some("a.test".into()))
        );
        assert_eq!(
            req(V::HTTP_11, "https://a.test/x", &[]),
            Err(HostError::Missing)
        );
        assert_eq!(
            req(V::HTTP_11, "https://u@a.test/x", &["a.test"]),
            Err(HostError::Invalid)
        );
        // HTTP/2: :authority alone, or with a Host naming the same origin.
        assert_eq!(
            req(V::HTTP_2, "https://a.test/", &[]),
            Ok(Some("a.test".into()))
        );
        assert_eq!(
            req(V::HTTP_2, "https://A.test:443/", &["a.test."]),
            Ok(Some("A.test:443".into()))
        );
        assert_eq!(
            req(V::HTTP_2, "https://a.test/", &["admin.test"]),
            Err(HostError::Mismatch)
        );
        assert_eq!(
            req(V::HTTP_2, "https://a.test/", &["a.test:8443"]),
            Err(HostError::Mismatch)
        );
        assert_eq!(req(V::HTTP_2, "/", &["a.test"]), Ok(Some("a.test".into())));
        assert_eq!(req(V::HTTP_2, "/", &[]), Err(HostError::Missing));
    }
}
