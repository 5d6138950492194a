//! Cancel against completion, in both orders, made deterministic by holding the upstream's
//! answer: the poll that reports completion is seen to arrive, the cancel commits while that
//! poll is held, then the poll answers. Whichever commits first wins; the other moves no
//! money. Run for a provider with an upstream cancel (seedance.it.com) and one without
//! (Apiframe), where the upstream finishes the job anyway and its late completion must be
//! ignored.
//!
//! On PostgreSQL the races also run with both transactions in flight at once: a lock on the
//! row both writes need, held from a connection of the test's own, makes each of them wait
//! until the test sees both waiting; then it lets go and the database decides. Completion
//! races a tenant's cancel, the hold timeout, and an operator's refund.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::time::{Duration, Instant};

use common::{assert_postings, eventually, TestApp};
use fake_upstream::{FakeUpstream, Fault, FAKE_KEY};
use reqwest::StatusCode;
use seedance_gateway::config::{Config, Secret, UpstreamConfig};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// How long the fake holds the poll that reports completion: far longer than a cancel takes.
const HELD_MS: u64 = 2000;

struct Case {
    prefix: &'static str,
    slot: fn(&mut Config) -> &mut UpstreamConfig,
}

const CASES: [Case; 2] = [
    Case {
        prefix: "seedance-it",
        slot: |c| {
            c.providers
                .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
        },
    },
    Case {
        prefix: "apiframe",
        slot: |c| {
            c.providers
                .upstream_mut(seedance_gateway::types::ids::ProviderId::Apiframe)
        },
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

/// Whether this run is on PostgreSQL; the in-flight races need its row locks (on SQLite one
/// writer runs at a time, so two transactions are never in flight at once).
fn on_postgres(test: &str) -> bool {
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|url| url.starts_with("postgres"));
    if !postgres {
        eprintln!("{test}: runs in the PostgreSQL pass (TEST_DATABASE_URL=postgres://…)");
    }
    postgres
}

/// Two transactions' barrier: a lock on one row, taken in a transaction of the test's own,
/// that both writes queue behind until [`Barrier::release`].
struct Barrier {
    holder: PgConnection,
    watcher: PgConnection,
}

impl Barrier {
    /// Locks the rows `select` (a `SELECT … FOR NO KEY UPDATE` with `$1`) finds for `id`: the
    /// lock an `UPDATE` needs, and not the one a foreign key check takes, so only the writes
    /// to that row wait.
    async fn lock(app: &TestApp, select: &str, id: &str) -> Barrier {
        let mut holder = PgConnection::connect(&app.database.url)
            .await
            .expect("connect");
        sqlx::query("BEGIN")
            .execute(&mut holder)
            .await
            .expect("begin");
        let locked = sqlx::query(select)
            .bind(id)
            .fetch_all(&mut holder)
            .await
            .expect("lock");
        assert_eq!(locked.len(), 1, "{select} locks one row");
        let watcher = PgConnection::connect(&app.database.url)
            .await
            .expect("connect");
        Barrier { holder, watcher }
    }

    /// Waits until `n` transactions of the gateway wait for the lock.
    async fn wait_for_waiters(&mut self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut self.watcher)
            .await
            .expect("pg_stat_activity");
            if waiting >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting} of {n} transactions reached the lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn release(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.holder)
            .await
            .expect("commit");
    }
}

/// The job's end as its record, its journal and the tenant's balance tell it; they must agree:
/// completed and captured once, or ended and voided once.
async fn assert_settled_once(app: &TestApp, tenant: &str, key: &str, id: &str) -> String {
    let video = app.wait_terminal(key, id).await;
    let status = video["status"].as_str().expect("status").to_string();
    let kinds = common::ledger_kinds(&app.db, id).await;
    let charged = video["cost"]["charged"].as_i64().expect("charged");
    match status.as_str() {
        "completed" => {
            assert_eq!(kinds, ["hold", "capture"], "{video}");
            assert_eq!(charged, 200, "{video}");
        }
        "canceled" | "failed" => {
            assert_eq!(kinds, ["hold", "void"], "{video}");
            assert_eq!(charged, 0, "{video}");
        }
        other => panic!("{other}"),
    }
    let balance = app.balance(tenant).await;
    assert_eq!(
        (balance["available"].as_i64(), balance["held"].as_i64()),
        (Some(10_000 - charged), Some(0)),
        "{video}"
    );
    app.assert_ledger_consistent().await;
    status
}

/// Waits until the upstream has seen the job's first poll (which the fake then holds).
async fn wait_for_poll(fake: &FakeUpstream, prefix: &str) {
    let polled = eventually(Duration::from_secs(10), || async {
        fake.calls(prefix).iter().any(|c| c.op == "poll")
    })
    .await;
    assert!(polled, "the job was never polled");
}

