//! The video lifecycle on the sandbox, end to end over HTTP, with its money.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::{assert_postings, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_video_is_created_completed_charged_once_and_downloadable() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;

    let response = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "a paper boat", "seconds": 4}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-gateway-provider"], "sandbox");
    assert_eq!(response.headers()["x-gateway-route"], "test-key");
    assert!(response.headers().contains_key("openai-poll-after-ms"));
    assert!(response.headers().contains_key("x-request-id"));
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["object"], "video");
    // Submitted upstream from the create request itself: accepted, or queued for the worker.
    assert!(
        matches!(created["status"].as_str(), Some("in_progress" | "queued")),
        "{created}"
    );
    assert_eq!(created["seconds"], "4");
    assert_eq!(created["size"], "1280x720");
    assert_eq!(created["cost"]["reserved"], 200);
    let id = created["id"].as_str().expect("id");
    assert!(id.starts_with("video_"));

    let held = app.balance(&tenant).await;
    assert_eq!(
        (held["test_available"].as_i64(), held["test_held"].as_i64()),
        (Some(800), Some(200))
    );

    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["cost"]["charged"], 200);
    assert!(done["completed_at"].as_i64().is_some());
    assert!(done["expires_at"].as_i64() > done["completed_at"].as_i64());

    let content = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("content");
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.headers()["content-type"], "video/mp4");
    let bytes = content.bytes().await.expect("bytes");
    assert_eq!(&bytes[4..8], b"ftyp");

    let thumbnail = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content?variant=thumbnail")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");

    let settled = app.balance(&tenant).await;
    assert_eq!(
        (
            settled["test_available"].as_i64(),
            settled["test_held"].as_i64()
        ),
        (Some(800), Some(0))
    );
    // The live balance is untouched by test-key usage.
    assert_eq!(settled["available"].as_i64(), Some(1000));
    assert_postings(&app.db, id, &[("hold", -200), ("capture", 0)]).await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn reads_carry_a_poll_hint_only_while_running() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 1500).await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let running = app
        .client
        .get(app.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("get");
    assert_eq!(running.headers()["openai-poll-after-ms"], "2000");
    app.wait_terminal(&key, id).await;
    let done = app
        .client
        .get(app.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("get");
    assert!(!done.headers().contains_key("openai-poll-after-ms"));
}

#[tokio::test]
async fn progress_moves_while_the_sandbox_works() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 2000).await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let mut seen = Vec::new();
    for _ in 0..40 {
        let (_, video) = app.get_json(&key, &format!("/v1/videos/{id}")).await;
        seen.push(video["progress"].as_i64().unwrap_or(-1));
        if video["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        seen.iter().any(|p| *p > 0 && *p < 100),
        "progress never moved between 0 and 100: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100));
}

#[tokio::test]
async fn a_failed_job_voids_its_hold_and_charges_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"prompt": "please [sandbox:fail]", "seconds": 10}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "generation_failed");
    assert_eq!(done["cost"]["charged"], 0);
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(1000), Some(0))
    );
    assert_postings(&app.db, id, &[("hold", -600), ("void", 600)]).await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_submit_the_upstream_refuses_is_the_clients_400_and_charges_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let response = app
        .create_video(&key, json!({"prompt": "[sandbox:reject]"}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{body}"
    );
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"][0]["status"], "failed");
    assert_eq!(list["data"][0]["error"]["code"], "upstream_rejected");
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(1000), Some(0))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn insufficient_credits_is_402_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 100).await;
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 15}))
        .await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(100), Some(0))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_overdraw_the_balance() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 5000).await;
    // 5 s at 60 credits/s = 300 per job; 1000 credits cover exactly 3.
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": "x"}))
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    let mut accepted = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.expect("task") {
            StatusCode::OK => accepted += 1,
            StatusCode::PAYMENT_REQUIRED => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, refused), (3, 17));
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(100), Some(900))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn cancel_stops_a_running_video_and_voids_its_hold() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 5000).await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let response = app
        .client
        .post(app.url(&format!("/v1/videos/{id}/cancel")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(response.status(), StatusCode::OK);
    let canceled: Value = response.json().await.expect("json");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cost"]["charged"], 0);
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(1000), Some(0))
    );

    assert_postings(&app.db, id, &[("hold", -300), ("void", 300)]).await;

    // A second cancel is refused and moves no money.
    let again = app
        .client
        .post(app.url(&format!("/v1/videos/{id}/cancel")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"]["code"], "video_not_cancelable");
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(1000), Some(0))
    );
    assert_postings(&app.db, id, &[("hold", -300), ("void", 300)]).await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn delete_removes_a_finished_video_and_cancels_a_running_one() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 5000).await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let response = app
        .client
        .delete(app.url(&format!("/v1/videos/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"id": id, "object": "video.deleted", "deleted": true})
    );
    let (status, _) = app.get_json(&key, &format!("/v1/videos/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let balance = app.balance(&tenant).await;
    assert_eq!(balance["test_held"].as_i64(), Some(0));
    assert_postings(&app.db, id, &[("hold", -300), ("void", 300)]).await;

    // A finished video (here one the upstream refused) is removed and its money untouched.
    let refused = app
        .create_video(&key, json!({"prompt": "[sandbox:reject]"}))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["data"][0]["status"], "failed");
    let finished = list["data"][0]["id"].as_str().expect("id").to_string();
    let response = app
        .client
        .delete(app.url(&format!("/v1/videos/{finished}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"id": finished, "object": "video.deleted", "deleted": true})
    );
    let (status, _) = app.get_json(&key, &format!("/v1/videos/{finished}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    assert_postings(&app.db, &finished, &[("hold", -300), ("void", 300)]).await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(1000), Some(0))
    );
}

#[tokio::test]
async fn list_pages_with_a_cursor_in_both_orders_and_filters() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = if n % 2 == 0 { "even" } else { "odd" };
        let created: Value = app
            .create_video(&key, json!({"prompt": format!("clip {n}"), "user": user}))
            .await
            .json()
            .await
            .expect("json");
        ids.push(created["id"].as_str().expect("id").to_string());
    }
    let (_, first) = app.get_json(&key, "/v1/videos?limit=2").await;
    assert_eq!(first["object"], "list");
    assert_eq!(first["has_more"], true);
    let page_ids: Vec<&str> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v["id"].as_str().expect("id"))
        .collect();
    assert_eq!(page_ids, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(first["first_id"], ids[4].as_str());
    assert_eq!(first["last_id"], ids[3].as_str());

    let (_, second) = app
        .get_json(&key, &format!("/v1/videos?limit=2&after={}", ids[3]))
        .await;
    let second_ids: Vec<&str> = second["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v["id"].as_str().expect("id"))
        .collect();
    assert_eq!(second_ids, vec![ids[2].as_str(), ids[1].as_str()]);

    let (_, last) = app
        .get_json(&key, &format!("/v1/videos?limit=2&after={}", ids[1]))
        .await;
    assert_eq!(last["has_more"], false);
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1));

    let (_, ascending) = app.get_json(&key, "/v1/videos?order=asc&limit=1").await;
    assert_eq!(ascending["data"][0]["id"], ids[0].as_str());

    let (_, odd) = app.get_json(&key, "/v1/videos?user=odd").await;
    assert_eq!(odd["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn multipart_creates_accept_openai_sdk_form_fields_and_an_image_file() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
    let form = Form::new()
        .text("prompt", "a lighthouse at dusk")
        .text("model", "seedance-2.0")
        .text("seconds", "8")
        .text("size", "720x1280")
        .text("metadata[order]", "A-7")
        .part(
            "input_reference",
            Part::bytes(png.to_vec())
                .file_name("ref.png")
                .mime_str("image/png")
                .expect("mime"),
        );
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let video: Value = response.json().await.expect("json");
    assert_eq!(video["seconds"], "8");
    assert_eq!(video["size"], "720x1280");
    assert_eq!(video["aspect_ratio"], "9:16");
    assert_eq!(video["metadata"]["order"], "A-7");
    let uploads = std::fs::read_dir(app.storage_dir().join("uploads"))
        .expect("uploads dir")
        .count();
    assert_eq!(uploads, 1);

    let by_url = Form::new().text("prompt", "x").text(
        "input_reference[image_url]",
        "https://images.example.com/first.png",
    );
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .multipart(by_url)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);

    let not_an_image = Form::new().text("prompt", "x").part(
        "input_reference",
        Part::bytes(b"GIF89a not allowed".to_vec()).file_name("a.gif"),
    );
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .multipart(not_an_image)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["param"], "input_reference");
    let uploads = std::fs::read_dir(app.storage_dir().join("uploads"))
        .expect("uploads dir")
        .count();
    assert_eq!(uploads, 1, "a refused upload is not stored");
}

#[tokio::test]
async fn routing_max_cost_is_honoured() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "seconds": 10, "routing": {"max_cost_credits": 100}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unsupported_capability");
    assert_eq!(body["error"]["param"], "routing.max_cost_credits");
    let ok = app
        .create_video(
            &key,
            json!({"prompt": "x", "seconds": 4, "routing": {"max_cost_credits": 240}}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn live_keys_run_on_the_sandbox_only_when_it_is_enabled() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.enabled = false).await;
    let (_, live) = app.tenant_with_key("live", 1000).await;
    let response = app.create_video(&live, json!({"prompt": "x"})).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    let (_, test) = app.tenant_with_key("test", 1000).await;
    assert_eq!(
        app.create_video(&test, json!({"prompt": "x"}))
            .await
            .status(),
        StatusCode::OK
    );
}
