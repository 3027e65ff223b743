//! Stateless session credentials: access key ids, derived secrets and sealed tokens.
//!
//! - Access key id: `ASIA` + 16 base32 characters (10 random bytes), 20 in all.
//! - Secret access key: base64 of HMAC-SHA256(sealing key, label ‖ access key id), first 40
//!   characters: derived again by whoever opens the token, never stored.
//! - Session token: `v1.<kid>.<base64url(nonce ‖ AES-256-GCM(claims JSON))>`; the key id is
//!   in clear, the access key id is the associated data, so a token moved to another
//!   access key id does not open. The AEAD key is HMAC(sealing key, label), apart from the
//!   secret derivation.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::keys::{SealKey, SealKeySet};

/// Everything a session carries to the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    #[serde(rename = "akid")]
    pub access_key_id: String,
    pub role: String,
    pub profile: String,
    pub trust_anchor: String,
    pub session: String,
    pub source_identity: String,
    /// Hex SHA-256 of the leaf DER.
    pub cert_sha256: String,
    /// Issuer DN and serial (hex) of the leaf, for CRL checks.
    pub issuer: String,
    pub serial: String,
    #[serde(default)]
    pub uri_sans: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token did not open: every cause is `InvalidClientTokenId` to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    Malformed,
    UnknownKey,
    Forged,
}

const SECRET_LABEL: &[u8] = b"portcullis session secret\0";
const SEAL_LABEL: &[u8] = b"portcullis session seal\0";

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// `ASIA` + 16 characters of RFC 4648 base32 over 10 random bytes.
pub fn new_access_key_id() -> Result<String, String> {
    let mut raw = [0u8; 10];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "no randomness available".to_owned())?;
    Ok(format!("ASIA{}", base32(&raw)))
}

fn base32(raw: &[u8; 10]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u128 = 0;
    for b in raw {
        bits = bits << 8 | u128::from(*b);
    }
    (0..16)
        .rev()
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect()
}

/// Whether `id` has the shape of a session access key id.
pub fn is_session_key_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("ASIA")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// The secret access key of `access_key_id` under `key`.
pub fn derive_secret(key: &SealKey, access_key_id: &str) -> String {
    let mac = hmac(&key.secret, &[SECRET_LABEL, access_key_id.as_bytes()]);
    let mut s = STANDARD.encode(mac);
    s.truncate(40);
    s
}

fn aead(key: &SealKey) -> Result<LessSafeKey, OpenError> {
    let k = hmac(&key.secret, &[SEAL_LABEL]);
    UnboundKey::new(&AES_256_GCM, &k)
        .map(LessSafeKey::new)
        .map_err(|_| OpenError::Malformed)
}

/// Seal `claims` with the set's newest key; returns (session token, secret access key).
pub fn seal(keys: &SealKeySet, claims: &SessionClaims) -> Result<(String, String), String> {
    let key = keys.sealer();
    let sealing = aead(key).map_err(|_| "sealing key refused".to_owned())?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "no randomness available".to_owned())?;
    let mut buf = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(claims.access_key_id.as_bytes()),
            &mut buf,
        )
        .map_err(|_| "sealing failed".to_owned())?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&buf);
    let token = format!("v1.{}.{}", key.kid, URL_SAFE_NO_PAD.encode(blob));
    Ok((token, derive_secret(key, &claims.access_key_id)))
}

/// Open a token presented with `access_key_id`; returns its claims and the secret.
pub fn open(
    keys: &SealKeySet,
    token: &str,
    access_key_id: &str,
) -> Result<(SessionClaims, String), OpenError> {
    let mut parts = token.splitn(3, '.');
    let (Some("v1"), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(OpenError::Malformed);
    };
    let key = keys.get(kid).ok_or(OpenError::UnknownKey)?;
    let blob = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| OpenError::Malformed)?;
    if blob.len() < NONCE_LEN + 16 {
        return Err(OpenError::Malformed);
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
    let mut buf = sealed.to_vec();
    let plain = aead(key)?
        .open_in_place(nonce, Aad::from(access_key_id.as_bytes()), &mut buf)
        .map_err(|_| OpenError::Forged)?;
    let claims: SessionClaims = serde_json::from_slice(plain).map_err(|_| OpenError::Forged)?;
    if claims.access_key_id != access_key_id {
        return Err(OpenError::Forged);
    }
    let secret = derive_secret(key, access_key_id);
    Ok((claims, secret))
}

#[cfg(test)]
mod tests {
    use super::super::keys::{generate, SealKeySet};
    use super::*;

    fn claims(akid: &str) -> SessionClaims {
        SessionClaims {
            access_key_id: akid.into(),
            role: "orders-reader".into(),
            profile: "workers".into(),
            trust_anchor: "fleet".into(),
            session: "0a1b".into(),
            source_identity: "worker-1".into(),
            cert_sha256: "00".repeat(32),
            issuer: "CN=demo CA".into(),
            serial: "0a1b".into(),
            uri_sans: vec!["spiffe://example.test/workers/1".into()],
            iat: 1,
            exp: 2,
        }
    }

    #[test]
    fn ids_have_the_aws_shape() {
        let id = new_access_key_id().unwrap();
        assert!(is_session_key_id(&id), "{id}");
        assert_eq!(base32(&[0xff; 10]), "7777777777777777");
        assert_eq!(base32(&[0; 10]), "AAAAAAAAAAAAAAAA");
        assert!(!is_session_key_id("AKIAAAAAAAAAAAAAAAAA"));
    }

    #[test]
    fn seal_open_rotate_and_refuse_tampering() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path()).unwrap();
        let old = SealKeySet::load(dir.path()).unwrap();
        let akid = new_access_key_id().unwrap();
        let (token, secret) = seal(&old, &claims(&akid)).unwrap();
        assert_eq!(secret.len(), 40);
        let (c, s) = open(&old, &token, &akid).unwrap();
        assert_eq!((c, s), (claims(&akid), secret.clone()));
        // Rotation: the old key still opens, the new one seals.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        generate(dir.path()).unwrap();
        let new = SealKeySet::load(dir.path()).unwrap();
        assert_eq!(open(&new, &token, &akid).unwrap().1, secret);
        assert_ne!(new.sealer().kid, old.sealer().kid);
        // Another access key id, a flipped byte, an unknown key.
        let other = new_access_key_id().unwrap();
        assert_eq!(open(&new, &token, &other).unwrap_err(), OpenError::Forged);
        let mut t = token.clone().into_bytes();
        let n = t.len() - 5;
        t[n] = if t[n] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert_eq!(open(&new, &t, &akid).unwrap_err(), OpenError::Forged);
        let foreign = tempfile::tempdir().unwrap();
        generate(foreign.path()).unwrap();
        let f = SealKeySet::load(foreign.path()).unwrap();
        assert_eq!(open(&f, &token, &akid).unwrap_err(), OpenError::UnknownKey);
        assert_eq!(open(&f, "junk", &akid).unwrap_err(), OpenError::Malformed);
    }
}
