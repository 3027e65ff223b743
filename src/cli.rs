//! What each subcommand does, as library functions (the binary only parses arguments).
//! Each returns the process exit code: 0 success, 1 failure (the reason printed on stderr).

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Config};
use crate::pki::{CertKind, DevPki, IssueOptions};
use crate::server;

/// `portcullis run`: serve until SIGTERM/SIGINT, then drain and exit 0.
pub fn run(path: &Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config.log);
    serve(&config, |_| {})
}

/// The diagnostic log as `[log]` says: `format` JSON or text, by default text only when
/// stderr is a terminal.
pub fn init_logging(log: &config::LogConfig) {
    use std::io::IsTerminal;
    let json = match log.format {
        config::LogFormat::Json => true,
        config::LogFormat::Text => false,
        config::LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    crate::telemetry::init_logging_as(&log.level, json);
}

/// Build a runtime for `config`, start the gateway, call `started` with it, and serve until
/// a signal. Shared by `run` and `quickstart`.
pub fn serve(config: &Config, started: impl FnOnce(&server::Running)) -> ExitCode {
    let rt = match server::runtime::control_runtime(config) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        // Before anything logs "listening": SIGHUP's default action would end the process.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        let running = match server::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cannot start: {}", start_error_place(config, &e));
                return ExitCode::FAILURE;
            }
        };
        started(&running);
        let reloader = running.reloader.clone();
        let hup = tokio::spawn(reload_on_sighup(hup, reloader));
        crate::shutdown::signal().await;
        hup.abort();
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// A start error with the file and line of the config key it comes from, when known
/// (`/etc/portcullis.toml:42: auth.jwt.idp: first JWKS fetch failed: … (from https://…)`).
fn start_error_place(config: &Config, e: &server::StartError) -> String {
    let line = e.config_key(config).and_then(|key| {
        let text = std::fs::read_to_string(&config.source).ok()?;
        config::line_of_key(&text, &key)
    });
    match line {
        Some(line) => format!("{}:{line}: {e}", config.source.display()),
        None => e.to_string(),
    }
}

/// SIGHUP reloads the config, truststore and certificates (the outcome is logged).
async fn reload_on_sighup(
    hup: std::io::Result<tokio::signal::unix::Signal>,
    reloader: std::sync::Arc<crate::reload::Reloader>,
) {
    let Ok(mut hup) = hup else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /reload instead");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = reloader.reload(crate::reload::Trigger::Signal).await;
    }
}

/// `portcullis check`: what `run` would refuse at start, all of it in one run: every
/// config problem with file, line and key, then every problem with the material it names
/// (certificates, keys, truststore, upstream TLS, credentials, issuer keys, clients and
/// state, the access log) and the first fetch of every `jwks_url`, each at its line.
/// Warnings do not fail. Exit 1 on any error.
pub fn check(path: &Path) -> ExitCode {
    let (config, problems) = match config::load_all(path) {
        Ok(c) => c,
        Err(e) => {
            for p in &e.problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", e.problems.len());
            return ExitCode::FAILURE;
        }
    };
    let mut findings = server::validate_all(&config);
    findings.extend(fetch_remote(&config));
    // A value the config already refused (and replaced by its default) is not checked
    // again as material: that would only repeat the problem in other words.
    findings.retain(|f| !problems.iter().any(|p| within(&f.key, &p.key)));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut errors = problems.len();
    for p in &problems {
        eprintln!("{p}");
    }
    for f in findings {
        let message = if f.warning {
            format!("warning: {}", f.message)
        } else {
            errors += 1;
            f.message
        };
        let found = config::ConfigProblem {
            file: path.to_path_buf(),
            line: config::line_of_key(&text, &f.key),
            key: f.key,
            message,
        };
        eprintln!("{found}");
    }
    if errors == 0 {
        println!(
            "{}: OK ({} listener(s), {} upstream(s), {} route(s))",
            config.source.display(),
            config.listeners.len(),
            config.upstreams.len(),
            config.routes.len()
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("{errors} problem(s) found");
        ExitCode::FAILURE
    }
}

/// [`server::check_remote`] on a runtime of its own (the network part of a start).
fn fetch_remote(config: &Config) -> Vec<server::Finding> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(server::check_remote(config)),
        Err(e) => vec![server::Finding {
            key: String::new(),
            message: format!("cannot start a runtime to fetch the JWKS URLs: {e}"),
            warning: false,
        }],
    }
}

