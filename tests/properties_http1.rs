//! Generated HTTP/1.1 requests against two parsers: the gateway's framing core
//! (`portcullis::http1`) and hyper's server, which serves the gateway's HTTP/1.1 today
//! (issue 17 step 5: a parser other than hyper's is admitted only with a test comparing its
//! framing decisions with hyper's). Seeded: every run tries the same cases.
//!
//! Each case is one connection's bytes: a request head built from pieces that framing bugs
//! are made of (content-length and transfer-encoding in every spelling, repeated, in both
//! orders, on HTTP/1.0; obs-fold, a space before the colon, control characters, bare LF
//! line endings; connection, expect and upgrade fields), a body that reads as a chunked
//! body or as raw bytes, then a second request. hyper serves it over an in-memory stream
//! and records every request its service sees (fields, body, whether the body ended); the
//! core's answer is predicted from the same bytes. They must agree on every request served
//! (method, target, version, fields, body bytes), on which requests are served at all (so
//! on keep-alive and on where the first body ends), and on the refusal status.
//!
//! A second property does the same for chunked bodies (`http1::chunked`): sizes in every
//! spelling and off by one, extensions, bare CR and LF, trailers well- and ill-formed, a
//! last chunk missing: the same data, trailers, refusal or wait, and where the next
//! request starts.
//!
//! The core refuses alone what the gateway's pipeline refuses right after hyper today: a
//! transfer coding other than `chunked` (501) and `chunked` twice (400). For those, hyper
//! must have framed the request as chunked (so the pipeline's refusal is what stands).

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::http1::{chunked, parse_request, Framing, HeadError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CASES: u32 = 20_000;
/// hyper's smallest read buffer, and the core's head limit in this test.
const MAX_HEAD: usize = 8192;
/// A chunked body of "hello", which also reads as 17 raw bytes.
const CHUNKED_HELLO: &str = "5\r\nhello\r\n0\r\n\r\n";
const NEXT: &str = "GET /next HTTP/1.1\r\nhost: n\r\n\r\n";

/// One request as a service saw it: `body` is `None` while it has not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: Version,
    fields: Vec<(String, Vec<u8>)>,
    body: Option<Result<Vec<u8>, ()>>,
    /// The trailer fields of a body that ended with some.
    trailers: Option<Vec<(String, Vec<u8>)>>,
}

/// Everything that happened on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    served: Vec<Seen>,
    /// Final (non-1xx) status codes written, in order.
    statuses: Vec<u16>,
    /// A request body failed (then what hyper writes before closing is not compared).
    body_failed: bool,
}

fn seen(
    head: &portcullis::http1::RequestHead,
    body: Option<Result<Vec<u8>, ()>>,
    trailers: Option<Vec<(String, Vec<u8>)>>,
) -> Seen {
    Seen {
        method: head.method.to_string(),
        target: head.uri.to_string(),
        version: head.version,
        fields: fields(&head.headers),
        body,
        trailers,
    }
}

/// A chunked body at the start of `wire` through the core's decoder: its data and
/// trailers (`None`: incomplete), and the bytes it took.
#[allow(clippy::type_complexity)]
fn decode_chunked(wire: &[u8]) -> (Option<Result<(Vec<u8>, HeaderMap), ()>>, usize) {
    let mut d = chunked::Decoder::default();
    let (mut at, mut data) = (0, Vec::new());
    loop {
        match d.decode(&wire[at..]) {
            Err(_) => return (Some(Err(())), at),
            Ok((n, chunked::Decoded::Data(r))) => {
                data.extend_from_slice(&wire[at + r.start..at + r.end]);
                at += n;
            }
            Ok((n, chunked::Decoded::End(t))) => return (Some(Ok((data, t))), at + n),
            Ok((_, chunked::Decoded::More)) => return (None, wire.len()),
        }
    }
}

