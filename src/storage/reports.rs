//! SQL for the reports over settled jobs: a tenant's usage, the operator's margins and
//! savings, and completed jobs whose upstream-reported cost strays from the estimate.

use super::sql::{self, Get};
use super::videos::{status_in, video_from_row};
use super::{Db, DbError};
use crate::types::ids::TenantId;
use crate::types::money::{Credits, MicroUsd, Mode};
use crate::types::video::{Video, VideoStatus};

/// The status the reports of completed jobs count.
const COMPLETED: VideoStatus = VideoStatus::Completed;

/// What a usage report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Day,
    Key,
    User,
    Model,
    Provider,
}

impl UsageGroup {
    pub fn parse(raw: &str) -> Option<UsageGroup> {
        match raw {
            "day" => Some(UsageGroup::Day),
            "key" => Some(UsageGroup::Key),
            "user" => Some(UsageGroup::User),
            "model" => Some(UsageGroup::Model),
            "provider" => Some(UsageGroup::Provider),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::Key => "key",
            UsageGroup::User => "user",
            UsageGroup::Model => "model",
            UsageGroup::Provider => "provider",
        }
    }

    /// The SQL expression, always text so that every group reads back the same way.
    fn column(self) -> &'static str {
        match self {
            UsageGroup::Day => "CAST(completed_at / 86400000 AS TEXT)",
            UsageGroup::Key => "COALESCE(api_key_id, '')",
            UsageGroup::User => "COALESCE(user_id, '')",
            UsageGroup::Model => "model",
            UsageGroup::Provider => "COALESCE(provider, '')",
        }
    }
}

/// One row of a usage report.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub groups: Vec<String>,
    /// Settled jobs (completed, failed or canceled).
    pub jobs: i64,
    pub completed: i64,
    /// Seconds of completed video.
    pub seconds: i64,
    pub charged: i64,
}

/// One tenant-provider-day of the margin report.
#[derive(Debug, Clone)]
pub struct MarginRow {
    pub tenant_id: String,
    pub provider: String,
    pub day: i64,
    pub jobs: i64,
    pub revenue: Credits,
    pub cost: MicroUsd,
}

/// One tenant-day of the savings report, in micro-USD.
#[derive(Debug, Clone)]
pub struct SavingsRow {
    pub tenant_id: String,
    /// Days since the unix epoch (UTC).
    pub day: i64,
    pub jobs: i64,
    pub paid: MicroUsd,
    pub ceiling: MicroUsd,
    pub baseline: MicroUsd,
    pub jobs_with_baseline: i64,
}

impl Db {
    /// A tenant's settled jobs (in one of `finished`) in one mode between two instants,
    /// grouped.
    pub async fn usage(
        &self,
        tenant: &TenantId,
        mode: Mode,
        (from_ms, to_ms): (i64, i64),
        finished: &[VideoStatus],
        groups: &[UsageGroup],
    ) -> Result<Vec<UsageRow>, DbError> {
        let completed = format!("status = '{}'", COMPLETED.as_str());
        let finished = status_in("status", finished);
        let columns: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{} AS g{i}", g.column()))
            .collect();
        let names: Vec<String> = (0..groups.len()).map(|i| format!("g{i}")).collect();
        let select = if columns.is_empty() {
            String::new()
        } else {
            format!("{}, ", columns.join(", "))
        };
        let group_by = if names.is_empty() {
            String::new()
        } else {
            format!(
                " GROUP BY {} ORDER BY {}",
                names.join(", "),
                names.join(", ")
            )
        };
        let sql = format!(
            "SELECT {select}COUNT(*) AS jobs, \
               CAST(COALESCE(SUM(CASE WHEN {completed} THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed, \
               CAST(COALESCE(SUM(CASE WHEN {completed} THEN seconds ELSE 0 END), 0) AS BIGINT) AS seconds, \
               CAST(COALESCE(SUM(cost_charged), 0) AS BIGINT) AS charged \
             FROM videos WHERE tenant_id = $1 AND mode = $2 AND completed_at >= $3 AND completed_at < $4 \
               AND {finished}{group_by}"
        );
        sql::query(sql)
            .bind(tenant.as_str())
            .bind(mode.as_str())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(|r| {
                Ok(UsageRow {
                    groups: (0..groups.len())
                        .map(|i| r.at::<String>(i))
                        .collect::<Result<_, _>>()?,
                    jobs: r.col("jobs")?,
                    completed: r.col("completed")?,
                    seconds: r.col("seconds")?,
                    charged: r.col("charged")?,
                })
            })
            .collect()
    }

