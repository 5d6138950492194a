//! SQL for tenants, API keys and admin tokens.

use super::sql::{self, Get};
use super::{now_ms, Db, Tx};
use crate::domain::tenants::{ApiKey, BillingKind, Principal, Tenant};
use crate::types::ids::{ApiKeyId, TenantId};
use crate::types::money::{Credits, Mode};

fn tenant_from_row(row: &impl Get) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: TenantId::from_db(row.col("id")?),
        name: row.col("name")?,
        billing_kind: row.state("billing_kind", BillingKind::parse)?,
        credit_floor: Credits::from_stored(row.col("credit_floor")?),
        created_at_ms: row.col("created_at")?,
    })
}

fn key_from_row(row: &impl Get) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: ApiKeyId::from_db(row.col("id")?),
        tenant_id: TenantId::from_db(row.col("tenant_id")?),
        mode: row.state("mode", Mode::parse)?,
        display_prefix: row.col("display_prefix")?,
        name: row.col("name")?,
        created_at_ms: row.col("created_at")?,
        revoked_at_ms: row.col("revoked_at")?,
        last_used_at_ms: row.col("last_used_at")?,
        // Read as absent, an unreadable list would grant every scope.
        scopes: row.json_opt("scopes")?,
        expires_at_ms: row.col("expires_at")?,
    })
}

impl Db {
    pub async fn insert_tenant(tx: &mut Tx, tenant: &Tenant) -> Result<(), sqlx::Error> {
        sql::query(
            "INSERT INTO tenants (id, name, billing_kind, credit_floor, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.id.as_str())
        .bind(&tenant.name)
        .bind(tenant.billing_kind.as_str())
        .bind(tenant.credit_floor.get())
        .bind(tenant.created_at_ms)
        .execute(tx)
        .await?;
        Ok(())
    }

    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, sqlx::Error> {
        let mut reader = self.read()?;
        sql::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut reader)
            .await?
            .map(|r| tenant_from_row(&r))
            .transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, sqlx::Error> {
        sql::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(tenant_from_row)
            .collect()
    }

    pub async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<(), sqlx::Error> {
        sql::query(
            "INSERT INTO api_keys (id, tenant_id, mode, key_hash, display_prefix, name, created_at, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key.id.as_str())
        .bind(key.tenant_id.as_str())
        .bind(key.mode.as_str())
        .bind(hash)
        .bind(&key.display_prefix)
        .bind(&key.name)
        .bind(key.created_at_ms)
        .bind(key.scopes.as_ref().and_then(|s| serde_json::to_string(s).ok()))
        .bind(key.expires_at_ms)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    pub async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, sqlx::Error> {
        sql::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant.as_str())
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    pub async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, sqlx::Error> {
        sql::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut self.read()?)
            .await?
            .map(|r| key_from_row(&r))
            .transpose()
    }

    /// Marks a key revoked; returns false when no such unrevoked key exists.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool, sqlx::Error> {
        let done =
            sql::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id.as_str())
                .execute(&mut self.write().await?)
                .await?;
        Ok(done == 1)
    }

    /// The principal behind a key hash, if the key exists and is not revoked.
    pub async fn principal_by_key_hash(
        &self,
        hash: &str,
    ) -> Result<Option<Principal>, sqlx::Error> {
        let row = sql::query(
            "SELECT id, tenant_id, mode, scopes, expires_at FROM api_keys \
             WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(hash)
        .bind(now_ms())
        .fetch_optional(&mut self.read()?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Principal {
            key_id: ApiKeyId::from_db(row.col("id")?),
            tenant_id: TenantId::from_db(row.col("tenant_id")?),
            mode: row.state("mode", Mode::parse)?,
            scopes: row.json_opt("scopes")?,
            end_user: None,
            expires_at_ms: row.col("expires_at")?,
        }))
    }

    /// Makes a key expire at `at` unless it already expires sooner.
    pub async fn expire_api_key(&self, id: &ApiKeyId, at: i64) -> Result<(), sqlx::Error> {
        sql::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2 AND (expires_at IS NULL OR expires_at > $1)")
            .bind(at)
            .bind(id.as_str())
            .execute(&mut self.write().await?)
            .await?;
        Ok(())
    }

