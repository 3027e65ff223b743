//! Hot reload: the config file, the truststore folder and the listeners' certificates are
//! read again, everything is built anew off the hot path, and the result is swapped in at
//! once (build, then swap; keep the last good).
//!
//! Triggers ([`Trigger`]): `POST /reload` on the admin listener, SIGHUP, a file watcher
//! (debounced) and a poller that compares file contents (the fallback for filesystems that
//! miss events); see [`watch`]. A CRL fetched from a URL ([`crl_fetch`]) rebuilds only the
//! truststore generation ([`Reloader::refresh_trust`]). Reloads are serialised. A failed
//! build changes nothing: the reasons are logged and returned, and
//! `portcullis_reload_total{result="failure"}` counts it.
//!
//! What a successful reload swaps: the [`TrustState`] (truststore generation, verifiers,
//! per-listener TLS acceptors with the new server certificate) and the routing
//! [`Snapshot`]. New connections use them at once; requests in flight finish on the old
//! ones; open connections re-check their identity before their next request
//! ([`crate::proxy::recheck`]). Listener and admin addresses, worker counts, the access log,
//! `[reload]` and `[identity_cache]` are fixed at start: a change is reported as needing a
//! restart (`restart_required`, by key, against the config the process started with, so
//! every later reload reports it again until a restart) and the rest of the reload applies.

pub mod crl_fetch;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use crate::config::{self, Config};
use crate::state::{build_snapshot, build_trust, Fixed, Shared, Snapshot, TrustState};
use crate::telemetry::metrics as m;
use crate::tls::{FetchedCrl, Truststore};

use self::crl_fetch::CrlStore;

/// What set a reload off; the `kind` label of `portcullis_reload_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Signal,
    Watch,
    Poll,
    /// A `[[truststore.crl_fetch]]` URL served a new, valid CRL.
    CrlFetch,
}

impl Trigger {
    /// Every trigger, for the counters registered at 0 when the reloader starts.
    pub const ALL: [Trigger; 5] = [
        Trigger::Api,
        Trigger::Signal,
        Trigger::Watch,
        Trigger::Poll,
        Trigger::CrlFetch,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Signal => "signal",
            Trigger::Watch => "watch",
            Trigger::Poll => "poll",
            Trigger::CrlFetch => "crl_fetch",
        }
    }
}

/// A successful reload.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub generation: u64,
    /// Changed settings that only a restart applies (the rest of the reload applied).
    pub restart_required: Vec<String>,
}

/// A refused reload: nothing changed.
#[derive(Debug, Clone)]
pub struct ReloadFailed {
    pub reasons: Vec<String>,
    /// The generation still serving.
    pub generation: u64,
}

struct Loaded {
    config: Config,
    generation: u64,
    /// Fingerprint of the files at the last attempt (success or not): the watcher and the
    /// poller reload only when it changes, so a broken file is not retried in a loop.
    seen: Option<[u8; 32]>,
}

/// Reloads the running gateway; shared by the admin endpoint, the signal handler and the
/// watcher.
pub struct Reloader {
    shared: Arc<Shared>,
    fixed: Fixed,
    /// The last good CRL of each `[[truststore.crl_fetch]]` URL.
    crls: Arc<CrlStore>,
    loaded: Mutex<Loaded>,
    /// The config the process started with: what the settings fixed at start (addresses,
    /// workers, limits, log, providers) still run on. `restart_required` compares the
    /// file with this, not with the last reload, so every reload keeps reporting a change
    /// that has not taken effect.
    started: Arc<Config>,
    /// For the CRL fetch tasks the reloader starts and stops.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Reloader {
    /// Also starts the `[[truststore.crl_fetch]]` tasks (their first fetch was done at start).
    pub fn new(
        shared: Arc<Shared>,
        fixed: Fixed,
        crls: Arc<CrlStore>,
        config: Config,
        generation: u64,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let seen = Some(watch::fingerprint(&config));
        // Present at 0 from the start, so an alert on failures sees the series before one.
        for trigger in Trigger::ALL {
            for result in ["success", "failure"] {
                metrics::counter!(m::RELOAD_TOTAL, "kind" => trigger.label(), "result" => result)
                    .increment(0);
            }
        }
        crls.reconcile(&config.truststore.crl_fetch, &shared, &shutdown, None);
        Reloader {
            shared,
            fixed,
            crls,
            started: Arc::new(config.clone()),
            loaded: Mutex::new(Loaded {
                config,
                generation,
                seen,
            }),
            shutdown,
        }
    }

