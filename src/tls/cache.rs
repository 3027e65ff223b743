//! The verified-identity cache and the caching client-certificate verifier.
//!
//! Chain building and CRL checks (69–305 µs) run once per distinct presented chain per
//! truststore generation; a repeat client costs one SHA-256 over its chain and one lookup
//! (≈0.6 µs), and gets the identity extracted for forwarding from the same entry. This
//! keeps path building off the hot path; hits and misses are counted.
//!
//! What makes caching sound here:
//! - only `verify_client_cert` (chain + CRL) is cached; `verify_tls12/13_signature`, the
//!   client's proof that it holds the key, is checked on every handshake;
//! - failures are never cached;
//! - the key is SHA-256 over the generation and the length-prefixed DER of every presented
//!   certificate, so a new truststore generation never sees an older verdict;
//! - an entry lives at most until the earliest notAfter in the verified path, the earliest
//!   CRL nextUpdate in the truststore, and the configured TTL;
//! - `offer_client_auth`, `client_auth_mandatory`, root hints and raw-public-key support are
//!   delegated (their trait defaults would silently override the inner policy).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use der::Decode;
use moka::sync::Cache;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};

use super::verifier::{ClientVerifier, Rejection};
use crate::config::IdentityCacheConfig;
use crate::identity::ForwardedIdentity;
use crate::identity::Identity;
use crate::telemetry::metrics as m;

/// One verified chain: what the connection needs afterwards.
#[derive(Debug)]
pub struct CachedIdentity {
    pub forwarded: ForwardedIdentity,
    /// How long the entry may live, fixed when it was verified.
    lifetime: Duration,
}

/// Why [`CachingVerifier::identify`] refused a chain.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("the certificate cannot be expressed as an identity")]
    BadIdentity,
}

type Key = [u8; 32];

/// The cache shared by every generation's verifiers (keys include the generation).
pub struct IdentityCache {
    entries: Option<Cache<Key, Arc<CachedIdentity>>>,
    ttl: Duration,
}

struct ByLifetime;

impl moka::Expiry<Key, Arc<CachedIdentity>> for ByLifetime {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<CachedIdentity>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

impl fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityCache")
            .field("enabled", &self.entries.is_some())
            .field("entries", &self.entries.as_ref().map(|c| c.entry_count()))
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl IdentityCache {
    pub fn new(config: &IdentityCacheConfig) -> IdentityCache {
        let entries = (config.capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(config.capacity)
                .expire_after(ByLifetime)
                .build()
        });
        IdentityCache {
            entries,
            ttl: config.ttl,
        }
    }

