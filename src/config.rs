//! Configuration: defaults, then a TOML file (`--config`), then `SEEDANCE_GW_*` environment
//! variables (nested keys joined with `__`, e.g. `SEEDANCE_GW_SERVER__LISTEN`). `DATABASE_URL`
//! is honoured as an alias of `database.url`. Unknown keys are an error naming the key.
//!
//! Every key is documented in `docs/configuration.md`; a test keeps that file and
//! [`Config::default`] in step.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A configuration value that must never be printed: `Debug` and `Serialize` mask it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub workers: WorkersConfig,
    pub pricing: PricingConfig,
    pub videos: VideosConfig,
    pub storage: StorageConfig,
    pub webhooks: WebhooksConfig,
    pub routing: RoutingConfig,
    pub security: SecurityConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub providers: ProvidersConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Identity providers whose JWTs the gateway accepts (internal teams).
    pub jwt_issuers: Vec<JwtIssuerConfig>,
}

/// One JWT issuer. Its algorithm is pinned: a token signed with any other is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry for this gateway.
    pub audience: String,
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: String,
    /// HS256 shared secret.
    pub secret: Option<Secret>,
    /// RS256/ES256 public key, PEM text or a file.
    pub public_key_pem: Option<String>,
    pub public_key_file: Option<PathBuf>,
    /// RS256/ES256 keys as a JWKS document, from a file or a URL (read at start); tokens
    /// select a key by `kid`.
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// The claim naming the tenant id (default `tenant`).
    pub tenant_claim: Option<String>,
    /// The claim naming the end user, if any.
    pub user_claim: Option<String>,
    /// A claim and the value in it that opens `/admin` (e.g. `roles` / `gateway-admin`).
    pub admin_claim: Option<String>,
    pub admin_value: Option<String>,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    /// Clock leeway for `exp` and `nbf`, in seconds (default 30).
    pub leeway_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Redis for rate-limit state shared by every replica (`REDIS_URL` overrides); unset keeps
    /// the state in process.
    pub redis_url: Option<Secret>,
    /// Requests per minute per tenant (an operator can set another rate per tenant).
    pub tenant_requests_per_minute: u32,
    pub tenant_burst: u32,
    /// Requests per minute per API key; unset: only the tenant's rate applies.
    pub key_requests_per_minute: Option<u32>,
    pub key_burst: u32,
    /// Failed authentications per minute per client address before it is throttled.
    pub failed_auth_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            redis_url: None,
            tenant_requests_per_minute: 1200,
            tenant_burst: 200,
            key_requests_per_minute: None,
            key_burst: 50,
            failed_auth_per_minute: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Hosts exempt from the SSRF guard: exact names, `.suffix` for a domain and its
    /// subdomains, or literal IPs. For internal deployments and tests only.
    pub url_allowlist: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// The operator's default strategy: `cheapest`, `fastest` or `ordered`.
    pub strategy: crate::domain::video::Strategy,
    /// The providers tenants may use, in order for `ordered`; unset allows every enabled one.
    pub providers: Option<Vec<String>>,
    /// Whether a failing provider may hand a job to the next candidate.
    pub fallback: bool,
    /// Whether a job that fails upstream is resubmitted to the next candidate.
    pub resubmit_failed: bool,
    /// The provider the savings report compares against (e.g. the one used before the gateway).
    pub baseline_provider: Option<String>,
    /// Consecutive failures that open a provider's circuit.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit keeps a provider out before a probe, in seconds.
    pub circuit_cooldown_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            strategy: crate::domain::video::Strategy::Cheapest,
            providers: None,
            fallback: true,
            resubmit_failed: false,
            baseline_provider: None,
            circuit_failure_threshold: 5,
            circuit_cooldown_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public base URL of the gateway, used for callback URLs handed to upstreams.
    pub public_base_url: Option<String>,
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes (JSON and multipart alike).
    pub max_body_bytes: usize,
    /// Time a request may take before it is answered 408, in seconds (body included, so a
    /// client trickling its body is cut off too).
    pub request_timeout_secs: u64,
    /// Time a client has to send a request's headers (also between keep-alive requests)
    /// before the connection is closed, in seconds.
    pub header_read_timeout_secs: u64,
    /// Most connections open at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Time given to in-flight requests after SIGTERM, in seconds.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://...`. `DATABASE_URL` overrides it.
    pub url: Secret,
    pub max_connections: u32,
    /// How long a request waits for a database connection before it is answered 503
    /// `database_unavailable`, in seconds.
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Operator token for `/admin/v1`. Optional: `bootstrap` can generate one instead.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive; `RUST_LOG` wins when set.
    pub filter: String,
    /// OTLP/HTTP collector to export traces to, e.g. `http://otel-collector:4318`; unset: off.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported traces.
    pub otlp_service_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Run the background job worker in this process.
    pub enabled: bool,
    /// How often the worker looks for due jobs when it was not woken, in milliseconds.
    pub tick_ms: u64,
    /// How long a claimed job stays leased to this replica, in seconds.
    pub lease_secs: u64,
    /// Most jobs claimed at once.
    pub batch_size: u32,
    /// Most upstream calls the worker has in flight at once.
    pub concurrency: usize,
    /// A job still running this long after it was created is failed (`timeout`) and its hold
    /// voided, so credits are never held forever, in seconds.
    pub hold_timeout_secs: u64,
    /// Jobs whose provider calls back (`server.public_base_url` set, a provider that sends
    /// webhooks) are not polled on the regular schedule: after a first safety poll just past
    /// their expected end, they are polled this rarely until the webhook or the hold timeout,
    /// in seconds.
    pub safety_poll_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Credits that make one US dollar (the ledger unit).
    pub credits_per_usd: i64,
    /// Tenant price in credits per second of video, by canonical model id.
    pub credits_per_second: BTreeMap<String, i64>,
    /// Dollar value of one Apiframe credit (unpublished); while unset, Apiframe is unpriced
    /// and `cheapest` routing leaves it out.
    pub apiframe_usd_per_credit: Option<String>,
    /// Upstream price overrides, in US dollars per second as decimal strings, by provider and
    /// model id, e.g. `[pricing.upstream_usd_per_second.aimlapi] "seedance-2.0-mini" = "0.05"`.
    pub upstream_usd_per_second: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideosConfig {
    /// Value of the `openai-poll-after-ms` header on reads of unfinished videos.
    pub poll_after_ms: u64,
    /// How long a finished video stays downloadable, in seconds (`expires_at`).
    pub retention_secs: i64,
    /// Largest `input_reference` file accepted in a multipart create, in bytes.
    pub max_input_file_bytes: usize,
    /// Longest prompt accepted, in characters.
    pub max_prompt_chars: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for uploaded inputs, and for archived outputs with the local backend.
    pub dir: PathBuf,
    /// Whether completed outputs are copied to the gateway's storage.
    pub archive: bool,
    /// Where archived outputs go: `local` (under `dir`) or `s3`.
    pub backend: StorageBackend,
    /// Largest output the archiver copies, in bytes; a larger one stays at the upstream.
    pub max_output_bytes: u64,
    /// Time one copy may take, in seconds.
    pub archive_timeout_secs: u64,
    /// How often expired outputs and those of deleted videos are removed, in seconds.
    pub sweep_interval_secs: u64,
    /// S3-compatible object storage, used when `backend = "s3"`.
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    /// Endpoint of an S3-compatible service; unset for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// Object key prefix, e.g. `gateway/`.
    pub prefix: String,
    /// Allow a plain-http endpoint (a local S3-compatible server).
    pub allow_http: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Whether this replica sends tenant webhooks (messages are still written to the outbox).
    pub enabled: bool,
    /// Time one delivery attempt may take, in seconds.
    pub timeout_secs: u64,
    /// Waits before each retry, in seconds; after the last, a message is marked failed.
    pub retry_schedule_secs: Vec<u64>,
    /// How long a rotated secret keeps signing alongside the new one, in seconds.
    pub secret_overlap_secs: i64,
    /// Redirects followed per attempt (each target checked by the SSRF guard).
    pub max_redirects: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    pub sandbox: SandboxConfig,
    /// seedance.it.com (PROVIDERS.md §1).
    pub seedance_it: UpstreamConfig,
    /// Apiframe (§2).
    pub apiframe: UpstreamConfig,
    /// AIgateway (§3).
    pub aigateway: UpstreamConfig,
    /// seedanceapi.org (§4).
    pub seedanceapi: UpstreamConfig,
    /// AI/ML API (§5).
    pub aimlapi: UpstreamConfig,
}

