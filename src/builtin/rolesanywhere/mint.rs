//! After the signature: the ARNs against `[issuer.sessions]`, the chain against the trust
//! anchor (the mTLS verifier), the role's rules, and the sealed session with its 201 body.

use std::time::SystemTime;

use rustls_pki_types::UnixTime;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::refusal::{Code, Refusal};
use super::request::{Arns, CreateSession};
use crate::config::sessions::{
    SESSION_DURATION_DEFAULT, SESSION_DURATION_MAX, SESSION_DURATION_MIN,
};
use crate::config::{ProfileConfig, RoleConfig, SessionsConfig};
use crate::identity::Identity;
use crate::issuer::sessions::token::{self, SessionClaims};
use crate::issuer::sessions::Sessions;
use crate::policy::AllowList;
use crate::tls::Anchors;

/// The configured names the three ARNs resolve to.
pub struct Resolved<'c> {
    pub anchor: &'c str,
    pub profile: &'c ProfileConfig,
    pub role: &'c RoleConfig,
}

/// What was minted (for the audit line) and the answer's body.
pub struct Minted {
    pub access_key_id: String,
    pub session: String,
    pub duration: u64,
    pub expiration: String,
    pub body: Value,
}

/// The last segment of `arn` when it is `arn:aws:<service>:<region>:<account>:<kind>/<name>`
/// of this issuer; `Err(true)` when it is not an ARN at all, `Err(false)` when it is one
/// that names nothing here.
fn arn_name<'a>(
    cfg: &SessionsConfig,
    arn: &'a str,
    service: &str,
    regional: bool,
    kind: &str,
) -> Result<&'a str, bool> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, svc, region, account, resource] = parts[..] else {
        return Err(true);
    };
    if prefix != "arn" || partition.is_empty() || svc.is_empty() {
        return Err(true);
    }
    let (k, name) = resource.split_once('/').ok_or(true)?;
    let want_region = if regional { cfg.region.as_str() } else { "" };
    if partition != "aws"
        || svc != service
        || region != want_region
        || account != cfg.account
        || k != kind
    {
        return Err(false);
    }
    Ok(name)
}

/// Resolve the three ARNs (unknown → 404 `ResourceNotFoundException`).
pub fn resolve<'c>(cfg: &'c SessionsConfig, arns: &Arns) -> Result<Resolved<'c>, Refusal> {
    let bad = |r| Refusal::invalid(r, "The ARN is not valid");
    let anchor = match arn_name(
        cfg,
        &arns.trust_anchor,
        "rolesanywhere",
        true,
        "trust-anchor",
    ) {
        Err(true) => return Err(bad("bad_arn")),
        Ok(n) => cfg.trust_anchors.iter().find(|a| a.name == n),
        Err(false) => None,
    }
    .ok_or_else(|| Refusal::not_found("unknown_trust_anchor", "The trust anchor was not found"))?;
    let profile = match arn_name(cfg, &arns.profile, "rolesanywhere", true, "profile") {
        Err(true) => return Err(bad("bad_arn")),
        Ok(n) => cfg.profiles.iter().find(|p| p.name == n),
        Err(false) => None,
    }
    .ok_or_else(|| Refusal::not_found("unknown_profile", "The profile was not found"))?;
    let role = match arn_name(cfg, &arns.role, "iam", false, "role") {
        Err(true) => return Err(bad("bad_arn")),
        Ok(n) => cfg.roles.iter().find(|r| r.name == n),
        Err(false) => None,
    }
    .ok_or_else(|| Refusal::not_found("unknown_role", "The role was not found"))?;
    Ok(Resolved {
        anchor: &anchor.name,
        profile,
        role,
    })
}

