//! Hostile URLs are refused at the edge, in the one error envelope, and create nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A create body with a URL in one field.
type WithUrl = fn(&str) -> Value;

#[tokio::test]
async fn internal_and_disguised_urls_are_refused_on_every_url_field() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let hostile = [
        "http://127.0.0.1/a.png",
        "http://2130706433/a.png",
        "http://0x7f.1/a.png",
        "http://localhost./a.png",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/a.png",
        "http://100.64.1.1/a.png",
        "http://[fd00::1]/a.png",
        "http://metadata.google.internal/computeMetadata/v1/",
    ];
    // Every field that takes a URL, and the parameter the refusal names.
    let fields: [(&str, WithUrl, &str); 8] = [
        ("image_url", |u| json!({"image_url": u}), "image_url"),
        (
            "first_frame_url",
            |u| json!({"first_frame_url": u}),
            "image_url",
        ),
        (
            "input_reference",
            |u| json!({"input_reference": {"image_url": u}}),
            "image_url",
        ),
        (
            "last_frame_url",
            |u| json!({"image_url": "https://img.example.com/first.png", "last_frame_url": u}),
            "last_frame_url",
        ),
        (
            "reference_image_urls",
            |u| json!({"reference_image_urls": ["https://img.example.com/ok.png", u]}),
            "reference_image_urls",
        ),
        (
            "reference_video_urls",
            |u| json!({"reference_video_urls": [u]}),
            "reference_video_urls",
        ),
        (
            "reference_audio_urls",
            |u| json!({"reference_audio_urls": [u]}),
            "reference_audio_urls",
        ),
        ("webhook_url", |u| json!({"webhook_url": u}), "webhook_url"),
    ];
    for url in hostile {
        for (field, with, param) in fields {
            let mut body = with(url);
            body["prompt"] = json!("x");
            body["seconds"] = json!(4);
            let response = app.create_video(&key, body).await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{field} = {url}"
            );
            let error: Value = response.json().await.expect("json");
            assert_eq!(error["error"]["code"], "invalid_request", "{field} = {url}");
            assert_eq!(error["error"]["param"], param, "{field} = {url}");
        }
    }
    let (_, list) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(10_000)
    );
    // A name that does not resolve is refused too: the gateway cannot vouch for it.
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "image_url": "https://no-such-host.invalid/a.png"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_operator_allowlist_admits_internal_hosts() {
    let app = TestApp::spawn_with(|c| c.security.url_allowlist.push("10.1.2.3".into())).await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "image_url": "http://10.1.2.3/a.png"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "image_url": "http://10.1.2.4/a.png"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn another_tenants_data_is_never_reachable_on_any_tenant_route() {
    let app = TestApp::spawn().await;
    let (_, owner) = app.tenant_with_key("test", 10_000).await;
    let (_, stranger) = app.tenant_with_key("test", 10_000).await;
    let created: Value = app
        .create_video(
            &owner,
            json!({"prompt": "private", "seconds": 4, "user": "vip-customer"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    app.wait_terminal(&owner, id).await;
    let top_up = app
        .client
        .post(app.url("/v1/end_users/vip-customer/wallet"))
        .bearer_auth(&owner)
        .json(&json!({"amount": 500}))
        .send()
        .await
        .expect("send");
    assert_eq!(top_up.status(), StatusCode::OK);

    // The owner's video: 404 on every route, never 403, never data.
    for (method, path) in [
        ("GET", format!("/v1/videos/{id}")),
        ("GET", format!("/v1/videos/{id}/content")),
        ("POST", format!("/v1/videos/{id}/cancel")),
        ("DELETE", format!("/v1/videos/{id}")),
    ] {
        let request = match method {
            "GET" => app.client.get(app.url(&path)),
            "POST" => app.client.post(app.url(&path)),
            _ => app.client.delete(app.url(&path)),
        };
        let response = request.bearer_auth(&stranger).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(!response.text().await.expect("text").contains("private"));
    }
    // Lists, journal, usage and end users show only the caller's own.
    for path in [
        "/v1/videos",
        "/v1/ledger",
        "/v1/usage?group_by=user",
        "/v1/end_users/vip-customer",
        "/v1/balance",
    ] {
        let (status, body) = app.get_json(&stranger, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let text = body.to_string();
        assert!(
            !text.contains(id) && !text.contains("private"),
            "{path} leaked: {text}"
        );
    }
    let (_, theirs) = app.get_json(&stranger, "/v1/end_users/vip-customer").await;
    assert_eq!(
        theirs["wallet_balance"], 0,
        "a same-named end user of another tenant is someone else"
    );
    let (_, usage) = app.get_json(&stranger, "/v1/usage?group_by=user").await;
    assert_eq!(usage["totals"]["jobs"], 0);
    let (_, ledger) = app.get_json(&stranger, "/v1/ledger").await;
    assert!(ledger["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|e| e["kind"] == "grant"));
    // And the owner still sees everything as it was.
    let (_, mine) = app.get_json(&owner, &format!("/v1/videos/{id}")).await;
    assert_eq!(mine["status"], "completed");
    let (_, customer) = app.get_json(&owner, "/v1/end_users/vip-customer").await;
    assert_eq!(customer["wallet_balance"], 500);
}
