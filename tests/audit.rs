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
    post_as(app, &txn, kind, tenant, video, lines).await;
}

/// Writes the lines as journal transaction `txn` (balanced or not) and updates the cached
/// balances with them.
async fn post_as(
    app: &TestApp,
    txn: &str,
    kind: &str,
    tenant: &str,
    video: Option<&str>,
    lines: &[(&str, i64)],
) {
    let mut tx = app.db.writer().begin().await.expect("begin");
    for (account, amount) in lines {
        sqlx::query(
            "INSERT INTO ledger_entries (txn_id, account_id, tenant_id, mode, kind, amount, video_id, created_at) \
             VALUES ($1, $2, $3, 'test', $4, $5, $6, 0)",
        )
        .bind(txn)
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
    let report = seedance_gateway::domain::reports::audit(&app.db)
        .await
        .expect("audit");
    assert!(
        !report.ok,
        "the audit missed the injected fault: {report:?}"
    );
    report
}

/// Asserts that the audit names exactly what `tripped` gives for those lists (and
/// `journal_sum`, when named), and that every other list it reports is empty: the fault breaks
/// those rules and no other. Reads the report as the API serves it, so a list added later is
/// checked too.
fn assert_trips(report: &AuditReport, tripped: &[(&str, Value)]) {
    let served = serde_json::to_value(report).expect("the report serializes");
    let fields = served.as_object().expect("the report is an object");
    for (name, _) in tripped {
        assert!(fields.contains_key(*name), "the audit has no list {name}");
    }
    for (name, found) in fields {
        let expected = tripped.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        match (name.as_str(), expected) {
            (_, Some(expected)) => assert_eq!(found, expected, "{name}: {served}"),
            ("journal_sum", None) => assert_eq!(found, &json!(0), "journal_sum: {served}"),
            (_, None) if found.is_array() => {
                assert_eq!(found, &json!([]), "{name} should be clear: {served}")
            }
            _ => {}
        }
    }
    assert_eq!(served["ok"], false, "{served}");
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
    assert_trips(
        &audit(&app).await,
        &[
            ("holds_settled_more_than_once", json!([id])),
            ("holds_disagreeing", json!([id])),
            ("holds_accounts_mismatched", json!([holds])),
            ("overcharged_videos", json!([id])),
            ("charges_disagreeing", json!([id])),
        ],
    );

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

    assert_trips(
        &audit(&app).await,
        &[
            ("holds_settled_more_than_once", json!([id])),
            ("holds_disagreeing", json!([id])),
            ("holds_accounts_mismatched", json!([holds])),
        ],
    );

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

    assert_trips(&audit(&app).await, &[("overcharged_videos", json!([id]))]);

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
    // Back to the account that paid: only the amount is wrong.
    assert_trips(&audit(&app).await, &[("over_refunded_videos", json!([id]))]);
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
    assert_trips(
        &audit(&app).await,
        &[
            (
                "holds_accounts_mismatched",
                json!([account(&tenant, "holds")]),
            ),
            ("holds_disagreeing", json!([id])),
        ],
    );
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_day_s_usage_that_differs_from_its_jobs_is_reported_with_its_tenant_and_day() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, _, running) = tenant_and_video(&app, false).await;
    app.assert_ledger_consistent().await;
    write(
        &app,
        &[(
            "UPDATE tenant_usage SET seconds = seconds + 1 WHERE tenant_id = $1",
            vec![tenant.clone()],
        )],
    )
    .await;
    let day = sqlx::query("SELECT CAST(created_at / 86400000 AS BIGINT) FROM videos WHERE id = $1")
        .bind(&running)
        .fetch_one(app.db.pool())
        .await
        .expect("day")
        .get::<i64, _>(0);
    let key = format!("{tenant}:test:{day}");
    assert_trips(
        &audit(&app).await,
        &[("tenant_usage_mismatches", json!([key]))],
    );
    assert!(after_test_audit_failure(app).contains(&key));
}

#[tokio::test]
async fn a_running_count_that_differs_from_the_jobs_is_reported_with_its_tenant() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, _, _) = tenant_and_video(&app, false).await;
    write(
        &app,
        &[(
            "UPDATE tenant_running SET running = running + 1 WHERE tenant_id = $1 AND mode = 'test'",
            vec![tenant.clone()],
        )],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[(
            "tenant_running_mismatches",
            json!([format!("{tenant}:test")]),
        )],
    );
    assert!(after_test_audit_failure(app).contains(&tenant));
}

