//! SQL for the record of calls made upstream for each job: writing one, a job's attempts for
//! the operator, and the submits whose answer was lost (possible orphans upstream).

use super::sql::{self, Get};
use super::Db;
use crate::domain::admin::AttemptRow;
use crate::domain::ids::{ProviderId, VideoId};

/// One call to an upstream for a job, for the operator's view of its attempts.
pub struct Attempt<'a> {
    pub video: &'a VideoId,
    pub provider: ProviderId,
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

impl Db {
    pub async fn record_attempt(
        &self,
        attempt: &Attempt<'_>,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
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

    /// A job's recorded upstream attempts, oldest first.
    pub async fn attempts_for_video(&self, id: &VideoId) -> Result<Vec<AttemptRow>, sqlx::Error> {
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
    /// and may bill it), oldest first: video, tenant, provider, when, and why.
    pub async fn possible_orphans(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<PossibleOrphan>, sqlx::Error> {
        sql::query(
            "SELECT a.video_id, v.tenant_id, a.provider, a.started_at, a.error, v.request \
             FROM job_attempts a JOIN videos v ON v.id = a.video_id \
             WHERE a.operation = 'submit' AND a.outcome = 'unknown' \
               AND a.started_at >= $1 AND a.started_at < $2 \
             ORDER BY a.seq LIMIT $3",
        )
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
