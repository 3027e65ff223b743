//! The client-certificate verifier: runs inside the TLS handshake, after the client sent
//! its certificate chain and before the handshake completes.
//!
//! It builds a path from the leaf to a root of the [`Truststore`] (intermediates: the ones
//! the client sent plus the store's `intermediates/`), requires the clientAuth EKU when an
//! EKU extension is present, checks revocation as configured and bounds the chain depth.
//! A rejection is logged at debug with its [`RejectReason`], counted, and turned into the
//! `rustls::Error` the client sees as an alert. [`ClientVerifier::verify_chain`] is the same
//! check, callable outside a handshake (after a resumed session, or by `cert verify`).
//!
//! Handshake signatures (`CertificateVerify`, the proof that the client holds the key) are
//! always checked by rustls's own functions and never cached.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptions,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

use super::truststore::Truststore;
use crate::config::{ClientAuth, Policy, Revocation, TruststoreConfig};
use crate::telemetry::metrics::TLS_CLIENT_CERT_VERIFICATIONS_TOTAL;

/// At most this many intermediates sent by a client are considered; more is refused as
/// `chain_too_long` without path building. A path never uses more than six (webpki's limit)
/// and `max_chain_depth` is usually lower; the slack allows cross-signed alternatives.
pub const MAX_PRESENTED_INTERMEDIATES: usize = 16;

/// The shortest RSA key a client certificate may have (NIST SP 800-131A, CA/B Forum).
/// aws-lc-rs verifies no signature by a shorter key, so without this check such a client
/// failed later, in its CertificateVerify, as `bad_signature`.
pub const MIN_RSA_KEY_BITS: usize = 2048;

/// Why a client chain was refused; [`RejectReason::label`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    UnknownIssuer,
    Expired,
    NotYetValid,
    Revoked,
    UnknownRevocationStatus,
    ExpiredCrl,
    BadEku,
    BadSignature,
    /// The client certificate's RSA key is shorter than [`MIN_RSA_KEY_BITS`].
    WeakKey,
    CaAsLeaf,
    ChainTooLong,
    NameConstraints,
    BadEncoding,
    UnsupportedAlgorithm,
    /// A certificate of the path breaks an RFC 5280 profile rule webpki does not check.
    Profile,
    Invalid,
}

impl RejectReason {
    /// Every reason, for the counters registered at 0 before the first refusal.
    pub const ALL: [RejectReason; 16] = [
        RejectReason::UnknownIssuer,
        RejectReason::Expired,
        RejectReason::NotYetValid,
        RejectReason::Revoked,
        RejectReason::UnknownRevocationStatus,
        RejectReason::ExpiredCrl,
        RejectReason::BadEku,
        RejectReason::BadSignature,
        RejectReason::WeakKey,
        RejectReason::CaAsLeaf,
        RejectReason::ChainTooLong,
        RejectReason::NameConstraints,
        RejectReason::BadEncoding,
        RejectReason::UnsupportedAlgorithm,
        RejectReason::Profile,
        RejectReason::Invalid,
    ];

    pub fn label(&self) -> &'static str {
        match self {
            RejectReason::UnknownIssuer => "unknown_issuer",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::Revoked => "revoked",
            RejectReason::UnknownRevocationStatus => "unknown_revocation_status",
            RejectReason::ExpiredCrl => "expired_crl",
            RejectReason::BadEku => "bad_eku",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::WeakKey => "weak_key",
            RejectReason::CaAsLeaf => "ca_as_leaf",
            RejectReason::ChainTooLong => "chain_too_long",
            RejectReason::NameConstraints => "name_constraints",
            RejectReason::BadEncoding => "bad_encoding",
            RejectReason::UnsupportedAlgorithm => "unsupported_algorithm",
            RejectReason::Profile => "profile",
            RejectReason::Invalid => "invalid",
        }
    }
}

