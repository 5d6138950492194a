//! The caller's money: balance and journal, exact under concurrency.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn balance_and_journal_follow_a_job_from_hold_to_capture() {
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await
        .json()
        .await
        .expect("json");
    let (_, balance) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(balance["mode"], "test");
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(760), Some(240))
    );
    let id = created["id"].as_str().expect("id");
    app.wait_terminal(&key, id).await;
    let (_, balance) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(760), Some(0))
    );

    let (status, page) = app.get_json(&key, "/v1/ledger?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<(&str, &str, i64)> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("k"),
                e["account"].as_str().expect("a"),
                e["amount"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("capture", "holds", -240), ("hold", "holds", 240)]
    );
    assert_eq!(page["has_more"], true);
    let (_, rest) = app
        .get_json(&key, &format!("/v1/ledger?after={}", page["last_id"]))
        .await;
    let kinds: Vec<&str> = rest["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["kind"].as_str().expect("k"))
        .collect();
    assert_eq!(kinds, vec!["hold", "grant"]);
    assert_eq!(rest["has_more"], false);
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_journal() {
    let app = TestApp::spawn().await;
    let (_, first) = app.tenant_with_key("test", 1000).await;
    let (_, second) = app.tenant_with_key("test", 5).await;
    app.create_video(&first, json!({"prompt": "x", "seconds": 4}))
        .await;
    let (_, page) = app.get_json(&second, "/v1/ledger").await;
    let entries = page["data"].as_array().expect("data");
    assert_eq!(entries.len(), 1, "only its own grant: {page}");
    assert_eq!(entries[0]["amount"], 5);
    let (_, balance) = app.get_json(&second, "/v1/balance").await;
    assert_eq!(balance["available"], 5);
}

#[tokio::test]
async fn two_hundred_parallel_creates_against_a_balance_for_fifty_accept_exactly_fifty() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    // 4 s at 60 credits/s = 240 per job: 12,000 credits cover exactly 50.
    let (tenant, key) = app.tenant_with_key("test", 12_000).await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": format!("job {n}"), "seconds": 4}))
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
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((accepted, refused), (50, 150));
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (
            balance["test_available"].as_i64(),
            balance["test_held"].as_i64()
        ),
        (Some(0), Some(12_000))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_job_past_its_hold_timeout_fails_and_releases_its_credits() {
    let app = TestApp::spawn_with(|c| {
        c.providers.sandbox.delay_ms = 120_000;
        c.workers.hold_timeout_secs = 1;
    })
    .await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let done = app.wait_terminal(&key, id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "timeout");
    assert_eq!(
        common::ledger_kinds(&app.db, id).await,
        vec!["hold", "void"]
    );
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
