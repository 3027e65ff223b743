//! llhttp's own request cases (nodejs/llhttp `test/request/*.md`, the parser of Node.js),
//! the ones about framing and syntax: each named by its file and title. llhttp's inputs
//! carry no `Host`, so the cases add `host: localhost` (a missing one is 400 of its own) and
//! `connection: close` after the request line, unless the case has its own; otherwise the
//! bytes are llhttp's. Where an input stops before its head or body is whole (llhttp parses
//! bytes as they come), the case completes it: hyper answers a malformed head only once it
//! holds what ends one (see the last test here). Where llhttp is lenient only in a
//! non-strict mode, its strict expectation is the one taken.
//!
//! Where the gateway departs from llhttp it says so at the case (a Host that is not
//! host[:port], a coding before `chunked`, Upgrade, `"` in a query, raw UTF-8 in a path);
//! three departures recur:
//! - llhttp knows a fixed list of methods (`MKCOLA` and `ANNOUNCE` over HTTP are errors to
//!   it); RFC 9110 §9.1 makes a method any token, and the gateway forwards any (a route may
//!   list the ones it takes). They arrive as they are.
//! - llhttp refuses a bare LF ending a field line; RFC 9112 §2.2 lets a recipient take a
//!   single LF as the line terminator, and hyper does. That reading is the gateway's only
//!   one, and what the backend gets is the gateway's own serialisation, CRLF throughout,
//!   so there is no second parser to disagree with it.
//! - hyper is more lenient than llhttp's strict mode in a chunk-size line (whitespace
//!   before the CRLF or `;`, an empty or unbalanced extension): the gateway decodes the
//!   chunks and re-frames the body itself, extensions are not forwarded, so the backend
//!   reads one body, the one the chunk sizes say.

use super::corpus::{framed, malformed_body, refused, setup_with};
use super::{exchange, CLOSE, H};

