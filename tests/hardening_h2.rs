//! Hostile HTTP/2 clients against the real gateway (issue 14, items 1 and 2): clients that
//! never send the preface or never answer the shutdown are cut, paced rapid reset ends in
//! GOAWAY and a close, and a reset stream costs no upstream connection.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::origin::Origin;
use common::pki::Leaf;
use common::{client, Opts, Spec, TestPki};
use portcullis::telemetry::metrics::CONNECTIONS_CLOSED_TOTAL;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout, Instant};
use tokio_rustls::client::TlsStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const GOAWAY: u8 = 0x7;
const PING: u8 = 0x6;

/// A TLS connection as `who` offering `alpn` (none: the gateway sniffs the protocol).
async fn tls(
    addr: SocketAddr,
    pki: &TestPki,
    who: &Leaf,
    alpn: Option<&[u8]>,
) -> TlsStream<TcpStream> {
    client::raw_tls(addr, pki, who, alpn).await
}

/// Read (never write) until the gateway closes the connection, at most `limit`: whether it
/// closed. EOF and a reset both count: a hard close sends no TLS close_notify.
async fn closed_within(s: &mut TlsStream<TcpStream>, limit: Duration) -> bool {
    let mut sink = Vec::new();
    timeout(limit, s.read_to_end(&mut sink)).await.is_ok()
}

fn closed_label(gw: &common::TestGateway) -> String {
    format!("listener=\"{}\"", gw.addr)
}

/// Items 1a and 1c: clients that finish TLS (ALPN h2, or no ALPN) and never send a byte
/// are closed at `header_read_timeout`, so `max_connections` of them no longer lock every
/// other client out.
#[tokio::test]
async fn clients_without_a_preface_are_cut_and_free_their_slots() {
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            listener: "max_connections = 3\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"",
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let mut silent = Vec::new();
    for alpn in [Some(&b"h2"[..]), Some(b"h2"), None] {
        silent.push(tls(gw.addr, &pki, &alice, alpn).await);
    }
    // Every slot is taken: a fourth client waits in the accept queue until one frees.
    let fourth = async {
        timeout(
            Duration::from_secs(20),
            client::get(gw.addr, &pki, Opts::with(&alice), "/"),
        )
        .await
    };
    let cut = async {
        let mut closed = Vec::new();
        for s in &mut silent {
            closed.push(closed_within(s, Duration::from_secs(15)).await);
        }
        closed
    };
    let (reply, closed) = tokio::join!(fourth, cut);
    assert_eq!(
        closed, [true; 3],
        "every silent connection is closed by the gateway"
    );
    let reply = reply
        .expect("the fourth client is served once the silent ones are cut")
        .unwrap();
    assert_eq!(reply.status, 200);
    let label = closed_label(&gw);
    common::wait_for_metric(
        &gw,
        CONNECTIONS_CLOSED_TOTAL,
        &[&label, "reason=\"preface_timeout\""],
        3.0,
    )
    .await;
    gw.shutdown().await;
}

