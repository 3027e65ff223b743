//! HTTP/1.1 request heads as the gateway frames them: the request line and header fields
//! (httparse, strict), then the framing decision RFC 9112 §6 asks of a server, in one
//! place; and the chunked body decoder ([`chunked`]).
//!
//! This is the framing core of issue 17 step 5 (an HTTP/1 server path without hyper's
//! dispatcher). It does not serve traffic yet: hyper's parser does, and
//! `tests/properties_http1.rs` holds this one to it — on generated requests both must
//! refuse, or both must accept the same method, target, fields, body and keep-alive. The
//! two places where this parser decides alone are the gateway's own rules
//! ([`coding_refusal`]: a transfer coding other than `chunked`, 501, and `chunked` applied
//! twice, 400), which the pipeline's check phase applies today, by the same function, right
//! after hyper.
//!
//! The rules, in the order hyper applies them (so the same request gets the same answer):
//! - a head over `max_head` bytes, more than [`MAX_HEADERS`] fields, or a name of 64 KiB:
//!   431; a target over [`MAX_URI_LEN`]: 414; any syntax httparse refuses (obs-fold, a
//!   space before the colon, control characters, bare CR, a bad version): 400;
//! - fields are read in order: `transfer-encoding` on HTTP/1.0 is refused; it drops any
//!   `content-length` seen before it, and one after it is dropped unread; a `content-length`
//!   (before any `transfer-encoding`) must be digits only (no list, sign or space), and
//!   equal to any earlier one (a length over 2^64 − 3 is 431, as hyper answers);
//! - framing is chunked when the last coding of the last `transfer-encoding` line is
//!   `chunked`; any other last coding is refused; a length when only `content-length`
//!   gave one; none otherwise;
//! - both fields present: framed by `transfer-encoding`, and the connection closes after;
//! - keep-alive: HTTP/1.1 unless a `connection` line carries `close`; HTTP/1.0 only with
//!   `keep-alive` (and no `close`).

pub mod chunked;

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

/// The most header fields a request may carry (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// The longest request target (hyper's limit).
pub const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;
/// The largest content-length a body may declare (hyper's `DecodedLength::MAX_LEN`).
const MAX_LENGTH: u64 = u64::MAX - 2;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no length, or a length of 0).
    Empty,
    /// Exactly this many bytes (more than 0).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    /// The fields as sent, less a `content-length` that `transfer-encoding` overrides.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    /// `expect: 100-continue`.
    pub expect_continue: bool,
    /// `CONNECT`, or `upgrade` on HTTP/1.1.
    pub upgrade: bool,
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than the limit")]
    TooLarge,
    #[error("the request target is longer than {MAX_URI_LEN} bytes")]
    UriTooLong,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("invalid or conflicting content-length")]
    ContentLength,
    #[error("transfer-encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("the last transfer coding is not chunked")]
    NotChunked,
    #[error("the only transfer coding the gateway implements is chunked")]
    UnsupportedCoding,
    #[error("the chunked transfer coding is applied more than once")]
    RepeatedChunked,
}

impl HeadError {
    /// The access-log reason of the refusal.
    pub fn reason(self) -> &'static str {
        match self {
            HeadError::TooLarge => "header_too_large",
            HeadError::UriTooLong => "uri_too_long",
            HeadError::Malformed(_) => "malformed_request",
            HeadError::ContentLength => "bad_content_length",
            HeadError::TransferEncodingOnHttp10 | HeadError::NotChunked => "bad_transfer_encoding",
            HeadError::UnsupportedCoding => "unsupported_transfer_coding",
            HeadError::RepeatedChunked => "repeated_chunked",
        }
    }
}

/// Parse the request head at the start of `buf`: `Ok(None)` while it is incomplete (the
/// caller reads more, or refuses with [`HeadError::TooLarge`] once `buf` holds `max_head`
/// bytes: this function does so itself), else the head and how many bytes it took.
/// `spare` is an emptied map to fill (the previous response's, so its capacity is kept).
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
    spare: HeaderMap,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    // Uninitialised: httparse writes the fields it finds (hyper does the same, to save
    // zeroing 3 KiB per request).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(malformed(e))),
    };
    if len > max_head {
        return Err(HeadError::TooLarge);
    }
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_URI_LEN {
        return Err(HeadError::UriTooLong);
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("method"))?;
    let http11 = req.version == Some(1);
    if req.headers.iter().any(|f| f.name.len() >= 1 << 16) {
        return Err(HeadError::TooLarge);
    }
    // One copy of the head; the target, names and values are cut from it at the offsets
    // httparse found them in `buf`.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let cut = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        head.slice(start..start + s.len())
    };
    let uri = Uri::from_maybe_shared(cut(target.as_bytes()))
        .map_err(|_| HeadError::Malformed("request target"))?;

    let mut frame = Frame::new(http11, method == Method::CONNECT);
    let mut headers = spare;
    headers.clear();
    headers.reserve(req.headers.len());
    for f in req.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| HeadError::Malformed("header name"))?;
        let value = HeaderValue::from_maybe_shared(cut(f.value))
            .map_err(|_| HeadError::Malformed("header value"))?;
        if frame.field(&name, &value, &mut headers)? {
            headers.append(name, value);
        }
    }
    let (framing, keep_alive) = frame.decide(&headers)?;
    Ok(Some((
        RequestHead {
            method,
            uri,
            version: if http11 {
                Version::HTTP_11
            } else {
                Version::HTTP_10
            },
            headers,
            framing,
            keep_alive,
            expect_continue: frame.expect_continue,
            upgrade: frame.upgrade,
        },
        len,
    )))
}

