//! SQL for a tenant's own prices: a fixed price list or a cost-plus markup.

use serde::{Deserialize, Serialize};

use super::sql::{self, Get};
use super::{now_ms, Db, DbError};
use crate::types::ids::TenantId;
use crate::types::video::{Model, Resolution};

/// How a request uses its inputs, for price lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    Text,
    Image,
    ReferenceVideo,
}

/// One rule of a fixed price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRule {
    pub model: Model,
    pub resolution: Option<Resolution>,
    pub input_mode: Option<InputMode>,
    pub credits_per_second: i64,
}

/// A tenant's own prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TenantPrices {
    Fixed {
        rules: Vec<PriceRule>,
    },
    /// Markup in basis points (2500 = 25%).
    CostPlus {
        markup_bps: i64,
    },
}

impl Db {
    /// The prices the operator set for a tenant, if any.
    pub async fn tenant_prices(&self, tenant: &TenantId) -> Result<Option<TenantPrices>, DbError> {
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
        prices.map(Some).ok_or_else(|| {
            sqlx::Error::ColumnDecode {
                index: "kind".to_string(),
                source: format!("unknown prices kind {kind:?}, or its values missing").into(),
            }
            .into()
        })
    }

    pub async fn put_tenant_prices(
        &self,
        tenant: &TenantId,
        prices: &TenantPrices,
    ) -> Result<(), DbError> {
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
