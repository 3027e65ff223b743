//! `[[truststore.crl_fetch]]`: CRLs fetched from their distribution points in the background.
//!
//! Each URL is fetched once at start (before the first truststore is built, so a gateway that
//! relies on fetched CRLs does not begin by refusing everyone) and then every `interval`,
//! conditionally (`If-None-Match` / `If-Modified-Since`), and early when the CRL in use
//! reaches its nextUpdate before the next scheduled fetch. A fetched CRL is kept only if
//!
//! - it parses (DER, or one PEM `X509 CRL` block),
//! - its issuer is a CA in the truststore and the signature verifies with that CA's key,
//!   and it meets the RFC 5280 CRL profile (the same checks as a CRL file, see
//!   [`Truststore::check_fetched_crl`]),
//! - its thisUpdate is not older than the CRL it replaces: plain http is unauthenticated,
//!   and an older, validly signed CRL that predates a revocation is exactly what a replay
//!   would serve.
//!
//! Anything else is refused, logged and counted, and the last good CRL stays in use — until
//! its nextUpdate, after which `expired_crl` decides, as for a file. A kept CRL wakes the
//! reload loop ([`super::watch`]), which builds a new truststore generation with it; open
//! connections then re-check their identity before their next request, exactly as after a
//! new CRL file.
//!
//! `portcullis_crl_fetch_total{url,result}` counts every attempt (`updated`,
//! `not_modified` (304), `unchanged` (200 with the bytes already in use), `invalid`,
//! `failed`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::config::defaults as d;
use crate::config::CrlFetchConfig;
use crate::fetch::{Backoff, Fetched, Fetcher, Limits, Validators};
use crate::material::pem_error;
use crate::shutdown::stopped;
use crate::state::Shared;
use crate::telemetry::metrics as m;
use crate::tls::{FetchedCrl, Truststore};

/// The first retry after a failed or refused fetch (doubling up to `interval`).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The last good CRL of each URL, shared by the fetch tasks and every truststore build.
#[derive(Default)]
pub struct CrlStore {
    held: Mutex<HashMap<String, Held>>,
    changed: Notify,
    tasks: Mutex<HashMap<String, (CrlFetchConfig, AbortHandle)>>,
}

struct Held {
    der: CertificateRevocationListDer<'static>,
    this_update: SystemTime,
    next_update: Option<SystemTime>,
    validators: Validators,
}

/// The outcome of one fetch; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Updated,
    NotModified,
    Unchanged,
    Invalid,
    Failed,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Updated => "updated",
            Outcome::NotModified => "not_modified",
            Outcome::Unchanged => "unchanged",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
        }
    }
}

impl CrlStore {
    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CRLs to build a truststore with: those of the URLs `sources` lists.
    pub fn for_config(&self, sources: &[CrlFetchConfig]) -> Vec<FetchedCrl> {
        let held = self.lock_held();
        sources
            .iter()
            .filter_map(|s| {
                held.get(&s.url).map(|h| FetchedCrl {
                    url: s.url.clone(),
                    der: h.der.clone(),
                })
            })
            .collect()
    }

