//! The documentation runs as written.
//!
//! **The README walkthrough.** Fenced blocks of `README.md` whose info string is
//! `sh runnable` (run by bash) or `python runnable` (run by python3, with the OpenAI SDK) are
//! run in the order they appear, as one bash session (`set -euo pipefail`, so variables carry
//! from one block to the next as they do in a reader's terminal), in a fresh temporary
//! directory. Before the first block the session starts `seedance-gateway serve` in that
//! directory, in the background: the README's "first terminal". The built binaries' directory
//! comes first in `PATH`, so the blocks call `seedance-gateway` and `fake-upstream` as written.
//! `fake-upstream` is another package's binary (`fake/`), which cargo does not build for this
//! package's tests: the test builds it first (`cargo build`, a no-op when it is fresh), into
//! the same directory.
//!
//! A block marked `sh runnable background` is a command a reader leaves running in a terminal
//! of its own (the fake upstreams, a second `serve`): it is started in the background, its
//! output kept in a log, and the session waits until the ports it names accept connections.
//! A background `serve` first stops the one running before it, as the README asks the reader
//! to. Every background process is stopped at the end.
//!
//! The blocks' text is not changed except for their fixed ports, mapped to free ones so that
//! the test cannot collide with anything else on the machine: `http://127.0.0.1:8080` (and
//! `serve`'s default address, through `SEEDANCE_GW_SERVER__LISTEN` in the session's
//! environment) and the fake upstreams' `9100`.
//!
//! A block that exits non-zero fails the test. A runnable block followed by a `text output`
//! block must print that output (stdout and stderr together, as a terminal shows them): each
//! expected line must appear, in order, among the lines the block printed. In an expected
//! line, `…` matches any text (ids, paths, times); a line that is a JSON object matches a
//! printed JSON object that has at least its fields, with the same values (a string holding
//! `…` is a pattern, a value shown as `…` is any value, and `…` between fields stands for
//! fields the README does not show).
//!
//! **The configuration examples.** Every ```` ```toml ```` block of the README and of
//! `docs/*.md`, and `deploy/config.example.toml` as a whole, is written to a file and must be
//! accepted by `seedance-gateway --config FILE check-config`. A block that is deliberately
//! partial is marked ```` ```toml partial ```` (its text must say why) and is not loaded.
//!
//! Python and the `openai` package (pinned in `tests/python/requirements.txt`, installed here
//! when missing, as `tests/openai_sdk.rs` does) are needed for the SDK block; without them the
//! test runs the shell blocks, prints one loud `SKIPPED` line, and fails instead when
//! `SGW_REQUIRE_SERVICES=1` (as on CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seedance-gateway");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The address the README's blocks use: `serve`'s default.
const README_ADDRESS: &str = "http://127.0.0.1:8080";
/// The fake upstreams' port in the README.
const README_FAKE_PORT: &str = "9100";
/// The fake upstreams' binary, as the README calls it.
const FAKE_BIN: &str = "fake-upstream";
/// Longest the whole walkthrough may take.
const WALKTHROUGH_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Block {
    /// The info string after the opening fence, e.g. `sh runnable`.
    info: String,
    /// 1-based line of the opening fence.
    line: usize,
    body: String,
}

impl Block {
    fn words(&self) -> Vec<&str> {
        self.info.split_whitespace().collect()
    }

    fn language(&self) -> &str {
        self.words().first().copied().unwrap_or("")
    }

    fn has(&self, word: &str) -> bool {
        self.words().iter().skip(1).any(|w| *w == word)
    }
}