/// A refused chain: the reason and a message for the log (never sent to the client).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    /// What the client is told (mapped to a TLS alert by rustls) when this error names the
    /// reason; otherwise the rejection itself travels in the handshake error
    /// ([`Rejection::to_tls_error`]).
    pub tls_error: CertificateError,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.label(), self.detail)
    }
}

impl std::error::Error for Rejection {}

/// A verified path, leaf first.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    pub leaf: CertificateDer<'static>,
    /// The intermediates used, leaf's issuer first.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// DER of the trust anchor's subject (the root that ended the path).
    pub anchor_subject: DistinguishedName,
}

/// The gateway's [`ClientCertVerifier`], bound to one truststore snapshot.
#[derive(Debug)]
pub struct ClientVerifier {
    truststore: Arc<Truststore>,
    revocation: Revocation,
    unknown_revocation: Policy,
    expired_crl: Policy,
    max_chain_depth: usize,
    client_auth: ClientAuth,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub fn new(
        truststore: Arc<Truststore>,
        settings: &TruststoreConfig,
        client_auth: ClientAuth,
    ) -> ClientVerifier {
        ClientVerifier {
            truststore,
            revocation: settings.revocation,
            unknown_revocation: settings.unknown_revocation,
            expired_crl: settings.expired_crl,
            max_chain_depth: settings.max_chain_depth,
            client_auth,
            algorithms: super::provider().signature_verification_algorithms,
        }
    }

    pub fn truststore(&self) -> &Arc<Truststore> {
        &self.truststore
    }

    /// Verify a client chain at `now`: the check the handshake runs, with logging and metric.
    pub fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedChain, Rejection> {
        let result = self.verify_path(end_entity, intermediates, now, KeyUsage::client_auth());
        match &result {
            Ok(_) => {
                metrics::counter!(TLS_CLIENT_CERT_VERIFICATIONS_TOTAL,
                    "result" => "accepted", "reason" => "ok")
                .increment(1);
            }
            Err(r) => {
                tracing::debug!(reason = r.reason.label(), detail = %r.detail,
                    "client certificate rejected");
                metrics::counter!(TLS_CLIENT_CERT_VERIFICATIONS_TOTAL,
                    "result" => "rejected", "reason" => r.reason.label())
                .increment(1);
            }
        }
        result
    }

