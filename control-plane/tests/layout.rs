//! The control plane's layout, checked over its source: transports over domain modules over the
//! store, no import cycle between top-level modules, each wire's library only in its transport, and
//! every module placed in a layer, opened by a comment and named in the README's layout table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of its own layer or of a lower one.
const LAYERS: &[(&str, &[&str])] = &[
    ("shared", &["error", "ids", "time", "validate"]),
    ("store", &["store"]),
    (
        "domains",
        &[
            "approvals",
            "audit",
            "auth",
            "delivery",
            "discovery",
            "filters",
            "keys",
            "oauth",
            "policies",
            "reports",
            "tenants",
            "tokens",
        ],
    ),
    ("transports", &["http", "grpc"]),
    ("entry", &["config"]),
];

/// Libraries that speak one wire, and the only modules that may name them.
const WIRES: &[(&str, &[&str])] = &[
    ("axum", &["http"]),
    ("tower_http", &["http"]),
    ("tonic", &["grpc"]),
    // The filters' state and audit batches are FilterSync's messages.
    ("intentgate_proto", &["grpc", "filters"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file except the crate root, the binary and the benchmark binaries.
fn module_files() -> Vec<(Vec<String>, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.first().is_some_and(|p| p == "bin") || parts == ["lib"] || parts == ["main"] {
                return None;
            }
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            Some((parts, path))
        })
        .collect()
}

/// The source with comments, string and character literals blanked out, so that only code is read.
fn code_of(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize, s: &str| source.get(i..).is_some_and(|rest| rest.starts_with(s));
    while i < bytes.len() {
        if at(i, "//") {
            i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if at(i, "/*") {
            i = source[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2);
        } else if let Some(hashes) = raw_string_opening(&source[i..]) {
            let opening = source[i..].find('"').unwrap() + 1;
            let closing = format!("\"{}", "#".repeat(hashes));
            i = source[i + opening..]
                .find(&closing)
                .map_or(bytes.len(), |n| i + opening + n + closing.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if let Some(len) = char_literal(&source[i..]) {
            i += len;
            out.push_str("' '");
        } else {
            let c = source[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`…: the number of `#`.
fn raw_string_opening(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('b').unwrap_or(text).strip_prefix('r')?;
    let hashes = rest.bytes().take_while(|b| *b == b'#').count();
    rest[hashes..].starts_with('"').then_some(hashes)
}

/// The length of a character literal at the start of `text` (not a lifetime).
fn char_literal(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('b').unwrap_or(text).strip_prefix('\'')?;
    let prefix = text.len() - rest.len();
    if let Some(escaped) = rest.strip_prefix('\\') {
        let end = escaped.find('\'')?;
        return Some(prefix + 1 + end + 1);
    }
    let c = rest.chars().next()?;
    rest[c.len_utf8()..]
        .starts_with('\'')
        .then(|| prefix + c.len_utf8() + 1)
}

/// The first identifiers of the paths `text` starts with: `x::…` or `{x, y::…}`.
fn heads(text: &str) -> Vec<String> {
    let ident = |s: &str| -> Option<String> {
        let s = s.trim_start();
        let len = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (len > 0).then(|| s[..len].to_owned())
    };
    let Some(group) = text.strip_prefix('{') else {
        return ident(text).into_iter().collect();
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.extend(ident(&item));
                item.clear();
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            item.push(c);
        }
    }
    names.extend(ident(&item));
    names
}

/// Which top-level modules each top-level module uses (`crate::x`, and `super::` out of itself).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = module_files();
    let tops: BTreeSet<String> = files.iter().map(|(p, _)| p[0].clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (parts, path) in &files {
        let top = &parts[0];
        let code = code_of(&std::fs::read_to_string(path).unwrap());
        let uses = graph.entry(top.clone()).or_default();
        let starts_word = |at: usize| {
            code[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '$'))
        };
        for (at, _) in code.match_indices("crate::") {
            if starts_word(at) {
                uses.extend(heads(&code[at + "crate::".len()..]));
            }
        }
        for (at, _) in code.match_indices("super::") {
            if !starts_word(at) || code[..at].ends_with("super::") {
                continue;
            }
            let mut after = &code[at..];
            let mut levels = 0;
            while let Some(next) = after.strip_prefix("super::") {
                after = next;
                levels += 1;
            }
            // `super` of this file's module leaves the top module only when it climbs past it.
            if levels >= parts.len() {
                uses.extend(heads(after));
            }
        }
        uses.retain(|name| name != top && tops.contains(name));
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_sits_in_a_layer_and_uses_only_its_own_or_lower_ones() {
    for (module, uses) in graph() {
        let layer = layer_of(&module).unwrap_or_else(|| {
            panic!("module `{module}` is in no layer: add it to LAYERS here and to the README's layout table")
        });
        for used in uses {
            let used_layer = layer_of(&used).unwrap();
            assert!(
                used_layer <= layer,
                "`{module}` ({}) uses `{used}` ({}), a layer above it",
                LAYERS[layer].0,
                LAYERS[used_layer].0
            );
        }
    }
}

#[test]
fn no_top_level_modules_import_each_other_in_a_cycle() {
    let graph = graph();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|m| *m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module);
            panic!("import cycle: {}", cycle.join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for used in graph.get(module).into_iter().flatten() {
            visit(used, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    assert!(done.len() >= 15, "the source was not read: {done:?}");
}

#[test]
fn each_wire_library_is_named_only_by_its_transport() {
    for (parts, path) in module_files() {
        let code = code_of(&std::fs::read_to_string(&path).unwrap());
        for (library, allowed) in WIRES {
            let named = code.match_indices(&format!("{library}::")).any(|(at, _)| {
                code[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            });
            assert!(
                !named || allowed.contains(&parts[0].as_str()),
                "{} names `{library}`, which only {allowed:?} may",
                path.display()
            );
        }
    }
}

#[test]
fn every_module_opens_with_what_it_is_and_the_readme_names_it() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for (parts, path) in module_files() {
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.starts_with("//!"),
            "{} does not open with a `//!` comment saying what it is",
            path.display()
        );
        if parts.len() == 1 {
            let name = &parts[0];
            let folder = format!("| `{name}/` |");
            let file = format!("| `{name}.rs` |");
            assert!(
                readme.contains(&folder) || readme.contains(&file),
                "README's control plane layout table has no row for `{name}`"
            );
        }
    }
}

#[test]
fn the_reader_sees_code_only() {
    let code = code_of(
        "use crate::a; // crate::b\n/* crate::c */ let s = \"crate::d\"; let r = r#\"crate::e\"#;\n\
         let c = '\"'; fn f<'a>(x: &'a str) { super::super::g::h(); crate::{i, j::{k}, l}; }",
    );
    assert!(code.contains("crate::a"));
    for hidden in ["crate::b", "crate::c", "crate::d", "crate::e"] {
        assert!(!code.contains(hidden), "{hidden}: {code}");
    }
    assert!(code.contains("fn f<'a>(x: &'a str)"));
    assert_eq!(heads("{i, j::{k}, l};"), ["i", "j", "l"]);
    assert_eq!(heads("x::y"), ["x"]);
}
