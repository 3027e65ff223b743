//! What the gateway knows about one downstream connection, computed once after the TLS
//! handshake and shared (behind an `Arc`) by every request on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::config::RequestRules;
use crate::identity::Identity;

/// Names of the identity headers sent to backends. Any incoming header with one of these
/// names (or starting with `x-client-`) is removed before the verified values are set.
pub const XFCC: &str = "x-forwarded-client-cert";
pub const X_CLIENT_SUBJECT: &str = "x-client-subject";
pub const X_CLIENT_URI_SAN: &str = "x-client-uri-san";
pub const X_CLIENT_FINGERPRINT: &str = "x-client-fingerprint";
pub const X_CLIENT_PREFIX: &str = "x-client-";
/// The principal name, access key id and attributes (JSON) of a verified SigV4 credential.
pub const X_CLIENT_PRINCIPAL: &str = "x-client-principal";
pub const X_CLIENT_ACCESS_KEY_ID: &str = "x-client-access-key-id";
pub const X_CLIENT_ATTRIBUTES: &str = "x-client-attributes";
/// The role, session name and source identity (the leaf's CN) of a session credential.
pub const X_CLIENT_ROLE: &str = "x-client-role";
pub const X_CLIENT_SESSION: &str = "x-client-session";
pub const X_CLIENT_SOURCE_IDENTITY: &str = "x-client-source-identity";

/// Whether the header name `alias` (lowercase) reads as `header` once each `_` is read as
/// `-`, as CGI and WSGI servers do (`x_client_subject` → `HTTP_X_CLIENT_SUBJECT`). Compares
/// the first `header.len()` bytes only when `prefix` is set.
pub fn reads_as(alias: &str, header: &str, prefix: bool) -> bool {
    let (a, h) = (alias.as_bytes(), header.as_bytes());
    let a = match (prefix, a.len().cmp(&h.len())) {
        (_, std::cmp::Ordering::Equal) => a,
        (true, std::cmp::Ordering::Greater) => &a[..h.len()],
        _ => return false,
    };
    a.iter()
        .zip(h)
        .all(|(&x, &y)| x == y || (x == b'_' && y == b'-'))
}

#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `peer.ip()` as a header value, for `x-forwarded-for`.
    pub peer_ip: HeaderValue,
    /// Index of the listener in the config, and its address as a metric label.
    pub listener: Arc<str>,
    /// The listener's `headers_with_underscores` and `path_parameters` (copied at accept).
    pub requests: RequestRules,
    /// The peer is one of the listener's `trusted_proxies`: its `X-Forwarded-For` is kept
    /// and the peer appended; from anyone else it is replaced (set at accept).
    pub trusted_proxy: bool,
    pub identity: Option<ForwardedIdentity>,
    pub activity: Activity,
    /// The presented chain and the truststore generation it was verified under.
    pub trust: ConnTrust,
    /// The request metric handles of this connection's last route and status.
    pub metrics: crate::telemetry::request_metrics::RequestMetrics,
    /// What the server's wire watcher saw in the client's bytes (HTTP/2 preface, resets).
    pub wire: WireSignals,
}

/// Signals from the server's watcher of the client's plaintext to its connection loop: the
/// HTTP/2 preface was decided (it arrived, or the bytes are not HTTP/2), or the client reset
/// too many streams (the loop is also woken through [`ConnTrust::close`]).
#[derive(Debug, Default)]
pub struct WireSignals(AtomicU8);

impl WireSignals {
    const DECIDED: u8 = 1;
    const RAPID_RESET: u8 = 2;
    const LINGERING: u8 = 4;

    pub fn set_decided(&self) {
        self.0.fetch_or(Self::DECIDED, Ordering::Relaxed);
    }

    /// Whether the client's first bytes were seen (no preface wait is pending).
    pub fn decided(&self) -> bool {
        self.0.load(Ordering::Relaxed) & Self::DECIDED != 0
    }

    pub fn set_rapid_reset(&self) {
        self.0.fetch_or(Self::RAPID_RESET, Ordering::Relaxed);
    }

    pub fn rapid_reset(&self) -> bool {
        self.0.load(Ordering::Relaxed) & Self::RAPID_RESET != 0
    }

