//! Operator actions, shared by the admin HTTP API and the CLI: tenants, API keys, credit
//! grants, generated admin tokens.

use crate::domain::billing::ledger::{self, Balance};
use crate::domain::billing::{Credits, Mode};
use crate::domain::ids::{ApiKeyId, TenantId, TxnId};
use crate::domain::tenants::{generate_admin_token, generate_api_key, ApiKey, BillingKind, Tenant};
use crate::error::{Error, Result};
use crate::storage::{now_ms, Db};

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
    if new.credit_floor.0 > 0 {
        return Err(Error::invalid(
            "credit_floor",
            "credit_floor must be zero or negative",
        ));
    }
    if new.billing_kind == BillingKind::Prepaid && new.credit_floor.0 != 0 {
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

pub async fn tenant(db: &Db, id: &TenantId) -> Result<Tenant> {
    db.get_tenant(id).await?.ok_or(Error::NotFound("tenant"))
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

/// Credits a tenant, with the reason and who did it recorded in the journal.
/// What an operator grants: paid credit, or promotional credit (kept apart, consumed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditType {
    Paid,
    Promotional,
}

#[allow(clippy::too_many_arguments)] // Each is a distinct, required part of a grant.
pub async fn grant_credits(
    db: &Db,
    tenant_id: &TenantId,
    mode: Mode,
    amount: Credits,
    credit_type: CreditType,
    reason: &str,
    actor: &str,
    idempotency: Option<&crate::domain::idempotency::Claim>,
) -> Result<Granted> {
    tenant(db, tenant_id).await?;
    if amount.0 <= 0 || amount.0 > 1_000_000_000_000 {
        return Err(Error::invalid(
            "amount",
            "amount must be a positive number of credits (at most 10^12)",
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(Error::invalid(
            "reason",
            "reason is required (up to 500 characters)",
        ));
    }
    let mut tx = db.begin().await?;
    if let Some(claim) = idempotency {
        crate::domain::idempotency::insert(
            &mut crate::storage::sql::Exec::Sqlx(&mut tx),
            claim,
            None,
        )
        .await?;
    }
    let promotional = credit_type == CreditType::Promotional;
    let txn_id =
        ledger::grant(&mut tx, tenant_id, mode, amount, promotional, reason, actor).await?;
    tx.commit().await?;
    Ok(Granted {
        txn_id,
        balance: ledger::balance(db, tenant_id, mode).await?,
    })
}

/// Generates an operator token, stores its hash, and returns the clear text (shown once).
pub async fn issue_admin_token(db: &Db) -> Result<String> {
    let generated = generate_admin_token();
    db.insert_admin_token(&crate::domain::ids::random_token(16), &generated.hash)
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
    idempotency: Option<&crate::domain::idempotency::Claim>,
) -> Result<Granted> {
    let tenant = tenant(db, tenant_id).await?;
    if amount == 0 || amount.unsigned_abs() > 1_000_000_000_000 {
        return Err(Error::invalid(
            "amount",
            "amount must be a non-zero number of credits",
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(Error::invalid(
            "reason",
            "reason is required (up to 500 characters)",
        ));
    }
    let floor = match mode {
        Mode::Live => tenant.credit_floor,
        Mode::Test => Credits::ZERO,
    };
    let grants = ledger::grants_account(mode);
    let available = ledger::available_account(tenant_id, mode);
    let mut tx = db.begin().await?;
    if let Some(claim) = idempotency {
        crate::domain::idempotency::insert(
            &mut crate::storage::sql::Exec::Sqlx(&mut tx),
            claim,
            None,
        )
        .await?;
    }
    Db::ensure_account(&mut tx, &grants, None, mode, "grants").await?;
    let (from, to, floor) = if amount > 0 {
        (grants.as_str(), available.as_str(), Credits(i64::MIN / 2))
    } else {
        (available.as_str(), grants.as_str(), floor)
    };
    let posting = ledger::Transfer {
        kind: "adjustment",
        memo: Some(reason),
        actor: Some(actor),
    };
    let txn_id = match ledger::transfer_with(
        &mut tx,
        tenant_id,
        mode,
        from,
        to,
        floor,
        Credits(amount.abs()),
        &posting,
    )
    .await
    {
        Ok(txn) => txn,
        Err(ledger::LedgerError::Insufficient { needed, available }) => {
            return Err(Error::InsufficientCredits { needed, available })
        }
        Err(ledger::LedgerError::Db(e)) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(Granted {
        txn_id,
        balance: ledger::balance(db, tenant_id, mode).await?,
    })
}

/// Gives back up to what a completed job was charged, to the account that paid for it. All
/// refunds of one job together never exceed its charge.
pub async fn refund_video(
    db: &Db,
    video: &crate::domain::ids::VideoId,
    amount: Option<i64>,
    reason: &str,
    actor: &str,
    idempotency: Option<&crate::domain::idempotency::Claim>,
) -> Result<(TxnId, Credits)> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(Error::invalid(
            "reason",
            "reason is required (up to 500 characters)",
        ));
    }
    let job = db
        .get_video_any(video)
        .await?
        .ok_or(Error::NotFound("video"))?;
    let charged = job.cost_charged.unwrap_or(Credits::ZERO).0;
    let mut tx = db.begin().await?;
    if let Some(claim) = idempotency {
        crate::domain::idempotency::insert(
            &mut crate::storage::sql::Exec::Sqlx(&mut tx),
            claim,
            None,
        )
        .await?;
    }
    let source = Db::hold_source(&mut tx, db.backend(), video).await?;
    let refunded = Db::refunded_for_video(&mut tx, video).await?;
    let left = charged - refunded;
    let amount = amount.unwrap_or(left);
    if amount <= 0 || amount > left {
        return Err(Error::invalid("amount", format!("this video can be refunded 1 to {left} credits (charged {charged}, refunded {refunded})")));
    }
    let source = source.unwrap_or_else(|| ledger::available_account(&job.tenant_id, job.mode));
    let revenue = ledger::revenue_account(job.mode);
    let posting = ledger::Transfer {
        kind: "refund",
        memo: Some(reason),
        actor: Some(actor),
    };
    let txn_id = ledger::transfer_for_video(
        &mut tx,
        &job.tenant_id,
        job.mode,
        &revenue,
        &source,
        Credits(amount),
        video,
        &posting,
    )
    .await?;
    tx.commit().await?;
    Ok((txn_id, Credits(amount)))
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
    quotas: &crate::storage::end_users::TenantQuotas,
) -> Result<()> {
    let tenant = self::tenant(db, tenant).await?;
    for (param, value) in [
        ("max_concurrent", quotas.max_concurrent),
        ("credits_per_day", quotas.credits_per_day),
        ("credits_per_month", quotas.credits_per_month),
        ("video_seconds_per_day", quotas.video_seconds_per_day),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(Error::invalid(
                param,
                format!("{param} must not be negative"),
            ));
        }
    }
    db.put_tenant_quotas(&tenant.id, quotas).await?;
    Ok(())
}
