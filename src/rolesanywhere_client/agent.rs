//! `portcullis agent`: fetch credentials first, then listen; answer every request from
//! memory ([`super::imds`]); refresh in the background so what is served always has at
//! least 30 min left (botocore's default chain shortens IMDS credentials that have fewer
//! than 17–25 min left); while the endpoint cannot be reached, keep serving the current
//! ones and say so on stderr, retrying with a doubling backoff.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::imds::{Imds, Served};
use super::{Client, ClientError, Credentials};
use crate::fetch::Backoff;
use crate::material::{read_text_bounded, MAX_FILE_SIZE};

/// Refresh when this little is left: 30 min served at least, and 5 min for retries.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(35 * 60);
/// The address botocore's own tooling and the Go helper use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// A request head larger than this is refused by hyper (431).
const MAX_HEAD: usize = 16 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a failed fetch: 1 s, doubling, at most 60 s apart.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The agent's own options (the CreateSession ones are [`super::Options`]).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub listen: SocketAddr,
    /// Listening off loopback serves credentials to the network: only when asked.
    pub allow_remote: bool,
    pub container_token_file: Option<PathBuf>,
    pub refresh_before: Duration,
}

/// Run until SIGTERM/SIGINT. An error is returned only before listening.
pub async fn run(client: Client, opts: AgentOptions) -> Result<(), String> {
    if !opts.listen.ip().is_loopback() && !opts.allow_remote {
        return Err(format!(
            "--listen {} is not a loopback address: anyone who reaches it gets the credentials (add --allow-remote if that is meant)",
            opts.listen
        ));
    }
    let container_token = match &opts.container_token_file {
        None => None,
        Some(path) => Some(read_token(path)?),
    };
    let first = first_fetch(&client).await?;
    let current = Arc::new(ArcSwap::from_pointee(Served {
        credentials: first,
        fetched: OffsetDateTime::now_utc(),
    }));
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        "serving IMDSv2 for role {} on http://{addr}/ (export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{addr}/){}",
        client.role_name(),
        if container_token.is_some() {
            format!("; container credentials at http://{addr}/v1/credentials")
        } else {
            String::new()
        }
    );
    let imds = Arc::new(Imds::new(
        current.clone(),
        client.role_name().to_owned(),
        container_token,
    ));
    let refresher = tokio::spawn(refresh(client, current, opts.refresh_before));
    tokio::select! {
        _ = serve(listener, imds) => {}
        _ = crate::shutdown::signal() => tracing::info!("stopping"),
    }
    refresher.abort();
    Ok(())
}

fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = read_text_bounded(path, MAX_FILE_SIZE.min(64 * 1024))
        .map_err(|e| format!("--container-token-file {}: {e}", path.display()))?;
    let token = text.trim().to_owned();
    if token.is_empty() || token.contains(['\r', '\n']) {
        return Err(format!(
            "--container-token-file {}: expected one line holding the token",
            path.display()
        ));
    }
    Ok(token)
}

/// The first credentials: retried while the endpoint is down; a refusal ends the agent
/// (its options are wrong, and retrying would not change the answer).
async fn first_fetch(client: &Client) -> Result<Credentials, String> {
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    loop {
        match client.create_session().await {
            Ok(c) => {
                tracing::info!(access_key_id = %c.access_key_id, expiration = %super::output::aws_time(c.expiration), "credentials fetched");
                return Ok(c);
            }
            Err(e) if e.transient() => {
                let wait = backoff.next(false);
                tracing::warn!("no credentials yet: {e}; retrying in {}s", wait.as_secs());
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// When to refresh credentials fetched at `now`: `refresh_before` ahead of their expiry;
/// when they are shorter-lived than that, a quarter of their life from now (the gateway
/// caps the duration; asking again at once would only get the same).
fn next_refresh(c: &Credentials, now: OffsetDateTime, refresh_before: Duration) -> Duration {
    let left: Duration = (c.expiration - now).try_into().unwrap_or(Duration::ZERO);
    match left.checked_sub(refresh_before) {
        Some(wait) if !wait.is_zero() => wait,
        _ => {
            tracing::warn!(
                "the credentials have only {}s left (under --refresh-before {}s): the endpoint grants less than asked",
                left.as_secs(),
                refresh_before.as_secs()
            );
            (left / 4).max(RETRY_FIRST)
        }
    }
}

async fn refresh(client: Client, current: Arc<ArcSwap<Served>>, refresh_before: Duration) {
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut wait = next_refresh(
        &current.load().credentials,
        OffsetDateTime::now_utc(),
        refresh_before,
    );
    let mut failing = false;
    loop {
        tokio::time::sleep(wait).await;
        match client.create_session().await {
            Ok(c) => {
                let now = OffsetDateTime::now_utc();
                if failing {
                    tracing::info!("{} reachable again", client.endpoint());
                    failing = false;
                }
                tracing::info!(access_key_id = %c.access_key_id, expiration = %super::output::aws_time(c.expiration), "credentials refreshed");
                wait = next_refresh(&c, now, refresh_before);
                backoff.next(true);
                current.store(Arc::new(Served {
                    credentials: c,
                    fetched: now,
                }));
            }
            Err(e) => {
                failing = true;
                wait = backoff.next(false);
                let served = current.load();
                let left = served.credentials.expiration - OffsetDateTime::now_utc();
                if left.is_positive() {
                    tracing::warn!(
                        "cannot refresh the credentials: {e}; still serving the current ones ({} min left); retrying in {}s",
                        left.whole_minutes(),
                        wait.as_secs()
                    );
                } else {
                    tracing::error!(
                        "cannot refresh the credentials: {e}; the ones served EXPIRED at {}; retrying in {}s",
                        super::output::aws_time(served.credentials.expiration),
                        wait.as_secs()
                    );
                }
                if let ClientError::Refused { .. } = e {
                    tracing::warn!("the endpoint refuses: the certificate may be revoked or no longer allowed the role");
                }
            }
        }
    }
}

async fn serve(listener: TcpListener, imds: Arc<Imds>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let imds = imds.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let resp = imds.handle(&req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(left: Duration, now: OffsetDateTime) -> Credentials {
        Credentials {
            access_key_id: "ASIA".into(),
            secret_access_key: String::new(),
            session_token: String::new(),
            expiration: now + left,
        }
    }

    #[test]
    fn refresh_keeps_thirty_minutes_and_does_not_spin_on_short_credentials() {
        let now = OffsetDateTime::now_utc();
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(
            next_refresh(&creds(m(60), now), now, DEFAULT_REFRESH_BEFORE),
            m(25)
        );
        assert_eq!(
            next_refresh(&creds(m(720), now), now, DEFAULT_REFRESH_BEFORE),
            m(685)
        );
        // 20 min granted: refresh in 5, not in a loop.
        assert_eq!(
            next_refresh(&creds(m(20), now), now, DEFAULT_REFRESH_BEFORE),
            m(5)
        );
        assert_eq!(
            next_refresh(&creds(Duration::ZERO, now), now, DEFAULT_REFRESH_BEFORE),
            RETRY_FIRST
        );
    }
}
