//! Every default of the configuration, in one place (README and `configs/reference.toml`
//! document the same values; a test checks the reference file against these).

use std::time::Duration;

pub const CLIENT_AUTH: &str = "required";
pub const MIN_TLS_VERSION: &str = "1.2";
pub const KEY_PERMISSIONS: &str = "strict";
pub const WORKERS: usize = 0;
/// `[runtime] mode`: the one that won both load settings in the interleaved A/B of
/// BENCHMARKS.md (issue 17, step 3) on a quiet machine (per-core: −23 % / −20 % CPU per
/// keep-alive request with the load client on 1 / 2 threads).
pub const RUNTIME_MODE: &str = "per-core";
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_HEADER_SIZE: u64 = 16 * 1024;
/// hyper refuses an HTTP/1 read buffer smaller than this.
pub const MIN_HEADER_SIZE: u64 = 8 * 1024;
pub const MAX_CONNECTIONS: usize = 10_000;
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
pub const H2_MAX_HEADER_LIST_SIZE: u64 = 16 * 1024;
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// No delay: readiness turns 503 and accepting stops together (Kubernetes wants e.g. 5s).
pub const DRAIN_DELAY: Duration = Duration::ZERO;
pub const HEADERS_WITH_UNDERSCORES: &str = "drop";
pub const PATH_PARAMETERS: &str = "reject";

pub const REVOCATION: &str = "full-chain";
pub const UNKNOWN_REVOCATION: &str = "deny";
pub const EXPIRED_CRL: &str = "deny";
pub const MAX_CHAIN_DEPTH: usize = 4;
/// webpki refuses longer paths whatever the setting.
pub const MAX_CHAIN_DEPTH_LIMIT: usize = 6;
pub const CRL_FETCH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Shorter intervals would hammer a CA's distribution point for no gain.
pub const CRL_FETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A fetched CRL larger than this is refused (a CRL of 1 million entries is about 40 MiB).
pub const CRL_FETCH_MAX_SIZE: usize = 64 * 1024 * 1024;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_IDLE_PER_ENDPOINT: usize = 64;
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const PROTOCOL: &str = "http1";

pub const ROUTE_HOST: &str = "*";
pub const ROUTE_PATH_PREFIX: &str = "/";
pub const ROUTE_AUTH: &str = "mtls";
pub const MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;
pub const ROUTE_CASE_SENSITIVE: bool = false;

pub const SIGV4_MAX_SKEW: Duration = Duration::from_secs(5 * 60);
pub const SIGV4_MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Presigned URLs may not live longer than this, whatever the config says (AWS's limit).
pub const SIGV4_MAX_PRESIGN_EXPIRY_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const SIGV4_MAX_PAYLOAD_BUFFER: u64 = 8 * 1024 * 1024;
pub const SIGV4_ALLOW_UNSIGNED_PAYLOAD: bool = false;

pub const LOG_LEVEL: &str = "info";
pub const ACCESS_LOG: &str = "-";

pub const RELOAD_WATCH: bool = true;
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);
/// Longer debounces would push revocation past its one-second target.
pub const RELOAD_DEBOUNCE_MAX: Duration = Duration::from_secs(10);
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(5);
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

pub const IDENTITY_CACHE_CAPACITY: u64 = 100_000;
pub const IDENTITY_CACHE_CAPACITY_MAX: u64 = 100_000_000;
pub const IDENTITY_CACHE_TTL: Duration = Duration::from_secs(300);
pub const JWT_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];
pub const JWT_LEEWAY: Duration = Duration::from_secs(30);
pub const JWT_MAX_LEEWAY: Duration = Duration::from_secs(300);
pub const JWT_MAX_TOKEN_SIZE: u64 = 8 * 1024;
pub const JWT_REFRESH: Duration = Duration::from_secs(600);
pub const JWT_KID_MISS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Validated tokens kept per provider (each entry lives until its token expires).
pub const JWT_CACHE_CAPACITY: usize = 100_000;
/// A JWKS document larger than this is refused.
pub const JWKS_MAX_SIZE: usize = 1024 * 1024;
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `[cluster]`: the Redis key and channel prefix, and the per-operation timeout.
pub const CLUSTER_KEY_PREFIX: &str = "portcullis:";
pub const CLUSTER_TIMEOUT: Duration = Duration::from_millis(200);
pub const CLUSTER_TIMEOUT_MAX: Duration = Duration::from_secs(5);
