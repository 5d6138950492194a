//! SQL for video jobs: creation, tenant-scoped reads with cursor pagination, the worker's
//! leased claims, and the guarded state transitions. Every transition out of a running state
//! is conditional on the job still being running (and, for the worker, on still holding the
//! lease), so a late upstream result or a stale replica can never overwrite a final state.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::end_users::FinishedJob;
use super::sql::{self, Exec, Get};
use super::{now_ms, Db, Tx};
use crate::domain::billing::{Credits, Mode};
use crate::domain::ids::{ApiKeyId, TenantId, VideoId};
use crate::domain::video::{JobError, PollCause, Video, VideoStatus};
use crate::providers::ReportedCost;

const RUNNING: &str = "status IN ('queued', 'in_progress')";
/// How many waiting jobs a create counts before it joins them in the queue.
const WAITING_COUNTED: i64 = 256;
/// What a job's final-state update returns for the tenant's running totals.
const FINISHED: &str = "RETURNING tenant_id, mode, created_at, cost_reserved, seconds";

fn finished_from_row(row: &AnyRow) -> Result<FinishedJob, sqlx::Error> {
    let mode: String = row.try_get("mode")?;
    Ok(FinishedJob {
        tenant_id: TenantId::from_db(row.try_get("tenant_id")?),
        // A wrong mode would adjust another mode's totals: refuse it rather than guess.
        mode: Mode::parse(&mode)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown mode {mode:?}").into()))?,
        created_at: row.try_get("created_at")?,
        cost_reserved: row.try_get("cost_reserved")?,
        seconds: row.try_get("seconds")?,
    })
}

fn video_from_row(row: &impl Get) -> Result<Video, sqlx::Error> {
    let request: String = row.col("request")?;
    let request = serde_json::from_str(&request).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let status: String = row.col("status")?;
    let mode: String = row.col("mode")?;
    let error_code: Option<String> = row.col("error_code")?;
    let error_message: Option<String> = row.col("error_message")?;
    Ok(Video {
        id: VideoId::from_db(row.col("id")?),
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        api_key_id: row
            .col::<Option<String>>("api_key_id")?
            .map(ApiKeyId::from_db),
        mode: Mode::parse(&mode).unwrap_or(Mode::Test),
        request,
        status: VideoStatus::parse(&status).unwrap_or(VideoStatus::Failed),
        progress: row.col("progress")?,
        provider: row.col("provider")?,
        upstream_id: row.col("upstream_id")?,
        error: error_code.map(|code| JobError {
            code,
            message: error_message.unwrap_or_default(),
        }),
        cost_reserved: Credits::from_stored(row.col("cost_reserved")?),
        cost_charged: row
            .col::<Option<i64>>("cost_charged")?
            .map(Credits::from_stored),
        output_url: row.col("output_url")?,
        created_at_ms: row.col("created_at")?,
        submitted_at_ms: row.col("submitted_at")?,
        completed_at_ms: row.col("completed_at")?,
        upstream_estimate_micro: row.col("upstream_estimate_micro")?,
        expires_at_ms: row.col("expires_at")?,
        archive_state: row.col("archive_state")?,
        attempts: row.col("attempts")?,
        slot_provider: row.col("slot_provider")?,
        cost_ceiling_micro: row.col("cost_ceiling_micro")?,
        cost_baseline_micro: row.col("cost_baseline_micro")?,
        callback_token: row.col("callback_token")?,
        fallbacks: row
            .col::<Option<String>>("fallbacks")?
            .and_then(|f| serde_json::from_str(&f).ok())
            .unwrap_or_default(),
        upstream_cost: row.col("upstream_cost")?,
        upstream_cost_micro_usd: row.col("upstream_cost_micro_usd")?,
        poll_cause: {
            let cause: String = row.col("poll_cause")?;
            PollCause::parse(&cause).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown poll cause {cause:?}").into())
            })?
        },
        upstream_requests: row.col("upstream_requests")?,
    })
}

/// When and why a leased job is next due, as the worker puts it back (see [`Db::reschedule`]).
pub struct Due {
    /// The instant it is due.
    pub at: i64,
    pub cause: PollCause,
    /// Progress the upstream reported, 0-99.
    pub progress: Option<i64>,
    /// Whether the step was a transient failure (counted toward giving up).
    pub count_attempt: bool,
    /// Requests the step made upstream.
    pub requests: i64,
    /// When the step's upstream request began: a webhook that arrived after it makes the job
    /// due for its confirmation instead.
    pub step_started: Option<i64>,
    /// The provider's minimum wait after a request before the next one.
    pub min_interval_ms: i64,
}

impl Due {
    /// Due at `at` for `cause`, after a step that made no upstream request.
    pub fn at(at: i64, cause: PollCause) -> Due {
        Due {
            at,
            cause,
            progress: None,
            count_attempt: false,
            requests: 0,
            step_started: None,
            min_interval_ms: 0,
        }
    }
}

