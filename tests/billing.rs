//! The caller's money: balance and journal, exact under concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

#[tokio::test]
async fn usage_groups_jobs_and_its_totals_reconcile_with_the_journal() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let jobs = [
        json!({"prompt": "a", "seconds": 4, "user": "alice", "model": "seedance-2.0-fast"}),
        json!({"prompt": "b", "seconds": 5, "user": "alice", "model": "seedance-2.0-fast"}),
        json!({"prompt": "c", "seconds": 6, "user": "bob", "model": "seedance-2.0"}),
        json!({"prompt": "d [sandbox:fail]", "seconds": 8, "user": "bob", "model": "seedance-2.0"}),
    ];
    for body in jobs {
        let created: Value = app
            .create_video(&key, body)
            .await
            .json()
            .await
            .expect("json");
        app.wait_terminal(&key, created["id"].as_str().expect("id"))
            .await;
    }
    let (status, usage) = app.get_json(&key, "/v1/usage?group_by=user,model").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let rows: Vec<(String, String, i64, i64, i64, i64)> = usage["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["group"]["user"].as_str().expect("user").to_string(),
                r["group"]["model"].as_str().expect("model").to_string(),
                r["jobs"].as_i64().expect("n"),
                r["completed"].as_i64().expect("n"),
                r["seconds"].as_i64().expect("n"),
                r["charged_credits"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("alice".into(), "seedance-2.0-fast".into(), 2, 2, 9, 450),
            ("bob".into(), "seedance-2.0".into(), 2, 1, 6, 360),
        ]
    );
    assert_eq!(usage["totals"]["charged_credits"], 810);
    // The journal captured exactly what usage says was charged: a capture takes the hold out
    // of `holds` and returns any unused part to `available`, so the charge is what it removes.
    let (_, ledger) = app.get_json(&key, "/v1/ledger?limit=100").await;
    let charged_in_journal: i64 = ledger["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|e| e["kind"] == "capture")
        .map(|e| -e["amount"].as_i64().expect("n"))
        .sum();
    assert_eq!(charged_in_journal, 810);
    let balance = app.balance(&tenant).await;
    assert_eq!(balance["test_available"].as_i64(), Some(10_000 - 810));

    let csv = app
        .client
        .get(app.url("/v1/usage?group_by=model"))
        .bearer_auth(&key)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("send");
    assert!(csv.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/csv"));
    let text = csv.text().await.expect("text");
    assert_eq!(text, "model,jobs,completed,seconds,charged_credits\nseedance-2.0,2,1,6,360\nseedance-2.0-fast,2,2,9,450\n");
    let (status, _) = app.get_json(&key, "/v1/usage?group_by=colour").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn promotional_credit_is_spent_first_and_returned_where_it_came_from() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 300).await;
    let (tenant, key) = app.tenant_with_key("live", 0).await;
    let path = format!("/admin/v1/tenants/{tenant}/grants");
    let grant = |amount: i64, credit_type: &str| {
        app.admin_post(
            &path,
            json!({"amount": amount, "reason": "launch", "credit_type": credit_type}),
        )
    };
    assert_eq!(grant(1000, "paid").await.status(), StatusCode::CREATED);
    assert_eq!(
        grant(300, "promotional").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(grant(5, "free").await.status(), StatusCode::BAD_REQUEST);

    // A 300-credit job (5 s of seedance-2.0) is paid entirely from promotional credit.
    let first: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 5}))
        .await
        .json()
        .await
        .expect("json");
    let (_, balance) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(
        (
            balance["promotional"].as_i64(),
            balance["available"].as_i64(),
            balance["held"].as_i64()
        ),
        (Some(0), Some(1000), Some(300))
    );
    app.wait_terminal(&key, first["id"].as_str().expect("id"))
        .await;

    // More promotional credit, then a job that needs both and fails: each part goes home.
    grant(100, "promotional").await;
    let failed: Value = app
        .create_video(&key, json!({"prompt": "[sandbox:fail]", "seconds": 5}))
        .await
        .json()
        .await
        .expect("json");
    let (_, during) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(
        (during["promotional"].as_i64(), during["available"].as_i64()),
        (Some(0), Some(800))
    );
    app.wait_terminal(&key, failed["id"].as_str().expect("id"))
        .await;
    let (_, after) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(
        (
            after["promotional"].as_i64(),
            after["available"].as_i64(),
            after["held"].as_i64()
        ),
        (Some(100), Some(1000), Some(0))
    );

    // Not enough of both together: 402, and nothing moved.
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "seconds": 15, "model": "seedance-2.0"}),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "900 fits in 1000 paid + 100 promotional"
    );
    let response = app
        .create_video(
            &key,
            json!({"prompt": "x", "seconds": 15, "model": "seedance-2.0"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let (_, last) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(
        (last["promotional"].as_i64(), last["available"].as_i64()),
        (Some(0), Some(200))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn operator_adjustments_are_journaled_and_respect_the_floor() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("live", 1000).await;
    let path = format!("/admin/v1/tenants/{tenant}/adjustments");
    let adjust = |amount: i64| {
        app.admin_post(
            &path,
            json!({"amount": amount, "reason": "correction", "actor": "ops"}),
        )
    };
    assert_eq!(adjust(-300).await.status(), StatusCode::CREATED);
    assert_eq!(adjust(200).await.status(), StatusCode::CREATED);
    assert_eq!(
        adjust(-901).await.status(),
        StatusCode::PAYMENT_REQUIRED,
        "a prepaid tenant never goes below zero"
    );
    assert_eq!(adjust(0).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.balance(&tenant).await["available"].as_i64(), Some(900));
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_never_exceed_the_charge_even_when_sent_concurrently() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 5}))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    app.wait_terminal(&key, &id).await;
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(700)
    );

    let partial = app
        .admin_post(
            &format!("/admin/v1/videos/{id}/refund"),
            json!({"amount": 100, "reason": "glitch"}),
        )
        .await;
    assert_eq!(partial.status(), StatusCode::CREATED);
    let too_much = app
        .admin_post(
            &format!("/admin/v1/videos/{id}/refund"),
            json!({"amount": 201, "reason": "glitch"}),
        )
        .await;
    assert_eq!(too_much.status(), StatusCode::BAD_REQUEST);

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url(&format!("/admin/v1/videos/{id}/refund"));
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(common::ADMIN_TOKEN)
                .json(&json!({"reason": "the rest"}))
                .send()
                .await
                .expect("send");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        if status == StatusCode::CREATED {
            succeeded += 1;
            assert_eq!(body["amount"], 200, "{body}");
        } else {
            // Every other refund finds nothing left to give back.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"]["code"], "invalid_request", "{body}");
            assert_eq!(body["error"]["param"], "amount", "{body}");
        }
    }
    assert_eq!(
        succeeded, 1,
        "only one refund of the remaining 200 can succeed"
    );
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(1000),
        "refunded exactly the 300 charged"
    );
    app.assert_ledger_consistent().await;
}

