//! The core's modules form layers without cycles, in the order `src/lib.rs` lists them under
//! "Layout": each module's product code (outside its `#[cfg(test)] mod tests`) refers only to
//! modules listed before it, so `error` and `secret`, listed first, use nothing of the crate. A
//! new `use crate::…` that points upwards fails here, naming the module and what it used.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module names of lib.rs's Layout list, in order: `//! - [`name`]: …` or `//! - `name`: …`.
fn layout() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut in_layout = false;
    let mut modules = Vec::new();
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            break;
        };
        let doc = doc.trim();
        if doc == "# Layout" {
            in_layout = true;
        } else if in_layout {
            if let Some(item) = doc.strip_prefix("- ") {
                let name: String = item
                    .trim_start_matches(['[', '`'])
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                modules.push(name);
            }
        }
    }
    modules
}

/// The modules lib.rs declares (`mod x;`, `pub mod x;`).
fn declared() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub ").unwrap_or(line);
            Some(rest.strip_prefix("mod ")?.trim_end_matches(';').to_string())
        })
        .collect()
}

/// The files of module `name`: `src/name.rs` and everything under `src/name/`.
fn files_of(name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src().join(format!("{name}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![src().join(name)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level modules named after `crate::` in `text`, including `crate::{a, b::C}`.
fn crate_references(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the first level of the braces.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        found.push(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found
}

/// A file's product code: before its unit tests, without comment lines.
fn product_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_module_uses_only_the_modules_listed_before_it() {
    let layout = layout();
    let mut declared = declared();
    let mut listed = layout.clone();
    declared.sort();
    listed.sort();
    assert_eq!(
        listed, declared,
        "lib.rs's Layout must list every module once"
    );

    let mut upward = Vec::new();
    for (position, module) in layout.iter().enumerate() {
        let files = files_of(module);
        assert!(!files.is_empty(), "no file for module {module}");
        for file in files {
            for used in crate_references(&product_code(&file)) {
                let below = layout[..position].contains(&used);
                if used != *module && !below {
                    upward.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules using a module listed after them in lib.rs's Layout (a cycle or a wrong order):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_reference_scanner_reads_both_forms() {
    assert_eq!(
        crate_references(
            "use crate::error::{Error, Result};\nuse crate::{config::Config, secret};"
        ),
        ["error", "config", "secret"]
    );
    assert_eq!(
        layout()[..2],
        ["error", "secret"],
        "error and secret are the leaves"
    );
}
