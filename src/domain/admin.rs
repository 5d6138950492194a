//! Operator actions, shared by the admin HTTP API and the CLI: tenants, API keys, credit
//! grants, adjustments and refunds, routing policies, generated admin tokens.

use crate::domain::billing::ledger::{self, Balance};
use crate::domain::billing::pricing::TenantPrices;
use crate::domain::idempotency::{self, Claim};
use crate::domain::routing::policy::{PolicyLevel, RoutingPolicyBody};
use crate::domain::tenants::{generate_admin_token, generate_api_key, ApiKey, BillingKind, Tenant};
use crate::error::{Error, Result};
use crate::storage::{now_ms, retry_conflicts, Db};
use crate::types::ids::{ApiKeyId, TenantId, TxnId, VideoId};
use crate::types::money::{Credits, Mode};
use crate::types::video::Video;

pub use crate::domain::tenants::tenant;
/// A recorded attempt, as storage reads it back.
pub use crate::storage::attempts::AttemptRow;

pub struct NewTenant {
    pub name: String,
    pub billing_kind: BillingKind,
    pub credit_floor: Credits,
}

pub async fn create_tenant(db: &Db, new: NewTenant) -> Result<Tenant> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(Error::invalid("name", "name must be 1-200 characters"));
    }
    if new.credit_floor.is_positive() {
        return Err(Error::invalid(
            "credit_floor",
            "credit_floor must be zero or negative",
        ));
    }
    if new.billing_kind == BillingKind::Prepaid && new.credit_floor != Credits::ZERO {
        return Err(Error::invalid(
            "credit_floor",
            "a prepaid tenant's credit_floor is 0; make it postpaid to allow a negative floor",
        ));
    }
    let tenant = Tenant {
        id: TenantId::generate(),
        name,
        billing_kind: new.billing_kind,
        credit_floor: new.credit_floor,
        created_at_ms: now_ms(),
    };
    let mut tx = db.begin().await?;
    Db::insert_tenant(&mut tx, &tenant).await?;
    ledger::open_tenant_accounts(&mut tx, &tenant.id).await?;
    tx.commit().await?;
    Ok(tenant)
}

/// A new key and its secret, which is shown this once.
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// What a new key may do and for how long.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    /// `None`: every scope.
    pub scopes: Option<Vec<crate::domain::tenants::Scope>>,
    pub expires_at_ms: Option<i64>,
}

/// When a key that stops working `secs` from now expires (ms): 1 second to 10 years ahead.
pub fn expiry_in(secs: Option<i64>) -> Result<Option<i64>> {
    match secs {
        Some(secs) if !(1..=10 * 365 * 86_400).contains(&secs) => Err(Error::invalid(
            "expires_in_secs",
            "expires_in_secs must be from 1 to 10 years",
        )),
        other => Ok(other.map(|secs| now_ms() + secs * 1000)),
    }
}

pub async fn create_key(
    db: &Db,
    tenant_id: &TenantId,
    mode: Mode,
    name: Option<String>,
    options: KeyOptions,
) -> Result<IssuedKey> {
    tenant(db, tenant_id).await?;
    let name = name.unwrap_or_else(|| format!("{} key", mode.as_str()));
    if name.len() > 200 {
        return Err(Error::invalid(
            "name",
            "name must be at most 200 characters",
        ));
    }
    if options.expires_at_ms.is_some_and(|at| at <= now_ms()) {
        return Err(Error::invalid(
            "expires_in_secs",
            "a key must expire in the future",
        ));
    }
    let generated = generate_api_key(mode);
    let key = ApiKey {
        id: ApiKeyId::generate(),
        tenant_id: tenant_id.clone(),
        mode,
        display_prefix: generated.display_prefix,
        name,
        created_at_ms: now_ms(),
        revoked_at_ms: None,
        last_used_at_ms: None,
        scopes: options.scopes,
        expires_at_ms: options.expires_at_ms,
    };
    db.insert_api_key(&key, &generated.hash).await?;
    Ok(IssuedKey {
        key,
        secret: generated.secret,
    })
}