/// One upstream reseller. Disabled until enabled with a key.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub enabled: bool,
    /// Base URL of the provider's API; empty means the provider's documented one.
    pub base_url: Option<String>,
    /// The gateway's API key at this provider.
    pub api_key: Option<Secret>,
    /// A file holding the API key (e.g. a mounted secret); used when `api_key` is unset.
    pub api_key_file: Option<PathBuf>,
    /// Secret for verifying this provider's webhook signatures, where it signs with one of
    /// its own (AIgateway); Apiframe signs with the API key.
    pub webhook_secret: Option<Secret>,
    /// Per-call timeout, in seconds (default 30).
    pub timeout_secs: Option<u64>,
    /// Wait between two polls of one running job, in milliseconds (default per provider).
    pub poll_interval_ms: Option<u64>,
    /// Most jobs running at this provider at once, across all replicas (default 5, the
    /// seeds' "5-10 jobs in parallel per account"). More wait in the gateway's queue.
    pub max_concurrent: Option<u32>,
    /// Most submits per minute to this provider, across all replicas (unset: no limit beyond
    /// `max_concurrent`). Bursts up to `submit_burst` pass at once.
    pub submits_per_minute: Option<u32>,
    /// Submits allowed back to back before the rate applies (default 1).
    pub submit_burst: Option<u32>,
    /// Corrections of what this provider serves, per model id (see [`CapabilityOverride`]).
    pub capabilities: BTreeMap<String, CapabilityOverride>,
}

