//! `cargo xtask tidy`: the house rules that a compiler can't check (STYLE
//! rules 1, 4, 6, 8, 13 and 19), run as a `#[test]` too (rust-analyzer's
//! `tidy.rs`), so `cargo test` fails on a violation.
//!
//! Checks, each reported as `path:line: message`:
//!
//! * every `.rs` file under `crates/` and `xtask/` opens with a `//!` doc;
//! * every `unsafe {` block has a `// SAFETY:` comment within the 3 lines above
//!   it or in the comment block right above it (backs up clippy's
//!   `undocumented_unsafe_blocks`);
//! * `unreachable_unchecked` is used only under such a `// SAFETY:` proof;
//! * where `unsafe` may appear at all: nowhere in green-pool; in green-ctx only
//!   in `fiber`, `stack`, `stack_pool`, `arena`, `valgrind`, `overflow` (and
//!   tests); in green-loop only under `src/backend/` and `src/op/` (and
//!   tests); in green-core's `src/` only inside the one module marked
//!   `#[allow(unsafe_code)]` (there may be at most one);
//! * no bare `#[ignore]`: say why with `#[ignore = "..."]`;
//! * no `todo!` or `unimplemented!` in `crates/*/src`;
//! * no trailing whitespace in `.rs`, `.toml` and `.md` files;
//! * dependency arrows point one way (DESIGN.md §1): green-ctx and green-loop
//!   depend on no workspace crate, green-core only on those two, green-pool
//!   only on green-core, nothing on xtask; internal dependencies go through
//!   `[workspace.dependencies]`, which gives each a `path` and a `version`.
//!
//! Source files are lexed just enough to tell code from comments and string
//! literals, so a word in a comment or a message is not taken for code.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{project_root, Error, Result};

/// One rule broken at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    path: PathBuf,
    line: usize,
    message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// `cargo xtask tidy`: prints every violation; fails if there is one.
pub(crate) fn run() -> Result<()> {
    let violations = check(&project_root());
    for v in &violations {
        eprintln!("{v}");
    }
    if violations.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        Err(Error(format!("tidy: {} violation(s)", violations.len())))
    }
}

/// Runs every check on the workspace at `root`.
pub(crate) fn check(root: &Path) -> Vec<Violation> {
    let mut t = Tidy {
        root: root.to_path_buf(),
        violations: Vec::new(),
    };
    t.sources();
    t.whitespace();
    t.dependencies();
    t.violations
}

/// Where `unsafe` may be written in green-ctx: these modules of `src/`.
const CTX_UNSAFE_MODULES: &[&str] = &[
    "fiber",
    "stack",
    "stack_pool",
    "arena",
    "valgrind",
    "overflow",
    "prefetch",
];

/// Where `unsafe` may be written in green-loop: these directories of `src/`.
const LOOP_UNSAFE_DIRS: &[&str] = &["backend", "op"];

/// Which workspace crates each crate may depend on (any dependency table).
const LAYERS: &[(&str, &[&str])] = &[
    ("green-ctx", &[]),
    ("green-loop", &[]),
    ("green-core", &["green-ctx", "green-loop"]),
    ("green-pool", &["green-core"]),
    ("xtask", &[]),
    (
        "green",
        &["green-ctx", "green-loop", "green-core", "green-pool"],
    ),
];

struct Tidy {
    root: PathBuf,
    violations: Vec<Violation>,
}

impl Tidy {
    fn report(&mut self, path: &Path, line: usize, message: impl Into<String>) {
        let path = path.strip_prefix(&self.root).unwrap_or(path).to_path_buf();
        self.violations.push(Violation {
            path,
            line,
            message: message.into(),
        });
    }

