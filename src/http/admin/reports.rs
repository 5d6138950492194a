//! `/admin/v1/reports/…` and `/admin/v1/ledger/audit`: savings, margin and cost mismatches
//! over a window of UTC days (their arithmetic in [`crate::domain::reports`]), and the ledger
//! audit.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::reports::AuditReport;
use crate::domain::reports::{self, date_of_day};
use crate::error::Result;
use crate::http::auth::Operator;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiQuery;
use crate::http::AppState;
use crate::types::money::MicroUsd;

/// Audit the ledger
///
/// Checks every money invariant on one snapshot: the journal sums to zero, every transaction
/// balances and every cached balance equals its entries; each hold is settled at most once and
/// agrees with the journal and the holds accounts; no video is charged more than it reserved
/// nor refunded more than it was charged; the caps' running totals and the provider slots
/// equal what the jobs say; test-mode money never touches live accounts. Each list names what
/// breaks its invariant; `ok` is true when all are empty.
#[utoipa::path(
    get, path = "/admin/v1/ledger/audit", tag = "admin",
    responses((status = 200, body = AuditReport)),
    security(("admin_token" = []))
)]
pub async fn audit(State(state): State<AppState>, _: Operator) -> Result<Json<AuditReport>> {
    Ok(Json(reports::audit(&state.db).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SavingsParams {
    /// First UTC day, `YYYY-MM-DD` (default: 30 days ago).
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    pub to: Option<String>,
}

/// The report's window in unix ms, from its `from` and `to` days.
fn window(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64)> {
    reports::window(from, to, crate::clock::now_ms())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavingsDay {
    pub tenant_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    /// Completed live jobs.
    pub jobs: i64,
    /// What the gateway paid upstream (the providers' reported dollars where given, else the
    /// catalog estimate at the provider that did the job), in micro-USD.
    pub paid_micro_usd: i64,
    /// What the most expensive eligible provider would have cost.
    pub most_expensive_micro_usd: i64,
    pub saved_vs_most_expensive_micro_usd: i64,
    /// What `routing.baseline_provider` would have cost (jobs it could be priced for).
    pub baseline_micro_usd: Option<i64>,
    pub saved_vs_baseline_micro_usd: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SavingsReport {
    pub object: &'static str,
    pub baseline_provider: Option<String>,
    pub data: Vec<SavingsDay>,
}

/// Savings report
///
/// Per tenant and UTC day, the upstream cost the gateway paid for completed live jobs against
/// the most expensive eligible provider and against the configured baseline provider.
#[utoipa::path(
    get, path = "/admin/v1/reports/savings", tag = "admin", params(SavingsParams),
    responses((status = 200, body = SavingsReport), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn savings(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(params): ApiQuery<SavingsParams>,
) -> Result<Json<SavingsReport>> {
    let (from, to) = window(params.from.as_deref(), params.to.as_deref())?;
    let data = reports::savings_days(&state.db, from, to)
        .await?
        .into_iter()
        .map(|(r, saved)| SavingsDay {
            tenant_id: r.tenant_id,
            date: date_of_day(r.day),
            jobs: r.jobs,
            paid_micro_usd: r.paid.get(),
            most_expensive_micro_usd: r.ceiling.get(),
            saved_vs_most_expensive_micro_usd: saved.saved_vs_most_expensive.get(),
            baseline_micro_usd: saved.baseline.map(MicroUsd::get),
            saved_vs_baseline_micro_usd: saved.saved_vs_baseline.map(MicroUsd::get),
        })
        .collect();
    Ok(Json(SavingsReport {
        object: "savings_report",
        baseline_provider: state.config.routing.baseline_provider.clone(),
        data,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarginDay {
    pub tenant_id: String,
    pub provider: String,
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub jobs: i64,
    /// Credits charged to the tenant.
    pub revenue_credits: i64,
    /// The same in micro-USD at `pricing.credits_per_usd` (rounded down).
    pub revenue_micro_usd: i64,
    /// What the gateway paid upstream (reported where given, else the catalog estimate).
    pub upstream_cost_micro_usd: i64,
    pub margin_micro_usd: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarginReport {
    pub object: &'static str,
    pub data: Vec<MarginDay>,
}

/// Margin report
///
/// Per tenant, provider and UTC day: credits charged against the upstream cost, for completed
/// live jobs.
#[utoipa::path(
    get, path = "/admin/v1/reports/margin", tag = "admin", params(SavingsParams),
    responses((status = 200, body = MarginReport), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn margin(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(params): ApiQuery<SavingsParams>,
) -> Result<Json<MarginReport>> {
    let (from, to) = window(params.from.as_deref(), params.to.as_deref())?;
    let per_usd = state.config.pricing.credits_per_usd;
    let data = reports::margin_days(&state.db, from, to, per_usd)
        .await?
        .into_iter()
        .map(|(r, margin)| MarginDay {
            tenant_id: r.tenant_id,
            provider: r.provider,
            date: date_of_day(r.day),
            jobs: r.jobs,
            revenue_credits: r.revenue.get(),
            revenue_micro_usd: margin.revenue.get(),
            upstream_cost_micro_usd: r.cost.get(),
            margin_micro_usd: margin.margin.get(),
        })
        .collect();
    Ok(Json(MarginReport {
        object: "margin_report",
        data,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MismatchParams {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Flag jobs whose reported cost differs from the estimate by more than this (default 10).
    pub threshold_percent: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostMismatch {
    pub video_id: String,
    pub tenant_id: String,
    pub provider: Option<String>,
    /// What the upstream reported, as written.
    pub reported: Option<String>,
    pub reported_micro_usd: Option<i64>,
    pub estimated_micro_usd: Option<i64>,
}

/// A submit whose answer was lost: the provider may hold, and bill, a job the gateway never
/// saw. Reconcile it with the provider's invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct PossibleOrphan {
    pub video_id: String,
    pub tenant_id: String,
    pub provider: String,
    /// Unix seconds of the submit.
    pub attempted_at: i64,
    pub error: Option<String>,
    /// The request as the gateway normalized it.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostMismatchList {
    pub object: &'static str,
    pub threshold_percent: i64,
    pub data: Vec<CostMismatch>,
    /// Submits in the window whose answer was lost (see [`PossibleOrphan`]).
    pub possible_orphans: Vec<PossibleOrphan>,
}

/// Jobs whose upstream cost differs from the catalog
///
/// Flags completed jobs whose upstream-reported cost differs from the price catalog's estimate
/// by more than `threshold_percent`: a provider changed its prices, or bills differently.
#[utoipa::path(
    get, path = "/admin/v1/reports/cost_mismatches", tag = "admin", params(MismatchParams),
    responses((status = 200, body = CostMismatchList), (status = 400, body = ErrorBody)),
    security(("admin_token" = []))
)]
pub async fn cost_mismatches(
    State(state): State<AppState>,
    _: Operator,
    ApiQuery(params): ApiQuery<MismatchParams>,
) -> Result<Json<CostMismatchList>> {
    let threshold = params.threshold_percent.unwrap_or(10);
    let (from, to) = window(params.from.as_deref(), params.to.as_deref())?;
    let (mismatched, orphans) = reports::cost_mismatches(&state.db, from, to, threshold).await?;
    let data = mismatched
        .into_iter()
        .map(|v| CostMismatch {
            video_id: v.id.to_string(),
            tenant_id: v.tenant_id.to_string(),
            provider: v.provider.map(|p| p.as_str().to_string()),
            reported: v.upstream_cost.clone(),
            reported_micro_usd: v.upstream_cost_micro_usd.map(|m| m.get()),
            estimated_micro_usd: v.upstream_estimate_micro.map(|m| m.get()),
        })
        .collect();
    let possible_orphans = orphans
        .into_iter()
        .map(|o| PossibleOrphan {
            video_id: o.video_id,
            tenant_id: o.tenant_id,
            provider: o.provider,
            attempted_at: o.attempted_at_ms / 1000,
            error: o.error,
            request: o.request,
        })
        .collect();
    Ok(Json(CostMismatchList {
        object: "list",
        threshold_percent: threshold,
        data,
        possible_orphans,
    }))
}
