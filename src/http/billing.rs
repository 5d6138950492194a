//! The caller tenant's money: `GET /v1/balance` and `GET /v1/ledger`. Test keys see the test
//! balance and journal; live keys the live ones.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::domain::billing::ledger;
use crate::error::{Error, ErrorBody, Result};
use crate::http::auth::Caller;
use crate::http::extract::ApiQuery;
use crate::storage::ledger::EntryView;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"object": "balance", "mode": "live", "available": 9750, "held": 250, "credit_floor": 0, "unit": "credits"}))]
pub struct BalanceView {
    pub object: &'static str,
    /// `live` or `test`, after the calling key.
    pub mode: &'static str,
    /// Credits new jobs can reserve (above the floor).
    pub available: i64,
    /// Credits reserved by running jobs.
    pub held: i64,
    /// The lowest `available` may go (negative for postpaid tenants).
    pub credit_floor: i64,
    pub unit: &'static str,
}

/// The caller's balance
#[utoipa::path(
    get, path = "/v1/balance", tag = "billing",
    responses((status = 200, body = BalanceView), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn balance(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<BalanceView>> {
    let tenant = crate::domain::admin::tenant(&state.db, &principal.tenant_id).await?;
    let balance = ledger::balance(&state.db, &principal.tenant_id, principal.mode).await?;
    let floor = match principal.mode {
        crate::domain::billing::Mode::Live => tenant.credit_floor.0,
        crate::domain::billing::Mode::Test => 0,
    };
    Ok(Json(BalanceView {
        object: "balance",
        mode: principal.mode.as_str(),
        available: balance.available.0,
        held: balance.held.0,
        credit_floor: floor,
        unit: "credits",
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerParams {
    /// Entries older than this entry id (cursor; the `last_id` of the previous page).
    pub after: Option<i64>,
    /// 1-100, default 20.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    pub object: &'static str,
    pub data: Vec<EntryView>,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub has_more: bool,
}

/// The caller's journal entries
///
/// Newest first. Every movement of the caller's credits: grants, holds at submit, captures on
/// completion, voids on failure or cancel.
#[utoipa::path(
    get, path = "/v1/ledger", tag = "billing", params(LedgerParams),
    responses((status = 200, body = LedgerPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = []))
)]
pub async fn entries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Json<LedgerPage>> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", "limit must be from 1 to 100"));
    }
    let (data, has_more) = state
        .db
        .tenant_entries(&principal.tenant_id, principal.mode, params.after, limit)
        .await?;
    Ok(Json(LedgerPage {
        object: "list",
        first_id: data.first().map(|e| e.id),
        last_id: data.last().map(|e| e.id),
        has_more,
        data,
    }))
}
