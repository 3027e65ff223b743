//! CreateSession over HTTP/2, where the host a client signs is the request's `:authority`
//! (an HTTP/2 client sends no `Host` header), and requests whose two hosts differ: the
//! session issuer takes the request's host as the SigV4 verifier does, so a signature over
//! one host is never accepted with the other. (The forward phase also writes the checked
//! host into `Host`; CreateSession takes it from `builtin::Call::host`, so these hold
//! without that rewrite too: without both, the first test is refused
//! `signed_header_missing` and the second accepts a signature over the `Host` header.)

use bytes::Bytes;
use http_body_util::Full;

use crate::common;
use crate::common::client::{self, Conn, Opts};
use crate::common::pki::Leaf;
use crate::common::sigv4::{amz_now, Signer};
use crate::support::{self, audit_lines, post_h1, sign, Form, Req, Setup, Signed};

/// An HTTP/2 connection (ALPN h2) to the gateway of `s`, presenting `cert`.
async fn h2(s: &Setup, cert: &Leaf) -> Conn {
    let opts = Opts {
        h2: true,
        ..Opts::with(cert)
    };
    client::connect(s.gw.addr, &s.pki, opts).await.unwrap()
}

/// The gateway's address as the clients write it (the `host` they sign).
fn here(s: &Setup) -> String {
    format!("localhost:{}", s.gw.addr.port())
}

/// `signed` as an HTTP/2 request with `:authority` `authority`, and a `Host` header only
/// when `host` is given.
fn h2_post(signed: &Signed, authority: &str, host: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!("https://{authority}{}", signed.target));
    for (n, v) in signed.headers.iter().filter(|(n, _)| *n != "host") {
        b = b.header(*n, v.as_str());
    }
    if let Some(h) = host {
        b = b.header("host", h);
    }
    b.body(Full::new(Bytes::from(signed.body.clone()))).unwrap()
}

/// `POST target` (absolute form) over HTTP/1.1 as `s.worker`, with `headers` but its
/// `host` replaced by `host`.
async fn absolute(
    s: &Setup,
    target: &str,
    headers: &[(&str, String)],
    host: &str,
    body: &str,
) -> support::Answer {
    let mut h: Vec<(&str, String)> = headers
        .iter()
        .filter(|(n, _)| *n != "host")
        .cloned()
        .collect();
    h.push(("host", host.to_owned()));
    let root = s.pki.root_pem();
    post_h1(s.gw.addr, &root, Some(&s.worker), target, &h, body, false).await
}

/// Session credentials: (access key id, secret, token) of a 201 body.
fn credentials(body: &serde_json::Value) -> (String, String, String) {
    let c = &body["credentialSet"][0]["credentials"];
    let s = |k: &str| {
        c[k].as_str()
            .unwrap_or_else(|| panic!("{k}: {body}"))
            .to_owned()
    };
    (s("accessKeyId"), s("secretAccessKey"), s("sessionToken"))
}

/// A SigV4 request to the `/signed` route made with session credentials (host `localhost`).
fn signed_with(creds: &(String, String, String), method: &str) -> http::Request<Full<Bytes>> {
    let signer = Signer {
        akid: &creds.0,
        secret: &creds.1,
        region: support::REGION,
        date: amz_now(0),
    };
    signer.sign(
        method,
        "/signed/x",
        &[("x-amz-security-token", &creds.2)],
        b"",
    )
}

