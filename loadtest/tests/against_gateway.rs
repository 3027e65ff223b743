//! One short bounded run against a real gateway started in the test: the harness reports
//! its successes, and a revoked identity in the rotated folder shows up as the TLS alert
//! class `tls_alert:certificate_revoked`. No timing is asserted.

mod common;

use std::fs;

use clap::Parser;
use loadtest::args::{Cli, Cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_successes_and_revoked_identities_by_alert_name() {
    let dir = tempfile::tempdir().unwrap();
    let gw = common::start(dir.path(), 3, 1).await;
    let pki = gw.pki.clone();
    let running = gw.running;
    // The folder the harness rotates through: three valid identities and a revoked one.
    let ids = dir.path().join("ids");
    fs::create_dir(&ids).unwrap();
    for sub in ["clients", "revoked"] {
        for e in fs::read_dir(pki.join(sub)).unwrap() {
            let p = e.unwrap().path();
            fs::copy(&p, ids.join(p.file_name().unwrap())).unwrap();
        }
    }

    let json = dir.path().join("report.json");
    let ca = pki.join("ca-bundle.pem");
    let url = gw.url;
    let cli = Cli::parse_from([
        "loadtest",
        "run",
        &url,
        "--ca",
        ca.to_str().unwrap(),
        "--identities",
        ids.to_str().unwrap(),
        "--server-name",
        "localhost",
        "--mode",
        "new-conn",
        "-c",
        "2",
        "-n",
        "40",
        "-d",
        "20s",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    let Cmd::Run(args) = cli.cmd else {
        unreachable!()
    };
    let report = loadtest::run::run(&args).await.unwrap();
    fs::write(&json, serde_json::to_vec(&report).unwrap()).unwrap();
    running.shutdown().await;

    let v: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["identities"], 4);
    // Identities rotate per connection: 1 in 4 is the revoked one.
    assert_eq!(v["requests"]["total"], 40, "{v}");
    assert_eq!(v["requests"]["ok"], 30, "{v}");
    assert_eq!(v["errors"]["tls_alert:certificate_revoked"], 10, "{v}");
    for k in ["p50", "p90", "p99", "p99_9", "max", "mean"] {
        assert!(v["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    assert!(v["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["handshakes"]["full"].as_u64().unwrap() >= 30);
    assert!(v["client"]["cpu_s"].is_number());
}
