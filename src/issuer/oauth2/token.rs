//! Access tokens: minted as Cognito-style JWTs (so resource servers written for Cognito
//! accept them), and read back for revocation and introspection.
//!
//! Header `{"alg","kid","typ":"JWT"}`. Claims: `iss`, `sub` = `client_id`, `client_id`,
//! `token_use` = "access", `scope` (space-separated), `iat`, `auth_time` (= `iat`), `exp`,
//! `jti` (random 128 bits, UUID form), `version` = 2, no `aud`; plus RFC 8705
//! `cnf.x5t#S256` (base64url SHA-256 of the client certificate's DER) when the token request
//! came over a connection with a verified client certificate.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::super::keys::KeySet;

/// What goes into a new token.
pub struct Mint<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub iat: i64,
    pub exp: i64,
    /// SHA-256 of the client certificate the token is bound to.
    pub cnf: Option<[u8; 32]>,
}

/// A freshly signed token.
pub struct Minted {
    pub token: String,
    pub jti: String,
    pub kid: String,
}

/// A random UUID (version 4 form) of 122 random bits... plus the fixed ones: 128 bits drawn.
pub fn new_jti() -> Result<String, String> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no randomness".to_owned())?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

pub fn mint(keys: &KeySet, m: &Mint<'_>) -> Result<Minted, String> {
    let key = keys.signer();
    let jti = new_jti()?;
    let header = serde_json::json!({"alg": key.alg, "kid": key.kid, "typ": "JWT"});
    let mut claims = serde_json::json!({
        "iss": m.issuer,
        "sub": m.client_id,
        "client_id": m.client_id,
        "token_use": "access",
        "scope": m.scope,
        "iat": m.iat,
        "auth_time": m.iat,
        "exp": m.exp,
        "jti": jti,
        "version": 2,
    });
    if let Some(t) = &m.cnf {
        claims["cnf"] = serde_json::json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(t) });
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(input.as_bytes())?;
    Ok(Minted {
        token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)),
        jti,
        kid: key.kid.clone(),
    })
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// The claims of one of our own tokens whose signature verified.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: Option<String>,
    pub client_id: String,
    pub scope: Option<String>,
    pub token_use: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub cnf: Option<serde_json::Value>,
}

/// Verify a token against our own keys; `None` for anything that is not a token we signed
/// (any key of the folder) for `issuer`.
pub fn read(keys: &KeySet, issuer: &str, token: &str) -> Option<Claims> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let key = keys.get(header.kid.as_deref()?)?;
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    if !key.verify(
        &header.alg,
        &token.as_bytes()[..h.len() + 1 + p.len()],
        &sig,
    ) {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    (claims.iss == issuer).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_read_back_and_tampered_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        super::super::super::keys::generate(dir.path()).unwrap();
        let keys = KeySet::load(dir.path()).unwrap();
        let t = mint(
            &keys,
            &Mint {
                issuer: "https://i.test",
                client_id: "c",
                scope: "a b",
                iat: 10,
                exp: 20,
                cnf: Some([7; 32]),
            },
        )
        .unwrap();
        let c = read(&keys, "https://i.test", &t.token).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.exp, c.jti.as_str()),
            ("c", 20, t.jti.as_str())
        );
        assert_eq!(
            c.cnf.unwrap()["x5t#S256"],
            URL_SAFE_NO_PAD.encode([7u8; 32])
        );
        assert!(read(&keys, "https://other.test", &t.token).is_none());
        let mut bad = t.token.clone();
        bad.insert(bad.len() - 2, 'A');
        assert!(read(&keys, "https://i.test", &bad).is_none());
        assert_eq!(t.jti.len(), 36);
    }
}