/// An operator's correction of what one provider serves for one model
/// (`providers.<name>.capabilities."<model id>"`), applied over the adapter's declared
/// capabilities without a release. Each key left out keeps the declared value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityOverride {
    /// `false` takes the model away from this provider; `true` with durations, resolutions
    /// and aspect ratios adds one it does not declare.
    pub offered: Option<bool>,
    /// The lengths it makes, in seconds (4-15).
    pub durations: Option<Vec<i64>>,
    pub resolutions: Option<Vec<String>>,
    pub aspect_ratios: Option<Vec<String>>,
    pub first_frame: Option<bool>,
    pub last_frame: Option<bool>,
    pub max_reference_images: Option<usize>,
    pub max_reference_videos: Option<usize>,
    pub max_reference_audio: Option<usize>,
    pub audio: Option<bool>,
    pub seed: Option<bool>,
    pub camera_fixed: Option<bool>,
}

/// A database URL with its password, if any, replaced by `********` (a SQLite URL has none).
pub fn mask_url_password(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("********"));
            }
            parsed.to_string()
        }
        Err(_) => "********".to_string(),
    }
}

impl UpstreamConfig {
    /// The API key from `api_key`, else read from `api_key_file`.
    pub fn resolve_key(&self, name: &str) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.api_key {
            return Ok(key.clone());
        }
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "providers.{name}.api_key_file {}: {e}",
                    path.display()
                ))
            })?;
            let key = text.trim();
            if key.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "providers.{name}.api_key_file is empty"
                )));
            }
            return Ok(Secret::new(key));
        }
        Err(ConfigError::Invalid(format!(
            "providers.{name} is enabled but has no api_key or api_key_file"
        )))
    }
}