#[tokio::test]
async fn provider_slots_in_use_that_differ_from_the_jobs_are_reported_with_their_provider() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    tenant_and_video(&app, false).await;
    write(
        &app,
        &[(
            "INSERT INTO provider_slots (provider, in_use) VALUES ('sandbox', 2) \
             ON CONFLICT (provider) DO UPDATE SET in_use = provider_slots.in_use + 2",
            vec![],
        )],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("provider_slot_mismatches", json!(["sandbox"]))],
    );
    assert!(after_test_audit_failure(app).contains("sandbox"));
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
    // The count agrees with the slots the jobs name: only the finished job is wrong.
    assert_trips(
        &audit(&app).await,
        &[("provider_slot_mismatches", json!([id]))],
    );
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
    assert_trips(
        &audit(&app).await,
        &[("mode_violations", json!(["txn_injected_adjustment_2"]))],
    );
    assert!(after_test_audit_failure(app).contains("txn_injected_adjustment_2"));
}

/// The journal transaction of a video's capture.
async fn capture_txn(app: &TestApp, video: &str) -> String {
    sqlx::query(
        "SELECT DISTINCT txn_id FROM ledger_entries WHERE video_id = $1 AND kind = 'capture'",
    )
    .bind(video)
    .fetch_one(app.db.pool())
    .await
    .expect("capture")
    .get(0)
}

#[tokio::test]
async fn a_one_sided_entry_is_reported_in_the_journal_sum_and_as_unbalanced() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    // Credits out of nowhere, cache updated. A non-zero journal sum always comes with a
    // transaction that does not balance: the sum is the sum of the transactions' sums.
    post_as(
        &app,
        "txn_injected_one_sided",
        "grant",
        &tenant,
        None,
        &[(&account(&tenant, "available"), 5)],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[
            ("journal_sum", json!(5)),
            ("unbalanced_transactions", json!(["txn_injected_one_sided"])),
        ],
    );
    assert!(after_test_audit_failure(app).contains("txn_injected_one_sided"));
}

#[tokio::test]
async fn transactions_that_do_not_balance_are_reported_even_when_the_journal_sums_to_zero() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    // A grant's two lines written as two transactions: each one-sided, together zero.
    post_as(
        &app,
        "txn_injected_credit",
        "grant",
        &tenant,
        None,
        &[(&account(&tenant, "available"), 5)],
    )
    .await;
    post_as(
        &app,
        "txn_injected_debit",
        "grant",
        &tenant,
        None,
        &[("system:test:grants", -5)],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[(
            "unbalanced_transactions",
            json!(["txn_injected_credit", "txn_injected_debit"]),
        )],
    );
    assert!(after_test_audit_failure(app).contains("txn_injected_debit"));
}

#[tokio::test]
async fn a_cached_balance_that_differs_from_its_entries_is_reported_with_its_account() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let available = account(&tenant, "available");
    write(
        &app,
        &[(
            "UPDATE ledger_accounts SET balance = balance + 5 WHERE id = $1",
            vec![available.clone()],
        )],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("mismatched_accounts", json!([available]))],
    );
    assert!(after_test_audit_failure(app).contains(&available));
}

#[tokio::test]
async fn a_capture_posted_in_two_transactions_is_reported_as_settled_twice() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    // Half of the capture moved into a second capture transaction: the amounts, the holds
    // account and the charge all stay right; only the count of settlements is wrong.
    let txn = capture_txn(&app, &id).await;
    let holds = account(&tenant, "holds");
    write(
        &app,
        &[
            (
                "UPDATE ledger_entries SET amount = amount / 2 WHERE txn_id = $1",
                vec![txn],
            ),
            (
                "INSERT INTO ledger_entries (txn_id, account_id, tenant_id, mode, kind, amount, video_id, created_at) \
                 VALUES ('txn_injected_half', $1, $2, 'test', 'capture', -100, $3, 0), \
                        ('txn_injected_half', 'system:test:revenue', $2, 'test', 'capture', 100, $3, 0)",
                vec![holds, tenant, id.clone()],
            ),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("holds_settled_more_than_once", json!([id]))],
    );
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_job_without_a_hold_is_reported() {
    let app = TestApp::spawn().await;
    let (_, _, id) = tenant_and_video(&app, true).await;
    // A failed job (it counts nothing against the caps) that never reserved its price.
    write(
        &app,
        &[(
            "INSERT INTO videos (id, tenant_id, mode, model, request, status, cost_reserved, cost_charged, \
                                 created_at, updated_at, next_run_at) \
             SELECT 'video_injected', tenant_id, mode, model, request, 'failed', cost_reserved, 0, \
                    created_at, updated_at, next_run_at FROM videos WHERE id = $1",
            vec![id],
        )],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("holds_disagreeing", json!(["video_injected"]))],
    );
    assert!(after_test_audit_failure(app).contains("video_injected"));
}

