//! Authentication: did the caller prove who it is, by every method the route requires?
//!
//! Runs after routing, before authorization. Each scheme lives in its own file and answers
//! the same question for one request; a route lists the schemes that must all pass. A
//! failure is 401 `unauthenticated` with a reason that names the missing proof.

pub mod mtls;

use crate::config::AuthMethod;
use crate::proxy::conn::ConnInfo;

/// Why a request could not be authenticated. The `reason` is a fixed label for logs and
/// metrics; `message` is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub reason: &'static str,
    pub message: &'static str,
}

/// Check every method the route requires.
pub fn authenticate(methods: &[AuthMethod], conn: &ConnInfo) -> Result<(), AuthError> {
    for method in methods {
        match method {
            AuthMethod::Mtls => mtls::authenticate(conn)?,
        }
    }
    Ok(())
}
