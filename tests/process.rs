//! The real binary as an operator runs it: configuration layering and validation, logs,
//! graceful shutdown on SIGTERM, and recovery after SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A test fails loudly.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{wait_terminal, TestDatabase, ADMIN_TOKEN};
use fake_upstream::Fault;
use reqwest::{Client, StatusCode};
use seedance_gateway::config::{DatabaseConfig, Secret};
use seedance_gateway::storage::Db;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_seedance-gateway");

/// A command for the binary with a clean `SEEDANCE_GW_*` environment.
fn gateway(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("SEEDANCE_GW_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.current_dir(dir);
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("the binary runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    async fn start(db: &TestDatabase, extra: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = db.dir.path().join(format!("gateway-{port}.log"));
        let mut command = gateway(db.dir.path());
        command
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("SEEDANCE_GW_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("SEEDANCE_GW_ADMIN__TOKEN", ADMIN_TOKEN)
            .env("SEEDANCE_GW_STORAGE__DIR", db.dir.path().join("storage"))
            .env("SEEDANCE_GW_WORKERS__TICK_MS", "50")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("gateway starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not become ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { child, base, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tenant_and_key(client: &Client, base: &str, credits: i64) -> (String, String) {
    let admin = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants", json!({"name": "acme"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant_id = tenant["id"].as_str().expect("id").to_string();
    let grant = admin(
        &format!("/admin/v1/tenants/{tenant_id}/grants"),
        json!({"amount": credits, "reason": "test", "mode": "test"}),
    )
    .await
    .expect("send");
    assert_eq!(grant.status(), StatusCode::CREATED);
    let key: Value = admin(
        &format!("/admin/v1/tenants/{tenant_id}/keys"),
        json!({"mode": "test"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    (
        tenant_id,
        key["secret"].as_str().expect("secret").to_string(),
    )
}

#[test]
fn an_unknown_configuration_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("gateway.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:9000\"\nlistne = \"oops\"\n",
    )
    .expect("write");
    let output = run(gateway(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("check-config"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listne"), "stderr: {stderr}");

    let output = run(gateway(dir.path())
        .arg("check-config")
        .env("SEEDANCE_GW_WORKERS__LEASE_SECONDS", "5"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lease_seconds"), "stderr: {stderr}");

    let output = run(gateway(dir.path())
        .arg("check-config")
        .env("SEEDANCE_GW_SERVER__LISTEN", "not-an-address"));
    assert!(!output.status.success());

    // Providers' sections are read by name: one that names no provider, or a misspelt key
    // inside a known one, is refused with its name; a known one by file or variable is read.
    for (text, named) in [
        (
            "[providers.seedance_itt]\nenabled = false\n",
            "providers.seedance_itt",
        ),
        ("[providers.apiframe]\nenabeld = true\n", "enabeld"),
    ] {
        std::fs::write(&file, text).expect("write");
        let output = run(gateway(dir.path())
            .arg("--config")
            .arg(&file)
            .arg("check-config"));
        assert!(!output.status.success(), "{text} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{text}: {stderr}");
    }
    let output = run(gateway(dir.path())
        .arg("check-config")
        .env("SEEDANCE_GW_PROVIDERS__APIFRAME__TIMEOUT_SECS", "7"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let apiframe = stdout
        .split("[providers.apiframe]")
        .nth(1)
        .expect("the apiframe section is listed");
    assert!(apiframe.contains("timeout_secs = 7"), "{stdout}");
    assert!(
        stdout.contains("[providers.aimlapi]"),
        "every provider is listed: {stdout}"
    );

    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://x.db?mode=memory",
    ] {
        let output = run(gateway(dir.path())
            .arg("check-config")
            .env("DATABASE_URL", url));
        assert!(!output.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("in-memory"), "{url}: {stderr}");
    }
    let output = run(gateway(dir.path())
        .arg("check-config")
        .env("DATABASE_URL", "sqlite://memory.db?mode=rwc"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn configuration_layers_defaults_then_file_then_environment_and_masks_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("gateway.toml");
    let mut f = std::fs::File::create(&file).expect("create");
    writeln!(f, "[providers.sandbox]\ndelay_ms = 1234\nfail_all = true\n[admin]\ntoken = \"file-token-that-is-secret\"").expect("write");
    let output = run(gateway(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .env("SEEDANCE_GW_PROVIDERS__SANDBOX__DELAY_MS", "4321")
        .env(
            "DATABASE_URL",
            "postgres://gateway:hunter2-password@db.internal/gateway",
        ));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let effective: toml::Value = toml::from_str(&stdout).expect("check-config prints TOML");
    assert_eq!(
        effective["providers"]["sandbox"]["delay_ms"].as_integer(),
        Some(4321)
    );
    assert_eq!(
        effective["providers"]["sandbox"]["fail_all"].as_bool(),
        Some(true)
    );
    assert_eq!(
        effective["server"]["listen"].as_str(),
        Some("127.0.0.1:8080")
    );
    // Only the password is masked: which database is used stays visible.
    assert_eq!(
        effective["database"]["url"].as_str(),
        Some("postgres://gateway:********@db.internal/gateway")
    );
    assert_eq!(effective["admin"]["token"].as_str(), Some("********"));
    assert!(!stdout.contains("hunter2"));
    assert!(!stdout.contains("file-token-that-is-secret"));
}

/// Every list- or table-valued setting takes, from the environment, the JSON and the TOML
/// forms the configuration reference documents.
#[test]
fn list_and_table_settings_take_json_and_toml_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let issuers_json = r#"[{"issuer": "https://idp.example.com", "audience": "seedance-gateway", "algorithm": "HS256", "secret": "hs-secret-for-tests-0123456789abcdef", "tenant_claim": "team", "leeway_secs": 5}]"#;
    let issuers_toml = r#"[{issuer = "https://idp.example.com", audience = "seedance-gateway", algorithm = "HS256", secret = "hs-secret-for-tests-0123456789abcdef", tenant_claim = "team", leeway_secs = 5}]"#;
    for issuers in [issuers_json, issuers_toml] {
        let output = run(gateway(dir.path())
            .arg("check-config")
            .env("DATABASE_URL", "sqlite://gateway.db?mode=rwc")
            .env("SEEDANCE_GW_AUTH__JWT_ISSUERS", issuers)
            .env(
                "SEEDANCE_GW_SECURITY__URL_ALLOWLIST",
                r#"["cdn.internal", ".corp.example"]"#,
            )
            .env("SEEDANCE_GW_WEBHOOKS__RETRY_SCHEDULE_SECS", "[5, 60]")
            .env("SEEDANCE_GW_ROUTING__PROVIDERS", r#"["sandbox"]"#)
            .env(
                "SEEDANCE_GW_PRICING__CREDITS_PER_SECOND",
                r#"{"seedance-2.0": 70, "seedance-2.0-fast": 50, "seedance-2.0-mini": 35}"#,
            )
            .env(
                "SEEDANCE_GW_PRICING__UPSTREAM_USD_PER_SECOND",
                r#"{"aimlapi": {"seedance-2.0-mini": "0.05"}}"#,
            )
            .env(
                "SEEDANCE_GW_PROVIDERS__AIMLAPI__CAPABILITIES",
                r#"{"seedance-2.0-fast": {"resolutions": ["480p", "720p"]}}"#,
            ));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{issuers}: {stderr}");
        let effective: toml::Value =
            toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("TOML");
        let issuer = &effective["auth"]["jwt_issuers"][0];
        assert_eq!(issuer["issuer"].as_str(), Some("https://idp.example.com"));
        assert_eq!(issuer["tenant_claim"].as_str(), Some("team"));
        assert_eq!(issuer["leeway_secs"].as_integer(), Some(5));
        assert_eq!(issuer["secret"].as_str(), Some("********"));
        assert_eq!(
            effective["security"]["url_allowlist"],
            toml::Value::try_from(["cdn.internal", ".corp.example"]).expect("toml")
        );
        assert_eq!(
            effective["webhooks"]["retry_schedule_secs"],
            toml::Value::try_from([5, 60]).expect("toml")
        );
        assert_eq!(
            effective["routing"]["providers"],
            toml::Value::try_from(["sandbox"]).expect("toml")
        );
        assert_eq!(
            effective["pricing"]["credits_per_second"]["seedance-2.0"].as_integer(),
            Some(70)
        );
        assert_eq!(
            effective["pricing"]["upstream_usd_per_second"]["aimlapi"]["seedance-2.0-mini"]
                .as_str(),
            Some("0.05")
        );
        assert_eq!(
            effective["providers"]["aimlapi"]["capabilities"]["seedance-2.0-fast"]["resolutions"],
            toml::Value::try_from(["480p", "720p"]).expect("toml")
        );
    }
    // A mistake inside such a value is still an error naming the key and the variable.
    let output = run(gateway(dir.path()).arg("check-config").env(
        "SEEDANCE_GW_AUTH__JWT_ISSUERS",
        r#"[{"issuer": "https://idp.example.com", "audiense": "x"}]"#,
    ));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("audiense") && stderr.contains("SEEDANCE_GW_AUTH__JWT_ISSUERS"),
        "{stderr}"
    );
}

#[test]
fn the_configuration_reference_documents_every_key() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let defaults =
        toml::Value::try_from(seedance_gateway::Config::default()).expect("defaults as TOML");
    let mut missing = Vec::new();
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, child) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if path == "pricing.credits_per_second" {
                    out.push(path);
                    continue;
                }
                match child {
                    toml::Value::Table(_) => walk(&path, child, out),
                    _ => out.push(path),
                }
            }
        }
    }
    let mut keys = Vec::new();
    walk("", &defaults, &mut keys);
    keys.push("admin.token".into());
    for key in keys {
        if !reference.contains(&format!("`{key}`")) {
            missing.push(key);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document: {missing:?}"
    );
}

/// The reference's "Complete example" block is loadable, sets every key the defaults have,
/// and sets each to its default value.
#[test]
fn the_documented_complete_example_is_the_defaults() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let section = reference
        .split("## Complete example")
        .nth(1)
        .expect("a Complete example section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block");
    let example: toml::Value = toml::from_str(block).expect("the example is TOML");
    let loaded: seedance_gateway::Config =
        toml::from_str(block).expect("the example loads as a configuration");
    let mut loaded = toml::Value::try_from(loaded).expect("loaded as TOML");
    let defaults =
        toml::Value::try_from(seedance_gateway::Config::default()).expect("defaults as TOML");
    // The example shows a token; the default has none.
    if let Some(admin) = loaded.get_mut("admin").and_then(|a| a.as_table_mut()) {
        admin.remove("token");
    }
    fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, child) in table {
                let path = format!("{prefix}.{key}");
                out.push(path.clone());
                keys(&path, child, out);
            }
        }
    }
    let (mut documented, mut expected) = (Vec::new(), Vec::new());
    keys("", &example, &mut documented);
    keys("", &defaults, &mut expected);
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !documented.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "the complete example leaves out {missing:?}"
    );
    assert_eq!(
        loaded, defaults,
        "the complete example differs from the defaults"
    );
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_sigterm_drains_cleanly() {
    let db = TestDatabase::create().await;
    let mut server = Server::start(&db, &[("SEEDANCE_GW_LOG__FORMAT", "json")]).await;
    let client = Client::new();
    let response = client
        .get(format!("{}/v1/videos", server.base))
        .bearer_auth("sgw_test_bad")
        .send()
        .await
        .expect("send");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");

    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "logs are JSON lines: {logs}");
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["request_id"].as_str() == Some(request_id.as_str()))
        .collect();
    assert!(
        !of_request.is_empty(),
        "no log line carries request id {request_id}: {logs}"
    );
    assert!(logs.contains("shutdown requested"));
}

#[tokio::test]
async fn jobs_in_flight_at_a_sigkill_finish_after_restart_and_are_charged_once() {
    let db = TestDatabase::create().await;
    // Jobs long enough that none ends before the kill, however slowly a loaded machine
    // creates the eight.
    let env = [
        ("SEEDANCE_GW_PROVIDERS__SANDBOX__DELAY_MS", "8000"),
        ("SEEDANCE_GW_WORKERS__LEASE_SECS", "2"),
    ];
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let (tenant, key) = tenant_and_key(&client, &first.base, 10_000).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let response = client
            .post(format!("{}/v1/videos", first.base))
            .bearer_auth(&key)
            .json(&json!({"prompt": format!("clip {n}"), "seconds": 5}))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        let video: Value = response.json().await.expect("json");
        ids.push(video["id"].as_str().expect("id").to_string());
    }
    // Let the worker submit some of them, then kill the process without warning.
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");

    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    assert_eq!(
        database
            .count_jobs_in(seedance_gateway::domain::jobs::transitions::IN_FLIGHT)
            .await
            .expect("count"),
        8,
        "all jobs were still running at the kill"
    );

    let second = Server::start(&db, &env).await;
    for id in &ids {
        let video = wait_terminal(&client, &second.base, &key, id, Duration::from_secs(60)).await;
        assert_eq!(video["status"], "completed", "{video}");
        assert_eq!(video["cost"]["charged"], 300);
        let entries = database
            .entries_for_video(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
            .await
            .expect("entries");
        let captures = entries
            .iter()
            .filter(|(kind, _, _)| kind == "capture")
            .map(|(_, account, _)| account.clone())
            .collect::<Vec<_>>();
        assert_eq!(
            captures.iter().filter(|a| a.ends_with(":holds")).count(),
            1,
            "one capture for {id}: {entries:?}"
        );
    }
    let tenant_id = seedance_gateway::types::ids::TenantId::parse(&tenant).expect("tenant id");
    let balance = seedance_gateway::domain::billing::ledger::balance(
        &database,
        &tenant_id,
        seedance_gateway::types::money::Mode::Test,
    )
    .await
    .expect("balance");
    assert_eq!(
        (balance.available.get(), balance.held.get()),
        (10_000 - 8 * 300, 0)
    );
    let audit = seedance_gateway::domain::reports::audit(&database)
        .await
        .expect("audit");
    assert!(audit.ok, "{audit:?}");
}

fn cli(db: &TestDatabase, args: &[&str]) -> Output {
    let output = run(gateway(db.dir.path())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("SEEDANCE_GW_STORAGE__DIR", db.dir.path().join("storage")));
    assert!(
        output.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The full money audit, as an operator runs it: `ledger audit` exits 0 and reports `ok`.
fn assert_cli_audit_ok(db: &TestDatabase) {
    let output = cli(db, &["ledger", "audit"]);
    let report: Value = serde_json::from_slice(&output.stdout).expect("the audit prints JSON");
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn bootstrap_prints_credentials_that_reach_a_finished_video() {
    let db = TestDatabase::create().await;
    let output = cli(&db, &["bootstrap", "--format", "env", "--credits", "5000"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} missing from: {stdout}"))
            .to_string()
    };
    let (admin, tenant, key) = (
        value("SGW_ADMIN_TOKEN"),
        value("SGW_TENANT"),
        value("SGW_API_KEY"),
    );
    assert!(
        admin.starts_with("sgw_admin_")
            && key.starts_with("sgw_test_")
            && tenant.starts_with("ten_")
    );

    let server = Server::start(&db, &[("SEEDANCE_GW_PROVIDERS__SANDBOX__DELAY_MS", "200")]).await;
    let client = Client::new();
    let tenant_view: Value = client
        .get(format!("{}/admin/v1/tenants/{tenant}", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(tenant_view["balance"]["test_available"], 5000);
    let created: Value = client
        .post(format!("{}/v1/videos", server.base))
        .bearer_auth(&key)
        .json(&json!({"prompt": "hello", "seconds": 4}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let done = wait_terminal(
        &client,
        &server.base,
        &key,
        created["id"].as_str().expect("id"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["status"], "completed");
    let mp4 = client
        .get(format!(
            "{}/v1/videos/{}/content",
            server.base,
            done["id"].as_str().expect("id")
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&mp4[4..8], b"ftyp");

    // Running bootstrap again reuses the demo tenant and issues another key.
    let again = cli(&db, &["bootstrap", "--format", "env"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("SGW_TENANT={tenant}")));
    assert_cli_audit_ok(&db);
}

#[tokio::test]
async fn the_cli_manages_tenants_keys_and_credits_like_the_admin_api() {
    let db = TestDatabase::create().await;
    let tenant = String::from_utf8_lossy(
        &cli(
            &db,
            &[
                "tenants",
                "create",
                "--name",
                "team-a",
                "--postpaid",
                "--credit-floor",
                "-500",
            ],
        )
        .stdout,
    )
    .trim()
    .to_string();
    assert!(tenant.starts_with("ten_"), "{tenant}");
    let created = String::from_utf8_lossy(
        &cli(
            &db,
            &["keys", "create", "--tenant", &tenant, "--mode", "live"],
        )
        .stdout,
    )
    .to_string();
    let (key_id, secret) = created.trim().split_once('\t').expect("id and secret");
    assert!(key_id.starts_with("key_") && secret.starts_with("sgw_live_"));
    cli(
        &db,
        &[
            "credits",
            "grant",
            "--tenant",
            &tenant,
            "--amount",
            "1200",
            "--reason",
            "quarterly budget",
        ],
    );
    let listed = String::from_utf8_lossy(&cli(&db, &["tenants", "list"]).stdout).to_string();
    assert!(
        listed.contains(&tenant) && listed.contains("available 1200"),
        "{listed}"
    );
    let keys = String::from_utf8_lossy(&cli(&db, &["keys", "list", "--tenant", &tenant]).stdout)
        .to_string();
    assert!(keys.contains(key_id) && keys.contains("active") && !keys.contains(secret));
    cli(&db, &["keys", "revoke", key_id]);
    let keys = String::from_utf8_lossy(&cli(&db, &["keys", "list", "--tenant", &tenant]).stdout)
        .to_string();
    assert!(keys.contains("revoked"), "{keys}");
    assert_cli_audit_ok(&db);

    let bad = run(gateway(db.dir.path())
        .args([
            "credits", "grant", "--tenant", &tenant, "--amount", "-5", "--reason", "x",
        ])
        .env("DATABASE_URL", &db.url));
    assert!(!bad.status.success());
}

#[test]
fn the_example_configuration_is_valid() {
    let dir = tempfile::tempdir().expect("dir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/config.example.toml");
    let output = run(gateway(dir.path())
        .arg("--config")
        .arg(example)
        .arg("check-config"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_upstream_key_never_reaches_logs_errors_or_responses() {
    let fake = fake_upstream::FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    let key_at_fake = fake_upstream::FAKE_KEY;
    let db = TestDatabase::create().await;
    let base = fake.base_url("seedance-it");
    let server = Server::start(
        &db,
        &[
            ("RUST_LOG", "debug"),
            ("SEEDANCE_GW_PROVIDERS__SANDBOX__ENABLED", "false"),
            ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__ENABLED", "true"),
            ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__BASE_URL", &base),
            ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__API_KEY", key_at_fake),
            ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__POLL_INTERVAL_MS", "50"),
        ],
    )
    .await;
    let client = Client::new();
    let admin = |path: String, body: Value| {
        client
            .post(format!("{}{path}", server.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants".into(), json!({"name": "t"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_str().expect("id").to_string();
    admin(
        format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 10000, "reason": "t"}),
    )
    .await
    .expect("send");
    let key: Value = admin(
        format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"mode": "live"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    let key = key["secret"].as_str().expect("secret").to_string();

    let mut bodies = String::new();
    for status in [401, 402, 400, 500] {
        fake.inject(
            "seedance-it",
            "submit",
            fake_upstream::Fault::Status {
                status,
                retry_after: None,
            },
        );
        let response = client
            .post(format!("{}/v1/videos", server.base))
            .bearer_auth(&key)
            .json(&json!({"model": "seedance-2.0-fast", "prompt": "x", "seconds": 4}))
            .send()
            .await
            .expect("send");
        bodies.push_str(&response.text().await.expect("text"));
    }
    let list = client
        .get(format!("{}/v1/videos", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    bodies.push_str(&list);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let logs = server.logs();
    assert!(
        logs.contains("seedance-it"),
        "the logs show the upstream traffic: {logs}"
    );
    assert!(
        !logs.contains(key_at_fake),
        "the upstream key appears in the logs"
    );
    assert!(
        !bodies.contains(key_at_fake),
        "the upstream key appears in a response"
    );
    let config = run(gateway(db.dir.path())
        .arg("check-config")
        .env("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__ENABLED", "true")
        .env("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__API_KEY", key_at_fake));
    assert!(config.status.success());
    assert!(!String::from_utf8_lossy(&config.stdout).contains(key_at_fake));
    assert_cli_audit_ok(&db);
}

#[tokio::test]
async fn a_queue_waiting_for_a_full_provider_survives_a_sigkill() {
    let fake = fake_upstream::FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(1500));
    let db = TestDatabase::create().await;
    let base = fake.base_url("seedance-it");
    let env = [
        ("SEEDANCE_GW_PROVIDERS__SANDBOX__ENABLED", "false"),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__ENABLED", "true"),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__BASE_URL",
            base.as_str(),
        ),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__API_KEY",
            fake_upstream::FAKE_KEY,
        ),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__POLL_INTERVAL_MS",
            "100",
        ),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__MAX_CONCURRENT", "1"),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__TIMEOUT_SECS", "1"),
        ("SEEDANCE_GW_WORKERS__LEASE_SECS", "11"),
    ];
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let admin = |path: String, body: Value| {
        client
            .post(format!("{}{path}", first.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants".into(), json!({"name": "t"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_str().expect("id").to_string();
    admin(
        format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 10000, "reason": "t"}),
    )
    .await
    .expect("send");
    let key: Value = admin(
        format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"mode": "live"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    let key = key["secret"].as_str().expect("secret").to_string();
    let mut ids = Vec::new();
    for n in 0..4 {
        let video: Value = client
            .post(format!("{}/v1/videos", first.base))
            .bearer_auth(&key)
            .json(
                &json!({"model": "seedance-2.0-fast", "prompt": format!("clip {n}"), "seconds": 4}),
            )
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        ids.push(video["id"].as_str().expect("id").to_string());
    }
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");

    let second = Server::start(&db, &env).await;
    for id in &ids {
        let video = wait_terminal(&client, &second.base, &key, id, Duration::from_secs(60)).await;
        assert_eq!(video["status"], "completed", "{video}");
    }
    assert_eq!(
        fake.max_running("seedance-it"),
        1,
        "the cap held across the restart"
    );
    let submits = fake
        .calls("seedance-it")
        .iter()
        .filter(|c| c.op == "submit")
        .count();
    assert_eq!(submits, 4, "each queued job was submitted once");
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    assert_eq!(
        database
            .slots_in_use(seedance_gateway::types::ids::ProviderId::SeedanceIt)
            .await
            .expect("slots"),
        0
    );
    assert!(
        seedance_gateway::domain::reports::audit(&database)
            .await
            .expect("audit")
            .ok
    );
}

#[tokio::test]
async fn jobs_the_upstream_finished_while_the_gateway_was_down_are_captured_once() {
    let fake = fake_upstream::FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(800));
    fake.set_estimate_secs(1);
    let db = TestDatabase::create().await;
    let base = fake.base_url("seedance-it");
    let env = [
        ("SEEDANCE_GW_PROVIDERS__SANDBOX__ENABLED", "false"),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__ENABLED", "true"),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__BASE_URL",
            base.as_str(),
        ),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__API_KEY",
            fake_upstream::FAKE_KEY,
        ),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__POLL_INTERVAL_MS",
            "60000",
        ),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__TIMEOUT_SECS", "1"),
        ("SEEDANCE_GW_WORKERS__LEASE_SECS", "11"),
    ];
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let admin = |path: String, body: Value| {
        client
            .post(format!("{}{path}", first.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants".into(), json!({"name": "t"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_str().expect("id").to_string();
    admin(
        format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 10000, "reason": "t"}),
    )
    .await
    .expect("send");
    let key: Value = admin(
        format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"mode": "live"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    let key = key["secret"].as_str().expect("secret").to_string();
    let mut ids = Vec::new();
    for n in 0..4 {
        let video: Value = client
            .post(format!("{}/v1/videos", first.base))
            .bearer_auth(&key)
            .json(
                &json!({"model": "seedance-2.0-fast", "prompt": format!("clip {n}"), "seconds": 4}),
            )
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(
            video["status"], "in_progress",
            "accepted upstream before the crash"
        );
        ids.push(video["id"].as_str().expect("id").to_string());
    }
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    // The upstream finishes every job while the gateway is down.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let second = Server::start(&db, &env).await;
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    for id in &ids {
        let video = wait_terminal(&client, &second.base, &key, id, Duration::from_secs(60)).await;
        assert_eq!(video["status"], "completed", "{video}");
        assert_eq!(video["cost"]["charged"], 200);
        let entries = database
            .entries_for_video(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
            .await
            .expect("entries");
        let captures = entries
            .iter()
            .filter(|(kind, account, _)| kind == "capture" && account.ends_with(":holds"))
            .count();
        assert_eq!(captures, 1, "{id} captured exactly once: {entries:?}");
    }
    assert_eq!(
        fake.calls("seedance-it")
            .iter()
            .filter(|c| c.op == "submit")
            .count(),
        4,
        "nothing was resubmitted"
    );
    let tenant_id = seedance_gateway::types::ids::TenantId::parse(&tenant).expect("tenant id");
    let balance = seedance_gateway::domain::billing::ledger::balance(
        &database,
        &tenant_id,
        seedance_gateway::types::money::Mode::Live,
    )
    .await
    .expect("balance");
    assert_eq!(
        (balance.available.get(), balance.held.get()),
        (10_000 - 4 * 200, 0)
    );
    assert!(
        seedance_gateway::domain::reports::audit(&database)
            .await
            .expect("audit")
            .ok
    );
}

#[tokio::test]
async fn the_cli_sets_tenant_rates_and_caps_that_the_gateway_enforces() {
    let db = TestDatabase::create().await;
    let server = Server::start(&db, &[("SEEDANCE_GW_PROVIDERS__SANDBOX__DELAY_MS", "3000")]).await;
    let client = Client::new();
    let (tenant, key) = tenant_and_key(&client, &server.base, 10_000).await;

    let refused = run(gateway(db.dir.path())
        .args([
            "limits",
            "set",
            "--tenant",
            &tenant,
            "--requests-per-minute",
            "60",
            "--burst",
            "0",
        ])
        .env("DATABASE_URL", &db.url));
    assert!(!refused.status.success(), "a zero burst was accepted");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("burst"));
    cli(
        &db,
        &[
            "limits",
            "set",
            "--tenant",
            &tenant,
            "--requests-per-minute",
            "1",
            "--burst",
            "4",
        ],
    );
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 1,
        ..Default::default()
    })
    .await
    .expect("db");
    let tenant_id = seedance_gateway::types::ids::TenantId::parse(&tenant).expect("id");
    assert_eq!(
        database.tenant_rate(&tenant_id).await.expect("rate"),
        Some((1, 4))
    );

    let negative = run(gateway(db.dir.path())
        .args(["quotas", "set", "--tenant", &tenant, "--max-concurrent=-1"])
        .env("DATABASE_URL", &db.url));
    assert!(!negative.status.success(), "a negative cap was accepted");
    cli(
        &db,
        &[
            "quotas",
            "set",
            "--tenant",
            &tenant,
            "--max-concurrent",
            "1",
        ],
    );
    let create = |n: u32| {
        client
            .post(format!("{}/v1/videos", server.base))
            .bearer_auth(&key)
            .json(&json!({"prompt": format!("clip {n}"), "seconds": 4}))
            .send()
    };
    assert_eq!(create(1).await.expect("send").status(), StatusCode::OK);
    let second = create(2).await.expect("send");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let error: Value = second.json().await.expect("json");
    assert_eq!(error["error"]["code"], "tenant_concurrency_exceeded");

    // The rate: a burst of four requests (the two creates and two reads), then one a minute.
    let list = || {
        client
            .get(format!("{}/v1/videos", server.base))
            .bearer_auth(&key)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(list().await.expect("send").status(), StatusCode::OK);
    }
    let limited = list().await.expect("send");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    let error: Value = limited.json().await.expect("json");
    assert_eq!(error["error"]["code"], "rate_limited");
    assert_cli_audit_ok(&db);
}

#[tokio::test]
async fn traces_are_exported_over_otlp_when_configured() {
    use std::sync::{Arc, Mutex};
    type Batches = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Batches = Arc::default();
    let sink = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    sink.lock()
                        .expect("sink")
                        .push((content_type, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let db = TestDatabase::create().await;
    let mut server = Server::start(
        &db,
        &[("SEEDANCE_GW_LOG__OTLP_ENDPOINT", endpoint.as_str())],
    )
    .await;
    let client = Client::new();
    let response = client
        .get(format!("{}/v1/models", server.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "{}", server.logs());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let batches = received.lock().expect("received").clone();
        let found = batches.iter().any(|(content_type, body)| {
            content_type == "application/x-protobuf"
                && body.windows(16).any(|w| w == b"seedance-gateway")
                && body.windows(12).any(|w| w == b"trace-me-123")
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no span batch with the request reached the collector ({} batches): {}",
            batches.len(),
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webhook_deliveries_pending_at_a_sigkill_are_sent_after_restart() {
    let (receiver, hooks) = common::receiver::Receiver::start().await;
    receiver
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let db = TestDatabase::create().await;
    let env = [
        ("SEEDANCE_GW_PROVIDERS__SANDBOX__DELAY_MS", "200"),
        ("SEEDANCE_GW_SECURITY__URL_ALLOWLIST", "[\"127.0.0.1\"]"),
        (
            "SEEDANCE_GW_WEBHOOKS__RETRY_SCHEDULE_SECS",
            "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        ),
    ];
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let (_, key) = tenant_and_key(&client, &first.base, 10_000).await;
    let endpoint = client
        .post(format!("{}/v1/webhook_endpoints", first.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("{hooks}/hooks/unstable")}))
        .send()
        .await
        .expect("endpoint");
    assert_eq!(endpoint.status(), StatusCode::OK, "{}", first.logs());
    let mut ids = Vec::new();
    for n in 0..5 {
        let video: Value = client
            .post(format!("{}/v1/videos", first.base))
            .bearer_auth(&key)
            .json(&json!({"prompt": format!("clip {n}"), "seconds": 4}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        ids.push(video["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        let video = wait_terminal(&client, &first.base, &key, id, Duration::from_secs(30)).await;
        assert_eq!(video["status"], "completed");
    }
    // Every message has been tried and refused at least once; then the process dies.
    receiver
        .wait_for("unstable", 5, Duration::from_secs(15))
        .await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    receiver
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let _second = Server::start(&db, &env).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: std::collections::HashSet<String> = receiver
            .on("unstable")
            .into_iter()
            .filter(|r| r.at.elapsed() < Duration::from_secs(120))
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter_map(|body| body["data"]["id"].as_str().map(str::to_owned))
            .collect();
        let database = Db::connect(&DatabaseConfig {
            url: Secret::new(db.url.clone()),
            max_connections: 1,
            ..Default::default()
        })
        .await
        .expect("db");
        let undelivered: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_messages WHERE state <> 'delivered'")
                .fetch_one(database.pool())
                .await
                .expect("count");
        database.close().await;
        if undelivered == 0 && ids.iter().all(|id| delivered.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{undelivered} messages undelivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_cli_audit_ok(&db);
}

#[tokio::test]
async fn a_key_revoked_elsewhere_stops_working_within_the_key_cache_time() {
    let db = TestDatabase::create().await;
    let server = Server::start(&db, &[]).await;
    let client = Client::new();
    let (tenant, key) = tenant_and_key(&client, &server.base, 1_000).await;
    let balance = |key: String| {
        let client = client.clone();
        let url = format!("{}/v1/balance", server.base);
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("balance")
                .status()
        }
    };
    assert_eq!(balance(key.clone()).await, StatusCode::OK);
    let keys: Value = client
        .get(format!("{}/admin/v1/tenants/{tenant}/keys", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("json");
    let key_id = keys["data"][0]["id"].as_str().expect("key id").to_owned();
    // Revoked by another process (as another replica would): this gateway's cache holds the
    // key for at most a second.
    cli(&db, &["keys", "revoke", &key_id]);
    let revoked_at = Instant::now();
    loop {
        if balance(key.clone()).await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(2_000),
            "the revoked key still worked after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_create_killed_between_its_commit_and_its_answer_is_answered_by_its_job_after_restart() {
    // An upstream that takes connections and never answers: a live create commits its job
    // and hold, then waits on the submit, so the answer is not yet written when the process
    // is killed.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = format!("http://{}", black_hole.local_addr().expect("address"));
    let db = TestDatabase::create().await;
    let env = [
        ("SEEDANCE_GW_PROVIDERS__SANDBOX__ENABLED", "false"),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__ENABLED", "true"),
        ("SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__API_KEY", "sk-test"),
        (
            "SEEDANCE_GW_PROVIDERS__SEEDANCE_IT__BASE_URL",
            upstream.as_str(),
        ),
        ("SEEDANCE_GW_SERVER__REQUEST_TIMEOUT_SECS", "3"),
    ];
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let admin = |path: String, body: Value| {
        client
            .post(format!("{}{path}", first.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants".into(), json!({"name": "acme"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_str().expect("id").to_string();
    let grant = admin(
        format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 10_000, "reason": "test", "mode": "live"}),
    )
    .await
    .expect("send");
    assert_eq!(grant.status(), StatusCode::CREATED);
    let key: Value = admin(
        format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"mode": "live"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    let key = key["secret"].as_str().expect("secret").to_string();
    let body = json!({"model": "seedance-2.0-fast", "prompt": "a crash", "seconds": 4});
    let create = |base: String| {
        client
            .post(format!("{base}/v1/videos"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "kill-1")
            .json(&body)
            .send()
    };
    let pending = tokio::spawn(create(first.base.clone()));
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    let deadline = Instant::now() + Duration::from_secs(10);
    while database
        .count_jobs_in(seedance_gateway::domain::jobs::transitions::IN_FLIGHT)
        .await
        .expect("count")
        == 0
    {
        assert!(Instant::now() < deadline, "the create never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    assert!(
        pending.await.expect("joined").is_err(),
        "the first request got no answer"
    );

    let second = Server::start(&db, &env).await;
    let retry = create(second.base.clone()).await.expect("send");
    assert_eq!(retry.status(), StatusCode::OK, "the key is not stuck");
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let video: Value = retry.json().await.expect("json");
    let again: Value = create(second.base.clone())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(again["id"], video["id"], "every retry names the one job");
    assert_eq!(video["cost"]["reserved"], 200);
    assert_eq!(
        database
            .count_jobs_in(seedance_gateway::domain::jobs::transitions::IN_FLIGHT)
            .await
            .expect("count"),
        1,
        "exactly one job was created"
    );
    let tenant_id = seedance_gateway::types::ids::TenantId::parse(&tenant).expect("tenant id");
    let balance = seedance_gateway::domain::billing::ledger::balance(
        &database,
        &tenant_id,
        seedance_gateway::types::money::Mode::Live,
    )
    .await
    .expect("balance");
    assert_eq!(balance.held.get(), 200, "one hold");
    drop(black_hole);
}

/// The gateway's environment for one provider at the fake upstream, the sandbox off: calls
/// time out after 6 s, leases last 16 s (the least the configuration allows).
fn at_the_fake(fake: &fake_upstream::FakeUpstream, provider: &str) -> Vec<(String, String)> {
    let var = |key: &str| {
        format!(
            "SEEDANCE_GW_PROVIDERS__{}__{key}",
            provider.replace('-', "_").to_uppercase()
        )
    };
    vec![
        (
            "SEEDANCE_GW_PROVIDERS__SANDBOX__ENABLED".into(),
            "false".into(),
        ),
        (var("ENABLED"), "true".into()),
        (var("BASE_URL"), fake.base_url(provider)),
        (var("API_KEY"), fake_upstream::FAKE_KEY.into()),
        (var("POLL_INTERVAL_MS"), "100".into()),
        (var("TIMEOUT_SECS"), "6".into()),
        ("SEEDANCE_GW_WORKERS__LEASE_SECS".into(), "16".into()),
        (
            "SEEDANCE_GW_PRICING__APIFRAME_USD_PER_CREDIT".into(),
            "\"0.01\"".into(),
        ),
    ]
}

/// A tenant with live credits and a live key (live jobs go to the configured upstreams).
async fn live_tenant(client: &Client, base: &str) -> (String, String) {
    let admin = |path: String, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let tenant: Value = admin("/admin/v1/tenants".into(), json!({"name": "acme"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let tenant = tenant["id"].as_str().expect("id").to_string();
    let grant = admin(
        format!("/admin/v1/tenants/{tenant}/grants"),
        json!({"amount": 10_000, "reason": "test", "mode": "live"}),
    )
    .await
    .expect("send");
    assert_eq!(grant.status(), StatusCode::CREATED);
    let key: Value = admin(
        format!("/admin/v1/tenants/{tenant}/keys"),
        json!({"mode": "live"}),
    )
    .await
    .expect("send")
    .json()
    .await
    .expect("json");
    (tenant, key["secret"].as_str().expect("secret").to_string())
}

/// Waits until the fake has received `count` submits for `provider`.
async fn wait_for_submits(fake: &fake_upstream::FakeUpstream, provider: &str, count: usize) {
    let seen = common::eventually(Duration::from_secs(10), || async {
        fake.calls(provider)
            .iter()
            .filter(|c| c.op == "submit")
            .count()
            >= count
    })
    .await;
    assert!(seen, "{provider} never received submit {count}");
}

/// The video was charged once: one capture, nothing held, the audit clean.
async fn assert_charged_once(database: &Db, tenant: &str, video: &Value) {
    let id = video["id"].as_str().expect("id");
    let charged = video["cost"]["charged"].as_i64().expect("charged");
    assert!(charged > 0, "{video}");
    let entries = database
        .entries_for_video(&seedance_gateway::types::ids::VideoId::parse(id).expect("id"))
        .await
        .expect("entries");
    let captures = entries
        .iter()
        .filter(|(kind, account, _)| kind == "capture" && account.ends_with(":holds"))
        .count();
    assert_eq!(captures, 1, "one capture: {entries:?}");
    let balance = seedance_gateway::domain::billing::ledger::balance(
        database,
        &seedance_gateway::types::ids::TenantId::parse(tenant).expect("tenant id"),
        seedance_gateway::types::money::Mode::Live,
    )
    .await
    .expect("balance");
    assert_eq!(
        (balance.available.get(), balance.held.get()),
        (10_000 - charged, 0)
    );
    let audit = seedance_gateway::domain::reports::audit(database)
        .await
        .expect("audit");
    assert!(audit.ok, "{audit:?}");
}

/// A submit hanging at Apiframe when the gateway is SIGKILLed left its intent (written before
/// the call, with the `Idempotency-Key` Apiframe saw). After the restart the worker finds it,
/// counts it as a lost answer and sends the submit again with the same key, so Apiframe
/// answers with the job the first submit made: one upstream job, charged once.
///
/// Without the intent (the attempt written only after the answer) the cut-off submit leaves
/// no trace: the attempts read `["accepted"]` and the assertion on them fails.
#[tokio::test]
async fn a_submit_cut_off_by_a_sigkill_is_sent_again_under_its_key_and_makes_one_upstream_job() {
    let fake = fake_upstream::FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(500));
    fake.inject("apiframe", "submit", Fault::Hang { millis: 4_000 });
    let db = TestDatabase::create().await;
    let mut env = at_the_fake(&fake, "apiframe");
    // The key of a create cut off mid-flight is free again after the request timeout.
    env.push((
        "SEEDANCE_GW_SERVER__REQUEST_TIMEOUT_SECS".into(),
        "3".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut first = Server::start(&db, &env).await;
    let client = Client::new();
    let (tenant, key) = live_tenant(&client, &first.base).await;
    let body = json!({"model": "seedance-2.0-fast", "prompt": "a crash", "seconds": 4});
    let create = |base: String| {
        client
            .post(format!("{base}/v1/videos"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "cut-off-1")
            .json(&body)
            .send()
    };
    let pending = tokio::spawn(create(first.base.clone()));
    wait_for_submits(&fake, "apiframe", 1).await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    assert!(pending.await.expect("joined").is_err(), "no answer came");

    let second = Server::start(&db, &env).await;
    let video: Value = create(second.base.clone())
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = video["id"].as_str().expect("id").to_string();
    let video = wait_terminal(&client, &second.base, &key, &id, Duration::from_secs(60)).await;
    assert_eq!(video["status"], "completed", "{video}");
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    assert_charged_once(&database, &tenant, &video).await;
    assert_eq!(fake.jobs_made("apiframe"), 1, "one upstream job");
    let outcomes: Vec<String> = database
        .attempts_for_video(&seedance_gateway::types::ids::VideoId::parse(&id).expect("id"))
        .await
        .expect("attempts")
        .into_iter()
        .filter(|a| a.operation == "submit")
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["unknown", "accepted"],
        "the cut-off submit was found through its intent"
    );
}

/// A submit still in flight when its lease ran out (the replica stalled): a second worker takes the job, finds the open intent and counts it as a
/// lost answer; the job is sent once more and completes, charged once. When the first submit's
/// answer finally arrives it is not stored, and the upstream job it made is canceled, so at
/// most one upstream job is left to bill.
///
/// Without the intent the second worker submits as if nothing were in flight and the late
/// answer is dropped without a cancel: the wait for the cancel fails.
#[tokio::test]
async fn a_submit_that_outlives_its_lease_leaves_one_upstream_job() {
    let fake = fake_upstream::FakeUpstream::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("fake");
    fake.set_job_duration(Duration::from_millis(500));
    fake.inject("seedance-it", "submit", Fault::Hang { millis: 4_000 });
    let db = TestDatabase::create().await;
    let env = at_the_fake(&fake, "seedance-it");
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let first = Server::start(&db, &env_ref).await;
    let client = Client::new();
    let (tenant, key) = live_tenant(&client, &first.base).await;
    let pending = tokio::spawn(
        client
            .post(format!("{}/v1/videos", first.base))
            .bearer_auth(&key)
            .json(&json!({"model": "seedance-2.0-fast", "prompt": "a stall", "seconds": 4}))
            .send(),
    );
    wait_for_submits(&fake, "seedance-it", 1).await;

    // The first replica stalls past its lease; a second replica takes the job. (Leases run
    // on the database's clock: the lease is handed over by hand rather than waited out.)
    let mut config = common::test_config(&db);
    config.providers.sandbox.enabled = false;
    config
        .providers
        .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
        .enabled = true;
    config
        .providers
        .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
        .base_url = Some(fake.base_url("seedance-it"));
    config
        .providers
        .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
        .api_key = Some(Secret::new(fake_upstream::FAKE_KEY));
    config
        .providers
        .upstream_mut(seedance_gateway::types::ids::ProviderId::SeedanceIt)
        .timeout_secs = Some(6);
    config.workers.lease_secs = 16;
    let replica = seedance_gateway::App::build(config).await.expect("replica");
    let services = replica.state();
    let handed: Vec<String> = sqlx::query_scalar(
        "UPDATE videos SET lease_owner = $1 WHERE lease_owner IS NOT NULL RETURNING id",
    )
    .bind(services.instance_id.as_ref())
    .fetch_all(services.db.pool())
    .await
    .expect("the lease handed over");
    assert_eq!(handed.len(), 1, "the first replica held the job's lease");
    let id = seedance_gateway::types::ids::VideoId::parse(&handed[0]).expect("id");
    let job = services
        .db
        .get_video_any(&id)
        .await
        .expect("read")
        .expect("stored");
    seedance_gateway::domain::jobs::advance(services, job)
        .await
        .expect("the second worker's step");

    let answered = pending.await.expect("joined").expect("the create answered");
    assert_eq!(answered.status(), StatusCode::OK);
    let video = wait_terminal(
        &client,
        &first.base,
        &key,
        id.as_str(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(video["status"], "completed", "{video}");
    let database = Db::connect(&DatabaseConfig {
        url: Secret::new(db.url.clone()),
        max_connections: 2,
        ..Default::default()
    })
    .await
    .expect("db");
    assert_charged_once(&database, &tenant, &video).await;
    let stored = database
        .get_video_any(&id)
        .await
        .expect("read")
        .expect("stored");
    let kept = stored.upstream_id.expect("submitted");
    assert_eq!(
        fake.jobs_made("seedance-it"),
        2,
        "the job was sent once more"
    );
    let canceled = common::eventually(Duration::from_secs(10), || async {
        fake.calls("seedance-it")
            .iter()
            .any(|c| c.op == "cancel" && !c.path.contains(&kept))
    })
    .await;
    assert!(
        canceled,
        "the late submit's upstream job was canceled: {:?}",
        fake.calls("seedance-it")
    );
    assert!(
        !fake
            .calls("seedance-it")
            .iter()
            .any(|c| c.op == "cancel" && c.path.contains(&kept)),
        "the job's own upstream job runs on"
    );
}
