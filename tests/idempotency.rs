//! `Idempotency-Key` on `POST /v1/videos`, with Stripe's semantics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::{assert_postings, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create_with_key(
    app: &TestApp,
    api_key: &str,
    idempotency_key: &str,
    body: &Value,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let response = app
        .client
        .post(app.url("/v1/videos"))
        .bearer_auth(api_key)
        .header("idempotency-key", idempotency_key)
        .json(body)
        .send()
        .await
        .expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    (status, response.text().await.expect("text"), headers)
}

async fn video_count(app: &TestApp, key: &str) -> usize {
    let (_, list) = app.get_json(key, "/v1/videos?limit=100").await;
    list["data"].as_array().map(Vec::len).unwrap_or(0)
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let body = json!({"prompt": "a boat", "seconds": 4});
    let (first_status, first_body, first_headers) =
        create_with_key(&app, &key, "order-1", &body).await;
    assert_eq!(first_status, StatusCode::OK);
    assert!(!first_headers.contains_key("idempotent-replayed"));
    let (second_status, second_body, second_headers) =
        create_with_key(&app, &key, "order-1", &body).await;
    assert_eq!(second_status, first_status);
    assert_eq!(
        second_body, first_body,
        "the answer is replayed byte for byte"
    );
    assert_eq!(second_headers["idempotent-replayed"], "true");
    assert_eq!(second_headers["x-gateway-provider"], "sandbox");
    assert_eq!(video_count(&app, &key).await, 1);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000 - 240)
    );
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let (status, _, _) =
        create_with_key(&app, &key, "k", &json!({"prompt": "a", "seconds": 4})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) =
        create_with_key(&app, &key, "k", &json!({"prompt": "b", "seconds": 4})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("idempotency_conflict"), "{body}");
    assert_eq!(video_count(&app, &key).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_duplicates_make_one_job_and_identical_answers() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let body = json!({"prompt": "one and only", "seconds": 5});
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", "burst-1")
                .json(&body)
                .send()
                .await
                .expect("send");
            (response.status(), response.text().await.expect("text"))
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let first = answers[0].clone();
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert!(
        answers.iter().all(|a| *a == first),
        "every duplicate got the first answer"
    );
    assert_eq!(video_count(&app, &key).await, 1);
    let id = serde_json::from_str::<Value>(&first.1).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_postings(&app.db, &id, &[("hold", -300)]).await;
    app.wait_terminal(&key, &id).await;
    assert_postings(&app.db, &id, &[("hold", -300), ("capture", 0)]).await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(10_000 - 300), Some(0))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn keys_are_scoped_to_their_tenant() {
    let app = TestApp::spawn().await;
    let (_, first) = app.tenant_with_key("test", 1000).await;
    let (_, second) = app.tenant_with_key("test", 1000).await;
    let body = json!({"prompt": "x", "seconds": 4});
    let (_, a, _) = create_with_key(&app, &first, "shared", &body).await;
    let (_, b, _) = create_with_key(&app, &second, "shared", &body).await;
    let id = |text: &str| serde_json::from_str::<Value>(text).expect("json")["id"].clone();
    assert_ne!(id(&a), id(&b));
}

#[tokio::test]
async fn a_request_that_created_nothing_may_be_retried_with_its_key() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 100).await;
    let body = json!({"prompt": "x", "seconds": 10});
    let (status, _, _) = create_with_key(&app, &key, "retry-me", &body).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    app.admin_post(
        &format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 1000, "reason": "top-up", "mode": "test"}),
    )
    .await;
    let (status, _, _) = create_with_key(&app, &key, "retry-me", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(video_count(&app, &key).await, 1);
}

#[tokio::test]
async fn an_upstream_refusal_is_replayed_like_any_answer() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let body = json!({"prompt": "[sandbox:reject]", "seconds": 4});
    let (status, first, _) = create_with_key(&app, &key, "refused", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, second, headers) = create_with_key(&app, &key, "refused", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first, second);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(
        video_count(&app, &key).await,
        1,
        "the failed job is the only one"
    );
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000)
    );
}

#[tokio::test]
async fn a_malformed_key_is_refused() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let (status, body, _) =
        create_with_key(&app, &key, &"x".repeat(300), &json!({"prompt": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Idempotency-Key"));
}

#[tokio::test]
async fn an_operator_grant_with_a_key_credits_once() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("live", 0).await;
    let grant = |body: Value| {
        app.client
            .post(app.url(&format!("/admin/v1/tenants/{tenant}/grants")))
            .bearer_auth(common::ADMIN_TOKEN)
            .header("idempotency-key", "grant-7")
            .json(&body)
            .send()
    };
    let body = json!({"amount": 500, "reason": "promo"});
    let first = grant(body.clone()).await.expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.text().await.expect("text");
    let second = grant(body).await.expect("send");
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.expect("text"), first);
    assert_eq!(
        app.balance(&tenant).await["available"].as_i64(),
        Some(500),
        "credited once"
    );
    let other = grant(json!({"amount": 900, "reason": "promo"}))
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::CONFLICT);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn an_operator_refund_and_adjustment_with_a_key_move_money_once() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let video: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await
        .json()
        .await
        .expect("json");
    let id = video["id"].as_str().expect("id").to_string();
    assert_eq!(app.wait_terminal(&key, &id).await["status"], "completed");
    let post = |path: String, idempotency_key: &'static str, body: Value| {
        app.client
            .post(app.url(&path))
            .bearer_auth(common::ADMIN_TOKEN)
            .header("idempotency-key", idempotency_key)
            .json(&body)
            .send()
    };
    let refund = json!({"amount": 40, "reason": "glitch"});
    let first = post(
        format!("/admin/v1/videos/{id}/refund"),
        "refund-1",
        refund.clone(),
    )
    .await
    .expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.text().await.expect("text");
    let again = post(format!("/admin/v1/videos/{id}/refund"), "refund-1", refund)
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.expect("text"), first);
    assert_postings(
        &app.db,
        &id,
        &[("hold", -240), ("capture", 0), ("refund", 40)],
    )
    .await;

    let path = format!("/admin/v1/tenants/{tenant}/adjustments");
    let adjustment = json!({"amount": -100, "reason": "correction", "mode": "test"});
    let first = post(path.clone(), "adjust-1", adjustment.clone())
        .await
        .expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = post(path.clone(), "adjust-1", adjustment)
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let conflict = post(
        path,
        "adjust-1",
        json!({"amount": -200, "reason": "correction", "mode": "test"}),
    )
    .await
    .expect("send");
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000 - 240 + 40 - 100),
        "one refund and one adjustment"
    );
    app.assert_ledger_consistent().await;
}
