//! The system under test, as child processes on loopback ports: the fake upstream
//! (`fake-upstream`, the `fake/` crate's binary, controlled through `/_fake/`) and the gateway
//! (`seedance-gateway serve`, configured by a generated TOML file on a fresh database: a SQLite
//! file in the run's temporary directory or the PostgreSQL database `bench_<pid>`), with the
//! bench tenant, its live key and credits created through the admin API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hyper::Method;
use serde::Deserialize;
use serde_json::json;

use crate::http::Client;
use crate::procs::{Child, Pinning};

/// The API key every fake provider accepts (`fake/src/lib.rs`).
pub const FAKE_KEY: &str = "fake-upstream-key-0123456789";
/// The secret the fake signs AIgateway's webhooks with.
const FAKE_AIGATEWAY_WEBHOOK_SECRET: &str = "fake-aigateway-webhook-secret";
pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Unix time in milliseconds (the gateway's clock too: same machine).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The two programs under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `seedance-gateway`.
    pub gateway: PathBuf,
    /// `fake-upstream`.
    pub fake: PathBuf,
}

/// What every scenario shares: the binaries, the temporary directory, the database server.
pub struct Env {
    pub binaries: Binaries,
    pub dir: PathBuf,
    pub backend: Backend,
    pub pg_server: String,
    pub pinning: Pinning,
    /// Log level of the gateway (`log.filter`).
    pub log_filter: String,
    /// The PostgreSQL database currently created, to drop at the end.
    pub pg_database: Option<String>,
    counter: u32,
}

impl Env {
    pub fn new(
        binaries: Binaries,
        dir: PathBuf,
        backend: Backend,
        pg_server: String,
        pinning: Pinning,
        log_filter: String,
    ) -> Env {
        Env {
            binaries,
            dir,
            backend,
            pg_server,
            pinning,
            log_filter,
            pg_database: None,
            counter: 0,
        }
    }

