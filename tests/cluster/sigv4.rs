//! Session revocation end to end: three gateway processes with `[issuer.sessions]` (one
//! sealing-keys folder) and `[auth.sigv4] sessions = true`; a session credential sealed
//! here signs requests to every instance; `POST /issuer/sessions/revoke` on B is refused
//! by A and C within a second on their open connections.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use portcullis::auth::sigv4::{canonical, derive_signing_key, sign};
use portcullis::issuer::revocations::now_secs;
use portcullis::issuer::sessions::keys::SealKeySet;
use portcullis::issuer::sessions::token::{self, SessionClaims};

use crate::common::client::Conn;
use crate::fleet::{Fleet, Redis};
use crate::{common, support};

const SESSIONS: &str = r#"
[[route]]
name = "signed"
path_prefix = "/signed"
upstream = "echo"
auth = ["sigv4"]

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true

[issuer.sessions]
keys = "seal-keys"
state_dir = "state"
region = "us-east-1"
account = "123456789012"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["reader"]

[[issuer.sessions.role]]
name = "reader"
allow = [{ uri_san = "spiffe://*" }]
"#;

/// A sealed session: (access key id, secret, token).
fn session(dir: &std::path::Path) -> (String, String, String) {
    let keys = SealKeySet::load(&dir.join("seal-keys")).unwrap();
    let akid = token::new_access_key_id().unwrap();
    let now = now_secs();
    let claims = SessionClaims {
        access_key_id: akid.clone(),
        role: "reader".into(),
        profile: "workers".into(),
        trust_anchor: "fleet".into(),
        session: "fleet-test".into(),
        source_identity: "CN=worker".into(),
        cert_sha256: "ab".repeat(32),
        issuer: "CN=fleet test".into(),
        serial: "0123".into(),
        uri_sans: vec!["spiffe://test/client/worker".into()],
        iat: now - 5,
        exp: now + 3600,
    };
    let (tok, secret) = token::seal(&keys, &claims).unwrap();
    (akid, secret, tok)
}

/// `GET /signed/x` signed with the session credential (the token signed too).
fn signed(akid: &str, secret: &str, tok: &str) -> http::Request<Full<Bytes>> {
    let amz =
        time::format_description::parse_borrowed::<2>("[year][month][day]T[hour][minute][second]Z");
    let date = time::OffsetDateTime::now_utc()
        .format(&amz.unwrap())
        .unwrap();
    let headers: Vec<(&str, Vec<&[u8]>)> = vec![
        ("host", vec![b"localhost"]),
        ("x-amz-date", vec![date.as_bytes()]),
        ("x-amz-security-token", vec![tok.as_bytes()]),
    ];
    let creq = canonical::canonical_request(&canonical::RequestParts {
        method: "GET",
        path: "/signed/x",
        query: "",
        presigned: false,
        omit_token: false,
        headers: &headers,
        payload_hash: canonical::EMPTY_SHA256,
    });
    let scope = format!("{}/us-east-1/execute-api/aws4_request", &date[..8]);
    let sts = canonical::string_to_sign(&date, &scope, &creq);
    let key = derive_signing_key(secret, &date[..8], "us-east-1", "execute-api");
    http::Request::get("https://localhost/signed/x")
        .header("host", "localhost")
        .header("x-amz-date", &date)
        .header("x-amz-security-token", tok)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={akid}/{scope}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={}",
                sign(&key, &sts)
            ),
        )
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn status(conn: &mut Conn, cred: &(String, String, String)) -> u16 {
    let r = conn.send(signed(&cred.0, &cred.1, &cred.2)).await.unwrap();
    r.status.as_u16()
}

#[tokio::test]
async fn a_session_revoked_on_b_is_refused_by_a_and_c_within_a_second() {
    let redis = Redis::start();
    let f = Fleet::with(support::DEFAULT_LIMITS, &redis, SESSIONS);
    portcullis::issuer::sessions::keys::generate(&f.dir.path().join("seal-keys")).unwrap();
    let (a, b, c) = (f.start("a"), f.start("b"), f.start("c"));
    let cred = session(f.dir.path());
    let (mut on_a, mut on_c) = (f.connect(&a).await, f.connect(&c).await);
    for conn in [&mut on_a, &mut on_c] {
        assert_eq!(
            status(conn, &cred).await,
            200,
            "the session does not verify"
        );
    }

    let body = serde_json::json!({ "access_key_id": cred.0 }).to_string();
    let (code, reply) =
        common::admin_post_body(b.admin, "/issuer/sessions/revoke", body.into()).await;
    assert_eq!(code, 200, "{reply}");
    for (name, conn) in [("A", &mut on_a), ("C", &mut on_c)] {
        let start = Instant::now();
        let mut last = 200;
        while start.elapsed() <= Duration::from_secs(1) && last == 200 {
            last = status(conn, &cred).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            last, 403,
            "{name} still accepts the session a second after B revoked it"
        );
    }
    common::assert_metric_at_least(
        &a.metrics().await,
        "portcullis_auth_sigv4_verifications_total",
        &["reason=\"sigv4_session_revoked\""],
        1.0,
    );
}
