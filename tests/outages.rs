//! When the database cannot serve: requests get 503 `database_unavailable` with `Retry-After`
//! (never a 500, never an authentication failure), readiness turns 503 and recovers on its
//! own, and start-up refuses a database it cannot use with the real cause, quickly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestApp, TestDatabase};
use reqwest::StatusCode;
use seedance_gateway::config::{Config, Secret};
use seedance_gateway::App;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls readiness until it answers `want`, for at most 15 s.
async fn wait_ready(app: &TestApp, want: StatusCode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = ready(app).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readiness stayed {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_unavailable(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5"),
        "{body}"
    );
}

/// Another process holding SQLite's write lock: creates are 503 (not 500) after the busy
/// timeout, readiness says why at once, and both recover when the lock is released.
#[tokio::test]
async fn a_sqlite_write_lock_held_elsewhere_is_a_503_and_readiness_recovers() {
    let app = TestApp::spawn().await;
    if app.database.is_postgres() {
        eprintln!("SQLite write locks: covered by the SQLite pass");
        return;
    }
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    assert_eq!(ready(&app).await.0, StatusCode::OK);
    let path = app.database.dir.path().join("gateway.db");
    let holder = rusqlite::Connection::open(&path).expect("open");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let body = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    // The probe reports the lock itself, or (on a slow machine) that it got no answer in time.
    assert!(
        body["status"] == "database locked by another process"
            || body["status"] == "database cannot take writes",
        "{body}"
    );
    let started = Instant::now();
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await;
    let (status, headers) = (response.status(), response.headers().clone());
    let body: Value = response.json().await.expect("json");
    assert_unavailable(status, &headers, &body);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "waited {waited:?}");

    holder.execute_batch("ROLLBACK").expect("release");
    drop(holder);
    wait_ready(&app, StatusCode::OK).await;
    let response = app
        .create_video(&key, json!({"prompt": "x", "seconds": 4}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A TCP relay in front of PostgreSQL that can be cut (connections reset, new ones refused)
/// and restored on the same port.
struct Relay {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let relay = Relay {
            port,
            upstream,
            tasks: Arc::default(),
        };
        relay.serve(listener).await;
        relay
    }

    async fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = self.tasks.clone();
        let inner = self.tasks.clone();
        tasks.lock().await.spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                inner.lock().await.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    /// Resets every relayed connection and stops listening: new connections are refused.
    async fn cut(&self) {
        self.tasks.lock().await.abort_all();
        // Aborted tasks drop their sockets (and the listener) as they are polled.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the relay port");
        self.serve(listener).await;
    }
}

/// PostgreSQL going away: every request is 503 `database_unavailable` within the acquire
/// timeout, a valid key is never counted as a failed authentication (no `auth_throttled`),
/// readiness turns 503, and all of it recovers when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_is_a_503_and_never_throttles_a_valid_key() {
    let database = TestDatabase::create().await;
    if !database.is_postgres() {
        eprintln!("PostgreSQL outages: covered by the PostgreSQL pass (TEST_DATABASE_URL)");
        return;
    }
    let mut url = url::Url::parse(&database.url).expect("url");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let relay = Relay::start(upstream).await;
    url.set_port(Some(relay.port)).expect("port");
    let relayed = url.to_string();
    let mut app = TestApp::spawn_with(|config| {
        config.database.url = Secret::new(relayed);
        config.database.acquire_timeout_secs = 2;
        config.limits.failed_auth_per_minute = 10;
    })
    .await;
    // The after-test audit reads the relayed database directly.
    app.database.url = database.url.clone();
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let (status, _) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(status, StatusCode::OK);

    relay.cut().await;
    let started = Instant::now();
    let mut requests = JoinSet::new();
    for _ in 0..40 {
        let client = app.client.clone();
        let url = app.url("/v1/videos");
        let key = key.clone();
        requests.spawn(async move {
            let response = client.get(url).bearer_auth(key).send().await.expect("send");
            let status = response.status();
            let headers = response.headers().clone();
            (
                status,
                headers,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let mut answered = 0;
    while let Some(outcome) = requests.join_next().await {
        let (status, headers, body) = outcome.expect("request task");
        assert_unavailable(status, &headers, &body);
        answered += 1;
    }
    assert_eq!(answered, 40);
    let seconds_to_503 = started.elapsed();
    assert!(
        seconds_to_503 < Duration::from_secs(10),
        "{seconds_to_503:?}"
    );
    eprintln!("40 requests answered 503 in {seconds_to_503:?} (acquire timeout 2 s)");
    let body = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["status"], "database unreachable");

    relay.restore().await;
    wait_ready(&app, StatusCode::OK).await;
    let (status, body) = app.get_json(&key, "/v1/videos").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the valid key was throttled: {body}"
    );
}

fn config_for(url: &str, dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = Secret::new(url);
    config.storage.dir = dir.join("storage");
    config
}

/// Start-up names what failed, within 2 s, when the cause is final.
#[tokio::test]
async fn start_up_says_what_failed_and_fails_fast() {
    let dir = tempfile::tempdir().expect("dir");
    let not_a_database = dir.path().join("notes.db");
    std::fs::write(
        &not_a_database,
        "these are notes, not a database\n".repeat(200),
    )
    .expect("write");
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let cases = [
        (
            format!("sqlite://{}", not_a_database.display()),
            "file is not a database",
        ),
        (
            format!("postgres://postgres@127.0.0.1:{closed_port}/test"),
            "refused",
        ),
    ];
    for (url, cause) in cases {
        let started = Instant::now();
        let error = match App::build(config_for(&url, dir.path())).await {
            Ok(_) => panic!("{url} started"),
            Err(error) => format!("{error:#}"),
        };
        let took = started.elapsed();
        assert!(error.contains(cause), "{url}: {error}");
        assert!(
            error.contains("connecting to the database at"),
            "{url}: {error}"
        );
        assert!(!error.contains("pool timed out"), "{url}: {error}");
        assert!(
            took < Duration::from_secs(2),
            "{url}: failed after {took:?}"
        );
    }
}

/// A SQLite file with damaged pages is refused at start with SQLite's own finding.
#[tokio::test]
async fn a_damaged_sqlite_file_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gateway.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    // A real gateway database, made by another process that has exited since.
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_seedance-gateway"))
        .args(["tenants", "list"])
        .env("SEEDANCE_GW_DATABASE__URL", &url)
        .env_remove("DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .expect("run the gateway");
    assert!(made.status.success(), "{made:?}");
    // Fold the WAL into the file, then overwrite pages in the middle of it.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .expect("checkpoint");
    drop(conn);
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() >= 4096 * 8, "database of {} bytes", bytes.len());
    for byte in &mut bytes[4096 * 3..4096 * 6] {
        *byte = 0xA5;
    }
    std::fs::write(&path, bytes).expect("write");
    let error = match App::build(config_for(&url, dir.path())).await {
        Ok(_) => panic!("a damaged database started"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("damaged") || error.contains("malformed"),
        "{error}"
    );
}

fn gateway_on(url: &str, dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_seedance-gateway"));
    command
        .args(args)
        .env("SEEDANCE_GW_DATABASE__URL", url)
        .env("SEEDANCE_GW_SERVER__LISTEN", "127.0.0.1:0")
        .env("SEEDANCE_GW_STORAGE__DIR", dir.join("storage"))
        .env_remove("DATABASE_URL")
        .current_dir(dir);
    command
}

/// Runs a `serve` that is expected to be refused: its stderr once it exits, or `None` (after
/// killing it) if it is still serving after `within`.
fn refused_serve(url: &str, dir: &std::path::Path, within: Duration) -> Option<String> {
    let mut child = gateway_on(url, dir, &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + within;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success(), "{url}: serve exited successfully");
    Some(String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The one-`serve`-per-file rule holds for the file, not for the name it is given: the same
/// file reached through a symlink (made before the file exists), its target, a relative path
/// or a symlinked directory is refused while it is served.
#[test]
fn a_file_served_through_a_symlink_is_refused_under_its_other_names() {
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("gateway.db");
    let link = dir.path().join("alias.db");
    std::os::unix::fs::symlink(&target, &link).expect("symlink to a file not yet created");
    std::os::unix::fs::symlink(dir.path(), dir.path().join("linked-dir")).expect("dir link");
    let url_of = |path: &std::path::Path| format!("sqlite://{}?mode=rwc", path.display());

    let mut first = gateway_on(&url_of(&link), dir.path(), &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let lock = dir.path().join("gateway.db-serve.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            Instant::now() < deadline,
            "the serve through the symlink did not claim its target"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let others = [
        url_of(&target),
        "sqlite://gateway.db?mode=rwc".to_string(),
        url_of(&dir.path().join("linked-dir").join("alias.db")),
        url_of(&dir.path().join("linked-dir").join("gateway.db")),
    ];
    let outcomes: Vec<_> = others
        .iter()
        .map(|url| (url, refused_serve(url, dir.path(), Duration::from_secs(15))))
        .collect();
    let _ = first.kill();
    let _ = first.wait();
    for (url, stderr) in outcomes {
        let stderr = stderr.unwrap_or_else(|| panic!("{url}: a second serve started"));
        assert!(
            stderr.contains("already serving") && stderr.contains(&first.id().to_string()),
            "{url}: {stderr}"
        );
    }
}

/// Processes opening a new SQLite file at once apply its migrations once between them, and a
/// second `serve` on a file already served is refused with the reason.
#[test]
fn sqlite_migrations_are_serialized_and_one_process_serves_a_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gateway.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let starters: Vec<_> = (0..4)
        .map(|_| {
            gateway_on(&url, dir.path(), &["tenants", "list"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in starters {
        let output = child.wait_with_output().expect("wait");
        assert!(
            output.status.success(),
            "a concurrent start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let mut first = gateway_on(&url, dir.path(), &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let lock = dir.path().join("gateway.db-serve.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            Instant::now() < deadline,
            "the first serve did not claim the file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = gateway_on(&url, dir.path(), &["serve"])
        .output()
        .expect("second serve");
    let _ = first.kill();
    let _ = first.wait();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second serve started");
    assert!(
        stderr.contains("already serving") && stderr.contains(&first.id().to_string()),
        "{stderr}"
    );
    // Other commands still open a served file (checked above while none served); and once
    // the first is gone, the file can be served again.
    let mut again = gateway_on(&url, dir.path(), &["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != again.id().to_string() {
        assert!(Instant::now() < deadline, "the file was not served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = again.kill();
    let _ = again.wait();
}

/// A PostgreSQL database that is not accepting connections (SQLSTATE 55000, as during
/// maintenance with `ALLOW_CONNECTIONS false`) is a 503 `database_unavailable`, not a 500,
/// and service resumes when it accepts them again.
#[tokio::test]
async fn a_database_not_accepting_connections_is_a_503() {
    use sqlx::Connection;
    let app = TestApp::spawn_with(|config| config.database.acquire_timeout_secs = 2).await;
    if !app.database.is_postgres() {
        eprintln!("PostgreSQL maintenance: covered by the PostgreSQL pass (TEST_DATABASE_URL)");
        return;
    }
    let (_, key) = app.tenant_with_key("test", 10_000).await;
    let (status, _) = app.get_json(&key, "/v1/balance").await;
    assert_eq!(status, StatusCode::OK);
    let server = std::env::var("TEST_DATABASE_URL").expect("the server");
    let name = url::Url::parse(&app.database.url).expect("url").path()[1..].to_string();
    let mut admin = sqlx::postgres::PgConnection::connect(&server)
        .await
        .expect("admin connection");
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("close the database");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("end its sessions");
    for _ in 0..3 {
        let response = app
            .client
            .get(app.url("/v1/balance"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_unavailable(status, &headers, &body);
    }
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("open the database");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = app.get_json(&key, "/v1/balance").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not resume: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
