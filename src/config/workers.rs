//! `[workers]`: the background job worker of this process — whether it runs, how often it
//! looks for due jobs, how many it claims and runs at once, how rarely jobs that will be
//! called back are polled, how often webhooks may make a job polled, and when a held job
//! times out.

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Run the background job worker in this process.
    pub enabled: bool,
    /// How often the worker looks for due jobs when it was not woken, in milliseconds.
    pub tick_ms: u64,
    /// How long a claimed job stays leased to this replica, in seconds.
    pub lease_secs: u64,
    /// How much longer than every enabled provider's `timeout_secs` the lease must be, in
    /// seconds: the time a step takes beyond its upstream call.
    pub lease_margin_secs: u64,
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
    /// The least time between two polls of one job that provider webhooks cause, whatever the
    /// provider allows, in milliseconds: deliveries arriving faster (duplicates, or forgeries
    /// by whoever holds a job's callback URL) are folded into one confirming poll.
    pub webhook_poll_floor_ms: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            enabled: true,
            tick_ms: 250,
            lease_secs: 60,
            lease_margin_secs: 10,
            batch_size: 64,
            concurrency: 64,
            hold_timeout_secs: 24 * 3600,
            safety_poll_secs: 300,
            webhook_poll_floor_ms: 2_000,
        }
    }
}

impl WorkersConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_secs == 0
            || self.lease_margin_secs == 0
            || self.batch_size == 0
            || self.concurrency == 0
            || self.safety_poll_secs == 0
        {
            return Err(ConfigError::Invalid(
                "workers.lease_secs, lease_margin_secs, batch_size, concurrency and safety_poll_secs must be positive"
                    .into(),
            ));
        }
        if self.webhook_poll_floor_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "workers.webhook_poll_floor_ms must be at most 60000".into(),
            ));
        }
        Ok(())
    }
}
