//! Tenant webhooks end to end: signed per Standard Webhooks (verified by the `standardwebhooks`
//! Python package), retried with backoff until the target recovers, 410 disabling an endpoint,
//! redelivery with the same id, and hostile targets refused, redirects included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::{Received, Receiver};
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn spawn_app() -> TestApp {
    TestApp::spawn_with(|config| {
        config.security.url_allowlist.push("127.0.0.1".into());
        config.webhooks.retry_schedule_secs = vec![1, 1, 1];
        config.providers.sandbox.delay_ms = 100;
    })
    .await
}

async fn post_json(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_endpoint(app: &TestApp, key: &str, url: &str) -> Value {
    let (status, endpoint) =
        post_json(app, key, "/v1/webhook_endpoints", json!({"url": url})).await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    assert!(endpoint["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    endpoint
}

async fn finished_video(app: &TestApp, key: &str, body: Value) -> Value {
    let response = app.create_video(key, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let video: Value = response.json().await.expect("json");
    app.wait_terminal(key, video["id"].as_str().expect("id"))
        .await
}

/// Runs the Python verifier over `cases`; returns its exit status and output.
fn verify_with_python(cases: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_vec(cases).expect("json")).expect("write");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/verify_webhooks.py"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ready = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/requirements.txt");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-r", requirements])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "installing standardwebhooks failed");
    }
    let output = Command::new(&python)
        .arg(script)
        .arg(&path)
        .output()
        .expect("python runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn case(secret: &str, received: &Received, expect: &str) -> Value {
    json!({"secret": secret, "headers": received.headers, "body": received.body, "expect": expect})
}

#[tokio::test]
async fn deliveries_are_signed_per_standard_webhooks_and_verify_with_an_independent_library() {
    let (receiver, base) = Receiver::start().await;
    let app = spawn_app().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let endpoint = create_endpoint(&app, &key, &format!("{base}/hooks/ok")).await;
    let old_secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let endpoint_id = endpoint["id"].as_str().expect("id").to_owned();

    // A completed video: one message to the endpoint, one to the request's own webhook_url.
    let done = finished_video(
        &app,
        &key,
        json!({"prompt": "a fox", "seconds": 4, "webhook_url": format!("{base}/hooks/per-request")}),
    )
    .await;
    assert_eq!(done["status"], "completed");
    let delivered = receiver.wait_for("ok", 1, Duration::from_secs(15)).await;
    let first = &delivered[0];
    let payload: Value = serde_json::from_str(&first.body).expect("json body");
    assert_eq!(payload["type"], "video.completed");
    assert_eq!(payload["data"]["id"], done["id"]);
    assert_eq!(payload["data"]["status"], "completed");
    assert!(payload["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(first.headers["webhook-id"].starts_with("msg_"));
    assert!(first.headers["webhook-timestamp"].parse::<i64>().is_ok());
    assert!(first.headers["webhook-signature"].starts_with("v1,"));
    let per_request = receiver
        .wait_for("per-request", 1, Duration::from_secs(15))
        .await;
    let (status, request_secret) = app.get_json(&key, "/v1/webhook_secret").await;
    assert_eq!(status, StatusCode::OK);
    let request_secret = request_secret["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // Rotate: while the old secret overlaps, both signatures are sent and each verifies.
    let (status, rotated) = post_json(
        &app,
        &key,
        &format!("/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
        json!({"overlap_secs": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, old_secret);
    let response = app
        .create_video(&key, json!({"prompt": "slow", "seconds": 4}))
        .await;
    let video: Value = response.json().await.expect("json");
    let id = video["id"].as_str().expect("id");
    let (status, _) = post_json(&app, &key, &format!("/v1/videos/{id}/cancel"), json!({})).await;
    assert!(status.is_success() || status == StatusCode::CONFLICT);
    let delivered = receiver.wait_for("ok", 2, Duration::from_secs(15)).await;
    let second = &delivered[1];
    assert_eq!(second.headers["webhook-signature"].split(' ').count(), 2);

    let mut tampered = second.clone();
    tampered.body = tampered.body.replacen("video", "vidoe", 1);
    let cases = json!([
        case(&old_secret, first, "valid"),
        case(&new_secret, second, "valid"),
        case(&old_secret, second, "valid"),
        case(&request_secret, &per_request[0], "valid"),
        // Negative controls: the verifier really checks.
        case(&new_secret, first, "invalid"),
        case(&new_secret, &tampered, "invalid"),
        case(&old_secret, &per_request[0], "invalid"),
    ]);
    let (ok, output) = verify_with_python(&cases);
    assert!(ok, "standardwebhooks disagreed: {output}");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_failing_target_is_retried_with_backoff_until_it_recovers_and_can_be_redelivered() {
    let (receiver, base) = Receiver::start().await;
    let app = spawn_app().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    create_endpoint(&app, &key, &format!("{base}/hooks/flaky")).await;
    let done = finished_video(&app, &key, json!({"prompt": "a fox", "seconds": 4})).await;
    let attempts = receiver.wait_for("flaky", 3, Duration::from_secs(20)).await;
    let ids: Vec<&String> = attempts.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id across retries: {ids:?}"
    );
    assert!(
        attempts.iter().all(|r| r.body == attempts[0].body),
        "same payload on every retry"
    );
    for pair in attempts.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(750),
            "retried after only {gap:?}"
        );
    }
    // The log shows the three attempts and the delivery.
    let video_id = done["id"].as_str().expect("id");
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        let (status, list) = app
            .get_json(&key, &format!("/v1/webhook_messages?video_id={video_id}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let message = list["data"][0].clone();
        if message["status"] == "delivered" {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "never marked delivered: {message}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let statuses: Vec<i64> = message["attempt_log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| a["status"].as_i64().expect("status"))
        .collect();
    assert_eq!(statuses, vec![500, 503, 200]);
    assert_eq!(message["attempt_log"][0]["response"], "boom");
    assert_eq!(message["id"].as_str(), Some(ids[0].as_str()));

    // Redelivery sends the same message again.
    let message_id = message["id"].as_str().expect("id");
    let (status, _) = post_json(
        &app,
        &key,
        &format!("/v1/webhook_messages/{message_id}/redeliver"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let again = receiver.wait_for("flaky", 4, Duration::from_secs(10)).await;
    assert_eq!(&again[3].headers["webhook-id"], ids[0]);
    assert_eq!(again[3].body, attempts[0].body);

    // Another tenant sees none of it.
    let (_, other) = app.tenant_with_key("test", 100).await;
    let (status, _) = app
        .get_json(&other, &format!("/v1/webhook_messages/{message_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = app.get_json(&other, "/v1/webhook_messages").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let (receiver, base) = Receiver::start().await;
    let app = spawn_app().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let endpoint = create_endpoint(&app, &key, &format!("{base}/hooks/gone")).await;
    let id = endpoint["id"].as_str().expect("id");
    finished_video(&app, &key, json!({"prompt": "a", "seconds": 4})).await;
    receiver.wait_for("gone", 1, Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, endpoint) = app
            .get_json(&key, &format!("/v1/webhook_endpoints/{id}"))
            .await;
        if endpoint["status"] == "disabled" {
            assert!(endpoint["disabled_reason"]
                .as_str()
                .is_some_and(|r| r.contains("410")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint still enabled: {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The 410 is not retried: its message ended failed after one attempt, for good.
    let (_, list) = app.get_json(&key, "/v1/webhook_messages").await;
    let messages = list["data"].as_array().expect("data").clone();
    assert_eq!(messages.len(), 1, "{list}");
    assert_eq!(messages[0]["status"], "failed", "{list}");
    assert_eq!(messages[0]["attempt_log"].as_array().map(Vec::len), Some(1));
    // A disabled endpoint gets nothing more: the job's final transaction, which writes its
    // messages, wrote none for it, so nothing can ever be sent.
    let later = finished_video(&app, &key, json!({"prompt": "b", "seconds": 4})).await;
    let (_, list) = app
        .get_json(
            &key,
            &format!(
                "/v1/webhook_messages?video_id={}",
                later["id"].as_str().expect("id")
            ),
        )
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");
    assert_eq!(receiver.on("gone").len(), 1);
}

#[tokio::test]
async fn hostile_targets_are_refused_including_by_redirect() {
    let (receiver, base) = Receiver::start().await;
    let app = spawn_app().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let port = base.rsplit(':').next().expect("port");
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://localhost:{port}/hooks/ok"),
        "http://10.0.0.7/hook".to_owned(),
        "http://[::1]/hook".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://0x0a000001/hook".to_owned(),
    ] {
        let (status, error) =
            post_json(&app, &key, "/v1/webhook_endpoints", json!({"url": url})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {error}");
        assert_eq!(error["error"]["param"], "url");
    }
    let (_, list) = app.get_json(&key, "/v1/webhook_endpoints").await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(0),
        "nothing created"
    );

    // Allowed targets that redirect to forbidden ones: the redirect is not followed.
    for path in [
        "redirect-internal",
        "redirect-localhost",
        "redirect-metadata",
    ] {
        create_endpoint(&app, &key, &format!("{base}/hooks/{path}")).await;
    }
    let done = finished_video(&app, &key, json!({"prompt": "a", "seconds": 4})).await;
    let video_id = done["id"].as_str().expect("id");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = app
            .get_json(&key, &format!("/v1/webhook_messages?video_id={video_id}"))
            .await;
        let messages = list["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 3);
        if messages.iter().all(|m| m["status"] == "failed") {
            for message in &messages {
                let log = message["attempt_log"].as_array().expect("log");
                assert_eq!(log.len(), 4, "first try and three retries: {message}");
                assert!(
                    log.iter().all(|a| a["status"].is_null()
                        && a["error"].as_str().is_some_and(|e| e.contains("redirect"))),
                    "{message}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "messages not failed: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        receiver.on("ok").is_empty(),
        "the localhost redirect was followed"
    );
}

#[tokio::test]
async fn a_rotate_body_is_optional_json_and_whatever_its_schema_forbids_is_refused() {
    let app = spawn_app().await;
    let (_, key) = app.tenant_with_key("test", 0).await;
    let rotate = |content_type: Option<&'static str>, body: &'static str| {
        let mut request = app
            .client
            .post(app.url("/v1/webhook_secret/rotate"))
            .bearer_auth(&key)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    for (content_type, body) in [
        (None, ""),
        (Some("application/json"), ""),
        (Some("application/json"), "null"),
        (Some("application/json"), r#"{"overlap_secs": 60}"#),
        (Some("application/json; charset=utf-8"), "{}"),
    ] {
        let (status, answer) = rotate(content_type, body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        assert_eq!(answer["object"], "webhook_secret");
    }
    for body in [
        r#"{"overlap_secs": 60, "unknown": 1}"#,
        r#"{"overlap_secs": "60"}"#,
        r#"{"overlap_secs": -1}"#,
        r#"[]"#,
        "{",
    ] {
        let (status, answer) = rotate(Some("application/json"), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{body}");
    }
    let (status, answer) = rotate(Some("text/plain"), r#"{"overlap_secs": 60}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
}

/// A video's event goes to the tenant's enabled endpoints of the video's mode that subscribed
/// to it, and to no other: not to an endpoint of the other mode, nor to one subscribed only
/// to other events, nor to a disabled one.
#[tokio::test]
async fn an_event_goes_only_to_enabled_endpoints_of_its_mode_subscribed_to_it() {
    use sqlx::Row;

    let (_receiver, base) = Receiver::start().await;
    let app = spawn_app().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let live_key = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            json!({"mode": "live"}),
        )
        .await
        .json::<Value>()
        .await
        .expect("key json")["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let subscribe = |events: Value| json!({"url": format!("{base}/hooks/ok"), "events": events});
    let (_, completed) = post_json(
        &app,
        &key,
        "/v1/webhook_endpoints",
        subscribe(json!(["video.completed"])),
    )
    .await;
    let (_, failed_only) = post_json(
        &app,
        &key,
        "/v1/webhook_endpoints",
        subscribe(json!(["video.failed"])),
    )
    .await;
    let (_, disabled) = post_json(
        &app,
        &key,
        "/v1/webhook_endpoints",
        subscribe(json!(["video.completed"])),
    )
    .await;
    let disabled_id = disabled["id"].as_str().expect("id");
    let (status, _) = post_json(
        &app,
        &key,
        &format!("/v1/webhook_endpoints/{disabled_id}/disable"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, live) = post_json(
        &app,
        &live_key,
        "/v1/webhook_endpoints",
        subscribe(json!(["video.completed"])),
    )
    .await;
    for endpoint in [&completed, &failed_only, &live] {
        assert!(endpoint["id"].is_string(), "{endpoint}");
    }

    let done = finished_video(&app, &key, json!({"prompt": "a", "seconds": 4})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let rows = sqlx::query("SELECT endpoint_id FROM webhook_messages WHERE video_id = $1")
        .bind(done["id"].as_str().expect("id"))
        .fetch_all(app.db.pool())
        .await
        .expect("messages");
    let targets: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        targets,
        vec![completed["id"].as_str().map(str::to_owned)],
        "only the enabled test-mode endpoint subscribed to video.completed"
    );
}
