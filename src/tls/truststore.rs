//! The client-certificate truststore: one immutable snapshot loaded from a folder.
//!
//! Layout of the folder (any subfolder may be missing, meaning empty):
//! - `roots/`: trust anchors;
//! - `intermediates/`: CA certificates used for path building even when clients don't send them;
//! - `crls/`: certificate revocation lists.
//!
//! `.pem`/`.crt` files hold one or more PEM blocks; `.der`/`.cer`/`.crl` files hold one DER
//! object; every other file (editor backups, `*.tmp`, `README`) is ignored. A file that cannot
//! be parsed fails the whole load ([`TruststoreError`] names it): a reload keeps the last good
//! snapshot rather than silently trusting less or more than the operator intended.
//!
//! CRLs issued by a loaded CA are signature-checked here, once, so a forged or corrupted CRL
//! is refused at load rather than discovered at handshake time. When two CRLs share an issuer
//! only the one with the latest `thisUpdate` is kept (webpki would use whichever came first).
//!
//! CRLs fetched from URLs (`[[truststore.crl_fetch]]`, see [`crate::reload::crl_fetch`]) join
//! the folder's CRLs here. They were checked before they were kept, and are checked again
//! against this folder's CAs: one that no longer verifies (its CA was removed or replaced)
//! is left out with a warning rather than failing the load, since the folder is the
//! operator's input and the fetched CRL is not.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use der::{Decode, Encode, Reader, SliceReader};
use rustls::DistinguishedName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, SignatureVerificationAlgorithm, TrustAnchor,
};
use sha2::{Digest, Sha256};
use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;

use crate::identity::{format_name, serial_hex};
use crate::material::{pem_error, read_bounded, MAX_FILE_SIZE};

use super::verifier::system_rfc3339;

/// Why a truststore folder could not be loaded. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TruststoreError {
    #[error("truststore {dir}: cannot read: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("truststore file {file}: {what}")]
    BadFile { file: PathBuf, what: String },
    /// The configured folder itself is not there (or is not a folder).
    #[error("truststore {dir}: {what}")]
    Missing { dir: PathBuf, what: &'static str },
    #[error("truststore {dir}: it has no roots/ folder (put at least one root CA in {dir}/roots)")]
    NoRootsFolder { dir: PathBuf },
    #[error("truststore {dir}: no root CA in {dir}/roots (at least one is needed)")]
    NoRoots { dir: PathBuf },
    #[error(
        "truststore file {file}: CRL signature does not verify with the key of its issuer {issuer}"
    )]
    CrlSignature { file: PathBuf, issuer: String },
    /// Every root is outside its validity period: the store would refuse every client.
    #[error("truststore {dir}: no root CA in roots/ is valid now, so every client would be refused: {roots}")]
    NoValidRoot { dir: PathBuf, roots: String },
}

/// What the `/truststore` admin endpoint shows about one CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    pub subject: String,
    /// Lowercase hex SHA-256 of the certificate DER.
    pub fingerprint: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// True for `roots/`, false for `intermediates/`.
    pub root: bool,
    pub file: PathBuf,
}

/// Where a CRL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    /// A file in `crls/`.
    File(PathBuf),
    /// A `[[truststore.crl_fetch]]` URL.
    Url(String),
}

impl std::fmt::Display for CrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlSource::File(p) => write!(f, "{}", p.display()),
            CrlSource::Url(u) => f.write_str(u),
        }
    }
}

/// What the `/truststore` admin endpoint shows about one CRL in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub issuer: String,
    pub this_update: SystemTime,
    pub next_update: Option<SystemTime>,
    pub revoked: usize,
    /// Whether the signature was checked at load (false when the issuer is not in the store).
    pub signature_checked: bool,
    pub source: CrlSource,
}

/// A CRL fetched from a URL, offered to [`Truststore::load_with`].
#[derive(Debug, Clone)]
pub struct FetchedCrl {
    pub url: String,
    pub der: CertificateRevocationListDer<'static>,
}

/// Why a CRL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlRefusal {
    #[error("{0}")]
    Bad(String),
    #[error("CRL signature does not verify with the key of its issuer {0}")]
    Signature(String),
    #[error("its issuer {0} is not a CA in the truststore, so its signature cannot be checked")]
    NoIssuer(String),
}

