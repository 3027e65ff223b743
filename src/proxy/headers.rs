//! Header rewriting on the way to the backend and back.
//!
//! Requests: hop-by-hop headers removed (those named in `Connection` too; `te: trailers` is
//! kept, for gRPC), every incoming identity header stripped (`x-forwarded-client-cert`,
//! `x-client-*`) so a client can never forge one, `x-forwarded-for/-proto/-host` set (an
//! incoming `x-forwarded-for` is kept, the peer appended, only from a `trusted_proxies`
//! peer; otherwise replaced by the peer address), then the verified identity added. Responses: hop-by-hop headers removed.
//!
//! A header name with `_` is handled by the listener's `headers_with_underscores` (drop,
//! reject → 400, or allow), in the same pass over the names. CGI, WSGI and PHP backends
//! read `x_client_subject` as `x-client-subject` (both become `HTTP_X_CLIENT_SUBJECT`), so
//! whatever the setting, a name that is one of the headers the gateway sets once `_` is
//! read as `-` is removed too.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::UnderscoreHeaders;
use crate::identity::{self as conn, ConnInfo};
use crate::telemetry::metrics as m;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// non-standard ones proxies commonly meet.
const HOP_BY_HOP_COUNT: usize = 6;
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
// The identity header names as `HeaderName`s, built at compile time: inserting with a
// `&str` key re-validates the name on every call (~600 instructions each, four or more per
// request; BENCHMARKS.md, round 2).
const XFCC: HeaderName = HeaderName::from_static(conn::XFCC);
const X_CLIENT_SUBJECT: HeaderName = HeaderName::from_static(conn::X_CLIENT_SUBJECT);
const X_CLIENT_URI_SAN: HeaderName = HeaderName::from_static(conn::X_CLIENT_URI_SAN);
const X_CLIENT_FINGERPRINT: HeaderName = HeaderName::from_static(conn::X_CLIENT_FINGERPRINT);
const X_CLIENT_PRINCIPAL: HeaderName = HeaderName::from_static(conn::X_CLIENT_PRINCIPAL);
const X_CLIENT_ACCESS_KEY_ID: HeaderName = HeaderName::from_static(conn::X_CLIENT_ACCESS_KEY_ID);
const X_CLIENT_ATTRIBUTES: HeaderName = HeaderName::from_static(conn::X_CLIENT_ATTRIBUTES);
const X_CLIENT_ROLE: HeaderName = HeaderName::from_static(conn::X_CLIENT_ROLE);
const X_CLIENT_SESSION: HeaderName = HeaderName::from_static(conn::X_CLIENT_SESSION);
const X_CLIENT_SOURCE_IDENTITY: HeaderName =
    HeaderName::from_static(conn::X_CLIENT_SOURCE_IDENTITY);

/// Headers the gateway sets on every request, besides `x-client-*`: an alias of one with
/// `_` for `-` is never forwarded.
const SET_BY_GATEWAY: [&str; 4] = [
    conn::XFCC,
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// A header name with `_` under `headers_with_underscores = "reject"`: 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderscoreRejected;

/// Rewrite request headers for the backend. `host` is the request's host as received
/// (Host header or HTTP/2 `:authority`), if any. Fails only for a header name with `_`
/// on a listener that rejects them.
pub fn rewrite_request(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    host: Option<&HeaderValue>,
) -> Result<(), UnderscoreRejected> {
    remove_hop_by_hop(headers, true);
    strip_client_headers(headers, conn)?;

    // A client's own `X-Forwarded-For` would reach the backend as if the gateway had
    // added it: only a peer in the listener's `trusted_proxies` gets its value kept.
    let prior = if conn.trusted_proxy {
        headers.get(&X_FORWARDED_FOR)
    } else {
        None
    };
    let xff = match prior {
        Some(prior) => {
            let mut v = Vec::with_capacity(prior.len() + 2 + conn.peer_ip.len());
            v.extend_from_slice(prior.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(conn.peer_ip.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| conn.peer_ip.clone())
        }
        None => conn.peer_ip.clone(),
    };
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    match host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST, h.clone());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }

    if let Some(fid) = &conn.identity {
        headers.insert(XFCC, fid.xfcc.clone());
        headers.insert(X_CLIENT_SUBJECT, fid.subject.clone());
        if let Some(uri) = &fid.uri_san {
            headers.insert(X_CLIENT_URI_SAN, uri.clone());
        }
        headers.insert(X_CLIENT_FINGERPRINT, fid.fingerprint.clone());
    }
    Ok(())
}