/// Frames the gateway sent (their types, in order) until it closed the connection, and
/// when each GOAWAY came; `None` for the close if it stayed open past `limit`.
async fn read_frames(
    s: &mut TlsStream<TcpStream>,
    limit: Duration,
) -> (Vec<u8>, Option<Instant>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let (mut kinds, mut goaway) = (Vec::new(), None);
    loop {
        let mut head = [0u8; 9];
        match tokio::time::timeout_at(deadline, s.read_exact(&mut head)).await {
            Err(_) => return (kinds, goaway, None),
            Ok(Err(_)) => return (kinds, goaway, Some(Instant::now())),
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        if !matches!(
            tokio::time::timeout_at(deadline, s.read_exact(&mut payload)).await,
            Ok(Ok(_))
        ) {
            return (kinds, goaway, Some(Instant::now()));
        }
        if head[3] == GOAWAY && goaway.is_none() {
            goaway = Some(Instant::now());
        }
        kinds.push(head[3]);
    }
}

/// Item 1b: a client that sends the preface and its SETTINGS, then never answers anything
/// (no SETTINGS ack, no PING ack), gets idle_timeout's GOAWAY and PING and is then closed
/// by the gateway within a second, not kept for ever. A client that answers is closed
/// gracefully and counted as `idle_timeout`.
#[tokio::test]
async fn a_client_that_never_answers_the_shutdown_is_closed() {
    let pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            listener: "idle_timeout = \"1s\"",
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let mut s = tls(gw.addr, &pki, &alice, Some(b"h2")).await;
    let settings = [0u8, 0, 0, 0x4, 0, 0, 0, 0, 0];
    s.write_all(&[PREFACE, &settings].concat()).await.unwrap();
    s.flush().await.unwrap();
    let (kinds, goaway, closed) = read_frames(&mut s, Duration::from_secs(15)).await;
    assert!(
        kinds.contains(&GOAWAY),
        "the idle shutdown sent GOAWAY: {kinds:?}"
    );
    assert!(kinds.contains(&PING), "and a PING to confirm it: {kinds:?}");
    let (goaway, closed) = (
        goaway.unwrap(),
        closed.expect("the gateway closed the connection"),
    );
    assert!(
        closed.duration_since(goaway) < Duration::from_secs(5),
        "closed {:?} after GOAWAY",
        closed.duration_since(goaway)
    );
    let label = closed_label(&gw);
    common::wait_for_metric(
        &gw,
        CONNECTIONS_CLOSED_TOTAL,
        &[&label, "reason=\"shutdown_unanswered\""],
        1.0,
    )
    .await;

    // A real HTTP/2 client answers the PING: an ordinary idle close.
    let h2 = Opts {
        h2: true,
        ..Opts::with(&alice)
    };
    let mut c = client::connect(gw.addr, &pki, h2).await.unwrap();
    assert_eq!(c.get("/").await.unwrap().status, 200);
    common::wait_for_metric(
        &gw,
        CONNECTIONS_CLOSED_TOTAL,
        &[&label, "reason=\"idle_timeout\""],
        1.0,
    )
    .await;
    gw.shutdown().await;
}

/// A client stream that notes when the server sends a GOAWAY frame.
struct GoawaySeen<IO> {
    io: IO,
    buf: Vec<u8>,
    seen: Arc<AtomicBool>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for GoawaySeen<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = out.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, out);
        let this = &mut *self;
        this.buf.extend_from_slice(&out.filled()[before..]);
        while this.buf.len() >= 9 {
            let len = u32::from_be_bytes([0, this.buf[0], this.buf[1], this.buf[2]]) as usize;
            if this.buf.len() < 9 + len {
                break;
            }
            if this.buf[3] == GOAWAY {
                this.seen.store(true, Ordering::SeqCst);
            }
            this.buf.drain(..9 + len);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for GoawaySeen<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An HTTP/2 client connection (the h2 crate) as `who`: its request handle, whether the
/// gateway sent GOAWAY, and the task driving it (it ends when the connection closes).
async fn h2_client(
    addr: SocketAddr,
    pki: &TestPki,
    who: &Leaf,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(AtomicBool::new(false));
    let io = GoawaySeen {
        io: tls(addr, pki, who, Some(b"h2")).await,
        buf: Vec::new(),
        seen: seen.clone(),
    };
    let (send, conn) = h2::client::handshake(io).await.unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, seen, task)
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("https://localhost{path}"))
        .body(())
        .unwrap()
}

