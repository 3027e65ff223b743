//! The harness drives `POST /oauth2/token` of a real gateway started in the test (the
//! same use as `compare/issuer.sh`): `--method POST --body … --basic-auth ID:SECRET`
//! (client_secret_basic) and the form's `client_id` over a client certificate
//! (tls_client_auth), on keep-alive connections. Every 200 is an issued token; a wrong
//! secret is counted as `http_status:401`. Counts only, no timing.

use std::fs;
use std::path::Path;

use clap::Parser;
use loadtest::args::{Cli, Cmd};
use portcullis::issuer::oauth2::registry_edit::add_client;
use serde_json::Value;

const FORM: &str = "grant_type=client_credentials";

/// One bounded run of `loadtest run URL --ca CA ARGS… -n 30 -c 2`; the report as JSON.
async fn run(url: &str, ca: &Path, extra: &[&str]) -> Value {
    let mut argv = vec![
        "loadtest",
        "run",
        url,
        "--ca",
        ca.to_str().unwrap(),
        "--server-name",
        "localhost",
        "--method",
        "POST",
        "-c",
        "2",
        "-n",
        "30",
        "-d",
        "30s",
        "-q",
    ];
    argv.extend_from_slice(extra);
    let Cmd::Run(args) = Cli::parse_from(argv).cmd else {
        unreachable!()
    };
    let report = loadtest::run::run(&args).await.unwrap();
    serde_json::to_value(&report).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_token_endpoint_with_secret_and_certificate_client_auth() {
    loadtest::init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let spec = loadtest::pki::PkiSpec {
        clients: 2,
        revoked: 0,
        server_names: vec!["localhost".into()],
    };
    loadtest::pki::generate(&pki, &spec).unwrap();
    portcullis::issuer::keys::generate(&dir.path().join("oauth-keys")).unwrap();
    let clients = dir.path().join("oauth-clients.toml");
    let scope = ["bench/read".to_string()];
    let secret = add_client(&clients, "bench-secret", &scope, None).unwrap();
    // client-0000's certificate carries spiffe://loadtest.test/client/0.
    add_client(
        &clients,
        "bench-cert",
        &scope,
        Some("spiffe://loadtest.test/client/0"),
    )
    .unwrap();
    let config = dir.path().join("portcullis.toml");
    fs::write(
        &config,
        "[[listener]]\naddress = \"127.0.0.1:0\"\ncert = \"pki/server/server.pem\"\nkey = \"pki/server/server.key\"\n\
         client_auth = \"optional\"\n\n[truststore]\ndir = \"pki/truststore\"\n\n\
         [[upstream]]\nname = \"auth\"\nbuiltin = \"oauth2\"\n\n\
         [[route]]\nname = \"token\"\npath_prefix = \"/oauth2\"\nupstream = \"auth\"\nauth = [\"builtin\"]\n\n\
         [issuer.oauth2]\nissuer = \"https://auth.loadtest.test\"\nkeys = \"oauth-keys\"\n\
         clients_file = \"oauth-clients.toml\"\nstate_dir = \"state\"\n\
         rate_limit = { per_client = \"100000/s\", per_address = \"100000/s\", burst = 100000 }\n\n\
         [log]\naccess_log = \"off\"\nlevel = \"warn\"\n",
    )
    .unwrap();
    let cfg = portcullis::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&cfg).await.unwrap();
    let url = format!("https://{}/oauth2/token", running.listeners[0]);
    let ca = pki.join("ca-bundle.pem");

    // client_secret_basic, no client certificate; keep-alive: one handshake per connection.
    let basic = format!("bench-secret:{secret}");
    let v = run(&url, &ca, &["--body", FORM, "--basic-auth", &basic]).await;
    assert_eq!(v["requests"]["ok"], 30, "{v}");
    assert_eq!(v["requests"]["errors"], 0, "{v}");
    assert_eq!(v["handshakes"]["full"], 2, "{v}");

    // tls_client_auth: the form's client_id, proved by the connection's certificate.
    let cert_form = format!("{FORM}&client_id=bench-cert");
    let as_client = |name: &str| {
        let (pem, key) = (
            pki.join(format!("clients/{name}.pem")),
            pki.join(format!("clients/{name}.key")),
        );
        let s = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
        [
            "--body".into(),
            cert_form.clone(),
            "--cert".into(),
            s(pem),
            "--key".into(),
            s(key),
        ]
    };
    let args = as_client("client-0000");
    let v = run(&url, &ca, &args.each_ref().map(String::as_str)).await;
    assert_eq!(v["requests"]["ok"], 30, "{v}");
    assert_eq!(v["handshakes"]["full"], 2, "{v}");

    // The same over another client's certificate, and a wrong secret: every request
    // refused, counted by status (401 after Basic credentials, 400 for the form).
    let args = as_client("client-0001");
    let v = run(&url, &ca, &args.each_ref().map(String::as_str)).await;
    assert_eq!(v["requests"]["ok"], 0, "{v}");
    assert_eq!(v["errors"]["http_status:400"], 30, "{v}");
    let wrong = run(
        &url,
        &ca,
        &["--body", FORM, "--basic-auth", "bench-secret:wrong"],
    )
    .await;
    assert_eq!(wrong["errors"]["http_status:401"], 30, "{wrong}");

    // Without --body the POST is empty: the endpoint refuses it (no grant_type).
    let v = run(&url, &ca, &["--basic-auth", &basic]).await;
    assert_eq!(v["requests"]["ok"], 0, "{v}");
    running.shutdown().await;
}