/// Add the identity a SigV4 signature proved (after [`rewrite_request`] stripped any forged
/// one, every `x-client-*` included).
pub fn set_sigv4_identity(headers: &mut HeaderMap, cred: &crate::auth::sigv4::Credential) {
    headers.insert(X_CLIENT_PRINCIPAL, cred.principal_header.clone());
    headers.insert(X_CLIENT_ACCESS_KEY_ID, cred.access_key_header.clone());
    if let Some(a) = &cred.attributes_header {
        headers.insert(X_CLIENT_ATTRIBUTES, a.clone());
    }
    // A session credential: principal `role/<role>/<session>`, the role's attributes above.
    if let Some(s) = &cred.session {
        headers.insert(X_CLIENT_ROLE, s.role_header.clone());
        headers.insert(X_CLIENT_SESSION, s.session_header.clone());
        if let Some(v) = &s.source_identity_header {
            headers.insert(X_CLIENT_SOURCE_IDENTITY, v.clone());
        }
    }
}

/// The trailer fields of a client's request that are not forwarded: every name the
/// headers' rules strip or the gateway sets (an identity forged there would reach a
/// backend that merges trailers into headers, as many frameworks do), any name with `_`,
/// and the fields RFC 9110 §6.5.1 keeps out of trailers (framing, routing,
/// authentication, the connection's own).
pub fn strip_request_trailers(trailers: &mut HeaderMap) {
    let forbidden = |n: &str| {
        n.contains('_')
            || is_identity_header(n)
            || SET_BY_GATEWAY.contains(&n)
            || HOP_BY_HOP.iter().any(|h| h.as_str() == n)
            || matches!(
                n,
                "te" | "trailer"
                    | "host"
                    | "content-length"
                    | "content-type"
                    | "content-encoding"
                    | "authorization"
                    | "proxy-authorization"
                    | "cookie"
                    | "x-amz-date"
                    | "x-amz-security-token"
                    | "x-amz-content-sha256"
            )
    };
    let remove: Vec<HeaderName> = trailers
        .keys()
        .filter(|n| forbidden(n.as_str()))
        .cloned()
        .collect();
    for name in remove {
        trailers.remove(name);
    }
}

/// Remove hop-by-hop headers from a response before it goes back to the client.
pub fn rewrite_response(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers, false);
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    // One pass over the names present says which of these are there (a bit each, `te` the
    // last); only those are removed. Most requests carry none; most backends' responses
    // carry `connection: keep-alive` alone, which is then one hashed removal instead of
    // eight (BENCHMARKS.md, round 2 and the keep-alive steps).
    const CONNECTION_BIT: u8 = 1; // HOP_BY_HOP[0]
    const TE_BIT: u8 = 1 << HOP_BY_HOP_COUNT;
    let mut present = 0u8;
    for n in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == n) {
            present |= 1 << i;
        } else if *n == header::TE {
            present |= TE_BIT;
        }
    }
    if present == 0 {
        return;
    }
    // Headers listed in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). The usual value,
    // `keep-alive` alone, names only a header removed below if present: no parsing then.
    let only_keep_alive = || {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(b"keep-alive"))
    };
    if present & CONNECTION_BIT != 0 && !only_keep_alive() {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !HOP_BY_HOP.contains(name))
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if present & TE_BIT == 0 {
        return;
    }
    let te_trailers = keep_te_trailers
        && headers
            .get_all(header::TE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// One pass over the names: forged identity headers, and names with `_` by the listener's
/// `headers_with_underscores` (each request that has one is counted, by action).
fn strip_client_headers(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
) -> Result<(), UnderscoreRejected> {
    let policy = conn.requests.headers_with_underscores;
    let mut underscores = false;
    // Collected first: a HeaderMap cannot be filtered in place. The Vec stays unallocated
    // unless the client sent such a header.
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let forged = if n.contains('_') {
            underscores = true;
            policy != UnderscoreHeaders::Allow || aliases_gateway_header(n)
        } else {
            is_identity_header(n)
        };
        if forged {
            remove.push(name.clone());
        }
    }
    if underscores {
        let action = match policy {
            UnderscoreHeaders::Drop => "dropped",
            UnderscoreHeaders::Reject => "rejected",
            UnderscoreHeaders::Allow => "allowed",
        };
        metrics::counter!(m::HTTP_HEADERS_WITH_UNDERSCORES_TOTAL,
            "listener" => conn.listener.clone(), "action" => action)
        .increment(1);
        if policy == UnderscoreHeaders::Reject {
            return Err(UnderscoreRejected);
        }
    }
    for name in remove {
        headers.remove(name);
    }
    Ok(())
}

/// Whether `name` (lowercase) is one of the identity headers only the gateway may set:
/// `x-forwarded-client-cert` or any `x-client-*`.
fn is_identity_header(name: &str) -> bool {
    name == conn::XFCC || name.starts_with(conn::X_CLIENT_PREFIX)
}

