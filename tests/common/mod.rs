//! Test harness: starts the real gateway on port 0 with its own database — a SQLite file in a
//! temporary directory, or a fresh PostgreSQL database on the server named by
//! `TEST_DATABASE_URL` — and talks HTTP to it.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod receiver;
pub mod services;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use seedance_gateway::config::{Config, Secret};
use seedance_gateway::storage::Db;
use seedance_gateway::App;
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A database of its own for one test.
pub struct TestDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match std::env::var("TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => fresh_postgres_database(&server).await,
            _ => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("gateway.db").display()
            ),
        };
        TestDatabase { url, dir }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

pub async fn fresh_postgres_database(server: &str) -> String {
    let name = format!(
        "gw_test_{}",
        seedance_gateway::types::ids::random_token(12).to_lowercase()
    );
    let mut conn = sqlx::postgres::PgConnection::connect(server)
        .await
        .expect("TEST_DATABASE_URL must point at a reachable PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(server).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// The configuration every test starts from: port 0, fast sandbox and worker.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = Secret::new(db.url.clone());
    config.database.max_connections = 8;
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    config.providers.sandbox.delay_ms = 300;
    config.workers.tick_ms = 50;
    config.storage.dir = db.dir.path().join("storage");
    // Tests run without DNS: the example hosts they use are admitted by the allowlist.
    config.security.url_allowlist = vec![".example.com".into()];
    // Request rates are exercised by their own tests; the others must not trip over them.
    config.limits.tenant_requests_per_minute = 1_000_000;
    config.limits.tenant_burst = 100_000;
    config
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub db: Db,
    pub config: Config,
    shutdown: CancellationToken,
    draining: Arc<AtomicBool>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub database: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let database = TestDatabase::create().await;
        let mut config = test_config(&database);
        adjust(&mut config);
        let app = App::build(config.clone()).await.expect("app builds");
        let base = format!("http://{}", app.local_addr());
        let db = app.state().db.clone();
        let draining = app.state().draining.clone();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run());
        TestApp {
            base,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            db,
            config,
            shutdown,
            draining,
            handle: Some(handle),
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the app and starts a new one on the same database and storage (a restart).
    pub async fn restart(&mut self) {
        self.stop().await;
        let app = App::build(self.config.clone()).await.expect("app rebuilds");
        self.base = format!("http://{}", app.local_addr());
        self.db = app.state().db.clone();
        self.draining = app.state().draining.clone();
        self.shutdown = app.shutdown_token();
        self.handle = Some(tokio::spawn(app.run()));
    }

    /// Asks the app to drain, without waiting for it to stop.
    pub fn begin_drain(&self) {
        self.shutdown.cancel();
    }

    /// Whether the app has started draining (refusing new requests).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Asks the app to drain and waits for it to stop.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle).await;
            assert!(result.is_ok(), "the app did not stop within 30 s");
        }
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// A tenant with `credits` in both modes, and a key of the given mode (`live`/`test`).
    pub async fn tenant_with_key(&self, mode: &str, credits: i64) -> (String, String) {
        let tenant = self
            .admin_post("/admin/v1/tenants", json!({"name": "acme"}))
            .await
            .json::<Value>()
            .await
            .expect("tenant json");
        let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
        if credits > 0 {
            for m in ["live", "test"] {
                let r = self
                    .admin_post(
                        &format!("/admin/v1/tenants/{tenant_id}/grants"),
                        json!({"amount": credits, "reason": "test credit", "mode": m}),
                    )
                    .await;
                assert_eq!(r.status(), StatusCode::CREATED);
            }
        }
        let key = self
            .admin_post(
                &format!("/admin/v1/tenants/{tenant_id}/keys"),
                json!({"mode": mode}),
            )
            .await
            .json::<Value>()
            .await
            .expect("key json");
        (
            tenant_id,
            key["secret"].as_str().expect("secret").to_string(),
        )
    }

    pub async fn create_video(&self, key: &str, body: Value) -> Response {
        self.client
            .post(self.url("/v1/videos"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls a video until it is completed, failed or canceled.
    pub async fn wait_terminal(&self, key: &str, id: &str) -> Value {
        wait_terminal(&self.client, &self.base, key, id, Duration::from_secs(30)).await
    }

    /// The tenant's balances as the admin API reports them.
    pub async fn balance(&self, tenant: &str) -> Value {
        self.admin_get(&format!("/admin/v1/tenants/{tenant}"))
            .await
            .json::<Value>()
            .await
            .expect("tenant json")["balance"]
            .clone()
    }

    /// Every money invariant the audit checks (see `storage::audit`).
    pub async fn assert_ledger_consistent(&self) {
        let report = seedance_gateway::domain::reports::audit(&self.db)
            .await
            .expect("audit");
        assert!(report.ok, "ledger audit failed: {report:?}");
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.config.storage.dir.clone()
    }
}

impl Drop for TestApp {
    /// Stops the app and, unless the test already failed, runs the full money audit
    /// (`Db::audit_ledger`: the journal, holds, charges, refunds, running totals and modes)
    /// after every test.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if std::thread::panicking() {
            return;
        }
        let url = self.database.url.clone();
        let audit = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let db = Db::connect(&seedance_gateway::config::DatabaseConfig {
                    url: Secret::new(url),
                    max_connections: 1,
                    ..Default::default()
                })
                .await
                .expect("audit connection");
                let report = seedance_gateway::domain::reports::audit(&db)
                    .await
                    .expect("audit");
                db.close().await;
                report
            })
        })
        .join()
        .expect("audit thread");
        assert!(
            audit.ok,
            "ledger invariants broken at the end of the test: {audit:?}"
        );
    }
}

