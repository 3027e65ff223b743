//! The house in order. The house issue settled two rules for `src/`, and later issues must
//! keep both true: dependencies between the top-level modules (`src/NAME.rs`, `src/NAME/`)
//! run one way, so no module reaches, through the `crate::` paths of its non-test code, a
//! module that reaches back to it; and no source file holds more than 700 lines outside its
//! `#[cfg(test)]` items. A cycle welds every module on it into one unit that can be neither
//! read, tested nor changed alone, and a file past 700 lines has started to hold more than
//! one idea. When a check here fails, move the shared piece down into a module both sides
//! can depend on (or invert the dependency), or split the file; do not raise the limit or
//! add an exception. The scanner is a small std-only lexer: it blanks comments, string and
//! char literals and `#[cfg(test)]` items, reads the `mod` declarations to learn which
//! files are compiled only for tests, then collects the `crate::` paths that remain.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The most lines a source file may hold outside its `#[cfg(test)]` items.
const MAX_LINES: usize = 700;

#[test]
fn top_level_modules_have_no_cycle() {
    let report = House::read().cycle_report();
    assert!(
        report.is_empty(),
        "the top-level modules of src/ depend on each other in a cycle; dependencies must run \
         one way (move the shared piece down into a module both sides can use, or invert the \
         dependency):\n{report}"
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    let long = House::read().long_files(MAX_LINES);
    let mut report = String::new();
    for (file, lines) in &long {
        writeln!(report, "  {file}: {lines} lines").unwrap();
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines outside #[cfg(test)] items (blank and comment \
         lines count; test files are exempt); split them:\n{report}"
    );
}

// ---------------------------------------------------------------------------------------
// The crate as a set of files.

/// Every `.rs` file under `src/`, with what the scanner learnt about it.
struct House {
    /// The top-level modules: `src/NAME.rs` and `src/NAME/`, less the crate roots.
    modules: BTreeSet<String>,
    /// Sorted by path.
    files: Vec<SourceFile>,
}

struct SourceFile {
    /// Relative to the manifest directory, e.g. `src/config/sigv4.rs`.
    path: PathBuf,
    text: String,
    /// `text` with comments, the insides of literals and `#[cfg(test)]` items blanked.
    code: Vec<u8>,
    scan: Scan,
    /// The top-level module the file belongs to; `None` for the crate roots.
    top: Option<String>,
    /// Compiled only under `#[cfg(test)]`: declared by a `#[cfg(test)] mod x;` (or inside a
    /// `#[cfg(test)]` item), below such a file, or marked `#![cfg(test)]`.
    test_only: bool,
}

/// One `crate::` dependency between two top-level modules.
struct Edge {
    /// The first place it is written, `file:line`, and that line.
    at: String,
    line: String,
    count: usize,
}

impl House {
    fn read() -> House {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        list_rs(&root.join("src"), &mut paths);
        let files = paths
            .into_iter()
            .map(|p| {
                let text =
                    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (p.strip_prefix(root).unwrap().to_path_buf(), text)
            })
            .collect();
        House::from_files(files)
    }

