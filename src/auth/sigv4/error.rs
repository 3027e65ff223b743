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
        }
    }
}
