//! SQL for video jobs as records: storing a new one, tenant-scoped reads with cursor
//! pagination, reads by id or callback token for the workers and the operator, and soft
//! deletion. The one decoder of a video row lives here, and it reads every state column
//! strictly: a value the gateway does not know is an error, never a guess.

use super::sql::{self, Get};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::{ApiKeyId, ProviderId, TenantId, VideoId};
use crate::types::money::{Credits, MicroUsd, Mode};
use crate::types::video::{ArchiveState, JobError, PollCause, Video, VideoStatus};

/// `column IN ('a', 'b')` for the statuses a caller hands in: the compare-and-set guard of a
/// status change, or the set a reader counts. An empty set matches no row. One status is
/// written `column = 'a'`, so that SQLite uses the partial indexes declared that way
/// (`videos_queued`): it reads a one-item `IN` as another expression.
pub(super) fn status_in(column: &str, statuses: &[VideoStatus]) -> String {
    match statuses {
        [] => return "1 = 0".to_owned(),
        [one] => return format!("{column} = '{}'", one.as_str()),
        _ => {}
    }
    let list: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("{column} IN ({})", list.join(", "))
}

pub(super) fn video_from_row(row: &impl Get) -> Result<Video, DbError> {
    let request: String = row.col("request")?;
    let request = serde_json::from_str(&request).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let error_code: Option<String> = row.col("error_code")?;
    let error_message: Option<String> = row.col("error_message")?;
    Ok(Video {
        id: VideoId::from_db(row.col("id")?),
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        api_key_id: row
            .col::<Option<String>>("api_key_id")?
            .map(ApiKeyId::from_db),
        mode: row.state("mode", Mode::parse)?,
        request,
        status: row.state("status", VideoStatus::parse)?,
        progress: row.col("progress")?,
        provider: row.state_opt("provider", ProviderId::parse)?,
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
        upstream_estimate_micro: row
            .col::<Option<i64>>("upstream_estimate_micro")?
            .map(MicroUsd::from_stored),
        expires_at_ms: row.col("expires_at")?,
        archive_state: row.state_opt("archive_state", ArchiveState::parse)?,
        attempts: row.col("attempts")?,
        slot_provider: row.state_opt("slot_provider", ProviderId::parse)?,
        cost_ceiling_micro: row
            .col::<Option<i64>>("cost_ceiling_micro")?
            .map(MicroUsd::from_stored),
        cost_baseline_micro: row
            .col::<Option<i64>>("cost_baseline_micro")?
            .map(MicroUsd::from_stored),
        callback_token: row.col("callback_token")?,
        fallbacks: row.json_opt("fallbacks")?.unwrap_or_default(),
        upstream_cost: row.col("upstream_cost")?,
        upstream_cost_micro_usd: row
            .col::<Option<i64>>("upstream_cost_micro_usd")?
            .map(MicroUsd::from_stored),
        poll_cause: row.state("poll_cause", PollCause::parse)?,
        upstream_requests: row.col("upstream_requests")?,
    })
}

/// Which page of a tenant's videos to read: those of one mode, and of the end users the
/// caller may see (the domain's access rules say which).
pub struct ListQuery<'a> {
    pub tenant: &'a TenantId,
    pub mode: Mode,
    pub after: Option<&'a VideoId>,
    pub limit: i64,
    pub newest_first: bool,
    pub status: Option<VideoStatus>,
    pub user: UserFilter<'a>,
}

/// Whose videos a list may show: anyone's, one end user's, or no one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserFilter<'a> {
    Anyone,
    Only(&'a str),
    Nobody,
}