/// Completion and a tenant's cancel, both in flight on PostgreSQL: the poll that reports
/// completion is held upstream while the test locks the job's row; the cancel is sent and
/// waits for the lock, the poll answers and the completion waits too; then the lock goes.
/// Exactly one of them ends the job, and its record, journal and balance agree.
///
/// How it fails: drop the guard of the write that goes second, in `storage/leases.rs`. The
/// cancel queues first and wins here, so it is `Db::mark_completed`'s `AND lease_owner = $6 AND
/// {RUNNING}`: the completion then overwrites the canceled video, which reads completed and
/// charged while its journal voided the hold (the audit's `charges_disagreeing`; tried). When
/// the completion wins, it is `AND {RUNNING}` in `Db::mark_ended`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_completion_and_cancel_in_flight_at_once_end_the_job_once() {
    if !on_postgres("completion_and_cancel_in_flight") {
        return;
    }
    let case = &CASES[0];
    let (fake, app) = gateway(case).await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    fake.inject(case.prefix, "poll", Fault::Hang { millis: 1_000 });
    let id = create(&app, &key).await;
    wait_for_poll(&fake, case.prefix).await;
    let mut barrier = Barrier::lock(
        &app,
        "SELECT id FROM videos WHERE id = $1 FOR NO KEY UPDATE",
        &id,
    )
    .await;
    let canceling = {
        let (client, url, key) = (
            app.client.clone(),
            app.url(&format!("/v1/videos/{id}/cancel")),
            key.clone(),
        );
        tokio::spawn(async move { client.post(url).bearer_auth(key).send().await })
    };
    barrier.wait_for_waiters(2).await;
    barrier.release().await;
    let canceled = canceling.await.expect("joined").expect("cancel answered");
    assert_eq!(canceled.status(), StatusCode::OK);
    let status = assert_settled_once(&app, &tenant, &key, &id).await;
    eprintln!("completion against cancel: {status}");
}

/// Completion and the hold timeout, both in flight on PostgreSQL: the job's hold timeout is
/// 2 s and its completing poll is held upstream for 3 s while the test locks the job's row;
/// the worker's sweep finds the job overdue and waits for the lock, the poll answers and the
/// completion waits too; then the lock goes. Exactly one of them ends the job.
///
/// How it fails: as for the cancel, drop the guard of the write that goes second: the
/// timeout queues first and wins here, so `Db::mark_completed`'s `AND lease_owner = $6 AND
/// {RUNNING}` (the timeout ends the job through `Db::mark_ended`, whose `AND {RUNNING}`
/// guards the other order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_completion_and_the_hold_timeout_in_flight_at_once_end_the_job_once() {
    if !on_postgres("completion_and_hold_timeout_in_flight") {
        return;
    }
    let case = &CASES[0];
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(0));
    let base = fake.base_url(case.prefix);
    let app = TestApp::spawn_with(move |config| {
        config.providers.sandbox.enabled = false;
        config.workers.tick_ms = 20;
        config.workers.hold_timeout_secs = 2;
        let upstream = config
            .providers
            .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt);
        upstream.enabled = true;
        upstream.base_url = Some(base);
        upstream.api_key = Some(Secret::new(FAKE_KEY));
        upstream.poll_interval_ms = Some(50);
        upstream.timeout_secs = Some(10);
    })
    .await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    fake.inject(case.prefix, "poll", Fault::Hang { millis: 3_000 });
    let id = create(&app, &key).await;
    wait_for_poll(&fake, case.prefix).await;
    let mut barrier = Barrier::lock(
        &app,
        "SELECT id FROM videos WHERE id = $1 FOR NO KEY UPDATE",
        &id,
    )
    .await;
    barrier.wait_for_waiters(2).await;
    barrier.release().await;
    let status = assert_settled_once(&app, &tenant, &key, &id).await;
    eprintln!("completion against the hold timeout: {status}");
}

/// Completion and an operator's refund of the video, both in flight on PostgreSQL: the test
/// locks the job's hold; the completion (its record already written in its transaction) waits
/// for it to capture, and a refund of the full price, sent while the video still reads
/// running, waits for it too; then the lock goes. Whichever goes first, nothing is refunded
/// that was not charged when the refund read the video: the refund is refused, the video is
/// completed and charged once.
///
/// How it fails: remove the check that the amount is within what is left to refund
/// (`amount > left` in `domain::admin::refund_video`): the refund, which read the video while
/// it was still uncharged, gives back 200 credits once the capture lets go of the hold, and is
/// answered 201 instead of refused (tried).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_completion_and_a_refund_in_flight_at_once_refund_nothing_uncharged() {
    if !on_postgres("completion_and_refund_in_flight") {
        return;
    }
    let case = &CASES[0];
    let (fake, app) = gateway(case).await;
    let (tenant, key) = app.tenant_with_key("live", 10_000).await;
    fake.inject(case.prefix, "poll", Fault::Hang { millis: 500 });
    let id = create(&app, &key).await;
    wait_for_poll(&fake, case.prefix).await;
    let mut barrier = Barrier::lock(
        &app,
        "SELECT video_id FROM holds WHERE video_id = $1 FOR NO KEY UPDATE",
        &id,
    )
    .await;
    barrier.wait_for_waiters(1).await; // the completion, at its capture
    let refunding = {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!("/admin/v1/videos/{id}/refund")),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(common::ADMIN_TOKEN)
                .json(&json!({"amount": 200, "reason": "a race"}))
                .send()
                .await
        })
    };
    barrier.wait_for_waiters(2).await;
    barrier.release().await;
    let refused = refunding.await.expect("joined").expect("refund answered");
    let status = refused.status();
    let body: Value = refused.json().await.expect("json");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let ended = assert_settled_once(&app, &tenant, &key, &id).await;
    assert_eq!(ended, "completed");
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
