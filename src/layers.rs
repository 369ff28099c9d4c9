//! The layering rule, checked: imports point one way only. A module may use
//! modules of lower layers, never of its own layer or a higher one, so no
//! import circle can come back. Every module must be placed in `LAYERS`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// From the top down. `main` (the binary) uses the crate from outside.
const LAYERS: &[&[&str]] = &[
    &["lib"],
    &["report", "verify"],
    // The key phase of a run, which lib drives around the pipeline.
    &["keyphase"],
    &["cli"],
    &["exit", "apply", "keyapply"],
    &["plan"],
    &["world", "keyworld"],
    // The database of either kind behind one face.
    &["store"],
    // Pure, below the readers: keyworld asks it what to read.
    &["keyplan"],
    &["error"],
    // PostgreSQL's reads and writes fill db's types, for plan to judge.
    &["postgres"],
    &["config", "db", "identity", "lock"],
    // config checks OPENROUTER_HOST and SPENDING_LIMIT_RESET with the
    // client's own rules.
    &["openrouter"],
    // config renders values with envfile's rules to refuse them early.
    &["envfile"],
    &["logging", "checkpoint", "termination"],
    &["signals", "paths", "secret", "timestamp", "process"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a source file belongs to: `src/db/row.rs` is `db`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Every `crate::name` a file refers to, `use crate::{a, b::{c}}` included.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => found.extend(top_level_names(group)),
            None => {
                found.insert(leading_name(rest));
            }
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// The names at the top of a `{…}` group: `db::{self, X}, envfile}` gives
/// `db` and `envfile`.
fn top_level_names(group: &str) -> Vec<String> {
    let mut names = vec![leading_name(group.trim_start())];
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(leading_name(group[i + 1..].trim_start())),
            _ => {}
        }
    }
    names
}

fn leading_name(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// The production code of a file: test modules may reach up (a unit test
/// of `config` checks exit codes), so everything from the first
/// `#[cfg(test)]` on, and files that are test modules, are left out.
fn production_code(file: &Path, text: &str) -> Option<String> {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return None;
    }
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    Some(text[..end].to_owned())
}

fn source_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_point_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let module = module_of(&src, file).unwrap();
        if module == "main" || module == "layers" {
            continue;
        }
        let Some(from) = layer_of(&module) else {
            problems.push(format!("{module} ({}) is in no layer", file.display()));
            continue;
        };
        let Some(text) = production_code(file, &fs::read_to_string(file).unwrap()) else {
            continue;
        };
        for used in crate_references(&text) {
            match layer_of(&used) {
                _ if used == module => {}
                Some(to) if to > from => {}
                Some(_) => problems.push(format!(
                    "{} uses crate::{used}, which is not below {module}",
                    file.display()
                )),
                None => problems.push(format!(
                    "{used}, used by {}, is in no layer",
                    file.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reference_reader_sees_groups_and_paths() {
    let text = "use crate::{db::{self, X}, envfile};\nlet x = crate::paths::dir_of(p);";
    let found: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(found, ["db", "envfile", "paths"]);
}

#[test]
fn an_upward_import_is_caught() {
    // The check compares layers: plan may use world, not the reverse.
    assert!(layer_of("plan").unwrap() < layer_of("world").unwrap());
}
