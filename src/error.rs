//! The one place where a failed request becomes a response.
//!
//! Every phase ends a request with a [`GatewayError`]; its [`ErrorKind`] fixes the HTTP
//! status, the `x-portcullis-error` header, the JSON body's `error` field and the metric
//! and log reason. The message is chosen by the phase from fixed text: never an internal
//! detail (no file paths, peer addresses or library error strings).

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// The header that names the kind of a gateway-generated error.
pub const ERROR_HEADER: &str = "x-portcullis-error";

/// Every way the gateway itself can end a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthenticated,
    Forbidden,
    /// A SigV4 signature was missing or did not verify (403, AWS error code in the body).
    SignatureRejected,
    NoRoute,
    MethodNotAllowed,
    PayloadTooLarge,
    /// A request framed with a transfer coding the gateway does not implement (501).
    NotImplemented,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::SignatureRejected => StatusCode::FORBIDDEN,
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the gateway refused the request (the client's doing or its lack of rights),
    /// as opposed to failing it: refusals get an `info` line in the diagnostic log.
    pub fn is_refusal(self) -> bool {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::SignatureRejected
            | ErrorKind::NoRoute
            | ErrorKind::MethodNotAllowed
            | ErrorKind::PayloadTooLarge
            | ErrorKind::NotImplemented => true,
            ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout | ErrorKind::Internal => {
                false
            }
        }
    }

    /// The stable name used in the header, the JSON body, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::SignatureRejected => "signature_rejected",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A request the gateway ends itself: a kind and a short, safe, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    /// `WWW-Authenticate` challenge to send with a 401/403 (RFC 6750), if any.
    pub challenge: Option<HeaderValue>,
    /// AWS error code (`SignatureDoesNotMatch`, ...) for SigV4 failures: sent as the JSON
    /// body's `__type` and the `x-amzn-errortype` header.
    pub aws_code: Option<&'static str>,
    /// `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the path does take. Boxed:
    /// every phase returns this error, and clippy holds `Result`'s error to 128 bytes.
    pub allow: Option<Box<HeaderValue>>,
}

impl GatewayError {
    /// 413: the request body is over the route's `max_body_size` (or SigV4's buffer).
    pub fn body_too_large() -> Self {
        GatewayError::new(
            ErrorKind::PayloadTooLarge,
            "the request body is larger than this route allows",
        )
    }

    /// 400: the client's request body could not be read (malformed chunked framing, a
    /// reset stream, a connection cut mid-body): the client's fault, never the upstream's.
    pub fn bad_body() -> Self {
        GatewayError::new(
            ErrorKind::BadRequest,
            "the request body is malformed or incomplete",
        )
    }

    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            challenge: None,
            aws_code: None,
            allow: None,
        }
    }

    /// 405 with `Allow: <methods>` (comma-separated, as RFC 9110 §10.2.1 lists them).
    pub fn method_not_allowed<'m>(
        methods: impl IntoIterator<Item = &'m str>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut listed: Vec<&str> = Vec::new();
        for m in methods {
            if !listed.contains(&m) {
                listed.push(m);
            }
        }
        let mut e = GatewayError::new(ErrorKind::MethodNotAllowed, message);
        // Method names are tokens (visible ASCII), so the joined list is a valid value.
        e.allow = HeaderValue::from_str(&listed.join(", ")).ok().map(Box::new);
        e
    }

    /// A SigV4 failure in AWS's vocabulary.
    pub fn aws(kind: ErrorKind, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            aws_code: Some(code),
            challenge: None,
            allow: None,
        }
    }

    /// The response: status, `x-portcullis-error`, and `{"error": kind, "message": text}`.
    pub fn to_response(&self) -> Response<Bytes> {
        let body = match self.aws_code {
            Some(code) => {
                serde_json::json!({ "__type": code, "message": self.message, "error": self.kind.as_str() })
            }
            None => serde_json::json!({ "error": self.kind.as_str(), "message": self.message }),
        };
        let mut resp = Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = self.kind.status();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.kind.as_str()));
        if let Some(c) = &self.challenge {
            headers.insert(header::WWW_AUTHENTICATE, c.clone());
        }
        if let Some(code) = self.aws_code {
            headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
        }
        if let Some(allow) = &self.allow {
            headers.insert(header::ALLOW, (**allow).clone());
        }
        resp
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_carries_kind_status_and_json() {
        let e = GatewayError::new(ErrorKind::Forbidden, "not allowed on this route");
        let resp = e.to_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[ERROR_HEADER], "forbidden");
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["message"], "not allowed on this route");
    }

    #[test]
    fn a_405_lists_each_allowed_method_once() {
        let e = GatewayError::method_not_allowed(["GET", "POST", "GET"], "no");
        let resp = e.to_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET, POST");
    }
}
