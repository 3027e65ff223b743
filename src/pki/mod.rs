//! The dev PKI: a two-level CA (root → intermediate → leaves) kept in one directory, used by
//! `portcullis pki init|issue|revoke`, by `quickstart` and by the integration tests.
//!
//! It is for development and tests, not production: keys are ECDSA P-256 files on disk. It
//! does keep the habits a real CA needs, because the gateway treats its output as real:
//! private keys are created 0600 and never overwritten, every other file is replaced
//! atomically (the gateway may be watching `truststore/`), names are never reused, and
//! `index.toml` is the database both CRLs are rebuilt from.
//!
//! ```text
//! DIR/
//!   ca/root.pem  ca/root.key  ca/intermediate.pem  ca/intermediate.key
//!   truststore/roots/root.pem
//!   truststore/intermediates/intermediate.pem
//!   truststore/crls/root.crl.pem            root's CRL (covers the intermediate)
//!   truststore/crls/intermediate.crl.pem    intermediate's CRL (covers leaves)
//!   certs/NAME.pem  certs/NAME.leaf.pem  certs/NAME.key
//!   index.toml
//! ```
//!
//! Operations on one directory are not locked against each other: run one `portcullis pki`
//! command at a time per directory.

mod ca;
mod error;
mod files;
mod index;
mod leaf;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{RevocationReason, RevokedCertParams, SerialNumber};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use error::PkiError;

use ca::{Ca, CaPaths};
use files::{create_dir, create_private_dir, read_string, write_atomic, write_private_key};
use index::{format_time, index_path, Index, IndexEntry};

/// Default lifetime of a leaf.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// A dev PKI opened from (or just created in) its directory.
pub struct DevPki {
    dir: PathBuf,
    root: Ca,
    intermediate: Ca,
    index: Index,
}

/// What a leaf is for; decides its extended key usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// EKU clientAuth: presented by a caller to the gateway.
    #[default]
    Client,
    /// EKU serverAuth: served by the gateway or an origin.
    Server,
}

/// What to put in a leaf besides its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    pub kind: CertKind,
    /// URI SANs, e.g. SPIFFE IDs; each must be an absolute URI (with a scheme).
    pub spiffe: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Counted from now; the leaf may not outlive the intermediate CA.
    pub valid_for: Duration,
}

/// Where an issued leaf's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub name: String,
    /// Leaf then intermediate, PEM: what a client presents or a server serves.
    pub cert: PathBuf,
    /// PKCS#8 PEM, mode 0600.
    pub key: PathBuf,
    /// The leaf alone, PEM.
    pub leaf: PathBuf,
    /// Serial number, lowercase hex.
    pub serial: String,
}

/// The state of one issued certificate ([`DevPki::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertStatus {
    pub revoked: bool,
    pub expired: bool,
}

impl DevPki {
    /// Creates DIR (must not already hold a PKI; an existing empty dir is fine): root CA,
    /// intermediate CA, both CRLs, the truststore and an empty index.
    pub fn init(dir: &Path) -> Result<DevPki, PkiError> {
        check_empty(dir)?;
        let paths = CaPaths::new(dir);
        create_dir(dir)?;
        create_private_dir(&dir.join("ca"))?;
        for sub in [
            "truststore/roots",
            "truststore/intermediates",
            "truststore/crls",
            "certs",
        ] {
            create_dir(&dir.join(sub))?;
        }
        let now = OffsetDateTime::now_utc();

        let suffix = ca::name_suffix()?;
        let root = ca::generate_root(now, &suffix)?;
        write_private_key(&paths.root_key, &root.key_pem)?;
        write_atomic(&paths.root_cert, root.cert_pem.as_bytes())?;
        let root = Ca::load(
            &root.cert_pem,
            &paths.root_cert,
            &root.key_pem,
            &paths.root_key,
        )?;

        let int = ca::generate_intermediate(&root, now, &suffix)?;
        write_private_key(&paths.intermediate_key, &int.key_pem)?;
        write_atomic(&paths.intermediate_cert, int.cert_pem.as_bytes())?;
        let intermediate = Ca::load(
            &int.cert_pem,
            &paths.intermediate_cert,
            &int.key_pem,
            &paths.intermediate_key,
        )?;

        let mut pki = DevPki {
            dir: dir.to_path_buf(),
            root,
            intermediate,
            index: Index::new(),
        };
        pki.publish_ca_certs()?;
        // The index is written last: its presence is what marks DIR as a PKI.
        pki.refresh_crls()?;
        Ok(pki)
    }

    /// Opens an existing PKI, loading both CAs and the index.
    pub fn open(dir: &Path) -> Result<DevPki, PkiError> {
        let index_file = index_path(dir);
        if !index_file.exists() {
            return Err(PkiError::NotInitialized(dir.to_path_buf()));
        }
        let index = Index::load(&index_file)?;
        let paths = CaPaths::new(dir);
        let load =
            |cert: &Path, key: &Path| Ca::load(&read_string(cert)?, cert, &read_string(key)?, key);
        Ok(DevPki {
            dir: dir.to_path_buf(),
            root: load(&paths.root_cert, &paths.root_key)?,
            intermediate: load(&paths.intermediate_cert, &paths.intermediate_key)?,
            index,
        })
    }

