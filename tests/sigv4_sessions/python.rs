//! Session credentials signed by the real botocore (`SigV4Auth` with the token, and
//! `SigV4QueryAuth`), driven through `tests/sigv4_sessions_botocore.py`.

use std::path::Path;

use super::support::{self, session, worker};

#[tokio::test]
async fn botocore_signs_with_session_credentials() {
    let Ok(python) = std::env::var("PORTCULLIS_TEST_PYTHON") else {
        eprintln!("\n!!! SKIPPED botocore_signs_with_session_credentials: PORTCULLIS_TEST_PYTHON is unset (run scripts/test.sh, which makes the venv with botocore) !!!\n");
        return;
    };
    let s = support::start().await;
    let leaf = worker(&s.fleet, "worker-9");
    let orders = session(&s, &leaf, "orders-reader");
    let billing = session(&s, &leaf, "billing-reader");
    let dir = s.gw.dir.path();
    std::fs::write(dir.join("client.pem"), &s.client.chain_pem).unwrap();
    std::fs::write(dir.join("client.key"), &s.client.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), s.pki.root_pem()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4_sessions_botocore.py");
    let creds = serde_json::json!({
        "orders": [orders.akid, orders.secret, orders.token],
        "billing": [billing.akid, billing.secret, billing.token],
        "serial": orders.claims.serial,
    });
    let (port, folder) = (s.gw.addr.port(), dir.to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(folder)
            .arg(creds.to_string())
            .output()
            .expect("run python")
    });
    let out = out.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "botocore script failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("botocore sessions: all"),
        "{stdout}\n{stderr}"
    );
    s.gw.shutdown().await;
}
