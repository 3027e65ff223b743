//! Hot reload of the truststore, certificates and config; the verified-identity cache;
//! revocation that reaches already-open connections and resumed sessions.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{self, Conn};
use common::pki::Ca;
use common::{quiet, reload, Opts, Spec, TestPki, Tls, TrustLayout};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use time::OffsetDateTime;
use tokio_rustls::TlsConnector;

/// Write `text` to `path` the way deployment tools do: a temporary file, then a rename.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn next_week() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(7)
}

#[tokio::test]
async fn root_swap_under_keepalive_load_refuses_old_clients_and_admits_new_ones() {
    let old = TestPki::named("old");
    let new = TestPki::named("new");
    // The watcher is off: only POST /reload applies the swap, once every file is written.
    let gw = common::start(&old, quiet()).await;
    let before = common::truststore_json(&gw).await;
    assert_eq!(before["generation"], 1);

    // Keep-alive clients of the old PKI, each sending requests in a loop.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let leaf = old.client(&format!("old{i}"));
        let mut conn = client::connect(
            gw.addr,
            &old,
            Opts {
                cert: Some(&leaf),
                tls: Tls::Any,
                h2: i % 2 == 1,
            },
        )
        .await
        .unwrap();
        assert_eq!(conn.get("/").await.unwrap().status, 200);
        tasks.push(tokio::spawn(async move {
            common::until_refused(&mut conn, Duration::from_secs(30)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Swap the root CA: the new PKI's truststore replaces the old one, and the server
    // certificate is re-issued by the new PKI in the same reload.
    let ts = gw.dir.path().join("truststore");
    fs::remove_dir_all(&ts).unwrap();
    new.write_truststore(&ts, &TrustLayout::default());
    fs::remove_file(gw.dir.path().join("server.key")).unwrap();
    common::write_key(&gw.dir.path().join("server.key"), &new.server.key_pem);
    replace(&gw.dir.path().join("server.pem"), &new.server.chain_pem);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 2);

    for t in tasks {
        let (_, reply) = t.await.unwrap().expect("old client was not cut off");
        assert_eq!(reply.headers["x-portcullis-error"], "forbidden");
    }
    // A new client of the new PKI is admitted; a new connection of the old one is refused.
    let fresh = new.client("fresh");
    assert_eq!(
        client::get(gw.addr, &new, Opts::with(&fresh), "/")
            .await
            .unwrap()
            .status,
        200
    );
    assert!(
        client::get(gw.addr, &old, Opts::with(&old.client("late")), "/")
            .await
            .is_err()
    );
    let after = common::truststore_json(&gw).await;
    assert!(after["cas"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("new root CA"));
    // The refusals are logged with reason `untrusted` (the CA is gone, nothing is revoked).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = gw
        .access_log()
        .iter()
        .filter(|l| l["reason"] == "untrusted")
        .count();
    assert_eq!(refused, 4, "{:?}", gw.access_log());
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(&metrics, "portcullis_revoked_connections_total", &[], 4.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn broken_inputs_keep_the_last_good_truststore() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let ts = gw.dir.path().join("truststore");
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(conn.get("/").await.unwrap().status, 200);

    // A corrupt PEM in roots/.
    fs::write(
        ts.join("roots/broken.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["generation"], 1);
    assert!(
        body["reasons"][0].as_str().unwrap().contains("broken.pem"),
        "{body}"
    );
    fs::remove_file(ts.join("roots/broken.pem")).unwrap();

    // A CRL that names the root (which is in the folder) as issuer but is signed by
    // another key.
    let forger = Ca::root("test root CA");
    replace(&ts.join("crls/root.crl.pem"), &forger.crl_pem(next_week()));
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["generation"], 1);
    assert!(
        body["reasons"][0].as_str().unwrap().contains("signature"),
        "{body}"
    );

    // The old generation kept serving, on the open connection and on new ones.
    assert_eq!(conn.get("/").await.unwrap().status, 200);
    assert_eq!(
        client::get(gw.addr, &pki, Opts::with(&alice), "/")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(common::truststore_json(&gw).await["generation"], 1);
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(
        &metrics,
        "portcullis_reload_total",
        &["kind=\"api\"", "result=\"failure\""],
        2.0,
    );

    // Fixed: the next reload applies.
    replace(
        &ts.join("crls/root.crl.pem"),
        &pki.root.crl_pem(next_week()),
    );
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"], 2);
    assert_eq!(conn.get("/").await.unwrap().status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn revoked_client_is_cut_off_on_its_open_connections_by_the_watcher() {
    let mut pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let alice = pki.client("alice");
    let (mut h1, mut h2) = client::connect_both(gw.addr, &pki, &alice).await;

    // A new CRL lands in the folder; nobody calls /reload.
    pki.revoke(&alice);
    let ts = gw.dir.path().join("truststore");
    replace(
        &ts.join("crls/inter.crl.pem"),
        &pki.inter.crl_pem(next_week()),
    );

    // Generous bound so a loaded machine does not flake; the target is under a second.
    let (took, reply) = common::until_refused(&mut h1, Duration::from_secs(20))
        .await
        .expect("not cut off");
    eprintln!("revocation reached the open connection after {took:?}");
    assert_eq!(reply.status, 403);
    // HTTP/1.1: the connection is closed after the refusal.
    assert!(h1.get("/").await.is_err());
    // HTTP/2: refused too, then GOAWAY.
    let r = h2.get("/").await.unwrap();
    assert_eq!(r.status, 403);
    let mut closed = false;
    for _ in 0..100 {
        if h2.get("/").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the HTTP/2 connection stayed open");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let revoked = gw
        .access_log()
        .iter()
        .filter(|l| l["reason"] == "revoked" && l["status"] == 403)
        .count();
    assert!(revoked >= 2, "{:?}", gw.access_log());
    let metrics = gw.metrics().await;
    assert!(
        common::metric(
            &metrics,
            "portcullis_reload_total",
            &["kind=\"watch\"", "result=\"success\""]
        ) + common::metric(
            &metrics,
            "portcullis_reload_total",
            &["kind=\"poll\"", "result=\"success\""]
        ) >= 1.0
    );
    // And the next handshake is refused outright.
    assert!(client::get(gw.addr, &pki, Opts::with(&alice), "/")
        .await
        .is_err());
    gw.shutdown().await;
}

/// Connect with a shared client config (so sessions resume); the handshake kind seen.
async fn connect_resumable(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<(Conn, rustls::HandshakeKind), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(cfg.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok((Conn::H1(tx), kind))
}

#[tokio::test]
async fn revoked_client_cannot_resume_its_tls13_session() {
    let mut pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let cfg = Arc::new(client::tls_config(
        &pki,
        &Opts {
            tls: Tls::V13,
            ..Opts::with(&alice)
        },
    ));
    let (mut c, kind) = connect_resumable(gw.addr, &cfg).await.unwrap();
    assert_eq!(kind, rustls::HandshakeKind::Full);
    assert_eq!(c.get("/").await.unwrap().status, 200);
    drop(c);
    let (mut c, kind) = connect_resumable(gw.addr, &cfg).await.unwrap();
    assert_eq!(kind, rustls::HandshakeKind::Resumed, "resumption is on");
    assert_eq!(c.get("/").await.unwrap().status, 200);
    drop(c);

    pki.revoke(&alice);
    let ts = gw.dir.path().join("truststore");
    replace(
        &ts.join("crls/inter.crl.pem"),
        &pki.inter.crl_pem(next_week()),
    );
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");

    // The client resumes (its ticket is still good), but no request gets through: the
    // server closes the connection right after the handshake.
    let (mut c, kind) = connect_resumable(gw.addr, &cfg)
        .await
        .expect("the TLS 1.3 client completes its side of the resumed handshake");
    assert_eq!(kind, rustls::HandshakeKind::Resumed);
    assert!(
        c.get("/").await.is_err(),
        "a revoked client's request was served"
    );
    let mut seen = false;
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        if common::metric(
            &metrics,
            "portcullis_tls_handshakes_total",
            &[
                "result=\"rejected\"",
                "reason=\"revoked\"",
                &format!("listener=\"{}\"", gw.addr),
            ],
        ) >= 1.0
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen,
        "the refused resumption is counted with reason revoked"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn identity_cache_hits_on_repeat_handshakes() {
    let pki = TestPki::new();
    let gw = common::start(&pki, Spec::default()).await;
    let bob = pki.client("bob");
    let hits = |m: &str| common::metric(m, "portcullis_identity_cache_hits_total", &[]);
    let misses = |m: &str| common::metric(m, "portcullis_identity_cache_misses_total", &[]);
    let m0 = gw.metrics().await;
    let opts = Opts {
        tls: Tls::V12, // no resumption in play: every connection is a full handshake
        ..Opts::with(&bob)
    };
    for _ in 0..3 {
        let r = client::get(gw.addr, &pki, opts, "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["headers"]["x-client-uri-san"][0],
            "spiffe://test/client/bob"
        );
    }
    let m1 = gw.metrics().await;
    assert!(hits(&m1) - hits(&m0) >= 2.0, "hits did not rise");
    assert!(misses(&m1) - misses(&m0) >= 1.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn server_certificate_rotation_is_seen_by_new_connections() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let old_server = CertificateDer::from_pem_slice(pki.server.chain_pem.as_bytes()).unwrap();
    let rotated = pki.inter.leaf(
        &common::LeafSpec {
            cn: "localhost".into(),
            dns: vec!["localhost".into()],
            eku: vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
            ..common::LeafSpec::default()
        },
        &pki.inter.pem(),
    );
    let dir = gw.dir.path();
    fs::remove_file(dir.join("server.key")).unwrap();
    common::write_key(&dir.join("server.key"), &rotated.key_pem);
    replace(&dir.join("server.pem"), &rotated.chain_pem);
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");

    let new_server = CertificateDer::from_pem_slice(rotated.chain_pem.as_bytes()).unwrap();
    let cfg = Arc::new(client::tls_config(&pki, &Opts::with(&alice)));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let seen = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(seen, new_server);
    assert_ne!(seen, old_server);

    // And a real `openssl s_client` sees it too (scripts/test.sh installs openssl).
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok()
    {
        fs::write(dir.join("alice.pem"), &alice.chain_pem).unwrap();
        common::write_key(&dir.join("alice.key"), &alice.key_pem);
        fs::write(dir.join("root.pem"), pki.root_pem()).unwrap();
        // Blocking pool: the gateway runs on this test's runtime thread.
        let (addr, dir) = (gw.addr, dir.to_path_buf());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("openssl")
                .args(["s_client", "-connect", &addr.to_string()])
                .args(["-servername", "localhost"])
                .arg("-cert")
                .arg(dir.join("alice.pem"))
                .arg("-key")
                .arg(dir.join("alice.key"))
                .arg("-CAfile")
                .arg(dir.join("root.pem"))
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let body_line = rotated.chain_pem.lines().nth(1).unwrap();
        assert!(
            text.contains(body_line),
            "openssl saw another certificate:\n{text}"
        );
    } else {
        eprintln!("SKIPPED openssl part: openssl is not installed (run scripts/test.sh)");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn config_reload_changes_a_route_without_dropping_requests() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(conn.get("/other").await.unwrap().status, 200);

    // Requests keep flowing on another connection while the config changes.
    let mut busy = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    let path = gw.dir.path().join("portcullis.toml");
    let text = fs::read_to_string(&path).unwrap();
    let changed = text.replace("path_prefix = \"/\"", "path_prefix = \"/api\"");
    assert_ne!(text, changed);
    replace(&path, &changed);
    let reloading = tokio::spawn({
        let admin = gw.admin.unwrap();
        async move { common::admin_post(admin, "/reload").await }
    });
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = busy.get("/api/x").await.expect("a request was dropped");
        statuses.push(r.status.as_u16());
    }
    let (status, body) = reloading.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // The same open connection now routes by the new config.
    assert_eq!(conn.get("/other").await.unwrap().status, 404);
    assert_eq!(conn.get("/api/orders").await.unwrap().status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn truststore_endpoint_and_expiry_gauges_show_the_active_generation() {
    let mut pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let j = common::truststore_json(&gw).await;
    assert_eq!(j["generation"], 1);
    assert!(j["loaded_at"].as_str().unwrap().contains('T'));
    let cas = j["cas"].as_array().unwrap();
    assert_eq!(cas.len(), 1);
    assert!(cas[0]["subject"].as_str().unwrap().contains("test root CA"));
    assert_eq!(cas[0]["fingerprint"].as_str().unwrap().len(), 64);
    assert!(cas[0]["not_after"].is_string());
    let crls = j["crls"].as_array().unwrap();
    assert_eq!(crls.len(), 2);
    for c in crls {
        assert!(c["issuer"].is_string() && c["this_update"].is_string());
        assert!(c["next_update"].is_string());
        assert_eq!(c["revoked"], 0);
    }

    let x = pki.client("x");
    pki.revoke(&x);
    let ts = gw.dir.path().join("truststore");
    replace(
        &ts.join("crls/inter.crl.pem"),
        &pki.inter.crl_pem(next_week()),
    );
    let (status, _) = reload(&gw).await;
    assert_eq!(status, 200);
    let j = common::truststore_json(&gw).await;
    assert_eq!(j["generation"], 2);
    let revoked: u64 = j["crls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revoked"].as_u64().unwrap())
        .sum();
    assert_eq!(revoked, 1);

    let metrics = gw.metrics().await;
    assert!(common::metric(&metrics, "portcullis_truststore_ca_expiry_seconds", &[]) > 0.0);
    assert!(
        common::metric(
            &metrics,
            "portcullis_truststore_crl_next_update_seconds",
            &[]
        ) > 0.0
    );
    common::assert_metric_at_least(&metrics, "portcullis_truststore_generation", &[], 1.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn polling_alone_picks_up_a_new_crl() {
    let mut pki = TestPki::new();
    let gw = common::start(
        &pki,
        Spec {
            body: format!(
                "{}\n[reload]\nwatch = false\npoll_interval = \"200ms\"\n",
                common::echo_route()
            ),
            ..Spec::default()
        },
    )
    .await;
    let alice = pki.client("alice");
    let mut conn = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    assert_eq!(conn.get("/").await.unwrap().status, 200);
    pki.revoke(&alice);
    let ts = gw.dir.path().join("truststore");
    replace(
        &ts.join("crls/inter.crl.pem"),
        &pki.inter.crl_pem(next_week()),
    );
    let (_, reply) = common::until_refused(&mut conn, Duration::from_secs(20))
        .await
        .expect("the poller did not apply the new CRL");
    assert_eq!(reply.status, 403);
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(
        &metrics,
        "portcullis_reload_total",
        &["kind=\"poll\"", "result=\"success\""],
        1.0,
    );
    gw.shutdown().await;
}

/// `portcullis run` reloads on SIGHUP: a client revoked in the folder is refused after it.
#[test]
fn sighup_reloads_the_running_binary() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut pki = TestPki::new();
    let spec = Spec {
        body: format!(
            "level = \"info\"\n\n{}\n[reload]\nwatch = false\npoll_interval = \"1h\"\n",
            common::echo_route()
        ),
        ..Spec::default()
    };
    let (dir, config) = common::write_config(&pki, &spec);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.contains(needle) {
                    return true;
                }
            }
        }
        false
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(wait_for("listening"), "the gateway did not start");
        let alice = pki.client("alice");
        pki.revoke(&alice);
        replace(
            &dir.path().join("truststore/crls/inter.crl.pem"),
            &pki.inter.crl_pem(next_week()),
        );
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        // The line reads `reloaded generation=2 kind="signal"`.
        assert!(wait_for("\"signal\""), "no reload logged after SIGHUP");
    }));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[tokio::test]
async fn an_expired_crl_loads_and_expired_crl_decides() {
    let pki = TestPki::new();
    let gw = common::start(&pki, quiet()).await;
    let alice = pki.client("alice");
    let ts = gw.dir.path().join("truststore");
    let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
    replace(&ts.join("crls/inter.crl.pem"), &pki.inter.crl_pem(past));
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "an expired CRL is not a broken input: {body}");
    // The default `expired_crl = "deny"` refuses the paths that need it.
    assert!(client::get(gw.addr, &pki, Opts::with(&alice), "/")
        .await
        .is_err());
    // (The nextUpdate gauge is process-wide, shared with the other tests here: not checked.)
    let j = common::truststore_json(&gw).await;
    assert_eq!(j["generation"], 2);
    gw.shutdown().await;
}
