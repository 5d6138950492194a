//! SQL for tenant webhooks: endpoints, the outbox of messages with leased claims (so each
//! message is sent by one replica at a time), and the attempt log.

use super::sql::{self, Get};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::{TenantId, VideoId};
use crate::types::money::Mode;

/// A tenant's webhook endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: TenantId,
    /// The endpoint receives the events of this mode's videos only.
    pub mode: Mode,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
}

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    Pending,
    Delivered,
    Failed,
    Canceled,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Delivered => "delivered",
            MessageState::Failed => "failed",
            MessageState::Canceled => "canceled",
        }
    }

    pub fn parse(raw: &str) -> MessageState {
        match raw {
            "delivered" => MessageState::Delivered,
            "failed" => MessageState::Failed,
            "canceled" => MessageState::Canceled,
            _ => MessageState::Pending,
        }
    }
}

/// One outbox message: an event for one target.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub tenant_id: TenantId,
    /// Its video's mode: it is signed with that mode's secret and listed to that mode.
    pub mode: Mode,
    pub endpoint_id: Option<String>,
    pub url: Option<String>,
    pub event_type: String,
    pub video_id: String,
    pub payload: Option<String>,
    pub event_at: i64,
    pub state: MessageState,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempted_at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the response body, for the tenant's debugging.
    pub response: Option<String>,
}

fn endpoint_from_row(row: &impl Get) -> Result<Endpoint, DbError> {
    let events: String = row.col("events")?;
    Ok(Endpoint {
        id: row.col("id")?,
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        mode: row.state("mode", Mode::parse)?,
        url: row.col("url")?,
        description: row.col("description")?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        secret: row.col("secret")?,
        previous_secret: row.col("previous_secret")?,
        previous_expires_at: row.col("previous_expires_at")?,
        disabled_at: row.col("disabled_at")?,
        disabled_reason: row.col("disabled_reason")?,
        created_at: row.col("created_at")?,
    })
}

fn message_from_row(row: &impl Get) -> Result<Message, DbError> {
    Ok(Message {
        id: row.col("id")?,
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        mode: row.state("mode", Mode::parse)?,
        endpoint_id: row.col("endpoint_id")?,
        url: row.col("url")?,
        event_type: row.col("event_type")?,
        video_id: row.col("video_id")?,
        payload: row.col("payload")?,
        event_at: row.col("event_at")?,
        // `MessageState::parse` reads an unknown state as pending; the round trip refuses it.
        state: row.state("state", |raw| {
            Some(MessageState::parse(raw)).filter(|state| state.as_str() == raw)
        })?,
        attempts: row.col("attempts")?,
        next_attempt_at: row.col("next_attempt_at")?,
        last_status: row.col("last_status")?,
        last_error: row.col("last_error")?,
        delivered_at: row.col("delivered_at")?,
        created_at: row.col("created_at")?,
    })
}

