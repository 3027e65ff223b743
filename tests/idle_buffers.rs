//! Keep-alive connections whose buffers were released while idle (issue 17, step 4).
//!
//! The gateway frees hyper's HTTP/1 read and write buffers and rustls's record buffer while
//! a connection waits for its next request (patches/PATCHES.md). These tests hold real TLS
//! connections idle, then send what has to be read into newly allocated buffers: a plain
//! request, one with headers near `max_header_size`, one split across writes, a body, and
//! pipelined requests in one write; every one must be answered, in order, on the same
//! connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::client;
use common::TestPki;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Long enough for the connection to go idle after its last answer (no assertion on it).
const IDLE: Duration = Duration::from_millis(300);

/// One TLS connection as `alice`, offering `alpn` (none: hyper-util sniffs the protocol).
async fn connect(addr: SocketAddr, pki: &TestPki, alpn: Option<&[u8]>) -> TlsStream<TcpStream> {
    client::raw_tls(addr, pki, &pki.client("alice"), alpn).await
}

/// One HTTP/1.1 response read off the stream: (status, body). Every answer here has a
/// `content-length`; a connection that closes instead fails the test.
async fn response<S: AsyncRead + Unpin>(tls: &mut S, pending: &mut Vec<u8>) -> (u16, String) {
    let read = async {
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed; had {:?}",
                String::from_utf8_lossy(pending)
            );
            pending.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        let status: u16 = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no content-length in {head}"));
        while pending.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside a body");
            pending.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&pending[head_end..head_end + length]).into_owned();
        pending.drain(..head_end + length);
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}\r\n")
}

/// The echo's JSON for one answer that must be a 200.
fn echoed(answer: (u16, String)) -> serde_json::Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    serde_json::from_str(&answer.1).unwrap()
}

async fn idle_then_requests(alpn: Option<&[u8]>) {
    let pki = TestPki::new();
    let gw = common::start(&pki, common::quiet()).await;
    let mut tls = connect(gw.addr, &pki, alpn).await;
    let mut pending = Vec::new();

    // Idle before the first request, then a first request.
    tokio::time::sleep(IDLE).await;
    tls.write_all(get("/first", "").as_bytes()).await.unwrap();
    assert_eq!(
        echoed(response(&mut tls, &mut pending).await)["path"],
        "/first"
    );

    // Idle, then a head close to `max_header_size` (16 KiB by default): read into a
    // newly reserved 8 KiB buffer, which has to grow.
    tokio::time::sleep(IDLE).await;
    let big = "b".repeat(15_000);
    tls.write_all(get("/large", &format!("x-large: {big}\r\n")).as_bytes())
        .await
        .unwrap();
    let json = echoed(response(&mut tls, &mut pending).await);
    assert_eq!(json["path"], "/large");
    assert_eq!(
        json["headers"]["x-large"][0].as_str().unwrap().len(),
        big.len()
    );

    // Idle, then a head split across two writes with a pause between them.
    tokio::time::sleep(IDLE).await;
    let split = get("/split", "x-split: yes\r\n");
    let (first, second) = split.as_bytes().split_at(20);
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(IDLE).await;
    tls.write_all(second).await.unwrap();
    let json = echoed(response(&mut tls, &mut pending).await);
    assert_eq!(json["path"], "/split");
    assert_eq!(json["headers"]["x-split"][0], "yes");

    // Idle, then a request with a 40 KB body.
    tokio::time::sleep(IDLE).await;
    let body = vec![b'z'; 40_000];
    let post = format!(
        "POST /body HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(post.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    let json = echoed(response(&mut tls, &mut pending).await);
    assert_eq!(json["body_bytes"], body.len());

    // Idle, then three pipelined requests in one write: three answers, in order.
    tokio::time::sleep(IDLE).await;
    let pipelined: String = ["/p1", "/p2", "/p3"].iter().map(|p| get(p, "")).collect();
    tls.write_all(pipelined.as_bytes()).await.unwrap();
    for path in ["/p1", "/p2", "/p3"] {
        assert_eq!(echoed(response(&mut tls, &mut pending).await)["path"], path);
    }

    // Idle, then a head over the limit: still refused with 431 after a release.
    tokio::time::sleep(IDLE).await;
    let over = "o".repeat(17_000);
    tls.write_all(get("/over", &format!("x-over: {over}\r\n")).as_bytes())
        .await
        .unwrap();
    let (status, _) = response(&mut tls, &mut pending).await;
    assert_eq!(status, 431);
    assert!(pending.is_empty(), "nothing after the 431");
    gw.shutdown().await;
}

#[tokio::test]
async fn idle_http1_connection_answers_every_later_request() {
    idle_then_requests(Some(b"http/1.1")).await;
}

#[tokio::test]
async fn idle_sniffed_connection_answers_every_later_request() {
    idle_then_requests(None).await;
}
