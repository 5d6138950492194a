//! SQL for the archive queue: completed outputs waiting to be copied to the gateway's
//! storage, the outcome of each copy, and stored copies due for removal.

use super::sql::{self, Get};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::VideoId;
use crate::types::video::ArchiveState;

/// A completed output waiting to be copied to the gateway's storage.
#[derive(Debug, Clone)]
pub struct ArchiveTask {
    pub video_id: String,
    pub output_url: String,
    pub attempts: i64,
}

impl Db {
    /// Marks a just-completed job's output for copying, in the completion's transaction.
    pub async fn queue_archive(tx: &mut Tx, video: &VideoId) -> Result<(), DbError> {
        sql::query(
            "UPDATE videos SET archive_state = 'pending', archive_next_at = $1 WHERE id = $2",
        )
        .bind(now_ms())
        .bind(video.as_str())
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Takes up to `limit` due copies; each is pushed `lease_ms` into the future first, so
    /// another replica does not take it while this one copies. That lease is the copy's due
    /// time, on the replica's clock, which is set to the database's (`crate::clock`); the
    /// claim itself is a compare-and-set on it, so two replicas never take one copy at once.
    pub async fn claim_archive_tasks(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ArchiveTask>, DbError> {
        let due: Vec<(String, i64)> = sql::query(
            "SELECT id, archive_next_at FROM videos WHERE archive_state = 'pending' \
             AND archive_next_at <= $1 ORDER BY archive_next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| Ok((r.col("id")?, r.col("archive_next_at")?)))
        .collect::<Result<_, DbError>>()?;
        let mut claimed = Vec::new();
        for (id, due_at) in due {
            let row = sql::query(
                "UPDATE videos SET archive_next_at = $1 WHERE id = $2 AND archive_state = 'pending' \
                 AND archive_next_at = $3 RETURNING output_url, archive_attempts",
            )
            .bind(now + lease_ms)
            .bind(&id)
            .bind(due_at)
            .fetch_optional(&mut self.write().await?)
            .await?;
            if let Some(row) = row {
                let output_url: Option<String> = row.col("output_url")?;
                claimed.push(ArchiveTask {
                    video_id: id,
                    output_url: output_url.unwrap_or_default(),
                    attempts: row.col("archive_attempts")?,
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
        state: ArchiveState,
        key: Option<&str>,
        bytes: Option<i64>,
        retry_at: Option<i64>,
    ) -> Result<bool, DbError> {
        Ok(sql::query(
            "UPDATE videos SET archive_state = $1, archive_key = $2, archive_bytes = $3, \
             archive_attempts = archive_attempts + 1, archive_next_at = $4 \
             WHERE id = $5 AND archive_state = 'pending'",
        )
        .bind(state.as_str())
        .bind(key)
        .bind(bytes)
        .bind(retry_at)
        .bind(video)
        .execute(&mut self.write().await?)
        .await?
            == 1)
    }

    /// Stored outputs past their `expires_at`, or of deleted videos, whose files must go.
    pub async fn archives_to_remove(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, bool)>, DbError> {
        sql::query(
            "SELECT id, archive_key, deleted_at FROM videos WHERE archive_state = 'stored' \
             AND (expires_at < $1 OR deleted_at IS NOT NULL) LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| {
            let deleted: Option<i64> = r.col("deleted_at")?;
            Ok((
                r.col("id")?,
                r.col::<Option<String>>("archive_key")?.unwrap_or_default(),
                deleted.is_some(),
            ))
        })
        .collect()
    }

    /// Records that a stored or pending copy is gone: `expired` or `deleted`.
    pub async fn set_archive_state(&self, video: &str, state: ArchiveState) -> Result<(), DbError> {
        sql::query("UPDATE videos SET archive_state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(video)
            .execute(&mut self.write().await?)
            .await?;
        Ok(())
    }
}