/// Replaces a key with a new one of the same tenant, mode, name and scopes; the old key keeps
/// working for `overlap_secs` (so clients can switch without an outage), then expires.
pub async fn rotate_key(db: &Db, id: &ApiKeyId, overlap_secs: i64) -> Result<IssuedKey> {
    if !(0..=30 * 24 * 3600).contains(&overlap_secs) {
        return Err(Error::invalid(
            "overlap_secs",
            "overlap_secs must be from 0 to 2592000 (30 days)",
        ));
    }
    let old = db
        .get_api_key(id)
        .await?
        .ok_or(Error::NotFound("API key"))?;
    if old.revoked_at_ms.is_some() || old.expires_at_ms.is_some_and(|at| at <= now_ms()) {
        return Err(Error::Conflict(
            "key_inactive",
            "a revoked or expired key cannot be rotated".into(),
        ));
    }
    let issued = create_key(
        db,
        &old.tenant_id,
        old.mode,
        Some(old.name.clone()),
        KeyOptions {
            scopes: old.scopes.clone(),
            expires_at_ms: old.expires_at_ms,
        },
    )
    .await?;
    db.expire_api_key(id, now_ms() + overlap_secs * 1000)
        .await?;
    Ok(issued)
}

pub async fn revoke_key(db: &Db, id: &ApiKeyId) -> Result<ApiKey> {
    let key = db
        .get_api_key(id)
        .await?
        .ok_or(Error::NotFound("API key"))?;
    if key.revoked_at_ms.is_none() {
        db.revoke_api_key(id).await?;
    }
    db.get_api_key(id).await?.ok_or(Error::NotFound("API key"))
}

pub struct Granted {
    pub txn_id: TxnId,
    pub balance: Balance,
}

/// What an operator grants: paid credit, or promotional credit (kept apart, consumed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditType {
    Paid,
    Promotional,
}

impl CreditType {
    /// `paid` (the default when absent) or `promotional`.
    pub fn parse(raw: Option<&str>) -> Result<CreditType> {
        match raw {
            None | Some("paid") => Ok(CreditType::Paid),
            Some("promotional") => Ok(CreditType::Promotional),
            Some(_) => Err(Error::invalid(
                "credit_type",
                "credit_type must be paid or promotional",
            )),
        }
    }
}

/// Who did an operator money call, as the journal records it; `admin-api` when not said.
pub fn actor(raw: Option<&str>) -> String {
    raw.unwrap_or("admin-api").to_string()
}

/// [`actor`], refused when longer than 200 characters.
pub fn checked_actor(raw: Option<&str>) -> Result<String> {
    let actor = actor(raw);
    if actor.len() > 200 {
        return Err(Error::invalid(
            "actor",
            "actor must be at most 200 characters",
        ));
    }
    Ok(actor)
}

/// Why the operator moved money, as the journal keeps it: 1 to 500 characters, trimmed.
fn checked_reason(reason: &str) -> Result<&str> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(Error::invalid(
            "reason",
            "reason is required (up to 500 characters)",
        ));
    }
    Ok(reason)
}

/// Credits a tenant, with the reason and who did it recorded in the journal.
#[allow(clippy::too_many_arguments)] // Each is a distinct, required part of a grant.
pub async fn grant_credits(
    db: &Db,
    tenant_id: &TenantId,
    mode: Mode,
    amount: Credits,
    credit_type: CreditType,
    reason: &str,
    actor: &str,
    claim: Option<&Claim>,
) -> Result<Granted> {
    tenant(db, tenant_id).await?;
    if !amount.is_positive() {
        return Err(Error::invalid(
            "amount",
            "amount must be a positive integer of at most 10^15 credits",
        ));
    }
    let reason = checked_reason(reason)?;
    let promotional = credit_type == CreditType::Promotional;
    let txn_id = retry_conflicts(|| async move {
        let mut tx = db.begin().await?;
        idempotency::record(&mut tx, claim).await?;
        let txn_id =
            ledger::grant(&mut tx, tenant_id, mode, amount, promotional, reason, actor).await?;
        tx.commit().await?;
        Ok::<_, Error>(txn_id)
    })
    .await?;
    Ok(Granted {
        txn_id,
        balance: ledger::balance(db, tenant_id, mode).await?,
    })
}

/// Generates an operator token, stores its hash, and returns the clear text (shown once).
pub async fn issue_admin_token(db: &Db) -> Result<String> {
    let generated = generate_admin_token();
    db.insert_admin_token(&crate::types::ids::random_token(16), &generated.hash)
        .await?;
    Ok(generated.secret)
}