    /// Resolves when a background fetch kept a new CRL since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Fetch `source` once, checked against `truststore`; keep the CRL if it is good.
    pub async fn fetch_once(&self, source: &CrlFetchConfig, truststore: &Truststore) -> Outcome {
        let url = source.url.as_str();
        let outcome = self.fetch_inner(source, truststore).await;
        metrics::counter!(m::CRL_FETCH_TOTAL, "url" => url.to_owned(), "result" => outcome.label())
            .increment(1);
        if matches!(
            outcome,
            Outcome::Updated | Outcome::NotModified | Outcome::Unchanged
        ) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!(m::CRL_FETCH_LAST_SUCCESS_TIMESTAMP_SECONDS, "url" => url.to_owned())
                .set(now);
        }
        outcome
    }

    async fn fetch_inner(&self, source: &CrlFetchConfig, truststore: &Truststore) -> Outcome {
        let url = source.url.as_str();
        let limits = Limits {
            accept: "application/pkix-crl, application/x-pkcs7-crl;q=0.5, */*;q=0.1",
            timeout: source.timeout,
            max_size: d::CRL_FETCH_MAX_SIZE,
        };
        let fetcher = match Fetcher::new(url, None, limits) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(url, error = %e, "CRL fetch: unusable URL");
                return Outcome::Failed;
            }
        };
        let prev = self
            .lock_held()
            .get(url)
            .map(|h| h.validators.clone())
            .unwrap_or_default();
        let (body, validators) = match fetcher.fetch(&prev).await {
            Ok(Fetched::NotModified) => return Outcome::NotModified,
            Ok(Fetched::Updated(body, v)) => (body, v),
            Err(e) => {
                tracing::warn!(url, error = %e, "CRL fetch failed; the last good CRL stays in use");
                return Outcome::Failed;
            }
        };
        let der = match decode(&body) {
            Ok(der) => der,
            Err(why) => {
                tracing::warn!(url, reason = %why, "fetched CRL refused; the last good CRL stays in use");
                return Outcome::Invalid;
            }
        };
        let info = match truststore.check_fetched_crl(url, &der) {
            Ok(info) => info,
            Err(why) => {
                tracing::warn!(url, reason = %why, "fetched CRL refused; the last good CRL stays in use");
                return Outcome::Invalid;
            }
        };
        let mut held = self.lock_held();
        if let Some(h) = held.get_mut(url) {
            if h.der == der {
                h.validators = validators;
                return Outcome::Unchanged;
            }
            if info.this_update < h.this_update {
                tracing::warn!(
                    url,
                    issuer = %info.issuer,
                    fetched_this_update = %humantime::format_rfc3339(info.this_update),
                    in_use_this_update = %humantime::format_rfc3339(h.this_update),
                    "fetched CRL refused: older than the CRL in use (a replay or a stale mirror); \
                     the last good CRL stays in use"
                );
                return Outcome::Invalid;
            }
        }
        tracing::info!(url, issuer = %info.issuer, revoked = info.revoked,
            this_update = %humantime::format_rfc3339(info.this_update), "fetched a new CRL");
        held.insert(
            url.to_owned(),
            Held {
                der,
                this_update: info.this_update,
                next_update: info.next_update,
                validators,
            },
        );
        Outcome::Updated
    }

    /// Fetch every source once, concurrently (at start, before the first truststore).
    pub async fn fetch_all(
        self: &Arc<Self>,
        sources: &[CrlFetchConfig],
        truststore: Arc<Truststore>,
    ) {
        let mut tasks = Vec::with_capacity(sources.len());
        for s in sources {
            let (store, s, ts) = (self.clone(), s.clone(), truststore.clone());
            tasks.push(tokio::spawn(async move {
                store.fetch_once(&s, &ts).await;
            }));
        }
        // No wake-up for the reload loop: the start builds its first truststore with these.
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Run one fetch task per source of `sources`: start the new ones (first fetch after
    /// `first`, or after the source's interval), stop those no longer listed or changed,
    /// keep the others.
    pub fn reconcile(
        self: &Arc<Self>,
        sources: &[CrlFetchConfig],
        shared: &Arc<Shared>,
        shutdown: &watch::Receiver<bool>,
        first: Option<Duration>,
    ) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|url, (cfg, handle)| {
            let keep = sources.contains(cfg);
            if !keep {
                handle.abort();
                tracing::info!(url, "CRL fetch stopped");
            }
            keep
        });
        self.lock_held()
            .retain(|url, _| sources.iter().any(|s| &s.url == url));
        for s in sources {
            if tasks.contains_key(&s.url) {
                continue;
            }
            let handle = tokio::spawn(run(
                self.clone(),
                s.clone(),
                shared.clone(),
                shutdown.clone(),
                first.unwrap_or(s.interval),
            ));
            tracing::info!(url = %s.url, interval = %humantime::format_duration(s.interval), "CRL fetch started");
            tasks.insert(s.url.clone(), (s.clone(), handle.abort_handle()));
        }
    }

    fn next_update(&self, url: &str) -> Option<SystemTime> {
        self.lock_held().get(url).and_then(|h| h.next_update)
    }
}

async fn run(
    store: Arc<CrlStore>,
    source: CrlFetchConfig,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    first: Duration,
) {
    let mut delay = first;
    let mut backoff = Backoff::new(FIRST_RETRY, source.interval);
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let truststore = shared.trust.load().truststore.clone();
        let outcome = store.fetch_once(&source, &truststore).await;
        if outcome == Outcome::Updated {
            // The reload loop builds the generation that uses it.
            store.changed.notify_one();
        }
        delay = backoff.next(!matches!(outcome, Outcome::Failed | Outcome::Invalid));
        // A CA publishes its next CRL by the current one's nextUpdate: look then.
        if let Some(left) = store
            .next_update(&source.url)
            .and_then(|n| n.duration_since(SystemTime::now()).ok())
        {
            delay = delay.min(left + FIRST_RETRY);
        }
    }
}

/// A fetched body: one DER CRL, or exactly one PEM `X509 CRL` block.
fn decode(body: &[u8]) -> Result<CertificateRevocationListDer<'static>, String> {
    if body.is_empty() {
        return Err("the body is empty".into());
    }
    if body.first() == Some(&0x30) {
        return Ok(CertificateRevocationListDer::from(body.to_vec()));
    }
    let mut blocks = CertificateRevocationListDer::pem_slice_iter(body);
    match (blocks.next(), blocks.next()) {
        (Some(Ok(der)), None) => Ok(der),
        (Some(Err(e)), _) => Err(format!("bad PEM: {}", pem_error(&e))),
        (Some(Ok(_)), Some(_)) => Err("more than one CRL in the body".into()),
        (None, _) => Err("neither a DER CRL nor a PEM X509 CRL block".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decode_forms() {
        assert!(decode(b"").unwrap_err().contains("empty"));
        assert!(decode(b"<html>oops</html>")
            .unwrap_err()
            .contains("neither a DER CRL"));
        assert_eq!(decode(&[0x30, 0x00]).unwrap().as_ref(), &[0x30, 0x00]);
        let pem = "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n";
        assert_eq!(decode(pem.as_bytes()).unwrap().as_ref(), &[0x30, 0x00]);
        let two = format!("{pem}{pem}");
        assert!(decode(two.as_bytes())
            .unwrap_err()
            .contains("more than one"));
    }
}
