//! One truststore generation ([`TrustState`]) and how it is built: the truststore folder
//! plus the fetched CRLs, the verifiers over it, and every listener's TLS acceptor.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use tokio_rustls::TlsAcceptor;

use super::StartError;
use crate::config::{ClientAuth, Config};
use crate::tls::{
    self, Anchor, Anchors, CachingVerifier, ClientVerifier, FetchedCrl, IdentityCache, Truststore,
};

/// One truststore generation and everything built from it: immutable, swapped whole.
pub struct TrustState {
    pub generation: u64,
    pub loaded_at: SystemTime,
    pub truststore: Arc<Truststore>,
    /// Re-checks of open connections and resumed sessions (cache first).
    pub verifier: Arc<CachingVerifier>,
    /// One per running listener, in config order.
    pub acceptors: Vec<TlsAcceptor>,
    /// The trust anchors of `[issuer.sessions]`, by name: each its own truststore and a
    /// verifier with the `[truststore]` settings, reloaded with this generation.
    pub anchors: Anchors,
}

impl std::fmt::Debug for TrustState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustState")
            .field("generation", &self.generation)
            .field("loaded_at", &self.loaded_at)
            .field("listeners", &self.acceptors.len())
            .finish_non_exhaustive()
    }
}

/// What lives across generations: the identity cache (its keys include the generation) and
/// each listener's session store and ticket keys, so resumption survives a reload. That is
/// safe because every resumed session is re-verified against the current generation.
#[derive(Clone)]
pub struct Fixed {
    pub cache: Arc<IdentityCache>,
    resumption: Vec<(Arc<dyn StoresServerSessions>, Arc<dyn ProducesTickets>)>,
}

impl Fixed {
    pub fn new(config: &Config) -> Result<Fixed, StartError> {
        let mut resumption = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let ticketer =
                rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| StartError::Tls {
                    address: l.address,
                    source: tls::TlsError::Rustls(e),
                })?;
            let storage: Arc<dyn StoresServerSessions> =
                ServerSessionMemoryCache::new(tls::SESSION_CACHE_SIZE);
            resumption.push((storage, ticketer));
        }
        Ok(Fixed {
            cache: Arc::new(IdentityCache::new(&config.identity_cache)),
            resumption,
        })
    }
}

/// Load the truststore (with the CRLs fetched from `[[truststore.crl_fetch]]` URLs) and
/// build every listener's TLS config for `generation`. Refused: a truststore in which no
/// root is valid now, and (from [`tls::server_config`]) a listener certificate that is
/// outside its validity period or does not match its key.
pub fn build_trust(
    config: &Config,
    generation: u64,
    fixed: &Fixed,
    fetched: &[FetchedCrl],
) -> Result<TrustState, StartError> {
    // A store that would refuse every client is broken input, like one that does not parse.
    let truststore = Truststore::load_with(&config.truststore.dir, fetched)
        .and_then(|t| t.check_roots_valid(SystemTime::now()).map(|()| t))
        .map_err(|source| StartError::Truststore {
            dir: config.truststore.dir.display().to_string(),
            source,
        })?;
    let truststore = Arc::new(truststore);
    let recheck = Arc::new(ClientVerifier::new(
        truststore.clone(),
        &config.truststore,
        ClientAuth::Required,
    ));
    let verifier = Arc::new(CachingVerifier::new(
        recheck,
        generation,
        fixed.cache.clone(),
    ));
    let mut acceptors = Vec::with_capacity(config.listeners.len());
    for (l, (storage, ticketer)) in config.listeners.iter().zip(&fixed.resumption) {
        let inner = Arc::new(ClientVerifier::new(
            truststore.clone(),
            &config.truststore,
            l.client_auth,
        ));
        let caching = Arc::new(CachingVerifier::new(inner, generation, fixed.cache.clone()));
        let built = tls::server_config(l, caching).map_err(|source| StartError::Tls {
            address: l.address,
            source,
        })?;
        let mut server_config = Arc::unwrap_or_clone(built);
        server_config.session_storage = storage.clone();
        server_config.ticketer = ticketer.clone();
        acceptors.push(TlsAcceptor::from(Arc::new(server_config)));
    }
    Ok(TrustState {
        generation,
        loaded_at: SystemTime::now(),
        truststore,
        verifier,
        acceptors,
        anchors: build_anchors(config, fetched)?,
    })
}

/// Each trust anchor's truststore, with the same checks as `[truststore]` (a store in which
/// no root is valid now is refused) and the fetched CRLs whose issuer it holds.
fn build_anchors(config: &Config, fetched: &[FetchedCrl]) -> Result<Anchors, StartError> {
    let Some(sessions) = &config.sessions else {
        return Ok(Anchors::new());
    };
    let mut anchors = Anchors::with_capacity(sessions.trust_anchors.len());
    for a in &sessions.trust_anchors {
        let truststore = Truststore::load_with_own(&a.truststore.dir, fetched)
            .and_then(|t| t.check_roots_valid(SystemTime::now()).map(|()| t))
            .map_err(|source| StartError::Truststore {
                dir: a.truststore.dir.display().to_string(),
                source,
            })?;
        let truststore = Arc::new(truststore);
        let verifier = Arc::new(ClientVerifier::new(
            truststore.clone(),
            &a.truststore,
            ClientAuth::Required,
        ));
        anchors.insert(
            a.name.clone(),
            Anchor {
                truststore,
                verifier,
            },
        );
    }
    Ok(anchors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_pki::{fresh_crl, root, write_store};

    #[test]
    fn an_anchor_takes_only_the_fetched_crls_of_its_own_cas() {
        let (mine, theirs) = (root("anchor root"), root("main root"));
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &[&mine], &[], &[]);
        let fetched = |ca, url: &str| FetchedCrl {
            url: url.into(),
            der: fresh_crl(ca, &[7]),
        };
        let all = [
            fetched(&theirs, "https://crl.test/main"),
            fetched(&mine, "https://crl.test/anchor"),
        ];
        let store = Truststore::load_with_own(dir.path(), &all).unwrap();
        assert_eq!(store.crls().len(), 1);
        assert!(store.crls()[0].signature_checked);
        assert!(matches!(
            &store.crls()[0].source,
            crate::tls::CrlSource::Url(u) if u == "https://crl.test/anchor"
        ));
        let none = Truststore::load_with_own(dir.path(), &all[..1]).unwrap();
        assert!(none.crls().is_empty());
    }
}
