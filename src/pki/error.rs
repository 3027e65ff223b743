//! The one error type of the dev PKI: every failure names the file or the certificate name
//! it concerns, so `portcullis pki ...` can print it as is.

use std::path::PathBuf;

/// Why a dev PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `init` on a directory that already holds a PKI.
    #[error("{} already holds a PKI (index.toml exists); use it or pick another directory", .0.display())]
    AlreadyInitialized(PathBuf),
    /// `init` on a directory that holds something else.
    #[error("{} exists and is not empty; init wants a new or empty directory", .0.display())]
    DirNotEmpty(PathBuf),
    /// `open` on a directory without a PKI.
    #[error("{} holds no PKI (no index.toml); run `portcullis pki init` first", .0.display())]
    NotInitialized(PathBuf),
    /// A private key file is already there; it is never overwritten.
    #[error("{} already exists; refusing to overwrite a private key", .0.display())]
    KeyExists(PathBuf),
    /// index.toml does not parse.
    #[error("{}: {source}", path.display())]
    IndexParse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// index.toml parses but is inconsistent (bad serial, timestamp, duplicate name).
    #[error("{}: {message}", path.display())]
    IndexInvalid { path: PathBuf, message: String },
    /// index.toml could not be serialised (not expected to happen).
    #[error("serialising index.toml: {0}")]
    IndexWrite(#[from] toml::ser::Error),
    /// A stored CA certificate or key is unusable.
    #[error("{}: {message}", path.display())]
    CaMaterial { path: PathBuf, message: String },
    /// A certificate name outside `[A-Za-z0-9._-]+`.
    #[error("invalid certificate name {0:?}: use 1-64 characters from [A-Za-z0-9._-], not starting with '.'")]
    InvalidName(String),
    /// A name that was already issued (revoked or not).
    #[error("a certificate named {0:?} was already issued; names are never reused")]
    DuplicateName(String),
    /// `revoke` of a name that was never issued.
    #[error("no certificate named {0:?} was issued")]
    UnknownName(String),
    /// `revoke` of a name already revoked.
    #[error("the certificate {0:?} is already revoked")]
    AlreadyRevoked(String),
    /// A URI SAN without a scheme, or with characters a URI cannot hold.
    #[error("invalid URI SAN {0:?}: expected an absolute URI such as spiffe://example.org/ns/default/sa/api")]
    InvalidUri(String),
    /// A DNS SAN that is empty or not ASCII.
    #[error("invalid DNS SAN {0:?}")]
    InvalidDnsName(String),
    /// A validity that is zero or outlives the intermediate CA.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// rcgen refused to build or sign a certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl PkiError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }
}
