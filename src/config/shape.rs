//! The shape pass of [`super::load`]: serde into [`RawConfig`] without stopping at the
//! first type error. serde gives up at the first value of the wrong type; here that value's
//! key is found from the error's position, recorded with a message that names what was
//! expected (`expected a duration like "30s", found the integer 60`), removed from the
//! text, and the text deserialized again, until it goes through. So every type error of a
//! file is reported in one run, and the values and cross-references of everything else
//! are still checked by the builder.

use std::str::FromStr;

use super::build::{ix, k, Issue, KeyPath, Seg};
use super::file::RawConfig;

/// At most this many type errors are collected (each costs one more parse of the file).
const MAX_SHAPE_ERRORS: usize = 100;

/// Keys whose value is a duration string.
const DURATION_KEYS: [&str; 10] = [
    "interval",
    "timeout",
    "debounce",
    "expiry_warning",
    "ttl",
    "max_skew",
    "max_presign_expiry",
    "leeway",
    "refresh",
    "token_lifetime",
];

/// Keys whose value is a size (a string with a unit, or a number of bytes).
const SIZE_KEYS: [&str; 5] = [
    "max_header_size",
    "h2_max_header_list_size",
    "max_body_size",
    "max_payload_buffer",
    "max_token_size",
];

/// What came out of the shape pass.
pub(super) struct Shaped {
    pub(super) raw: RawConfig,
    /// One per value of the wrong type, at its key.
    pub(super) issues: Vec<Issue>,
    /// Keys no raw struct knows.
    pub(super) unknown: Vec<KeyPath>,
}

/// A failure that has no key to pin it to: reported alone, with the offset it was found at.
pub(super) struct Unplaced {
    pub(super) offset: Option<usize>,
    pub(super) message: String,
}

pub(super) fn deserialize(text: &str) -> Result<Shaped, Unplaced> {
    let mut current = text.to_owned();
    let mut issues = Vec::new();
    // The first error as serde placed it in the caller's text: what is reported when a later
    // one (in a text with values removed) cannot be placed by key, so that every problem
    // keeps a line.
    let mut first: Option<Unplaced> = None;
    loop {
        let de = toml::Deserializer::parse(&current).map_err(|e| Unplaced {
            offset: e.span().map(|s| s.start),
            message: first_line(e.message()),
        })?;
        let mut unknown = Vec::new();
        let err = match serde_ignored::deserialize(de, |p| unknown.push(segments(&p))) {
            Ok(raw) => {
                return Ok(Shaped {
                    raw,
                    issues,
                    unknown,
                })
            }
            Err(e) => e,
        };
        let message = first_line(err.message());
        // Only the first text's offsets mean anything to the caller's line numbers; later
        // ones are placed by key.
        let unplaced = |offset| Unplaced {
            offset,
            message: message.clone(),
        };
        let offset = err.span().map(|s| s.start);
        if first.is_none() {
            first = Some(unplaced(offset));
        }
        let give_up = |first: Option<Unplaced>| Err(first.unwrap_or_else(|| unplaced(offset)));
        let Some(offset) = offset else {
            return give_up(first);
        };
        let placed = key_at(&current, offset).filter(|_| issues.len() < MAX_SHAPE_ERRORS);
        let Some((path, found)) = placed else {
            return give_up(first);
        };
        let Some(next) = without(&current, &path) else {
            return give_up(first);
        };
        issues.push(Issue {
            message: type_message(&message, &path, Some(found)),
            path,
        });
        current = next;
    }
}

/// serde's `invalid type: integer `60`, expected a string` in the words of the config:
/// what the key takes (by its name for durations and sizes, else serde's expectation),
/// then what the file has there (`found`, read from the document).
fn type_message(serde: &str, path: &[Seg], found: Option<String>) -> String {
    let key = match path.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "",
    };
    let expected = if key.ends_with("_timeout")
        || key.ends_with("_interval")
        || key.ends_with("_delay")
        || DURATION_KEYS.contains(&key)
    {
        Some("a duration like \"30s\"".to_owned())
    } else if SIZE_KEYS.contains(&key) {
        Some("a size like \"16KiB\" or a number of bytes".to_owned())
    } else {
        serde
            .split_once(", expected ")
            .map(|(_, e)| expected_words(e))
    };
    match (expected, found) {
        (Some(e), Some(f)) => format!("expected {e}, found {f}"),
        (Some(e), None) => format!("expected {e}"),
        (None, _) => serde.to_owned(),
    }
}

fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    if e.starts_with("struct ") || e == "a map" {
        return "a table".into();
    }
    match e {
        "a sequence" => "an array".into(),
        "usize" | "u8" | "u16" | "u32" | "u64" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        _ => e.to_owned(),
    }
}

/// A value as the message names it: `the integer 60`, `the string "x"`, `an array`.
fn describe(v: &toml_edit::Value) -> String {
    use toml_edit::Value;
    let shown = v.to_string();
    let shown = shown.trim();
    match v {
        Value::String(_) => format!("the string {shown}"),
        Value::Integer(_) => format!("the integer {shown}"),
        Value::Float(_) => format!("the number {shown}"),
        Value::Boolean(_) => format!("the boolean {shown}"),
        Value::Datetime(_) => format!("the date {shown}"),
        Value::Array(_) => "an array".into(),
        Value::InlineTable(_) => "a table".into(),
    }
}

