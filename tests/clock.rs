//! Time-bound rules on a moved clock, without sleeping: a tenant's day and month caps turn
//! over at UTC midnight and at the month's end, with `Retry-After` counting to midnight, and a
//! key stops at its expiry even while this replica has it cached.
//!
//! The clock (`seedance_gateway::clock`) is the process's, so the tests of this binary take
//! turns and put it back when they end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::{TestApp, ADMIN_TOKEN};
use reqwest::StatusCode;
use seedance_gateway::clock;
use serde_json::{json, Value};

/// Held by a test while it moves the clock; puts the real time back when dropped.
struct MovedClock(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>);

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn moved_clock() -> MovedClock {
    MovedClock(TURN.lock().await)
}

impl Drop for MovedClock {
    fn drop(&mut self) {
        clock::set_offset_ms(0);
    }
}

// 2027-01-31T23:59:50Z, 2027-02-01T00:00:05Z, 2027-02-02T12:00:00Z, 2027-02-03T12:00:00Z,
// 2027-03-01T00:00:01Z.
const JAN_31_23_59_50: i64 = 1_801_439_990_000;
const FEB_1_00_00_05: i64 = 1_801_440_005_000;
const FEB_2_NOON: i64 = 1_801_569_600_000;
const FEB_3_NOON: i64 = 1_801_656_000_000;
const MAR_1_00_00_01: i64 = 1_803_859_201_000;

async fn create(app: &TestApp, key: &str) -> (StatusCode, Option<String>, Value) {
    let response = app
        .create_video(
            key,
            json!({"model": "seedance-2.0-fast", "prompt": "a clock", "seconds": 4}),
        )
        .await;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_tenants_day_and_month_caps_turn_over_at_utc_midnight_and_the_month_end() {
    let _clock = moved_clock().await;
    let app = TestApp::spawn_with(|c| {
        c.providers.sandbox.delay_ms = 600_000;
        // The jobs stay running across the moved days, holding their credits.
        c.workers.hold_timeout_secs = 365 * 24 * 3600;
    })
    .await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    let response = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/quotas")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"credits_per_day": 200, "credits_per_month": 400}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);

    // Ten seconds before midnight: the day's 200 credits go on one video.
    clock::set_now_ms(JAN_31_23_59_50);
    assert_eq!(create(&app, &key).await.0, StatusCode::OK);
    let (status, retry_after, body) = create(&app, &key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "tenant_daily_credits_exceeded");
    let wait: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!(
        (9..=10).contains(&wait),
        "Retry-After counts to midnight: {wait}"
    );

    // Past midnight, in a new month too: the caps start again.
    clock::set_now_ms(FEB_1_00_00_05);
    assert_eq!(create(&app, &key).await.0, StatusCode::OK);
    clock::set_now_ms(FEB_2_NOON);
    assert_eq!(create(&app, &key).await.0, StatusCode::OK);
    // February's 400 credits are spent, whatever the day.
    clock::set_now_ms(FEB_3_NOON);
    let (status, _, body) = create(&app, &key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "tenant_monthly_credits_exceeded");
    clock::set_now_ms(MAR_1_00_00_01);
    assert_eq!(create(&app, &key).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_expiring_key_stops_at_its_expiry_even_while_cached() {
    let _clock = moved_clock().await;
    let app = TestApp::spawn().await;
    let (tenant, _) = app.tenant_with_key("test", 1_000).await;
    let key: Value = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant}/keys"),
            json!({"mode": "test", "expires_in_secs": 3600}),
        )
        .await
        .json()
        .await
        .expect("key");
    let secret = key["secret"].as_str().expect("secret");
    let (status, _) = app.get_json(secret, "/v1/balance").await;
    assert_eq!(status, StatusCode::OK);
    clock::set_offset_ms(3_599_000);
    let (status, _) = app.get_json(secret, "/v1/balance").await;
    assert_eq!(status, StatusCode::OK, "a second before its expiry");
    clock::set_offset_ms(3_601_000);
    let (status, body) = app.get_json(secret, "/v1/balance").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key");
}