    /// Issues a leaf signed by the intermediate. Refuses names outside `[A-Za-z0-9._-]+`
    /// and names issued before, even if revoked (a name identifies one key, ever).
    pub fn issue(&mut self, name: &str, opts: &IssueOptions) -> Result<Issued, PkiError> {
        leaf::check_name(name)?;
        if self.index.find(name).is_some() {
            return Err(PkiError::DuplicateName(name.to_owned()));
        }
        let now = OffsetDateTime::now_utc();
        let new = leaf::generate(name, opts, &self.intermediate, now)?;
        let issued = self.paths_for(name, hex::encode(new.serial.to_bytes()));

        write_private_key(&issued.key, &new.key_pem)?;
        let int_pem = read_string(&CaPaths::new(&self.dir).intermediate_cert)?;
        write_atomic(&issued.leaf, new.cert_pem.as_bytes())?;
        write_atomic(
            &issued.cert,
            format!("{}{}", new.cert_pem, int_pem).as_bytes(),
        )?;

        self.index.certs.push(IndexEntry {
            name: name.to_owned(),
            serial: issued.serial.clone(),
            kind: opts.kind,
            not_after: format_time(new.not_after),
            revoked_at: None,
        });
        self.save_index()?;
        Ok(issued)
    }

    /// Marks NAME revoked (reason keyCompromise) and re-signs the intermediate's CRL.
    pub fn revoke(&mut self, name: &str) -> Result<(), PkiError> {
        let entry = self
            .index
            .find_mut(name)
            .ok_or_else(|| PkiError::UnknownName(name.to_owned()))?;
        if entry.revoked_at.is_some() {
            return Err(PkiError::AlreadyRevoked(name.to_owned()));
        }
        let now = OffsetDateTime::now_utc();
        entry.revoked_at = Some(format_time(now));
        // The index is saved before the CRL: if the CRL write fails, the revocation is still
        // recorded and the next `refresh_crls` publishes it.
        self.index.intermediate_crl_number += 1;
        self.save_index()?;
        self.write_intermediate_crl(now)
    }

    /// Re-signs both CRLs with a fresh thisUpdate/nextUpdate and the next CRL numbers.
    pub fn refresh_crls(&mut self) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        self.index.root_crl_number += 1;
        self.index.intermediate_crl_number += 1;
        self.save_index()?;
        // The root has issued one CA and never revokes it here: its CRL is empty, but webpki
        // checking the whole chain needs it to know the intermediate's status.
        let root_crl = self
            .root
            .sign_crl(self.index.root_crl_number, Vec::new(), now)?;
        write_atomic(&self.crl_dir().join("root.crl.pem"), root_crl.as_bytes())?;
        self.write_intermediate_crl(now)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/truststore`: what the gateway's client-certificate verifier loads.
    pub fn truststore_dir(&self) -> PathBuf {
        self.dir.join("truststore")
    }

    /// `DIR/ca/root.pem`: what a client trusts for the server.
    pub fn root_cert(&self) -> PathBuf {
        CaPaths::new(&self.dir).root_cert
    }

    /// Whether NAME, if it was issued, is revoked or past its notAfter at `now`.
    pub fn status(&self, name: &str, now: OffsetDateTime) -> Option<CertStatus> {
        let entry = self.index.find(name)?;
        let expired = index::parse_time(&entry.not_after).map_or(true, |t| t <= now);
        Some(CertStatus {
            revoked: entry.revoked_at.is_some(),
            expired,
        })
    }

    /// The files of NAME, if it was issued (revoked or not).
    pub fn cert_paths(&self, name: &str) -> Option<Issued> {
        let entry = self.index.find(name)?;
        Some(self.paths_for(name, entry.serial.clone()))
    }

    fn paths_for(&self, name: &str, serial: String) -> Issued {
        let certs = self.dir.join("certs");
        Issued {
            name: name.to_owned(),
            cert: certs.join(format!("{name}.pem")),
            key: certs.join(format!("{name}.key")),
            leaf: certs.join(format!("{name}.leaf.pem")),
            serial,
        }
    }

    fn crl_dir(&self) -> PathBuf {
        self.truststore_dir().join("crls")
    }

    fn save_index(&self) -> Result<(), PkiError> {
        self.index.save(&index_path(&self.dir))
    }

    /// Copies the CA certificates into the truststore.
    fn publish_ca_certs(&self) -> Result<(), PkiError> {
        let paths = CaPaths::new(&self.dir);
        let trust = self.truststore_dir();
        write_atomic(
            &trust.join("roots/root.pem"),
            read_string(&paths.root_cert)?.as_bytes(),
        )?;
        write_atomic(
            &trust.join("intermediates/intermediate.pem"),
            read_string(&paths.intermediate_cert)?.as_bytes(),
        )
    }

    /// Signs the intermediate's CRL from the index, with the index's current CRL number.
    fn write_intermediate_crl(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        let mut revoked = Vec::new();
        for entry in &self.index.certs {
            let invalid = |message: String| PkiError::IndexInvalid {
                path: index_path(&self.dir),
                message: format!("cert {:?}: {message}", entry.name),
            };
            let Some(at) = entry.revoked_time().map_err(invalid)? else {
                continue;
            };
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&entry.serial_bytes().map_err(invalid)?),
                revocation_time: at,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        let crl = self
            .intermediate
            .sign_crl(self.index.intermediate_crl_number, revoked, now)?;
        write_atomic(&self.crl_dir().join("intermediate.crl.pem"), crl.as_bytes())
    }
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            kind: CertKind::Client,
            spiffe: Vec::new(),
            dns: Vec::new(),
            ips: Vec::new(),
            valid_for: DEFAULT_LEAF_VALIDITY,
        }
    }
}

impl std::fmt::Debug for DevPki {
    /// Shows where the PKI is and what it issued, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPki")
            .field("dir", &self.dir)
            .field("issued", &self.index.certs.len())
            .finish_non_exhaustive()
    }
}

/// `init` accepts a missing or empty directory only.
fn check_empty(dir: &Path) -> Result<(), PkiError> {
    if index_path(dir).exists() {
        return Err(PkiError::AlreadyInitialized(dir.to_path_buf()));
    }
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(PkiError::DirNotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PkiError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests;
