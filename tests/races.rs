//! Cancel against completion, in both orders, made deterministic by holding the upstream's
//! answer: the poll that reports completion is seen to arrive, the cancel commits while that
//! poll is held, then the poll answers. Whichever commits first wins; the other moves no
//! money. Run for a provider with an upstream cancel (seedance.it.com) and one without
//! (Apiframe), where the upstream finishes the job anyway and its late completion must be
//! ignored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::{Duration, Instant};

use common::{assert_postings, eventually, TestApp};
use fake_upstream::{FakeUpstream, Fault, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::{Config, Secret, UpstreamConfig};
use serde_json::{json, Value};

/// How long the fake holds the poll that reports completion: far longer than a cancel takes.
const HELD_MS: u64 = 2000;

struct Case {
    prefix: &'static str,
    slot: fn(&mut Config) -> &mut UpstreamConfig,
}

const CASES: [Case; 2] = [
    Case {
        prefix: "seedance-it",
        slot: |c| &mut c.providers.seedance_it,
    },
    Case {
        prefix: "apiframe",
        slot: |c| &mut c.providers.apiframe,
    },
];

/// A gateway with one provider pointed at a fake whose jobs are done at once, polled soon.
async fn gateway(case: &Case) -> (FakeUpstream, TestApp) {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(0));
    let base = fake.base_url(case.prefix);
    let slot = case.slot;
    let app = TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        config.pricing.apiframe_usd_per_credit = Some("0.01".into());
        let upstream = slot(config);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.timeout_secs = Some(10);
    })
    .await;
    (fake, app)
}