    /// The fetched CRLs (the reload loop waits on [`CrlStore::changed`]).
    pub fn crl_store(&self) -> &Arc<CrlStore> {
        &self.crls
    }

    /// A new truststore generation from the config in use, the truststore folder and the
    /// fetched CRLs; the routing snapshot stays. Used when a fetched CRL changed, so that
    /// revocation does not wait for (or depend on) the config file being valid.
    pub async fn refresh_trust(&self, trigger: Trigger) -> Result<Reloaded, ReloadFailed> {
        let mut loaded = self.loaded.lock().await;
        let config = loaded.config.clone();
        let generation = loaded.generation + 1;
        let fixed = self.fixed.clone();
        let fetched = self.crls.for_config(&config.truststore.crl_fetch);
        let built =
            tokio::task::spawn_blocking(move || build_trust(&config, generation, &fixed, &fetched))
                .await
                .map_err(|e| format!("reload task failed: {e}"))
                .and_then(|r| r.map_err(|e| e.to_string()));
        match built {
            Ok(trust) => {
                // Expiry warnings are left to the poller (hourly): a CRL fetched every
                // minute would repeat them every minute.
                hygiene(
                    &trust.truststore,
                    loaded.config.reload.expiry_warning,
                    false,
                );
                self.shared.trust.store(Arc::new(trust));
                loaded.generation = generation;
                count(trigger, "success");
                metrics::gauge!(m::TRUSTSTORE_GENERATION).set(generation as f64);
                tracing::info!(generation, kind = trigger.label(), "truststore rebuilt");
                Ok(Reloaded {
                    generation,
                    restart_required: Vec::new(),
                })
            }
            Err(reason) => {
                count(trigger, "failure");
                tracing::error!(kind = trigger.label(), reason = %reason,
                    generation = loaded.generation, "truststore rebuild refused; the previous state keeps serving");
                Err(ReloadFailed {
                    reasons: vec![reason],
                    generation: loaded.generation,
                })
            }
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Settings the watcher runs with, and the config it watches.
    pub async fn config(&self) -> Config {
        self.loaded.lock().await.config.clone()
    }

    /// Reload now, whatever changed.
    pub async fn reload(&self, trigger: Trigger) -> Result<Reloaded, ReloadFailed> {
        let mut loaded = self.loaded.lock().await;
        self.reload_locked(&mut loaded, trigger).await
    }

    /// Reload if the files differ from the last attempt; `None` when nothing changed.
    pub async fn reload_if_changed(
        &self,
        trigger: Trigger,
    ) -> Option<Result<Reloaded, ReloadFailed>> {
        let mut loaded = self.loaded.lock().await;
        let config = loaded.config.clone();
        let fp = tokio::task::spawn_blocking(move || watch::fingerprint(&config))
            .await
            .ok()?;
        if loaded.seen == Some(fp) {
            return None;
        }
        Some(self.reload_locked(&mut loaded, trigger).await)
    }

    async fn reload_locked(
        &self,
        loaded: &mut Loaded,
        trigger: Trigger,
    ) -> Result<Reloaded, ReloadFailed> {
        let old = loaded.config.clone();
        let started = self.started.clone();
        let generation = loaded.generation + 1;
        let fixed = self.fixed.clone();
        let crls = self.crls.clone();
        let built = tokio::task::spawn_blocking(move || {
            build_all(&old, &started, generation, &fixed, &crls)
        })
        .await
        .unwrap_or_else(|e| Built {
            fingerprint: None,
            result: Err(vec![format!("reload task failed: {e}")]),
        });
        if built.fingerprint.is_some() {
            loaded.seen = built.fingerprint;
        }
        match built.result {
            Ok((config, trust, snapshot, restart_required)) => {
                let window = config.reload.expiry_warning;
                hygiene(&trust.truststore, window, true);
                self.shared.trust.store(Arc::new(trust));
                let mut snapshot = snapshot;
                // JWT providers run their own JWKS refresh tasks, started once with the
                // gateway; a reload keeps them (a changed [auth.jwt] needs a restart).
                let old = self.shared.snapshot.load();
                snapshot.jwt = old.jwt.clone();
                // The issuer too (its keys and registry reload on their own; a changed
                // [issuer.oauth2] needs a restart).
                snapshot.issuer.clone_from(&old.issuer);
                snapshot.sessions.clone_from(&old.sessions);
                // Likewise the SigV4 credentials, watched by a task started with the gateway
                // (the file itself hot-reloads; a changed [auth.sigv4] needs a restart).
                snapshot.sigv4.clone_from(&old.sigv4);
                snapshot
                    .sigv4_credentials
                    .clone_from(&old.sigv4_credentials);
                self.shared.snapshot.store(Arc::new(snapshot));
                // Sources added by this reload are fetched now (their CRL arrives with the
                // next generation); removed ones were left out of this one.
                self.crls.reconcile(
                    &config.truststore.crl_fetch,
                    &self.shared,
                    &self.shutdown,
                    Some(Duration::ZERO),
                );
                loaded.config = config;
                loaded.generation = generation;
                count(trigger, "success");
                metrics::gauge!(m::TRUSTSTORE_GENERATION).set(generation as f64);
                for r in &restart_required {
                    tracing::warn!(setting = %r, "reload: this change needs a restart");
                }
                tracing::info!(generation, kind = trigger.label(), "reloaded");
                Ok(Reloaded {
                    generation,
                    restart_required,
                })
            }
            Err(reasons) => {
                count(trigger, "failure");
                for r in &reasons {
                    tracing::error!(kind = trigger.label(), reason = %r,
                        generation = loaded.generation, "reload refused; the previous state keeps serving");
                }
                Err(ReloadFailed {
                    reasons,
                    generation: loaded.generation,
                })
            }
        }
    }
}

type Parts = (Config, TrustState, Snapshot, Vec<String>);

struct Built {
    fingerprint: Option<[u8; 32]>,
    result: Result<Parts, Vec<String>>,
}

/// Read and build everything; blocking (file I/O and certificate parsing). `old` is the
/// config in use (its file is read again), `started` the one the process started with.
fn build_all(
    old: &Config,
    started: &Config,
    generation: u64,
    fixed: &Fixed,
    crls: &CrlStore,
) -> Built {
    let config = match config::load(&old.source) {
        Ok(c) => c,
        Err(e) => {
            return Built {
                fingerprint: Some(watch::fingerprint(old)),
                result: Err(e.problems.iter().map(|p| p.to_string()).collect()),
            }
        }
    };
    let fingerprint = Some(watch::fingerprint(&config));
    let fetched = crls.for_config(&config.truststore.crl_fetch);
    let result = build_parts(started, config, generation, fixed, &fetched);
    Built {
        fingerprint,
        result,
    }
}

fn build_parts(
    started: &Config,
    config: Config,
    generation: u64,
    fixed: &Fixed,
    fetched: &[FetchedCrl],
) -> Result<Parts, Vec<String>> {
    if config.listeners.len() != started.listeners.len() {
        return Err(vec![format!(
            "the number of listeners changed ({} → {}): that needs a restart",
            started.listeners.len(),
            config.listeners.len()
        )]);
    }
    let mut reasons = Vec::new();
    let trust =
        build_trust(&config, generation, fixed, fetched).map_err(|e| reasons.push(e.to_string()));
    let snapshot = build_snapshot(&config).map_err(|e| reasons.push(e.to_string()));
    match (trust, snapshot) {
        (Ok(trust), Ok(snapshot)) => {
            let restart = restart_required(started, &config);
            Ok((config, trust, snapshot, restart))
        }
        _ => Err(reasons),
    }
}

/// Settings fixed at start whose value in `new` differs from what runs (`started`), by
/// key; a section that differs only in a key not named here is reported whole.
fn restart_required(started: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (a, b)) in started.listeners.iter().zip(&new.listeners).enumerate() {
        let mut diff = |key: &str, x: String, y: String| {
            if x != y {
                out.push(format!("listener[{i}].{key}"));
            }
        };
        diff("address", a.address.to_string(), b.address.to_string());
        diff("workers", a.workers.to_string(), b.workers.to_string());
        let named = out.len();
        for ((key, x), (_, y)) in limit_fields(&a.limits)
            .into_iter()
            .zip(limit_fields(&b.limits))
        {
            if x != y {
                out.push(format!("listener[{i}].{key}"));
            }
        }
        if out.len() == named && format!("{:?}", a.limits) != format!("{:?}", b.limits) {
            out.push(format!("listener[{i}] limits"));
        }
    }
    if started.admin.as_ref().map(|a| a.address) != new.admin.as_ref().map(|a| a.address) {
        out.push("admin.address".to_owned());
    }
    if started.runtime != new.runtime {
        out.push("runtime.mode".to_owned());
    }
    let before = out.len();
    if started.log.level != new.log.level {
        out.push("log.level".to_owned());
    }
    if format!("{:?}", started.log.access_log) != format!("{:?}", new.log.access_log) {
        out.push("log.access_log".to_owned());
    }
    if format!("{:?}", started.log.format) != format!("{:?}", new.log.format) {
        out.push("log.format".to_owned());
    }
    if out.len() == before && format!("{:?}", started.log) != format!("{:?}", new.log) {
        out.push("log".to_owned());
    }
    let sections = [
        ("reload", started.reload != new.reload),
        (
            "identity_cache",
            started.identity_cache != new.identity_cache,
        ),
        (
            "auth.jwt",
            format!("{:?}", started.jwt) != format!("{:?}", new.jwt),
        ),
        (
            "auth.sigv4",
            format!("{:?}", started.sigv4) != format!("{:?}", new.sigv4),
        ),
        ("issuer.oauth2", started.oauth2 != new.oauth2),
        (
            "issuer.sessions",
            format!("{:?}", started.sessions) != format!("{:?}", new.sessions),
        ),
        ("cluster", started.cluster != new.cluster),
    ];
    out.extend(
        sections
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(name, _)| name.to_owned()),
    );
    out
}

