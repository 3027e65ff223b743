//! TLS termination: the client-certificate truststore, the verifier that runs inside the
//! handshake, the caller's identity read from the verified leaf, and the listener's rustls
//! `ServerConfig`.
//!
//! Order of use: [`Truststore::load`] (at start and on every reload, build-then-swap) →
//! [`ClientVerifier::new`] over that snapshot → [`server_config`] per listener → the
//! handshake calls the verifier → after it (and after any resumed handshake, with
//! [`ClientVerifier::verify_chain`]) the proxy reads [`Identity::from_leaf`].
//!
//! Exactly one crypto provider is used: aws-lc-rs, passed explicitly to every builder.

pub mod cache;
pub mod identity;
pub mod peer_name;
pub mod profile;
pub mod server;
pub mod truststore;
pub mod verifier;

#[cfg(test)]
mod test_pki;

pub use cache::{CachedIdentity, CachingVerifier, IdentifyError, IdentityCache};
pub use identity::{Identity, IdentityError};
pub use server::{load_certs, load_key, server_config, TlsError, SESSION_CACHE_SIZE};
pub use truststore::{
    CaInfo, CrlInfo, CrlRefusal, CrlSource, FetchedCrl, Truststore, TruststoreError,
};
pub use verifier::{
    ClientVerifier, RejectReason, Rejection, VerifiedChain, MAX_PRESENTED_INTERMEDIATES,
};

/// The crypto provider used throughout: aws-lc-rs with its default suites and groups.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
