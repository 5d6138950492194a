//! Durable outputs: the archiver copies a finished upstream MP4 into the gateway's storage;
//! content is then served from there (whole, by `Range`, or `HEAD`) even after the upstream
//! is gone; a redirect covers the time before the copy; retention and deletion remove it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestApp;
use fake_upstream::{FakeUpstream, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::Secret;
use serde_json::{json, Value};

const SANDBOX_MP4: &[u8] = include_bytes!("../assets/sandbox.mp4");

async fn app_with_fake(
    fake: &FakeUpstream,
    adjust: impl FnOnce(&mut seedance_gateway::Config),
) -> TestApp {
    let base = fake.base_url("aigateway");
    TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        let upstream = config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::AiGateway);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.timeout_secs = Some(2);
        config.security.url_allowlist.push("127.0.0.1".into());
        config.storage.sweep_interval_secs = 1;
        adjust(config);
    })
    .await
}

async fn start_fake() -> FakeUpstream {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake starts");
    fake.set_job_duration(Duration::from_millis(200));
    fake
}

async fn completed(app: &TestApp, key: &str) -> String {
    let response = app
        .create_video(
            key,
            json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 5}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let video: Value = response.json().await.expect("json");
    let id = video["id"].as_str().expect("id").to_owned();
    let done = app.wait_terminal(key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    id
}

async fn archive_state(app: &TestApp, id: &str) -> Option<String> {
    let row =
        sqlx::query_scalar::<_, Option<String>>("SELECT archive_state FROM videos WHERE id = $1")
            .bind(id)
            .fetch_one(app.db.pool())
            .await
            .expect("row");
    row
}

async fn wait_archived(app: &TestApp, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while archive_state(app, id).await.as_deref() != Some("stored") {
        assert!(
            Instant::now() < deadline,
            "never archived: {:?}",
            archive_state(app, id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the archiver has tried to copy the output at least once and recorded the
/// outcome.
async fn wait_copy_attempted(app: &TestApp, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempts: i64 = sqlx::query_scalar("SELECT archive_attempts FROM videos WHERE id = $1")
            .bind(id)
            .fetch_one(app.db.pool())
            .await
            .expect("row");
        if attempts >= 1 || archive_state(app, id).await.as_deref() == Some("stored") {
            return;
        }
        assert!(Instant::now() < deadline, "the archiver never tried {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stored_file(app: &TestApp, id: &str) -> PathBuf {
    app.storage_dir()
        .join("outputs")
        .join("videos")
        .join(format!("{id}.mp4"))
}

async fn content(app: &TestApp, key: &str, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(key);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.expect("content")
}

/// An S3-compatible server for the test: moto's server mode (PyPI `moto[server]`, pinned in
/// tests/python/requirements.txt and installed when missing), with one bucket.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_s3() -> S3Server {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let present = std::process::Command::new(&python)
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/requirements.txt");
        let installed = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-r", requirements])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "installing moto[server] failed");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = std::process::Command::new(&python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.put(format!("{endpoint}/outputs")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the S3 server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    S3Server { child, endpoint }
}

/// The size of the stored object, from the bucket listing (moto refuses anonymous object
/// reads, not listings); its bytes are checked through the gateway's content endpoint.
async fn s3_object(s3: &S3Server, id: &str) -> Option<usize> {
    let listing = reqwest::get(format!("{}/outputs", s3.endpoint))
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    let key = format!("<Key>gw/videos/{id}.mp4</Key>");
    let rest = &listing[listing.find(&key)? + key.len()..];
    let size = rest.split("<Size>").nth(1)?.split("</Size>").next()?;
    size.parse().ok()
}

#[tokio::test]
async fn an_archived_output_is_served_with_range_semantics_after_the_upstream_is_gone() {
    serves_archived_outputs(None).await;
}

#[tokio::test]
async fn the_same_on_s3_compatible_storage() {
    let s3 = start_s3().await;
    serves_archived_outputs(Some(&s3)).await;
}

async fn serves_archived_outputs(s3: Option<&S3Server>) {
    let fake = start_fake().await;
    let s3_endpoint = s3.map(|s| s.endpoint.clone());
    let app = app_with_fake(&fake, move |config| {
        if let Some(endpoint) = s3_endpoint {
            config.storage.backend = seedance_gateway::config::StorageBackend::S3;
            config.storage.s3.bucket = "outputs".into();
            config.storage.s3.endpoint = Some(endpoint);
            config.storage.s3.region = "us-east-1".into();
            config.storage.s3.access_key_id = Some(Secret::new("test"));
            config.storage.s3.secret_access_key = Some(Secret::new("test"));
            config.storage.s3.prefix = "gw/".into();
            config.storage.s3.allow_http = true;
        }
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let id = completed(&app, &key).await;
    wait_archived(&app, &id).await;
    match s3 {
        Some(s3) => {
            assert_eq!(s3_object(s3, &id).await, Some(SANDBOX_MP4.len()));
            assert!(!stored_file(&app, &id).exists());
        }
        None => assert_eq!(
            std::fs::read(stored_file(&app, &id)).expect("stored"),
            SANDBOX_MP4
        ),
    }
    drop(fake); // the upstream and its URL are gone
    let size = SANDBOX_MP4.len();

    let whole = content(&app, &key, &id, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.expect("bytes"), SANDBOX_MP4);

    let first = content(&app, &key, &id, Some("bytes=0-99")).await;
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        first.headers()["content-range"],
        format!("bytes 0-99/{size}").as_str()
    );
    assert_eq!(first.headers()["content-length"], "100");
    assert_eq!(first.bytes().await.expect("bytes"), &SANDBOX_MP4[..100]);

    let middle = content(&app, &key, &id, Some("bytes=100-")).await;
    assert_eq!(middle.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(middle.bytes().await.expect("bytes"), &SANDBOX_MP4[100..]);

    let tail = content(&app, &key, &id, Some("bytes=-10")).await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 10, size - 1).as_str()
    );
    assert_eq!(
        tail.bytes().await.expect("bytes"),
        &SANDBOX_MP4[size - 10..]
    );

    let beyond_end = content(&app, &key, &id, Some("bytes=0-999999999")).await;
    assert_eq!(beyond_end.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(beyond_end.bytes().await.expect("bytes"), SANDBOX_MP4);

    let unsatisfiable = content(&app, &key, &id, Some(&format!("bytes={size}-"))).await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        unsatisfiable.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    // Several ranges, or a malformed header, are ignored: the whole file.
    for ignored in ["bytes=0-1,5-9", "items=0-5", "bytes=9-2"] {
        let response = content(&app, &key, &id, Some(ignored)).await;
        assert_eq!(response.status(), StatusCode::OK, "{ignored}");
        assert_eq!(response.bytes().await.expect("bytes").len(), size);
    }

    let head = app
        .client
        .head(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert!(head.bytes().await.expect("bytes").is_empty());

    // No last frame from this provider: a clear 404.
    let thumbnail = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content?variant=thumbnail")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumbnail.status(), StatusCode::NOT_FOUND);

    // Deleting the video removes the stored file.
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(
        !stored_file(&app, &id).exists(),
        "the stored output outlived its video"
    );
    if let Some(s3) = s3 {
        assert_eq!(
            s3_object(s3, &id).await,
            None,
            "the S3 object outlived its video"
        );
    }
    assert_eq!(archive_state(&app, &id).await.as_deref(), Some("deleted"));
}

#[tokio::test]
async fn content_redirects_to_the_upstream_while_the_copy_is_pending() {
    let fake = start_fake().await;
    // The archiver may not fetch from 127.0.0.1 here, so the copy stays pending (retrying).
    let app = app_with_fake(&fake, |config| {
        config.security.url_allowlist.retain(|h| h != "127.0.0.1");
        config.security.url_allowlist.push("img.example.com".into());
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let id = completed(&app, &key).await;
    wait_copy_attempted(&app, &id).await;
    assert_eq!(archive_state(&app, &id).await.as_deref(), Some("pending"));
    let response = content(&app, &key, &id, None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(&fake.base_url("")) || location.contains("/files/"),
        "{location}"
    );
    assert!(!stored_file(&app, &id).exists());
}

#[tokio::test]
async fn archived_outputs_expire_after_the_retention_period() {
    let fake = start_fake().await;
    let app = app_with_fake(&fake, |config| {
        config.videos.retention_secs = 2;
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let id = completed(&app, &key).await;
    wait_archived(&app, &id).await;
    let (_, video) = app.get_json(&key, &format!("/v1/videos/{id}")).await;
    let expires_at = video["expires_at"].as_i64().expect("expires_at");
    let completed_at = video["completed_at"].as_i64().expect("completed_at");
    assert!((1..=3).contains(&(expires_at - completed_at)), "{video}");
    assert_eq!(
        content(&app, &key, &id, None).await.status(),
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while stored_file(&app, &id).exists() {
        assert!(
            Instant::now() < deadline,
            "the expired output was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = content(&app, &key, &id, None).await;
    assert_eq!(gone.status(), StatusCode::GONE);
    let error: Value = gone.json().await.expect("json");
    assert_eq!(error["error"]["code"], "video_expired");
    assert_eq!(archive_state(&app, &id).await.as_deref(), Some("expired"));
}

#[tokio::test]
async fn an_output_larger_than_the_storage_limit_is_not_stored() {
    let fake = start_fake().await;
    let app = app_with_fake(&fake, |config| config.storage.max_output_bytes = 100).await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let id = completed(&app, &key).await;
    wait_copy_attempted(&app, &id).await;
    // Refused, to be retried later: nothing stored, the content still comes from upstream.
    assert_eq!(archive_state(&app, &id).await.as_deref(), Some("pending"));
    assert!(!stored_file(&app, &id).exists());
    let response = content(&app, &key, &id, None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn an_output_served_as_something_other_than_a_video_is_not_stored() {
    let fake = start_fake().await;
    fake.set_output_content_type("text/html");
    let app = app_with_fake(&fake, |_| {}).await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let id = completed(&app, &key).await;
    wait_copy_attempted(&app, &id).await;
    assert_eq!(archive_state(&app, &id).await.as_deref(), Some("pending"));
    assert!(!stored_file(&app, &id).exists());
}
