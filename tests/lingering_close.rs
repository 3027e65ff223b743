//! A response sent before the request body was read reaches the client: the gateway closes
//! such a connection with a lingering close (FIN, then it reads and drops what the client
//! still sends, bounded), not with a close that makes the kernel answer the client's
//! remaining bytes with a RST (RFC 9112 §9.6).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::client::{self, Conn};
use common::{Opts, Spec, TestPki};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How many connections each case sends its oversized request on.
const ROUNDS: usize = 50;
/// The body the client sends: much more than the kernel's buffers take while the gateway
/// answers, so the client is still writing when the response comes.
const BODY: usize = 512 * 1024;

fn spec() -> Spec<'static> {
    Spec {
        body: format!(
            "{}\n[[route]]\nname = \"small\"\npath_prefix = \"/small\"\nupstream = \"echo\"\nmax_body_size = \"16B\"\n",
            common::echo_route()
        ),
        ..Spec::default()
    }
}

fn post(path: &str, body: usize) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(Full::new(Bytes::from(vec![b'x'; body])))
        .unwrap()
}

/// A declared body over the route's `max_body_size` is answered 413 without reading it, and
/// a request refused before its body is read (no client certificate names a route) is
/// answered too: each time, on a new connection, the client reads the answer instead of a
/// broken pipe.
#[tokio::test]
async fn an_answer_before_the_body_always_reaches_the_client() {
    let pki = TestPki::new();
    let gw = common::start(&pki, spec()).await;
    let alice = pki.client("alice");
    for (path, status, reason) in [
        ("/small", 413, "payload_too_large"),
        // An HTTP/1.1 request without a Host header is refused before its body is read.
        ("", 400, "bad_request"),
    ] {
        for round in 0..ROUNDS {
            let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
                .await
                .unwrap();
            let mut req = post(path, BODY);
            if path.is_empty() {
                *req.uri_mut() = "/no-host".parse().unwrap();
                req.headers_mut().remove("host");
            }
            let r = match &mut c {
                Conn::H1(tx) => {
                    tx.ready().await.unwrap();
                    tx.send_request(req).await
                }
                Conn::H2(_) => unreachable!("HTTP/1.1 connection"),
            };
            let r = r.unwrap_or_else(|e| panic!("{path:?} round {round}: {e:?}"));
            assert_eq!(r.status(), status, "{path:?} round {round}");
            assert_eq!(r.headers()["x-portcullis-error"], reason, "{path:?}");
        }
    }
    gw.shutdown().await;
}

/// The linger is bounded: a client that never stops sending is cut, and a client that
/// closes after reading the answer ends the connection at once; both are counted.
#[tokio::test]
async fn the_linger_is_bounded_and_the_connection_counted() {
    let pki = TestPki::new();
    let gw = common::start(&pki, spec()).await;
    let alice = pki.client("alice");
    let tls = client::raw_tls(gw.addr, &pki, &alice, None).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    // Declares a body of 1 GiB and keeps sending it, for ever if let.
    let writer = tokio::spawn(async move {
        let head = "POST /small HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1073741824\r\n\r\n";
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 16 * 1024];
        loop {
            wr.write_all(&chunk).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the gateway ends a linger the client never ends"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the writer stops once the connection is gone")
        .unwrap();
    assert!(sent.is_err(), "the writer was cut off");

    let before = common::metric(
        &gw.metrics().await,
        "portcullis_connections_closed_total",
        &["reason=\"closed\""],
    );
    // A client that reads the answer and closes: the connection ends and is counted.
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let r = c.send(post("/small", 64 * 1024)).await.unwrap();
    assert_eq!(r.status, 413);
    drop(c);
    common::wait_for_metric(
        &gw,
        "portcullis_connections_closed_total",
        &["reason=\"closed\""],
        before + 1.0,
    )
    .await;
    gw.shutdown().await;
}

/// A shutdown the gateway starts (here `idle_timeout`) that hyper completes — the FIN is
/// sent — is answered, even if the client never closes its side: the linger is cut 1 s
/// later and the connection counted by its real reason, not as `shutdown_unanswered`.
#[tokio::test]
async fn an_idle_close_the_client_does_not_finish_keeps_its_reason() {
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            listener: "idle_timeout = \"1s\"",
            ..spec()
        },
    )
    .await;
    let alice = pki.client("alice");
    let mut tls = client::raw_tls(gw.addr, &pki, &alice, None).await;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Wait for the gateway's FIN (close_notify, then end of stream), and stay open.
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the idle connection was shut down");
    let closed = |reason: &str| format!("reason=\"{reason}\"");
    common::wait_for_metric(
        &gw,
        "portcullis_connections_closed_total",
        &[&closed("idle_timeout")],
        1.0,
    )
    .await;
    let text = gw.metrics().await;
    assert_eq!(
        common::metric(
            &text,
            "portcullis_connections_closed_total",
            &[&closed("shutdown_unanswered")]
        ),
        0.0,
        "{text}"
    );
    drop(tls);
    gw.shutdown().await;
}
