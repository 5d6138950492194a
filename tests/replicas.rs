//! Three gateway processes on one PostgreSQL and one Redis, as replicas behind a load
//! balancer: migrations applied by whichever starts first while the others wait; every job
//! dispatched once, completed, captured once and announced by webhook; a shared rate limit
//! across replicas; one replica killed with SIGKILL mid-run losing nothing (its leased work
//! is taken over after the lease); SIGTERM draining another cleanly.
//!
//! Replicas need PostgreSQL and Redis, so this test always runs on them, found or started as
//! [`common::services`] says, in a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::ADMIN_TOKEN;
use fake_upstream::{FakeUpstream, FAKE_KEY};
use reqwest::{Client, StatusCode};
use seedance_gateway::config::{DatabaseConfig, Secret};
use seedance_gateway::storage::Db;
use serde_json::{json, Value};
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_seedance-gateway");
const JOBS: usize = 24;

struct Replica {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn_replica(
    dir: &std::path::Path,
    config: &std::path::Path,
    db: &str,
    redis: &str,
    n: usize,
) -> Replica {
    spawn_replica_with(dir, config, db, redis, n, &[])
}

fn spawn_replica_with(
    dir: &std::path::Path,
    config: &std::path::Path,
    db: &str,
    redis: &str,
    n: usize,
    env: &[(&str, String)],
) -> Replica {
    let port = free_port();
    let log = dir.join(format!("replica-{n}.log"));
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("SEEDANCE_GW_") || key == "DATABASE_URL" || key == "REDIS_URL" {
            command.env_remove(key);
        }
    }
    let child = command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(dir)
        .env("DATABASE_URL", db)
        .env("REDIS_URL", redis)
        .env("HOSTNAME", format!("replica-{n}"))
        .env("SEEDANCE_GW_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("replica starts");
    Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_ready(client: &Client, replica: &mut Replica) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = replica.child.try_wait() {
            panic!(
                "replica exited with {status}: {}",
                std::fs::read_to_string(&replica.log).unwrap_or_default()
            );
        }
        if let Ok(r) = client.get(format!("{}/readyz", replica.base)).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replica not ready: {}",
            std::fs::read_to_string(&replica.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin(client: &Client, base: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("admin call");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

#[tokio::test]
async fn three_replicas_share_the_work_and_survive_a_sigkill() {
    let test = "three_replicas_share_the_work_and_survive_a_sigkill";
    let (Some(server), Some(redis)) = (
        common::services::postgres_server(test),
        common::services::redis(test),
    ) else {
        return;
    };
    let db_url = common::fresh_postgres_database(&server).await;
    let dir = tempfile::tempdir().expect("tempdir");

    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(1500));
    let (receiver, hooks) = Receiver::start().await;
    receiver
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[admin]
token = "{ADMIN_TOKEN}"
[workers]
tick_ms = 50
lease_secs = 6
lease_margin_secs = 4
[storage]
dir = "{storage}"
archive = false
[limits]
tenant_rate_cache_ms = 200
[webhooks]
retry_schedule_secs = [{retries}]
[security]
url_allowlist = ["127.0.0.1"]
[providers.sandbox]
enabled = false
[providers.aigateway]
enabled = true
base_url = "{base}"
api_key = "{FAKE_KEY}"
poll_interval_ms = 200
timeout_secs = 2
max_concurrent = 6
"#,
            storage = dir.path().join("storage").display(),
            base = fake.base_url("aigateway"),
            // Retries every second for two minutes: however long the failing phase lasts on a
            // slow machine, no message runs out of attempts before the receiver recovers.
            retries = vec!["1"; 120].join(", "),
        ),
    )
    .expect("config");

    // All three start at once on an empty database: one applies the migrations.
    let mut replicas: Vec<Replica> = (0..3)
        .map(|n| spawn_replica(dir.path(), &config, &db_url, &redis, n))
        .collect();
    let client = Client::new();
    for replica in &mut replicas {
        wait_ready(&client, replica).await;
    }
    let mut replicas = replicas.into_iter();
    let (a, mut b, mut c) = (
        replicas.next().expect("a"),
        replicas.next().expect("b"),
        replicas.next().expect("c"),
    );

    let tenant = admin(
        &client,
        &a.base,
        "/admin/v1/tenants",
        json!({"name": "acme"}),
    )
    .await;
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    admin(
        &client,
        &a.base,
        &format!("/admin/v1/tenants/{tenant_id}/grants"),
        json!({"amount": 100_000, "reason": "test", "mode": "live"}),
    )
    .await;
    let key = admin(
        &client,
        &a.base,
        &format!("/admin/v1/tenants/{tenant_id}/keys"),
        json!({"mode": "live"}),
    )
    .await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let endpoint = client
        .post(format!("{}/v1/webhook_endpoints", b.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("{hooks}/hooks/unstable")}))
        .send()
        .await
        .expect("endpoint");
    assert_eq!(endpoint.status(), StatusCode::OK);