    fn next(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    /// A file of this run in the temporary directory, named by backend and process number.
    fn file(&self, kind: &str, n: u32, extension: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{kind}-{n}.{extension}", self.backend.name()))
    }

    /// A new empty database for one gateway; returns its URL.
    async fn fresh_database(&mut self, n: u32) -> anyhow::Result<String> {
        match self.backend {
            Backend::Sqlite => Ok(format!(
                "sqlite://{}?mode=rwc",
                self.file("gateway", n, "db").display()
            )),
            Backend::Postgres => {
                let name = format!("bench_{}", std::process::id());
                self.pg_database = Some(name.clone());
                crate::db::pg_recreate(&self.pg_server, &name).await
            }
        }
    }

    /// Drops the PostgreSQL database, if one was created.
    pub async fn drop_database(&mut self) -> anyhow::Result<()> {
        if let Some(name) = self.pg_database.take() {
            crate::db::pg_drop(&self.pg_server, &name).await?;
        }
        Ok(())
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something answers HTTP on `addr` (any status), while `child` runs.
async fn wait_http(
    child: &mut Child,
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if !child.alive() {
            anyhow::bail!(
                "the process exited during start-up; its log ends with:\n{}",
                child.log_tail(20)
            );
        }
        let mut client = Client::new(addr);
        if let Ok((status, _)) = client.call(Method::GET, path, None, None).await {
            if status.is_success() || status.as_u16() == 404 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "no answer on {addr} within {limit:?}; log ends with:\n{}",
                child.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One call the fake recorded.
#[derive(Debug, Clone, Deserialize)]
pub struct Call {
    pub provider: String,
    /// `submit`, `poll` or `cancel`.
    pub op: String,
    pub path: String,
    /// Milliseconds since the fake started.
    pub at_ms: u64,
}

/// The fake upstream process.
pub struct Fake {
    child: Child,
    pub addr: SocketAddr,
    pub ctl: Client,
    binary: PathBuf,
    cpu: Option<usize>,
    log: PathBuf,
    job_ms: u64,
    /// Clock markers: (wall ms when sent, marker path).
    markers: Vec<(i64, String)>,
}

impl Fake {
    /// Starts a fake whose jobs take `job_ms` unless told otherwise per provider.
    pub async fn start(env: &mut Env, job_ms: u64) -> anyhow::Result<Fake> {
        let n = env.next();
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = env.file("fake", n, "log");
        let child = Self::spawn(&env.binaries.fake, env.pinning.harness, &log, port, job_ms)?;
        let mut fake = Fake {
            child,
            addr,
            ctl: Client::new(addr),
            binary: env.binaries.fake.clone(),
            cpu: env.pinning.harness,
            log,
            job_ms,
            markers: Vec::new(),
        };
        wait_http(
            &mut fake.child,
            addr,
            "/_fake/ready",
            Duration::from_secs(30),
        )
        .await?;
        Ok(fake)
    }

    fn spawn(
        binary: &std::path::Path,
        cpu: Option<usize>,
        log: &std::path::Path,
        port: u16,
        job_ms: u64,
    ) -> anyhow::Result<Child> {
        let args = [
            "--port".to_string(),
            port.to_string(),
            "--job-ms".into(),
            job_ms.to_string(),
        ];
        Child::spawn("fake upstream", binary, &args, cpu, log)
    }

    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    /// Stops the fake and starts a fresh one on the same port: no jobs, no call log. (Its job
    /// store is scanned on every submit, so a long run slows it down; see the README.)
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.child.stop(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = Self::spawn(
                &self.binary,
                self.cpu,
                &self.log,
                self.addr.port(),
                self.job_ms,
            )?;
            match wait_http(
                &mut self.child,
                self.addr,
                "/_fake/ready",
                Duration::from_secs(30),
            )
            .await
            {
                Ok(()) => break,
                // The port may still be held for a moment by the old process.
                Err(_) if Instant::now() < deadline => {
                    self.child.stop(Duration::from_secs(1));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error),
            }
        }
        self.ctl = Client::new(self.addr);
        self.markers.clear();
        Ok(())
    }

    /// `http://addr/<prefix><documented base path>`: what the gateway's `base_url` is set to.
    pub fn base_url(&self, prefix: &str) -> String {
        let path = if prefix == "seedance-it" {
            "/api/v1"
        } else {
            ""
        };
        format!("http://{}/{prefix}{path}", self.addr)
    }

    /// Sets how long jobs take at the given providers (by fake prefix), from their next submit.
    pub async fn set_durations(&mut self, durations: &[(&str, u64)]) -> anyhow::Result<()> {
        let map: BTreeMap<&str, u64> = durations.iter().copied().collect();
        self.ctl
            .json(
                Method::POST,
                "/_fake/settings",
                None,
                Some(&json!({"provider_job_duration_ms": map})),
            )
            .await?;
        Ok(())
    }

    /// Records a marker call whose arrival time in the fake's clock ties it to the wall clock.
    pub async fn mark_clock(&mut self) -> anyhow::Result<()> {
        let path = format!(
            "/seedance-it/api/v1/jobs/bench-clock-{}",
            self.markers.len()
        );
        let before = wall_ms();
        self.ctl
            .call(Method::GET, &path, Some(FAKE_KEY), None)
            .await?;
        let after = wall_ms();
        self.markers.push(((before + after) / 2, path));
        Ok(())
    }

    /// Every call the fake saw, without the clock markers, and the offset that turns a call's
    /// `at_ms` into wall-clock milliseconds (when a marker was recorded). The raw log is kept
    /// next to the fake's own log.
    pub async fn calls(&mut self) -> anyhow::Result<(Vec<Call>, Option<i64>)> {
        let (status, body) = self
            .ctl
            .call(Method::GET, "/_fake/calls", None, None)
            .await?;
        anyhow::ensure!(status.is_success(), "GET /_fake/calls: {status}");
        std::fs::write(self.log.with_extension("calls.json"), &body)?;
        let calls: Vec<Call> = serde_json::from_slice(&body).context("the fake's call log")?;
        let mut offset = None;
        for (wall, marker) in &self.markers {
            let tail = marker.trim_start_matches("/seedance-it");
            if let Some(call) = calls.iter().find(|c| c.path == tail) {
                offset = Some(wall - call.at_ms as i64);
            }
        }
        let calls = calls
            .into_iter()
            .filter(|c| !c.path.contains("bench-clock-"))
            .collect();
        Ok((calls, offset))
    }
}

/// One upstream provider of the gateway, served by the fake.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The configuration section (`providers.<name>`).
    pub config_name: &'static str,
    /// The fake's path prefix.
    pub fake_prefix: &'static str,
    pub max_concurrent: u32,
    pub poll_interval_ms: Option<u64>,
}

impl Upstream {
    pub fn new(config_name: &'static str, max_concurrent: u32) -> Upstream {
        let fake_prefix = match config_name {
            "seedance_it" => "seedance-it",
            "apiframe" => "apiframe",
            "aigateway" => "aigateway",
            "seedanceapi" => "seedanceapi",
            "aimlapi" => "aimlapi",
            other => panic!("unknown provider {other}"),
        };
        Upstream {
            config_name,
            fake_prefix,
            max_concurrent,
            poll_interval_ms: None,
        }
    }

    pub fn poll_interval(mut self, ms: u64) -> Upstream {
        self.poll_interval_ms = Some(ms);
        self
    }

    /// The provider's name in the API (`provider`, `routing.providers`) — the fake's prefix.
    pub fn api_name(&self) -> &'static str {
        self.fake_prefix
    }
}

/// How to configure one gateway.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub upstreams: Vec<Upstream>,
    /// Set `server.public_base_url`, so that submits carry callback URLs and the fake sends
    /// webhooks.
    pub webhooks: bool,
    pub tick_ms: Option<u64>,
    /// Give the bench tenant caps (generous, but checked on every create).
    pub quotas: bool,
}

/// The gateway process with its bench tenant.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Client,
    pub key: String,
    pub db_url: String,
}