fn fields(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// Run `wire` through hyper's HTTP/1.1 server until it has nothing left to do: a
/// current-thread runtime, the connection in its own task, and enough yields for it to
/// read, parse, serve and write everything the bytes allow (it waits for nothing else: no
/// timers, the body is in memory).
async fn hyper_outcome(wire: &[u8]) -> Outcome {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let record = seen.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let record = record.clone();
        async move {
            let (parts, body) = req.into_parts();
            let i = {
                let mut s = record.lock().unwrap();
                s.push(Seen {
                    method: parts.method.to_string(),
                    target: parts.uri.to_string(),
                    version: parts.version,
                    fields: fields(&parts.headers),
                    body: None,
                    trailers: None,
                });
                s.len() - 1
            };
            let collected = body.collect().await;
            let mut s = record.lock().unwrap();
            match collected {
                Ok(c) => {
                    // An empty trailer section is no trailers (the core returns an empty map).
                    s[i].trailers = c.trailers().filter(|t| !t.is_empty()).map(fields);
                    s[i].body = Some(Ok(c.to_bytes().to_vec()));
                }
                Err(_) => s[i].body = Some(Err(())),
            }
            drop(s);
            Ok::<_, std::convert::Infallible>(Response::new(Empty::<Bytes>::new()))
        }
    });
    let conn = tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(server), svc)
            .await;
    });
    client.write_all(wire).await.unwrap();
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    conn.abort();
    let _ = conn.await;
    let mut out = Vec::new();
    // The server side is gone (aborted or closed): read what it wrote.
    let _ = client.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let statuses = text
        .match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .filter(|s: &u16| *s >= 200)
        .collect();
    let served = seen.lock().unwrap().clone();
    let body_failed = served.iter().any(|s| s.body == Some(Err(())));
    Outcome {
        served,
        statuses,
        body_failed,
    }
}

/// What the core makes of `wire`, in the same terms. `Err` carries a refusal the core makes
/// alone (the pipeline's rule) with the index of the request it refused.
fn core_outcome(wire: &[u8]) -> Result<Outcome, (usize, HeadError)> {
    let mut out = Outcome {
        served: Vec::new(),
        statuses: Vec::new(),
        body_failed: false,
    };
    let mut rest = wire;
    // hyper skips empty lines before a request line; so does httparse.
    while !rest.is_empty() {
        let (head, n) = match parse_request(rest, MAX_HEAD, HeaderMap::new()) {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e @ (HeadError::UnsupportedCoding | HeadError::RepeatedChunked)) => {
                return Err((out.served.len(), e))
            }
            Err(e) => {
                out.statuses.push(match e {
                    HeadError::TooLarge => 431,
                    HeadError::UriTooLong => 414,
                    _ => 400,
                });
                break;
            }
        };
        rest = &rest[n..];
        let body = match head.framing {
            Framing::Empty => Some(Vec::new()),
            Framing::Length(len) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                (rest.len() >= len).then(|| {
                    let (b, r) = rest.split_at(len);
                    rest = r;
                    b.to_vec()
                })
            }
            Framing::Chunked => {
                let (body, used) = decode_chunked(rest);
                rest = &rest[used..];
                match body {
                    Some(Err(())) => {
                        out.served.push(seen(&head, Some(Err(())), None));
                        out.body_failed = true;
                        break;
                    }
                    Some(Ok((data, trailers))) => {
                        let t = (!trailers.is_empty()).then(|| fields(&trailers));
                        out.served.push(seen(&head, Some(Ok(data)), t));
                        out.statuses.push(200);
                        if !head.keep_alive || head.method == http::Method::CONNECT {
                            break;
                        }
                        continue;
                    }
                    None => None,
                }
            }
        };
        let ended = body.is_some();
        out.served.push(seen(&head, body.map(Ok), None));
        if !ended {
            break;
        }
        out.statuses.push(200);
        // A 2xx to CONNECT makes hyper hand the connection over as upgraded: no more
        // requests are read from it (the gateway closes it instead).
        if !head.keep_alive || head.method == http::Method::CONNECT {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The generator

// Each list is weighted towards well-formed pieces by repeating them, so that most heads
// are well-formed but for one or two tricks.
const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "POST", "POST", "PUT", "get", "PATCH", "CONNECT", "G@T",
    "M-SEARCH",
];
const TARGETS: &[&str] = &[
    "/",
    "/",
    "/",
    "/x",
    "/x",
    "/",
    "/a?b=c",
    "/a%20b",
    "*",
    "http://h/x",
    "h:80",
    "/a b",
    "/\x7f",
    "//x",
    "/caf\u{e9}",
];
const VERSIONS: &[&str] = &[
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/1.0",
    "HTTP/1.2",
    "HTTP/2.0",
    "http/1.1",
    "HTTP/1.1 ",
];
const LENGTHS: &[&str] = &[
    "0",
    "5",
    "17",
    "17",
    "005",
    "+5",
    "-1",
    "5,5",
    "5, 5",
    "5, 6",
    " 17 ",
    "5 5",
    "",
    "99999999999999999999",
    "18446744073709551615",
    "0x5",
    "1e1",
    "99",
];
const CODINGS: &[&str] = &[
    "chunked",
    "chunked",
    "Chunked",
    "CHUNKED",
    " chunked",
    "chunked ",
    "gzip, chunked",
    "chunked, chunked",
    "identity",
    "",
    "chunked, gzip",
    "xchunked",
    "chunked;q=1",
    ",chunked",
    "chunked,",
    "identity, chunked",
];
const FIELD_NAMES: &[&str] = &[
    "content-length",
    "Content-Length",
    "transfer-encoding",
    "Transfer-Encoding",
    "connection",
    "expect",
    "upgrade",
    "x-a",
];
const OTHER_VALUES: &[&str] = &[
    "close",
    "keep-alive",
    "Close, upgrade",
    "keep-alive, close",
    "upgrade",
    "100-continue",
    "100-Continue",
    "websocket",
    "a\tb",
    "\u{e9}",
    "a\x01b",
    "a\x7fb",
];
/// Line tricks: a field line is written as `{name}{SEP}{value}`.
const SEPARATORS: &[&str] = &[": ", ":", ":  ", " : ", ":\r\n ", "\t: "];
const ENDINGS: &[&str] = &["\r\n", "\r\n", "\r\n", "\n"];

