//! The shape of the code, checked: layers only point down, and no source file grows into a
//! grab-bag. A plain reading of `src/` (comments left out), so a change that breaks a rule
//! fails here with the file and line, whatever else it passes.
//!
//! The layers (README, "How the code is organised"):
//! `main → cli → app → http, workers → domain → storage, providers → core types, config`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

use std::path::{Path, PathBuf};

/// Most lines a source file may have before its unit tests.
const MAX_LINES: usize = 600;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn all_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    assert!(files.len() > 50, "src/ was not found: {root:?}");
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The file's code lines before its unit tests, with line numbers, comments removed.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).expect("read source");
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        // The first `//` outside a string literal (after an even number of quotes) starts
        // a comment; one inside a literal (a URL) does not.
        let comment = line
            .match_indices("//")
            .map(|(at, _)| at)
            .find(|at| line[..*at].matches('"').count() % 2 == 0);
        let code = comment.map_or(line, |at| &line[..at]);
        lines.push((index + 1, code.to_string()));
    }
    lines
}

/// Where `path` uses any of `forbidden` (as a path or a crate), one line per use.
fn uses(path: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (number, code) in code_lines(path) {
        for needle in forbidden {
            let hit = code.match_indices(needle).any(|(at, _)| {
                // A whole path segment: not `my_sqlx` nor `axum_extra`-like prefixes of other names.
                let before = code[..at].chars().next_back();
                let after = code[at + needle.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if hit {
                found.push(format!(
                    "{}:{number}: uses `{needle}`: {}",
                    relative(path),
                    code.trim()
                ));
            }
        }
    }
    found
}

fn under(path: &Path, folder: &str) -> bool {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    path.starts_with(src)
}

#[test]
fn the_domain_depends_on_nothing_above_it_nor_on_http_or_sql() {
    let forbidden = [
        "crate::app",
        "crate::http",
        "crate::workers",
        "crate::cli",
        "axum",
        "http::",
        "sqlx",
    ];
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "domain"))
        .flat_map(|p| uses(p, &forbidden))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn storage_and_providers_do_not_reach_up() {
    let forbidden = [
        "crate::app",
        "crate::http",
        "crate::workers",
        "crate::cli",
        "crate::domain::services",
    ];
    let mut violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "storage") || under(p, "providers"))
        .flat_map(|p| uses(p, &forbidden))
        .collect();
    // Providers speak to upstreams; they keep nothing in the database.
    violations.extend(
        all_sources()
            .iter()
            .filter(|p| under(p, "providers"))
            .flat_map(|p| uses(p, &["crate::storage"])),
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// One way to the database: only `storage/` names a database driver, and it alone decides
/// whether a statement runs through sqlx or SQLite in place.
#[test]
fn only_storage_speaks_to_the_database_driver() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| !under(p, "storage"))
        .flat_map(|p| {
            uses(
                p,
                &[
                    "sqlx",
                    "rusqlite",
                    "crate::storage::sql",
                    "crate::storage::inline",
                ],
            )
        })
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Where `path` calls a method on the storage handle (`state.db.get_video(…)`), one line per
/// call, except the methods `allowed` says yes to. Passing the handle to a domain function
/// (`admin::tenant(&state.db, …)`) is not a call.
fn storage_calls_but(path: &Path, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    let lines = code_lines(path);
    let code: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = code[at..].find(".db") {
        let start = at + offset;
        at = start + 3;
        let rest = code[at..].trim_start();
        let is_call = rest.starts_with('.')
            && rest[1..]
                .trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase());
        let whole_name = !code[at..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
        let method: String = rest[1..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if is_call && whole_name && !allowed(&method) {
            let line = code[..start].matches('\n').count();
            let (number, text) = &lines[line];
            found.push(format!(
                "{}:{number}: calls storage: {}",
                relative(path),
                text.trim()
            ));
        }
    }
    found
}

fn storage_calls(path: &Path) -> Vec<String> {
    storage_calls_but(path, |_| false)
}

/// Handlers extract, call a domain function and serialize: they never call storage
/// themselves, so every rule a request meets is in the domain. The readiness probe and the
/// metrics endpoint, which report storage's own health, are the exception.
#[test]
fn handlers_reach_storage_only_through_the_domain() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "http") && !p.ends_with("http/health.rs"))
        .flat_map(|p| storage_calls(p))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Workers claim work and hand it to the domain: the only storage calls they make are claims.
#[test]
fn workers_reach_storage_only_to_claim_work() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "workers"))
        .flat_map(|p| storage_calls_but(p, |method| method.starts_with("claim_")))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn http_and_workers_do_not_reach_into_each_other_or_the_composition_root() {
    let mut violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "http"))
        .flat_map(|p| uses(p, &["crate::workers", "crate::cli"]))
        .collect();
    violations.extend(
        all_sources()
            .iter()
            .filter(|p| under(p, "workers"))
            .flat_map(|p| uses(p, &["crate::http", "crate::cli"])),
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn no_source_file_passes_600_lines_before_its_tests() {
    let long: Vec<String> = all_sources()
        .iter()
        .map(|p| (relative(p), code_lines(p).len()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(path, lines)| format!("{path}: {lines} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "split by resource or concern:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_a_violation_when_there_is_one() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("sample.rs");
    std::fs::write(
        &file,
        "//! Uses crate::app in a comment only.\nuse sqlx::Row; // a real use\nlet url = \"http://x\"; // crate::http in a comment\nfn my_sqlx_helper() {}\n#[cfg(test)]\nmod tests { use crate::app; }\n",
    )
    .expect("write");
    let found = uses(&file, &["crate::app", "crate::http", "sqlx"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(":2: uses `sqlx`"), "{found:?}");
    assert_eq!(code_lines(&file).len(), 4);
}

#[test]
fn a_storage_call_is_seen_across_lines_and_a_handle_passed_on_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("handler.rs");
    std::fs::write(
        &file,
        "let a = state.db.get_video(&id).await?;\nlet b = state\n    .db\n    .list_tenants()\n    .await?;\nlet c = admin::tenant(&state.db, &id).await?;\nlet d = self.dbx.go();\n// state.db.in_a_comment()\n",
    )
    .expect("write");
    let found = storage_calls(&file);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains(":1: calls storage"), "{found:?}");
    assert!(found[1].contains(":3: calls storage"), "{found:?}");
}
