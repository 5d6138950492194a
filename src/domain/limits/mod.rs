//! Request rate limits (GCRA): per tenant, per API key, and failed authentications per client
//! address. The same algorithm runs in process (the default) or in Redis (with `REDIS_URL`,
//! shared by every replica): a theoretical arrival time per key, advanced by one emission
//! interval per request, refused when it would run more than a burst ahead of now. Redis runs
//! it as one Lua script with the server's clock, so there is no read-then-write race between
//! replicas, and every key expires once idle.
//!
//! Money, concurrency and daily caps are not limited here but in the database transaction that
//! creates a job (see `domain::end_users` and `domain::billing`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Error;

/// A rate: `per_minute` requests on average, `burst` back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// Time between requests in microseconds, so that rates far above 1,000 requests a
    /// second stay exact.
    fn interval_us(self) -> i64 {
        (60_000_000 / i64::from(self.per_minute.max(1))).max(1)
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: i64,
    /// Milliseconds until the next request would be allowed (when refused).
    pub retry_after_ms: i64,
}

/// GCRA on a theoretical arrival time, in microseconds: the new TAT and the decision.
pub fn gcra(tat: Option<i64>, now: i64, rate: Rate) -> (i64, Decision) {
    let interval = rate.interval_us();
    let tolerance = interval * i64::from(rate.burst.max(1));
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    if new_tat - now > tolerance {
        return (
            tat,
            Decision {
                allowed: false,
                remaining: 0,
                retry_after_ms: (new_tat - now - tolerance + 999) / 1000,
            },
        );
    }
    let remaining = (tolerance - (new_tat - now)) / interval;
    (
        new_tat,
        Decision {
            allowed: true,
            remaining,
            retry_after_ms: 0,
        },
    )
}

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > tolerance then
  return {0, 0, math.floor((new_tat - now - tolerance + 999) / 1000)}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0}
"#;

/// Tenants' own rates by tenant id, with when each was read.
pub type RateCache = Mutex<HashMap<String, (std::time::Instant, Option<Rate>)>>;

pub enum Limiter {
    Memory(Mutex<HashMap<String, i64>>),
    Redis(Box<RedisLimiter>),
}

pub struct RedisLimiter {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
}

impl Limiter {
    pub fn memory() -> Limiter {
        Limiter::Memory(Mutex::new(HashMap::new()))
    }

    pub async fn redis(url: &str) -> anyhow::Result<Limiter> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client).await?;
        Ok(Limiter::Redis(Box::new(RedisLimiter {
            connection,
            script: redis::Script::new(SCRIPT),
        })))
    }

    /// Whether the shared rate state answers (always, in process). Readiness depends on it:
    /// without Redis every authenticated request would fail.
    pub async fn ping(&self) -> bool {
        match self {
            Limiter::Memory(_) => true,
            Limiter::Redis(redis) => {
                let mut connection = redis.connection.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            }
        }
    }

    /// Takes one request from `key`'s allowance.
    pub async fn check(&self, key: &str, rate: Rate) -> Result<Decision, Error> {
        match self {
            Limiter::Memory(state) => {
                let now = now_us();
                let mut map = state.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    // Forget keys that are idle (their TAT is in the past).
                    map.retain(|_, tat| *tat > now);
                }
                let (tat, decision) = gcra(map.get(key).copied(), now, rate);
                map.insert(key.to_string(), tat);
                Ok(decision)
            }
            Limiter::Redis(redis) => {
                let RedisLimiter { connection, script } = redis.as_ref();
                let interval = rate.interval_us();
                let tolerance = interval * i64::from(rate.burst.max(1));
                let mut connection = connection.clone();
                let (allowed, remaining, retry): (i64, i64, i64) = script
                    .key(format!("sgw:rate:us:{key}"))
                    .arg(interval)
                    .arg(tolerance)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(|e| Error::Internal(anyhow::anyhow!("rate limiter: {e}")))?;
                Ok(Decision {
                    allowed: allowed == 1,
                    remaining,
                    retry_after_ms: retry,
                })
            }
        }
    }
}

/// 429 with the limit's headers, when a decision refuses.
pub fn enforce(
    decision: Decision,
    rate: Rate,
    code: &'static str,
    what: &str,
) -> Result<Decision, Error> {
    if decision.allowed {
        return Ok(decision);
    }
    Err(Error::RateLimited {
        code,
        message: format!(
            "{what} is limited to {} requests per minute (bursts of {})",
            rate.per_minute, rate.burst
        ),
        retry_after_secs: ((decision.retry_after_ms + 999) / 1000).max(1) as u64,
        limit: rate.per_minute,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_are_spaced_by_the_rate() {
        let rate = Rate {
            per_minute: 60,
            burst: 3,
        };
        let mut tat = None;
        let now = 1_000_000_000;
        for expected_remaining in [2, 1, 0] {
            let (next, decision) = gcra(tat, now, rate);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = Some(next);
        }
        let (same, refused) = gcra(tat, now, rate);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 1000);
        assert_eq!(Some(same), tat, "a refusal does not consume allowance");
        let (_, later) = gcra(tat, now + 1_000_000, rate);
        assert!(later.allowed, "one interval later, one more request passes");
    }

    #[test]
    fn rates_above_a_thousand_a_second_stay_exact() {
        // 600,000 a minute = 10,000 a second: 100 µs apart, which milliseconds cannot express.
        let rate = Rate {
            per_minute: 600_000,
            burst: 1,
        };
        let now = 5_000_000_000;
        let (tat, first) = gcra(None, now, rate);
        assert!(first.allowed);
        assert!(
            !gcra(Some(tat), now + 50, rate).1.allowed,
            "50 µs later: too soon"
        );
        assert!(
            gcra(Some(tat), now + 100, rate).1.allowed,
            "100 µs later: allowed"
        );
        let passed = (0..10_000)
            .scan(None, |tat, i| {
                let (next, decision) = gcra(*tat, now + i * 100, rate);
                if decision.allowed {
                    *tat = Some(next);
                }
                Some(decision.allowed)
            })
            .filter(|allowed| *allowed)
            .count();
        assert_eq!(
            passed, 10_000,
            "a steady 10,000/s passes at a 10,000/s limit"
        );
    }
}
