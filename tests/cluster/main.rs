//! A fleet of gateways sharing one real `redis-server` (`[cluster]`): revocations cross
//! instances within a second on open connections and reach instances started later before
//! they are ready; the token endpoint's limits are one fleet-wide budget; with Redis gone
//! every instance goes on with its local state and limits, and converges when it returns;
//! garbage in Redis is refused. Gateways are real processes (the binary), each with its own
//! `state_dir`; the session issuer's store is exercised in process (`sessions.rs`);
//! `rediss://` against a Redis on TLS only, verified with `cluster.tls` (`tls.rs`).

#[path = "../common/mod.rs"]
mod common;
mod fleet;
mod sessions;
mod sigv4;
#[allow(dead_code)]
#[path = "../oauth2/support.rs"]
mod support;
mod tls;

use std::time::{Duration, Instant};

use fleet::{jti, redis_score, refused_within, Fleet, Redis};
use portcullis::issuer::revocations::now_secs;

const APPLIED: &str = "portcullis_cluster_revocations_applied_total";
const FALLBACK: &str = "portcullis_cluster_fallback_total";
const SET: &str = "portcullis:revocations:oauth2-revocations";
const REFUSED_LINE: &str = "refused a value from Redis";
/// How long an instance may take to notice Redis went away or came back (ping every second,
/// reconnect backoff at most 2 s): generous, it is a deadline, not a measurement.
const NOTICE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_token_revoked_on_a_is_refused_by_b_and_c_within_a_second_and_by_a_later_instance_before_ready(
) {
    let redis = Redis::start();
    let f = Fleet::new(support::DEFAULT_LIMITS, &redis);
    let (a, b, c) = (f.start("a"), f.start("b"), f.start("c"));
    let token = f.issued(&a).await;
    let (mut on_b, mut on_c) = (f.connect(&b).await, f.connect(&c).await);
    for conn in [&mut on_b, &mut on_c] {
        assert_eq!(support::call(conn, "/orders", &token).await.status, 200);
    }

    a.revoke_jti(&jti(&token)).await;
    assert!(
        refused_within(&mut on_b, &token, Duration::from_secs(1)).await,
        "B still accepts the token a second after A revoked it"
    );
    assert!(
        refused_within(&mut on_c, &token, Duration::from_secs(1)).await,
        "C still accepts the token a second after A revoked it"
    );
    for i in [&b, &c] {
        let n = i
            .wait_metric(APPLIED, &["source=\"published\""], 1.0, NOTICE)
            .await;
        assert!(n >= 1.0, "{APPLIED}{{source=published}} is {n}");
    }
    // Redis holds it with the token's latest expiry, the key expiring with it; B's
    // state_dir holds it too.
    let score = redis_score(&redis, &token);
    let mut r = redis.connection().unwrap();
    assert!(score.is_some_and(|s| s as i64 > now_secs()), "{score:?}");
    let ttl: i64 = redis::cmd("TTL").arg(SET).query(&mut r).unwrap();
    assert!(ttl > 0, "the set has no expiry: {ttl}");
    let saved = std::fs::read_to_string(f.dir.path().join("state-b/oauth2-revocations.json"));
    assert!(saved.unwrap().contains(&jti(&token)));

    // D starts after the revocation: its listeners (and /readyz) come up only after it
    // read the set, so the first request it ever answers with the token is refused.
    let d = f.start("d");
    let read = d
        .log_position("cluster: connected")
        .expect("D logged its read");
    let up = d.log_position("admin listener up").unwrap();
    assert!(read < up, "D was reachable before it read Redis");
    assert_eq!(common::admin_get(d.admin, "/readyz").await.0, 200);
    let mut on_d = f.connect(&d).await;
    assert_eq!(
        support::call(&mut on_d, "/orders", &token).await.status,
        401
    );
    let n = common::metric(&d.metrics().await, APPLIED, &["source=\"full_read\""]);
    assert!(n >= 1.0, "{APPLIED}{{source=full_read}} is {n}");
    assert_eq!(
        common::metric(&d.metrics().await, "portcullis_cluster_redis_up", &[]),
        1.0
    );
}

