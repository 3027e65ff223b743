//! `[runtime] mode`: the per-core runtime serves real mTLS traffic (HTTP/1.1 and HTTP/2,
//! pooled upstream connections), spreads connections over its cores (a gauge per core),
//! keeps `max_connections` one count across the cores, and reloads and revocations still
//! reach the connections it holds open; the work-stealing runtime stays selectable.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::client;
use common::origin::Origin;
use common::{Opts, Spec, TestGateway, TestPki};
use time::OffsetDateTime;

fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".replaced.tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn next_week() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(7)
}

/// `[runtime]` plus a route to a real origin over pooled HTTP/1.1 connections.
fn spec(mode: &str, origin: &Origin) -> String {
    format!(
        "[runtime]\nmode = \"{mode}\"\n\n[reload]\nwatch = false\npoll_interval = \"1h\"\n\n{}",
        common::backend_route(origin.addr, "")
    )
}

async fn gateway(pki: &TestPki, origin: &Origin, mode: &str, listener: &str) -> TestGateway {
    let body = spec(mode, origin);
    common::start(
        pki,
        Spec {
            listener,
            body,
            ..Spec::default()
        },
    )
    .await
}

/// The sum of `portcullis_listener_core_connections_active` of `listener` over the cores,
/// and how many core series it has (the recorder is shared by every test of this file).
fn per_core(metrics: &str, listener: std::net::SocketAddr) -> (f64, usize) {
    let series = format!("portcullis_listener_core_connections_active{{listener=\"{listener}\"");
    let rows: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with(&series))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (rows.iter().sum(), rows.len())
}

#[tokio::test]
async fn per_core_serves_mtls_and_reload_and_revocation_reach_open_connections() {
    let mut pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "per-core", "workers = 2").await;
    let alice = pki.client("alice");
    let bob = pki.client("bob");

    // Eight connections of each protocol, several requests each, all answered by the origin.
    let mut conns = Vec::new();
    for _ in 0..8 {
        let (h1, h2) = client::connect_both(gw.addr, &pki, &alice).await;
        conns.push(h1);
        conns.push(h2);
    }
    for _ in 0..3 {
        for c in conns.iter_mut() {
            let r = c.get("/orders").await.unwrap();
            assert_eq!(r.status, 200);
        }
    }
    assert!(origin.count() >= 48, "the origin saw {}", origin.count());
    assert!(origin.last().headers.contains_key("x-client-subject"));

    // A gauge per core; together they count every open connection.
    let metrics = gw.metrics().await;
    let (sum, cores) = per_core(&metrics, gw.addr);
    assert_eq!(cores, 2, "one gauge per core:\n{metrics}");
    assert_eq!(sum, 16.0, "connections per core:\n{metrics}");
    common::assert_metric_at_least(
        &metrics,
        "portcullis_upstream_pool_hits_total",
        &["upstream=\"backend\""],
        1.0,
    );

    // A reload (nothing changed) keeps the open connections serving.
    let (status, body) = common::reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    for c in conns.iter_mut() {
        assert_eq!(c.get("/").await.unwrap().status, 200);
    }

    // A revocation reaches the open connections on every core: each is refused (403),
    // then closed; another client's connection keeps working.
    let mut other = client::connect(gw.addr, &pki, Opts::with(&bob))
        .await
        .unwrap();
    pki.revoke(&alice);
    let ts = gw.dir.path().join("truststore");
    replace(
        &ts.join("crls/inter.crl.pem"),
        &pki.inter.crl_pem(next_week()),
    );
    let (status, body) = common::reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    for c in conns.iter_mut() {
        let r = c.get("/").await.unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.headers["x-portcullis-error"], "forbidden");
    }
    assert_eq!(other.get("/").await.unwrap().status, 200);
    let metrics = gw.metrics().await;
    common::assert_metric_at_least(&metrics, "portcullis_revoked_connections_total", &[], 16.0);
    gw.shutdown().await;
}

/// `max_connections` is one count for the listener, not one per core: with 3 allowed and
/// two cores, a fourth connection waits until one of the three closes.
#[tokio::test]
async fn per_core_max_connections_is_one_count_across_cores() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(
        &pki,
        &origin,
        "per-core",
        "workers = 2\nmax_connections = 3",
    )
    .await;
    let alice = pki.client("alice");
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
            .await
            .unwrap();
        assert_eq!(c.get("/").await.unwrap().status, 200);
        open.push(c);
    }
    // The fourth is accepted but not served until a permit frees, whichever core has it.
    let addr = gw.addr;
    let fourth = async {
        let mut c = client::connect(addr, &pki, Opts::with(&alice)).await?;
        c.get("/").await
    };
    tokio::pin!(fourth);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut fourth)
            .await
            .is_err(),
        "a fourth connection was served"
    );
    drop(open.pop());
    let r = tokio::time::timeout(Duration::from_secs(20), &mut fourth)
        .await
        .expect("the fourth connection was never served")
        .unwrap();
    assert_eq!(r.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn work_stealing_stays_selectable_and_has_no_core_gauge() {
    let pki = TestPki::new();
    let origin = Origin::start().await;
    let gw = gateway(&pki, &origin, "work-stealing", "").await;
    let alice = pki.client("alice");
    let mut c = client::connect(gw.addr, &pki, Opts::with(&alice))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(c.get("/").await.unwrap().status, 200);
    }
    assert_eq!(per_core(&gw.metrics().await, gw.addr).1, 0);
    gw.shutdown().await;
}

#[test]
fn a_bad_runtime_mode_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    fs::write(&path, "[runtime]\nmode = \"threads\"\n").unwrap();
    let err = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(err.contains("runtime.mode"), "{err}");
    assert!(err.contains("\"threads\" is not a runtime mode"), "{err}");
    assert!(err.contains(":2:"), "the line of the key: {err}");
    fs::write(&path, "[runtime]\nmode = 2\n").unwrap();
    let err = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(err.contains("runtime.mode"), "{err}");
    fs::write(&path, "[runtime]\nmod = \"per-core\"\n").unwrap();
    let err = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(err.contains("runtime.mod"), "{err}");
}