/// An immutable truststore snapshot; build a new one to reload.
#[derive(Debug)]
pub struct Truststore {
    anchors: Vec<TrustAnchor<'static>>,
    /// DER of each root, same order as `anchors` (for checks webpki skips on anchors).
    root_ders: Vec<CertificateDer<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    cas: Vec<CaInfo>,
    crl_info: Vec<CrlInfo>,
    root_subjects: Vec<DistinguishedName>,
    /// Every CA (roots, then intermediates), parsed: the possible CRL issuers.
    parsed_cas: Vec<Certificate>,
    /// Issuer DN ([`format_name`]) → serials (as [`serial_hex`]) its CRL in use revokes:
    /// one hash lookup for whoever holds only a leaf's issuer and serial (session
    /// credentials, checked on every request).
    revoked_serials: HashMap<String, HashSet<String>>,
}

/// One CA certificate as loaded, kept until CRLs are checked.
struct LoadedCa {
    der: CertificateDer<'static>,
    parsed: Certificate,
}

/// One CRL as loaded, before de-duplication.
struct LoadedCrl {
    crl: OwnedCertRevocationList,
    info: CrlInfo,
    issuer: x509_cert::name::Name,
    /// The revoked serials, as [`serial_hex`].
    serials: Vec<String>,
}

impl Truststore {
    /// Load `dir/roots`, `dir/intermediates` and `dir/crls`.
    pub fn load(dir: &Path) -> Result<Truststore, TruststoreError> {
        Self::load_with(dir, &[])
    }

    /// Load the folder, and use the `fetched` CRLs that verify against its CAs (one that
    /// does not is left out with a warning).
    pub fn load_with(dir: &Path, fetched: &[FetchedCrl]) -> Result<Truststore, TruststoreError> {
        Self::load_fetched(dir, fetched, true)
    }

    /// [`Truststore::load_with`] for a folder offered every fetched CRL of the gateway (a
    /// session trust anchor's): one issued by none of its CAs belongs to another truststore
    /// and is skipped without a warning; any other refusal is warned about as there.
    pub fn load_with_own(
        dir: &Path,
        fetched: &[FetchedCrl],
    ) -> Result<Truststore, TruststoreError> {
        Self::load_fetched(dir, fetched, false)
    }

    fn load_fetched(
        dir: &Path,
        fetched: &[FetchedCrl],
        warn_foreign: bool,
    ) -> Result<Truststore, TruststoreError> {
        let missing = |what| TruststoreError::Missing {
            dir: dir.to_path_buf(),
            what,
        };
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(missing("is not a folder")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(missing("the folder does not exist"))
            }
            Err(source) => {
                return Err(TruststoreError::Io {
                    dir: dir.to_path_buf(),
                    source,
                })
            }
        }
        let roots = load_ca_dir(&dir.join("roots"))?;
        if roots.is_empty() {
            let dir = dir.to_path_buf();
            return Err(if dir.join("roots").is_dir() {
                TruststoreError::NoRoots { dir }
            } else {
                TruststoreError::NoRootsFolder { dir }
            });
        }
        let intermediates = load_ca_dir(&dir.join("intermediates"))?;
        let sig_algs = super::provider().signature_verification_algorithms.all;

        let mut anchors = Vec::with_capacity(roots.len());
        let mut root_subjects = Vec::with_capacity(roots.len());
        let mut cas = Vec::new();
        for (file, ca) in &roots {
            let anchor = webpki::anchor_from_trusted_cert(&ca.der).map_err(|e| bad(file, e))?;
            // webpki keeps the Name without its SEQUENCE header; the wire form needs it.
            root_subjects.push(DistinguishedName::in_sequence(anchor.subject.as_ref()));
            anchors.push(anchor.to_owned());
            cas.push(ca_info(file, ca, true));
        }
        for (file, ca) in &intermediates {
            cas.push(ca_info(file, ca, false));
        }

