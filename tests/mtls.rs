//! Client-certificate verification through real TLS handshakes: who gets in and who not.

mod common;

use common::{client, Opts, Spec, TestPki, Tls, TrustLayout};
use rcgen::ExtendedKeyUsagePurpose;
use time::{Duration, OffsetDateTime};

/// Refused: the handshake or the first request on it fails (TLS 1.3 alerts arrive late).
async fn assert_refused(gw: &common::TestGateway, pki: &TestPki, opts: Opts<'_>, why: &str) {
    match client::get(gw.addr, pki, opts, "/").await {
        Err(_) => {}
        Ok(r) => panic!("{why}: expected a refused handshake, got HTTP {}", r.status),
    }
}

/// The status of `GET /` with these client options (the handshake must succeed).
async fn status(gw: &common::TestGateway, pki: &TestPki, opts: Opts<'_>) -> http::StatusCode {
    client::get(gw.addr, pki, opts, "/").await.unwrap().status
}

/// Whether the handshake counter with these labels shows up. The server counts a refusal
/// after it sends the alert, so the client may see the failure first: wait (bounded).
async fn handshake_metric(gw: &common::TestGateway, result: &str, reason: &str) -> bool {
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        let found = metrics.lines().any(|l| {
            l.starts_with("portcullis_tls_handshakes_total")
                && l.contains(&format!("result=\"{result}\""))
                && l.contains(&format!("reason=\"{reason}\""))
                && l.contains(&format!("listener=\"{}\"", gw.addr))
        });
        if found {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// The HTTP protocol follows ALPN; a client that offers no ALPN is served by what it sends
/// (HTTP/1.1, or the HTTP/2 preface with prior knowledge).
#[tokio::test]
async fn clients_without_alpn_get_the_protocol_they_speak() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let alice = pki.client("alice");
    for h2 in [false, true] {
        let mut cfg = client::tls_config(&pki, &Opts::with(&alice));
        cfg.alpn_protocols.clear();
        let mut conn = client::connect_with(gw.addr, cfg, h2).await.unwrap();
        for _ in 0..2 {
            let reply = conn.get("/hello").await.unwrap();
            assert_alice_served(&reply, h2, &format!("no ALPN, h2={h2}"));
        }
    }
    gw.shutdown().await;
}

/// A 200 from the echo, over the expected HTTP version, with alice's identity forwarded.
fn assert_alice_served(reply: &client::Reply, h2: bool, what: &str) {
    assert_eq!(reply.status, 200, "{what}");
    let want = if h2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    assert_eq!(reply.version, want, "{what}");
    assert_eq!(
        reply.json()["headers"]["x-client-uri-san"][0],
        "spiffe://test/client/alice",
        "{what}"
    );
}

#[tokio::test]
async fn valid_client_over_tls12_tls13_and_h2() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let alice = pki.client("alice");
    for (tls, h2) in [
        (Tls::V12, false),
        (Tls::V13, false),
        (Tls::V13, true),
        (Tls::V12, true),
    ] {
        let opts = Opts {
            cert: Some(&alice),
            tls,
            h2,
        };
        let reply = client::get(gw.addr, &pki, opts, "/hello").await.unwrap();
        assert_alice_served(&reply, h2, &format!("{tls:?} h2={h2}"));
    }
    assert!(handshake_metric(&gw, "accepted", "ok").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn no_certificate_is_refused() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    assert_refused(&gw, &pki, Opts::anonymous(), "no certificate").await;
    assert!(handshake_metric(&gw, "rejected", "no_certificate").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn unknown_ca_is_refused() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let stranger = TestPki::named("stranger").client("stranger");
    assert_refused(&gw, &pki, Opts::with(&stranger), "unknown CA").await;
    assert!(handshake_metric(&gw, "rejected", "unknown_issuer").await);
    // An impostor CA with the trusted CAs' names but its own keys: the names match, the
    // signatures do not.
    let impostor = TestPki::new().client("impostor");
    assert_refused(&gw, &pki, Opts::with(&impostor), "impostor CA").await;
    assert!(handshake_metric(&gw, "rejected", "bad_signature").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_leaves_are_refused() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let now = OffsetDateTime::now_utc();
    let expired = pki.leaf(LeafSpec {
        cn: "expired".into(),
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
        ..LeafSpec::default()
    });
    let future = pki.leaf(LeafSpec {
        cn: "future".into(),
        not_before: now + Duration::days(1),
        not_after: now + Duration::days(30),
        ..LeafSpec::default()
    });
    assert_refused(&gw, &pki, Opts::with(&expired), "expired").await;
    assert_refused(&gw, &pki, Opts::with(&future), "not yet valid").await;
    assert!(handshake_metric(&gw, "rejected", "expired").await);
    assert!(handshake_metric(&gw, "rejected", "not_yet_valid").await);
    gw.shutdown().await;
}

use common::LeafSpec;

#[tokio::test]
async fn revoked_leaf_is_refused_and_others_pass() {
    let mut pki = TestPki::new();
    let mallory = pki.client("mallory");
    let alice = pki.client("alice");
    pki.revoke(&mallory);
    let gw = common::start(&pki, Spec::default()).await;
    assert_refused(&gw, &pki, Opts::with(&mallory), "revoked").await;
    assert_eq!(status(&gw, &pki, Opts::with(&alice)).await, 200);
    assert!(handshake_metric(&gw, "rejected", "revoked").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn revoked_intermediate_is_refused_under_full_chain_only() {
    let mut pki = TestPki::new();
    let alice = pki.client("alice");
    pki.revoke_intermediate();
    let gw = common::start(&pki, Spec::default()).await;
    assert_refused(&gw, &pki, Opts::with(&alice), "revoked intermediate").await;
    gw.shutdown().await;

    let gw = common::start(
        &pki,
        Spec {
            truststore: "revocation = \"end-entity\"",
            ..Spec::default()
        },
    )
    .await;
    let reply = client::get(gw.addr, &pki, Opts::with(&alice), "/")
        .await
        .unwrap();
    assert_eq!(
        reply.status, 200,
        "end-entity revocation does not look at the intermediate"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_crl_fails_closed_unless_allowed() {
    let pki = TestPki::new();
    let alice = pki.client("alice");
    let no_crls = || TrustLayout {
        crls: false,
        ..TrustLayout::default()
    };
    let gw = common::start(
        &pki,
        Spec {
            layout: no_crls(),
            ..Spec::default()
        },
    )
    .await;
    assert_refused(
        &gw,
        &pki,
        Opts::with(&alice),
        "no CRL, unknown_revocation = deny",
    )
    .await;
    gw.shutdown().await;
    let gw = common::start(
        &pki,
        Spec {
            layout: no_crls(),
            truststore: "unknown_revocation = \"allow\"",
            ..Spec::default()
        },
    )
    .await;
    assert_eq!(status(&gw, &pki, Opts::with(&alice)).await, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn intermediate_from_the_truststore_completes_a_leaf_only_chain() {
    let pki = TestPki::new();
    let leaf_only = pki.leaf(LeafSpec {
        cn: "leaf-only".into(),
        send_intermediate: false,
        ..LeafSpec::default()
    });
    // Without the intermediate in the truststore the path cannot be built.
    let gw = common::start(&pki, Spec::default()).await;
    assert_refused(&gw, &pki, Opts::with(&leaf_only), "no path").await;
    gw.shutdown().await;
    let gw = common::start(
        &pki,
        Spec {
            layout: TrustLayout {
                intermediate_in_store: true,
                crls: true,
            },
            ..Spec::default()
        },
    )
    .await;
    let reply = client::get(gw.addr, &pki, Opts::with(&leaf_only), "/")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn server_auth_only_eku_and_ca_as_leaf_are_refused() {
    let pki = TestPki::new();
    let server_only = pki.leaf(LeafSpec {
        cn: "server-only".into(),
        eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..LeafSpec::default()
    });
    let ca_leaf = pki.leaf(LeafSpec {
        cn: "a-ca".into(),
        is_ca: true,
        eku: vec![],
        ..LeafSpec::default()
    });
    let no_eku = pki.leaf(LeafSpec {
        cn: "no-eku".into(),
        eku: vec![],
        ..LeafSpec::default()
    });
    let gw = common::start(&pki, Spec::default()).await;
    assert_refused(&gw, &pki, Opts::with(&server_only), "serverAuth-only EKU").await;
    assert_refused(&gw, &pki, Opts::with(&ca_leaf), "CA as leaf").await;
    assert_eq!(
        status(&gw, &pki, Opts::with(&no_eku)).await,
        200,
        "a leaf without an EKU extension is usable for client auth"
    );
    assert!(handshake_metric(&gw, "rejected", "bad_eku").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn min_tls_version_13_refuses_tls12_clients() {
    let pki = TestPki::new();
    let alice = pki.client("alice");
    let gw = common::start(
        &pki,
        Spec {
            listener: "min_tls_version = \"1.3\"",
            ..Spec::default()
        },
    )
    .await;
    let tls12 = Opts {
        cert: Some(&alice),
        tls: Tls::V12,
        h2: false,
    };
    assert_refused(&gw, &pki, tls12, "TLS 1.2 on a 1.3-only listener").await;
    let tls13 = Opts {
        tls: Tls::V13,
        ..tls12
    };
    assert_eq!(
        client::get(gw.addr, &pki, tls13, "/").await.unwrap().status,
        200
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn optional_client_auth_lets_anonymous_clients_reach_only_non_mtls_routes() {
    let pki = TestPki::new();
    // `auth = []` is not allowed; an optional listener still needs routes that demand
    // mtls to refuse anonymous callers with 401.
    let gw = common::start(
        &pki,
        Spec {
            listener: "client_auth = \"optional\"",
            ..Spec::default()
        },
    )
    .await;
    let reply = client::get(gw.addr, &pki, Opts::anonymous(), "/")
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.headers["x-portcullis-error"], "unauthenticated");
    let alice = pki.client("alice");
    assert_eq!(status(&gw, &pki, Opts::with(&alice)).await, 200);
    gw.shutdown().await;
}

/// OpenSSL's own client, as operators debug with it: TLS 1.2 and 1.3 with a certificate
/// get a response; without one, no HTTP response comes back. OpenSSL lists AES-256-GCM
/// first, and the gateway picks AES-128-GCM by its own order. (`scripts/test.sh` installs
/// openssl when it is missing.)
#[tokio::test]
async fn openssl_s_client_with_and_without_a_certificate() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let dir = gw.dir.path().to_path_buf();
    let alice = pki.client("alice");
    std::fs::write(dir.join("alice.pem"), &alice.chain_pem).unwrap();
    common::write_key(&dir.join("alice.key"), &alice.key_pem);
    std::fs::write(dir.join("root.pem"), pki.root_pem()).unwrap();
    let run = move |args: Vec<String>| {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("openssl")
            .args(["s_client", "-brief", "-CAfile"])
            .arg(dir.join("root.pem"))
            .args(["-servername", "localhost", "-verify_return_error"])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl is needed by this test (scripts/test.sh installs it)");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .unwrap();
        // Keep stdin open until the server closes, so s_client reads the whole response.
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let connect = format!("{}", gw.addr);
    let cert = gw.dir.path().join("alice.pem").display().to_string();
    let key = gw.dir.path().join("alice.key").display().to_string();
    for (version, suite) in [
        ("-tls1_2", "Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("-tls1_3", "Ciphersuite: TLS_AES_128_GCM_SHA256"),
    ] {
        // `-cert` sends only the leaf; `-cert_chain` adds the intermediate.
        let args: Vec<String> = [
            "-connect",
            &connect,
            version,
            "-cert",
            &cert,
            "-cert_chain",
            &cert,
            "-key",
            &key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run.clone();
        let out = tokio::task::spawn_blocking(move || run(args))
            .await
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{version}: {out}");
        assert!(
            out.contains("spiffe://test/client/alice"),
            "{version}: {out}"
        );
        assert!(out.contains(suite), "{version}: {out}");
    }
    let args: Vec<String> = ["-connect", &connect, "-tls1_3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = tokio::task::spawn_blocking(move || run(args))
        .await
        .unwrap();
    assert!(
        !out.contains("HTTP/1.1 "),
        "no certificate, no response: {out}"
    );
    assert!(handshake_metric(&gw, "rejected", "no_certificate").await);
    gw.shutdown().await;
}
