//! A test PKI generated at run time with rcgen: root → intermediate → leaves, CRLs, and
//! every kind of bad certificate the tests need. Nothing here is ever written to the repo.

use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    pub serial: SerialNumber,
    pub revoked: Vec<SerialNumber>,
}

pub struct Leaf {
    pub name: String,
    /// Leaf PEM followed by the intermediates the client sends.
    pub chain_pem: String,
    pub key_pem: String,
    pub serial: SerialNumber,
}

/// What a leaf looks like. `Default` is a valid client certificate.
pub struct LeafSpec {
    pub cn: String,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<std::net::IpAddr>,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    /// Send the intermediate with the leaf.
    pub send_intermediate: bool,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec {
            cn: "client".into(),
            uris: vec![],
            dns: vec![],
            ips: vec![],
            eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
            not_before: OffsetDateTime::now_utc() - Duration::minutes(5),
            not_after: OffsetDateTime::now_utc() + Duration::days(30),
            is_ca: false,
            send_intermediate: true,
        }
    }
}

/// The gateway's server certificate: `localhost` and 127.0.0.1, serverAuth.
pub fn server_spec() -> LeafSpec {
    LeafSpec {
        cn: "localhost".into(),
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
        ..LeafSpec::default()
    }
}

pub struct TestPki {
    pub root: Ca,
    pub inter: Ca,
    pub server: Leaf,
}

/// Where truststore material goes.
pub struct TrustLayout {
    pub intermediate_in_store: bool,
    pub crls: bool,
}

impl Default for TrustLayout {
    fn default() -> Self {
        TrustLayout {
            intermediate_in_store: false,
            crls: true,
        }
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "portcullis tests");
    dn.push(DnType::CommonName, cn);
    dn
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn rand_bytes() -> [u8; 16] {
    // rcgen's key generation is random; hash a fresh key's public bytes for a serial.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut out = [0u8; 16];
    out.copy_from_slice(&key.public_key_raw()[1..17]);
    out
}

fn ca_params(cn: &str, pathlen: Option<u8>) -> (CertificateParams, SerialNumber) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(match pathlen {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + Duration::days(365);
    let s = serial();
    p.serial_number = Some(s.clone());
    (p, s)
}

impl Ca {
    pub fn root(cn: &str) -> Ca {
        let (p, serial) = ca_params(cn, None);
        Ca::self_signed(p, serial)
    }

    /// A self-signed root valid from `not_before` to `not_after` (expired, not yet valid…).
    pub fn root_valid(cn: &str, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Ca {
        let (mut p, serial) = ca_params(cn, None);
        p.not_before = not_before;
        p.not_after = not_after;
        Ca::self_signed(p, serial)
    }

    fn self_signed(p: CertificateParams, serial: SerialNumber) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).unwrap(),
            serial,
            revoked: vec![],
        }
    }

    pub fn intermediate(cn: &str, parent: &Ca) -> Ca {
        let (p, serial) = ca_params(cn, Some(0));
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Ca {
            issuer: CertifiedIssuer::signed_by(p, key, &parent.issuer).unwrap(),
            serial,
            revoked: vec![],
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn crl_pem(&self, next_update: OffsetDateTime) -> String {
        self.crl_pem_at(OffsetDateTime::now_utc() - Duration::hours(2), next_update)
    }

    /// A CRL of this CA's revocations with the given thisUpdate.
    pub fn crl_pem_at(&self, this_update: OffsetDateTime, next_update: OffsetDateTime) -> String {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: self
                .revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: s.clone(),
                    revocation_time: now - Duration::hours(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// Issue a leaf directly under this CA.
    pub fn leaf(&self, spec: &LeafSpec, chain_tail: &str) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = dn(&spec.cn);
        let mut sans = Vec::new();
        for u in &spec.uris {
            sans.push(SanType::URI(u.as_str().try_into().unwrap()));
        }
        for d in &spec.dns {
            sans.push(SanType::DnsName(d.as_str().try_into().unwrap()));
        }
        for ip in &spec.ips {
            sans.push(SanType::IpAddress(*ip));
        }
        p.subject_alt_names = sans;
        p.extended_key_usages = spec.eku.clone();
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        }
        p.not_before = spec.not_before;
        p.not_after = spec.not_after;
        let s = serial();
        p.serial_number = Some(s.clone());
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let mut chain_pem = cert.pem();
        if spec.send_intermediate {
            chain_pem.push_str(chain_tail);
        }
        Leaf {
            name: spec.cn.clone(),
            chain_pem,
            key_pem: key.serialize_pem(),
            serial: s,
        }
    }
}

impl TestPki {
    pub fn new() -> TestPki {
        TestPki::named("test")
    }

    /// A PKI whose CAs are called "PREFIX root CA" and "PREFIX intermediate CA".
    pub fn named(prefix: &str) -> TestPki {
        TestPki::under(Ca::root(&format!("{prefix} root CA")), prefix)
    }

    /// A PKI below a given root (one expiring soon, say): its intermediate is called
    /// "PREFIX intermediate CA".
    pub fn under(root: Ca, prefix: &str) -> TestPki {
        let inter = Ca::intermediate(&format!("{prefix} intermediate CA"), &root);
        let server = inter.leaf(&server_spec(), &inter.pem());
        TestPki {
            root,
            inter,
            server,
        }
    }

    /// A valid client with URI SAN `spiffe://test/client/NAME`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(LeafSpec {
            cn: name.into(),
            uris: vec![format!("spiffe://test/client/{name}")],
            ..LeafSpec::default()
        })
    }

    /// A leaf issued by the intermediate.
    pub fn leaf(&self, spec: LeafSpec) -> Leaf {
        self.inter.leaf(&spec, &self.inter.pem())
    }

    pub fn revoke(&mut self, leaf: &Leaf) {
        self.inter.revoked.push(leaf.serial.clone());
    }

    pub fn revoke_intermediate(&mut self) {
        self.root.revoked.push(self.inter.serial.clone());
    }

    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// Write `dir/{roots,intermediates,crls}`.
    pub fn write_truststore(&self, dir: &Path, layout: &TrustLayout) {
        for sub in ["roots", "intermediates", "crls"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("roots/root.pem"), self.root.pem()).unwrap();
        if layout.intermediate_in_store {
            fs::write(dir.join("intermediates/inter.pem"), self.inter.pem()).unwrap();
        }
        if layout.crls {
            let next = OffsetDateTime::now_utc() + Duration::days(7);
            fs::write(dir.join("crls/root.crl.pem"), self.root.crl_pem(next)).unwrap();
            fs::write(dir.join("crls/inter.crl.pem"), self.inter.crl_pem(next)).unwrap();
        }
    }
}
