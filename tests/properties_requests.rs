//! Generated requests against path normalisation, routing and Host validation (issue 14):
//! seeded, so every run tries the same cases, and 100,000 cases per property.
//!
//! - normalisation is idempotent and its output is canonical (no dot-segment, no `//`, no
//!   `%2F %2E %5C %25` in any case, no `;` under the default rules);
//! - the router sends a path to the route a lax backend would serve it from (one that
//!   decodes twice, cuts `;` parameters, reads `\` as `/` and matches case-insensitively),
//!   so no path reaches a route whose allow-list is not the one of what the backend serves;
//! - the Host grammar agrees with an independent reference written from RFC 3986's ABNF.

use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::Method;
use portcullis::config::{AllowRule, AuthMethod, PathParameters, RouteConfig};
use portcullis::proxy::host;
use portcullis::proxy::path::{normalize, normalize_with};
use portcullis::route::{RouteMatch, Router};
use portcullis::upstream::Upstream;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};

const CASES: u32 = 100_000;

fn runner(seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

// ---------------------------------------------------------------------------------------
// Paths

/// Pieces that path tricks are made of: names in mixed case, dot-segments, parameters,
/// escapes of every kind (encoded separators, double encoding, broken escapes), non-ASCII.
const PIECES: &[&str] = &[
    "admin",
    "ADMIN",
    "Admin",
    "aDmIn",
    "api",
    "API",
    "internal",
    "Internal",
    "Files",
    "files",
    "v1",
    "items:batch",
    "items%3Abatch",
    "items%3abatch",
    "caf\u{e9}",
    "CAF%C3%A9",
    "x",
    "",
    ".",
    "..",
    ";",
    "..;",
    ".;",
    "a;b",
    ";x=1",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%25",
    "%2561",
    "%252f",
    "%252e",
    "%61dmin",
    "%41DMIN",
    "%3B",
    "%3b",
    "%00",
    "\0",
    "%zz",
    "%",
    "%4",
    "\\",
    "\\..\\",
    "~",
    "%7E",
    "_",
    "-",
    "%2D",
    "%20",
    "?",
    "#",
    "@",
    ":",
    "%40",
];

/// Starts that put a path near one of the test routes.
const HEADS: &[&str] = &[
    "",
    "",
    "",
    "/api/internal",
    "/API/Internal",
    "/api//internal",
    "/api/x/../internal",
    "/admin",
    "/Files",
    "/files",
    "/v1/items:batch",
    "/V1/items%3Abatch",
    "/caf%C3%A9",
    "/CAF\u{e9}",
];

fn raw_path() -> impl Strategy<Value = String> {
    let pieces = (
        prop::sample::select(HEADS),
        prop::collection::vec(
            (
                prop::sample::select(PIECES),
                prop::sample::select(&["/", "/", "/", "//", ""][..]),
            ),
            0..8,
        ),
    )
        .prop_map(|(head, parts)| {
            let mut s = format!("{head}/");
            for (piece, sep) in parts {
                s.push_str(piece);
                s.push_str(sep);
            }
            s
        });
    let chars = text_over(
        &[
            '/', 'a', 'A', 'd', 'D', 'm', 'M', 'i', 'I', 'n', 'N', '.', ';', '%', '2', '5', 'e',
            'E', 'f', 'F', 'c', 'C', '\\', '0', '1', '3',
        ],
        24,
    )
    .prop_map(|s| format!("/{s}"));
    prop_oneof![4 => pieces, 1 => chars]
}

/// Strings of up to `max` characters from `alphabet` (cheaper to generate than a regex).
fn text_over(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..=max)
        .prop_map(|cs| cs.into_iter().collect())
}

fn has_encoded(path: &str, escapes: &[&str]) -> bool {
    let upper = path.to_ascii_uppercase();
    escapes.iter().any(|e| upper.contains(e))
}