/// Whether `key` is `parent` or lies inside it (`listener[0].cert` in `listener[0]`); the
/// file as a whole (an empty key) contains nothing here.
fn within(key: &str, parent: &str) -> bool {
    !parent.is_empty()
        && key
            .strip_prefix(parent)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

pub fn pki_init(dir: &Path) -> ExitCode {
    report(DevPki::init(dir).map(|pki| {
        println!("created a dev PKI in {}", dir.display());
        println!(
            "  truststore for the gateway: {}",
            pki.truststore_dir().display()
        );
        println!(
            "  root CA for clients:        {}",
            pki.root_cert().display()
        );
    }))
}

pub fn pki_issue(
    dir: &Path,
    name: &str,
    spiffe: Vec<String>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    server: bool,
    days: u64,
) -> ExitCode {
    let opts = IssueOptions {
        kind: if server {
            CertKind::Server
        } else {
            CertKind::Client
        },
        spiffe,
        dns,
        ips,
        valid_for: Duration::from_secs(days.saturating_mul(86_400)),
    };
    report(
        DevPki::open(dir)
            .and_then(|mut pki| pki.issue(name, &opts))
            .map(|issued| {
                println!("issued {name} (serial {})", issued.serial);
                println!("  certificate chain: {}", issued.cert.display());
                println!("  private key:       {}", issued.key.display());
            }),
    )
}

pub fn pki_revoke(dir: &Path, name: &str) -> ExitCode {
    report(
        DevPki::open(dir)
            .and_then(|mut pki| pki.revoke(name))
            .map(|()| {
                println!("revoked {name}; the intermediate CRL was re-signed");
            }),
    )
}

pub fn pki_crl(dir: &Path) -> ExitCode {
    report(
        DevPki::open(dir)
            .and_then(|mut pki| pki.refresh_crls())
            .map(|()| {
                println!("re-signed both CRLs");
            }),
    )
}

fn report<E: std::fmt::Display>(r: Result<(), E>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis oauth client add FILE CLIENT_ID --scope S... [--uri-san GLOB]`: the new secret
/// alone on stdout (shown once), everything else on stderr.
pub fn oauth_client_add(
    file: &Path,
    client_id: &str,
    scopes: &[String],
    uri_san: Option<&str>,
) -> ExitCode {
    use crate::issuer::oauth2::registry_edit;
    print_secret(
        registry_edit::add_client(file, client_id, scopes, uri_san),
        &format!("added client {client_id} to {}", file.display()),
    )
}

/// `portcullis oauth client rotate-secret FILE CLIENT_ID`: same output rules as `add`.
pub fn oauth_client_rotate(file: &Path, client_id: &str) -> ExitCode {
    use crate::issuer::oauth2::registry_edit;
    print_secret(
        registry_edit::rotate_secret(file, client_id),
        &format!("new secret for {client_id} in {}; the old one stops working when the gateway reloads the file (within 1 s)", file.display()),
    )
}

fn print_secret(r: Result<String, String>, done: &str) -> ExitCode {
    match r {
        Ok(secret) => {
            eprintln!("{done}");
            eprintln!("the client secret follows on stdout; it is shown only this once (only its hash is stored):");
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis oauth client hash`: an operator-chosen secret on stdin (one line) → an
/// argon2id PHC string on stdout, for `secret_hash`.
pub fn oauth_client_hash() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let secret = line.strip_suffix('\n').unwrap_or(&line);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        eprintln!("error: give the secret on stdin, e.g. `read -rs S; printf '%s\\n' \"$S\" | portcullis oauth client hash`");
        return ExitCode::FAILURE;
    }
    match crate::issuer::oauth2::registry_edit::argon2_hash(secret) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis sessions keys rotate DIR`: add a new sealing key (it seals new sessions
/// from the next reload, within 1 s); older keys keep opening the sessions they sealed.
pub fn sessions_keys_rotate(dir: &Path) -> ExitCode {
    report(crate::issuer::sessions::keys::generate(dir).map(|path| {
        eprintln!(
            "added sealing key {}; it seals new sessions from now on",
            path.display()
        );
        eprintln!("keep the older keys until the last session they sealed has expired");
    }))
}

/// `portcullis oauth keys rotate DIR`: add a new EC P-256 signing key (it signs from the
/// next reload, within 1 s); old keys stay published until removed by hand.
pub fn oauth_keys_rotate(dir: &Path) -> ExitCode {
    report(crate::issuer::keys::generate(dir).map(|path| {
        eprintln!(
            "added signing key {}; it signs new tokens from now on",
            path.display()
        );
        eprintln!("keep the older keys until the last token they signed has expired");
    }))
}

/// `portcullis credentials`: one CreateSession, then the `credential_process` JSON alone
/// on stdout; every other word on stderr; exit 1 with the reason (the endpoint's
/// `x-amzn-ErrorType` and message when it refused).
pub fn credentials(opts: &crate::rolesanywhere_client::Options) -> ExitCode {
    use crate::rolesanywhere_client::Client;
    crate::telemetry::init_logging_as("warn", false);
    let client = match Client::new(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| {
            rt.block_on(client.create_session())
                .map_err(|e| e.to_string())
        });
    match fetched {
        Ok(c) => {
            println!("{}", c.process_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis agent`: credentials first, then IMDSv2 (and the container endpoint) on
/// `--listen` until SIGTERM/SIGINT; exit 1 when it cannot start.
pub fn agent(
    opts: &crate::rolesanywhere_client::Options,
    agent: crate::rolesanywhere_client::agent::AgentOptions,
) -> ExitCode {
    use crate::rolesanywhere_client::{agent, Client};
    crate::telemetry::init_logging_as("info", false);
    let started = Client::new(opts)
        .map_err(|e| e.to_string())
        .and_then(|client| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
                .and_then(|rt| rt.block_on(agent::run(client, agent)))
        });
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
