//! What a newcomer meets first, as the README promises it: a JSON body without a
//! `Content-Type`, command output into a closed pipe, log lines into a file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_seedance-gateway");

#[tokio::test]
async fn a_create_without_content_type_is_read_as_json_and_a_wrong_type_is_named() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let body = r#"{"prompt": "a paper boat", "seconds": 4}"#;
    // reqwest sends no Content-Type for a plain string body.
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["object"], "video");

    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let refused: Value = response.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "unsupported_media_type");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("text/plain")),
        "{refused}"
    );

    // The same on another JSON route.
    let response = app
        .client
        .post(app.url("/v1/videos/quote"))
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn command_output_into_a_closed_pipe_ends_quietly() {
    // `seedance-gateway openapi | head -c 1`: the reader goes away after one byte.
    let mut child = Command::new(BIN)
        .arg("openapi")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("a first byte");
    drop(stdout);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn log_lines_into_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("dir");
    let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("SEEDANCE_GW_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SEEDANCE_GW_DATABASE__URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("gw.db").display()),
        )
        .env("SEEDANCE_GW_STORAGE__DIR", dir.path().join("storage"))
        .env_remove("DATABASE_URL")
        .env_remove("SEEDANCE_GW_LOG__FORMAT")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = dir.path().join("gateway.log");
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("listening") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("listening"), "{text}");
    assert!(text.contains("database opened"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
    // The default start has the sandbox alone: nothing to warn about.
    assert!(
        !text.contains("WARN"),
        "a warning on a default start: {text}"
    );
}

/// `routing set` takes either spelling of a provider, warns about one this configuration does
/// not enable for live keys (the README's own example, on a default configuration), and
/// refuses an unknown one listing the names.
#[tokio::test]
async fn routing_set_names_providers_one_way_and_says_which_are_enabled() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("live", 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let run = |providers: &str| {
        Command::new(BIN)
            .args([
                "routing",
                "set",
                "--tenant",
                &tenant,
                "--providers",
                providers,
            ])
            .env("SEEDANCE_GW_DATABASE__URL", &app.database.url)
            .env_remove("DATABASE_URL")
            .current_dir(dir.path())
            .output()
            .expect("run")
    };
    let output = run("seedanceapi,aimlapi");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("provider `seedanceapi` is not enabled")
            && stderr.contains("provider `aimlapi` is not enabled")
            && stderr.contains("enabled: sandbox"),
        "{stderr}"
    );
    let output = run("seedance_it");
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"seedance-it\""),
        "{output:?}"
    );
    let output = run("nope");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unknown provider `nope`") && stderr.contains("aimlapi"),
        "{stderr}"
    );
}

/// `bootstrap` run from a directory where no database exists says that it created a new one,
/// and where; later commands say which database they opened; `check-config` shows the SQLite
/// path (it has no credentials to mask).
#[test]
fn commands_say_which_database_they_opened() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("SEEDANCE_GW_DATABASE__URL")
            .env_remove("SEEDANCE_GW_ADMIN__TOKEN")
            .current_dir(dir.path())
            .output()
            .expect("run")
    };
    let first = run(&["bootstrap", "--format", "env"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let path = dir
        .path()
        .canonicalize()
        .expect("canonical")
        .join("data/gateway.db");
    assert!(
        stderr.contains("created a new, empty database")
            && stderr.contains(&path.display().to_string()),
        "{stderr}"
    );
    let again = run(&["tenants", "list"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("created a new"), "{stderr}");
    assert!(
        stderr.contains(&format!("database: sqlite file {}", path.display())),
        "{stderr}"
    );
    let config = run(&["check-config"]);
    assert!(
        String::from_utf8_lossy(&config.stdout)
            .contains("url = \"sqlite://data/gateway.db?mode=rwc\""),
        "{config:?}"
    );
}