    /// Records use of a key at most once a minute per key, to keep the hot path write-free.
    pub async fn touch_api_key(&self, id: &ApiKeyId, now: i64) -> Result<(), sqlx::Error> {
        sql::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id.as_str())
        .bind(now - 60_000)
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }

    pub async fn insert_admin_token(&self, id: &str, hash: &str) -> Result<(), sqlx::Error> {
        sql::query("INSERT INTO admin_tokens (id, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(hash)
            .bind(now_ms())
            .execute(&mut self.write().await?)
            .await?;
        Ok(())
    }

    pub async fn admin_token_exists(&self, hash: &str) -> Result<bool, sqlx::Error> {
        let row = sql::query("SELECT id FROM admin_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut self.read()?)
            .await?;
        Ok(row.is_some())
    }
}

impl Db {
    /// The routing policy the operator set for a tenant (`scope` `tenant`) or key (`key`).
    pub async fn routing_policy(
        &self,
        scope: &str,
        id: &str,
    ) -> Result<Option<crate::domain::routing::policy::PolicyLevel>, sqlx::Error> {
        let row = sql::query(
            "SELECT strategy, providers, fallback, resubmit FROM routing_policies WHERE scope = $1 AND scope_id = $2",
        )
        .bind(scope)
        .bind(id)
        .fetch_optional(&mut self.read()?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let fallback: Option<i64> = row.at(2)?;
        let resubmit: Option<i64> = row.at(3)?;
        Ok(Some(crate::domain::routing::policy::PolicyLevel {
            strategy: row.state_opt("strategy", crate::types::video::Strategy::parse)?,
            providers: row.json_opt("providers")?,
            fallback: fallback.map(|f| f != 0),
            resubmit: resubmit.map(|r| r != 0),
        }))
    }

    pub async fn put_routing_policy(
        &self,
        scope: &str,
        id: &str,
        level: &crate::domain::routing::policy::PolicyLevel,
    ) -> Result<(), sqlx::Error> {
        sql::query(
            "INSERT INTO routing_policies (scope, scope_id, strategy, providers, fallback, resubmit, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, scope_id) DO UPDATE SET strategy = excluded.strategy, \
               providers = excluded.providers, fallback = excluded.fallback, \
               resubmit = excluded.resubmit, updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(id)
        .bind(level.strategy.map(|s| s.as_str()))
        .bind(level.providers.as_ref().and_then(|p| serde_json::to_string(p).ok()))
        .bind(level.fallback.map(i64::from))
        .bind(level.resubmit.map(i64::from))
        .bind(now_ms())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }
}

/// An idempotency key as stored.
pub struct IdempotencyRow {
    pub request_hash: String,
    pub video_id: Option<String>,
    pub created_at: i64,
    pub answer: Option<crate::domain::idempotency::StoredAnswer>,
}

impl Db {
    /// The live (unexpired) row for a key; an expired one is removed.
    pub async fn idempotency_row(
        &self,
        scope: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRow>, sqlx::Error> {
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
            (Some(status), Some(body)) => Some(crate::domain::idempotency::StoredAnswer {
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
    ) -> Result<(), sqlx::Error> {
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
        answer: &crate::domain::idempotency::StoredAnswer,
    ) -> Result<(), sqlx::Error> {
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

impl Db {
    /// The prices the operator set for a tenant, if any.
    pub async fn tenant_prices(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<crate::domain::billing::pricing::TenantPrices>, sqlx::Error> {
        use crate::domain::billing::pricing::TenantPrices;
        let mut reader = self.read()?;
        let row =
            sql::query("SELECT kind, rules, markup_bps FROM tenant_prices WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut reader)
                .await?;
        let Some(row) = row else { return Ok(None) };
        // Prices decide charges: prices the gateway cannot read are an error, never a default.
        let kind: String = row.col("kind")?;
        let prices = match kind.as_str() {
            "fixed" => row
                .json_opt("rules")?
                .map(|rules| TenantPrices::Fixed { rules }),
            "cost_plus" => row
                .col::<Option<i64>>("markup_bps")?
                .map(|markup_bps| TenantPrices::CostPlus { markup_bps }),
            _ => None,
        };
        prices.map(Some).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "kind".to_string(),
            source: format!("unknown prices kind {kind:?}, or its values missing").into(),
        })
    }

    pub async fn put_tenant_prices(
        &self,
        tenant: &TenantId,
        prices: &crate::domain::billing::pricing::TenantPrices,
    ) -> Result<(), sqlx::Error> {
        use crate::domain::billing::pricing::TenantPrices;
        let (kind, rules, markup) = match prices {
            TenantPrices::Fixed { rules } => ("fixed", serde_json::to_string(rules).ok(), None),
            TenantPrices::CostPlus { markup_bps } => ("cost_plus", None, Some(*markup_bps)),
        };
        sql::query(
            "INSERT INTO tenant_prices (tenant_id, kind, rules, markup_bps, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id) DO UPDATE SET kind = excluded.kind, rules = excluded.rules, \
               markup_bps = excluded.markup_bps, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(kind)
        .bind(rules)
        .bind(markup)
        .bind(now_ms())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }
}

impl Db {
    /// The request rate the operator set for a tenant: (per minute, burst).
    pub async fn tenant_rate(&self, tenant: &TenantId) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let row =
            sql::query("SELECT requests_per_minute, burst FROM tenant_limits WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut self.read()?)
                .await?;
        row.map(|r| Ok((r.at(0)?, r.at(1)?))).transpose()
    }

    pub async fn put_tenant_rate(
        &self,
        tenant: &TenantId,
        per_minute: i64,
        burst: i64,
    ) -> Result<(), sqlx::Error> {
        sql::query(
            "INSERT INTO tenant_limits (tenant_id, requests_per_minute, burst, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute, \
               burst = excluded.burst, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(per_minute)
        .bind(burst)
        .bind(now_ms())
        .execute(&mut self.write().await?)
        .await?;
        Ok(())
    }
}
