//! SQL for the gauges the metrics endpoint reports: running jobs by provider and state, the
//! queue, and the credits on hold.

use super::sql::{self, Get};
use super::videos::status_in;
use super::{Db, DbError};
use crate::types::video::VideoStatus;

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
    /// The gauges, counting jobs in one of `running` by provider and status, and jobs in one
    /// of `waiting` as the queue.
    pub async fn job_gauges(
        &self,
        running: &[VideoStatus],
        waiting: &[VideoStatus],
    ) -> Result<JobGauges, DbError> {
        let rows = sql::query(format!(
            "SELECT COALESCE(provider, 'none') AS provider, status, COUNT(*) AS n \
             FROM videos WHERE {} GROUP BY provider, status",
            status_in("status", running)
        ))
        .fetch_all(&mut self.scan())
        .await?;
        let mut gauges = JobGauges::default();
        for row in rows {
            gauges
                .running
                .push((row.col("provider")?, row.col("status")?, row.col("n")?));
        }
        let row = sql::query(format!(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM videos WHERE {}",
            status_in("status", waiting)
        ))
        .fetch_one(&mut self.scan())
        .await?;
        gauges.queued = row.col("n")?;
        gauges.oldest_queued_ms = row.col("oldest")?;
        let row = sql::query(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS held FROM holds WHERE state = 'pending'",
        )
        .fetch_one(&mut self.scan())
        .await?;
        gauges.credits_held = row.col("held")?;
        Ok(gauges)
    }
}