/// One call to an upstream for a job, for the operator's view of its attempts.
pub struct Attempt<'a> {
    pub video: &'a VideoId,
    pub provider: &'a str,
    pub operation: &'a str,
    pub started_at: i64,
    pub duration_ms: i64,
}

/// A submit whose answer was lost: the upstream may hold (and bill) a job the gateway never
/// saw. Listed for the operator to reconcile with the provider's invoice.
pub struct PossibleOrphan {
    pub video_id: String,
    pub tenant_id: String,
    pub provider: String,
    pub attempted_at_ms: i64,
    pub error: Option<String>,
    /// The normalized request that was sent.
    pub request: serde_json::Value,
}

/// A recorded attempt, as read back.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub provider: String,
    /// `submit` or `cancel`.
    pub operation: String,
    /// `accepted`, `rejected`, `unavailable`, `transient` or `unknown` (the answer was lost).
    pub outcome: String,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub duration_ms: i64,
}

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
    pub revenue_credits: i64,
    pub cost_micro_usd: i64,
}

/// One tenant-day of the savings report, in micro-USD.
#[derive(Debug, Clone)]
pub struct SavingsRow {
    pub tenant_id: String,
    /// Days since the unix epoch (UTC).
    pub day: i64,
    pub jobs: i64,
    pub paid_micro_usd: i64,
    pub ceiling_micro_usd: i64,
    pub baseline_micro_usd: i64,
    pub jobs_with_baseline: i64,
}

/// Which page of a tenant's videos to read.
pub struct ListQuery<'a> {
    pub tenant: &'a TenantId,
    pub after: Option<&'a VideoId>,
    pub limit: i64,
    pub newest_first: bool,
    pub status: Option<VideoStatus>,
    pub user: Option<&'a str>,
}

