//! What the domain runs on: one [`Services`] value, built once by the composition root
//! (`app`), lent to the HTTP handlers and the workers, and passed down to every domain
//! function. The domain owns this type, so it depends on nothing above it; the handlers and
//! the workers hold it as an `Arc<Services>` (`http::AppState`).
//!
//! Trade-off: each field is already a narrow handle (the storage API [`Db`], the provider
//! registry, the configuration, the limiters, the metrics), and the rules that need only one
//! take only that one (`billing::ledger` takes a `storage::Tx`, `routing::catalog` a provider
//! and the pricing section). The rules that orchestrate (create, a job's step, its end) take
//! the whole value rather than a trait per repository: there is one storage implementation
//! (both backends sit behind `Db`, chosen inside `storage/`), so traits would add a layer of
//! indirection and generics without a second implementation to choose between, while every
//! test runs against the real databases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::Config;
use crate::providers::Providers;
use crate::storage::Db;

/// How long a looked-up API key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// The services every rule of the gateway may use: configuration, the database, the
/// providers, the limiters, the caches of this replica and its metrics.
pub struct Services {
    pub config: Arc<Config>,
    pub db: Db,
    pub providers: Arc<Providers>,
    /// Wakes the job worker when new work is queued.
    pub wake: Arc<Notify>,
    /// This replica's name in job leases.
    pub instance_id: Arc<str>,
    pub draining: Arc<AtomicBool>,
    /// Request-rate state: in process, or shared in Redis.
    pub limiter: Arc<crate::domain::limits::Limiter>,
    /// Tenants' own request rates, cached for a few seconds.
    pub tenant_rates: Arc<crate::domain::limits::RateCache>,
    /// The JWT issuers internal teams authenticate with.
    pub jwt: Arc<crate::domain::jwt::Issuers>,
    /// When this replica last recorded each key's use, so the hot path writes it at most once
    /// a minute per key instead of on every request.
    pub key_uses: Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    /// Wakes the webhook sender when messages are written to the outbox.
    pub outbox: Arc<Notify>,
    /// Archived outputs: a local directory or S3-compatible storage.
    pub objects: crate::storage::objects::Objects,
    /// API keys recently looked up, by hash, for at most [`KEY_CACHE_TTL`]: a request then
    /// costs one database read fewer. Revocation reaches other replicas within that time and
    /// this one at once (the revoke and rotate calls drop the key from it).
    pub key_cache:
        Arc<std::sync::Mutex<HashMap<String, (crate::domain::tenants::Principal, Instant)>>>,
    /// This replica's Prometheus registry.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Services {
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    /// Sets this process's clock to the database's again (`crate::clock`); returns the
    /// alignment in force, the database's clock minus this machine's, in milliseconds.
    pub async fn align_clock(&self) -> anyhow::Result<i64> {
        Ok(self.db.align_clock().await?)
    }

    /// The cached principal of a key hash, if looked up less than [`KEY_CACHE_TTL`] ago.
    pub fn cached_key(&self, hash: &str) -> Option<crate::domain::tenants::Principal> {
        let cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            // A key that expired while cached stops at once, not when its entry does.
            .filter(|(principal, _)| {
                principal
                    .expires_at_ms
                    .is_none_or(|at| at > crate::clock::now_ms())
            })
            .map(|(principal, _)| principal.clone())
    }

    pub fn cache_key(&self, hash: String, principal: crate::domain::tenants::Principal) {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 50_000 {
            cache.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        cache.insert(hash, (principal, Instant::now()));
    }

    /// Drops a key from this replica's cache (after a revoke or a rotation).
    pub fn forget_key(&self, key: &crate::types::ids::ApiKeyId) {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (principal, _)| principal.key_id != *key);
    }

    pub fn wake_outbox(&self) {
        self.outbox.notify_one();
    }

    /// Whether a key's last-used time is due to be written (at most once a minute per key).
    pub fn key_use_due(&self, key: &str) -> bool {
        let mut uses = self.key_uses.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match uses.get(key) {
            Some(at) if now.duration_since(*at) < std::time::Duration::from_secs(60) => false,
            _ => {
                if uses.len() > 100_000 {
                    uses.retain(|_, at| {
                        now.duration_since(*at) < std::time::Duration::from_secs(60)
                    });
                }
                uses.insert(key.to_string(), now);
                true
            }
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
