//! A tenant's end users — the `user` of a create. The tenant sets, per end user, limits
//! (credits per UTC day and month, concurrent jobs) and whether the user's prepaid wallet pays
//! for the user's jobs (`first`: the wallet, then the tenant's balance; `only`: the wallet
//! alone). The limits are checked and the paying account chosen inside the transaction that
//! creates the job, with the end user's row locked, so concurrent creates cannot exceed them.

use crate::domain::billing::ledger;
use crate::domain::jobs::transitions::IN_FLIGHT;
use crate::domain::reports::{date_of_day, day_of_date};
use crate::error::{Error, Result};
use crate::storage::end_users::UsageChange;
use crate::storage::{Db, Tx};
use crate::types::ids::{EndUserId, TenantId, TxnId};
use crate::types::money::{Credits, Mode};
use crate::types::time::DAY_MS;
use crate::types::video::Video;

/// An end user's settings and a tenant's caps are storage's rows; the limits they set are
/// checked here.
pub use crate::storage::end_users::{EndUser, TenantQuotas, WalletMode};

/// Sets an end user's limits and wallet mode (each limit 0 to 10^15, or none).
pub async fn set(db: &Db, user: &EndUser) -> Result<()> {
    for (param, value) in [
        ("credits_per_day", user.credits_per_day),
        ("credits_per_month", user.credits_per_month),
        ("max_concurrent", user.max_concurrent),
    ] {
        if value.is_some_and(|v| !(0..=crate::types::money::MAX_AMOUNT).contains(&v)) {
            return Err(Error::invalid(
                param,
                format!("{param} must be an integer from 0 to 10^15"),
            ));
        }
    }
    Ok(db.put_end_user(user).await?)
}

/// An end user as a tenant sees it in one mode: its limits (the defaults when none were set),
/// its wallet, its running jobs and what its jobs spent today and this month (UTC).
pub struct Standing {
    pub user: EndUser,
    pub wallet: Credits,
    pub running_jobs: i64,
    pub spent_today: i64,
    pub spent_this_month: i64,
}

pub async fn standing(
    db: &Db,
    tenant: &TenantId,
    mode: Mode,
    user: &EndUserId,
    now: i64,
) -> Result<Standing> {
    let stored = db.get_end_user(tenant, mode, user).await?;
    let user = stored.unwrap_or_else(|| EndUser {
        tenant_id: tenant.clone(),
        mode,
        id: user.clone(),
        credits_per_day: None,
        credits_per_month: None,
        max_concurrent: None,
        wallet_mode: WalletMode::None,
    });
    let (day, month) = day_and_month_start(now);
    let (running_jobs, spent_today, spent_this_month) = db
        .end_user_usage(tenant, &user.id, mode, IN_FLIGHT, (day, month))
        .await?;
    let wallet = db
        .account_balances(&[&ledger::wallet_account(tenant, mode, &user.id)])
        .await?
        .first()
        .copied()
        .unwrap_or(0);
    Ok(Standing {
        user,
        wallet: Credits::from_stored(wallet),
        running_jobs,
        spent_today,
        spent_this_month,
    })
}

/// The start of the UTC day and month containing `now`, in unix milliseconds.
pub fn day_and_month_start(now: i64) -> (i64, i64) {
    let today = now.div_euclid(DAY_MS);
    let date = date_of_day(today);
    let first = format!("{}-01", &date[..7]);
    let month = day_of_date(&first).unwrap_or(today);
    (today * DAY_MS, month * DAY_MS)
}

/// A job asking to be admitted for an end user.
pub struct Admission<'a> {
    pub tenant: &'a TenantId,
    pub tenant_floor: Credits,
    pub mode: Mode,
    pub user: &'a EndUserId,
    pub price: Credits,
    pub now: i64,
}