impl ProvidersConfig {
    /// The upstream resellers' sections, by configuration name.
    pub fn upstreams(&self) -> [(&'static str, &UpstreamConfig); 5] {
        [
            ("seedance_it", &self.seedance_it),
            ("apiframe", &self.apiframe),
            ("aigateway", &self.aigateway),
            ("seedanceapi", &self.seedanceapi),
            ("aimlapi", &self.aimlapi),
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub enabled: bool,
    /// Time from submit to completion of a sandbox job, in milliseconds.
    pub delay_ms: u64,
    /// Make every sandbox job fail (a prompt containing `[sandbox:fail]` fails one job).
    pub fail_all: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_base_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 20 * 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            shutdown_grace_secs: 20,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("sqlite://data/gateway.db?mode=rwc"),
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: "info".into(),
            otlp_endpoint: None,
            otlp_service_name: "seedance-gateway".into(),
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            enabled: true,
            tick_ms: 250,
            lease_secs: 60,
            batch_size: 64,
            concurrency: 64,
            hold_timeout_secs: 24 * 3600,
            safety_poll_secs: 300,
        }
    }
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            credits_per_usd: 100,
            apiframe_usd_per_credit: None,
            upstream_usd_per_second: BTreeMap::new(),
            credits_per_second: BTreeMap::from([
                ("seedance-2.0".to_string(), 60),
                ("seedance-2.0-fast".to_string(), 50),
                ("seedance-2.0-mini".to_string(), 35),
            ]),
        }
    }
}

