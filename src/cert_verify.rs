//! `portcullis cert verify`: run the handshake's verifier on a certificate file and explain
//! the decision to an operator.
//!
//! Same code path as the handshake ([`ClientVerifier::verify_chain`] over a freshly loaded
//! [`Truststore`], revocation settings from `--config` or the defaults, no cache). Prints
//! the path (subject → issuer per hop, validity, key usage), the CRLs consulted with their
//! status, and either the identity that would be forwarded or the reason for refusal.
//! Exit code: 0 accepted, 1 refused, 2 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::Decode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{json, Value};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::Certificate;

use crate::config::{self, defaults, ClientAuth, Policy, Revocation, TruststoreConfig};
use crate::identity::format_name;
use crate::identity::Identity;
use crate::material::{pem_error, read_bounded, MAX_FILE_SIZE};
use crate::tls::{ClientVerifier, RejectReason, Truststore};

/// What `cert verify` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    pub truststore: PathBuf,
    pub cert: PathBuf,
    pub chain: Option<PathBuf>,
    /// RFC 3339; `None` = now.
    pub at: Option<String>,
    pub config: Option<PathBuf>,
    pub json: bool,
}

/// The decision and everything shown about it, as one JSON object.
pub fn explain(args: &Args) -> Result<(bool, Value), String> {
    let settings = settings(args)?;
    let store = Truststore::load(&args.truststore).map_err(|e| e.to_string())?;
    let (leaf, mut intermediates) = read_chain(&args.cert)?;
    if let Some(chain) = &args.chain {
        let (first, rest) = read_chain(chain)?;
        intermediates.push(first);
        intermediates.extend(rest);
    }
    let now = parse_time(args.at.as_deref())?;
    let store = Arc::new(store);
    let verifier = ClientVerifier::new(Arc::clone(&store), &settings, ClientAuth::Required);
    let result = verifier.verify_chain(&leaf, &intermediates, now);

    let mut out = json!({
        "at": rfc3339(now_system(now)),
        "truststore": args.truststore.display().to_string(),
        "settings": {
            "revocation": match settings.revocation {
                Revocation::Off => "off",
                Revocation::EndEntity => "end-entity",
                Revocation::FullChain => "full-chain",
            },
            "unknown_revocation": policy_name(settings.unknown_revocation),
            "expired_crl": policy_name(settings.expired_crl),
            "max_chain_depth": settings.max_chain_depth,
        },
    });
    let accepted = result.is_ok();
    // Accepted: the path webpki built. Refused: what was presented, in order.
    let hops: Vec<CertificateDer<'_>> = match &result {
        Ok(chain) => std::iter::once(chain.leaf.clone())
            .chain(chain.intermediates.iter().cloned())
            .collect(),
        Err(_) => std::iter::once(leaf.clone())
            .chain(intermediates.iter().cloned())
            .collect(),
    };
    let mut path: Vec<Value> = hops.iter().map(|c| hop(c, now)).collect();
    let last_issuer = path
        .last()
        .and_then(|h| h["issuer"].as_str())
        .map(str::to_owned);
    if let Some(root) =
        last_issuer.and_then(|i| store.cas().iter().find(|ca| ca.root && ca.subject == i))
    {
        path.push(json!({
            "role": "trust anchor",
            "subject": root.subject,
            "not_after": rfc3339(root.not_after),
            "file": root.file.display().to_string(),
            "fingerprint_sha256": root.fingerprint,
        }));
    }
    out["decision"] = json!(if accepted { "accepted" } else { "refused" });
    out["crls"] = crls_consulted(&store, &hops, now);
    match result {
        Ok(_) => {
            let id = Identity::from_leaf(&leaf).map_err(|e| e.to_string())?;
            out["identity"] = json!({
                "subject": id.subject,
                "issuer": id.issuer,
                "serial": id.serial,
                "uri_sans": id.uri_sans,
                "dns_sans": id.dns_sans,
                "ip_sans": id.ip_sans.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
                "fingerprint_sha256": id.fingerprint,
                "x_forwarded_client_cert": id.xfcc(),
            });
        }
        Err(r) => {
            out["reason"] = json!(r.reason.label());
            let revoked = out["crls"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["revoked"] == true)
                .cloned();
            out["detail"] = match revoked {
                Some(c) if r.reason == RejectReason::Revoked => json!(format!(
                    "{} revoked on {} by CRL {} (issuer {})",
                    c["for"].as_str().unwrap_or("-"),
                    c["revoked_on"].as_str().unwrap_or("-"),
                    c["file"].as_str().unwrap_or("-"),
                    c["issuer"].as_str().unwrap_or("-"),
                )),
                _ => json!(r.detail),
            };
        }
    }
    out["path"] = Value::Array(path);
    Ok((accepted, out))
}

