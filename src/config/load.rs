//! TOML text → [`Config`]: every problem found, each with its file, line and key.
//!
//! Three passes over the text, each reporting what it can: the TOML syntax
//! (`toml_edit`, which also keeps every key's position for the line numbers), the shape
//! (serde into [`super::file`], unknown keys collected by `serde_ignored`, every value of
//! the wrong type found and named by [`shape`] rather than only the first), and the values
//! and cross-references (the [`Builder`], one file per section, put together in
//! `assemble.rs`). A problem's key is a path such as `route[1].allow[0].uri_san`; its line
//! is found by walking that path in the document.

use std::fmt;
use std::path::{Path, PathBuf};

use super::build::{Builder, KeyPath, Seg};
use super::shape;
use super::Config;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    /// 1-based; `None` when the problem has no place in the file (it cannot be read).
    pub line: Option<usize>,
    /// Dotted key path, e.g. `listener[0].address`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file (never empty).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(unreadable(path, &e)),
    }
}

/// Validate `text` as if read from `path` (relative paths in it resolve against its folder).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let (config, problems) = parse_all(text, path)?;
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// Read `path` and report every problem found, with the config built despite them (a bad
/// or missing value replaced by its default): what `portcullis check` also checks the
/// material of. An error only when the file cannot be read or is not TOML.
pub fn load_all(path: &Path) -> Result<(Config, Vec<ConfigProblem>), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_all(&text, path),
        Err(e) => Err(unreadable(path, &e)),
    }
}

/// [`parse`], but a config is returned with the problems whenever the text is TOML.
pub fn parse_all(text: &str, path: &Path) -> Result<(Config, Vec<ConfigProblem>), ConfigError> {
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let fail = |offset: Option<usize>, message: String| ConfigError {
        problems: vec![ConfigProblem {
            file: path.to_path_buf(),
            line: offset.map(|o| line_of(text, o)),
            key: String::new(),
            message,
        }],
    };

    let doc = toml_edit::Document::parse(text)
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;
    let shaped = shape::deserialize(text).map_err(|u| fail(u.offset, u.message))?;

    let mut b = Builder {
        base,
        issues: Vec::new(),
    };
    for path in shaped.unknown {
        b.unknown_key(path);
    }
    let config = b.config(shaped.raw, source);
    // A value of the wrong type was left out before the builder ran: its "missing"
    // (or default) is not a second problem.
    let typed: Vec<KeyPath> = shaped.issues.iter().map(|i| i.path.clone()).collect();
    b.issues.retain(|i| !typed.contains(&i.path));
    let problems = shaped
        .issues
        .into_iter()
        .chain(b.issues)
        .map(|issue| ConfigProblem {
            file: path.to_path_buf(),
            line: locate(&doc, &issue.path).map(|o| line_of(text, o)),
            key: key_string(&issue.path),
            message: issue.message,
        })
        .collect();
    Ok((config, problems))
}

/// The line of `key` (as problems name it, e.g. `auth.jwt.idp.jwks_url`) in `text`, or of
/// the deepest part of it present.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut path = Vec::new();
    for part in key.split('.') {
        let mut pieces = part.split('[');
        if let Some(name) = pieces.next().filter(|n| !n.is_empty()) {
            path.push(Seg::Key(name.to_owned()));
        }
        for index in pieces {
            path.push(Seg::Index(index.trim_end_matches(']').parse().ok()?));
        }
    }
    locate(&doc, &path).map(|o| line_of(text, o))
}

fn unreadable(path: &Path, e: &std::io::Error) -> ConfigError {
    ConfigError {
        problems: vec![ConfigProblem {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        }],
    }
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_owned()
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn key_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Byte offset of the deepest part of `path` present in the document: the key itself, or
/// the table that should have held it.
fn locate(doc: &toml_edit::Document<&str>, path: &[Seg]) -> Option<usize> {
    use toml_edit::{Item, Value};
    enum Node<'a> {
        Table(&'a toml_edit::Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    let mut best = None;
    let mut cur = Node::Table(doc.as_table());
    for seg in path {
        let next = match (&cur, seg) {
            (Node::Table(t), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Item(item), Seg::Key(k)) => item
                .as_table_like()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::Item(item))),
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => {
                a.get(*i).map(|t| (t.span(), Node::Table(t)))
            }
            (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
            | (Node::Value(Value::Array(a)), Seg::Index(i)) => {
                a.get(*i).map(|v| (v.span(), Node::Value(v)))
            }
            _ => None,
        };
        let Some((span, node)) = next else { break };
        if let Some(span) = span {
            best = Some(span.start);
        }
        cur = node;
    }
    best
}