impl Default for VideosConfig {
    fn default() -> Self {
        VideosConfig {
            poll_after_ms: 2000,
            retention_secs: 7 * 24 * 3600,
            max_input_file_bytes: 10 * 1024 * 1024,
            max_prompt_chars: 4000,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("data/storage"),
            archive: true,
            backend: StorageBackend::Local,
            max_output_bytes: 2 * 1024 * 1024 * 1024,
            archive_timeout_secs: 600,
            sweep_interval_secs: 30,
            s3: S3Config::default(),
        }
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            enabled: true,
            timeout_secs: 10,
            // About 28 hours in all, as the Standard Webhooks guidance suggests.
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            secret_overlap_secs: 24 * 3600,
            max_redirects: 3,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            delay_ms: 3000,
            fail_all: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Layers defaults, the optional TOML file and the environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // `SEEDANCE_GW_CONFIG` names the file itself (a command-line option), not a key.
        figment = figment.merge(
            Env::prefixed("SEEDANCE_GW_")
                .ignore(&["config"])
                .split("__"),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database.url", url));
        }
        if let Ok(url) = std::env::var("REDIS_URL") {
            figment = figment.merge(("limits.redis_url", url));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(ConfigError::Invalid(
                "database.url must start with sqlite: or postgres:".into(),
            ));
        }
        if sqlite_in_memory(url) {
            return Err(ConfigError::Invalid(
                "database.url: an in-memory SQLite database is not supported (the gateway's \
                 connections would each see a different empty database); give a file path, \
                 e.g. sqlite://data/gateway.db?mode=rwc"
                    .into(),
            ));
        }
        let bounded = |v: i64| (0..=crate::domain::billing::MAX_AMOUNT).contains(&v);
        if self.pricing.credits_per_usd <= 0 || !bounded(self.pricing.credits_per_usd) {
            return Err(ConfigError::Invalid(
                "pricing.credits_per_usd must be a positive integer of at most 10^15".into(),
            ));
        }
        for (model, price) in &self.pricing.credits_per_second {
            if crate::domain::video::Model::parse(model).map(|m| m.id()) != Some(model.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.credits_per_second: `{model}` is not a model id; use seedance-2.0, seedance-2.0-fast or seedance-2.0-mini"
                )));
            }
            if !bounded(*price) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.credits_per_second.{model} must be an integer from 0 to 10^15"
                )));
            }
        }
        let readable =
            |v: &str| crate::providers::upstream::usd_to_micros(v).is_some_and(|m| m >= 0);
        if let Some(value) = &self.pricing.apiframe_usd_per_credit {
            if !readable(value) {
                return Err(ConfigError::Invalid(format!(
                    "pricing.apiframe_usd_per_credit `{value}` is not a dollar amount like \"0.01\""
                )));
            }
        }
        for (provider, models) in &self.pricing.upstream_usd_per_second {
            for (model, value) in models {
                if crate::domain::video::Model::parse(model).map(|m| m.id()) != Some(model.as_str())
                    || !readable(value)
                {
                    return Err(ConfigError::Invalid(format!(
                        "pricing.upstream_usd_per_second.{provider}.{model}: needs a model id and a dollar amount"
                    )));
                }
            }
        }
        let known = |p: &str| crate::providers::ALL_NAMES.contains(&p);
        if let Some(baseline) = self
            .routing
            .baseline_provider
            .as_deref()
            .filter(|b| !known(b))
        {
            return Err(ConfigError::Invalid(format!(
                "routing.baseline_provider: unknown provider `{baseline}`"
            )));
        }
        if let Some(unknown) = self.routing.providers.iter().flatten().find(|p| !known(p)) {
            return Err(ConfigError::Invalid(format!(
                "routing.providers: unknown provider `{unknown}`"
            )));
        }
        if self.workers.lease_secs == 0
            || self.workers.batch_size == 0
            || self.workers.concurrency == 0
            || self.workers.safety_poll_secs == 0
        {
            return Err(ConfigError::Invalid(
                "workers.lease_secs, batch_size, concurrency and safety_poll_secs must be positive"
                    .into(),
            ));
        }
        for (name, upstream) in self.providers.upstreams() {
            if upstream.enabled {
                // A lease must outlive the longest upstream call, or a slow call could be
                // claimed again by another replica and submitted twice.
                let timeout = upstream.timeout_secs.unwrap_or(30);
                if self.workers.lease_secs < timeout + 10 {
                    return Err(ConfigError::Invalid(format!(
                        "workers.lease_secs ({}) must exceed providers.{name}.timeout_secs ({timeout}) by at least 10",
                        self.workers.lease_secs
                    )));
                }
                upstream.resolve_key(name)?;
                if let Some(base) = &upstream.base_url {
                    let parsed = url::Url::parse(base).map_err(|_| {
                        ConfigError::Invalid(format!("providers.{name}.base_url is not a URL"))
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(ConfigError::Invalid(format!(
                            "providers.{name}.base_url must be http(s)"
                        )));
                    }
                }
            }
        }
        if let Some(token) = &self.admin.token {
            if token.expose().len() < 16 {
                return Err(ConfigError::Invalid(
                    "admin.token must be at least 16 characters".into(),
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut value = match toml::Value::try_from(self) {
            Ok(value) => value,
            Err(e) => return format!("# cannot render: {e}\n"),
        };
        // The database URL is shown with only its password masked: which database is used
        // is what an operator checks first.
        if let Some(database) = value.get_mut("database").and_then(|d| d.as_table_mut()) {
            database.insert(
                "url".into(),
                toml::Value::String(mask_url_password(self.database.url.expose())),
            );
        }
        toml::to_string_pretty(&value).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    pub fn is_postgres(&self) -> bool {
        !self.database.url.expose().starts_with("sqlite:")
    }
}

fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let path = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if path.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{path}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a SQLite URL names an in-memory database (`sqlite::memory:`, `sqlite://:memory:`,
/// an empty path or `mode=memory`).
fn sqlite_in_memory(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return false;
    };
    let rest = rest.trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}
