//! Revocation propagation across a fleet (BENCHMARKS.md "Fleet"): two instances' OAuth2
//! revocation stores, each with its own `state_dir` and its own `[cluster]` link (command
//! connection + subscription) to one real `redis-server` started here on a free port.
//! Each of `N` revocations is made on A (`revoke_id`: fsync in A's `state_dir`, then the
//! script that adds and publishes); the time measured runs from the start of that call to
//! the moment B's lock-free `is_revoked` — exactly what B's request path asks — says yes.
//! B's next request on any connection is then refused.
//!
//! Then the token endpoint's fleet-wide limiter on A's link: `FLEET_LIMIT_N` rounds
//! (2,000 by default) of a request's two buckets (address, client) checked as two calls,
//! one after the other (`two calls`), and as one call with both (`one call`, what the
//! token endpoint does), alternating in blocks of 100 within one run, so that both see the
//! same machine; limits high enough never to refuse.
//!
//!   cargo bench --bench fleet            # N=100 by default; FLEET_N=1000 for more
//!
//! Not a test: it prints the median, p90, p99 and max. Needs `redis-server` on PATH.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::cluster::{Bucket, Cluster};
use portcullis::config::ClusterConfig;
use portcullis::issuer::oauth2::REVOCATIONS_FILE;
use portcullis::issuer::revocations::{now_secs, RevocationStore};

fn main() {
    let n: usize = std::env::var("FLEET_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (apt-get install redis-server)");
    std::thread::sleep(Duration::from_millis(300));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let samples = rt.block_on(async {
        let cfg = ClusterConfig {
            redis_url: format!("redis://127.0.0.1:{port}/0"),
            key_prefix: "bench:".into(),
            tls: None,
            timeout: Duration::from_millis(200),
        };
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let mut stores = Vec::new();
        let mut links = Vec::new();
        for name in ["a", "b"] {
            let store =
                Arc::new(RevocationStore::open(&dir.path().join(name), REVOCATIONS_FILE).unwrap());
            let cluster = Cluster::new(&cfg).unwrap();
            store.join(&cluster);
            cluster.start(shutdown.clone()).await;
            assert!(cluster.is_up(), "redis-server did not answer");
            stores.push(store);
            links.push(cluster);
        }
        let (a, b) = (stores[0].clone(), stores[1].clone());
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("bench-jti-{i}");
            let start = Instant::now();
            let (a2, id2) = (a.clone(), id.clone());
            tokio::task::spawn_blocking(move || a2.revoke_id(&id2, now_secs() + 3600))
                .await
                .unwrap()
                .unwrap();
            let written = start.elapsed();
            let deadline = start + Duration::from_secs(10);
            while !b.is_revoked(Some(&id), None, 0) {
                assert!(Instant::now() < deadline, "{id} never reached B");
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
            samples.push((start.elapsed(), start.elapsed() - written));
            // Spread the revocations out a little, as an operator's would be.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (samples, limits(&links[0]).await)
    });
    let (samples, limits) = samples;
    let _ = redis.kill();
    let _ = redis.wait();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    for (what, pick) in [
        ("revoke on A -> refused by B", 0),
        ("A's answer (after its fsync) -> refused by B", 1),
    ] {
        let mut ms: Vec<f64> = samples
            .iter()
            .map(|s| if pick == 0 { s.0 } else { s.1 }.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{what}, {n} revocations: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (load {load})",
            q(0.5),
            q(0.9),
            q(0.99),
            ms[ms.len() - 1],
        );
    }
    let median = |v: &[Duration]| quantiles(v).0;
    for (what, v) in [("two calls", &limits.0), ("one call", &limits.1)] {
        let (p50, p90, p99) = quantiles(v);
        println!(
            "token limits, {what}, {} rounds: median {p50:.1} µs, p90 {p90:.1} µs, p99 {p99:.1} µs (load {load})",
            v.len()
        );
    }
    println!(
        "token limits: one call / two calls, median: {:.2}",
        median(&limits.1) / median(&limits.0)
    );
}

/// The two ways of checking a request's address and client buckets, alternating.
async fn limits(cluster: &Cluster) -> (Vec<Duration>, Vec<Duration>) {
    let n: usize = std::env::var("FLEET_LIMIT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let bucket = |kind, key| Bucket {
        kind,
        key,
        interval: Duration::from_micros(1),
        tolerance: Duration::from_secs(3600),
    };
    let both = [
        bucket("address", "192.0.2.1"),
        bucket("client", "bench-client"),
    ];
    let (mut two, mut one) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while two.len() < n {
        for _ in 0..100 {
            let start = Instant::now();
            for b in &both {
                let answer = cluster.limit(std::slice::from_ref(b)).await;
                assert!(matches!(answer, Some(Ok(()))), "{answer:?}");
            }
            two.push(start.elapsed());
        }
        for _ in 0..100 {
            let start = Instant::now();
            let answer = cluster.limit(&both).await;
            assert!(matches!(answer, Some(Ok(()))), "{answer:?}");
            one.push(start.elapsed());
        }
    }
    (two, one)
}

/// Median, p90 and p99 in µs.
fn quantiles(v: &[Duration]) -> (f64, f64, f64) {
    let mut us: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let q = |p: f64| us[((us.len() as f64 - 1.0) * p).round() as usize];
    (q(0.5), q(0.9), q(0.99))
}