/// One field: which name, which value list, which separator and line ending.
fn field() -> impl Strategy<Value = String> {
    (
        0..FIELD_NAMES.len(),
        0..64usize,
        prop::sample::select(SEPARATORS),
        prop::sample::select(ENDINGS),
    )
        .prop_map(|(n, v, sep, end)| {
            let name = FIELD_NAMES[n];
            let value = match name.to_ascii_lowercase().as_str() {
                "content-length" => LENGTHS[v % LENGTHS.len()],
                "transfer-encoding" => CODINGS[v % CODINGS.len()],
                _ => OTHER_VALUES[v % OTHER_VALUES.len()],
            };
            // Most lines are well-formed: the tricks are in a few.
            let sep = if v % 9 == 0 { sep } else { ": " };
            let end = if v % 7 == 0 { end } else { "\r\n" };
            format!("{name}{sep}{value}{end}")
        })
}

fn case() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(METHODS),
        prop::sample::select(TARGETS),
        prop::sample::select(VERSIONS),
        prop::collection::vec(field(), 0..5),
        any::<bool>(),
        prop::sample::select(&["", "hello", CHUNKED_HELLO][..]),
    )
        .prop_map(|(method, target, version, fields, host, body)| {
            let mut wire = format!("{method} {target} {version}\r\n");
            if host {
                wire.push_str("host: h\r\n");
            }
            for f in &fields {
                wire.push_str(f);
            }
            wire.push_str("\r\n");
            // A head that may be chunked is followed by a chunked body (the model above
            // reads only that one); others by none, raw bytes, or the same chunked bytes.
            let may_be_chunked = fields
                .iter()
                .any(|f| f.to_ascii_lowercase().contains("transfer-encoding"));
            wire.push_str(if may_be_chunked { CHUNKED_HELLO } else { body });
            wire.push_str(NEXT);
            wire.into_bytes()
        })
}

/// Both saw the same requests; and, unless a body failed (after which what hyper writes
/// before it closes is its own affair), wrote the same statuses.
fn agree(ours: &Outcome, theirs: &Outcome, wire: &str) -> Result<(), TestCaseError> {
    if ours.body_failed {
        prop_assert_eq!(&ours.served, &theirs.served, "{:?}", wire);
        prop_assert!(theirs.body_failed, "{:?}", wire);
    } else {
        prop_assert_eq!(ours, theirs, "{:?}", wire);
    }
    Ok(())
}

