//! Routing, authorization and forwarding to a real backend.

mod common;

use bytes::Bytes;
use common::client::{self, request};
use common::origin::Origin;
use common::{Opts, Spec, TestPki};
use http_body_util::Full;

fn spec(body: String) -> Spec<'static> {
    Spec {
        body,
        ..Spec::default()
    }
}

/// A gateway with these upstreams and routes, and one connection to it as client alice.
async fn start_as_alice(pki: &TestPki, body: String) -> (common::TestGateway, client::Conn) {
    let gw = common::start(pki, spec(body)).await;
    let alice = pki.client("alice");
    let c = client::connect(gw.addr, pki, Opts::with(&alice))
        .await
        .unwrap();
    (gw, c)
}

#[tokio::test]
async fn backend_sees_verified_identity_and_forged_headers_are_replaced() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(&pki, spec(common::backend_route(origin.addr, ""))).await;
    let alice = pki.client("alice");
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let req = http::Request::builder()
        .uri("/orders/1?x=1")
        .header("host", "api.test:8443")
        .header("x-forwarded-client-cert", "Hash=forged;Subject=\"CN=root\"")
        .header("x-client-subject", "CN=root")
        .header("x-client-anything", "forged")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = conn.send(req).await.unwrap();
    assert_eq!(reply.status, 200);
    let seen = origin.last();
    assert_eq!(seen.path_and_query, "/orders/1?x=1");
    let h = &seen.headers;
    let fp = h["x-client-fingerprint"].to_str().unwrap().to_owned();
    assert_eq!(fp.len(), 64);
    assert!(fp
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        h["x-forwarded-client-cert"],
        format!("Hash={fp};Subject=\"CN=alice,O=portcullis tests\";URI=spiffe://test/client/alice")
            .as_str()
    );
    assert_eq!(h["x-client-subject"], "CN=alice,O=portcullis tests");
    assert_eq!(h["x-client-uri-san"], "spiffe://test/client/alice");
    assert!(!h.contains_key("x-client-anything"));
    assert!(!h.contains_key("x-hop"));
    // The client is not a trusted proxy: its own X-Forwarded-For is replaced.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "api.test:8443");
    assert_eq!(h["host"], "api.test:8443");
    gw.shutdown().await;
}

/// A certificate whose SANs hold the identity headers' separators: a URI SAN with a comma
/// must not read as two URIs in `x-client-uri-san` (a backend splitting on `,` would see a
/// forged `.../admin`), a backslash must not escape the XFCC closing quote, and a quote
/// must not end the value early (`;DNS=forged` stays inside it).
#[tokio::test]
async fn hostile_sans_keep_the_identity_headers_structure() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(&pki, spec(common::backend_route(origin.addr, ""))).await;
    let leaf = pki.leaf(common::LeafSpec {
        cn: r#"a"b,c\"#.into(),
        uris: vec![
            "spiffe://test/client/a,spiffe://test/client/admin".into(),
            r"urn:x\".into(),
            r#"urn:q";DNS=forged"#.into(),
        ],
        // webpki refuses a certificate whose DNS SAN is no DNS name.
        dns: vec!["d.test".into()],
        ..common::LeafSpec::default()
    });
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&leaf))
        .await
        .unwrap();
    assert_eq!(conn.get("/x").await.unwrap().status, 200);
    let h = origin.last().headers;
    assert_eq!(
        h["x-client-uri-san"],
        r#"spiffe://test/client/a%2Cspiffe://test/client/admin,urn:x%5C,urn:q";DNS=forged"#
    );
    let fp = h["x-client-fingerprint"].to_str().unwrap();
    assert_eq!(
        h["x-forwarded-client-cert"],
        format!(
            r#"Hash={fp};Subject="CN=a\22b\,c\5C,O=portcullis tests";URI="spiffe://test/client/a,spiffe://test/client/admin";URI=urn:x%5C;URI="urn:q\";DNS=forged";DNS=d.test"#
        )
        .as_str()
    );
    assert_eq!(h["x-client-subject"], r#"CN=a\"b\,c\\,O=portcullis tests"#);
    gw.shutdown().await;
}

