//! `[database]`: which database the gateway uses (SQLite or PostgreSQL) and how it waits for
//! a connection; also how a database URL is shown without its password.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

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

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("sqlite://data/gateway.db?mode=rwc"),
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose();
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
        Ok(())
    }
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