/// Corrects a tenant's paid balance by `amount` (positive credits it, negative debits it, down
/// to the tenant's floor), with the reason and who did it in the journal.
pub async fn adjust_credits(
    db: &Db,
    tenant_id: &TenantId,
    mode: Mode,
    amount: i64,
    reason: &str,
    actor: &str,
    claim: Option<&Claim>,
) -> Result<Granted> {
    let tenant = tenant(db, tenant_id).await?;
    // Positive credits the tenant, negative debits it.
    let amount = crate::domain::billing::non_zero_amount("amount", amount)?;
    let reason = checked_reason(reason)?;
    let floor = tenant.floor(mode);
    let grants = ledger::grants_account(mode);
    let available = ledger::available_account(tenant_id, mode);
    let (from, to, floor) = if amount.is_positive() {
        // The grants account is the system's source: it has no floor.
        (
            grants.as_str(),
            available.as_str(),
            Credits::from_stored(i64::MIN / 2),
        )
    } else {
        (available.as_str(), grants.as_str(), floor)
    };
    let posting = ledger::Transfer {
        kind: "adjustment",
        memo: Some(reason),
        actor: Some(actor),
    };
    let posting = &posting;
    let grants = grants.as_str();
    let amount = amount.checked_abs()?;
    let txn_id = retry_conflicts(|| async move {
        let mut tx = db.begin().await?;
        idempotency::record(&mut tx, claim).await?;
        Db::ensure_account(&mut tx, grants, None, mode, "grants").await?;
        let txn_id =
            ledger::transfer(&mut tx, tenant_id, mode, from, to, floor, amount, posting).await?;
        tx.commit().await?;
        Ok::<_, Error>(txn_id)
    })
    .await?;
    Ok(Granted {
        txn_id,
        balance: ledger::balance(db, tenant_id, mode).await?,
    })
}

/// Gives back up to what a completed job was charged, to the accounts that paid for it, in
/// the split its hold took (paid credit back first; see `billing::ledger`). All refunds of one
/// job together never exceed its charge.
pub async fn refund_video(
    db: &Db,
    video: &crate::types::ids::VideoId,
    amount: Option<i64>,
    reason: &str,
    actor: &str,
    claim: Option<&Claim>,
) -> Result<(TxnId, Credits)> {
    let reason = checked_reason(reason)?;
    let requested = amount
        .map(|a| crate::domain::billing::positive_amount("amount", a))
        .transpose()?;
    let job = db
        .get_video_any(video)
        .await?
        .ok_or(Error::NotFound("video"))?;
    let charged = job.cost_charged.unwrap_or(Credits::ZERO);
    let posting = &ledger::Transfer {
        kind: "refund",
        memo: Some(reason),
        actor: Some(actor),
    };
    retry_conflicts(|| async move {
        let mut tx = db.begin().await?;
        idempotency::record(&mut tx, claim).await?;
        let hold = Db::lock_hold(&mut tx, db.backend(), video).await?;
        let refunded = Credits::from_stored(Db::refunded_for_video(&mut tx, video).await?);
        let left = charged.checked_sub(refunded)?;
        let amount = requested.unwrap_or(left);
        if !amount.is_positive() || amount > left {
            return Err(Error::invalid("amount", format!("this video can be refunded 1 to {left} credits (charged {charged}, refunded {refunded})")));
        }
        // A charge is only ever captured from a hold, so a charged job without one is corrupt.
        let hold = hold.ok_or_else(|| {
            Error::invalid(
                "amount",
                "this video has no hold to give its charge back from",
            )
        })?;
        let txn_id =
            ledger::refund(&mut tx, &hold, video, charged, refunded, amount, posting).await?;
        tx.commit().await?;
        Ok((txn_id, amount))
    })
    .await
}

/// Sets a tenant's own request rate (shared by all its keys), after checking its bounds.
pub async fn set_tenant_rate(
    db: &Db,
    tenant: &TenantId,
    requests_per_minute: i64,
    burst: i64,
) -> Result<()> {
    let tenant = self::tenant(db, tenant).await?;
    if !(1..=1_000_000).contains(&requests_per_minute) || !(1..=100_000).contains(&burst) {
        return Err(Error::invalid(
            "requests_per_minute",
            "requests_per_minute must be 1-1000000 and burst 1-100000",
        ));
    }
    db.put_tenant_rate(&tenant.id, requests_per_minute, burst)
        .await?;
    Ok(())
}

