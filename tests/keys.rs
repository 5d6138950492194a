//! API keys: scopes, expiry, and rotation with an overlap period.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn new_key(app: &TestApp, tenant: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .admin_post(&format!("/admin/v1/tenants/{tenant}/keys"), body)
        .await;
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_key_can_do_only_what_its_scopes_allow() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let (status, reader) = new_key(
        &app,
        &tenant,
        json!({"mode": "test", "scopes": ["videos:read"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reader["scopes"], json!(["videos:read"]));
    let reader = reader["secret"].as_str().expect("secret");
    let response = app.create_video(reader, json!({"prompt": "x"})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("videos:write"));
    assert_eq!(app.get_json(reader, "/v1/videos").await.0, StatusCode::OK);
    assert_eq!(
        app.get_json(reader, "/v1/balance").await.0,
        StatusCode::FORBIDDEN
    );
    let put = app
        .client
        .put(app.url("/v1/end_users/u1"))
        .bearer_auth(reader)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(put.status(), StatusCode::FORBIDDEN);

    let (status, _) = new_key(&app, &tenant, json!({"scopes": ["videos:everything"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_key_stops_working() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let (_, key) = new_key(&app, &tenant, json!({"mode": "test", "expires_in_secs": 1})).await;
    let key = key["secret"].as_str().expect("secret");
    assert_eq!(app.get_json(key, "/v1/videos").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        app.get_json(key, "/v1/videos").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_overlap_then_retires_it() {
    let app = TestApp::spawn().await;
    let (tenant, old) = app.tenant_with_key("test", 1000).await;
    let keys: Value = app
        .admin_get(&format!("/admin/v1/tenants/{tenant}/keys"))
        .await
        .json()
        .await
        .expect("json");
    let old_id = keys["data"][0]["id"].as_str().expect("id");
    let rotated = app
        .admin_post(
            &format!("/admin/v1/keys/{old_id}/rotate"),
            json!({"overlap_secs": 1}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let rotated: Value = rotated.json().await.expect("json");
    let new = rotated["secret"].as_str().expect("secret");
    assert_ne!(new, old);
    assert_eq!(
        app.get_json(&old, "/v1/videos").await.0,
        StatusCode::OK,
        "the old key works during the overlap"
    );
    assert_eq!(app.get_json(new, "/v1/videos").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        app.get_json(&old, "/v1/videos").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get_json(new, "/v1/videos").await.0, StatusCode::OK);
}
