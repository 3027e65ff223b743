//! A benchmark PKI made in one go: ECDSA P-256 root → intermediate → one server
//! certificate and many client certificates, plus a CRL per CA.
//!
//! `portcullis pki` issues one certificate per command (and keeps a database); a comparison
//! run needs a thousand clients in a second, so the harness makes its own. The layout is
//! the dev PKI's truststore layout plus the bundles NGINX and HAProxy want:
//!
//! ```text
//! DIR/truststore/{roots/root.pem, intermediates/intermediate.pem,
//!                 crls/root.crl.pem, crls/intermediate.crl.pem}
//! DIR/ca-bundle.pem   root + intermediate        DIR/crl-bundle.pem  both CRLs
//! DIR/server/server.pem (leaf + intermediate), server.key, server-combined.pem (+ key)
//! DIR/clients/client-NNNN.pem (leaf + intermediate) + .key   (valid identities)
//! DIR/revoked/revoked-NNNN.pem + .key                         (listed in the CRL)
//! ```

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// What to generate.
#[derive(Clone, Debug)]
pub struct PkiSpec {
    pub clients: usize,
    pub revoked: usize,
    /// DNS names of the server certificate (127.0.0.1 and ::1 are always added).
    pub server_names: Vec<String>,
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    revoked: Vec<SerialNumber>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "portcullis loadtest");
    dn.push(DnType::CommonName, cn);
    dn
}

fn key() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

fn validity(p: &mut CertificateParams, serial: u64) {
    p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    p.serial_number = Some(SerialNumber::from(serial));
}

fn ca_params(cn: &str, pathlen: Option<u8>, serial: u64) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(match pathlen {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut p, serial);
    Ok(p)
}

impl Ca {
    fn crl_pem(&self) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: self
                .revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: s.clone(),
                    revocation_time: now - Duration::minutes(30),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// Leaf (PEM chain with the intermediate, PEM key) under `ca`.
fn leaf(
    ca: &Ca,
    cn: &str,
    serial: u64,
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = dn(cn);
    p.subject_alt_names = sans;
    p.extended_key_usages = vec![eku];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut p, serial);
    let k = key()?;
    let cert = p.signed_by(&k, &ca.issuer)?;
    Ok((cert.pem() + &ca.issuer.pem(), k.serialize_pem()))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn write_key(path: &Path, pem: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

/// Generates the whole PKI into `dir` (created if missing; existing files are replaced).
pub fn generate(dir: &Path, spec: &PkiSpec) -> Result<()> {
    for sub in [
        "truststore/roots",
        "truststore/intermediates",
        "truststore/crls",
        "server",
        "clients",
        "revoked",
    ] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let mut root = Ca {
        issuer: CertifiedIssuer::self_signed(ca_params("loadtest root", None, 1)?, key()?)?,
        revoked: vec![],
    };
    let mut inter = Ca {
        issuer: CertifiedIssuer::signed_by(
            ca_params("loadtest intermediate", Some(0), 2)?,
            key()?,
            &root.issuer,
        )?,
        revoked: vec![],
    };
    // The root's CRL covers the intermediate: empty, but present so that full-chain
    // revocation checking (portcullis, OpenSSL's CRL_CHECK_ALL) finds one per CA.
    root.revoked.clear();

    let mut sans: Vec<SanType> = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress("::1".parse()?),
    ];
    for n in &spec.server_names {
        sans.push(SanType::DnsName(n.as_str().try_into()?));
    }
    let (chain, k) = leaf(
        &inter,
        "server",
        3,
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    write(&dir.join("server/server.pem"), &chain)?;
    write_key(&dir.join("server/server.key"), &k)?;
    write_key(&dir.join("server/server-combined.pem"), &(chain + &k))?;

    let mut serial = 1000u64;
    for (folder, prefix, count) in [
        ("clients", "client", spec.clients),
        ("revoked", "revoked", spec.revoked),
    ] {
        for i in 0..count {
            serial += 1;
            let name = format!("{prefix}-{i:04}");
            let uri = format!("spiffe://loadtest.test/{prefix}/{i}");
            let sans = vec![SanType::URI(uri.as_str().try_into()?)];
            let (chain, k) = leaf(
                &inter,
                &name,
                serial,
                sans,
                ExtendedKeyUsagePurpose::ClientAuth,
            )?;
            write(&dir.join(folder).join(format!("{name}.pem")), &chain)?;
            write_key(&dir.join(folder).join(format!("{name}.key")), &k)?;
            if folder == "revoked" {
                inter.revoked.push(SerialNumber::from(serial));
            }
        }
    }

    let root_pem = root.issuer.pem();
    let inter_pem = inter.issuer.pem();
    let (root_crl, inter_crl) = (root.crl_pem()?, inter.crl_pem()?);
    write(&dir.join("truststore/roots/root.pem"), &root_pem)?;
    write(
        &dir.join("truststore/intermediates/intermediate.pem"),
        &inter_pem,
    )?;
    write(&dir.join("truststore/crls/root.crl.pem"), &root_crl)?;
    write(
        &dir.join("truststore/crls/intermediate.crl.pem"),
        &inter_crl,
    )?;
    write(&dir.join("ca-bundle.pem"), &(root_pem + &inter_pem))?;
    write(&dir.join("crl-bundle.pem"), &(root_crl + &inter_crl))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_layout_with_loadable_identities() {
        let dir = tempfile::tempdir().unwrap();
        let spec = PkiSpec {
            clients: 3,
            revoked: 1,
            server_names: vec!["localhost".into()],
        };
        generate(dir.path(), &spec).unwrap();
        let ids = crate::identity::load_folder(&dir.path().join("clients")).unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0].chain.len(), 2, "leaf + intermediate");
        assert!(dir.path().join("crl-bundle.pem").exists());
        assert!(dir
            .path()
            .join("truststore/crls/intermediate.crl.pem")
            .exists());
    }
}