    fn read(&mut self, path: &Path) -> Option<String> {
        match fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                self.report(path, 0, format!("cannot read: {e}"));
                None
            }
        }
    }

    // ===== Rust sources =====

    fn sources(&mut self) {
        let root = self.root.clone();
        for path in walk(&root.join("xtask"), &["rs"]) {
            if let Some(text) = self.read(&path) {
                self.module_doc(&path, &text);
            }
        }
        for dir in ["tests", "benches", "examples", "src"] {
            for path in walk(&root.join(dir), &["rs"]) {
                if let Some(text) = self.read(&path) {
                    let code = strip_comments_and_strings(&text);
                    self.ignore_reasons(&path, &code);
                }
            }
        }
        for krate in crate_dirs(&root) {
            let name = file_name(&krate);
            let marked = if name == "green-core" {
                self.core_unsafe_module(&krate)
            } else {
                Vec::new()
            };
            for path in walk(&krate, &["rs"]) {
                let Some(text) = self.read(&path) else {
                    continue;
                };
                let code = strip_comments_and_strings(&text);
                let rel = path.strip_prefix(&krate).unwrap_or(&path).to_path_buf();
                self.module_doc(&path, &text);
                self.safety_comments(&path, &text, &code);
                self.ignore_reasons(&path, &code);
                if rel.starts_with("src") {
                    self.no_placeholders(&path, &code);
                }
                if !unsafe_allowed(&name, &rel, &path, &marked) {
                    for (i, line) in code.lines().enumerate() {
                        if find_word(line, "unsafe").is_some() {
                            let why = unsafe_rule(&name);
                            self.report(
                                &path,
                                i + 1,
                                format!("`unsafe` is not allowed here: {why}"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// The file's first non-blank line is a `//!` doc.
    fn module_doc(&mut self, path: &Path, text: &str) {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.trim_start().starts_with("//!") {
            self.report(path, 1, "file does not start with a `//!` module doc");
        }
    }

    /// `unsafe {` and `unreachable_unchecked` need a `// SAFETY:` above.
    fn safety_comments(&mut self, path: &Path, text: &str, code: &str) {
        let orig: Vec<&str> = text.lines().collect();
        for (i, line) in code.lines().enumerate() {
            let block = find_word(line, "unsafe")
                .is_some_and(|at| line[at + 6..].trim_start().starts_with('{'));
            if block && !has_safety_comment(&orig, i) {
                self.report(
                    path,
                    i + 1,
                    "`unsafe {` without a `// SAFETY:` comment in the 3 lines above",
                );
            }
            if find_word(line, "unreachable_unchecked").is_some() && !has_safety_comment(&orig, i) {
                self.report(
                    path,
                    i + 1,
                    "`unreachable_unchecked` without a `// SAFETY:` proof above it",
                );
            }
        }
    }

    /// `#[ignore]` must say why.
    fn ignore_reasons(&mut self, path: &Path, code: &str) {
        // Built from parts so this file does not match itself.
        let bare = concat!("#[", "ignore", "]");
        for (i, line) in code.lines().enumerate() {
            if line.replace(' ', "").contains(bare) {
                self.report(
                    path,
                    i + 1,
                    "bare `#[ignore]`: give the reason, `#[ignore = \"why\"]`",
                );
            }
        }
    }

    /// No `todo!` or `unimplemented!` in library code.
    fn no_placeholders(&mut self, path: &Path, code: &str) {
        for (i, line) in code.lines().enumerate() {
            for mac in ["todo", "unimplemented"] {
                if let Some(at) = find_word(line, mac) {
                    if line[at + mac.len()..].trim_start().starts_with('!') {
                        self.report(path, i + 1, format!("`{mac}!` in crate source"));
                    }
                }
            }
        }
    }

    /// Files of green-core's one `#[allow(unsafe_code)]` module: its file and
    /// its directory of submodules. Reports a second marking.
    fn core_unsafe_module(&mut self, krate: &Path) -> Vec<PathBuf> {
        let mut marked: Vec<(PathBuf, usize, Vec<PathBuf>)> = Vec::new();
        for path in walk(&krate.join("src"), &["rs"]) {
            let Some(text) = self.read(&path) else {
                continue;
            };
            let code = strip_comments_and_strings(&text);
            let lines: Vec<&str> = code.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let compact = line.replace(' ', "");
                if compact.contains("#![allow(unsafe_code)]") {
                    // An inner attribute marks the module of this very file.
                    marked.push((path.clone(), i + 1, vec![path.clone(), module_base(&path)]));
                } else if compact.contains("#[allow(unsafe_code)]") {
                    let decl = lines[i + 1..]
                        .iter()
                        .map(|l| l.trim())
                        .find(|l| !l.is_empty() && !l.starts_with("#["));
                    match decl.and_then(module_name) {
                        Some((_, true)) => marked.push((path.clone(), i + 1, vec![path.clone()])),
                        Some((name, false)) => {
                            let base = module_base(&path).join(name);
                            marked.push((path.clone(), i + 1, vec![base.with_extension("rs"), base]));
                        }
                        None => self.report(
                            &path,
                            i + 1,
                            "`#[allow(unsafe_code)]` in green-core may mark only a `mod` declaration",
                        ),
                    }
                }
            }
        }
        for (path, line, _) in marked.iter().skip(1) {
            self.report(
                path,
                *line,
                "green-core may have at most one `#[allow(unsafe_code)]` module",
            );
        }
        marked
            .into_iter()
            .next()
            .map(|(_, _, allowed)| allowed)
            .unwrap_or_default()
    }

    // ===== whitespace =====

    fn whitespace(&mut self) {
        let root = self.root.clone();
        for path in walk(&root, &["rs", "toml", "md"]) {
            let Some(text) = self.read(&path) else {
                continue;
            };
            for (i, line) in text.split('\n').enumerate() {
                if line.ends_with([' ', '\t', '\r']) {
                    self.report(&path, i + 1, "trailing whitespace");
                }
            }
        }
    }

    // ===== dependency arrows =====

    fn dependencies(&mut self) {
        let root = self.root.clone();
        let mut manifests = vec![(String::from("green"), root.join("Cargo.toml"))];
        manifests.push((String::from("xtask"), root.join("xtask").join("Cargo.toml")));
        for krate in crate_dirs(&root) {
            manifests.push((file_name(&krate), krate.join("Cargo.toml")));
        }
        let workspace: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
        for (krate, manifest) in manifests {
            let Some(text) = self.read(&manifest) else {
                continue;
            };
            let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == krate) else {
                self.report(
                    &manifest,
                    1,
                    format!("no layering rule for crate `{krate}`: add it to LAYERS in xtask/src/tidy.rs"),
                );
                continue;
            };
            for dep in dependencies(&text) {
                if !workspace.contains(&dep.name.as_str()) {
                    continue;
                }
                if dep.table == "workspace.dependencies" {
                    if !(dep.spec.contains("path") && dep.spec.contains("version")) {
                        self.report(
                            &manifest,
                            dep.line,
                            format!(
                                "`{}` in [workspace.dependencies] needs both `path` and `version`",
                                dep.name
                            ),
                        );
                    }
                    continue;
                }
                if !allowed.contains(&dep.name.as_str()) {
                    self.report(
                        &manifest,
                        dep.line,
                        format!(
                            "`{krate}` must not depend on `{}` (DESIGN.md §1; allowed: {})",
                            dep.name,
                            if allowed.is_empty() {
                                "no workspace crate".to_owned()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                    );
                } else if !dep.spec.contains("workspace") {
                    self.report(
                        &manifest,
                        dep.line,
                        format!("`{}` should be `{}.workspace = true` (one path and version, in the root)", dep.name, dep.name),
                    );
                }
            }
        }
    }
}

/// Why `unsafe` is refused in `krate`.
fn unsafe_rule(krate: &str) -> String {
    match krate {
        "green-pool" => "green-pool is #![forbid(unsafe_code)]".to_owned(),
        "green-ctx" => format!(
            "green-ctx keeps unsafe in src/{{{}}}.rs and tests",
            CTX_UNSAFE_MODULES.join(",")
        ),
        "green-loop" => "green-loop keeps unsafe under src/backend/, src/op/ and tests".to_owned(),
        "green-core" => {
            "green-core keeps unsafe in its one #[allow(unsafe_code)] module".to_owned()
        }
        _ => format!("crate `{krate}` has no unsafe rule in xtask/src/tidy.rs"),
    }
}

/// Whether `unsafe` may appear in file `rel` (relative to the crate) of `krate`.
fn unsafe_allowed(krate: &str, rel: &Path, path: &Path, core_marked: &[PathBuf]) -> bool {
    let in_tests = rel.starts_with("tests") || rel.starts_with("src/tests");
    match krate {
        "green-pool" => false,
        "green-ctx" => {
            in_tests
                || CTX_UNSAFE_MODULES.iter().any(|m| {
                    rel == Path::new("src").join(format!("{m}.rs"))
                        || rel.starts_with(Path::new("src").join(m))
                })
        }
        "green-loop" => {
            in_tests
                || LOOP_UNSAFE_DIRS
                    .iter()
                    .any(|d| rel.starts_with(Path::new("src").join(d)))
        }
        // Integration tests are separate crates, outside `#![deny(unsafe_code)]`.
        "green-core" => {
            rel.starts_with("tests") || core_marked.iter().any(|m| path == m || path.starts_with(m))
        }
        _ => false,
    }
}

/// `mod name;` / `pub(crate) mod name {` → `(name, inline)`.
fn module_name(decl: &str) -> Option<(String, bool)> {
    let rest = decl.split_once("mod ")?.1;
    let prefix = decl.split_once("mod ")?.0.trim();
    if !(prefix.is_empty() || prefix.starts_with("pub")) {
        return None;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.is_empty() {
        return None;
    }
    Some((name, rest.contains('{')))
}

/// The directory holding the submodules of the module defined in `file`.
fn module_base(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "main" | "mod") => dir,
        Some(stem) => dir.join(stem),
        None => dir,
    }
}

/// A `// SAFETY:` comment on line `i`, in the 3 lines above it, or anywhere in
/// the run of comment lines directly above it.
fn has_safety_comment(lines: &[&str], i: usize) -> bool {
    let window = lines[i.saturating_sub(3)..=i.min(lines.len().saturating_sub(1))].iter();
    if window.clone().any(|l| l.contains("SAFETY:")) {
        return true;
    }
    lines[..i]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("//") || l.trim_start().starts_with("#["))
        .any(|l| l.contains("SAFETY:"))
}

/// The byte offset of `word` in `line` as a whole identifier.
fn find_word(line: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = line[from..].find(word) {
        let start = from + at;
        let end = start + word.len();
        let before = line[..start].chars().next_back();
        let after = line[end..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(start);
        }
        from = end;
    }
    None
}

/// `text` with comments and the contents of string and char literals replaced
/// by spaces; line breaks are kept, so line numbers still match.
pub(crate) fn strip_comments_and_strings(text: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Code,
        LineComment,
        BlockComment(u32),
        Str,
        RawStr(usize),
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut state = State::Code;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match state {
            State::Code => {
                let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
                if c == '/' && next == Some('/') {
                    state = State::LineComment;
                    blank(&mut out, c);
                } else if c == '/' && next == Some('*') {
                    state = State::BlockComment(1);
                    out.push_str("  ");
                    i += 2;
                    continue;
                } else if c == '"' {
                    state = State::Str;
                    out.push('"');
                } else if c == 'r' && !prev_ident && matches!(next, Some('"' | '#')) {
                    let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                    if chars.get(i + 1 + hashes) == Some(&'"') {
                        state = State::RawStr(hashes);
                        out.push('r');
                        out.push_str(&" ".repeat(hashes));
                        out.push('"');
                        i += 2 + hashes;
                        continue;
                    }
                    out.push(c);
                } else if c == '\'' {
                    // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                    if next == Some('\\') {
                        let close = chars[i + 2..]
                            .iter()
                            .position(|&q| q == '\'')
                            .map(|p| i + 2 + p);
                        if let Some(close) = close {
                            out.push('\'');
                            for _ in i + 1..close {
                                out.push(' ');
                            }
                            out.push('\'');
                            i = close + 1;
                            continue;
                        }
                    } else if chars.get(i + 2) == Some(&'\'') {
                        out.push_str("' '");
                        i += 3;
                        continue;
                    }
                    out.push(c);
                } else {
                    out.push(c);
                }
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Code;
                }
                blank(&mut out, c);
            }
            State::BlockComment(depth) => {
                if c == '*' && next == Some('/') {
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::BlockComment(depth - 1)
                    };
                    out.push_str("  ");
                    i += 2;
                    continue;
                } else if c == '/' && next == Some('*') {
                    state = State::BlockComment(depth + 1);
                    out.push_str("  ");
                    i += 2;
                    continue;
                }
                blank(&mut out, c);
            }
            State::Str => {
                if c == '\\' {
                    blank(&mut out, c);
                    if let Some(n) = next {
                        blank(&mut out, n);
                    }
                    i += 2;
                    continue;
                } else if c == '"' {
                    state = State::Code;
                    out.push('"');
                } else {
                    blank(&mut out, c);
                }
            }
            State::RawStr(hashes) => {
                if c == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    state = State::Code;
                    out.push('"');
                    out.push_str(&" ".repeat(hashes));
                    i += 1 + hashes;
                    continue;
                }
                blank(&mut out, c);
            }
        }
        i += 1;
    }
    out
}

