//! SQL for the provider webhook deliveries a job has received, kept so that a replayed
//! delivery is recognised (see `domain::provider_webhooks`).

use super::sql;
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::VideoId;

impl Db {
    /// Remembers that `delivery` arrived for a job; false when it had arrived before.
    pub async fn remember_webhook_delivery(
        tx: &mut Tx,
        video: &VideoId,
        delivery: &str,
    ) -> Result<bool, DbError> {
        let inserted = sql::query(
            "INSERT INTO provider_webhook_deliveries (video_id, delivery, received_at) \
             VALUES ($1, $2, $3) ON CONFLICT (video_id, delivery) DO NOTHING",
        )
        .bind(video.as_str())
        .bind(delivery)
        .bind(now_ms())
        .execute(tx)
        .await?;
        Ok(inserted == 1)
    }
}
