//! The caller tenant's money: `GET /v1/balance` and `GET /v1/ledger`. Test keys see the test
//! balance and journal; live keys the live ones.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::billing::ledger;
use crate::domain::billing::ledger::EntryView;
use crate::error::{Error, Result};
use crate::http::auth::Caller;
use crate::http::error::ErrorBody;
use crate::http::extract::ApiQuery;
use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"object": "balance", "mode": "live", "available": 9750, "held": 250, "promotional": 500, "credit_floor": 0, "unit": "credits"}))]
pub struct BalanceView {
    pub object: &'static str,
    /// `live` or `test`, after the calling key.
    pub mode: &'static str,
    /// Credits new jobs can reserve (above the floor).
    pub available: i64,
    /// Credits reserved by running jobs.
    pub held: i64,
    /// Promotional (granted) credit, spent before `available`.
    pub promotional: i64,
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
    let reach = crate::domain::access::billing(&principal)?;
    let tenant = crate::domain::admin::tenant(&state.db, &reach.tenant).await?;
    let balance = ledger::balance(&state.db, &reach.tenant, reach.mode).await?;
    Ok(Json(BalanceView {
        object: "balance",
        mode: reach.mode.as_str(),
        available: balance.available.get(),
        held: balance.held.get(),
        promotional: balance.promotional.get(),
        credit_floor: tenant.floor(reach.mode).get(),
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
    let reach = crate::domain::access::billing(&principal)?;
    let limit = params.limit.unwrap_or(20);
    let (data, has_more) =
        ledger::entries(&state.db, &reach.tenant, reach.mode, params.after, limit).await?;
    Ok(Json(LedgerPage {
        object: "list",
        first_id: data.first().map(|e| e.id),
        last_id: data.last().map(|e| e.id),
        has_more,
        data,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Comma-separated: `day`, `key`, `user`, `model`, `provider` (default `day`).
    pub group_by: Option<String>,
    /// First UTC day, `YYYY-MM-DD` (default: 30 days ago).
    pub from: Option<String>,
    /// Last UTC day, inclusive (default: today).
    pub to: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEntry {
    /// The values of the `group_by` fields, by name (`day` as `YYYY-MM-DD`).
    pub group: std::collections::BTreeMap<String, String>,
    /// Settled jobs (completed, failed or canceled).
    pub jobs: i64,
    pub completed: i64,
    /// Seconds of completed video.
    pub seconds: i64,
    /// Credits charged (failed and canceled jobs are not charged).
    pub charged_credits: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub object: &'static str,
    /// `live` or `test`, after the calling key.
    pub mode: &'static str,
    pub from: String,
    pub to: String,
    pub group_by: Vec<&'static str>,
    pub data: Vec<UsageEntry>,
    /// The sums over `data`; `charged_credits` equals the credits the journal captured.
    pub totals: UsageTotals,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotals {
    pub jobs: i64,
    pub completed: i64,
    pub seconds: i64,
    pub charged_credits: i64,
}

/// The caller's usage
///
/// Settled jobs grouped by day, key, end user, model and/or provider, with the credits
/// charged; as JSON, or CSV with `format=csv` or `Accept: text/csv`.
#[utoipa::path(
    get, path = "/v1/usage", tag = "billing", params(UsageParams),
    responses(
        (status = 200, description = "The report as JSON, or as CSV (`format=csv` or `Accept: text/csv`)", content(
            (UsageReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)
    ),
    security(("api_key" = []))
)]
pub async fn usage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<axum::response::Response> {
    let reach = crate::domain::access::billing(&principal)?;
    use crate::domain::reports::{date_of_day, UsageGroup};
    use axum::response::IntoResponse;
    let mut groups = Vec::new();
    for name in params
        .group_by
        .as_deref()
        .unwrap_or("day")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let group = UsageGroup::parse(name).ok_or_else(|| {
            Error::invalid(
                "group_by",
                format!("cannot group by `{name}`; use day, key, user, model or provider"),
            )
        })?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let window = crate::domain::reports::window(
        params.from.as_deref(),
        params.to.as_deref(),
        crate::clock::now_ms(),
    )?;
    let csv = match params.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(Error::invalid("format", "format must be json or csv")),
        None => headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let rows = crate::domain::reports::usage(&state.db, &reach.tenant, reach.mode, window, &groups)
        .await?;
    let data: Vec<UsageEntry> = rows
        .into_iter()
        .map(|row| UsageEntry {
            group: groups
                .iter()
                .zip(row.groups)
                .map(|(g, value)| {
                    let value = match g {
                        UsageGroup::Day => value.parse().map(date_of_day).unwrap_or(value),
                        _ => value,
                    };
                    (g.name().to_string(), value)
                })
                .collect(),
            jobs: row.jobs,
            completed: row.completed,
            seconds: row.seconds,
            charged_credits: row.charged,
        })
        .collect();
    let totals = UsageTotals {
        jobs: data.iter().map(|d| d.jobs).sum(),
        completed: data.iter().map(|d| d.completed).sum(),
        seconds: data.iter().map(|d| d.seconds).sum(),
        charged_credits: data.iter().map(|d| d.charged_credits).sum(),
    };
    if csv {
        let mut text = String::new();
        let mut header: Vec<&str> = groups.iter().map(|g| g.name()).collect();
        header.extend(["jobs", "completed", "seconds", "charged_credits"]);
        text.push_str(&header.join(","));
        text.push('\n');
        for entry in &data {
            let mut fields: Vec<String> = groups
                .iter()
                .map(|g| csv_field(entry.group.get(g.name()).map(String::as_str).unwrap_or("")))
                .collect();
            fields.extend(
                [
                    entry.jobs,
                    entry.completed,
                    entry.seconds,
                    entry.charged_credits,
                ]
                .map(|n| n.to_string()),
            );
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            text,
        )
            .into_response());
    }
    Ok(Json(UsageReport {
        object: "usage",
        mode: reach.mode.as_str(),
        from: date_of_day(window.0.div_euclid(crate::types::time::DAY_MS)),
        to: date_of_day(window.1.div_euclid(crate::types::time::DAY_MS) - 1),
        group_by: groups.iter().map(|g| g.name()).collect(),
        data,
        totals,
    })
    .into_response())
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}