/// A dependency entry of a manifest.
#[derive(Debug)]
struct Dep {
    /// The table it sits in: `dependencies`, `dev-dependencies`,
    /// `target.'cfg(..)'.dependencies`, `workspace.dependencies`, ...
    table: String,
    name: String,
    /// The entry's text (its value, or the whole `[dependencies.name]` table).
    spec: String,
    line: usize,
}

/// The dependency entries of a manifest, by a line-based reading of TOML
/// that covers the forms Cargo manifests use: `name = ..`, `name.key = ..`
/// and `[table.name]` sub-tables.
fn dependencies(text: &str) -> Vec<Dep> {
    let mut deps: Vec<Dep> = Vec::new();
    let mut table = String::new();
    let mut sub_table: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            let header = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            sub_table = None;
            if let Some((parent, name)) = header.rsplit_once('.') {
                if is_dep_table(parent) {
                    deps.push(Dep {
                        table: parent.to_owned(),
                        name: name.trim_matches('"').to_owned(),
                        spec: String::new(),
                        line: i + 1,
                    });
                    sub_table = Some(deps.len() - 1);
                    table = String::new();
                    continue;
                }
            }
            table = header;
            continue;
        }
        if let Some(idx) = sub_table {
            deps[idx].spec.push_str(line);
            deps[idx].spec.push('\n');
            continue;
        }
        if !is_dep_table(&table) {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let name = key
                .split('.')
                .next()
                .unwrap_or(key)
                .trim_matches('"')
                .to_owned();
            deps.push(Dep {
                table: table.clone(),
                name,
                spec: format!("{key}={value}"),
                line: i + 1,
            });
        }
    }
    deps
}