#[tokio::test]
async fn llhttp_strict_refusals_reach_nothing() {
    let c = |what, wire: &str, status| (what, wire.as_bytes().to_vec(), status);
    let hc = format!("{H}{CLOSE}");
    let cases = vec![
        // content-length.md
        c("llhttp content-length.md: Error on Content-Length overflow", &format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 1000000000000000000000\r\n\r\n"), 400),
        c("llhttp content-length.md: Error on duplicate Content-Length", &format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 1\r\nContent-Length: 2\r\n\r\na"), 400),
        c("llhttp content-length.md: Error on simultaneous Content-Length and Transfer-Encoding: identity", &format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 1\r\nTransfer-Encoding: identity\r\n\r\na"), 400),
        c("llhttp content-length.md: Invalid whitespace token with Content-Length header field", &format!("PUT /url HTTP/1.1\r\n{hc}Connection: upgrade\r\nContent-Length : 4\r\nUpgrade: ws\r\n\r\nabcdefgh"), 400),
        c("llhttp content-length.md: Spaces in Content-Length #2", &format!("POST / HTTP/1.1\r\n{hc}Content-Length: 4 2\r\n\r\nabcd"), 400),
        c("llhttp content-length.md: Spaces in Content-Length #3", &format!("POST / HTTP/1.1\r\n{hc}Content-Length: 13 37\r\n\r\nabcd"), 400),
        c("llhttp content-length.md: Empty Content-Length", &format!("POST / HTTP/1.1\r\n{hc}Content-Length:\r\n\r\n"), 400),
        c("llhttp content-length.md: Content-Length with CR instead of dash", &format!("PUT /url HTTP/1.1\r\n{hc}Content\rLength: 003\r\n\r\nabc"), 400),
        c("llhttp content-length.md: Missing CRLF-CRLF before body", &format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 3\r\n\rabc\r\n\r\n"), 400),
        // connection.md
        c("llhttp connection.md: Not treating \\r as -", &format!("PUT /url HTTP/1.1\r\n{H}Connection: keep\ralive\r\n\r\n"), 400),
        c("llhttp connection.md: Invalid whitespace token with Connection header field", &format!("PUT /url HTTP/1.1\r\n{H}Connection : upgrade\r\nContent-Length: 4\r\nUpgrade: ws\r\n\r\nabcdefgh"), 400),
        // invalid.md
        c("llhttp invalid.md: ICE protocol and GET method", "GET /music/sweet/music ICE/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp invalid.md: ICE protocol, but not really", "GET /music/sweet/music IHTTP/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp invalid.md: RTSP protocol and PUT method", "PUT /music/sweet/music RTSP/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp invalid.md: Headers separated by CR", &format!("GET / HTTP/1.1\r\n{hc}Foo: 1\rBar: 2\r\n\r\n"), 400),
        c("llhttp invalid.md: Headers separated by dummy characters", "GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        c("llhttp invalid.md: Empty headers separated by CR", "POST / HTTP/1.1\r\nConnection: Close\r\nHost: localhost:5000\r\nx:\rTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n", 400),
        c("llhttp invalid.md: Invalid header token #1", &format!("GET / HTTP/1.1\r\n{hc}Fo@: Failure\r\n\r\n"), 400),
        c("llhttp invalid.md: Invalid header token #2", &format!("GET / HTTP/1.1\r\n{hc}Foo\x01\test: Bar\r\n\r\n"), 400),
        c("llhttp invalid.md: Invalid header token #3", &format!("GET / HTTP/1.1\r\n{hc}: Bar\r\n\r\n"), 400),
        c("llhttp invalid.md: Illegal header field name line folding", &format!("GET / HTTP/1.1\r\n{hc}name\r\n : value\r\n\r\n"), 400),
        c("llhttp invalid.md: Corrupted Connection header", &format!("GET / HTTP/1.1\r\n{hc}Connection\r\x1b5\u{d5}eep-Alive\r\nAccept-Encoding: gzip\r\n\r\n"), 400),
        c("llhttp invalid.md: Corrupted header name", &format!("GET / HTTP/1.1\r\n{hc}X-Some-Header\r\x1b5\u{d5}eep-Alive\r\nAccept-Encoding: gzip\r\n\r\n"), 400),
        c("llhttp invalid.md: Invalid HTTP version", &format!("GET / HTTP/5.6\r\n{hc}\r\n"), 400),
        c("llhttp invalid.md: Invalid space after start line", &format!("GET / HTTP/1.1\r\n Host: foo\r\n{hc}\r\n"), 400),
        c("llhttp invalid.md: Spaces before headers", "POST /hello HTTP/1.1\r\nHost: localhost\r\nFoo: bar\r\n Content-Length: 38\r\n\r\nGET /bye HTTP/1.1\r\nHost: localhost\r\n\r\n", 400),
        // lenient-header-value-relaxed.md, lenient-headers.md: their strict cases
        c("llhttp lenient-header-value-relaxed.md: Control char in header value (strict)", &format!("GET /url HTTP/1.1\r\n{hc}Header1: hello\x0cworld\r\n\r\n"), 400),
        c("llhttp lenient-headers.md: Header value", &format!("GET /url HTTP/1.1\r\n{hc}Header1: \x0c\r\n\r\n"), 400),
        // method.md: targets that are not origin-form or absolute-form, other protocols
        c("llhttp method.md: CONNECT request", "CONNECT 0-home0.netscape.com:443 HTTP/1.0\r\nHost: 0-home0.netscape.com:443\r\nUser-agent: Mozilla/1.1N\r\nProxy-authorization: basic aGVsbG86d29ybGQ=\r\n\r\nsome data\r\nand yet even more data", 400),
        c("llhttp method.md: CONNECT request with CAPS", "CONNECT HOME0.NETSCAPE.COM:443 HTTP/1.0\r\nHost: HOME0.NETSCAPE.COM:443\r\nUser-agent: Mozilla/1.1N\r\nProxy-authorization: basic aGVsbG86d29ybGQ=\r\n\r\n", 400),
        c("llhttp uri.md: Underscore in hostname", "CONNECT home_0.netscape.com:443 HTTP/1.0\r\nHost: home_0.netscape.com:443\r\nUser-agent: Mozilla/1.1N\r\nProxy-authorization: basic aGVsbG86d29ybGQ=\r\n\r\n", 400),
        c("llhttp method.md: CONNECT with body", "CONNECT foo.bar.com:443 HTTP/1.0\r\nHost: foo.bar.com:443\r\nUser-agent: Mozilla/1.1N\r\nProxy-authorization: basic aGVsbG86d29ybGQ=\r\nContent-Length: 10\r\n\r\nblarfcicle\"", 400),
        c("llhttp method.md: M-SEARCH request", "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nST: \"ssdp:all\"\r\nconnection: close\r\n\r\n", 400),
        c("llhttp method.md: SOURCE request with ICE", "SOURCE /music/sweet/music ICE/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp method.md: OPTIONS request with RTSP", "OPTIONS /music/sweet/music RTSP/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp method.md: ANNOUNCE request with RTSP", "ANNOUNCE /music/sweet/music RTSP/1.0\r\nHost: example.com\r\nconnection: close\r\n\r\n", 400),
        c("llhttp method.md: PRI request HTTP2", &format!("PRI * HTTP/1.1\r\n{hc}\r\nSM\r\n\r\n"), 400),
        // sample.md
        c("llhttp sample.md: No HTTP version", "GET /\r\n\r\n", 400),
        c("llhttp sample.md: Line folding in header value with LF", &format!("GET / HTTP/1.1\r\n{H}Line1:   abc\n\tdef\n ghi\n\t\tjkl\n  mno \n\t \tqrs\nLine2: \t line2\t\nLine3:\n line3\nLine4: \n \nConnection:\n close\n\n"), 400),
        c("llhttp sample.md: No LF after CR", "GET / HTTP/1.1\rLine: 1\r\n\r\n", 400),
        // llhttp accepts these two; the gateway refuses a Host that is not host[:port]
        // (README, 400 `bad_host`). Firefox's `keep-alive` is `close` here, so that the
        // refusal ends the exchange.
        c("llhttp sample.md: curl GET (Host 0.0.0.0=5000)", "GET /test HTTP/1.1\r\nUser-Agent: curl/7.18.0 (i486-pc-linux-gnu) libcurl/7.18.0 OpenSSL/0.9.8g zlib/1.2.3.3 libidn/1.1\r\nHost: 0.0.0.0=5000\r\nAccept: */*\r\nconnection: close\r\n\r\n", 400),
        c("llhttp sample.md: Firefox GET (Host 0.0.0.0=5000)", "GET /favicon.ico HTTP/1.1\r\nHost: 0.0.0.0=5000\r\nUser-Agent: Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.9) Gecko/2008061015 Firefox/3.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-us,en;q=0.5\r\nAccept-Encoding: gzip,deflate\r\nAccept-Charset: ISO-8859-1,utf-8;q=0.7,*;q=0.7\r\nKeep-Alive: 300\r\nConnection: close\r\n\r\n", 400),
        // transfer-encoding.md
        c("llhttp transfer-encoding.md: Ignoring pigeons", &format!("PUT /url HTTP/1.1\r\n{hc}Transfer-Encoding: pigeons\r\n\r\n"), 400),
        c("llhttp transfer-encoding.md: POST with Transfer-Encoding and Content-Length", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nWorld"), 400),
        c("llhttp transfer-encoding.md: POST with empty Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: foo\r\nContent-Length: 10\r\nTransfer-Encoding:\r\nTransfer-Encoding:\r\nTransfer-Encoding:\r\n\r\n2\r\nAA\r\n0\r\n\r\n", 400),
        c("llhttp transfer-encoding.md: POST with chunked before other transfer coding names", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: chunked, deflate\r\n\r\nWorld"), 400),
        c("llhttp transfer-encoding.md: POST with chunked and duplicate transfer-encoding", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: deflate\r\n\r\nWorld"), 400),
        c("llhttp transfer-encoding.md: POST with chunkedchunked as transfer-encoding", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: chunkedchunked\r\n\r\n5\r\nWorld\r\n0\r\n\r\n"), 400),
        // llhttp accepts a coding before `chunked`; the gateway implements none (README:
        // 501 `not_implemented`, as NGINX answers).
        c("llhttp transfer-encoding.md: POST with chunked as last transfer-encoding", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: deflate, chunked\r\n\r\n5\r\nWorld\r\n0\r\n\r\n"), 501),
        c("llhttp transfer-encoding.md: POST with chunked as last transfer-encoding (multiple headers)", &format!("POST /post_identity_body_world?q=search#hey HTTP/1.1\r\n{hc}Accept: */*\r\nTransfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nWorld\r\n0\r\n\r\n"), 501),
        // uri.md
        // llhttp accepts these quotes; the URI parser (the `http` crate's) refuses `"` in a
        // query.
        c("llhttp uri.md: Quotes in URI", &format!("GET /with_\"lovely\"_quotes?foo=\\\"bar\\\" HTTP/1.1\r\n{hc}\r\n"), 400),
        // llhttp accepts userinfo in an absolute-form target; RFC 9110 §4.2.4 has a recipient
        // treat it as an error, and the gateway's host check does.
        c("llhttp uri.md: host:port and basic auth", &format!("GET http://a%12:b!&*$@localhost:1234/toto HTTP/1.1\r\nhost: localhost:1234\r\n{CLOSE}\r\n"), 400),
        c("llhttp uri.md: Space in URI", &format!("GET /foo bar/ HTTP/1.1\r\n{hc}\r\n"), 400),
    ];
    refused(&cases).await;
}

/// What llhttp parses as messages: the backend reads exactly those (method, target, body).
#[tokio::test]
async fn llhttp_messages_arrive_as_exactly_those_messages() {
    let hc = format!("{H}{CLOSE}");
    let te = "Transfer-Encoding: chunked\r\n";
    let forty_two = "x".repeat(42);
    let cases: Vec<(&str, String, Vec<super::corpus::Want>, Vec<u16>)> = vec![
        // connection.md
        ("llhttp connection.md: Restarting when keep-alive is explicitly", format!("PUT /url HTTP/1.1\r\n{H}Connection: keep-alive\r\n\r\nPUT /url HTTP/1.1\r\n{H}Connection: keep-alive\r\n{CLOSE}\r\n"), vec![("PUT", "/url", ""), ("PUT", "/url", "")], vec![200, 200]),
        // llhttp: "Data after `Connection: close`" is an error; the gateway answers the
        // first message and reads no further.
        ("llhttp connection.md: No restart when keep-alive is off (1.0)", format!("PUT /url HTTP/1.0\r\n{H}\r\nPUT /url HTTP/1.1\r\n{H}\r\n"), vec![("PUT", "/url", "")], vec![200]),
        ("llhttp connection.md: CRLF between requests, implicit keep-alive", format!("POST / HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\n\r\nq=42\r\n\r\nGET / HTTP/1.1\r\nHost: www.example.com\r\n{CLOSE}\r\n"), vec![("POST", "/", "q=42"), ("GET", "/", "")], vec![200, 200]),
        ("llhttp connection.md: CRLF between requests, explicit close", "POST / HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\nConnection: close\r\n\r\nq=42\r\n\r\nGET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n".into(), vec![("POST", "/", "q=42")], vec![200]),
        ("llhttp connection.md: CRLF between requests, explicit close followed by tab", "POST / HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\nConnection: close\t\r\n\r\nq=42\r\n\r\nGET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n".into(), vec![("POST", "/", "q=42")], vec![200]),
        ("llhttp connection.md: Sample (close among other tokens wins)", format!("PUT /url HTTP/1.1\r\n{H}Connection: close, token, upgrade, token, keep-alive\r\n\r\nGET /second HTTP/1.1\r\n{H}\r\n"), vec![("PUT", "/url", "")], vec![200]),
        // The gateway does not upgrade: `upgrade` and `connection` are hop-by-hop and removed,
        // so the backend answers as HTTP/1.1, and what follows the message on the client's
        // connection is read as the next request (llhttp hands it to the new protocol).
        ("llhttp connection.md: Upgrade GET request", "GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nSec-WebSocket-Protocol: sample\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin: http://example.com\r\n\r\nHot diggity dogg\r\n\r\n".into(), vec![("GET", "/demo", "")], vec![200, 400]),
        ("llhttp connection.md: Upgrade POST request", "POST /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: HTTP/2.0\r\nContent-Length: 15\r\n\r\nsweet post bodyHot diggity dogg\r\n\r\n".into(), vec![("POST", "/demo", "sweet post body")], vec![200, 400]),
        ("llhttp connection.md: Multiple tokens with folding and LWS", format!("GET /demo HTTP/1.1\r\n{H}Connection: keep-alive, upgrade\r\nUpgrade: WebSocket\r\n\r\nHot diggity dogg\r\n\r\n"), vec![("GET", "/demo", "")], vec![200, 400]),
        ("llhttp connection.md: Emitting part of body and pausing (then a request)", format!("PUT /url HTTP/1.1\r\n{H}Connection: upgrade\r\nContent-Length: 4\r\nUpgrade: ws\r\n\r\nabcdGET /next HTTP/1.1\r\n{hc}\r\n"), vec![("PUT", "/url", "abcd"), ("GET", "/next", "")], vec![200, 200]),
        // content-length.md
        ("llhttp content-length.md: Content-Length with zeroes", format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 003\r\n\r\nabc"), vec![("PUT", "/url", "abc")], vec![200]),
        ("llhttp content-length.md: Content-Length with follow-up headers", format!("PUT /url HTTP/1.1\r\n{hc}Content-Length: 003\r\nOhai: world\r\n\r\nabc"), vec![("PUT", "/url", "abc")], vec![200]),
        ("llhttp content-length.md: Funky Content-Length with body", format!("GET /get_funky_content_length_body_hello HTTP/1.0\r\n{H}conTENT-Length: 5\r\n\r\nHELLO"), vec![("GET", "/get_funky_content_length_body_hello", "HELLO")], vec![200]),
        ("llhttp content-length.md: Spaces in Content-Length (surrounding)", format!("POST / HTTP/1.1\r\n{hc}Content-Length:  42 \r\n\r\n{forty_two}"), vec![("POST", "/", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")], vec![200]),
        ("llhttp content-length.md: Tabs in Content-Length (surrounding)", format!("POST / HTTP/1.1\r\n{hc}Content-Length:\t42\t  \r\n\r\n{forty_two}"), vec![("POST", "/", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")], vec![200]),
        // invalid.md, where hyper takes a bare LF as the end of a field line (see above)
        ("llhttp invalid.md: Headers separated by LF (LF ends the line)", format!("POST / HTTP/1.1\r\nHost: localhost:5000\r\n{CLOSE}x:x\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"), vec![("POST", "/", "A")], vec![200]),
        ("llhttp invalid.md: Empty headers separated by LF (LF ends the line)", format!("POST / HTTP/1.1\r\nHost: localhost:5000\r\n{CLOSE}x:\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"), vec![("POST", "/", "A")], vec![200]),
        // The desync llhttp guards against needs a second parser that keeps `x\nContent-Length:
        // 23` as one value; the backend reads the gateway's serialisation instead: two
        // messages, the second checked and routed on its own.
        ("llhttp invalid.md: Missing CR between headers (LF ends the line)", "GET / HTTP/1.1\r\nHost: localhost\r\nDummy: x\nContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\nDummy: GET /admin HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n".into(), vec![("GET", "/", "GET / HTTP/1.1\r\nDummy: "), ("GET", "/admin", "")], vec![200, 200]),
        // A method is any token to the gateway (see above).
        ("llhttp invalid.md: Invalid method (a token all the same)", format!("MKCOLA / HTTP/1.1\r\n{hc}\r\n"), vec![("MKCOLA", "/", "")], vec![200]),
        ("llhttp invalid.md: HTTP protocol and ANNOUNCE method (a token all the same)", "ANNOUNCE /music/sweet/music HTTP/1.0\r\nHost: example.com\r\n\r\n".into(), vec![("ANNOUNCE", "/music/sweet/music", "")], vec![200]),
        // method.md
        ("llhttp method.md: REPORT request", format!("REPORT /test HTTP/1.1\r\n{hc}\r\n"), vec![("REPORT", "/test", "")], vec![200]),
        ("llhttp method.md: PATCH request", "PATCH /file.txt HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/example\r\nIf-Match: \"e0023aa4e\"\r\nContent-Length: 10\r\nconnection: close\r\n\r\ncccccccccc".into(), vec![("PATCH", "/file.txt", "cccccccccc")], vec![200]),
        ("llhttp method.md: PURGE request", "PURGE /file.txt HTTP/1.1\r\nHost: www.example.com\r\nconnection: close\r\n\r\n".into(), vec![("PURGE", "/file.txt", "")], vec![200]),
        ("llhttp method.md: SEARCH request", "SEARCH / HTTP/1.1\r\nHost: www.example.com\r\nconnection: close\r\n\r\n".into(), vec![("SEARCH", "/", "")], vec![200]),
        ("llhttp method.md: LINK request", "LINK /images/my_dog.jpg HTTP/1.1\r\nHost: example.com\r\nLink: <http://example.com/profiles/joe>; rel=\"tag\"\r\nLink: <http://example.com/profiles/sally>; rel=\"tag\"\r\nconnection: close\r\n\r\n".into(), vec![("LINK", "/images/my_dog.jpg", "")], vec![200]),
        ("llhttp method.md: UNLINK request", "UNLINK /images/my_dog.jpg HTTP/1.1\r\nHost: example.com\r\nLink: <http://example.com/profiles/sally>; rel=\"tag\"\r\nconnection: close\r\n\r\n".into(), vec![("UNLINK", "/images/my_dog.jpg", "")], vec![200]),
        ("llhttp method.md: SOURCE request", "SOURCE /music/sweet/music HTTP/1.1\r\nHost: example.com\r\nconnection: close\r\n\r\n".into(), vec![("SOURCE", "/music/sweet/music", "")], vec![200]),
        ("llhttp method.md: QUERY request", "QUERY /contacts HTTP/1.1\r\nHost: example.org\r\nContent-Type: example/query\r\nAccept: text/csv\r\nContent-Length: 41\r\nconnection: close\r\n\r\nselect surname, givenname, email limit 10".into(), vec![("QUERY", "/contacts", "select surname, givenname, email limit 10")], vec![200]),
        // pipelining.md (the last body completed: llhttp's input stops one byte short)
        ("llhttp pipelining.md: Should parse multiple events", format!("POST /aaa HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nAAA\r\nPUT /bbb HTTP/1.1\r\n{H}Content-Length: 4\r\n\r\nBBBB\r\nPATCH /ccc HTTP/1.1\r\n{hc}Content-Length: 5\r\n\r\nCCCCC"), vec![("POST", "/aaa", "AAA"), ("PUT", "/bbb", "BBBB"), ("PATCH", "/ccc", "CCCCC")], vec![200, 200, 200]),
        // sample.md
        ("llhttp sample.md: Simple request", format!("OPTIONS /url HTTP/1.1\r\n{hc}Header1: Value1\r\nHeader2:\t Value2\r\n\r\n"), vec![("OPTIONS", "/url", "")], vec![200]),
        ("llhttp sample.md: Request with method starting with H", format!("HEAD /url HTTP/1.1\r\n{hc}\r\n"), vec![("HEAD", "/url", "")], vec![200]),
        ("llhttp sample.md: DUMBPACK", format!("GET /dumbpack HTTP/1.1\r\n{hc}aaaaaaaaaaaaa:++++++++++\r\n\r\n"), vec![("GET", "/dumbpack", "")], vec![200]),
        ("llhttp sample.md: No headers and no body", format!("GET /get_no_headers_no_body/world HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/get_no_headers_no_body/world", "")], vec![200]),
        ("llhttp sample.md: One header and no body", format!("GET /get_one_header_no_body HTTP/1.1\r\n{hc}Accept: */*\r\n\r\n"), vec![("GET", "/get_one_header_no_body", "")], vec![200]),
        ("llhttp sample.md: Apache bench GET", "GET /test HTTP/1.0\r\nHost: 0.0.0.0:5000\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n".into(), vec![("GET", "/test", "")], vec![200]),
        ("llhttp sample.md: Prefix newline", format!("\r\nGET /test HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/test", "")], vec![200]),
        ("llhttp sample.md: Request starting with CRLF", format!("\r\nGET /url HTTP/1.1\r\n{hc}Header1: Value1\r\n\r\n"), vec![("GET", "/url", "")], vec![200]),
        ("llhttp sample.md: Extended Characters", format!("GET / HTTP/1.1\r\n{hc}Test: D\u{fc}sseldorf\r\n\r\n"), vec![("GET", "/", "")], vec![200]),
        ("llhttp sample.md: 255 ASCII in header value", format!("OPTIONS /url HTTP/1.1\r\n{hc}Header1: Value1\r\nHeader2: \u{ff}Value2\r\n\r\n"), vec![("OPTIONS", "/url", "")], vec![200]),
        // transfer-encoding.md
        ("llhttp transfer-encoding.md: Parse chunks with lowercase size", format!("PUT /url HTTP/1.1\r\n{hc}{te}\r\na\r\n0123456789\r\n0\r\n\r\n"), vec![("PUT", "/url", "0123456789")], vec![200]),
        ("llhttp transfer-encoding.md: Parse chunks with uppercase size", format!("PUT /url HTTP/1.1\r\n{hc}{te}\r\nA\r\n0123456789\r\n0\r\n\r\n"), vec![("PUT", "/url", "0123456789")], vec![200]),
        ("llhttp transfer-encoding.md: POST with Transfer-Encoding: chunked", format!("POST /post_chunked_all_your_base HTTP/1.1\r\n{hc}{te}\r\n1e\r\nall your base are belong to us\r\n0\r\n\r\n"), vec![("POST", "/post_chunked_all_your_base", "all your base are belong to us")], vec![200]),
        ("llhttp transfer-encoding.md: Two chunks and triple zero prefixed end chunk", format!("POST /two_chunks_mult_zero_end HTTP/1.1\r\n{hc}{te}\r\n5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n"), vec![("POST", "/two_chunks_mult_zero_end", "hello world")], vec![200]),
        ("llhttp transfer-encoding.md: Trailing headers", format!("POST /chunked_w_trailing_headers HTTP/1.1\r\n{hc}{te}\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n"), vec![("POST", "/chunked_w_trailing_headers", "hello world")], vec![200]),
        ("llhttp transfer-encoding.md: Chunk extensions", format!("POST /chunked_w_unicorns_after_length HTTP/1.1\r\n{hc}{te}\r\n5;ilovew3;somuchlove=aretheseparametersfor;another=withvalue\r\nhello\r\n6;blahblah;blah\r\n world\r\n0\r\n\r\n"), vec![("POST", "/chunked_w_unicorns_after_length", "hello world")], vec![200]),
        ("llhttp transfer-encoding.md: Chunk extensions quoting", format!("POST /chunked_w_unicorns_after_length HTTP/1.1\r\n{hc}{te}\r\n5;ilovew3=\"I \\\"love\\\"; \\\\extensions\\\\\";somuchlove=\"aretheseparametersfor\";blah;foo=bar\r\nhello\r\n6;blahblah;blah\r\n world\r\n0\r\n\r\n"), vec![("POST", "/chunked_w_unicorns_after_length", "hello world")], vec![200]),
        // hyper's chunk-size line is more lenient than llhttp's strict mode (see above).
        ("llhttp transfer-encoding.md: No extension after semicolon (hyper lenient)", format!("POST /chunked_w_unicorns_after_length HTTP/1.1\r\n{hc}{te}\r\n2;\r\naa\r\n0\r\n\r\n"), vec![("POST", "/chunked_w_unicorns_after_length", "aa")], vec![200]),
        ("llhttp transfer-encoding.md: Unbalanced chunk extensions quoting (hyper lenient)", format!("POST /chunked_w_unicorns_after_length HTTP/1.1\r\n{hc}{te}\r\n5;ilovew3=\"abc\";somuchlove=\"def; ghi\r\nhello\r\n6;blahblah;blah\r\n world\r\n0\r\n\r\n"), vec![("POST", "/chunked_w_unicorns_after_length", "hello world")], vec![200]),
        ("llhttp transfer-encoding.md: Space after chunk header (hyper lenient)", format!("PUT /url HTTP/1.1\r\n{hc}{te}\r\na \r\n0123456789\r\n0\r\n\r\n"), vec![("PUT", "/url", "0123456789")], vec![200]),
        // uri.md (absolute-form with the gateway's own host: the authority must agree with
        // `Host`)
        // llhttp's strict mode refuses raw UTF-8 in a path, and RFC 9112 §3.2 allows only
        // ASCII there; the gateway does not refuse it (README lists what it refuses) and
        // forwards it unchanged, as one message.
        ("llhttp uri.md: Disallow UTF-8 in URI path in strict mode (forwarded as is)", "GET /\u{3b4}\u{b6}/\u{3b4}t/pope?q=1#narf HTTP/1.1\r\nHost: github.com\r\nconnection: close\r\n\r\n".into(), vec![("GET", "/\u{3b4}\u{b6}/\u{3b4}t/pope?q=1", "")], vec![200]),
        ("llhttp uri.md: Query URL with question mark", format!("GET /test.cgi?foo=bar?baz HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/test.cgi?foo=bar?baz", "")], vec![200]),
        ("llhttp uri.md: Host terminated by a query string", format!("GET http://localhost?hail=all HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/?hail=all", "")], vec![200]),
        ("llhttp uri.md: host:port terminated by a query string", format!("GET http://localhost:1234?hail=all HTTP/1.1\r\nhost: localhost:1234\r\n{CLOSE}\r\n"), vec![("GET", "/?hail=all", "")], vec![200]),
        ("llhttp uri.md: Query URL with vertical bar character", format!("GET /test.cgi?query=| HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/test.cgi?query=|", "")], vec![200]),
        ("llhttp uri.md: host:port terminated by a space", format!("GET http://localhost:1234 HTTP/1.1\r\nhost: localhost:1234\r\n{CLOSE}\r\n"), vec![("GET", "/", "")], vec![200]),
        ("llhttp uri.md: Fragment in URI", format!("GET /forums/1/topics/2375?page=1#posts-17408 HTTP/1.1\r\n{hc}\r\n"), vec![("GET", "/forums/1/topics/2375?page=1", "")], vec![200]),
    ];
    framed(&cases).await;
}

/// llhttp's chunked bodies that are errors in strict mode, each followed by a request: the
/// body never arrives whole and the request after it is not read.
#[tokio::test]
async fn llhttp_malformed_chunked_bodies_smuggle_nothing() {
    let hc = format!("{H}{CLOSE}");
    let te = "Transfer-Encoding: chunked\r\n";
    let tail = format!("GET /smuggled HTTP/1.1\r\n{H}\r\n");
    let cases = vec![
        ("llhttp invalid.md: Only LFs present", format!("POST / HTTP/1.1\n{H}Transfer-Encoding: chunked\nTrailer: Baz\r\nFoo: abc\nBar: def\n\n1\nA\n1;abc\nB\n1;def=ghi\nC\n1;jkl=\"mno\"\nD\n0\n\nBaz: ghi\n\n{tail}")),
        ("llhttp transfer-encoding.md: No semicolon before chunk extensions", format!("POST /chunked_w_unicorns_after_length HTTP/1.1\r\n{hc}Transfer-encoding: chunked\r\n\r\n2 erfrferferf\r\naa\r\n0 rrrr\r\n\r\n{tail}")),
        ("llhttp transfer-encoding.md: Missing last-chunk", format!("PUT /url HTTP/1.1\r\n{hc}{te}\r\n3\r\nfoo\r\n{tail}")),
        ("llhttp transfer-encoding.md: Validate chunk parameters", format!("PUT /url HTTP/1.1\r\n{hc}{te}\r\n3 \n  \r\nfoo\r\n0\r\n\r\n{tail}")),
        ("llhttp transfer-encoding.md: Chunk header not terminated by CRLF", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close \r\nTransfer-Encoding: chunked \r\n\r\n5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\nGET /smuggled HTTP/1.1 \r\nHost: a\r\nContent-Length: 5\r\n\r\n0\r\n\r\n".into()),
        ("llhttp transfer-encoding.md: Chunk data not terminated by CRLF", format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close \r\nTransfer-Encoding: chunked \r\n\r\n5\r\nABCDE0\r\n\r\n{tail}")),
    ];
    malformed_body(&cases).await;
}

/// llhttp's "Missing CRLF-CRLF before body" as llhttp sends it, with no empty line after
/// (the refusal table adds one). hyper parses a head that came in pieces again only once it
/// holds what ends one, and a connection without ALPN gets its first 24 bytes replayed to
/// hyper on their own (the HTTP/2 sniffing), so the error is never seen: the connection waits
/// like any unfinished head and is closed at `header_read_timeout`, with no answer and
/// nothing at the backend. (With ALPN `http/1.1` the bytes come in one read: 400 at once.)
#[tokio::test]
async fn a_malformed_head_that_never_ends_is_closed_at_header_read_timeout() {
    let (pki, backend, gw) = setup_with("header_read_timeout = \"1s\"").await;
    let wire = format!("PUT /url HTTP/1.1\r\n{H}{CLOSE}Content-Length: 3\r\n\rabc");
    let a = exchange(&gw, &pki, wire.as_bytes()).await;
    assert_eq!((a.statuses.as_slice(), a.text.as_str()), (&[][..], ""));
    assert_eq!(backend.count(), 0);
    gw.shutdown().await;
}
