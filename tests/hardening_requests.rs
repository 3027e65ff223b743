//! Hostile requests against the real gateway (issue 14, items 3, 4 and 7): a malformed or
//! missing `Host`, header names with `_` that CGI/WSGI backends read as identity headers,
//! and paths that mean `/admin` to common backends. Each attack goes over real TLS to a
//! gateway on 127.0.0.1 in front of a real origin that records what it received.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{self, request};
use common::origin::Origin;
use common::pki::Leaf;
use common::{Opts, Spec, TestGateway, TestPki};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUESTS_TOTAL: &str = "portcullis_http_requests_total";
const UNDERSCORES_TOTAL: &str = "portcullis_http_headers_with_underscores_total";

/// An open route `/` and an `/admin` route that only `ops-*` clients may use, both to
/// `origin`; `admin_extra` goes into the admin route.
fn routes(origin: SocketAddr, admin_extra: &str) -> String {
    format!(
        r#"[[upstream]]
name = "backend"
endpoints = ["{origin}"]

[[route]]
name = "open"
path_prefix = "/"
upstream = "backend"

[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "backend"
{admin_extra}
[[route.allow]]
uri_san = "spiffe://test/client/ops-*"
"#
    )
}

async fn gateway(
    pki: &TestPki,
    origin: &Origin,
    listener: &'static str,
    admin: &str,
) -> TestGateway {
    let spec = Spec {
        listener,
        body: routes(origin.addr, admin),
        ..Spec::default()
    };
    common::start(pki, spec).await
}

/// Raw bytes over TLS as `who` (hyper's client would mend some of these requests); what the
/// gateway answered before it closed the connection.
async fn raw_http1(addr: SocketAddr, pki: &TestPki, who: &Leaf, request: &[u8]) -> String {
    let mut tls = client::raw_tls(addr, pki, who, None).await;
    tls.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer));
    let _ = read
        .await
        .expect("the gateway answers and closes within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The `reason` of every access-log line, once at least `n` were written (bounded wait).
async fn logged_reasons(gw: &TestGateway, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = gw.access_log();
        if lines.len() >= n || Instant::now() > deadline {
            return lines
                .iter()
                .map(|l| l["reason"].as_str().unwrap_or_default().to_owned())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn h2(who: &Leaf) -> Opts<'_> {
    Opts {
        h2: true,
        ..Opts::with(who)
    }
}

#[tokio::test]
async fn malformed_missing_or_repeated_host_is_400_and_never_reaches_the_origin() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "", "").await;
    let alice = pki.client("alice");

    let mut attacks: Vec<String> = [
        "localhost, admin.test",
        "admin.test, localhost",
        "admin.test:443:1",
        "admin.test/x",
        "admin.test\\x",
        "admin.test@x",
        "admin.test:99999",
        "admin.test:",
        "[::1",
    ]
    .iter()
    .map(|h| format!("GET /x HTTP/1.1\r\nhost: {h}\r\nconnection: close\r\n\r\n"))
    .collect();
    attacks.push("GET /x HTTP/1.1\r\nconnection: close\r\n\r\n".into());
    attacks.push(
        "GET /x HTTP/1.1\r\nhost: localhost\r\nhost: admin.test\r\nconnection: close\r\n\r\n"
            .into(),
    );
    attacks.push(
        "GET https://user@localhost/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
            .into(),
    );
    for attack in &attacks {
        let answer = raw_http1(gw.addr, &pki, &alice, attack.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{attack:?}\n{answer}");
        assert!(
            answer.contains("x-portcullis-error: bad_request"),
            "{attack:?}\n{answer}"
        );
    }
    assert_eq!(origin.count(), 0, "no bad host reached the origin");
    let reasons = logged_reasons(&gw, attacks.len()).await;
    assert_eq!(reasons, vec!["bad_host"; attacks.len()]);
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(
        &metrics,
        REQUESTS_TOTAL,
        &["route=\"none\"", "status=\"400\""],
        attacks.len() as f64,
    );

    // Valid forms pass unchanged: a name with a port, an address, an IPv6 literal.
    for host in ["Admin.Test:8443", "127.0.0.1", "[::1]:443"] {
        let req = format!("GET /x HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let answer = raw_http1(gw.addr, &pki, &alice, req.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}\n{answer}");
        let seen = origin.last();
        assert_eq!(seen.headers["host"], host);
        assert_eq!(seen.headers["x-forwarded-host"], host);
    }
    // HTTP/1.0 may omit Host (RFC 9112 §3.2): it matches `host = "*"` routes, the upstream's
    // address goes as Host, and no x-forwarded-host is sent.
    let answer = raw_http1(gw.addr, &pki, &alice, b"GET /x HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 200 "), "{answer}");
    let seen = origin.last();
    assert_eq!(seen.headers["host"], origin.addr.to_string().as_str());
    assert!(!seen.headers.contains_key("x-forwarded-host"));
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_authority_that_differs_from_host_is_400() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "", "").await;
    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, h2(&alice)).await.unwrap();

    let with_host = |authority: &str, hosts: &[&str]| {
        let mut b = http::Request::get(format!("https://{authority}/x"));
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    for (authority, hosts) in [
        ("localhost", &["admin.test"][..]),
        ("localhost", &["localhost:8443"][..]),
        ("localhost", &["localhost, admin.test"][..]),
        ("localhost", &["localhost", "localhost"][..]),
        ("user@localhost", &[][..]),
    ] {
        let r = c.send(with_host(authority, hosts)).await.unwrap();
        assert_eq!(r.status, 400, "{authority} {hosts:?}");
        assert_eq!(r.headers["x-portcullis-error"], "bad_request");
        assert_eq!(r.version, http::Version::HTTP_2);
    }
    assert_eq!(origin.count(), 0);
    let reasons = logged_reasons(&gw, 5).await;
    assert_eq!(reasons, vec!["bad_host"; 5]);

    // The same origin written two ways is one host.
    let r = c
        .send(with_host("LocalHost:443", &["localhost."]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(origin.last().headers["x-forwarded-host"], "LocalHost:443");
    gw.shutdown().await;
}

/// The forged aliases a CGI backend reads as `x-client-uri-san` and
/// `x-forwarded-client-cert`, and a harmless underscore header.
fn underscore_request() -> http::Request<Full<Bytes>> {
    let mut req = request("GET", "/x");
    let h = req.headers_mut();
    h.insert(
        "x_client_uri_san",
        "spiffe://test/client/ops-1".parse().unwrap(),
    );
    h.insert("X_Forwarded_Client_Cert", "Hash=forged".parse().unwrap());
    h.insert("x-client_subject", "CN=ops-1".parse().unwrap());
    h.insert("x_request_id", "abc".parse().unwrap());
    req
}

fn underscore_names(seen: &http::HeaderMap) -> Vec<&str> {
    seen.keys()
        .map(|n| n.as_str())
        .filter(|n| n.contains('_'))
        .collect()
}

/// One gateway per `headers_with_underscores` setting, each tried over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn underscore_headers_are_dropped_rejected_or_allowed_but_never_forge_identity() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let alice = pki.client("alice");
    for (listener, action) in [
        ("", "dropped"),
        ("headers_with_underscores = \"drop\"", "dropped"),
        ("headers_with_underscores = \"reject\"", "rejected"),
        ("headers_with_underscores = \"allow\"", "allowed"),
    ] {
        let gw = gateway(&pki, &origin, listener, "").await;
        for opts in [Opts::with(&alice), h2(&alice)] {
            let before = origin.count();
            let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
            let r = c.send(underscore_request()).await.unwrap();
            if action == "rejected" {
                assert_eq!(r.status, 400, "{listener}");
                assert_eq!(r.headers["x-portcullis-error"], "bad_request");
                assert_eq!(origin.count(), before, "{listener}: nothing forwarded");
                continue;
            }
            assert_eq!(r.status, 200, "{listener}");
            let seen = origin.last();
            let kept = underscore_names(&seen.headers);
            if action == "allowed" {
                assert_eq!(kept, ["x_request_id"], "{listener} h2={}", opts.h2);
            } else {
                assert!(kept.is_empty(), "{listener}: {kept:?}");
            }
            // The verified identity, never the forged one.
            assert_eq!(
                seen.headers["x-client-uri-san"],
                "spiffe://test/client/alice"
            );
            assert!(seen.headers["x-forwarded-client-cert"]
                .to_str()
                .unwrap()
                .contains("URI=spiffe://test/client/alice"));
        }
        let metrics = gw.metrics().await;
        let label = format!("listener=\"{}\"", gw.addr);
        let action_label = format!("action=\"{action}\"");
        let counted = common::metric(&metrics, UNDERSCORES_TOTAL, &[&label, &action_label]);
        assert_eq!(counted, 2.0, "{listener}\n{metrics}");
        if action == "rejected" {
            let reasons = logged_reasons(&gw, 2).await;
            assert_eq!(reasons, ["underscore_header", "underscore_header"]);
        }
        gw.shutdown().await;
    }
}

/// The path tricks of the issue, each refused or sent to `/admin`'s allow-list.
const PATH_TRICKS: [(&str, u16, &str); 8] = [
    ("/ADMIN", 403, "not_in_allow_list"),
    ("/Admin/x", 403, "not_in_allow_list"),
    ("/admin;x", 400, "path_parameter"),
    ("/x/..;/admin", 400, "path_parameter"),
    ("/.;/admin", 400, "path_parameter"),
    ("/admin%3bx", 400, "path_parameter"),
    ("/%2561dmin", 400, "encoded_percent"),
    ("/admin%252f", 400, "encoded_percent"),
];

#[tokio::test]
async fn paths_that_mean_admin_never_reach_the_open_route() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "", "").await;
    let alice = pki.client("alice");
    let ops = pki.client("ops-1");
    for opts in [Opts::with(&alice), h2(&alice)] {
        let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
        for (path, status, _) in PATH_TRICKS {
            let r = c.get(path).await.unwrap();
            assert_eq!(r.status, status, "{path} h2={}", opts.h2);
        }
    }
    assert_eq!(origin.count(), 0, "no trick reached the origin");
    let reasons = logged_reasons(&gw, 2 * PATH_TRICKS.len()).await;
    let want: Vec<&str> = PATH_TRICKS.iter().map(|t| t.2).collect();
    assert_eq!(reasons, [want.clone(), want].concat());

    // An allowed client gets through on any case; the backend receives the path as sent.
    let (mut h1, mut h2c) = client::connect_both(gw.addr, &pki, &ops).await;
    for c in [&mut h1, &mut h2c] {
        assert_eq!(c.get("/ADMIN/Users").await.unwrap().status, 200);
        assert_eq!(origin.last().path_and_query, "/ADMIN/Users");
    }
    gw.shutdown().await;
}

