//! SQL for routing policies: the level the operator set for a tenant or an API key.

use serde::{Deserialize, Serialize};

use super::sql::{self, Get};
use super::{now_ms, Db, DbError};
use crate::types::ids::ProviderId;
use crate::types::video::Strategy;

/// One level's settings; `None` inherits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLevel {
    pub strategy: Option<Strategy>,
    /// Allowed providers, in preference order for `ordered`.
    pub providers: Option<Vec<ProviderId>>,
    pub fallback: Option<bool>,
    /// Resubmit a job that failed upstream to the next candidate.
    pub resubmit: Option<bool>,
}

impl Db {
    /// The routing policy the operator set for a tenant (`scope` `tenant`) or key (`key`).
    pub async fn routing_policy(
        &self,
        scope: &str,
        id: &str,
    ) -> Result<Option<PolicyLevel>, DbError> {
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
        Ok(Some(PolicyLevel {
            strategy: row.state_opt("strategy", Strategy::parse)?,
            providers: row.json_opt("providers")?,
            fallback: fallback.map(|f| f != 0),
            resubmit: resubmit.map(|r| r != 0),
        }))
    }

    pub async fn put_routing_policy(
        &self,
        scope: &str,
        id: &str,
        level: &PolicyLevel,
    ) -> Result<(), DbError> {
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
