//! `[[truststore.crl_fetch]]`: CRLs fetched from a real HTTP server on 127.0.0.1 take effect
//! on new handshakes and open connections; 304s are used; bad, forged and replayed CRLs are
//! refused while the last good one stays in use.

mod common;

use std::convert::Infallible;
use std::fs;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client;
use common::pki::Ca;
use common::{Opts, Spec, TestPki, TrustLayout};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateRevocationListDer;
use time::OffsetDateTime;

/// What the CRL server answers: a body with an ETag (conditional requests answered 304),
/// or an error status.
#[derive(Default)]
struct Served {
    body: Vec<u8>,
    etag: u32,
    status: u16,
    /// Requests seen, and how many carried `If-None-Match`.
    requests: usize,
    conditional: usize,
}

#[derive(Clone)]
struct CrlServer {
    addr: SocketAddr,
    state: Arc<Mutex<Served>>,
}

impl CrlServer {
    async fn start(body: Vec<u8>) -> CrlServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Served {
            body,
            etag: 1,
            status: 200,
            ..Served::default()
        }));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move {
                            let mut s = st.lock().unwrap();
                            s.requests += 1;
                            // etag 0: a server that knows nothing of conditional requests.
                            let etag = format!("\"v{}\"", s.etag);
                            let inm = req
                                .headers()
                                .get("if-none-match")
                                .cloned()
                                .filter(|_| s.etag != 0);
                            if inm.is_some() {
                                s.conditional += 1;
                            }
                            let resp = if s.status != 200 {
                                http::Response::builder()
                                    .status(s.status)
                                    .body(Full::new(Bytes::from_static(b"down")))
                            } else if inm.is_some_and(|v| v == etag.as_str()) {
                                http::Response::builder()
                                    .status(304)
                                    .header("etag", &etag)
                                    .body(Full::new(Bytes::new()))
                            } else {
                                let mut r = http::Response::builder()
                                    .header("content-type", "application/pkix-crl");
                                if s.etag != 0 {
                                    r = r.header("etag", &etag);
                                }
                                r.body(Full::new(Bytes::from(s.body.clone())))
                            };
                            Ok::<_, Infallible>(resp.unwrap())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        CrlServer { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/inter.crl", self.addr)
    }

    /// Serve a new document (a new ETag).
    fn serve(&self, body: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        s.body = body;
        s.etag += 1;
        s.status = 200;
    }

    /// Keep the document, but answer every request 200 with it and no ETag.
    fn without_etags(&self) {
        self.state.lock().unwrap().etag = 0;
    }

    fn fail_with(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    fn counts(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.requests, s.conditional)
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn next_week() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(7)
}

/// `portcullis_crl_fetch_total` for `url` and `result`.
async fn fetches(gw: &common::TestGateway, url: &str, result: &str) -> f64 {
    let url = format!("url=\"{url}\"");
    let result = format!("result=\"{result}\"");
    common::metric(
        &gw.metrics().await,
        "portcullis_crl_fetch_total",
        &[&url, &result],
    )
}

/// Poll the metrics (bounded) until `fetches(url, result)` reaches `n`.
async fn wait_fetches(gw: &common::TestGateway, url: &str, result: &str, n: f64) {
    let start = Instant::now();
    loop {
        let seen = fetches(gw, url, result).await;
        if seen >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "crl_fetch_total{{result={result}}} stayed at {seen}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a new connection as `who` gets a request through (a refused handshake: no).
async fn admitted(gw: &common::TestGateway, pki: &TestPki, who: &common::pki::Leaf) -> bool {
    match client::get(gw.addr, pki, Opts::with(who), "/").await {
        Ok(r) => {
            assert_eq!(r.status, 200, "admitted, but answered {}", r.status);
            true
        }
        Err(_) => false,
    }
}

/// The root's CRL in the folder (full-chain revocation needs one); the intermediate's CRL
/// only from `url`. No watcher, a slow poller: only the CRL fetcher changes anything.
fn spec(url: &str, extra: &str) -> (String, String) {
    let truststore = format!(
        "[[truststore.crl_fetch]]\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"5s\"\n{extra}"
    );
    let body = format!(
        "{}\n[reload]\nwatch = false\npoll_interval = \"1h\"\n",
        common::echo_route()
    );
    (truststore, body)
}

/// A gateway fetching the intermediate's CRL from `url`, with the root's CRL in the folder.
async fn start(pki: &TestPki, url: &str) -> common::TestGateway {
    let (truststore, body) = spec(url, "");
    let (dir, path) = common::write_config(
        pki,
        &Spec {
            truststore: &truststore,
            body,
            layout: TrustLayout {
                intermediate_in_store: true,
                crls: false,
            },
            ..Spec::default()
        },
    );
    fs::write(
        dir.path().join("truststore/crls/root.crl.pem"),
        pki.root.crl_pem(next_week()),
    )
    .unwrap();
    common::init();
    let config = portcullis::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
    common::TestGateway::from_parts(running, dir)
}

#[tokio::test]
async fn fetched_crl_revokes_open_connections_and_refuses_bad_updates() {
    let mut pki = TestPki::named("fetch");
    let server = CrlServer::start(der(&pki.inter.crl_pem(next_week()))).await;
    let url = server.url();
    let gw = start(&pki, &url).await;

    // The CRL fetched at start is in the first generation.
    let ts = common::truststore_json(&gw).await;
    assert_eq!(ts["generation"], 1, "{ts}");
    let fetched: Vec<_> = ts["crls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["url"] == url.as_str())
        .collect();
    assert_eq!(fetched.len(), 1, "{ts}");
    assert_eq!(
        fetched[0]["issuer"],
        "CN=fetch intermediate CA,O=portcullis tests"
    );
    assert_eq!(fetched[0]["signature_checked"], true);
    assert!(fetches(&gw, &url, "updated").await >= 1.0);

    let alice = pki.client("alice");
    let bob = pki.client("bob");
    let (mut h1, mut h2) = client::connect_both(gw.addr, &pki, &alice).await;

    // Unchanged document: the refetch is conditional and answered 304.
    wait_fetches(&gw, &url, "not_modified", 1.0).await;
    let (_, conditional) = server.counts();
    assert!(conditional >= 1, "no If-None-Match sent");
    assert_eq!(h1.get("/").await.unwrap().status, 200);

    // The CA publishes a CRL revoking alice (PEM this time).
    pki.revoke(&alice);
    server.serve(pki.inter.crl_pem(next_week()).into_bytes());
    let reply = common::until_refused(&mut h1, Duration::from_secs(30))
        .await
        .expect("open HTTP/1.1 connection not cut off");
    assert_eq!(reply.1.status, 403);
    assert!(h1.get("/").await.is_err(), "HTTP/1.1 connection left open");
    assert_eq!(h2.get("/").await.unwrap().status, 403);
    assert!(
        !admitted(&gw, &pki, &alice).await,
        "a revoked client completed a new handshake"
    );
    let m = gw.metrics().await;
    common::assert_metric_at_least(
        &m,
        "portcullis_reload_total",
        &["kind=\"crl_fetch\"", "result=\"success\""],
        1.0,
    );
    common::assert_metric_at_least(&m, "portcullis_revoked_connections_total", &[], 1.0);
    let revoked_crl = pki.inter.crl_pem(next_week());

    // Each bad update is refused; the CRL revoking alice stays in use, bob still gets in.
    let forger = Ca::root("fetch intermediate CA"); // same name, other key
    let bad_updates: Vec<(&str, Vec<u8>)> = vec![
        ("not a CRL", b"<html>maintenance</html>".to_vec()),
        ("forged", der(&forger.crl_pem(next_week()))),
        ("truncated", der(&revoked_crl)[..100].to_vec()),
        (
            "from an unknown CA",
            der(&Ca::root("other CA").crl_pem(next_week())),
        ),
    ];
    let mut invalid = fetches(&gw, &url, "invalid").await;
    for (what, body) in bad_updates {
        server.serve(body);
        invalid += 1.0;
        wait_fetches(&gw, &url, "invalid", invalid).await;
        assert!(
            !admitted(&gw, &pki, &alice).await,
            "after a {what} CRL, alice got in"
        );
        assert!(
            admitted(&gw, &pki, &bob).await,
            "after a {what} CRL, bob was refused"
        );
    }

    // A replay: an older, validly signed CRL that predates alice's revocation.
    let revoked = std::mem::take(&mut pki.inter.revoked);
    let older = pki.inter.crl_pem_at(
        OffsetDateTime::now_utc() - time::Duration::days(1),
        next_week(),
    );
    pki.inter.revoked = revoked;
    server.serve(older.into_bytes());
    invalid += 1.0;
    wait_fetches(&gw, &url, "invalid", invalid).await;
    assert!(
        !admitted(&gw, &pki, &alice).await,
        "a replayed older CRL un-revoked alice"
    );

    // The server goes down: counted as failed, the last good CRL stays.
    server.fail_with(503);
    let failed = fetches(&gw, &url, "failed").await;
    wait_fetches(&gw, &url, "failed", failed + 1.0).await;
    assert!(!admitted(&gw, &pki, &alice).await);
    assert!(admitted(&gw, &pki, &bob).await);
    let ts = common::truststore_json(&gw).await;
    let inter_crl = ts["crls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["url"] == url.as_str())
        .cloned()
        .unwrap();
    assert_eq!(inter_crl["revoked"], 1, "{ts}");
    gw.shutdown().await;
}

async fn fetched_crls(gw: &common::TestGateway) -> usize {
    let ts = common::truststore_json(gw).await;
    ts["crls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["url"].is_string())
        .count()
}

/// Connect as `who` until a request succeeds (bounded): the fetcher's retry picks it up.
async fn until_admitted(gw: &common::TestGateway, pki: &TestPki, who: &common::pki::Leaf) {
    let start = Instant::now();
    loop {
        if admitted(gw, pki, who).await {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still refused after the CRL server came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unreachable_at_start_then_recovers_and_follows_config_reloads() {
    let pki = TestPki::named("later");
    let server = CrlServer::start(der(&pki.inter.crl_pem(next_week()))).await;
    server.fail_with(500);
    let url = server.url();
    // The distribution point is down: the gateway starts anyway, with no CRL for the
    // intermediate, so `unknown_revocation = "deny"` refuses its clients.
    let gw = start(&pki, &url).await;
    assert_eq!(fetched_crls(&gw).await, 0);
    assert!(fetches(&gw, &url, "failed").await >= 1.0);
    let alice = pki.client("alice");
    assert!(!admitted(&gw, &pki, &alice).await);

    // It comes back: the retry fetches the CRL and alice gets in, without a reload call.
    server.serve(der(&pki.inter.crl_pem(next_week())));
    until_admitted(&gw, &pki, &alice).await;
    assert_eq!(fetched_crls(&gw).await, 1);

    // A server without conditional requests sends the same CRL again: counted as
    // unchanged, and no new truststore generation is built for it.
    let before = common::truststore_json(&gw).await["generation"].clone();
    server.without_etags();
    wait_fetches(&gw, &url, "unchanged", 2.0).await;
    let after = common::truststore_json(&gw).await["generation"].clone();
    assert_eq!(before, after);

    // A config reload that drops the source drops its CRL from the next generation.
    let path = gw.dir.path().join("portcullis.toml");
    let text = fs::read_to_string(&path).unwrap();
    let without = text.replace(
        &format!("url = \"{url}\""),
        "url = \"http://127.0.0.1:9/none\"",
    );
    fs::write(&path, &without).unwrap();
    let (status, body) = common::admin_post(gw.admin.unwrap(), "/reload").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fetched_crls(&gw).await, 0);
    assert!(!admitted(&gw, &pki, &alice).await);

    // And one that adds it back fetches it at once.
    fs::write(&path, &text).unwrap();
    let (status, body) = common::admin_post(gw.admin.unwrap(), "/reload").await;
    assert_eq!(status, 200, "{body}");
    until_admitted(&gw, &pki, &alice).await;
    assert_eq!(fetched_crls(&gw).await, 1);
    gw.shutdown().await;
}
