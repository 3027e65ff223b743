//! The canonical request and string to sign, exactly as AWS builds them for non-S3
//! services (the "Create a canonical request" steps of the SigV4 documentation).
//!
//! - path: dot segments resolved and empty segments removed, then every byte except the
//!   unreserved set and `/` percent-encoded. The path as received is already encoded once by
//!   the client, so this is the second encoding AWS asks for (`%20` becomes `%2520`).
//! - query: each `name=value` decoded then encoded with the strict unreserved set, sorted by
//!   encoded name then value; a presigned URL's `X-Amz-Signature` is left out.
//! - headers: names lowercased, values trimmed with inner runs of spaces collapsed, repeated
//!   headers joined with `,`, only the signed ones, in the signed-headers order (sorted);
//!   `host` is the request's host ([`signed_values`]), whatever header carried it.

use http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Percent-encode `bytes` into `out`: everything but `A-Z a-z 0-9 - _ . ~` (and `/` when
/// `keep_slash`), uppercase hex.
pub fn uri_encode(bytes: &[u8], keep_slash: bool, out: &mut String) {
    let mut encoded = Vec::with_capacity(bytes.len());
    uri_encode_bytes(bytes, keep_slash, &mut encoded);
    // Only ASCII was written.
    out.push_str(std::str::from_utf8(&encoded).unwrap_or_default());
}

/// [`uri_encode`] into a byte buffer (what the canonical request is built in).
pub fn uri_encode_bytes(bytes: &[u8], keep_slash: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Lowercase hex of a SHA-256 digest, without allocating.
pub fn hex32(digest: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits stays as it is.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Append the canonical URI of a raw request path (as received).
pub fn push_canonical_uri(raw_path: &str, out: &mut Vec<u8>) {
    let mut segs: Vec<&str> = Vec::new();
    for seg in raw_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let trailing = raw_path.ends_with('/') && !segs.is_empty();
    out.push(b'/');
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        uri_encode_bytes(s.as_bytes(), false, out);
    }
    if trailing {
        out.push(b'/');
    }
}

/// Append the canonical query string of a raw query (without the `?`). With `presigned`,
/// the `X-Amz-Signature` parameter is left out.
pub fn push_canonical_query(raw_query: &str, presigned: bool, omit_token: bool, out: &mut Vec<u8>) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let mut key = Vec::with_capacity(k.len());
        uri_encode_bytes(&percent_decode(k), false, &mut key);
        if presigned
            && (key == b"X-Amz-Signature" || (omit_token && key == b"X-Amz-Security-Token"))
        {
            continue;
        }
        let mut value = Vec::with_capacity(v.len());
        uri_encode_bytes(&percent_decode(v), false, &mut value);
        pairs.push((key, value));
    }
    // Byte order, which is AWS's order: every encoded name and value is ASCII.
    pairs.sort_unstable();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
}

/// Append a header value trimmed, with inner runs of whitespace collapsed to one space.
/// Copied whole, or a word at a time: a session token is ~560 bytes with no whitespace, and
/// a push per byte cost ~23 instructions a byte (BENCHMARKS.md, "SigV4 session credentials").
pub fn push_trimmed(value: &[u8], out: &mut Vec<u8>) {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // Most values have no whitespace at all: one branch-free (vectorised) pass, one copy.
    if !value.iter().fold(false, |seen, b| seen | space(b)) {
        out.extend_from_slice(value);
        return;
    }
    let mut words = value.split(space).filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.extend_from_slice(first);
        for w in words {
            out.push(b' ');
            out.extend_from_slice(w);
        }
    }
}

/// Everything the canonical request is built from.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub presigned: bool,
    /// Presigned: leave X-Amz-Security-Token out too (a token appended after signing).
    pub omit_token: bool,
    /// The signed header names, lowercase and sorted, each with its values in request order.
    pub headers: &'a [(&'a str, Vec<&'a [u8]>)],
    pub payload_hash: &'a str,
}

/// Signed header names, each with its values in request order ([`RequestParts::headers`]).
pub type SignedHeaders<'a> = Vec<(&'a str, Vec<&'a [u8]>)>;

/// The signed headers, each with the values the canonical request takes for it, in the
/// order of `names`; `None` when one of them has no value. Both signature checks (the
/// `sigv4` method and CreateSession) read a request's headers only through this.
///
/// `host` is the request's host as the check phase read it (`proxy::host::request_host`:
/// the HTTP/2 `:authority` or an HTTP/1.1 absolute-form target's authority when there is
/// one, which a differing `Host` header cannot override, else `Host`); only a caller that
/// has none (tests, benches) falls back to the `Host` header. So a signature over one of a
/// request's two hosts is never checked against the other.
pub fn signed_values<'a>(
    names: &[&'a str],
    host: Option<&'a HeaderValue>,
    headers: &'a HeaderMap,
) -> Option<SignedHeaders<'a>> {
    let mut out = Vec::with_capacity(names.len());
    for &name in names {
        let values: Vec<&[u8]> = if name == "host" {
            host.or_else(|| headers.get(header::HOST))
                .map(|v| vec![v.as_bytes()])
                .unwrap_or_default()
        } else {
            headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect()
        };
        if values.is_empty() {
            return None;
        }
        out.push((name, values));
    }
    Some(out)
}

