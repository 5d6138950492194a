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

/// One path a file names: `crate::storage::Db` from `use crate::{storage::Db, …}`, from
/// `storage::Db::connect(…)` after `use crate::storage`, or written out inline; `sqlx::Row`
/// for an outside crate. `self`, `super`, the file's own `mod`s and its `use` names are
/// resolved, so each rule sees where a name really comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    line: usize,
    path: String,
    /// Brought in by a `pub use`: a name the file passes on, not one it depends on.
    reexport: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

/// The file's code before its unit tests, as identifiers and punctuation: comments, string
/// and character literals left out, `::` as one token.
fn tokens(text: &str) -> Vec<Token> {
    let code: Vec<char> = text
        .lines()
        .take_while(|line| !line.trim_start().starts_with("#[cfg(test)]"))
        .flat_map(|line| line.chars().chain(std::iter::once('\n')))
        .collect();
    let mut out = Vec::new();
    let (mut at, mut line) = (0, 1);
    let skip_to = |from: usize, line: &mut usize, done: &dyn Fn(usize) -> Option<usize>| {
        let mut i = from;
        while i < code.len() {
            if let Some(next) = done(i) {
                return next;
            }
            if code[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i
    };
    while at < code.len() {
        let c = code[at];
        let next = code.get(at + 1).copied();
        if c == '\n' {
            line += 1;
            at += 1;
        } else if c.is_whitespace() {
            at += 1;
        } else if c == '/' && next == Some('/') {
            at = skip_to(at, &mut line, &|i| (code[i] == '\n').then_some(i));
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            let mut i = at;
            while i < code.len() {
                if code[i] == '/' && code.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if code[i] == '*' && code.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(code[i] == '\n');
                    i += 1;
                }
            }
            at = i;
        } else if c == '"' {
            at = skip_to(at + 1, &mut line, &|i| match code[i] {
                '"' if escaped_quote_ends(&code, i) => Some(i + 1),
                _ => None,
            });
        } else if c == '\'' {
            // A character literal ('a', '\n', '\''), or a lifetime, which is skipped like one.
            if next == Some('\\') {
                at = skip_to(at + 2, &mut line, &|i| (code[i] == '\'').then_some(i + 1));
            } else if code.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = at;
            while at < code.len() && (code[at].is_alphanumeric() || code[at] == '_') {
                at += 1;
            }
            let word: String = code[start..at].iter().collect();
            let raw =
                (word == "r" || word == "br") && matches!(code.get(at), Some('"') | Some('#'));
            if raw {
                let hashes = code[at..].iter().take_while(|c| **c == '#').count();
                if code.get(at + hashes) == Some(&'"') {
                    let close: Vec<char> = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    at = skip_to(at + hashes + 1, &mut line, &|i| {
                        code[i..].starts_with(&close).then_some(i + close.len())
                    });
                    continue;
                }
            }
            out.push(Token { text: word, line });
        } else if c == ':' && next == Some(':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            at += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            at += 1;
        }
    }
    out
}

/// Whether the quote at `i`, after a backslash, ends the string: the backslashes before it
/// escape one another (`"a\\"`).
fn escaped_quote_ends(code: &[char], i: usize) -> bool {
    code[..i].iter().rev().take_while(|c| **c == '\\').count() % 2 == 0
}

fn is_name(token: Option<&Token>) -> bool {
    token.is_some_and(|t| t.text.starts_with(|c: char| c.is_alphabetic() || c == '_'))
}

/// The paths one `use` tree brings in, each with the name it is known by in the file.
fn use_tree(
    tokens: &[Token],
    at: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String, usize)>,
) {
    let mut path = prefix.to_vec();
    loop {
        let Some(token) = tokens.get(*at) else { return };
        match token.text.as_str() {
            "{" => {
                *at += 1;
                while tokens.get(*at).is_some_and(|t| t.text != "}") {
                    use_tree(tokens, at, &path, out);
                    if tokens.get(*at).is_some_and(|t| t.text == ",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "*" => {
                *at += 1;
                out.push((path.clone(), String::new(), token.line));
                return;
            }
            "::" => *at += 1,
            "self" if !path.is_empty() => {
                *at += 1;
                let name =
                    alias(tokens, at).unwrap_or_else(|| path.last().cloned().unwrap_or_default());
                out.push((path.clone(), name, token.line));
                return;
            }
            _ if is_name(Some(token)) => {
                path.push(token.text.clone());
                *at += 1;
                if tokens.get(*at).is_some_and(|t| t.text == "::") {
                    continue;
                }
                let name = alias(tokens, at).unwrap_or_else(|| token.text.clone());
                out.push((path, name, token.line));
                return;
            }
            _ => return,
        }
    }
}

/// `as name` after a use path, consumed.
fn alias(tokens: &[Token], at: &mut usize) -> Option<String> {
    if tokens.get(*at).is_some_and(|t| t.text == "as") {
        let name = tokens.get(*at + 1).map(|t| t.text.clone());
        *at += 2;
        return name;
    }
    None
}

/// `path` made absolute: `crate::…` as it is, `self`/`super` against `module`, a name the
/// file brought in or declared (`names`) replaced by what it stands for; anything else is an
/// outside crate's path (or a local type's, which no rule asks about).
fn resolve(
    path: &[String],
    module: &[String],
    names: &std::collections::HashMap<String, Vec<String>>,
) -> Vec<String> {
    match path.first().map(String::as_str) {
        Some("crate") => path.to_vec(),
        Some("self") => module.iter().chain(&path[1..]).cloned().collect(),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let keep = module.len().saturating_sub(ups).max(1);
            module[..keep].iter().chain(&path[ups..]).cloned().collect()
        }
        Some(first) => match names.get(first) {
            Some(target) => target.iter().chain(&path[1..]).cloned().collect(),
            None => path.to_vec(),
        },
        None => Vec::new(),
    }
}

/// Every path the code of a file names (its `use` trees, expanded, and the paths written in
/// its code), resolved against `module`, the file's place in the crate (`crate::http::videos`).
fn parse_imports(text: &str, module: &[String]) -> Vec<Import> {
    let tokens = tokens(text);
    let mut names: std::collections::HashMap<String, Vec<String>> = Default::default();
    for pair in tokens.windows(2) {
        if pair[0].text == "mod" && is_name(Some(&pair[1])) {
            let target = module
                .iter()
                .cloned()
                .chain([pair[1].text.clone()])
                .collect();
            names.insert(pair[1].text.clone(), target);
        }
    }
    let mut found = Vec::new();
    let mut in_use = vec![false; tokens.len()];
    let mut at = 0;
    while at < tokens.len() {
        if tokens[at].text == "use"
            && tokens
                .get(at.wrapping_sub(1))
                .is_none_or(|t| t.text != "::")
        {
            let start = at;
            let reexport = at > 0
                && (tokens[at - 1].text == "pub"
                    || (tokens[at - 1].text == ")"
                        && tokens[..at]
                            .iter()
                            .rev()
                            .nth(3)
                            .is_some_and(|t| t.text == "pub")));
            at += 1;
            let mut trees = Vec::new();
            use_tree(&tokens, &mut at, &[], &mut trees);
            in_use[start..at.min(tokens.len())]
                .iter_mut()
                .for_each(|u| *u = true);
            for (path, name, line) in trees {
                let path = resolve(&path, module, &names);
                if !name.is_empty() && name != "_" {
                    names.insert(name, path.clone());
                }
                found.push(Import {
                    line,
                    path: path.join("::"),
                    reexport,
                });
            }
        } else {
            at += 1;
        }
    }
    // Paths in the code: a name followed by `::` that does not continue a longer path.
    for (at, token) in tokens.iter().enumerate() {
        let starts = is_name(Some(token))
            && !in_use[at]
            && tokens.get(at + 1).is_some_and(|t| t.text == "::")
            && (at == 0 || !matches!(tokens[at - 1].text.as_str(), "::" | "$"));
        let macro_crate = token.text == "crate" && at > 0 && tokens[at - 1].text == "$";
        if !starts && !macro_crate {
            continue;
        }
        let mut path = vec![token.text.clone()];
        let mut next = at + 1;
        while tokens.get(next).is_some_and(|t| t.text == "::") && is_name(tokens.get(next + 1)) {
            path.push(tokens[next + 1].text.clone());
            next += 2;
        }
        found.push(Import {
            line: token.line,
            path: resolve(&path, module, &names).join("::"),
            reexport: false,
        });
    }
    found.sort_by_key(|i| i.line);
    found
}

/// The names the crate root re-exports (`crate::App` is `crate::app::App`).
fn root_reexports() -> Vec<(String, String)> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let text = std::fs::read_to_string(lib).expect("read lib.rs");
    let root = vec!["crate".to_string()];
    let tokens = tokens(&text);
    let mut at = 0;
    let mut names = Vec::new();
    while at < tokens.len() {
        if tokens[at].text == "use" {
            at += 1;
            let mut trees = Vec::new();
            use_tree(&tokens, &mut at, &[], &mut trees);
            for (path, name, _) in trees {
                let mut absolute = vec!["crate".to_string()];
                absolute.extend(
                    resolve(&path, &root, &Default::default())
                        .into_iter()
                        .skip_while(|s| s == "crate"),
                );
                names.push((format!("crate::{name}"), absolute.join("::")));
            }
        } else {
            at += 1;
        }
    }
    names
}