/// Checks an end user's limits for a job and returns the account to hold its price from and
/// that account's floor. Runs in the job's creating transaction.
pub async fn admit(tx: &mut Tx, db: &Db, admission: &Admission<'_>) -> Result<(String, Credits)> {
    let Admission {
        tenant,
        tenant_floor,
        mode,
        user,
        price,
        now,
    } = *admission;
    let end_user = Db::lock_end_user(tx, db.backend(), tenant, mode, user).await?;
    if let Some(max) = end_user.max_concurrent {
        if Db::end_user_running(tx, tenant, mode, user, IN_FLIGHT).await? >= max {
            return Err(Error::QuotaExceeded {
                code: "end_user_concurrency_exceeded",
                message: format!(
                    "end user {} already has {max} videos running",
                    user.as_str()
                ),
                retry_after_secs: None,
            });
        }
    }
    let (day_start, month_start) = day_and_month_start(now);
    if let Some(limit) = end_user.credits_per_day {
        let spent = Db::end_user_spend(tx, tenant, user, mode, day_start).await?;
        if spent.saturating_add(price.get()) > limit {
            return Err(Error::QuotaExceeded {
                code: "end_user_daily_credits_exceeded",
                message: format!(
                    "end user {} has used {spent} of {limit} credits today; this video costs {price}",
                    user.as_str()
                ),
                retry_after_secs: Some(((day_start + DAY_MS - now) / 1000).max(1) as u64),
            });
        }
    }
    if let Some(limit) = end_user.credits_per_month {
        let spent = Db::end_user_spend(tx, tenant, user, mode, month_start).await?;
        if spent.saturating_add(price.get()) > limit {
            return Err(Error::QuotaExceeded {
                code: "end_user_monthly_credits_exceeded",
                message: format!(
                    "end user {} has used {spent} of {limit} credits this month; this video costs {price}",
                    user.as_str()
                ),
                retry_after_secs: None,
            });
        }
    }
    let wallet = ledger::wallet_account(tenant, mode, user);
    let available = ledger::available_account(tenant, mode);
    Ok(match end_user.wallet_mode {
        WalletMode::None => (available, tenant_floor),
        WalletMode::Only => (wallet, Credits::ZERO),
        WalletMode::First => {
            if Db::account_balance(tx, &wallet).await? >= price.get() {
                (wallet, Credits::ZERO)
            } else {
                (available, tenant_floor)
            }
        }
    })
}

/// Moves `amount` between the tenant's balance in `mode` and an end user's wallet (see
/// [`move_wallet`]) in one transaction, with the request's idempotency key.
pub async fn transfer_wallet(
    db: &Db,
    tenant: &TenantId,
    mode: Mode,
    user: &EndUserId,
    amount: i64,
    memo: Option<&str>,
    claim: Option<&crate::domain::idempotency::Claim>,
) -> Result<TxnId> {
    let floor = crate::domain::tenants::tenant(db, tenant)
        .await?
        .floor(mode);
    crate::storage::retry_conflicts(|| async move {
        let mut tx = db.begin().await?;
        crate::domain::idempotency::record(&mut tx, claim).await?;
        let txn = move_wallet(&mut tx, tenant, floor, mode, user, amount, memo).await?;
        tx.commit().await?;
        Ok(txn)
    })
    .await
}

/// Moves `amount` between the tenant's balance and an end user's wallet: positive funds the
/// wallet (within the tenant's floor), negative gives credits back (never below zero).
async fn move_wallet(
    tx: &mut Tx,
    tenant: &TenantId,
    tenant_floor: Credits,
    mode: Mode,
    user: &EndUserId,
    amount: i64,
    memo: Option<&str>,
) -> Result<TxnId> {
    // Positive funds the wallet from the tenant's balance, negative withdraws into it.
    let amount = crate::domain::billing::non_zero_amount("amount", amount)?;
    let wallet = ledger::wallet_account(tenant, mode, user);
    Db::ensure_account(tx, &wallet, Some(tenant), mode, "wallet").await?;
    let available = ledger::available_account(tenant, mode);
    let (from, to, floor, kind) = if amount.is_positive() {
        (&available, &wallet, tenant_floor, "wallet_fund")
    } else {
        (&wallet, &available, Credits::ZERO, "wallet_withdraw")
    };
    let what = ledger::Transfer {
        kind,
        memo,
        actor: None,
    };
    let outcome = ledger::transfer(
        tx,
        tenant,
        mode,
        from,
        to,
        floor,
        amount.checked_abs()?,
        &what,
    )
    .await;
    Ok(outcome?)
}

/// What a job's end changes in its tenant's totals. The day it was created on (when its hold
/// and seconds were counted) now counts what it cost: a completed job its charge instead of
/// its hold (`charged`), a failed or canceled one (`None`) neither its hold nor its seconds.
pub fn usage_after_end(job: &Video, charged: Option<Credits>) -> UsageChange {
    usage_change(
        job.cost_reserved,
        job.request.seconds.get(),
        job.created_at_ms,
        charged,
    )
}

