//! SQL for how fast providers are: the moving average time to completion per provider and
//! model (for routing by speed), and per provider, model and length (for the safety poll of
//! jobs whose provider gives no estimate).

use super::sql;
use super::{Db, DbError, Tx};
use crate::types::ids::ProviderId;

impl Db {
    /// Folds one job's time to completion into its provider's moving average.
    pub async fn record_speed(
        tx: &mut Tx,
        provider: ProviderId,
        model: &str,
        elapsed_ms: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO provider_speed (provider, model, ewma_ms, samples) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (provider, model) DO UPDATE SET \
               ewma_ms = provider_speed.ewma_ms + (excluded.ewma_ms - provider_speed.ewma_ms) / 8, \
               samples = provider_speed.samples + 1",
        )
        .bind(provider)
        .bind(model)
        .bind(elapsed_ms.max(0))
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The moving average time to completion of each provider for a model, in milliseconds.
    pub async fn provider_speeds(&self, model: &str) -> Result<Vec<(String, i64)>, DbError> {
        sql::query("SELECT provider, ewma_ms FROM provider_speed WHERE model = $1")
            .bind(model)
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(|r| Ok((r.at(0)?, r.at(1)?)))
            .collect()
    }

    /// Records how long a job of this provider, model and length took from submit to
    /// completion, for the safety poll of jobs whose provider gives no estimate.
    pub async fn record_duration(
        tx: &mut Tx,
        provider: ProviderId,
        model: &str,
        seconds: i64,
        elapsed_ms: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO job_durations (provider, model, seconds, ewma_ms, samples) VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (provider, model, seconds) DO UPDATE SET \
               ewma_ms = job_durations.ewma_ms + (excluded.ewma_ms - job_durations.ewma_ms) / 8, \
               samples = job_durations.samples + 1",
        )
        .bind(provider)
        .bind(model)
        .bind(seconds)
        .bind(elapsed_ms.max(0))
        .execute(tx)
        .await?;
        Ok(())
    }

    /// The observed time from submit to completion of jobs of this provider, model and length
    /// (see [`Db::record_duration`]), in milliseconds.
    pub async fn expected_duration(
        &self,
        provider: ProviderId,
        model: &str,
        seconds: i64,
    ) -> Result<Option<i64>, DbError> {
        let row = sql::query(
            "SELECT ewma_ms FROM job_durations WHERE provider = $1 AND model = $2 AND seconds = $3",
        )
        .bind(provider)
        .bind(model)
        .bind(seconds)
        .fetch_optional(&mut self.read()?)
        .await?;
        row.map(|r| r.at::<i64>(0)).transpose()
    }
}
