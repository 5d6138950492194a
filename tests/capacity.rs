//! Per-provider concurrency caps and the durable fair queue: a provider never runs more jobs
//! than its cap, a backlog waits in the gateway and is dispatched as slots free, fairly
//! across tenants.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::Duration;

use common::TestApp;
use fake_upstream::{FakeUpstream, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::Secret;
use serde_json::{json, Value};

async fn capped_gateway(fake: &FakeUpstream, cap: u32) -> TestApp {
    let base = fake.base_url("seedance-it");
    TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        let upstream = config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.max_concurrent = Some(cap);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_waits_for_slots_and_another_tenant_is_not_starved() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    // Long enough that the whole backlog and the quiet tenant's job are queued before the
    // first slot frees, even on a loaded machine.
    fake.set_job_duration(Duration::from_millis(2000));
    let app = capped_gateway(&fake, 2).await;
    let (_, busy) = app.tenant_with_key("live", 100_000).await;
    let (_, quiet) = app.tenant_with_key("live", 100_000).await;

    let mut ids = Vec::new();
    for n in 0..8 {
        let response = app
            .create_video(
                &busy,
                json!({"model": "seedance-2.0-fast", "prompt": format!("busy {n}"), "seconds": 4}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let video: Value = response.json().await.expect("json");
        ids.push((busy.clone(), video["id"].as_str().expect("id").to_string()));
    }
    let response = app
        .create_video(
            &quiet,
            json!({"model": "seedance-2.0-fast", "prompt": "quiet", "seconds": 4}),
        )
        .await;
    let video: Value = response.json().await.expect("json");
    assert_eq!(
        video["status"], "queued",
        "the provider is full: the job waits in the gateway"
    );
    ids.push((quiet.clone(), video["id"].as_str().expect("id").to_string()));

    for (key, id) in &ids {
        let done =
            common::wait_terminal(&app.client, &app.base, key, id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(
        fake.max_running("seedance-it"),
        2,
        "the cap was used and never exceeded"
    );
    let order: Vec<String> = fake
        .calls("seedance-it")
        .into_iter()
        .filter(|c| c.op == "submit")
        .map(|c| c.body["prompt"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(order.len(), 9, "each job submitted once: {order:?}");
    let quiet_turn = order
        .iter()
        .position(|p| p == "quiet")
        .expect("quiet submitted");
    assert!(
        quiet_turn <= 3,
        "the quiet tenant waited at most one slot's turn: {order:?}"
    );
    assert_eq!(
        app.db
            .slots_in_use(seedance_gateway::types::ids::ProviderId::SeedanceIt)
            .await
            .expect("slots"),
        0,
        "every slot was given back"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canceling_a_running_job_frees_its_slot() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_secs(30));
    let app = capped_gateway(&fake, 1).await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let first: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "first", "seconds": 4}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["status"], "in_progress");
    let second: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "second", "seconds": 4}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(second["status"], "queued");
    let cancel = app
        .client
        .post(app.url(&format!(
            "/v1/videos/{}/cancel",
            first["id"].as_str().expect("id")
        )))
        .bearer_auth(&key)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, video) = app
            .get_json(
                &key,
                &format!("/v1/videos/{}", second["id"].as_str().expect("id")),
            )
            .await;
        if video["status"] == "in_progress" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued job never got the freed slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.db
            .slots_in_use(seedance_gateway::types::ids::ProviderId::SeedanceIt)
            .await
            .expect("slots"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submits_keep_to_the_providers_rate_across_the_queue() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(200));
    let base = fake.base_url("seedance-it");
    let app = TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        let upstream = config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.max_concurrent = Some(10);
        // One submit every 500 ms, two back to back.
        upstream.submits_per_minute = Some(120);
        upstream.submit_burst = Some(2);
    })
    .await;
    let (_, key) = app.tenant_with_key("live", 100_000).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let video: Value = app
            .create_video(
                &key,
                json!({"model": "seedance-2.0-fast", "prompt": format!("clip {n}"), "seconds": 4}),
            )
            .await
            .json()
            .await
            .expect("json");
        ids.push(video["id"].as_str().expect("id").to_string());
    }
    for id in &ids {
        let done =
            common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "completed");
    }
    let times: Vec<u64> = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "submit")
        .map(|c| c.at_ms)
        .collect();
    assert_eq!(times.len(), 5);
    // GCRA with a burst of two: the n-th submit is no earlier than (n - 1) × 500 ms after the first.
    for (n, at) in times.iter().enumerate().skip(2) {
        assert!(
            at - times[0] >= (n as u64 - 1) * 500 - 50,
            "submit {n} came {} ms after the first: {times:?}",
            at - times[0]
        );
    }
}
