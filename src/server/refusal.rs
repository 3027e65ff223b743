//! A refused connection: its log line, and a close that lets the client read the alert.
//!
//! Every refused handshake is logged at `info` ([`log`]: peer, listener, subject, issuer,
//! fingerprint of the refused leaf when there was one, reason, detail), rate-limited per
//! reason by [`crate::telemetry::refusal_log`].
//!
//! When rustls refuses a handshake it queues a fatal alert, and tokio-rustls writes it to
//! the socket before returning the error (one non-blocking write of a few dozen bytes;
//! should it ever block, that alert is lost and the client sees only the close). The client's own flight (its certificate,
//! CertificateVerify, Finished, often its first request) is by then partly unread in the
//! kernel's receive buffer; closing a socket with unread data makes Linux send a RST
//! instead of a FIN, and a client that gets the RST before it read the alert loses the
//! alert with it (curl: `(55) getpeername() failed with errno 107`, 11 times in 15).
//!
//! So: shut the write side down (FIN after the alert), then read and discard what the
//! client still sends until it closes, for at most [`ALERT_LINGER`] and
//! [`ALERT_LINGER_BYTES`]; only then close. A client that reads the alert closes at once,
//! so this usually takes one round trip; one that does not is cut at the bound. (The
//! lingering close after HTTP, `wire::LINGER`, is longer and larger: a client may still be
//! sending a whole request body.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::telemetry::refusal_log;
use crate::tls::refused::RefusedCert;

/// The refusal line of a handshake refused with `reason` (rate-limited per reason).
pub fn log(
    peer: std::net::SocketAddr,
    listener: &str,
    reason: &'static str,
    cert: Option<&RefusedCert>,
    error: &dyn std::fmt::Display,
) {
    if !refusal_log::allow(reason) {
        return;
    }
    let none = RefusedCert::default();
    let c = cert.unwrap_or(&none);
    let detail = if c.detail.is_empty() {
        error.to_string()
    } else {
        c.detail.clone()
    };
    tracing::info!(
        %peer,
        listener,
        subject = %c.subject,
        issuer = %c.issuer,
        fingerprint = %c.fingerprint,
        reason,
        %detail,
        "TLS handshake refused"
    );
}

/// The longest a refused connection is kept open to let the client read the alert.
pub const ALERT_LINGER: Duration = Duration::from_secs(1);
/// The most a refused client may still send before it is cut.
pub const ALERT_LINGER_BYTES: usize = 16 * 1024;

/// Send FIN after what was written, drain the client's remaining bytes (bounded), close.
pub async fn close(mut tcp: TcpStream) {
    let drain = async {
        if tcp.shutdown().await.is_err() {
            return;
        }
        discard(&mut tcp).await;
    };
    let _ = tokio::time::timeout(ALERT_LINGER, drain).await;
}

/// The same for a completed handshake refused afterwards (a resumed session whose client no
/// longer verifies): `close_notify`, FIN, drain, close.
pub async fn close_tls(mut tls: TlsStream<TcpStream>) {
    let drain = async {
        if tls.shutdown().await.is_err() {
            return;
        }
        discard(tls.get_mut().0).await;
    };
    let _ = tokio::time::timeout(ALERT_LINGER, drain).await;
}

/// Read and drop what the peer sends until it closes or [`ALERT_LINGER_BYTES`] have come.
async fn discard(tcp: &mut TcpStream) {
    let mut buf = [0u8; 2048];
    let mut seen = 0;
    while seen < ALERT_LINGER_BYTES {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen += n,
        }
    }
}
