//! The money audit catches what balanced postings hide: each test breaks one invariant by
//! writing straight into the database (the way a bug in the gateway would), then checks that
//! the audit names the offender and that the after-test check of `TestApp` fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::TestApp;
use reqwest::StatusCode;
use seedance_gateway::domain::reports::AuditReport;
use serde_json::{json, Value};
use sqlx::Row;

/// A test-mode tenant and key, and one of its videos left `completed` (charged its hold) or
/// running (sandbox delay long enough for the test to act on it).
async fn tenant_and_video(app: &TestApp, finish: bool) -> (String, String, String) {
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    if finish {
        let done = app.wait_terminal(&key, &id).await;
        assert_eq!(done["status"], "completed");
        assert_eq!(done["cost"]["charged"], 200);
    }
    (tenant, key, id)
}

/// Runs SQL statements in one write transaction, each with its string binds.
async fn write(app: &TestApp, statements: &[(&str, Vec<String>)]) {
    let mut tx = app.db.writer().begin().await.expect("begin");
    for (sql, binds) in statements {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(bind.clone());
        }
        query.execute(&mut *tx).await.expect("injected statement");
    }
    tx.commit().await.expect("commit");
}

/// Writes a balanced journal transaction and updates the cached balances with it, as the
/// gateway's own postings do: the journal's sums and caches stay right.
async fn post(app: &TestApp, kind: &str, tenant: &str, video: Option<&str>, lines: &[(&str, i64)]) {
    let txn = format!("txn_injected_{kind}_{}", lines.len());
    let mut tx = app.db.writer().begin().await.expect("begin");
    for (account, amount) in lines {
        sqlx::query(
            "INSERT INTO ledger_entries (txn_id, account_id, tenant_id, mode, kind, amount, video_id, created_at) \
             VALUES ($1, $2, $3, 'test', $4, $5, $6, 0)",
        )
        .bind(&txn)
        .bind(*account)
        .bind(tenant)
        .bind(kind)
        .bind(*amount)
        .bind(video)
        .execute(&mut *tx)
        .await
        .expect("entry");
        sqlx::query("UPDATE ledger_accounts SET balance = balance + $1 WHERE id = $2")
            .bind(*amount)
            .bind(*account)
            .execute(&mut *tx)
            .await
            .expect("balance");
    }
    tx.commit().await.expect("commit");
}

async fn audit(app: &TestApp) -> AuditReport {
    let report = app.db.audit_ledger().await.expect("audit");
    assert!(
        !report.ok,
        "the audit missed the injected fault: {report:?}"
    );
    report
}