#[tokio::test]
async fn a_hold_posting_without_a_hold_row_is_reported() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    // A void for a video no hold (nor job) knows, moving nothing on balance.
    let available = account(&tenant, "available");
    post(
        &app,
        "void",
        &tenant,
        Some("video_ghost"),
        &[(&available, -5), (&available, 5)],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("holds_disagreeing", json!(["video_ghost"]))],
    );
    assert!(after_test_audit_failure(app).contains("video_ghost"));
}

#[tokio::test]
async fn credits_parked_on_a_holds_account_without_a_hold_are_reported_with_the_account() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let holds = account(&tenant, "holds");
    post(
        &app,
        "adjustment",
        &tenant,
        None,
        &[(&account(&tenant, "available"), -5), (&holds, 5)],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("holds_accounts_mismatched", json!([holds]))],
    );
    assert!(after_test_audit_failure(app).contains(&holds));
}

#[tokio::test]
async fn a_job_charged_above_its_reservation_is_reported_as_overcharged() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    // The job says 300 of 200 reserved (and the day's usage agrees); the hold and the journal
    // say 200. A job charge above the reservation that the journal did not take is also a
    // charge that disagrees with the journal: both lists name it.
    write(
        &app,
        &[
            (
                "UPDATE videos SET cost_charged = 300 WHERE id = $1",
                vec![id.clone()],
            ),
            (
                "UPDATE tenant_usage SET credits = credits + 100 WHERE tenant_id = $1 AND mode = 'test'",
                vec![tenant],
            ),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[
            ("overcharged_videos", json!([id])),
            ("charges_disagreeing", json!([id])),
        ],
    );
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_hold_captured_above_its_amount_is_reported_as_overcharged() {
    let app = TestApp::spawn().await;
    let (_, _, id) = tenant_and_video(&app, true).await;
    write(
        &app,
        &[(
            "UPDATE holds SET captured = 300 WHERE video_id = $1",
            vec![id.clone()],
        )],
    )
    .await;
    assert_trips(&audit(&app).await, &[("overcharged_videos", json!([id]))]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_journal_capture_above_the_hold_is_reported_as_overcharged() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    // Revenue took 100 more from the tenant's balance in the capture; the job and the hold
    // still say 200, so the charge also disagrees with the journal.
    let txn = capture_txn(&app, &id).await;
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
                vec![txn, account(&tenant, "available"), tenant.clone(), id.clone()],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance + 100 WHERE id = 'system:test:revenue'",
                vec![],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance - 100 WHERE id = $1",
                vec![account(&tenant, "available")],
            ),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[
            ("overcharged_videos", json!([id])),
            ("charges_disagreeing", json!([id])),
        ],
    );
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_job_charge_below_what_the_journal_captured_is_reported() {
    let app = TestApp::spawn().await;
    let (tenant, _, id) = tenant_and_video(&app, true).await;
    write(
        &app,
        &[
            (
                "UPDATE videos SET cost_charged = 150 WHERE id = $1",
                vec![id.clone()],
            ),
            (
                "UPDATE tenant_usage SET credits = credits - 50 WHERE tenant_id = $1 AND mode = 'test'",
                vec![tenant],
            ),
        ],
    )
    .await;
    assert_trips(&audit(&app).await, &[("charges_disagreeing", json!([id]))]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn money_moved_into_another_tenant_s_account_is_reported_with_its_transaction() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let (other, _) = app.tenant_with_key("test", 1000).await;
    post(
        &app,
        "adjustment",
        &tenant,
        None,
        &[
            (&account(&tenant, "available"), -10),
            (&account(&other, "available"), 10),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("tenant_violations", json!(["txn_injected_adjustment_2"]))],
    );
    assert!(after_test_audit_failure(app).contains("txn_injected_adjustment_2"));
}

#[tokio::test]
async fn a_video_s_money_posted_for_another_tenant_is_reported_with_its_transaction() {
    let app = TestApp::spawn().await;
    let (_, _, id) = tenant_and_video(&app, true).await;
    let (other, _) = app.tenant_with_key("test", 1000).await;
    // The other tenant's own accounts, but in the name of the first tenant's video.
    post(
        &app,
        "adjustment",
        &other,
        Some(&id),
        &[
            (&account(&other, "available"), -10),
            ("system:test:grants", 10),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("tenant_violations", json!(["txn_injected_adjustment_2"]))],
    );
    assert!(after_test_audit_failure(app).contains("txn_injected_adjustment_2"));
}

/// A test-mode tenant with 1,000 paid and 5,000 promotional credits, and a 200-credit video
/// paid from promotional credit, completed or left running.
async fn promotional_video(app: &TestApp, finish: bool) -> (String, String) {
    let (tenant, key) = app.tenant_with_key("test", 1000).await;
    let granted = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/grants"),
            json!({"amount": 5000, "reason": "launch", "mode": "test", "credit_type": "promotional"}),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::CREATED);
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
        assert_eq!(app.wait_terminal(&key, &id).await["status"], "completed");
    }
    app.assert_ledger_consistent().await;
    (tenant, id)
}