/// `portcullis cert verify`.
pub fn run(args: &Args) -> ExitCode {
    match explain(args) {
        Ok((accepted, v)) => {
            if args.json {
                println!("{v}");
            } else {
                print!("{}", render(&v));
            }
            if accepted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            if args.json {
                println!("{}", json!({ "decision": "error", "error": e }));
            } else {
                eprintln!("cert verify: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn settings(args: &Args) -> Result<TruststoreConfig, String> {
    if let Some(path) = &args.config {
        let cfg = config::load(path).map_err(|e| e.to_string())?;
        return Ok(TruststoreConfig {
            dir: args.truststore.clone(),
            ..cfg.truststore
        });
    }
    let policy = |s: &str| {
        if s == "allow" {
            Policy::Allow
        } else {
            Policy::Deny
        }
    };
    Ok(TruststoreConfig {
        dir: args.truststore.clone(),
        revocation: match defaults::REVOCATION {
            "off" => Revocation::Off,
            "end-entity" => Revocation::EndEntity,
            _ => Revocation::FullChain,
        },
        unknown_revocation: policy(defaults::UNKNOWN_REVOCATION),
        expired_crl: policy(defaults::EXPIRED_CRL),
        max_chain_depth: defaults::MAX_CHAIN_DEPTH,
        crl_fetch: Vec::new(),
    })
}

/// First PEM certificate = the leaf, the rest = what the client would send after it.
fn read_chain(
    path: &Path,
) -> Result<(CertificateDer<'static>, Vec<CertificateDer<'static>>), String> {
    let bytes =
        read_bounded(path, MAX_FILE_SIZE).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {}", path.display(), pem_error(&e)))?;
    if certs.is_empty() {
        // A single DER certificate is fine too.
        if Certificate::from_der(&bytes).is_ok() {
            certs.push(CertificateDer::from(bytes));
        } else {
            return Err(format!("{}: no certificate found", path.display()));
        }
    }
    for (i, c) in certs.iter().enumerate() {
        Certificate::from_der(c.as_ref()).map_err(|e| {
            format!(
                "{}: certificate #{} is not valid X.509: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    let leaf = certs.remove(0);
    Ok((leaf, certs))
}

fn parse_time(at: Option<&str>) -> Result<UnixTime, String> {
    let Some(at) = at else {
        return Ok(UnixTime::now());
    };
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("--at {at:?} is not an RFC 3339 time: {e}"))?;
    let secs =
        u64::try_from(t.unix_timestamp()).map_err(|_| format!("--at {at:?} is before 1970"))?;
    Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Deny => "deny",
        Policy::Allow => "allow",
    }
}

fn now_system(now: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

fn rfc3339(t: SystemTime) -> String {
    let dt: time::OffsetDateTime = t.into();
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// One certificate of the path: names, validity at `now`, key usage.
fn hop(der: &CertificateDer<'_>, now: UnixTime) -> Value {
    let Ok(cert) = Certificate::from_der(der.as_ref()) else {
        return json!({ "error": "not valid X.509" });
    };
    let tbs = cert.tbs_certificate();
    let nb = tbs.validity().not_before.to_system_time();
    let na = tbs.validity().not_after.to_system_time();
    let t = now_system(now);
    let validity = if t < nb {
        "not yet valid"
    } else if t > na {
        "expired"
    } else {
        "valid"
    };
    let ku = tbs
        .get_extension::<KeyUsage>()
        .ok()
        .flatten()
        .map(|(_, ku)| {
            ku.0.into_iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
        });
    let eku = tbs
        .get_extension::<ExtendedKeyUsage>()
        .ok()
        .flatten()
        .map(|(_, e)| {
            e.0.iter()
                .map(|o| eku_name(&o.to_string()))
                .collect::<Vec<_>>()
        });
    let ca = tbs
        .get_extension::<BasicConstraints>()
        .ok()
        .flatten()
        .map(|(_, bc)| bc.ca)
        .unwrap_or(false);
    json!({
        "role": if ca { "CA" } else { "end entity" },
        "subject": format_name(tbs.subject()),
        "issuer": format_name(tbs.issuer()),
        "serial": hex::encode(tbs.serial_number().as_bytes()),
        "not_before": rfc3339(nb),
        "not_after": rfc3339(na),
        "validity": validity,
        "key_usage": ku,
        "extended_key_usage": eku,
        "fingerprint_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der.as_ref())),
    })
}

fn eku_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "serverAuth".to_owned(),
        "1.3.6.1.5.5.7.3.2" => "clientAuth".to_owned(),
        "2.5.29.37.0" => "anyExtendedKeyUsage".to_owned(),
        other => other.to_owned(),
    }
}

/// The truststore CRLs issued by a CA of the path, whether each is current, and whether it
/// lists the hop it covers.
fn crls_consulted(store: &Truststore, hops: &[CertificateDer<'_>], now: UnixTime) -> Value {
    let t = now_system(now);
    let mut out = Vec::new();
    for der in hops {
        let Ok(cert) = Certificate::from_der(der.as_ref()) else {
            continue;
        };
        let tbs = cert.tbs_certificate();
        let issuer = format_name(tbs.issuer());
        let serial = tbs.serial_number().as_bytes();
        for (info, crl) in store.crls().iter().zip(store.revocation_lists()) {
            if info.issuer != issuer {
                continue;
            }
            let current = info.next_update.is_none_or(|n| t <= n);
            let revoked = crl.find_serial(serial).ok().flatten().map(|r| {
                let secs = r.revocation_date.as_secs();
                rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
            });
            out.push(json!({
                "for": format_name(tbs.subject()),
                "issuer": info.issuer,
                "file": info.source.to_string(),
                "this_update": rfc3339(info.this_update),
                "next_update": info.next_update.map(rfc3339),
                "status": if current { "current" } else { "expired" },
                "revoked": revoked.is_some(),
                "revoked_on": revoked,
            }));
        }
    }
    Value::Array(out)
}

/// The human-readable form of [`explain`]'s object.
fn render(v: &Value) -> String {
    use std::fmt::Write as _;
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut o = String::new();
    let decision = s(&v["decision"]);
    let _ = writeln!(o, "decision: {}", decision.to_uppercase());
    if decision == "refused" {
        let _ = writeln!(o, "reason:   {} ({})", s(&v["reason"]), s(&v["detail"]));
    }
    let _ = writeln!(o, "at:       {}", s(&v["at"]));
    let _ = writeln!(
        o,
        "settings: revocation={} unknown_revocation={} expired_crl={} max_chain_depth={}",
        s(&v["settings"]["revocation"]),
        s(&v["settings"]["unknown_revocation"]),
        s(&v["settings"]["expired_crl"]),
        v["settings"]["max_chain_depth"]
    );
    let title = if decision == "accepted" {
        "path (leaf first):"
    } else {
        "presented (leaf first):"
    };
    let _ = writeln!(o, "\n{title}");
    for (i, h) in v["path"].as_array().into_iter().flatten().enumerate() {
        if h["role"] == "trust anchor" {
            let _ = writeln!(
                o,
                "  [{i}] trust anchor {}\n      not after {}  file {}",
                s(&h["subject"]),
                s(&h["not_after"]),
                s(&h["file"])
            );
            continue;
        }
        let list = |x: &Value| match x.as_array() {
            Some(a) => a.iter().map(&s).collect::<Vec<_>>().join(","),
            None => "(none)".to_owned(),
        };
        let _ = writeln!(
            o,
            "  [{i}] {} {}\n      issuer {}\n      valid {} .. {} ({})\n      key usage {}  extended key usage {}",
            s(&h["role"]),
            s(&h["subject"]),
            s(&h["issuer"]),
            s(&h["not_before"]),
            s(&h["not_after"]),
            s(&h["validity"]),
            list(&h["key_usage"]),
            list(&h["extended_key_usage"])
        );
    }
    let _ = writeln!(o, "\nCRLs consulted:");
    let crls = v["crls"].as_array().cloned().unwrap_or_default();
    if crls.is_empty() {
        let _ = writeln!(o, "  (none for this path)");
    }
    for c in crls {
        let status = match c["revoked_on"].as_str() {
            Some(on) => format!("REVOKED on {on}"),
            None => "not listed".to_owned(),
        };
        let _ = writeln!(
            o,
            "  {} by {}: {} ({}; next update {}) file {}",
            s(&c["for"]),
            s(&c["issuer"]),
            status,
            s(&c["status"]),
            s(&c["next_update"]),
            s(&c["file"])
        );
    }
    if decision == "accepted" {
        let id = &v["identity"];
        let _ = writeln!(o, "\nidentity forwarded:");
        let _ = writeln!(o, "  subject     {}", s(&id["subject"]));
        for key in ["uri_sans", "dns_sans", "ip_sans"] {
            for x in id[key].as_array().into_iter().flatten() {
                let _ = writeln!(o, "  {:<11} {}", key.trim_end_matches('s'), s(x));
            }
        }
        let _ = writeln!(o, "  fingerprint {}", s(&id["fingerprint_sha256"]));
        let _ = writeln!(o, "  xfcc        {}", s(&id["x_forwarded_client_cert"]));
    }
    o
}