fn malformed(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "method or request target",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "HTTP version",
    }
}

/// The framing state while the fields are read in order.
struct Frame {
    http11: bool,
    length: Option<u64>,
    saw_length: bool,
    saw_coding: bool,
    /// The last `transfer-encoding` line ends in `chunked`.
    last_chunked: bool,
    keep_alive: bool,
    saw_close: bool,
    expect_continue: bool,
    upgrade: bool,
}

impl Frame {
    fn new(http11: bool, connect: bool) -> Frame {
        Frame {
            http11,
            length: None,
            saw_length: false,
            saw_coding: false,
            last_chunked: false,
            keep_alive: http11,
            saw_close: false,
            expect_continue: false,
            upgrade: connect,
        }
    }

    /// Take one field into account; `false`: do not keep it in the head.
    fn field(
        &mut self,
        name: &HeaderName,
        value: &HeaderValue,
        headers: &mut HeaderMap,
    ) -> Result<bool, HeadError> {
        match *name {
            header::TRANSFER_ENCODING => {
                if !self.http11 {
                    return Err(HeadError::TransferEncodingOnHttp10);
                }
                self.saw_coding = true;
                if self.length.take().is_some() {
                    headers.remove(header::CONTENT_LENGTH);
                }
                let text = value.to_str().ok();
                self.last_chunked = text
                    .and_then(|s| s.rsplit(',').next())
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            }
            header::CONTENT_LENGTH => {
                self.saw_length = true;
                if self.saw_coding {
                    return Ok(false);
                }
                let n = content_length(value).ok_or(HeadError::ContentLength)?;
                match self.length {
                    Some(prev) if prev != n => return Err(HeadError::ContentLength),
                    Some(_) => return Ok(false),
                    None if n > MAX_LENGTH => return Err(HeadError::TooLarge),
                    None => self.length = Some(n),
                }
            }
            header::CONNECTION => {
                if self.saw_close || has_token(value, "close") {
                    self.saw_close = true;
                    self.keep_alive = false;
                } else if !self.keep_alive {
                    self.keep_alive = has_token(value, "keep-alive");
                }
            }
            header::EXPECT => {
                self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
            header::UPGRADE => self.upgrade = self.http11,
            _ => {}
        }
        Ok(true)
    }

    /// The framing, from the state and the `transfer-encoding` lines kept in `headers`.
    fn decide(&self, headers: &HeaderMap) -> Result<(Framing, bool), HeadError> {
        if self.saw_coding {
            if !self.last_chunked {
                return Err(HeadError::NotChunked);
            }
            if let Some(e) = coding_refusal(headers) {
                return Err(e);
            }
            let keep_alive = self.keep_alive && !self.saw_length;
            return Ok((Framing::Chunked, keep_alive));
        }
        let framing = match self.length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        };
        Ok((framing, self.keep_alive))
    }
}

/// The gateway's own rule on the transfer codings of a request (all its
/// `transfer-encoding` lines): one `chunked` and nothing else. Any other coding is
/// [`HeadError::UnsupportedCoding`] (501, RFC 9112 §6.1, as NGINX answers: forwarding the
/// body with only the chunked layer removed would hand the backend still-coded bytes);
/// `chunked` twice is [`HeadError::RepeatedChunked`] (§7: a sender must not). The parser
/// applies it after its own check that the last coding is `chunked`; the pipeline applies
/// it to what hyper's parser let through.
pub fn coding_refusal(headers: &HeaderMap) -> Option<HeadError> {
    let (mut chunked, mut other) = (0u32, false);
    let codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty());
    for c in codings {
        if c.eq_ignore_ascii_case(b"chunked") {
            chunked += 1;
        } else {
            other = true;
        }
    }
    if other {
        Some(HeadError::UnsupportedCoding)
    } else {
        (chunked > 1).then_some(HeadError::RepeatedChunked)
    }
}

