//! Editing a client registry file in place for `portcullis oauth client ...`: comments and
//! layout are kept (`toml_edit`), the result is checked by the same parser the gateway
//! uses before it replaces the file (temp file + rename, so a running gateway never reads
//! half a file), and only a secret's hash is ever written.
//!
//! Generated secrets are 256 random bits in base64url without padding (43 characters of
//! `[A-Za-z0-9_-]`): inside the alphabet where form-encoding is the identity, since authlib
//! does not form-encode Basic credentials.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use super::registry::{check_client_id, Registry};

/// A new random secret (256 bits).
pub fn generate_secret() -> Result<String, String> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no randomness".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// `sha256:` + hex, the hash of a generated secret.
pub fn fast_hash(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// An argon2id PHC string for an operator-chosen secret.
pub fn argon2_hash(secret: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

fn read_doc(file: &Path) -> Result<DocumentMut, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    text.parse::<DocumentMut>()
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn clients_mut(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, String> {
    doc.entry("client")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| "`client` must be an array of tables ([[client]])".to_owned())
}

/// Check with the gateway's parser, then replace the file atomically (mode 0600 when new).
fn write_doc(file: &Path, doc: &DocumentMut) -> Result<(), String> {
    let text = doc.to_string();
    Registry::parse(&text)
        .map_err(|e| format!("{}: the result would not load: {e}", file.display()))?;
    let tmp = file.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Add a client with a new secret (returned, to be shown once). Creates the file if needed.
pub fn add_client(
    file: &Path,
    client_id: &str,
    scopes: &[String],
    uri_san: Option<&str>,
) -> Result<String, String> {
    check_client_id(client_id)?;
    let mut doc = read_doc(file)?;
    // A file of comments only keeps them in the document's trailing text, which would
    // print after the new table: move them in front of it.
    let leading = doc.trailing().as_str().unwrap_or_default().to_owned();
    doc.set_trailing("");
    let clients = clients_mut(&mut doc)?;
    if clients
        .iter()
        .any(|t| t.get("client_id").and_then(Item::as_str) == Some(client_id))
    {
        return Err(format!(
            "{}: client \"{client_id}\" exists already (use rotate-secret)",
            file.display()
        ));
    }
    let secret = generate_secret()?;
    let mut t = Table::new();
    t["client_id"] = value(client_id);
    t["secret_hash"] = value(fast_hash(&secret));
    t["scopes"] = value(scopes.iter().collect::<Array>());
    if let Some(glob) = uri_san {
        let mut cert = InlineTable::new();
        cert.insert("uri_san", glob.into());
        t["certificate"] = value(cert);
    }
    if clients.is_empty() {
        t.decor_mut().set_prefix(leading);
    } else {
        // Comments after the last table stay there.
        doc.set_trailing(leading);
    }
    let clients = clients_mut(&mut doc)?;
    clients.push(t);
    write_doc(file, &doc)?;
    Ok(secret)
}

/// Give a client a new secret (returned once); the old one stops working at the next reload.
pub fn rotate_secret(file: &Path, client_id: &str) -> Result<String, String> {
    let mut doc = read_doc(file)?;
    let clients = clients_mut(&mut doc)?;
    let t = clients
        .iter_mut()
        .find(|t| t.get("client_id").and_then(Item::as_str) == Some(client_id))
        .ok_or_else(|| format!("{}: no client \"{client_id}\"", file.display()))?;
    let secret = generate_secret()?;
    t["secret_hash"] = value(fast_hash(&secret));
    write_doc(file, &doc)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_rotate_keep_comments_and_write_only_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("clients.toml");
        std::fs::write(&f, "# our machine clients\n").unwrap();
        let s1 = add_client(&f, "orders-svc", &["orders/read".into()], None).unwrap();
        assert_eq!(s1.len(), 43);
        assert!(s1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)));
        add_client(&f, "billing", &["b".into()], Some("spiffe://t/billing")).unwrap();
        assert!(add_client(&f, "billing", &["b".into()], None).is_err());
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("# our machine clients\n"), "{text}");
        assert!(!text.contains(&s1));
        let reg = Registry::parse(&text).unwrap();
        let h = reg.get("orders-svc").unwrap().secret.clone().unwrap();
        assert_eq!(h.verify_fast(&s1), Some(true));
        let s2 = rotate_secret(&f, "orders-svc").unwrap();
        let reg = Registry::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let h = reg.get("orders-svc").unwrap().secret.clone().unwrap();
        assert_eq!(
            (h.verify_fast(&s2), h.verify_fast(&s1)),
            (Some(true), Some(false))
        );
        assert!(rotate_secret(&f, "nobody").is_err());
        let phc = argon2_hash("operator chosen").unwrap();
        let a = super::super::registry::SecretHash::parse(&phc).unwrap();
        assert!(a.verify_slow("operator chosen") && !a.verify_slow("other"));
    }
}
