//! `[limits]` and `[security]`: request rates per tenant, per key and for failed
//! authentications, and the hosts exempt from the SSRF guard.

use serde::{Deserialize, Serialize};

use super::Secret;

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
    /// How long a replica keeps a tenant's own request rate before reading it again, in
    /// milliseconds: a rate the operator changes applies everywhere within this.
    pub tenant_rate_cache_ms: u64,
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
            tenant_rate_cache_ms: 5_000,
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