/// The module a source file is: `src/http/videos/mod.rs` is `crate::http::videos`.
fn module_of(path: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let relative = path.strip_prefix(&src).unwrap_or(path).with_extension("");
    let mut module = vec!["crate".to_string()];
    module.extend(relative.iter().map(|s| s.to_string_lossy().to_string()));
    if module
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        module.pop();
    }
    module
}

/// Every path a source file names, resolved (see [`Import`]).
fn imports(path: &Path) -> Vec<Import> {
    let text = std::fs::read_to_string(path).expect("read source");
    let reexports = root_reexports();
    parse_imports(&text, &module_of(path))
        .into_iter()
        .map(|mut import| {
            for (name, target) in &reexports {
                if import.path == *name || import.path.starts_with(&format!("{name}::")) {
                    import.path = format!("{target}{}", &import.path[name.len()..]);
                }
            }
            import
        })
        .collect()
}

/// Whether `path` is `module` or inside it, segment by segment (`sqlx` is not `sqlx_core`).
fn within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

/// Where `path` names anything inside one of `forbidden` (a module of this crate, such as
/// `crate::storage`, or an outside crate, such as `sqlx`), one line per path.
fn uses(path: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = imports(path)
        .into_iter()
        .filter_map(|import| {
            let needle = forbidden.iter().find(|f| within(&import.path, f))?;
            Some(format!(
                "{}:{}: uses `{needle}`: {}",
                relative(path),
                import.line,
                import.path
            ))
        })
        .collect();
    found.dedup();
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
        "http",
        "sqlx",
    ];
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "domain"))
        .flat_map(|p| uses(p, &forbidden))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Storage and providers sit below the domain: they name nothing of it nor of the layers
