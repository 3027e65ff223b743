//! `[truststore]`: the CA folder and the revocation policy, raw struct →
//! [`TruststoreConfig`] (its `[[truststore.crl_fetch]]` entries are built in `crl_fetch.rs`).

use super::build::{k, Builder, Seg};
use super::defaults as d;
use super::file;
use super::{Policy, Revocation, TruststoreConfig};

impl Builder {
    pub(super) fn truststore(&mut self, t: &file::RawTruststore) -> TruststoreConfig {
        let p = [Seg::Key("truststore".into())];
        let policy = [("deny", Policy::Deny), ("allow", Policy::Allow)];
        let max_chain_depth = t.max_chain_depth.unwrap_or(d::MAX_CHAIN_DEPTH);
        if max_chain_depth > d::MAX_CHAIN_DEPTH_LIMIT {
            self.err(
                k(&p, "max_chain_depth"),
                format!(
                    "must be at most {} (webpki's limit)",
                    d::MAX_CHAIN_DEPTH_LIMIT
                ),
            );
        }
        TruststoreConfig {
            dir: self.path(&p, "dir", &t.dir),
            revocation: self.choice(
                k(&p, "revocation"),
                &t.revocation,
                d::REVOCATION,
                &[
                    ("off", Revocation::Off),
                    ("end-entity", Revocation::EndEntity),
                    ("full-chain", Revocation::FullChain),
                ],
            ),
            unknown_revocation: self.choice(
                k(&p, "unknown_revocation"),
                &t.unknown_revocation,
                d::UNKNOWN_REVOCATION,
                &policy,
            ),
            expired_crl: self.choice(
                k(&p, "expired_crl"),
                &t.expired_crl,
                d::EXPIRED_CRL,
                &policy,
            ),
            max_chain_depth: max_chain_depth.min(d::MAX_CHAIN_DEPTH_LIMIT),
            crl_fetch: self.crl_fetch(t.crl_fetch.as_deref().unwrap_or_default()),
        }
    }
}
