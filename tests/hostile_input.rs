//! Hostile URLs are refused at the edge, in the one error envelope, and create nothing.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

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
    for url in hostile {
        for field in ["image_url", "webhook_url", "reference_image_urls"] {
            let mut body = json!({"prompt": "x", "seconds": 4});
            body[field] = if field == "reference_image_urls" {
                json!([url])
            } else {
                json!(url)
            };
            let response = app.create_video(&key, body).await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{field} = {url}"
            );
            let error: Value = response.json().await.expect("json");
            assert_eq!(error["error"]["code"], "invalid_request");
            assert_eq!(error["error"]["param"], field);
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
    app.client
        .post(app.url("/v1/end_users/vip-customer/wallet"))
        .bearer_auth(&owner)
        .json(&json!({"amount": 500}))
        .send()
        .await
        .expect("send");

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
}