    /// Revenue against upstream cost per tenant, provider and UTC day for completed live jobs:
    /// (tenant, provider, day, jobs, credits charged, upstream micro-USD).
    pub async fn margin_report(&self, from_ms: i64, to_ms: i64) -> Result<Vec<MarginRow>, DbError> {
        sql::query(format!(
            "SELECT tenant_id, COALESCE(provider, '') AS provider, completed_at / 86400000 AS day, COUNT(*) AS jobs, \
               CAST(COALESCE(SUM(cost_charged), 0) AS BIGINT) AS revenue, \
               CAST(COALESCE(SUM(COALESCE(upstream_cost_micro_usd, upstream_estimate_micro)), 0) AS BIGINT) AS cost \
             FROM videos WHERE status = '{}' AND mode = 'live' AND completed_at >= $1 AND completed_at < $2 \
             GROUP BY tenant_id, COALESCE(provider, ''), completed_at / 86400000 ORDER BY day, tenant_id, provider",
            COMPLETED.as_str()
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| {
            Ok(MarginRow {
                tenant_id: r.col("tenant_id")?,
                provider: r.col("provider")?,
                day: r.col("day")?,
                jobs: r.col("jobs")?,
                revenue: Credits::from_stored(r.col("revenue")?),
                cost: MicroUsd::from_stored(r.col("cost")?),
            })
        })
        .collect()
    }

    /// Upstream spending per tenant and day (UTC) of completed live jobs: what was paid (the
    /// upstream's own reported dollars where given, else the catalog estimate) against the most
    /// expensive eligible provider and the baseline provider.
    pub async fn savings_report(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SavingsRow>, DbError> {
        sql::query(format!(
            "SELECT tenant_id, completed_at / 86400000 AS day, COUNT(*) AS jobs, \
               CAST(COALESCE(SUM(COALESCE(upstream_cost_micro_usd, upstream_estimate_micro)), 0) AS BIGINT) AS paid, \
               CAST(COALESCE(SUM(cost_ceiling_micro), 0) AS BIGINT) AS ceiling, \
               CAST(COALESCE(SUM(cost_baseline_micro), 0) AS BIGINT) AS baseline, \
               CAST(SUM(CASE WHEN cost_baseline_micro IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS with_baseline \
             FROM videos WHERE status = '{}' AND mode = 'live' \
               AND completed_at >= $1 AND completed_at < $2 \
             GROUP BY tenant_id, completed_at / 86400000 ORDER BY day, tenant_id",
            COMPLETED.as_str()
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| {
            Ok(SavingsRow {
                tenant_id: r.col("tenant_id")?,
                day: r.col("day")?,
                jobs: r.col("jobs")?,
                paid: MicroUsd::from_stored(r.col("paid")?),
                ceiling: MicroUsd::from_stored(r.col("ceiling")?),
                baseline: MicroUsd::from_stored(r.col("baseline")?),
                jobs_with_baseline: r.col("with_baseline")?,
            })
        })
        .collect()
    }

    /// Completed jobs whose upstream-reported cost differs from the catalog's estimate by more
    /// than `threshold_percent`, newest first.
    pub async fn cost_mismatches(
        &self,
        from_ms: i64,
        to_ms: i64,
        threshold_percent: i64,
        limit: i64,
    ) -> Result<Vec<Video>, DbError> {
        sql::query(format!(
            "SELECT * FROM videos WHERE status = '{}' AND completed_at >= $1 AND completed_at < $2 \
               AND upstream_cost_micro_usd IS NOT NULL AND upstream_estimate_micro IS NOT NULL \
               AND ABS(upstream_cost_micro_usd - upstream_estimate_micro) * 100 > $3 * upstream_estimate_micro \
             ORDER BY completed_at DESC LIMIT $4",
            COMPLETED.as_str()
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(threshold_percent)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(video_from_row)
        .collect()
    }
}
