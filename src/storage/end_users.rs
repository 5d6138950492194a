//! SQL for end users: their settings, and what they have spent and are running.

use super::sql::{self, Get};
use super::{now_ms, Backend, Db, DbError, Tx};
use crate::types::ids::{EndUserId, TenantId};
use crate::types::money::Mode;
use crate::types::video::VideoStatus;

/// Whether an end user's wallet pays for its jobs: `first` (the wallet, then the tenant's
/// balance), `only` (the wallet alone) or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalletMode {
    None,
    First,
    Only,
}

impl WalletMode {
    pub fn parse(raw: &str) -> Option<WalletMode> {
        match raw {
            "none" => Some(WalletMode::None),
            "first" => Some(WalletMode::First),
            "only" => Some(WalletMode::Only),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WalletMode::None => "none",
            WalletMode::First => "first",
            WalletMode::Only => "only",
        }
    }
}

/// An end user's settings in one mode.
#[derive(Debug, Clone)]
pub struct EndUser {
    pub tenant_id: TenantId,
    /// Settings belong to one mode: a test key's never bound live traffic.
    pub mode: Mode,
    pub id: EndUserId,
    pub credits_per_day: Option<i64>,
    pub credits_per_month: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub wallet_mode: WalletMode,
}

/// A tenant's caps (each `None` when not set).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TenantQuotas {
    pub max_concurrent: Option<i64>,
    pub credits_per_day: Option<i64>,
    pub credits_per_month: Option<i64>,
    pub video_seconds_per_day: Option<i64>,
}

fn end_user_from_row(tenant: &TenantId, row: &impl Get) -> Result<EndUser, DbError> {
    Ok(EndUser {
        tenant_id: tenant.clone(),
        mode: row.state("mode", Mode::parse)?,
        id: EndUserId::from_db(row.col("user_id")?),
        credits_per_day: row.col("credits_per_day")?,
        credits_per_month: row.col("credits_per_month")?,
        max_concurrent: row.col("max_concurrent")?,
        wallet_mode: row.state("wallet_mode", WalletMode::parse)?,
    })
}

