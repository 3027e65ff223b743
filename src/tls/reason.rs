//! Why a handshake failed, as the `reason` label of `portcullis_tls_handshakes_total` and
//! the refusal log line, and how a verifier [`Rejection`] travels through rustls so that
//! reason survives.
//!
//! rustls turns the verifier's error into the TLS alert the client gets (RFC 8446 §6.2):
//! `Expired`/`NotValidYet` → `certificate_expired`, `Revoked` → `certificate_revoked`,
//! `UnknownIssuer`, `UnknownRevocationStatus`, `ExpiredRevocationList` → `unknown_ca`,
//! `BadSignature`/`UnsupportedSignatureAlgorithm` → `decrypt_error`, `InvalidPurpose` →
//! `unsupported_certificate`, `BadEncoding` → `bad_certificate`, `Other` →
//! `certificate_unknown`. A rejection whose certificate error names its reason keeps that
//! error (and its alert); any other (`chain_too_long`, `ca_as_leaf`, `weak_key`,
//! `name_constraints`, `profile`, `invalid`) is sent as `Other` holding the [`Rejection`]
//! itself: the client gets `certificate_unknown`
//! ("some other issue rendered it unacceptable"), and the handshake metric reads the
//! reason back out of it.

use std::sync::Arc;

use rustls::{CertificateError, Error, InvalidMessage, OtherError};

use super::verifier::{RejectReason, Rejection};

impl Rejection {
    /// The error the handshake fails with (see the module docs).
    pub fn to_tls_error(&self) -> Error {
        let carried = if certificate_reason(&self.tls_error) == Some(self.reason.label()) {
            self.tls_error.clone()
        } else {
            CertificateError::Other(OtherError(Arc::new(self.clone())))
        };
        Error::InvalidCertificate(carried)
    }
}

/// `(result, reason)` labels for a handshake that failed with `err`.
pub fn handshake_failure(err: &Error) -> (&'static str, &'static str) {
    match err {
        Error::NoCertificatesPresented => ("rejected", "no_certificate"),
        Error::InvalidCertificate(c) => (
            "rejected",
            certificate_reason(c).unwrap_or("invalid_certificate"),
        ),
        // Over rustls's 64 KiB handshake-message limit. On a server the only client
        // message that grows that large is its certificate chain (ClientHellos are a few
        // KiB; one that large is counted here as well: rustls does not say which it was).
        Error::InvalidMessage(
            InvalidMessage::HandshakePayloadTooLarge | InvalidMessage::CertificatePayloadTooLarge,
        ) => ("rejected", "certificate_too_large"),
        _ => ("failed", "protocol"),
    }
}

/// Every `(result, reason)` pair a refused or failed handshake is counted under, so a
/// listener can register them at 0 before the first one happens.
pub fn handshake_refusal_labels() -> impl Iterator<Item = (&'static str, &'static str)> {
    let certificate = RejectReason::ALL
        .into_iter()
        .map(|r| ("rejected", r.label()));
    [
        ("rejected", "no_certificate"),
        ("rejected", "invalid_certificate"),
        ("rejected", "certificate_too_large"),
        ("failed", "protocol"),
        ("failed", "timeout"),
        ("failed", "io"),
    ]
    .into_iter()
    .chain(certificate)
}

/// Register the client-certificate verification counters at 0 (every reason).
pub fn register_verification_counters() {
    use crate::telemetry::metrics::TLS_CLIENT_CERT_VERIFICATIONS_TOTAL as V;
    metrics::counter!(V, "result" => "accepted", "reason" => "ok").increment(0);
    for r in RejectReason::ALL {
        metrics::counter!(V, "result" => "rejected", "reason" => r.label()).increment(0);
    }
}

/// The reason label a certificate error names, if it names one.
fn certificate_reason(c: &CertificateError) -> Option<&'static str> {
    use CertificateError as C;
    Some(match c {
        C::Expired | C::ExpiredContext { .. } => "expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
        C::Revoked => "revoked",
        C::UnknownIssuer => "unknown_issuer",
        C::BadSignature => "bad_signature",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "bad_eku",
        C::UnknownRevocationStatus => "unknown_revocation_status",
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => "expired_crl",
        C::BadEncoding => "bad_encoding",
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => "unsupported_algorithm",
        C::Other(o) => return o.0.downcast_ref::<Rejection>().map(|r| r.reason.label()),
        // CertificateError is non_exhaustive: anything else has no reason of its own.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::RejectReason;

    fn rejection(reason: RejectReason, tls_error: CertificateError) -> Rejection {
        Rejection {
            reason,
            detail: "test".into(),
            tls_error,
        }
    }

    #[test]
    fn every_reason_survives_and_plain_ones_keep_their_alert() {
        use RejectReason as R;
        let cases = [
            (R::UnknownIssuer, CertificateError::UnknownIssuer, true),
            (R::Revoked, CertificateError::Revoked, true),
            (R::BadEku, CertificateError::InvalidPurpose, true),
            (R::ChainTooLong, CertificateError::UnknownIssuer, false),
            (R::CaAsLeaf, CertificateError::InvalidPurpose, false),
            (R::WeakKey, CertificateError::BadSignature, false),
            (R::Profile, CertificateError::BadEncoding, false),
        ];
        for (reason, tls_error, kept) in cases {
            let err = rejection(reason, tls_error.clone()).to_tls_error();
            assert_eq!(handshake_failure(&err), ("rejected", reason.label()));
            let Error::InvalidCertificate(sent) = err else {
                panic!("{reason:?}: not a certificate error");
            };
            assert_eq!(sent == tls_error, kept, "{reason:?}: {sent:?}");
        }
    }

    #[test]
    fn oversized_certificates_and_other_failures() {
        let big = Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge);
        assert_eq!(
            handshake_failure(&big),
            ("rejected", "certificate_too_large")
        );
        assert_eq!(
            handshake_failure(&Error::DecryptError),
            ("failed", "protocol")
        );
    }
}
