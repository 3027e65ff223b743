//! Per-request authentication: none, HTTP Basic credentials (e.g. OAuth2
//! `client_secret_basic` against a token endpoint), a bearer token (fixed, or fetched with
//! OAuth2 client credentials and refreshed before it expires), or an AWS SigV4 signature.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use http_body_util::{BodyExt, Full};

use crate::conn::{self, Target};
use crate::sigv4::{self, Credentials, Unsigned};

/// Where client-credentials tokens come from.
#[derive(Clone, Debug)]
pub struct TokenEndpoint {
    pub url: http::Uri,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
}

pub enum Auth {
    None,
    /// `Authorization: Basic …`, built once.
    Basic(HeaderValue),
    /// The current token (replaced by the refresher for client credentials).
    Bearer(Arc<RwLock<HeaderValue>>),
    SigV4(Credentials),
}

impl Auth {
    /// Adds this scheme's headers to a request for `path_and_query` on `host`.
    pub fn apply(&self, headers: &mut HeaderMap, method: &str, path_and_query: &str, host: &str) {
        match self {
            Auth::None => {}
            Auth::Basic(v) => {
                headers.insert(http::header::AUTHORIZATION, v.clone());
            }
            Auth::Bearer(t) => {
                let v = match t.read() {
                    Ok(g) => g.clone(),
                    Err(p) => p.into_inner().clone(),
                };
                headers.insert(http::header::AUTHORIZATION, v);
            }
            Auth::SigV4(c) => {
                let (path, query) = path_and_query
                    .split_once('?')
                    .unwrap_or((path_and_query, ""));
                let req = Unsigned {
                    method,
                    path,
                    query,
                    headers: &[("host", host)],
                    payload_sha256: sigv4::EMPTY_SHA256,
                };
                for (k, v) in sigv4::sign(c, &req, &amz_date(SystemTime::now())) {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        headers.insert(HeaderName::from_static(k), v);
                    }
                }
            }
        }
    }
}

/// `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn bearer_value(token: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow!("token is not a valid header value"))
}

/// `Basic base64(form(id) ":" form(secret))` from `ID:SECRET` (RFC 6749 §2.3.1: both
/// parts form-encoded first; the identity for generated secrets in `[A-Za-z0-9._~-]`).
pub fn basic_value(id_secret: &str) -> Result<HeaderValue> {
    let (id, secret) = id_secret
        .split_once(':')
        .ok_or_else(|| anyhow!("--basic-auth: want ID:SECRET"))?;
    let pair = format!("{}:{}", form(id), form(secret));
    HeaderValue::from_str(&format!("Basic {}", base64(pair.as_bytes())))
        .map_err(|_| anyhow!("--basic-auth: not a valid header value"))
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Fetches a token: (access_token, expires_in).
pub async fn fetch_token(
    ep: &TokenEndpoint,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(String, Duration)> {
    let target = Target::from_uri(&ep.url, None).await?;
    let mut c = conn::connect(&target, tls, false)
        .await
        .map_err(|e| anyhow!("token endpoint: {e}"))?;
    let mut body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        form(&ep.client_id),
        form(&ep.client_secret)
    );
    if let Some(s) = &ep.scope {
        body.push_str(&format!("&scope={}", form(s)));
    }
    let req = http::Request::post(target.request_uri(false))
        .header(http::header::HOST, target.authority.as_str())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(body)))?;
    let resp = c
        .sender
        .send(req)
        .await
        .map_err(|e| anyhow!("token request: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .context("token response")?
        .to_bytes();
    if !status.is_success() {
        bail!(
            "token endpoint answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    parse_token(&bytes)
}

pub fn parse_token(body: &[u8]) -> Result<(String, Duration)> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("token response is not JSON")?;
    let token = v["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("token response has no access_token"))?
        .to_string();
    let secs = v["expires_in"].as_u64().unwrap_or(3600);
    Ok((token, Duration::from_secs(secs)))
}

/// When to refresh a token that lives `life`: at 80 % of its life, at least 1 s later.
pub fn refresh_after(life: Duration) -> Duration {
    (life.mul_f64(0.8)).max(Duration::from_secs(1))
}

/// Keeps `slot` fresh until the process ends.
pub fn spawn_refresher(
    ep: TokenEndpoint,
    tls: Arc<rustls::ClientConfig>,
    slot: Arc<RwLock<HeaderValue>>,
    first_life: Duration,
) {
    tokio::spawn(async move {
        let mut wait = refresh_after(first_life);
        loop {
            tokio::time::sleep(wait).await;
            match fetch_token(&ep, tls.clone()).await {
                Ok((t, life)) => {
                    if let (Ok(v), Ok(mut g)) = (bearer_value(&t), slot.write()) {
                        *g = v;
                    }
                    wait = refresh_after(life);
                }
                Err(e) => {
                    eprintln!("token refresh failed (retrying in 1s): {e:#}");
                    wait = Duration::from_secs(1);
                }
            }
        }
    });
}

fn form(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_and_refresh_time() {
        let (t, life) =
            parse_token(br#"{"access_token":"abc","expires_in":300,"token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!((t.as_str(), life), ("abc", Duration::from_secs(300)));
        assert_eq!(refresh_after(life), Duration::from_secs(240));
        assert_eq!(refresh_after(Duration::ZERO), Duration::from_secs(1));
        assert!(parse_token(b"{}").is_err());
    }

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        // RFC 4648 §10 vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            basic_value("Aladdin:open sesame").unwrap(),
            "Basic QWxhZGRpbjpvcGVuJTIwc2VzYW1l"
        );
        assert_eq!(
            basic_value("id:a-Z_9.~").unwrap(),
            format!("Basic {}", base64(b"id:a-Z_9.~"))
        );
        assert!(basic_value("no-colon").is_err());
        let mut h = HeaderMap::new();
        Auth::Basic(basic_value("a:b").unwrap()).apply(&mut h, "POST", "/oauth2/token", "x");
        assert_eq!(h["authorization"], "Basic YTpi");
    }

    #[test]
    fn amz_date_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
    }

    #[test]
    fn sigv4_adds_date_and_authorization() {
        let auth = Auth::SigV4(Credentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            session_token: Some("tok".into()),
            region: "us-east-1".into(),
            service: "execute-api".into(),
        });
        let mut h = HeaderMap::new();
        auth.apply(&mut h, "GET", "/a?b=c", "example.test");
        assert!(h["authorization"]
            .to_str()
            .unwrap()
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token"));
        assert_eq!(h["x-amz-security-token"], "tok");
        assert!(h.contains_key("x-amz-date"));
    }
}