/// above it, and neither names the other (providers speak to upstreams and keep nothing in
/// the database; storage keeps what providers reported as plain values of `types`).
#[test]
fn storage_and_providers_do_not_reach_up() {
    let above = [
        "crate::app",
        "crate::cli",
        "crate::http",
        "crate::workers",
        "crate::domain",
    ];
    let mut violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "storage") || under(p, "providers"))
        .flat_map(|p| uses(p, &above))
        .collect();
    violations.extend(
        all_sources()
            .iter()
            .filter(|p| under(p, "storage"))
            .flat_map(|p| uses(p, &["crate::providers"])),
    );
    violations.extend(
        all_sources()
            .iter()
            .filter(|p| under(p, "providers"))
            .flat_map(|p| uses(p, &["crate::storage"])),
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The paths of this crate in `imports` that are in none of the `allowed` modules, one line
/// each: for a layer that may name only what is below it.
fn outside(file: &str, imports: Vec<Import>, allowed: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = imports
        .into_iter()
        .filter(|i| within(&i.path, "crate") && i.path != "crate")
        .filter(|i| !allowed.iter().any(|a| within(&i.path, a)))
        .map(|i| format!("{file}:{}: uses {}", i.line, i.path))
        .collect();
    found.dedup();
    found
}

/// What storage may name of this crate: itself and the layers below it (the plain types,
/// the clock, its configuration). Its rows are its own; the domain imports them, never the
/// reverse.
const BELOW_STORAGE: &[&str] = &[
    "crate::storage",
    "crate::types",
    "crate::clock",
    "crate::config",
];

#[test]
fn storage_names_nothing_but_itself_and_the_layers_below() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "storage"))
        .flat_map(|p| outside(&relative(p), imports(p), BELOW_STORAGE))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Configuration is parsed into the plain types and nothing else: it names no layer above
