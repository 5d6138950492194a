//! Configuration: defaults, then a TOML file (`--config`), then `SEEDANCE_GW_*` environment
//! variables (nested keys joined with `__`, e.g. `SEEDANCE_GW_SERVER__LISTEN`; lists and tables
//! as JSON or TOML, read in `env.rs`). `DATABASE_URL` is honoured as an alias of `database.url`.
//! Unknown keys are an error naming the key.
//!
//! Every key is documented in `docs/configuration.md`; a test keeps that file and
//! [`Config::default`] in step. This module holds the root, the loading and the validation
//! entry point; each section (`[server]`, `[database]`, …) has its own file, with its
//! defaults and its own checks.

mod auth;
mod database;
mod env;
mod limits;
mod log;
mod pricing;
mod providers;
mod routing;
mod secret;
mod server;
mod storage;
mod videos;
mod webhooks;
mod workers;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use auth::{AdminConfig, AuthConfig, JwtIssuerConfig};
pub use database::{mask_url_password, DatabaseConfig};
pub use limits::{LimitsConfig, SecurityConfig};
pub use log::{LogConfig, LogFormat};
pub use pricing::PricingConfig;
pub use providers::{CapabilityOverride, ProvidersConfig, SandboxConfig, UpstreamConfig};
pub use routing::RoutingConfig;
pub use secret::Secret;
pub use server::ServerConfig;
pub use storage::{S3Config, StorageBackend, StorageConfig};
pub use videos::VideosConfig;
pub use webhooks::WebhooksConfig;
pub use workers::WorkersConfig;

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
        figment = env::layer(figment, "SEEDANCE_GW_", &["config"]);
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database.url", url));
        }
        if let Ok(url) = std::env::var("REDIS_URL") {
            figment = figment.merge(("limits.redis_url", url));
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment_error(e)))?;
        config.validate()?;
        config.providers.complete();
        Ok(config)
    }

    /// Checks every section; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.pricing.validate()?;
        self.routing.validate()?;
        self.workers.validate()?;
        self.providers.validate(&self.workers)?;
        self.admin.validate()?;
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