fn allow_list_routes(addr: std::net::SocketAddr) -> String {
    format!(
        r#"[[upstream]]
name = "backend"
endpoints = ["{addr}"]

[[route]]
name = "api"
path_prefix = "/api"
upstream = "backend"

[[route]]
name = "admin"
path_prefix = "/admin"
upstream = "backend"
[[route.allow]]
uri_san = "spiffe://test/client/ops-*"
"#
    )
}

#[tokio::test]
async fn allow_list_and_path_normalisation() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(&pki, spec(allow_list_routes(origin.addr))).await;
    let alice = pki.client("alice");
    let ops = pki.client("ops-1");
    let mut a = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let mut o = client::connect(gw.addr, &pki, Opts::with(&ops))
        .await
        .unwrap();

    assert_eq!(a.get("/api/x").await.unwrap().status, 200);
    let denied = a.get("/admin").await.unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(denied.headers["x-portcullis-error"], "forbidden");
    assert_eq!(denied.json()["error"], "forbidden");
    assert_eq!(o.get("/admin/x").await.unwrap().status, 200);
    assert_eq!(origin.last().path_and_query, "/admin/x");

    // Dot-segments are resolved before routing: this is /admin, and alice may not.
    let before = origin.count();
    assert_eq!(a.get("/api/../admin").await.unwrap().status, 403);
    assert_eq!(a.get("/api/./../admin/").await.unwrap().status, 403);
    assert_eq!(a.get("//admin").await.unwrap().status, 403);
    assert_eq!(a.get("/%61dmin").await.unwrap().status, 403);
    for encoded in [
        "/api/%2e%2e/admin",
        "/api/%2E%2E/admin",
        "/api%2fadmin",
        "/api/%00",
    ] {
        let r = a.get(encoded).await.unwrap();
        assert_eq!(r.status, 400, "{encoded}");
        assert_eq!(r.headers["x-portcullis-error"], "bad_request");
    }
    assert_eq!(origin.count(), before, "none of these reached the backend");

    // The normalised path is what the backend receives.
    assert_eq!(o.get("/api/a/../b//c").await.unwrap().status, 200);
    assert_eq!(origin.last().path_and_query, "/api/b/c");
    gw.shutdown().await;
}

#[tokio::test]
async fn route_miss_method_mismatch_and_framing_errors() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let body = format!(
        "[[upstream]]\nname = \"b\"\nendpoints = [\"{}\"]\n\n[[route]]\nname = \"ro\"\npath_prefix = \"/data\"\nmethods = [\"GET\"]\nupstream = \"b\"\nmax_body_size = \"16B\"\n\n[[route]]\nname = \"up\"\npath_prefix = \"/upload\"\nupstream = \"b\"\nmax_body_size = \"16B\"\n",
        origin.addr
    );
    let (gw, mut c) = start_as_alice(&pki, body).await;
    let miss = c.get("/nothing-here").await.unwrap();
    assert_eq!(miss.status, 404);
    assert_eq!(miss.headers["x-portcullis-error"], "no_route");
    let v = miss.json();
    assert_eq!(v["error"], "no_route");
    assert!(v["message"].as_str().unwrap().len() > 5);
    assert_eq!(
        c.send(request("DELETE", "/data")).await.unwrap().status,
        405
    );

    let big = http::Request::post("/upload")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(vec![b'x'; 17])))
        .unwrap();
    let r = c.send(big).await.unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.headers["x-portcullis-error"], "payload_too_large");
    let small = http::Request::post("/upload/body")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"0123456789abcdef")))
        .unwrap();
    assert_eq!(c.send(small).await.unwrap().status, 200);
    gw.shutdown().await;
}

