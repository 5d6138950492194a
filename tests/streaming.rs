//! Serving a large archived output streams it: the process's peak memory grows by far less
//! than the file. (Its own test binary, so no other test shares the process's peak.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::TestApp;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

const FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

#[tokio::test]
async fn a_large_output_is_streamed_with_bounded_memory() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let response = app
        .create_video(&key, json!({"prompt": "big", "seconds": 4}))
        .await;
    let video: Value = response.json().await.expect("json");
    let id = video["id"].as_str().expect("id").to_owned();
    assert_eq!(app.wait_terminal(&key, &id).await["status"], "completed");
    let path = app
        .storage_dir()
        .join("outputs")
        .join("videos")
        .join(format!("{id}.mp4"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !path.exists() {
        assert!(Instant::now() < deadline, "never archived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Replace the stored copy with a large file (written in chunks, never held whole).
    {
        let mut file = std::fs::File::create(&path).expect("create");
        let chunk = vec![7u8; 1024 * 1024];
        for _ in 0..FILE_BYTES / chunk.len() as u64 {
            file.write_all(&chunk).expect("write");
        }
    }
    let before = peak_rss();
    let response = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("content");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"],
        FILE_BYTES.to_string().as_str()
    );
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        received += chunk.expect("chunk").len() as u64;
    }
    assert_eq!(received, FILE_BYTES);
    let growth = peak_rss().saturating_sub(before);
    assert!(
        growth < 64 * 1024 * 1024,
        "serving {FILE_BYTES} bytes raised peak memory by {growth} bytes"
    );
}
