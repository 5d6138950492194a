//! Every amount that enters the gateway is bounded at the edge: the extremes of `i64`, 10^18
//! and the values a route has no meaning for are a 400 `invalid_request` naming the field, and
//! nothing moves. Runs on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::process::Command;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

const HUGE: i64 = 1_000_000_000_000_000_000; // 10^18

/// Everything money-shaped in the database, to show that a refused request changed nothing.
async fn money_snapshot(app: &TestApp) -> Vec<String> {
    let pool = app.db.pool();
    let mut lines = Vec::new();
    for row in sqlx::query("SELECT id, CAST(balance AS TEXT) AS b FROM ledger_accounts ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("accounts")
    {
        lines.push(format!(
            "account {} {}",
            row.get::<String, _>("id"),
            row.get::<String, _>("b")
        ));
    }
    let entries: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ledger_entries")
        .fetch_one(pool)
        .await
        .expect("entries")
        .get("n");
    lines.push(format!("entries {entries}"));
    for (table, key) in [
        ("tenants", "id"),
        ("tenant_quotas", "tenant_id"),
        ("tenant_prices", "tenant_id"),
        ("end_users", "user_id"),
    ] {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
            .fetch_all(pool)
            .await
            .expect("rows");
        lines.push(format!("{table} {}", rows.len()));
        for row in rows {
            use sqlx::Column;
            let mut cells = Vec::new();
            for column in row.columns() {
                let name = column.name();
                let text = row
                    .try_get::<Option<i64>, _>(name)
                    .map(|v| format!("{v:?}"))
                    .or_else(|_| {
                        row.try_get::<Option<String>, _>(name)
                            .map(|v| format!("{v:?}"))
                    })
                    .unwrap_or_else(|_| "?".into());
                cells.push(format!("{name}={text}"));
            }
            lines.push(cells.join(","));
        }
    }
    lines
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = match method {
        "PUT" => app.client.put(app.url(path)),
        _ => app.client.post(app.url(path)),
    };
    let response = request
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One route that takes an amount: how to send `value` in it, the `param` a refusal names,
/// and which values it refuses.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    admin: bool,
    param: &'static str,
    body: Box<dyn Fn(i64) -> Value>,
    refused: Vec<i64>,
}

#[tokio::test]
async fn out_of_range_amounts_are_refused_on_every_route_and_move_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 10_000).await;
    let admin = common::ADMIN_TOKEN;

    // A completed test-mode video to refund, and an end user with a funded wallet.
    let created = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await
        .json::<Value>()
        .await
        .expect("video");
    let video = created["id"].as_str().expect("id").to_string();
    let finished = app.wait_terminal(&key, &video).await;
    assert_eq!(finished["status"], "completed", "{finished}");
    let (status, _) = send(
        &app,
        "PUT",
        "/v1/end_users/u1",
        &key,
        json!({"wallet_mode": "first"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, funded) = send(
        &app,
        "POST",
        "/v1/end_users/u1/wallet",
        &key,
        json!({"amount": 100}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{funded}");

    let extremes = vec![i64::MIN, i64::MIN + 1, i64::MAX, HUGE, -HUGE];
    let with = |more: &[i64]| {
        let mut values = extremes.clone();
        values.extend_from_slice(more);
        values
    };
    let cases = vec![
        Case {
            what: "end-user wallet",
            method: "POST",
            path: "/v1/end_users/u1/wallet".into(),
            admin: false,
            param: "amount",
            body: Box::new(|v| json!({"amount": v})),
            refused: with(&[0]),
        },
        Case {
            what: "grant",
            method: "POST",
            path: format!("/admin/v1/tenants/{tenant}/grants"),
            admin: true,
            param: "amount",
            body: Box::new(|v| json!({"amount": v, "reason": "r", "mode": "test"})),
            refused: with(&[0, -1]),
        },
        Case {
            what: "adjustment",
            method: "POST",
            path: format!("/admin/v1/tenants/{tenant}/adjustments"),
            admin: true,
            param: "amount",
            body: Box::new(|v| json!({"amount": v, "reason": "r", "mode": "test"})),
            refused: with(&[0]),
        },
        Case {
            what: "refund",
            method: "POST",
            path: format!("/admin/v1/videos/{video}/refund"),
            admin: true,
            param: "amount",
            body: Box::new(|v| json!({"amount": v, "reason": "r"})),
            refused: with(&[0, -1]),
        },
        Case {
            what: "tenant credit floor",
            method: "POST",
            path: "/admin/v1/tenants".into(),
            admin: true,
            param: "credit_floor",
            body: Box::new(|v| json!({"name": "n", "billing_kind": "postpaid", "credit_floor": v})),
            refused: with(&[1]),
        },
        Case {
            what: "tenant caps",
            method: "PUT",
            path: format!("/admin/v1/tenants/{tenant}/quotas"),
            admin: true,
            param: "credits_per_day",
            body: Box::new(|v| json!({"credits_per_day": v})),
            refused: with(&[-1]),
        },
        Case {
            what: "tenant monthly cap",
            method: "PUT",
            path: format!("/admin/v1/tenants/{tenant}/quotas"),
            admin: true,
            param: "credits_per_month",
            body: Box::new(|v| json!({"credits_per_month": v})),
            refused: with(&[-1]),
        },
        Case {
            what: "price list",
            method: "PUT",
            path: format!("/admin/v1/tenants/{tenant}/prices"),
            admin: true,
            param: "rules.credits_per_second",
            body: Box::new(
                |v| json!({"kind": "fixed", "rules": [{"model": "seedance-2.0", "credits_per_second": v}]}),
            ),
            refused: with(&[-1]),
        },
        Case {
            what: "end-user daily limit",
            method: "PUT",
            path: "/v1/end_users/u1".into(),
            admin: false,
            param: "credits_per_day",
            body: Box::new(|v| json!({"credits_per_day": v, "wallet_mode": "first"})),
            refused: with(&[-1]),
        },
        Case {
            what: "end-user monthly limit",
            method: "PUT",
            path: "/v1/end_users/u1".into(),
            admin: false,
            param: "credits_per_month",
            body: Box::new(|v| json!({"credits_per_month": v, "wallet_mode": "first"})),
            refused: with(&[-1]),
        },
        Case {
            what: "quote cost ceiling",
            method: "POST",
            path: "/v1/videos/quote".into(),
            admin: false,
            param: "routing.max_cost_credits",
            body: Box::new(|v| json!({"prompt": "x", "routing": {"max_cost_credits": v}})),
            refused: with(&[-1]),
        },
    ];

    let mut tried = 0;
    for case in &cases {
        let token = if case.admin { admin } else { key.as_str() };
        for value in &case.refused {
            let before = money_snapshot(&app).await;
            let (status, body) =
                send(&app, case.method, &case.path, token, (case.body)(*value)).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{} {value}: {body}",
                case.what
            );
            assert_eq!(
                body["error"]["code"], "invalid_request",
                "{} {value}: {body}",
                case.what
            );
            assert_eq!(
                body["error"]["param"], case.param,
                "{} {value}: {body}",
                case.what
            );
            assert_eq!(
                money_snapshot(&app).await,
                before,
                "{} {value} changed something",
                case.what
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 68, "amounts tried");

    // The signed routes still do what a small negative amount means: a withdrawal, a debit.
    let (status, body) = send(
        &app,
        "POST",
        "/v1/end_users/u1/wallet",
        &key,
        json!({"amount": -1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        &app,
        "POST",
        &format!("/admin/v1/tenants/{tenant}/adjustments"),
        admin,
        json!({"amount": -1, "reason": "r", "mode": "test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let audit = app.admin_get("/admin/v1/ledger/audit").await;
    assert_eq!(audit.status(), StatusCode::OK);
    let audit: Value = audit.json().await.expect("audit");
    assert_eq!(audit["ok"], true, "{audit}");
}

/// The attack that used to mint credits: i64::MIN into a wallet, then a large withdrawal.
#[tokio::test]
async fn a_wallet_cannot_be_overdrawn_through_a_wrapping_amount() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("live", 1_000).await;
    let (status, _) = send(
        &app,
        "PUT",
        "/v1/end_users/u1",
        &key,
        json!({"wallet_mode": "only"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let before = app.balance(&tenant).await;
    let (status, body) = send(
        &app,
        "POST",
        "/v1/end_users/u1/wallet",
        &key,
        json!({"amount": i64::MIN}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        &app,
        "POST",
        "/v1/end_users/u1/wallet",
        &key,
        json!({"amount": -1_000_000_000_000i64}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert_eq!(app.balance(&tenant).await, before);
    // The wallet (empty) cannot pay for a video.
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4, "user": "u1"}))
        .await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let audit: Value = app
        .admin_get("/admin/v1/ledger/audit")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["ok"], true, "{audit}");
}

/// The database itself refuses a money column that is not an integer (SQLite would otherwise
/// store a REAL on overflow).
#[tokio::test]
async fn the_database_refuses_non_integer_money() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1_000).await;
    let account = format!("{tenant}:test:available");
    let before: String =
        sqlx::query("SELECT CAST(balance AS TEXT) AS b FROM ledger_accounts WHERE id = $1")
            .bind(&account)
            .fetch_one(app.db.pool())
            .await
            .expect("balance")
            .get("b");
    // Past the 64-bit range: SQLite turns the result into a REAL, PostgreSQL raises.
    let overflow = sqlx::query("UPDATE ledger_accounts SET balance = balance + 9223372036854775807 + 9223372036854775807 WHERE id = $1")
        .bind(&account)
        .execute(app.db.pool())
        .await;
    let refusal = overflow
        .expect_err("an overflowing balance was stored")
        .to_string();
    let expected = if app.database.is_postgres() {
        "out of range"
    } else {
        "hold integers only"
    };
    assert!(refusal.contains(expected), "{refusal}");
    let real = sqlx::query("UPDATE ledger_accounts SET balance = 1.5 WHERE id = $1")
        .bind(&account)
        .execute(app.db.pool())
        .await;
    if app.database.is_postgres() {
        // PostgreSQL rounds a numeric literal into BIGINT; what matters is the stored type.
        sqlx::query("UPDATE ledger_accounts SET balance = CAST($2 AS BIGINT) WHERE id = $1")
            .bind(&account)
            .bind(before.parse::<i64>().expect("integer"))
            .execute(app.db.pool())
            .await
            .expect("restore");
    } else {
        let refusal = real
            .expect_err("a REAL balance was stored on SQLite")
            .to_string();
        assert!(refusal.contains("hold integers only"), "{refusal}");
    }
    let after: String =
        sqlx::query("SELECT CAST(balance AS TEXT) AS b FROM ledger_accounts WHERE id = $1")
            .bind(&account)
            .fetch_one(app.db.pool())
            .await
            .expect("balance")
            .get("b");
    assert_eq!(after, before);
}

fn gateway(args: &[&str], database_url: &str, dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seedance-gateway"))
        .args(args)
        .env("SEEDANCE_GW_DATABASE__URL", database_url)
        .env("SEEDANCE_GW_STORAGE__DIR", dir.join("storage"))
        .env_remove("SEEDANCE_GW_ADMIN__TOKEN")
        .env_remove("DATABASE_URL")
        .current_dir(dir)
        .output()
        .expect("run the gateway binary")
}

#[tokio::test]
async fn the_cli_refuses_out_of_range_amounts_and_moves_nothing() {
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1_000).await;
    let dir = tempfile::tempdir().expect("dir");
    let before = money_snapshot(&app).await;
    let min = i64::MIN.to_string();
    let max = i64::MAX.to_string();
    let huge = HUGE.to_string();
    let mut tried = 0;
    for value in [min.as_str(), max.as_str(), huge.as_str(), "-1", "0"] {
        let output = gateway(
            &[
                "credits", "grant", "--tenant", &tenant, "--amount", value, "--reason", "r",
            ],
            &app.database.url,
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "credits grant {value} succeeded");
        assert!(stderr.contains("amount"), "credits grant {value}: {stderr}");
        tried += 1;
    }
    for value in [min.as_str(), huge.as_str(), "1"] {
        let output = gateway(
            &[
                "tenants",
                "create",
                "--name",
                "n",
                "--postpaid",
                "--credit-floor",
                value,
            ],
            &app.database.url,
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "tenants create --credit-floor {value} succeeded"
        );
        assert!(
            stderr.contains("credit"),
            "tenants create {value}: {stderr}"
        );
        tried += 1;
    }
    for value in [min.as_str(), max.as_str(), huge.as_str(), "-1", "0"] {
        let output = gateway(
            &["bootstrap", "--tenant-name", "other", "--credits", value],
            &app.database.url,
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "bootstrap --credits {value} succeeded"
        );
        assert!(stderr.contains("credits"), "bootstrap {value}: {stderr}");
        tried += 1;
    }
    for value in [min.as_str(), max.as_str(), huge.as_str(), "-1"] {
        for flag in ["--credits-per-day", "--credits-per-month"] {
            let output = gateway(
                &["quotas", "set", "--tenant", &tenant, flag, value],
                &app.database.url,
                dir.path(),
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success(),
                "quotas set {flag} {value} succeeded"
            );
            assert!(
                stderr.contains("credits_per_"),
                "quotas set {flag} {value}: {stderr}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 21);
    assert_eq!(money_snapshot(&app).await, before);
}
