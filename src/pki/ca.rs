//! The two CAs of the dev PKI: generating them at `init`, loading them at `open`, and what
//! each signs (the intermediate signs leaves and the leaves' CRL; the root signs the
//! intermediate and the intermediate's CRL).

use std::path::{Path, PathBuf};
use std::time::Duration;

use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::PkiError;

/// Subject O of both CAs.
pub(crate) const ORGANIZATION: &str = "portcullis dev PKI";
/// Subject CN of the root CA.
pub(crate) const ROOT_CN: &str = "portcullis dev root CA";
/// Subject CN of the intermediate CA.
pub(crate) const INTERMEDIATE_CN: &str = "portcullis dev intermediate CA";
/// Lifetime of the root CA.
const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of the intermediate CA.
const INTERMEDIATE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How far back notBefore and thisUpdate are set, to tolerate clock skew between hosts.
pub(crate) const BACKDATE: Duration = Duration::from_secs(60);
/// nextUpdate of every CRL, counted from now.
pub(crate) const CRL_VALIDITY: Duration = Duration::from_secs(60 * 24 * 3600);
/// Length of random serial numbers.
const SERIAL_LEN: usize = 16;

/// One CA loaded from disk: what it takes to sign with it.
pub(crate) struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    /// Its subjectKeyIdentifier, written as the authorityKeyIdentifier of its CRLs.
    pub key_id: Vec<u8>,
    pub not_after: OffsetDateTime,
}

/// A freshly generated CA, as PEM.
pub(crate) struct NewCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// Loads a CA from its certificate and PKCS#8 key, checking that they belong together.
    pub fn load(
        cert_pem: &str,
        cert_path: &Path,
        key_pem: &str,
        key_path: &Path,
    ) -> Result<Self, PkiError> {
        let bad = |path: &Path, message: String| PkiError::CaMaterial {
            path: path.to_path_buf(),
            message,
        };
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| bad(key_path, format!("not a usable private key: {e}")))?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad(cert_path, format!("no PEM certificate: {e}")))?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| bad(cert_path, format!("certificate does not parse: {e}")))?;
        let spki = cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(cert_path, format!("public key does not encode: {e}")))?;
        if spki != key.subject_public_key_info() {
            return Err(bad(
                key_path,
                format!("this key does not belong to {}", cert_path.display()),
            ));
        }
        let key_id = match cert
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
        {
            Ok(Some((_, ski))) => ski.0.as_bytes().to_vec(),
            Ok(None) => return Err(bad(cert_path, "no subjectKeyIdentifier".to_owned())),
            Err(e) => return Err(bad(cert_path, format!("bad subjectKeyIdentifier: {e}"))),
        };
        let not_after = OffsetDateTime::from_unix_timestamp(
            cert.tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration()
                .as_secs()
                .try_into()
                .map_err(|_| bad(cert_path, "notAfter out of range".to_owned()))?,
        )
        .map_err(|e| bad(cert_path, format!("notAfter out of range: {e}")))?;
        // The issuer name, key usages and key identifier come from the stored certificate,
        // so what we sign after a reopen chains to it byte for byte.
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| bad(cert_path, format!("not usable as a CA: {e}")))?;
        Ok(Ca {
            issuer,
            key_id,
            not_after,
        })
    }

    /// Signs a CRL with this CA, listing `revoked`.
    pub fn sign_crl(
        &self,
        crl_number: u64,
        revoked: Vec<RevokedCertParams>,
        now: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// A random suffix for the CA names of one PKI (`a1b2c3d4`), so two demo PKIs side by side
/// never look alike (an anchor of one is never mistaken for the other's in a log line).
pub(crate) fn name_suffix() -> Result<String, PkiError> {
    let mut bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    Ok(hex::encode(bytes))
}

/// Generates the root CA (self-signed), named `ROOT_CN suffix`.
pub(crate) fn generate_root(now: OffsetDateTime, suffix: &str) -> Result<NewCa, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let params = ca_params(
        &format!("{ROOT_CN} {suffix}"),
        BasicConstraints::Constrained(1),
        ROOT_VALIDITY,
        now,
    )?;
    let cert = params.self_signed(&key)?;
    Ok(NewCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates the intermediate CA, signed by `root`, named `INTERMEDIATE_CN suffix`.
pub(crate) fn generate_intermediate(
    root: &Ca,
    now: OffsetDateTime,
    suffix: &str,
) -> Result<NewCa, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params(
        &format!("{INTERMEDIATE_CN} {suffix}"),
        BasicConstraints::Constrained(0),
        INTERMEDIATE_VALIDITY,
        now,
    )?;
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &root.issuer)?;
    Ok(NewCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn ca_params(
    cn: &str,
    constraints: BasicConstraints,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// A random positive 16-byte serial. The first byte is in 0x01..=0x7f, so the DER integer
/// is exactly these 16 bytes (no sign padding, no stripped zero) and its hex in index.toml
/// matches what a CRL parser reports.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    let mut bytes = [0u8; SERIAL_LEN];
    random.fill(&mut bytes).map_err(|_| PkiError::Random)?;
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// Paths of the CA material under DIR.
pub(crate) struct CaPaths {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
}

impl CaPaths {
    pub fn new(dir: &Path) -> Self {
        let ca = dir.join("ca");
        CaPaths {
            root_cert: ca.join("root.pem"),
            root_key: ca.join("root.key"),
            intermediate_cert: ca.join("intermediate.pem"),
            intermediate_key: ca.join("intermediate.key"),
        }
    }
}
