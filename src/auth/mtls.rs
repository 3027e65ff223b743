//! The `mtls` method: the connection presented a client certificate that the handshake
//! verified (chain, validity, EKU, revocation — see `tls::verifier`).
//!
//! On a listener with `client_auth = "required"` every connection has one; with
//! `"optional"` a client may connect without, and routes that list `mtls` refuse it here.

use super::AuthError;
use crate::identity::ConnInfo;

pub fn authenticate(conn: &ConnInfo) -> Result<(), AuthError> {
    match conn.identity {
        Some(_) => Ok(()),
        None => Err(AuthError {
            reason: "no_client_certificate",
            message: "this route requires a client certificate",
            ..AuthError::default()
        }),
    }
}