impl Db {
    pub async fn insert_webhook_endpoint(&self, endpoint: &Endpoint) -> Result<(), DbError> {
        sql::query(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, secret, created_at, mode) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&endpoint.id)
        .bind(endpoint.tenant_id.as_str())
        .bind(&endpoint.url)
        .bind(&endpoint.description)
        .bind(endpoint.events.join(","))
        .bind(&endpoint.secret)
        .bind(endpoint.created_at)
        .bind(endpoint.mode.as_str())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    /// A tenant's endpoints of one mode, or of both.
    pub async fn webhook_endpoints(
        &self,
        tenant: &TenantId,
        mode: Option<Mode>,
    ) -> Result<Vec<Endpoint>, DbError> {
        sql::query(
            "SELECT * FROM webhook_endpoints WHERE tenant_id = $1 AND ($2 IS NULL OR mode = $2) \
             ORDER BY created_at, id",
        )
        .bind(tenant.as_str())
        .bind(mode.map(Mode::as_str))
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    /// The endpoint, only if it belongs to `tenant` (and to `mode`, when one is given).
    pub async fn webhook_endpoint(
        &self,
        tenant: &TenantId,
        mode: Option<Mode>,
        id: &str,
    ) -> Result<Option<Endpoint>, DbError> {
        sql::query(
            "SELECT * FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 AND ($3 IS NULL OR mode = $3)",
        )
        .bind(id)
        .bind(tenant.as_str())
        .bind(mode.map(Mode::as_str))
            .fetch_optional(&mut self.read()?)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    pub async fn webhook_endpoint_by_id(&self, id: &str) -> Result<Option<Endpoint>, DbError> {
        sql::query("SELECT * FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut self.read()?)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    pub async fn set_webhook_endpoint_disabled(
        &self,
        id: &str,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let at = reason.map(|_| now_ms());
        sql::query(
            "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 WHERE id = $3",
        )
        .bind(at)
        .bind(reason)
        .bind(id)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    pub async fn rotate_webhook_endpoint_secret(
        &self,
        id: &str,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_expires_at = $1, secret = $2 \
             WHERE id = $3",
        )
        .bind(previous_expires_at)
        .bind(secret)
        .bind(id)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    /// The tenant's secret for per-request `webhook_url` deliveries: (current, previous while
    /// it overlaps), created on first use.
    pub async fn tenant_webhook_secret(
        &self,
        tenant: &TenantId,
        mode: Mode,
        fresh: &str,
    ) -> Result<(String, Option<String>, Option<i64>), DbError> {
        sql::query(
            "INSERT INTO tenant_webhook_secrets (tenant_id, mode, secret, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, mode) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(fresh)
        .bind(now_ms())
        .execute(&mut self.write().await?)
        .await?;
        let row = sql::query(
            "SELECT secret, previous_secret, previous_expires_at FROM tenant_webhook_secrets \
             WHERE tenant_id = $1 AND mode = $2",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .fetch_one(&mut self.read()?)
        .await?;
        Ok((
            row.col("secret")?,
            row.col("previous_secret")?,
            row.col("previous_expires_at")?,
        ))
    }

    pub async fn rotate_tenant_webhook_secret(
        &self,
        tenant: &TenantId,
        mode: Mode,
        secret: &str,
        previous_expires_at: i64,
    ) -> Result<(), DbError> {
        sql::query(
            "UPDATE tenant_webhook_secrets SET previous_secret = secret, previous_expires_at = $1, secret = $2 \
             WHERE tenant_id = $3 AND mode = $4",
        )
        .bind(previous_expires_at)
        .bind(secret)
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    /// Every endpoint of the tenant, of both modes, enabled or not, read in a job's ending
    /// transaction (the domain picks who receives its event).
    pub async fn webhook_endpoints_in(
        tx: &mut Tx,
        tenant: &TenantId,
    ) -> Result<Vec<Endpoint>, DbError> {
        sql::query("SELECT * FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant.as_str())
            .fetch_all(tx)
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    /// Writes one outbox message of `event` per target the domain chose, in the job's
    /// transaction. Returns how many were written.
    pub async fn enqueue_webhooks(
        tx: &mut Tx,
        tenant: &TenantId,
        mode: Mode,
        video_id: &VideoId,
        event: &str,
        targets: &[OutboxTarget],
    ) -> Result<u64, DbError> {
        let now = now_ms();
        let mut written = 0;
        for target in targets {
            written += sql::query(
                "INSERT INTO webhook_messages (id, tenant_id, endpoint_id, url, event_type, video_id, \
                 event_at, state, next_attempt_at, created_at, mode) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7, $7, $8)",
            )
            .bind(&target.message_id)
            .bind(tenant.as_str())
            .bind(target.endpoint_id.as_deref())
            .bind(target.url.as_deref())
            .bind(event)
            .bind(video_id.as_str())
            .bind(now)
            .bind(mode.as_str())
            .execute(tx)
            .await?;
        }
        Ok(written)
    }

    /// Leases up to `limit` messages due at `now` to `owner` for `lease_ms`, set and expired
    /// on the database's clock, as job leases are (`storage::leases`).
    pub async fn claim_webhook_messages(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Message>, DbError> {
        let db_now = self.backend().now_sql();
        let ids: Vec<String> = sql::query(format!(
            "SELECT id FROM webhook_messages WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < {db_now}) ORDER BY next_attempt_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut self.scan())
        .await?
        .iter()
        .map(|r| r.at::<String>(0))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in ids {
            let row = sql::query(format!(
                "UPDATE webhook_messages SET lease_owner = $1, lease_until = {db_now} + $2 \
                 WHERE id = $3 AND state = 'pending' AND next_attempt_at <= $4 \
                   AND (lease_until IS NULL OR lease_until < {db_now}) \
                 RETURNING *"
            ))
            .bind(owner)
            .bind(lease_ms)
            .bind(&id)
            .bind(now)
            .fetch_optional(&mut self.write().await?)
            .await?;
            if let Some(row) = row {
                claimed.push(message_from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// Stores the payload rendered at the first attempt, unless one is already stored; returns
    /// the payload every attempt must send.
    pub async fn fix_webhook_payload(&self, id: &str, payload: &str) -> Result<String, DbError> {
        sql::query("UPDATE webhook_messages SET payload = $1 WHERE id = $2 AND payload IS NULL")
            .bind(payload)
            .bind(id)
            .execute(&mut self.write().await?)
            .await?;
        let row = sql::query("SELECT payload FROM webhook_messages WHERE id = $1")
            .bind(id)
            .fetch_one(&mut self.read()?)
            .await?;
        Ok(row
            .col::<Option<String>>("payload")?
            .unwrap_or_else(|| payload.to_owned()))
    }

    /// Records an attempt and the message's next state, if `owner` still holds its lease.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_attempt(
        &self,
        owner: &str,
        message_id: &str,
        tenant: &TenantId,
        attempt: &Attempt,
        state: MessageState,
        next_attempt_at: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let delivered_at = (state == MessageState::Delivered).then_some(attempt.attempted_at);
        let updated = sql::query(
            "UPDATE webhook_messages SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             last_status = $3, last_error = $4, delivered_at = COALESCE($5, delivered_at), \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $6 AND lease_owner = $7 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(next_attempt_at)
        .bind(attempt.status)
        .bind(attempt.error.as_deref())
        .bind(delivered_at)
        .bind(message_id)
        .bind(owner)
        .execute(&mut tx)
        .await?
            == 1;
        if updated {
            sql::query(
                "INSERT INTO webhook_attempts (id, message_id, tenant_id, attempted_at, status, latency_ms, error, response) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(crate::types::ids::random_token(24))
            .bind(message_id)
            .bind(tenant.as_str())
            .bind(attempt.attempted_at)
            .bind(attempt.status)
            .bind(attempt.latency_ms)
            .bind(attempt.error.as_deref())
            .bind(attempt.response.as_deref())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Ends a message without sending it (its endpoint was disabled or removed).
    pub async fn cancel_webhook_message(&self, id: &str, reason: &str) -> Result<(), DbError> {
        sql::query(
            "UPDATE webhook_messages SET state = 'canceled', last_error = $1, lease_owner = NULL, \
             lease_until = NULL WHERE id = $2 AND state = 'pending'",
        )
        .bind(reason)
        .bind(id)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    pub async fn webhook_messages(
        &self,
        tenant: &TenantId,
        mode: Mode,
        video_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Message>, DbError> {
        let rows = match video_id {
            Some(video) => {
                sql::query(
                    "SELECT * FROM webhook_messages WHERE tenant_id = $1 AND mode = $2 AND video_id = $3 \
                     ORDER BY created_at DESC, id LIMIT $4",
                )
                .bind(tenant.as_str())
                .bind(mode.as_str())
                .bind(video)
                .bind(limit)
                .fetch_all(&mut self.scan())
                .await?
            }
            None => {
                sql::query(
                    "SELECT * FROM webhook_messages WHERE tenant_id = $1 AND mode = $2 \
                     ORDER BY created_at DESC, id LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(mode.as_str())
                .bind(limit)
                .fetch_all(&mut self.scan())
                .await?
            }
        };
        rows.iter().map(message_from_row).collect()
    }

    pub async fn webhook_message(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &str,
    ) -> Result<Option<Message>, DbError> {
        sql::query("SELECT * FROM webhook_messages WHERE id = $1 AND tenant_id = $2 AND mode = $3")
            .bind(id)
            .bind(tenant.as_str())
            .bind(mode.as_str())
            .fetch_optional(&mut self.read()?)
            .await?
            .as_ref()
            .map(message_from_row)
            .transpose()
    }

    pub async fn webhook_attempts(&self, message_id: &str) -> Result<Vec<Attempt>, DbError> {
        sql::query("SELECT * FROM webhook_attempts WHERE message_id = $1 ORDER BY attempted_at, id")
            .bind(message_id)
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(|row| {
                Ok(Attempt {
                    attempted_at: row.col("attempted_at")?,
                    status: row.col("status")?,
                    latency_ms: row.col("latency_ms")?,
                    error: row.col("error")?,
                    response: row.col("response")?,
                })
            })
            .collect()
    }

    /// Puts a message back in the queue for another round of attempts (same id, same payload).
    pub async fn redeliver_webhook_message(
        &self,
        tenant: &TenantId,
        mode: Mode,
        id: &str,
    ) -> Result<bool, DbError> {
        Ok(sql::query(
            "UPDATE webhook_messages SET state = 'pending', attempts = 0, next_attempt_at = $1, \
             lease_owner = NULL, lease_until = NULL WHERE id = $2 AND tenant_id = $3 AND mode = $4",
        )
        .bind(now_ms())
        .bind(id)
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .execute(&mut self.write().await?)
        .await?
            == 1)
    }

    pub async fn pending_webhook_deliveries(&self) -> Result<i64, DbError> {
        sql::query("SELECT COUNT(*) FROM webhook_messages WHERE state = 'pending'")
            .fetch_one(&mut self.scan())
            .await?
            .at(0)
    }
}

/// One outbox message to write: to a tenant's endpoint, or to a request's own URL.
#[derive(Debug, Clone)]
pub struct OutboxTarget {
    pub message_id: String,
    pub endpoint_id: Option<String>,
    pub url: Option<String>,
}
