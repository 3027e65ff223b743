//! A JSON Web Key Set (RFC 7517) turned into verification keys, once per fetch or reload.
//!
//! Only signature keys of the kinds portcullis verifies are kept: RSA (2048 bits or more),
//! EC P-256 / P-384 and Ed25519 (OKP). Symmetric (`oct`) keys are dropped: a key from a
//! JWKS is public, so accepting an HMAC signature made with it would let anyone mint tokens.
//! Each key is parsed into an `aws-lc-rs` key per algorithm it may verify, so the hot path
//! only verifies.

use std::collections::HashMap;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::config::JwtAlg;

/// The verification keys of one JWKS document: immutable, swapped whole.
#[derive(Debug, Default)]
pub struct Keyset {
    /// Keys with a `kid`.
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid` (used only for tokens without one).
    anonymous: Vec<Key>,
    /// Keys skipped (unsupported type, weak, malformed), for the log.
    pub skipped: usize,
}

/// One public key, ready to verify with each algorithm it allows.
pub struct Key {
    verifiers: Vec<(JwtAlg, ParsedPublicKey)>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<&str> = self.verifiers.iter().map(|(a, _)| a.as_str()).collect();
        f.debug_struct("Key").field("algs", &algs).finish()
    }
}

impl Key {
    /// The verifier for `alg`, if this key may be used with it.
    pub fn verifier(&self, alg: JwtAlg) -> Option<&ParsedPublicKey> {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, k)| k)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWK set: {0}")]
    Json(String),
    #[error("the set has no usable signature key ({0} skipped)")]
    NoKeys(usize),
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Keyset {
    /// Parse a JWKS document, keeping the keys usable with one of `allowed`.
    pub fn parse(bytes: &[u8], allowed: &[JwtAlg]) -> Result<Keyset, JwksError> {
        let raw: RawSet =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Json(e.to_string()))?;
        let mut set = Keyset::default();
        for value in raw.keys {
            let Ok(rk) = serde_json::from_value::<RawKey>(value) else {
                set.skipped += 1;
                continue;
            };
            match build_key(&rk, allowed) {
                Some(key) => match rk.kid {
                    Some(kid) => {
                        set.by_kid.insert(kid, key);
                    }
                    None => set.anonymous.push(key),
                },
                None => set.skipped += 1,
            }
        }
        if set.is_empty() {
            return Err(JwksError::NoKeys(set.skipped));
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.anonymous.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.by_kid.get(kid)
    }

    /// The key for a token without `kid`: only when the choice is unambiguous.
    pub fn only_key(&self) -> Option<&Key> {
        match (self.by_kid.len(), self.anonymous.len()) {
            (1, 0) => self.by_kid.values().next(),
            (0, 1) => self.anonymous.first(),
            _ => None,
        }
    }
}

fn b64(s: &Option<String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.as_deref()?).ok()
}

fn build_key(rk: &RawKey, allowed: &[JwtAlg]) -> Option<Key> {
    if rk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let candidates: Vec<JwtAlg> = match (rk.kty.as_str(), rk.crv.as_deref()) {
        ("RSA", _) => vec![
            JwtAlg::RS256,
            JwtAlg::RS384,
            JwtAlg::RS512,
            JwtAlg::PS256,
            JwtAlg::PS384,
            JwtAlg::PS512,
        ],
        ("EC", Some("P-256")) => vec![JwtAlg::ES256],
        ("EC", Some("P-384")) => vec![JwtAlg::ES384],
        ("OKP", Some("Ed25519")) => vec![JwtAlg::EdDSA],
        _ => return None,
    };
    // A key that names its algorithm may only be used with that one.
    let pinned = match rk.alg.as_deref() {
        Some(a) => Some(JwtAlg::parse(a)?),
        None => None,
    };
    let mut verifiers = Vec::new();
    for alg in candidates {
        if !allowed.contains(&alg) || pinned.is_some_and(|p| p != alg) {
            continue;
        }
        if let Some(k) = parse_for(rk, alg) {
            verifiers.push((alg, k));
        }
    }
    if verifiers.is_empty() {
        None
    } else {
        Some(Key { verifiers })
    }
}

fn parse_for(rk: &RawKey, alg: JwtAlg) -> Option<ParsedPublicKey> {
    match alg {
        JwtAlg::RS256
        | JwtAlg::RS384
        | JwtAlg::RS512
        | JwtAlg::PS256
        | JwtAlg::PS384
        | JwtAlg::PS512 => {
            let params = match alg {
                JwtAlg::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                JwtAlg::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                JwtAlg::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                JwtAlg::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                JwtAlg::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                _ => &sig::RSA_PSS_2048_8192_SHA512,
            };
            let comps = RsaPublicKeyComponents {
                n: b64(&rk.n)?,
                e: b64(&rk.e)?,
            };
            if comps.n.len() < 256 {
                return None;
            }
            comps.to_parsed_public_key(params).ok()
        }
        JwtAlg::ES256 | JwtAlg::ES384 => {
            let (x, y) = (b64(&rk.x)?, b64(&rk.y)?);
            let (len, params) = if alg == JwtAlg::ES256 {
                (32, &sig::ECDSA_P256_SHA256_FIXED)
            } else {
                (48, &sig::ECDSA_P384_SHA384_FIXED)
            };
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(params, point).ok()
        }
        JwtAlg::EdDSA => {
            let x = b64(&rk.x)?;
            if x.len() != 32 {
                return None;
            }
            ParsedPublicKey::new(&sig::ED25519, x).ok()
        }
    }
}
