//! portcullis-loadtest: a load generator for mTLS gateways — many client identities,
//! bearer / client-credentials / SigV4 auth, closed and open loop, full and resumed
//! handshake rates, HDR latency percentiles, a JSON report, an HDR interval log and an HTML report, and
//! k6-like thresholds that make a run fail.
#![forbid(unsafe_code)]

pub mod args;
pub mod auth;
pub mod conn;
pub mod cpu;
pub mod hdrlog;
pub mod html;
pub mod identity;
pub mod pace;
pub mod pki;
pub mod report;
pub mod run;
pub mod sigv4;
pub mod verdict;

/// Installs the one crypto provider (idempotent).
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