/// the bottom one, so every layer may read it.
#[test]
fn configuration_names_nothing_above_the_plain_types() {
    let allowed = ["crate::config", "crate::types", "crate::clock"];
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "config"))
        .flat_map(|p| outside(&relative(p), imports(p), &allowed))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn a_path_outside_the_allowed_layers_is_found_however_it_is_written() {
    let module: Vec<String> = ["crate", "storage", "tenants"].map(String::from).to_vec();
    let text =
        "use super::{sql, Db};\nuse crate::{types::ids::TenantId, domain::tenants::Tenant};\n\
         fn f() { crate::providers::ReportedCost::cents(\"x\", 1); super::super::http::x(); }\n";
    let found = outside("t.rs", parse_imports(text, &module), BELOW_STORAGE);
    assert_eq!(
        found,
        [
            "t.rs:2: uses crate::domain::tenants::Tenant",
            "t.rs:3: uses crate::providers::ReportedCost::cents",
            "t.rs:3: uses crate::http::x",
        ]
    );
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
        .flat_map(|p| uses(p, &["crate::app", "crate::workers", "crate::cli"]))
        .collect();
    violations.extend(
        all_sources()
            .iter()
            .filter(|p| under(p, "workers"))
            .flat_map(|p| uses(p, &["crate::app", "crate::http", "crate::cli"])),
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The command line sits above the composition root (`serve` and `openapi` start the app),
/// so it may name `App`, its one entry point, and nothing else of `app`: the state and the
/// wiring stay the root's.
#[test]
fn the_command_line_starts_the_app_and_borrows_nothing_else_from_it() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "cli"))
        .flat_map(|p| {
            imports(p)
                .into_iter()
                .filter(|i| within(&i.path, "crate::app") && !within(&i.path, "crate::app::App"))
                .map(|i| format!("{}:{}: uses {}", relative(p), i.line, i.path))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Where an edge may name storage: reporting or classifying the database's own health, and
/// opening the database. Nothing here decides a rule.
const EDGE_STORAGE_ALLOWED: &[(&str, &str)] = &[
    // `/readyz` and `/metrics` report storage's health (unreachable, corrupt, read-only).
    ("http/health.rs", "crate::storage"),
    // The error envelope turns storage's "unavailable" and "lost its conflicts" into 503s.
    ("http/error.rs", "crate::storage"),
    // The operator commands open (and migrate) the database they work on.
    ("cli/database.rs", "crate::storage"),
    // `serve` claims its SQLite file so that a second server on it refuses to start.
    ("cli/serve.rs", "crate::storage::claim_for_serving"),
];

/// Handlers, workers and commands reach the database and the upstreams through the domain:
/// they name no storage or provider type or function (the allow-list above aside), so every
/// rule they meet is in the domain and the admin API, the command line and a console share it.
#[test]
fn the_edges_name_no_storage_or_provider_but_through_the_domain() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "http") || under(p, "workers") || under(p, "cli"))
        .flat_map(|p| {
            let file = p
                .strip_prefix(&src)
                .unwrap_or(p)
                .to_string_lossy()
                .to_string();
            imports(p)
                .into_iter()
                .filter(|i| {
                    within(&i.path, "crate::storage") || within(&i.path, "crate::providers")
                })
                .filter(|i| {
                    !EDGE_STORAGE_ALLOWED
                        .iter()
                        .any(|(allowed, module)| file == *allowed && within(&i.path, module))
                })
                .map(|i| format!("{}:{}: uses {}", relative(p), i.line, i.path))
                .collect::<Vec<_>>()
        })
        .collect();
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

fn parsed(text: &str) -> Vec<String> {
    let module: Vec<String> = ["crate", "http", "videos"].map(String::from).to_vec();
    parse_imports(text, &module)
        .into_iter()
        .map(|i| format!("{}:{}", i.line, i.path))
        .collect()
}

#[test]
fn grouped_and_nested_use_trees_are_read_path_by_path() {
    let found = parsed(
        "use crate::{app::AppState, storage::{self, objects::{object_key as key, Objects}}};\n\
         pub(crate) use crate::domain::{billing::*, ids::VideoId};\n",
    );
    assert_eq!(
        found,
        [
            "1:crate::app::AppState",
            "1:crate::storage",
            "1:crate::storage::objects::object_key",
            "1:crate::storage::objects::Objects",
            "2:crate::domain::billing",
            "2:crate::domain::ids::VideoId",
        ]
    );
}

