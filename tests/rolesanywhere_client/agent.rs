//! The agent: IMDSv2 and the container endpoint as botocore uses them, background refresh,
//! serving while the endpoint is down, refusing to start.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{boto3, http, python, seconds_left, text, Agent, Endpoint, BIN};

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";
const CREDS: &str = "/latest/meta-data/iam/security-credentials/";

#[test]
fn agent_serves_imdsv2_and_the_container_endpoint_as_botocore_uses_them() {
    let Some(python) = python() else { return };
    let ep = Endpoint::start(&python);
    let leaf = ep.pki.client("worker-1");
    let mut args = ep.args(&leaf, "w");
    let token_file = ep.dir.path().join("container-token");
    std::fs::write(&token_file, "c0ntainer-t0ken").unwrap();
    args.extend([
        "--container-token-file".into(),
        token_file.to_str().unwrap().into(),
    ]);
    let agent = Agent::start(&args);
    let a = agent.addr;

    // Tokens: TTL echoed, default 21600, bounds, no proxies, PUT only.
    let t = http(a, "PUT", "/latest/api/token", &[(TTL, "60")]);
    assert_eq!(t.status, 200);
    assert!(t.head.contains(&format!("{TTL}: 60")), "{}", t.head);
    let token = t.body.clone();
    let d = http(a, "PUT", "/latest/api/token", &[]);
    assert!(
        d.status == 200 && d.head.contains(&format!("{TTL}: 21600")),
        "{}",
        d.head
    );
    for bad in ["0", "21601", "-1", "ten", ""] {
        assert_eq!(
            http(a, "PUT", "/latest/api/token", &[(TTL, bad)]).status,
            400,
            "TTL {bad:?}"
        );
    }
    let xff = http(
        a,
        "PUT",
        "/latest/api/token",
        &[(TTL, "60"), ("X-Forwarded-For", "10.0.0.1")],
    );
    assert_eq!(xff.status, 400);
    assert_eq!(http(a, "GET", "/latest/api/token", &[]).status, 405);

    // IMDSv1 and bad tokens are refused.
    assert_eq!(http(a, "GET", CREDS, &[]).status, 401);
    assert_eq!(
        http(a, "GET", &format!("{CREDS}orders-reader"), &[]).status,
        401
    );
    assert_eq!(http(a, "GET", CREDS, &[(TOKEN, "made-up")]).status, 401);

    // The role, then its credentials.
    let role = http(a, "GET", CREDS, &[(TOKEN, &token)]);
    assert_eq!((role.status, role.body.as_str()), (200, "orders-reader"));
    assert_eq!(
        http(a, "GET", CREDS.trim_end_matches('/'), &[(TOKEN, &token)]).body,
        "orders-reader"
    );
    let c = http(
        a,
        "GET",
        &format!("{CREDS}orders-reader"),
        &[(TOKEN, &token)],
    );
    assert_eq!(c.status, 200, "{}", c.body);
    assert!(c.head.contains("content-type: application/json"));
    assert!(
        c.body
            .starts_with("{\"Code\":\"Success\",\"LastUpdated\":\""),
        "{}",
        c.body
    );
    let v: serde_json::Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["Type"], "AWS-HMAC");
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIATEST"));
    assert!(v["Token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(seconds_left(v["Expiration"].as_str().unwrap()) >= 30 * 60);
    seconds_left(v["LastUpdated"].as_str().unwrap());
    assert_eq!(
        http(
            a,
            "GET",
            &format!("{CREDS}orders-reader/"),
            &[(TOKEN, &token)]
        )
        .status,
        200
    );

    // Unknown paths and roles; other methods.
    for path in [
        &format!("{CREDS}other-role"),
        "/latest/meta-data/",
        "/latest/user-data",
        "/",
    ] {
        assert_eq!(
            http(a, "GET", path, &[(TOKEN, &token)]).status,
            404,
            "{path}"
        );
    }
    assert_eq!(http(a, "POST", CREDS, &[(TOKEN, &token)]).status, 405);

    // A token dies with its TTL.
    let short = http(a, "PUT", "/latest/api/token", &[(TTL, "1")]).body;
    assert_eq!(http(a, "GET", CREDS, &[(TOKEN, &short)]).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(http(a, "GET", CREDS, &[(TOKEN, &short)]).status, 401);

    // The container endpoint: the token file's token, exactly.
    assert_eq!(http(a, "GET", "/v1/credentials", &[]).status, 401);
    assert_eq!(
        http(
            a,
            "GET",
            "/v1/credentials",
            &[("Authorization", "c0ntainer-t0ke")]
        )
        .status,
        403
    );
    let cc = http(
        a,
        "GET",
        "/v1/credentials",
        &[("Authorization", "c0ntainer-t0ken")],
    );
    assert_eq!(cc.status, 200);
    let cv: serde_json::Value = serde_json::from_str(&cc.body).unwrap();
    let keys: Vec<&String> = cv.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{}", cc.body);
    assert!(
        cc.body.starts_with("{\"AccessKeyId\":\"ASIATEST"),
        "{}",
        cc.body
    );
    assert_eq!(
        cv["AccessKeyId"], v["AccessKeyId"],
        "the same credentials from memory"
    );

    // botocore's own chain, through each transport.
    let boto = |env: &[(&str, String)], mode: &str| boto3(&python, ep.dir.path(), mode, env, &[]);
    let imds = boto(
        &[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{a}/")),
            ("AWS_EC2_METADATA_V1_DISABLED", "true".into()),
        ],
        "imds",
    );
    assert_eq!(imds["method"], "iam-role", "{imds}");
    assert_eq!(imds["access_key"], v["AccessKeyId"]);
    assert!(
        imds["expiry_left"].as_f64().unwrap() >= 30.0 * 60.0,
        "not shortened by botocore: {imds}"
    );
    let container = boto(
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("http://{a}/v1/credentials"),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap().into(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
        "container",
    );
    assert_eq!(container["method"], "container-role", "{container}");
    assert_eq!(ep.requests().len(), 1, "every answer came from memory");
}

#[test]
fn agent_refreshes_in_the_background_and_keeps_serving_while_the_endpoint_is_down() {
    let Some(python) = python() else { return };
    let mut ep = Endpoint::start(&python);
    let leaf = ep.pki.client("worker-1");
    let mut args = ep.args(&leaf, "w");
    // 1 h credentials refreshed when 59 min 57 s are left: every ~3 s.
    args.extend(["--refresh-before".into(), "59m57s".into()]);
    let agent = Agent::start(&args);
    let token = http(agent.addr, "PUT", "/latest/api/token", &[(TTL, "600")]).body;
    let akid = || {
        let c = http(
            agent.addr,
            "GET",
            &format!("{CREDS}orders-reader"),
            &[(TOKEN, &token)],
        );
        assert_eq!(c.status, 200, "{}", c.body);
        let v: serde_json::Value = serde_json::from_str(&c.body).unwrap();
        v["AccessKeyId"].as_str().unwrap().to_owned()
    };
    let first = akid();
    let deadline = Instant::now() + Duration::from_secs(30);
    while akid() == first {
        assert!(
            Instant::now() < deadline,
            "never refreshed: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.wait_stderr("credentials refreshed");

    // The endpoint goes away: the agent says so and serves what it has.
    ep.stop();
    agent.wait_stderr("still serving the current ones");
    let last = akid();
    assert!(last.starts_with("ASIATEST"));
    agent.wait_stderr("retrying in 2s");
    assert_eq!(
        akid(),
        last,
        "the current credentials, while the endpoint is down"
    );
}

#[test]
fn agent_refuses_to_start_off_loopback_or_when_refused() {
    let Some(python) = python() else { return };
    let ep = Endpoint::start(&python);
    let leaf = ep.pki.client("worker-1");
    let args = ep.args(&leaf, "w");
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .arg("agent")
            .args(extra)
            .args(&args)
            .output()
            .unwrap()
    };
    let out = run(&["--listen", "0.0.0.0:0"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("--allow-remote"),
        "{}",
        text(&out.stderr)
    );
    ep.set_mode("deny");
    let out = run(&["--listen", "127.0.0.1:0"]);
    assert!(!out.status.success(), "a refusal at start ends the agent");
    assert!(
        text(&out.stderr).contains("AccessDeniedException"),
        "{}",
        text(&out.stderr)
    );
}
