//! Why a CreateSession was refused: the AWS error type the client reads (its status, the
//! `x-amzn-ErrorType` header), a message safe to show, and a fixed reason label for the
//! audit line and the metric. Every signature failure shows the same message: the client
//! is never told which part of its signature was wrong.

use crate::tls::RejectReason;

/// The AWS error types of CreateSession, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    Validation,
    NotFound,
    Internal,
}

impl Code {
    /// The one place these error types map to a status.
    pub fn status(self) -> u16 {
        match self {
            Code::AccessDenied => 403,
            Code::Validation => 400,
            Code::NotFound => 404,
            Code::Internal => 500,
        }
    }

    /// The `x-amzn-ErrorType` value.
    pub fn name(self) -> &'static str {
        match self {
            Code::AccessDenied => "AccessDeniedException",
            Code::Validation => "ValidationException",
            Code::NotFound => "ResourceNotFoundException",
            Code::Internal => "InternalServerException",
        }
    }
}

/// A refused CreateSession.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: Code,
    /// Fixed label: the audit line's `reason` and the metric's.
    pub reason: &'static str,
    pub message: &'static str,
    /// For the audit line only (the verifier's words about a chain), never sent.
    pub detail: Option<String>,
}

/// What every signature and certificate failure tells the client.
pub const SIGNATURE_MESSAGE: &str = "Unable to verify the request signature";

impl Refusal {
    pub fn new(code: Code, reason: &'static str, message: &'static str) -> Refusal {
        Refusal {
            code,
            reason,
            message,
            detail: None,
        }
    }

    /// A 400 about the request's shape.
    pub fn invalid(reason: &'static str, message: &'static str) -> Refusal {
        Refusal::new(Code::Validation, reason, message)
    }

    /// A 403 whose message says only that the signature did not verify.
    pub fn signature(reason: &'static str) -> Refusal {
        Refusal::new(Code::AccessDenied, reason, SIGNATURE_MESSAGE)
    }

    /// A 403 with its own message.
    pub fn denied(reason: &'static str, message: &'static str) -> Refusal {
        Refusal::new(Code::AccessDenied, reason, message)
    }

    /// A 404 for an ARN that names nothing configured here.
    pub fn not_found(reason: &'static str, message: &'static str) -> Refusal {
        Refusal::new(Code::NotFound, reason, message)
    }

    /// The chain verifier's refusal of the presented certificate.
    pub fn certificate(reason: RejectReason, detail: String) -> Refusal {
        Refusal {
            code: Code::AccessDenied,
            reason: certificate_reason(reason),
            message: "The certificate is not trusted by the trust anchor",
            detail: Some(detail),
        }
    }
}

/// The audit reason of a chain refusal: the mTLS verifier's label, prefixed `certificate_`.
pub fn certificate_reason(r: RejectReason) -> &'static str {
    match r {
        RejectReason::UnknownIssuer => "certificate_unknown_issuer",
        RejectReason::Expired => "certificate_expired",
        RejectReason::NotYetValid => "certificate_not_yet_valid",
        RejectReason::Revoked => "certificate_revoked",
        RejectReason::UnknownRevocationStatus => "certificate_unknown_revocation_status",
        RejectReason::ExpiredCrl => "certificate_expired_crl",
        RejectReason::BadEku => "certificate_bad_eku",
        RejectReason::BadSignature => "certificate_bad_signature",
        RejectReason::WeakKey => "certificate_weak_key",
        RejectReason::CaAsLeaf => "certificate_ca_as_leaf",
        RejectReason::ChainTooLong => "certificate_chain_too_long",
        RejectReason::NameConstraints => "certificate_name_constraints",
        RejectReason::BadEncoding => "certificate_bad_encoding",
        RejectReason::UnsupportedAlgorithm => "certificate_unsupported_algorithm",
        RejectReason::Profile => "certificate_profile",
        RejectReason::Invalid => "certificate_invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chain_reason_keeps_the_verifier_label() {
        for r in RejectReason::ALL {
            assert_eq!(certificate_reason(r), format!("certificate_{}", r.label()));
        }
        assert_eq!(Code::NotFound.status(), 404);
        assert_eq!(Code::Validation.name(), "ValidationException");
    }
}