    /// `files`: (path relative to the manifest directory, text).
    fn from_files(files: Vec<(PathBuf, String)>) -> House {
        let mut files: Vec<SourceFile> = files
            .into_iter()
            .map(|(path, text)| SourceFile::new(path, text))
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let modules = files.iter().filter_map(|f| location_top(&f.path)).collect();

        // Walk the module tree from the library root, to learn each file's module path and
        // whether only test builds compile it.
        let index: BTreeMap<PathBuf, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i))
            .collect();
        let mut seen: BTreeMap<usize, (Vec<String>, bool)> = BTreeMap::new();
        let mut queue = VecDeque::new();
        if let Some(&lib) = index.get(Path::new("src/lib.rs")) {
            queue.push_back((lib, Vec::new(), false));
        }
        while let Some((i, module, test)) = queue.pop_front() {
            let test = test || files[i].scan.whole_file_test;
            match seen.get(&i) {
                Some((_, was_test)) if !*was_test || test => continue,
                _ => {}
            }
            seen.insert(i, (module.clone(), test));
            for decl in &files[i].scan.mods {
                let Some(&child) = child_candidates(&files[i].path, decl)
                    .iter()
                    .find_map(|c| index.get(c))
                else {
                    continue;
                };
                let mut path = module.clone();
                path.extend(decl.inline.iter().cloned());
                path.push(decl.name.clone());
                queue.push_back((child, path, test || decl.in_test));
            }
        }
        for (i, f) in files.iter_mut().enumerate() {
            match seen.get(&i) {
                Some((module, test)) => {
                    f.top = module.first().cloned();
                    f.test_only = *test;
                }
                // Not reached from lib.rs: judged by where it lies, as ordinary code.
                None => f.top = location_top(&f.path),
            }
        }
        House { modules, files }
    }

    /// Every dependency from one top-level module to another, keyed (from, to).
    fn edges(&self) -> BTreeMap<(String, String), Edge> {
        let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
        for f in self.files.iter().filter(|f| !f.test_only) {
            let Some(from) = &f.top else { continue };
            for (to, line) in f.crate_refs() {
                if !self.modules.contains(&to) || &to == from {
                    continue;
                }
                edges
                    .entry((from.clone(), to))
                    .and_modify(|e| e.count += 1)
                    .or_insert_with(|| Edge {
                        at: format!("{}:{line}", f.path.display()),
                        line: f.line(line),
                        count: 1,
                    });
            }
        }
        edges
    }

    /// Every knot among the top-level modules (a strongly connected component of the
    /// dependency graph), each with a shortest cycle through every edge inside it and a
    /// place each edge is written; empty when the graph has no cycle.
    fn cycle_report(&self) -> String {
        let edges = self.edges();
        let nodes: Vec<&String> = self.modules.iter().collect();
        let id = |name: &String| nodes.binary_search(&name).unwrap();
        let mut adj = vec![Vec::new(); nodes.len()];
        for (from, to) in edges.keys() {
            adj[id(from)].push(id(to));
        }
        for a in &mut adj {
            a.sort_unstable();
        }
        let mut knots: Vec<Vec<usize>> = tarjan(&adj).into_iter().filter(|c| c.len() > 1).collect();
        knots.sort();

        let mut out = String::new();
        for (k, knot) in knots.iter().enumerate() {
            let names: Vec<&str> = knot.iter().map(|&n| nodes[n].as_str()).collect();
            let cycles = cycles_through_each_edge(&adj, knot);
            writeln!(
                out,
                "knot {} of {}: {{{}}}, {} cycles:",
                k + 1,
                knots.len(),
                names.join(", "),
                cycles.len()
            )
            .unwrap();
            for cycle in &cycles {
                let ring: Vec<usize> = cycle.iter().chain(cycle.first()).copied().collect();
                let shown: Vec<&str> = ring.iter().map(|&n| nodes[n].as_str()).collect();
                writeln!(out, "  {}", shown.join(" -> ")).unwrap();
                for pair in ring.windows(2) {
                    let key = (nodes[pair[0]].clone(), nodes[pair[1]].clone());
                    let e = &edges[&key];
                    let more = match e.count {
                        1 => String::new(),
                        n => format!("  (+{} more)", n - 1),
                    };
                    writeln!(
                        out,
                        "      {} -> {}: {}  {}{more}",
                        key.0, key.1, e.at, e.line
                    )
                    .unwrap();
                }
            }
        }
        out
    }

    /// The files over `max` lines outside their `#[cfg(test)]` items, longest first.
    fn long_files(&self, max: usize) -> Vec<(String, usize)> {
        let mut long: Vec<(String, usize)> = self
            .files
            .iter()
            .filter(|f| !f.test_only && !f.path.to_string_lossy().ends_with("tests.rs"))
            .map(|f| (f.path.display().to_string(), f.lines_outside_tests()))
            .filter(|&(_, n)| n > max)
            .collect();
        long.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        long
    }
}

impl SourceFile {
    fn new(path: PathBuf, text: String) -> SourceFile {
        let mut code = mask(&text);
        let scan = scan(&code, &text);
        for r in &scan.test_ranges {
            blank(&mut code, r.clone());
        }
        SourceFile {
            path,
            text,
            code,
            scan,
            top: None,
            test_only: false,
        }
    }

    /// The first segment after each `crate::` in non-test code, with its 1-based line.
    fn crate_refs(&self) -> Vec<(String, usize)> {
        crate_refs(&self.code)
            .into_iter()
            .map(|(name, at)| (name, line_of(&self.code, at)))
            .collect()
    }

