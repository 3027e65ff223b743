//! The client side of the session issuer: temporary credentials from a certificate, for
//! unmodified AWS SDKs. `portcullis credentials` (a `credential_process`) asks once and
//! prints; `portcullis agent` ([`agent`]) keeps credentials fresh in memory and serves them
//! as IMDSv2 and as a container credentials endpoint.
//!
//! Both send IAM Roles Anywhere's `CreateSession` as the Go `aws_signing_helper` does: the
//! three ARNs in the query string, `{"durationSeconds"[,"roleSessionName"]}` as an
//! `application/json` body, the leaf and chain in `X-Amz-X509[-Chain]`, signed by
//! [`sign`] (the client's own signer, not the gateway's canonicalisation).
//!
//! A front-floor module: it uses `material` (bounded reads, PEM errors in words) and `fetch`
//! (its retry backoff) only.

pub mod agent;
mod imds;
pub mod output;
pub mod sign;
mod wire;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::material::{self, pem_error, read_bounded, MAX_FILE_SIZE};

pub use output::Credentials;

/// `--duration`'s default: botocore refreshes 15 min before expiry, so anything that short
/// would be fetched again on every call.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(3600);
/// CreateSession's bounds on `durationSeconds`.
const MIN_DURATION: u64 = 900;
const MAX_DURATION: u64 = 43_200;

/// What `credentials` and `agent` are told on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL; the request goes to `<endpoint>/sessions`.
    pub endpoint: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: Option<PathBuf>,
    pub trust_anchor: String,
    pub profile: String,
    pub role: String,
    /// Trust roots for the endpoint's certificate; the system bundle without it.
    pub ca: Option<PathBuf>,
    pub duration: Duration,
    pub session_name: Option<String>,
}

/// Why no credentials came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The command line or the files it names (nothing was sent).
    #[error("{0}")]
    Setup(String),
    /// No answer: connection, TLS, timeout.
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The endpoint refused: its status, `x-amzn-ErrorType` and message.
    #[error("CreateSession refused: {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A success whose body is not a credential set.
    #[error("CreateSession answered {status} with an unusable body: {reason}")]
    BadAnswer { status: u16, reason: String },
}