#[tokio::test]
async fn a_burst_round_robin_over_three_instances_gets_one_fleet_wide_budget() {
    let redis = Redis::start();
    let burst = 10;
    let f = Fleet::new(
        &format!("{{ per_client = \"1/m\", per_address = \"100000/s\", burst = {burst} }}"),
        &redis,
    );
    let fleet = [f.start("a"), f.start("b"), f.start("c")];
    let mut conns = Vec::new();
    for i in &fleet {
        conns.push(f.connect(i).await);
    }
    let start = Instant::now();
    let (mut issued, mut limited) = (0, 0);
    for n in 0..3 * burst {
        match f.token(&mut conns[n % 3]).await {
            (200, _) => issued += 1,
            (429, _) => limited += 1,
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    // The GCRA's tolerance: `burst` at once, plus one per interval (1/m) that passed.
    let most = burst + 1 + (start.elapsed().as_secs() / 60) as usize;
    assert!(
        (burst..=most).contains(&issued),
        "{issued} issued of {} (fleet budget {burst}..={most}); {limited} limited",
        3 * burst
    );
    for i in &fleet {
        let text = i.metrics().await;
        assert_eq!(
            common::metric(&text, FALLBACK, &["what=\"rate_limit\""]),
            0.0,
            "a limit fell back to the local limiter with Redis up"
        );
    }
}

#[tokio::test]
async fn one_script_call_per_token_request_and_an_address_refusal_spends_no_client_budget() {
    let redis = Redis::start();
    let f = Fleet::new(
        "{ per_client = \"1/m\", per_address = \"1/m\", burst = 2 }",
        &redis,
    );
    let a = f.start("a");
    let mut conn = f.connect(&a).await;
    let form = "grant_type=client_credentials";
    // An unregistered id spends the address's budget (and its own) like any other.
    for _ in 0..2 {
        let r = support::post(&mut conn, "/oauth2/token", form, Some(("ghost", "x"))).await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    let (status, body) = f.token(&mut conn).await;
    assert_eq!(status, 429, "{body}");
    let text = a.metrics().await;
    let limited = "portcullis_issuer_rate_limited_total";
    assert_eq!(
        common::metric(&text, limited, &["limit=\"per_address\""]),
        1.0
    );
    assert_eq!(
        common::metric(&text, limited, &["limit=\"per_client\""]),
        0.0
    );
    assert_eq!(
        common::metric(&text, FALLBACK, &["what=\"rate_limit\""]),
        0.0
    );
    // One script call checked both: the address refused, the client's bucket was not touched.
    let mut r = redis.connection().unwrap();
    let key = |kind: &str, id: &str| format!("portcullis:limit:{kind}:{id}");
    for (kind, id, exists) in [
        ("address", "127.0.0.1", true),
        ("client", "ghost", true),
        ("client", "orders-svc", false),
    ] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(key(kind, id))
            .query(&mut r)
            .unwrap();
        assert_eq!(n == 1, exists, "{}", key(kind, id));
    }
    // One script run per token request, not one per bucket: the script reads Redis's
    // clock once per run, and nothing else asks for it.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut r)
        .unwrap();
    let runs = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_time:calls="))
        .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok());
    assert_eq!(runs, Some(3), "{stats}");
}

#[tokio::test]
async fn with_redis_killed_instances_go_on_locally_and_converge_when_it_returns() {
    let mut redis = Redis::start();
    let burst = 3;
    let f = Fleet::new(
        &format!("{{ per_client = \"1/m\", per_address = \"100000/s\", burst = {burst} }}"),
        &redis,
    );
    let (a, b, c) = (f.start("a"), f.start("b"), f.start("c"));
    let kept = f.issued(&a).await;
    let doomed = f.issued(&b).await;
    let (mut on_b, mut on_c) = (f.connect(&b).await, f.connect(&c).await);

    redis.kill();
    for i in [&a, &b, &c] {
        assert!(i.wait_redis_up(false, NOTICE).await, "redis_up stayed 1");
    }
    // Verification reads local memory only.
    assert_eq!(support::call(&mut on_c, "/orders", &kept).await.status, 200);
    assert_eq!(
        support::call(&mut on_b, "/orders", &doomed).await.status,
        200
    );
    // A revocation made meanwhile applies on its instance at once.
    a.revoke_jti(&jti(&doomed)).await;
    let mut on_a = f.connect(&a).await;
    assert_eq!(
        support::call(&mut on_a, "/orders", &doomed).await.status,
        401
    );
    assert!(common::metric(&a.metrics().await, FALLBACK, &["what=\"revocation\""]) >= 1.0);
    // The token endpoint answers from B's own limiter: its full burst, then 429.
    let mut conn = f.connect(&b).await;
    let mut statuses = Vec::new();
    for _ in 0..=burst {
        statuses.push(f.token(&mut conn).await.0);
    }
    assert_eq!(statuses, [vec![200; burst], vec![429]].concat());
    assert!(common::metric(&b.metrics().await, FALLBACK, &["what=\"rate_limit\""]) >= 1.0);

    // Redis comes back empty: the instances reconnect, A pushes its revocation, all apply it.
    redis.restart();
    for i in [&a, &b, &c] {
        assert!(i.wait_redis_up(true, NOTICE).await, "redis_up stayed 0");
    }
    for (name, conn) in [("B", &mut on_b), ("C", &mut on_c)] {
        assert!(
            refused_within(conn, &doomed, NOTICE).await,
            "{name} never applied the revocation made while Redis was down"
        );
    }
    assert_eq!(support::call(&mut on_c, "/orders", &kept).await.status, 200);
    assert!(
        redis_score(&redis, &doomed).is_some(),
        "A did not push its revocation to the new Redis"
    );
}

#[tokio::test]
async fn garbage_in_redis_is_refused_with_a_log_line_and_not_applied() {
    let redis = Redis::start();
    let f = Fleet::new(support::DEFAULT_LIMITS, &redis);
    let a = f.start("a");
    let token = f.issued(&a).await;
    let id = jti(&token);
    let now = now_secs();
    let mut r = redis.connection().unwrap();
    let forever = now + 10 * 365 * 24 * 3600;
    for (score, member) in [
        (now + 60, "garbage".to_owned()),
        (forever, format!("{{\"id\":\"{id}\"}}")),
        (now + 60, "{\"subject\":\"orders-svc\"}".to_owned()),
    ] {
        let _: i64 = redis::cmd("ZADD")
            .arg(SET)
            .arg(score)
            .arg(member)
            .query(&mut r)
            .unwrap();
    }
    let channel = "portcullis:revocations";
    let forged = serde_json::json!({
        "store": "oauth2-revocations",
        "member": format!("{{\"id\":\"{id}\"}}"),
        "until": forever,
    });
    for message in ["not json".to_owned(), forged.to_string()] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query(&mut r)
            .unwrap();
    }
    assert!(a.wait_for_log(REFUSED_LINE).await, "A logged no refusal");
    // B meets the garbage in its full read at start.
    let b = f.start("b");
    assert!(
        b.log_position(REFUSED_LINE).is_some(),
        "B logged no refusal at start"
    );
    for i in [&a, &b] {
        let mut conn = f.connect(i).await;
        let r = support::call(&mut conn, "/orders", &token).await;
        assert_eq!(r.status, 200, "garbage revoked the token: {:?}", r.body);
    }
    assert_eq!(
        common::metric(&b.metrics().await, APPLIED, &["source=\"full_read\""]),
        0.0
    );
}