/// Both `content-length` and `transfer-encoding`: hyper frames the request by
/// transfer-encoding alone, drops content-length, and closes the connection after the
/// response (RFC 9112 §6.3), so a body smuggled under the other framing is never parsed as
/// a request. The backend sees one consistent framing.
#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let alice = pki.client("alice");
    let mut tls = client::raw_tls(gw.addr, &pki, &alice, None).await;
    tls.write_all(
        b"POST /first HTTP/1.1\r\nhost: localhost\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut all),
    )
    .await
    .expect("the gateway closes the connection after such a request")
    .ok();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one response only: {text}"
    );
    assert!(
        text.contains("\"/first\"") && !text.contains("/smuggled"),
        "{text}"
    );
    assert!(text.contains("\"body_bytes\": 0"), "{text}");
    assert!(
        !text.contains("\"content-length\""),
        "content-length was dropped: {text}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let pki = TestPki::new();
    // A port with nothing listening: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let origin = Origin::start().await;
    let body = format!(
        "[[upstream]]\nname = \"dead\"\nendpoints = [\"{dead}\"]\n\n[[upstream]]\nname = \"slow\"\nendpoints = [\"{}\"]\nrequest_timeout = \"300ms\"\n\n[[route]]\nname = \"dead\"\npath_prefix = \"/dead\"\nupstream = \"dead\"\n\n[[route]]\nname = \"slow\"\npath_prefix = \"/slow\"\nupstream = \"slow\"\n",
        origin.addr
    );
    let (gw, mut c) = start_as_alice(&pki, body).await;
    let r = c.get("/dead").await.unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["x-portcullis-error"], "upstream_unavailable");
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&dead.to_string()),
        "no internals leak"
    );
    let r = c.get("/slow").await.unwrap();
    assert_eq!(r.status, 504);
    assert_eq!(r.headers["x-portcullis-error"], "upstream_timeout");
    gw.shutdown().await;
}

#[tokio::test]
async fn connections_are_pooled_and_endpoints_balanced() {
    let pki = TestPki::new();
    let a = Origin::start().await;
    let b = Origin::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = format!(
        "[[upstream]]\nname = \"b\"\nendpoints = [\"{}\", \"{dead}\", \"{}\"]\n\n[[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"b\"\n",
        a.addr, b.addr
    );
    let (gw, mut c) = start_as_alice(&pki, body).await;
    let mut failures = 0;
    for _ in 0..20 {
        if c.get("/x").await.unwrap().status != 200 {
            failures += 1;
        }
    }
    // The dead endpoint fails at most once before its back-off takes it out of rotation.
    assert!(failures <= 1, "{failures} failures");
    assert!(
        a.count() >= 8 && b.count() >= 8,
        "a={} b={}",
        a.count(),
        b.count()
    );
    let conns = a.connections.load(std::sync::atomic::Ordering::SeqCst)
        + b.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        conns <= 4,
        "sequential requests reuse pooled connections ({conns} opened)"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_upstream_pool_hits_total{upstream=\"b\"}"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_client_to_http2_upstream_with_trailers() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(
        &pki,
        spec(common::backend_route(origin.addr, "protocol = \"http2\"")),
    )
    .await;
    let alice = pki.client("alice");
    let opts = Opts {
        h2: true,
        ..Opts::with(&alice)
    };
    let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
    let mut req = request("POST", "/trailers");
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    let reply = c.send(req).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], b"payload");
    let seen = origin.last();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.headers["te"], "trailers");
    assert!(seen.headers.contains_key("x-forwarded-client-cert"));
    gw.shutdown().await;
}

#[tokio::test]
async fn request_body_streams_to_the_backend() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(&pki, spec(common::backend_route(origin.addr, ""))).await;
    let alice = pki.client("alice");
    for h2 in [false, true] {
        let opts = Opts {
            h2,
            ..Opts::with(&alice)
        };
        let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
        let payload = Bytes::from(vec![7u8; 256 * 1024]);
        let req = http::Request::post("https://localhost/body")
            .header("host", "localhost")
            .body(Full::new(payload.clone()))
            .unwrap();
        let reply = c.send(req).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, payload);
    }
    gw.shutdown().await;
}
