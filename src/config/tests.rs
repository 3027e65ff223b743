//! The loader against the contract: defaults, every problem reported with its line, and
//! the shipped config files.

use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[[listener]]
address = "127.0.0.1:8443"
cert = "server.pem"
key = "server.key"

[truststore]
dir = "truststore"

[[upstream]]
name = "orders"
endpoints = ["127.0.0.1:18080"]

[[route]]
name = "orders"
upstream = "orders"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    super::parse(text, Path::new("/etc/portcullis/gw.toml"))
}

fn problems(text: &str) -> Vec<ConfigProblem> {
    match parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.problems,
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn minimal_config_gets_every_default() {
    let c = parse(MINIMAL).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.cert, Path::new("/etc/portcullis/server.pem"));
    assert_eq!(l.client_auth, ClientAuth::Required);
    assert_eq!(l.min_tls_version, TlsVersion::V1_2);
    assert_eq!(l.key_permissions, KeyPermissions::Strict);
    assert_eq!(l.limits.max_header_size, 16 * 1024);
    assert_eq!(l.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.truststore.dir, Path::new("/etc/portcullis/truststore"));
    assert_eq!(c.truststore.revocation, Revocation::FullChain);
    assert_eq!(c.truststore.unknown_revocation, Policy::Deny);
    assert_eq!(c.truststore.expired_crl, Policy::Deny);
    assert_eq!(c.truststore.max_chain_depth, 4);
    assert!(c.admin.is_none());
    let u = &c.upstreams[0];
    assert_eq!(u.connect_timeout, Duration::from_secs(2));
    assert_eq!(u.request_timeout, Duration::from_secs(30));
    assert_eq!(u.max_idle_per_endpoint, 64);
    assert_eq!(u.protocol, UpstreamProtocol::Http1);
    let r = &c.routes[0];
    assert_eq!((r.host.as_str(), r.path_prefix.as_str()), ("*", "/"));
    assert_eq!(r.auth, vec![AuthMethod::Mtls]);
    assert!(r.methods.is_empty() && r.allow.is_empty());
    assert_eq!(r.max_body_size, 10 * 1024 * 1024);
    assert_eq!(c.log.access_log, AccessLog::Stdout);
}

#[test]
fn unknown_key_names_its_line_and_a_suggestion() {
    let text = MINIMAL.replace(
        "key = \"server.key\"",
        "key = \"server.key\"\nclient_auht = \"required\"",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, Some(line_of(&text, "client_auht")));
    assert_eq!(p[0].key, "listener[0].client_auht");
    assert!(
        p[0].message.contains("did you mean `client_auth`"),
        "{}",
        p[0].message
    );
    let shown = p[0].to_string();
    assert!(
        shown.starts_with(&format!(
            "/etc/portcullis/gw.toml:{}: listener[0].client_auht",
            p[0].line.unwrap()
        )),
        "{shown}"
    );
}

/// Found by the property tests (tests/properties/config.rs): a missing section was a
/// problem with neither a line nor a key.
#[test]
fn a_missing_section_is_reported_at_its_key() {
    for text in [
        "",
        "# nothing but a comment\n",
        "[admin]\naddress = \"127.0.0.1:9901\"\n",
    ] {
        let p = problems(text);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listener",
                "truststore",
                "truststore.dir",
                "upstream",
                "route"
            ],
            "{p:?}"
        );
        assert!(p.iter().all(|p| p.line.is_none()), "{p:?}");
        assert_eq!(
            p[0].to_string(),
            "/etc/portcullis/gw.toml: listener: at least one [[listener]] is required"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[[listener]]
address = "localhost:8443"
cert = "server.pem"
client_auth = "sometimes"
idle_timeout = "60"
max_header_size = "1KiB"

[truststore]
dir = "truststore"
revocation = "leaf"
max_chain_depth = 9

[[upstream]]
name = "a"
endpoints = ["127.0.0.1"]
tls = { ca = "ca.pem", cert = "c.pem" }

[[upstream]]
name = "a"
builtin = "ping"

[[route]]
name = "r"
host = "api.example.test:8443"
path_prefix = "/x/../y"
methods = ["GET", "G ET"]
upstream = "nope"
auth = ["mtls", "magic"]
[[route.allow]]

[log]
level = "[["
"#;
    let p = problems(text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "listener[0].address",
        "listener[0].key",
        "listener[0].client_auth",
        "listener[0].idle_timeout",
        "listener[0].max_header_size",
        "truststore.revocation",
        "truststore.max_chain_depth",
        "upstream[0].endpoints[0]",
        "upstream[0].tls",
        "upstream[1].builtin",
        "upstream[1].name",
        "route[0].host",
        "route[0].path_prefix",
        "route[0].methods[1]",
        "route[0].upstream",
        "route[0].auth[1]",
        "route[0].allow[0]",
        "log.level",
    ] {
        assert!(keys.contains(&want), "missing {want} in {p:#?}");
    }
    for problem in &p {
        assert!(problem.line.is_some(), "no line for {problem}");
    }
    let addr = p.iter().find(|p| p.key == "listener[0].address").unwrap();
    assert_eq!(addr.line, Some(line_of(text, "localhost:8443")));
    let missing_key = p.iter().find(|p| p.key == "listener[0].key").unwrap();
    assert!(missing_key.message.contains("missing required key"));
    assert_eq!(missing_key.line, Some(line_of(text, "[[listener]]")));
}

