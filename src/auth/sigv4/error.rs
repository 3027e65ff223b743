//! Why a signed request was refused: AWS's error code, a fixed reason label, a message.

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigv4Error {
    /// Neither an `AWS4-HMAC-SHA256` authorization header nor a presigned query.
    Missing,
    /// Both the header form and presigned query parameters.
    MixedForms,
    /// The authorization header or presigned parameters are malformed or incomplete.
    Malformed(&'static str),
    /// A header that must be signed (`host`, an `x-amz-*`) is not in SignedHeaders.
    UnsignedHeader,
    /// A header named in SignedHeaders is not in the request.
    SignedHeaderMissing,
    /// No usable date, or it differs from the credential scope's date.
    BadDate,
    /// The scope's region or service is not one this gateway accepts.
    BadScope,
    /// Outside `max_skew`, or a presigned URL past its expiry.
    Expired,
    /// `X-Amz-Expires` above `max_presign_expiry`.
    ExpiryTooLong,
    UnknownKey,
    InvalidToken,
    /// `UNSIGNED-PAYLOAD` while `allow_unsigned_payload = false`.
    UnsignedPayload,
    /// `x-amz-content-sha256` is not the hash of the body.
    PayloadHashMismatch,
    SignatureMismatch,
    /// A session credential (`ASIA…` issued by `[issuer.sessions]`) was refused.
    Session(SessionRefusal),
}

/// Why a session credential was refused, each with its own reason label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// An `ASIA…` id not in the credentials file, without `X-Amz-Security-Token`.
    TokenMissing,
    /// The header form carries the token but does not sign it.
    TokenNotSigned,
    /// The token does not open with a sealing key of this gateway, or opens to another
    /// access key id (tampered, foreign, or moved to another key).
    TokenInvalid,
    /// The session's `exp` has passed.
    Expired,
    /// Revoked by the operator: its access key id, role or certificate.
    Revoked,
    /// The leaf that opened the session is on a CRL of its trust anchor.
    CertificateRevoked,
    /// The trust anchor that verified the leaf is no longer configured.
    AnchorGone,
    /// The session's role is no longer configured.
    RoleGone,
}

impl Sigv4Error {
    /// The error code in AWS's vocabulary (the JSON body's `__type`).
    pub fn code(self) -> &'static str {
        use Sigv4Error as E;
        match self {
            E::Missing => "MissingAuthenticationToken",
            E::MixedForms | E::Malformed(_) | E::UnsignedHeader | E::SignedHeaderMissing => {
                "IncompleteSignature"
            }
            E::BadDate
            | E::BadScope
            | E::ExpiryTooLong
            | E::UnsignedPayload
            | E::PayloadHashMismatch => "InvalidSignatureException",
            E::Expired => "RequestExpired",
            E::UnknownKey | E::InvalidToken => "InvalidClientTokenId",
            E::SignatureMismatch => "SignatureDoesNotMatch",
            E::Session(SessionRefusal::TokenNotSigned) => "IncompleteSignature",
            E::Session(SessionRefusal::Expired) => "ExpiredToken",
            E::Session(
                SessionRefusal::TokenMissing
                | SessionRefusal::TokenInvalid
                | SessionRefusal::Revoked
                | SessionRefusal::CertificateRevoked
                | SessionRefusal::AnchorGone
                | SessionRefusal::RoleGone,
            ) => "InvalidClientTokenId",
        }
    }

    /// The fixed label for logs and metrics.
    pub fn reason(self) -> &'static str {
        use Sigv4Error as E;
        match self {
            E::Missing => "sigv4_missing",
            E::MixedForms => "sigv4_mixed_forms",
            E::Malformed(r) => r,
            E::UnsignedHeader => "sigv4_header_not_signed",
            E::SignedHeaderMissing => "sigv4_signed_header_missing",
            E::BadDate => "sigv4_bad_date",
            E::BadScope => "sigv4_bad_scope",
            E::Expired => "sigv4_expired",
            E::ExpiryTooLong => "sigv4_expiry_too_long",
            E::UnknownKey => "sigv4_unknown_access_key",
            E::InvalidToken => "sigv4_invalid_session_token",
            E::UnsignedPayload => "sigv4_unsigned_payload",
            E::PayloadHashMismatch => "sigv4_payload_hash_mismatch",
            E::SignatureMismatch => "sigv4_signature_mismatch",
            E::Session(r) => match r {
                SessionRefusal::TokenMissing => "sigv4_session_token_missing",
                SessionRefusal::TokenNotSigned => "sigv4_session_token_not_signed",
                SessionRefusal::TokenInvalid => "sigv4_session_token_invalid",
                SessionRefusal::Expired => "sigv4_session_expired",
                SessionRefusal::Revoked => "sigv4_session_revoked",
                SessionRefusal::CertificateRevoked => "sigv4_session_certificate_revoked",
                SessionRefusal::AnchorGone => "sigv4_session_trust_anchor_unknown",
                SessionRefusal::RoleGone => "sigv4_session_role_unknown",
            },
        }
    }

    /// A message safe to show the client.
    pub fn message(self) -> &'static str {
        use Sigv4Error as E;
        match self {
            E::Missing => "Missing Authentication Token",
            E::MixedForms => "Only one auth mechanism allowed; a request must not carry both an Authorization header and X-Amz-Algorithm query parameters",
            E::Malformed(_) => "The authorization header or presigned query parameters are malformed or incomplete",
            E::UnsignedHeader => "The host header and every x-amz-* header (except x-amz-security-token) must be signed",
            E::SignedHeaderMissing => "A header named in SignedHeaders is not in the request",
            E::BadDate => "The request date is missing, malformed, or differs from the credential scope date",
            E::BadScope => "Credential should be scoped to a valid region and service",
            E::Expired => "Signature expired or not yet valid",
            E::ExpiryTooLong => "X-Amz-Expires is longer than this gateway allows",
            E::UnknownKey => "The security token included in the request is invalid",
            E::InvalidToken => "The security token included in the request is invalid",
            E::UnsignedPayload => "UNSIGNED-PAYLOAD is not accepted here; sign the payload",
            E::PayloadHashMismatch => "x-amz-content-sha256 does not match the request body",
            E::SignatureMismatch => "The request signature we calculated does not match the signature you provided",
            E::Session(SessionRefusal::TokenMissing) => "A session access key needs its X-Amz-Security-Token",
            E::Session(SessionRefusal::TokenNotSigned) => "X-Amz-Security-Token must be signed (name it in SignedHeaders)",
            E::Session(SessionRefusal::Expired) => "The security token included in the request is expired",
            E::Session(
                SessionRefusal::TokenInvalid
                | SessionRefusal::Revoked
                | SessionRefusal::CertificateRevoked
                | SessionRefusal::AnchorGone
                | SessionRefusal::RoleGone,
            ) => "The security token included in the request is invalid",
        }
    }
}
