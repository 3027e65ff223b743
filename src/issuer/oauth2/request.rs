//! What an issuer endpoint request carries, parsed: the form body
//! (`application/x-www-form-urlencoded`, media-type parameters such as `;charset=UTF-8`
//! accepted), and HTTP Basic client credentials; plus the OAuth2 error answer
//! ([`OAuthError`]) every endpoint uses.
//!
//! RFC 6749 §2.3.1 says Basic credentials are form-encoded before base64, but authlib
//! sends them raw. Both are accepted: the pair is split on the first `:`, and a secret that
//! decodes differently from its raw text is tried both ways (generated secrets use only
//! `[A-Za-z0-9._~-]`, where the two agree).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// An OAuth2 error answer (RFC 6749 §5.2, RFC 7009 §2.2.1). `reason` is the fixed label
/// for the audit line and the metrics; `code` and `description` go to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub reason: &'static str,
    pub description: &'static str,
    /// The client authenticated with the Authorization header: 401 with a Basic challenge.
    pub basic_challenge: bool,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: &'static str, reason: &'static str, description: &'static str) -> Self {
        OAuthError {
            code,
            reason,
            description,
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// The status the protocol gives this error: 429 past a rate limit; 401 for
    /// `invalid_client` after Basic credentials (RFC 6749 §5.2 requires the challenge);
    /// 400 for every other error.
    pub fn status(&self) -> u16 {
        if self.retry_after.is_some() {
            429
        } else if self.basic_challenge {
            401
        } else {
            400
        }
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error": self.code, "error_description": self.description}).to_string()
    }
}

pub fn invalid_request(reason: &'static str, description: &'static str) -> OAuthError {
    OAuthError::new("invalid_request", reason, description)
}

/// `invalid_client`, one text for every cause so no answer tells whether a client exists.
pub fn invalid_client(reason: &'static str, basic: bool) -> OAuthError {
    OAuthError {
        basic_challenge: basic,
        ..OAuthError::new("invalid_client", reason, "client authentication failed")
    }
}

/// A form body: name/value pairs, decoded.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Whether `content_type` is `application/x-www-form-urlencoded` (any parameters).
    pub fn is_form_type(content_type: Option<&str>) -> bool {
        content_type
            .and_then(|c| c.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
    }

    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let bad = || invalid_request("bad_form", "the request body is not a valid form");
        let text = std::str::from_utf8(body).map_err(|_| bad())?;
        let mut pairs = Vec::new();
        for part in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((
                form_decode(k).ok_or_else(bad)?,
                form_decode(v).ok_or_else(bad)?,
            ));
        }
        Ok(Form { pairs })
    }

    /// A parameter's value; more than once is an error (RFC 6749 §3.2), empty = absent.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => Err(invalid_request(
                "repeated_parameter",
                "a parameter is given more than once",
            )),
            (Some((_, v)), None) if !v.is_empty() => Ok(Some(v.as_str())),
            _ => Ok(None),
        }
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Credentials from `Authorization: Basic ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basic {
    pub client_id: String,
    /// The secret form-decoded, and as sent when that differs.
    pub secret: String,
    pub raw_secret: Option<String>,
}

/// `Ok(None)`: no Authorization header; `Err`: one that is not usable Basic credentials.
pub fn basic(header: Option<&[u8]>) -> Result<Option<Basic>, OAuthError> {
    let Some(h) = header else { return Ok(None) };
    let bad = || invalid_client("bad_basic_credentials", true);
    let text = std::str::from_utf8(h).map_err(|_| bad())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let pair = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = pair.split_once(':').ok_or_else(bad)?;
    let client_id = form_decode(id).unwrap_or_else(|| id.to_owned());
    let decoded_secret = form_decode(secret).unwrap_or_else(|| secret.to_owned());
    let raw_secret = (decoded_secret != secret).then(|| secret.to_owned());
    Ok(Some(Basic {
        client_id,
        secret: decoded_secret,
        raw_secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_basic_credentials_parse_like_authlib_sends_them() {
        let f = Form::parse(b"grant_type=client_credentials&scope=rs%2Fread+rs%2Fwrite").unwrap();
        assert_eq!(f.get("scope").unwrap(), Some("rs/read rs/write"));
        assert_eq!(f.get("client_id").unwrap(), None);
        let twice = Form::parse(b"a=1&a=2").unwrap();
        assert_eq!(twice.get("a").unwrap_err().code, "invalid_request");
        assert!(Form::is_form_type(Some(
            "application/x-www-form-urlencoded;charset=UTF-8"
        )));
        assert!(!Form::is_form_type(Some("application/json")));
        let h = format!("Basic {}", STANDARD.encode("cid:sec/ret:1"));
        let b = basic(Some(h.as_bytes())).unwrap().unwrap();
        assert_eq!(
            (b.client_id.as_str(), b.secret.as_str()),
            ("cid", "sec/ret:1")
        );
        let h = format!("Basic {}", STANDARD.encode("cid:a%2Bb"));
        let b = basic(Some(h.as_bytes())).unwrap().unwrap();
        assert_eq!(
            (b.secret.as_str(), b.raw_secret.as_deref()),
            ("a+b", Some("a%2Bb"))
        );
        let e = basic(Some(b"Bearer x")).unwrap_err();
        assert_eq!((e.code, e.status()), ("invalid_client", 401));
    }
}
