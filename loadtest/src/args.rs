//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    version,
    about = "Load-test an HTTPS endpoint with client certificates"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Send load to an https:// URL and report latency, throughput and errors.
    Run(Box<RunArgs>),
    /// Generate a benchmark PKI: root → intermediate → server + N clients, CRLs.
    Pki(PkiArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// N connections kept alive, one request in flight on each.
    KeepAlive,
    /// A new connection (full handshake, no resumption) per request.
    NewConn,
    /// A new connection per request, resuming each identity's TLS session.
    Resume,
    /// Open N connections, send one request on each, then hold them idle until the end.
    Idle,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::NewConn => "new-conn",
            Mode::Resume => "resume",
            Mode::Idle => "idle",
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The target, e.g. https://127.0.0.1:8443/hello
    pub url: String,
    /// PEM file of the CA certificate(s) to trust for the server.
    #[arg(long)]
    pub ca: PathBuf,
    /// Client certificate chain (PEM, leaf first); with --key.
    #[arg(long, requires = "key", conflicts_with = "identities")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// A folder of NAME.pem + NAME.key identities, rotated across connections.
    #[arg(long)]
    pub identities: Option<PathBuf>,
    /// Use at most this many identities of the folder (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_identities: usize,
    /// Name to verify the server certificate against (default: the URL's host).
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::KeepAlive)]
    pub mode: Mode,
    /// Concurrent connections (closed loop: one request in flight on each).
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Open loop: requests per second, latency measured from each intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this long (default 10s when --requests is not given either).
    #[arg(short = 'd', long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Offer only h2 in ALPN (default: only http/1.1).
    #[arg(long)]
    pub http2: bool,
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request body sent with every request (e.g. a form for `POST /oauth2/token`); its
    /// content type is `application/x-www-form-urlencoded` unless `-H 'content-type: …'`.
    #[arg(long, conflicts_with = "sigv4_access_key")]
    pub body: Option<String>,
    /// Extra request header `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Per-request timeout (connect + handshake + response).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// A fixed bearer token.
    #[arg(long, conflicts_with_all = ["token_url", "sigv4_access_key", "basic_auth"])]
    pub bearer: Option<String>,
    /// HTTP Basic credentials `ID:SECRET` on every request, e.g. OAuth2
    /// `client_secret_basic` against a token endpoint (both parts form-encoded, RFC 6749
    /// §2.3.1).
    #[arg(long, env = "LOADTEST_BASIC_AUTH", conflicts_with_all = ["token_url", "sigv4_access_key"])]
    pub basic_auth: Option<String>,
    /// OAuth2 token endpoint for client credentials (refreshed at 80 % of the token's life).
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    pub token_url: Option<String>,
    #[arg(long)]
    pub client_id: Option<String>,
    #[arg(long, env = "LOADTEST_CLIENT_SECRET")]
    pub client_secret: Option<String>,
    #[arg(long)]
    pub scope: Option<String>,
    /// SigV4: access key id (with --sigv4-secret-key).
    #[arg(long, requires = "sigv4_secret_key")]
    pub sigv4_access_key: Option<String>,
    #[arg(long, env = "LOADTEST_SIGV4_SECRET_KEY")]
    pub sigv4_secret_key: Option<String>,
    #[arg(long)]
    pub sigv4_session_token: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    pub sigv4_region: String,
    #[arg(long, default_value = "execute-api")]
    pub sigv4_service: String,
    /// Runtime worker threads of the load client.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latencies as an HdrHistogram interval log (one histogram per second, µs).
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// Write a self-contained HTML report (latency over time, percentile curve).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Fail (exit 99) when more than this share of requests failed, e.g. `1%` or `0.01`.
    #[arg(long, value_parser = crate::verdict::parse_rate)]
    pub max_error_rate: Option<f64>,
    /// Fail (exit 99) when the p99 latency is above this, e.g. `50ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_p99: Option<Duration>,
    /// No progress line.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Clone, Debug)]
pub struct PkiArgs {
    /// Output folder.
    pub dir: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Extra clients, put in DIR/revoked/ and listed in the intermediate's CRL.
    #[arg(long, default_value_t = 1)]
    pub revoked: usize,
    /// DNS names for the server certificate (127.0.0.1 and ::1 are always in it).
    #[arg(long = "server-name", default_values_t = vec!["localhost".to_string()])]
    pub server_names: Vec<String>,
}
