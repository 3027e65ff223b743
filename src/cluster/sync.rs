//! The connection task: connect (a multiplexed connection for commands, one for the
//! subscription), subscribe, push this instance's revocations, read every store's set
//! whole, then apply what is published and send what is revoked here, pinging every
//! second. A lost connection clears the shared one (the limiter falls back at once),
//! sets `portcullis_cluster_redis_up` to 0 and starts over after a backoff (100 ms,
//! doubling to 2 s).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use super::entry::{Entry, Message};
use super::{Cluster, Outgoing, Phase, SharedStore};
use crate::shutdown::stopped;
use crate::telemetry::metrics as m;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(1);
/// Connecting and background commands wait at least this long (the token endpoint's
/// `timeout` is for the limiter only).
const OP_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// Add one entry to its set (kept the latest expiry), prune what expired, make the key
/// expire with its latest member, and publish when asked (always for a new revocation;
/// only if it was not there yet for a reconnect's push).
/// KEYS[1] the set; ARGV member, until, now, channel, message, always ("1" | "0").
const ADD: &str = r"
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local changed = 0
if (not old) or tonumber(old) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  changed = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2]))) end
if changed == 1 or ARGV[6] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return changed
";

static ADD_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADD));

/// How one connection ended.
enum Ended {
    Shutdown,
    Lost(String),
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let ended = session(&cluster, &mut rx, &mut shutdown, &mut backoff).await;
        let was_up = cluster.conn.swap(None).is_some();
        metrics::gauge!(m::CLUSTER_REDIS_UP).set(0.0);
        let first = cluster.phase.send_if_modified(|p| {
            let first = matches!(*p, Phase::Connecting | Phase::Reading);
            if first {
                *p = Phase::Failed;
            }
            first
        });
        match ended {
            Ended::Shutdown => return,
            Ended::Lost(why) if was_up || first => {
                tracing::warn!(error = %why, "cluster: Redis unreachable; using the local state, reconnecting");
            }
            Ended::Lost(why) => tracing::debug!(error = %why, "cluster: Redis still unreachable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    cluster: &Arc<Cluster>,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Ended {
    let op = cluster.cfg.timeout.max(OP_TIMEOUT_MIN);
    let lost = |e: &(dyn std::error::Error + 'static)| Ended::Lost(super::tls::describe(e));
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(op))
        .set_response_timeout(Some(op));
    let mut conn = match cluster.commands(&config, op).await {
        Ok(c) => c,
        Err(e) => return lost(&e),
    };
    let mut pubsub = match tokio::time::timeout(op, cluster.pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return lost(&e),
        Err(_) => return Ended::Lost("timed out connecting for the subscription".into()),
    };
    let channel = cluster.channel();
    match tokio::time::timeout(op, pubsub.subscribe(&channel)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return lost(&e),
        Err(_) => return Ended::Lost("timed out subscribing".into()),
    }
    cluster.phase.send_if_modified(|p| {
        let first = *p == Phase::Connecting;
        if first {
            *p = Phase::Reading;
        }
        first
    });
    // What was sent while Redis was away is in the stores: pushed just below.
    while rx.try_recv().is_ok() {}
    let stores = cluster.stores();
    let by_name: HashMap<String, Arc<dyn SharedStore>> = stores
        .iter()
        .map(|s| (s.name().to_owned(), s.clone()))
        .collect();
    for store in &stores {
        for entry in store.entries() {
            if let Err(e) = add(cluster, &mut conn, store.name(), &entry, false).await {
                return lost(&e);
            }
        }
    }
    for store in &stores {
        if let Err(e) = read_all(cluster, &mut conn, store).await {
            return lost(&e);
        }
    }
    cluster.conn.store(Some(Arc::new(conn.clone())));
    metrics::gauge!(m::CLUSTER_REDIS_UP).set(1.0);
    cluster.phase.send_replace(Phase::Synced);
    *backoff = BACKOFF_MIN;
    tracing::info!("cluster: Redis connected, revocations in sync");

    let mut messages = pubsub.into_on_message();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = stopped(shutdown) => return Ended::Shutdown,
            msg = messages.next() => match msg {
                None => return Ended::Lost("the subscription closed".into()),
                Some(msg) => received(msg.get_payload_bytes(), &by_name).await,
            },
            out = rx.recv() => {
                let Some(out) = out else { return Ended::Shutdown };
                if let Err(e) = add(cluster, &mut conn, &out.store, &out.entry, true).await {
                    // It is in `state_dir`; the next connection pushes it.
                    metrics::counter!(m::CLUSTER_FALLBACK_TOTAL, "what" => "revocation").increment(1);
                    return lost(&e);
                }
            }
            _ = ping.tick() => {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
                if let Err(e) = pong {
                    return lost(&e);
                }
            }
        }
    }
}

async fn add(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    store: &str,
    entry: &Entry,
    always_publish: bool,
) -> redis::RedisResult<()> {
    let member = entry.member();
    let message = Message {
        store: store.to_owned(),
        member: member.clone(),
        until: entry.until,
    };
    let _changed: i64 = ADD_SCRIPT
        .key(cluster.set_key(store))
        .arg(&member)
        .arg(entry.until)
        .arg(now_secs())
        .arg(cluster.channel())
        .arg(message.text())
        .arg(if always_publish { "1" } else { "0" })
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Read a store's whole set and apply it (garbage refused, each with a log line).
async fn read_all(
    cluster: &Cluster,
    conn: &mut MultiplexedConnection,
    store: &Arc<dyn SharedStore>,
) -> redis::RedisResult<()> {
    let now = now_secs();
    let members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGEBYSCORE")
        .arg(cluster.set_key(store.name()))
        .arg(format!("({now}"))
        .arg("+inf")
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    let mut entries = Vec::new();
    for (member, score) in members {
        match Entry::from_redis(&member, score, now) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => {}
            Err(why) => refused(store.name(), &why, &member),
        }
    }
    apply(store, entries, "full_read").await;
    Ok(())
}

/// A message from the channel: parse, check, apply.
async fn received(payload: &[u8], stores: &HashMap<String, Arc<dyn SharedStore>>) {
    let msg = match Message::parse(payload) {
        Ok(m) => m,
        Err(why) => return refused("(channel)", &why, payload),
    };
    // A store this instance does not run (e.g. no [issuer.sessions] here).
    let Some(store) = stores.get(&msg.store) else {
        return;
    };
    match Entry::from_redis(msg.member.as_bytes(), msg.until as f64, now_secs()) {
        Ok(Some(e)) => apply(store, vec![e], "published").await,
        Ok(None) => {}
        Err(why) => refused(&msg.store, &why, msg.member.as_bytes()),
    }
}

async fn apply(store: &Arc<dyn SharedStore>, entries: Vec<Entry>, source: &'static str) {
    if entries.is_empty() {
        return;
    }
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.apply(entries)).await {
        Ok(Ok(n)) => {
            metrics::counter!(m::CLUSTER_REVOCATIONS_APPLIED_TOTAL, "source" => source)
                .increment(n as u64);
        }
        Ok(Err(e)) => tracing::error!(store = store.name(), error = %e,
            "cluster: could not persist revocations from Redis (applied in memory)"),
        Err(e) => tracing::error!(error = %e, "cluster: applying revocations failed"),
    }
}

fn refused(store: &str, why: &str, value: &[u8]) {
    let shown: String = String::from_utf8_lossy(value).chars().take(80).collect();
    tracing::warn!(store, reason = why, value = %shown.escape_debug(),
        "cluster: refused a value from Redis that is not a valid revocation; not applied");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
