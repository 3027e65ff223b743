//! Peer-name checks (DNS name or IP address against the leaf's subjectAltName), kept apart
//! from the handshake path: the gateway authorizes clients by identity rules after the
//! handshake, so it never needs them there. The x509-limbo harness uses this for server-kind
//! cases that give an expected peer name.

use rustls_pki_types::{CertificateDer, ServerName};
use webpki::EndEntityCert;

/// Why a peer name did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerNameError {
    #[error("{0:?} is not a valid DNS name or IP address")]
    BadName(String),
    #[error("certificate is not valid X.509: {0}")]
    BadCertificate(String),
    #[error("certificate is not valid for {name}: {reason}")]
    Mismatch { name: String, reason: String },
}

/// Check that `leaf` (already path-verified) is valid for `name` (a DNS name or an IP
/// address), with webpki's rules: subjectAltName only, no common-name fallback, wildcards
/// only in the leftmost label.
pub fn verify_peer_name(leaf: &CertificateDer<'_>, name: &str) -> Result<(), PeerNameError> {
    let server_name =
        ServerName::try_from(name).map_err(|_| PeerNameError::BadName(name.to_owned()))?;
    let cert =
        EndEntityCert::try_from(leaf).map_err(|e| PeerNameError::BadCertificate(e.to_string()))?;
    cert.verify_is_valid_for_subject_name(&server_name)
        .map_err(|e| PeerNameError::Mismatch {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(sans: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn dns_and_ip_names_match_sans_only() {
        let cert = leaf(&["api.example.test", "*.svc.example.test", "192.0.2.7"]);
        verify_peer_name(&cert, "api.example.test").unwrap();
        verify_peer_name(&cert, "a.svc.example.test").unwrap();
        verify_peer_name(&cert, "192.0.2.7").unwrap();
        assert!(matches!(
            verify_peer_name(&cert, "b.a.svc.example.test"),
            Err(PeerNameError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_peer_name(&cert, "192.0.2.8"),
            Err(PeerNameError::Mismatch { .. })
        ));
        assert!(matches!(
            verify_peer_name(&cert, "not a name"),
            Err(PeerNameError::BadName(_))
        ));
    }
}
