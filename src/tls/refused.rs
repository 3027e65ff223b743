//! The certificate a handshake refused, for the refusal log line: rustls keeps nothing of
//! a chain it refused, so the verifier records the leaf's names in a slot local to the
//! handshake's task ([`capture`]), which the accept code reads when the handshake fails.

use std::cell::RefCell;
use std::future::Future;

use rustls_pki_types::CertificateDer;

use crate::identity::Identity;

/// What the refusal line says about the refused leaf.
#[derive(Debug, Clone, Default)]
pub struct RefusedCert {
    pub subject: String,
    pub issuer: String,
    pub fingerprint: String,
    /// The verifier's explanation (never sent to the client).
    pub detail: String,
}

tokio::task_local! {
    static SLOT: RefCell<Option<RefusedCert>>;
}

/// Run the handshake `f`; also return the leaf the verifier refused in it, if any.
pub async fn capture<F: Future>(f: F) -> (F::Output, Option<RefusedCert>) {
    SLOT.scope(RefCell::new(None), async {
        let out = f.await;
        (out, SLOT.with(|s| s.borrow_mut().take()))
    })
    .await
}

impl RefusedCert {
    /// The names of `leaf` (empty when it does not even parse).
    pub fn from_leaf(leaf: &CertificateDer<'_>, detail: &str) -> RefusedCert {
        let id = Identity::from_leaf(leaf).ok();
        RefusedCert {
            subject: id.as_ref().map(|i| i.subject.clone()).unwrap_or_default(),
            issuer: id.as_ref().map(|i| i.issuer.clone()).unwrap_or_default(),
            fingerprint: id.map(|i| i.fingerprint).unwrap_or_default(),
            detail: detail.to_owned(),
        }
    }
}

/// Called by the verifier when it refuses `leaf` (a no-op outside [`capture`]).
pub fn record(leaf: &CertificateDer<'_>, detail: &str) {
    let _ = SLOT.try_with(|s| *s.borrow_mut() = Some(RefusedCert::from_leaf(leaf, detail)));
}
