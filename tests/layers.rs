#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The source tree reads one way: checks over `src/` that fail when
//! - a top-level module imports a module on its own layer or above it (the layers are the list
//!   under "## Layers" in `ARCHITECTURE.md`, so the document and the code cannot drift apart),
//! - two files inside one module import each other, directly or through others,
//! - SQL appears outside `src/store/`.
//!
//! Test code (`#[cfg(test)]` items, `tests.rs` files) and comments are not counted. A reference is
//! any path `crate::a::b`, `super::x`, `self::x`, or `x::` for a child module `x` declared in the
//! file; `mod` declarations and `pub use` re-exports are not dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/` with its module path (`src/a/b.rs` -> `a::b`, `src/a/mod.rs` and
/// `src/a.rs` -> `a`), test-only files left out.
fn sources() -> Vec<(Vec<String>, PathBuf, String)> {
    let mut out = Vec::new();
    let src = root().join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let last = parts.pop().unwrap();
            let stem = last.trim_end_matches(".rs");
            if stem != "mod" {
                parts.push(stem.to_owned());
            }
            if parts.len() == 1 && (parts[0] == "main" || parts[0] == "lib") {
                continue;
            }
            let text = code_only(&std::fs::read_to_string(&path).unwrap());
            out.push((parts, path, text));
        }
    }
    out.sort();
    out
}

/// The text with comments, string contents kept, and `#[cfg(test)]` items removed.
fn code_only(text: &str) -> String {
    let without_comments: String = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") { "" } else { line }
        })
        .collect::<Vec<_>>()
        .join("\n");
    strip_cfg_test(&without_comments)
}

/// Removes each `#[cfg(test)]` item: up to its `;` or its matching closing brace.
fn strip_cfg_test(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let semi = after.find(';');
        let brace = after.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The statements that are not dependencies: `mod x;` and `pub use ...;` re-exports.
fn without_declarations(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim_start();
        if !skipping && (t.starts_with("pub use ") || t.starts_with("pub(crate) use ")) {
            skipping = true;
        }
        if skipping {
            if t.contains(';') {
                skipping = false;
            }
            continue;
        }
        if (t.starts_with("mod ") || t.starts_with("pub mod ") || t.starts_with("pub(crate) mod ")) && t.ends_with(';')
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Child modules declared in a file (`mod x;`).
fn declared_children(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim();
            let t = t.strip_prefix("pub ").or_else(|| t.strip_prefix("pub(crate) ")).unwrap_or(t);
            t.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// Paths referenced in `text`, as segment lists starting at the crate root, resolved from the
/// module `at`. `use a::{b, c::d}` groups are expanded one level.
fn references(at: &[String], is_dir_module: bool, text: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let mut refs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let (segments, groups, end) = read_path(&chars, i);
        i = end.max(i + 1);
        if segments.len() < 2 && groups.is_empty() {
            continue;
        }
        let base: Option<Vec<String>> = match segments[0].as_str() {
            "crate" => Some(Vec::new()),
            "super" => {
                let mut p = at.to_vec();
                p.pop();
                Some(p)
            }
            "self" => Some(at.to_vec()),
            child if children.contains(child) => {
                let _ = is_dir_module;
                let mut p = at.to_vec();
                p.push(child.to_owned());
                refs.push(p.clone());
                None
            }
            _ => None,
        };
        let Some(base) = base else { continue };
        let mut path = base;
        let mut k = 1;
        while k < segments.len() && segments[k] == "super" {
            path.pop();
            k += 1;
        }
        path.extend(segments[k..].iter().cloned());
        if groups.is_empty() {
            refs.push(path);
        } else {
            for g in groups {
                let mut p = path.clone();
                p.extend(g);
                refs.push(p);
            }
        }
    }
    refs
}

/// Reads `a::b::c` (and a following `::{x, y::z}` group) from `start`.
fn read_path(chars: &[char], start: usize) -> (Vec<String>, Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let s = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        if s == i {
            break;
        }
        segments.push(chars[s..i].iter().collect::<String>());
        if i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
            if i < chars.len() && chars[i] == '{' {
                let close = chars[i..].iter().position(|c| *c == '}').map_or(chars.len(), |p| i + p);
                let inner: String = chars[i + 1..close].iter().collect();
                let groups = inner
                    .split(',')
                    .map(|part| part.trim().split(" as ").next().unwrap_or("").trim().to_owned())
                    .filter(|part| !part.is_empty() && part != "self")
                    .map(|part| part.split("::").map(str::to_owned).collect())
                    .collect();
                return (segments, groups, close + 1);
            }
            continue;
        }
        break;
    }
    (segments, Vec::new(), i)
}

/// The file module a path lands in: its longest prefix that is a file.
fn resolve<'a>(path: &[String], files: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (1..=path.len()).rev().find_map(|n| files.get(&path[..n].to_vec()))
}

