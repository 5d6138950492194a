//! The official OpenAI Python SDK drives the whole video round trip against the gateway:
//! create (multipart, as the SDK sends it), retrieve, poll, list with auto-pagination,
//! download, delete. The script is `tests/python/test_openai_sdk.py`; the SDK version is
//! pinned in `tests/python/requirements.txt` and installed here when missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::process::Command;

use common::TestApp;

const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/requirements.txt");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/test_openai_sdk.py"
);

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn ensure_openai_sdk() {
    let pinned = std::fs::read_to_string(REQUIREMENTS).expect("requirements");
    let version = pinned
        .lines()
        .find_map(|l| l.trim().strip_prefix("openai=="))
        .expect("openai is pinned")
        .to_string();
    let installed = Command::new(python())
        .args(["-c", "import openai; print(openai.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if installed == version {
        return;
    }
    let status = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            REQUIREMENTS,
        ])
        .status()
        .expect("python3 with pip is needed for the OpenAI SDK test");
    assert!(status.success(), "installing the OpenAI SDK failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_round_trips_videos() {
    ensure_openai_sdk();
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 800).await;
    let (_, key) = app.tenant_with_key("test", 100_000).await;
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(SCRIPT)
            .env("GATEWAY_URL", base)
            .env("GATEWAY_API_KEY", key)
            .env("TEST_TIMEOUT", "120")
            .output()
            .expect("the SDK script runs")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL PASSED"), "{stdout}");
    app.assert_ledger_consistent().await;
}
