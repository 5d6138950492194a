//! Provider webhooks: a completion callback makes the gateway confirm the job by polling at
//! once; a callback with a wrong token or a forged signature is refused; duplicates are harmless.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::{Duration, Instant};

use common::{assert_postings, ledger_kinds, TestApp};
use reqwest::StatusCode;
use seedance_gateway::config::Secret;
use seedance_gateway::fake::{FakeUpstream, FAKE_KEY};
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A gateway reachable at its public base URL, with seedance.it.com pointed at the fake, and
/// polls far apart so that only a webhook can finish a job quickly.
async fn gateway(fake: &FakeUpstream) -> TestApp {
    let port = free_port();
    let base = fake.base_url("seedance-it");
    TestApp::spawn_with(move |config| {
        config.server.listen = format!("127.0.0.1:{port}").parse().expect("addr");
        config.server.public_base_url = Some(format!("http://127.0.0.1:{port}"));
        config.providers.sandbox.enabled = false;
        let upstream = &mut config.providers.seedance_it;
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(120_000);
    })
    .await
}

#[tokio::test]
async fn a_completion_webhook_finishes_the_job_long_before_its_next_poll() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(300));
    fake.set_estimate_secs(120);
    let app = gateway(&fake).await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let submit = fake
        .calls("seedance-it")
        .into_iter()
        .find(|c| c.op == "submit")
        .expect("submit");
    let callback = submit.body["webhook_url"]
        .as_str()
        .expect("a webhook_url was handed upstream");
    assert!(callback.starts_with(&format!("{}/webhooks/providers/seedance-it/", app.base)));

    // The next scheduled poll is ~96 s away; the webhook must bring completion within seconds.
    let done =
        common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed");
    let polls = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    assert_eq!(polls, 1, "the webhook was confirmed by exactly one poll");
    assert_postings(&app.db, id, &[("hold", -200), ("capture", 0)]).await;

    // A duplicate delivery changes nothing.
    let stored = app
        .db
        .get_video_any(&seedance_gateway::domain::ids::VideoId::parse(id).expect("id"))
        .await
        .expect("db")
        .expect("video");
    let body = json!({"job_id": stored.upstream_id, "status": "completed"});
    let duplicate = app
        .client
        .post(callback)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(duplicate.status(), StatusCode::OK);
    // A delivery that made the job due would be polled within a worker tick (50 ms), as the
    // first one was: a second poll within a second would show it.
    let fake = &fake;
    let polled_again = common::eventually(Duration::from_secs(1), move || async move {
        fake.calls("seedance-it")
            .iter()
            .filter(|c| c.op == "poll")
            .count()
            > 1
    })
    .await;
    assert!(!polled_again, "a duplicate for a finished job is ignored");
    assert_postings(&app.db, id, &[("hold", -200), ("capture", 0)]).await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(10_000 - 200), Some(0))
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_webhook_with_an_unknown_token_or_for_another_job_is_refused() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_secs(30));
    fake.set_estimate_secs(120);
    let app = gateway(&fake).await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}),
        )
        .await
        .json()
        .await
        .expect("json");
    let submit = fake
        .calls("seedance-it")
        .into_iter()
        .find(|c| c.op == "submit")
        .expect("submit");
    let callback = submit.body["webhook_url"]
        .as_str()
        .expect("webhook_url")
        .to_string();

    let forged_token = format!(
        "{}/webhooks/providers/seedance-it/{}",
        app.base,
        "A".repeat(32)
    );
    let response = app
        .client
        .post(&forged_token)
        .json(&json!({"job_id": "sdf_2026_000001", "status": "completed"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let other_job = app
        .client
        .post(&callback)
        .json(&json!({"job_id": "sdf_someone_else", "status": "completed"}))
        .send()
        .await
        .expect("send");
    assert_eq!(other_job.status(), StatusCode::BAD_REQUEST);

    let wrong_provider = callback.replace("/seedance-it/", "/apiframe/");
    let response = app
        .client
        .post(&wrong_provider)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let started = Instant::now();
    let (_, video) = app
        .get_json(
            &key,
            &format!("/v1/videos/{}", created["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(video["status"], "in_progress");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A webhook that made the job due would be polled within a worker tick (50 ms); the
    // next scheduled poll is about 96 s away. A second shows any poll they caused.
    let fake = &fake;
    let polled = common::eventually(Duration::from_secs(1), move || async move {
        fake.calls("seedance-it").iter().any(|c| c.op == "poll")
    })
    .await;
    assert!(!polled, "refused webhooks cause no poll");
}

/// A gateway with one signing provider pointed at the fake, polls far apart.
async fn signing_gateway(fake: &FakeUpstream, prefix: &str) -> TestApp {
    let port = free_port();
    let base = fake.base_url(prefix);
    let prefix = prefix.to_string();
    TestApp::spawn_with(move |config| {
        config.server.listen = format!("127.0.0.1:{port}").parse().expect("addr");
        config.server.public_base_url = Some(format!("http://127.0.0.1:{port}"));
        config.providers.sandbox.enabled = false;
        let upstream = match prefix.as_str() {
            "apiframe" => &mut config.providers.apiframe,
            _ => &mut config.providers.aigateway,
        };
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(120_000);
        upstream.webhook_secret = Some(Secret::new(
            seedance_gateway::fake::aigateway::WEBHOOK_SECRET,
        ));
    })
    .await
}

#[tokio::test]
async fn signed_webhooks_are_verified_forged_ones_refused() {
    for prefix in ["apiframe", "aigateway"] {
        let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("fake");
        fake.set_job_duration(Duration::from_millis(300));
        fake.set_estimate_secs(120);
        let app = signing_gateway(&fake, prefix).await;
        let (_, key) = app.tenant_with_key("live", 10_000).await;
        let created: Value = app
            .create_video(
                &key,
                json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 5,
                       "routing": {"providers": [prefix]}}),
            )
            .await
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id");
        let submit = fake
            .calls(prefix)
            .into_iter()
            .find(|c| c.op == "submit")
            .expect("submit");
        let callback = submit.body["webhookUrl"]
            .as_str()
            .or(submit.body["webhook_url"].as_str())
            .unwrap_or_else(|| panic!("{prefix}: no callback handed upstream: {}", submit.body))
            .to_string();

        // A forged signature on the right URL is refused and causes no poll.
        let forged = app
            .client
            .post(&callback)
            .header("x-webhook-signature", format!("sha256={}", "0".repeat(64)))
            .header(
                "x-gateway-signature",
                format!("t={},v1={}", 1, "0".repeat(64)),
            )
            .json(&json!({"jobId": "x", "id": "x", "status": "COMPLETED"}))
            .send()
            .await
            .expect("send");
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED, "{prefix}");

        // The fake's genuinely signed webhook completes the job long before its next poll.
        let done =
            common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(20)).await;
        assert_eq!(done["status"], "completed", "{prefix}");
        let polls = fake.calls(prefix).iter().filter(|c| c.op == "poll").count();
        assert_eq!(polls, 1, "{prefix}: the webhook was confirmed by one poll");
        assert_eq!(ledger_kinds(&app.db, id).await, vec!["hold", "capture"]);
    }
}
