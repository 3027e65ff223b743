//! Reading the files the configuration names: truststore certificates and CRLs, listener
//! certificates and keys, upstream TLS material, CA bundles and the SigV4 credentials file.
//!
//! Two things every such read shares:
//! - a size bound ([`MAX_FILE_SIZE`]): a larger file is refused before it is read whole.
//!   The open file's length is checked first, and the read itself goes through
//!   `Read::take(limit + 1)`, so a file that grows between the two cannot get past;
//! - PEM errors in words ([`pem_error`]): which BEGIN/END line is missing or malformed, not
//!   the byte lists of `rustls_pki_types::pem::Error`'s own text.
//!
//! The certificate and key files of the gateway's TLS (a listener's, an upstream's `tls`,
//! `cluster.tls`, a JWKS provider's `jwks_ca`, and the credentials helper's `--cert`,
//! `--chain` and `--ca`) are read by [`read_certs`] and [`read_private_key`], and the TLS
//! clients made from them start at [`client_builder`] (the helper's may trust the system
//! bundle and builds its own); each caller puts the file and its config key
//! in front of the words of [`PemFileError`], and checks a key's permissions
//! ([`key_mode_too_open`]) by its own policy before reading it.
//!
//! A ground-floor module: it uses nothing of the crate.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The largest file of key material the gateway reads: any file of the truststore
/// (`roots/`, `intermediates/`, `crls/`), a listener or upstream certificate, key or CA
/// bundle, the SigV4 credentials file. 16 MiB holds a CRL of some 400,000 entries.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// `size` is the length seen (`limit + 1` when the file grew during the read).
    #[error("the file is over the size limit of {} ({size} bytes)", Size(*.limit))]
    TooLarge { size: u64, limit: u64 },
}

/// Read `path` whole, refusing a file over `limit` bytes without reading it.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path)?;
    // The open file's own length: the same inode the read below sees.
    let size = file.metadata()?.len();
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    read_limited(file, size, limit)
}

/// Read at most `limit` bytes of `reader` (`hint`: the expected length); one more byte
/// means it is over the limit.
fn read_limited(reader: impl Read, hint: u64, limit: u64) -> Result<Vec<u8>, ReadError> {
    // Both are at most `limit`, which callers keep far below usize::MAX.
    let capacity = usize::try_from(hint.min(limit)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    let read = reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let read = read as u64;
    if read > limit {
        return Err(ReadError::TooLarge { size: read, limit });
    }
    Ok(bytes)
}

/// [`read_bounded`] of a UTF-8 text file.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Why a certificate or key file could not be loaded, in words that follow its name.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("bad PEM: {}", pem_error(.0))]
    BadPem(pem::Error),
    #[error("no CERTIFICATE PEM block found")]
    NoCertificate,
    #[error("no usable private key (PKCS#8, SEC1 or PKCS#1 PEM): {}", pem_error(.0))]
    NoKey(pem::Error),
}

/// Every certificate of a PEM file (a chain: the leaf first), at most [`MAX_FILE_SIZE`]
/// bytes; a file without one is refused.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemFileError> {
    let bytes = read_bounded(path, MAX_FILE_SIZE)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemFileError::BadPem)?;
    if certs.is_empty() {
        return Err(PemFileError::NoCertificate);
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, SEC1 or PKCS#1), at most [`MAX_FILE_SIZE`] bytes.
/// The file's permissions are not looked at: the caller checks [`key_mode_too_open`] first.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemFileError> {
    let bytes = read_bounded(path, MAX_FILE_SIZE)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(PemFileError::NoKey)
}

/// Why [`client_builder`] failed (its text is rustls's; callers that name the file match
/// on the variant).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// A certificate of the CA bundle is not a usable trust anchor.
    #[error("{0}")]
    Root(rustls::Error),
    /// rustls refused the provider's default protocol versions.
    #[error("{0}")]
    Versions(rustls::Error),
}

/// Where every TLS client of the gateway's own connections starts (an upstream's `tls`,
/// `cluster.tls`): the aws-lc-rs provider, rustls's safe default protocol versions, and
/// the certificates of `ca` as the only roots, never the system's. The caller adds its
/// client certificate, or none.
pub fn client_builder(
    ca: Vec<CertificateDer<'static>>,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, ClientBuildError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(ClientBuildError::Root)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientBuildError::Versions)?
        .with_root_certificates(roots))
}

/// A PEM parse error in words, naming the label of the block at fault.
pub fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "missing the end line \"-----END {}-----\"",
                printable(end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => format!(
            "the line \"{}\" is not a valid PEM BEGIN line (\"-----BEGIN LABEL-----\")",
            printable(line)
        ),
        pem::Error::Base64Decode(what) => {
            format!("the base64 text inside a PEM block does not decode ({what})")
        }
        pem::Error::Io(e) => format!("cannot read: {e}"),
        pem::Error::NoItemsFound => "no PEM block of the expected kind".to_owned(),
        pem::Error::SectionTooLarge => "a PEM block is larger than 256 MB".to_owned(),
        // `pem::Error` is non-exhaustive: a variant added later keeps its own text.
        other => other.to_string(),
    }
}

