//! The config loader (`portcullis::config::parse`) over what an operator's editor (or a
//! broken deploy) can produce: arbitrary bytes, TOML assembled from the reference config's
//! own sections and keys with odd values, and the shipped example configs with lines
//! deleted, repeated, swapped and bytes changed. Every outcome is a config or an error
//! whose every problem names its line or its key; nothing panics (line arithmetic, key
//! paths, durations and sizes are where that would hide).

use std::path::Path;

use portcullis::config::{parse, ConfigError};
use proptest::prelude::*;

use crate::support::{check, Entropy, Source, CASES};

const QUICKSTART: &str = include_str!("../../configs/quickstart.toml");
const REFERENCE: &str = include_str!("../../configs/reference.toml");
const COMPARE: &str = include_str!("../../loadtest/compare/portcullis.toml");

/// The reference config's sections: each header with its `key = value` lines, comments
/// cut.
fn reference_tables() -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for line in REFERENCE.lines().map(str::trim) {
        let pair = line.split(" #").next().unwrap_or(line).trim();
        match tables.last_mut() {
            _ if line.starts_with('[') => tables.push((line.to_owned(), Vec::new())),
            Some((_, pairs)) if pair.contains(" = ") => pairs.push(pair.to_owned()),
            _ => {}
        }
    }
    tables
}

/// The smallest valid config: the reference config cut to its required keys.
fn minimal(tables: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for (header, pairs) in tables {
        let required: &[&str] = match header.as_str() {
            "[[listener]]" => &["address", "cert", "key"],
            "[truststore]" => &["dir"],
            "[[upstream]]" => &["name", "endpoints"],
            "[[route]]" => &["name", "upstream"],
            _ => continue,
        };
        if seen.contains(&header) {
            continue;
        }
        seen.push(header);
        out.push_str(header);
        out.push('\n');
        for pair in pairs {
            if required
                .iter()
                .any(|k| pair.starts_with(&format!("{k} = ")))
            {
                out.push_str(pair);
                out.push('\n');
            }
        }
    }
    out
}

/// The smallest valid config (for other properties to add a section to).
pub fn minimal_config() -> String {
    minimal(&reference_tables())
}

/// The shipped configs, whole (the load-test one with its placeholders filled in), and the
/// minimal one.
fn examples() -> Vec<String> {
    let compare = COMPARE.replace("@WORKERS@", "2").replace("@PKI@", "pki");
    vec![
        minimal_config(),
        QUICKSTART.into(),
        REFERENCE.into(),
        compare,
    ]
}

/// What the mutations start from. Parsing costs ~15 µs a line in a debug build, so most
/// bases are small: single sections or pairs of sections of the reference config (no
/// comments), the minimal config; the quick start's and the load test's configs (comment
/// lines left out) less often, and the whole reference config (150 lines, with its
/// comments) one time in 256 (4 ms a parse).
struct Bases {
    whole: Vec<String>,
    sections: Vec<String>,
    tables: Vec<(String, Vec<String>)>,
}

fn without_comment_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .flat_map(|l| [l, "\n"])
        .collect()
}

impl Bases {
    fn new() -> Bases {
        let tables = reference_tables();
        let sections = tables
            .iter()
            .map(|(h, pairs)| format!("{h}\n{}\n", pairs.join("\n")))
            .collect();
        let mut whole = examples();
        for text in [1, 3] {
            whole[text] = without_comment_lines(&whole[text]);
        }
        Bases {
            whole,
            sections,
            tables,
        }
    }

    fn pick(&self, src: &mut Source) -> String {
        match src.below(256) {
            0 => self.whole[2].clone(),
            1..=48 => self.whole[0].clone(),
            49..=64 => self.whole[1].clone(),
            65..=80 => self.whole[3].clone(),
            _ => {
                let i = src.below(self.sections.len());
                let n = 1 + src.below(2).min(self.sections.len() - i - 1);
                self.sections[i..i + n].concat()
            }
        }
    }
}

fn path() -> &'static Path {
    Path::new("/etc/portcullis/portcullis.toml")
}

/// Parse `text`: a config, or problems that each name a line (within the text) or a key.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    let Err(ConfigError { problems }) = parse(text, path()) else {
        return Ok(());
    };
    prop_assert!(
        !problems.is_empty(),
        "an error without a problem for:\n{}",
        text
    );
    let lines = text.split('\n').count();
    for p in &problems {
        prop_assert!(
            p.line.is_some() || !p.key.is_empty(),
            "a problem with neither line nor key: {:?}\nin:\n{}",
            p,
            text
        );
        if let Some(line) = p.line {
            prop_assert!(
                (1..=lines).contains(&line),
                "line {} of a {}-line text: {:?}\nin:\n{}",
                line,
                lines,
                p,
                text
            );
        }
        let _ = p.to_string();
    }
    Ok(())
}