/// [`usage_after_end`] of a job that held `reserved` for `seconds` of video from `created_at`.
fn usage_change(
    reserved: Credits,
    seconds: i64,
    created_at: i64,
    charged: Option<Credits>,
) -> UsageChange {
    let reserved = reserved.get();
    let (credits, seconds) = match charged {
        Some(charged) => (charged.get().saturating_sub(reserved), 0),
        None => (-reserved, -seconds),
    };
    UsageChange {
        day: created_at.div_euclid(DAY_MS),
        credits,
        seconds,
    }
}

/// Counts a job costing `price` with `seconds` of video in its tenant's running totals and
/// checks the tenant's caps against them, in the creating transaction. The totals are counted
/// even for a tenant without caps, so that caps set later hold from the first job.
pub async fn admit_tenant(
    tx: &mut Tx,
    tenant: &TenantId,
    mode: Mode,
    price: Credits,
    seconds: i64,
    now: i64,
) -> Result<()> {
    let (day_start, month_start) = day_and_month_start(now);
    let totals =
        Db::count_new_job(tx, tenant, mode, day_start / DAY_MS, price.get(), seconds).await?;
    let Some(quotas) = Db::tenant_quotas_in(tx, tenant).await? else {
        return Ok(());
    };
    if let Some(max) = quotas.max_concurrent.filter(|max| totals.running > *max) {
        return Err(Error::QuotaExceeded {
            code: "tenant_concurrency_exceeded",
            message: format!("this tenant already has {max} videos running"),
            retry_after_secs: None,
        });
    }
    let until_tomorrow = Some(((day_start + DAY_MS - now) / 1000).max(1) as u64);
    if let Some(limit) = quotas.credits_per_day.filter(|l| totals.day_credits > *l) {
        let spent = totals.day_credits.saturating_sub(price.get());
        return Err(Error::QuotaExceeded {
            code: "tenant_daily_credits_exceeded",
            message: format!(
                "this tenant has used {spent} of {limit} credits today; this video costs {price}"
            ),
            retry_after_secs: until_tomorrow,
        });
    }
    if let Some(limit) = quotas
        .video_seconds_per_day
        .filter(|l| totals.day_seconds > *l)
    {
        let used_seconds = totals.day_seconds - seconds;
        return Err(Error::QuotaExceeded {
            code: "tenant_daily_seconds_exceeded",
            message: format!(
                "this tenant has used {used_seconds} of {limit} seconds of video today"
            ),
            retry_after_secs: until_tomorrow,
        });
    }
    if let Some(limit) = quotas.credits_per_month {
        let spent = Db::tenant_credits_since(tx, tenant, mode, month_start / DAY_MS).await?;
        if spent > limit {
            return Err(Error::QuotaExceeded {
                code: "tenant_monthly_credits_exceeded",
                message: format!(
                    "this tenant has used {} of {limit} credits this month",
                    spent.saturating_sub(price.get())
                ),
                retry_after_secs: None,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_counts_the_charge_on_the_day_the_hold_was_counted() {
        let created = 3 * DAY_MS + 10; // The job ends on a later day; its creation day counts.
        let hold = Credits::new(200).expect("credits");
        let charge = Credits::new(150).expect("credits");
        let completed = usage_change(hold, 8, created, Some(charge));
        assert_eq!(
            (completed.day, completed.credits, completed.seconds),
            (3, -50, 0),
            "a completed job counts its charge instead of its hold, and keeps its seconds"
        );
        let failed = usage_change(hold, 8, created, None);
        assert_eq!(
            (failed.day, failed.credits, failed.seconds),
            (3, -200, -8),
            "a job without output counts neither its hold nor its seconds"
        );
    }

    #[test]
    fn days_and_months_start_at_utc_midnight() {
        // 2026-11-21T05:00:00Z
        let now = 1_795_237_200_000;
        let (day, month) = day_and_month_start(now);
        assert_eq!(date_of_day(day / DAY_MS), "2026-11-21");
        assert_eq!(date_of_day(month / DAY_MS), "2026-11-01");
        assert_eq!(day % DAY_MS, 0);
    }
}
