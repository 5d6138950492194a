//! SQL for idempotency keys: the key of a request, what it created and its stored answer.

use super::sql;
use super::{Db, DbError, Tx};

/// The answer of a key's first request, replayed as it was: status, body and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// An idempotency key as stored.
pub struct IdempotencyRow {
    pub request_hash: String,
    pub video_id: Option<String>,
    pub created_at: i64,
    pub answer: Option<StoredAnswer>,
}

impl Db {
    /// The live (unexpired) row for a key; an expired one is removed.
    pub async fn idempotency_row(
        &self,
        scope: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRow>, DbError> {
        // Read first: a fresh key (the usual case) then costs no write at all.
        let row = sql::query(
            "SELECT request_hash, status_code, response_body, response_headers, expires_at, \
             video_id, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&mut self.read()?)
        .await?;
        let row = match row {
            Some(row) if row.at::<i64>(4)? <= now => {
                sql::query(
                    "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= $3",
                )
                .bind(scope)
                .bind(key)
                .bind(now)
                .execute(&mut self.write().await?)
                .await?;
                None
            }
            other => other,
        };
        let Some(row) = row else { return Ok(None) };
        let status: Option<i64> = row.at(1)?;
        let body: Option<String> = row.at(2)?;
        let headers: Option<String> = row.at(3)?;
        let answer = match (status, body) {
            (Some(status), Some(body)) => Some(StoredAnswer {
                status: u16::try_from(status).unwrap_or(500),
                body,
                headers: headers
                    .and_then(|h| serde_json::from_str(&h).ok())
                    .unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(Some(IdempotencyRow {
            request_hash: row.at(0)?,
            video_id: row.at(5)?,
            created_at: row.at(6)?,
            answer,
        }))
    }

    pub async fn insert_idempotency_key(
        tx: &mut Tx,
        scope: &str,
        key: &str,
        hash: &str,
        video_id: Option<&str>,
        now: i64,
        ttl_ms: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, video_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope)
        .bind(key)
        .bind(hash)
        .bind(video_id)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Stores the answer of a key's first request, if the key exists and has none yet.
    pub async fn store_idempotent_answer(
        &self,
        scope: &str,
        key: &str,
        answer: &StoredAnswer,
    ) -> Result<(), DbError> {
        sql::query(
            "UPDATE idempotency_keys SET status_code = $1, response_body = $2, response_headers = $3 \
             WHERE scope = $4 AND key = $5 AND status_code IS NULL",
        )
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(serde_json::to_string(&answer.headers).ok())
        .bind(scope)
        .bind(key)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }
}
