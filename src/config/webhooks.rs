//! `[webhooks]`: delivery of tenant webhooks — whether this replica sends them, the timeout
//! and retry schedule of each attempt, and how long a rotated secret keeps signing.

use serde::{Deserialize, Serialize};

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
