//! CreateSession (`POST /sessions`, the builtin `rolesanywhere`) end to end: a real
//! gateway on 127.0.0.1 with `[issuer.sessions]`, a PKI made at run time, an independent
//! signer for both clients' request forms (`support.rs`), and the Python client
//! `iam-rolesanywhere-session` for real (`python.rs`); over HTTP/2 (`h2.rs`).

#[path = "../common/mod.rs"]
mod common;
mod h2;
mod python;
mod quickstart;
mod support;

use support::{
    anchor_arn, audit_lines, create_session, open_token, profile_arn, role_arn, Form, Req,
};

/// The Go client's form (query ARNs, `application/json`, chunked body) and the Python
/// client's (JSON body) both get credentials; the 201 body has every field the clients
/// read; the token opens with the keys folder to the right claims; audit and metric.
#[tokio::test]
async fn both_request_forms_get_credentials_that_open_to_the_right_claims() {
    let s = support::start().await;
    for form in [
        Form::Query { chunked: true },
        Form::Query { chunked: false },
        Form::Body,
    ] {
        let mut r = Req::new(&s.worker);
        r.form = form;
        r.body_extra = r#","durationSeconds":900"#.into();
        let a = create_session(&s, &r).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        let set = &a.body["credentialSet"][0];
        let c = &set["credentials"];
        let akid = c["accessKeyId"].as_str().unwrap();
        assert!(akid.starts_with("ASIA") && akid.len() == 20, "{akid}");
        assert_eq!(c["secretAccessKey"].as_str().unwrap().len(), 40);
        let exp = c["expiration"].as_str().unwrap();
        assert!(exp.len() == 20 && exp.ends_with('Z'), "{exp}");
        let parsed = time::OffsetDateTime::from(humantime::parse_rfc3339(exp).unwrap());
        let left = parsed - time::OffsetDateTime::now_utc();
        assert!(
            left.whole_seconds() > 800 && left.whole_seconds() <= 901,
            "{exp}"
        );
        let serial_hex = hex::encode(s.worker.serial.to_bytes())
            .trim_start_matches('0')
            .to_owned();
        assert_eq!(set["roleArn"], role_arn("orders-reader"));
        assert_eq!(set["sourceIdentity"], "worker-1");
        assert_eq!(set["packedPolicySize"], 0);
        assert_eq!(
            set["assumedRoleUser"]["arn"],
            format!("arn:aws:sts::000000000000:assumed-role/orders-reader/{serial_hex}")
        );
        assert!(set["assumedRoleUser"]["assumedRoleId"]
            .as_str()
            .unwrap()
            .starts_with("AROA"));
        assert!(a.body["subjectArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:rolesanywhere:us-east-1:000000000000:subject/"));

        let claims = open_token(&s, c["sessionToken"].as_str().unwrap(), akid);
        assert_eq!(
            (
                claims.role.as_str(),
                claims.profile.as_str(),
                claims.trust_anchor.as_str()
            ),
            ("orders-reader", "workers", "fleet")
        );
        assert_eq!(claims.session, serial_hex);
        assert_eq!(claims.serial, serial_hex);
        assert_eq!(claims.source_identity, "worker-1");
        assert_eq!(claims.uri_sans, vec!["spiffe://test/client/worker-1"]);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.cert_sha256.len(), 64);
    }
    // Over a connection whose verified certificate is the same leaf: fine too; a
    // roleSessionName where the profile accepts it names the session.
    let mut r = Req::new(&s.worker);
    r.tls_cert = Some(&s.worker);
    r.profile = profile_arn("named");
    r.body_extra = r#","roleSessionName":"job-42""#.into();
    let a = create_session(&s, &r).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let set = &a.body["credentialSet"][0];
    let c = &set["credentials"];
    let claims = open_token(
        &s,
        c["sessionToken"].as_str().unwrap(),
        c["accessKeyId"].as_str().unwrap(),
    );
    assert_eq!(
        (claims.session.as_str(), claims.exp - claims.iat),
        ("job-42", 3600)
    );

    let lines = audit_lines(&s.gw, 4).await;
    let ok = lines.iter().filter(|l| l["result"] == "issued").count();
    assert!(ok >= 4, "{lines:?}");
    let l = lines.last().unwrap();
    assert_eq!(
        (
            l["trust_anchor"].as_str(),
            l["role"].as_str(),
            l["session"].as_str()
        ),
        (Some("fleet"), Some("orders-reader"), Some("job-42"))
    );
    assert!(l["access_key_id"].as_str().unwrap().starts_with("ASIA"));
    common::assert_metric_at_least(
        &s.gw.metrics().await,
        "portcullis_issuer_sessions_total",
        &["result=\"issued\"", "reason=\"ok\""],
        4.0,
    );
}