/// Ends the test the way every test ends, and returns what the after-test audit said when it
/// failed (it must).
fn after_test_audit_failure(app: TestApp) -> String {
    let outcome = catch_unwind(AssertUnwindSafe(move || drop(app)));
    let payload = outcome.expect_err("the after-test audit passed a broken ledger");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn account(tenant: &str, name: &str) -> String {
    format!("{tenant}:test:{name}")
}

#[tokio::test]
async fn a_second_capture_of_a_hold_is_reported_with_its_video() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    app.assert_ledger_consistent().await;
    // What a repeated `capture` would write: the hold taken off again, charged again.
    let holds = account(&tenant, "holds");
    post(
        &app,
        "capture",
        &tenant,
        Some(&id),
        &[(&holds, -200), ("system:test:revenue", 200)],
    )
    .await;

    let report: Value = app
        .admin_get("/admin/v1/ledger/audit")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(report["ok"], false);
    // Every posting balances: the journal's own checks see nothing.
    assert_eq!(report["journal_sum"], 0);
    assert_eq!(report["unbalanced_transactions"], json!([]));
    assert_eq!(report["mismatched_accounts"], json!([]));
    assert_eq!(report["holds_settled_more_than_once"], json!([id]));
    assert_eq!(report["holds_disagreeing"], json!([id]));
    assert_eq!(report["holds_accounts_mismatched"], json!([holds]));
    assert_eq!(report["overcharged_videos"], json!([id]));
    assert_eq!(report["charges_disagreeing"], json!([id]));

    // The operator's command runs the same audit and fails.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_seedance-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SEEDANCE_GW_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let cli = command
        .args(["ledger", "audit"])
        .env("DATABASE_URL", &app.database.url)
        .current_dir(app.database.dir.path())
        .output()
        .expect("the binary runs");
    assert!(
        !cli.status.success(),
        "`ledger audit` passed a broken ledger"
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("the audit prints JSON");
    assert_eq!(printed["holds_settled_more_than_once"], json!([id]));

    let failure = after_test_audit_failure(app);
    assert!(
        failure.contains("holds_settled_more_than_once"),
        "{failure}"
    );
    assert!(failure.contains(&id), "{failure}");
}

#[tokio::test]
async fn a_second_void_of_a_hold_is_reported_with_its_video() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, key, id) = tenant_and_video(&app, false).await;
    let canceled = app
        .client
        .post(app.url(&format!("/v1/videos/{id}/cancel")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(canceled.status(), StatusCode::OK);
    app.assert_ledger_consistent().await;
    // What a repeated `void` would write: the hold given back a second time.
    let holds = account(&tenant, "holds");
    let available = account(&tenant, "available");
    post(
        &app,
        "void",
        &tenant,
        Some(&id),
        &[(&holds, -200), (&available, 200)],
    )
    .await;

    let report = audit(&app).await;
    assert_eq!(report.journal_sum, 0);
    assert!(report.unbalanced_transactions.is_empty());
    assert!(report.mismatched_accounts.is_empty());
    assert_eq!(report.holds_settled_more_than_once, vec![id.clone()]);
    assert_eq!(report.holds_disagreeing, vec![id.clone()]);
    assert_eq!(report.holds_accounts_mismatched, vec![holds]);

    let failure = after_test_audit_failure(app);
    assert!(
        failure.contains("holds_settled_more_than_once"),
        "{failure}"
    );
    assert!(failure.contains(&id), "{failure}");
}

#[tokio::test]
async fn a_charge_above_the_hold_is_reported_with_its_video() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    app.assert_ledger_consistent().await;
    // The capture took 100 more than the 200 reserved, straight from the tenant's balance;
    // the job, its hold and the day's usage all say 300, so only the over-charge is wrong.
    let txn: String =
        sqlx::query("SELECT txn_id FROM ledger_entries WHERE video_id = $1 AND kind = 'capture'")
            .bind(&id)
            .fetch_one(app.db.pool())
            .await
            .expect("capture")
            .get(0);
    let available = account(&tenant, "available");
    write(
        &app,
        &[
            (
                "UPDATE ledger_entries SET amount = amount + 100 \
                 WHERE txn_id = $1 AND account_id = 'system:test:revenue'",
                vec![txn.clone()],
            ),
            (
                "INSERT INTO ledger_entries (txn_id, account_id, tenant_id, mode, kind, amount, video_id, created_at) \
                 VALUES ($1, $2, $3, 'test', 'capture', -100, $4, 0)",
                vec![txn, available.clone(), tenant.clone(), id.clone()],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance + 100 WHERE id = 'system:test:revenue'",
                vec![],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance - 100 WHERE id = $1",
                vec![available],
            ),
            (
                "UPDATE videos SET cost_charged = cost_charged + 100 WHERE id = $1",
                vec![id.clone()],
            ),
            (
                "UPDATE holds SET captured = captured + 100 WHERE video_id = $1",
                vec![id.clone()],
            ),
            (
                "UPDATE tenant_usage SET credits = credits + 100 WHERE tenant_id = $1 AND mode = 'test'",
                vec![tenant],
            ),
        ],
    )
    .await;

    let report = audit(&app).await;
    assert_eq!(report.overcharged_videos, vec![id.clone()]);
    assert_eq!(report.journal_sum, 0);
    for (check, found) in [
        ("unbalanced", &report.unbalanced_transactions),
        ("caches", &report.mismatched_accounts),
        ("settled twice", &report.holds_settled_more_than_once),
        ("holds", &report.holds_disagreeing),
        ("holds accounts", &report.holds_accounts_mismatched),
        ("charges", &report.charges_disagreeing),
        ("usage", &report.tenant_usage_mismatches),
    ] {
        assert!(found.is_empty(), "{check}: {found:?}");
    }

    let failure = after_test_audit_failure(app);
    assert!(failure.contains("overcharged_videos"), "{failure}");
    assert!(failure.contains(&id), "{failure}");
}