/// A completed test-mode video of `seconds` of seedance-2.0-fast (50 credits a second),
/// refunded by the operator in the given parts; returns the tenant's test balance
/// (`available`, `promotional`) after each step: before the video, after it, after each
/// refund.
async fn refunded_in_parts(
    app: &TestApp,
    paid: i64,
    promotional: i64,
    seconds: i64,
    parts: &[Option<i64>],
) -> Vec<(i64, i64)> {
    let (tenant, key) = app.tenant_with_key("test", paid).await;
    let granted = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/grants"),
            json!({"amount": promotional, "reason": "launch", "mode": "test", "credit_type": "promotional"}),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::CREATED);
    let balances = || async {
        let (_, balance) = app.get_json(&key, "/v1/balance").await;
        (
            balance["available"].as_i64().expect("available"),
            balance["promotional"].as_i64().expect("promotional"),
        )
    };
    let mut seen = vec![balances().await];
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": seconds}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    assert_eq!(app.wait_terminal(&key, id).await["status"], "completed");
    seen.push(balances().await);
    for part in parts {
        let body = match part {
            Some(amount) => json!({"amount": amount, "reason": "glitch"}),
            None => json!({"reason": "glitch"}),
        };
        let refunded = app
            .admin_post(&format!("/admin/v1/videos/{id}/refund"), body)
            .await;
        assert_eq!(refunded.status(), StatusCode::CREATED);
        seen.push(balances().await);
    }
    app.assert_ledger_consistent().await;
    seen
}

#[tokio::test]
async fn a_refund_of_a_video_paid_with_promotional_credit_returns_promotional_credit() {
    let app = TestApp::spawn().await;
    // 4 s of seedance-2.0-fast is 200 credits, all taken from the 5,000 promotional.
    let seen = refunded_in_parts(&app, 10_000, 5_000, 4, &[None]).await;
    assert_eq!(
        seen,
        vec![(10_000, 5_000), (10_000, 4_800), (10_000, 5_000)],
        "paid credit stays 10,000; the 200 go back to promotional credit"
    );
}

#[tokio::test]
async fn partial_refunds_give_paid_credit_back_first_and_never_more_promotional_than_spent() {
    let app = TestApp::spawn().await;
    // The 200-credit job takes all 150 promotional credits, then 50 paid.
    let seen = refunded_in_parts(&app, 1_000, 150, 4, &[Some(30), Some(40), None]).await;
    assert_eq!(
        seen,
        vec![
            (1_000, 150),
            (950, 0),
            // 30: all paid; 40: the 20 paid left, then 20 promotional; the rest: promotional.
            (980, 0),
            (1_000, 20),
            (1_000, 150),
        ]
    );
}