#[test]
fn syntax_and_type_errors_have_lines() {
    let text = MINIMAL.replace("name = \"orders\"\nendpoints", "name = \"orders\nendpoints");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].line.is_some(), "{p:?}");

    let text = MINIMAL.replace("[truststore]", "[truststore]\nmax_chain_depth = \"four\"");
    let p = problems(&text);
    assert_eq!(p[0].line, Some(line_of(&text, "max_chain_depth")), "{p:?}");
}

#[test]
fn missing_sections_and_duplicates() {
    let p = problems("");
    let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("[[listener]]")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("[truststore]")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("[[upstream]]")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("[[route]]")), "{msgs:?}");

    let text = format!("{MINIMAL}\n[[route]]\nname = \"again\"\nupstream = \"orders\"\n");
    let p = problems(&text);
    assert!(p[0].message.contains("never be used"), "{p:?}");
}

#[test]
fn request_rules_and_route_case() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listeners[0].limits.requests, RequestRules::default());
    assert_eq!(
        c.listeners[0].limits.requests.headers_with_underscores,
        UnderscoreHeaders::Drop
    );
    assert_eq!(
        c.listeners[0].limits.requests.path_parameters,
        PathParameters::Reject
    );
    assert!(!c.routes[0].case_sensitive);

    let text = MINIMAL.replace(
        "key = \"server.key\"\n",
        "key = \"server.key\"\nheaders_with_underscores = \"reject\"\npath_parameters = \"allow\"\n",
    );
    let text = text.replace(
        "upstream = \"orders\"\n",
        "upstream = \"orders\"\ncase_sensitive = true\n",
    );
    let c = parse(&text).unwrap();
    let r = c.listeners[0].limits.requests;
    assert_eq!(r.headers_with_underscores, UnderscoreHeaders::Reject);
    assert_eq!(r.path_parameters, PathParameters::Allow);
    assert!(c.routes[0].case_sensitive);

    let text = MINIMAL.replace(
        "key = \"server.key\"\n",
        "key = \"server.key\"\nheaders_with_underscores = \"keep\"\npath_parameters = \"strip\"\n",
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "listener[0].headers_with_underscores",
            "listener[0].path_parameters"
        ],
        "{p:?}"
    );
    assert!(
        p[0].message.contains("\"drop\", \"reject\", \"allow\""),
        "{p:?}"
    );
    assert_eq!(p[0].line, Some(line_of(&text, "headers_with_underscores")));
}

/// Prefixes that differ only in case overlap unless both routes match exact case.
#[test]
fn prefixes_differing_in_case_overlap_unless_both_are_case_sensitive() {
    let two = |a: &str, b: &str| {
        format!("{MINIMAL}\npath_prefix = \"/admin\"\n{a}\n[[route]]\nname = \"other\"\nupstream = \"orders\"\npath_prefix = \"/ADMIN\"\n{b}\n")
    };
    for (a, b) in [
        ("", ""),
        ("case_sensitive = true", ""),
        ("", "case_sensitive = true"),
    ] {
        let p = problems(&two(a, b));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "route[1].path_prefix");
        assert!(p[0].message.contains("differ only in case"), "{p:?}");
    }
    parse(&two("case_sensitive = true", "case_sensitive = true")).unwrap();
    // Other methods on the same prefix stay allowed, whatever the case.
    parse(&two("methods = [\"GET\"]", "methods = [\"POST\"]")).unwrap();
}

#[test]
fn sizes_accept_numbers_and_units() {
    let text = MINIMAL.replace(
        "upstream = \"orders\"\n",
        "upstream = \"orders\"\nmax_body_size = 1024\n",
    );
    assert_eq!(parse(&text).unwrap().routes[0].max_body_size, 1024);
    let text = MINIMAL.replace(
        "upstream = \"orders\"\n",
        "upstream = \"orders\"\nmax_body_size = \"2MiB\"\n",
    );
    assert_eq!(parse(&text).unwrap().routes[0].max_body_size, 2 << 20);
}

/// configs/ ships files users copy; each must load as it is.
#[test]
fn shipped_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2);
}

/// The reference file documents every key: each struct field of the raw config appears.
#[test]
fn reference_config_sets_every_key() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/reference.toml"),
    )
    .unwrap();
    for table in [
        "listener",
        "truststore",
        "truststore.crl_fetch",
        "admin",
        "upstream",
        "upstream.tls",
        "route",
        "route.allow",
        "log",
        "reload",
        "identity_cache",
        "auth.jwt.cognito",
        "auth.sigv4",
        "issuer.oauth2",
        "issuer.oauth2.rate_limit",
        "issuer.sessions",
        "issuer.sessions.trust_anchor",
        "issuer.sessions.profile",
        "issuer.sessions.role",
        "cluster",
        "cluster.tls",
    ] {
        for key in file::known_keys(table) {
            let (assign, header) = (format!("{key} ="), format!("[{table}.{key}"));
            assert!(
                text.contains(&assign) || text.contains(&header),
                "reference.toml does not document {table}.{key}"
            );
        }
    }
    let c = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/reference.toml")).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.limits.max_header_size as u64, defaults::MAX_HEADER_SIZE);
    assert_eq!(l.limits.drain_timeout, defaults::DRAIN_TIMEOUT);
    assert_eq!(l.limits.drain_delay, defaults::DRAIN_DELAY);
    assert_eq!(c.truststore.max_chain_depth, defaults::MAX_CHAIN_DEPTH);
}