#[test]
fn normalised_paths_are_idempotent_and_canonical() {
    let accepted = Cell::new(0u32);
    runner(0x5041_5448)
        .run(&raw_path(), |raw| {
            for params in [PathParameters::Reject, PathParameters::Allow] {
                let Ok(n) = normalize_with(&raw, params) else {
                    continue;
                };
                prop_assert_eq!(normalize_with(&n, params), Ok(n.clone()), "raw {:?}", raw);
                prop_assert!(n.starts_with('/'), "{:?} -> {:?}", raw, n);
                prop_assert!(!n.contains("//"), "{:?} -> {:?}", raw, n);
                prop_assert!(
                    n.split('/').all(|s| s != "." && s != ".."),
                    "dot-segment: {:?} -> {:?}",
                    raw,
                    n
                );
                prop_assert!(
                    !has_encoded(&n, &["%2F", "%2E", "%5C"]),
                    "{:?} -> {:?}",
                    raw,
                    n
                );
                if params == PathParameters::Reject {
                    accepted.set(accepted.get() + 1);
                    prop_assert!(!has_encoded(&n, &["%25", "%3B"]), "{:?} -> {:?}", raw, n);
                    prop_assert!(!n.contains(';'), "{:?} -> {:?}", raw, n);
                    prop_assert_eq!(normalize(&raw), Ok(n.clone()));
                }
            }
            Ok(())
        })
        .unwrap();
    // The generator is worth its cases only if many of them get through.
    assert!(accepted.get() > CASES / 10, "{} accepted", accepted.get());
}

struct TestRoute {
    name: &'static str,
    prefix: &'static str,
    case_sensitive: bool,
    allow: bool,
}

const ROUTES: &[TestRoute] = &[
    TestRoute {
        name: "open",
        prefix: "/",
        case_sensitive: false,
        allow: false,
    },
    TestRoute {
        name: "admin",
        prefix: "/admin",
        case_sensitive: false,
        allow: true,
    },
    TestRoute {
        name: "api",
        prefix: "/api",
        case_sensitive: false,
        allow: false,
    },
    TestRoute {
        name: "internal",
        prefix: "/api/internal",
        case_sensitive: false,
        allow: true,
    },
    TestRoute {
        name: "files",
        prefix: "/Files",
        case_sensitive: true,
        allow: true,
    },
    TestRoute {
        name: "batch",
        prefix: "/v1/items:batch",
        case_sensitive: false,
        allow: true,
    },
    TestRoute {
        name: "cafe",
        prefix: "/caf\u{e9}",
        case_sensitive: false,
        allow: true,
    },
];

fn router() -> Router {
    let configs: Vec<RouteConfig> = ROUTES
        .iter()
        .map(|r| RouteConfig {
            name: r.name.into(),
            host: "*".into(),
            path_prefix: r.prefix.into(),
            methods: vec![],
            upstream: "u".into(),
            auth: vec![AuthMethod::Mtls],
            auth_any: vec![],
            allow: if r.allow {
                vec![AllowRule {
                    uri_san: Some(format!("spiffe://test/{}", r.name)),
                    ..AllowRule::default()
                }]
            } else {
                vec![]
            },
            max_body_size: 1024,
            scopes: vec![],
            case_sensitive: r.case_sensitive,
        })
        .collect();
    let up = Arc::new(Upstream::echo("u"));
    Router::new(&configs, |_| Some(up.clone())).unwrap()
}

/// Percent-decode once (a broken escape stays as it is).
fn decode(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let hex = path
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        if let (b'%', Some(hex)) = (path[i], hex) {
            let hex = std::str::from_utf8(hex).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
            continue;
        }
        out.push(path[i]);
        i += 1;
    }
    out
}