    /// The path building behind [`ClientVerifier::verify_chain`], without logging or metric,
    /// for a given EKU requirement (`KeyUsage::client_auth()` in the handshake; the x509-limbo
    /// harness passes `server_auth()` for server-kind cases) and time. Peer-name checks are
    /// not part of it: see [`super::peer_name`].
    pub fn verify_path(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<VerifiedChain, Rejection> {
        // Bound the work a hostile client can cause before any parsing or signature check:
        // webpki's own budgets (100 signatures, 200k path-building steps) are per call, and
        // a client controls how many candidates it offers.
        if intermediates.len() > MAX_PRESENTED_INTERMEDIATES {
            return Err(Rejection {
                reason: RejectReason::ChainTooLong,
                detail: format!(
                    "client sent {} intermediates; at most {MAX_PRESENTED_INTERMEDIATES} are considered",
                    intermediates.len()
                ),
                tls_error: CertificateError::UnknownIssuer,
            });
        }
        let cert = EndEntityCert::try_from(end_entity).map_err(|e| reject(e, false))?;
        // Client-sent intermediates first (they are usually the right ones), then the store's.
        let store = self.truststore.intermediates();
        let mut pool: Vec<CertificateDer<'_>> =
            Vec::with_capacity(intermediates.len() + store.len());
        pool.extend(
            intermediates
                .iter()
                .map(|c| CertificateDer::from(c.as_ref())),
        );
        pool.extend(store.iter().map(|c| CertificateDer::from(c.as_ref())));

        let crls: Vec<&webpki::CertRevocationList<'_>> =
            self.truststore.revocation_lists().iter().collect();
        let revocation = self.revocation_options(&crls);

        let too_long = Cell::new(false);
        let max = self.max_chain_depth;
        let depth_check = |path: &webpki::VerifiedPath<'_>| {
            if path.intermediate_certificates().count() > max {
                too_long.set(true);
                // Any error works: webpki tries other paths and returns the last error.
                return Err(webpki::Error::MaximumPathDepthExceeded);
            }
            Ok(())
        };

        let path = cert
            .verify_for_usage(
                self.algorithms.all,
                self.truststore.anchors(),
                &pool,
                now,
                usage,
                revocation,
                Some(&depth_check),
            )
            .map_err(|e| {
                let too_long =
                    too_long.get() && matches!(e, webpki::Error::MaximumPathDepthExceeded);
                reject(e, too_long)
            })?;

        if let Some(bits) = super::profile::rsa_key_bits(cert.subject_public_key_info().as_ref())
            .filter(|&bits| bits < MIN_RSA_KEY_BITS)
        {
            return Err(Rejection {
                reason: RejectReason::WeakKey,
                detail: format!(
                    "the certificate's RSA key has {bits} bits; at least {MIN_RSA_KEY_BITS} are required"
                ),
                tls_error: CertificateError::BadSignature,
            });
        }

        if self.revocation != Revocation::Off
            && crls.is_empty()
            && self.unknown_revocation == Policy::Deny
        {
            return Err(Rejection {
                reason: RejectReason::UnknownRevocationStatus,
                detail: "revocation checking is on but no CRL is loaded".to_owned(),
                tls_error: CertificateError::UnknownRevocationStatus,
            });
        }

        // RFC 5280 profile rules webpki leaves out (see `profile`), on the accepted path only.
        let chain: Vec<CertificateDer<'_>> =
            path.intermediate_certificates().map(|c| c.der()).collect();
        let chain_ders: Vec<&[u8]> = chain.iter().map(|c| c.as_ref()).collect();
        let root = self.truststore.root_der(path.anchor()).map(|d| d.as_ref());
        super::profile::check_path(end_entity.as_ref(), &chain_ders, root, now).map_err(
            |detail| Rejection {
                reason: RejectReason::Profile,
                detail,
                tls_error: CertificateError::BadEncoding,
            },
        )?;

        Ok(VerifiedChain {
            leaf: end_entity.clone().into_owned(),
            intermediates: path
                .intermediate_certificates()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect(),
            anchor_subject: DistinguishedName::in_sequence(path.anchor().subject.as_ref()),
        })
    }

    fn revocation_options<'a>(
        &self,
        crls: &'a [&'a webpki::CertRevocationList<'a>],
    ) -> Option<RevocationOptions<'a>> {
        let depth = match self.revocation {
            Revocation::Off => return None,
            Revocation::EndEntity => RevocationCheckDepth::EndEntity,
            Revocation::FullChain => RevocationCheckDepth::Chain,
        };
        let status = match self.unknown_revocation {
            Policy::Allow => UnknownStatusPolicy::Allow,
            Policy::Deny => UnknownStatusPolicy::Deny,
        };
        let expiration = match self.expired_crl {
            Policy::Allow => ExpirationPolicy::Ignore,
            Policy::Deny => ExpirationPolicy::Enforce,
        };
        match RevocationOptionsBuilder::new(crls) {
            Ok(b) => Some(
                b.with_depth(depth)
                    .with_status_policy(status)
                    .with_expiration_policy(expiration)
                    .build(),
            ),
            // No CRL at all: webpki needs at least one, so `check` decides after path building.
            Err(_) => None,
        }
    }
}

