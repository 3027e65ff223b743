//! Operations: admin endpoints, metrics, the access log, limits, graceful shutdown.

mod common;

use std::time::Duration;

use common::client;
use common::origin::Origin;
use common::{Opts, Spec, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn admin_endpoints_metrics_and_access_log() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let admin = gw.admin.unwrap();
    assert_eq!(common::admin_get(admin, "/healthz").await.0, 200);
    assert_eq!(common::admin_get(admin, "/readyz").await.0, 200);
    assert_eq!(common::admin_get(admin, "/nope").await.0, 404);

    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(c.get("/hello?token=secret").await.unwrap().status, 200);
    assert_eq!(c.get("/%2e%2e/x").await.unwrap().status, 400);

    let metrics = gw.metrics().await;
    for needle in [
        "portcullis_http_requests_total{route=\"all\",status=\"200\"}",
        "portcullis_http_requests_total{route=\"none\",status=\"400\"}",
        "portcullis_http_request_duration_seconds_bucket{route=\"all\"",
        "portcullis_listener_connections_active",
        "portcullis_tls_client_cert_verifications_total",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }

    drop(c);
    // The writer thread flushes asynchronously; poll briefly (bounded).
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = gw.access_log();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ok = &lines[0];
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "all");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/hello", "query strings are never logged");
    assert_eq!(ok["upstream"], "echo");
    assert_eq!(ok["reason"], "allowed");
    assert_eq!(ok["uri_san"], "spiffe://test/client/alice");
    assert_eq!(ok["fingerprint"].as_str().unwrap().len(), 64);
    assert!(ok["bytes"].as_u64().unwrap() > 0);
    assert!(ok["duration_ms"].as_f64().is_some());
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let bad = &lines[1];
    assert_eq!(bad["status"], 400);
    assert_eq!(bad["reason"], "bad_request");
    gw.shutdown().await;
}

/// Over HTTP/1.1 and HTTP/2, with the request longer than the 1 s a client that leaves a
/// shutdown unanswered is given: the drain waits for it, and counts the connection as
/// drained.
#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    for h2 in [false, true] {
        drain_with_a_request_in_flight(h2).await;
    }
}