fn toml_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Gateway {
    pub async fn start(env: &mut Env, fake: &Fake, spec: &GatewaySpec) -> anyhow::Result<Gateway> {
        let n = env.next();
        let db_url = env.fresh_database(n).await?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut config = String::new();
        writeln!(
            config,
            "[server]\nlisten = \"{addr}\"\nshutdown_grace_secs = 2"
        )?;
        if spec.webhooks {
            writeln!(config, "public_base_url = \"http://{addr}\"")?;
        }
        writeln!(
            config,
            "[database]\nurl = {}\nmax_connections = 16",
            toml_string(&db_url)
        )?;
        writeln!(config, "[admin]\ntoken = \"{ADMIN_TOKEN}\"")?;
        writeln!(config, "[log]\nfilter = {}", toml_string(&env.log_filter))?;
        writeln!(
            config,
            "[storage]\ndir = {}",
            toml_string(&env.file("storage", n, "d").display().to_string())
        )?;
        // Rates are exact to the microsecond: a billion a minute never refuses a request here.
        writeln!(
            config,
            "[limits]\ntenant_requests_per_minute = 1000000000\ntenant_burst = 1000000000"
        )?;
        // The fake serves outputs from 127.0.0.1, which the SSRF guard refuses unless
        // allowlisted: admit it, so the archiver copies every output as in production.
        writeln!(config, "[security]\nurl_allowlist = [\"127.0.0.1\"]")?;
        if let Some(tick) = spec.tick_ms {
            writeln!(config, "[workers]\ntick_ms = {tick}")?;
        }
        writeln!(config, "[pricing]\napiframe_usd_per_credit = \"0.01\"")?;
        writeln!(config, "[providers.sandbox]\nenabled = false")?;
        for upstream in &spec.upstreams {
            writeln!(
                config,
                "[providers.{}]\nenabled = true\nbase_url = {}\napi_key = \"{FAKE_KEY}\"\nmax_concurrent = {}",
                upstream.config_name,
                toml_string(&fake.base_url(upstream.fake_prefix)),
                upstream.max_concurrent
            )?;
            if let Some(ms) = upstream.poll_interval_ms {
                writeln!(config, "poll_interval_ms = {ms}")?;
            }
            if spec.webhooks && upstream.config_name == "aigateway" {
                // AIgateway is handed a callback only when its webhooks can be verified.
                writeln!(
                    config,
                    "webhook_secret = \"{FAKE_AIGATEWAY_WEBHOOK_SECRET}\""
                )?;
            }
        }
        let config_path = env.file("gateway", n, "toml");
        std::fs::write(&config_path, &config)?;
        let log = env.file("gateway", n, "log");
        let args = [
            "--config".to_string(),
            config_path.display().to_string(),
            "--log-format".into(),
            "json".into(),
            "serve".into(),
        ];
        let mut child = Child::spawn(
            "gateway",
            &env.binaries.gateway,
            &args,
            env.pinning.gateway,
            &log,
        )?;
        wait_http(&mut child, addr, "/readyz", Duration::from_secs(60))
            .await
            .context("the gateway did not become ready")?;
        let mut admin = Client::new(addr);
        let key = setup_tenant(&mut admin, spec.quotas).await?;
        Ok(Gateway {
            child,
            addr,
            admin,
            key,
            db_url,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    /// Stops the gateway (it drains, then exits).
    pub fn stop(mut self) {
        self.child.stop(Duration::from_secs(10));
    }

    /// Log lines at WARN and ERROR, counted, with a few distinct examples.
    pub fn log_problems(&self) -> LogProblems {
        use std::io::BufRead;
        let mut problems = LogProblems::default();
        let Ok(file) = std::fs::File::open(&self.child.log) else {
            return problems;
        };
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            let counter = if line.contains("\"level\":\"ERROR\"") {
                &mut problems.errors
            } else if line.contains("\"level\":\"WARN\"") {
                &mut problems.warnings
            } else {
                continue;
            };
            *counter += 1;
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let message = parsed["message"]
                .as_str()
                .or(parsed["fields"]["message"].as_str())
                .unwrap_or("?");
            let key = format!("{} {message}", parsed["level"].as_str().unwrap_or(""));
            if let Some(seen) = problems.samples.iter_mut().find(|(k, _, _)| *k == key) {
                seen.2 += 1;
            } else if problems.samples.len() < 8 {
                problems
                    .samples
                    .push((key, line.chars().take(4000).collect(), 1));
            }
        }
        problems
    }

    /// Closes the provider's circuit breaker (after the fake was restarted under it).
    pub async fn reset_circuit(&mut self, provider: &str) -> anyhow::Result<()> {
        self.admin
            .json(
                Method::POST,
                &format!("/admin/v1/providers/{provider}/circuit/reset"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await?;
        Ok(())
    }
}

/// What the gateway logged at WARN and ERROR during a scenario.
#[derive(Debug, Default, Clone)]
pub struct LogProblems {
    pub warnings: u64,
    pub errors: u64,
    /// (level and message, an example line, how many lines had it).
    pub samples: Vec<(String, String, u64)>,
}

/// Creates the bench tenant with credits (live), a live key and, when asked, caps high enough
/// never to refuse. Request rates come from the configuration (see [`Gateway::start`]): the
/// admin API's per-tenant rate is capped at 1,000,000/min, which a GET run can exceed.
async fn setup_tenant(admin: &mut Client, quotas: bool) -> anyhow::Result<String> {
    let auth = Some(ADMIN_TOKEN);
    let tenant = admin
        .json(
            Method::POST,
            "/admin/v1/tenants",
            auth,
            Some(&json!({"name": "bench"})),
        )
        .await?;
    let tenant = tenant["id"]
        .as_str()
        .context("tenant id in the answer")?
        .to_string();
    admin
        .json(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/grants"),
            auth,
            Some(
                &json!({"amount": 1_000_000_000_000i64, "reason": "bench credit", "mode": "live"}),
            ),
        )
        .await?;
    let key = admin
        .json(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/keys"),
            auth,
            Some(&json!({"mode": "live", "name": "bench"})),
        )
        .await?;
    let key = key["secret"]
        .as_str()
        .context("key secret in the answer")?
        .to_string();
    if quotas {
        admin
            .json(
                Method::PUT,
                &format!("/admin/v1/tenants/{tenant}/quotas"),
                auth,
                Some(&json!({
                    "max_concurrent": 1_000_000_000i64,
                    "credits_per_day": 1_000_000_000_000_000i64,
                    "credits_per_month": 1_000_000_000_000_000i64,
                    "video_seconds_per_day": 1_000_000_000_000i64,
                })),
            )
            .await?;
    }
    Ok(key)
}