fn reject(e: webpki::Error, too_long: bool) -> Rejection {
    use webpki::Error as E;
    let (reason, tls_error, detail) = if too_long {
        (
            RejectReason::ChainTooLong,
            CertificateError::UnknownIssuer,
            "no path within max_chain_depth intermediates".to_owned(),
        )
    } else {
        match e {
            E::UnknownIssuer => (
                RejectReason::UnknownIssuer,
                CertificateError::UnknownIssuer,
                "no path to a trusted root".to_owned(),
            ),
            E::CertExpired { time, not_after } => (
                RejectReason::Expired,
                CertificateError::ExpiredContext { time, not_after },
                format!("certificate expired at {}", rfc3339(not_after)),
            ),
            E::InvalidCertValidity => (
                RejectReason::Expired,
                CertificateError::Expired,
                "certificate validity period is invalid".to_owned(),
            ),
            E::CertNotValidYet { time, not_before } => (
                RejectReason::NotYetValid,
                CertificateError::NotValidYetContext { time, not_before },
                format!("certificate not valid before {}", rfc3339(not_before)),
            ),
            E::CertRevoked => (
                RejectReason::Revoked,
                CertificateError::Revoked,
                "a certificate in the chain is revoked".to_owned(),
            ),
            E::UnknownRevocationStatus => (
                RejectReason::UnknownRevocationStatus,
                CertificateError::UnknownRevocationStatus,
                "no CRL for an issuer in the chain".to_owned(),
            ),
            E::CrlExpired { time, next_update } => (
                RejectReason::ExpiredCrl,
                CertificateError::ExpiredRevocationListContext { time, next_update },
                format!("CRL expired at {}", rfc3339(next_update)),
            ),
            #[allow(deprecated)]
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => (
                RejectReason::BadEku,
                CertificateError::InvalidPurpose,
                "certificate's extended key usage does not allow this use (EKU)".to_owned(),
            ),
            E::InvalidSignatureForPublicKey | E::InvalidCrlSignatureForPublicKey => (
                RejectReason::BadSignature,
                CertificateError::BadSignature,
                format!("bad signature in the chain ({e})"),
            ),
            E::CaUsedAsEndEntity => (
                RejectReason::CaAsLeaf,
                CertificateError::InvalidPurpose,
                "a CA certificate was presented as the client certificate".to_owned(),
            ),
            E::MaximumPathDepthExceeded | E::PathLenConstraintViolated => (
                RejectReason::ChainTooLong,
                CertificateError::UnknownIssuer,
                format!("chain too long ({e})"),
            ),
            E::NameConstraintViolation => (
                RejectReason::NameConstraints,
                CertificateError::Other(rustls::OtherError(Arc::new(e.clone()))),
                "name constraints of an issuer are violated".to_owned(),
            ),
            E::BadDer | E::BadDerTime | E::TrailingData(_) | E::MalformedExtensions => (
                RejectReason::BadEncoding,
                CertificateError::BadEncoding,
                format!("malformed certificate ({e})"),
            ),
            #[allow(deprecated)]
            E::UnsupportedSignatureAlgorithm
            | E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKey
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => (
                RejectReason::UnsupportedAlgorithm,
                CertificateError::UnsupportedSignatureAlgorithm,
                format!("unsupported signature algorithm ({e})"),
            ),
            // webpki::Error is non_exhaustive: anything else is "invalid".
            other => (
                RejectReason::Invalid,
                CertificateError::Other(rustls::OtherError(Arc::new(other.clone()))),
                format!("certificate chain invalid: {other}"),
            ),
        }
    };
    Rejection {
        reason,
        detail,
        tls_error,
    }
}

/// `UnixTime` as RFC 3339 UTC.
pub(super) fn rfc3339(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => dt
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| secs.to_string()),
        Err(_) => secs.to_string(),
    }
}

/// `SystemTime` as RFC 3339 UTC (a time before 1970 shows as the epoch).
pub(super) fn system_rfc3339(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(UnixTime::since_unix_epoch(since))
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.client_auth != ClientAuth::None
    }

    fn client_auth_mandatory(&self) -> bool {
        self.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.truststore.root_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
            .map_err(|r| r.to_tls_error())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