/// Every fenced block of a markdown text, indented ones (inside lists) included.
fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String, usize, Vec<String>)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - trimmed.len();
                    open = Some((index + 1, info.trim().to_string(), indent, Vec::new()));
                }
            }
            Some((start, info, indent, mut body)) => {
                if trimmed == "```" {
                    blocks.push(Block {
                        info,
                        line: start,
                        body: body.join("\n"),
                    });
                } else {
                    let cut = line
                        .char_indices()
                        .take_while(|(i, c)| *i < indent && *c == ' ')
                        .count();
                    body.push(line[cut..].to_string());
                    open = Some((start, info, indent, body));
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code fence");
    blocks
}

/// A runnable block and the output the README shows for it.
struct Step {
    block: Block,
    expected: Option<Block>,
}

fn runnable_steps(markdown: &str) -> Vec<Step> {
    let blocks = fenced_blocks(markdown);
    let mut steps: Vec<Step> = Vec::new();
    let mut previous_runnable = false;
    for block in blocks {
        if block.has("runnable") {
            assert!(
                matches!(block.language(), "sh" | "bash" | "python"),
                "README line {}: only sh, bash and python blocks can be runnable",
                block.line
            );
            steps.push(Step {
                block,
                expected: None,
            });
            previous_runnable = true;
        } else if block.language() == "text" && block.has("output") {
            assert!(
                previous_runnable,
                "README line {}: an output block must follow a runnable block",
                block.line
            );
            steps.last_mut().expect("a step").expected = Some(block);
            previous_runnable = false;
        } else {
            previous_runnable = false;
        }
    }
    steps
}

fn marker(index: usize) -> String {
    format!("@@readme-block {index}@@")
}

/// Where the README's fixed ports go in this run.
struct Ports {
    gateway: u16,
    fake: u16,
}

impl Ports {
    fn apply(&self, body: &str) -> String {
        body.replace(
            README_ADDRESS,
            &format!("http://127.0.0.1:{}", self.gateway),
        )
        .replace(
            &format!("127.0.0.1:{README_FAKE_PORT}"),
            &format!("127.0.0.1:{}", self.fake),
        )
        .replace(
            &format!("--port {README_FAKE_PORT}"),
            &format!("--port {}", self.fake),
        )
    }

    /// The ports a background block will listen on, once mapped.
    fn listened_by(&self, body: &str) -> Vec<u16> {
        let mut ports = Vec::new();
        if body.contains("seedance-gateway serve") {
            ports.push(self.gateway);
        }
        if body
            .lines()
            .any(|line| line.split_whitespace().next() == Some(FAKE_BIN))
        {
            ports.push(self.fake);
        }
        ports
    }
}

/// One bash script: the first `serve`, then every step, each announced by its marker line.
fn script(steps: &[Step], ports: &Ports, logs: &Path) -> String {
    let logs = logs.display();
    let mut script = format!(
        r#"set -euo pipefail
exec 2>&1
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
wait_for_port() {{
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1 after 60 s" >&2
  return 1
}}
seedance-gateway serve > '{logs}/serve.log' 2>&1 &
README_SERVE_PID=$!
wait_for_port {gateway}
"#,
        gateway = ports.gateway
    );
    for (index, step) in steps.iter().enumerate() {
        script.push_str(&format!("printf '\\n%s\\n' '{}'\n", marker(index)));
        let body = ports.apply(&step.block.body);
        if step.block.language() == "python" {
            script.push_str("python3 - <<'README_PYTHON_BLOCK'\n");
            script.push_str(&body);
            script.push_str("\nREADME_PYTHON_BLOCK\n");
        } else if step.block.has("background") {
            let serve = body.contains("seedance-gateway serve");
            if serve {
                // The reader stops the previous `serve` first.
                script.push_str(
                    "kill \"$README_SERVE_PID\" 2>/dev/null || true\n\
                     wait \"$README_SERVE_PID\" 2>/dev/null || true\n",
                );
            }
            script.push_str(&format!(
                "(\n{body}\n) > '{logs}/background-{index}.log' 2>&1 &\n"
            ));
            if serve {
                script.push_str("README_SERVE_PID=$!\n");
            }
            for port in ports.listened_by(&body) {
                script.push_str(&format!("wait_for_port {port}\n"));
            }
        } else {
            script.push_str(&body);
            script.push('\n');
        }
    }
    script.push_str(&format!("printf '\\n%s\\n' '{}'\n", marker(steps.len())));
    script
}

/// `…` in an expected line matches any text.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Removes the `…` that stand for fields (outside strings), with the comma beside them.
fn without_elisions(json: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut skip_comma = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '…' {
            if out.trim_end().ends_with(':') {
                // A value shown as `…`: any value.
                out.push_str("\"…\"");
            } else if out.trim_end().ends_with(',') {
                let keep = out.trim_end().len() - 1;
                out.truncate(keep);
            } else {
                skip_comma = true;
            }
            continue;
        }
        if skip_comma && !c.is_whitespace() {
            skip_comma = false;
            if c == ',' {
                continue;
            }
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

/// Whether `actual` has every field of `expected` with a matching value.
fn json_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(key, value)| a.get(key).is_some_and(|av| json_subset(value, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(ev, av)| json_subset(ev, av))
        }
        (Value::String(e), _) if e == "…" => true,
        (Value::String(e), Value::String(a)) => wildcard_match(e, a),
        _ => expected == actual,
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (expected.trim(), actual.trim());
    if expected.starts_with('{') {
        let wanted: Value = serde_json::from_str(&without_elisions(expected))
            .unwrap_or_else(|e| panic!("an expected JSON line does not parse ({e}): {expected}"));
        return serde_json::from_str::<Value>(actual).is_ok_and(|got| json_subset(&wanted, &got));
    }
    wildcard_match(expected, actual)
}

/// Each expected line, in order, among the printed lines.
fn check_output(expected: &str, printed: &str) -> Result<(), String> {
    let lines: Vec<&str> = printed.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut from = 0;
    for wanted in expected.lines().filter(|l| !l.trim().is_empty()) {
        match lines[from..].iter().position(|l| line_matches(wanted, l)) {
            Some(at) => from += at + 1,
            None => {
                return Err(format!(
                    "expected the line\n    {wanted}\nafter line {from} of what the block printed"
                ))
            }
        }
    }
    Ok(())
}

/// The printed output of each step, split at the markers.
fn split_by_step(output: &str, steps: usize) -> Vec<Option<String>> {
    (0..steps)
        .map(|index| {
            let start = output.find(&marker(index))? + marker(index).len();
            let end = output[start..]
                .find(&marker(index + 1))
                .map_or(output.len(), |at| start + at);
            Some(output[start..end].to_string())
        })
        .collect()
}

/// The environment of a reader's fresh shell: nothing of this test's configuration.
fn clean_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("SEEDANCE_GW_")
            || name.starts_with("SGW_")
            || matches!(name.as_str(), "DATABASE_URL" | "REDIS_URL" | "RUST_LOG")
        {
            command.env_remove(name);
        }
    }
    command
}