fn is_dep_table(table: &str) -> bool {
    table.ends_with("dependencies")
}

/// `crates/*` directories that hold a manifest, sorted.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Files under `dir` with one of `exts`, skipping `target/` and hidden
/// directories other than `.cargo`, sorted.
fn walk(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if name != "target" && (!name.starts_with('.') || name == ".cargo") {
                    stack.push(path);
                }
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_blanks_comments_and_strings() {
        let src = "let s = \"unsafe { }\"; // unsafe {\nlet c = '\"'; unsafe { x } /* unsafe */ r#\"todo!()\"#;\n";
        let code = strip_comments_and_strings(src);
        assert_eq!(code.lines().count(), 2);
        assert!(find_word(code.lines().next().unwrap(), "unsafe").is_none());
        let second = code.lines().nth(1).unwrap();
        assert_eq!(second.matches("unsafe").count(), 1);
        assert!(!second.contains("todo"));
        let life = strip_comments_and_strings("fn f<'a>(x: &'a str) -> char { 'x' }");
        assert!(life.contains("'a"));
    }

    #[test]
    fn safety_comment_placement() {
        let lines = [
            "// SAFETY: fine",
            "let a = 1;",
            "let b = 2;",
            "unsafe { x }",
        ];
        assert!(has_safety_comment(&lines, 3));
        let lines = ["// SAFETY: too far", "a;", "b;", "c;", "unsafe { x }"];
        assert!(!has_safety_comment(&lines, 4));
        let lines = [
            "// SAFETY: a long",
            "// proof",
            "// over",
            "// many",
            "// lines",
            "unsafe { x }",
        ];
        assert!(has_safety_comment(&lines, 5));
    }

    #[test]
    fn words_and_modules() {
        assert!(find_word("#![forbid(unsafe_code)]", "unsafe").is_none());
        assert!(find_word("pub unsafe fn f()", "unsafe").is_some());
        assert_eq!(
            module_name("pub(crate) mod sys;"),
            Some(("sys".into(), false))
        );
        assert_eq!(module_name("mod sys {"), Some(("sys".into(), true)));
        assert_eq!(module_name("fn f() {"), None);
        assert_eq!(module_base(Path::new("src/lib.rs")), Path::new("src"));
        assert_eq!(module_base(Path::new("src/hub.rs")), Path::new("src/hub"));
    }

    #[test]
    fn finds_violations_in_a_fake_tree() {
        let root = std::env::temp_dir().join(format!("green-tidy-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("Cargo.toml", "[package]\nname = \"green\"\n");
        write("xtask/Cargo.toml", "[package]\nname = \"xtask\"\n");
        write(
            "crates/green-pool/Cargo.toml",
            "[dependencies]\ngreen-loop.workspace = true\n",
        );
        write(
            "crates/green-pool/src/lib.rs",
            "//! Pool.\nfn f() { unsafe { g() } }\n#[ignore]\nfn t() { todo!() }  \n",
        );
        write(
            "crates/green-ctx/Cargo.toml",
            "[dependencies]\nlibc = \"0.2\"\n",
        );
        write(
            "crates/green-ctx/src/lib.rs",
            "// no module doc\n// SAFETY: fine\nunsafe { a() }\n",
        );
        write(
            "crates/green-ctx/src/fiber.rs",
            "//! Fiber.\n// SAFETY: fine\nfn f() { unsafe { a() } }\n",
        );
        write("crates/green-core/Cargo.toml", "[dependencies]\n");
        write(
            "crates/green-core/src/lib.rs",
            "//! Core.\n#[allow(unsafe_code)]\nmod sys;\nfn f() {}\n",
        );
        write(
            "crates/green-core/src/sys.rs",
            "//! Sys.\n// SAFETY: ok\nunsafe { b() }\n",
        );
        write(
            "crates/green-core/src/hub.rs",
            "//! Hub.\n// SAFETY: ok\nunsafe { c() }\n",
        );

        let found: Vec<String> = check(&root).iter().map(ToString::to_string).collect();
        let _ = fs::remove_dir_all(&root);
        let has = |needle: &str| found.iter().any(|v| v.contains(needle));
        assert!(
            has("crates/green-pool/src/lib.rs:2: `unsafe {` without"),
            "{found:#?}"
        );
        assert!(
            has("crates/green-pool/src/lib.rs:2: `unsafe` is not allowed"),
            "{found:#?}"
        );
        assert!(
            has("crates/green-pool/src/lib.rs:3: bare `#[ignore]`"),
            "{found:#?}"
        );
        assert!(has("crates/green-pool/src/lib.rs:4: `todo!`"), "{found:#?}");
        assert!(
            has("crates/green-pool/src/lib.rs:4: trailing whitespace"),
            "{found:#?}"
        );
        assert!(has(
            "crates/green-pool/Cargo.toml:2: `green-pool` must not depend on `green-loop`"
        ));
        assert!(
            has("crates/green-ctx/src/lib.rs:1: file does not start"),
            "{found:#?}"
        );
        assert!(
            has("crates/green-ctx/src/lib.rs:3: `unsafe` is not allowed"),
            "{found:#?}"
        );
        assert!(!has("crates/green-ctx/src/fiber.rs"), "{found:#?}");
        assert!(!has("crates/green-core/src/sys.rs"), "{found:#?}");
        assert!(
            has("crates/green-core/src/hub.rs:3: `unsafe` is not allowed"),
            "{found:#?}"
        );
        assert_eq!(found.len(), 9, "{found:#?}");
    }

    #[test]
    fn manifest_dependencies() {
        let toml = "[package]\nname = \"x\"\n[dependencies]\ngreen-ctx.workspace = true\nlibc = \"0.2\"\n\
                    [dev-dependencies.green-core]\npath = \"../green-core\"\n[workspace.dependencies]\n\
                    green-loop = { path = \"crates/green-loop\", version = \"0.1.0\" }\n";
        let deps = dependencies(toml);
        let names: Vec<(&str, &str)> = deps
            .iter()
            .map(|d| (d.table.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("dependencies", "green-ctx"),
                ("dependencies", "libc"),
                ("dev-dependencies", "green-core"),
                ("workspace.dependencies", "green-loop")
            ]
        );
        assert!(deps[2].spec.contains("path"));
    }
}

/// The tidy check over the real tree: `cargo test -p xtask` runs it.
#[test]
fn tidy() {
    let violations = check(&project_root());
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "tidy found {} violation(s):\n{}",
        report.len(),
        report.join("\n")
    );
}
