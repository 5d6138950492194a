//! Request rate limits (GCRA): per tenant, per API key, and failed authentications per client
//! address. The same algorithm runs in process (the default) or in Redis (with `REDIS_URL`,
//! shared by every replica): a theoretical arrival time per key, advanced by one emission
//! interval per request, refused when it would run more than a burst ahead of now. Redis runs
//! it as one Lua script with the server's clock, so there is no read-then-write race between
//! replicas, and every key expires once idle.
//!
//! Money, concurrency and daily caps are not limited here but in the database transaction that
//! creates a job (see `domain::end_users` and `domain::billing`).

mod rate;

pub use rate::{enforce, gcra, Decision, Limiter, Rate, RateCache, RedisLimiter};

use crate::error::Error;

/// The request rate of a tenant: its own, else the operator's default.
pub async fn tenant_rate(
    state: &crate::domain::services::Services,
    tenant: &crate::types::ids::TenantId,
) -> Result<Rate, Error> {
    let defaults = Rate {
        per_minute: state.config.limits.tenant_requests_per_minute,
        burst: state.config.limits.tenant_burst,
    };
    // A tenant's own rate is cached in process for `limits.tenant_rate_cache_ms`.
    let kept = std::time::Duration::from_millis(state.config.limits.tenant_rate_cache_ms);
    let cached = {
        let cache = state.tenant_rates.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(tenant.as_str())
            .filter(|(at, _)| at.elapsed() < kept)
            .map(|(_, rate)| *rate)
    };
    let own = match cached {
        Some(rate) => rate,
        None => {
            let rate = state
                .db
                .tenant_rate(tenant)
                .await?
                .map(|(per_minute, burst)| Rate {
                    per_minute: u32::try_from(per_minute).unwrap_or(u32::MAX),
                    burst: u32::try_from(burst).unwrap_or(u32::MAX),
                });
            let mut cache = state.tenant_rates.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(tenant.to_string(), (std::time::Instant::now(), rate));
            rate
        }
    };
    Ok(own.unwrap_or(defaults))
}

/// Applies the tenant's and the key's request rates to an authenticated request.
pub async fn admit_request(
    state: &crate::domain::services::Services,
    principal: &crate::domain::tenants::Principal,
) -> Result<(), Error> {
    let rate = tenant_rate(state, &principal.tenant_id).await?;
    let decision = state
        .limiter
        .check(&format!("tenant:{}", principal.tenant_id), rate)
        .await?;
    enforce(decision, rate, "rate_limited", "this tenant")?;
    if let Some(per_minute) = state.config.limits.key_requests_per_minute {
        let rate = Rate {
            per_minute,
            burst: state.config.limits.key_burst,
        };
        let decision = state
            .limiter
            .check(&format!("key:{}", principal.key_id), rate)
            .await?;
        enforce(decision, rate, "key_rate_limited", "this API key")?;
    }
    Ok(())
}

/// Counts a failed authentication from `client`; once too many, the client is throttled.
pub async fn failed_auth(
    state: &crate::domain::services::Services,
    client: &str,
) -> Result<(), Error> {
    let rate = Rate {
        per_minute: state.config.limits.failed_auth_per_minute,
        burst: state.config.limits.failed_auth_per_minute.clamp(1, 10),
    };
    let decision = state
        .limiter
        .check(&format!("authfail:{client}"), rate)
        .await?;
    enforce(
        decision,
        rate,
        "auth_throttled",
        "failed authentication from this address",
    )
    .map(|_| ())
}
