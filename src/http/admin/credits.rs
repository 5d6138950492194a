//! `/admin/v1/…/grants`, `…/adjustments` and `/admin/v1/videos/{video_id}/refund`: the
//! operator's money calls, each run once per `Idempotency-Key`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{parse_mode, tenant_id, video_id};
use crate::domain::admin::{self, CreditType, Granted};
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::idempotency::{self, IdempotencyHeader};
use crate::http::AppState;
use crate::types::ids::TenantId;
use crate::types::money::Mode;

/// The operator's own idempotency scope, apart from every tenant's.
const SCOPE: &str = "admin";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 10000, "reason": "welcome credit", "mode": "live"}))]
pub struct GrantBody {
    /// Credits to add, > 0.
    pub amount: i64,
    /// Why; kept in the journal.
    pub reason: String,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    /// Who granted it; defaults to `admin-api`.
    pub actor: Option<String>,
    /// `paid` (default) or `promotional`: promotional credit is kept apart and consumed first.
    pub credit_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantObject {
    pub object: &'static str,
    pub txn_id: String,
    pub tenant_id: String,
    pub mode: &'static str,
    pub amount: i64,
    pub available: i64,
    pub held: i64,
}

impl GrantObject {
    fn created(
        object: &'static str,
        tenant: &TenantId,
        mode: Mode,
        amount: i64,
        done: Granted,
    ) -> Response {
        let body = GrantObject {
            object,
            txn_id: done.txn_id.to_string(),
            tenant_id: tenant.to_string(),
            mode: mode.as_str(),
            amount,
            available: done.balance.available.get(),
            held: done.balance.held.get(),
        };
        (StatusCode::CREATED, Json(body)).into_response()
    }
}

/// Grant credits to a tenant
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/grants", tag = "admin", request_body = GrantBody,
    params(("tenant_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h; another body with the same key is 409")),
    responses((status = 201, body = GrantObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn grant(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Response> {
    let tenant = tenant_id(&id)?;
    let mode = parse_mode(body.mode.as_deref())?;
    let credit_type = CreditType::parse(body.credit_type.as_deref())?;
    let actor = admin::checked_actor(body.actor.as_deref())?;
    let claim = key.claim(SCOPE, || {
        (
            "grant",
            tenant.as_str(),
            mode.as_str(),
            body.amount,
            &body.reason,
            &actor,
            body.credit_type.as_deref(),
        )
    })?;
    let run = async {
        let granted = admin::grant_credits(
            &state.db,
            &tenant,
            mode,
            crate::domain::billing::positive_amount("amount", body.amount)?,
            credit_type,
            &body.reason,
            &actor,
            claim.as_ref(),
        )
        .await?;
        Ok(GrantObject::created(
            "credit_grant",
            &tenant,
            mode,
            body.amount,
            granted,
        ))
    };
    idempotency::once(&state, claim.as_ref(), run, idempotency::answer_lost).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": -250, "reason": "duplicate grant on 2026-11-20", "actor": "ops@example.com"}))]
pub struct AdjustmentBody {
    /// Credits to add (positive) or take (negative) from the tenant's paid balance.
    pub amount: i64,
    pub reason: String,
    /// `live` (default) or `test`.
    pub mode: Option<String>,
    pub actor: Option<String>,
}

/// Adjust a tenant's balance
///
/// A correction by the operator, with its reason and actor in the journal. A debit cannot take
/// the balance below the tenant's floor.
#[utoipa::path(
    post, path = "/admin/v1/tenants/{tenant_id}/adjustments", tag = "admin", request_body = AdjustmentBody,
    params(("tenant_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = GrantObject), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn adjust(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> Result<Response> {
    let tenant = tenant_id(&id)?;
    let mode = parse_mode(body.mode.as_deref())?;
    let actor = admin::actor(body.actor.as_deref());
    let claim = key.claim(SCOPE, || ("adjustment", tenant.as_str(), &body))?;
    let run = async {
        let adjusted = admin::adjust_credits(
            &state.db,
            &tenant,
            mode,
            body.amount,
            &body.reason,
            &actor,
            claim.as_ref(),
        )
        .await?;
        Ok(GrantObject::created(
            "credit_adjustment",
            &tenant,
            mode,
            body.amount,
            adjusted,
        ))
    };
    idempotency::once(&state, claim.as_ref(), run, idempotency::answer_lost).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 100, "reason": "artifacts in the last second"}))]
pub struct RefundBody {
    /// Credits to give back; default: all that is left of the charge.
    pub amount: Option<i64>,
    pub reason: String,
    pub actor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundObject {
    pub object: &'static str,
    pub txn_id: String,
    pub video_id: String,
    pub amount: i64,
}

/// Refund a video
///
/// Gives credits back to whoever paid for a completed video (the tenant's balance or the end
/// user's wallet). All refunds of one video together never exceed what it was charged.
#[utoipa::path(
    post, path = "/admin/v1/videos/{video_id}/refund", tag = "admin", request_body = RefundBody,
    params(("video_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = RefundObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn refund(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<Response> {
    let video = video_id(&id)?;
    let actor = admin::actor(body.actor.as_deref());
    let claim = key.claim(SCOPE, || ("refund", video.as_str(), &body))?;
    let run = async {
        let (txn, amount) = admin::refund_video(
            &state.db,
            &video,
            body.amount,
            &body.reason,
            &actor,
            claim.as_ref(),
        )
        .await?;
        let body = RefundObject {
            object: "refund",
            txn_id: txn.to_string(),
            video_id: video.to_string(),
            amount: amount.get(),
        };
        Ok((StatusCode::CREATED, Json(body)).into_response())
    };
    idempotency::once(&state, claim.as_ref(), run, idempotency::answer_lost).await
}
