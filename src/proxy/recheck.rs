//! Revocation that reaches open connections: runs first for every request, before routing.
//!
//! Each connection remembers the truststore generation its identity verified under. When
//! the current generation is newer, the presented chain is checked again (identity cache
//! first, so a reload costs each open connection one verification, not one per request).
//! If it no longer verifies, the request gets 403 with reason `revoked` (the chain or one of
//! its CAs is on a CRL) or `untrusted` (anything else, e.g. its CA was removed), and the
//! connection is closed after the response (HTTP/1.1 `connection: close`; HTTP/2 GOAWAY).
//! The refusal is counted in `portcullis_revoked_connections_total` and logged once per
//! connection with its identity.

use std::sync::atomic::Ordering;

use rustls_pki_types::UnixTime;

use crate::error::{ErrorKind, GatewayError};
use crate::identity::ConnInfo;
use crate::state::TrustState;
use crate::telemetry::metrics as m;
use crate::tls::{IdentifyError, RejectReason};

/// A connection whose identity no longer verifies: the access-log reason and the error.
#[derive(Debug)]
pub struct Refused {
    pub reason: &'static str,
    pub error: GatewayError,
}

/// Check `conn` against the current generation; `Ok` when it may go on.
pub fn recheck(trust: &TrustState, conn: &ConnInfo) -> Result<(), Refused> {
    let state = &conn.trust;
    if state.refused.load(Ordering::Relaxed) {
        return Err(refused(state.refused_reason()));
    }
    let Some((leaf, intermediates)) = state.chain.split_first() else {
        return Ok(());
    };
    if state.generation.load(Ordering::Acquire) >= trust.generation {
        return Ok(());
    }
    match trust
        .verifier
        .identify(leaf, intermediates, UnixTime::now())
    {
        Ok(_) => {
            state
                .generation
                .fetch_max(trust.generation, Ordering::AcqRel);
            Ok(())
        }
        Err(e) => {
            let (reason, detail) = match &e {
                IdentifyError::Rejected(r) if r.reason == RejectReason::Revoked => {
                    ("revoked", r.detail.clone())
                }
                IdentifyError::Rejected(r) => ("untrusted", r.to_string()),
                IdentifyError::BadIdentity => ("untrusted", e.to_string()),
            };
            state.set_refused_reason(reason);
            if !state.refused.swap(true, Ordering::AcqRel) {
                metrics::counter!(m::REVOKED_CONNECTIONS_TOTAL, "reason" => reason).increment(1);
                let id = conn.identity();
                tracing::warn!(
                    peer = %conn.peer,
                    subject = id.map_or("", |i| i.subject.as_str()),
                    fingerprint = id.map_or("", |i| i.fingerprint.as_str()),
                    reason,
                    %detail,
                    generation = trust.generation,
                    "open connection refused after a truststore reload; closing it"
                );
            }
            state.close.notify_one();
            Err(refused(reason))
        }
    }
}

fn refused(reason: &'static str) -> Refused {
    Refused {
        reason,
        error: GatewayError::new(
            ErrorKind::Forbidden,
            "the client certificate is no longer trusted",
        ),
    }
}