/// Both request forms over HTTP/2 with only `:authority` (no `Host` header, as HTTP/2
/// clients send them) get 201, and the credentials work on a SigV4 route over HTTP/2 too.
#[tokio::test]
async fn create_session_over_http2_gets_credentials_that_work() {
    let s = support::start().await;
    let here = here(&s);
    let mut c = h2(&s, &s.worker).await;
    for form in [Form::Body, Form::Query { chunked: false }] {
        let r = Req {
            form,
            ..Req::new(&s.worker)
        };
        let a = c
            .send(h2_post(&sign(&r, &here), &here, None))
            .await
            .unwrap();
        assert_eq!(a.version, http::Version::HTTP_2);
        if a.status != 201 {
            let lines = audit_lines(&s.gw, 1).await;
            panic!("{} {:?}", a.status, lines.last().map(|l| &l["reason"]));
        }
        let creds = credentials(&a.json());
        assert!(creds.0.starts_with("ASIA"), "{creds:?}");

        let mut req = signed_with(&creds, "GET");
        req.headers_mut().remove(http::header::HOST);
        let r = c.send(req).await.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["headers"]["x-client-role"][0], "orders-reader");
    }
    let lines = audit_lines(&s.gw, 2).await;
    let issued: Vec<_> = lines.iter().map(|l| l["reason"].as_str()).collect();
    assert_eq!(issued, vec![Some("ok"); 2], "{lines:?}");
    common::assert_metric_at_least(
        &s.gw.metrics().await,
        "portcullis_issuer_sessions_total",
        &["result=\"issued\"", "reason=\"ok\""],
        2.0,
    );
}

/// A request naming two hosts. HTTP/2 `:authority` beside a `Host` that differs: 400
/// `bad_host` whichever of the two was signed, before CreateSession or SigV4 reads it. An
/// HTTP/1.1 absolute-form target beside a `Host` that differs: the target's authority is
/// the request's host (RFC 9112 §3.2.2) for CreateSession as for the SigV4 verifier, so a
/// signature over the `Host` header is refused and one over the target's host verifies.
#[tokio::test]
async fn a_signature_over_one_of_two_hosts_is_not_used_with_the_other() {
    let s = support::start().await;
    let here = here(&s);
    let mut c = h2(&s, &s.worker).await;
    for signed_host in ["admin.test", here.as_str()] {
        let signed = sign(&Req::new(&s.worker), signed_host);
        let a = c
            .send(h2_post(&signed, &here, Some("admin.test")))
            .await
            .unwrap();
        assert_eq!(a.status, 400, "signed {signed_host}");
        assert_eq!(a.headers["x-portcullis-error"], "bad_request");
        assert!(!String::from_utf8_lossy(&a.body).contains("credentialSet"));
    }

    // HTTP/1.1, absolute form. CreateSession signed over `here`: a target naming another
    // host is refused, a `Host` naming another is not the request's host.
    let signed = sign(&Req::new(&s.worker), &here);
    let other = format!("https://admin.test{}", signed.target);
    let a = absolute(&s, &other, &signed.headers, &here, &signed.body).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    assert_eq!(a.error_type.as_deref(), Some("AccessDeniedException"));
    let target = format!("https://{here}{}", signed.target);
    let a = absolute(&s, &target, &signed.headers, "admin.test", &signed.body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let creds = credentials(&a.body);

    // The SigV4 verifier on the same shapes, with those credentials (signed over `localhost`).
    let mut get = signed_with(&creds, "GET");
    get.headers_mut()
        .insert(http::header::HOST, "admin.test".parse().unwrap());
    let r = c.send(get).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.headers["x-portcullis-error"], "bad_request");
    let post = signed_with(&creds, "POST");
    let headers: Vec<(&str, String)> = post
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap().to_owned()))
        .collect();
    let other = "https://admin.test/signed/x";
    let a = absolute(&s, other, &headers, "localhost", "").await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    assert_eq!(a.error_type.as_deref(), Some("SignatureDoesNotMatch"));
    let target = "https://localhost/signed/x";
    let a = absolute(&s, target, &headers, "admin.test", "").await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    // The audit saw two CreateSessions: the HTTP/2 ones never reached the issuer, and the
    // three refused for their hosts were logged as `bad_host`.
    let lines = audit_lines(&s.gw, 2).await;
    let reasons: Vec<_> = lines.iter().map(|l| l["reason"].as_str()).collect();
    assert_eq!(
        reasons,
        vec![Some("signature_mismatch"), Some("ok")],
        "{lines:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let bad_host = loop {
        let log = s.gw.access_log();
        let n = log.iter().filter(|l| l["reason"] == "bad_host").count();
        if n >= 3 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(bad_host, 3);
}
