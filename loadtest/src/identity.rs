//! Client identities (certificate chain + key) and the TLS client configurations built
//! from them: one per identity, so each identity keeps its own TLS session cache and a
//! resumed handshake always resumes the session of the identity that made it.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::Resumption;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// One client identity.
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Loads a certificate chain (PEM, leaf first) and its private key (PEM).
pub fn load_pair(cert: &Path, key: &Path) -> Result<Identity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{}: no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading key {}", key.display()))?;
    let name = cert
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Identity { name, chain, key })
}

/// Loads every `NAME.pem` of `dir` that has a `NAME.key` beside it, sorted by name (the
/// layout of `portcullis pki`'s `certs/` and of `loadtest pki`'s `clients/`).
pub fn load_folder(dir: &Path) -> Result<Vec<Identity>> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem") && p.with_extension("key").exists())
        .collect();
    names.sort();
    let ids = names
        .iter()
        .map(|p| load_pair(p, &p.with_extension("key")))
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("{}: no NAME.pem with a NAME.key", dir.display());
    }
    Ok(ids)
}

/// Hands out identity indexes round-robin across connections.
#[derive(Debug)]
pub struct Rotation {
    next: AtomicUsize,
    len: usize,
}

impl Rotation {
    pub fn new(len: usize) -> Rotation {
        Rotation {
            next: AtomicUsize::new(0),
            len: len.max(1),
        }
    }

    pub fn next(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.len
    }
}

/// How the client configurations treat TLS session resumption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// Never resume: every new connection is a full handshake.
    Off,
    /// Resume per identity (TLS 1.3 tickets or TLS 1.2 session ids).
    On,
}

/// Loads the CA certificates to trust.
pub fn roots(ca: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    Ok(roots)
}

/// One client configuration per identity (or one anonymous configuration).
pub fn client_configs(
    roots: RootCertStore,
    identities: Vec<Identity>,
    alpn: &[&[u8]],
    sessions: Sessions,
) -> Result<Vec<Arc<rustls::ClientConfig>>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = Arc::new(roots);
    let build = |id: Option<Identity>| -> Result<Arc<rustls::ClientConfig>> {
        let b = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone());
        let mut cfg = match id {
            Some(id) => b
                .with_client_auth_cert(id.chain, id.key)
                .with_context(|| format!("identity {}", id.name))?,
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        if sessions == Sessions::Off {
            cfg.resumption = Resumption::disabled();
        }
        Ok(Arc::new(cfg))
    };
    if identities.is_empty() {
        return Ok(vec![build(None)?]);
    }
    identities.into_iter().map(|id| build(Some(id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_visits_every_identity_in_turn() {
        let r = Rotation::new(3);
        let seen: Vec<usize> = (0..7).map(|_| r.next()).collect();
        assert_eq!(seen, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(
            Rotation::new(0).next(),
            0,
            "no identities: index 0 (anonymous)"
        );
    }

    #[test]
    fn folder_without_pairs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("lonely.pem"), "x").unwrap();
        let err = load_folder(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no NAME.pem"), "{err}");
    }
}