/// The path as a lax backend serves it: decoded until nothing changes, `\` read as `/`,
/// `;` parameters cut from each segment, dot-segments resolved and empty segments dropped.
fn lax_view(path: &str) -> Vec<u8> {
    let mut bytes = path.as_bytes().to_vec();
    loop {
        let next = decode(&bytes);
        if next == bytes {
            break;
        }
        bytes = next;
    }
    for b in &mut bytes {
        if *b == b'\\' {
            *b = b'/';
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for seg in bytes.split(|&b| b == b'/').skip(1) {
        let seg = seg.split(|&b| b == b';').next().unwrap_or_default();
        trailing = matches!(seg, b"" | b"." | b"..");
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::new();
    for s in segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The route a lax backend would dispatch `view` to: the longest matching prefix.
fn reference_route(view: &[u8]) -> &'static str {
    ROUTES
        .iter()
        .filter(|r| {
            let p = r.prefix.as_bytes();
            let head = view.get(..p.len());
            let same = match head {
                Some(h) if r.case_sensitive => h == p,
                Some(h) => h.eq_ignore_ascii_case(p),
                None => false,
            };
            same && (p.ends_with(b"/") || view.len() == p.len() || view[p.len()] == b'/')
        })
        .max_by_key(|r| r.prefix.len())
        .map_or("none", |r| r.name)
}

#[test]
fn the_router_sends_a_path_where_a_lax_backend_would_serve_it() {
    let router = router();
    let hits: Vec<Cell<u32>> = ROUTES.iter().map(|_| Cell::new(0)).collect();
    runner(0x524f_5554)
        .run(&raw_path(), |raw| {
            let Ok(n) = normalize(&raw) else {
                return Ok(());
            };
            let chosen = match router.find("gw.test", &n, &Method::GET) {
                RouteMatch::Found(r) => r.name.to_string(),
                RouteMatch::MethodNotAllowed(_) | RouteMatch::NotFound => "none".into(),
            };
            let want = reference_route(&lax_view(&n));
            prop_assert_eq!(&chosen, want, "raw {:?}, normalised {:?}", raw, n);
            // And the backend, reading the raw request as laxly, would have meant the same.
            prop_assert_eq!(reference_route(&lax_view(&raw)), want, "raw {:?}", raw);
            if let Some(i) = ROUTES.iter().position(|r| r.name == want) {
                hits[i].set(hits[i].get() + 1);
            }
            Ok(())
        })
        .unwrap();
    for (r, n) in ROUTES.iter().zip(&hits) {
        assert!(
            n.get() > 100,
            "route {} chosen only {} times",
            r.name,
            n.get()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hosts

/// RFC 3986 `host [":" port]` narrowed as the gateway documents it (reg-name of unreserved
/// characters only, IPv6 without zone or IPvFuture, port of 1 to 5 digits up to 65535),
/// written straight from the ABNF and independently of `proxy::host`.
fn reference_host(s: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') && (!s.starts_with('[') || s[..i].ends_with(']')) => {
            (&s[..i], Some(&s[i + 1..]))
        }
        _ => (s, None),
    };
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            let v: u32 = p.parse().ok()?;
            Some(u16::try_from(v).ok()?)
        }
        Some(_) => return None,
    };
    let ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(inner) => reference_ipv6(inner),
        None => {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        }
    };
    ok.then(|| (name.to_owned(), port))
}

fn h16(s: &str) -> bool {
    (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn dec_octet(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u32>().is_ok_and(|v| v <= 255)
}

fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| dec_octet(p))
}

/// Pieces of one side of `::`, `None` if one is not an h16 (the final one may be an IPv4
/// address when `last`, counting as two).
fn ipv6_side(s: &str, last: bool) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let pieces: Vec<&str> = s.split(':').collect();
    let mut n = 0;
    for (i, p) in pieces.iter().enumerate() {
        if h16(p) {
            n += 1;
        } else if last && i == pieces.len() - 1 && ipv4(p) {
            n += 2;
        } else {
            return None;
        }
    }
    Some(n)
}

fn reference_ipv6(s: &str) -> bool {
    let halves: Vec<&str> = s.split("::").collect();
    match halves[..] {
        [all] => ipv6_side(all, true) == Some(8),
        [left, right] => match (ipv6_side(left, false), ipv6_side(right, true)) {
            (Some(l), Some(r)) => l + r <= 7,
            _ => false,
        },
        _ => false,
    }
}

fn parsed(s: &str) -> Option<(String, Option<u16>)> {
    host::parse(s.as_bytes()).map(|h| (h.name.to_owned(), h.port))
}