impl Db {
    /// The end user, created with no limits on first mention, and locked for the rest of the
    /// transaction on PostgreSQL (SQLite's write transaction already excludes other writers),
    /// so that limit checks and the job they admit are one atomic step.
    pub async fn lock_end_user(
        tx: &mut Tx,
        backend: Backend,
        tenant: &TenantId,
        mode: Mode,
        user: &EndUserId,
    ) -> Result<EndUser, DbError> {
        let now = now_ms();
        sql::query(
            "INSERT INTO end_users (tenant_id, mode, user_id, wallet_mode, created_at, updated_at) \
             VALUES ($1, $2, $3, 'none', $4, $4) ON CONFLICT (tenant_id, mode, user_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(user.as_str())
        .bind(now)
        .execute(tx)
        .await?;
        let lock = match backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sql::query(format!(
            "SELECT * FROM end_users WHERE tenant_id = $1 AND mode = $2 AND user_id = $3{lock}"
        ))
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(user.as_str())
        .fetch_one(tx)
        .await?;
        end_user_from_row(tenant, &row)
    }

    pub async fn get_end_user(
        &self,
        tenant: &TenantId,
        mode: Mode,
        user: &EndUserId,
    ) -> Result<Option<EndUser>, DbError> {
        sql::query("SELECT * FROM end_users WHERE tenant_id = $1 AND mode = $2 AND user_id = $3")
            .bind(tenant.as_str())
            .bind(mode.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut self.read()?)
            .await?
            .map(|r| end_user_from_row(tenant, &r))
            .transpose()
    }

    pub async fn put_end_user(&self, user: &EndUser) -> Result<(), DbError> {
        let now = now_ms();
        sql::query(
            "INSERT INTO end_users (tenant_id, user_id, credits_per_day, credits_per_month, max_concurrent, wallet_mode, created_at, updated_at, mode) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             ON CONFLICT (tenant_id, mode, user_id) DO UPDATE SET credits_per_day = excluded.credits_per_day, \
               credits_per_month = excluded.credits_per_month, max_concurrent = excluded.max_concurrent, \
               wallet_mode = excluded.wallet_mode, updated_at = excluded.updated_at",
        )
        .bind(user.tenant_id.as_str())
        .bind(user.id.as_str())
        .bind(user.credits_per_day)
        .bind(user.credits_per_month)
        .bind(user.max_concurrent)
        .bind(user.wallet_mode.as_str())
        .bind(now)
        .bind(user.mode.as_str())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    /// Credits an end user's jobs created since `since` have spent or hold: charged for settled
    /// jobs, reserved for running ones.
    pub async fn end_user_spend(
        tx: &mut Tx,
        tenant: &TenantId,
        user: &EndUserId,
        mode: Mode,
        since: i64,
    ) -> Result<i64, DbError> {
        sql::query(
            "SELECT CAST(COALESCE(SUM(COALESCE(cost_charged, cost_reserved)), 0) AS BIGINT) FROM videos \
             WHERE tenant_id = $1 AND user_id = $2 AND mode = $3 AND created_at >= $4",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(mode.as_str())
        .bind(since)
        .fetch_one(tx)
        .await?
        .at(0)
    }

    /// An end user's jobs in one of `running` and the credits their jobs spent since `day`
    /// and since `month`, read in one transaction so the three agree.
    pub async fn end_user_usage(
        &self,
        tenant: &TenantId,
        user: &EndUserId,
        mode: Mode,
        running: &[VideoStatus],
        (day, month): (i64, i64),
    ) -> Result<(i64, i64, i64), DbError> {
        let mut tx = self.begin().await?;
        let running = Self::end_user_running(&mut tx, tenant, mode, user, running).await?;
        let today = Self::end_user_spend(&mut tx, tenant, user, mode, day).await?;
        let this_month = Self::end_user_spend(&mut tx, tenant, user, mode, month).await?;
        tx.commit().await?;
        Ok((running, today, this_month))
    }

    /// An end user's jobs in one of `running`.
    pub async fn end_user_running(
        tx: &mut Tx,
        tenant: &TenantId,
        mode: Mode,
        user: &EndUserId,
        running: &[VideoStatus],
    ) -> Result<i64, DbError> {
        sql::query(format!(
            "SELECT COUNT(*) FROM videos WHERE tenant_id = $1 AND user_id = $2 AND mode = $3 \
             AND {}",
            super::videos::status_in("status", running)
        ))
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(mode.as_str())
        .fetch_one(tx)
        .await?
        .at(0)
    }
}

impl Db {
    /// The tenant's caps, read in the creating transaction. They need no lock: the running
    /// totals they are checked against are locked by [`Db::count_new_job`].
    pub async fn tenant_quotas_in(
        tx: &mut Tx,
        tenant: &TenantId,
    ) -> Result<Option<TenantQuotas>, DbError> {
        let row = sql::query(
            "SELECT max_concurrent, credits_per_day, credits_per_month, video_seconds_per_day \
             FROM tenant_quotas WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(tx)
        .await?;
        row.map(|r| {
            Ok(TenantQuotas {
                max_concurrent: r.at(0)?,
                credits_per_day: r.at(1)?,
                credits_per_month: r.at(2)?,
                video_seconds_per_day: r.at(3)?,
            })
        })
        .transpose()
    }

    pub async fn put_tenant_quotas(
        &self,
        tenant: &TenantId,
        quotas: &TenantQuotas,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO tenant_quotas (tenant_id, max_concurrent, credits_per_day, credits_per_month, video_seconds_per_day, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET \
               max_concurrent = excluded.max_concurrent, credits_per_day = excluded.credits_per_day, \
               credits_per_month = excluded.credits_per_month, video_seconds_per_day = excluded.video_seconds_per_day, \
               updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(quotas.max_concurrent)
        .bind(quotas.credits_per_day)
        .bind(quotas.credits_per_month)
        .bind(quotas.video_seconds_per_day)
        .bind(now_ms())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    /// Counts a new job in its tenant's running totals, in the creating transaction, and
    /// returns the totals with it counted. Each total is one row that the increment locks
    /// until commit, so concurrent creates of one tenant check their caps one after another.
    pub async fn count_new_job(
        tx: &mut Tx,
        tenant: &TenantId,
        mode: Mode,
        day: i64,
        credits: i64,
        seconds: i64,
    ) -> Result<TenantTotals, DbError> {
        let running: i64 = sql::query(
            "INSERT INTO tenant_running (tenant_id, mode, running) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, mode) DO UPDATE SET running = tenant_running.running + 1 \
             RETURNING running",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .fetch_one(tx)
        .await?
        .at(0)?;
        let row = sql::query(
            "INSERT INTO tenant_usage (tenant_id, mode, day, credits, seconds) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, mode, day) DO UPDATE SET \
               credits = tenant_usage.credits + excluded.credits, seconds = tenant_usage.seconds + excluded.seconds \
             RETURNING credits, seconds",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(day)
        .bind(credits)
        .bind(seconds)
        .fetch_one(tx)
        .await?;
        Ok(TenantTotals {
            running,
            day_credits: row.at(0)?,
            day_seconds: row.at(1)?,
        })
    }

    /// Takes a job that just reached a final state out of its tenant's running jobs, and
    /// changes its day's totals by `usage` (the domain decides what the end changed). Called
    /// in the transaction that ended the job, so a job leaves the totals exactly once.
    pub(super) async fn count_finished_job(
        tx: &mut Tx,
        finished: &FinishedJob,
        usage: UsageChange,
    ) -> Result<(), DbError> {
        let UsageChange {
            day,
            credits: credits_delta,
            seconds: seconds_delta,
        } = usage;
        sql::query(
            "UPDATE tenant_running SET running = running - 1 \
             WHERE tenant_id = $1 AND mode = $2 AND running > 0",
        )
        .bind(finished.tenant_id.as_str())
        .bind(finished.mode.as_str())
        .execute(tx)
        .await?;
        if credits_delta != 0 || seconds_delta != 0 {
            sql::query(
                "UPDATE tenant_usage SET credits = credits + $1, seconds = seconds + $2 \
                 WHERE tenant_id = $3 AND mode = $4 AND day = $5",
            )
            .bind(credits_delta)
            .bind(seconds_delta)
            .bind(finished.tenant_id.as_str())
            .bind(finished.mode.as_str())
            .bind(day)
            .execute(tx)
            .await?;
        }
        Ok(())
    }

    /// The credits a tenant's jobs of `mode` created since the UTC day `from_day` count.
    pub async fn tenant_credits_since(
        tx: &mut Tx,
        tenant: &TenantId,
        mode: Mode,
        from_day: i64,
    ) -> Result<i64, DbError> {
        sql::query(
            "SELECT CAST(COALESCE(SUM(credits), 0) AS BIGINT) FROM tenant_usage \
             WHERE tenant_id = $1 AND mode = $2 AND day >= $3",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(from_day)
        .fetch_one(tx)
        .await?
        .at(0)
    }
}

/// A tenant's running totals, with the job being created counted.
#[derive(Debug, Clone, Copy)]
pub struct TenantTotals {
    pub running: i64,
    pub day_credits: i64,
    pub day_seconds: i64,
}

/// How a job's end changes the totals of one UTC day, as the domain decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageChange {
    /// The UTC day (days since the epoch) whose totals change.
    pub day: i64,
    pub credits: i64,
    pub seconds: i64,
}

/// What the running totals need to know of a job that reached a final state.
#[derive(Debug, Clone)]
pub struct FinishedJob {
    pub tenant_id: TenantId,
    pub mode: Mode,
    pub created_at: i64,
    pub cost_reserved: i64,
    pub seconds: i64,
}