/// A `content-length` value: digits only. A list (`5, 5`), which RFC 9110 §8.6 lets a
/// recipient accept when its members are equal, is refused, as hyper's server does; the
/// same length on two lines is accepted.
fn content_length(value: &HeaderValue) -> Option<u64> {
    let s = value.as_bytes();
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wire: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse_request(wire.as_bytes(), 8192, HeaderMap::new())
    }

    fn head(wire: &str) -> RequestHead {
        parse(wire).unwrap().unwrap().0
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = head("POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!(h.framing, Framing::Length(5));
        let h = head("POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(h.headers.get_all(header::CONTENT_LENGTH).iter().count(), 1);
        let h = head("POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        // Both: transfer-encoding wins, content-length is dropped, the connection closes.
        let h = head("POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        // A content-length after transfer-encoding is neither parsed nor kept.
        let h = head("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: x\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        let h = head("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nconnection: close\r\nconnection: keep-alive\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("PUT / HTTP/1.1\r\nexpect: 100-Continue\r\ncontent-length: 1\r\n\r\n");
        assert!(h.expect_continue);
        assert!(head("CONNECT a:1 HTTP/1.1\r\n\r\n").upgrade);
        assert!(!head("GET / HTTP/1.0\r\nupgrade: x\r\n\r\n").upgrade);
    }

    #[test]
    fn ambiguous_framing_is_refused_by_name() {
        let cases = [
            (
                "content-length: 5\r\ncontent-length: 6",
                HeadError::ContentLength,
            ),
            ("content-length: 5, 6", HeadError::ContentLength),
            ("content-length: 5, 5", HeadError::ContentLength),
            ("content-length: +5", HeadError::ContentLength),
            ("content-length: -1", HeadError::ContentLength),
            ("content-length: 0x5", HeadError::ContentLength),
            ("content-length: ", HeadError::ContentLength),
            (
                "content-length: 99999999999999999999",
                HeadError::ContentLength,
            ),
            ("content-length: 18446744073709551614", HeadError::TooLarge),
            (
                "transfer-encoding: chunked, identity",
                HeadError::NotChunked,
            ),
            (
                "transfer-encoding: chunked\r\ntransfer-encoding: x",
                HeadError::NotChunked,
            ),
            ("transfer-encoding: xchunked", HeadError::NotChunked),
            ("transfer-encoding: ", HeadError::NotChunked),
            (
                "transfer-encoding: gzip, chunked",
                HeadError::UnsupportedCoding,
            ),
            (
                "transfer-encoding: identity\r\ntransfer-encoding: chunked",
                HeadError::UnsupportedCoding,
            ),
            (
                "transfer-encoding: chunked, chunked",
                HeadError::RepeatedChunked,
            ),
        ];
        for (fields, want) in cases {
            let wire = format!("POST / HTTP/1.1\r\nhost: a\r\n{fields}\r\n\r\n");
            assert_eq!(parse(&wire).err(), Some(want), "{fields}");
        }
        let e = parse("POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n").err();
        assert_eq!(e, Some(HeadError::TransferEncodingOnHttp10));
        for bad in [
            "POST / HTTP/1.1\r\ntransfer-encoding : chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nx: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\rb\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.2\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeadError::Malformed(_))),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn the_coding_rule_and_its_reasons() {
        let te = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for l in lines {
                h.append(header::TRANSFER_ENCODING, HeaderValue::from_str(l).unwrap());
            }
            coding_refusal(&h)
        };
        assert_eq!(te(&[]), None);
        assert_eq!(te(&["chunked"]), None);
        assert_eq!(te(&["Chunked ,"]), None);
        assert_eq!(te(&["gzip, chunked"]), Some(HeadError::UnsupportedCoding));
        assert_eq!(
            te(&["identity", "chunked"]),
            Some(HeadError::UnsupportedCoding)
        );
        assert_eq!(
            te(&["chunked", "chunked"]),
            Some(HeadError::RepeatedChunked)
        );
        assert_eq!(
            HeadError::UnsupportedCoding.reason(),
            "unsupported_transfer_coding"
        );
        assert_eq!(HeadError::RepeatedChunked.reason(), "repeated_chunked");
    }

    #[test]
    fn limits() {
        assert!(parse("GET / HTTP/1.1\r\nhost: a\r\n").unwrap().is_none());
        let long = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&long).err(), Some(HeadError::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x{i}: a\r\n")).collect();
        let wire = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(&wire).err(), Some(HeadError::TooLarge));
        let uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_LEN));
        let e = parse_request(uri.as_bytes(), 1 << 20, HeaderMap::new()).err();
        assert_eq!(e, Some(HeadError::UriTooLong));
        // A field name of 64 KiB, under a head limit that would let it through.
        let name = format!("GET / HTTP/1.1\r\n{}: a\r\n\r\n", "n".repeat(1 << 16));
        let e = parse_request(name.as_bytes(), 1 << 20, HeaderMap::new()).err();
        assert_eq!(e, Some(HeadError::TooLarge));
        // The head's length is what was consumed; pipelined bytes stay for the next call.
        let wire = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        let (h, n) = parse(wire).unwrap().unwrap();
        assert_eq!(
            (h.uri.path(), &wire[n..]),
            ("/1", "GET /2 HTTP/1.1\r\n\r\n")
        );
    }
}