    // Jobs created round-robin across the replicas.
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let mut ids = Vec::new();
    for n in 0..JOBS {
        let response = client
            .post(format!("{}/v1/videos", bases[n % 3]))
            .bearer_auth(&key)
            .json(
                &json!({"model": "seedance-2.0-fast", "prompt": format!("clip {n}"), "seconds": 5}),
            )
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), StatusCode::OK);
        let video: Value = response.json().await.expect("json");
        ids.push(video["id"].as_str().expect("id").to_owned());
    }
    // Kill one replica without warning while it holds leased jobs and pending deliveries.
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.child.kill().expect("SIGKILL");
    b.child.wait().expect("reaped");

    let deadline = Instant::now() + Duration::from_secs(90);
    for id in &ids {
        loop {
            let video: Value = client
                .get(format!("{}/v1/videos/{id}", a.base))
                .bearer_auth(&key)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            if video["status"] == "completed" {
                break;
            }
            assert!(
                video["status"] == "queued" || video["status"] == "in_progress",
                "{video}"
            );
            assert!(Instant::now() < deadline, "job never finished: {video}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every job was submitted upstream exactly once, and never more than the cap ran.
    let submits = fake
        .calls("aigateway")
        .into_iter()
        .filter(|call| call.op == "submit")
        .count();
    assert_eq!(submits, JOBS, "each job dispatched once");
    assert!(
        fake.max_running("aigateway") <= 6,
        "the provider cap held across replicas"
    );

    // Captured once each; the ledger balances.
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db_url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    for id in &ids {
        let entries = database
            .entries_for_video(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
            .await
            .expect("entries");
        let captures = entries
            .iter()
            .filter(|(kind, account, _)| kind == "capture" && account.ends_with(":holds"))
            .count();
        assert_eq!(captures, 1, "{id}: {entries:?}");
    }
    let audit = seedance_gateway::domain::reports::audit(&database)
        .await
        .expect("audit");
    assert!(audit.ok, "{audit:?}");

    // Webhooks: one message per job, delivered once the receiver recovers, none lost.
    receiver
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> = receiver
            .on("unstable")
            .into_iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter_map(|body| body["data"]["id"].as_str().map(str::to_owned))
            .collect();
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE state <> 'delivered'")
                .fetch_one(database.pool())
                .await
                .expect("count");
        if ids.iter().all(|id| delivered.contains(id)) && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries missing: {} of {JOBS} delivered, {pending} not",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let per_video: Vec<(String, i64)> =
        sqlx::query_as("SELECT video_id, COUNT(*) FROM webhook_messages GROUP BY video_id")
            .fetch_all(database.pool())
            .await
            .expect("messages");
    assert_eq!(per_video.len(), JOBS);
    assert!(per_video.iter().all(|(_, n)| *n == 1), "{per_video:?}");
    let mut ids_by_video: HashMap<String, HashSet<String>> = HashMap::new();
    for r in receiver.on("unstable") {
        let body: Value = serde_json::from_str(&r.body).expect("json");
        ids_by_video
            .entry(body["data"]["id"].as_str().expect("id").to_owned())
            .or_default()
            .insert(r.headers["webhook-id"].clone());
    }
    assert!(
        ids_by_video.values().all(|ids| ids.len() == 1),
        "one webhook-id per video across retries and replicas"
    );

    // A tenant rate limit is one budget across the surviving replicas (Redis).
    let limits = client
        .put(format!("{}/admin/v1/tenants/{tenant_id}/limits", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"requests_per_minute": 6, "burst": 6}))
        .send()
        .await
        .expect("limits");
    assert!(limits.status().is_success());
    // Past `limits.tenant_rate_cache_ms` (200 ms here): every replica reads the new rate.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut allowed = 0;
    for n in 0..20 {
        let base = if n % 2 == 0 { &a.base } else { &c.base };
        let status = client
            .get(format!("{base}/v1/balance"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("balance")
            .status();
        if status == StatusCode::OK {
            allowed += 1;
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    assert!(
        (6..=7).contains(&allowed),
        "{allowed} of 20 allowed: the burst of 6 is shared, not per replica"
    );

    // SIGTERM drains one replica: it exits cleanly and promptly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = c.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SIGTERM did not stop the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "drained replica exited with {status}");
    drop(a);
}

/// A job as the database has it: its status, its upstream job and its hold's captures.
async fn stored_job(database: &Db, id: &str) -> (String, Option<String>, usize) {
    let video = database
        .get_video_any(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
        .await
        .expect("read")
        .expect("stored");
    let entries = database
        .entries_for_video(&video.id)
        .await
        .expect("entries");
    let captures = entries
        .iter()
        .filter(|(kind, account, _)| kind == "capture" && account.ends_with(":holds"))
        .count();
    (
        video.status.as_str().to_owned(),
        video.upstream_id,
        captures,
    )
}

async fn create_on(client: &Client, base: &str, key: &str, n: usize) -> String {
    let response = client
        .post(format!("{base}/v1/videos"))
        .bearer_auth(key)
        .json(&json!({"model": "seedance-2.0-fast", "prompt": format!("clip {n}"), "seconds": 5}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::OK);
    let video: Value = response.json().await.expect("json");
    video["id"].as_str().expect("id").to_owned()
}

/// Two replicas whose machine clocks disagree by ten minutes, far more than the 6 s lease and
/// the 2-minute hold timeout: every job is submitted once, never polled by both at once nor
/// sooner than its poll interval, completes (none is timed out by the replica ahead) and is
/// charged once. Then the replica ahead dies while it holds jobs mid-poll, and a replica behind
/// takes them over as soon as their leases run out: leases are set and expired on the
/// database's clock, and each replica sets its clock to the database's (`clock`,
/// `storage::leases`).
///
/// How it fails: with leases and due times on each replica's own clock (remove
/// `Backend::now_sql` from the claim, and `Db::align_clock`), the replica ahead sees every
/// lease the other holds as expired and every job it scheduled as due (polls of one job
/// a tick apart), fails the other's jobs as past their hold timeout, and the jobs it held when
/// it died wait ten minutes for the replica behind. Drop `next_run_at <= $3` from the claim's
/// update (`Db::claim_due_jobs`) and a job that one replica claimed, polled and put back
/// between another replica's read of the due jobs and its write is polled again within
/// milliseconds (3 of 10 runs before that check was added).
#[tokio::test]
async fn replicas_whose_clocks_disagree_by_more_than_a_lease_claim_each_job_once() {
    let test = "replicas_whose_clocks_disagree_by_more_than_a_lease_claim_each_job_once";
    let (Some(server), Some(redis)) = (
        common::services::postgres_server(test),
        common::services::redis(test),
    ) else {
        return;
    };
    const SKEW_MS: i64 = 300_000;
    const POLL_MS: u64 = 800;
    let started = Instant::now();
    let db_url = common::fresh_postgres_database(&server).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(2500));
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[admin]
token = "{ADMIN_TOKEN}"
[workers]
tick_ms = 50
lease_secs = 6
lease_margin_secs = 4
hold_timeout_secs = 120
[storage]
dir = "{storage}"
archive = false
[security]
url_allowlist = ["127.0.0.1"]
[providers.sandbox]
enabled = false
[providers.aigateway]
enabled = true
base_url = "{base}"
api_key = "{FAKE_KEY}"
poll_interval_ms = {POLL_MS}
timeout_secs = 2
"#,
            storage = dir.path().join("storage").display(),
            base = fake.base_url("aigateway"),
        ),
    )
    .expect("config");
    let skewed = |ms: i64| [("SGW_TEST_MACHINE_CLOCK_SKEW_MS", ms.to_string())];
    let client = Client::new();
    let mut behind = spawn_replica_with(dir.path(), &config, &db_url, &redis, 0, &skewed(-SKEW_MS));
    wait_ready(&client, &mut behind).await;
    let mut ahead = spawn_replica_with(dir.path(), &config, &db_url, &redis, 1, &skewed(SKEW_MS));
    wait_ready(&client, &mut ahead).await;

    let tenant = admin(
        &client,
        &behind.base,
        "/admin/v1/tenants",
        json!({"name": "acme"}),
    )
    .await;
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    admin(
        &client,
        &ahead.base,
        &format!("/admin/v1/tenants/{tenant_id}/grants"),
        json!({"amount": 100_000, "reason": "test", "mode": "live"}),
    )
    .await;
    let key = admin(
        &client,
        &behind.base,
        &format!("/admin/v1/tenants/{tenant_id}/keys"),
        json!({"mode": "live"}),
    )
    .await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db_url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");

    // Jobs created on both, polled by both.
    let mut ids = Vec::new();
    for n in 0..8 {
        let base = if n % 2 == 0 {
            &behind.base
        } else {
            &ahead.base
        };
        ids.push(create_on(&client, base, &key, n).await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let (status, _, _) = stored_job(&database, id).await;
            if status == "completed" {
                break;
            }
            assert!(
                status == "queued" || status == "in_progress",
                "{id} ended {status}"
            );
            assert!(Instant::now() < deadline, "{id} never finished");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let calls = fake.calls("aigateway");
    let submits = calls.iter().filter(|c| c.op == "submit").count();
    assert_eq!(submits, ids.len(), "each job submitted once");
    for id in &ids {
        let (_, upstream, captures) = stored_job(&database, id).await;
        assert_eq!(captures, 1, "{id} charged once");
        let upstream = upstream.expect("submitted");
        let polls: Vec<u64> = calls
            .iter()
            .filter(|c| c.op == "poll" && c.path.contains(&upstream))
            .map(|c| c.at_ms)
            .collect();
        assert!(!polls.is_empty(), "{id} was polled");
        for pair in polls.windows(2) {
            assert!(
                pair[1] - pair[0] >= POLL_MS / 2,
                "{id} polled {} ms after its last poll (never twice at once, nor sooner than \
                 its interval): {polls:?}",
                pair[1] - pair[0]
            );
        }
    }

    // The replica ahead dies while it holds jobs mid-poll (the upstream holds their polls).
    drop(behind);
    let first_jobs = ids.len();
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(create_on(&client, &ahead.base, &key, 100 + n).await);
    }
    for _ in 0..4 {
        fake.inject(
            "aigateway",
            "poll",
            fake_upstream::Fault::Hang { millis: 30_000 },
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.faults_pending("aigateway", "poll") > 0 {
        assert!(Instant::now() < deadline, "the held polls never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ahead.child.kill().expect("SIGKILL");
    ahead.child.wait().expect("reaped");
    let killed = Instant::now();
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE lease_owner IS NOT NULL")
            .fetch_one(database.pool())
            .await
            .expect("count");
    assert!(leased > 0, "the replica died holding leases");

    // A replica behind takes them over once their 6 s leases run out, not ten minutes later.
    let mut next = spawn_replica_with(dir.path(), &config, &db_url, &redis, 2, &skewed(-SKEW_MS));
    wait_ready(&client, &mut next).await;
    let deadline = killed + Duration::from_secs(30);
    for id in &ids {
        loop {
            let (status, _, captures) = stored_job(&database, id).await;
            if status == "completed" {
                assert_eq!(captures, 1, "{id} charged once");
                break;
            }
            assert!(
                status == "queued" || status == "in_progress",
                "{id} ended {status}"
            );
            assert!(
                Instant::now() < deadline,
                "{id} was not taken over after its holder died"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let submits = fake
        .calls("aigateway")
        .iter()
        .filter(|c| c.op == "submit")
        .count();
    assert_eq!(submits, first_jobs + ids.len(), "each job submitted once");
    let audit = seedance_gateway::domain::reports::audit(&database)
        .await
        .expect("audit");
    assert!(audit.ok, "{audit:?}");
    eprintln!(
        "taken over {:?} after the kill; the test took {:?}",
        killed.elapsed(),
        started.elapsed()
    );
    drop(next);
}

/// Two replicas racing on one tenant: many creates against one balance split across both,
/// the same idempotency key sent to both at once, and a cancel on one replica against the
/// completion its job is reaching on the other, both transactions in flight at once.
///
/// - Overdraft: 20 creates of 200 credits at once, ten on each replica, against 1,100
///   credits: exactly five succeed, and the balance never goes below zero (each create takes
///   its hold with a conditional debit, `balance - amount >= floor`, in the transaction that
///   stores the job). Drop that condition from `Db::debit_above_floor` and the two replicas'
///   creates all pass: more than five succeed and the balance goes negative.
/// - One key, two replicas: both answers name one video; one job exists (the key is inserted
///   with the job, under a unique index; the loser waits for the winner's answer).
/// - Cancel against completion: the poll that reports completion is held upstream while the
///   test locks the job's row; the cancel goes to the replica that does not hold the job, and
///   waits for the lock with the completion; then the lock goes. The job ends once: completed
///   and captured, or canceled and voided, never both. Drop `AND {RUNNING}` (and the owner
///   guard) from the second write (`Db::mark_completed` / `Db::mark_ended`) to see both.
#[tokio::test]
async fn two_replicas_race_for_one_balance_one_key_and_one_job() {
    let test = "two_replicas_race_for_one_balance_one_key_and_one_job";
    let (Some(server), Some(redis)) = (
        common::services::postgres_server(test),
        common::services::redis(test),
    ) else {
        return;
    };
    let started = Instant::now();
    let db_url = common::fresh_postgres_database(&server).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(300));
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[admin]
token = "{ADMIN_TOKEN}"
[workers]
tick_ms = 20
lease_secs = 20
[storage]
dir = "{storage}"
archive = false
[security]
url_allowlist = ["127.0.0.1"]
[limits]
tenant_requests_per_minute = 100000
tenant_burst = 10000
[providers.sandbox]
enabled = false
[providers.seedance_it]
enabled = true
base_url = "{base}"
api_key = "{FAKE_KEY}"
poll_interval_ms = 50
timeout_secs = 10
"#,
            storage = dir.path().join("storage").display(),
            base = fake.base_url("seedance-it"),
        ),
    )
    .expect("config");
    let client = Client::new();
    let mut a = spawn_replica(dir.path(), &config, &db_url, &redis, 0);
    wait_ready(&client, &mut a).await;
    let mut b = spawn_replica(dir.path(), &config, &db_url, &redis, 1);
    wait_ready(&client, &mut b).await;
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db_url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    let tenant_with = |credits: i64| {
        let (client, base) = (client.clone(), a.base.clone());
        async move {
            let tenant = admin(&client, &base, "/admin/v1/tenants", json!({"name": "acme"})).await;
            let tenant_id = tenant["id"].as_str().expect("id").to_owned();
            admin(
                &client,
                &base,
                &format!("/admin/v1/tenants/{tenant_id}/grants"),
                json!({"amount": credits, "reason": "test", "mode": "live"}),
            )
            .await;
            let key = admin(
                &client,
                &base,
                &format!("/admin/v1/tenants/{tenant_id}/keys"),
                json!({"mode": "live"}),
            )
            .await["secret"]
                .as_str()
                .expect("secret")
                .to_owned();
            (tenant_id, key)
        }
    };
    let create = |base: &str, key: &str, prompt: String, idempotency: Option<&str>| {
        let mut request = client
            .post(format!("{base}/v1/videos"))
            .bearer_auth(key)
            .json(&json!({"model": "seedance-2.0-fast", "prompt": prompt, "seconds": 4}));
        if let Some(idempotency) = idempotency {
            request = request.header("Idempotency-Key", idempotency);
        }
        async move {
            let response = request.send().await.expect("create");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // Overdraft: twenty creates at once against five creates' worth of credit.
    let (tenant, key) = tenant_with(1_100).await;
    let answers = futures::future::join_all((0..20).map(|n| {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        create(base, &key, format!("race {n}"), None)
    }))
    .await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::PAYMENT_REQUIRED,
            "{status}: {body}"
        );
    }
    assert_eq!(created.len(), 5, "exactly the affordable five: {answers:?}");
    let available: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries \
         WHERE account_id = $1",
    )
    .bind(format!("{tenant}:live:available"))
    .fetch_one(database.pool())
    .await
    .expect("balance");
    assert!(available >= 0, "the balance went below zero: {available}");
    let balance: Value = client
        .get(format!("{}/admin/v1/tenants/{tenant}", b.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    assert_eq!(
        balance["balance"]["available"].as_i64(),
        Some(100),
        "{balance}"
    );

    // One key sent to both replicas at once: one job.
    let (_, key) = tenant_with(10_000).await;
    let (first, second) = tokio::join!(
        create(&a.base, &key, "once".into(), Some("the-same-key")),
        create(&b.base, &key, "once".into(), Some("the-same-key")),
    );
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(second.0, StatusCode::OK, "{}", second.1);
    assert_eq!(first.1["id"], second.1["id"], "one video for one key");
    let jobs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM videos WHERE request LIKE '%\"once\"%'")
            .fetch_one(database.pool())
            .await
            .expect("count");
    assert_eq!(jobs, 1, "one job for one key");

    // Every job so far ends, so that only the raced job is polled from here on.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM videos WHERE status IN ('queued', 'in_progress')",
        )
        .fetch_one(database.pool())
        .await
        .expect("count");
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{running} jobs never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Cancel on one replica against completion on the other, both in flight at once.
    let (tenant, key) = tenant_with(10_000).await;
    fake.set_job_duration(Duration::from_millis(0));
    fake.inject(
        "seedance-it",
        "poll",
        fake_upstream::Fault::Hang { millis: 1_000 },
    );
    let polls_before = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "poll")
        .count();
    let (status, video) = create(&a.base, &key, "a race".into(), None).await;
    assert_eq!(status, StatusCode::OK, "{video}");
    let id = video["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.faults_pending("seedance-it", "poll") > 0 {
        assert!(Instant::now() < deadline, "the job was never polled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        fake.calls("seedance-it")
            .iter()
            .filter(|c| c.op == "poll")
            .count()
            > polls_before
    );
    let mut holder = sqlx::postgres::PgConnection::connect(&db_url)
        .await
        .expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    let owner: Option<String> =
        sqlx::query_scalar("SELECT lease_owner FROM videos WHERE id = $1 FOR NO KEY UPDATE")
            .bind(&id)
            .fetch_one(&mut holder)
            .await
            .expect("lock");
    let owner = owner.expect("the polling replica holds the job's lease");
    let other = if owner.starts_with("replica-0") {
        &b.base
    } else {
        &a.base
    };
    let canceling = {
        let request = client
            .post(format!("{other}/v1/videos/{id}/cancel"))
            .bearer_auth(&key)
            .send();
        tokio::spawn(request)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(database.pool())
        .await
        .expect("pg_stat_activity");
        if waiting >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of 2 transactions reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT")
        .execute(&mut holder)
        .await
        .expect("commit");
    let canceled = canceling.await.expect("joined").expect("cancel answered");
    assert_eq!(canceled.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, _, captures) = loop {
        let (status, upstream, captures) = stored_job(&database, &id).await;
        if status == "completed" || status == "canceled" {
            break (status, upstream, captures);
        }
        assert!(Instant::now() < deadline, "{id} never ended: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entries = database
        .entries_for_video(&seedance_gateway::types::ids::VideoId::parse(&id).expect("id"))
        .await
        .expect("entries");
    let voids = entries
        .iter()
        .filter(|(kind, account, _)| kind == "void" && account.ends_with(":holds"))
        .count();
    let charged = match status.as_str() {
        "completed" => {
            assert_eq!((captures, voids), (1, 0), "{entries:?}");
            200
        }
        _ => {
            assert_eq!((captures, voids), (0, 1), "{entries:?}");
            0
        }
    };
    let balance: Value = client
        .get(format!("{}/admin/v1/tenants/{tenant}", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("tenant")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            balance["balance"]["available"].as_i64(),
            balance["balance"]["held"].as_i64()
        ),
        (Some(10_000 - charged), Some(0)),
        "{balance}"
    );

    let audit = seedance_gateway::domain::reports::audit(&database)
        .await
        .expect("audit");
    assert!(audit.ok, "{audit:?}");
    eprintln!(
        "cancel against completion across replicas: {status}; the test took {:?}",
        started.elapsed()
    );
}

/// An operator command run on a machine whose clock is far off stamps what it writes with the
/// database's time, as `serve` does: the demo tenant's grants from `bootstrap` on a machine ten
/// minutes ahead are dated now, not ten minutes from now (so a grant near midnight counts in
/// the right day and month). Remove the alignment from `cli/database.rs` and this fails.
#[tokio::test]
async fn an_operator_command_on_a_machine_ten_minutes_ahead_stamps_the_databases_time() {
    let test = "an_operator_command_on_a_machine_ten_minutes_ahead_stamps_the_databases_time";
    let Some(server) = common::services::postgres_server(test) else {
        return;
    };
    const SKEW_MS: i64 = 600_000;
    let db_url = common::fresh_postgres_database(&server).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_seedance-gateway"))
        .args(["bootstrap", "--format", "env"])
        .env("SEEDANCE_GW_DATABASE__URL", &db_url)
        .env("SEEDANCE_GW_STORAGE__DIR", dir.path().join("storage"))
        .env("SGW_TEST_MACHINE_CLOCK_SKEW_MS", SKEW_MS.to_string())
        .env_remove("SEEDANCE_GW_ADMIN__TOKEN")
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .expect("run the gateway binary");
    assert!(
        output.status.success(),
        "bootstrap: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut connection = sqlx::PgConnection::connect(&db_url).await.expect("connect");
    let (stamped, now): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT MAX(created_at) FROM ledger_entries), \
                CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    )
    .fetch_one(&mut connection)
    .await
    .expect("read the journal");
    let stamped = stamped.expect("bootstrap granted credits");
    assert!(
        (now - stamped).abs() < SKEW_MS / 10,
        "the grant is stamped {} ms from the database's time",
        stamped - now
    );
}