/// Whether `name` (lowercase, with `_`) reads as a header the gateway sets once each `_` is
/// read as `-`, as CGI does.
fn aliases_gateway_header(name: &str) -> bool {
    conn::reads_as(name, conn::X_CLIENT_PREFIX, true)
        || SET_BY_GATEWAY
            .iter()
            .any(|g| conn::reads_as(name, g, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn conn() -> ConnInfo {
        ConnInfo::new("10.0.0.7:5000".parse().unwrap(), Arc::from("l0"), None)
    }

    #[test]
    fn strips_hop_by_hop_and_forged_identity() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert(
            "x-forwarded-client-cert",
            HeaderValue::from_static("Hash=forged"),
        );
        h.insert("x-client-subject", HeaderValue::from_static("CN=admin"));
        h.insert("X-Client-Role", HeaderValue::from_static("root"));
        h.insert("x-clientele", HeaderValue::from_static("kept"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        rewrite_request(&mut h, &conn(), Some(&HeaderValue::from_static("api.test"))).unwrap();
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "upgrade",
            "x-forwarded-client-cert",
            "x-client-subject",
            "x-client-role",
        ] {
            assert!(!h.contains_key(gone), "{gone} should be removed");
        }
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-clientele"], "kept");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.test");
    }

    #[test]
    fn responses_lose_only_hop_by_hop_headers_whichever_are_present() {
        // The usual backend response: `connection: keep-alive` alone.
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        rewrite_response(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["content-type"], "text/plain");

        // Each hop-by-hop header alone, and listed names of every kind.
        for name in HOP_BY_HOP.iter().chain([&header::TE]) {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_static("x"));
            h.insert("etag", HeaderValue::from_static("\"1\""));
            rewrite_response(&mut h);
            assert_eq!(h.keys().collect::<Vec<_>>(), ["etag"], "{name}");
        }
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("close, x-a"));
        h.append("connection", HeaderValue::from_static("X-B ,te, upgrade"));
        for n in [
            "close",
            "x-a",
            "x-b",
            "te",
            "upgrade",
            "keep-alive",
            "x-kept",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("1"));
        }
        rewrite_response(&mut h);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);

        // A request's `te: trailers` survives only when `te` is not listed in `Connection`.
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["te"]);
        h.insert("connection", HeaderValue::from_static("te"));
        remove_hop_by_hop(&mut h, true);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn request_trailers_lose_identity_and_forbidden_fields() {
        let mut t = HeaderMap::new();
        for (n, v) in [
            ("x-client-subject", "CN=admin"),
            ("x-forwarded-client-cert", "Hash=forged"),
            ("x_client_role", "root"),
            ("x-forwarded-for", "203.0.113.9"),
            ("host", "admin.internal"),
            ("content-length", "5"),
            ("authorization", "Bearer x"),
            ("connection", "close"),
            ("grpc-status", "0"),
            ("x-checksum", "1"),
        ] {
            t.insert(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        strip_request_trailers(&mut t);
        let mut kept: Vec<&str> = t.keys().map(|n| n.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["grpc-status", "x-checksum"]);
    }

    fn with_underscores() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x_client_uri_san", "spiffe://forged"),
            ("X_Forwarded_Client_Cert", "Hash=forged"),
            ("x-client_subject", "CN=forged"),
            ("x_forwarded_for", "203.0.113.1"),
            ("x_request_id", "kept-if-allowed"),
            ("accept", "*/*"),
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        h
    }

    fn conn_with(policy: UnderscoreHeaders) -> ConnInfo {
        let mut c = conn();
        c.requests.headers_with_underscores = policy;
        c
    }

    #[test]
    fn underscore_names_dropped_rejected_or_allowed_but_never_identity_aliases() {
        let mut h = with_underscores();
        rewrite_request(&mut h, &conn_with(UnderscoreHeaders::Drop), None).unwrap();
        assert!(h.keys().all(|n| !n.as_str().contains('_')), "{h:?}");
        assert_eq!(h["accept"], "*/*");

        let mut h = with_underscores();
        assert_eq!(
            rewrite_request(&mut h, &conn_with(UnderscoreHeaders::Reject), None),
            Err(UnderscoreRejected)
        );

        let mut h = with_underscores();
        rewrite_request(&mut h, &conn_with(UnderscoreHeaders::Allow), None).unwrap();
        let kept: Vec<&str> = h
            .keys()
            .map(|n| n.as_str())
            .filter(|n| n.contains('_'))
            .collect();
        assert_eq!(kept, ["x_request_id"], "{h:?}");
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
    }

    #[test]
    fn aliases_are_read_as_cgi_reads_them() {
        for n in [
            "x_forwarded_client_cert",
            "x-forwarded_client-cert",
            "x_client_",
            "x_client_anything",
            "x_forwarded_host",
            "x_forwarded_proto",
        ] {
            assert!(aliases_gateway_header(n), "{n}");
        }
        for n in [
            "x_clientele",
            "x_forwarded_client_certs",
            "x_forwarded",
            "x__client_a",
        ] {
            assert!(!aliases_gateway_header(n), "{n}");
        }
    }

    #[test]
    fn appends_to_a_trusted_proxys_x_forwarded_for_and_drops_te_other_than_trailers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        h.insert("te", HeaderValue::from_static("gzip"));
        let mut proxy = conn();
        proxy.trusted_proxy = true;
        rewrite_request(&mut h, &proxy, None).unwrap();
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.0.0.7");
        assert!(!h.contains_key("te"));
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn replaces_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        rewrite_request(&mut h, &conn(), None).unwrap();
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.7"]);
    }
}
