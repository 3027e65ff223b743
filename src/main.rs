//! The `portcullis` command line. Parsing only: every command is a library call.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use portcullis::{cli, quickstart, rolesanywhere_client};

/// mimalloc instead of glibc malloc: the keep-alive profile spent ~12 % of the gateway's
/// samples in glibc malloc/free (per-request header maps, bodies, futures); see
/// BENCHMARKS.md, round 2, for the A/B that decided it. Built with `no_thp` (Cargo.toml):
/// with transparent huge pages its arenas cost ~12 KiB more RSS per idle connection.
/// Only the binary sets it, so tests and benches keep the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--version`: the crate version, the git revision and the build profile (build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("PORTCULLIS_GIT_REVISION"),
    ", ",
    env!("PORTCULLIS_BUILD_PROFILE"),
    " build)"
);

#[derive(Parser)]
#[command(
    name = "portcullis",
    version = LONG_VERSION,
    about = "An mTLS gateway for machine-to-machine traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and the material it names; print every problem.
    Check {
        #[arg(long, short, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Generate a demo PKI and config, then run the gateway in front of the built-in echo.
    Quickstart {
        /// Folder for the demo PKI and config (reused if it exists).
        #[arg(long, default_value = quickstart::DEFAULT_DIR)]
        dir: PathBuf,
        /// Gateway listener address (port 0 picks a free port).
        #[arg(long, default_value = quickstart::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Admin listener address (metrics, health).
        #[arg(long, default_value = quickstart::DEFAULT_ADMIN)]
        admin: SocketAddr,
    },
    /// Inspect certificates with the gateway's own verifier.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Manage a small file-based development PKI.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Manage the OAuth2 token service's clients and signing keys.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Manage the session issuer's sealing keys.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Temporary credentials from a certificate (Roles Anywhere CreateSession), printed as
    /// `credential_process` JSON on stdout. In ~/.aws/config:
    /// `credential_process = portcullis credentials --endpoint https://gw:8443 --cert … --key … --trust-anchor … --profile … --role …`
    Credentials(SessionArgs),
    /// Serve temporary credentials to unmodified AWS SDKs as an IMDSv2 endpoint (export
    /// AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/), refreshed in the background.
    Agent {
        #[command(flatten)]
        session: SessionArgs,
        /// Address to serve on (loopback unless --allow-remote).
        #[arg(long, default_value = rolesanywhere_client::agent::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Also serve GET /v1/credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI) to requests whose
        /// Authorization header equals the token in this file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).
        #[arg(long)]
        container_token_file: Option<PathBuf>,
        /// Allow a --listen address off loopback (the credentials go to whoever reaches it).
        #[arg(long)]
        allow_remote: bool,
        /// Refresh when this little time is left on the credentials (≥ 30 min are served).
        #[arg(long, default_value = "35m", value_parser = humantime::parse_duration, hide = true)]
        refresh_before: Duration,
    },
    /// Print a shell completion script, e.g. `portcullis completions bash >
    /// /etc/bash_completion.d/portcullis`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// CreateSession's options, shared by `credentials` and `agent`.
#[derive(clap::Args)]
struct SessionArgs {
    /// Base URL of the gateway (CreateSession goes to <URL>/sessions), e.g. https://gw:8443.
    #[arg(long)]
    endpoint: String,
    /// The certificate (PEM; further certificates in the file are sent as its chain). Also
    /// presented as the TLS client certificate.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM: ECDSA P-256 or RSA; PKCS#8, SEC1 or PKCS#1).
    #[arg(long)]
    key: PathBuf,
    /// Intermediate certificates to send (PEM), in X-Amz-X509-Chain.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/NAME (its region signs the request).
    #[arg(long)]
    trust_anchor: String,
    /// arn:aws:rolesanywhere:REGION:ACCOUNT:profile/NAME.
    #[arg(long)]
    profile: String,
    /// arn:aws:iam::ACCOUNT:role/NAME.
    #[arg(long)]
    role: String,
    /// CA bundle to verify the gateway's certificate (default: the system bundle).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Lifetime asked for, 15m to 12h (the profile may cap it). botocore refreshes 15 min
    /// before expiry, so keep it well above that.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// roleSessionName (the profile must accept it); default: the certificate's serial.
    #[arg(long)]
    session_name: Option<String>,
}

impl SessionArgs {
    fn options(self) -> rolesanywhere_client::Options {
        rolesanywhere_client::Options {
            endpoint: self.endpoint,
            cert: self.cert,
            key: self.key,
            chain: self.chain,
            trust_anchor: self.trust_anchor,
            profile: self.profile,
            role: self.role,
            ca: self.ca,
            duration: self.duration,
            session_name: self.session_name,
        }
    }
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Sealing keys folder.
    #[command(subcommand)]
    Keys(SessionsKeysCommand),
}

#[derive(Subcommand)]
enum SessionsKeysCommand {
    /// Add a new 256-bit sealing key to DIR (mode 0600; DIR created 0700 if missing).
    Rotate { dir: PathBuf },
}

#[derive(Subcommand)]
enum OauthCommand {
    /// Client registry (`clients_file`) entries.
    #[command(subcommand)]
    Client(OauthClientCommand),
    /// Signing keys folder.
    #[command(subcommand)]
    Keys(OauthKeysCommand),
}

#[derive(Subcommand)]
enum OauthClientCommand {
    /// Add a client with a new secret (printed once on stdout; only its hash is written).
    /// Creates FILE if missing.
    Add {
        file: PathBuf,
        client_id: String,
        /// Scopes the client may ask for (repeatable, or several after one --scope).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
        /// Require this client certificate (RFC 8705 tls_client_auth): a URI SAN glob.
        #[arg(long)]
        uri_san: Option<String>,
    },
    /// Give a client a new secret (printed once on stdout).
    RotateSecret { file: PathBuf, client_id: String },
    /// Read an operator-chosen secret on stdin; print its argon2id PHC string.
    Hash,
}

#[derive(Subcommand)]
enum OauthKeysCommand {
    /// Add a new EC P-256 signing key to DIR (created with mode 0700 if missing).
    Rotate { dir: PathBuf },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Run the handshake's verifier on CERT.pem and explain the decision.
    /// Exit 0 accepted, 1 refused, 2 bad input.
    Verify {
        /// Truststore folder (roots/, intermediates/, crls/).
        #[arg(long)]
        truststore: PathBuf,
        /// The client certificate (PEM; further certificates in the file are its chain).
        cert: PathBuf,
        /// Intermediates the client would send (PEM).
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Verify at this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<String>,
        /// Take the revocation and depth settings from this config's [truststore].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a root CA, an intermediate CA and their CRLs in DIR.
    Init { dir: PathBuf },
    /// Issue a certificate (client by default) named NAME, signed by the intermediate.
    Issue {
        dir: PathBuf,
        name: String,
        /// URI SAN, e.g. spiffe://example.test/client/billing (repeatable).
        #[arg(long)]
        spiffe: Vec<String>,
        /// DNS SAN (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// IP SAN (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Issue a server certificate (serverAuth) instead of a client one.
        #[arg(long)]
        server: bool,
        /// Validity in days.
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
    /// Revoke NAME and re-sign the intermediate's CRL.
    Revoke { dir: PathBuf, name: String },
    /// Re-sign both CRLs with a fresh validity window.
    Crl { dir: PathBuf },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Command::Run { config } => cli::run(&config),
        Command::Check { config } => cli::check(&config),
        Command::Quickstart { dir, listen, admin } => quickstart::run(&dir, listen, admin),
        Command::Cert(CertCommand::Verify {
            truststore,
            cert,
            chain,
            at,
            config,
            json,
        }) => portcullis::cert_verify::run(&portcullis::cert_verify::Args {
            truststore,
            cert,
            chain,
            at,
            config,
            json,
        }),
        Command::Pki(cmd) => match cmd {
            PkiCommand::Init { dir } => cli::pki_init(&dir),
            PkiCommand::Issue {
                dir,
                name,
                spiffe,
                dns,
                ip,
                server,
                days,
            } => cli::pki_issue(&dir, &name, spiffe, dns, ip, server, days),
            PkiCommand::Revoke { dir, name } => cli::pki_revoke(&dir, &name),
            PkiCommand::Crl { dir } => cli::pki_crl(&dir),
        },
        Command::Oauth(OauthCommand::Client(c)) => match c {
            OauthClientCommand::Add {
                file,
                client_id,
                scopes,
                uri_san,
            } => cli::oauth_client_add(&file, &client_id, &scopes, uri_san.as_deref()),
            OauthClientCommand::RotateSecret { file, client_id } => {
                cli::oauth_client_rotate(&file, &client_id)
            }
            OauthClientCommand::Hash => cli::oauth_client_hash(),
        },
        Command::Oauth(OauthCommand::Keys(OauthKeysCommand::Rotate { dir })) => {
            cli::oauth_keys_rotate(&dir)
        }
        Command::Sessions(SessionsCommand::Keys(SessionsKeysCommand::Rotate { dir })) => {
            cli::sessions_keys_rotate(&dir)
        }
        Command::Credentials(session) => cli::credentials(&session.options()),
        Command::Agent {
            session,
            listen,
            container_token_file,
            allow_remote,
            refresh_before,
        } => cli::agent(
            &session.options(),
            rolesanywhere_client::agent::AgentOptions {
                listen,
                allow_remote,
                container_token_file,
                refresh_before,
            },
        ),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "portcullis",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}
