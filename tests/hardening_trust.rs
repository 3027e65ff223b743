//! Issue 14, items 5, 6 and 9, against the real gateway:
//! - a malformed chunked request body is the client's fault: 400 `bad_request`, reason
//!   `bad_request_body`, never an upstream error nor a back-off;
//! - a start or reload whose truststore would refuse every client (every root expired or
//!   not yet valid), or whose listener certificate is expired, not yet valid or not the
//!   key's, is refused naming it, and the previous generation keeps serving;
//! - truststore files over 16 MiB are refused before they are read, and a broken PEM is
//!   named in words.

mod common;

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{self, tls_config};
use common::origin::Origin;
use common::pki::{server_spec, Ca, Leaf};
use common::{metric, quiet, reload, LeafSpec, Opts, Spec, TestGateway, TestPki};
use rustls::pki_types::ServerName;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const UPSTREAM_ERRORS: &str = "portcullis_upstream_errors_total";
const REQUESTS: &str = "portcullis_http_requests_total";
const RELOADS: &str = "portcullis_reload_total";

// ---------------------------------------------------------------------------------------
// Item 5: malformed chunked bodies.

/// Chunk-size lines the HTTP/1.1 parser refuses, each with a body that would be fine.
const MALFORMED: [(&str, &str); 4] = [
    ("a plus sign", "+5\r\nhello\r\n0\r\n\r\n"),
    ("a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
    ("2^64", "10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("a bare LF", "5\nhello\r\n0\r\n\r\n"),
];

const WELL_FORMED: &str = "5\r\nhello\r\n0\r\n\r\n";

/// Routes `/sink-h1` and `/sink-h2` to the origin over HTTP/1.1 and h2c (upstreams named
/// for this test only, so their metrics are its own), `/echo` to the builtin and `/signed`
/// through SigV4, which buffers the body before it checks the signature.
fn chunk_spec(origin: SocketAddr) -> Spec<'static> {
    Spec {
        body: format!(
            "[[upstream]]\nname = \"chunky_h1\"\nendpoints = [\"{origin}\"]\n\n\
             [[upstream]]\nname = \"chunky_h2\"\nendpoints = [\"{origin}\"]\nprotocol = \"http2\"\n\n\
             [[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n\
             [[route]]\nname = \"sink_h1\"\npath_prefix = \"/sink-h1\"\nupstream = \"chunky_h1\"\n\n\
             [[route]]\nname = \"sink_h2\"\npath_prefix = \"/sink-h2\"\nupstream = \"chunky_h2\"\n\n\
             [[route]]\nname = \"echo\"\npath_prefix = \"/echo\"\nupstream = \"echo\"\n\n\
             [[route]]\nname = \"signed\"\npath_prefix = \"/signed\"\nupstream = \"echo\"\nauth = [\"mtls\", \"sigv4\"]\n\n\
             [auth.sigv4]\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials_file = \"credentials.toml\"\n\n\
             [reload]\nwatch = false\npoll_interval = \"1h\"\n"
        ),
        ..Spec::default()
    }
}

/// Start a gateway from `spec`, with a SigV4 credentials file written before the config loads.
async fn start_with_credentials(pki: &TestPki, spec: &Spec<'_>) -> TestGateway {
    common::init();
    let (dir, path) = common::write_config(pki, spec);
    common::write_key(
        &dir.path().join("credentials.toml"),
        "[[credential]]\naccess_key_id = \"AKIDCHUNK\"\nsecret_access_key = \"chunk-secret\"\nprincipal = \"svc-chunk\"\n",
    );
    let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    TestGateway::from_parts(running, dir)
}

/// A POST with a chunked body written by hand: `chunks` is the body exactly as sent.
fn chunked(path: &str, chunks: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunks}"
    )
    .into_bytes()
}