/// The canonical request, as bytes (header values may hold any visible octets).
pub fn canonical_request(p: &RequestParts<'_>) -> Vec<u8> {
    // Sized for everything but the query and the path's escapes: one allocation, also
    // for a request that signs a session token.
    let values: usize = p
        .headers
        .iter()
        .map(|(n, v)| n.len() * 2 + 2 + v.iter().map(|v| v.len() + 1).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(p.method.len() + p.path.len() + p.query.len() + values + 100);
    out.extend_from_slice(p.method.as_bytes());
    out.push(b'\n');
    push_canonical_uri(p.path, &mut out);
    out.push(b'\n');
    push_canonical_query(p.query, p.presigned, p.omit_token, &mut out);
    out.push(b'\n');
    for (name, values) in p.headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(v, &mut out);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, (name, _)) in p.headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(p.payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256 \n amz-date \n scope \n hex(sha256(canonical request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    string_to_sign_as(ALGORITHM, amz_date, scope, canonical_request)
}

/// [`string_to_sign`] under another algorithm label (CreateSession's `AWS4-X509-*`).
pub fn string_to_sign_as(
    algorithm: &str,
    amz_date: &str,
    scope: &str,
    canonical_request: &[u8],
) -> String {
    let hash = hex32(&Sha256::digest(canonical_request).into());
    let mut out = String::with_capacity(algorithm.len() + amz_date.len() + scope.len() + 67);
    for part in [algorithm, "\n", amz_date, "\n", scope, "\n"] {
        out.push_str(part);
    }
    out.push_str(std::str::from_utf8(&hash).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_host_is_the_request_host_not_a_second_host_header() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("admin.test"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let authority = HeaderValue::from_static("api.test");
        let got = signed_values(&["host", "x-a"], Some(&authority), &h).unwrap();
        assert_eq!(
            got,
            vec![
                ("host", vec![&b"api.test"[..]]),
                ("x-a", vec![&b"1"[..], &b"2"[..]])
            ]
        );
        // No request host given: the `Host` header.
        let got = signed_values(&["host"], None, &h).unwrap();
        assert_eq!(got, vec![("host", vec![&b"admin.test"[..]])]);
        // A signed header the request lacks.
        assert_eq!(signed_values(&["host", "x-b"], Some(&authority), &h), None);
        assert_eq!(signed_values(&["host"], None, &HeaderMap::new()), None);
    }

    fn canonical_uri(raw: &str) -> String {
        let mut out = Vec::new();
        push_canonical_uri(raw, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn canonical_query(raw: &str, presigned: bool, omit_token: bool) -> String {
        let mut out = Vec::new();
        push_canonical_query(raw, presigned, omit_token, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hex_and_uri_encoding() {
        let digest: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(&hex32(&digest)[..], EMPTY_SHA256.as_bytes());
        let mut s = String::from("x");
        uri_encode("a b/é~".as_bytes(), true, &mut s);
        assert_eq!(s, "xa%20b/%C3%A9~");
    }

    #[test]
    fn path_is_normalised_and_encoded_twice() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/example1/example2/../.."), "/");
        assert_eq!(canonical_uri("/./example/./"), "/example/");
        assert_eq!(canonical_uri("/example%20space/"), "/example%2520space/");
        assert_eq!(canonical_uri("/a b"), "/a%20b");
    }

    #[test]
    fn query_is_decoded_encoded_and_sorted() {
        assert_eq!(canonical_query("b=2&a=2&a=1", false, false), "a=1&a=2&b=2");
        assert_eq!(canonical_query("Param1", false, false), "Param1=");
        assert_eq!(
            canonical_query("k=a%2fb&x=%7E", false, false),
            "k=a%2Fb&x=~"
        );
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&a=1", true, false),
            "a=1"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut v = Vec::new();
        push_trimmed(b"  a   b \t c  ", &mut v);
        assert_eq!(v, b"a b c");
    }

    /// The word-at-a-time trim gives what the byte-at-a-time definition gives.
    #[test]
    fn trimming_matches_the_byte_at_a_time_definition() {
        fn reference(value: &[u8]) -> Vec<u8> {
            let (mut out, mut space, mut any) = (Vec::new(), false, false);
            for &b in value {
                if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                    space = true;
                } else {
                    if space && any {
                        out.push(b' ');
                    }
                    (space, any) = (false, true);
                    out.push(b);
                }
            }
            out
        }
        // Every string of length <= 6 over {space, tab, CR, LF, 'a', 'b', 0xff}.
        let alphabet = [b' ', b'\t', b'\r', b'\n', b'a', b'b', 0xff];
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=6u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut v = Vec::new();
                for _ in 0..len {
                    v.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                cases.push(v);
            }
        }
        cases.push(b"v1.kid.".iter().chain(&[b'x'; 560]).copied().collect());
        for case in &cases {
            let mut got = b"prefix:".to_vec();
            push_trimmed(case, &mut got);
            assert_eq!(&got[7..], reference(case), "{case:?}");
        }
    }

    #[test]
    fn percent_decode_keeps_bad_escapes() {
        assert_eq!(percent_decode("%41%zz%4"), b"A%zz%4");
    }
}
