//! What the loadtest integration tests share: a loadtest PKI and a real gateway in front
//! of the built-in echo, on 127.0.0.1:0.

use std::fs;
use std::path::{Path, PathBuf};

/// A gateway serving `dir`/pki (made here: `clients` valid identities, `revoked` revoked).
pub struct Gateway {
    pub pki: PathBuf,
    pub url: String,
    pub running: portcullis::server::Running,
}

pub async fn start(dir: &Path, clients: usize, revoked: usize) -> Gateway {
    loadtest::init_crypto();
    let pki = dir.join("pki");
    let spec = loadtest::pki::PkiSpec {
        clients,
        revoked,
        server_names: vec!["localhost".into()],
    };
    loadtest::pki::generate(&pki, &spec).unwrap();
    let config = dir.join("portcullis.toml");
    fs::write(
        &config,
        "[[listener]]\naddress = \"127.0.0.1:0\"\ncert = \"pki/server/server.pem\"\nkey = \"pki/server/server.key\"\n\n\
         [truststore]\ndir = \"pki/truststore\"\n\n[[upstream]]\nname = \"echo\"\nbuiltin = \"echo\"\n\n\
         [[route]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"echo\"\n\n[log]\naccess_log = \"off\"\nlevel = \"warn\"\n",
    )
    .unwrap();
    let cfg = portcullis::config::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let running = portcullis::server::start(&cfg).await.unwrap();
    let url = format!("https://{}/hello", running.listeners[0]);
    Gateway { pki, url, running }
}
