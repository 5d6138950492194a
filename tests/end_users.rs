//! End users: limits enforced in the creating transaction, wallets that pay for their jobs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn put_user(app: &TestApp, key: &str, user: &str, body: Value) -> Value {
    let response = app
        .client
        .put(app.url(&format!("/v1/end_users/{user}")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

async fn move_wallet(app: &TestApp, key: &str, user: &str, amount: i64) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/end_users/{user}/wallet")))
        .bearer_auth(key)
        .json(&json!({"amount": amount}))
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// What one create answered: its status, `Retry-After` and error code.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    code: Option<String>,
}

async fn parallel_creates(app: &TestApp, key: &str, user: &str, n: usize) -> Vec<Answer> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.to_string();
        let user = user.to_string();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": format!("job {i}"), "seconds": 4, "user": user}))
                .send()
                .await
                .expect("send");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let body: Value = response.json().await.expect("json");
            let code = body["error"]["code"].as_str().map(str::to_string);
            Answer {
                status,
                retry_after,
                code,
            }
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

/// Counts the accepted creates and the refused ones, each refused with exactly `status` and
/// `code`; any other answer fails the test.
fn tally(answers: &[Answer], status: StatusCode, code: &str) -> (usize, usize) {
    let mut counts = (0, 0);
    for answer in answers {
        if answer.status == StatusCode::OK {
            counts.0 += 1;
        } else {
            assert_eq!(
                (answer.status, answer.code.as_deref()),
                (status, Some(code)),
                "a create was refused for another reason"
            );
            counts.1 += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_wallet_only_user_pays_from_the_wallet_and_gets_refunds_back_there() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    put_user(&app, &key, "alice", json!({"wallet_mode": "only"})).await;
    let (status, user) = move_wallet(&app, &key, "alice", 500).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["wallet_balance"], 500);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(500)
    );

    let done: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "alice"}))
        .await
        .json()
        .await
        .expect("json");
    app.wait_terminal(&key, done["id"].as_str().expect("id"))
        .await;
    let failed: Value = app
        .create_video(
            &key,
            json!({"prompt": "[sandbox:fail]", "seconds": 4, "user": "alice"}),
        )
        .await
        .json()
        .await
        .expect("json");
    app.wait_terminal(&key, failed["id"].as_str().expect("id"))
        .await;
    let (_, user) = app.get_json(&key, "/v1/end_users/alice").await;
    assert_eq!(
        user["wallet_balance"], 260,
        "charged 240 from the wallet; the failed job's hold went back to it"
    );
    assert_eq!(user["spent_today"], 240);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(500),
        "the tenant's own balance was untouched"
    );

    // The wallet alone pays: 260 does not cover a 10 s video (600).
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 10, "user": "alice"}))
        .await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let (status, _) = move_wallet(&app, &key, "alice", -300).await;
    assert_eq!(
        status,
        StatusCode::PAYMENT_REQUIRED,
        "a wallet never goes below zero"
    );
    let (status, user) = move_wallet(&app, &key, "alice", -260).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["wallet_balance"], 0);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(760)
    );
    app.assert_ledger_consistent().await;
}

/// Top-ups lock the tenant's balance then the wallet, withdrawals the other way round: on
/// PostgreSQL that deadlocked, and most of these answered 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_top_ups_and_withdrawals_of_one_wallet_all_succeed_exactly() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    put_user(&app, &key, "w", json!({"wallet_mode": "only"})).await;
    // Enough in the wallet that every withdrawal succeeds in any order.
    let (status, _) = move_wallet(&app, &key, "w", 2_000).await;
    assert_eq!(status, StatusCode::OK);

    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = app.url("/v1/end_users/w/wallet");
        let key = key.clone();
        let amount = if i % 2 == 0 { 100 } else { -100 };
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", format!("wallet-move-{i}"))
                .json(&json!({"amount": amount}))
                .send()
                .await
                .expect("send");
            let status = response.status();
            (status, response.text().await.expect("body"))
        }));
    }
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (_, user) = app.get_json(&key, "/v1/end_users/w").await;
    assert_eq!(user["wallet_balance"], 2_000, "20 × +100 and 20 × −100");
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(8_000), Some(0))
    );
    let (_, ledger) = app.get_json(&key, "/v1/ledger?limit=100").await;
    let entries = ledger["data"].as_array().expect("entries");
    let count = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).count();
    // Each move is two lines (the wallet and the tenant's balance); the first funding too.
    assert_eq!((count("wallet_fund"), count("wallet_withdraw")), (42, 40));
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_creates_against_a_wallet_for_fifty_accept_exactly_fifty() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    put_user(&app, &key, "bob", json!({"wallet_mode": "only"})).await;
    move_wallet(&app, &key, "bob", 12_000).await;
    let results = parallel_creates(&app, &key, "bob", 200).await;
    assert_eq!(
        tally(
            &results,
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits"
        ),
        (50, 150)
    );
    let (_, user) = app.get_json(&key, "/v1/end_users/bob").await;
    assert_eq!(user["wallet_balance"], 0);
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(100_000 - 12_000)
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daily_cap_holds_exactly_under_parallel_load() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (_, key) = app.tenant_with_key("test", 1_000_000).await;
    put_user(&app, &key, "carol", json!({"credits_per_day": 12_000})).await;
    let results = parallel_creates(&app, &key, "carol", 200).await;
    assert_eq!(
        tally(
            &results,
            StatusCode::TOO_MANY_REQUESTS,
            "end_user_daily_credits_exceeded"
        ),
        (50, 150)
    );
    assert!(results
        .iter()
        .filter(|a| a.status != StatusCode::OK)
        .all(|a| a
            .retry_after
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .is_some_and(|s| s > 0)));
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "carol"}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "end_user_daily_credits_exceeded");
    let (_, user) = app.get_json(&key, "/v1/end_users/carol").await;
    assert_eq!(user["spent_today"], 12_000);
    // Another end user of the same tenant is not limited by carol's cap.
    let other = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "dave"}))
        .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_jobs_per_end_user_are_capped() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (_, key) = app.tenant_with_key("test", 100_000).await;
    put_user(&app, &key, "erin", json!({"max_concurrent": 2})).await;
    let results = parallel_creates(&app, &key, "erin", 20).await;
    assert_eq!(
        tally(
            &results,
            StatusCode::TOO_MANY_REQUESTS,
            "end_user_concurrency_exceeded"
        ),
        (2, 18)
    );
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "erin"}))
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "end_user_concurrency_exceeded");
}

