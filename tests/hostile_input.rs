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