/// A listener's limits by key, as the file names them: each is copied into the listener's
/// accept loop at start, so none changes on reload.
fn limit_fields(l: &config::ListenerLimits) -> Vec<(&'static str, String)> {
    vec![
        ("handshake_timeout", format!("{:?}", l.handshake_timeout)),
        (
            "header_read_timeout",
            format!("{:?}", l.header_read_timeout),
        ),
        ("idle_timeout", format!("{:?}", l.idle_timeout)),
        ("max_header_size", l.max_header_size.to_string()),
        ("max_connections", l.max_connections.to_string()),
        (
            "h2_max_concurrent_streams",
            l.h2_max_concurrent_streams.to_string(),
        ),
        (
            "h2_max_header_list_size",
            l.h2_max_header_list_size.to_string(),
        ),
        ("drain_timeout", format!("{:?}", l.drain_timeout)),
        ("drain_delay", format!("{:?}", l.drain_delay)),
        (
            "headers_with_underscores",
            format!("{:?}", l.requests.headers_with_underscores),
        ),
        (
            "path_parameters",
            format!("{:?}", l.requests.path_parameters),
        ),
        ("trusted_proxies", format!("{:?}", l.trusted_proxies)),
    ]
}

fn count(trigger: Trigger, result: &'static str) {
    metrics::counter!(m::RELOAD_TOTAL, "kind" => trigger.label(), "result" => result).increment(1);
}

