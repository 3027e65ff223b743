//! Request framing on HTTP/1.1: a corpus of the ambiguous and malformed messages request
//! smuggling is built from (RFC 9112 §6, the CL/TE cases of the README, the classic
//! CL.TE / TE.CL / TE.TE variants, chunk-size and line-ending tricks, llhttp's and HTTP
//! Garden's framing cases, in `request_smuggling/`). For each: what the client gets back, and
//! what the backend sees.
//! The rule under test: one message in is at most one message out, framed by the gateway
//! (the backend never parses the client's framing), and a message whose framing is
//! ambiguous is refused before anything reaches the backend.

mod common;
#[path = "request_smuggling/corpus.rs"]
mod corpus;
#[path = "request_smuggling/http_garden.rs"]
mod http_garden;
#[path = "request_smuggling/llhttp.rs"]
mod llhttp;

use std::time::Duration;

use common::client;
use common::origin::{self, Origin};
use common::{Spec, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What came back for a raw exchange: every status line's code, and the whole text.
struct Answer {
    statuses: Vec<u16>,
    text: String,
}

/// Send `wire` on a new mTLS connection and read everything the gateway answers until it
/// closes (it closes after a refusal; the well-framed cases end with `connection: close`),
/// or 10 s.
/// The client does not close its side first: hyper stops reading pipelined requests once
/// it sees the client's end of stream.
async fn exchange(gw: &common::TestGateway, pki: &TestPki, wire: &[u8]) -> Answer {
    let mut tls = client::raw_tls(gw.addr, pki, &pki.client("alice"), None).await;
    tls.write_all(wire).await.unwrap();
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut all)).await;
    let mut text = String::from_utf8_lossy(&all).into_owned();
    if read.is_err() {
        // Kept open: an answer the caller did not expect (all expected ones close).
        text.push('\n');
        text.push_str(KEPT_OPEN);
    }
    // Status lines of HTTP/1.1, or of HTTP/1.0 (the answer to a 1.0 request).
    let statuses = text
        .match_indices("HTTP/1.")
        .filter(|(i, _)| matches!(text.get(i + 7..i + 9), Some("1 " | "0 ")))
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    Answer { statuses, text }
}

async fn setup() -> (TestPki, Origin, common::TestGateway) {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(
        &pki,
        Spec {
            body: common::backend_route(origin.addr, ""),
            ..Spec::default()
        },
    )
    .await;
    (pki, origin, gw)
}

fn paths(origin: &Origin) -> Vec<String> {
    origin
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path_and_query.clone())
        .collect()
}

/// What [`exchange`] appends to the text when the gateway did not close.
const KEPT_OPEN: &str = "[the gateway kept the connection open]";
const H: &str = "host: localhost\r\n";
const CLOSE: &str = "connection: close\r\n";

