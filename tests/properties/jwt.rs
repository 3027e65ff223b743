//! The JWT path before and around the key: `token::parse` (split, base64url, JSON, header
//! rules), `Parsed::verify_signature`, `Parsed::check_claims`, and `Keyset::parse` for the
//! JWKS document. Arbitrary text, tokens built from random JSON, and mutations of valid
//! tokens and key sets end in a refusal or a well-formed result, never a panic; and no
//! token that differs from a signed one verifies.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis::auth::jwt::jwks::Keyset;
use portcullis::auth::jwt::token::{parse, Reject};
use portcullis::config::JwtConfig;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::support::{check, Entropy, Source, CASES};

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://idp.test";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider, as the config loader builds it from the minimal config plus this section.
fn cfg() -> JwtConfig {
    let text = format!(
        r#"{}
[auth.jwt.idp]
issuer = "{ISSUER}"
jwks_file = "jwks.json"
algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
audiences = ["client-1"]
max_token_size = "8KiB"
forward_claims = {{ sub = "x-client-sub", scope = "x-client-scope" }}
"#,
        crate::config::minimal_config()
    );
    let config = portcullis::config::parse(&text, std::path::Path::new("/etc/portcullis/gw.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    config.jwt[0].clone()
}

enum Key {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The issuer: one key of each kind, its JWKS, and tokens it signed.
struct Issuer {
    keys: Vec<(&'static str, &'static str, Key)>,
}

impl Issuer {
    fn new() -> Issuer {
        let rng = SystemRandom::new();
        let p256 = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let ec = EcdsaKeyPair::generate_pkcs8(p256, &rng).unwrap();
        Issuer {
            keys: vec![
                ("ed", "EdDSA", Key::Ed(Ed25519KeyPair::generate().unwrap())),
                (
                    "ec",
                    "ES256",
                    Key::Ec(EcdsaKeyPair::from_pkcs8(p256, ec.as_ref()).unwrap()),
                ),
                (
                    "rsa",
                    "RS256",
                    Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
                ),
            ],
        }
    }

    fn jwks(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(kid, _, key)| match key {
                Key::Ed(k) => {
                    json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k.public_key())})
                }
                Key::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
                Key::Rsa(k) => {
                    let c = PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
                }
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// `header.claims.signature` over exactly these JSON texts, by key `i`.
    fn sign(&self, i: usize, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = self.sign_bytes(i, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    fn sign_bytes(&self, i: usize, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.keys[i].2 {
            Key::Ed(k) => k.sign(input).as_ref().to_vec(),
            Key::Ec(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .unwrap();
                sig
            }
        }
    }

    fn header(&self, i: usize) -> String {
        let (kid, alg, _) = &self.keys[i];
        json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string()
    }

    /// Valid tokens: each key, a few claim sets that pass every check.
    fn valid_tokens(&self) -> Vec<String> {
        let claims = [
            json!({"iss": ISSUER, "aud": "client-1", "exp": NOW + 300, "sub": "svc"}),
            json!({"iss": ISSUER, "client_id": "client-1", "exp": NOW + 300, "iat": NOW - 5,
                   "nbf": NOW - 5, "scope": "a b", "cnf": {"x5t#S256": b64([7u8; 32])}}),
            json!({"iss": ISSUER, "aud": ["x", "client-1"], "exp": (NOW + 60) as f64 + 0.5,
                   "scp": ["a", "b"], "sub": 7}),
        ];
        let mut out = Vec::new();
        for i in 0..self.keys.len() {
            for c in &claims {
                out.push(self.sign(i, &self.header(i), &c.to_string()));
            }
        }
        out
    }
}

/// Parse, verify and check `token`; `Ok` only if it passed everything.
fn pipeline(token: &str, cfg: &JwtConfig, keys: &Keyset) -> Result<(), Reject> {
    let parsed = parse(token, cfg)?;
    let verified = parsed.verify_signature(keys);
    let claims = parsed.check_claims(cfg, NOW);
    verified?;
    claims.map(drop)
}

/// Random JSON text, with the names and values the JWT rules look at.
fn json(src: &mut Source, depth: u32) -> String {
    const NAMES: &[&str] = &[
        "alg",
        "kid",
        "typ",
        "crit",
        "jku",
        "x5c",
        "jwk",
        "exp",
        "nbf",
        "iat",
        "iss",
        "aud",
        "client_id",
        "token_use",
        "scope",
        "scp",
        "cnf",
        "x5t#S256",
        "sub",
        "b64",
        "",
    ];
    const ATOMS: &[&str] = &[
        "\"RS256\"",
        "\"ES256\"",
        "\"EdDSA\"",
        "\"PS256\"",
        "\"none\"",
        "\"NoNe\"",
        "\"HS256\"",
        "\"ed\"",
        "\"ec\"",
        "\"rsa\"",
        "\"https://idp.test\"",
        "\"client-1\"",
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1800000300",
        "1.8e9",
        "1e308",
        "-1e308",
        "1e999",
        "18446744073709551616",
        "-9223372036854775809",
        "0.5",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\"a b\"",
        "[]",
        "{}",
    ];
    match src.below(if depth == 0 { 3 } else { 6 }) {
        0 | 1 => src.pick(ATOMS).to_owned(),
        2 => serde_json::to_string(&src.hostile_string(12)).unwrap(),
        3 => {
            let items: Vec<String> = (0..src.below(4)).map(|_| json(src, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let members: Vec<String> = (0..src.below(6))
                .map(|_| format!("\"{}\":{}", src.pick(NAMES), json(src, depth - 1)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

/// A JSON object with each of `members` most of the time (a value from its list, now and
/// then any JSON), some random members, and sometimes a member twice.
fn object(src: &mut Source, members: &[(&str, &[&str])]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (name, values) in members {
        if src.below(4) == 0 {
            continue;
        }
        let value = match src.below(8) {
            0 => json(src, 2),
            _ => src.pick(values).to_owned(),
        };
        out.push(format!("\"{name}\":{value}"));
    }
    for _ in 0..src.below(3) {
        out.push(format!(
            "\"{}\":{}",
            src.hostile_string(4).replace(['"', '\\'], ""),
            json(src, 2)
        ));
    }
    if !out.is_empty() && src.below(16) == 0 {
        let again = out[src.below(out.len())].clone();
        out.push(again);
    }
    format!("{{{}}}", out.join(","))
}

fn header(src: &mut Source) -> String {
    object(
        src,
        &[
            (
                "alg",
                &[
                    "\"EdDSA\"",
                    "\"ES256\"",
                    "\"RS256\"",
                    "\"PS256\"",
                    "\"none\"",
                    "\"HS256\"",
                    "\"ES384\"",
                    "1",
                ],
            ),
            (
                "kid",
                &["\"ed\"", "\"ec\"", "\"rsa\"", "\"other\"", "7", "null"],
            ),
            ("typ", &["\"JWT\"", "\"at+jwt\""]),
            ("crit", &["[\"exp\"]", "[\"b64\"]", "[]", "\"b64\"", "[1]"]),
        ],
    )
}

fn claims(src: &mut Source) -> String {
    let (ok, late, past) = (NOW + 300, NOW + 3600, NOW - 3600);
    let (ok, late, past) = (ok.to_string(), late.to_string(), past.to_string());
    let cnf = format!("{{\"x5t#S256\":\"{}\"}}", b64([7u8; 32]));
    object(
        src,
        &[
            (
                "exp",
                &[
                    &ok,
                    &ok,
                    &past,
                    "1e308",
                    "-1e308",
                    "\"soon\"",
                    "null",
                    "1.8000003e9",
                ],
            ),
            ("nbf", &[&past, &late, "\"x\"", "-0"]),
            ("iat", &[&past, &late, "[]"]),
            (
                "iss",
                &[
                    "\"https://idp.test\"",
                    "\"https://idp.test\"",
                    "\"other\"",
                    "1",
                ],
            ),
            (
                "aud",
                &[
                    "\"client-1\"",
                    "[\"x\",\"client-1\"]",
                    "[1,2]",
                    "\"x\"",
                    "{}",
                ],
            ),
            ("client_id", &["\"client-1\"", "\"x\"", "2"]),
            ("token_use", &["\"access\"", "\"id\""]),
            ("scope", &["\"a b\"", "\"\"", "[\"a\"]", "3"]),
            ("scp", &["[\"a\",\"b\"]", "[1]", "\"a\""]),
            (
                "cnf",
                &[
                    &cnf,
                    "{\"x5t#S256\":\"AAAA\"}",
                    "{\"x5t#S256\":1}",
                    "\"x\"",
                    "{}",
                ],
            ),
            (
                "sub",
                &["\"svc\"", "7", "true", "[\"a\",\"b\"]", "[1]", "{}"],
            ),
        ],
    )
}

#[test]
fn jwt_arbitrary_input_is_refused_or_parsed_never_panics() {
    let issuer = Issuer::new();
    let keys = Keyset::parse(issuer.jwks().as_bytes(), &cfg().algorithms).unwrap();
    let cfg = cfg();
    check("jwt_arbitrary_input", CASES, Entropy(512), |bytes| {
        let mut src = Source::new(&bytes);
        let mode = src.below(4);
        let token = match mode {
            // Any text.
            0 => String::from_utf8_lossy(&src.bytes(300)).into_owned(),
            // Three base64url segments of random bytes.
            1 => format!(
                "{}.{}.{}",
                b64(src.bytes(60)),
                b64(src.bytes(120)),
                b64(src.bytes(80))
            ),
            // A random JSON header and claims, random signature bytes.
            2 => {
                let h = match src.below(4) {
                    0 => json(&mut src, 3),
                    _ => header(&mut src),
                };
                let c = match src.below(4) {
                    0 => json(&mut src, 3),
                    _ => claims(&mut src),
                };
                format!("{}.{}.{}", b64(h), b64(c), b64(src.bytes(80)))
            }
            // Random claims (and often the header) signed for real: reaches check_claims.
            _ => {
                let i = src.below(issuer.keys.len());
                let h = match src.below(4) {
                    0 => header(&mut src),
                    _ => issuer.header(i),
                };
                issuer.sign(i, &h, &claims(&mut src))
            }
        };
        let result = pipeline(&token, &cfg, &keys);
        // Random bytes are no signature by any key.
        if mode != 3 {
            prop_assert!(result.is_err(), "unsigned token accepted: {}", token);
        }
        Ok(())
    });
}

#[test]
fn jwt_mutated_tokens_never_verify() {
    let issuer = Issuer::new();
    let keys = Keyset::parse(issuer.jwks().as_bytes(), &cfg().algorithms).unwrap();
    let cfg = cfg();
    let tokens = issuer.valid_tokens();
    for t in &tokens {
        assert_eq!(
            pipeline(t, &cfg, &keys),
            Ok(()),
            "a valid token is refused: {t}"
        );
    }
    check(
        "jwt_mutated_tokens_never_verify",
        CASES,
        Entropy(64),
        |bytes| {
            let mut src = Source::new(&bytes);
            let original = tokens[src.below(tokens.len())].as_str();
            let token = match src.below(2) {
                // Byte edits anywhere: flips, insertions, deletions, truncation, copies.
                0 => {
                    let mut b = original.as_bytes().to_vec();
                    src.mutate(&mut b);
                    String::from_utf8_lossy(&b).into_owned()
                }
                // One bit of the decoded signature flipped.
                _ => {
                    let (input, sig) = original.rsplit_once('.').unwrap();
                    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
                    let i = src.below(sig.len());
                    sig[i] ^= 1 << (src.byte() % 8);
                    format!("{input}.{}", b64(sig))
                }
            };
            if token == original {
                return Ok(());
            }
            let result = pipeline(&token, &cfg, &keys);
            prop_assert!(
                result.is_err(),
                "a changed token verified: {} (from {})",
                token,
                original
            );
            Ok(())
        },
    );
}

#[test]
fn jwks_documents_are_parsed_or_refused_never_panics() {
    let issuer = Issuer::new();
    let cfg = cfg();
    let jwks = issuer.jwks();
    let tokens = issuer.valid_tokens();
    check("jwks_documents", CASES, Entropy(256), |bytes| {
        let mut src = Source::new(&bytes);
        let doc: Vec<u8> = match src.below(3) {
            0 => {
                let mut b = jwks.clone().into_bytes();
                src.mutate(&mut b);
                b
            }
            1 => {
                let keys: Vec<String> = (0..src.below(3)).map(|_| json(&mut src, 2)).collect();
                format!("{{\"keys\":[{}]}}", keys.join(",")).into_bytes()
            }
            _ => src.bytes(200),
        };
        if let Ok(keys) = Keyset::parse(&doc, &cfg.algorithms) {
            let _ = pipeline(&tokens[src.below(tokens.len())], &cfg, &keys);
        }
        Ok(())
    });
}
