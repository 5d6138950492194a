//! SQL for the record of calls made upstream for each job: writing one, a submit's intent
//! (written before the call and completed after it), a job's attempts for the operator, and the
//! submits whose answer was lost (possible orphans upstream).

use super::sql::{self, Get};
use super::videos::status_in;
use super::{Db, DbError};
use crate::types::ids::{ProviderId, VideoId};
use crate::types::video::VideoStatus;

/// One call to an upstream for a job, for the operator's view of its attempts.
pub struct Attempt<'a> {
    pub video: &'a VideoId,
    pub provider: ProviderId,
    pub operation: &'a str,
    pub started_at: i64,
    pub duration_ms: i64,
}

/// The outcome of a submit's intent until its answer is recorded.
const SENT: &str = "sent";

/// A submit written before it was sent whose answer was never recorded: the step that sent it
/// crashed or lost its lease while the call was in flight.
pub struct OpenIntent {
    pub seq: i64,
    pub provider: String,
    /// The reference the provider saw (its idempotency key), if the adapter sends one.
    pub client_ref: Option<String>,
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

impl Db {
    pub async fn record_attempt(
        &self,
        attempt: &Attempt<'_>,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        let mut writer = self.write().await?;
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
        .execute(&mut writer)
        .await?;
        Ok(())
    }

    /// Writes a submit's intent before the call: an attempt with outcome `sent` and the client
    /// reference the provider will see. Returns its sequence number, for [`Db::settle_intent`].
    pub async fn record_intent(
        &self,
        attempt: &Attempt<'_>,
        client_ref: Option<&str>,
    ) -> Result<i64, DbError> {
        let mut writer = self.write().await?;
        sql::query(
            "INSERT INTO job_attempts (video_id, provider, operation, outcome, client_ref, started_at, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING seq",
        )
        .bind(attempt.video.as_str())
        .bind(attempt.provider)
        .bind(attempt.operation)
        .bind(SENT)
        .bind(client_ref)
        .bind(attempt.started_at)
        .fetch_one(&mut writer)
        .await?
        .at(0)
    }

    /// Records a submit's answer on its intent. False when the intent was no longer open: the
    /// job was taken by another step meanwhile, which counted this submit as a lost answer; the
    /// upstream job it made (if any) is still noted on it.
    pub async fn settle_intent(
        &self,
        seq: i64,
        outcome: &str,
        error: Option<&str>,
        duration_ms: i64,
        upstream_id: Option<&str>,
    ) -> Result<bool, DbError> {
        let mut writer = self.write().await?;
        let settled = sql::query(
            "UPDATE job_attempts SET outcome = $1, error = $2, duration_ms = $3, upstream_id = $4 \
             WHERE seq = $5 AND outcome = $6",
        )
        .bind(outcome)
        .bind(error)
        .bind(duration_ms)
        .bind(upstream_id)
        .bind(seq)
        .bind(SENT)
        .execute(&mut writer)
        .await?;
        if settled == 1 {
            return Ok(true);
        }
        sql::query(
            "UPDATE job_attempts SET upstream_id = $1 WHERE seq = $2 AND upstream_id IS NULL",
        )
        .bind(upstream_id)
        .bind(seq)
        .execute(&mut writer)
        .await?;
        Ok(false)
    }

    /// A job's submits written before their call whose answer was never recorded, oldest first.
    pub async fn open_intents(&self, id: &VideoId) -> Result<Vec<OpenIntent>, DbError> {
        sql::query(
            "SELECT seq, provider, client_ref FROM job_attempts \
             WHERE video_id = $1 AND operation = 'submit' AND outcome = $2 ORDER BY seq",
        )
        .bind(id.as_str())
        .bind(SENT)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| {
            Ok(OpenIntent {
                seq: r.at(0)?,
                provider: r.at(1)?,
                client_ref: r.at(2)?,
            })
        })
        .collect()
    }

    /// Marks an open intent as a lost answer (`outcome`), guarded like [`Db::settle_intent`]:
    /// false when its own step recorded the answer first.
    pub async fn close_intent(
        &self,
        seq: i64,
        outcome: &str,
        error: &str,
    ) -> Result<bool, DbError> {
        let closed = sql::query(
            "UPDATE job_attempts SET outcome = $1, error = $2 WHERE seq = $3 AND outcome = $4",
        )
        .bind(outcome)
        .bind(error)
        .bind(seq)
        .bind(SENT)
        .execute(&mut self.write().await?)
        .await?;
        Ok(closed == 1)
    }

    /// A job's recorded upstream attempts, oldest first.
    pub async fn attempts_for_video(&self, id: &VideoId) -> Result<Vec<AttemptRow>, DbError> {
        sql::query(
            "SELECT provider, operation, outcome, error, started_at, duration_ms FROM job_attempts \
             WHERE video_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRow {
                provider: r.at(0)?,
                operation: r.at(1)?,
                outcome: r.at(2)?,
                error: r.at(3)?,
                started_at_ms: r.at(4)?,
                duration_ms: r.at(5)?,
            })
        })
        .collect()
    }

    /// Submits whose answer was lost (the upstream may have made a job the gateway never saw,
    /// and may bill it), oldest first: video, tenant, provider, when, and why. An intent still
    /// open on a job that has ended (in one of `finished`: no step took the job again to
    /// close it) is one too.
    pub async fn possible_orphans(
        &self,
        finished: &[VideoStatus],
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<PossibleOrphan>, DbError> {
        sql::query(format!(
            "SELECT a.video_id, v.tenant_id, a.provider, a.started_at, a.error, v.request \
             FROM job_attempts a JOIN videos v ON v.id = a.video_id \
             WHERE a.operation = 'submit' \
               AND (a.outcome = 'unknown' OR (a.outcome = '{SENT}' AND {})) \
               AND a.started_at >= $1 AND a.started_at < $2 \
             ORDER BY a.seq LIMIT $3",
            status_in("v.status", finished)
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|row| {
            let request: String = row.col("request")?;
            Ok(PossibleOrphan {
                video_id: row.col("video_id")?,
                tenant_id: row.col("tenant_id")?,
                provider: row.col("provider")?,
                attempted_at_ms: row.col("started_at")?,
                error: row.col("error")?,
                request: serde_json::from_str(&request)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        })
        .collect()
    }
}