async fn drain_with_a_request_in_flight(h2: bool) {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let mut gw = common::start(
        &pki,
        Spec {
            body: common::backend_route(origin.addr, ""),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let opts = Opts {
        h2,
        ..Opts::with(&alice)
    };
    let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
    let in_flight = tokio::spawn(async move { c.get("/slow?ms=1500").await });
    // Let the request reach the backend before asking for shutdown.
    for _ in 0..100 {
        if origin.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running = gw.take_running();
    let addr = gw.addr;
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200, "h2={h2}");
    assert_eq!(&reply.body[..], b"slow");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes once the request is done")
        .unwrap();
    assert!(
        client::get(addr, &pki, Opts::with(&alice), "/")
            .await
            .is_err(),
        "no new connections after shutdown"
    );
    // The admin listener has stopped too: read the process's recorder.
    let text = portcullis::telemetry::prometheus().render();
    let label = format!("listener=\"{addr}\"");
    let drained = common::metric(
        &text,
        portcullis::telemetry::metrics::CONNECTIONS_CLOSED_TOTAL,
        &[&label, "reason=\"drain\""],
    );
    assert_eq!(drained, 1.0, "h2={h2}\n{text}");
}

#[tokio::test]
async fn slow_header_and_idle_connections_are_closed() {
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            listener: "header_read_timeout = \"300ms\"\nidle_timeout = \"300ms\"",
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let cfg = std::sync::Arc::new(client::tls_config(&pki, &Opts::with(&alice)));
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap()
    };
    // A client that never finishes its request head is cut off.
    let mut slow = connect().await;
    slow.write_all(b"GET / HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the gateway closed the slow connection");

    // An HTTP/2 connection that goes idle is closed (GOAWAY, then EOF).
    let opts = Opts {
        h2: true,
        ..Opts::with(&alice)
    };
    let mut c = client::connect(gw.addr, &pki, opts).await.unwrap();
    assert_eq!(c.get("/").await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        c.get("/").await.is_err(),
        "idle HTTP/2 connection was closed"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn world_readable_server_key_is_refused_unless_warn() {
    use std::os::unix::fs::PermissionsExt;
    common::init();
    let pki = TestPki::new();
    let (dir, path) = common::write_config(&pki, &Spec::default());
    let key = dir.path().join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let err = match portcullis::server::start(&config).await {
        Ok(_) => panic!("a group/world-readable key must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("server.key") && err.contains("chmod 600"),
        "{err}"
    );

    let text = std::fs::read_to_string(&path).unwrap().replace(
        "key = \"server.key\"",
        "key = \"server.key\"\nkey_permissions = \"warn\"",
    );
    std::fs::write(&path, text).unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let running = portcullis::server::start(&config)
        .await
        .expect("warn lets it start");
    running.shutdown().await;
}

/// A 405 names what the path takes (issue 18, item 15): a route's methods (over both routes
/// of one prefix), and each admin endpoint's one method (`GET /reload` → `Allow: POST`).
#[tokio::test]
async fn a_405_carries_allow() {
    let pki = TestPki::new();
    let body = "[[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n\
        [[route]]\nname = \"read\"\npath_prefix = \"/data\"\nmethods = [\"GET\", \"HEAD\"]\nupstream = \"echo\"\n\n\
        [[route]]\nname = \"write\"\npath_prefix = \"/data\"\nmethods = [\"PUT\"]\nupstream = \"echo\"\n";
    let gw = common::start(
        &pki,
        Spec {
            body: body.into(),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let r = c.send(client::request("POST", "/data/x")).await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["x-portcullis-error"], "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET, HEAD, PUT");
    assert_eq!(c.get("/data/x").await.unwrap().status, 200);

    let admin = gw.admin.unwrap();
    for (method, path, allow) in [
        ("GET", "/reload", "POST"),
        ("GET", "/issuer/oauth2/revoke", "POST"),
        ("POST", "/metrics", "GET"),
        ("DELETE", "/readyz", "GET"),
        ("PUT", "/truststore", "GET"),
    ] {
        let (status, headers) = admin_request(admin, method, path).await;
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(headers["allow"], allow, "{method} {path}");
    }
    assert_eq!(admin_request(admin, "GET", "/nope").await.0, 404);
    gw.shutdown().await;
}

/// `METHOD path` on the admin listener: (status, headers).
async fn admin_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> (u16, http::HeaderMap) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

/// On shutdown (issue 18, item 8): `/readyz` turns 503 while the listener still accepts for
/// its `drain_delay` (a new connection is served), then accepting stops while the admin
/// listener still answers 503 and the request in flight finishes; the admin listener stops
/// last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_delay_keeps_accepting_after_readiness_turned_503() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let mut gw = common::start(
        &pki,
        Spec {
            listener: "drain_delay = \"2s\"",
            body: common::backend_route(origin.addr, ""),
            ..Spec::default()
        },
    )
    .await;
    let (addr, admin) = (gw.addr, gw.admin.unwrap());
    let alice = pki.client("alice");
    let mut c = client::connect(addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let in_flight = tokio::spawn(async move { c.get("/slow?ms=6000").await });
    for _ in 0..200 {
        if origin.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(common::admin_get(admin, "/readyz").await.0, 200);
    let stopping = tokio::spawn(gw.take_running().shutdown());

    // The readiness probe sees 503 ...
    let mut probe = 0;
    for _ in 0..500 {
        probe = common::admin_get(admin, "/readyz").await.0;
        if probe == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe, 503, "readiness turns 503 on shutdown");
    // ... while a new connection is still accepted and served (the load balancer's last).
    let late = client::get(addr, &pki, Opts::with(&alice), "/").await;
    assert_eq!(late.map(|r| r.status.as_u16()), Ok(200));

    // After drain_delay accepting stops; the admin listener still answers, the request in
    // flight is not cut.
    let mut refused = false;
    for _ in 0..100 {
        if client::get(addr, &pki, Opts::with(&alice), "/")
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the listener stops accepting after drain_delay");
    assert!(
        !in_flight.is_finished(),
        "the slow request is still running"
    );
    assert_eq!(common::admin_get(admin, "/readyz").await.0, 503);
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("shutdown completes once the request is done")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin listener stops once the drain has ended"
    );
}
