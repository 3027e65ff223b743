//! TLS termination: the client-certificate truststore, the verifier that runs inside the
//! handshake, the verified-identity cache, and the listener's rustls `ServerConfig`.
//!
//! Order of use: [`Truststore::load`] (at start and on every reload, build-then-swap) →
//! [`ClientVerifier::new`] over that snapshot → [`server_config`] per listener → the
//! handshake calls the verifier → after it (and after any resumed handshake, with
//! [`ClientVerifier::verify_chain`]) the server reads [`crate::identity::Identity::from_leaf`].
//!
//! Exactly one crypto provider is used: aws-lc-rs, passed explicitly to every builder.

pub mod cache;
pub mod peer_name;
pub mod profile;
pub mod reason;
pub mod refused;
pub mod server;
pub mod truststore;
pub mod verifier;

#[cfg(test)]
pub(crate) mod test_pki;

pub use cache::{CachedIdentity, CachingVerifier, IdentifyError, IdentityCache};
pub use reason::{handshake_failure, handshake_refusal_labels, register_verification_counters};
pub use server::{
    check_listener, load_certs, load_key, server_config, TlsError, SESSION_CACHE_SIZE,
};
pub use truststore::{
    CaInfo, CrlInfo, CrlRefusal, CrlSource, FetchedCrl, Truststore, TruststoreError,
};
pub use verifier::{
    ClientVerifier, RejectReason, Rejection, VerifiedChain, MAX_PRESENTED_INTERMEDIATES,
    MIN_RSA_KEY_BITS,
};

/// The crypto provider used throughout: aws-lc-rs with its default suites and groups.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The listeners' provider: [`provider`] with the AES-128-GCM suites moved ahead of
/// AES-256-GCM within each TLS version, for a server that picks by its own order
/// (`ignore_client_order`). Every suite and group of the default stays offered.
///
/// Why: clients (rustls, OpenSSL) list AES-256-GCM-SHA384 first, and its SHA-384 key
/// schedule runs on aws-lc's portable SHA-512 code on AMD CPUs (its AVX path is enabled only
/// on Intel), while SHA-256 runs on SHA-NI. That portable SHA-512 was 14.5 % of the gateway's
/// CPU in resumed handshakes (BENCHMARKS.md, round 3). AES-128-GCM is also the suite Go's
/// crypto/tls prefers when the CPU has AES instructions.
pub fn server_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = provider();
    // Stable: keeps TLS 1.3 before TLS 1.2 and the rest of the default order.
    provider.cipher_suites.sort_by_key(|s| {
        let tls12 = matches!(s, rustls::SupportedCipherSuite::Tls12(_));
        let aes128 = matches!(
            s.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
        (tls12, !aes128)
    });
    provider
}

/// One `[[issuer.sessions.trust_anchor]]` of a truststore generation: its own truststore
/// and a verifier with the `[truststore]` settings, so a CreateSession chain gets every
/// check an mTLS client's gets (EKU clientAuth, CRLs, depth, every refusal reason).
pub struct Anchor {
    pub truststore: std::sync::Arc<Truststore>,
    pub verifier: std::sync::Arc<ClientVerifier>,
}

/// The trust anchors of a generation, by name.
pub type Anchors = std::collections::HashMap<String, Anchor>;