pub async fn wait_terminal(
    client: &Client,
    base: &str,
    key: &str,
    id: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let response = client
            .get(format!("{base}/v1/videos/{id}"))
            .bearer_auth(key)
            .send()
            .await;
        if let Ok(response) = response {
            if response.status() == StatusCode::OK {
                let video: Value = response.json().await.expect("video json");
                if matches!(
                    video["status"].as_str(),
                    Some("completed" | "failed" | "canceled")
                ) {
                    return video;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "video {id} did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The journal transactions of one video, in order, as (kind, net change to what the tenant
/// can spend: its available, promotional and wallet accounts, not its holds). Exact: a
/// repeated capture or void shows as a second transaction.
pub async fn ledger_postings(db: &Db, video: &str) -> Vec<(String, i64)> {
    let rows = sqlx::query(
        "SELECT txn_id, kind, account_id, amount FROM ledger_entries WHERE video_id = $1 ORDER BY seq",
    )
    .bind(video)
    .fetch_all(db.pool())
    .await
    .expect("entries");
    let mut postings: Vec<(String, String, i64)> = Vec::new();
    for row in rows {
        let txn: String = row.get(0);
        let kind: String = row.get(1);
        let account: String = row.get(2);
        let amount: i64 = row.get(3);
        let spendable = !account.starts_with("system:") && !account.ends_with(":holds");
        let change = if spendable { amount } else { 0 };
        match postings.iter_mut().find(|(t, _, _)| *t == txn) {
            Some(posting) => posting.2 += change,
            None => postings.push((txn, kind, change)),
        }
    }
    postings
        .into_iter()
        .map(|(_, kind, change)| (kind, change))
        .collect()
}

/// Asserts a video's journal, transaction by transaction: each (kind, change to what the
/// tenant can spend), in order (see [`ledger_postings`]).
pub async fn assert_postings(db: &Db, video: &str, expected: &[(&str, i64)]) {
    let expected: Vec<(String, i64)> = expected
        .iter()
        .map(|(kind, change)| (kind.to_string(), *change))
        .collect();
    assert_eq!(
        ledger_postings(db, video).await,
        expected,
        "the journal of {video}"
    );
}

/// Checks `check` every 10 ms until it holds or `limit` has passed, and says whether it held.
/// To show that something did not happen, give a limit well past the time it would take.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The kinds of a video's journal transactions, in order, one per transaction (see
/// [`ledger_postings`]).
pub async fn ledger_kinds(db: &Db, video: &str) -> Vec<String> {
    ledger_postings(db, video)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}