#[test]
fn paths_in_code_are_resolved_through_the_files_own_names() {
    let found = parsed(
        "use crate::storage;\nuse super::create as made;\nmod input;\n\
         fn f() { let db = storage::Db::connect(); crate::app::build(x, crate::clock::now_ms());\n\
         made::Body::new(); self::input::read(); $crate::cli::out_raw(); }\n",
    );
    for expected in [
        "1:crate::storage",
        "4:crate::storage::Db::connect",
        "4:crate::app::build",
        "4:crate::clock::now_ms",
        "5:crate::http::create::Body::new",
        "5:crate::http::videos::input::read",
        "5:crate::cli::out_raw",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} in {found:?}"
        );
    }
}

#[test]
fn comments_literals_and_unit_tests_name_nothing() {
    let found = parsed(
        "// use crate::app;\n/* crate::storage::Db\n */ let s = \"crate::app \\\" crate::http\";\n\
         let r = r#\"crate::app\"#; let c = '\"'; fn f<'a>(x: &'a str) {}\n\
         use sqlx::Row;\n#[cfg(test)]\nmod tests { use crate::app; }\n",
    );
    assert_eq!(found, ["5:sqlx::Row"]);
}

/// The file a module path is defined in, for every source file outside unit tests.
fn module_files() -> std::collections::BTreeMap<String, PathBuf> {
    all_sources()
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| (module_of(&p).join("::"), p))
        .collect()
}

/// The file that defines what `path` names: the deepest module file on the path, followed
/// through that module's `pub use` when the next segment is a name it passes on.
fn defining_file(
    path: &str,
    files: &std::collections::BTreeMap<String, PathBuf>,
    reexports: &std::collections::HashMap<PathBuf, Vec<(String, String)>>,
) -> Option<PathBuf> {
    let mut path = path.to_string();
    for _ in 0..8 {
        let segments: Vec<&str> = path.split("::").collect();
        let depth = (1..=segments.len())
            .rev()
            .find(|n| files.contains_key(&segments[..*n].join("::")))?;
        let file = &files[&segments[..depth].join("::")];
        let Some(next) = segments.get(depth) else {
            return Some(file.clone());
        };
        match reexports
            .get(file)
            .and_then(|names| names.iter().find(|(name, _)| name == next))
        {
            Some((_, target)) if !target.starts_with(&path) => {
                path = std::iter::once(target.as_str())
                    .chain(segments[depth + 1..].iter().copied())
                    .collect::<Vec<_>>()
                    .join("::");
            }
            _ => return Some(file.clone()),
        }
    }
    None
}

/// The names a file passes on with `pub use`, each with the path it stands for.
fn passed_on(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("read source");
    let module = module_of(path);
    let tokens = tokens(&text);
    let mut names = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        if token.text != "use" || at == 0 {
            continue;
        }
        let public = tokens[at - 1].text == "pub"
            || (tokens[at - 1].text == ")"
                && tokens[..at]
                    .iter()
                    .rev()
                    .nth(3)
                    .is_some_and(|t| t.text == "pub"));
        if !public {
            continue;
        }
        let mut cursor = at + 1;
        let mut trees = Vec::new();
        use_tree(&tokens, &mut cursor, &[], &mut trees);
        for (path, name, _) in trees {
            let absolute = resolve(&path, &module, &Default::default()).join("::");
            names.push((name, absolute));
        }
    }
    names
}

/// Which files each file depends on: every path it names, taken to the file that defines
/// it. A `pub use` passes a name on and is not a dependency of the file that writes it.
fn file_graph() -> std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>> {
    let files = module_files();
    let reexports: std::collections::HashMap<PathBuf, Vec<(String, String)>> =
        files.values().map(|p| (p.clone(), passed_on(p))).collect();
    files
        .values()
        .map(|file| {
            let targets = imports(file)
                .into_iter()
                .filter(|i| !i.reexport && i.path.starts_with("crate::"))
                .filter_map(|i| defining_file(&i.path, &files, &reexports))
                .filter(|target| target != file)
                .collect();
            (file.clone(), targets)
        })
        .collect()
}

/// The groups of files that reach each other through their imports (Tarjan's strongly
/// connected components), each of more than one file.
fn import_cycles(
    graph: &std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>>,
) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        graph: &'a std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>>,
        index: std::collections::HashMap<&'a PathBuf, usize>,
        low: std::collections::HashMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        cycles: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a PathBuf) {
        let n = walk.index.len();
        walk.index.insert(node, n);
        walk.low.insert(node, n);
        walk.stack.push(node);
        for next in walk.graph.get(node).into_iter().flatten() {
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node, low);
            } else if walk.stack.contains(&next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut group = Vec::new();
            while let Some(top) = walk.stack.pop() {
                group.push(top.clone());
                if top == node {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                walk.cycles.push(group);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: Default::default(),
        low: Default::default(),
        stack: Vec::new(),
        cycles: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            visit(&mut walk, node);
        }
    }
    walk.cycles
}