/// The key of the innermost value that spans `offset` in `text`, and that value described.
fn key_at(text: &str, offset: usize) -> Option<(KeyPath, String)> {
    let doc = toml_edit::Document::parse(text).ok()?;
    in_table(doc.as_table(), offset, &[])
}

fn in_table(
    t: &dyn toml_edit::TableLike,
    offset: usize,
    path: &[Seg],
) -> Option<(KeyPath, String)> {
    use toml_edit::Item;
    for (key, item) in t.iter() {
        let here = k(path, key);
        let found = match item {
            Item::Value(v) => in_value(v, offset, here),
            Item::Table(t) => in_table(t, offset, &here),
            Item::ArrayOfTables(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, t)| in_table(t, offset, &ix(&here, i))),
            Item::None => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn in_value(v: &toml_edit::Value, offset: usize, path: KeyPath) -> Option<(KeyPath, String)> {
    use toml_edit::Value;
    let span = v.span()?;
    if !span.contains(&offset) {
        return None;
    }
    let inner = match v {
        Value::InlineTable(t) => t
            .iter()
            .find_map(|(key, v)| in_value(v, offset, k(&path, key))),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| in_value(v, offset, ix(&path, i))),
        _ => None,
    };
    inner.or_else(|| Some((path, describe(v))))
}

/// `text` without the value at `path` (for an array element, without the whole array:
/// removing one element would shift the indices of the next errors); `None` if it cannot
/// be found there.
fn without(text: &str, path: &[Seg]) -> Option<String> {
    let mut doc = toml_edit::DocumentMut::from_str(text).ok()?;
    let keep = path.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    let (last, parents) = path[..=keep].split_last()?;
    let Seg::Key(last) = last else { return None };
    remove_in(doc.as_table_mut(), parents, last)?;
    Some(doc.to_string())
}

fn remove_in(t: &mut dyn toml_edit::TableLike, parents: &[Seg], last: &str) -> Option<()> {
    use toml_edit::{Item, Value};
    match parents {
        [] => t.remove(last).map(drop),
        [Seg::Key(key), Seg::Index(i), rest @ ..] => match t.get_mut(key)? {
            Item::ArrayOfTables(a) => remove_in(a.get_mut(*i)?, rest, last),
            Item::Value(Value::Array(a)) => {
                remove_in(a.get_mut(*i)?.as_inline_table_mut()?, rest, last)
            }
            _ => None,
        },
        [Seg::Key(key), rest @ ..] => remove_in(t.get_mut(key)?.as_table_like_mut()?, rest, last),
        [Seg::Index(_), ..] => None,
    }
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_owned()
}

pub(super) fn segments(p: &serde_ignored::Path<'_>) -> KeyPath {
    use serde_ignored::Path as P;
    let mut out = match p {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => segments(parent),
    };
    match p {
        P::Seq { index, .. } => out.push(Seg::Index(*index)),
        P::Map { key, .. } => out.push(Seg::Key(key.clone())),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::deserialize;
    use crate::config::build::Seg;

    fn messages(text: &str) -> Vec<(String, String)> {
        let shaped = deserialize(text).unwrap_or_else(|u| panic!("{}", u.message));
        shaped
            .issues
            .into_iter()
            .map(|i| {
                let key: Vec<String> = i
                    .path
                    .iter()
                    .map(|s| match s {
                        Seg::Key(k) => k.clone(),
                        Seg::Index(n) => format!("[{n}]"),
                    })
                    .collect();
                (key.join("."), i.message)
            })
            .collect()
    }

    #[test]
    fn every_value_of_the_wrong_type_is_named_in_config_words() {
        let text = r#"
[[listener]]
idle_timeout = 60
max_header_size = true
workers = -1

[[route]]
methods = ["GET", 7]
tls = 1

[[upstream]]
tls = { ca = 5 }

[log]
level = ["debug"]
"#;
        let got = messages(text);
        let want = [
            (
                "listener.[0].idle_timeout",
                "expected a duration like \"30s\", found the integer 60",
            ),
            (
                "listener.[0].max_header_size",
                "expected a size like \"16KiB\" or a number of bytes, found the boolean true",
            ),
            (
                "listener.[0].workers",
                "expected a whole number, found the integer -1",
            ),
            (
                "route.[0].methods.[1]",
                "expected a string, found the integer 7",
            ),
            (
                "upstream.[0].tls.ca",
                "expected a string, found the integer 5",
            ),
            ("log.level", "expected a string, found an array"),
        ];
        for (key, message) in want {
            assert!(
                got.iter().any(|(k, m)| k == key && m == message),
                "{key}: {message}\n{got:?}"
            );
        }
    }

    #[test]
    fn a_file_without_type_errors_has_no_issues() {
        assert!(messages("[[listener]]\nidle_timeout = \"60s\"\n").is_empty());
    }
}