        let parsed_cas: Vec<Certificate> = roots
            .iter()
            .chain(intermediates.iter())
            .map(|(_, ca)| ca.parsed.clone())
            .collect();
        let mut loaded: Vec<LoadedCrl> = Vec::new();
        for file in list_files(&dir.join("crls"))? {
            for der in read_crls(&file)? {
                let source = CrlSource::File(file.clone());
                match check_crl(source, &der, &parsed_cas, sig_algs, false) {
                    Ok(crl) => {
                        if !crl.info.signature_checked {
                            tracing::warn!(
                                file = %file.display(),
                                issuer = %crl.info.issuer,
                                "CRL issuer is not in the truststore; its signature is checked at use"
                            );
                        }
                        loaded.push(crl);
                    }
                    Err(CrlRefusal::Signature(issuer)) => {
                        return Err(TruststoreError::CrlSignature { file, issuer })
                    }
                    Err(e) => return Err(bad(&file, e)),
                }
            }
        }
        for f in fetched {
            let source = CrlSource::Url(f.url.clone());
            match check_crl(source, &f.der, &parsed_cas, sig_algs, true) {
                Ok(crl) => loaded.push(crl),
                Err(CrlRefusal::NoIssuer(_)) if !warn_foreign => {}
                Err(e) => tracing::warn!(url = %f.url, reason = %e,
                    "a fetched CRL no longer verifies against the truststore; left out"),
            }
        }

        // Keep only the newest CRL per issuer: webpki consults the first one it finds.
        let mut kept: Vec<LoadedCrl> = Vec::with_capacity(loaded.len());
        for crl in loaded {
            match kept.iter_mut().find(|k| k.issuer == crl.issuer) {
                Some(k) if crl.info.this_update > k.info.this_update => {
                    tracing::info!(
                        kept = %crl.info.source,
                        dropped = %k.info.source,
                        "two CRLs for one issuer: keeping the newer"
                    );
                    *k = crl;
                }
                Some(k) => {
                    tracing::info!(
                        kept = %k.info.source,
                        dropped = %crl.info.source,
                        "two CRLs for one issuer: keeping the newer"
                    );
                }
                None => kept.push(crl),
            }
        }
        let crl_info = kept.iter().map(|c| c.info.clone()).collect();
        let mut revoked_serials: HashMap<String, HashSet<String>> = HashMap::new();
        for c in &mut kept {
            let serials = std::mem::take(&mut c.serials);
            revoked_serials
                .entry(c.info.issuer.clone())
                .or_default()
                .extend(serials);
        }
        let crls = kept.into_iter().map(|c| c.crl.into()).collect();

        Ok(Truststore {
            anchors,
            root_ders: roots.into_iter().map(|(_, ca)| ca.der).collect(),
            intermediates: intermediates.into_iter().map(|(_, ca)| ca.der).collect(),
            crls,
            cas,
            crl_info,
            root_subjects,
            parsed_cas,
            revoked_serials,
        })
    }

    /// Whether a CRL in use revokes the certificate `serial` (hex, any case, leading zeros
    /// allowed) of `issuer` (a DN as [`format_name`] writes it). Only the serial lists are
    /// read: the CRL's dates and signature were judged when it was loaded.
    pub fn is_revoked_serial(&self, issuer: &str, serial: &str) -> bool {
        let Some(serials) = self.revoked_serials.get(issuer) else {
            return false;
        };
        let trimmed = serial.trim_start_matches('0');
        let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
        if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
            return serials.contains(&trimmed.to_ascii_lowercase());
        }
        serials.contains(trimmed)
    }

    /// Check a CRL fetched from `url` as [`Truststore::load_with`] will: it parses, its
    /// issuer is a CA here, the signature verifies and it meets the RFC 5280 profile.
    pub fn check_fetched_crl(&self, url: &str, der: &[u8]) -> Result<CrlInfo, CrlRefusal> {
        let algs = super::provider().signature_verification_algorithms.all;
        check_crl(
            CrlSource::Url(url.to_owned()),
            der,
            &self.parsed_cas,
            algs,
            true,
        )
        .map(|c| c.info)
    }

    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// The root certificate behind `anchor` (one of [`Truststore::anchors`]).
    pub fn root_der(&self, anchor: &TrustAnchor<'_>) -> Option<&CertificateDer<'static>> {
        self.anchors
            .iter()
            .position(|a| {
                a.subject == anchor.subject
                    && a.subject_public_key_info == anchor.subject_public_key_info
            })
            .and_then(|i| self.root_ders.get(i))
    }

    /// CA certificates from `intermediates/`, offered to path building.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.intermediates
    }

    pub fn revocation_lists(&self) -> &[CertRevocationList<'static>] {
        &self.crls
    }

    /// Every CA (roots first, then intermediates) for the admin endpoint.
    pub fn cas(&self) -> &[CaInfo] {
        &self.cas
    }

    /// The CRLs in use (one per issuer).
    pub fn crls(&self) -> &[CrlInfo] {
        &self.crl_info
    }

    /// Refuse a store that would refuse every client: no root is within its validity
    /// period at `now` (the verifier checks the root's validity, webpki does not). One
    /// valid root is enough; a root that merely expires soon is `expiry_warning`'s business.
    pub fn check_roots_valid(&self, now: SystemTime) -> Result<(), TruststoreError> {
        let roots = || self.cas.iter().filter(|c| c.root);
        if roots().any(|c| c.not_before <= now && now <= c.not_after) {
            return Ok(());
        }
        let why: Vec<String> = roots()
            .map(|c| {
                let file = c.file.file_name().unwrap_or_default().to_string_lossy();
                if c.not_after < now {
                    format!(
                        "{file} ({}) expired at {}",
                        c.subject,
                        system_rfc3339(c.not_after)
                    )
                } else {
                    let from = system_rfc3339(c.not_before);
                    format!("{file} ({}) is not valid before {from}", c.subject)
                }
            })
            .collect();
        // `load_with` refuses a store without roots, so a root's file names the folder.
        let dir = roots()
            .next()
            .and_then(|c| c.file.parent()?.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Err(TruststoreError::NoValidRoot {
            dir,
            roots: why.join("; "),
        })
    }

    /// Subjects of the roots, sent to clients as acceptable CA hints.
    pub fn root_subjects(&self) -> &[DistinguishedName] {
        &self.root_subjects
    }
}

