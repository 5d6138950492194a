//! `/v1/end_users/{user_id}`: a tenant's own end users — limits, wallet, spend.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::domain::access::{self, EndUserAction, Reach};
use crate::domain::end_users::{self, EndUser, WalletMode};
use crate::error::{Error, Result};
use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::idempotency::{self, IdempotencyHeader};
use crate::http::AppState;
use crate::types::ids::EndUserId;

fn user_id(raw: &str) -> Result<EndUserId> {
    EndUserId::parse(raw).ok_or_else(|| {
        Error::invalid(
            "user_id",
            "user ids are 1-128 characters of letters, digits and - _ . @ :",
        )
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"credits_per_day": 2000, "credits_per_month": 30000, "max_concurrent": 2, "wallet_mode": "first"}))]
pub struct EndUserBody {
    /// Most credits the user's jobs may use per UTC day; null for no limit.
    pub credits_per_day: Option<i64>,
    pub credits_per_month: Option<i64>,
    /// Most of the user's jobs running at once; null for no limit.
    pub max_concurrent: Option<i64>,
    /// `none` (the tenant pays, default), `first` (the wallet, then the tenant) or `only`.
    pub wallet_mode: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndUserObject {
    pub id: String,
    pub object: &'static str,
    pub credits_per_day: Option<i64>,
    pub credits_per_month: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub wallet_mode: &'static str,
    /// Credits in the user's wallet (for the calling key's mode).
    pub wallet_balance: i64,
    pub running_jobs: i64,
    /// Credits the user's jobs used (or hold) today and this month, UTC.
    pub spent_today: i64,
    pub spent_this_month: i64,
}

async fn object(state: &AppState, reach: &Reach, user: &EndUserId) -> Result<EndUserObject> {
    let standing =
        end_users::standing(&state.db, &reach.tenant, reach.mode, user, now_ms()).await?;
    let end_user = standing.user;
    Ok(EndUserObject {
        id: end_user.id.as_str().to_string(),
        object: "end_user",
        credits_per_day: end_user.credits_per_day,
        credits_per_month: end_user.credits_per_month,
        max_concurrent: end_user.max_concurrent,
        wallet_mode: end_user.wallet_mode.as_str(),
        wallet_balance: standing.wallet.get(),
        running_jobs: standing.running_jobs,
        spent_today: standing.spent_today,
        spent_this_month: standing.spent_this_month,
    })
}

/// Retrieve an end user
#[utoipa::path(
    get, path = "/v1/end_users/{user_id}", tag = "end_users",
    params(("user_id" = String, Path)),
    responses((status = 200, body = EndUserObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<EndUserObject>> {
    let user = user_id(&raw)?;
    let reach = access::end_user(&principal, EndUserAction::Read, &user)?;
    Ok(Json(object(&state, &reach, &user).await?))
}

/// Set an end user's limits and wallet mode
///
/// Replaces the settings: a field left out has no limit.
#[utoipa::path(
    put, path = "/v1/end_users/{user_id}", tag = "end_users", request_body = EndUserBody,
    params(("user_id" = String, Path)),
    responses((status = 200, body = EndUserObject), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn put(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<EndUserBody>,
) -> Result<Json<EndUserObject>> {
    let user = user_id(&raw)?;
    let reach = access::end_user(&principal, EndUserAction::SetLimits, &user)?;
    let wallet_mode = match body.wallet_mode.as_deref() {
        None => WalletMode::None,
        Some(raw) => WalletMode::parse(raw).ok_or_else(|| {
            Error::invalid("wallet_mode", "wallet_mode must be none, first or only")
        })?,
    };
    let end_user = EndUser {
        tenant_id: reach.tenant.clone(),
        mode: reach.mode,
        id: user.clone(),
        credits_per_day: body.credits_per_day,
        credits_per_month: body.credits_per_month,
        max_concurrent: body.max_concurrent,
        wallet_mode,
    };
    end_users::set(&state.db, &end_user).await?;
    Ok(Json(object(&state, &reach, &user).await?))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 500, "memo": "monthly allowance"}))]
pub struct WalletBody {
    /// Credits to move: positive funds the wallet from the tenant's balance, negative returns
    /// credits from the wallet to the tenant.
    pub amount: i64,
    pub memo: Option<String>,
}

/// Fund or drain an end user's wallet
#[utoipa::path(
    post, path = "/v1/end_users/{user_id}/wallet", tag = "end_users", request_body = WalletBody,
    params(("user_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    responses((status = 200, body = EndUserObject), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn wallet(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(raw): ApiPath<String>,
    key: IdempotencyHeader,
    ApiJson(body): ApiJson<WalletBody>,
) -> Result<Response> {
    let user = user_id(&raw)?;
    let reach = access::end_user(&principal, EndUserAction::MoveWallet, &user)?;
    if body.memo.as_ref().is_some_and(|m| m.len() > 500) {
        return Err(Error::invalid(
            "memo",
            "memo must be at most 500 characters",
        ));
    }
    let claim = key.claim(reach.tenant.as_str(), || {
        ("wallet", reach.mode.as_str(), user.as_str(), &body)
    })?;
    let run = async {
        end_users::transfer_wallet(
            &state.db,
            &reach.tenant,
            reach.mode,
            &user,
            body.amount,
            body.memo.as_deref(),
            claim.as_ref(),
        )
        .await?;
        Ok(Json(object(&state, &reach, &user).await?).into_response())
    };
    // A move whose answer was lost answers with the end user as it stands now.
    let rebuild = async |_| Ok(Json(object(&state, &reach, &user).await?).into_response());
    idempotency::once(&state, claim.as_ref(), run, rebuild).await
}
