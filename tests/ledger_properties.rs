//! Randomized sequences of grants, creates, failures, cancels, waits and restarts: after every
//! step the journal balances and credits are conserved; at the end every job is settled
//! exactly once and charged at most what it reserved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestApp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Available, held and charged (revenue from this tenant), read in one statement so that a
/// capture running meanwhile cannot make the sum look wrong.
async fn snapshot(app: &TestApp, tenant: &str) -> (i64, i64, i64) {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT (SELECT balance FROM ledger_accounts WHERE id = $1), \
                (SELECT balance FROM ledger_accounts WHERE id = $2), \
                (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries \
                  WHERE tenant_id = $3 AND mode = 'test' AND kind = 'capture' AND account_id LIKE 'system:%')",
    )
    .bind(format!("{tenant}:test:available"))
    .bind(format!("{tenant}:test:holds"))
    .bind(tenant)
    .fetch_one(app.db.pool())
    .await
    .expect("snapshot");
    (row.get(0), row.get(1), row.get(2))
}

async fn check_invariants(app: &TestApp, tenant: &str, granted: i64) -> i64 {
    app.assert_ledger_consistent().await;
    let (available, held, charged) = snapshot(app, tenant).await;
    assert_eq!(
        available + held + charged,
        granted,
        "credits are conserved: {available} + {held} + {charged}"
    );
    assert!(available >= 0, "a prepaid tenant never goes below zero");
    charged
}

#[tokio::test]
async fn random_sequences_keep_the_ledger_exact() {
    for seed in [7_u64, 42, 2026] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 250).await;
        let (tenant, key) = app.tenant_with_key("test", 1000).await;
        let mut granted = 1000;
        let mut created: Vec<String> = Vec::new();
        for _ in 0..30 {
            match rng.gen_range(0..10) {
                0 => {
                    let amount = rng.gen_range(1..500);
                    app.admin_post(
                        &format!("/admin/v1/tenants/{tenant}/grants"),
                        json!({"amount": amount, "reason": "random", "mode": "test"}),
                    )
                    .await;
                    granted += amount;
                }
                1..=4 => {
                    let seconds = rng.gen_range(4..=15);
                    let prompt = if rng.gen_bool(0.3) {
                        "please [sandbox:fail]"
                    } else {
                        "a clip"
                    };
                    let response = app
                        .create_video(&key, json!({"prompt": prompt, "seconds": seconds}))
                        .await;
                    match response.status() {
                        StatusCode::OK => {
                            let video: Value = response.json().await.expect("json");
                            created.push(video["id"].as_str().expect("id").to_string());
                        }
                        StatusCode::PAYMENT_REQUIRED => {}
                        other => panic!("seed {seed}: unexpected {other}"),
                    }
                }
                5 | 6 => {
                    if let Some(id) = created.get(rng.gen_range(0..created.len().max(1))).cloned() {
                        let status = app
                            .client
                            .post(app.url(&format!("/v1/videos/{id}/cancel")))
                            .bearer_auth(&key)
                            .send()
                            .await
                            .expect("send")
                            .status();
                        assert!(
                            status == StatusCode::OK || status == StatusCode::CONFLICT,
                            "seed {seed}: cancel {status}"
                        );
                    }
                }
                7 | 8 => tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await,
                _ => app.restart().await,
            }
            check_invariants(&app, &tenant, granted).await;
        }
        let mut settled = HashMap::new();
        for id in &created {
            let video = app.wait_terminal(&key, id).await;
            let kinds = common::ledger_kinds(&app.db, id).await;
            let expected = if video["status"] == "completed" {
                vec!["hold", "capture"]
            } else {
                vec!["hold", "void"]
            };
            assert_eq!(kinds, expected, "seed {seed}: {id} settled once: {video}");
            assert!(video["cost"]["charged"].as_i64() <= video["cost"]["reserved"].as_i64());
            settled.insert(id.clone(), video["status"].clone());
        }
        let charged = check_invariants(&app, &tenant, granted).await;
        let (_, list) = app.get_json(&key, "/v1/videos?limit=100").await;
        let charged_on_videos: i64 = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|v| v["cost"]["charged"].as_i64())
            .sum();
        assert_eq!(
            charged, charged_on_videos,
            "seed {seed}: the journal's revenue is what the videos say they were charged"
        );
        assert_eq!(app.balance(&tenant).await["test_held"].as_i64(), Some(0));
        assert_eq!(settled.len(), created.len());
    }
}