    /// Line `n` (1-based), trimmed and cut to 100 characters.
    fn line(&self, n: usize) -> String {
        let line = self.text.lines().nth(n - 1).unwrap_or("").trim();
        match line.char_indices().nth(100) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        }
    }

    /// Lines, blank and comment ones included, less those wholly inside `#[cfg(test)]`
    /// items (a line is: it touches one, and all its non-blank bytes lie in one).
    fn lines_outside_tests(&self) -> usize {
        let text = self.text.as_bytes();
        let mut in_test = vec![false; text.len()];
        for r in &self.scan.test_ranges {
            in_test[r.clone()].fill(true);
        }
        let mut count = 0;
        let mut start = 0;
        while start < text.len() {
            let end = text[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |p| start + p);
            let span = start..(end + 1).min(text.len());
            let touches = span.clone().any(|k| in_test[k]);
            let all_test = span
                .filter(|&k| !text[k].is_ascii_whitespace())
                .all(|k| in_test[k]);
            if !(touches && all_test) {
                count += 1;
            }
            start = end + 1;
        }
        count
    }
}

/// Every `.rs` file under `dir`, recursively.
fn list_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            list_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file's place names: `src/NAME.rs` or `src/NAME/…`; `None` for
/// `src/lib.rs` and `src/main.rs`.
fn location_top(path: &Path) -> Option<String> {
    let mut parts = path.strip_prefix("src").ok()?.components();
    let first = parts.next()?.as_os_str().to_str()?;
    match (first, parts.next()) {
        (_, Some(_)) => Some(first.to_string()),
        ("lib.rs" | "main.rs", None) => None,
        (file, None) => file.strip_suffix(".rs").map(str::to_string),
    }
}

/// Where the file for `decl` (a `mod name;` in `parent`) may be, as the Rust reference
/// lays out, `#[path]` included.
fn child_candidates(parent: &Path, decl: &ModDecl) -> Vec<PathBuf> {
    let dir = parent.parent().unwrap_or(Path::new(""));
    let name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mod_rs = matches!(name, "mod.rs" | "lib.rs" | "main.rs");
    let mut base = dir.to_path_buf();
    if !mod_rs {
        base.push(parent.file_stem().unwrap_or_default());
    }
    base.extend(&decl.inline);
    match &decl.path {
        Some(p) if decl.inline.is_empty() => vec![dir.join(p)],
        Some(p) => vec![base.join(p)],
        None => vec![
            base.join(format!("{}.rs", decl.name)),
            base.join(&decl.name).join("mod.rs"),
        ],
    }
}

// ---------------------------------------------------------------------------------------
// The graph.

/// Tarjan's strongly connected components; each sorted.
fn tarjan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let adj = s.adj;
        for &w in &adj[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if s.index[v] == Some(s.low[v]) {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            comp.sort_unstable();
            s.out.push(comp);
        }
    }
    let n = adj.len();
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// For each edge a -> b inside `knot`, the shortest cycle a -> b -> … -> a within it;
/// each cycle once (rotated to start at its least node), shortest first. Every edge that
/// holds the knot together shows up in at least one.
fn cycles_through_each_edge(adj: &[Vec<usize>], knot: &[usize]) -> Vec<Vec<usize>> {
    let inside = |v: usize| knot.binary_search(&v).is_ok();
    let mut cycles = BTreeSet::new();
    for &a in knot {
        for &b in adj[a].iter().filter(|&&b| inside(b)) {
            // Breadth-first from b back to a.
            let mut prev = vec![None; adj.len()];
            let mut queue = VecDeque::from([b]);
            prev[b] = Some(b);
            while let Some(v) = queue.pop_front() {
                if v == a {
                    break;
                }
                for &w in adj[v].iter().filter(|&&w| inside(w)) {
                    if prev[w].is_none() {
                        prev[w] = Some(v);
                        queue.push_back(w);
                    }
                }
            }
            let mut back = vec![a];
            let mut v = a;
            while v != b {
                v = prev[v].expect("a knot is strongly connected");
                back.push(v);
            }
            // back = a, …, b (reversed path); the cycle is a, b, …, (before a).
            back.reverse();
            let mut cycle = vec![a];
            cycle.extend(&back[..back.len() - 1]);
            let least = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap();
            cycle.rotate_left(least);
            cycles.insert((cycle.len(), cycle));
        }
    }
    cycles.into_iter().map(|(_, c)| c).collect()
}