/// Verify the chain with the anchor's verifier (the mTLS checks: EKU clientAuth, CRLs,
/// validity, depth) and read the leaf's identity.
pub fn verify_chain(
    anchors: &Anchors,
    anchor: &str,
    req: &CreateSession<'_>,
    now: SystemTime,
) -> Result<Identity, Refusal> {
    let Some(a) = anchors.get(anchor) else {
        return Err(Refusal::new(
            Code::Internal,
            "trust_anchor_not_loaded",
            "The trust anchor is not available",
        ));
    };
    a.verifier
        .verify_path(
            &req.leaf,
            &req.chain,
            UnixTime::since_unix_epoch(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            webpki::KeyUsage::client_auth(),
        )
        .map_err(|r| Refusal::certificate(r.reason, r.detail))?;
    Identity::from_leaf(&req.leaf)
        .map_err(|e| Refusal::certificate(crate::tls::RejectReason::BadEncoding, e.to_string()))
}

/// The role's rules: in the profile, the certificate allowed, the duration in range, the
/// session name accepted. Returns (duration seconds, session name).
pub fn authorize(
    r: &Resolved<'_>,
    id: &Identity,
    req: &CreateSession<'_>,
) -> Result<(u64, String), Refusal> {
    if !r.profile.roles.iter().any(|n| n == &r.role.name) {
        return Err(Refusal::denied(
            "role_not_in_profile",
            "The role is not in the profile",
        ));
    }
    // Compiled per request: CreateSession is not the hot path, and an allow-list is a few
    // globs next to a public-key signature and a chain verification.
    if !r.role.allow.is_empty() && !AllowList::new(&r.role.allow).allows(Some(id)) {
        return Err(Refusal::denied(
            "certificate_not_allowed",
            "The certificate may not assume this role",
        ));
    }
    let max = r.profile.max_duration.min(SESSION_DURATION_MAX).as_secs();
    let duration = req.duration.unwrap_or(SESSION_DURATION_DEFAULT.as_secs());
    if duration < SESSION_DURATION_MIN.as_secs() || duration > max {
        return Err(Refusal::invalid(
            "duration_out_of_range",
            "durationSeconds is outside the range the profile allows",
        ));
    }
    let session = match &req.role_session_name {
        None => id.serial.clone(),
        Some(_) if !r.profile.accept_role_session_name => {
            return Err(Refusal::denied(
                "role_session_name_not_accepted",
                "The profile does not accept a roleSessionName",
            ))
        }
        Some(n) if valid_session_name(n) => n.clone(),
        Some(_) => {
            return Err(Refusal::invalid(
                "bad_role_session_name",
                "roleSessionName must be 2 to 64 characters of [A-Za-z0-9+=,.@_-]",
            ))
        }
    };
    Ok((duration, session))
}

/// IAM's role session name syntax.
fn valid_session_name(n: &str) -> bool {
    (2..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Seal the session and build the 201 body.
pub fn mint(
    sessions: &Sessions,
    r: &Resolved<'_>,
    id: &Identity,
    duration: u64,
    session: String,
    now: i64,
) -> Result<Minted, Refusal> {
    let internal = |e: String| {
        let mut r = Refusal::new(
            Code::Internal,
            "mint_failed",
            "The session could not be created",
        );
        r.detail = Some(e);
        r
    };
    let cfg = &sessions.cfg;
    let access_key_id = token::new_access_key_id().map_err(internal)?;
    let exp = now + i64::try_from(duration).unwrap_or(i64::MAX);
    let source_identity = id.common_name.clone().unwrap_or_else(|| id.serial.clone());
    let claims = SessionClaims {
        access_key_id: access_key_id.clone(),
        role: r.role.name.clone(),
        profile: r.profile.name.clone(),
        trust_anchor: r.anchor.to_owned(),
        session: session.clone(),
        source_identity: source_identity.clone(),
        cert_sha256: id.fingerprint.clone(),
        issuer: id.issuer.clone(),
        serial: id.serial.clone(),
        uri_sans: id.uri_sans.clone(),
        iat: now,
        exp,
    };
    let (session_token, secret) =
        token::seal(&sessions.keys.current(), &claims).map_err(internal)?;
    let expiration = format_time(exp);
    let role_arn = cfg.role_arn(&r.role.name);
    let body = json!({
        "credentialSet": [{
            "assumedRoleUser": {
                "arn": format!("arn:aws:sts::{}:assumed-role/{}/{session}", cfg.account, r.role.name),
                "assumedRoleId": format!("{}:{session}", role_id(&role_arn)),
            },
            "credentials": {
                "accessKeyId": access_key_id,
                "secretAccessKey": secret,
                "sessionToken": session_token,
                "expiration": expiration,
            },
            "packedPolicySize": 0,
            "roleArn": role_arn,
            "sourceIdentity": source_identity,
        }],
        "subjectArn": format!(
            "arn:aws:rolesanywhere:{}:{}:subject/{}",
            cfg.region,
            cfg.account,
            subject_id(&id.fingerprint)
        ),
    });
    Ok(Minted {
        access_key_id,
        session,
        duration,
        expiration,
        body,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` (no fraction: both clients and botocore parse it).
pub fn format_time(unix: i64) -> String {
    let t =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A stable IAM-style role id (`AROA` + 17 characters) derived from the role's ARN.
fn role_id(role_arn: &str) -> String {
    let h = hex::encode_upper(Sha256::digest(role_arn.as_bytes()));
    format!("AROA{}", &h[..17])
}

/// A stable UUID-shaped subject id per certificate (Roles Anywhere has one per subject).
fn subject_id(fingerprint: &str) -> String {
    let h = hex::encode(Sha256::digest(fingerprint.as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_has_no_fraction_and_ends_in_z() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_796_189_767), "2026-12-02T05:36:07Z");
        assert!(valid_session_name("worker-1@fleet"));
        assert!(!valid_session_name("a"));
        assert!(!valid_session_name("has space"));
        assert_eq!(role_id("arn:aws:iam::0:role/x").len(), 21);
        assert_eq!(subject_id("ab").len(), 36);
    }
}