/// Bytes from a file shown as text: line ends trimmed, anything but printable ASCII as
/// `?`, at most 64 characters.
fn printable(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let trimmed = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b' '))
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    let mut out: String = trimmed
        .iter()
        .take(MAX)
        .map(|&b| match b {
            b' '..=b'~' => char::from(b),
            _ => '?',
        })
        .collect();
    if trimmed.len() > MAX {
        out.push('…');
    }
    out
}

/// The permission bits of a private key file when they let another user read it (any bit
/// for others) or replace it (group write), else `None`. Group read stays allowed: it is how
/// a Kubernetes Secret mounted with `fsGroup` reaches a non-root process (0440). Always
/// `None` off Unix.
pub fn key_mode_too_open(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        Ok((mode & 0o027 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// A byte count in the largest whole unit (`16 MiB`, `1500 bytes`).
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1024 * 1024;
        const KIB: u64 = 1024;
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use rustls_pki_types::CertificateRevocationListDer;

    use super::*;

    /// Counts what is read from an endless stream of zeroes.
    struct Endless<'a>(&'a mut u64);

    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            *self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.crl");
        // Sparse: 17 MiB of length, no data blocks.
        File::create(&path)
            .unwrap()
            .set_len(17 * 1024 * 1024)
            .unwrap();
        let err = read_bounded(&path, MAX_FILE_SIZE).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge { size, limit: MAX_FILE_SIZE } if size == 17 * 1024 * 1024),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("over the size limit of 16 MiB"),
            "{err}"
        );

        // At the limit it is read (a small limit keeps the test light).
        let small = dir.path().join("small.pem");
        File::create(&small)
            .unwrap()
            .write_all(&[b'x'; 100])
            .unwrap();
        assert_eq!(read_bounded(&small, 100).unwrap().len(), 100);
        assert!(matches!(
            read_bounded(&small, 99),
            Err(ReadError::TooLarge {
                size: 100,
                limit: 99
            })
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("absent.pem"), 100),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn a_source_longer_than_its_length_said_is_cut_at_the_limit() {
        // The length checked said 0 (a file that grew after the check, or /dev/zero): the
        // read stops one byte past the limit.
        let mut read = 0;
        let err = read_limited(Endless(&mut read), 0, 4096).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::TooLarge {
                    size: 4097,
                    limit: 4096
                }
            ),
            "{err:?}"
        );
        assert_eq!(read, 4097, "read {read} bytes");
    }

    #[test]
    fn pem_errors_name_the_label_in_words() {
        let cut = b"-----BEGIN X509 CRL-----\nMAA=\n";
        let e = CertificateRevocationListDer::pem_slice_iter(cut)
            .next()
            .unwrap()
            .unwrap_err();
        let text = pem_error(&e);
        assert_eq!(text, "missing the end line \"-----END X509 CRL-----\"");

        let e = CertificateDer::pem_slice_iter(b"-----BEGIN CERTIFICATE----\nMAA=\n")
            .next()
            .unwrap()
            .unwrap_err();
        let text = pem_error(&e);
        assert!(text.contains("\"-----BEGIN CERTIFICATE----\""), "{text}");
        assert!(!text.contains('['), "{text}");

        let e = PrivateKeyDer::from_pem_slice(b"nothing here").unwrap_err();
        assert_eq!(pem_error(&e), "no PEM block of the expected kind");

        let e = CertificateDer::pem_slice_iter(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .next()
        .unwrap()
        .unwrap_err();
        assert!(pem_error(&e).starts_with("the base64 text"), "{e:?}");
    }

    #[test]
    fn certificate_and_key_files_are_refused_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        File::create(&empty).unwrap();
        let text = |e: PemFileError| e.to_string();
        assert_eq!(
            text(read_certs(&empty).unwrap_err()),
            "no CERTIFICATE PEM block found"
        );
        assert_eq!(
            text(read_private_key(&empty).unwrap_err()),
            "no usable private key (PKCS#8, SEC1 or PKCS#1 PEM): no PEM block of the expected kind"
        );
        let cut = dir.path().join("cut.pem");
        fs::write(&cut, "-----BEGIN CERTIFICATE-----\nMAA=\n").unwrap();
        assert_eq!(
            text(read_certs(&cut).unwrap_err()),
            "bad PEM: missing the end line \"-----END CERTIFICATE-----\""
        );
        let absent = dir.path().join("absent.pem");
        assert!(text(read_certs(&absent).unwrap_err()).starts_with("cannot read: "));

        // A block that is no certificate is not a root.
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(matches!(
            client_builder(vec![junk]),
            Err(ClientBuildError::Root(_))
        ));
        assert!(client_builder(Vec::new()).is_ok());
    }

    #[test]
    fn printable_trims_escapes_and_shortens() {
        assert_eq!(printable(b"X509 CRL\r\n"), "X509 CRL");
        assert_eq!(printable(b"A\x00\xffB"), "A??B");
        let long = printable(&[b'a'; 100]);
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
    }
}