/// Sets a tenant's caps (a `None` field has no cap), after checking none is negative.
pub async fn set_tenant_quotas(
    db: &Db,
    tenant: &TenantId,
    quotas: &crate::domain::end_users::TenantQuotas,
) -> Result<()> {
    let tenant = self::tenant(db, tenant).await?;
    for (param, value) in [
        ("max_concurrent", quotas.max_concurrent),
        ("credits_per_day", quotas.credits_per_day),
        ("credits_per_month", quotas.credits_per_month),
        ("video_seconds_per_day", quotas.video_seconds_per_day),
    ] {
        if value.is_some_and(|v| !(0..=crate::types::money::MAX_AMOUNT).contains(&v)) {
            return Err(Error::invalid(
                param,
                format!("{param} must be an integer from 0 to 10^15"),
            ));
        }
    }
    db.put_tenant_quotas(&tenant.id, quotas).await?;
    Ok(())
}

/// Every tenant, oldest first.
pub async fn tenants(db: &Db) -> Result<Vec<Tenant>> {
    Ok(db.list_tenants().await?)
}

/// Sets a tenant's own prices (replacing the configured ones for its jobs from now on).
pub async fn set_prices(db: &Db, tenant: &TenantId, prices: &TenantPrices) -> Result<()> {
    let tenant = self::tenant(db, tenant).await?;
    db.put_tenant_prices(&tenant.id, prices).await?;
    Ok(())
}

/// Any tenant's job, with every call made upstream for it.
pub async fn video(db: &Db, id: &VideoId) -> Result<(Video, Vec<AttemptRow>)> {
    let video = db
        .get_video_any(id)
        .await?
        .ok_or(Error::NotFound("video"))?;
    let attempts = db.attempts_for_video(id).await?;
    Ok((video, attempts))
}

/// A tenant's API keys, revoked and expired ones included.
pub async fn list_keys(db: &Db, tenant: &TenantId) -> Result<Vec<ApiKey>> {
    let tenant = self::tenant(db, tenant).await?;
    Ok(db.list_api_keys(&tenant.id).await?)
}

/// Whose routing policy: a tenant's or one API key's.
pub enum PolicyOwner {
    Tenant(TenantId),
    Key(ApiKeyId),
}

impl PolicyOwner {
    /// The stored policy's scope and id, once the owner is known to exist.
    async fn scope(&self, db: &Db) -> Result<(&'static str, String)> {
        match self {
            PolicyOwner::Tenant(id) => Ok(("tenant", tenant(db, id).await?.id.to_string())),
            PolicyOwner::Key(id) => {
                let key = db
                    .get_api_key(id)
                    .await?
                    .ok_or(Error::NotFound("API key"))?;
                Ok(("key", key.id.to_string()))
            }
        }
    }
}

/// Replaces the routing policy of a tenant or a key; returns the policy as stored.
pub async fn set_routing_policy(
    db: &Db,
    owner: &PolicyOwner,
    policy: RoutingPolicyBody,
) -> Result<PolicyLevel> {
    set_routing_level(db, owner, policy.into_level()?).await
}

/// Replaces the routing policy of a tenant or a key with one already checked (the command
/// line parses its flags into it); returns it as stored.
pub async fn set_routing_level(
    db: &Db,
    owner: &PolicyOwner,
    level: PolicyLevel,
) -> Result<PolicyLevel> {
    let (scope, id) = owner.scope(db).await?;
    db.put_routing_policy(scope, &id, &level).await?;
    Ok(level)
}

/// The routing policy of a tenant or a key; every field unset (inherited) when none is set.
pub async fn routing_policy(db: &Db, owner: &PolicyOwner) -> Result<PolicyLevel> {
    let (scope, id) = owner.scope(db).await?;
    Ok(db.routing_policy(scope, &id).await?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_types_and_actors_parse_with_their_defaults() {
        assert_eq!(CreditType::parse(None).ok(), Some(CreditType::Paid));
        assert_eq!(
            CreditType::parse(Some("promotional")).ok(),
            Some(CreditType::Promotional)
        );
        assert!(CreditType::parse(Some("free")).is_err());
        assert_eq!(actor(None), "admin-api");
        assert_eq!(
            checked_actor(Some("ops@example.com")).ok().as_deref(),
            Some("ops@example.com")
        );
        assert!(checked_actor(Some(&"x".repeat(201))).is_err());
    }

    #[test]
    fn a_key_expires_one_second_to_ten_years_ahead() {
        assert_eq!(expiry_in(None).ok(), Some(None));
        assert!(expiry_in(Some(60)).is_ok_and(|at| at.is_some_and(|at| at > now_ms())));
        assert!(expiry_in(Some(0)).is_err());
        assert!(expiry_in(Some(10 * 365 * 86_400 + 1)).is_err());
    }
}
