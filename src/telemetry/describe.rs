//! The HELP text of every metric in [`super::metrics`], given to the recorder when it is
//! installed, so every family `/metrics` shows has `# HELP` and `# TYPE` lines
//! (`promtool check metrics` passes).

use super::metrics as m;

/// How a metric is recorded, which decides the `# TYPE` line.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the gateway exports: name, kind and HELP text. A unit test checks that
/// every constant of `metrics.rs` is here.
pub(super) const METRICS: &[(&str, Kind, &str)] = &[
    (
        m::BUILD_INFO,
        Kind::Gauge,
        "Always 1; the labels name the running build's version and git revision.",
    ),
    (
        m::HTTP_REQUESTS_TOTAL,
        Kind::Counter,
        "Requests answered, by route and status.",
    ),
    (
        m::HTTP_REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        "Time from request head to response head, by route.",
    ),
    (
        m::HTTP_HEADERS_WITH_UNDERSCORES_TOTAL,
        Kind::Counter,
        "Requests with a header name containing an underscore, by listener and action.",
    ),
    (
        m::TLS_HANDSHAKES_TOTAL,
        Kind::Counter,
        "TLS handshakes by listener, result and reason.",
    ),
    (
        m::TLS_CLIENT_CERT_VERIFICATIONS_TOTAL,
        Kind::Counter,
        "Client-certificate verifications by result and reason.",
    ),
    (
        m::LISTENER_CONNECTIONS_ACTIVE,
        Kind::Gauge,
        "Open downstream connections, by listener.",
    ),
    (
        m::LISTENER_CORE_CONNECTIONS_ACTIVE,
        Kind::Gauge,
        "Open downstream connections per core (per-core runtime), by listener and core.",
    ),
    (
        m::LISTENER_CONNECTIONS_TOTAL,
        Kind::Counter,
        "Downstream connections accepted, by listener.",
    ),
    (
        m::CONNECTIONS_CLOSED_TOTAL,
        Kind::Counter,
        "Downstream connections that reached HTTP, counted when they end, by listener and reason.",
    ),
    (
        m::UPSTREAM_POOL_HITS_TOTAL,
        Kind::Counter,
        "Upstream requests that reused a pooled connection, by upstream.",
    ),
    (
        m::UPSTREAM_POOL_MISSES_TOTAL,
        Kind::Counter,
        "Upstream requests that needed a new connection, by upstream.",
    ),
    (
        m::UPSTREAM_ERRORS_TOTAL,
        Kind::Counter,
        "Upstream failures by upstream and kind.",
    ),
    (
        m::UPSTREAM_RETRIES_TOTAL,
        Kind::Counter,
        "Requests retried on a fresh connection after a pooled one was dead, by upstream.",
    ),
    (
        m::ACCESS_LOG_DROPPED_TOTAL,
        Kind::Counter,
        "Access-log lines dropped because the writer could not keep up.",
    ),
    (
        m::LOG_SUPPRESSED_TOTAL,
        Kind::Counter,
        "Refusal log lines left out by the per-reason rate limit, by reason.",
    ),
    (
        m::RELOAD_TOTAL,
        Kind::Counter,
        "Reloads by kind (trigger) and result.",
    ),
    (
        m::CRL_FETCH_TOTAL,
        Kind::Counter,
        "CRL fetches by url and result.",
    ),
    (
        m::CRL_FETCH_LAST_SUCCESS_TIMESTAMP_SECONDS,
        Kind::Gauge,
        "Unix time of the last fetch of url that left a good CRL in use.",
    ),
    (
        m::TRUSTSTORE_GENERATION,
        Kind::Gauge,
        "The truststore generation serving now.",
    ),
    (
        m::TRUSTSTORE_CA_EXPIRY_SECONDS,
        Kind::Gauge,
        "Seconds until the earliest CA certificate in the truststore expires (negative: expired).",
    ),
    (
        m::TRUSTSTORE_CRL_NEXT_UPDATE_SECONDS,
        Kind::Gauge,
        "Seconds until the earliest CRL nextUpdate in the truststore (negative: stale).",
    ),
    (
        m::IDENTITY_CACHE_HITS_TOTAL,
        Kind::Counter,
        "Verified-identity cache lookups that found a verified chain.",
    ),
    (
        m::IDENTITY_CACHE_MISSES_TOTAL,
        Kind::Counter,
        "Verified-identity cache lookups that had to build and check the chain.",
    ),
    (
        m::REVOKED_CONNECTIONS_TOTAL,
        Kind::Counter,
        "Open connections refused after a truststore reload, by reason.",
    ),
    (
        m::AUTH_JWT_VALIDATIONS_TOTAL,
        Kind::Counter,
        "Bearer-token validations by provider, result and reason.",
    ),
    (
        m::AUTH_JWT_CACHE_HITS_TOTAL,
        Kind::Counter,
        "Bearer tokens found in the validation cache, by provider.",
    ),
    (
        m::AUTH_JWT_CACHE_MISSES_TOTAL,
        Kind::Counter,
        "Bearer tokens validated in full, by provider.",
    ),
    (
        m::AUTH_JWKS_FETCHES_TOTAL,
        Kind::Counter,
        "JWKS fetches and file reloads by provider, trigger and result.",
    ),
    (
        m::SIGV4_VERIFICATIONS_TOTAL,
        Kind::Counter,
        "SigV4 verifications by result and reason.",
    ),
    (
        m::SIGV4_KEY_CACHE_HITS_TOTAL,
        Kind::Counter,
        "SigV4 signing keys found in the per-scope cache.",
    ),
    (
        m::SIGV4_KEY_CACHE_MISSES_TOTAL,
        Kind::Counter,
        "SigV4 signing keys derived.",
    ),
    (
        m::SIGV4_SESSION_CACHE_HITS_TOTAL,
        Kind::Counter,
        "SigV4 session tokens found opened in the per-access-key cache.",
    ),
    (
        m::SIGV4_SESSION_CACHE_MISSES_TOTAL,
        Kind::Counter,
        "SigV4 session tokens opened with the sealing keys.",
    ),
    (
        m::SIGV4_CREDENTIAL_RELOADS_TOTAL,
        Kind::Counter,
        "SigV4 credentials-file reloads by result.",
    ),
    (
        m::ISSUER_TOKENS_TOTAL,
        Kind::Counter,
        "Token requests to the OAuth2 issuer by client, result and reason.",
    ),
    (
        m::ISSUER_REVOCATIONS_TOTAL,
        Kind::Counter,
        "Revocations recorded by the issuers, by kind (`jti`, `client` for OAuth2; `access_key_id`, `role`, `certificate` for sessions).",
    ),
    (
        m::ISSUER_RATE_LIMITED_TOTAL,
        Kind::Counter,
        "Issuer-endpoint requests refused by a rate limit, by limit.",
    ),
    (
        m::ISSUER_REGISTRY_RELOADS_TOTAL,
        Kind::Counter,
        "OAuth2 client-registry reloads by result.",
    ),
    (
        m::ISSUER_KEY_RELOADS_TOTAL,
        Kind::Counter,
        "Signing-key folder reloads by issuer and result.",
    ),
    (
        m::ISSUER_SESSIONS_TOTAL,
        Kind::Counter,
        "CreateSession requests to the session issuer by result and reason.",
    ),
    (
        m::CLUSTER_REDIS_UP,
        Kind::Gauge,
        "1 while the fleet's Redis is connected and its revocations were read, else 0.",
    ),
    (
        m::CLUSTER_REVOCATIONS_APPLIED_TOTAL,
        Kind::Counter,
        "Revocations from Redis applied here, by source (`published`, `full_read`).",
    ),
    (
        m::CLUSTER_FALLBACK_TOTAL,
        Kind::Counter,
        "Fleet operations done locally because Redis failed, by what (`rate_limit`, `revocation`).",
    ),
];

/// Give the installed recorder every description.
pub(super) fn describe_all() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_constant_has_a_description() {
        let source = include_str!("metrics.rs");
        let names: Vec<&str> = source
            .lines()
            .flat_map(|l| l.split('"').nth(1).filter(|_| l.contains("\"portcullis_")))
            .collect();
        assert!(names.len() > 30, "{names:?}");
        for name in names {
            assert!(
                METRICS.iter().any(|(n, _, _)| *n == name),
                "{name} has no HELP text in describe.rs"
            );
        }
    }
}
