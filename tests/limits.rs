//! Request rates: burst then spacing, 429 with its headers, failed-auth throttling, and one
//! Redis-backed limit shared by two running gateways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::{TestApp, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::json;

async fn set_rate(app: &TestApp, tenant: &str, per_minute: i64, burst: i64) {
    let response = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/limits")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"requests_per_minute": per_minute, "burst": burst}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_gets_its_burst_then_one_request_per_interval() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 0).await;
    set_rate(&app, &tenant, 60, 3).await;
    for _ in 0..3 {
        assert_eq!(app.get_json(&key, "/v1/videos").await.0, StatusCode::OK);
    }
    let limited = app
        .client
        .get(app.url("/v1/videos"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(limited.headers()["ratelimit-policy"], "60;w=60");
    assert!(limited.headers()["ratelimit"]
        .to_str()
        .expect("ascii")
        .contains("remaining=0"));
    let body: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        app.get_json(&key, "/v1/videos").await.0,
        StatusCode::OK,
        "one more after an interval"
    );
    assert_eq!(
        app.get_json(&key, "/v1/videos").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another tenant is not affected.
    let (_, other) = app.tenant_with_key("test", 0).await;
    assert_eq!(app.get_json(&other, "/v1/videos").await.0, StatusCode::OK);
}

#[tokio::test]
async fn repeated_failed_authentication_is_throttled() {
    let app = TestApp::spawn_with(|c| c.limits.failed_auth_per_minute = 5).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app
            .client
            .get(app.url("/v1/videos"))
            .bearer_auth(format!("sgw_test_{}", "x".repeat(40)))
            .send()
            .await
            .expect("send");
        statuses.push(response.status());
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5]);
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_backed_limit_is_shared_by_two_gateways() {
    let Some(redis) = common::services::redis("a_redis_backed_limit_is_shared_by_two_gateways")
    else {
        return;
    };
    let first = TestApp::spawn_with({
        let redis = redis.clone();
        move |c| c.limits.redis_url = Some(seedance_gateway::config::Secret::new(redis))
    })
    .await;
    let (tenant, key) = first.tenant_with_key("test", 0).await;
    set_rate(&first, &tenant, 60, 4).await;
    // A second gateway on the same database and Redis.
    let mut config = first.config.clone();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    let second = seedance_gateway::App::build(config)
        .await
        .expect("second gateway");
    let second_base = format!("http://{}", second.local_addr());
    let stop = second.shutdown_token();
    tokio::spawn(second.run());

    let mut allowed = 0;
    for n in 0..8 {
        let base = if n % 2 == 0 {
            first.base.clone()
        } else {
            second_base.clone()
        };
        let status = first
            .client
            .get(format!("{base}/v1/videos"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send")
            .status();
        if status == StatusCode::OK {
            allowed += 1;
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    assert_eq!(
        allowed, 4,
        "the burst of four is shared, not four per gateway"
    );
    stop.cancel();
}

async fn set_quotas(app: &TestApp, tenant: &str, body: serde_json::Value) {
    let response = app
        .client
        .put(app.url(&format!("/admin/v1/tenants/{tenant}/quotas")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenants_concurrency_cap_holds_under_parallel_load() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 60_000).await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    set_quotas(&app, &tenant, json!({"max_concurrent": 3})).await;
    let mut tasks = Vec::new();
    for n in 0..20 {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"prompt": format!("{n}"), "seconds": 4}))
                .send()
                .await
                .expect("send");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body["error"]["code"].clone())
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("task") {
            (StatusCode::OK, _) => accepted += 1,
            (status, code) => assert_eq!(
                (status, code),
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    json!("tenant_concurrency_exceeded")
                )
            ),
        }
    }
    assert_eq!(accepted, 3);
    let body: serde_json::Value = app
        .create_video(&key, json!({"prompt": "x"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["error"]["code"], "tenant_concurrency_exceeded");
}

#[tokio::test]
async fn failed_and_canceled_jobs_give_back_their_share_of_the_caps() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 300).await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    set_quotas(
        &app,
        &tenant,
        json!({"video_seconds_per_day": 12, "max_concurrent": 2, "credits_per_month": 100_000}),
    )
    .await;
    let create = |prompt: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let response = app
                .create_video(&key, json!({"prompt": prompt, "seconds": 4}))
                .await;
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    };
    // One job fails and one completes: only the completed one keeps its 4 seconds.
    let (status, failed) = create("a [sandbox:fail] job").await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    let (status, done) = create("a job").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let key_ref = key.as_str();
    assert_eq!(
        app.wait_terminal(key_ref, failed["id"].as_str().unwrap())
            .await["status"],
        "failed"
    );
    assert_eq!(
        app.wait_terminal(key_ref, done["id"].as_str().unwrap())
            .await["status"],
        "completed"
    );
    // 4 used: two more jobs fit (12), both running at once (the concurrency cap is 2).
    let (status, third) = create("third").await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let (status, fourth) = create("fourth").await;
    assert_eq!(status, StatusCode::OK, "{fourth}");
    let (status, refused) = create("fifth").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused["error"]["code"], "tenant_concurrency_exceeded");
    // Canceling one frees a running place and its 4 seconds.
    let canceled = app
        .client
        .post(app.url(&format!(
            "/v1/videos/{}/cancel",
            fourth["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(canceled.status(), StatusCode::OK);
    let (status, fifth) = create("fifth").await;
    assert_eq!(status, StatusCode::OK, "{fifth}");
    app.wait_terminal(key_ref, third["id"].as_str().unwrap())
        .await;
    app.wait_terminal(key_ref, fifth["id"].as_str().unwrap())
        .await;
    // 12 seconds used: the refused and canceled requests counted nothing.
    let (status, over) = create("sixth").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over["error"]["code"], "tenant_daily_seconds_exceeded");
    assert!(
        over["error"]["message"]
            .as_str()
            .unwrap()
            .contains("used 12 of 12"),
        "{over}"
    );
}

#[tokio::test]
async fn a_tenants_daily_video_seconds_and_credits_are_capped() {
    let app = TestApp::spawn().await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    set_quotas(
        &app,
        &tenant,
        json!({"video_seconds_per_day": 12, "credits_per_day": 100_000}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.create_video(&key, json!({"prompt": "x", "seconds": 4}))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let limited = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    let body: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["code"], "tenant_daily_seconds_exceeded");
    set_quotas(&app, &tenant, json!({"credits_per_day": 800})).await;
    let over_credits: serde_json::Value = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        over_credits["error"]["code"], "tenant_daily_credits_exceeded",
        "720 used + 240 > 800"
    );
}

#[tokio::test]
async fn a_tenants_monthly_credits_are_capped_and_a_failed_job_gives_its_share_back() {
    let app = TestApp::spawn_with(|c| c.providers.sandbox.delay_ms = 300).await;
    let (tenant, key) = app.tenant_with_key("test", 100_000).await;
    // 4 s at 60 credits/s = 240 a job: two fit in 500, a third does not.
    set_quotas(&app, &tenant, json!({"credits_per_month": 500})).await;
    let create = |prompt: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            let response = app
                .create_video(&key, json!({"prompt": prompt, "seconds": 4}))
                .await;
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    };
    let (status, failing) = create("a [sandbox:fail] job").await;
    assert_eq!(status, StatusCode::OK, "{failing}");
    let (status, first) = create("first").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, refused) = create("over the cap while the failing job holds its share").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["error"]["code"], "tenant_monthly_credits_exceeded");
    let failed = app
        .wait_terminal(&key, failing["id"].as_str().expect("id"))
        .await;
    assert_eq!(failed["status"], "failed");
    // The failed job's 240 came back: one more job fits, then the cap holds.
    let (status, second) = create("second").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, refused) = create("third").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["error"]["code"], "tenant_monthly_credits_exceeded");
    for video in [&first, &second] {
        app.wait_terminal(&key, video["id"].as_str().expect("id"))
            .await;
    }
    assert_eq!(
        app.balance(&tenant).await["test_available"].as_i64(),
        Some(100_000 - 480),
        "the refused creates held nothing"
    );
    app.assert_ledger_consistent().await;
}
