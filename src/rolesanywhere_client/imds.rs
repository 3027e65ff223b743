//! The agent's answers, from memory only (no I/O, no wait on a refresh), so each request is
//! answered at once; botocore gives IMDS one second, once.
//!
//! - IMDSv2 as botocore uses it: `PUT /latest/api/token` (TTL header 1–21600 s, 21600 when
//!   absent, echoed; `X-Forwarded-For` → 400: a token is for processes on this host, not
//!   for what a proxy relays), then `GET /latest/meta-data/iam/security-credentials/` (the
//!   role name) and `GET …/<role>` (the credentials document), each with a live token in
//!   `x-aws-ec2-metadata-token`: missing, unknown or expired → 401 (IMDSv1 is refused).
//!   Unknown paths → 404, other methods → 405.
//! - The container endpoint `GET /v1/credentials` (`AWS_CONTAINER_CREDENTIALS_FULL_URI`),
//!   only with `--container-token-file`: `Authorization` must equal that token (missing →
//!   401, different → 403); without the file it is not served (404).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use time::OffsetDateTime;

use super::Credentials;

const TOKEN_PATH: &str = "/latest/api/token";
const CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials";
const CONTAINER_PATH: &str = "/v1/credentials";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TTL: u64 = 21_600;
/// Live IMDS tokens kept at most; a new one evicts the one closest to expiry.
const MAX_TOKENS: usize = 256;

/// What is served now.
pub struct Served {
    pub credentials: Credentials,
    /// When they were fetched (`LastUpdated`).
    pub fetched: OffsetDateTime,
}

/// The agent's request handler.
pub struct Imds {
    pub current: Arc<ArcSwap<Served>>,
    role_name: String,
    container_token: Option<String>,
    /// token → expiry. A small map under a short lock: the agent's handful of SDK
    /// processes, not a gateway hot path.
    tokens: Mutex<HashMap<String, Instant>>,
}

impl Imds {
    pub fn new(
        current: Arc<ArcSwap<Served>>,
        role_name: String,
        container_token: Option<String>,
    ) -> Imds {
        Imds {
            current,
            role_name,
            container_token,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path.trim_end_matches('/') == TOKEN_PATH {
            return self.put_token(req);
        }
        if path == CONTAINER_PATH {
            return self.container(req);
        }
        if req.method() != Method::GET {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        let Some(remaining) = self.token_remaining(req) else {
            return answer(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "IMDSv2 only: PUT /latest/api/token first, then send x-aws-ec2-metadata-token\n"
                    .into(),
            );
        };
        let mut resp = match path.strip_prefix(CREDS_PATH) {
            Some("" | "/") => answer(StatusCode::OK, "text/plain", self.role_name.clone()),
            Some(rest)
                if rest.strip_prefix('/').map(|r| r.trim_end_matches('/'))
                    == Some(self.role_name.as_str()) =>
            {
                let served = self.current.load();
                answer(
                    StatusCode::OK,
                    "application/json",
                    served.credentials.imds_json(served.fetched),
                )
            }
            _ => answer(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        };
        resp.headers_mut()
            .insert(TTL_HEADER, HeaderValue::from(remaining.as_secs()));
        resp
    }

    fn put_token<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::PUT {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "PUT only\n".into(),
            );
        }
        if req.headers().contains_key("x-forwarded-for") {
            return answer(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "a token request must not come through a proxy (X-Forwarded-For)\n".into(),
            );
        }
        let ttl = match req.headers().get(TTL_HEADER) {
            None => MAX_TTL,
            Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(t) if (1..=MAX_TTL).contains(&t) => t,
                _ => {
                    return answer(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!(
                            "{TTL_HEADER} must be a whole number of seconds from 1 to {MAX_TTL}\n"
                        ),
                    )
                }
            },
        };
        let mut bytes = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "no randomness\n".into(),
            );
        }
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|_, exp| *exp > now);
            if tokens.len() >= MAX_TOKENS {
                if let Some(first) = tokens
                    .iter()
                    .min_by_key(|(_, e)| **e)
                    .map(|(t, _)| t.clone())
                {
                    tokens.remove(&first);
                }
            }
            tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        }
        let mut resp = answer(StatusCode::OK, "text/plain", token);
        resp.headers_mut()
            .insert(TTL_HEADER, HeaderValue::from(ttl));
        resp
    }

    /// The time left on the request's token; `None` when missing, unknown or expired.
    fn token_remaining<B>(&self, req: &Request<B>) -> Option<Duration> {
        let token = req.headers().get(TOKEN_HEADER)?.to_str().ok()?;
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let exp = *tokens.get(token)?;
        exp.checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    fn container<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let Some(expected) = &self.container_token else {
            return answer(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found (start the agent with --container-token-file)\n".into(),
            );
        };
        if req.method() != Method::GET {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        let Some(given) = req.headers().get(header::AUTHORIZATION) else {
            return answer(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "Authorization required\n".into(),
            );
        };
        if aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), expected.as_bytes())
            .is_err()
        {
            return answer(
                StatusCode::FORBIDDEN,
                "text/plain",
                "wrong Authorization token\n".into(),
            );
        }
        let served = self.current.load();
        answer(
            StatusCode::OK,
            "application/json",
            served.credentials.container_json(),
        )
    }
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