/// Builds the fake upstreams' binary next to the gateway's (same target directory and
/// profile) and returns its path. The selection (both packages, and this test, so that
/// dev-dependencies count) is the one `cargo test` resolved features for, so the fake's
/// dependencies are the ones already built, not a second build of them with other features.
fn build_fake_upstream() -> PathBuf {
    let dir = Path::new(BIN).parent().expect("the binary's directory");
    let target = dir.parent().expect("the target directory");
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "seedance-gateway",
            "-p",
            "fake-upstream",
        ])
        .args(["--bin", FAKE_BIN, "--test", "readme"])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target)
        .current_dir(ROOT)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p fake-upstream failed");
    let fake = dir.join(FAKE_BIN);
    assert!(fake.exists(), "{} was not built", fake.display());
    fake
}

fn path_with_binary() -> String {
    let dir = Path::new(BIN).parent().expect("the binary's directory");
    match std::env::var("PATH") {
        Ok(path) => format!("{}:{path}", dir.display()),
        Err(_) => dir.display().to_string(),
    }
}

fn require_or_skip(what: &str) {
    let line = format!("SKIPPED part of the README walkthrough: {what}");
    if std::env::var("SGW_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{line} (SGW_REQUIRE_SERVICES=1 forbids skipping)");
    }
    eprintln!("\n!!!!! {line}\n");
}