// ---------------------------------------------------------------------------------------
// The scanner.

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Spaces over `range` of `code`, newlines kept.
fn blank(code: &mut [u8], range: Range<usize>) {
    for b in &mut code[range] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

fn line_of(code: &[u8], at: usize) -> usize {
    code[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

/// `text` with every comment and the inside of every string and char literal blanked
/// (string quotes kept, raw strings blanked whole), so offsets and lines still match.
fn mask(text: &str) -> Vec<u8> {
    let s = text.as_bytes();
    let mut code = s.to_vec();
    let mut i = 0;
    while i < s.len() {
        let next = s.get(i + 1).copied();
        match s[i] {
            b'/' if next == Some(b'/') => {
                let end = s[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(s.len(), |p| i + p);
                blank(&mut code, i..end);
                i = end;
            }
            b'/' if next == Some(b'*') => {
                let end = block_comment_end(s, i);
                blank(&mut code, i..end);
                i = end;
            }
            b'"' => {
                let end = string_end(s, i + 1);
                let inside_end = if s[end - 1] == b'"' && end > i + 1 {
                    end - 1
                } else {
                    end
                };
                blank(&mut code, i + 1..inside_end);
                i = end;
            }
            b'\'' => match char_literal_end(s, i) {
                Some(end) => {
                    blank(&mut code, i + 1..end - 1);
                    i = end;
                }
                None => i += 1, // a lifetime or a label
            },
            b if is_word_byte(b) => {
                let start = i;
                while i < s.len() && is_word_byte(s[i]) {
                    i += 1;
                }
                if matches!(&s[start..i], b"r" | b"br" | b"cr") {
                    if let Some(end) = raw_string_end(s, i) {
                        blank(&mut code, start..end);
                        i = end;
                    }
                }
            }
            _ => i += 1,
        }
    }
    code
}

/// From the `/` of a `/*`, just past its (nested) `*/`.
fn block_comment_end(s: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < s.len() {
        match (s[i], s[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// From just after an opening `"`, just past the closing one.
fn string_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// From the `'` at `i`, just past the char literal it opens; `None` when it opens a
/// lifetime or a label (`'a`, `'static`, `'outer:`).
fn char_literal_end(s: &[u8], i: usize) -> Option<usize> {
    let first = *s.get(i + 1)?;
    if first == b'\\' {
        // An escape: '\n', '\'', '\\', '\x7f', '\u{1F600}'.
        let from = i + 3;
        let to = (i + 14).min(s.len());
        return (from..to).find(|&j| s[j] == b'\'').map(|j| j + 1);
    }
    if first == b'\'' || first == b'\n' {
        return None;
    }
    let len = match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    (s.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
}

/// From just after the `r` of `r"`, `r#"`, … , just past the raw string's end; `None` when
/// no raw string starts there (`r#ident`).
fn raw_string_end(s: &[u8], i: usize) -> Option<usize> {
    let hashes = s[i..].iter().take_while(|&&b| b == b'#').count();
    if s.get(i + hashes) != Some(&b'"') {
        return None;
    }
    let close = (i + hashes + 1..s.len()).find(|&j| {
        s[j] == b'"'
            && s[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&b| b == b'#')
                .count()
                == hashes
    });
    Some(close.map_or(s.len(), |j| j + 1 + hashes))
}

fn skip_ws(c: &[u8], mut i: usize) -> usize {
    while i < c.len() && c[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Back from `i` over whitespace.
fn skip_ws_back(c: &[u8], mut i: usize) -> usize {
    while i > 0 && c[i - 1].is_ascii_whitespace() {
        i -= 1;
    }
    i
}

/// The word starting at `i` (empty if none) and its end.
fn word(c: &[u8], i: usize) -> (&[u8], usize) {
    let end = (i..c.len())
        .find(|&j| !is_word_byte(c[j]))
        .unwrap_or(c.len());
    (&c[i.min(end)..end], end)
}

/// From the bracket at `open`, just past the one closing it (all three kinds counted together).
fn matching(c: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, &b) in c.iter().enumerate().skip(open) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    c.len()
}

/// From the bracket at `close`, the index of the one opening it.
fn matching_back(c: &[u8], close: usize) -> usize {
    let mut depth = 0usize;
    for j in (0..=close).rev() {
        match c[j] {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    0
}

fn squeeze(c: &[u8]) -> String {
    c.iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| b as char)
        .collect()
}

/// Whether an attribute (whitespace squeezed out) compiles its item only for tests:
/// `cfg(test)`, or `cfg(all(…, test, …))`.
fn is_cfg_test(attr: &str) -> bool {
    fn requires_test(pred: &str) -> bool {
        pred == "test"
            || pred
                .strip_prefix("all(")
                .and_then(|p| p.strip_suffix(')'))
                .is_some_and(|args| split_top(args).into_iter().any(requires_test))
    }
    attr.strip_prefix("cfg(")
        .and_then(|a| a.strip_suffix(')'))
        .is_some_and(requires_test)
}

/// `s` split at its commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// What the scanner reads from a file's masked code.
#[derive(Default)]
struct Scan {
    /// Each `#[cfg(test)]` item, from its `#` to its end.
    test_ranges: Vec<Range<usize>>,
    /// The file opens with `#![cfg(test)]`.
    whole_file_test: bool,
    /// Its `mod name;` declarations.
    mods: Vec<ModDecl>,
}

struct ModDecl {
    name: String,
    /// The inline modules (`mod a { … }`) the declaration sits in, outermost first.
    inline: Vec<String>,
    /// A `#[path = "…"]` on it.
    path: Option<String>,
    /// Inside a `#[cfg(test)]` item (its own attribute included).
    in_test: bool,
}

fn scan(code: &[u8], text: &str) -> Scan {
    let mut scan = Scan::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < code.len() {
        match code[i] {
            b'#' => {
                let mut j = skip_ws(code, i + 1);
                let inner = code.get(j) == Some(&b'!');
                if inner {
                    j = skip_ws(code, j + 1);
                }
                if code.get(j) != Some(&b'[') {
                    i += 1;
                    continue;
                }
                let close = matching(code, j);
                let attr = squeeze(&code[j + 1..close.saturating_sub(1).max(j + 1)]);
                if !is_cfg_test(&attr) {
                    i = close;
                } else if inner {
                    scan.whole_file_test |= depth == 0;
                    i = close;
                } else {
                    let end = item_end(code, close);
                    scan.test_ranges.push(i..end);
                    i = end;
                }
            }
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b if is_word_byte(b) => i = word(code, i).1,
            _ => i += 1,
        }
    }
    scan.mods = mod_decls(code, text, &scan.test_ranges);
    scan
}

#[derive(Clone, Copy, PartialEq)]
enum ItemKind {
    /// Ends at `;`: `use`, `const`, `static`, `let`, `type`, `extern crate`.
    Semi,
    /// Ends at `;` or its closing `}`: `fn`, `mod`, `impl`, `struct`, a block, ….
    Braced,
    /// A field, variant, match arm or expression: ends at `,`, `;`, a closing `}`, or
    /// where the enclosing brackets close.
    Other,
}

/// From just past an item's `#[cfg(test)]`, just past the item.
fn item_end(c: &[u8], from: usize) -> usize {
    let mut i = skip_ws(c, from);
    // Further outer attributes on the same item.
    while c.get(i) == Some(&b'#') {
        let j = skip_ws(c, i + 1);
        if c.get(j) != Some(&b'[') {
            break;
        }
        i = skip_ws(c, matching(c, j));
    }
    let kind = item_kind(c, i);
    let mut depth = 0i32;
    for (j, &b) in c.iter().enumerate().skip(i) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth < 0 {
                    return j;
                }
                if depth == 0 && b == b'}' && kind != ItemKind::Semi {
                    return j + 1;
                }
            }
            b';' if depth == 0 => return j + 1,
            b',' if depth == 0 && kind == ItemKind::Other => return j + 1,
            _ => {}
        }
    }
    c.len()
}

fn item_kind(c: &[u8], mut i: usize) -> ItemKind {
    loop {
        i = skip_ws(c, i);
        if c.get(i) == Some(&b'{') {
            return ItemKind::Braced;
        }
        let (w, end) = word(c, i);
        let (next, _) = word(c, skip_ws(c, end));
        match w {
            b"pub" => {
                i = skip_ws(c, end);
                if c.get(i) == Some(&b'(') {
                    i = matching(c, i);
                }
            }
            b"use" | b"static" | b"let" | b"type" => return ItemKind::Semi,
            b"const" if !matches!(next, b"fn" | b"unsafe" | b"async" | b"extern") => {
                return ItemKind::Semi
            }
            b"extern" if next == b"crate" => return ItemKind::Semi,
            b"fn" | b"mod" | b"impl" | b"trait" | b"struct" | b"enum" | b"union"
            | b"macro_rules" | b"const" | b"unsafe" | b"async" | b"extern" | b"default"
            | b"auto" => return ItemKind::Braced,
            _ => return ItemKind::Other,
        }
    }
}

/// The `mod name;` declarations in `code`, with their inline parents, `#[path]` and
/// whether a test range holds them.
fn mod_decls(code: &[u8], text: &str, test_ranges: &[Range<usize>]) -> Vec<ModDecl> {
    let mut inline: Vec<(String, Range<usize>)> = Vec::new();
    let mut decls: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !is_word_byte(code[i]) {
            i += 1;
            continue;
        }
        let (w, end) = word(code, i);
        if w == b"mod" {
            let mut at = skip_ws(code, end);
            if code[at..].starts_with(b"r#") {
                at += 2;
            }
            let (name, name_end) = word(code, at);
            let after = skip_ws(code, name_end);
            let name = String::from_utf8_lossy(name).into_owned();
            match code.get(after) {
                Some(b';') if !name.is_empty() => decls.push((name, i)),
                Some(b'{') if !name.is_empty() => inline.push((name, after..matching(code, after))),
                _ => {}
            }
        }
        i = end;
    }
    decls
        .into_iter()
        .map(|(name, at)| ModDecl {
            inline: inline
                .iter()
                .filter(|(_, r)| r.contains(&at))
                .map(|(n, _)| n.clone())
                .collect(),
            path: path_attr(code, text, at),
            in_test: test_ranges.iter().any(|r| r.contains(&at)),
            name,
        })
        .collect()
}

/// The `#[path = "…"]` among the attributes before the `mod` at `at`, if any.
fn path_attr(code: &[u8], text: &str, at: usize) -> Option<String> {
    let mut i = skip_ws_back(code, at);
    if i > 0 && code[i - 1] == b')' {
        i = skip_ws_back(code, matching_back(code, i - 1));
    }
    if code[..i].ends_with(b"pub") && (i == 3 || !is_word_byte(code[i - 4])) {
        i -= 3;
    }
    loop {
        i = skip_ws_back(code, i);
        if i == 0 || code[i - 1] != b']' {
            return None;
        }
        let open = matching_back(code, i - 1);
        let hash = skip_ws_back(code, open);
        if hash == 0 || code[hash - 1] != b'#' {
            return None;
        }
        if squeeze(&code[open + 1..i - 1]).starts_with("path=") {
            let q1 = (open..i).find(|&k| code[k] == b'"')?;
            let q2 = (q1 + 1..i).find(|&k| code[k] == b'"')?;
            return Some(text[q1 + 1..q2].to_string());
        }
        i = hash - 1;
    }
}

/// The first path segment after each `crate::` in `code` (already masked and with test
/// items blanked), with its offset; for a grouped `crate::{a::b, c::{d, e}}`, the first
/// segment of each item of the group (`a`, `c`).
fn crate_refs(code: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<(String, usize)>, at: usize| {
        let (seg, _) = word(code, at);
        out.push((String::from_utf8_lossy(seg).into_owned(), at));
    };
    let mut i = 0;
    while i < code.len() {
        if !is_word_byte(code[i]) {
            i += 1;
            continue;
        }
        let (w, end) = word(code, i);
        i = end;
        if w != b"crate" {
            continue;
        }
        let j = skip_ws(code, end);
        if !code[j..].starts_with(b"::") {
            continue;
        }
        let j = skip_ws(code, j + 2);
        match code.get(j) {
            Some(b'{') => {
                let close = matching(code, j);
                let mut depth = 0;
                let mut item_start = true;
                let mut k = j + 1;
                while k < close.saturating_sub(1) {
                    match code[k] {
                        b'(' | b'[' | b'{' => depth += 1,
                        b')' | b']' | b'}' => depth -= 1,
                        b',' if depth == 0 => item_start = true,
                        b if item_start && is_word_byte(b) => {
                            push(&mut out, k);
                            item_start = false;
                            k = word(code, k).1;
                            continue;
                        }
                        b if !b.is_ascii_whitespace() => item_start = false,
                        _ => {}
                    }
                    k += 1;
                }
                i = close;
            }
            Some(&b) if is_word_byte(b) => push(&mut out, j),
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The scanner's own tests.

mod scanner {
    use super::*;

    /// The `crate::` first segments of `src` read as one file, each as `name:line`.
    fn refs(src: &str) -> String {
        let file = SourceFile::new(PathBuf::from("src/m.rs"), src.to_string());
        let refs: Vec<String> = file
            .crate_refs()
            .iter()
            .map(|(n, l)| format!("{n}:{l}"))
            .collect();
        refs.join(" ")
    }

    fn house(files: &[(&str, &str)]) -> House {
        House::from_files(
            files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        )
    }

    #[test]
    fn plain_paths_in_uses_types_and_expressions_count() {
        let src = "use crate::a::B;\nfn f(x: &crate::b::C) -> u8 {\n    crate :: c::d(x)\n}\npub(crate) fn g() {}\n";
        assert_eq!(refs(src), "a:1 b:2 c:3");
    }

    #[test]
    fn strings_do_not_count() {
        let src = r#"let s = "crate::x and \" crate::y"; let b = b"crate::w"; use crate::a;"#;
        assert_eq!(refs(src), "a:1");
    }

    #[test]
    fn raw_strings_do_not_count() {
        let src = "let s = r#\"crate::z \" crate::y\"#; let t = r\"crate::x\"; let u = br##\"crate::w\"##; let r#type = 1; use crate::a;";
        assert_eq!(refs(src), "a:1");
    }

    #[test]
    fn comments_and_doc_links_do_not_count() {
        let src = "//! see [`crate::reload::crl_fetch`]\n/// [`crate::x`]\n// crate::y\n/* crate::z /* nested */ crate::w */\nuse crate::a; // crate::v\n";
        assert_eq!(refs(src), "a:5");
    }

    #[test]
    fn cfg_test_items_do_not_count() {
        let src = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::y;\n    fn f() { crate::y::g() }\n}\nfn h() { crate::b::i() }\n";
        assert_eq!(refs(src), "a:1 b:7");
        let src = "#[cfg(test)] use crate::y::{A, B};\n#[cfg(all(test, unix))] const X: [u8; 1] = [crate::y::N];\n\
                   struct S { #[cfg(test)] t: crate::y::T, u: crate::b::U }\n#[cfg(not(test))] use crate::a;\n";
        assert_eq!(refs(src), "b:3 a:4");
    }

    #[test]
    fn grouped_imports_give_the_first_segment_of_each_item() {
        assert_eq!(refs("use crate::{a::B, c};"), "a:1 c:1");
        assert_eq!(
            refs("use crate::{\n    a::{b, c::D},\n    e::{self, F as G},\n};"),
            "a:2 e:3"
        );
        assert_eq!(refs("use crate::config::{self, Config};"), "config:1");
    }

    #[test]
    fn char_literals_do_not_break_brace_matching() {
        let src = "#[cfg(test)]\nmod tests {\n    const O: char = '{';\n    use crate::y;\n}\nuse crate::a;\n\
                   #[cfg(test)]\nmod more {\n    const C: char = '}';\n    const Q: char = '\\'';\n    use crate::y;\n}\nuse crate::b;\n";
        assert_eq!(refs(src), "a:6 b:13");
        // A quote in a char literal opens no string.
        assert_eq!(refs("let q = '\"'; use crate::a; let s = \"x\";"), "a:1");
    }

    #[test]
    fn lifetimes_do_not_start_char_literals() {
        let src = "fn f<'a>(x: &'a str) -> &'a crate::a::T { x }\nstruct S<'b> { s: &'b crate::b::U, t: &'static str }\n'outer: loop { break 'outer; }\nuse crate::c;";
        assert_eq!(refs(src), "a:1 b:2 c:4");
    }

    #[test]
    fn mod_declarations_learn_paths_inline_parents_and_test() {
        let src = "pub mod a;\n#[cfg(test)]\n#[path = \"b_tests.rs\"]\nmod tests;\nmod outer {\n    pub(crate) mod c;\n}\n";
        let file = SourceFile::new(PathBuf::from("src/x/mod.rs"), src.to_string());
        let got: Vec<(&str, &[String], Option<&str>, bool)> = file
            .scan
            .mods
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.inline.as_slice(),
                    m.path.as_deref(),
                    m.in_test,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", &[][..], None, false),
                ("tests", &[][..], Some("b_tests.rs"), true),
                ("c", &["outer".to_string()][..], None, false),
            ]
        );
    }

    #[test]
    fn test_only_files_are_read_from_their_parents_mod_declarations() {
        let h = house(&[
            ("src/lib.rs", "pub mod a;\npub mod b;\n"),
            (
                "src/a/mod.rs",
                "pub mod x;\n#[cfg(test)]\nmod test_pki;\nmod tests;\n",
            ),
            (
                "src/a/x.rs",
                "#[cfg(test)]\n#[path = \"x_tests.rs\"]\nmod tests;\n",
            ),
            ("src/a/x_tests.rs", "use crate::b::T;\n"),
            ("src/a/test_pki.rs", "use crate::b::T;\nmod deeper;\n"),
            ("src/a/test_pki/deeper.rs", "use crate::b::T;\n"),
            // Named like a test file but compiled always: it counts.
            ("src/a/tests.rs", "use crate::b::U;\n"),
            ("src/b.rs", ""),
        ]);
        let mut test_only: Vec<String> = h
            .files
            .iter()
            .filter(|f| f.test_only)
            .map(|f| f.path.display().to_string())
            .collect();
        test_only.sort();
        assert_eq!(
            test_only,
            [
                "src/a/test_pki.rs",
                "src/a/test_pki/deeper.rs",
                "src/a/x_tests.rs"
            ]
        );
        let edges = h.edges();
        assert_eq!(
            edges.keys().cloned().collect::<Vec<_>>(),
            [("a".into(), "b".into())]
        );
        assert_eq!(edges[&("a".into(), "b".into())].at, "src/a/tests.rs:1");
    }

    #[test]
    fn cycles_are_listed_with_a_place_per_edge() {
        let h = house(&[
            (
                "src/lib.rs",
                "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
            ),
            ("src/a.rs", "use crate::b::X;\nuse crate::a::Own;\n"),
            ("src/b.rs", "\nuse crate::{c::Y, d};\n"),
            ("src/c.rs", "use crate::a::Z;\nfn f() { crate::a::z() }\n"),
            ("src/d.rs", "use crate::b;\n"),
        ]);
        let want = "knot 1 of 1: {a, b, c, d}, 2 cycles:\n\
                    \x20 b -> d -> b\n\
                    \x20     b -> d: src/b.rs:2  use crate::{c::Y, d};\n\
                    \x20     d -> b: src/d.rs:1  use crate::b;\n\
                    \x20 a -> b -> c -> a\n\
                    \x20     a -> b: src/a.rs:1  use crate::b::X;\n\
                    \x20     b -> c: src/b.rs:2  use crate::{c::Y, d};\n\
                    \x20     c -> a: src/c.rs:1  use crate::a::Z;  (+1 more)\n";
        assert_eq!(h.cycle_report(), want);
        let acyclic = house(&[
            ("src/lib.rs", "mod a;\nmod b;\n"),
            ("src/a.rs", "use crate::b;"),
            ("src/b.rs", ""),
        ]);
        assert_eq!(acyclic.cycle_report(), "");
    }

    #[test]
    fn line_count_leaves_out_cfg_test_items_only() {
        let body = "// one\n\nfn f() {}\n#[cfg(test)]\nmod tests {\n\n    #[test]\n    fn t() {}\n}\n/// last\n";
        let file = SourceFile::new(PathBuf::from("src/m.rs"), body.to_string());
        assert_eq!(file.lines_outside_tests(), 4);
        let long = "fn f() {}\n".repeat(3);
        let h = house(&[
            ("src/lib.rs", "mod m;\nmod n;\n"),
            ("src/m.rs", long.as_str()),
            ("src/n.rs", "#[cfg(test)]\nmod tests;\n"),
            ("src/n/tests.rs", long.as_str()),
            ("src/other_tests.rs", long.as_str()),
        ]);
        assert_eq!(h.long_files(2), [("src/m.rs".to_string(), 3)]);
    }
}