impl Db {
    /// Stores a new job, leased to `lease_owner` until `lease_until`: the request that creates
    /// a job submits it itself, and the worker takes it over only if that lease expires.
    pub async fn insert_video(
        ex: &mut Exec<'_>,
        video: &Video,
        next_run_at: i64,
        lease: Option<(&str, i64)>,
    ) -> Result<(), sqlx::Error> {
        let request =
            serde_json::to_string(&video.request).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sql::query(
            "INSERT INTO videos (id, tenant_id, api_key_id, mode, model, user_id, request, status, \
             progress, provider, cost_reserved, created_at, updated_at, next_run_at, callback_token, \
             lease_owner, lease_until, fallbacks, cost_ceiling_micro, cost_baseline_micro, seconds, slot_provider) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(video.id.as_str())
        .bind(video.tenant_id.as_str())
        .bind(video.api_key_id.as_ref().map(ApiKeyId::as_str))
        .bind(video.mode.as_str())
        .bind(video.request.model.id())
        .bind(video.request.user.as_ref().map(|u| u.as_str()))
        .bind(request)
        .bind(video.status.as_str())
        .bind(video.provider.as_deref())
        .bind(video.cost_reserved.get())
        .bind(video.created_at_ms)
        .bind(next_run_at)
        .bind(video.callback_token.as_deref())
        .bind(lease.map(|(owner, _)| owner))
        .bind(lease.map(|(_, until)| until))
        .bind(serde_json::to_string(&video.fallbacks).ok())
        .bind(video.cost_ceiling_micro)
        .bind(video.cost_baseline_micro)
        .bind(video.request.seconds.get())
        .bind(video.slot_provider.as_deref())
        .execute(ex)
        .await?;
        Ok(())
    }

    /// A tenant's video; another tenant's id or a deleted video reads as absent.
    pub async fn get_video(
        &self,
        tenant: &TenantId,
        id: &VideoId,
    ) -> Result<Option<Video>, sqlx::Error> {
        let mut reader = self.hot_reader()?;
        sql::query("SELECT * FROM videos WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL")
            .bind(id.as_str())
            .bind(tenant.as_str())
            .fetch_optional(&mut reader.exec()?)
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// Any video by id, for the workers and the operator.
    pub async fn get_video_any(&self, id: &VideoId) -> Result<Option<Video>, sqlx::Error> {
        sqlx::query("SELECT * FROM videos WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// One page of a tenant's videos plus whether more follow. The cursor is a video id;
    /// an id that is not the tenant's reads as "not found" to the caller.
    pub async fn list_videos(
        &self,
        query: &ListQuery<'_>,
    ) -> Result<Option<(Vec<Video>, bool)>, sqlx::Error> {
        let cursor = match query.after {
            Some(after) => {
                let row = sqlx::query("SELECT seq FROM videos WHERE id = $1 AND tenant_id = $2")
                    .bind(after.as_str())
                    .bind(query.tenant.as_str())
                    .fetch_optional(self.pool())
                    .await?;
                match row {
                    Some(row) => Some(row.try_get::<i64, _>(0)?),
                    None => return Ok(None),
                }
            }
            None => None,
        };
        let (cmp, order) = if query.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut sql =
            String::from("SELECT * FROM videos WHERE tenant_id = $1 AND deleted_at IS NULL");
        let mut n = 1;
        if cursor.is_some() {
            n += 1;
            sql.push_str(&format!(" AND seq {cmp} ${n}"));
        }
        if query.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if query.user.is_some() {
            n += 1;
            sql.push_str(&format!(" AND user_id = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(query.tenant.as_str());
        if let Some(seq) = cursor {
            q = q.bind(seq);
        }
        if let Some(status) = query.status {
            q = q.bind(status.as_str());
        }
        if let Some(user) = query.user {
            q = q.bind(user);
        }
        let rows = q.bind(query.limit + 1).fetch_all(self.pool()).await?;
        let has_more = rows.len() as i64 > query.limit;
        let videos = rows
            .iter()
            .take(query.limit as usize)
            .map(video_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((videos, has_more)))
    }

    /// Leases up to `limit` due jobs to `owner` until `lease_until`. Running jobs due for a
    /// poll come first, soonest due first, read from the due index without touching the
    /// others. Queued jobs fill the rest fairly across tenants: a queued job's turn is its
    /// tenant's running jobs plus its place in its tenant's line, and the lowest turn goes first
    /// (then the oldest), so a tenant that queues a thousand jobs delays another tenant's single
    /// job by at most one slot's turn. The conditional update makes each claim exclusive across
    /// replicas (a window function cannot be combined with `SKIP LOCKED`; a concurrent claim
    /// waits for the other's short transaction and then skips what it took).
    pub async fn claim_due_jobs(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Video>, sqlx::Error> {
        let mut order: Vec<i64> = sqlx::query(
            "SELECT seq FROM videos WHERE status = 'in_progress' AND next_run_at <= $1 \
               AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY next_run_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
        let room = limit - order.len() as i64;
        let any_queued = room > 0
            && sqlx::query(
                "SELECT 1 FROM videos WHERE status = 'queued' AND next_run_at <= $1 \
                   AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
            )
            .bind(now)
            .fetch_optional(self.pool())
            .await?
            .is_some();
        if any_queued {
            let queued: Vec<i64> = sqlx::query(
                "SELECT seq FROM ( \
                     SELECT v.seq, ROW_NUMBER() OVER (PARTITION BY v.tenant_id ORDER BY v.seq) \
                       + COALESCE(r.running, 0) AS turn \
                     FROM videos v LEFT JOIN (SELECT tenant_id, COUNT(*) AS running FROM videos \
                       WHERE status = 'in_progress' GROUP BY tenant_id) r ON r.tenant_id = v.tenant_id \
                     WHERE v.status = 'queued' AND v.next_run_at <= $1 \
                       AND (v.lease_until IS NULL OR v.lease_until < $1)) due \
                 ORDER BY turn, seq LIMIT $2",
            )
            .bind(now)
            .bind(room)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
            order.extend(queued);
        }
        if order.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..order.len()).map(|i| format!("${}", i + 4)).collect();
        let claim = format!(
            "UPDATE videos SET lease_owner = $1, lease_until = $2 \
             WHERE seq IN ({}) AND {RUNNING} AND (lease_until IS NULL OR lease_until < $3) \
             RETURNING *",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&claim).bind(owner).bind(lease_until).bind(now);
        for seq in &order {
            query = query.bind(*seq);
        }
        let mut tx = self.begin().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")?, video_from_row(r)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|(seq, _)| order.iter().position(|s| s == seq));
        Ok(claimed.into_iter().map(|(_, video)| video).collect())
    }

    /// The job whose provider callback URL carries `token`.
    pub async fn video_by_callback_token(&self, token: &str) -> Result<Option<Video>, sqlx::Error> {
        sqlx::query("SELECT * FROM videos WHERE callback_token = $1")
            .bind(token)
            .fetch_optional(self.pool())
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// Makes a running job due now (a webhook said it changed), unless it is leased.
    pub async fn poll_soon(&self, id: &VideoId, min_interval_ms: i64) -> Result<(), sqlx::Error> {
        // A poll inside the provider's minimum interval after the last request would be
        // refused (AIgateway answers 304), so the confirmation waits for the interval's end. A
        // poll already in flight sees `webhook_at` when it reschedules (`reschedule`).
        sqlx::query(&format!(
            "UPDATE videos SET webhook_at = $1, poll_cause = 'webhook', \
             next_run_at = CASE WHEN updated_at + $2 > $1 THEN updated_at + $2 ELSE $1 END \
             WHERE id = $3 AND {RUNNING}"
        ))
        .bind(now_ms())
        .bind(min_interval_ms)
        .bind(id.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Takes a slot at `provider` for a leased job, if fewer than `limit` are in use.
    pub async fn acquire_slot(
        &self,
        id: &VideoId,
        owner: &str,
        provider: &str,
        limit: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO provider_slots (provider, in_use) VALUES ($1, 0) ON CONFLICT (provider) DO NOTHING")
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        let taken = sqlx::query(
            "UPDATE provider_slots SET in_use = in_use + 1 WHERE provider = $1 AND in_use < $2",
        )
        .bind(provider)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !taken {
            return Ok(false);
        }
        let held = sqlx::query(&format!(
            "UPDATE videos SET slot_provider = $1 WHERE id = $2 AND lease_owner = $3 AND slot_provider IS NULL AND {RUNNING}"
        ))
        .bind(provider)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            return Ok(false); // Dropping the transaction gives the slot back.
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Folds one job's time to completion into its provider's moving average.
    pub async fn record_speed(
        tx: &mut Tx,
        provider: &str,
        model: &str,
        elapsed_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO provider_speed (provider, model, ewma_ms, samples) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (provider, model) DO UPDATE SET \
               ewma_ms = provider_speed.ewma_ms + (excluded.ewma_ms - provider_speed.ewma_ms) / 8, \
               samples = provider_speed.samples + 1",
        )
        .bind(provider)
        .bind(model)
        .bind(elapsed_ms.max(0))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records how long a job of this provider, model and length took from submit to
    /// completion, for the safety poll of jobs whose provider gives no estimate.
    pub async fn record_duration(
        tx: &mut Tx,
        provider: &str,
        model: &str,
        seconds: i64,
        elapsed_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO job_durations (provider, model, seconds, ewma_ms, samples) VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (provider, model, seconds) DO UPDATE SET \
               ewma_ms = job_durations.ewma_ms + (excluded.ewma_ms - job_durations.ewma_ms) / 8, \
               samples = job_durations.samples + 1",
        )
        .bind(provider)
        .bind(model)
        .bind(seconds)
        .bind(elapsed_ms.max(0))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The observed time from submit to completion of jobs of this provider, model and length
    /// (see [`Db::record_duration`]), in milliseconds.
    pub async fn expected_duration(
        &self,
        provider: &str,
        model: &str,
        seconds: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT ewma_ms FROM job_durations WHERE provider = $1 AND model = $2 AND seconds = $3",
        )
        .bind(provider)
        .bind(model)
        .bind(seconds)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get::<i64, _>(0)).transpose()
    }

    /// The catalog's estimate of a completed job's upstream cost, for the savings report.
    pub async fn record_estimate(
        tx: &mut Tx,
        id: &VideoId,
        micro_usd: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE videos SET upstream_estimate_micro = $1 WHERE id = $2")
            .bind(micro_usd)
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A tenant's settled jobs in one mode between two instants, grouped.
    pub async fn usage(
        &self,
        tenant: &TenantId,
        mode: Mode,
        from_ms: i64,
        to_ms: i64,
        groups: &[UsageGroup],
    ) -> Result<Vec<UsageRow>, sqlx::Error> {
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
               CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed, \
               CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN seconds ELSE 0 END), 0) AS BIGINT) AS seconds, \
               CAST(COALESCE(SUM(cost_charged), 0) AS BIGINT) AS charged \
             FROM videos WHERE tenant_id = $1 AND mode = $2 AND completed_at >= $3 AND completed_at < $4 \
               AND status IN ('completed', 'failed', 'canceled'){group_by}"
        );
        sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(mode.as_str())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(UsageRow {
                    groups: (0..groups.len())
                        .map(|i| r.try_get::<String, _>(i))
                        .collect::<Result<_, _>>()?,
                    jobs: r.try_get("jobs")?,
                    completed: r.try_get("completed")?,
                    seconds: r.try_get("seconds")?,
                    charged: r.try_get("charged")?,
                })
            })
            .collect()
    }

    /// Revenue against upstream cost per tenant, provider and UTC day for completed live jobs:
    /// (tenant, provider, day, jobs, credits charged, upstream micro-USD).
    pub async fn margin_report(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<MarginRow>, sqlx::Error> {
        sqlx::query(
            "SELECT tenant_id, COALESCE(provider, '') AS provider, completed_at / 86400000 AS day, COUNT(*) AS jobs, \
               CAST(COALESCE(SUM(cost_charged), 0) AS BIGINT) AS revenue, \
               CAST(COALESCE(SUM(COALESCE(upstream_cost_micro_usd, upstream_estimate_micro)), 0) AS BIGINT) AS cost \
             FROM videos WHERE status = 'completed' AND mode = 'live' AND completed_at >= $1 AND completed_at < $2 \
             GROUP BY tenant_id, COALESCE(provider, ''), completed_at / 86400000 ORDER BY day, tenant_id, provider",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(MarginRow {
                tenant_id: r.try_get("tenant_id")?,
                provider: r.try_get("provider")?,
                day: r.try_get("day")?,
                jobs: r.try_get("jobs")?,
                revenue_credits: r.try_get("revenue")?,
                cost_micro_usd: r.try_get("cost")?,
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
    ) -> Result<Vec<Video>, sqlx::Error> {
        sqlx::query(
            "SELECT * FROM videos WHERE status = 'completed' AND completed_at >= $1 AND completed_at < $2 \
               AND upstream_cost_micro_usd IS NOT NULL AND upstream_estimate_micro IS NOT NULL \
               AND ABS(upstream_cost_micro_usd - upstream_estimate_micro) * 100 > $3 * upstream_estimate_micro \
             ORDER BY completed_at DESC LIMIT $4",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(threshold_percent)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(video_from_row)
        .collect()
    }

    /// Submits whose answer was lost (the upstream may have made a job the gateway never saw,
    /// and may bill it), oldest first: video, tenant, provider, when, and why.
    pub async fn possible_orphans(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<PossibleOrphan>, sqlx::Error> {
        sqlx::query(
            "SELECT a.video_id, v.tenant_id, a.provider, a.started_at, a.error, v.request \
             FROM job_attempts a JOIN videos v ON v.id = a.video_id \
             WHERE a.operation = 'submit' AND a.outcome = 'unknown' \
               AND a.started_at >= $1 AND a.started_at < $2 \
             ORDER BY a.seq LIMIT $3",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            let request: String = row.try_get("request")?;
            Ok(PossibleOrphan {
                video_id: row.try_get("video_id")?,
                tenant_id: row.try_get("tenant_id")?,
                provider: row.try_get("provider")?,
                attempted_at_ms: row.try_get("started_at")?,
                error: row.try_get("error")?,
                request: serde_json::from_str(&request)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
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
    ) -> Result<Vec<SavingsRow>, sqlx::Error> {
        sqlx::query(
            "SELECT tenant_id, completed_at / 86400000 AS day, COUNT(*) AS jobs, \
               CAST(COALESCE(SUM(COALESCE(upstream_cost_micro_usd, upstream_estimate_micro)), 0) AS BIGINT) AS paid, \
               CAST(COALESCE(SUM(cost_ceiling_micro), 0) AS BIGINT) AS ceiling, \
               CAST(COALESCE(SUM(cost_baseline_micro), 0) AS BIGINT) AS baseline, \
               CAST(SUM(CASE WHEN cost_baseline_micro IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS with_baseline \
             FROM videos WHERE status = 'completed' AND mode = 'live' \
               AND completed_at >= $1 AND completed_at < $2 \
             GROUP BY tenant_id, completed_at / 86400000 ORDER BY day, tenant_id",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(SavingsRow {
                tenant_id: r.try_get("tenant_id")?,
                day: r.try_get("day")?,
                jobs: r.try_get("jobs")?,
                paid_micro_usd: r.try_get("paid")?,
                ceiling_micro_usd: r.try_get("ceiling")?,
                baseline_micro_usd: r.try_get("baseline")?,
                jobs_with_baseline: r.try_get("with_baseline")?,
            })
        })
        .collect()
    }

    /// The moving average time to completion of each provider for a model, in milliseconds.
    pub async fn provider_speeds(&self, model: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query("SELECT provider, ewma_ms FROM provider_speed WHERE model = $1")
            .bind(model)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Takes one submit from `provider`'s rate (GCRA: one submit every `interval_ms`, bursts of
    /// `burst`), atomically in one conditional update. False: wait.
    pub async fn take_submit_token(
        &self,
        provider: &str,
        interval_ms: i64,
        burst: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query("INSERT INTO provider_rate (provider, tat) VALUES ($1, 0) ON CONFLICT (provider) DO NOTHING")
            .bind(provider)
            .execute(self.writer())
            .await?;
        let done = sqlx::query(
            "UPDATE provider_rate SET tat = (CASE WHEN tat > $1 THEN tat ELSE $1 END) + $2 \
             WHERE provider = $3 AND (CASE WHEN tat > $1 THEN tat ELSE $1 END) + $2 - $1 <= $4",
        )
        .bind(now)
        .bind(interval_ms)
        .bind(provider)
        .bind(interval_ms * burst.max(1))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back the slot a job holds, if any. Runs inside the transaction of the state change
    /// that ends the job's claim on it.
    pub async fn release_slot(tx: &mut Tx, id: &VideoId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE provider_slots SET in_use = in_use - 1 \
             WHERE provider = (SELECT slot_provider FROM videos WHERE id = $1) AND in_use > 0",
        )
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE videos SET slot_provider = NULL WHERE id = $1 AND slot_provider IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Gives back a leased job's slot in a transaction of its own.
    pub async fn release_slot_now(&self, id: &VideoId) -> Result<(), sqlx::Error> {
        let mut tx = self.begin().await?;
        Self::release_slot(&mut tx, id).await?;
        tx.commit().await
    }

    /// Slots in use at a provider (for the operator and tests).
    pub async fn slots_in_use(&self, provider: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT in_use FROM provider_slots WHERE provider = $1")
            .bind(provider)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    /// Takes one of `provider`'s `limit` slots for a job being created, in its creating
    /// transaction, unless the jobs already waiting for that provider need every free slot
    /// (they go first). Waiting jobs are counted up to [`WAITING_COUNTED`]; with that many, the
    /// new job waits too. One statement takes the slot, so the count stays exact.
    pub async fn take_slot_for_new_job(
        ex: &mut Exec<'_>,
        provider: &str,
        limit: i64,
    ) -> Result<bool, sqlx::Error> {
        let waiting: i64 = sql::query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM videos WHERE status = 'queued' AND provider = $1 LIMIT $2) w",
        )
        .bind(provider)
        .bind(WAITING_COUNTED)
        .fetch_one(ex)
        .await?
        .at(0)?;
        if waiting >= WAITING_COUNTED || waiting >= limit {
            return Ok(false);
        }
        let taken = sql::query(
            "INSERT INTO provider_slots (provider, in_use) VALUES ($1, 1) \
             ON CONFLICT (provider) DO UPDATE SET in_use = provider_slots.in_use + 1 \
             WHERE provider_slots.in_use + $2 < $3 RETURNING in_use",
        )
        .bind(provider)
        .bind(waiting)
        .bind(limit)
        .fetch_optional(ex)
        .await?;
        Ok(taken.is_some())
    }

    /// Queues a leased job that failed upstream again, at another provider, and gives back its
    /// slot, in one transaction.
    pub async fn requeue_elsewhere(
        &self,
        id: &VideoId,
        owner: &str,
        provider: &str,
        fallbacks: &[String],
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE videos SET status = 'queued', provider = $1, fallbacks = $2, upstream_id = NULL, \
             submitted_at = NULL, progress = 0, next_run_at = $3, updated_at = $3, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND lease_owner = $5 AND status = 'in_progress'",
        )
        .bind(provider)
        .bind(serde_json::to_string(fallbacks).ok())
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        Self::release_slot(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves a leased, not yet submitted job to another provider, keeping the lease.
    pub async fn switch_provider(
        &self,
        id: &VideoId,
        owner: &str,
        provider: &str,
        fallbacks: &[String],
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&format!(
            "UPDATE videos SET provider = $1, fallbacks = $2, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND {RUNNING}"
        ))
        .bind(provider)
        .bind(serde_json::to_string(fallbacks).ok())
        .bind(now_ms())
        .bind(id.as_str())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_attempt(
        &self,
        attempt: &Attempt<'_>,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut writer = self.hot_writer().await?;
        sql::query(
            "INSERT INTO job_attempts (video_id, provider, operation, outcome, error, started_at, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(attempt.video.as_str())
        .bind(attempt.provider)
        .bind(attempt.operation)
        .bind(outcome)
        .bind(error)
        .bind(attempt.started_at)
        .bind(attempt.duration_ms)
        .execute(&mut writer.exec())
        .await?;
        Ok(())
    }

    /// A job's recorded upstream attempts, oldest first.
    pub async fn attempts_for_video(&self, id: &VideoId) -> Result<Vec<AttemptRow>, sqlx::Error> {
        sqlx::query(
            "SELECT provider, operation, outcome, error, started_at, duration_ms FROM job_attempts \
             WHERE video_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRow {
                provider: r.try_get(0)?,
                operation: r.try_get(1)?,
                outcome: r.try_get(2)?,
                error: r.try_get(3)?,
                started_at_ms: r.try_get(4)?,
                duration_ms: r.try_get(5)?,
            })
        })
        .collect()
    }

    /// Records the upstream's acceptance of a job and releases the lease. Returns the job as
    /// stored, or `None` when it was no longer this owner's running job.
    pub async fn mark_submitted(
        &self,
        id: &VideoId,
        owner: &str,
        provider: &str,
        upstream_id: &str,
        due: Due,
        cost: Option<&ReportedCost>,
    ) -> Result<Option<Video>, sqlx::Error> {
        let now = now_ms();
        let Due {
            at: next_run_at,
            cause,
            requests,
            ..
        } = due;
        let mut writer = self.hot_writer().await?;
        let row = sql::query(format!(
            "UPDATE videos SET status = 'in_progress', provider = $1, upstream_id = $2, submitted_at = $3, \
             updated_at = $3, next_run_at = $4, lease_owner = NULL, lease_until = NULL, \
             upstream_cost = COALESCE($7, upstream_cost), upstream_cost_micro_usd = COALESCE($8, upstream_cost_micro_usd), \
             poll_cause = $9, webhook_at = NULL, upstream_requests = upstream_requests + $10 \
             WHERE id = $5 AND lease_owner = $6 AND {RUNNING} RETURNING *"
        ))
        .bind(provider)
        .bind(upstream_id)
        .bind(now)
        .bind(next_run_at)
        .bind(id.as_str())
        .bind(owner)
        .bind(cost.map(|c| c.raw.as_str()))
        .bind(cost.and_then(|c| c.micro_usd))
        .bind(cause.as_str())
        .bind(requests)
        .fetch_optional(&mut writer.exec())
        .await?;
        row.map(|r| video_from_row(&r)).transpose()
    }

    /// Puts a leased job back to wait until its next due time, recording its progress and the
    /// `requests` just made upstream for it. When a webhook arrived while the job was leased
    /// (after `step_started`), the job is due for its confirmation instead, once `min_interval_ms`
    /// has passed.
    pub async fn reschedule(
        &self,
        id: &VideoId,
        owner: &str,
        due: Due,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE videos SET progress = COALESCE($1, progress), updated_at = $3, \
             next_run_at = CASE WHEN webhook_at >= $7 THEN $3 + $8 ELSE $2 END, \
             poll_cause = CASE WHEN webhook_at >= $7 THEN 'webhook' ELSE $9 END, \
             attempts = attempts + $4, upstream_requests = upstream_requests + $10, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND lease_owner = $6 AND {RUNNING}"
        ))
        .bind(due.progress)
        .bind(due.at)
        .bind(now)
        .bind(i64::from(due.count_attempt))
        .bind(id.as_str())
        .bind(owner)
        .bind(due.step_started)
        .bind(due.min_interval_ms)
        .bind(due.cause.as_str())
        .bind(due.requests)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a leased running job to `completed`; false when it is no longer running or leased.
    pub async fn mark_completed(
        tx: &mut Tx,
        id: &VideoId,
        owner: &str,
        output_url: &str,
        charged: Credits,
        expires_at: i64,
        cost: Option<&ReportedCost>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE videos SET status = 'completed', progress = 100, output_url = $1, cost_charged = $2, \
             completed_at = $3, updated_at = $3, expires_at = $4, lease_owner = NULL, lease_until = NULL, \
             upstream_cost = COALESCE($7, upstream_cost), upstream_cost_micro_usd = COALESCE($8, upstream_cost_micro_usd), \
             upstream_requests = upstream_requests + 1 \
             WHERE id = $5 AND lease_owner = $6 AND {RUNNING} {FINISHED}, upstream_requests"
        ))
        .bind(output_url)
        .bind(charged.get())
        .bind(now)
        .bind(expires_at)
        .bind(id.as_str())
        .bind(owner)
        .bind(cost.map(|c| c.raw.as_str()))
        .bind(cost.and_then(|c| c.micro_usd))
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = done else {
            return Ok(None);
        };
        let finished = finished_from_row(&row)?;
        let requests: i64 = row.try_get("upstream_requests")?;
        // The day's credits now count the charge instead of the hold.
        Self::count_finished_job(
            tx,
            &finished,
            charged.get().saturating_sub(finished.cost_reserved),
            0,
        )
        .await?;
        Self::release_slot(tx, id).await?;
        Ok(Some(requests))
    }

    /// Moves a running job to `failed` or `canceled`. With `owner`, only while leased to it;
    /// with `tenant`, only that tenant's job.
    pub async fn mark_ended(
        tx: &mut Tx,
        id: &VideoId,
        status: VideoStatus,
        error: Option<&JobError>,
        owner: Option<&str>,
        tenant: Option<&TenantId>,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE videos SET status = $1, error_code = $2, error_message = $3, cost_charged = 0, \
             completed_at = $4, updated_at = $4, lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND {RUNNING} AND ($6 IS NULL OR lease_owner = $6) AND ($7 IS NULL OR tenant_id = $7) {FINISHED}"
        ))
        .bind(status.as_str())
        .bind(error.map(|e| e.code.as_str()))
        .bind(error.map(|e| e.message.as_str()))
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .bind(tenant.map(TenantId::as_str))
        .fetch_optional(&mut **tx)
        .await?;
        let Some(finished) = done.as_ref().map(finished_from_row).transpose()? else {
            return Ok(false);
        };
        // A failed or canceled job counts neither its hold nor its seconds.
        Self::count_finished_job(tx, &finished, -finished.cost_reserved, -finished.seconds).await?;
        Self::release_slot(tx, id).await?;
        Ok(true)
    }

    /// Hides a finished video from every read.
    pub async fn soft_delete_video(
        &self,
        tenant: &TenantId,
        id: &VideoId,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE videos SET deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL AND NOT ({RUNNING})"
        ))
        .bind(now)
        .bind(id.as_str())
        .bind(tenant.as_str())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Running jobs created before `created_before`, oldest first.
    pub async fn overdue_jobs(
        &self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<Video>, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT * FROM videos WHERE {RUNNING} AND created_at < $1 ORDER BY created_at LIMIT $2"
        ))
        .bind(created_before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(video_from_row)
        .collect()
    }

    /// Counts of jobs by status (for tests and the operator).
    pub async fn count_running_jobs(&self) -> Result<i64, sqlx::Error> {
        sqlx::query(&format!("SELECT COUNT(*) FROM videos WHERE {RUNNING}"))
            .fetch_one(self.pool())
            .await?
            .try_get(0)
    }
}

/// Shared state the metrics endpoint reports: jobs by provider and state, the queue and the
/// credits on hold.
#[derive(Debug, Default)]
pub struct JobGauges {
    pub running: Vec<(String, String, i64)>,
    pub queued: i64,
    pub oldest_queued_ms: Option<i64>,
    pub credits_held: i64,
}

impl Db {
    pub async fn job_gauges(&self) -> Result<JobGauges, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT COALESCE(provider, 'none') AS provider, status, COUNT(*) AS n \
             FROM videos WHERE {RUNNING} GROUP BY provider, status"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut gauges = JobGauges::default();
        for row in rows {
            gauges.running.push((
                row.try_get("provider")?,
                row.try_get("status")?,
                row.try_get("n")?,
            ));
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM videos WHERE status = 'queued'",
        )
        .fetch_one(&self.pool)
        .await?;
        gauges.queued = row.try_get("n")?;
        gauges.oldest_queued_ms = row.try_get("oldest")?;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS held FROM holds WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        gauges.credits_held = row.try_get("held")?;
        Ok(gauges)
    }
}

/// A completed output waiting to be copied to the gateway's storage.
#[derive(Debug, Clone)]
pub struct ArchiveTask {
    pub video_id: String,
    pub output_url: String,
    pub attempts: i64,
}

impl Db {
    /// Marks a just-completed job's output for copying, in the completion's transaction.
    pub async fn queue_archive(tx: &mut Tx, video: &VideoId) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE videos SET archive_state = 'pending', archive_next_at = $1 WHERE id = $2",
        )
        .bind(now_ms())
        .bind(video.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Takes up to `limit` due copies; each is pushed `lease_ms` into the future first, so
    /// another replica does not take it while this one copies.
    pub async fn claim_archive_tasks(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ArchiveTask>, sqlx::Error> {
        let due: Vec<(String, i64)> = sqlx::query(
            "SELECT id, archive_next_at FROM videos WHERE archive_state = 'pending' \
             AND archive_next_at <= $1 ORDER BY archive_next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("archive_next_at")?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let mut claimed = Vec::new();
        for (id, due_at) in due {
            let row = sqlx::query(
                "UPDATE videos SET archive_next_at = $1 WHERE id = $2 AND archive_state = 'pending' \
                 AND archive_next_at = $3 RETURNING output_url, archive_attempts",
            )
            .bind(now + lease_ms)
            .bind(&id)
            .bind(due_at)
            .fetch_optional(self.writer())
            .await?;
            if let Some(row) = row {
                let output_url: Option<String> = row.try_get("output_url")?;
                claimed.push(ArchiveTask {
                    video_id: id,
                    output_url: output_url.unwrap_or_default(),
                    attempts: row.try_get("archive_attempts")?,
                });
            }
        }
        Ok(claimed)
    }

    /// Records the outcome of a copy: `stored` (with its key and size), `pending` again at
    /// `retry_at`, or `failed`. A video deleted meanwhile keeps its `deleted` state.
    pub async fn finish_archive(
        &self,
        video: &str,
        state: &str,
        key: Option<&str>,
        bytes: Option<i64>,
        retry_at: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE videos SET archive_state = $1, archive_key = $2, archive_bytes = $3, \
             archive_attempts = archive_attempts + 1, archive_next_at = $4 \
             WHERE id = $5 AND archive_state = 'pending'",
        )
        .bind(state)
        .bind(key)
        .bind(bytes)
        .bind(retry_at)
        .bind(video)
        .execute(self.writer())
        .await?
        .rows_affected()
            == 1)
    }

    /// Stored outputs past their `expires_at`, or of deleted videos, whose files must go.
    pub async fn archives_to_remove(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, bool)>, sqlx::Error> {
        sqlx::query(
            "SELECT id, archive_key, deleted_at FROM videos WHERE archive_state = 'stored' \
             AND (expires_at < $1 OR deleted_at IS NOT NULL) LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let deleted: Option<i64> = r.try_get("deleted_at")?;
            Ok((
                r.try_get("id")?,
                r.try_get::<Option<String>, _>("archive_key")?
                    .unwrap_or_default(),
                deleted.is_some(),
            ))
        })
        .collect()
    }

    pub async fn set_archive_state(&self, video: &str, state: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE videos SET archive_state = $1 WHERE id = $2")
            .bind(state)
            .bind(video)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
