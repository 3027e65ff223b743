//! Request-path normalisation, done before routing so that what is authorized is exactly
//! what the backend receives.
//!
//! Dot-segments are removed, runs of slashes merged, percent-encoded unreserved characters
//! decoded (so `/%61dmin` routes as `/admin`) and other escapes upper-cased. An encoded slash
//! (`%2F`), dot (`%2E`), backslash (`%5C`) or NUL (`%00`) is refused outright, as are a raw
//! backslash or NUL and broken escapes: backends disagree on what they mean, and the gateway
//! cannot authorize a path whose meaning depends on the backend.
//!
//! For the same reason, under the listener's default `path_parameters = "reject"`, a `;`
//! (raw or `%3B`: Tomcat and Spring cut `/admin;x` and `/..;/admin` at it) and an encoded
//! `%` (`%25`: `/%2561dmin` is `/admin` to a framework that decodes twice) are refused.
//! With `"allow"` both pass through unchanged.

use std::fmt;

use crate::config::PathParameters;

/// Why a path was refused (all map to 400 `bad_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSeparator,
    Nul,
    Backslash,
    BadEscape,
    /// `;` or `%3B` under `path_parameters = "reject"`.
    Parameter,
    /// `%25` under `path_parameters = "reject"`.
    EncodedPercent,
}

impl PathError {
    /// The fixed reason logged for the refusal.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::Parameter => "path_parameter",
            PathError::EncodedPercent => "encoded_percent",
            PathError::NotAbsolute
            | PathError::EncodedSeparator
            | PathError::Nul
            | PathError::Backslash
            | PathError::BadEscape => "bad_request",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the request path must start with '/'",
            PathError::EncodedSeparator => {
                "the request path contains an encoded '/', '.' or '\\' (%2F, %2E, %5C)"
            }
            PathError::Nul => "the request path contains a NUL byte",
            PathError::Backslash => "the request path contains a backslash",
            PathError::BadEscape => "the request path contains a malformed percent-escape",
            PathError::Parameter => "the request path contains a ';' (path parameter)",
            PathError::EncodedPercent => "the request path contains an encoded '%' (%25)",
        })
    }
}

/// Normalise a raw (still percent-encoded) request path under the default rules
/// (`path_parameters = "reject"`).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    normalize_with(raw, PathParameters::Reject)
}

/// Normalise a raw (still percent-encoded) request path. The result always starts with `/`
/// and keeps a trailing slash when the input had one.
pub fn normalize_with(raw: &str, params: PathParameters) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = canonical_escapes(raw, params == PathParameters::Reject)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Validate escapes, decode the unreserved ones, upper-case the rest; with `strict`, refuse
/// `;`, `%3B` and `%25`.
fn canonical_escapes(raw: &str, strict: bool) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b';' if strict => return Err(PathError::Parameter),
            b'%' => {
                let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => (hex_val(h), hex_val(l)),
                    _ => return Err(PathError::BadEscape),
                };
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let byte = hi << 4 | lo;
                match byte {
                    0 => return Err(PathError::Nul),
                    b'/' | b'.' | b'\\' => return Err(PathError::EncodedSeparator),
                    b';' if strict => return Err(PathError::Parameter),
                    b'%' if strict => return Err(PathError::EncodedPercent),
                    b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~' => {
                        out.push(b as char)
                    }
                    b => {
                        out.push('%');
                        out.push(HEX[(b >> 4) as usize] as char);
                        out.push(HEX[(b & 0xf) as usize] as char);
                    }
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        // Copy the run up to the next byte that needs a look; it is valid UTF-8 because
        // it starts and ends at ASCII boundaries of a `str`.
        let start = i;
        while i < bytes.len()
            && !(matches!(bytes[i], 0 | b'\\' | b'%') || (strict && bytes[i] == b';'))
        {
            i += 1;
        }
        out.push_str(&raw[start..i]);
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_dot_segments_and_merges_slashes() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/api/../admin", "/admin"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
            ("/a/..b/c", "/a/..b/c"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn decodes_unreserved_and_uppercases_other_escapes() {
        assert_eq!(normalize("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize("/a%7eb").unwrap(), "/a~b");
        assert_eq!(normalize("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(normalize("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn refuses_encoded_separators_nul_and_bad_escapes() {
        for raw in ["/api/%2e%2e/admin", "/a%2Fb", "/a%2fb", "/a%5cb", "/x%2E"] {
            assert_eq!(normalize(raw), Err(PathError::EncodedSeparator), "{raw}");
        }
        assert_eq!(normalize("/a%00"), Err(PathError::Nul));
        assert_eq!(normalize("/a\0"), Err(PathError::Nul));
        assert_eq!(normalize("/a\\b"), Err(PathError::Backslash));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%4"), Err(PathError::BadEscape));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn refuses_parameters_and_encoded_percent_unless_allowed() {
        for raw in [
            "/admin;x",
            "/x/..;/admin",
            "/.;/admin",
            "/a;",
            "/admin%3bx",
            "/a%3B",
        ] {
            assert_eq!(normalize(raw), Err(PathError::Parameter), "{raw}");
        }
        for raw in ["/%2561dmin", "/admin%252f", "/a%25"] {
            assert_eq!(normalize(raw), Err(PathError::EncodedPercent), "{raw}");
        }
        let allow = |raw| normalize_with(raw, PathParameters::Allow);
        assert_eq!(allow("/admin;x").unwrap(), "/admin;x");
        assert_eq!(allow("/x/..;/admin").unwrap(), "/x/..;/admin");
        assert_eq!(allow("/a/;/../b;c").unwrap(), "/a/b;c");
        assert_eq!(allow("/%2561dmin").unwrap(), "/%2561dmin");
        assert_eq!(allow("/a%3bb%25").unwrap(), "/a%3Bb%25");
        // Still refused with "allow": encoded separators.
        assert_eq!(allow("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(PathError::Parameter.reason(), "path_parameter");
        assert_eq!(PathError::EncodedPercent.reason(), "encoded_percent");
    }
}