/// Messages whose framing is ambiguous or malformed: 400 (or 501 for a transfer coding
/// the gateway does not implement), and nothing reaches the backend. (`connection: close`
/// only makes the gateway close after a refusal it would otherwise keep the connection
/// open for.)
#[tokio::test]
async fn ambiguous_framing_is_refused_before_the_backend() {
    let (pki, origin, gw) = setup().await;
    let cases: Vec<(&str, String, u16)> = vec![
        // Two lengths.
        ("CL twice, different", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: 5\r\ncontent-length: 6\r\n\r\nhello!"), 400),
        ("CL list of two values", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: 5, 6\r\n\r\nhello!"), 400),
        ("CL with a sign", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: +5\r\n\r\nhello"), 400),
        ("CL in hex", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: 0x5\r\n\r\nhello"), 400),
        ("CL with inner space", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: 5 5\r\n\r\nhello"), 400),
        ("CL negative", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: -1\r\n\r\nhello"), 400),
        ("CL overflowing u64", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}content-length: 99999999999999999999\r\n\r\nhello"), 400),
        // Transfer-Encoding the gateway must not half-understand.
        ("TE chunked not last", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("TE two lines, chunked first", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\ntransfer-encoding: x\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("TE xchunked", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("TE gzip, chunked", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 501),
        ("TE chunked twice", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("TE identity, chunked", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: identity\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 501),
        ("TE on HTTP/1.0", format!("POST /a HTTP/1.0\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        // Header syntax that parsers read differently.
        ("space before the colon", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("obs-fold of TE", format!("POST /a HTTP/1.1\r\n{H}{CLOSE}transfer-encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 400),
        ("header line starting with a space", format!("POST /a HTTP/1.1\r\n {H}content-length: 5\r\n\r\nhello"), 400),
        ("NUL in a header value", format!("GET /a HTTP/1.1\r\n{H}{CLOSE}x-a: a\0b\r\n\r\n"), 400),
        ("bare CR in a header value", format!("GET /a HTTP/1.1\r\n{H}{CLOSE}x-a: a\rb\r\n\r\n"), 400),
        ("no colon", format!("GET /a HTTP/1.1\r\n{H}{CLOSE}content-length 5\r\n\r\nhello"), 400),
        // Request targets that are not origin-form or absolute-form.
        ("CONNECT authority-form", format!("CONNECT 127.0.0.1:22 HTTP/1.1\r\n{CLOSE}host: 127.0.0.1:22\r\n\r\n"), 400),
        ("asterisk-form", format!("OPTIONS * HTTP/1.1\r\n{H}{CLOSE}\r\n"), 400),
        ("space in the target", format!("GET /a b HTTP/1.1\r\n{H}{CLOSE}\r\n"), 400),
        ("two hosts", format!("GET /a HTTP/1.1\r\n{H}{CLOSE}host: other\r\n\r\n"), 400),
    ];
    for (what, wire, status) in &cases {
        let a = exchange(&gw, &pki, wire.as_bytes()).await;
        assert_eq!(
            a.statuses,
            [*status],
            "{what}: {} / backend saw {:?}",
            a.text,
            paths(&origin)
        );
        if *status == 501 {
            assert!(
                a.text.contains("x-portcullis-error: not_implemented"),
                "{what}: {}",
                a.text
            );
        }
        assert_eq!(
            paths(&origin),
            Vec::<String>::new(),
            "{what} reached the backend"
        );
    }
    // The pipeline's own refusals name their reason in the access log.
    let mut reasons = Vec::new();
    for _ in 0..500 {
        reasons = gw
            .access_log()
            .iter()
            .filter_map(|l| l["reason"].as_str().map(str::to_owned))
            .collect();
        if reasons.iter().any(|r| r == "repeated_chunked")
            && reasons.iter().any(|r| r == "unsupported_transfer_coding")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reason in ["unsupported_transfer_coding", "repeated_chunked"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    gw.shutdown().await;
}

/// Chunked bodies the decoder must refuse: the request may have reached the backend (its
/// head goes before the body), but never whole, and nothing after it is read as a request.
#[tokio::test]
async fn malformed_chunks_end_the_connection_and_smuggle_nothing() {
    let (pki, origin, gw) = setup().await;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\n{H}\r\n");
    let cases: Vec<(&str, String)> = vec![
        ("chunk size not hex", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ("chunk size overflow", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ("chunk shorter than its size", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n9\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ("chunk longer than its size", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ("negative chunk size", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n{smuggled}")),
        ("chunk data without CRLF", format!("POST /body HTTP/1.1\r\n{H}{CLOSE}transfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n{smuggled}")),
    ];
    for (what, wire) in &cases {
        let a = exchange(&gw, &pki, wire.as_bytes()).await;
        assert!(
            !a.text.contains("/smuggled") && !paths(&origin).iter().any(|p| p == "/smuggled"),
            "{what}: {}",
            a.text
        );
        assert!(
            a.statuses.iter().all(|s| *s == 400),
            "{what}: only a refusal comes back: {}",
            a.text
        );
        assert!(
            !a.text.contains("hello"),
            "{what}: the backend never echoed a whole body: {}",
            a.text
        );
    }
    gw.shutdown().await;
}

/// What is well framed goes through as exactly the messages it is: the README's CL+TE rule,
/// pipelining, a body followed by a request, a length of 0, chunk extensions, trailers,
/// `expect: 100-continue`, and the line endings RFC 9112 lets a server accept.
#[tokio::test]
async fn well_framed_messages_arrive_as_exactly_those_messages() {
    let (pki, origin, gw) = setup().await;
    let cases: Vec<(&str, String, Vec<&str>, Vec<u16>)> = vec![
        (
            "CL and TE: framed by TE, CL dropped, closed after",
            format!("POST /body HTTP/1.1\r\n{H}content-length: 40\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{H}\r\n"),
            vec!["/body"],
            vec![200],
        ),
        (
            "pipelined",
            format!("GET /a HTTP/1.1\r\n{H}\r\nGET /b HTTP/1.1\r\n{H}{CLOSE}\r\n"),
            vec!["/a", "/b"],
            vec![200, 200],
        ),
        (
            "a body then a request",
            format!("POST /body HTTP/1.1\r\n{H}content-length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\n{H}{CLOSE}\r\n"),
            vec!["/body", "/c"],
            vec![200, 200],
        ),
        (
            "length 0 then a request",
            format!("POST /d HTTP/1.1\r\n{H}content-length: 0\r\n\r\nGET /e HTTP/1.1\r\n{H}{CLOSE}\r\n"),
            vec!["/d", "/e"],
            vec![200, 200],
        ),
        (
            "chunk extension and trailer",
            format!("POST /body HTTP/1.1\r\n{H}transfer-encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\nGET /f HTTP/1.1\r\n{H}{CLOSE}\r\n"),
            vec!["/body", "/f"],
            vec![200, 200],
        ),
        (
            "expect 100-continue with the body sent at once",
            format!("POST /body HTTP/1.1\r\n{H}{CLOSE}expect: 100-continue\r\ncontent-length: 5\r\n\r\nhello"),
            vec!["/body"],
            vec![200],
        ),
    ];
    for (what, wire, want_paths, want_statuses) in &cases {
        origin.seen.lock().unwrap().clear();
        let a = exchange(&gw, &pki, wire.as_bytes()).await;
        let finals: Vec<u16> = a.statuses.iter().copied().filter(|s| *s != 100).collect();
        assert_eq!(&finals, want_statuses, "{what}: {}", a.text);
        assert_eq!(&paths(&origin), want_paths, "{what}: {}", a.text);
        if wire.contains("POST /body") {
            assert!(
                a.text.contains("hello"),
                "{what}: the body arrived whole: {}",
                a.text
            );
        }
        assert!(!a.text.contains("/smuggled"), "{what}: {}", a.text);
    }
    gw.shutdown().await;
}

/// HTTP/2 to an HTTP/1.1 backend (the downgrade the H2.CL / H2.TE attacks use): the
/// gateway frames the backend request itself, so a `content-length` the DATA frames do not
/// match, or a `transfer-encoding` header, can never make the backend read a second
/// request out of one stream.
#[tokio::test]
async fn http2_framing_cannot_smuggle_into_the_http1_backend() {
    let (pki, origin, gw) = setup().await;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\n{H}\r\n");
    let post = |cl: &str| {
        http::Request::post("https://localhost/body")
            .header("content-length", cl)
            .body(())
            .unwrap()
    };
    let cases: Vec<(&str, http::Request<()>, String)> = vec![
        // H2.CL: more DATA than the declared length, the rest a request.
        (
            "DATA longer than content-length",
            post("5"),
            format!("hello{smuggled}"),
        ),
        // Less DATA than declared, then the end of the stream.
        (
            "DATA shorter than content-length",
            post("50"),
            "hello".into(),
        ),
    ];
    for (what, req, data) in cases {
        let tls = client::raw_tls(gw.addr, &pki, &pki.client("alice"), Some(b"h2")).await;
        let (send, conn) = h2::client::handshake(tls).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), async move {
            let mut send = send.ready().await.map_err(|e| e.to_string())?;
            let (resp, mut body) = send.send_request(req, false).map_err(|e| e.to_string())?;
            body.send_data(bytes::Bytes::from(data), true)
                .map_err(|e| e.to_string())?;
            let resp = resp.await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut text = Vec::new();
            while let Some(chunk) = body.data().await {
                match chunk {
                    Ok(c) => text.extend_from_slice(&c),
                    Err(e) => return Err(format!("{status} then {e}")),
                }
            }
            Ok::<_, String>((status, String::from_utf8_lossy(&text).into_owned()))
        })
        .await
        .expect("the exchange ends within 10 s");
        driver.abort();
        // Refused or reset; a 200 only if the backend echoed exactly the declared body.
        if let Ok((status, text)) = &outcome {
            assert!(
                *status >= 400 || (*status == 200 && text == "hello"),
                "{what}: {status} {text}"
            );
        }
        assert!(
            !paths(&origin).iter().any(|p| p == "/smuggled"),
            "{what}: the backend read a second request: {:?} ({outcome:?})",
            paths(&origin)
        );
    }
    // H2.TE: `transfer-encoding` is connection-specific, a malformed request in HTTP/2
    // (RFC 9113 §8.2.2). The h2 crate's client will not send it, so the frames are written
    // by hand: the stream is reset and nothing goes on. The same frames without it are
    // answered (the control that the hand-made frames are good).
    let te = [("transfer-encoding", "chunked")];
    let reset = raw_h2(&gw, &pki, &te, format!("0\r\n\r\n{smuggled}").as_bytes()).await;
    assert!(
        matches!(reset, 0x3 | 0x7),
        "RST_STREAM or GOAWAY, got frame {reset:#x}"
    );
    assert!(paths(&origin).is_empty(), "{:?}", paths(&origin));
    assert_eq!(raw_h2(&gw, &pki, &[], b"hello").await, 0x1, "answered");
    assert_eq!(paths(&origin), ["/body"]);
    origin.seen.lock().unwrap().clear();

    // The backend connections are still good for the next request.
    let mut c = client::connect(gw.addr, &pki, common::Opts::with(&pki.client("alice")))
        .await
        .unwrap();
    assert_eq!(c.get("/after").await.unwrap().status, 200);
    assert!(!paths(&origin).iter().any(|p| p == "/smuggled"));
    gw.shutdown().await;
}

/// A POST /body on stream 1 of a new HTTP/2 connection, framed by hand (HPACK literals
/// without indexing, so any header can be sent), with `extra` headers and one DATA frame
/// ending the stream; the type of the first frame that decides it: HEADERS (0x1, answered),
/// RST_STREAM (0x3) or GOAWAY (0x7).
async fn raw_h2(
    gw: &common::TestGateway,
    pki: &TestPki,
    extra: &[(&str, &str)],
    data: &[u8],
) -> u8 {
    let mut tls = client::raw_tls(gw.addr, pki, &pki.client("alice"), Some(b"h2")).await;
    let mut block = Vec::new();
    let fixed = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/body"),
        (":authority", "localhost"),
    ];
    for (name, value) in fixed.iter().chain(extra) {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let frame = |kind: u8, flags: u8, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    };
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    wire.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    wire.extend(frame(0x1, 0x4, &block)); // HEADERS, END_HEADERS
    wire.extend(frame(0x0, 0x1, data)); // DATA, END_STREAM
    tls.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return 0,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let mut at = 0;
            while got.len() >= at + 9 {
                let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
                let stream =
                    u32::from_be_bytes([got[at + 5], got[at + 6], got[at + 7], got[at + 8]]);
                match got[at + 3] {
                    0x7 => return 0x7,
                    kind @ (0x1 | 0x3) if stream == 1 => return kind,
                    _ => at += 9 + len,
                }
            }
        }
    })
    .await
    .expect("the gateway decides the stream within 10 s")
}

/// A gateway whose route `/` goes to a raw backend ([`origin::raw_once`]), and what that
/// backend will read.
async fn gateway_to_raw_backend(
    pki: &TestPki,
) -> (common::TestGateway, tokio::sync::oneshot::Receiver<String>) {
    let (backend, raw) = origin::raw_once().await;
    let spec = Spec {
        body: common::backend_route(backend, ""),
        ..Spec::default()
    };
    (common::start(pki, spec).await, raw)
}

/// Trailers of a chunked request are fields the backend may read like headers (many
/// frameworks merge them): an identity a client puts there is not forwarded, as in the
/// headers.
#[tokio::test]
async fn request_trailers_cannot_carry_a_forged_identity() {
    let pki = TestPki::new();
    // Plain, and announcing the trailers (`te: trailers` is forwarded, for gRPC).
    for announce in [
        "",
        "te: trailers\r\ntrailer: x-client-subject, x-checksum\r\n",
    ] {
        let (gw, raw) = gateway_to_raw_backend(&pki).await;
        let wire = format!(
            "POST /upload HTTP/1.1\r\n{H}{CLOSE}{announce}transfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\nx-client-subject: CN=admin\r\n\
             x-forwarded-client-cert: Hash=forged\r\nx_client_role: root\r\nx-checksum: 1\r\n\r\n"
        );
        let a = exchange(&gw, &pki, wire.as_bytes()).await;
        assert_eq!(a.statuses, [200], "{}", a.text);
        let seen = tokio::time::timeout(Duration::from_secs(10), raw)
            .await
            .unwrap()
            .unwrap();
        assert!(seen.contains("hello"), "{seen}");
        for forged in ["CN=admin", "Hash=forged", "root"] {
            assert!(
                !seen.contains(forged),
                "{forged} reached the backend: {seen}"
            );
        }
        if !announce.is_empty() {
            // What is announced is forwarded: the harmless trailer arrives.
            assert!(seen.contains("x-checksum: 1"), "{seen}");
        }
        gw.shutdown().await;
    }

    // The same over HTTP/2 (trailers are a HEADERS frame after the DATA).
    let (gw, raw) = gateway_to_raw_backend(&pki).await;
    let tls = client::raw_tls(gw.addr, &pki, &pki.client("alice"), Some(b"h2")).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::post("https://localhost/upload")
        .header("te", "trailers")
        .header("trailer", "x-client-subject, x-checksum")
        .body(())
        .unwrap();
    let mut send = send.ready().await.unwrap();
    let (resp, mut body) = send.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"hello"), false)
        .unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-client-subject", "CN=admin".parse().unwrap());
    trailers.insert("x-forwarded-client-cert", "Hash=forged".parse().unwrap());
    trailers.insert("x-checksum", "1".parse().unwrap());
    body.send_trailers(trailers).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let seen = tokio::time::timeout(Duration::from_secs(10), raw)
        .await
        .unwrap()
        .unwrap();
    assert!(seen.contains("hello"), "{seen}");
    for forged in ["CN=admin", "Hash=forged"] {
        assert!(
            !seen.contains(forged),
            "{forged} reached the backend over HTTP/2: {seen}"
        );
    }
    assert!(
        seen.contains("x-checksum: 1"),
        "the trailers were forwarded: {seen}"
    );
    driver.abort();
    gw.shutdown().await;
}

/// A GET or HEAD with a chunked body (or, over HTTP/2, DATA without `content-length`)
/// reaches an HTTP/1.1 backend with that body. hyper's client sends a GET or HEAD whose body
/// has no length as one without a body, so the gateway used to drop it: the backend read a
/// message the client had not sent, and (for HTTP/1.1) the body was never read, so a
/// malformed one was never refused.
#[tokio::test]
async fn a_get_body_without_a_length_reaches_the_backend() {
    let (pki, backend, gw) = corpus::setup().await;
    let chunked = |method: &str| {
        format!("{method} /b HTTP/1.1\r\n{H}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\n{H}{CLOSE}\r\n")
    };
    for method in ["GET", "HEAD"] {
        let from = backend.count();
        let a = exchange(&gw, &pki, chunked(method).as_bytes()).await;
        assert_eq!(a.statuses, [200, 200], "{method}: {}", a.text);
        let seen = backend.since(from);
        assert_eq!(seen.len(), 2, "{method}: {seen:?}");
        assert_eq!(
            (seen[0].method.as_str(), seen[0].body.as_deref()),
            (method, Some(&b"hello"[..])),
            "{seen:?}"
        );
        assert_eq!(seen[1].target, "/next", "{seen:?}");
    }
    // The body is read, so a malformed one is refused (400 `bad_request_body`).
    let wire = format!("GET /b HTTP/1.1\r\n{H}transfer-encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{H}\r\n");
    let from = backend.count();
    let a = exchange(&gw, &pki, wire.as_bytes()).await;
    assert_eq!(a.statuses, [400], "{}", a.text);
    assert!(
        a.text.contains("x-portcullis-error: bad_request"),
        "{}",
        a.text
    );
    let logged = |gw: &common::TestGateway| {
        gw.access_log()
            .iter()
            .any(|l| l["path"] == "/b" && l["reason"] == "bad_request_body")
    };
    for _ in 0..500 {
        if logged(&gw) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logged(&gw), "{:?}", gw.access_log());
    assert!(
        backend
            .since(from)
            .iter()
            .all(|m| m.body.is_none() && m.target == "/b"),
        "{:?}",
        backend.since(from)
    );

    // HTTP/2: a GET with DATA frames and no content-length.
    let tls = client::raw_tls(gw.addr, &pki, &pki.client("alice"), Some(b"h2")).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("https://localhost/h2").body(()).unwrap();
    let mut send = send.ready().await.unwrap();
    let (resp, mut body) = send.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"hello"), true)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let last = backend.since(backend.count() - 1);
    assert_eq!(
        (last[0].target.as_str(), last[0].body.as_deref()),
        ("/h2", Some(&b"hello"[..])),
        "{last:?}"
    );
    driver.abort();
    gw.shutdown().await;
}
