//! The layering rule of DESIGN §5, checked on the source: a module may import only modules on its
//! own layer or below; features reach each other only through their `mod.rs` and without loops;
//! nobody outside a feature reads its `store` (the `users` table's store, below the features, is
//! theirs to use).
//!
//! It reads `src/**/*.rs`, collects every `crate::…` path (in `use` items and inline), and
//! classifies each file by its top-level module — except `routes.rs` files (and files under a
//! `routes/` folder), which are on the features' layer whatever folder they live in. `#[cfg(test)]`
//! modules at the end of a file are not part of the rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// DESIGN §5, lowest first. Every top-level module must be listed.
const LAYERS: &[(u8, &[&str])] = &[
    (1, &["config", "clock", "crypto", "error", "telemetry"]),
    (2, &["db", "http", "bus"]),
    (3, &["auth", "users", "audit"]),
    (4, &["state"]),
    (
        5,
        &[
            "sessions",
            "api_keys",
            "accounts",
            "rate_limit",
            "webhooks",
            "identity",
            "conversations",
            "privacy",
            "live",
            "mfa",
            "email",
            "operations",
        ],
    ),
    (6, &["web", "console"]),
    (7, &["app"]),
    (8, &["serve"]),
    (9, &["cli"]),
    (10, &["main", "lib"]),
];

const FEATURES: u8 = 5;

fn layer_of_module(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(_, names)| names.contains(&module))
        .map(|(layer, _)| *layer)
}

/// A source file: its top-level module, whether it is a routes file, and its text without the
/// trailing test module.
struct SourceFile {
    path: PathBuf,
    module: String,
    routes: bool,
    text: String,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    collect(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().to_path_buf();
            let parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let module = parts[0].clone();
            let routes = parts.iter().skip(1).any(|p| p == "routes");
            let raw = std::fs::read_to_string(&path).unwrap();
            SourceFile {
                path: relative,
                module,
                routes,
                text: without_tests(&raw),
            }
        })
        .collect()
}

/// The text before a `#[cfg(test)]` module, with comments removed.
fn without_tests(raw: &str) -> String {
    let mut out = String::new();
    let mut lines = raw.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every `crate::a::b…` path in `text`, as its segments; `crate::{a::b, c}` groups are expanded
/// one level.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("crate::") {
        let start = at + found;
        at = start + "crate::".len();
        // `foo_crate::` is not ours.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        if text[at..].starts_with('{') {
            let mut depth = 0;
            let mut end = at;
            for (i, c) in text[at..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = at + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &text[at + 1..end];
            let mut depth = 0;
            let mut item = String::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        paths.push(segments(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            paths.push(segments(&item));
        } else {
            paths.push(segments(&text[at..]));
        }
    }
    paths.retain(|p| !p.is_empty());
    paths
}

fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.trim().split("::") {
        let ident: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        let whole = ident.len() == part.trim_end().len();
        out.push(ident);
        if !whole {
            break;
        }
    }
    out
}

/// Submodules of a top-level module (folders' `.rs` files and subfolders).
fn submodules(module: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(module);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().file_stem().unwrap().to_string_lossy().to_string())
        .filter(|name| name != "mod")
        .collect()
}

#[derive(Debug)]
struct Import {
    file: PathBuf,
    from: String,
    from_layer: u8,
    to: String,
    to_layer: u8,
    path: String,
}

fn imports() -> (Vec<Import>, Vec<String>) {
    let mut found = Vec::new();
    let mut unclassified = Vec::new();
    for file in sources() {
        let Some(module_layer) = layer_of_module(&file.module) else {
            unclassified.push(format!(
                "{}: module `{}` has no layer in DESIGN §5 (add it to LAYERS)",
                file.path.display(),
                file.module
            ));
            continue;
        };
        let from_layer = if file.routes {
            module_layer.max(FEATURES)
        } else {
            module_layer
        };
        for path in crate_paths(&file.text) {
            let to = path[0].clone();
            let Some(target_layer) = layer_of_module(&to) else {
                // Macros and items of lib.rs (none today) would land here.
                unclassified.push(format!(
                    "{}: `crate::{}` names no classified module",
                    file.path.display(),
                    path.join("::")
                ));
                continue;
            };
            let to_layer = if path.get(1).is_some_and(|s| s == "routes") {
                target_layer.max(FEATURES)
            } else {
                target_layer
            };
            found.push(Import {
                file: file.path.clone(),
                from: file.module.clone(),
                from_layer,
                to,
                to_layer,
                path: path.join("::"),
            });
        }
    }
    (found, unclassified)
}

/// Every violation of the rule, one line each.
fn violations() -> Vec<String> {
    let (imports, mut problems) = imports();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut subs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in &imports {
        let pointer = format!(
            "{}: `crate::{}` ({} on layer {} → {} on layer {})",
            import.file.display(),
            import.path,
            import.from,
            import.from_layer,
            import.to,
            import.to_layer
        );
        if import.to_layer > import.from_layer {
            problems.push(format!("points up: {pointer}"));
            continue;
        }
        if import.from == import.to {
            continue;
        }
        let segments: Vec<&str> = import.path.split("::").collect();
        let inner = segments.get(1).copied().unwrap_or_default();
        let target_subs = subs
            .entry(import.to.clone())
            .or_insert_with(|| submodules(&import.to));
        if inner == "store" && import.to_layer == FEATURES {
            problems.push(format!("reads another feature's store: {pointer}"));
        } else if import.from_layer == FEATURES
            && import.to_layer == FEATURES
            && target_subs.contains(inner)
            && inner != "routes"
        {
            problems.push(format!(
                "reaches into another feature past its mod.rs: {pointer}"
            ));
        }
        if import.from_layer == import.to_layer {
            edges
                .entry(import.from.clone())
                .or_default()
                .insert(import.to.clone());
        }
    }
    problems.extend(cycles(&edges));
    problems.sort();
    problems.dedup();
    problems
}

/// Import loops between top-level modules (which can only form within one layer).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    // Report each loop once, from its smallest module.
                    if path.iter().all(|m| m >= start) {
                        found.push(format!("import loop: {}", cycle.join(" → ")));
                    }
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn imports_point_down_the_layers_of_design_section_5() {
    let problems = violations();
    assert!(
        problems.is_empty(),
        "{} violation(s) of DESIGN §5:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_group_imports_and_inline_paths() {
    let text = "use crate::{http::error::AppError, audit::{Action, Event}};\n\
                fn f() { crate::sessions::start(); other_crate::x(); }\n";
    let paths: Vec<String> = crate_paths(text).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        vec!["http::error::AppError", "audit", "sessions::start"]
    );
    assert_eq!(
        without_tests(
            "use crate::a;\n// use crate::b;\n#[cfg(test)]\nmod tests {\nuse crate::c;\n}\n"
        ),
        "use crate::a;\n"
    );
}