async fn create(app: &TestApp, key: &str) -> String {
    let response = app
        .create_video(
            key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let video: Value = response.json().await.expect("json");
    assert_eq!(video["status"], "in_progress", "{video}");
    video["id"].as_str().expect("id").to_string()
}

async fn cancel(app: &TestApp, key: &str, id: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/v1/videos/{id}/cancel")))
        .bearer_auth(key)
        .send()
        .await
        .expect("cancel");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Polls answered by the provider, as the gateway's metrics count them.
async fn polls_answered(app: &TestApp, provider: &str) -> usize {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "gateway_upstream_requests_total")
        .filter(|s| {
            s.labels.get("provider") == Some(provider) && s.labels.get("operation") == Some("poll")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v as usize,
            _ => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_that_commits_while_the_completing_poll_is_held_wins_and_charges_nothing() {
    for case in &CASES {
        let (fake, app) = gateway(case).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        fake.inject(case.prefix, "poll", Fault::Hang { millis: HELD_MS });
        let id = create(&app, &key).await;

        // The poll that will report completion has reached the upstream and is held there.
        let fake_ref = &fake;
        let polled = eventually(Duration::from_secs(10), move || async move {
            fake_ref.calls(case.prefix).iter().any(|c| c.op == "poll")
        })
        .await;
        assert!(polled, "{}: the job was never polled", case.prefix);
        let held_since = Instant::now();
        let (status, canceled) = cancel(&app, &key, &id).await;
        assert_eq!(status, StatusCode::OK, "{}: {canceled}", case.prefix);
        assert_eq!(canceled["status"], "canceled");
        assert!(
            held_since.elapsed() < Duration::from_millis(HELD_MS / 2),
            "{}: the cancel did not commit while the poll was held",
            case.prefix
        );
        assert_eq!(
            polls_answered(&app, case.prefix).await,
            0,
            "{}",
            case.prefix
        );

        // The held poll answers "completed"; the gateway must ignore it. A capture would follow
        // the answer within milliseconds: a second is ample to see one.
        let app_ref = &app;
        let answered = eventually(Duration::from_secs(10), move || async move {
            polls_answered(app_ref, case.prefix).await >= 1
        })
        .await;
        assert!(answered, "{}: the held poll never answered", case.prefix);
        let (db, video_id) = (&app.db, id.as_str());
        let charged = eventually(Duration::from_secs(1), move || async move {
            common::ledger_kinds(db, video_id).await.len() > 2
        })
        .await;
        assert!(!charged, "{}: the late completion moved money", case.prefix);
        assert_postings(&app.db, &id, &[("hold", -200), ("void", 200)]).await;
        let (_, video) = app.get_json(&key, &format!("/v1/videos/{id}")).await;
        assert_eq!(
            (video["status"].as_str(), video["cost"]["charged"].as_i64()),
            (Some("canceled"), Some(0)),
            "{}: {video}",
            case.prefix
        );
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000), Some(0)),
            "{}",
            case.prefix
        );
        app.assert_ledger_consistent().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completion_that_commits_first_wins_and_the_late_cancel_moves_no_money() {
    for case in &CASES {
        let (_fake, app) = gateway(case).await;
        let (tenant, key) = app.tenant_with_key("live", 10_000).await;
        let id = create(&app, &key).await;
        let done = app.wait_terminal(&key, &id).await;
        assert_eq!(done["status"], "completed", "{}: {done}", case.prefix);

        let (status, refused) = cancel(&app, &key, &id).await;
        assert_eq!(status, StatusCode::CONFLICT, "{}: {refused}", case.prefix);
        assert_eq!(refused["error"]["code"], "video_not_cancelable");
        assert_postings(&app.db, &id, &[("hold", -200), ("capture", 0)]).await;
        let (_, video) = app.get_json(&key, &format!("/v1/videos/{id}")).await;
        assert_eq!(
            (video["status"].as_str(), video["cost"]["charged"].as_i64()),
            (Some("completed"), Some(200))
        );
        let balance = app.balance(&tenant).await;
        assert_eq!(
            (balance["available"].as_i64(), balance["held"].as_i64()),
            (Some(10_000 - 200), Some(0)),
            "{}",
            case.prefix
        );
        app.assert_ledger_consistent().await;
    }
}

/// The transition table refuses what it does not list, in storage itself: a cancel and a
/// failure written straight to the database after the job completed (as a replica holding a
/// stale copy of the job would write them, past the API's own check) move nothing. The job
/// stays completed, charged once, and its tenant's totals keep counting it once. Give
/// `Transition::Cancel` every status as its "from" (or drop `status_in` from
/// `Db::mark_ended`) and this fails: the job turns `canceled` and its totals lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_written_to_storage_after_completion_is_refused_by_the_transition_table() {
    use seedance_gateway::domain::jobs::transitions::Transition;
    use seedance_gateway::storage::end_users::UsageChange;
    use seedance_gateway::storage::Db;
    use seedance_gateway::types::ids::{TenantId, VideoId};
    use seedance_gateway::types::video::{JobError, VideoStatus};

    let (_fake, app) = gateway(&CASES[0]).await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    let id = create(&app, &key).await;
    let done = app.wait_terminal(&key, &id).await;
    assert_eq!(done["status"], "completed", "{done}");

    let video = VideoId::from_db(id.clone());
    let owner = TenantId::from_db(tenant.clone());
    let usage = UsageChange {
        day: 0,
        credits: -200,
        seconds: -4,
    };
    let error = JobError {
        code: "stale".into(),
        message: "written from a stale copy".into(),
    };
    let mut tx = app.db.begin().await.expect("begin");
    let canceled = Db::mark_ended(
        &mut tx,
        &video,
        Transition::Cancel.guard(),
        None,
        None,
        Some(&owner),
        usage,
    )
    .await
    .expect("cancel");
    let failed = Db::mark_ended(
        &mut tx,
        &video,
        Transition::Expire.guard(),
        Some(&error),
        None,
        None,
        usage,
    )
    .await
    .expect("expire");
    tx.commit().await.expect("commit");
    assert!(!canceled && !failed, "a completed job cannot end again");

    let stored = app
        .db
        .get_video_any(&video)
        .await
        .expect("read")
        .expect("video");
    assert_eq!(stored.status, VideoStatus::Completed);
    assert_eq!(stored.cost_charged.map(|c| c.get()), Some(200));
    assert_postings(&app.db, &id, &[("hold", -200), ("capture", 0)]).await;
    let balance = app.balance(&tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(10_000 - 200), Some(0))
    );
    app.assert_ledger_consistent().await;
}