impl Db {
    /// Stores a new job, leased to `lease_owner` for `lease_ms` of the database's clock (see
    /// `storage::leases`): the request that creates a job submits it itself, and the worker
    /// takes it over only if that lease expires.
    pub async fn insert_video(
        tx: &mut Tx,
        video: &Video,
        next_run_at: i64,
        lease: Option<(&str, i64)>,
    ) -> Result<(), DbError> {
        let request =
            serde_json::to_string(&video.request).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let db_now = tx.backend().now_sql();
        sql::query(format!(
            "INSERT INTO videos (id, tenant_id, api_key_id, mode, model, user_id, request, status, \
             progress, provider, cost_reserved, created_at, updated_at, next_run_at, callback_token, \
             lease_owner, lease_until, fallbacks, cost_ceiling_micro, cost_baseline_micro, seconds, slot_provider) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11, $12, $13, $14, {db_now} + $15, $16, $17, $18, $19, $20)"
        ))
        .bind(video.id.as_str())
        .bind(video.tenant_id.as_str())
        .bind(video.api_key_id.as_ref().map(ApiKeyId::as_str))
        .bind(video.mode.as_str())
        .bind(video.request.model.id())
        .bind(video.request.user.as_ref().map(|u| u.as_str()))
        .bind(request)
        .bind(video.status.as_str())
        .bind(video.provider)
        .bind(video.cost_reserved.get())
        .bind(video.created_at_ms)
        .bind(next_run_at)
        .bind(video.callback_token.as_deref())
        .bind(lease.map(|(owner, _)| owner))
        .bind(lease.map(|(_, lease_ms)| lease_ms))
        .bind(serde_json::to_string(&video.fallbacks).ok())
        .bind(video.cost_ceiling_micro.map(MicroUsd::get))
        .bind(video.cost_baseline_micro.map(MicroUsd::get))
        .bind(video.request.seconds.get())
        .bind(video.slot_provider)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// A tenant's video; another tenant's id or a deleted video reads as absent.
    pub async fn get_video(
        &self,
        tenant: &TenantId,
        id: &VideoId,
    ) -> Result<Option<Video>, DbError> {
        let mut reader = self.read()?;
        sql::query("SELECT * FROM videos WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL")
            .bind(id.as_str())
            .bind(tenant.as_str())
            .fetch_optional(&mut reader)
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// Any video by id, for the workers and the operator.
    pub async fn get_video_any(&self, id: &VideoId) -> Result<Option<Video>, DbError> {
        sql::query("SELECT * FROM videos WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut self.read()?)
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// One page of a tenant's videos plus whether more follow. The cursor is a video id;
    /// an id that is not the tenant's reads as "not found" to the caller.
    pub async fn list_videos(
        &self,
        query: &ListQuery<'_>,
    ) -> Result<Option<(Vec<Video>, bool)>, DbError> {
        let cursor = match query.after {
            Some(after) => {
                let row = sql::query(
                    "SELECT seq FROM videos WHERE id = $1 AND tenant_id = $2 AND mode = $3",
                )
                .bind(after.as_str())
                .bind(query.tenant.as_str())
                .bind(query.mode.as_str())
                .fetch_optional(&mut self.read()?)
                .await?;
                match row {
                    Some(row) => Some(row.at::<i64>(0)?),
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
        let mut sql = String::from(
            "SELECT * FROM videos WHERE tenant_id = $1 AND mode = $2 AND deleted_at IS NULL",
        );
        let mut n = 2;
        if cursor.is_some() {
            n += 1;
            sql.push_str(&format!(" AND seq {cmp} ${n}"));
        }
        if query.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        let user = match query.user {
            UserFilter::Only(user) => Some(user),
            UserFilter::Anyone => None,
            UserFilter::Nobody => return Ok(Some((Vec::new(), false))),
        };
        if user.is_some() {
            n += 1;
            sql.push_str(&format!(" AND user_id = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY seq {order} LIMIT ${}", n + 1));
        let mut q = sql::query(sql)
            .bind(query.tenant.as_str())
            .bind(query.mode.as_str());
        if let Some(seq) = cursor {
            q = q.bind(seq);
        }
        if let Some(status) = query.status {
            q = q.bind(status.as_str());
        }
        if let Some(user) = user {
            q = q.bind(user);
        }
        let rows = q.bind(query.limit + 1).fetch_all(&mut self.scan()).await?;
        let has_more = rows.len() as i64 > query.limit;
        let videos = rows
            .iter()
            .take(query.limit as usize)
            .map(video_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((videos, has_more)))
    }

    /// The job whose provider callback URL carries `token`.
    pub async fn video_by_callback_token(&self, token: &str) -> Result<Option<Video>, DbError> {
        sql::query("SELECT * FROM videos WHERE callback_token = $1")
            .bind(token)
            .fetch_optional(&mut self.read()?)
            .await?
            .map(|r| video_from_row(&r))
            .transpose()
    }

    /// The catalog's estimate of a completed job's upstream cost, for the savings report.
    pub async fn record_estimate(
        tx: &mut Tx,
        id: &VideoId,
        micro_usd: MicroUsd,
    ) -> Result<(), DbError> {
        sql::query("UPDATE videos SET upstream_estimate_micro = $1 WHERE id = $2")
            .bind(micro_usd.get())
            .bind(id.as_str())
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Hides a video from every read, only while its status is one of `finished`.
    pub async fn soft_delete_video(
        &self,
        tenant: &TenantId,
        id: &VideoId,
        finished: &[VideoStatus],
    ) -> Result<bool, DbError> {
        let now = now_ms();
        let done = sql::query(format!(
            "UPDATE videos SET deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL AND {}",
            status_in("status", finished)
        ))
        .bind(now)
        .bind(id.as_str())
        .bind(tenant.as_str())
        .execute(&mut self.write().await?)
        .await?;
        Ok(done == 1)
    }

    /// Jobs in one of `running` created before `created_before`, oldest first.
    pub async fn overdue_jobs(
        &self,
        running: &[VideoStatus],
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<Video>, DbError> {
        sql::query(format!(
            "SELECT * FROM videos WHERE {} AND created_at < $1 ORDER BY created_at LIMIT $2",
            status_in("status", running)
        ))
        .bind(created_before)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(video_from_row)
        .collect()
    }

    /// How many jobs are in one of `statuses` (for tests and the operator).
    pub async fn count_jobs_in(&self, statuses: &[VideoStatus]) -> Result<i64, DbError> {
        sql::query(format!(
            "SELECT COUNT(*) FROM videos WHERE {}",
            status_in("status", statuses)
        ))
        .fetch_one(&mut self.scan())
        .await?
        .at(0)
    }
}