#[tokio::test]
async fn a_wallet_first_user_falls_back_to_the_tenant_and_users_are_per_tenant() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    put_user(&app, &key, "frank", json!({"wallet_mode": "first"})).await;
    move_wallet(&app, &key, "frank", 300).await;
    for _ in 0..2 {
        let created: Value = app
            .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "frank"}))
            .await
            .json()
            .await
            .expect("json");
        app.wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
    }
    let (_, user) = app.get_json(&key, "/v1/end_users/frank").await;
    assert_eq!(
        user["wallet_balance"], 60,
        "the first job came from the wallet"
    );
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000 - 300 - 240),
        "the second from the tenant"
    );

    let (_, other_key) = app.tenant_with_key("test", 1000).await;
    let (_, theirs) = app.get_json(&other_key, "/v1/end_users/frank").await;
    assert_eq!(
        theirs["wallet_balance"], 0,
        "another tenant's frank is someone else"
    );
    assert_eq!(theirs["wallet_mode"], "none");
    let (status, _) = app.get_json(&key, "/v1/end_users/bad%20id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_operator_refund_of_a_wallet_paid_video_goes_back_into_the_wallet() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    put_user(&app, &key, "dora", json!({"wallet_mode": "only"})).await;
    let (status, _) = move_wallet(&app, &key, "dora", 500).await;
    assert_eq!(status, StatusCode::OK);
    let created: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "dora"}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(app.wait_terminal(&key, &id).await["status"], "completed");
    let path = format!("/admin/v1/videos/{id}/refund");
    let refund = |body: Value| app.admin_post(&path, body);
    assert_eq!(
        refund(json!({"amount": 100, "reason": "glitch"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let (_, user) = app.get_json(&key, "/v1/end_users/dora").await;
    assert_eq!(user["wallet_balance"], 500 - 240 + 100);
    assert_eq!(
        refund(json!({"reason": "the rest"})).await.status(),
        StatusCode::CREATED
    );
    let (_, user) = app.get_json(&key, "/v1/end_users/dora").await;
    assert_eq!(
        user["wallet_balance"], 500,
        "all 240 came back to the wallet"
    );
    let over = refund(json!({"amount": 1, "reason": "more"})).await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    let body: Value = over.json().await.expect("json");
    assert_eq!(body["error"]["param"], "amount");
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(500),
        "the tenant's own balance got none of it"
    );
    common::assert_postings(
        &app.db,
        &id,
        &[
            ("hold", -240),
            ("capture", 0),
            ("refund", 100),
            ("refund", 140),
        ],
    )
    .await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn an_end_users_monthly_credits_are_capped() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    // 4 s at 60 credits/s = 240 a job: two fit in 500, a third does not.
    put_user(&app, &key, "gina", json!({"credits_per_month": 500})).await;
    let create = |user: &'static str| {
        app.create_video(&key, json!({"prompt": "x", "seconds": 4, "user": user}))
    };
    for _ in 0..2 {
        assert_eq!(create("gina").await.status(), StatusCode::OK);
    }
    let refused = create("gina").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "end_user_monthly_credits_exceeded");
    // The cap is gina's alone.
    assert_eq!(create("hugo").await.status(), StatusCode::OK);
    let (_, list) = app.get_json(&key, "/v1/videos?limit=100").await;
    for video in list["data"].as_array().expect("data") {
        app.wait_terminal(&key, video["id"].as_str().expect("id"))
            .await;
    }
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(10_000 - 3 * 240),
        "the refused create held nothing"
    );
    app.assert_ledger_consistent().await;
}
