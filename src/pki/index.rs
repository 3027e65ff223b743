//! `index.toml`, the CA's database: every issued name with its serial, kind, expiry and
//! revocation time, plus the last CRL number of each CA. It is the source of truth: CRLs
//! are rebuilt from it, so it is saved *before* the CRL that reflects a change.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::files::{read_string, write_atomic};
use super::{CertKind, PkiError};

/// Format version written to new indexes.
const INDEX_VERSION: u32 = 1;

/// The whole of `index.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Index {
    pub version: u32,
    /// Last CRL number used by the root CA.
    pub root_crl_number: u64,
    /// Last CRL number used by the intermediate CA.
    pub intermediate_crl_number: u64,
    #[serde(default, rename = "cert")]
    pub certs: Vec<IndexEntry>,
}

/// One issued leaf.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexEntry {
    pub name: String,
    /// Serial number, lowercase hex of its DER integer content (no leading `00`).
    pub serial: String,
    pub kind: CertKind,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 3339; absent while the certificate is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl Index {
    /// A fresh index: no certificates, no CRL issued yet.
    pub fn new() -> Self {
        Index {
            version: INDEX_VERSION,
            root_crl_number: 0,
            intermediate_crl_number: 0,
            certs: Vec::new(),
        }
    }

    /// Loads and checks `index.toml`.
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = read_string(path)?;
        let index: Index = toml::from_str(&text).map_err(|e| PkiError::IndexParse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        index.check(path)?;
        Ok(index)
    }

    /// Writes `index.toml` atomically.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        let text = toml::to_string(self)?;
        let text = format!("# portcullis dev PKI database; written by `portcullis pki`.\n{text}");
        write_atomic(path, text.as_bytes())
    }

    pub fn find(&self, name: &str) -> Option<&IndexEntry> {
        self.certs.iter().find(|c| c.name == name)
    }

    pub fn find_mut(&mut self, name: &str) -> Option<&mut IndexEntry> {
        self.certs.iter_mut().find(|c| c.name == name)
    }

    /// Rejects what `save` never writes, so a hand-edited index fails at `open`, not later.
    fn check(&self, path: &Path) -> Result<(), PkiError> {
        let invalid = |message: String| PkiError::IndexInvalid {
            path: path.to_path_buf(),
            message,
        };
        if self.version != INDEX_VERSION {
            return Err(invalid(format!(
                "unsupported version {} (expected {INDEX_VERSION})",
                self.version
            )));
        }
        for (i, entry) in self.certs.iter().enumerate() {
            if self.certs[..i].iter().any(|c| c.name == entry.name) {
                return Err(invalid(format!("name {:?} listed twice", entry.name)));
            }
            entry
                .serial_bytes()
                .map_err(|m| invalid(format!("cert {:?}: {m}", entry.name)))?;
            parse_time(&entry.not_after)
                .map_err(|m| invalid(format!("cert {:?}: not_after: {m}", entry.name)))?;
            if let Some(at) = &entry.revoked_at {
                parse_time(at)
                    .map_err(|m| invalid(format!("cert {:?}: revoked_at: {m}", entry.name)))?;
            }
        }
        Ok(())
    }
}

impl IndexEntry {
    /// The serial as bytes.
    pub fn serial_bytes(&self) -> Result<Vec<u8>, String> {
        match hex::decode(&self.serial) {
            Ok(bytes) if !bytes.is_empty() => Ok(bytes),
            Ok(_) => Err("empty serial".to_owned()),
            Err(e) => Err(format!("serial {:?} is not hex: {e}", self.serial)),
        }
    }

    /// When the certificate was revoked, if it was.
    pub fn revoked_time(&self) -> Result<Option<OffsetDateTime>, String> {
        self.revoked_at.as_deref().map(parse_time).transpose()
    }
}

/// Formats a time as RFC 3339 (UTC).
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    // Rfc3339 formatting fails only for years outside 0..=9999 or sub-minute UTC offsets;
    // our times are UTC and within a few years of now, but fall back to the unix time
    // rather than panic.
    // Whole seconds, as in the certificates and CRLs (replacing with 0 cannot fail).
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 time.
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not RFC 3339: {e}"))
}

/// `DIR/index.toml`.
pub(crate) fn index_path(dir: &Path) -> PathBuf {
    dir.join("index.toml")
}
