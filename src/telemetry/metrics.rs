//! Every metric name the gateway exports, in one place. Label values always come from
//! fixed sets (route names from the config, reason kinds, status codes), never from a raw
//! path, token or identity.

/// Always 1, labelled with the build's `version` (Cargo.toml) and git `revision` (`unknown`
/// when built outside a git checkout).
pub const BUILD_INFO: &str = "portcullis_build_info";
/// The standard process metrics (no prefix, as every Prometheus client library names them),
/// read from `/proc/self` on each scrape: see [`super::process`].
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
/// Requests answered, by `route` (or `none`) and `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "portcullis_http_requests_total";
/// Time from request head to response head, by `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "portcullis_http_request_duration_seconds";
/// Requests with a header name containing `_`, by `listener` and `action` (`dropped` |
/// `rejected` | `allowed`: the listener's `headers_with_underscores`).
pub const HTTP_HEADERS_WITH_UNDERSCORES_TOTAL: &str =
    "portcullis_http_headers_with_underscores_total";
/// TLS handshakes by `listener`, `result` (`accepted` | `rejected` | `failed`) and `reason`.
pub const TLS_HANDSHAKES_TOTAL: &str = "portcullis_tls_handshakes_total";
/// Client-certificate verifications by `result` and `reason` (the verifier's own view).
pub const TLS_CLIENT_CERT_VERIFICATIONS_TOTAL: &str =
    "portcullis_tls_client_cert_verifications_total";
/// Open downstream connections, by `listener`.
pub const LISTENER_CONNECTIONS_ACTIVE: &str = "portcullis_listener_connections_active";
/// Open downstream connections per core in the per-core runtime, by `listener` and `core`
/// (`0` … workers − 1): how evenly `SO_REUSEPORT` spreads them.
pub const LISTENER_CORE_CONNECTIONS_ACTIVE: &str = "portcullis_listener_core_connections_active";
/// Downstream connections accepted, by `listener`.
pub const LISTENER_CONNECTIONS_TOTAL: &str = "portcullis_listener_connections_total";
/// Downstream connections that reached HTTP, counted when they end, by `listener` and
/// `reason` (`closed`, `error`, `idle_timeout`, `revoked`, `drain`, `preface_timeout`,
/// `shutdown_unanswered`, `rapid_reset`).
pub const CONNECTIONS_CLOSED_TOTAL: &str = "portcullis_connections_closed_total";
/// Upstream requests that reused a pooled connection, by `upstream`.
pub const UPSTREAM_POOL_HITS_TOTAL: &str = "portcullis_upstream_pool_hits_total";
/// Upstream requests that needed a new connection, by `upstream`.
pub const UPSTREAM_POOL_MISSES_TOTAL: &str = "portcullis_upstream_pool_misses_total";
/// Upstream failures by `upstream` and `kind` (`connect`, `timeout`, `protocol`).
pub const UPSTREAM_ERRORS_TOTAL: &str = "portcullis_upstream_errors_total";
/// Requests retried on a fresh connection after a pooled one turned out dead, by `upstream`.
pub const UPSTREAM_RETRIES_TOTAL: &str = "portcullis_upstream_retries_total";
/// Refusal log lines (refused handshakes and requests) not written because their `reason`
/// had more than `refusal_log::LINES_PER_SECOND` in one second.
pub const LOG_SUPPRESSED_TOTAL: &str = "portcullis_log_suppressed_total";
/// Access-log lines dropped because the writer could not keep up.
pub const ACCESS_LOG_DROPPED_TOTAL: &str = "portcullis_access_log_dropped_total";
/// Reloads by `kind` (what triggered it: `api`, `signal`, `watch`, `poll`, `crl_fetch`) and `result`
/// (`success` | `failure`).
pub const RELOAD_TOTAL: &str = "portcullis_reload_total";
/// CRL fetches (`[[truststore.crl_fetch]]`) by `url` and `result` (`updated` |
/// `not_modified` | `unchanged` | `invalid` | `failed`).
pub const CRL_FETCH_TOTAL: &str = "portcullis_crl_fetch_total";
/// Unix time of the last fetch of `url` that left a good CRL in use (200 kept or 304).
pub const CRL_FETCH_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "portcullis_crl_fetch_last_success_timestamp_seconds";
/// The truststore generation serving now (1 at start, +1 per successful reload).
pub const TRUSTSTORE_GENERATION: &str = "portcullis_truststore_generation";
/// Seconds until the earliest CA certificate in the truststore expires (negative: expired).
pub const TRUSTSTORE_CA_EXPIRY_SECONDS: &str = "portcullis_truststore_ca_expiry_seconds";
/// Seconds until the earliest CRL nextUpdate in the truststore (negative: a CRL is stale).
pub const TRUSTSTORE_CRL_NEXT_UPDATE_SECONDS: &str =
    "portcullis_truststore_crl_next_update_seconds";