fn bad(file: &Path, what: impl std::fmt::Display) -> TruststoreError {
    TruststoreError::BadFile {
        file: file.to_path_buf(),
        what: what.to_string(),
    }
}

/// Files in `dir` that we read, sorted by name; a missing folder is empty.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, TruststoreError> {
    let io = |source| TruststoreError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.is_file() && kind_of(&path).is_some() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Pem,
    Der,
}

fn kind_of(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "pem" | "crt" => Some(FileKind::Pem),
        "der" | "cer" | "crl" => Some(FileKind::Der),
        _ => None,
    }
}

/// Read one file whole, refusing one over [`MAX_FILE_SIZE`] before reading it.
fn read_file(path: &Path) -> Result<Vec<u8>, TruststoreError> {
    read_bounded(path, MAX_FILE_SIZE).map_err(|e| bad(path, e))
}

fn load_ca_dir(dir: &Path) -> Result<Vec<(PathBuf, LoadedCa)>, TruststoreError> {
    let mut out = Vec::new();
    for file in list_files(dir)? {
        let bytes = read_file(&file)?;
        let ders: Vec<CertificateDer<'static>> = match kind_of(&file) {
            Some(FileKind::Der) => vec![CertificateDer::from(bytes)],
            _ => CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&file, format!("bad PEM: {}", pem_error(&e))))?,
        };
        if ders.is_empty() {
            return Err(bad(&file, "no CERTIFICATE PEM block found"));
        }
        for (i, der) in ders.into_iter().enumerate() {
            let parsed = Certificate::from_der(&der).map_err(|e| {
                bad(
                    &file,
                    format!("certificate #{} is not valid X.509: {e}", i + 1),
                )
            })?;
            out.push((file.clone(), LoadedCa { der, parsed }));
        }
    }
    Ok(out)
}

fn read_crls(file: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TruststoreError> {
    let bytes = read_file(file)?;
    let ders: Vec<_> = match kind_of(file) {
        Some(FileKind::Der) => vec![CertificateRevocationListDer::from(bytes)],
        _ => CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(file, format!("bad PEM: {}", pem_error(&e))))?,
    };
    if ders.is_empty() {
        return Err(bad(file, "no X509 CRL PEM block found"));
    }
    Ok(ders)
}