/// A valid host: a name, an IPv4 address, or an IPv6 address (compressed, full, or with
/// an IPv4 tail), with or without a port.
fn valid_host() -> impl Strategy<Value = (String, Option<u16>)> {
    const FIRST: &[char] = &['a', 'Z', 'q', '0', '9', 'x', 'M'];
    const REST: &[char] = &['a', 'b', 'Z', '0', '7', '.', '.', '-', '_', '~', 'x', 'Q'];
    let name = (prop::sample::select(FIRST), text_over(REST, 40))
        .prop_map(|(c, rest)| format!("{c}{rest}"));
    let v4 = any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string());
    let v6 = (any::<[u16; 8]>(), 0..4u8).prop_map(|(g, form)| {
        let a = Ipv6Addr::from(g);
        let text = match form {
            0 => a.to_string(),
            1 => g.map(|x| format!("{x:x}")).join(":"),
            2 => g.map(|x| format!("{x:04X}")).join(":"),
            _ => format!(
                "::ffff:{}",
                Ipv4Addr::from([g[0] as u8, g[1] as u8, g[2] as u8, g[3] as u8])
            ),
        };
        format!("[{text}]")
    });
    (prop_oneof![name, v4, v6], prop::option::of(any::<u16>()))
}

#[test]
fn valid_hosts_are_accepted() {
    runner(0x484f_5354)
        .run(&valid_host(), |(name, port)| {
            let text = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            let want = Some((name, port));
            prop_assert_eq!(&reference_host(&text), &want, "reference on {:?}", text);
            prop_assert_eq!(&parsed(&text), &want, "{:?}", text);
            Ok(())
        })
        .unwrap();
}

/// Characters a Host can never hold.
const BAD: &[&str] = &[
    ",", ", ", "/", "\\", "@", " ", "\t", "%", "%41", ";", "?", "#", "*", "!", "=", "+", "'", "\"",
    "<", "(", "é", "\u{0}", "\u{7f}",
];

/// Valid hosts broken one way or another, and short strings over the grammar's alphabet
/// and beyond it.
fn any_host_text() -> impl Strategy<Value = String> {
    let text = |(n, p): (String, Option<u16>)| match p {
        Some(p) => format!("{n}:{p}"),
        None => n,
    };
    let inserted = (
        valid_host(),
        prop::sample::select(BAD),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(h, bad, at)| {
            let mut s = text(h);
            let chars: Vec<(usize, char)> = s.char_indices().collect();
            let i = if chars.is_empty() {
                0
            } else {
                chars[at.index(chars.len() + 1).min(chars.len() - 1)].0
            };
            s.insert_str(i, bad);
            s
        });
    let second_port = (valid_host(), any::<u16>(), any::<u16>())
        .prop_map(move |((n, _), a, b)| format!("{n}:{a}:{b}"));
    let listed =
        (valid_host(), valid_host()).prop_map(move |(a, b)| format!("{}, {}", text(a), text(b)));
    let alphabet = text_over(
        &[
            'a', 'F', '0', '9', '.', ':', ':', '[', ']', '%', '_', '~', ',', ' ', '/', '@', '-',
        ],
        20,
    );
    prop_oneof![
        3 => inserted,
        1 => second_port,
        1 => listed,
        3 => alphabet,
    ]
}

#[test]
fn host_validation_agrees_with_the_reference_and_refuses_foreign_characters() {
    let accepted = Cell::new(0u32);
    runner(0x4241_4448)
        .run(&any_host_text(), |s| {
            let got = parsed(&s);
            prop_assert_eq!(&got, &reference_host(&s), "{:?}", s);
            let foreign = s
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "-._~:[]".contains(c)));
            if foreign {
                prop_assert_eq!(&got, &None, "{:?} has a character outside the grammar", s);
            }
            if let Some((name, _)) = &got {
                accepted.set(accepted.get() + 1);
                prop_assert!(s[name.len()..].matches(':').count() <= 1, "{:?}", s);
            }
            Ok(())
        })
        .unwrap();
    assert!(accepted.get() > 100, "{} accepted", accepted.get());
}