#[tokio::test]
async fn without_redis_at_start_an_instance_is_ready_on_its_local_copy_and_joins_later() {
    let mut redis = Redis::start();
    let f = Fleet::new(support::DEFAULT_LIMITS, &redis);
    redis.kill();
    let a = f.start("a");
    assert!(a.log_position("Redis not reachable").is_some());
    assert_eq!(common::admin_get(a.admin, "/readyz").await.0, 200);
    let text = a.metrics().await;
    assert_eq!(
        common::metric(&text, "portcullis_cluster_redis_up", &[]),
        0.0
    );
    assert!(text.contains("portcullis_cluster_redis_up 0"), "{text}");
    // The token endpoint answers from the local limiter, and the token verifies.
    let token = f.issued(&a).await;
    let mut conn = f.connect(&a).await;
    assert_eq!(
        support::call(&mut conn, "/orders", &token).await.status,
        200
    );
    assert!(common::metric(&a.metrics().await, FALLBACK, &["what=\"rate_limit\""]) >= 1.0);
    redis.restart();
    assert!(a.wait_redis_up(true, NOTICE).await, "A never joined Redis");
}

#[test]
fn check_names_a_missing_redis_ca() {
    let pki = common::TestPki::new();
    let spec = common::Spec {
        body: format!(
            "{}\n[cluster]\nredis_url = \"rediss://127.0.0.1:1/0\"\ntls = {{ ca = \"missing-ca.pem\" }}\n",
            common::echo_route()
        ),
        ..common::Spec::default()
    };
    let (cfg_dir, config) = common::write_config(&pki, &spec);
    let (ok, text) = fleet::check(&config);
    assert!(!ok, "{text}");
    assert!(
        text.contains("cluster.tls.ca") && text.contains("missing-ca.pem"),
        "{text}"
    );
    drop(cfg_dir);
}