#[tokio::test]
async fn a_refund_of_promotional_credit_paid_out_as_paid_credit_is_reported_with_its_video() {
    let app = TestApp::spawn().await;
    let (tenant, id) = promotional_video(&app, true).await;
    // The refund the gateway once made: the whole charge to the paid balance.
    post(
        &app,
        "refund",
        &tenant,
        Some(&id),
        &[
            ("system:test:revenue", -200),
            (&account(&tenant, "available"), 200),
        ],
    )
    .await;
    assert_trips(&audit(&app).await, &[("split_violations", json!([id]))]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn a_hold_taken_from_paid_credit_while_its_row_says_promotional_is_reported() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, id) = promotional_video(&app, false).await;
    let available = account(&tenant, "available");
    let promotional = account(&tenant, "promotional");
    write(
        &app,
        &[
            (
                "UPDATE ledger_entries SET account_id = $1 \
                 WHERE video_id = $2 AND kind = 'hold' AND account_id = $3",
                vec![available.clone(), id.clone(), promotional.clone()],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance - 200 WHERE id = $1",
                vec![available],
            ),
            (
                "UPDATE ledger_accounts SET balance = balance + 200 WHERE id = $1",
                vec![promotional],
            ),
        ],
    )
    .await;
    assert_trips(&audit(&app).await, &[("split_violations", json!([id]))]);
    assert!(after_test_audit_failure(app).contains(&id));
}

#[tokio::test]
async fn an_available_balance_below_the_floor_is_reported_with_its_account() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let available = account(&tenant, "available");
    // Test money is never lent: its floor is zero.
    post(
        &app,
        "adjustment",
        &tenant,
        None,
        &[(&available, -1001), ("system:test:grants", 1001)],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("accounts_below_floor", json!([available]))],
    );
    assert!(after_test_audit_failure(app).contains(&available));
}

#[tokio::test]
async fn a_wallet_or_promotional_balance_below_zero_is_reported_with_its_account() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1000).await;
    let promotional = account(&tenant, "promotional");
    let wallet = account(&tenant, "wallet:dora");
    write(
        &app,
        &[(
            "INSERT INTO ledger_accounts (id, tenant_id, mode, kind, balance, updated_at) \
             VALUES ($1, $3, 'test', 'promotional', 0, 0), ($2, $3, 'test', 'wallet', 0, 0)",
            vec![promotional.clone(), wallet.clone(), tenant.clone()],
        )],
    )
    .await;
    post(
        &app,
        "adjustment",
        &tenant,
        None,
        &[
            (&promotional, -5),
            (&wallet, -5),
            (&account(&tenant, "available"), 10),
        ],
    )
    .await;
    assert_trips(
        &audit(&app).await,
        &[("accounts_below_floor", json!([promotional, wallet]))],
    );
    assert!(after_test_audit_failure(app).contains(&wallet));
}