#[tokio::test]
async fn refunds_beyond_the_charge_are_reported_with_their_video() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    let available = account(&tenant, "available");
    post(
        &app,
        "refund",
        &tenant,
        Some(&id),
        &[("system:test:revenue", -250), (&available, 250)],
    )
    .await;
    let report = audit(&app).await;
    assert_eq!(report.over_refunded_videos, vec![id.clone()]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_hold_row_that_disagrees_with_the_holds_account_is_reported() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, _, id) = tenant_and_video(&app, false).await;
    write(
        &app,
        &[(
            "UPDATE holds SET amount = amount - 10 WHERE video_id = $1",
            vec![id.clone()],
        )],
    )
    .await;
    let report = audit(&app).await;
    assert_eq!(
        report.holds_accounts_mismatched,
        vec![account(&tenant, "holds")]
    );
    assert_eq!(report.holds_disagreeing, vec![id.clone()]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn running_totals_that_differ_from_the_jobs_are_reported() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, _, running) = tenant_and_video(&app, false).await;
    app.assert_ledger_consistent().await;
    write(
        &app,
        &[
            (
                "UPDATE tenant_usage SET seconds = seconds + 1 WHERE tenant_id = $1",
                vec![tenant.clone()],
            ),
            (
                "UPDATE tenant_running SET running = running + 1 WHERE tenant_id = $1 AND mode = 'test'",
                vec![tenant.clone()],
            ),
            (
                "INSERT INTO provider_slots (provider, in_use) VALUES ('sandbox', 2) \
                 ON CONFLICT (provider) DO UPDATE SET in_use = provider_slots.in_use + 2",
                vec![],
            ),
        ],
    )
    .await;
    let report = audit(&app).await;
    let day = sqlx::query("SELECT CAST(created_at / 86400000 AS BIGINT) FROM videos WHERE id = $1")
        .bind(&running)
        .fetch_one(app.db.pool())
        .await
        .expect("day")
        .get::<i64, _>(0);
    assert_eq!(
        report.tenant_usage_mismatches,
        vec![format!("{tenant}:test:{day}")]
    );
    assert_eq!(
        report.tenant_running_mismatches,
        vec![format!("{tenant}:test")]
    );
    assert_eq!(report.provider_slot_mismatches, vec!["sandbox".to_string()]);
    assert!(after_test_audit_failure(app).contains(&tenant));
}

#[tokio::test]
async fn a_finished_video_still_holding_a_provider_slot_is_reported() {
    let app = TestApp::spawn().await;
    let (_, _, id) = tenant_and_video(&app, true).await;
    write(
        &app,
        &[
            (
                "UPDATE videos SET slot_provider = 'sandbox' WHERE id = $1",
                vec![id.clone()],
            ),
            (
                "INSERT INTO provider_slots (provider, in_use) VALUES ('sandbox', 1) \
                 ON CONFLICT (provider) DO UPDATE SET in_use = provider_slots.in_use + 1",
                vec![],
            ),
        ],
    )
    .await;
    let report = audit(&app).await;
    assert_eq!(report.provider_slot_mismatches, vec![id.clone()]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn test_mode_money_moved_into_a_live_account_is_reported_with_its_transaction() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let live = format!("{tenant}:live:available");
    post(
        &app,
        "adjustment",
        &tenant,
        None,
        &[(&account(&tenant, "available"), -10), (&live, 10)],
    )
    .await;
    let report = audit(&app).await;
    assert_eq!(report.mode_violations, vec!["txn_injected_adjustment_2"]);
    assert!(after_test_audit_failure(app).contains("txn_injected_adjustment_2"));
}
