//! The running state every request reads: the routing [`Snapshot`] and the truststore
//! generation ([`TrustState`]), each immutable and swapped whole behind an `ArcSwap` in
//! [`Shared`], and the functions that build them from a [`Config`].
//!
//! A ground floor for the serving side: `proxy` reads it, `reload` builds and swaps it,
//! `admin` reports it and `server` creates it at start; nothing here uses any of them.

pub mod trust;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::access_log::AccessLogger;
use crate::auth::{self, sigv4::FileCredentials, sigv4::Verifier};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::issuer::oauth2::{Issuer, IssuerStartError};
use crate::issuer::sessions::{Sessions, SessionsStartError};
use crate::route::Router;
use crate::tls;
use crate::upstream::{Upstream, UpstreamBuildError};

pub use trust::{build_trust, Fixed, TrustState};

/// Everything a request needs that comes from configuration: immutable, swapped whole.
#[derive(Debug)]
pub struct Snapshot {
    pub router: Router,
    /// `[auth.jwt.*]` providers (their key sets refresh on their own).
    pub jwt: Arc<auth::jwt::Providers>,
    /// The `[auth.sigv4]` verifier, when configured.
    pub sigv4: Option<Arc<Verifier>>,
    /// The credentials file behind it, polled for changes by the server.
    pub sigv4_credentials: Option<Arc<FileCredentials>>,
    /// `[issuer.oauth2]`, started with the gateway (its keys and registry reload on their own).
    pub issuer: Option<Arc<Issuer>>,
    /// `[issuer.sessions]`, started with the gateway (its sealing keys reload on their own).
    pub sessions: Option<Arc<Sessions>>,
}

/// State shared by every connection of a running gateway.
#[derive(Debug)]
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// The truststore generation serving now (swapped by `reload`).
    pub trust: ArcSwap<TrustState>,
    pub access_log: AccessLogger,
}

/// Why a gateway could not start, or a generation could not be built. Each names the
/// piece of configuration at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The source names the folder (or file) already.
    #[error("{source}")]
    Truststore {
        dir: String,
        source: tls::TruststoreError,
    },
    #[error("listener {address}: {source}")]
    Tls {
        address: SocketAddr,
        source: tls::TlsError,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamBuildError),
    #[error("routes: {0}")]
    Routes(String),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Jwt(#[from] auth::jwt::JwtStartError),
    #[error("auth.sigv4.credentials_file: {0}")]
    Sigv4Credentials(String),
    #[error("access log: {0}")]
    AccessLog(std::io::Error),
    #[error(transparent)]
    Issuer(#[from] IssuerStartError),
    #[error(transparent)]
    Sessions(#[from] SessionsStartError),
    #[error("cannot start the per-core runtimes: {0}")]
    Runtime(std::io::Error),
    /// The message starts with the key (`cluster.tls.ca: ...`).
    #[error("{0}")]
    Cluster(String),
}

impl StartError {
    /// The config key the error comes from, for its line in the file.
    pub fn config_key(&self, config: &Config) -> Option<String> {
        let listener = |address: &SocketAddr| {
            let i = config
                .listeners
                .iter()
                .position(|l| l.address == *address)?;
            Some(format!("listener[{i}]"))
        };
        match self {
            StartError::Truststore { .. } => Some("truststore.dir".into()),
            StartError::Tls { address, .. } => listener(address),
            StartError::Upstream(e) => {
                let i = config.upstreams.iter().position(|u| u.name == e.name)?;
                Some(format!("upstream[{i}]"))
            }
            StartError::Routes(_) => Some("route".into()),
            StartError::Bind { address, .. } => listener(address).or_else(|| {
                let admin = config.admin.as_ref()?;
                (admin.address == *address).then(|| "admin.address".into())
            }),
            StartError::Jwt(e) => {
                let j = config.jwt.iter().find(|j| j.name == e.name)?;
                Some(j.source_key())
            }
            StartError::Sigv4Credentials(_) => Some("auth.sigv4.credentials_file".into()),
            StartError::AccessLog(_) => Some("log.access_log".into()),
            StartError::Issuer(_) => Some("issuer.oauth2".into()),
            StartError::Sessions(_) => Some("issuer.sessions".into()),
            StartError::Runtime(_) => Some("runtime.mode".into()),
            StartError::Cluster(m) => Some(m.split(':').next().unwrap_or("cluster").to_owned()),
        }
    }
}

/// Routes and upstreams, built from the config (no I/O but upstream TLS material).
pub fn build_snapshot(config: &Config) -> Result<Snapshot, StartError> {
    let mut upstreams = HashMap::new();
    for u in &config.upstreams {
        upstreams.insert(u.name.clone(), Arc::new(Upstream::from_config(u)?));
    }
    let router = Router::new(&config.routes, |name| upstreams.get(name).cloned())
        .map_err(StartError::Routes)?;
    let sigv4 = match &config.sigv4 {
        Some(c) => {
            let creds = Arc::new(match &c.credentials_file {
                Some(f) => FileCredentials::load(f).map_err(StartError::Sigv4Credentials)?,
                None => FileCredentials::empty(),
            });
            Some((Arc::new(Verifier::new(c, creds.clone())), creds))
        }
        None => None,
    };
    Ok(Snapshot {
        router,
        jwt: Arc::default(),
        sigv4: sigv4.as_ref().map(|(v, _)| v.clone()),
        sigv4_credentials: sigv4.map(|(_, c)| c),
        issuer: None,
        sessions: None,
    })
}

/// The `[cluster]` link, when configured (not connected yet: [`Cluster::start`]).
pub fn cluster(config: &Config) -> Result<Option<Arc<Cluster>>, StartError> {
    config
        .cluster
        .as_ref()
        .map(Cluster::new)
        .transpose()
        .map_err(StartError::Cluster)
}

/// Start `[issuer.oauth2]` when configured: its keys and registry watchers run until
/// `shutdown`; its audit lines go to the access-log sink (or, with the access log off, to
/// the `portcullis::audit` tracing target); with `[cluster]` its revocations and limits
/// are the fleet's.
pub fn start_issuer(
    config: &Config,
    access_log: &AccessLogger,
    shutdown: tokio::sync::watch::Receiver<bool>,
    cluster: Option<&Arc<Cluster>>,
) -> Result<Option<Arc<Issuer>>, StartError> {
    let Some(cfg) = &config.oauth2 else {
        return Ok(None);
    };
    let issuer = Issuer::start(cfg, shutdown)?;
    if let Some(c) = cluster {
        issuer.join(c);
    }
    if access_log.is_on() {
        let log = access_log.clone();
        issuer.set_audit_sink(Box::new(move |line| log.write_line(line)));
    }
    Ok(Some(issuer))
}

/// Start `[issuer.sessions]` when configured: its sealing-keys watcher runs until
/// `shutdown`; its audit lines go where the OAuth2 issuer's go; with `[cluster]` its
/// revocations are the fleet's.
pub fn start_sessions(
    config: &Config,
    access_log: &AccessLogger,
    shutdown: tokio::sync::watch::Receiver<bool>,
    cluster: Option<&Arc<Cluster>>,
) -> Result<Option<Arc<Sessions>>, StartError> {
    let Some(cfg) = &config.sessions else {
        return Ok(None);
    };
    let sessions = Sessions::start(cfg, shutdown)?;
    if let Some(c) = cluster {
        sessions.revocations.join(c);
    }
    if access_log.is_on() {
        let log = access_log.clone();
        sessions.set_audit_sink(Box::new(move |line| log.write_line(line)));
    }
    Ok(Some(sessions))
}