/// Whether python3 can import the pinned `openai`, installing it when missing.
fn openai_sdk_available() -> bool {
    let requirements = Path::new(ROOT).join("tests/python/requirements.txt");
    let imports = || {
        Command::new("python3")
            .args(["-c", "import openai"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if imports() {
        return true;
    }
    let _ = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status();
    imports()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The last lines of every log the session's background processes wrote.
fn log_tails(logs: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(logs)
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "--- {} (last lines):\n{}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                lines[lines.len().saturating_sub(25)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a bash script in its own process group to its end or the deadline, then stops
/// whatever it left running; its exit success and combined output.
fn run_bash(script: &Path, work: &Path, env: &[(&str, String)], limit: Duration) -> (bool, String) {
    let mut command = Command::new("bash");
    clean_env(&mut command)
        .arg(script)
        .current_dir(work)
        .env("PATH", path_with_binary())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().expect("bash runs");
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Background processes the script did not stop (it was killed, or failed early).
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let mut output = reader.join().expect("reader");
    output.push_str(&stderr);
    if status.is_none() {
        output.push_str(&format!("\n(killed after {} s)\n", limit.as_secs()));
    }
    (status.is_some_and(|s| s.success()), output)
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let mut steps = runnable_steps(&readme);
    assert!(
        steps.len() >= 4,
        "the README marks {} runnable blocks; the walkthrough alone has four",
        steps.len()
    );
    assert!(
        steps
            .iter()
            .any(|s| s.block.body.contains("seedance-gateway bootstrap")),
        "the walkthrough's bootstrap block is not marked runnable"
    );
    if steps.iter().any(|s| s.block.language() == "python") && !openai_sdk_available() {
        require_or_skip(
            "the Python SDK block needs python3 with `openai` (pip install -r \
             tests/python/requirements.txt)",
        );
        steps.retain(|s| s.block.language() != "python");
    }
    build_fake_upstream();

    let temp = tempfile::tempdir().expect("temp dir");
    let work = temp.path().join("work");
    let logs = temp.path().join("logs");
    std::fs::create_dir(&work).expect("work dir");
    std::fs::create_dir(&logs).expect("logs dir");
    let ports = Ports {
        gateway: free_port(),
        fake: free_port(),
    };
    let script_path = temp.path().join("readme.sh");
    std::fs::write(&script_path, script(&steps, &ports, &logs)).expect("script");
    let listen = [(
        "SEEDANCE_GW_SERVER__LISTEN",
        format!("127.0.0.1:{}", ports.gateway),
    )];
    let (success, output) = run_bash(&script_path, &work, &listen, WALKTHROUGH_LIMIT);

    let printed = split_by_step(&output, steps.len());
    let mut failures = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let Some(text) = &printed[index] else {
            failures.push(format!(
                "README line {}: the block never ran (the gateway did not start, or an earlier \
                 block failed):\n{output}",
                step.block.line
            ));
            break;
        };
        let finished = output.contains(&marker(index + 1));
        if !finished {
            failures.push(format!(
                "README line {}: the block failed:\n{}\n--- it printed:\n{text}",
                step.block.line, step.block.body
            ));
            break;
        }
        if let Some(expected) = &step.expected {
            if let Err(why) = check_output(&expected.body, text) {
                failures.push(format!(
                    "README line {}: the block's output differs from README line {}: {why}\n--- it printed:\n{text}",
                    step.block.line, expected.line
                ));
            }
        }
    }
    if !success && failures.is_empty() {
        failures.push(format!("the walkthrough script failed:\n{output}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n\n"),
        log_tails(&logs)
    );
    let video = std::fs::metadata(work.join("video.mp4")).map_or(0, |m| m.len());
    assert!(video > 0, "the walkthrough's video.mp4 is empty");
}

/// `check-config` on one file: its success and what it printed.
fn check_config(file: &Path, cwd: &Path) -> (bool, String) {
    let output = clean_env(&mut Command::new(BIN))
        .arg("--config")
        .arg(file)
        .arg("check-config")
        .current_dir(cwd)
        .output()
        .expect("check-config runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn every_toml_example_in_the_docs_passes_check_config() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut documents: Vec<PathBuf> = vec![Path::new(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);

    let mut checked = vec![];
    let mut failures = vec![];
    let mut check = |name: String, text: &str| {
        let file = temp.path().join(format!("example-{}.toml", checked.len()));
        std::fs::write(&file, text).expect("write");
        let (ok, printed) = check_config(&file, temp.path());
        if !ok {
            failures.push(format!("{name}: check-config refused it:\n{printed}"));
        } else if !printed.contains("[server]") {
            failures.push(format!(
                "{name}: check-config printed no configuration:\n{printed}"
            ));
        }
        checked.push(name);
    };
    for document in &documents {
        let text = std::fs::read_to_string(document).expect("read");
        let relative = document.strip_prefix(ROOT).unwrap_or(document).display();
        for block in fenced_blocks(&text) {
            if block.language() == "toml" && !block.has("partial") {
                check(format!("{relative} line {}", block.line), &block.body);
            }
        }
    }
    let example = Path::new(ROOT).join("deploy/config.example.toml");
    check(
        "deploy/config.example.toml".into(),
        &std::fs::read_to_string(&example).expect("deploy/config.example.toml"),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        checked
            .iter()
            .any(|n| n.starts_with("docs/configuration.md")),
        "no TOML example of docs/configuration.md was checked: {checked:?}"
    );
}

#[test]
fn output_lines_match_on_meaningful_parts_only() {
    assert!(line_matches("ten_… sgw_test_…", "ten_abc sgw_test_xyz"));
    assert!(!line_matches("ten_… sgw_test_…", "ten_abc sgw_live_xyz"));
    assert!(line_matches(
        r#"{"id":"video_…",…,"status":"in_progress","cost":{"reserved":200,…}}"#,
        r#"{"id":"video_9","object":"video","status":"in_progress","cost":{"reserved":200,"charged":null}}"#
    ));
    assert!(!line_matches(
        r#"{"status":"in_progress",…}"#,
        r#"{"status":"queued","id":"video_9"}"#
    ));
    assert!(!line_matches(r#"{"status":"in_progress"}"#, "not json"));
    assert!(line_matches(
        r#"{"id":"key_…",…,"revoked_at":…}"#,
        r#"{"id":"key_1","object":"api_key","revoked_at":1796027953}"#
    ));
    assert!(!line_matches(
        r#"{"id":"key_…",…,"revoked_at":…}"#,
        r#"{"id":"key_1","object":"api_key"}"#
    ));
    assert!(check_output("a\nc", "a\nb\nc").is_ok());
    assert!(check_output("c\na", "a\nb\nc").is_err());
}
