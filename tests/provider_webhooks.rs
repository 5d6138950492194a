//! Provider webhooks: a completion callback makes the gateway confirm the job by polling at
//! once; a callback with a wrong token or a forged signature is refused; duplicates are harmless.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::{Duration, Instant};

use common::{assert_postings, ledger_kinds, TestApp};
use fake_upstream::{FakeUpstream, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::Secret;
use seedance_gateway::types::video::PollCause;
use serde_json::{json, Value};

/// What makes a job due for a poll, as stored: its status (only a running job is claimed),
/// when it is next due, the last webhook and the poll's cause. An accepted delivery changes it
/// in its own transaction, before it is answered (`Db::poll_soon`), so comparing it before and
/// after a delivery shows whether a poll can follow, without waiting for one.
async fn due_state(app: &TestApp, id: &str) -> (String, Option<i64>, Option<i64>, String) {
    sqlx::query_as("SELECT status, next_run_at, webhook_at, poll_cause FROM videos WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .expect("video")
}

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
        let upstream = config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt);
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
        .get_video_any(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
        .await
        .expect("db")
        .expect("video");
    let body = json!({"job_id": stored.upstream_id, "status": "completed"});
    let due_before = due_state(&app, id).await;
    let duplicate = app
        .client
        .post(callback)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(duplicate.status(), StatusCode::OK);
    // The job is over and the duplicate made it due for nothing: no poll can follow.
    assert_eq!(
        due_state(&app, id).await,
        due_before,
        "a duplicate for a finished job is ignored"
    );
    let polls = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    assert_eq!(polls, 1, "a duplicate for a finished job is ignored");
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

    let id = created["id"].as_str().expect("id");
    let due_before = due_state(&app, id).await;
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
    // The refused webhooks left the job as due as it was (its next poll about 96 s away): no
    // poll can follow them.
    assert_eq!(
        due_state(&app, id).await,
        due_before,
        "refused webhooks cause no poll"
    );
    assert!(
        !fake.calls("seedance-it").iter().any(|c| c.op == "poll"),
        "refused webhooks cause no poll"
    );
}

/// Whoever holds a job's callback URL could once make the gateway poll the upstream once per
/// delivery they sent: 3,913 forged deliveries in 10 s made 3,670 polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_forged_webhooks_for_one_job_costs_at_most_one_poll_per_interval() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_secs(60));
    fake.set_estimate_secs(120);
    let app = gateway(&fake).await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let created = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let submit = fake
        .calls("seedance-it")
        .into_iter()
        .find(|c| c.op == "submit")
        .expect("submit");
    let callback = submit.body["webhook_url"]
        .as_str()
        .expect("webhook_url")
        .to_string();
    let id = created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let admin: Value = app
        .admin_get(&format!("/admin/v1/videos/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let upstream_id = admin["upstream_id"]
        .as_str()
        .expect("upstream id")
        .to_string();

    // Sixteen senders, 40 deliveries each, as fast as the gateway answers.
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..16 {
        let client = app.client.clone();
        let callback = callback.clone();
        let upstream_id = upstream_id.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..40 {
                let response = client
                    .post(&callback)
                    .json(&json!({"job_id": upstream_id, "status": "completed", "n": sender * 40 + n}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(response.status(), StatusCode::OK);
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    // The polls the burst made due have all come once the job is back on its own schedule:
    // not leased, and no longer due for a webhook's confirmation.
    let pending = || async {
        let (cause, owner): (String, Option<String>) =
            sqlx::query_as("SELECT poll_cause, lease_owner FROM videos WHERE id = $1")
                .bind(&id)
                .fetch_one(app.db.pool())
                .await
                .expect("video");
        cause == "webhook" || owner.is_some()
    };
    let settled = common::eventually(Duration::from_secs(10), || async { !pending().await }).await;
    assert!(settled, "the burst's confirmation never came");
    let elapsed = started.elapsed();
    let polls = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    let bound = (elapsed.as_millis() / 2_000) as usize + 1;
    assert!(
        (1..=bound).contains(&polls),
        "640 deliveries over {elapsed:?} made {polls} polls; at most {bound} (one per 2 s) expected"
    );
}

/// Apiframe signs the body alone, without a timestamp: a captured delivery would verify
/// forever, and was taken each time as a new reason to poll.
#[tokio::test]
async fn a_replayed_apiframe_delivery_is_refused_with_409_and_changes_nothing() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    // The job runs long, so the fake sends no webhook of its own during the test.
    fake.set_job_duration(Duration::from_secs(60));
    let app = signing_gateway(&fake, "apiframe").await;
    let (_, key) = app.tenant_with_key("live", 10_000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 5,
                   "routing": {"providers": ["apiframe"]}}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let submit = fake
        .calls("apiframe")
        .into_iter()
        .find(|c| c.op == "submit")
        .expect("submit");
    let callback = submit.body["webhookUrl"]
        .as_str()
        .expect("webhookUrl")
        .to_string();
    let (_, admin) = {
        let response = app.admin_get(&format!("/admin/v1/videos/{id}")).await;
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    };
    let upstream_id = admin["upstream_id"].as_str().expect("upstream id");
    let job = fake
        .state
        .job(fake_upstream::apiframe::PREFIX, upstream_id)
        .expect("the fake's job");
    // A genuine, signed delivery, as captured by someone on its way.
    let (headers, body) = fake_upstream::apiframe::webhook(&fake.state, &job);
    let deliver = || {
        let mut request = app.client.post(&callback).body(body.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.header("content-type", "application/json").send()
    };
    let polls = || {
        fake.calls("apiframe")
            .iter()
            .filter(|c| c.op == "poll")
            .count()
    };

    assert_eq!(deliver().await.expect("send").status(), StatusCode::OK);
    // The first delivery is confirmed by a poll, which finds the job still running and puts
    // it back on its schedule.
    let video_id = seedance_gateway::types::ids::VideoId::parse(&id).expect("id");
    let stored = || async {
        app.db
            .get_video_any(&video_id)
            .await
            .expect("db")
            .expect("video")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored().await.poll_cause != PollCause::Scheduled || polls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first delivery was not confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(polls(), 1);
    let before = stored().await;
    let due = || async {
        sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT next_run_at, webhook_at FROM videos WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(app.db.pool())
        .await
        .expect("video")
    };
    let due_before = due().await;

    let replayed = deliver().await.expect("send");
    assert_eq!(replayed.status(), StatusCode::CONFLICT);
    let error: Value = replayed.json().await.expect("json");
    assert_eq!(error["error"]["code"], "webhook_replayed", "{error}");

    // An accepted delivery makes the job due for a webhook's confirmation before it is
    // answered (`poll_soon`, in the delivery's transaction), and only a due job is polled: the
    // job as stored once the replay is answered shows that no poll will follow, without
    // waiting for one.
    let after = stored().await;
    assert_eq!(
        (after.status, after.poll_cause, after.progress),
        (before.status, before.poll_cause, before.progress),
        "the replay changed nothing on the job"
    );
    assert_eq!(
        due().await,
        due_before,
        "the replay made the job due for no poll"
    );
    assert_eq!(polls(), 1, "the replay caused no poll");
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
        let upstream = config.providers.upstream_mut(
            seedance_gateway::types::ids::ProviderId::parse(&prefix).expect("a known provider"),
        );
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(120_000);
        upstream.webhook_secret = Some(Secret::new(fake_upstream::aigateway::WEBHOOK_SECRET));
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

/// The providers that call back, by fake prefix and configuration name.
const CALLING_BACK: [&str; 4] = ["seedance-it", "apiframe", "aigateway", "seedanceapi"];

/// A gateway with every provider that calls back enabled against `fake`, reachable at its
/// public base URL, on their default poll intervals.
async fn calling_back_gateway(fake: &FakeUpstream, safety_poll_secs: u64) -> TestApp {
    let port = free_port();
    let bases: Vec<String> = CALLING_BACK.iter().map(|p| fake.base_url(p)).collect();
    TestApp::spawn_with(move |config| {
        config.server.listen = format!("127.0.0.1:{port}").parse().expect("addr");
        config.server.public_base_url = Some(format!("http://127.0.0.1:{port}"));
        config.providers.sandbox.enabled = false;
        config.pricing.apiframe_usd_per_credit = Some("0.01".into());
        config.workers.safety_poll_secs = safety_poll_secs;
        for (prefix, base) in CALLING_BACK.iter().zip(bases) {
            let upstream = config.providers.upstream_mut(
                seedance_gateway::types::ids::ProviderId::parse(prefix).expect("a known provider"),
            );
            upstream.enabled = true;
            upstream.base_url = Some(base);
            upstream.api_key = Some(Secret::new(FAKE_KEY));
            upstream.webhook_secret = Some(Secret::new(fake_upstream::aigateway::WEBHOOK_SECRET));
        }
    })
    .await
}

/// One job created at each provider that calls back; returns (provider, video id).
async fn one_job_each(app: &TestApp, key: &str, seconds: u32) -> Vec<(&'static str, String)> {
    let mut jobs = Vec::new();
    for prefix in CALLING_BACK {
        let response = app
            .create_video(
                key,
                json!({"model": "seedance-2.0-fast", "prompt": "a lighthouse", "seconds": seconds,
                       "routing": {"providers": [prefix]}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{prefix}");
        let created: Value = response.json().await.expect("json");
        jobs.push((prefix, created["id"].as_str().expect("id").to_string()));
    }
    jobs
}

/// The fake's calls about one upstream job: its submit (matched by order) and its polls.
struct UpstreamCalls {
    submit_at_ms: u64,
    poll_at_ms: Vec<u64>,
}

async fn upstream_calls(
    app: &TestApp,
    fake: &FakeUpstream,
    prefix: &str,
    video: &str,
) -> UpstreamCalls {
    let (status, admin) = {
        let response = app.admin_get(&format!("/admin/v1/videos/{video}")).await;
        let status = response.status();
        (status, response.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, StatusCode::OK);
    let upstream_id = admin["upstream_id"]
        .as_str()
        .expect("upstream id")
        .to_string();
    let calls = fake.calls(prefix);
    let polls: Vec<u64> = calls
        .iter()
        .filter(|c| c.op == "poll" && c.path.contains(&upstream_id))
        .map(|c| c.at_ms)
        .collect();
    let submits: Vec<&fake_upstream::Call> = calls.iter().filter(|c| c.op == "submit").collect();
    let submit_at_ms = submits
        .iter()
        .find(|c| c.body.to_string().contains(video) || submits.len() == 1)
        .or_else(|| submits.first())
        .map(|c| c.at_ms)
        .expect("a submit");
    UpstreamCalls {
        submit_at_ms,
        poll_at_ms: polls,
    }
}

/// A job whose provider calls back costs its submit and one confirming poll, however long it
/// runs: nothing polls it before the webhook says it ended. The lengths that matter are
/// relative to the gateway's own intervals, and nothing in the gateway scales with a job's length but its
/// first safety poll (past the estimate by a quarter and at least 10 s) and the regular
/// schedule it replaces (which would poll a job every quarter of its age, at least every
/// poll interval). A 4 s and a 16 s job keep both: the regular schedule would poll each
/// several times (its floor is a quarter of the poll interval, 1.25-2.5 s at these providers'
/// defaults), the long one runs longer than the 10 s margin of its first safety poll, and
/// neither reaches the safety interval (300 s) of the providers that give no estimate.
#[tokio::test]
async fn with_webhooks_a_4_s_and_a_16_s_job_cost_a_submit_and_one_confirming_poll() {
    // The PostgreSQL pass covers the same statements with the short jobs of the tests below,
    // so this run is made once, on SQLite.
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        eprintln!("the long webhook run is made in the SQLite pass");
        return;
    }
    const SHORT_MS: u64 = 4_000;
    const LONG_MS: u64 = 16_000;
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    let app = calling_back_gateway(&fake, 300).await;
    let (_, key) = app.tenant_with_key("live", 1_000_000).await;

    fake.set_job_duration(Duration::from_millis(SHORT_MS));
    let short = one_job_each(&app, &key, 5).await;
    for prefix in CALLING_BACK {
        assert_eq!(fake.jobs_made(prefix), 1, "{prefix}: submitted at create");
    }
    fake.set_job_duration(Duration::from_millis(LONG_MS));
    let long = one_job_each(&app, &key, 10).await;
    let jobs: Vec<(&str, String, u64)> = short
        .into_iter()
        .map(|(p, id)| (p, id, SHORT_MS))
        .chain(long.into_iter().map(|(p, id)| (p, id, LONG_MS)))
        .collect();

    for (prefix, id, duration_ms) in &jobs {
        let done =
            common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(60)).await;
        assert_eq!(
            done["status"], "completed",
            "{prefix} {duration_ms} ms: {done}"
        );
        let calls = upstream_calls(&app, &fake, prefix, id).await;
        assert_eq!(
            calls.poll_at_ms.len(),
            1,
            "{prefix}, {duration_ms} ms job: one confirming poll and no other (polls at {:?} ms, submit at {} ms)",
            calls.poll_at_ms,
            calls.submit_at_ms
        );
        let end = calls.submit_at_ms + duration_ms;
        let confirmed = calls.poll_at_ms[0];
        assert!(
            confirmed >= end && confirmed <= end + 2_000,
            "{prefix}, {duration_ms} ms job: confirmed {} ms after its end",
            confirmed as i64 - end as i64
        );
        assert_eq!(ledger_kinds(&app.db, id).await, vec!["hold", "capture"]);
    }
    // Two submits and two confirmations per provider, no other poll, in the metrics too.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for prefix in CALLING_BACK {
        let provider = if prefix == "seedance-it" {
            "seedance-it"
        } else {
            prefix
        };
        for (cause, count) in [("submit", 2), ("webhook_confirmation", 2)] {
            let line = format!(
                "gateway_upstream_job_requests_total{{provider=\"{provider}\",cause=\"{cause}\"}} {count}"
            );
            assert!(metrics.contains(&line), "missing `{line}` in:\n{metrics}");
        }
        for cause in ["scheduled_poll", "safety_poll"] {
            let label = format!("provider=\"{provider}\",cause=\"{cause}\"");
            assert!(!metrics.contains(&label), "{label} counted:\n{metrics}");
        }
        let sum = format!(
            "gateway_upstream_requests_per_completed_job_sum{{provider=\"{provider}\"}} 4.0"
        );
        assert!(metrics.contains(&sum), "missing `{sum}` in:\n{metrics}");
    }
}

#[tokio::test]
async fn a_lost_webhook_is_made_up_for_by_the_safety_polls() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    for prefix in CALLING_BACK {
        fake.set_webhooks_lost(prefix, true);
    }
    fake.set_job_duration(Duration::from_millis(1_500));
    let app = calling_back_gateway(&fake, 3).await;
    let (_, key) = app.tenant_with_key("live", 1_000_000).await;
    let jobs = one_job_each(&app, &key, 5).await;
    for (prefix, id) in &jobs {
        // seedance.it.com estimates 1 s (the fake gives whole seconds): its first safety poll
        // comes 10 s after that. The others give no estimate and have no history yet: one
        // safety interval (3 s).
        let bound = if *prefix == "seedance-it" {
            11_000
        } else {
            3_000
        };
        let done =
            common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(20)).await;
        assert_eq!(done["status"], "completed", "{prefix}: {done}");
        let calls = upstream_calls(&app, &fake, prefix, id).await;
        assert_eq!(
            calls.poll_at_ms.len(),
            1,
            "{prefix}: the job was found finished by its first safety poll (polls at {:?}, submit at {})",
            calls.poll_at_ms,
            calls.submit_at_ms
        );
        let after = calls.poll_at_ms[0] - calls.submit_at_ms;
        assert!(
            after >= bound && after <= bound + 1_500,
            "{prefix}: the safety poll came {after} ms after the submit, expected about {bound} ms"
        );
        assert_eq!(ledger_kinds(&app.db, id).await, vec!["hold", "capture"]);
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for prefix in CALLING_BACK {
        let line = format!(
            "gateway_upstream_job_requests_total{{provider=\"{prefix}\",cause=\"safety_poll\"}} 1"
        );
        assert!(metrics.contains(&line), "missing `{line}` in:\n{metrics}");
    }
}

#[tokio::test]
async fn a_job_still_running_after_a_lost_webhook_is_polled_every_safety_interval() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_webhooks_lost("apiframe", true);
    fake.set_job_duration(Duration::from_millis(7_000));
    let app = calling_back_gateway(&fake, 2).await;
    let (_, key) = app.tenant_with_key("live", 1_000_000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 5,
                   "routing": {"providers": ["apiframe"]}}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let done =
        common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed");
    let calls = upstream_calls(&app, &fake, "apiframe", id).await;
    // Safety polls at about 2, 4, 6 and 8 s: the fourth finds the job finished.
    assert_eq!(
        calls.poll_at_ms.len(),
        4,
        "polls at {:?} ms, submit at {} ms",
        calls.poll_at_ms,
        calls.submit_at_ms
    );
    for pair in calls.poll_at_ms.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (1_900..=3_000).contains(&gap),
            "safety polls {gap} ms apart"
        );
    }
}

#[tokio::test]
async fn a_webhook_inside_the_providers_poll_interval_is_confirmed_when_it_ends() {
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    // The job ends 1 s after its submit; AIgateway allows a poll 3 s after the last request.
    fake.set_job_duration(Duration::from_millis(1_000));
    let app = calling_back_gateway(&fake, 300).await;
    let (_, key) = app.tenant_with_key("live", 1_000_000).await;
    let created: Value = app
        .create_video(
            &key,
            json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 5,
                   "routing": {"providers": ["aigateway"]}}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id");
    let done =
        common::wait_terminal(&app.client, &app.base, &key, id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "completed");
    let calls = upstream_calls(&app, &fake, "aigateway", id).await;
    assert_eq!(calls.poll_at_ms.len(), 1, "{:?}", calls.poll_at_ms);
    let after = calls.poll_at_ms[0] - calls.submit_at_ms;
    assert!(
        (3_000..=4_500).contains(&after),
        "the confirmation came {after} ms after the submit, not after AIgateway's 3 s"
    );
    let not_modified = fake
        .calls("aigateway")
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    assert_eq!(not_modified, 1, "no poll was wasted on a 304");
}

/// The fake's signed webhooks (written from the providers' documents) verify with the
/// adapters: Apiframe's and AIgateway's signatures, checked without a gateway around them.
mod signatures_agree_with_the_fake {
    use std::time::Duration;

    use fake_upstream::{aigateway, apiframe, FakeUpstream, FAKE_KEY};
    use seedance_gateway::config::{Secret, UpstreamConfig};
    use seedance_gateway::providers::aigateway::AiGateway;
    use seedance_gateway::providers::apiframe::Apiframe;
    use seedance_gateway::providers::Provider;
    use serde_json::{json, Value};

    async fn fake() -> FakeUpstream {
        let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("fake starts");
        fake.set_job_duration(Duration::ZERO);
        fake
    }

    fn header_map(headers: Vec<(String, String)>) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::try_from(name).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    #[tokio::test]
    async fn apiframe_webhooks_verify_with_the_adapter() {
        let fake = fake().await;
        let job = fake.state.start_job(
            apiframe::PREFIX,
            "apf_job_",
            "seedance-2-fast",
            5,
            json!({"seedanceParams": {"resolution": "720p"}}),
            Some("https://gw.example.com/cb".into()),
        );
        let (headers, body) = apiframe::webhook(&fake.state, &job);
        let adapter = Apiframe::new(&UpstreamConfig {
            api_key: Some(Secret::new(FAKE_KEY)),
            ..UpstreamConfig::default()
        })
        .expect("adapter");
        assert_eq!(
            adapter.webhook_job_id(&header_map(headers), body.as_bytes()),
            Ok(job.id)
        );
    }

    #[tokio::test]
    async fn aigateway_webhooks_verify_with_the_adapter() {
        let fake = fake().await;
        let job = fake.state.start_job(
            aigateway::PREFIX,
            "job_",
            "bytedance/seedance-2.0-fast",
            5,
            Value::Null,
            Some("https://gw.example.com/cb".into()),
        );
        let (headers, body) = aigateway::webhook(&fake.state, &job);
        let adapter = AiGateway::new(&UpstreamConfig {
            api_key: Some(Secret::new(FAKE_KEY)),
            webhook_secret: Some(Secret::new(aigateway::WEBHOOK_SECRET)),
            ..UpstreamConfig::default()
        })
        .expect("adapter");
        assert_eq!(
            adapter.webhook_job_id(&header_map(headers), body.as_bytes()),
            Ok(job.id)
        );
    }
}