fn layers() -> Vec<BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = doc.split("## Layers").nth(1).expect("ARCHITECTURE.md has a '## Layers' section");
    let mut layers = Vec::new();
    for line in section.lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let t = line.trim_start();
        let Some(dot) = t.find(". ") else { continue };
        if !t[..dot].chars().all(|c| c.is_ascii_digit()) || dot == 0 {
            continue;
        }
        let head = t[dot + 2..].split(':').next().unwrap_or("");
        let names: BTreeSet<String> =
            head.split(',').map(|n| n.trim().trim_matches('`').to_owned()).filter(|n| !n.is_empty()).collect();
        layers.push(names);
    }
    layers
}

#[test]
fn top_level_modules_only_import_lower_layers() {
    let layers = layers();
    assert!(layers.len() > 3, "the layer list in ARCHITECTURE.md was not found or is too short");
    let layer_of = |m: &str| layers.iter().position(|l| l.contains(m));
    let sources = sources();
    let modules: BTreeSet<String> = sources.iter().map(|(p, _, _)| p[0].clone()).collect();
    let listed: BTreeSet<String> = layers.iter().flatten().cloned().collect();
    assert_eq!(modules, listed, "every top-level module of src/ is listed in ARCHITECTURE.md's layers, and only those");
    let mut wrong = Vec::new();
    for (path, file, text) in &sources {
        let children = declared_children(text);
        let body = without_declarations(text);
        let from = &path[0];
        for r in references(path, file.ends_with("mod.rs"), &body, &children) {
            let Some(to) = r.first() else { continue };
            if to == from || !modules.contains(to) {
                continue;
            }
            if layer_of(to) >= layer_of(from) {
                wrong.push(format!("{} imports {to} (layer {:?} >= {:?})", rel(file), layer_of(to), layer_of(from)));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports that do not point down:\n{}", wrong.join("\n"));
}

#[test]
fn files_inside_a_module_do_not_import_each_other_in_a_loop() {
    let sources = sources();
    let files: BTreeSet<Vec<String>> = sources.iter().map(|(p, _, _)| p.clone()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, file, text) in &sources {
        let children = declared_children(text);
        let body = without_declarations(text);
        for r in references(path, file.ends_with("mod.rs"), &body, &children) {
            if let Some(target) = resolve(&r, &files) {
                if target != path && target[0] == path[0] {
                    edges.entry(path.clone()).or_default().insert(target.clone());
                }
            }
        }
    }
    let cycles = strongly_connected(&files, &edges);
    let shown: Vec<String> =
        cycles.iter().map(|c| c.iter().map(|p| p.join("::")).collect::<Vec<_>>().join(" <-> ")).collect();
    assert!(shown.is_empty(), "files that import each other in a loop:\n{}", shown.join("\n"));
}

#[test]
fn sql_lives_only_in_store() {
    const KEYWORDS: [&str; 9] =
        ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ", "CREATE ", "ALTER ", "LISTEN ", "NOTIFY "];
    const CALLS: [&str; 4] = ["sql_query(", "batch_execute(", "simple_query(", ".execute(\""];
    let mut found = Vec::new();
    for (path, file, text) in sources() {
        if path[0] == "store" || path[0] == "localpg" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let sql_string = line.match_indices('"').any(|(i, _)| {
                let after = line[i + 1..].trim_start();
                KEYWORDS.iter().any(|k| after.starts_with(k))
            });
            if sql_string || CALLS.iter().any(|c| line.contains(c)) {
                found.push(format!("{}:{}: {}", rel(&file), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside src/store/ (localpg only runs PostgreSQL's own tools):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    // A reference of each form, so a parser regression cannot pass every check vacuously.
    let text = "use crate::store::{Pool, records};\nuse super::x::Y;\nfn f() { child::go(); self::inner::z(); }\n";
    let children: BTreeSet<String> = ["child".to_owned()].into();
    let at = vec!["poller".to_owned(), "run".to_owned()];
    let refs = references(&at, false, text, &children);
    let has = |p: &[&str]| refs.iter().any(|r| r.iter().map(String::as_str).eq(p.iter().copied()));
    assert!(has(&["store", "Pool"]) && has(&["store", "records"]), "{refs:?}");
    assert!(has(&["poller", "x", "Y"]), "{refs:?}");
    assert!(has(&["poller", "run", "child"]), "{refs:?}");
    assert!(has(&["poller", "run", "inner", "z"]), "{refs:?}");
    let stripped = code_only("fn a() {}\n#[cfg(test)]\nmod tests { use crate::x; fn b() { {} } }\nfn c() {}\n");
    assert!(!stripped.contains("crate::x") && stripped.contains("fn c"), "{stripped}");
    assert!(!layers().is_empty());
}

fn rel(file: &Path) -> String {
    file.strip_prefix(root()).unwrap_or(file).display().to_string()
}

/// Tarjan's strongly connected components of more than one node.
fn strongly_connected(
    nodes: &BTreeSet<Vec<String>>,
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> Vec<Vec<Vec<String>>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(v: &'a Vec<String>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(v, &mut s);
        }
    }
    s.out
}