/// Every refusal: status, `x-amzn-ErrorType`, the audit reason and the metric.
#[tokio::test]
async fn refusals_name_their_cause_with_aws_error_types() {
    let s = support::start().await;
    type Tweak = Box<dyn for<'a> Fn(&mut Req<'a>, &'a support::Setup)>;
    let cases: Vec<(&str, Tweak, u16, &str, &str)> = vec![
        (
            "certificate of another anchor's PKI",
            Box::new(|r, s| r.leaf = &s.foreign),
            403,
            "AccessDeniedException",
            "certificate_unknown_issuer",
        ),
        (
            "revoked by the anchor's CRL",
            Box::new(|r, s| r.leaf = &s.revoked),
            403,
            "AccessDeniedException",
            "certificate_revoked",
        ),
        (
            "expired certificate",
            Box::new(|r, s| r.leaf = &s.expired),
            403,
            "AccessDeniedException",
            "certificate_expired",
        ),
        (
            "role not in the profile",
            Box::new(|r, _| r.role = role_arn("admin")),
            403,
            "AccessDeniedException",
            "role_not_in_profile",
        ),
        (
            "certificate not allowed for the role",
            Box::new(|r, s| r.leaf = &s.intruder),
            403,
            "AccessDeniedException",
            "certificate_not_allowed",
        ),
        (
            "duration below 900",
            Box::new(|r, _| r.body_extra = r#","durationSeconds":899"#.into()),
            400,
            "ValidationException",
            "duration_out_of_range",
        ),
        (
            "duration above the profile's max_duration",
            Box::new(|r, _| r.body_extra = r#","durationSeconds":7201"#.into()),
            400,
            "ValidationException",
            "duration_out_of_range",
        ),
        (
            "bad signature",
            Box::new(|r, _| r.corrupt_signature = true),
            403,
            "AccessDeniedException",
            "signature_mismatch",
        ),
        (
            "credential serial of another certificate",
            Box::new(|r, s| r.serial = Some(support::decimal(&s.rsa.serial))),
            403,
            "AccessDeniedException",
            "serial_mismatch",
        ),
        (
            "date ten minutes old",
            Box::new(|r, _| r.time -= time::Duration::minutes(10)),
            403,
            "AccessDeniedException",
            "stale_date",
        ),
        (
            "unknown trust anchor",
            Box::new(|r, _| r.anchor = anchor_arn("nope")),
            404,
            "ResourceNotFoundException",
            "unknown_trust_anchor",
        ),
        (
            "unknown profile",
            Box::new(|r, _| r.profile = profile_arn("nope")),
            404,
            "ResourceNotFoundException",
            "unknown_profile",
        ),
        (
            "an ARN of another account",
            Box::new(|r, _| r.role = "arn:aws:iam::111111111111:role/orders-reader".into()),
            404,
            "ResourceNotFoundException",
            "unknown_role",
        ),
        (
            "unknown role",
            Box::new(|r, _| r.role = role_arn("nope")),
            404,
            "ResourceNotFoundException",
            "unknown_role",
        ),
        (
            "query and body disagree",
            Box::new(|r, _| {
                r.extra_query = Some(format!(
                    "profileArn={}",
                    profile_arn("named").replace(':', "%3A").replace('/', "%2F")
                ))
            }),
            400,
            "ValidationException",
            "arn_mismatch",
        ),
        (
            "a body over 64 KiB",
            Box::new(|r, _| r.body_extra = format!(r#","pad":"{}""#, "x".repeat(66_000))),
            400,
            "ValidationException",
            "body_too_large",
        ),
        (
            "AWS4-X509-MLDSA",
            Box::new(|r, _| r.algorithm = Some("AWS4-X509-MLDSA".into())),
            400,
            "ValidationException",
            "unsupported_algorithm_mldsa",
        ),
        (
            "connection certificate is not the X-Amz-X509 leaf",
            Box::new(|r, s| r.tls_cert = Some(&s.intruder)),
            403,
            "AccessDeniedException",
            "connection_certificate_mismatch",
        ),
        (
            "roleSessionName where the profile refuses it",
            Box::new(|r, _| r.body_extra = r#","roleSessionName":"job-42""#.into()),
            403,
            "AccessDeniedException",
            "role_session_name_not_accepted",
        ),
        (
            "RSA label on an ECDSA key",
            Box::new(|r, _| r.algorithm = Some("AWS4-X509-RSA-SHA256".into())),
            403,
            "AccessDeniedException",
            "algorithm_key_mismatch",
        ),
    ];
    let n = cases.len();
    for (k, (name, tweak, status, error_type, reason)) in cases.iter().enumerate() {
        let mut r = Req::new(&s.worker);
        tweak(&mut r, &s);
        let a = create_session(&s, &r).await;
        assert_eq!(a.status, *status, "{name}: {:?}", a.body);
        assert_eq!(a.error_type.as_deref(), Some(*error_type), "{name}");
        assert!(a.body["message"].is_string(), "{name}: {:?}", a.body);
        assert!(a.body.get("credentialSet").is_none(), "{name}");
        // The audit line is written when the answer is: wait for this request's.
        let lines = audit_lines(&s.gw, k + 1).await;
        let last = &lines[k];
        assert_eq!(
            (last["result"].as_str(), last["reason"].as_str()),
            (Some("refused"), Some(*reason)),
            "{name}: {last}"
        );
    }
    assert_eq!(audit_lines(&s.gw, n).await.len(), n);
    // A signature failure never says which part was wrong.
    let mut r = Req::new(&s.worker);
    r.corrupt_signature = true;
    let bad = create_session(&s, &r).await;
    let mut r = Req::new(&s.worker);
    r.serial = Some("1".into());
    let serial = create_session(&s, &r).await;
    assert_eq!(bad.body, serial.body);
    let text = s.gw.metrics().await;
    for (name, _, _, _, reason) in &cases {
        common::assert_metric_at_least(
            &text,
            "portcullis_issuer_sessions_total",
            &["result=\"refused\"", &format!("reason=\"{reason}\"")],
            1.0,
        );
        let _ = name;
    }
}
