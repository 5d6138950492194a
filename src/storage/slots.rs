//! SQL for the limits on what a provider is sent: its concurrency slots (taken by a job
//! being created or by a leased job, given back in the transaction that ends the job's claim)
//! and its submit rate (a GCRA token per submit).

use super::sql;
use super::videos::status_in;
use super::{Db, DbError, Tx};
use crate::types::ids::{ProviderId, VideoId};
use crate::types::video::VideoStatus;

impl Db {
    /// Takes a slot at `provider` for a leased job in one of `running`, if fewer than `limit`
    /// are in use.
    pub async fn acquire_slot(
        &self,
        id: &VideoId,
        owner: &str,
        running: &[VideoStatus],
        provider: ProviderId,
        limit: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        sql::query("INSERT INTO provider_slots (provider, in_use) VALUES ($1, 0) ON CONFLICT (provider) DO NOTHING")
            .bind(provider)
            .execute(&mut tx)
            .await?;
        let taken = sql::query(
            "UPDATE provider_slots SET in_use = in_use + 1 WHERE provider = $1 AND in_use < $2",
        )
        .bind(provider)
        .bind(limit)
        .execute(&mut tx)
        .await?
            == 1;
        if !taken {
            return Ok(false);
        }
        let held = sql::query(format!(
            "UPDATE videos SET slot_provider = $1 WHERE id = $2 AND lease_owner = $3 AND slot_provider IS NULL AND {}",
            status_in("status", running)
        ))
        .bind(provider)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut tx)
        .await?
            == 1;
        if !held {
            return Ok(false); // Dropping the transaction gives the slot back.
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Gives back the slot a job holds, if any, inside the transaction of the state change that
    /// ends the job's claim on it.
    pub(super) async fn free_slot(tx: &mut Tx, id: &VideoId) -> Result<(), DbError> {
        sql::query(
            "UPDATE provider_slots SET in_use = in_use - 1 \
             WHERE provider = (SELECT slot_provider FROM videos WHERE id = $1) AND in_use > 0",
        )
        .bind(id.as_str())
        .execute(tx)
        .await?;
        sql::query(
            "UPDATE videos SET slot_provider = NULL WHERE id = $1 AND slot_provider IS NOT NULL",
        )
        .bind(id.as_str())
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Gives back a leased job's slot, if it holds one (the state changes that end a job's
    /// claim give it back themselves).
    pub async fn release_slot(&self, id: &VideoId) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        Self::free_slot(&mut tx, id).await?;
        tx.commit().await
    }

    /// Slots in use at a provider (for the operator and tests).
    pub async fn slots_in_use(&self, provider: ProviderId) -> Result<i64, DbError> {
        let row = sql::query("SELECT in_use FROM provider_slots WHERE provider = $1")
            .bind(provider)
            .fetch_optional(&mut self.read()?)
            .await?;
        row.map(|r| r.at::<i64>(0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    /// How many jobs in one of `waiting` wait for `provider`, counted up to `up_to`; read in
    /// a creating transaction (see `domain::jobs::take_slot_for_new_job`).
    pub async fn jobs_waiting_for(
        tx: &mut Tx,
        provider: ProviderId,
        waiting: &[VideoStatus],
        up_to: i64,
    ) -> Result<i64, DbError> {
        sql::query(format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM videos WHERE {} AND provider = $1 LIMIT $2) w",
            status_in("status", waiting)
        ))
        .bind(provider)
        .bind(up_to)
        .fetch_one(tx)
        .await?
        .at(0)
    }

    /// Takes one of `provider`'s `limit` slots in a creating transaction, leaving `reserved`
    /// free slots untouched: taken only while `in_use + reserved < limit`. One statement
    /// takes the slot, so the count stays exact.
    pub async fn take_slot_leaving(
        tx: &mut Tx,
        provider: ProviderId,
        reserved: i64,
        limit: i64,
    ) -> Result<bool, DbError> {
        let taken = sql::query(
            "INSERT INTO provider_slots (provider, in_use) VALUES ($1, 1) \
             ON CONFLICT (provider) DO UPDATE SET in_use = provider_slots.in_use + 1 \
             WHERE provider_slots.in_use + $2 < $3 RETURNING in_use",
        )
        .bind(provider)
        .bind(reserved)
        .bind(limit)
        .fetch_optional(tx)
        .await?;
        Ok(taken.is_some())
    }

    /// Takes one submit from `provider`'s rate (GCRA: one submit every `interval_ms`, bursts of
    /// `burst`), atomically in one conditional update. False: wait.
    pub async fn take_submit_token(
        &self,
        provider: ProviderId,
        interval_ms: i64,
        burst: i64,
        now: i64,
    ) -> Result<bool, DbError> {
        sql::query("INSERT INTO provider_rate (provider, tat) VALUES ($1, 0) ON CONFLICT (provider) DO NOTHING")
            .bind(provider)
            .execute(&mut self.write().await?)
            .await?;
        let done = sql::query(
            "UPDATE provider_rate SET tat = (CASE WHEN tat > $1 THEN tat ELSE $1 END) + $2 \
             WHERE provider = $3 AND (CASE WHEN tat > $1 THEN tat ELSE $1 END) + $2 - $1 <= $4",
        )
        .bind(now)
        .bind(interval_ms)
        .bind(provider)
        .bind(interval_ms * burst.max(1))
        .execute(&mut self.write().await?)
        .await?;
        Ok(done == 1)
    }
}