/// Parse one CRL and check it against `cas`: the signature with its issuer's key (any CA
/// with the issuer's name whose key verifies it) and the RFC 5280 rules webpki does not
/// check ([`super::profile::check_crl`]). A CRL whose issuer is not among `cas` is refused
/// when `require_issuer`, else kept unchecked (webpki checks it at use).
fn check_crl(
    source: CrlSource,
    der: &[u8],
    cas: &[Certificate],
    algs: &[&dyn SignatureVerificationAlgorithm],
    require_issuer: bool,
) -> Result<LoadedCrl, CrlRefusal> {
    let crl = OwnedCertRevocationList::from_der(der)
        .map_err(|e| CrlRefusal::Bad(format!("CRL not usable: {e}")))?;
    let parsed = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(|e| CrlRefusal::Bad(format!("CRL is not valid: {e}")))?;
    let tbs = &parsed.tbs_cert_list;
    let mut info = CrlInfo {
        issuer: format_name(&tbs.issuer),
        this_update: tbs.this_update.to_system_time(),
        next_update: tbs.next_update.map(|t| t.to_system_time()),
        revoked: tbs.revoked_certificates.as_ref().map_or(0, Vec::len),
        signature_checked: false,
        source,
    };
    let mut issuers = cas
        .iter()
        .filter(|ca| ca.tbs_certificate().subject() == &tbs.issuer)
        .peekable();
    let signer = if issuers.peek().is_some() {
        let Some(signer) = issuers.find(|ca| crl_signature_ok(der, ca, algs)) else {
            return Err(CrlRefusal::Signature(info.issuer));
        };
        info.signature_checked = true;
        Some(signer)
    } else if require_issuer {
        return Err(CrlRefusal::NoIssuer(info.issuer));
    } else {
        None
    };
    super::profile::check_crl(&parsed, signer).map_err(|e| CrlRefusal::Bad(e.to_string()))?;
    let serials = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| serial_hex(r.serial_number.as_bytes()))
        .collect();
    Ok(LoadedCrl {
        crl,
        info,
        issuer: tbs.issuer.clone(),
        serials,
    })
}

fn ca_info(file: &Path, ca: &LoadedCa, root: bool) -> CaInfo {
    let validity = ca.parsed.tbs_certificate().validity();
    CaInfo {
        subject: format_name(ca.parsed.tbs_certificate().subject()),
        fingerprint: hex::encode(Sha256::digest(ca.der.as_ref())),
        not_before: validity.not_before.to_system_time(),
        not_after: validity.not_after.to_system_time(),
        root,
        file: file.to_path_buf(),
    }
}

/// Check a CRL's signature with `issuer`'s key.
///
/// webpki's `CertRevocationList::verify_signature` is crate-private in 0.103, so this does
/// what webpki's `verify_signed_data` does: pick the provider algorithm whose signature and
/// public-key algorithm identifiers match the CRL's and the issuer's, and verify the raw
/// `tbsCertList` bytes with it.
fn crl_signature_ok(
    crl_der: &[u8],
    issuer: &Certificate,
    algs: &[&dyn SignatureVerificationAlgorithm],
) -> bool {
    let Ok((tbs, sig_alg, signature)) = split_signed(crl_der) else {
        return false;
    };
    let spki = issuer.tbs_certificate().subject_public_key_info();
    let Ok(spki_alg) = spki.algorithm.to_der() else {
        return false;
    };
    let Some(public_key) = spki.subject_public_key.as_bytes() else {
        return false;
    };
    let (Some(sig_alg), Some(spki_alg)) = (seq_contents(sig_alg), seq_contents(&spki_alg)) else {
        return false;
    };
    algs.iter()
        .filter(|a| {
            a.signature_alg_id().as_ref() == sig_alg && a.public_key_alg_id().as_ref() == spki_alg
        })
        .any(|a| a.verify_signature(public_key, tbs, signature).is_ok())
}

/// Split `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }` into raw tbs TLV, raw
/// algorithm TLV and signature bytes.
fn split_signed(der: &[u8]) -> der::Result<(&[u8], &[u8], &[u8])> {
    let mut reader = SliceReader::new(der)?;
    reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        let alg = r.tlv_bytes()?;
        let sig = der::asn1::BitStringRef::decode(r)?;
        let sig = sig
            .as_bytes()
            .ok_or_else(|| der::Tag::BitString.value_error())?;
        Ok((tbs, alg, sig))
    })
}

/// The contents of a DER SEQUENCE (what pki-types' `AlgorithmIdentifier` holds).
fn seq_contents(tlv: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = tlv.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let n = usize::from(len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    (rest.len() == len).then_some(rest)
}

#[cfg(test)]
#[path = "truststore_tests.rs"]
mod tests;