/// Item 2: streams reset a few tens of milliseconds after they were sent — after the
/// gateway accepted them and forwarded them upstream — are counted; past 100 the client
/// gets GOAWAY and the connection is closed. The requests the resets abandoned finish in
/// the background, so the origin sees a handful of connections, not one per reset.
#[tokio::test]
async fn paced_rapid_reset_gets_goaway_and_costs_no_upstream_connections() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = common::start(
        &pki,
        Spec {
            body: common::backend_route(origin.addr, "max_idle_per_endpoint = 32"),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let (mut send, goaway, conn) = h2_client(gw.addr, &pki, &alice).await;
    const BATCH: usize = 10;
    let mut reset = 0;
    // At most 200 streams: 10 at a time, each reset 30 ms after it was sent (the origin
    // answers after 60 ms), then a pause for the abandoned exchanges to finish.
    'batches: for _ in 0..20 {
        if goaway.load(Ordering::SeqCst) {
            break;
        }
        let mut streams = Vec::new();
        for _ in 0..BATCH {
            send = match send.ready().await {
                Ok(s) => s,
                Err(_) => break 'batches,
            };
            match send.send_request(get("/slow?ms=60"), true) {
                Ok(s) => streams.push(s),
                Err(_) => break 'batches,
            }
        }
        sleep(Duration::from_millis(30)).await;
        for (response, mut stream) in streams {
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
            reset += 1;
        }
        sleep(Duration::from_millis(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !goaway.load(Ordering::SeqCst) && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    assert!(goaway.load(Ordering::SeqCst), "GOAWAY after {reset} resets");
    assert!(reset > 100 && reset <= 200, "{reset} resets");
    timeout(Duration::from_secs(5), conn)
        .await
        .expect("the gateway closed the connection soon after GOAWAY")
        .unwrap();
    let label = closed_label(&gw);
    common::wait_for_metric(
        &gw,
        CONNECTIONS_CLOSED_TOTAL,
        &[&label, "reason=\"rapid_reset\""],
        1.0,
    )
    .await;
    // About one batch of connections (two if a batch overlapped the previous one's
    // background exchanges); before, every reset closed the connection it used.
    let connections = origin.connections.load(Ordering::SeqCst);
    assert!(
        connections <= 2 * BATCH + 5,
        "{connections} upstream connections for {reset} reset streams"
    );
    gw.shutdown().await;
}

/// A raw HTTP/1.1 origin whose responses send their head at once and their 4-byte body
/// 100 ms later; counts accepted connections.
async fn late_body_origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while tcp.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                    if head.ends_with(b"\r\n\r\n") {
                        head.clear();
                        let ok = tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n");
                        if ok.await.is_err() {
                            return;
                        }
                        sleep(Duration::from_millis(100)).await;
                        if tcp.write_all(b"late").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, connections)
}

/// Item 2: a stream reset after its response head arrived, while the body is still coming
/// from the origin, leaves the upstream connection to finish the body and return to the pool.
#[tokio::test]
async fn a_stream_reset_during_the_body_keeps_the_upstream_connection() {
    let pki = TestPki::new();
    let (origin, connections) = late_body_origin().await;
    let gw = common::start(
        &pki,
        Spec {
            body: common::backend_route(origin, ""),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let (mut send, _, _conn) = h2_client(gw.addr, &pki, &alice).await;
    for _ in 0..8 {
        send = send.ready().await.unwrap();
        let (response, mut stream) = send.send_request(get("/late"), true).unwrap();
        let head = timeout(Duration::from_secs(10), response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.status(), 200);
        stream.send_reset(h2::Reason::CANCEL);
        drop(head);
        // The body arrives 100 ms after the head; then the connection is free again.
        sleep(Duration::from_millis(250)).await;
    }
    let n = connections.load(Ordering::SeqCst);
    assert!(
        n <= 2,
        "{n} upstream connections for 8 streams reset one after another"
    );
    gw.shutdown().await;
}

/// An HTTP/2 origin (the h2 crate, prior knowledge) that never answers and reports how each
/// of its streams was reset.
async fn h2_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<h2::Reason>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let reason = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
                        if let Ok(reason) = reason {
                            let _ = tx.send(reason);
                        }
                    });
                }
            });
        }
    });
    (addr, rx)
}

/// Item 2: to an HTTP/2 upstream, the reset stream is reset too (RST_STREAM CANCEL), and
/// the upstream connection stays.
#[tokio::test]
async fn a_reset_stream_is_cancelled_on_an_http2_upstream() {
    let pki = TestPki::new();
    let (origin, mut resets) = h2_origin().await;
    let gw = common::start(
        &pki,
        Spec {
            body: common::backend_route(origin, "protocol = \"http2\""),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let (mut send, _, _conn) = h2_client(gw.addr, &pki, &alice).await;
    for _ in 0..3 {
        send = send.ready().await.unwrap();
        let (response, mut stream) = send.send_request(get("/never"), true).unwrap();
        sleep(Duration::from_millis(100)).await;
        stream.send_reset(h2::Reason::CANCEL);
        drop(response);
        let reason = timeout(Duration::from_secs(10), resets.recv())
            .await
            .expect("the origin's stream was reset")
            .unwrap();
        assert_eq!(reason, h2::Reason::CANCEL);
    }
    gw.shutdown().await;
}