/// The opt-outs: `path_parameters = "allow"` forwards `;` and `%25` as they are (routed as
/// they are: `/admin;x` is not under `/admin`), and a `case_sensitive = true` route matches
/// its exact case only.
#[tokio::test]
async fn path_parameters_allow_and_case_sensitive_routes_behave_as_documented() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(
        &pki,
        &origin,
        "path_parameters = \"allow\"",
        "case_sensitive = true",
    )
    .await;
    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    for (path, forwarded) in [
        ("/admin;x", "/admin;x"),
        ("/x/..;/admin", "/x/..;/admin"),
        ("/%2561dmin", "/%2561dmin"),
        ("/a%3bb", "/a%3Bb"),
        ("/ADMIN", "/ADMIN"),
    ] {
        let r = c.get(path).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(origin.last().path_and_query, forwarded);
    }
    assert_eq!(c.get("/admin").await.unwrap().status, 403);
    assert_eq!(c.get("/admin/x").await.unwrap().status, 403);
    gw.shutdown().await;
}

/// curl, an outside client, for one case of each item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_the_same_refusals() {
    common::ensure_tool("curl", "curl");
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "headers_with_underscores = \"reject\"", "").await;
    let alice = pki.client("alice");
    let dir = gw.dir.path().to_owned();
    std::fs::write(dir.join("root.pem"), pki.root_pem()).unwrap();
    std::fs::write(dir.join("alice.pem"), &alice.chain_pem).unwrap();
    common::write_key(&dir.join("alice.key"), &alice.key_pem);
    let port = gw.addr.port();
    let curl = move |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .current_dir(&dir)
                .args(["-sS", "--max-time", "20", "--cacert", "root.pem"])
                .args(["--cert", "alice.pem", "--key", "alice.key"])
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
                .args(&args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let cases = [
        vec![
            "--http1.1".into(),
            "-H".into(),
            "Host: admin.test, localhost".into(),
            url("/x"),
        ],
        vec![
            "--http2".into(),
            "-H".into(),
            "x_client_uri_san: spiffe://test/client/ops-1".into(),
            url("/x"),
        ],
        vec![
            "--http1.1".into(),
            "--path-as-is".into(),
            url("/x/..;/admin"),
        ],
        vec!["--http2".into(), url("/%2561dmin")],
    ];
    let want = ["400 1.1", "400 2", "400 1.1", "400 2"];
    for (args, want) in cases.into_iter().zip(want) {
        let got = curl(args.clone()).await.unwrap();
        assert_eq!(got, want, "{args:?}");
    }
    assert_eq!(
        curl(vec!["--http2".into(), url("/ADMIN")]).await.unwrap(),
        "403 2"
    );
    assert_eq!(
        curl(vec!["--http1.1".into(), url("/x")]).await.unwrap(),
        "200 1.1"
    );
    assert_eq!(
        origin.count(),
        1,
        "only the last request reached the origin"
    );
    gw.shutdown().await;
}
