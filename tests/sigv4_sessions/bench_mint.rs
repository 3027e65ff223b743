//! Not a test: mints one session for `loadtest/compare/sigv4_sessions.sh` (apart from
//! CreateSession, so the benchmark measures verification only), through the same library calls the tests use.

use std::path::Path;

/// `PORTCULLIS_MINT_KEYS` (sealing keys folder), `PORTCULLIS_MINT_LEAF` (a certificate of
/// the trust anchor, PEM), `PORTCULLIS_MINT_OUT` (written: `akid secret token`, one line).
#[test]
#[ignore = "run by loadtest/compare/sigv4_sessions.sh"]
fn mint_for_benchmark() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is unset"));
    let pem = std::fs::read_to_string(var("PORTCULLIS_MINT_LEAF")).unwrap();
    let keys = var("PORTCULLIS_MINT_KEYS");
    let m = super::support::mint_pem(Path::new(&keys), &pem, "bench-role", 0, 12 * 3600);
    let line = format!("{} {} {}\n", m.akid, m.secret, m.token);
    std::fs::write(var("PORTCULLIS_MINT_OUT"), line).unwrap();
}
