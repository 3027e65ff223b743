//! The binary as a deploy gate: exit 1 when every request failed, 99 when a threshold is
//! crossed (saying which), 0 otherwise; `--hdr` writes an interval log that reads back
//! with every request in it, and `--html` a self-contained page. Thresholds are chosen so
//! the verdict never depends on the machine's speed (a p99 under 1 ns is impossible, one
//! under a minute certain).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_loadtest");

/// The gateway and the folder it lives in.
struct Target {
    _dir: tempfile::TempDir,
    pki: PathBuf,
    url: String,
    running: portcullis::server::Running,
}

/// A gateway in front of the built-in echo, with a loadtest PKI of two clients and one
/// revoked.
async fn gateway() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::start(dir.path(), 2, 1).await;
    Target {
        _dir: dir,
        pki: gw.pki,
        url: gw.url,
        running: gw.running,
    }
}

/// The first client identity of the loadtest PKI (cert, key).
fn client(pki: &Path, sub: &str) -> (PathBuf, PathBuf) {
    let mut pems: Vec<PathBuf> = fs::read_dir(pki.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    pems.sort();
    let cert = pems.remove(0);
    (cert.clone(), cert.with_extension("key"))
}

/// `loadtest run` against `t` with `extra` arguments, 20 requests on 2 connections, off the
/// async threads (the gateway serves on them meanwhile).
async fn run(t: &Target, extra: &[&str]) -> Output {
    let mut args: Vec<String> = [
        "run",
        t.url.as_str(),
        "--ca",
        t.pki.join("ca-bundle.pem").to_str().unwrap(),
        "--server-name",
        "localhost",
        "-c",
        "2",
        "-n",
        "20",
        "-d",
        "30s",
        "--timeout",
        "5s",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_non_zero_when_every_request_failed_or_a_threshold_is_crossed() {
    let t = gateway().await;
    let (cert, key) = client(&t.pki, "clients");
    let (rcert, rkey) = client(&t.pki, "revoked");
    let good = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];

    // No client certificate: the gateway refuses every handshake.
    let none = run(&t, &[]).await;
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("every request failed: 20 of 20"),
        "{}",
        stderr(&none)
    );

    // A revoked identity: every request fails too, whatever the thresholds.
    let revoked = run(
        &t,
        &[
            "--cert",
            rcert.to_str().unwrap(),
            "--key",
            rkey.to_str().unwrap(),
            "--max-error-rate",
            "100%",
        ],
    )
    .await;
    assert_eq!(revoked.status.code(), Some(1), "{}", stderr(&revoked));
    assert!(
        stderr(&revoked).contains("tls_alert:certificate_revoked"),
        "{}",
        stderr(&revoked)
    );

    // A p99 under a nanosecond is always crossed, and the message says which threshold.
    let mut args = good.to_vec();
    args.extend(["--max-p99", "1ns", "--max-error-rate", "1%"]);
    let slow = run(&t, &args).await;
    assert_eq!(slow.status.code(), Some(99), "{}", stderr(&slow));
    let msg = stderr(&slow);
    assert!(
        msg.contains("threshold crossed: p99 latency") && msg.contains("--max-p99 1ns"),
        "{msg}"
    );
    assert!(!msg.contains("error rate"), "no request failed: {msg}");

    // Within generous thresholds: exit 0, and the reports are written.
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("run.hlog");
    let html = dir.path().join("run.html");
    let mut args = good.to_vec();
    args.extend([
        "--max-p99",
        "60s",
        "--max-error-rate",
        "1%",
        "--hdr",
        hdr.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let ok = run(&t, &args).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    let log = fs::read(&hdr).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("#[BaseTime: ") && text.contains("#[StartTime: "),
        "{text}"
    );
    assert!(text.contains("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""), "{text}");
    assert_eq!(
        loadtest::hdrlog::count(&log).unwrap(),
        20,
        "every request is in the log"
    );

    let page = fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 2, "two plots");
    assert!(page.contains("Latency over time") && page.contains("Latency by percentile"));
    assert!(page.contains("<polyline class=\"p99\""), "{page}");
    for external in ["<script", "src=", "<link", "@import", "url("] {
        assert!(!page.contains(external), "not self-contained: {external}");
    }

    // Some requests fail (one identity of three is revoked): over a 1% error budget.
    let ids = dir.path().join("ids");
    fs::create_dir(&ids).unwrap();
    for (c, k) in [(&cert, &key), (&rcert, &rkey)] {
        fs::copy(c, ids.join(c.file_name().unwrap())).unwrap();
        fs::copy(k, ids.join(k.file_name().unwrap())).unwrap();
    }
    let mixed = run(
        &t,
        &[
            "--identities",
            ids.to_str().unwrap(),
            "--mode",
            "new-conn",
            "--max-error-rate",
            "1%",
        ],
    )
    .await;
    assert_eq!(mixed.status.code(), Some(99), "{}", stderr(&mixed));
    assert!(
        stderr(&mixed)
            .contains("threshold crossed: error rate 50.00% (10 of 20) > --max-error-rate 1%"),
        "{}",
        stderr(&mixed)
    );

    t.running.shutdown().await;
}