fn runner(seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn framing_decisions_agree_with_hypers() {
    let rt = current_thread();
    let mut runner = runner(0x6874_7470_3131);
    // How often each kind of outcome came up: the first request refused, both requests
    // served (keep-alive, the first body ended where both parsers say), refused by the
    // core alone.
    let (refused, both, refused_alone) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&case(), |wire| {
            let theirs = rt.block_on(hyper_outcome(&wire));
            let text = String::from_utf8_lossy(&wire).into_owned();
            match core_outcome(&wire) {
                Ok(ours) => {
                    agree(&ours, &theirs, &text)?;
                    if ours.served.is_empty() {
                        refused.set(refused.get() + 1);
                    } else if ours.served.len() == 2 {
                        both.set(both.get() + 1);
                    }
                }
                Err((i, e)) => {
                    // The pipeline's refusal: hyper framed that request as chunked and its
                    // body as "hello".
                    refused_alone.set(refused_alone.get() + 1);
                    let seen = theirs.served.get(i);
                    prop_assert!(
                        seen.is_some_and(|s| s.body == Some(Ok(b"hello".to_vec()))),
                        "{:?}: core refused {:?}, hyper saw {:?}",
                        text,
                        e,
                        theirs
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    // The generator reaches every kind of outcome.
    let (refused, both, refused_alone) = (refused.get(), both.get(), refused_alone.get());
    eprintln!(
        "first refused {refused}, both served {both}, refused by the core alone {refused_alone}"
    );
    assert!(
        refused > 300 && both > 300 && refused_alone > 20,
        "first refused {refused}, both served {both}, refused by the core alone {refused_alone}"
    );
}

// ---------------------------------------------------------------------------------------
// Chunked bodies

/// One chunk: its size as written (right, off by one, in every spelling), extension, line
/// endings and data.
fn chunk() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["hello", "x", "0123456789abcdefXYZ", "a\r\nb"][..]),
        0..40usize,
        0..24usize,
    )
        .prop_map(|(data, size, trick)| {
            let n = data.len();
            let size = match size {
                0 => format!("{:X}", n),
                1 => format!("000{n:x}"),
                2 => format!("{:x}", n + 1),
                3 => format!("{:x}", n.saturating_sub(1)),
                4 => format!("0x{n:x}"),
                5 => format!("+{n:x}"),
                6 => format!(" {n:x}"),
                7 => format!("{n:x} "),
                8 => format!("{n:x}\t"),
                9 => format!("1{}", "0".repeat(16)),
                10 => format!("{}{n:x}", "0".repeat(30)),
                11 => format!("{n:x}g"),
                _ => format!("{n:x}"),
            };
            let ext = match trick % 12 {
                0 => ";a=b",
                1 => "; a=\"q;r\"",
                2 => ";a\nb",
                3 => ";",
                _ => "",
            };
            let size_end = match trick {
                13 => "\n",
                14 => "\r",
                15 => "\r\r\n",
                _ => "\r\n",
            };
            let data_end = match trick {
                16 => "\n",
                17 => "",
                18 => "\r",
                19 => "\r\n\r\n",
                _ => "\r\n",
            };
            format!("{size}{ext}{size_end}{data}{data_end}")
        })
}

fn chunked_body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(chunk(), 0..4),
        prop::sample::select(
            &[
                "0\r\n\r\n",
                "0\r\n\r\n",
                "0\r\n\r\n",
                "000\r\n\r\n",
                "0;e=1\r\n\r\n",
                "0\r\nx-t: 1\r\n\r\n",
                "0\r\nx-t: 1\r\nx-u: 2\r\n\r\n",
                "0\r\nx-t: 1\nx-u: 2\r\n\r\n",
                "0\r\nx-t:1\r\n\r\n",
                "0\r\nbad trailer\r\n\r\n",
                "0\r\n x-t: 1\r\n\r\n",
                "0\r\nx-t: a\x01b\r\n\r\n",
                "0\r\n\n",
                "0\n\r\n",
                "0\r\n",
                "0\r\n\r",
                "",
            ][..],
        ),
    )
        .prop_map(|(chunks, last)| chunks.concat() + last)
}

#[test]
fn chunked_decoding_agrees_with_hypers() {
    let rt = current_thread();
    let mut runner = runner(0x6368_756e_6b65);
    let (ended, failed, incomplete) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&(chunked_body(), any::<bool>()), |(body, next)| {
            // Without a request after it, a body that never ends stays incomplete.
            let next = if next { NEXT } else { "" };
            let wire = format!(
                "POST /c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n{body}{next}"
            );
            let theirs = rt.block_on(hyper_outcome(wire.as_bytes()));
            let ours = core_outcome(wire.as_bytes()).expect("a plain chunked head");
            agree(&ours, &theirs, &wire)?;
            let counter = match ours.served[0].body {
                Some(Ok(_)) => &ended,
                Some(Err(())) => &failed,
                None => &incomplete,
            };
            counter.set(counter.get() + 1);
            Ok(())
        })
        .unwrap();
    let (ended, failed, incomplete) = (ended.get(), failed.get(), incomplete.get());
    eprintln!("bodies ended {ended}, refused {failed}, incomplete {incomplete}");
    assert!(
        ended > 2_000 && failed > 2_000 && incomplete > 100,
        "ended {ended}, refused {failed}, incomplete {incomplete}"
    );
}
