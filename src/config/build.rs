//! The config builder's shared machinery: `Builder` collects every problem found, each
//! at its key path, while one file per section (`listener.rs`, `truststore.rs`,
//! `upstream.rs`, `route.rs`, `log.rs`, `reload.rs`, `jwt.rs`, `sigv4.rs`, `crl_fetch.rs`)
//! adds an `impl Builder` block that turns that section's raw struct into its typed value.
//! Here are the checks they share: required keys, paths, choices, durations, sizes,
//! socket addresses, and "did you mean" for unknown keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::file::{self, Size};
use super::resolve;
use super::units::{parse_duration, parse_size};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) type KeyPath = Vec<Seg>;

pub(super) struct Issue {
    pub(super) path: KeyPath,
    pub(super) message: String,
}

pub(super) struct Builder {
    pub(super) base: PathBuf,
    pub(super) issues: Vec<Issue>,
}

/// `path` extended by a key.
pub(super) fn k(path: &[Seg], key: &str) -> KeyPath {
    let mut p = path.to_vec();
    p.push(Seg::Key(key.to_owned()));
    p
}

/// `path` extended by an index.
pub(super) fn ix(path: &[Seg], i: usize) -> KeyPath {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

impl Builder {
    pub(super) fn err(&mut self, path: KeyPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    pub(super) fn unknown_key(&mut self, path: KeyPath) {
        let Some(Seg::Key(name)) = path.last().cloned() else {
            return;
        };
        let table: Vec<&str> = path[..path.len() - 1]
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect();
        let known = file::known_keys(&table.join("."));
        let mut msg = format!("unknown key `{name}`");
        if let Some(s) = suggest(&name, known) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        } else if !known.is_empty() {
            msg.push_str(&format!("; expected one of: {}", known.join(", ")));
        }
        self.err(path, msg);
    }

    pub(super) fn required<'a>(
        &mut self,
        path: &[Seg],
        key: &str,
        v: &'a Option<String>,
    ) -> Option<&'a str> {
        match v.as_deref() {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.err(k(path, key), "must not be empty");
                None
            }
            None => {
                self.err(k(path, key), format!("missing required key `{key}`"));
                None
            }
        }
    }

    pub(super) fn path(&mut self, path: &[Seg], key: &str, v: &Option<String>) -> PathBuf {
        self.required(path, key, v)
            .map(|s| resolve(&self.base, s))
            .unwrap_or_default()
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        path: KeyPath,
        v: &Option<String>,
        default: &str,
        options: &[(&str, T)],
    ) -> T {
        let given = v.as_deref().unwrap_or(default);
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == given) {
            return *t;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(
            path,
            format!("\"{given}\" is not one of {}", names.join(", ")),
        );
        options
            .iter()
            .find(|(n, _)| *n == default)
            .map_or(options[0].1, |(_, t)| *t)
    }

    pub(super) fn duration(
        &mut self,
        path: KeyPath,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(s) {
            Ok(dur) if dur.is_zero() => {
                self.err(path, "must be greater than zero");
                default
            }
            Ok(dur) => dur,
            Err(e) => {
                self.err(path, e);
                default
            }
        }
    }

    pub(super) fn size(&mut self, path: KeyPath, v: &Option<Size>, default: u64, min: u64) -> u64 {
        let n = match v {
            None => return default,
            Some(Size::Bytes(n)) => *n,
            Some(Size::Text(s)) => match parse_size(s) {
                Ok(n) => n,
                Err(e) => {
                    self.err(path, e);
                    return default;
                }
            },
        };
        if n < min {
            self.err(path, format!("must be at least {min} bytes"));
            return default;
        }
        n
    }

    pub(super) fn socket_addr(&mut self, path: &[Seg], v: &Option<String>) -> SocketAddr {
        let unspecified = SocketAddr::from(([127, 0, 0, 1], 0));
        let Some(s) = self.required(path, "address", v) else {
            return unspecified;
        };
        s.parse().unwrap_or_else(|_| {
            self.err(
                k(path, "address"),
                format!("\"{s}\" is not an IP address and port, e.g. \"127.0.0.1:8443\" or \"[::]:8443\""),
            );
            unspecified
        })
    }
}

/// Closest known key, for "did you mean" (edit distance at most 2, or a prefix).
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(dist, k)| *dist <= 2 || (word.len() >= 3 && k.starts_with(word)))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
