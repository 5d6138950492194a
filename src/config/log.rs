//! `[log]`: log format and filter, and where traces are exported.

use serde::{Deserialize, Serialize};

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