/// Verified-identity cache lookups that found a verified chain.
pub const IDENTITY_CACHE_HITS_TOTAL: &str = "portcullis_identity_cache_hits_total";
/// Verified-identity cache lookups that had to build and check the chain.
pub const IDENTITY_CACHE_MISSES_TOTAL: &str = "portcullis_identity_cache_misses_total";
/// Open connections whose identity no longer verified after a truststore reload.
pub const REVOKED_CONNECTIONS_TOTAL: &str = "portcullis_revoked_connections_total";
/// Bearer-token validations by `provider`, `result` (`accepted` | `rejected`) and `reason`.
pub const AUTH_JWT_VALIDATIONS_TOTAL: &str = "portcullis_auth_jwt_validations_total";
/// Bearer tokens found in the validation cache, by `provider`.
pub const AUTH_JWT_CACHE_HITS_TOTAL: &str = "portcullis_auth_jwt_cache_hits_total";
/// Bearer tokens validated in full (not cached), by `provider`.
pub const AUTH_JWT_CACHE_MISSES_TOTAL: &str = "portcullis_auth_jwt_cache_misses_total";
/// JWKS fetches and file reloads by `provider`, `trigger` (`schedule` | `kid_miss` | `file`)
/// and `result` (`updated` | `not_modified` | `invalid` | `failed`).
pub const AUTH_JWKS_FETCHES_TOTAL: &str = "portcullis_auth_jwks_fetches_total";
/// SigV4 verifications by `result` (`accepted` | `rejected`) and `reason` (a fixed `sigv4_*` label).
pub const SIGV4_VERIFICATIONS_TOTAL: &str = "portcullis_auth_sigv4_verifications_total";
/// SigV4 signing keys found in the per-scope cache.
pub const SIGV4_KEY_CACHE_HITS_TOTAL: &str = "portcullis_auth_sigv4_key_cache_hits_total";
/// SigV4 signing keys derived (not cached, or the secret changed).
pub const SIGV4_KEY_CACHE_MISSES_TOTAL: &str = "portcullis_auth_sigv4_key_cache_misses_total";
/// Session tokens found opened in the per-access-key cache.
pub const SIGV4_SESSION_CACHE_HITS_TOTAL: &str = "portcullis_auth_sigv4_session_cache_hits_total";
/// Session tokens opened (not cached, another token, or its sealing key changed).
pub const SIGV4_SESSION_CACHE_MISSES_TOTAL: &str =
    "portcullis_auth_sigv4_session_cache_misses_total";
/// Credentials-file reloads by `result` (`success` | `failure`).
pub const SIGV4_CREDENTIAL_RELOADS_TOTAL: &str = "portcullis_auth_sigv4_credential_reloads_total";
/// Token requests to `[issuer.oauth2]` by `client` (a registered client_id, else `unknown`),
/// `result` (`issued` | `refused`) and `reason` (`ok` or a fixed refusal label).
pub const ISSUER_TOKENS_TOTAL: &str = "portcullis_issuer_tokens_total";
/// Revocations recorded, by `kind` (`jti` | `client` of OAuth2; `access_key_id` | `role` |
/// `certificate` of sessions).
pub const ISSUER_REVOCATIONS_TOTAL: &str = "portcullis_issuer_revocations_total";
/// Issuer-endpoint requests refused by a rate limit, by `limit` (`per_client` | `per_address`).
pub const ISSUER_RATE_LIMITED_TOTAL: &str = "portcullis_issuer_rate_limited_total";
/// Client-registry reloads by `result` (`success` | `failure`: the previous registry stays).
pub const ISSUER_REGISTRY_RELOADS_TOTAL: &str = "portcullis_issuer_registry_reloads_total";
/// Signing-key folder reloads by `issuer` and `result` (`success` | `failure`).
pub const ISSUER_KEY_RELOADS_TOTAL: &str = "portcullis_issuer_key_reloads_total";
/// CreateSession requests to `[issuer.sessions]` by `result` (`issued` | `refused`) and
/// `reason` (`ok` or a fixed refusal label, see `builtin::rolesanywhere::refusal`).
pub const ISSUER_SESSIONS_TOTAL: &str = "portcullis_issuer_sessions_total";
/// `[cluster]`: 1 while the shared Redis is connected and its revocations were read, else 0.
pub const CLUSTER_REDIS_UP: &str = "portcullis_cluster_redis_up";
/// Revocations from Redis applied to this instance's state, by `source` (`published`: a
/// message from another instance | `full_read`: the set read at start or after a reconnect).
pub const CLUSTER_REVOCATIONS_APPLIED_TOTAL: &str = "portcullis_cluster_revocations_applied_total";
/// Fleet operations done locally because Redis failed or was down, by `what` (`rate_limit`:
/// the local limiter answered | `revocation`: written to `state_dir` only, pushed later).
pub const CLUSTER_FALLBACK_TOTAL: &str = "portcullis_cluster_fallback_total";