/// A response read off the wire.
struct RawReply {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `raw` as `who` on a fresh HTTP/1.1 connection over TLS; read one response (its
/// `content-length` bytes, or up to the close).
async fn raw_request(addr: SocketAddr, pki: &TestPki, who: &Leaf, raw: &[u8]) -> RawReply {
    let connector = TlsConnector::from(Arc::new(tls_config(pki, &Opts::with(who))));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(raw).await.unwrap();
    tls.flush().await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tls.read(&mut chunk).await.unwrap_or(0);
            buf.extend_from_slice(&chunk[..n]);
            if let Some(reply) = parse_reply(&buf, n == 0) {
                return reply;
            }
            assert!(
                n > 0,
                "closed mid-response: {}",
                String::from_utf8_lossy(&buf)
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("no response within 15 s")
}

/// The response in `buf` once it is whole (`closed`: nothing more will come).
fn parse_reply(buf: &[u8], closed: bool) -> Option<RawReply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[end + 4..];
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = match length {
        Some(n) => rest.get(..n)?,
        None if closed => rest,
        None => return None,
    };
    Some(RawReply {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Wait (bounded) until the access log has `n` lines with `reason`.
async fn access_log_reasons(gw: &TestGateway, reason: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = gw
            .access_log()
            .iter()
            .filter(|l| l["reason"] == reason)
            .count();
        if seen >= n {
            assert_eq!(seen, n, "{:#?}", gw.access_log());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} of {n} access-log lines with reason {reason}: {:#?}",
            gw.access_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_client_error_not_an_upstream_one() {
    let origin = Origin::start().await;
    let pki = TestPki::new();
    let gw = start_with_credentials(&pki, &chunk_spec(origin.addr)).await;
    let alice = pki.client("alice");
    // The framing written by hand is right: a well-formed chunked body goes through.
    let ok = raw_request(gw.addr, &pki, &alice, &chunked("/sink-h1", WELL_FORMED)).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "5 bytes"));

    let before = gw.metrics().await;
    let routes = [
        ("/sink-h1", "sink_h1"),
        ("/sink-h2", "sink_h2"),
        ("/echo", "echo"),
        ("/signed", "signed"),
    ];
    for (path, _) in routes {
        for (what, chunks) in MALFORMED {
            let r = raw_request(gw.addr, &pki, &alice, &chunked(path, chunks)).await;
            let at = format!("{path}, a chunk size with {what}: {}", r.body);
            assert_eq!(r.status, 400, "{at}");
            assert_eq!(r.header("x-portcullis-error"), Some("bad_request"), "{at}");
        }
    }
    let after = gw.metrics().await;
    // Nothing is blamed on the upstreams, of any kind (protocol, connect, timeout).
    for upstream in ["chunky_h1", "chunky_h2"] {
        let label = format!("upstream=\"{upstream}\"");
        let protocol = [label.as_str(), "kind=\"protocol\""];
        assert_eq!(
            metric(&before, UPSTREAM_ERRORS, &protocol),
            metric(&after, UPSTREAM_ERRORS, &protocol),
            "{UPSTREAM_ERRORS}{{{label},kind=\"protocol\"}} moved:\n{after}"
        );
        assert_eq!(
            metric(&before, UPSTREAM_ERRORS, &[&label]),
            metric(&after, UPSTREAM_ERRORS, &[&label]),
            "{UPSTREAM_ERRORS}{{{label}}} moved:\n{after}"
        );
    }
    // Counted as the client's: a 400 on each route, reason `bad_request_body` in the log.
    for (_, route) in routes {
        let labels = [format!("route=\"{route}\""), "status=\"400\"".to_owned()];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let counted = metric(&after, REQUESTS, &labels) - metric(&before, REQUESTS, &labels);
        assert_eq!(counted, 4.0, "{REQUESTS}{labels:?}:\n{after}");
    }
    access_log_reasons(&gw, "bad_request_body", 4 * routes.len()).await;

    // No back-off and no harm left behind: both upstreams serve the next request.
    for path in ["/sink-h1", "/sink-h2"] {
        let r = raw_request(gw.addr, &pki, &alice, &chunked(path, WELL_FORMED)).await;
        assert_eq!((r.status, r.body.as_str()), (200, "5 bytes"), "{path}");
    }
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Item 6: a truststore or listener certificate that would refuse every client.

fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(n)
}

fn expired_root(cn: &str) -> Ca {
    Ca::root_valid(cn, days(-400), days(-1))
}

fn future_root(cn: &str) -> Ca {
    Ca::root_valid(cn, days(1), days(400))
}

/// A server certificate of `pki` valid from `not_before` to `not_after`.
fn server_cert(pki: &TestPki, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Leaf {
    pki.inter.leaf(
        &LeafSpec {
            not_before,
            not_after,
            ..server_spec()
        },
        &pki.inter.pem(),
    )
}

/// Put `chain_pem` and `key_pem` where the config's listener reads them.
fn set_server_files(dir: &Path, chain_pem: &str, key_pem: &str) {
    fs::write(dir.join("server.pem"), chain_pem).unwrap();
    let key = dir.join("server.key");
    fs::remove_file(&key).unwrap();
    common::write_key(&key, key_pem);
}

/// POST /reload is refused, generation 1 still serving; the first reason.
async fn refused_reload(gw: &TestGateway) -> String {
    let (status, body) = reload(gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["generation"], 1, "{body}");
    body["reasons"][0].as_str().unwrap().to_owned()
}

/// Start from the config at `path`: the error (the start must fail), and what
/// `portcullis check` reports.
async fn failed_start(path: &Path) -> (String, Vec<String>) {
    let config = portcullis::config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let problems = portcullis::server::validate(&config);
    match portcullis::server::start(&config).await {
        Ok(running) => {
            running.shutdown().await;
            panic!("the gateway started");
        }
        Err(e) => (e.to_string(), problems),
    }
}

#[track_caller]
fn assert_names(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
}

#[tokio::test]
async fn a_reload_whose_every_root_is_out_of_its_validity_is_refused() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(conn.get("/").await.unwrap().status, 200);

    let root = gw.dir.path().join("truststore/roots/root.pem");
    let cases = [
        (expired_root("expired root CA"), "expired at"),
        (future_root("future root CA"), "is not valid before"),
    ];
    for (ca, words) in cases {
        fs::write(&root, ca.pem()).unwrap();
        let reason = refused_reload(&gw).await;
        assert_names(
            &reason,
            &["every client would be refused", "root.pem", words],
        );
    }
    // The previous generation kept serving: the open connection and a new one.
    assert_eq!(conn.get("/").await.unwrap().status, 200);
    let fresh = client::get(gw.addr, &pki, Opts::with(&alice), "/").await;
    assert_eq!(fresh.unwrap().status, 200);
    assert_eq!(common::truststore_json(&gw).await["generation"], 1);
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(
        &metrics,
        RELOADS,
        &["kind=\"api\"", "result=\"failure\""],
        2.0,
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn one_valid_root_is_enough_and_a_root_expiring_soon_is_accepted() {
    // A root that expires in two days (within the default 14-day expiry_warning): the
    // gateway starts, serves its clients and reloads; only the warning says so.
    let pki = TestPki::under(Ca::root_valid("soon root CA", days(-30), days(2)), "soon");
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let get = || client::get(gw.addr, &pki, Opts::with(&alice), "/");
    assert_eq!(get().await.unwrap().status, 200);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");

    // An expired and a not-yet-valid root beside it: one valid root is enough.
    let roots = gw.dir.path().join("truststore/roots");
    fs::write(roots.join("old.pem"), expired_root("old root CA").pem()).unwrap();
    fs::write(roots.join("next.pem"), future_root("next root CA").pem()).unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 3);
    assert_eq!(
        common::truststore_json(&gw).await["cas"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(get().await.unwrap().status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_watcher_refuses_an_expired_root_and_counts_the_failure() {
    let pki = TestPki::new();
    let spec = Spec {
        body: format!(
            "{}\n[reload]\ndebounce = \"50ms\"\npoll_interval = \"1h\"\n",
            common::echo_route()
        ),
        ..Spec::default()
    };
    let gw = common::start(&pki, spec).await;
    let alice = pki.client("alice");
    let failures = |text: &str| metric(text, RELOADS, &["kind=\"watch\"", "result=\"failure\""]);
    let before = failures(&gw.metrics().await);

    let root = gw.dir.path().join("truststore/roots/root.pem");
    let tmp = root.with_file_name(".root.pem.tmp");
    fs::write(&tmp, expired_root("expired root CA").pem()).unwrap();
    fs::rename(&tmp, &root).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while failures(&gw.metrics().await) <= before {
        assert!(
            Instant::now() < deadline,
            "the watcher did not refuse the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(common::truststore_json(&gw).await["generation"], 1);
    let r = client::get(gw.addr, &pki, Opts::with(&alice), "/").await;
    assert_eq!(r.unwrap().status, 200);
    gw.shutdown().await;
}

/// What a test does to a freshly written config folder.
type Breaks<'a> = Box<dyn Fn(&Path) + 'a>;

#[tokio::test]
async fn a_start_without_a_valid_root_or_with_a_bad_listener_certificate_fails_naming_it() {
    common::init();
    let pki = TestPki::new();
    let other = pki.client("other");
    let expired = server_cert(&pki, days(-30), days(-1));
    let cases: [(&str, Breaks, &[&str]); 4] = [
        (
            "every root expired",
            Box::new(|dir| {
                let root = dir.join("truststore/roots/root.pem");
                fs::write(root, expired_root("expired root CA").pem()).unwrap();
            }),
            &["every client would be refused", "root.pem", "expired at"],
        ),
        (
            "the listener certificate expired",
            Box::new(|dir| set_server_files(dir, &expired.chain_pem, &expired.key_pem)),
            &["server.pem", "expired at", "clients would refuse it"],
        ),
        (
            "the listener certificate not yet valid",
            Box::new(|dir| {
                let later = server_cert(&pki, days(1), days(30));
                set_server_files(dir, &later.chain_pem, &later.key_pem);
            }),
            &["server.pem", "is not valid before"],
        ),
        (
            "the key of another certificate",
            Box::new(|dir| set_server_files(dir, &pki.server.chain_pem, &other.key_pem)),
            &["server.key", "does not match the certificate", "server.pem"],
        ),
    ];
    for (what, breaks, words) in cases {
        let (dir, path) = common::write_config(&pki, &quiet());
        breaks(dir.path());
        let (err, problems) = failed_start(&path).await;
        assert_names(&err, words);
        // `portcullis check` reports the same problem.
        assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        assert_names(&problems[0], words);
    }
}

#[tokio::test]
async fn a_reload_with_a_bad_listener_certificate_is_refused() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let dir = gw.dir.path();

    let expired = server_cert(&pki, days(-30), days(-1));
    set_server_files(dir, &expired.chain_pem, &expired.key_pem);
    assert_names(&refused_reload(&gw).await, &["server.pem", "expired at"]);

    let later = server_cert(&pki, days(1), days(30));
    set_server_files(dir, &later.chain_pem, &later.key_pem);
    assert_names(
        &refused_reload(&gw).await,
        &["server.pem", "is not valid before"],
    );

    let other = pki.client("other");
    set_server_files(dir, &pki.server.chain_pem, &other.key_pem);
    assert_names(
        &refused_reload(&gw).await,
        &["does not match the certificate"],
    );

    // New handshakes still get the previous certificate and are served.
    let r = client::get(gw.addr, &pki, Opts::with(&alice), "/").await;
    assert_eq!(r.unwrap().status, 200);
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Item 9: bounded truststore files, PEM errors in words.

#[tokio::test]
async fn a_truststore_file_over_16_mib_is_refused_naming_the_file_and_the_limit() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let huge = gw.dir.path().join("truststore/crls/huge.crl");
    // Sparse: 17 MiB long, refused from its length before any of it is read.
    File::create(&huge)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    let reason = refused_reload(&gw).await;
    assert_names(&reason, &["huge.crl", "size limit of 16 MiB"]);

    fs::remove_file(&huge).unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    gw.shutdown().await;
}

/// `pem` without its END line (and what follows).
fn cut_short(pem: &str) -> String {
    pem.lines()
        .take_while(|l| !l.starts_with("-----END"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn a_pem_file_without_its_end_line_is_named_in_words() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let dir = gw.dir.path();
    let next_week = days(7);
    let crl = dir.join("truststore/crls/inter.crl.pem");
    let cases = [
        (
            crl.clone(),
            cut_short(&pki.inter.crl_pem(next_week)),
            "inter.crl.pem",
            "missing the end line \"-----END X509 CRL-----\"",
        ),
        (
            dir.join("truststore/roots/root.pem"),
            cut_short(&pki.root.pem()),
            "root.pem",
            "missing the end line \"-----END CERTIFICATE-----\"",
        ),
        (
            dir.join("server.pem"),
            cut_short(&pki.server.chain_pem),
            "server.pem",
            "missing the end line \"-----END CERTIFICATE-----\"",
        ),
    ];
    for (file, text, name, words) in cases {
        let good = fs::read_to_string(&file).unwrap();
        fs::write(&file, text).unwrap();
        let reason = refused_reload(&gw).await;
        assert_names(&reason, &[name, words]);
        // Words, not the byte list of the PEM library's own message ("[88, 53, 48, …]").
        assert!(!reason.contains('['), "{reason}");
        fs::write(&file, good).unwrap();
    }
    // The listener key, whose file is written with mode 0600.
    set_server_files(dir, &pki.server.chain_pem, &cut_short(&pki.server.key_pem));
    let reason = refused_reload(&gw).await;
    assert_names(
        &reason,
        &[
            "server.key",
            "missing the end line \"-----END PRIVATE KEY-----\"",
        ],
    );
    gw.shutdown().await;
}