#[test]
fn the_examples_parse() {
    for text in examples() {
        if let Err(e) = parse(&text, path()) {
            panic!("{e}\nin:\n{text}");
        }
    }
}

/// Values that stress the value checks: durations, sizes, numbers, addresses, choices.
const VALUES: &[&str] = &[
    "\"0s\"",
    "\"1ms\"",
    "\"10s\"",
    "\"30\"",
    "\"-1s\"",
    "\"1.5s\"",
    "\"99999999999999999999d\"",
    "\"18446744073709551615s\"",
    "\"584942417355y\"",
    "\"\"",
    "\" \"",
    "\"5m 5m\"",
    "\"0\"",
    "\"8KiB\"",
    "\"1.5MiB\"",
    "\"99999999999GiB\"",
    "\"18446744073709551616\"",
    "\"16 kib\"",
    "0",
    "-1",
    "1",
    "7",
    "65536",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "nan",
    "inf",
    "true",
    "false",
    "[]",
    "[\"\"]",
    "[[]]",
    "{}",
    "{ a = 1 }",
    "\"127.0.0.1:8443\"",
    "\"[::]:0\"",
    "\"256.0.0.1:1\"",
    "\"127.0.0.1:99999\"",
    "\"echo\"",
    "\"orders\"",
    "\"jwt:cognito\"",
    "\"jwt:\"",
    "[\"mtls\", \"sigv4\"]",
    "[[\"mtls\"], []]",
    "\"*\"",
    "\"*.x.test\"",
    "\"/\"",
    "\"\"\"multi\nline\"\"\"",
    "1979-05-27T07:32:00Z",
    "\"http://127.0.0.1:1/x\"",
    "\"https://\"",
    "\"é\"",
    "\"\\u0000\"",
];

/// TOML made of the reference config's own sections, in any order and number: each
/// header with keys mostly its own (now and then another section's), values from the
/// reference or from [`VALUES`].
fn assembled(src: &mut Source, bases: &Bases) -> String {
    let mut out = String::new();
    for _ in 0..src.below(6) {
        let (header, own) = &bases.tables[src.below(bases.tables.len())];
        out.push_str(header);
        out.push('\n');
        for _ in 0..src.below(5) {
            let pairs = match src.below(8) {
                0 => &bases.tables[src.below(bases.tables.len())].1,
                _ => own,
            };
            let Some(pair) = pairs.get(src.below(pairs.len())) else {
                continue;
            };
            let (key, value) = pair.split_once(" = ").unwrap_or((pair, ""));
            let value = match src.below(3) {
                0 => src.pick(VALUES),
                _ => value,
            };
            out.push_str(key);
            out.push_str(" = ");
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

#[test]
fn config_arbitrary_text_is_a_config_or_located_problems() {
    let bases = Bases::new();
    check("config_arbitrary_text", CASES, Entropy(512), |bytes| {
        let mut src = Source::new(&bytes);
        let text = match src.below(3) {
            0 => String::from_utf8_lossy(&src.bytes(200)).into_owned(),
            _ => assembled(&mut src, &bases),
        };
        check_text(&text)
    });
}

/// Line edits: delete, repeat, swap or move a line (or a run of lines).
fn edit_lines(src: &mut Source, text: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    for _ in 0..=src.below(3) {
        let n = lines.len();
        if n == 0 {
            break;
        }
        let i = src.below(n);
        let run = 1 + src.below(3).min(n - i - 1);
        match src.below(4) {
            0 if n > 1 => {
                lines.drain(i..i + run);
            }
            1 => {
                let copy: Vec<&str> = lines[i..i + run].to_vec();
                let at = src.below(n + 1);
                lines.splice(at..at, copy);
            }
            2 => {
                let j = src.below(n);
                lines.swap(i, j);
            }
            _ => {
                let line = lines.remove(i);
                let at = src.below(lines.len() + 1);
                lines.insert(at, line);
            }
        }
    }
    lines.join("\n")
}

#[test]
fn config_mutated_examples_are_a_config_or_located_problems() {
    let bases = Bases::new();
    check("config_mutated_examples", CASES, Entropy(64), |bytes| {
        let mut src = Source::new(&bytes);
        let base = bases.pick(&mut src);
        let text = match src.below(3) {
            0 => edit_lines(&mut src, &base),
            1 => {
                let mut b = base.as_bytes().to_vec();
                src.mutate(&mut b);
                String::from_utf8_lossy(&b).into_owned()
            }
            _ => {
                let edited = edit_lines(&mut src, &base);
                let mut b = edited.into_bytes();
                src.mutate(&mut b);
                String::from_utf8_lossy(&b).into_owned()
            }
        };
        check_text(&text)
    });
}
