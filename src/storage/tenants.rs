//! SQL for tenants, API keys and admin tokens, and the rows they are read into: a tenant, a
//! key with its scopes, and the principal a key hash stands for.

use serde::{Deserialize, Serialize};

use super::sql::{self, Get};
use super::{now_ms, Db, DbError, Tx};
use crate::types::ids::{ApiKeyId, TenantId};
use crate::types::money::{Credits, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingKind {
    /// Pays in advance: the available balance never goes below zero.
    Prepaid,
    /// An internal team billed afterwards: may go down to its (negative) credit floor.
    Postpaid,
}

impl BillingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingKind::Prepaid => "prepaid",
            BillingKind::Postpaid => "postpaid",
        }
    }

    pub fn parse(raw: &str) -> Option<BillingKind> {
        match raw {
            "prepaid" => Some(BillingKind::Prepaid),
            "postpaid" => Some(BillingKind::Postpaid),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub billing_kind: BillingKind,
    pub credit_floor: Credits,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub mode: Mode,
    pub display_prefix: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    /// `None`: every scope.
    pub scopes: Option<Vec<Scope>>,
    pub expires_at_ms: Option<i64>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Create, cancel and delete videos.
    #[serde(rename = "videos:write")]
    VideosWrite,
    /// Read videos, their content, quotes and models.
    #[serde(rename = "videos:read")]
    VideosRead,
    /// Read the balance, journal, usage and end users.
    #[serde(rename = "billing:read")]
    BillingRead,
    /// Set end users' limits and move their wallets.
    #[serde(rename = "end_users:write")]
    EndUsersWrite,
    /// Manage webhook endpoints and secrets, read the delivery log, redeliver.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::VideosWrite,
        Scope::VideosRead,
        Scope::BillingRead,
        Scope::EndUsersWrite,
        Scope::WebhooksWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::VideosWrite => "videos:write",
            Scope::VideosRead => "videos:read",
            Scope::BillingRead => "billing:read",
            Scope::EndUsersWrite => "end_users:write",
            Scope::WebhooksWrite => "webhooks:write",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The caller of a tenant-facing request, once its key has been checked.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub mode: Mode,
    /// `None`: every scope.
    pub scopes: Option<Vec<Scope>>,
    /// The end user a JWT speaks for: the caller can act only as this user.
    pub end_user: Option<crate::types::ids::EndUserId>,
    /// When the credential stops working (unix milliseconds), if it expires.
    pub expires_at_ms: Option<i64>,
}

fn tenant_from_row(row: &impl Get) -> Result<Tenant, DbError> {
    Ok(Tenant {
        id: TenantId::from_db(row.col("id")?),
        name: row.col("name")?,
        billing_kind: row.state("billing_kind", BillingKind::parse)?,
        credit_floor: Credits::from_stored(row.col("credit_floor")?),
        created_at_ms: row.col("created_at")?,
    })
}

fn key_from_row(row: &impl Get) -> Result<ApiKey, DbError> {
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
    pub async fn insert_tenant(tx: &mut Tx, tenant: &Tenant) -> Result<(), DbError> {
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

    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, DbError> {
        let mut reader = self.read()?;
        sql::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut reader)
            .await?
            .map(|r| tenant_from_row(&r))
            .transpose()
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, DbError> {
        sql::query("SELECT * FROM tenants ORDER BY created_at, id")
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(tenant_from_row)
            .collect()
    }

    pub async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<(), DbError> {
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

    pub async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, DbError> {
        sql::query("SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant.as_str())
            .fetch_all(&mut self.scan())
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    pub async fn get_api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, DbError> {
        sql::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut self.read()?)
            .await?
            .map(|r| key_from_row(&r))
            .transpose()
    }

    /// Marks a key revoked; returns false when no such unrevoked key exists.
    pub async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<bool, DbError> {
        let done =
            sql::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id.as_str())
                .execute(&mut self.write().await?)
                .await?;
        Ok(done == 1)
    }

    /// The principal behind a key hash, if the key exists and is not revoked.
    pub async fn principal_by_key_hash(&self, hash: &str) -> Result<Option<Principal>, DbError> {
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
    pub async fn expire_api_key(&self, id: &ApiKeyId, at: i64) -> Result<(), DbError> {
        sql::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2 AND (expires_at IS NULL OR expires_at > $1)")
            .bind(at)
            .bind(id.as_str())
            .execute(&mut self.write().await?)
            .await?;
        Ok(())
    }

    /// Records use of a key at most once a minute per key, to keep the hot path write-free.
    pub async fn touch_api_key(&self, id: &ApiKeyId, now: i64) -> Result<(), DbError> {
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

    pub async fn insert_admin_token(&self, id: &str, hash: &str) -> Result<(), DbError> {
        sql::query("INSERT INTO admin_tokens (id, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(hash)
            .bind(now_ms())
            .execute(&mut self.write().await?)
            .await?;
        Ok(())
    }

    pub async fn admin_token_exists(&self, hash: &str) -> Result<bool, DbError> {
        let row = sql::query("SELECT id FROM admin_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&mut self.read()?)
            .await?;
        Ok(row.is_some())
    }
}

impl Db {
    /// The request rate the operator set for a tenant: (per minute, burst).
    pub async fn tenant_rate(&self, tenant: &TenantId) -> Result<Option<(i64, i64)>, DbError> {
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
    ) -> Result<(), DbError> {
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
