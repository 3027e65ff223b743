//! The token rules that need no key: header and JSON checks at parse time, claim checks on
//! a parsed token. Signatures, JWKS and the gateway are covered by `tests/jwt.rs`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::token::{parse, Reject};
use crate::config::{JwksSource, JwtAlg, JwtConfig};

const NOW: i64 = 1_800_000_000;

fn cfg() -> JwtConfig {
    JwtConfig {
        name: "idp".into(),
        issuer: "https://idp.test".into(),
        jwks: JwksSource::File("jwks.json".into()),
        algorithms: vec![JwtAlg::RS256, JwtAlg::ES256],
        audiences: vec!["client-1".into()],
        token_use: Some("access".into()),
        leeway: Duration::from_secs(30),
        max_token_size: 4096,
        refresh: Duration::from_secs(600),
        forward_claims: vec![
            ("sub".into(), http::HeaderName::from_static("x-client-sub")),
            (
                "scope".into(),
                http::HeaderName::from_static("x-client-scope"),
            ),
        ],
        require_certificate_binding: false,
        forward_token: false,
        jwks_ca: None,
        kid_miss_refetch_interval: Duration::from_secs(30),
    }
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn tok(header: &str, claims: &str) -> String {
    format!("{}.{}.{}", b64(header), b64(claims), b64("sig"))
}

const H: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;

fn claims(extra: &str) -> String {
    format!(
        r#"{{"iss":"https://idp.test","client_id":"client-1","token_use":"access","exp":{},"iat":{},"scope":"orders/read orders/write","sub":"svc"{extra}}}"#,
        NOW + 300,
        NOW - 10
    )
}

fn parse_err(token: &str) -> Reject {
    parse(token, &cfg()).unwrap_err()
}

fn claims_err(c: &str) -> Reject {
    let t = tok(H, c);
    parse(&t, &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .unwrap_err()
}

#[test]
fn header_rules() {
    assert_eq!(parse_err(&"a".repeat(5000)), Reject::TooLarge);
    assert_eq!(parse_err("abc.def"), Reject::Malformed);
    assert_eq!(parse_err("a.b.c.d"), Reject::Malformed);
    assert_eq!(parse_err(".b.c"), Reject::Malformed);
    assert_eq!(
        parse_err(&format!("{}=.{}.", b64(H), b64("{}"))),
        Reject::BadBase64
    );
    assert_eq!(parse_err(&format!("{}.a+b.", b64(H))), Reject::BadBase64);
    assert_eq!(parse_err(&tok("[1]", "{}")), Reject::BadJson);
    assert_eq!(parse_err(&tok(H, "not json")), Reject::BadJson);
    let dup = r#"{"alg":"RS256","kid":"k1","kid":"k2"}"#;
    assert_eq!(parse_err(&tok(dup, &claims(""))), Reject::DuplicateName);
    let dup_claim = claims(r#","sub":"admin""#);
    assert_eq!(parse_err(&tok(H, &dup_claim)), Reject::DuplicateName);
    for none in [r#"{"alg":"none"}"#, r#"{"alg":"NoNe"}"#] {
        assert_eq!(parse_err(&tok(none, &claims(""))), Reject::AlgNone);
    }
    assert_eq!(parse_err(&tok(r#"{"alg":"HS256"}"#, "{}")), Reject::AlgHmac);
    assert_eq!(
        parse_err(&tok(r#"{"alg":"RS384"}"#, "{}")),
        Reject::AlgNotAllowed
    );
    assert_eq!(
        parse_err(&tok(r#"{"alg":"XX1"}"#, "{}")),
        Reject::AlgNotAllowed
    );
    assert_eq!(
        parse_err(&tok(r#"{"kid":"k"}"#, "{}")),
        Reject::AlgNotAllowed
    );
    let crit = |c: &str| tok(&format!(r#"{{"alg":"RS256","crit":{c}}}"#), &claims(""));
    assert_eq!(parse_err(&crit("[]")), Reject::CritEmpty);
    assert_eq!(parse_err(&crit("\"exp\"")), Reject::CritEmpty);
    assert_eq!(parse_err(&crit("[\"kid\"]")), Reject::CritRegistered);
    assert_eq!(parse_err(&crit("[\"b64\"]")), Reject::CritUnsupported);
    // Keys offered in the header are parsed past, never used.
    let offered = r#"{"alg":"RS256","kid":"k1","jku":"http://evil/","jwk":{"kty":"oct","k":"AA"},"x5c":["AA"]}"#;
    assert_eq!(
        parse(&tok(offered, &claims("")), &cfg())
            .unwrap()
            .kid
            .as_deref(),
        Some("k1")
    );
}

#[test]
fn time_claims() {
    let with_exp = |exp: &str| {
        format!(
            r#"{{"iss":"https://idp.test","client_id":"client-1","token_use":"access","exp":{exp}}}"#
        )
    };
    assert_eq!(
        claims_err(r#"{"iss":"https://idp.test","client_id":"client-1","token_use":"access"}"#),
        Reject::MissingExp
    );
    assert_eq!(
        claims_err(&with_exp(&format!("\"{}\"", NOW + 300))),
        Reject::BadTimeClaim
    );
    assert_eq!(claims_err(&with_exp("null")), Reject::BadTimeClaim);
    // exp must be strictly greater than now - leeway.
    assert_eq!(
        claims_err(&with_exp(&(NOW - 30).to_string())),
        Reject::Expired
    );
    let ok = tok(H, &with_exp(&(NOW - 29).to_string()));
    assert!(parse(&ok, &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .is_ok());
    let frac = tok(H, &with_exp(&format!("{}.5", NOW - 30)));
    assert!(parse(&frac, &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .is_ok());
    assert_eq!(
        claims_err(&claims(&format!(r#","nbf":{}"#, NOW + 31))),
        Reject::NotYetValid
    );
    assert_eq!(
        claims_err(&claims(r#","nbf":"soon""#)),
        Reject::BadTimeClaim
    );
    let future_iat = format!(
        r#"{{"iss":"https://idp.test","client_id":"client-1","token_use":"access","exp":{},"iat":{}}}"#,
        NOW + 300,
        NOW + 100
    );
    assert_eq!(claims_err(&future_iat), Reject::IssuedInFuture);
}

#[test]
fn issuer_audience_token_use_and_binding() {
    let base = |iss: &str, rest: &str| {
        format!(
            r#"{{"iss":"{iss}","exp":{},"token_use":"access"{rest}}}"#,
            NOW + 60
        )
    };
    assert_eq!(
        claims_err(&base("https://other.test", r#","client_id":"client-1""#)),
        Reject::WrongIssuer
    );
    assert_eq!(
        claims_err(&base("https://idp.test", r#","client_id":"client-2""#)),
        Reject::WrongClientId
    );
    assert_eq!(
        claims_err(&base("https://idp.test", "")),
        Reject::WrongClientId
    );
    assert_eq!(
        claims_err(&base(
            "https://idp.test",
            r#","aud":"client-2","client_id":"client-1""#
        )),
        Reject::WrongAudience
    );
    let aud_list = tok(H, &base("https://idp.test", r#","aud":["x","client-1"]"#));
    assert!(parse(&aud_list, &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .is_ok());
    let id_token = format!(
        r#"{{"iss":"https://idp.test","exp":{},"token_use":"id","aud":"client-1"}}"#,
        NOW + 60
    );
    assert_eq!(claims_err(&id_token), Reject::WrongTokenUse);
    assert_eq!(
        claims_err(&claims(r#","cnf":{"x5t#S256":"short"}"#)),
        Reject::BadCnf
    );
    assert_eq!(
        claims_err(&claims(r#","cnf":{"x5t#S256":7}"#)),
        Reject::BadCnf
    );
}

#[test]
fn verified_claims_scopes_and_forwarded_headers() {
    let thumb = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let t = tok(H, &claims(&format!(r#","cnf":{{"x5t#S256":"{thumb}"}}"#)));
    let v = parse(&t, &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .unwrap();
    assert_eq!(v.scopes, vec!["orders/read", "orders/write"]);
    assert_eq!(v.client_id.as_deref(), Some("client-1"));
    assert_eq!(v.cnf_x5t, Some([7u8; 32]));
    assert_eq!(v.valid_until, NOW + 300 + 30);
    let fwd: Vec<(&str, &str)> = v
        .forward
        .iter()
        .map(|(h, v)| (h.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        fwd,
        vec![
            ("x-client-sub", "svc"),
            ("x-client-scope", "orders/read orders/write")
        ]
    );
    let scp = format!(
        r#"{{"iss":"https://idp.test","client_id":"client-1","token_use":"access","exp":{},"scp":["a","b"]}}"#,
        NOW + 60
    );
    let v = parse(&tok(H, &scp), &cfg())
        .unwrap()
        .check_claims(&cfg(), NOW)
        .unwrap();
    assert_eq!(v.scopes, vec!["a", "b"]);
}

#[test]
fn claim_headers_and_their_underscore_aliases_are_stripped() {
    use http::{HeaderMap, HeaderName, HeaderValue};
    let providers = super::Providers {
        map: Default::default(),
        forward_headers: vec![HeaderName::from_static("x-user")],
    };
    let mut h = HeaderMap::new();
    for name in ["x-user", "x_user", "X_USER", "x_user_id", "x-other"] {
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("forged"),
        );
    }
    providers.strip_forwarded(&mut h);
    let mut left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["x-other", "x_user_id"]);
}
