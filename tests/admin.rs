//! The operator API: tenants, keys, grants, audit — and who may call it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use common::{TestApp, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn the_admin_api_refuses_callers_without_the_operator_token() {
    let app = TestApp::spawn().await;
    let (_, tenant_key) = app.tenant_with_key("live", 0).await;
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(tenant_key.as_str()),
    ] {
        let mut request = app.client.get(app.url("/admin/v1/tenants"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let ok = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_generated_admin_token_opens_the_admin_api() {
    let app = TestApp::spawn().await;
    let token = seedance_gateway::domain::admin::issue_admin_token(&app.db)
        .await
        .expect("token");
    assert!(token.starts_with("sgw_admin_"));
    let response = app
        .client
        .get(app.url("/admin/v1/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn keys_are_shown_once_and_listed_by_prefix_only() {
    let app = TestApp::spawn().await;
    let tenant: Value = app
        .admin_post("/admin/v1/tenants", json!({"name": "acme"}))
        .await
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id");
    let created = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant_id}/keys"),
            json!({"mode": "live", "name": "prod"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("sgw_live_") && secret.len() == "sgw_live_".len() + 40);
    assert!(secret.starts_with(created["display_prefix"].as_str().expect("prefix")));
    let listed = app
        .admin_get(&format!("/admin/v1/tenants/{tenant_id}/keys"))
        .await
        .text()
        .await
        .expect("text");
    assert!(
        !listed.contains(secret),
        "a listing must never show the secret"
    );
    assert!(listed.contains(created["display_prefix"].as_str().expect("prefix")));
}

#[tokio::test]
async fn grants_credit_the_right_balance_and_are_journaled() {
    let app = TestApp::spawn().await;
    let tenant: Value = app
        .admin_post("/admin/v1/tenants", json!({"name": "acme"}))
        .await
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id");
    let grant = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant_id}/grants"),
            json!({"amount": 2500, "reason": "welcome", "actor": "ops@example.com"}),
        )
        .await;
    assert_eq!(grant.status(), StatusCode::CREATED);
    let grant: Value = grant.json().await.expect("json");
    assert_eq!(grant["available"], 2500);
    assert!(grant["txn_id"]
        .as_str()
        .is_some_and(|t| t.starts_with("txn_")));
    let balance = app.balance(tenant_id).await;
    assert_eq!(
        (
            balance["available"].as_i64(),
            balance["test_available"].as_i64()
        ),
        (Some(2500), Some(0))
    );

    for bad in [
        json!({"amount": 0, "reason": "x"}),
        json!({"amount": -5, "reason": "x"}),
        json!({"amount": 5, "reason": " "}),
        json!({"amount": 5, "reason": "x", "mode": "play"}),
    ] {
        let response = app
            .admin_post(&format!("/admin/v1/tenants/{tenant_id}/grants"), bad)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        app.balance(tenant_id).await["available"].as_i64(),
        Some(2500)
    );
    let missing = app
        .admin_post(
            "/admin/v1/tenants/ten_missing/grants",
            json!({"amount": 5, "reason": "x"}),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let audit: Value = app
        .admin_get("/admin/v1/ledger/audit")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(audit["ok"], true);
    assert_eq!(audit["journal_sum"], 0);
}

#[tokio::test]
async fn a_postpaid_tenant_may_spend_down_to_its_floor_and_no_further() {
    let app = TestApp::spawn().await;
    let prepaid_with_floor = app
        .admin_post(
            "/admin/v1/tenants",
            json!({"name": "x", "billing_kind": "prepaid", "credit_floor": -100}),
        )
        .await;
    assert_eq!(prepaid_with_floor.status(), StatusCode::BAD_REQUEST);
    let tenant: Value = app
        .admin_post(
            "/admin/v1/tenants",
            json!({"name": "internal team", "billing_kind": "postpaid", "credit_floor": -600}),
        )
        .await
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id");
    let key: Value = app
        .admin_post(
            &format!("/admin/v1/tenants/{tenant_id}/keys"),
            json!({"mode": "live"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let key = key["secret"].as_str().expect("secret");
    // 5 s of seedance-2.0 = 300 credits: two fit above -600, the third does not.
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::PAYMENT_REQUIRED] {
        assert_eq!(
            app.create_video(key, json!({"prompt": "x"})).await.status(),
            expected
        );
    }
    let balance = app.balance(tenant_id).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(-600), Some(600))
    );
}