/// Files form a tree of dependencies: no file reaches itself through its imports, so each
/// can be read, tested and moved knowing only what is below it.
#[test]
fn no_import_cycle_between_files() {
    let graph = file_graph();
    let cycles: Vec<String> = import_cycles(&graph)
        .into_iter()
        .map(|group| {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("  {} → {}", relative(from), relative(to)))
                })
                .collect();
            format!("{} files:\n{}", group.len(), edges.join("\n"))
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "{} cycles:\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_a_tree_is_not() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut graph: std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>> =
            Default::default();
        for (from, to) in pairs {
            graph
                .entry(PathBuf::from(from))
                .or_default()
                .insert(PathBuf::from(to));
            graph.entry(PathBuf::from(to)).or_default();
        }
        graph
    };
    let tree = edges(&[("a", "b"), ("a", "c"), ("b", "c")]);
    assert!(import_cycles(&tree).is_empty());
    let circle = edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(
        import_cycles(&circle),
        vec![vec![
            PathBuf::from("a"),
            PathBuf::from("b"),
            PathBuf::from("c")
        ]]
    );
}

/// Where a file's code (unit tests aside) asks one of the registry's gatekeepers — declared
/// capabilities, learned refusals, circuit breakers — whether a provider may take a request,
/// or names the sandbox as the only place test keys run.
fn eligibility_questions(path: &Path) -> Vec<String> {
    let asks = [
        ".capabilities().check(",
        "refusals.check(",
        "circuits.check(",
        "Mode::Test => vec![",
    ];
    code_lines(path)
        .into_iter()
        .filter(|(_, line)| {
            let compact: String = line.split_whitespace().collect();
            asks.iter()
                .any(|ask| compact.contains(&ask.split_whitespace().collect::<String>()))
        })
        .map(|(number, line)| format!("{}:{number}: {}", relative(path), line.trim()))
        .collect()
}

/// One answer to "may this provider take this job": routing, quotes, failover and resubmit
/// all call `domain/routing/eligibility.rs`, and nothing else (an adapter, a handler, the
/// submit step) asks the capabilities, refusals or circuits itself, or decides again that
/// test keys reach only the sandbox.
#[test]
fn only_eligibility_decides_whether_a_provider_may_take_a_job() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| !p.ends_with("domain/routing/eligibility.rs"))
        .flat_map(|p| eligibility_questions(p))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let eligibility =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain/routing/eligibility.rs");
    assert_eq!(
        eligibility_questions(&eligibility).len(),
        4,
        "the rule itself is seen where it lives"
    );
}

/// Where a storage file writes a job status into its SQL as a literal (`status = 'queued'`,
/// `status IN ('queued', …)`, `'in_progress'`) instead of binding what the caller hands in.
fn status_literals(path: &Path) -> Vec<String> {
    code_lines(path)
        .into_iter()
        .filter(|(_, line)| {
            let literal_after = |needle: &str| {
                line.match_indices(needle).any(|(at, _)| {
                    line[at + needle.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase())
                })
            };
            literal_after("status = '")
                || literal_after("status IN ('")
                || literal_after("status <> '")
                || ["'queued'", "'in_progress'", "'completed'"]
                    .iter()
                    .any(|s| line.contains(s))
        })
        .map(|(number, line)| format!("{}:{number}: {}", relative(path), line.trim()))
        .collect()
}

/// One definition of a job's states and moves (`domain/jobs/transitions.rs`): storage spells
/// no job status in its SQL, so every guard and every count takes its statuses from the table.
#[test]
fn storage_spells_no_job_status_of_its_own() {
    let violations: Vec<String> = all_sources()
        .iter()
        .filter(|p| under(p, "storage"))
        .flat_map(|p| status_literals(p))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("claims.rs");
    std::fs::write(
        &file,
        "let a = \"WHERE status = 'queued'\";\nlet b = format!(\"WHERE status = '{}'\", s);\nlet c = \"status IN ('queued', 'in_progress')\";\n",
    )
    .expect("write");
    let found = status_literals(&file);
    assert_eq!(found.len(), 2, "{found:?}");
}