impl ClientError {
    /// Worth trying again later: the endpoint was down or failed, rather than said no.
    pub fn transient(&self) -> bool {
        match self {
            ClientError::Setup(_) => false,
            ClientError::Unreachable { .. } | ClientError::BadAnswer { .. } => true,
            ClientError::Refused { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

/// Everything to send CreateSession, loaded and checked once.
pub struct Client {
    endpoint: wire::Endpoint,
    url: String,
    key: sign::SigningKey,
    certs: sign::CertHeaders,
    region: String,
    query: String,
    body: Bytes,
    role_name: String,
}

impl Client {
    pub fn new(opts: &Options) -> Result<Client, ClientError> {
        let setup = ClientError::Setup;
        let anchor = Arn::parse(&opts.trust_anchor, "rolesanywhere", "trust-anchor")
            .map_err(|e| setup(format!("--trust-anchor: {e}")))?;
        let profile = Arn::parse(&opts.profile, "rolesanywhere", "profile")
            .map_err(|e| setup(format!("--profile: {e}")))?;
        let role =
            Arn::parse(&opts.role, "iam", "role").map_err(|e| setup(format!("--role: {e}")))?;
        if anchor.region != profile.region {
            return Err(setup(format!(
                "--trust-anchor is in region {} but --profile in {}: they must match",
                anchor.region, profile.region
            )));
        }
        let secs = opts.duration.as_secs();
        if !(MIN_DURATION..=MAX_DURATION).contains(&secs) || opts.duration.subsec_nanos() != 0 {
            return Err(setup(format!(
                "--duration must be whole seconds from 15m to 12h (got {}s)",
                opts.duration.as_secs_f64()
            )));
        }
        let mut chain = read_certs(&opts.cert).map_err(|e| setup(format!("--cert: {e}")))?;
        let leaf = chain.remove(0);
        if let Some(path) = &opts.chain {
            chain.extend(read_certs(path).map_err(|e| setup(format!("--chain: {e}")))?);
        }
        let key_pem = read_bounded(&opts.key, MAX_FILE_SIZE)
            .map_err(|e| setup(format!("--key {}: {e}", opts.key.display())))?;
        let key = sign::SigningKey::from_pem(&key_pem)
            .map_err(|e| setup(format!("--key {}: {e}", opts.key.display())))?;
        let (serial, spki) = leaf_parts(&leaf).map_err(|e| setup(format!("--cert: {e}")))?;
        if spki != key.public_key() {
            return Err(setup(format!(
                "--key {} is not the key of the certificate in --cert",
                opts.key.display()
            )));
        }
        let certs = sign::CertHeaders::new(
            &leaf,
            &chain.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
            &serial,
        );
        let roots = roots(opts.ca.as_deref()).map_err(setup)?;
        let tls_key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| setup(format!("--key: {}", pem_error(&e))))?;
        let mut tls_chain = vec![leaf];
        tls_chain.extend(chain);
        let endpoint =
            wire::Endpoint::new(&opts.endpoint, roots, (tls_chain, tls_key)).map_err(setup)?;
        let query = sign::query(&[
            ("profileArn", &opts.profile),
            ("roleArn", &opts.role),
            ("trustAnchorArn", &opts.trust_anchor),
        ]);
        let body = serde_json::json!({"durationSeconds": secs});
        let mut body = body.as_object().cloned().unwrap_or_default();
        if let Some(name) = &opts.session_name {
            body.insert("roleSessionName".into(), name.clone().into());
        }
        Ok(Client {
            endpoint,
            url: opts.endpoint.clone(),
            key,
            certs,
            region: anchor.region,
            query,
            body: Bytes::from(serde_json::Value::Object(body).to_string()),
            role_name: role.name,
        })
    }

    /// The role's name (the last segment of its ARN), as IMDS lists it.
    pub fn role_name(&self) -> &str {
        &self.role_name
    }

    /// The endpoint's base URL, for messages.
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// One signed CreateSession; the first credential set of a 2xx answer.
    pub async fn create_session(&self) -> Result<Credentials, ClientError> {
        let unsigned = sign::Unsigned {
            host: &self.endpoint.authority,
            path: &self.endpoint.path,
            query: &self.query,
            content_type: "application/json",
            body: &self.body,
        };
        let mut headers = sign::sign(
            &unsigned,
            &self.certs,
            &self.key,
            &self.region,
            OffsetDateTime::now_utc(),
        )
        .map_err(ClientError::Setup)?;
        headers.push(("content-type", "application/json".into()));
        let answer = self
            .endpoint
            .post(&self.query, &headers, self.body.clone())
            .await
            .map_err(|reason| ClientError::Unreachable {
                endpoint: self.url.clone(),
                reason,
            })?;
        parse_answer(&answer)
    }
}

/// An ARN of the kind `service`/`resource` (`arn:aws:rolesanywhere:us-east-1:0…0:profile/p`).
struct Arn {
    region: String,
    name: String,
}

impl Arn {
    fn parse(s: &str, service: &str, resource: &str) -> Result<Arn, String> {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, _partition, svc, region, _account, res] = parts[..] else {
            return Err(format!("{s:?} is not an ARN (arn:aws:{service}:…)"));
        };
        let name = res
            .strip_prefix(resource)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.rsplit('/').next())
            .filter(|n| !n.is_empty());
        match name {
            Some(name) if arn == "arn" && svc == service => {
                if service != "iam" && region.is_empty() {
                    return Err(format!("{s:?} has no region"));
                }
                Ok(Arn {
                    region: region.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!(
                "{s:?} is not a {service} {resource} ARN (arn:aws:{service}:…:{resource}/NAME)"
            )),
        }
    }
}

/// Every certificate of a PEM file (the first is the leaf when it is `--cert`).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    material::read_certs(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The leaf's serial number (DER INTEGER content) and its public key bits.
fn leaf_parts(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    Ok((tbs.serial_number().as_bytes().to_vec(), spki.to_vec()))
}

/// `--ca`'s certificates, else the system bundle (`SSL_CERT_FILE` or Debian's path).
fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let (path, what) = match ca {
        Some(p) => (p.to_path_buf(), "--ca"),
        None => (system, "the system CA bundle (give --ca)"),
    };
    let mut store = rustls::RootCertStore::empty();
    for c in read_certs(&path).map_err(|e| format!("{what}: {e}"))? {
        store
            .add(c)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(store)
}

#[derive(Deserialize)]
struct SessionAnswer {
    #[serde(rename = "credentialSet")]
    credential_set: Vec<CredentialSetItem>,
}

#[derive(Deserialize)]
struct CredentialSetItem {
    credentials: WireCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(alias = "Message")]
    message: Option<String>,
    #[serde(rename = "__type")]
    kind: Option<String>,
}

fn parse_answer(answer: &wire::Answer) -> Result<Credentials, ClientError> {
    let status = answer.status.as_u16();
    if !answer.status.is_success() {
        let body: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
        let code = answer
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned())
            .or(body.kind)
            .unwrap_or_else(|| "(no x-amzn-ErrorType)".into());
        let message = body.message.unwrap_or_else(|| {
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned()
        });
        return Err(ClientError::Refused {
            status,
            code,
            message,
        });
    }
    let bad = |reason: String| ClientError::BadAnswer { status, reason };
    let parsed: SessionAnswer =
        serde_json::from_slice(&answer.body).map_err(|e| bad(e.to_string()))?;
    let c = parsed
        .credential_set
        .into_iter()
        .next()
        .ok_or_else(|| bad("an empty credentialSet".into()))?
        .credentials;
    let expiration = OffsetDateTime::parse(
        &c.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| bad(format!("expiration {:?}: {e}", c.expiration)))?;
    Ok(Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        expiration: expiration.to_offset(time::UtcOffset::UTC),
    })
}

#[cfg(test)]
mod tests {
    use super::Arn;

    #[test]
    fn arns_give_region_and_name() {
        let a = Arn::parse(
            "arn:aws:rolesanywhere:eu-west-1:000000000000:trust-anchor/fleet",
            "rolesanywhere",
            "trust-anchor",
        )
        .unwrap();
        assert_eq!((a.region.as_str(), a.name.as_str()), ("eu-west-1", "fleet"));
        let r = Arn::parse(
            "arn:aws:iam::000000000000:role/path/orders-reader",
            "iam",
            "role",
        )
        .unwrap();
        assert_eq!(r.name, "orders-reader");
        assert!(Arn::parse("arn:aws:iam::0:role/", "iam", "role").is_err());
        assert!(Arn::parse("arn:aws:iam::0:user/x", "iam", "role").is_err());
        assert!(Arn::parse("fleet", "rolesanywhere", "trust-anchor").is_err());
        assert!(Arn::parse(
            "arn:aws:rolesanywhere::0:profile/p",
            "rolesanywhere",
            "profile"
        )
        .is_err());
    }
}