    /// Entries now held (approximate: moka counts lazily).
    pub fn len(&self) -> u64 {
        self.entries.as_ref().map_or(0, |c| c.entry_count())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`ClientVerifier`] bound to one truststore generation, with the identity cache in front.
#[derive(Debug)]
pub struct CachingVerifier {
    inner: Arc<ClientVerifier>,
    generation: u64,
    cache: Arc<IdentityCache>,
    /// Earliest CRL nextUpdate of this generation's truststore.
    crl_deadline: Option<SystemTime>,
}

impl CachingVerifier {
    pub fn new(inner: Arc<ClientVerifier>, generation: u64, cache: Arc<IdentityCache>) -> Self {
        let crl_deadline = inner
            .truststore()
            .crls()
            .iter()
            .filter_map(|c| c.next_update)
            .min();
        CachingVerifier {
            inner,
            generation,
            cache,
            crl_deadline,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn inner(&self) -> &Arc<ClientVerifier> {
        &self.inner
    }

    /// The verified identity of this chain under this generation: from the cache, or
    /// verified (chain + CRL), extracted and cached. Counts a hit or a miss.
    pub fn identify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<CachedIdentity>, IdentifyError> {
        self.resolve(leaf, intermediates, now, true)
    }

    /// [`Self::identify`] right after a full handshake whose verifier call just did the
    /// lookup: not counted again, so hits and misses stay one per handshake.
    pub fn identify_after_handshake(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<CachedIdentity>, IdentifyError> {
        self.resolve(leaf, intermediates, now, false)
    }

    fn resolve(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        count: bool,
    ) -> Result<Arc<CachedIdentity>, IdentifyError> {
        let key = self.key(leaf, intermediates);
        if let Some(hit) = self.cache.entries.as_ref().and_then(|c| c.get(&key)) {
            if count {
                metrics::counter!(m::IDENTITY_CACHE_HITS_TOTAL).increment(1);
            }
            return Ok(hit);
        }
        if count {
            metrics::counter!(m::IDENTITY_CACHE_MISSES_TOTAL).increment(1);
        }
        let chain = self
            .inner
            .verify_chain(leaf, intermediates, now)
            .map_err(IdentifyError::Rejected)?;
        let id = Identity::from_leaf(leaf).map_err(|_| IdentifyError::BadIdentity)?;
        let mut deadline = id.not_after;
        for der in &chain.intermediates {
            if let Ok(c) = x509_cert::Certificate::from_der(der) {
                deadline = deadline.min(c.tbs_certificate().validity().not_after.to_system_time());
            }
        }
        if let Some(crl) = self.crl_deadline {
            deadline = deadline.min(crl);
        }
        let now_sys = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
        let lifetime = deadline
            .duration_since(now_sys)
            .unwrap_or(Duration::ZERO)
            .min(self.cache.ttl);
        let entry = Arc::new(CachedIdentity {
            forwarded: ForwardedIdentity::new(id).map_err(|_| IdentifyError::BadIdentity)?,
            lifetime,
        });
        if let Some(c) = &self.cache.entries {
            if !lifetime.is_zero() {
                c.insert(key, entry.clone());
            }
        }
        Ok(entry)
    }

    /// SHA-256 over the generation and the length-prefixed DER of each certificate.
    fn key(&self, leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Key {
        let mut h = Sha256::new();
        h.update(self.generation.to_be_bytes());
        for der in std::iter::once(leaf).chain(intermediates) {
            h.update((der.len() as u64).to_be_bytes());
            h.update(der.as_ref());
        }
        h.finalize().into()
    }
}

impl ClientCertVerifier for CachingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.identify(end_entity, intermediates, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(IdentifyError::Rejected(r)) => {
                super::refused::record(end_entity, &r.detail);
                Err(r.to_tls_error())
            }
            // Verified but not expressible as headers: let the handshake finish; the
            // connection is refused right after it with reason `bad_identity`.
            Err(IdentifyError::BadIdentity) => Ok(ClientCertVerified::assertion()),
        }
    }

    // Never cached: this is the proof of key possession.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    // Never cached: this is the proof of key possession.
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Policy, Revocation};
    use crate::tls::test_pki::*;
    use crate::tls::Truststore;

    fn caching(capacity: u64, generation: u64, crl_revokes: &[u64]) -> (CachingVerifier, Leaf) {
        let root = root("Cache Root");
        let leaf = leaf("client", 7, &root);
        let crl = fresh_crl(&root, crl_revokes);
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &[&root], &[], &[&crl]);
        let mut s = settings(dir.path(), Revocation::EndEntity);
        s.unknown_revocation = Policy::Allow;
        let store = Arc::new(Truststore::load(dir.path()).unwrap());
        let inner = Arc::new(ClientVerifier::new(
            store,
            &s,
            crate::config::ClientAuth::Required,
        ));
        let cache = Arc::new(IdentityCache::new(&IdentityCacheConfig {
            capacity,
            ttl: Duration::from_secs(60),
        }));
        (CachingVerifier::new(inner, generation, cache), leaf)
    }

    #[test]
    fn a_repeat_chain_is_served_from_the_cache() {
        let (v, leaf) = caching(100, 1, &[]);
        let a = v.identify(&leaf.der, &[], now()).unwrap();
        let b = v.identify(&leaf.der, &[], now()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second lookup was not a hit");
        assert_eq!(a.forwarded.id.subject, b.forwarded.id.subject);
        assert!(a.lifetime <= Duration::from_secs(60));
    }

    #[test]
    fn the_key_includes_the_generation() {
        let (v1, leaf) = caching(100, 1, &[]);
        let v2 = CachingVerifier::new(v1.inner.clone(), 2, v1.cache.clone());
        assert_ne!(v1.key(&leaf.der, &[]), v2.key(&leaf.der, &[]));
        let a = v1.identify(&leaf.der, &[], now()).unwrap();
        let b = v2.identify(&leaf.der, &[], now()).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn failures_are_not_cached() {
        let (v, leaf) = caching(100, 1, &[7]);
        for _ in 0..2 {
            match v.identify(&leaf.der, &[], now()) {
                Err(IdentifyError::Rejected(r)) => {
                    assert_eq!(r.reason, crate::tls::RejectReason::Revoked)
                }
                other => panic!("expected revoked, got {other:?}"),
            }
        }
        let entries = v.cache.entries.as_ref().unwrap();
        entries.run_pending_tasks();
        assert_eq!(entries.entry_count(), 0);
    }

    #[test]
    fn capacity_zero_turns_the_cache_off() {
        let (v, leaf) = caching(0, 1, &[]);
        let a = v.identify(&leaf.der, &[], now()).unwrap();
        let b = v.identify(&leaf.der, &[], now()).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(v.cache.is_empty());
    }

    #[test]
    fn an_entry_never_outlives_the_crl_next_update() {
        let (v, leaf) = caching(100, 1, &[]);
        let crl_next = v.crl_deadline.unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now().as_secs());
        let left = crl_next.duration_since(at).unwrap();
        let a = v.identify(&leaf.der, &[], now()).unwrap();
        assert!(a.lifetime <= left.min(Duration::from_secs(60)));
    }
}
