//! `portcullis credentials` and `portcullis agent` as real processes against a CreateSession
//! endpoint on 127.0.0.1 that checks their requests independently (`endpoint.py`: its own
//! canonicalisation, `cryptography` verifying the ECDSA or RSA signature, the TLS client
//! certificate compared with X-Amz-X509), and boto3's own credential chain
//! (`boto3_chain.py`) reading what they give.

mod agent;
#[path = "../common/mod.rs"]
mod common;
mod gateway;
mod support;

use support::{
    boto3, credentials, process_profile, python, rsa_leaf, seconds_left, text, Endpoint,
};

#[test]
fn credentials_signs_like_the_go_helper_and_prints_only_the_process_json() {
    let Some(python) = python() else { return };
    let ep = Endpoint::start(&python);
    let ecdsa = ep.pki.client("worker-1");
    let rsa = rsa_leaf(&ep.pki, "worker-rsa");
    for (leaf, name, alg) in [
        (&ecdsa, "ecdsa", "AWS4-X509-ECDSA-SHA256"),
        (&rsa, "rsa", "AWS4-X509-RSA-SHA256"),
    ] {
        let out = credentials(&ep.args(leaf, name));
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(
            stdout.lines().count(),
            1,
            "only the JSON on stdout: {stdout:?}"
        );
        let keys: Vec<&str> = [
            "Version",
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "Expiration",
        ]
        .to_vec();
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(
            obj.keys().map(|k| k.as_str()).collect::<Vec<_>>().len(),
            keys.len()
        );
        for k in &keys {
            assert!(obj.contains_key(*k), "{k} missing in {stdout}");
        }
        assert!(
            stdout.starts_with("{\"Version\":1,\"AccessKeyId\":\"ASIATEST"),
            "{stdout}"
        );
        let left = seconds_left(v["Expiration"].as_str().unwrap());
        assert!(
            (3500..=3600).contains(&left),
            "default duration 1 h: {left}"
        );
        let seen = ep.requests().pop().unwrap();
        assert_eq!(seen["ok"], true, "{seen}");
        assert_eq!(seen["alg"], alg);
        assert_eq!(seen["durationSeconds"], 3600);
        assert_eq!(
            seen["chain"], true,
            "the intermediate in --cert goes in X-Amz-X509-Chain"
        );
    }

    // A separate --chain, a session name and another duration.
    let bare = ecdsa
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    let mut args = ep.args(&ecdsa, "ecdsa");
    std::fs::write(&args[3], bare).unwrap();
    let chain = ep.dir.path().join("chain.pem");
    std::fs::write(&chain, ep.pki.inter.pem()).unwrap();
    args.extend(
        [
            "--chain",
            chain.to_str().unwrap(),
            "--session-name",
            "job 7/a",
            "--duration",
            "2h",
        ]
        .map(String::from),
    );
    let out = credentials(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen = ep.requests().pop().unwrap();
    assert_eq!(
        (seen["ok"].clone(), seen["durationSeconds"].clone()),
        (true.into(), 7200.into()),
        "{seen}"
    );
    assert_eq!(seen["roleSessionName"], "job 7/a");
    assert_eq!(seen["chain"], true);
}

#[test]
fn credentials_fails_with_the_reason_and_nothing_on_stdout() {
    let Some(python) = python() else { return };
    let ep = Endpoint::start(&python);
    let leaf = ep.pki.client("worker-1");
    let args = ep.args(&leaf, "w");
    let fails = |args: &[String], want: &str| {
        let out = credentials(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "want failure {want}: {stderr}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    };
    ep.set_mode("deny");
    fails(
        &args,
        "403 AccessDeniedException: the test server denies this certificate",
    );
    ep.set_mode("ok");

    let with = |i: usize, v: &str| {
        let mut a = args.clone();
        a[i] = v.into();
        a
    };
    fails(&with(9, "fleet"), "--trust-anchor");
    fails(&with(13, "arn:aws:iam::000000000000:user/x"), "--role");
    fails(
        &with(
            11,
            "arn:aws:rolesanywhere:eu-west-1:000000000000:profile/workers",
        ),
        "must match",
    );
    fails(&with(1, "http://localhost:1"), "https://");
    let mut short = args.clone();
    short.extend(["--duration".into(), "10m".into()]);
    fails(&short, "--duration");
    // Another certificate's key.
    let other = ep.pki.client("other");
    let other_key = ep.dir.path().join("other.key");
    common::write_key(&other_key, &other.key_pem);
    fails(
        &with(5, other_key.to_str().unwrap()),
        "is not the key of the certificate",
    );
    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    fails(
        &with(1, &format!("https://localhost:{port}")),
        "cannot reach",
    );
    assert!(
        ep.requests().iter().all(|r| r["reason"].is_null()),
        "{:?}",
        ep.requests()
    );
}

/// A `credential_process` profile in AWS_CONFIG_FILE: boto3 runs `portcullis credentials`.
#[test]
fn boto3_profile_with_credential_process() {
    let Some(python) = python() else { return };
    let ep = Endpoint::start(&python);
    let leaf = ep.pki.client("worker-1");
    let args = ep.args(&leaf, "w");
    let env = process_profile(ep.dir.path(), &args);
    let v = boto3(&python, ep.dir.path(), "process", &env, &[]);
    assert_eq!(v["method"], "custom-process", "{v}");
    assert!(
        v["access_key"].as_str().unwrap().starts_with("ASIATEST"),
        "{v}"
    );
    assert_eq!(v["has_token"], true);
    assert!(v["expiry_left"].as_f64().unwrap() > 3000.0, "{v}");
}
