//! TOML text → [`Config`]: every problem found, each with its file, line and key.
//!
//! Three passes over the text, each reporting what it can: the TOML syntax
//! (`toml_edit`, which also keeps every key's position for the line numbers), the shape
//! (serde into [`super::file`], unknown keys collected by `serde_ignored`), and the values
//! and cross-references (the [`Builder`], one file per section, put together in
//! `assemble.rs`). A problem's key is a path such as `route[1].allow[0].uri_san`; its line
//! is found by walking that path in the document.

use std::fmt;
use std::path::{Path, PathBuf};

use super::build::{Builder, KeyPath, Seg};
use super::file::RawConfig;
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
        Err(e) => Err(ConfigError {
            problems: vec![ConfigProblem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }],
        }),
    }
}

/// Validate `text` as if read from `path` (relative paths in it resolve against its folder).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
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
    let de = toml::Deserializer::parse(text)
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;
    let mut unknown = Vec::new();
    let raw: RawConfig = serde_ignored::deserialize(de, |p| unknown.push(segments(&p)))
        .map_err(|e| fail(e.span().map(|s| s.start), first_line(e.message())))?;

    let mut b = Builder {
        base,
        issues: Vec::new(),
    };
    for path in unknown {
        b.unknown_key(path);
    }
    let config = b.config(raw, source);
    if b.issues.is_empty() {
        return Ok(config);
    }
    let problems = b
        .issues
        .into_iter()
        .map(|issue| ConfigProblem {
            file: path.to_path_buf(),
            line: locate(&doc, &issue.path).map(|o| line_of(text, o)),
            key: key_string(&issue.path),
            message: issue.message,
        })
        .collect();
    Err(ConfigError { problems })
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

fn segments(p: &serde_ignored::Path<'_>) -> KeyPath {
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