/// Set the expiry gauges; with `warn`, log when a CA or CRL is within `window`. An expired
/// CRL is not an error here: `expired_crl` decides at verification time.
pub fn hygiene(ts: &Truststore, window: Duration, warn: bool) {
    let now = SystemTime::now();
    let secs = |t: SystemTime| match t.duration_since(now) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    if let Some(ca) = ts.cas().iter().min_by_key(|c| c.not_after) {
        let left = secs(ca.not_after);
        metrics::gauge!(m::TRUSTSTORE_CA_EXPIRY_SECONDS).set(left);
        if warn && left < window.as_secs_f64() {
            tracing::warn!(subject = %ca.subject, seconds_left = left as i64,
                "a truststore CA certificate expires soon (or has expired)");
        }
    }
    let next = ts
        .crls()
        .iter()
        .filter_map(|c| c.next_update.map(|n| (n, c)))
        .min_by_key(|(n, _)| *n);
    if let Some((n, crl)) = next {
        let left = secs(n);
        metrics::gauge!(m::TRUSTSTORE_CRL_NEXT_UPDATE_SECONDS).set(left);
        if warn && left < 0.0 {
            tracing::warn!(issuer = %crl.issuer, "a CRL is past its nextUpdate; expired_crl decides whether it is used");
        } else if warn && left < window.as_secs_f64() {
            tracing::warn!(issuer = %crl.issuer, seconds_left = left as i64,
                "a CRL reaches its nextUpdate soon: publish a fresh one");
        }
    }
}
