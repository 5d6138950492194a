//! Bad input gets the right 4xx in the one error envelope, and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn assert_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(body["error"]["type"].is_string());
    body
}

/// Nothing was created and no money moved.
async fn assert_nothing_changed(app: &TestApp, key: &str, tenant: &str, credits: i64) {
    let (_, list) = app.get_json(key, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    let balance = app.balance(tenant).await;
    assert_eq!(balance["test_available"].as_i64(), Some(credits));
    assert_eq!(balance["test_held"].as_i64(), Some(0));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn malformed_and_invalid_create_bodies_are_400_with_their_param() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/videos"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_error(
        raw("{\"prompt\": ").await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        raw("[1,2,3]").await.expect("send"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    // A body of the wrong shape names the field at fault and says what was expected, in
    // words, not in the names of the gateway's types.
    for (body, param, says) in [
        ("{\"prompt\": 42}", "prompt", "expected a string"),
        (
            "{\"prompt\": \"x\", \"colour\": \"red\"}",
            "colour",
            "unknown field",
        ),
        (
            "{\"prompt\": \"x\", \"seconds\": [5]}",
            "seconds",
            "expected a number",
        ),
        (
            "{\"prompt\": \"x\", \"routing\": {\"fallback\": {}}}",
            "routing.fallback",
            "expected a number",
        ),
    ] {
        let error = assert_error(
            raw(body).await.expect("send"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
        assert!(
            !message.contains("untagged")
                && !message.contains("Flexible")
                && !message.contains(" at line "),
            "{body}: {message}"
        );
    }

    let cases = [
        (json!({"prompt": "x", "seconds": 3}), "seconds"),
        (json!({"prompt": "x", "seconds": 16}), "seconds"),
        (json!({"prompt": "x", "seconds": "ten"}), "seconds"),
        (json!({"prompt": "x", "model": "sora-2"}), "model"),
        (json!({"prompt": "x", "resolution": "4k"}), "resolution"),
        (
            json!({"prompt": "x", "aspect_ratio": "2:1"}),
            "aspect_ratio",
        ),
        (json!({"prompt": "x", "size": "100x100"}), "size"),
        (json!({"model": "seedance-2.0"}), "prompt"),
        (
            json!({"prompt": "x", "image_url": "file:///etc/passwd"}),
            "image_url",
        ),
        (
            json!({"prompt": "x", "generate_audio": "maybe"}),
            "generate_audio",
        ),
        (json!({"prompt": "x", "user": "bad user\n"}), "user"),
        (
            json!({"prompt": "x", "routing": {"strategy": "random"}}),
            "routing.strategy",
        ),
        (
            json!({"prompt": "x", "routing": {"providers": ["nowhere"]}}),
            "routing.providers",
        ),
        (json!({"prompt": "x".repeat(4001)}), "prompt"),
    ];
    for (body, param) in cases {
        let error = assert_error(
            app.create_video(&key, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(error["error"]["param"], param, "for {body}");
    }
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = TestApp::spawn_with(|c| c.server.max_body_bytes = 64 * 1024).await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let body = json!({"prompt": "x", "metadata": {"blob": "y".repeat(100 * 1024)}});
    assert_error(
        app.create_video(&key, body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
    )
    .await;
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}

#[tokio::test]
async fn an_unsupported_content_type_is_415() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("prompt=x")
        .send()
        .await
        .expect("send");
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}

#[tokio::test]
async fn missing_and_malformed_keys_are_401() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let no_auth = app
        .client
        .post(app.url("/v1/videos"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .expect("send");
    assert_error(no_auth, StatusCode::UNAUTHORIZED, "missing_api_key").await;
    for bad in [
        "sgw_test_nope",
        "sk-openai-style",
        &format!("sgw_test_{}", "A".repeat(40)),
    ] {
        assert_error(
            app.create_video(bad, json!({"prompt": "x"})).await,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        )
        .await;
    }
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}

#[tokio::test]
async fn a_revoked_key_stops_working_immediately() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    assert_eq!(app.get_json(&key, "/v1/videos").await.0, StatusCode::OK);
    let keys: Value = app
        .admin_get(&format!("/admin/v1/tenants/{tenant}/keys"))
        .await
        .json()
        .await
        .expect("json");
    let key_id = keys["data"][0]["id"].as_str().expect("key id");
    let revoked = app
        .admin_post(&format!("/admin/v1/keys/{key_id}/revoke"), json!({}))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: Value = revoked.json().await.expect("json");
    assert!(revoked["revoked_at"].as_i64().is_some());
    assert_error(
        app.create_video(&key, json!({"prompt": "x"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    let balance = app.balance(&tenant).await;
    assert_eq!(balance["test_available"].as_i64(), Some(1000));
}

#[tokio::test]
async fn another_tenants_video_is_404_on_every_route() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 5000).await;
    let (owner_tenant, owner) = app.tenant_with_key("test", 1000).await;
    let (_, stranger) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&owner, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let requests = [
        app.client.get(app.url(&format!("/v1/videos/{id}"))),
        app.client.get(app.url(&format!("/v1/videos/{id}/content"))),
        app.client.post(app.url(&format!("/v1/videos/{id}/cancel"))),
        app.client.delete(app.url(&format!("/v1/videos/{id}"))),
    ];
    for request in requests {
        let response = request.bearer_auth(&stranger).send().await.expect("send");
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let (_, list) = app.get_json(&stranger, "/v1/videos").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    let (status, _) = app
        .get_json(&stranger, &format!("/v1/videos?after={id}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The owner's job is untouched.
    let (status, video) = app.get_json(&owner, &format!("/v1/videos/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(video["status"], "canceled");
    assert_eq!(
        app.balance(&owner_tenant).await["test_held"].as_i64(),
        Some(300)
    );
}

#[tokio::test]
async fn unknown_ids_routes_and_methods_answer_in_the_envelope() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let (status, body) = app.get_json(&key, "/v1/videos/video_doesnotexist").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.get_json(&key, "/v1/videos/../../etc/passwd").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.get_json(&key, "/v1/nothing-here").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let put = app
        .client
        .put(app.url("/v1/videos"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_error(put, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let (status, body) = app.get_json(&key, "/v1/videos?limit=1000").await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
    let (status, body) = app.get_json(&key, "/v1/videos?limit=abc").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn content_of_an_unfinished_video_is_409() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 5000).await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let response = app
        .client
        .get(app.url(&format!("/v1/videos/{id}/content")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_error(response, StatusCode::CONFLICT, "video_not_ready").await;
}

#[tokio::test]
async fn metadata_errors_name_the_key_or_the_value_at_fault() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let long_value = "v".repeat(513);
    let long_key = "k".repeat(65);
    let cases = [
        (
            json!({"a": long_value}),
            "metadata.a",
            "value of metadata key `a`",
        ),
        (
            json!({long_key.clone(): "v"}),
            "metadata",
            "longer than 64 characters",
        ),
        (json!({"": "v"}), "metadata", "must not be empty"),
    ];
    for (metadata, param, message) in cases {
        let response = app
            .create_video(
                &key,
                json!({"prompt": "x", "seconds": 4, "metadata": metadata}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}");
    }
    // 512 characters of a multi-byte script are within the limit (characters, not bytes).
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "seconds": 4, "metadata": {"a": "é".repeat(512)}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_most_negative_amount_is_400_and_moves_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1_000).await;
    let wallet = app
        .client
        .post(app.url("/v1/end_users/alice/wallet"))
        .bearer_auth(&key)
        .json(&json!({"amount": i64::MIN}))
        .send()
        .await
        .expect("send");
    assert_error(wallet, StatusCode::BAD_REQUEST, "invalid_request").await;
    let adjustment = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/adjustments"),
            json!({"amount": i64::MIN, "reason": "overflow", "mode": "test", "actor": "ops"}),
        )
        .await;
    assert_error(adjustment, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_nothing_changed(&app, &key, &tenant, 1_000).await;
}

/// Every operation of the served OpenAPI document that takes a path parameter refuses one
/// that is not UTF-8 once percent-decoded (`%ff`) with a 400 in the envelope naming it, on
/// tenant, admin and public routes alike.
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_a_400_in_the_envelope_on_every_route() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let mut tried = 0;
    for (template, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let names: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            let path = names.iter().fold(template.clone(), |path, name| {
                path.replace(&format!("{{{name}}}"), "%ff")
            });
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = app.client.request(method.clone(), app.url(&path));
            if path.starts_with("/admin/") {
                request = request.bearer_auth(common::ADMIN_TOKEN);
            } else if path.starts_with("/v1/") {
                request = request.bearer_auth(&key);
            }
            if operation.get("requestBody").is_some() {
                request = request.json(&json!({}));
            }
            let response = request.send().await.expect("send");
            let what = format!("{method} {path}");
            assert_eq!(
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "{what}"
            );
            let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
            let param = error["error"]["param"].as_str().unwrap_or_default();
            assert!(names.contains(&param), "{what}: {error}");
            tried += 1;
        }
    }
    assert!(tried >= 30, "only {tried} operations take a path parameter");
}

/// A declared `Content-Length` above `server.max_body_bytes` is answered 413 at once, before
/// any of the body is read, instead of waiting for a body that never comes.
#[tokio::test]
async fn a_declared_content_length_over_the_limit_is_413_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.server.max_body_bytes = 64 * 1024).await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let address = app
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/videos HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{{\"prompt\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buffer).await.expect("read");
            answer.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || text.contains("request_too_large") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer within 5 s: {text}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    assert!(text.contains("\"code\":\"request_too_large\""), "{text}");
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}

/// A fractional number where a whole one is expected is refused by the field's own rule,
/// not as a value of the wrong type; a whole number written with a fraction part is one.
#[tokio::test]
async fn a_fractional_number_of_seconds_is_refused_as_not_an_integer() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    for (body, param) in [
        (json!({"prompt": "x", "seconds": 4.5}), "seconds"),
        (json!({"prompt": "x", "duration": 5.25}), "duration"),
        (json!({"prompt": "x", "seconds": 1e300}), "seconds"),
        (json!({"prompt": "x", "seed": 0.5}), "seed"),
        (
            json!({"prompt": "x", "routing": {"max_cost_credits": 99.9}}),
            "routing.max_cost_credits",
        ),
    ] {
        let error = assert_error(
            app.create_video(&key, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("must be an integer") && !message.contains("wrong type"),
            "{body}: {message}"
        );
    }
    // A field typed as an integer says so too, not which Rust type it is.
    let response = app
        .client
        .put(app.url("/v1/end_users/alice"))
        .bearer_auth(&key)
        .json(&json!({"credits_per_day": 1.5}))
        .send()
        .await
        .expect("send");
    let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(error["error"]["param"], "credits_per_day", "{error}");
    assert_eq!(
        error["error"]["message"], "credits_per_day: must be an integer (a whole number)",
        "{error}"
    );
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
    let whole = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4.0}))
        .await;
    assert_eq!(whole.status(), StatusCode::OK);
    let whole: Value = whole.json().await.expect("json");
    assert_eq!(whole["seconds"], "4", "{whole}");
}

/// A body that is JSON but not an object is refused as a whole, naming no member of it.
#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_as_such() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let routes = [
        (reqwest::Method::POST, "/v1/videos".to_string()),
        (reqwest::Method::POST, "/v1/videos/quote".to_string()),
        (reqwest::Method::PUT, "/v1/end_users/alice".to_string()),
        (
            reqwest::Method::POST,
            "/v1/end_users/alice/wallet".to_string(),
        ),
        (reqwest::Method::POST, "/v1/webhook_endpoints".to_string()),
    ];
    for (method, path) in &routes {
        for body in [
            "[[\"x\"]]",
            "[{\"prompt\": \"x\"}]",
            "\"x\"",
            "42",
            "null",
            "true",
        ] {
            let response = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("send");
            let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
            assert_eq!(
                error["error"]["param"],
                Value::Null,
                "{method} {path} {body}"
            );
            assert_eq!(
                error["error"]["message"], "the body must be a JSON object",
                "{method} {path} {body}"
            );
        }
    }
    // Malformed JSON still says so.
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("[[\"x\"")
        .send()
        .await
        .expect("send");
    let error = assert_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("malformed JSON")),
        "{error}"
    );
    assert_nothing_changed(&app, &key, &tenant, 1000).await;
}
