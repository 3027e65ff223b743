//! Session revocations cross the fleet through the same store: two (then three) running
//! session issuers in this process, each with its own `state_dir` and its own cluster link
//! to one real Redis, as three gateways would have.

use std::time::{Duration, Instant};

use portcullis::cluster::Cluster;
use portcullis::config::{ClusterConfig, SessionsConfig};
use portcullis::issuer::revocations::now_secs;
use portcullis::issuer::sessions::token::SessionClaims;
use portcullis::issuer::sessions::{self, Sessions};
use tokio::sync::watch;

use crate::fleet::Redis;

fn cluster_config(redis: &Redis) -> ClusterConfig {
    ClusterConfig {
        redis_url: redis.url(),
        key_prefix: "portcullis:".into(),
        tls: None,
        timeout: Duration::from_millis(200),
    }
}

/// A session issuer with its own `state_dir` (sealing keys shared), linked to the fleet.
async fn instance(
    redis: &Redis,
    keys: &std::path::Path,
    state: &std::path::Path,
    shutdown: &watch::Receiver<bool>,
) -> Sessions {
    let cfg = SessionsConfig {
        keys: keys.to_owned(),
        state_dir: state.to_owned(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        max_skew: Duration::from_secs(300),
        trust_anchors: Vec::new(),
        profiles: Vec::new(),
        roles: Vec::new(),
    };
    let s = Sessions::load(&cfg).unwrap();
    let cluster = Cluster::new(&cluster_config(redis)).unwrap();
    s.revocations.join(&cluster);
    cluster.start(shutdown.clone()).await;
    assert!(cluster.is_up(), "the cluster link did not come up");
    s
}

fn claims(akid: &str, role: &str, cert: &str, iat: i64) -> SessionClaims {
    SessionClaims {
        access_key_id: akid.into(),
        role: role.into(),
        profile: "p".into(),
        trust_anchor: "t".into(),
        session: "s".into(),
        source_identity: "CN=x".into(),
        cert_sha256: cert.into(),
        issuer: "CN=ca".into(),
        serial: "01".into(),
        uri_sans: Vec::new(),
        iat,
        exp: iat + 3600,
    }
}

async fn revoked_within(s: &Sessions, c: &SessionClaims, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if s.is_revoked(c) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_session_revoked_on_b_is_refused_by_a_and_by_an_instance_started_later() {
    crate::common::init();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("seal-keys");
    sessions::keys::generate(&keys).unwrap();
    let (stop, shutdown) = watch::channel(false);
    let a = std::sync::Arc::new(instance(&redis, &keys, &dir.path().join("a"), &shutdown).await);
    let b = std::sync::Arc::new(instance(&redis, &keys, &dir.path().join("b"), &shutdown).await);

    let now = now_secs();
    let by_key = claims("ASIAFLEETKEY0000001", "reader", "aa", now);
    let by_role = claims("ASIAFLEETKEY0000002", "ops", "bb", now);
    let by_cert = claims("ASIAFLEETKEY0000003", "reader", "CC", now);
    let untouched = claims("ASIAFLEETKEY0000004", "reader", "dd", now);
    for c in [&by_key, &by_role, &by_cert] {
        assert!(!a.is_revoked(c));
    }
    b.revoke_access_key_id(by_key.access_key_id.clone())
        .await
        .unwrap();
    b.revoke_role("ops".into()).await.unwrap();
    b.revoke_certificate("cc".into()).await.unwrap();
    for c in [&by_key, &by_role, &by_cert] {
        assert!(
            revoked_within(&a, c, Duration::from_secs(1)).await,
            "A still accepts {} a second after B revoked it",
            c.access_key_id
        );
    }
    assert!(!a.is_revoked(&untouched), "only what was revoked");
    // A session of the role opened after the revocation is not covered by it.
    assert!(!a.is_revoked(&claims("ASIAFLEETKEY0000005", "ops", "ee", now + 5)));
    // A persisted what it applied: a restart without Redis still refuses it.
    let file = dir.path().join("a").join(sessions::REVOCATIONS_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&by_key.access_key_id) && text.contains("role:ops"),
        "{text}"
    );

    // An instance started now reads the set before its start returns.
    let c = instance(&redis, &keys, &dir.path().join("c"), &shutdown).await;
    for cl in [&by_key, &by_role, &by_cert] {
        assert!(
            c.is_revoked(cl),
            "{} not revoked at start",
            cl.access_key_id
        );
    }
    assert!(!c.is_revoked(&untouched));
    let _ = stop.send(true);
}