    /// HTTP has ended and the connection is in its lingering close (FIN sent, the client's
    /// remaining bytes being dropped): a shutdown the gateway began is complete on its side.
    pub fn set_lingering(&self) {
        self.0.fetch_or(Self::LINGERING, Ordering::Relaxed);
    }

    pub fn lingering(&self) -> bool {
        self.0.load(Ordering::Relaxed) & Self::LINGERING != 0
    }
}

/// What an open connection needs to re-check its identity after a truststore reload
/// (see `proxy::recheck`).
#[derive(Debug, Default)]
pub struct ConnTrust {
    /// The chain the client presented, leaf first; empty without a client certificate.
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The generation the identity last verified under.
    pub generation: AtomicU64,
    /// Set once the identity failed a re-check: every later request is refused too.
    pub refused: std::sync::atomic::AtomicBool,
    /// Woken when the connection must close (HTTP/2: GOAWAY): its identity failed a
    /// re-check, or [`WireSignals::rapid_reset`] was set.
    pub close: tokio::sync::Notify,
    /// 1 = revoked, 2 = untrusted (set with `refused`).
    reason: AtomicU8,
}

impl ConnTrust {
    pub fn refused_reason(&self) -> &'static str {
        match self.reason.load(Ordering::Relaxed) {
            1 => "revoked",
            _ => "untrusted",
        }
    }

    pub fn set_refused_reason(&self, reason: &str) {
        let v = if reason == "revoked" { 1 } else { 2 };
        self.reason.store(v, Ordering::Relaxed);
    }
}

/// Requests in flight and the time the last one ended: what the idle timeout looks at.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicU32,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.last_ms.store(clock_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether a request is in flight (its response body not yet finished).
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(clock_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    pub fn touch(&self) {
        self.last_ms.store(clock_ms(), Ordering::Relaxed);
    }
}

/// Milliseconds on a process-wide monotonic clock.
pub fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A verified client identity and its forwarded header values, built once per connection
/// (or taken from the verified-identity cache).
#[derive(Debug, Clone)]
pub struct ForwardedIdentity {
    pub id: Identity,
    pub xfcc: HeaderValue,
    pub subject: HeaderValue,
    /// `None` when the certificate has no URI SAN (the header is then not sent).
    pub uri_san: Option<HeaderValue>,
    pub fingerprint: HeaderValue,
}

impl ForwardedIdentity {
    /// Fails only if the identity cannot be expressed as header values, which the encoders
    /// prevent (the subject is RFC 4514 with non-ASCII escaped, SANs are percent-encoded);
    /// the caller treats it as a refused client.
    pub fn new(id: Identity) -> Result<Self, http::header::InvalidHeaderValue> {
        let uri_san = id
            .uri_san_header()
            .map(|v| HeaderValue::from_str(&v))
            .transpose()?;
        Ok(ForwardedIdentity {
            xfcc: HeaderValue::from_str(&id.xfcc())?,
            subject: HeaderValue::from_str(&id.subject)?,
            uri_san,
            fingerprint: HeaderValue::from_str(&id.fingerprint)?,
            id,
        })
    }
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, listener: Arc<str>, identity: Option<ForwardedIdentity>) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            peer_ip,
            listener,
            requests: RequestRules::default(),
            trusted_proxy: false,
            identity,
            activity: Activity::default(),
            trust: ConnTrust::default(),
            metrics: Default::default(),
            wire: WireSignals::default(),
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref().map(|f| &f.id)
    }
}

#[cfg(test)]
mod tests {
    use super::reads_as;

    #[test]
    fn underscore_aliases_read_as_the_dashed_name() {
        assert!(reads_as("x_client_uri_san", "x-client-uri-san", false));
        assert!(reads_as("x-client_subject", "x-client-subject", false));
        assert!(reads_as("x_client_anything", "x-client-", true));
        assert!(!reads_as("x_client", "x-client-", true));
        assert!(!reads_as("x_clientx", "x-client-", false));
        assert!(!reads_as("x_client_uri_sans", "x-client-uri-san", false));
        assert!(!reads_as("y_client_uri_san", "x-client-uri-san", false));
        // `-` is never read as `_`.
        assert!(!reads_as("x-user", "x_user", false));
    }
}
